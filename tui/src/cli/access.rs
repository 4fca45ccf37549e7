//! Consent and access commands (F7, F8, F9): consents, blocks, delegation, minors, services, the access history, research.

use clap::Subcommand;
use mes_protocol::ids::PrincipalId;
use mes_protocol::wire::api::ApiCall;
use std::path::PathBuf;

use super::*;

#[derive(Subcommand)]
pub enum ConsentCmd {
    /// Let a professional of the directory read what the habilitation matrix allows
    /// for their profession.
    Give {
        /// RPPS number.
        rpps: String,
        /// Keep a volume (documents/mental, profile) or a group (mental) from them.
        #[arg(long = "except")]
        except: Vec<String>,
    },
    /// Withdraw every right of a principal (starts a new key epoch on what they read).
    Withdraw { principal: PrincipalId },
    /// Who holds which rights.
    List,
    /// Block a professional or an establishment (only you can).
    Block {
        #[arg(long)]
        rpps: Option<String>,
        #[arg(long)]
        structure: Option<String>,
    },
    /// Lift a block.
    Unblock {
        #[arg(long)]
        rpps: Option<String>,
        #[arg(long)]
        structure: Option<String>,
    },
    /// Give a relative, trusted person, caregiver or guardian access (F9.2): on some
    /// volumes or the whole space, until a time if given; revoke with `withdraw`.
    Delegate {
        principal: PrincipalId,
        #[arg(long, value_enum, default_value = "read")]
        role: DelegateRole,
        /// A volume label (profile, emergency, documents/care…); none: the whole space.
        #[arg(long = "volume")]
        volumes: Vec<String>,
        /// RFC 3339 end, e.g. 2027-06-30T00:00:00+02:00.
        #[arg(long)]
        until: Option<String>,
    },
    /// A guardian within a protection measure (F9.3): manages the space beside you until
    /// the measure ends, then loses access.
    Guardian {
        principal: PrincipalId,
        /// RFC 3339 end of the measure, e.g. 2031-06-30T00:00:00+02:00.
        #[arg(long)]
        until: String,
    },
    /// Consent once to an establishment's care team (each member logged by name).
    Team {
        structure: String,
        #[arg(long = "except")]
        except: Vec<String>,
    },
    /// What you blocked.
    Blocks,
    /// Consent requests professionals sent you.
    Requests,
    /// Designate your médecin traitant (reads hidden documents under law-2022).
    Attending {
        rpps: String,
        /// law-2022 or citizen-committee (the hub's when absent).
        #[arg(long)]
        policy: Option<String>,
        /// Keep a volume or group from them (citizen-committee only; you will be warned).
        #[arg(long = "except")]
        except: Vec<String>,
    },
}

impl ConsentCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            ConsentCmd::Give { rpps, except } => ApiCall::Consent { rpps, except },
            ConsentCmd::Withdraw { principal } => ApiCall::Withdraw { principal },
            ConsentCmd::List => ApiCall::Consents,
            ConsentCmd::Block { rpps, structure } => ApiCall::Block { rpps, structure },
            ConsentCmd::Unblock { rpps, structure } => ApiCall::Unblock { rpps, structure },
            ConsentCmd::Blocks => ApiCall::Blocks,
            ConsentCmd::Delegate {
                principal,
                role,
                volumes,
                until,
            } => ApiCall::Delegate {
                principal,
                role: match role {
                    DelegateRole::Read => mes_protocol::access::membership::Role::Read,
                    DelegateRole::Write => mes_protocol::access::membership::Role::Write,
                    DelegateRole::Admin => mes_protocol::access::membership::Role::Admin,
                },
                volumes,
                until,
            },
            ConsentCmd::Guardian { principal, until } => ApiCall::Delegate {
                principal,
                role: mes_protocol::access::membership::Role::Admin,
                volumes: Vec::new(),
                until: Some(until),
            },
            ConsentCmd::Team { structure, except } => ApiCall::ConsentTeam { structure, except },
            ConsentCmd::Requests => ApiCall::ConsentRequests,
            ConsentCmd::Attending {
                rpps,
                policy,
                except,
            } => ApiCall::Attending {
                rpps,
                policy,
                except,
            },
        })
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DelegateRole {
    /// Read.
    Read,
    /// Read and write.
    Write,
    /// Manage, as a guardian.
    Admin,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    /// SAMU-Centre 15.
    #[value(name = "centre-15")]
    Centre15,
    /// Bris de glace.
    BreakGlass,
}

impl From<Mode> for mes_protocol::access::escrow::EscrowMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Centre15 => mes_protocol::access::escrow::EscrowMode::Centre15,
            Mode::BreakGlass => mes_protocol::access::escrow::EscrowMode::BreakGlass,
        }
    }
}

#[derive(Subcommand)]
pub enum MinorCmd {
    /// Give another legal representative (a second parent, a step-parent the parents
    /// chose) the management of the child's space.
    AddParent { principal: PrincipalId },
    /// Hand the child's space over to the child (from the handover age): they own it,
    /// you keep managing what they do not keep private.
    Handover {
        /// The child's principal (`mes whoami` on their device).
        #[arg(long)]
        to: PrincipalId,
        /// The child's recipient (`mes whoami` on their device).
        #[arg(long)]
        recipient: String,
    },
}

impl MinorCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            MinorCmd::AddParent { principal } => ApiCall::Delegate {
                principal,
                role: mes_protocol::access::membership::Role::Admin,
                volumes: Vec::new(),
                until: None,
            },
            MinorCmd::Handover { to, recipient } => ApiCall::HandOver { to, recipient },
        })
    }
}

#[derive(Subcommand)]
pub enum ServicesCmd {
    /// Every approved service: criteria, eco-score, hosting, suspension, what you allow.
    List,
    /// Allows a service to exchange data with the space, e.g.
    /// `mes services allow tensio-suivi --data measurements`; without --data, all it
    /// was approved for.
    Allow {
        /// The service's id.
        service: String,
        /// Data items among those it was approved for (comma-separated).
        #[arg(long, value_delimiter = ',')]
        data: Vec<String>,
    },
    /// Revokes everything a service was allowed.
    Revoke {
        /// The service's id.
        service: String,
    },
}

impl ServicesCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            ServicesCmd::List => ApiCall::Catalogue,
            ServicesCmd::Allow { service, data } => ApiCall::AllowService { service, data },
            ServicesCmd::Revoke { service } => ApiCall::RevokeService { service },
        })
    }
}

#[derive(Subcommand)]
pub enum AccessCmd {
    /// The verified access history, with its alarm if the relay's history failed a check.
    History,
    /// Flag an entry as suspicious.
    Flag { seq: u64 },
}

impl AccessCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            AccessCmd::History => ApiCall::AccessHistory,
            AccessCmd::Flag { seq } => ApiCall::FlagAccess { seq },
        })
    }
}

#[derive(Subcommand)]
pub enum ResearchCmd {
    /// Share anonymised data for research.
    OptIn,
    /// Stop sharing (a later opt-in gets an unlinkable pseudonym).
    OptOut,
    /// Write research.json into DIR (opted in only).
    Export { dir: PathBuf },
}

impl ResearchCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            ResearchCmd::OptIn => ApiCall::Research { share: true },
            ResearchCmd::OptOut => ApiCall::Research { share: false },
            ResearchCmd::Export { dir } => ApiCall::ResearchExport { out: abs(dir)? },
        })
    }
}
