//! Enrolment commands (F1): activation, opposition, codes, closing and reopening, on a provisional code read without showing it.

use clap::Subcommand;

use super::*;

/// The NIR and carte Vitale serial, as on the card.
#[derive(clap::Args)]
pub struct Holder {
    /// NIR (with or without its key; spaces allowed).
    #[arg(long)]
    nir: String,
    /// Carte Vitale serial.
    #[arg(long)]
    serial: String,
}

impl Holder {
    pub fn card(self) -> mes_protocol::enrolment::CardHolder {
        mes_protocol::enrolment::CardHolder {
            nir: self.nir,
            vitale_serial: self.serial,
        }
    }
}

#[derive(Subcommand)]
pub enum EnrolCmd {
    /// The profiles enrolled from this device (with --profile) and their last status:
    /// "En attente de décision" until someone activates or opposes.
    Profiles,
    /// Activate: the space given with --space (or the only one) becomes the person's;
    /// the password is read from a file descriptor.
    Activate {
        #[command(flatten)]
        holder: Holder,
        #[command(flatten)]
        code: CodeArg,
        /// Identifier to choose (8 characters or more, not an email).
        #[arg(long)]
        identifier: String,
        /// File descriptor to read the password from (8+ characters, upper, lower,
        /// digit, special).
        #[arg(long)]
        password_fd: u32,
        /// Contact email to keep (empty: none).
        #[arg(long, default_value = "")]
        email: String,
    },
    /// Oppose the automatic creation (you may still activate later).
    Oppose {
        #[command(flatten)]
        holder: Holder,
        #[command(flatten)]
        code: CodeArg,
    },
    /// Ask for a new code, sent to the email on file (and, for someone with a hub
    /// account resetting their password, to the address on file).
    Regenerate {
        #[command(flatten)]
        holder: Holder,
    },
    /// Where the enrolment stands.
    Status {
        #[command(flatten)]
        holder: Holder,
    },
    /// Turn the reminders off (or back on with --on).
    Reminders {
        #[command(flatten)]
        holder: Holder,
        #[command(flatten)]
        code: CodeArg,
        /// Turn them back on.
        #[arg(long)]
        on: bool,
    },
    /// Close the space with the hub account (export it first: `mes export`).
    Close {
        /// Hub identifier.
        #[arg(long)]
        identifier: String,
        /// File descriptor to read the password from.
        #[arg(long)]
        password_fd: u32,
        /// Delete within three months instead of archiving for ten years.
        #[arg(long)]
        express: bool,
    },
    /// Reopen a closed space: what is archived is restored.
    Reopen {
        /// Hub identifier.
        #[arg(long)]
        identifier: String,
        /// File descriptor to read the password from.
        #[arg(long)]
        password_fd: u32,
    },
    /// Set a new hub password with a code sent to the address on file (ask for it with
    /// `mes enrol regenerate`; by letter when no email is known).
    ResetPassword {
        #[command(flatten)]
        holder: Holder,
        #[command(flatten)]
        code: CodeArg,
        /// File descriptor to read the new password from.
        #[arg(long)]
        password_fd: u32,
    },
    /// Set a new hub password from this device, which holds the person's keys (paired,
    /// or restored from a recovery kit): for the account of the space given with --space
    /// (or the only one).
    ResetPasswordWithKeys {
        /// Hub identifier.
        #[arg(long)]
        identifier: String,
        /// File descriptor to read the new password from.
        #[arg(long)]
        password_fd: u32,
    },
}

/// A provisional code (issue 22, finding 10): asked at a prompt, or read from a file
/// descriptor as passwords are, so that it never shows in the process list; `--code`
/// remains for scripts that accept that.
#[derive(clap::Args)]
pub struct CodeArg {
    /// The provisional code (visible to other users in `ps`: prefer the prompt or
    /// --code-fd).
    #[arg(long)]
    code: Option<String>,
    /// File descriptor to read the provisional code from.
    #[arg(long, conflicts_with = "code")]
    code_fd: Option<u32>,
}

impl CodeArg {
    pub fn read(self) -> CliResult<String> {
        code_from(
            self.code,
            self.code_fd,
            "Code provisoire / provisional code",
        )
    }
}

/// A code from the command line, a file descriptor, or a prompt on the terminal.
pub fn code_from(given: Option<String>, fd: Option<u32>, what: &str) -> CliResult<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if let Some(c) = given {
        return Ok(c);
    }
    if let Some(fd) = fd {
        return passphrase(Some(fd))?
            .ok_or_else(|| CliError::Usage(format!("no code on descriptor {fd}")));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{what}: type it at the prompt on a terminal, or give it with --code-fd N"
        )));
    }
    eprint!("{what} : ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

pub fn password(fd: u32) -> CliResult<String> {
    passphrase(Some(fd))?.ok_or_else(|| CliError::Usage(format!("no password on descriptor {fd}")))
}
