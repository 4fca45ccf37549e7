//! The hub's emergency escrow (F7.5): one age identity per mode (`escrow-centre-15.key`,
//! `escrow-break-glass.key`, mode 0600, in the data directory). Owners' daemons wrap the
//! keys of emergency volumes to them unless the person refused the mode; the relay
//! unwraps them only to re-wrap for a listed professional's release.

use crate::private_files::{invalid, read_key, write_key, KeyFileError};
use mes_protocol::access::escrow::EscrowMode;
use mes_protocol::crypto::keys::{AgeRecipient, AgeSecret};
use std::path::Path;

/// The two escrow identities.
pub struct Escrow {
    centre15: AgeSecret,
    break_glass: AgeSecret,
}

impl Escrow {
    /// Fresh identities (the simulator, offline tools).
    pub fn generate() -> Self {
        Escrow {
            centre15: AgeSecret::generate(),
            break_glass: AgeSecret::generate(),
        }
    }

    /// Loads them from `dir`, creating them on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyFileError> {
        let one = |name: &str| -> Result<AgeSecret, KeyFileError> {
            let path = dir.join(name);
            if path.exists() {
                let bytes = read_key(&path)?;
                let text = String::from_utf8(bytes).map_err(|_| invalid(&path, "not UTF-8"))?;
                return AgeSecret::parse(&text).map_err(|e| invalid(&path, e));
            }
            let s = AgeSecret::generate();
            write_key(&path, s.to_secret_string().as_bytes())?;
            Ok(s)
        };
        Ok(Escrow {
            centre15: one("escrow-centre-15.key")?,
            break_glass: one("escrow-break-glass.key")?,
        })
    }

    /// The identity of a mode.
    pub fn secret(&self, mode: EscrowMode) -> &AgeSecret {
        match mode {
            EscrowMode::Centre15 => &self.centre15,
            EscrowMode::BreakGlass => &self.break_glass,
        }
    }

    /// The recipient of a mode.
    pub fn recipient(&self, mode: EscrowMode) -> AgeRecipient {
        self.secret(mode).recipient()
    }
}
