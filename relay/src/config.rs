//! The hub's configuration file (TOML; `docs/mes-relay.example.toml`): where it listens,
//! its enrolment deadlines, the campaign's pace and where the outbox delivers. Every
//! field has a default; an unknown field is refused by name.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::enrolment::Policy;

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Serving.
    pub serve: Serve,
    /// Enrolment deadlines (F1).
    pub enrolment: Policy,
    /// The campaign.
    pub campaign: Campaign,
    /// Message delivery.
    pub outbox: OutboxConfig,
    /// The shared database of several instances (docs/operator-guide.md, "Several nodes").
    pub postgres: PostgresConfig,
}

/// Where the PostgreSQL database is (issue 27, item 1). The URL, which may hold a
/// password, comes from here, from a file, or from `MES_RELAY_POSTGRES`; `--postgres` on
/// the command line is for tests and one-off commands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgres://user:password@host/db?sslmode=require`.
    pub url: Option<String>,
    /// A file holding the URL (e.g. a systemd credential), read at start.
    pub url_file: Option<PathBuf>,
    /// PEM certificates the server's must chain to (default: the system's roots).
    pub ca_file: Option<PathBuf>,
}

impl PostgresConfig {
    /// The URL: `url`, else the first line of `url_file`; `None` for the embedded store.
    pub fn resolved_url(&self) -> Result<Option<String>, ConfigError> {
        if let Some(u) = &self.url {
            return Ok(Some(u.clone()));
        }
        let Some(file) = &self.url_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError(format!("postgres.url_file {}: {e}", file.display())))?;
        let url = text.lines().next().unwrap_or_default().trim().to_string();
        if url.is_empty() {
            return Err(ConfigError(format!(
                "postgres.url_file {}: empty",
                file.display()
            )));
        }
        Ok(Some(url))
    }
}

/// Serving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Serve {
    /// UDP address for devices.
    pub listen: SocketAddr,
    /// How often the serving relay runs the clock's sweep, in minutes (0: never).
    pub sweep_every_minutes: u64,
    /// Local HTTP address for `/health` and `/metrics` (Prometheus); none when absent.
    pub metrics: Option<SocketAddr>,
    /// Connections one network address may hold at once (issue 22 finding 5); raise it
    /// behind a carrier-grade NAT.
    pub max_connections_per_address: usize,
    /// Bytes per second one connection may send, sustained (0: unlimited).
    pub bytes_per_second: u64,
    /// Bytes one connection may send at once after a quiet while.
    pub burst_bytes: u64,
    /// New connections one address may open per second, sustained (0: unlimited).
    pub new_connections_per_second: u64,
    /// New connections one address may open at once.
    pub new_connections_burst: u64,
    /// Bytes of files one space may hold, committed or being uploaded (issue 22
    /// finding 6).
    pub file_bytes_per_space: u64,
}

impl Serve {
    /// The arrival rate of new connections per address, none when unlimited.
    pub fn arrival_rate(&self) -> Option<crate::server::read_rate::Rate> {
        (self.new_connections_per_second > 0).then_some(crate::server::read_rate::Rate {
            per_second: self.new_connections_per_second,
            burst: self.new_connections_burst.max(1),
        })
    }

    /// The rate of one connection, none when unlimited.
    pub fn read_rate(&self) -> Option<crate::server::read_rate::Rate> {
        (self.bytes_per_second > 0).then_some(crate::server::read_rate::Rate {
            per_second: self.bytes_per_second,
            burst: self
                .burst_bytes
                .max(mes_protocol::wire::codec::MAX_WIRE_FRAME as u64),
        })
    }
}

impl Default for Serve {
    fn default() -> Self {
        Serve {
            listen: "127.0.0.1:4433".parse().expect("valid address"),
            sweep_every_minutes: 60,
            metrics: None,
            max_connections_per_address: crate::defaults::MAX_CONNECTIONS_PER_ADDRESS,
            bytes_per_second: crate::defaults::READ_RATE.per_second,
            burst_bytes: crate::defaults::READ_RATE.burst,
            new_connections_per_second: crate::defaults::ARRIVAL_RATE.per_second,
            new_connections_burst: crate::defaults::ARRIVAL_RATE.burst,
            file_bytes_per_space: crate::defaults::FILE_BYTES_PER_SPACE,
        }
    }
}

/// The campaign's pace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Campaign {
    /// Messages per second at most (none: as fast as the store takes them).
    pub rate_per_second: Option<u32>,
}

/// Where messages go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Directory of the maildir and the print files (default: `outbox` in the data
    /// directory).
    pub dir: Option<PathBuf>,
    /// SMTP server `host:port` for emails instead of the maildir.
    pub smtp: Option<String>,
    /// How the SMTP connection is protected: `starttls` (the default: the server must
    /// offer STARTTLS, its certificate is checked), `tls` (TLS from the first byte, port
    /// 465), or `none` (plain text: only for a server on the same host).
    pub smtp_tls: crate::outbox::SmtpTls,
    /// A PEM file of the CA that signed the SMTP server's certificate, besides the
    /// system's.
    pub smtp_ca: Option<PathBuf>,
    /// The SMTP account's user name (AUTH PLAIN or LOGIN, over TLS only).
    pub smtp_user: Option<String>,
    /// A file holding the SMTP account's password (never the password itself here).
    pub smtp_password_file: Option<PathBuf>,
    /// Directory of templates replacing the embedded ones (same file names).
    pub templates: Option<PathBuf>,
    /// Where to activate, as messages say it.
    pub site: Option<String>,
    /// Signature of messages.
    pub signature: Option<String>,
    /// Sender of emails.
    pub from: Option<String>,
}

/// A configuration that cannot be used: the file or the setting, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl HubConfig {
    /// Reads a file, or the defaults without one; a bad file is named with its error.
    /// Without a path, the conventional file if there is one (`mes_client::paths`),
    /// else the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let found = path
            .map(Path::to_path_buf)
            .or_else(mes_client::paths::relay_config);
        let Some(path) = found.as_deref() else {
            return Ok(HubConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// The delivery settings for a data directory.
    pub fn delivery(&self, data: &Path) -> Result<crate::outbox::Delivery, ConfigError> {
        let dir = self
            .outbox
            .dir
            .clone()
            .unwrap_or_else(|| data.join("outbox"));
        let mut d = crate::outbox::Delivery::under(&dir);
        if let Some(smtp) = &self.outbox.smtp {
            let (host, port) = smtp
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                .ok_or_else(|| ConfigError(format!("outbox.smtp {smtp:?} is not host:port")))?;
            let credentials = match (&self.outbox.smtp_user, &self.outbox.smtp_password_file) {
                (Some(user), Some(file)) => {
                    let password = std::fs::read_to_string(file).map_err(|e| {
                        ConfigError(format!("outbox.smtp_password_file {}: {e}", file.display()))
                    })?;
                    Some((
                        user.clone(),
                        password.trim_end_matches(['\r', '\n']).to_string(),
                    ))
                }
                (None, None) => None,
                _ => {
                    return Err(ConfigError(
                        "outbox.smtp_user and outbox.smtp_password_file go together".into(),
                    ))
                }
            };
            if credentials.is_some() && self.outbox.smtp_tls == crate::outbox::SmtpTls::None {
                return Err(ConfigError(
                    "outbox.smtp_user with smtp_tls = \"none\" would send the password in the clear: use starttls or tls".into(),
                ));
            }
            let ca =
                match &self.outbox.smtp_ca {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        ConfigError(format!("outbox.smtp_ca {}: {e}", path.display()))
                    })?),
                    None => None,
                };
            d.email = crate::outbox::EmailSink::Smtp(crate::outbox::SmtpServer {
                host,
                port,
                tls: self.outbox.smtp_tls,
                ca,
                credentials,
            });
        }
        if let Some(s) = &self.outbox.site {
            d.hub.site = s.clone();
        }
        if let Some(s) = &self.outbox.signature {
            d.hub.signature = s.clone();
        }
        if let Some(s) = &self.outbox.from {
            d.hub.from = s.clone();
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_the_defaults_and_a_typo_is_named() {
        let example: HubConfig =
            toml::from_str(include_str!("../../docs/mes-relay.example.toml")).unwrap();
        let mut expected = HubConfig::default();
        expected.campaign.rate_per_second = Some(2000);
        assert_eq!(example.enrolment, expected.enrolment);
        assert_eq!(example.campaign, expected.campaign);
        assert_eq!(example.serve, expected.serve);
        let e = toml::from_str::<HubConfig>("[enrolment]\nopposition_day = 42\n").unwrap_err();
        assert!(e.to_string().contains("opposition_day"), "{e}");
    }

    /// Issue 22 finding 10: SMTP is protected unless the operator says otherwise, and a
    /// password is never sent in the clear nor written in the file (control: the same
    /// account over STARTTLS is taken).
    #[test]
    fn smtp_is_protected_and_its_password_never_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        let load = |extra: &str| {
            let c: HubConfig = toml::from_str(&format!(
                "[outbox]\nsmtp = \"mail.example.fr:587\"\n{extra}"
            ))
            .unwrap();
            c.delivery(dir.path())
        };
        let account = format!("smtp_user = \"hub\"\nsmtp_password_file = {pw:?}\n");
        let plain = load(&format!("smtp_tls = \"none\"\n{account}")).unwrap_err();
        assert!(plain.to_string().contains("in the clear"), "{plain}");
        let half = load("smtp_user = \"hub\"\n").unwrap_err();
        assert!(half.to_string().contains("go together"), "{half}");
        match load(&account).unwrap().email {
            crate::outbox::EmailSink::Smtp(s) => {
                assert_eq!(s.tls, crate::outbox::SmtpTls::Starttls, "the default");
                assert_eq!(s.credentials, Some(("hub".into(), "secret".into())));
                assert!(!format!("{s:?}").contains("secret"), "kept out of logs");
            }
            other => panic!("{other:?}"),
        }
    }
}
