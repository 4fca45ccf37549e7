//! What a person asks of the hub about their enrolment (F1.3-F1.8, F1.10): activate,
//! oppose, a new code, closure, reopening, reminders, and where it stands. The code, the
//! NIR and the carte Vitale serial identify the person before an account exists; the hub
//! account (identifier and password) afterwards. The password only authenticates to the
//! hub: it never yields keys (docs/sources.md).

pub mod catalogue;
pub mod nir;
pub mod principal;

use serde::{Deserialize, Serialize};

use crate::ids::SpaceId;

/// Who the person is, before they have an account: what the letter and the card give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CardHolder {
    /// The NIR, with or without its key, spaces allowed.
    pub nir: String,
    /// The carte Vitale serial.
    pub vitale_serial: String,
}

/// An enrolment request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum EnrolRequest {
    /// Activates with the provisional code; the caller's new space becomes the person's.
    Activate {
        /// Who.
        holder: CardHolder,
        /// The provisional code.
        code: String,
        /// The identifier chosen.
        identifier: String,
        /// The password chosen.
        password: String,
        /// The contact email confirmed or changed ("" for none).
        email: String,
        /// The space the caller's device created (the caller must own it).
        space: SpaceId,
    },
    /// Opposes the automatic creation (reversible).
    Oppose {
        /// Who.
        holder: CardHolder,
        /// The provisional code.
        code: String,
    },
    /// Asks for a new code, sent to the email on file only.
    Regenerate {
        /// Who.
        holder: CardHolder,
    },
    /// Turns reminders off or back on.
    Reminders {
        /// Who.
        holder: CardHolder,
        /// The provisional code.
        code: String,
        /// Off when true.
        off: bool,
    },
    /// Where the enrolment stands.
    Status {
        /// Who.
        holder: CardHolder,
    },
    /// Closes the space: archived, or deleted within the express delay.
    Close {
        /// Hub identifier.
        identifier: String,
        /// Hub password.
        password: String,
        /// Express deletion.
        express: bool,
    },
    /// Reopens a closed space: what is archived is restored.
    Reopen {
        /// Hub identifier.
        identifier: String,
        /// Hub password.
        password: String,
    },
    /// A listed professional holds documents or messages for this person, whose space
    /// nobody holds keys to yet (F1.5); `release` once delivered. The hub keeps who holds
    /// something for whom, never what.
    Hold {
        /// The person's NIR.
        nir: String,
        /// Delivered: forget the hold.
        release: bool,
    },
    /// A professional asks which of the people it holds items for have activated since,
    /// and their spaces.
    HeldReady {
        /// The NIRs it holds items for.
        nirs: Vec<String>,
    },
    /// The person, from the device that owns their activated space, asks which
    /// professionals hold items for them (to let them drop into the inbox).
    Holders {
        /// Who.
        holder: CardHolder,
    },
    /// Sets a new hub password with a code sent to the address on file (F12.4, the
    /// letter's path; ask for the code with `Regenerate`).
    ResetPassword {
        /// Who.
        holder: CardHolder,
        /// The code sent to the address on file.
        code: String,
        /// The new password.
        password: String,
    },
    /// Sets a new hub password from a device of the person who owns the account's space
    /// (F12.4): one restored from a recovery kit proves it with the person's keys. The
    /// hub alone can do neither.
    ResetPasswordAsOwner {
        /// The hub identifier.
        identifier: String,
        /// The new password.
        password: String,
        /// The account's space, owned by the caller (the daemon fills it in).
        space: SpaceId,
    },
}

/// One hold (F1.5): who holds items for whom, and the person's space once activated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Hold {
    /// The person's NIR.
    pub nir: String,
    /// The professional holding items.
    pub principal: crate::ids::PrincipalId,
    /// The person's space, once they activated it.
    pub space: Option<SpaceId>,
    /// The professional's RPPS number, told to the person (to find them in the
    /// directory); empty in answers to the professional.
    pub rpps: String,
}

/// Where an enrolment stands, as the person reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EnrolStatus {
    /// `notified`, `activated`, `opposed`, `auto-created`, `closed`, `deleted`.
    pub status: String,
    /// In French then English ("En attente de décision jusqu'au 13/04/2026 / ...").
    pub detail: String,
}

impl EnrolRequest {
    /// The card holder the request is about, when it names one (closure and reopening
    /// go by the hub account instead).
    pub fn holder(&self) -> Option<&CardHolder> {
        match self {
            EnrolRequest::Activate { holder, .. }
            | EnrolRequest::Oppose { holder, .. }
            | EnrolRequest::Regenerate { holder }
            | EnrolRequest::Reminders { holder, .. }
            | EnrolRequest::Status { holder }
            | EnrolRequest::ResetPassword { holder, .. } => Some(holder),
            EnrolRequest::Holders { holder } => Some(holder),
            EnrolRequest::Close { .. }
            | EnrolRequest::Reopen { .. }
            | EnrolRequest::ResetPasswordAsOwner { .. }
            | EnrolRequest::Hold { .. }
            | EnrolRequest::HeldReady { .. } => None,
        }
    }
}

/// A profile this device enrols (F1.10): the person's own or a child's, with what the
/// hub last answered about it ("En attente de décision" until someone decides).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EnrolProfile {
    /// The name the person gives it ("Mathis"): the label of its space once activated.
    pub label: String,
    /// Whose card.
    pub holder: CardHolder,
    /// Its space, once activated from this device.
    pub space: Option<crate::ids::SpaceId>,
    /// The hub's last answer.
    pub status: EnrolStatus,
    /// When it answered.
    pub at: crate::time::UnixMillis,
}
