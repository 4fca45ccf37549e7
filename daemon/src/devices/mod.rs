//! A person's devices: this device's identity and its unlocking, pairing a new one,
//! recovery kits, and enrolling through the hub (F1).

pub mod enrolment;
pub mod identity;
pub mod list;
pub mod pairing;
pub mod recovery;
pub mod unlock;
