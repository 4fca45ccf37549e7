//! Backup and restore of a stopped hub's data directory: every tree of the store (logs,
//! records, blobs, enrolment) and the key files, in one file checked whole by a BLAKE3
//! hash at its end. A restore checks the whole file before writing anything, and only
//! into an empty directory, so a damaged backup changes nothing.
//!
//! Format: `MES-RELAY-BACKUP 1\n`, then frames `kind u8 ‖ len u32 ‖ bytes` (kind 1: a
//! key file's name, then kind 2 its content; kind 3: a tree's name; kind 4 and 5: a key
//! and its value in that tree), then kind 9 with the hash of everything before it.

use std::io::{BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8] = b"MES-RELAY-BACKUP 1\n";

/// The key files of a data directory (the TLS identity and its handovers, the relay's
/// signing key, the escrow identities, the enrolment code key).
pub const KEY_FILES: &[&str] = &[
    "relay-cert.der",
    "relay-key.der",
    "relay-cert-handovers",
    "relay-signing.key",
    "escrow-centre-15.key",
    "escrow-break-glass.key",
    "enrolment-code.key",
];

/// What a backup or restore carried.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct BackupReport {
    /// Key files.
    pub key_files: usize,
    /// Trees.
    pub trees: usize,
    /// Entries over all trees.
    pub entries: u64,
    /// Bytes of the backup file.
    pub bytes: u64,
}

struct Hashed<W: Write> {
    inner: W,
    hash: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Hashed<W> {
    fn frame(&mut self, kind: u8, data: &[u8]) -> std::io::Result<()> {
        let len =
            u32::try_from(data.len()).map_err(|_| std::io::Error::other("a value over 4 GiB"))?;
        for part in [&[kind][..], &len.to_be_bytes(), data] {
            self.hash.update(part);
            self.inner.write_all(part)?;
            self.bytes += part.len() as u64;
        }
        Ok(())
    }
}

/// Why a backup or a restore failed; a refused file changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file or the store says no: what and why.
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or written.
    #[error("backup: {0}")]
    Io(#[from] std::io::Error),
    /// A private file could not be made.
    #[error(transparent)]
    File(#[from] crate::private_files::PrivateFileError),
    /// The store failed.
    #[error("backup: the store: {0}")]
    Store(#[from] sled::Error),
    /// A key file's name is not text.
    #[error("backup: a key file's name is not text: {0}")]
    Name(#[from] std::str::Utf8Error),
}

/// Writes a backup of the stopped hub in `data` to `out` (refusing to overwrite).
pub fn backup(data: &Path, out: &Path) -> Result<BackupReport, BackupError> {
    let db = sled::Config::new()
        .path(data.join("relay.sled"))
        .create_new(false)
        .open()
        .map_err(|e| {
            BackupError::Refused(format!(
                "opening the relay store (is a relay serving this directory? stop it first): {e}"
            ))
        })?;
    // The backup holds every key of the hub: its owner's only (finding 9).
    let file = crate::private_files::create_new(out)?;
    let mut w = Hashed {
        inner: BufWriter::new(file),
        hash: blake3::Hasher::new(),
        bytes: 0,
    };
    w.hash.update(MAGIC);
    w.inner.write_all(MAGIC)?;
    w.bytes += MAGIC.len() as u64;
    let mut report = BackupReport::default();
    for name in KEY_FILES {
        let path = data.join(name);
        if path.exists() {
            w.frame(1, name.as_bytes())?;
            w.frame(2, &crate::private_files::read_key(&path)?)?;
            report.key_files += 1;
        }
    }
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        w.frame(3, &name)?;
        report.trees += 1;
        for kv in &tree {
            let (k, v) = kv?;
            w.frame(4, &k)?;
            w.frame(5, &v)?;
            report.entries += 1;
        }
    }
    let hash = *w.hash.finalize().as_bytes();
    w.frame(9, &hash)?;
    let mut file = w
        .inner
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    file.flush()?;
    file.sync_all()?;
    report.bytes = w.bytes;
    Ok(report)
}

/// One frame read back.
fn frames(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, BackupError> {
    if !bytes.starts_with(MAGIC) {
        return Err(BackupError::Refused(
            "not a mes-relay backup (no header)".to_string(),
        ));
    }
    let mut at = MAGIC.len();
    let mut out = Vec::new();
    while at < bytes.len() {
        if bytes.len() - at < 5 {
            return Err(BackupError::Refused(format!(
                "the backup is cut short at byte {at}"
            )));
        }
        let kind = bytes[at];
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        let start = at + 5;
        if bytes.len() - start < len {
            return Err(BackupError::Refused(format!(
                "the backup is cut short at byte {at}"
            )));
        }
        if kind == 9 {
            let expected = blake3::hash(&bytes[..at]);
            if !(bytes[start..start + len] == *expected.as_bytes() && start + len == bytes.len()) {
                return Err(BackupError::Refused(
                    "the backup is damaged: its hash does not match its content".to_string(),
                ));
            }
            return Ok(out);
        }
        out.push((kind, &bytes[start..start + len]));
        at = start + len;
    }
    Err(BackupError::Refused(
        "the backup has no final hash (cut short?)".to_string(),
    ))
}

/// Restores `from` into `data`, which must be empty or absent; checks the whole file
/// first.
pub fn restore(from: &Path, data: &Path) -> Result<BackupReport, BackupError> {
    let mut bytes = Vec::new();
    std::fs::File::open(from)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| BackupError::Refused(format!("reading {}: {e}", from.display())))?;
    let frames = frames(&bytes)?;
    if data.exists() && std::fs::read_dir(data)?.next().is_some() {
        return Err(BackupError::Refused(format!(
            "{} is not empty: restore into a new directory",
            data.display()
        )));
    }
    crate::private_files::create_dir(data)?;
    let mut report = BackupReport {
        bytes: bytes.len() as u64,
        ..Default::default()
    };
    let db = sled::Config::new().path(data.join("relay.sled")).open()?;
    let mut tree: Option<sled::Tree> = None;
    let mut name: Option<&[u8]> = None;
    for (kind, body) in frames {
        match kind {
            1 => name = Some(body),
            2 => {
                let n =
                    std::str::from_utf8(name.take().ok_or_else(|| {
                        BackupError::Refused("a key file without a name".into())
                    })?)?;
                if !KEY_FILES.contains(&n) {
                    return Err(BackupError::Refused(format!(
                        "unexpected key file {n:?} in the backup"
                    )));
                }
                crate::private_files::write_key(&data.join(n), body)?;
                report.key_files += 1;
            }
            3 => {
                tree = Some(db.open_tree(body)?);
                report.trees += 1;
            }
            4 => name = Some(body),
            5 => {
                let k = name
                    .take()
                    .ok_or_else(|| BackupError::Refused("a value without its key".into()))?;
                // Plain inserts, never sled's `apply_batch` (issue 23): a restore goes
                // into an empty directory, refused again until emptied if cut short.
                tree.as_ref()
                    .ok_or_else(|| BackupError::Refused("an entry before its tree".into()))?
                    .insert(k, body)?;
                report.entries += 1;
            }
            other => {
                return Err(BackupError::Refused(format!(
                    "unknown frame kind {other} in the backup"
                )))
            }
        }
    }
    drop(tree);
    db.flush()?;
    Ok(report)
}
