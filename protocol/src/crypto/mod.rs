//! Cryptography: keys and certificates, sealed bundles, key envelopes, encrypted files, recovery kits, pairing.

pub mod blob;
pub mod cert_handover;
pub mod envelope;
pub mod keys;
pub mod pairing;
pub mod recovery;
pub mod seal;
pub mod signed;
