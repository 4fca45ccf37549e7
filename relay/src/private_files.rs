//! Files and folders only the hub's own user may open (issue 22, finding 9): the data
//! directory (0700), backups, print files of letters and emails (0600). They hold every
//! key of the hub, live provisional codes and people's postal addresses, so a default
//! umask (0644 files) must never decide their mode.

use anyhow::Context;
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the hub's folders.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the hub's files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents as 0700; an existing `dir` is tightened to 0700.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .with_context(|| format!("restricting {} to its owner", dir.display()))?;
    }
    Ok(())
}

/// Creates (or truncates) a file readable and writable by its owner only.
pub fn create(path: &Path) -> anyhow::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // A file that existed keeps its mode through `open`: set it.
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Creates a new file readable and writable by its owner only; refuses to overwrite.
pub fn create_new(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Writes a whole file, owner-only.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    create(path)?
        .write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
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
