//! Devices, spaces and recovery commands (F12.4): pairing, listing and revoking devices, recovery kits, raw files.

use clap::Subcommand;
use mes_protocol::ids::{BlobId, DeviceId};
use mes_protocol::wire::api::ApiCall;
use std::path::PathBuf;

use super::*;

#[derive(Subcommand)]
pub enum SpacesCmd {
    /// List spaces.
    List,
    /// Create a space.
    Create { label: String },
}

impl SpacesCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            SpacesCmd::List => ApiCall::ListSpaces,
            SpacesCmd::Create { label } => ApiCall::CreateSpace { label },
        })
    }
}

#[derive(Subcommand)]
pub enum PairCmd {
    /// Show a code to type on the new device.
    Start,
    /// Join the person whose device shows the code (on a fresh daemon); the code is asked
    /// at a prompt, or read from --code-fd (on the command line it shows in `ps`).
    Join {
        /// The code (visible to other users of the machine: prefer the prompt).
        code: Option<String>,
        /// File descriptor to read the code from.
        #[arg(long, conflicts_with = "code")]
        code_fd: Option<u32>,
        #[arg(long, default_value = "device")]
        name: String,
    },
}

impl PairCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            PairCmd::Start => ApiCall::PairStart,
            PairCmd::Join {
                code,
                code_fd,
                name,
            } => ApiCall::PairJoin {
                code: code_from(code, code_fd, "Code d'appairage / pairing code")?,
                device_name: name,
            },
        })
    }
}

#[derive(Subcommand)]
pub enum DevicesCmd {
    /// List devices.
    List,
    /// Revoke a device (starts a new key epoch).
    Revoke { device: DeviceId },
}

impl DevicesCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            DevicesCmd::List => ApiCall::ListDevices,
            DevicesCmd::Revoke { device } => ApiCall::RevokeDevice { device },
        })
    }
}

#[derive(Subcommand)]
pub enum RecoveryCmd {
    /// Write a recovery kit: locked by a passphrase read from a file descriptor, or split
    /// among trusted persons (--split 2/3 writes KIT.share-1.txt ...).
    Kit {
        out: PathBuf,
        #[arg(long, conflicts_with = "split")]
        passphrase_fd: Option<u32>,
        #[arg(long, value_parser = parse_split)]
        split: Option<(u8, u8)>,
    },
    /// Restore this fresh daemon from a kit, with its passphrase or enough shares.
    Restore {
        kit: PathBuf,
        #[arg(long, conflicts_with = "share")]
        passphrase_fd: Option<u32>,
        #[arg(long)]
        share: Vec<PathBuf>,
    },
}

impl RecoveryCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            RecoveryCmd::Kit {
                out,
                passphrase_fd,
                split,
            } => ApiCall::RecoveryKit {
                out: abs(out)?,
                passphrase: passphrase(passphrase_fd)?,
                split,
            },
            RecoveryCmd::Restore {
                kit,
                passphrase_fd,
                share,
            } => ApiCall::Restore {
                kit: abs(kit)?,
                passphrase: passphrase(passphrase_fd)?,
                shares: share
                    .iter()
                    .map(std::fs::read_to_string)
                    .collect::<Result<_, _>>()?,
            },
        })
    }
}

pub fn parse_split(s: &str) -> Result<(u8, u8), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: write K/N, e.g. 2/3"))?;
    let k: u8 = k.parse().map_err(|_| format!("{k:?} is not a number"))?;
    let n: u8 = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
    Ok((k, n))
}

pub fn passphrase(fd: Option<u32>) -> CliResult<Option<String>> {
    Ok(fd
        .map(|fd| mes_client::secret_from_fd(fd).map(|p| p.to_string()))
        .transpose()?)
}

#[derive(Subcommand)]
pub enum BlobCmd {
    /// Encrypt and upload a file.
    Put { path: PathBuf },
    /// Fetch and decrypt a file.
    Get { blob: BlobId, out: PathBuf },
}

impl BlobCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            BlobCmd::Put { path } => ApiCall::BlobPut { path: abs(path)? },
            BlobCmd::Get { blob, out } => ApiCall::BlobGet {
                blob,
                out: abs(out)?,
            },
        })
    }
}
