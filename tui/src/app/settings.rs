//! The TUI's own settings (Settings screen): language, theme, linear mode, notifications,
//! and whether the first-run tutorial was seen. Stored as TOML in
//! `$MES_TUI_CONFIG`, else `$XDG_CONFIG_HOME/mes/tui.toml`, else `~/.config/mes/tui.toml`.
//! No file means a first run: the language comes from the locale and the tutorial shows.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::i18n::Lang;
use super::theme::ThemeName;

/// Settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Interface language.
    pub lang: Lang,
    /// Theme.
    pub theme: ThemeName,
    /// Linear mode for screen readers: no box drawing, one item per line.
    pub linear: bool,
    /// Show notifications (new messages, reminders due) on Home and in the status bar.
    pub notifications: bool,
    /// The first-run tutorial was seen.
    pub tutorial_done: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lang: Lang::default(),
            theme: ThemeName::default(),
            linear: false,
            notifications: true,
            tutorial_done: false,
        }
    }
}

/// Where the settings live.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MES_TUI_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("mes/tui.toml"))
}

/// Settings that do not load or save: the file and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct SettingsError {
    /// The settings file.
    pub path: String,
    /// Why.
    pub why: String,
}

impl Settings {
    /// The settings at `path`; a first run (no file) takes the locale's language. A file
    /// that does not parse is an error naming it.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let bad = |why: String| SettingsError {
            path: path.display().to_string(),
            why,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| bad(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings {
                lang: Lang::from_env(),
                ..Settings::default()
            }),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// Writes them (the directory is created).
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let bad = |why: String| SettingsError {
            path: path.display().to_string(),
            why,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        }
        let tmp = path.with_extension("toml.tmp");
        let text = toml::to_string(self).map_err(|e| bad(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| bad(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| bad(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mes/tui.toml");
        let s = Settings {
            lang: Lang::En,
            theme: ThemeName::ColourBlind,
            linear: true,
            notifications: false,
            tutorial_done: true,
        };
        s.save(&p).unwrap();
        assert_eq!(Settings::load(&p).unwrap(), s);
        std::fs::write(&p, "lang = \"klingon\"").unwrap();
        let e = Settings::load(&p).unwrap_err().to_string();
        assert!(e.contains("tui.toml"), "{e}");
    }
}
