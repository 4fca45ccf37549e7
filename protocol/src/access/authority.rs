//! Who speaks for a person when it is not only the person (F9.1, F9.3, F9.4): the handover
//! of a minor's space to the minor, the volumes nobody but the owner names readers for,
//! and a court's removal of a parent's rights as the hub records it.
//!
//! - [`Handover`]: signed by the space's owner (a parent), it makes the minor the owner
//!   from then on. The former owner keeps `former_owner_role` (they remain a legal
//!   representative) until the new owner signs another grant for them.
//! - Private volumes ([`is_private`]): readable by the owner and by principals the owner
//!   itself granted that very volume; a space-wide grant, an admin's grant or the former
//!   owner's role never reach them. A minor's hidden categories live there, so their keys
//!   are never wrapped to the parents.
//! - [`CourtRemoval`]: signed by the hub's signing key, on a decision the operator
//!   recorded; the principal holds no role on the space from then on. The owner cannot
//!   be removed this way (a space always has a person who decides).

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};

use crate::access::role::Role;
use crate::crypto::keys::AgeRecipient;
use crate::crypto::signed::SignedBody;
use crate::ids::{PrincipalId, SpaceId};
use crate::time::UnixMillis;

/// Label of the volume of documents a minor keeps from their legal representatives (F9.1).
pub const DOCUMENTS_PRIVATE: &str = "documents/private";

/// Whether a volume label names a private volume (only the owner grants it).
pub fn is_private(label: &str) -> bool {
    label == DOCUMENTS_PRIVATE || label.starts_with("private/")
}

/// The owner hands the space over to the minor it belongs to (F9.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// The space.
    pub space: SpaceId,
    /// The minor's principal, owner from now on.
    pub to: PrincipalId,
    /// The minor's recipient for inbox drops (F7.6) from now on.
    pub inbox_recipient: AgeRecipient,
    /// The role the former owner keeps until the new owner decides otherwise.
    pub former_owner_role: Option<Role>,
    /// When.
    pub at: UnixMillis,
}
impl SignedBody for Handover {
    const CONTEXT: &'static [u8] = b"mes/handover/v1";
}

/// The hub records a court decision removing a principal's rights on a space (F9.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourtRemoval {
    /// The space.
    pub space: SpaceId,
    /// Who loses every right on it.
    pub principal: PrincipalId,
    /// The decision's reference, as the operator recorded it.
    pub reference: String,
    /// When the hub recorded it.
    pub recorded_at: UnixMillis,
}
impl SignedBody for CourtRemoval {
    const CONTEXT: &'static [u8] = b"mes/court-removal/v1";
}

/// The whole years between a `YYYY-MM-DD` birth date and a day.
pub fn age_on(birth_date: &str, day: jiff::civil::Date) -> Result<u32, Invalid> {
    let birth: jiff::civil::Date = birth_date
        .parse()
        .map_err(|e| format!("birth date {birth_date:?} is not YYYY-MM-DD: {e}"))?;
    if birth > day {
        return Err(Invalid::from(format!(
            "birth date {birth_date} is after {day}"
        )));
    }
    let span = birth
        .until((jiff::Unit::Year, day))
        .map_err(|e| format!("age from {birth_date}: {e}"))?;
    Ok(span.get_years() as u32)
}

pub use crate::time::paris_day;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_whole_years_and_reject_bad_dates() {
        use jiff::civil::date;
        assert_eq!(age_on("2010-06-15", date(2026, 6, 14)), Ok(15));
        assert_eq!(age_on("2010-06-15", date(2026, 6, 15)), Ok(16));
        assert_eq!(age_on("2010-02-28", date(2027, 1, 1)), Ok(16));
        assert!(age_on("2010-13-01", date(2026, 1, 1)).is_err());
        assert!(age_on("15/06/2010", date(2026, 1, 1)).is_err());
        assert!(age_on("2030-01-01", date(2026, 1, 1)).is_err());
        assert_eq!(paris_day(UnixMillis(0)), date(1970, 1, 1));
    }

    #[test]
    fn private_labels() {
        assert!(is_private(DOCUMENTS_PRIVATE));
        assert!(is_private("private/journal"));
        assert!(!is_private("documents/hidden"));
    }
}
