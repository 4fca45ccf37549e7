//! Who may read what: consent, delegation and blocks, minors and their handover,
//! emergency access (F7.5), held items, the access history and the person's choices.

pub mod catalogue;
pub mod choices;
pub mod consent;
pub mod emergency;
pub mod history;
pub mod holds;
pub mod membership;
pub mod minors;
