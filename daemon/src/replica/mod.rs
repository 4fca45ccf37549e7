//! The replica on this device: the sealed store, the keyring of epoch keys, the
//! volumes (pure automerge replicas and inbox logs), the spaces as stored, and new
//! generations.

pub mod blobs;
pub mod generation;
pub mod keyring;
pub mod partition;
pub mod spaces;
pub mod store;
pub mod volume;
