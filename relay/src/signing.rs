//! The relay's own Ed25519 signing key (`relay-signing.key`, mode 0600, in the data
//! directory): it signs the professional directory and the access history. It opens no
//! health data. Daemons learn its public half in `Welcome`, over the pinned connection.

use anyhow::Context;
use mes_protocol::crypto::keys::SigningSecret;
use std::path::Path;

/// Loads the key from `dir`, creating it on first start.
pub fn load_or_create(dir: &Path) -> anyhow::Result<SigningSecret> {
    let path = dir.join("relay-signing.key");
    if path.exists() {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!(
                "{} holds {} bytes, not a 32-byte key",
                path.display(),
                bytes.len()
            )
        })?;
        return Ok(SigningSecret::from_bytes(&bytes));
    }
    let key = SigningSecret::generate(&mut rand::rngs::OsRng);
    crate::server::tls::write_private(&path, key.to_bytes().as_slice())?;
    Ok(key)
}
