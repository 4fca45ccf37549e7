//! The relay's own Ed25519 signing key (`relay-signing.key`, mode 0600, in the data
//! directory): it signs the professional directory and the access history. It opens no
//! health data. Daemons learn its public half in `Welcome`, over the pinned connection.

use crate::private_files::{key32, KeyFileError};
use mes_protocol::crypto::keys::SigningSecret;
use std::path::Path;

/// Loads the key from `dir`, creating it on first start.
pub fn load_or_create(dir: &Path) -> Result<SigningSecret, KeyFileError> {
    // An Ed25519 secret is 32 random bytes.
    Ok(SigningSecret::from_bytes(&key32(
        &dir.join("relay-signing.key"),
    )?))
}
