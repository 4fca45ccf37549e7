//! The relay's own Ed25519 signing key (`relay-signing.key`, mode 0600, in the data
//! directory): it signs the professional directory and the access history. It opens no
//! health data. Daemons learn its public half in `Welcome`, over the pinned connection.

use crate::private_files::{invalid, read_key, write_key, KeyFileError};
use mes_protocol::crypto::keys::SigningSecret;
use std::path::Path;

/// Loads the key from `dir`, creating it on first start.
pub fn load_or_create(dir: &Path) -> Result<SigningSecret, KeyFileError> {
    let path = dir.join("relay-signing.key");
    if path.exists() {
        let bytes = read_key(&path)?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            invalid(
                &path,
                format!("holds {} bytes, not a 32-byte key", bytes.len()),
            )
        })?;
        return Ok(SigningSecret::from_bytes(&bytes));
    }
    let key = SigningSecret::generate(&mut rand::rngs::OsRng);
    write_key(&path, key.to_bytes().as_slice())?;
    Ok(key)
}
