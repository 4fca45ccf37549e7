//! Who may do what: membership, the habilitation matrix, consents, the person's choices, authority over minors, emergency escrow, the access history.

pub mod authority;
pub mod choices;
pub mod consent;
pub mod escrow;
pub mod habilitation;
pub mod history;
pub mod membership;
pub mod role;
