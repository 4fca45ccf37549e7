//! Delivers the outbox (F1.2, F1.7, F1.8): emails into a maildir (the default) or over
//! SMTP (lettre) when configured; postal letters into print files, one per département
//! and batch, letters separated by a form feed, as a mail house takes them.
//!
//! Durability: a batch's files are written, the file system is synced once (`syncfs`),
//! emails are then moved from `tmp/` into `new/` and synced again, and only then are the
//! batch's messages removed from the outbox in one durable write. A crash in between
//! delivers a batch twice, never loses one (at least once; the maildir's unique names
//! keep the copies apart).

use std::io::Write;
use std::path::{Path, PathBuf};

use lettre::message::{header::ContentType, Mailbox};
use lettre::Transport;

use crate::enrolment_store::{EnrolmentTables, Op, Outgoing};
use crate::notification::{HubIdentity, Templates};

/// Where emails go.
#[derive(Clone, Debug)]
pub enum EmailSink {
    /// A maildir (`tmp/`, `new/`, `cur/`).
    Maildir(PathBuf),
    /// An SMTP server (plain, for a relay on the same host or loopback).
    Smtp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Where the outbox delivers.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Emails.
    pub email: EmailSink,
    /// Print files of postal letters.
    pub letters: PathBuf,
    /// What messages say about the hub.
    pub hub: HubIdentity,
}

impl Delivery {
    /// The defaults under an outbox directory: `maildir/` and `letters/`.
    pub fn under(dir: &Path) -> Self {
        Delivery {
            email: EmailSink::Maildir(dir.join("maildir")),
            letters: dir.join("letters"),
            hub: HubIdentity::default(),
        }
    }
}

/// What a delivery run did.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Emails delivered.
    pub emails: usize,
    /// Letters written to print files.
    pub letters: usize,
    /// Print files written.
    pub print_files: usize,
}

fn email_of(
    m: &Outgoing,
    to: &str,
    body: String,
    hub: &HubIdentity,
) -> anyhow::Result<lettre::Message> {
    let from: Mailbox = hub
        .from
        .parse()
        .map_err(|e| anyhow::anyhow!("sender {:?}: {e}", hub.from))?;
    let to: Mailbox = format!("{} <{to}>", m.addressee.replace(['<', '>', '"'], ""))
        .parse()
        .map_err(|e| anyhow::anyhow!("recipient {to:?}: {e}"))?;
    Ok(lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(Templates::subject(m))
        .header(ContentType::TEXT_PLAIN)
        .body(body)?)
}

fn sync(dir: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&f)?;
    Ok(())
}

/// Delivers up to `limit` messages, in batches; `progress` is told of each.
pub fn deliver(
    t: &EnrolmentTables,
    code_key: &[u8; 32],
    templates: &Templates,
    d: &Delivery,
    limit: usize,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let smtp = match &d.email {
        EmailSink::Smtp { host, port } => Some(
            lettre::SmtpTransport::builder_dangerous(host.as_str())
                .port(*port)
                .build(),
        ),
        EmailSink::Maildir(m) => {
            for sub in ["tmp", "new", "cur"] {
                std::fs::create_dir_all(m.join(sub))?;
            }
            None
        }
    };
    std::fs::create_dir_all(&d.letters)?;
    let host = std::process::id();
    let mut cursor = None;
    while report.emails + report.letters < limit {
        let batch = t.outbox(
            cursor,
            crate::enrolment_service::BATCH.min(limit - report.emails - report.letters),
        )?;
        if batch.is_empty() {
            break;
        }
        cursor = batch.last().map(|(seq, _)| *seq);
        let mut moves = Vec::new();
        let mut prints: std::collections::BTreeMap<String, std::io::BufWriter<std::fs::File>> =
            Default::default();
        for (seq, m) in &batch {
            let body = templates.render(m, m.code(code_key).as_deref(), &d.hub)?;
            match (&m.email, &d.email) {
                (Some(to), EmailSink::Maildir(dir)) => {
                    let bytes = email_of(m, to, body, &d.hub)?.formatted();
                    let name = format!(
                        "{}.M{seq}P{host}.mes-relay",
                        mes_protocol::time::UnixMillis::now().0 / 1000
                    );
                    let tmp = dir.join("tmp").join(&name);
                    std::fs::write(&tmp, bytes)?;
                    moves.push((tmp, dir.join("new").join(name)));
                    report.emails += 1;
                }
                (Some(to), EmailSink::Smtp { .. }) => {
                    let message = email_of(m, to, body, &d.hub)?;
                    smtp.as_ref()
                        .expect("an SMTP transport for an SMTP sink")
                        .send(&message)
                        .map_err(|e| anyhow::anyhow!("SMTP delivery to {to}: {e}"))?;
                    report.emails += 1;
                }
                (None, _) => {
                    let file = match prints.entry(m.departement.clone()) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let dir = d.letters.join(&m.departement);
                            std::fs::create_dir_all(&dir)?;
                            let path = dir.join(format!("{seq:020}.txt"));
                            report.print_files += 1;
                            v.insert(std::io::BufWriter::new(std::fs::File::create(path)?))
                        }
                    };
                    writeln!(
                        file,
                        "{}\n{}\n\n{}\x0c",
                        m.addressee,
                        m.postal_address.as_deref().unwrap_or_default(),
                        body
                    )?;
                    report.letters += 1;
                }
            }
        }
        for (_, mut f) in prints {
            f.flush()?;
        }
        sync(&d.letters)?;
        if let EmailSink::Maildir(dir) = &d.email {
            for (from, to) in &moves {
                std::fs::rename(from, to)?;
            }
            sync(dir)?;
        }
        t.apply(
            batch
                .iter()
                .map(|(seq, _)| Op::Outbox(*seq, None))
                .collect(),
            true,
        )?;
        progress(batch.len());
    }
    Ok(report)
}
