//! Where the three binaries find their files without being told (issue 27, item 5), by
//! the XDG base directory conventions, so `mesd` and plain `mes` agree:
//!
//! | what | first of |
//! |---|---|
//! | daemon data | `$MES_DATA`, `$XDG_DATA_HOME/mes`, `~/.local/share/mes` |
//! | daemon socket | `$MES_SOCKET`, `$MES_DATA/mesd.sock`, `$XDG_RUNTIME_DIR/mes/mesd.sock`, the data directory's `mesd.sock` |
//! | daemon identity | `$XDG_CONFIG_HOME/mes/identity.age`, `~/.config/mes/identity.age` |
//! | relay data | `$MES_RELAY_DATA`, `$STATE_DIRECTORY` (systemd), `$XDG_DATA_HOME/mes-relay`, `~/.local/share/mes-relay` |
//! | relay configuration | `$MES_RELAY_CONFIG`, `$CONFIGURATION_DIRECTORY/mes-relay.toml` (systemd), `$XDG_CONFIG_HOME/mes-relay/mes-relay.toml`, when the file exists |
//!
//! The variables are read by clap where a flag has one; this module gives the fallbacks.

use std::path::PathBuf;

/// A variable's value, if set and not empty (the XDG rule: empty means unset).
fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `~`, or the current directory when `HOME` is unset (a service without a home).
fn home() -> PathBuf {
    var("HOME").unwrap_or_else(|| PathBuf::from("."))
}

/// `$XDG_DATA_HOME`, else `~/.local/share`.
fn data_home() -> PathBuf {
    var("XDG_DATA_HOME").unwrap_or_else(|| home().join(".local/share"))
}

/// `$XDG_CONFIG_HOME`, else `~/.config`.
pub fn config_home() -> PathBuf {
    var("XDG_CONFIG_HOME").unwrap_or_else(|| home().join(".config"))
}

/// The daemon's data directory when `--data` and `MES_DATA` are not given.
pub fn daemon_data() -> PathBuf {
    data_home().join("mes")
}

/// The daemon's identity file when neither `--identity` nor `--passphrase-fd` is given.
pub fn daemon_identity() -> PathBuf {
    config_home().join("mes/identity.age")
}

/// The socket `mesd` listens on: beside an explicit data directory (`explicit_data`,
/// from `--data` or `MES_DATA`), else in the runtime directory, else beside the default
/// data directory.
pub fn daemon_socket(explicit_data: Option<&std::path::Path>) -> PathBuf {
    if let Some(d) = explicit_data {
        return d.join("mesd.sock");
    }
    match var("XDG_RUNTIME_DIR") {
        Some(run) => run.join("mes/mesd.sock"),
        None => daemon_data().join("mesd.sock"),
    }
}

/// The socket `mes` talks to when `--socket` and `MES_SOCKET` are not given: the one
/// `mesd` chose under the same environment.
pub fn client_socket() -> PathBuf {
    daemon_socket(var("MES_DATA").as_deref())
}

/// The relay's data directory when `--data` and `MES_RELAY_DATA` are not given.
pub fn relay_data() -> PathBuf {
    var("STATE_DIRECTORY")
        // systemd may list several, separated by ':'; the first is ours.
        .and_then(|s| {
            s.to_str()
                .and_then(|s| s.split(':').next())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| data_home().join("mes-relay"))
}

/// The relay's configuration file when `--config` is not given: `MES_RELAY_CONFIG`, else
/// the conventional place if a file is there.
pub fn relay_config() -> Option<PathBuf> {
    if let Some(named) = var("MES_RELAY_CONFIG") {
        return Some(named);
    }
    let dir = var("CONFIGURATION_DIRECTORY")
        .and_then(|s| {
            s.to_str()
                .and_then(|s| s.split(':').next())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| config_home().join("mes-relay"));
    Some(dir.join("mes-relay.toml")).filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn an_explicit_data_directory_keeps_its_socket() {
        assert_eq!(
            daemon_socket(Some(Path::new("/d"))),
            PathBuf::from("/d/mesd.sock")
        );
    }
}
