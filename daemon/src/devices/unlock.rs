//! Unlocking a replica without a prompt: the device's storage key is kept age-wrapped in
//! `storage-key.age`, either to an X25519 identity file or to a passphrase read from a
//! file descriptor (scrypt, ~1.5 s by design). The storage key never touches the disk in
//! clear.

use mes_protocol::crypto::keys::AgeSecret;
use mes_protocol::crypto::seal::SymmetricKey;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Why a replica does not unlock; each names the file or descriptor at fault.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The passphrase's descriptor gave nothing usable.
    #[error("{0}")]
    Secret(#[from] mes_client::ClientError),
    /// The key file does not open with this identity or passphrase.
    #[error("cannot unlock {path}: {why} (wrong identity file or passphrase?)")]
    WrongSecret {
        /// The key file.
        path: String,
        /// What age said.
        why: String,
    },
    /// A file does not hold what it should.
    #[error("{path}: {why}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The storage key could not be wrapped.
    #[error("wrapping the storage key: {0}")]
    Wrap(String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UnlockError {
    let path = path.display().to_string();
    move |source| UnlockError::Io { what, path, source }
}

/// Where the storage key's wrapping secret comes from.
pub enum Unlock {
    /// An age identity file (`AGE-SECRET-KEY-1...`), created (mode 0600) if missing.
    IdentityFile(PathBuf),
    /// A passphrase (read by the caller from a file descriptor).
    Passphrase(Zeroizing<String>),
}

impl Unlock {
    /// Reads a passphrase from an inherited file descriptor (its first line).
    pub fn from_fd(fd: u32) -> Result<Self, UnlockError> {
        Ok(Unlock::Passphrase(mes_client::secret_from_fd(fd)?))
    }
}

const KEY_FILE: &str = "storage-key.age";

/// Opens the storage key of `data_dir`, creating and wrapping a fresh one on first start.
pub fn storage_key(data_dir: &Path, unlock: &Unlock) -> Result<SymmetricKey, UnlockError> {
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        let wrapped = std::fs::read(&path).map_err(io("reading", &path))?;
        let plain = Zeroizing::new(
            match unlock {
                Unlock::IdentityFile(p) => age::decrypt(read_identity(p)?.identity(), &wrapped),
                Unlock::Passphrase(pw) => {
                    age::decrypt(&age::scrypt::Identity::new(pw.to_string().into()), &wrapped)
                }
            }
            .map_err(|e| UnlockError::WrongSecret {
                path: path.display().to_string(),
                why: e.to_string(),
            })?,
        );
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| UnlockError::Malformed {
                path: path.display().to_string(),
                why: "does not hold a 32-byte key".into(),
            })?;
        return Ok(SymmetricKey::from_bytes(bytes));
    }
    let key = SymmetricKey::generate(&mut rand::rngs::OsRng);
    let wrapped = match unlock {
        Unlock::IdentityFile(p) => {
            let id = if p.exists() {
                read_identity(p)?
            } else {
                create_identity(p)?
            };
            let recipient = id
                .recipient()
                .parse()
                .map_err(|e| UnlockError::Wrap(format!("{e}")))?;
            age::encrypt(&recipient, key.as_bytes())
        }
        Unlock::Passphrase(pw) => age::encrypt(
            &age::scrypt::Recipient::new(pw.to_string().into()),
            key.as_bytes(),
        ),
    }
    .map_err(|e| UnlockError::Wrap(e.to_string()))?;
    write_private(&path, &wrapped)?;
    Ok(key)
}

fn read_identity(path: &Path) -> Result<AgeSecret, UnlockError> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(io("reading identity file", path))?);
    let malformed = |why: String| UnlockError::Malformed {
        path: path.display().to_string(),
        why,
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| malformed("holds no AGE-SECRET-KEY line".into()))?;
    AgeSecret::parse(line).map_err(|e| malformed(e.to_string()))
}

fn create_identity(path: &Path) -> Result<AgeSecret, UnlockError> {
    let id = AgeSecret::generate();
    let text = format!(
        "# mesd storage identity\n# public key: {}\n{}\n",
        id.recipient().0,
        id.to_secret_string().as_str()
    );
    write_private(path, text.as_bytes())?;
    Ok(id)
}

/// Writes a new file with mode 0600 and syncs it.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), UnlockError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating", path))?;
    f.write_all(bytes).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_file_unlocks_and_a_wrong_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("id.txt");
        let k1 = storage_key(dir.path(), &Unlock::IdentityFile(id.clone())).unwrap();
        let k2 = storage_key(dir.path(), &Unlock::IdentityFile(id)).unwrap();
        assert_eq!(k1.as_bytes(), k2.as_bytes());
        let other = dir.path().join("other.txt");
        create_identity(&other).unwrap();
        let err = storage_key(dir.path(), &Unlock::IdentityFile(other))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot unlock"), "{err}");
        let raw = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        assert!(
            !raw.windows(32).any(|w| w == k1.as_bytes()),
            "the key must not be stored in clear"
        );
    }
}
