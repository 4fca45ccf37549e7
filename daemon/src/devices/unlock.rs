//! Unlocking a replica without a prompt: the device's storage key is kept age-wrapped in
//! `storage-key.age`, either to an X25519 identity file or to a passphrase read from a
//! file descriptor (scrypt, ~1.5 s by design). The storage key never touches the disk in
//! clear.

use anyhow::{bail, Context};
use mes_protocol::crypto::keys::AgeSecret;
use mes_protocol::crypto::seal::SymmetricKey;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where the storage key's wrapping secret comes from.
pub enum Unlock {
    /// An age identity file (`AGE-SECRET-KEY-1...`), created (mode 0600) if missing.
    IdentityFile(PathBuf),
    /// A passphrase (read by the caller from a file descriptor).
    Passphrase(Zeroizing<String>),
}

impl Unlock {
    /// Reads a passphrase from an inherited file descriptor (its first line).
    pub fn from_fd(fd: u32) -> anyhow::Result<Self> {
        let raw = std::fs::read(format!("/proc/self/fd/{fd}"))
            .with_context(|| format!("reading the passphrase from file descriptor {fd}"))?;
        let text = Zeroizing::new(String::from_utf8(raw).context("the passphrase is not UTF-8")?);
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            bail!("file descriptor {fd} gave an empty passphrase");
        }
        Ok(Unlock::Passphrase(Zeroizing::new(line)))
    }
}

const KEY_FILE: &str = "storage-key.age";

/// Opens the storage key of `data_dir`, creating and wrapping a fresh one on first start.
pub fn storage_key(data_dir: &Path, unlock: &Unlock) -> anyhow::Result<SymmetricKey> {
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        let wrapped =
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let plain = Zeroizing::new(
            match unlock {
                Unlock::IdentityFile(p) => age::decrypt(read_identity(p)?.identity(), &wrapped),
                Unlock::Passphrase(pw) => {
                    age::decrypt(&age::scrypt::Identity::new(pw.to_string().into()), &wrapped)
                }
            }
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot unlock {}: {e} (wrong identity file or passphrase?)",
                    path.display()
                )
            })?,
        );
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} does not hold a 32-byte key", path.display()))?;
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
            age::encrypt(&id.recipient().parse()?, key.as_bytes())
        }
        Unlock::Passphrase(pw) => age::encrypt(
            &age::scrypt::Recipient::new(pw.to_string().into()),
            key.as_bytes(),
        ),
    }
    .map_err(|e| anyhow::anyhow!("wrapping the storage key: {e}"))?;
    write_private(&path, &wrapped)?;
    Ok(key)
}

fn read_identity(path: &Path) -> anyhow::Result<AgeSecret> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading identity file {}", path.display()))?,
    );
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .with_context(|| format!("{} holds no AGE-SECRET-KEY line", path.display()))?;
    AgeSecret::parse(line).with_context(|| format!("identity file {}", path.display()))
}

fn create_identity(path: &Path) -> anyhow::Result<AgeSecret> {
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
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
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
