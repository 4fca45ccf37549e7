//! Decisions recorded on a person's behalf (F1.4, seed 001): support staff, a guardian's
//! service or a prison collect a person's opposition (or their wish to close) and pass
//! it on, since the person may have no carte Vitale, no internet and a letter that comes
//! late. The hub records who passed it on and under which reference, keeps it with the
//! person's enrolment (`behalf/<NIR>` in the enrolment tables, written in the same
//! batch as the change), tells the person by email or letter, and shows it in their
//! status. They reverse it themselves: an opposition by activating with the code the
//! message carries, a closure by reopening with their hub account.

use mes_protocol::invalid::Invalid;
use mes_protocol::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// Entries kept per person; the oldest go first.
pub const MAX_ENTRIES: usize = 16;
/// Longest name or reference, in characters.
pub const MAX_TEXT: usize = 200;

/// What was decided on the person's behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Action {
    /// An opposition to the space's creation (F1.4).
    Oppose,
    /// A closure of the space (F1.6), archived as any closure.
    Close,
}

/// One decision recorded on someone's behalf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behalf {
    /// What.
    pub action: Action,
    /// Who passed it on ("Centre pénitentiaire de Fresnes, greffe").
    pub by: String,
    /// Their reference ("GREFFE-2026-0042").
    pub reference: String,
    /// When the hub recorded it.
    pub at: UnixMillis,
}

/// The metadata name of a person's entries.
pub fn meta_name(nir: &str) -> String {
    format!("behalf/{nir}")
}

/// Checks a name or a reference: not empty, at most [`MAX_TEXT`] characters, one line.
pub fn check_text(what: &str, text: &str) -> Result<(), Invalid> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Invalid(format!(
            "{what} is empty: say who passes the decision on, and their reference"
        )));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Invalid(format!(
            "{what} is longer than {MAX_TEXT} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "{what} holds a control character (one line of text)"
        )));
    }
    Ok(())
}

/// The entries with `entry` added, the oldest dropped past [`MAX_ENTRIES`].
pub fn appended(mut entries: Vec<Behalf>, entry: Behalf) -> Vec<Behalf> {
    entries.push(entry);
    let extra = entries.len().saturating_sub(MAX_ENTRIES);
    entries.drain(..extra);
    entries
}

/// How the person reads an entry, French then English, dates in their time zone.
pub fn describe(b: &Behalf, departement: &str) -> String {
    let day = mes_protocol::time::local_date(b.at, departement);
    match b.action {
        Action::Oppose => format!(
            "Opposition enregistrée pour vous le {day} par {by} (référence {reference}) ; vous pouvez l'annuler en activant votre espace / Opposition recorded on your behalf on {day} by {by} (reference {reference}); you may undo it by activating your space",
            by = b.by,
            reference = b.reference
        ),
        Action::Close => format!(
            "Clôture enregistrée pour vous le {day} par {by} (référence {reference}) ; vous pouvez rouvrir votre espace avec votre compte / Closure recorded on your behalf on {day} by {by} (reference {reference}); you may reopen your space with your account",
            by = b.by,
            reference = b.reference
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_references_are_one_short_line() {
        assert!(check_text("--by", "Centre pénitentiaire de Fresnes").is_ok());
        assert!(check_text("--by", "  ").unwrap_err().contains("empty"));
        assert!(check_text("--reference", "a\nb")
            .unwrap_err()
            .contains("control"));
        assert!(check_text("--reference", &"x".repeat(MAX_TEXT + 1))
            .unwrap_err()
            .contains("longer"));
    }

    #[test]
    fn the_oldest_entries_go_first() {
        let entry = |i: u64| Behalf {
            action: Action::Oppose,
            by: format!("b{i}"),
            reference: "r".into(),
            at: UnixMillis(i),
        };
        let mut all = Vec::new();
        for i in 0..(MAX_ENTRIES as u64 + 3) {
            all = appended(all, entry(i));
        }
        assert_eq!(all.len(), MAX_ENTRIES);
        assert_eq!(all[0].by, "b3");
    }
}
