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

/// One message made ready by a delivery worker.
enum Rendered {
    /// An email written into the maildir's `tmp/`, to move into `new/`.
    Email { tmp: PathBuf, new: PathBuf },
    /// An email to send over SMTP.
    Smtp {
        to: String,
        message: lettre::Message,
    },
    /// A letter to append to the département's print file.
    Letter {
        departement: String,
        seq: String,
        text: String,
    },
}

fn render_one(
    m: &Outgoing,
    seq: &str,
    host: u32,
    code_key: &[u8; 32],
    templates: &Templates,
    d: &Delivery,
) -> anyhow::Result<Rendered> {
    let body = templates.render(m, m.code(code_key).as_deref(), &d.hub)?;
    Ok(match (&m.email, &d.email) {
        (Some(to), EmailSink::Maildir(dir)) => {
            let bytes = email_of(m, to, body, &d.hub)?.formatted();
            let name = format!(
                "{}.M{seq}P{host}.mes-relay",
                mes_protocol::time::UnixMillis::now().0 / 1000
            );
            let tmp = dir.join("tmp").join(&name);
            std::fs::write(&tmp, bytes)?;
            Rendered::Email {
                tmp,
                new: dir.join("new").join(name),
            }
        }
        (Some(to), EmailSink::Smtp { .. }) => Rendered::Smtp {
            to: to.clone(),
            message: email_of(m, to, body, &d.hub)?,
        },
        (None, _) => Rendered::Letter {
            departement: m.departement.clone(),
            seq: seq.to_string(),
            text: format!(
                "{}\n{}\n\n{}\x0c\n",
                m.addressee,
                m.postal_address.as_deref().unwrap_or_default(),
                body
            ),
        },
    })
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
    while report.emails + report.letters < limit {
        let want = crate::enrolment_service::BATCH.min(limit - report.emails - report.letters);
        // Whole chunks, the last one cut at `want`: what is left of it is written back.
        // File names carry a number never used before (not the chunk's: a chunk cut
        // short is delivered again under the same key).
        let run = t.next_seq()?;
        let mut batch = Vec::with_capacity(want);
        let mut done = Vec::new();
        for (chunk, messages) in t.outbox(want)? {
            let take = messages.len().min(want - batch.len());
            let mut messages = messages.into_iter();
            batch.extend(messages.by_ref().take(take));
            done.push(Op::OutboxChunk(chunk, Some(messages.collect())));
        }
        if batch.is_empty() {
            break;
        }
        // Rendering and writing the emails' files run on every core: each worker takes
        // a slice of the batch and returns what stays to do in order (letters, SMTP).
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slice = batch.len().div_ceil(workers).max(1);
        let rendered: Vec<Vec<Rendered>> = std::thread::scope(|scope| {
            let jobs: Vec<_> = batch
                .chunks(slice)
                .enumerate()
                .map(|(w, part)| {
                    scope.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(j, m)| {
                                let seq = format!("{run:020}_{:06}", w * slice + j);
                                render_one(m, &seq, host, code_key, templates, d)
                            })
                            .collect::<anyhow::Result<Vec<Rendered>>>()
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| {
                    j.join()
                        .map_err(|_| anyhow::anyhow!("a delivery worker panicked"))?
                })
                .collect::<anyhow::Result<_>>()
        })?;
        let mut moves = Vec::new();
        let mut prints: std::collections::BTreeMap<String, std::io::BufWriter<std::fs::File>> =
            Default::default();
        for r in rendered.into_iter().flatten() {
            match r {
                Rendered::Email { tmp, new } => {
                    moves.push((tmp, new));
                    report.emails += 1;
                }
                Rendered::Smtp { to, message } => {
                    smtp.as_ref()
                        .expect("an SMTP transport for an SMTP sink")
                        .send(&message)
                        .map_err(|e| anyhow::anyhow!("SMTP delivery to {to}: {e}"))?;
                    report.emails += 1;
                }
                Rendered::Letter {
                    departement,
                    seq,
                    text,
                } => {
                    let file = match prints.entry(departement) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let dir = d.letters.join(v.key());
                            std::fs::create_dir_all(&dir)?;
                            let path = dir.join(format!("{seq:0>24}.txt"));
                            report.print_files += 1;
                            v.insert(std::io::BufWriter::new(std::fs::File::create(path)?))
                        }
                    };
                    file.write_all(text.as_bytes())?;
                    report.letters += 1;
                }
            }
        }
        for (_, mut f) in prints {
            f.flush()?;
        }
        sync(&d.letters)?;
        if let EmailSink::Maildir(dir) = &d.email {
            let slice = moves.len().div_ceil(workers).max(1);
            std::thread::scope(|scope| {
                let jobs: Vec<_> = moves
                    .chunks(slice)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .try_for_each(|(from, to)| std::fs::rename(from, to))
                        })
                    })
                    .collect();
                jobs.into_iter().try_for_each(|j| {
                    j.join()
                        .map_err(|_| anyhow::anyhow!("a delivery worker panicked"))?
                        .map_err(anyhow::Error::from)
                })
            })?;
            sync(dir)?;
        }
        t.apply(done, true)?;
        progress(batch.len());
    }
    Ok(report)
}
