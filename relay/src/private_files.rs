//! Files and folders only the hub's own user may open (issue 22, finding 9): the data
//! directory (0700), backups, print files of letters and emails (0600). They hold every
//! key of the hub, live provisional codes and people's postal addresses, so a default
//! umask (0644 files) must never decide their mode.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A private file or folder that could not be made: what was being done, where, why.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct PrivateFileError {
    /// What was being done.
    pub what: &'static str,
    /// The file or folder.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

/// A key file that cannot be read, made or understood.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// The file does not hold a key of the expected kind.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Reads a key file whole.
pub fn read_key(path: &Path) -> Result<Vec<u8>, PrivateFileError> {
    std::fs::read(path).map_err(failed("reading", path))
}

/// The 32 random bytes of the key file at `path`, created (owner-only, synced) on first
/// use; a file of another size is refused by name.
pub fn key32(path: &Path) -> Result<[u8; 32], KeyFileError> {
    if !path.exists() {
        let key: [u8; 32] = rand::random();
        write_key(path, &key)?;
        return Ok(key);
    }
    let bytes = read_key(path)?;
    bytes.as_slice().try_into().map_err(|_| {
        invalid(
            path,
            format!("holds {} bytes, not a 32-byte key", bytes.len()),
        )
    })
}

/// The refusal of a key file that does not hold what it should.
pub fn invalid(path: &Path, why: impl std::fmt::Display) -> KeyFileError {
    KeyFileError::Invalid {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn failed(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PrivateFileError {
    let path = path.display().to_string();
    move |source| PrivateFileError { what, path, source }
}

/// Mode of the hub's folders.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the hub's files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents as 0700; an existing `dir` is tightened to 0700.
pub fn create_dir(dir: &Path) -> Result<(), PrivateFileError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(failed("creating", dir))?;
    let mode = std::fs::metadata(dir)
        .map_err(failed("reading the mode of", dir))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(failed("restricting to its owner", dir))?;
    }
    Ok(())
}

/// Creates (or truncates) a file readable and writable by its owner only.
pub fn create(path: &Path) -> Result<File, PrivateFileError> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(failed("creating", path))?;
    // A file that existed keeps its mode through `open`: set it.
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(failed("restricting to its owner", path))?;
    Ok(f)
}

/// Creates a new file readable and writable by its owner only; refuses to overwrite.
pub fn create_new(path: &Path) -> Result<File, PrivateFileError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(failed("creating", path))
}

/// Writes a whole file, owner-only.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), PrivateFileError> {
    use std::io::Write;
    create(path)?
        .write_all(bytes)
        .map_err(failed("writing", path))
}

/// Writes a new key file, owner-only, and syncs it; refuses to overwrite one.
pub fn write_key(path: &Path, bytes: &[u8]) -> Result<(), PrivateFileError> {
    use std::io::Write;
    let mut f = create_new(path)?;
    f.write_all(bytes).map_err(failed("writing", path))?;
    f.sync_all().map_err(failed("syncing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders_are_the_owners_only_even_under_a_loose_umask() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        create_dir(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        let file = data.join("f");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Control: the file as the default path left it is readable by others.
        assert_eq!(mode(&file), 0o644);
        write(&file, b"y").unwrap();
        assert_eq!(mode(&file), 0o600);
        let new = data.join("g");
        create_new(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        assert!(create_new(&new).is_err(), "create_new never overwrites");
    }
}
