//! Delivers the outbox (F1.2, F1.7, F1.8): emails into a maildir (the default) or over
//! SMTP (lettre) when configured; postal letters into print files, one per département
//! and batch, letters separated by a form feed, as a mail house takes them.
//!
//! Durability: a batch's files are written, the file system is synced once (`syncfs`),
//! emails are then given their names in `new/` and synced again, and only then are the
//! batch's messages removed from the outbox in one durable write. A crash in between
//! delivers a batch twice, never loses one (at least once; the maildir's unique names
//! keep the copies apart).
//!
//! An email is written as a file with no name (`O_TMPFILE` in `tmp/`), and linked into
//! `new/` once its data is on disk: one directory operation per email instead of a
//! creation in `tmp/` and a rename, and nothing left in `tmp/` by a crash. Files are
//! written on every core, but named by one thread: two threads naming files in one
//! directory spend their time waiting on its lock (docs/benchmarks.md, `campaign`).
//! Where the file system has no `O_TMPFILE`, emails go through `tmp/` and a rename.
//!
//! Over 600 lines: the three delivery channels share one queue and one retry rule, kept in one place.

pub mod notification;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use lettre::message::{header::ContentType, Mailbox};
use lettre::Transport;

use crate::enrolment::store::{EnrolmentTables, Op, Outgoing};
use crate::outbox::notification::{HubIdentity, Templates};

/// Why mail or letters could not be made or delivered; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file, a folder or a sync failed.
    #[error("outbox: {0}")]
    Io(#[from] std::io::Error),
    /// A private file could not be made.
    #[error(transparent)]
    File(#[from] crate::private_files::PrivateFileError),
    /// The enrolment tables failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The delivered messages could not be recorded.
    #[error(transparent)]
    Apply(#[from] crate::enrolment::store::ApplyError),
    /// A message could not be built.
    #[error("email: {0}")]
    Email(#[from] lettre::error::Error),
    /// The kernel refused a file operation.
    #[error("outbox: {0}")]
    Os(#[from] rustix::io::Errno),
    /// A template does not render.
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    /// A setting, an address, SMTP, or a delivery thread: the message says which.
    #[error("{0}")]
    Rule(String),
}

impl OutboxError {
    /// An error that says what failed.
    pub fn rule(why: String) -> Self {
        OutboxError::Rule(why)
    }
}

/// Where emails go.
#[derive(Clone, Debug)]
pub enum EmailSink {
    /// A maildir (`tmp/`, `new/`, `cur/`).
    Maildir(PathBuf),
    /// An SMTP server.
    Smtp(SmtpServer),
}

/// How the connection to the SMTP server is protected (issue 22 finding 10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS, required: a server that does not offer it is refused.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plain text (a server on the same host only).
    None,
}

/// An SMTP server and how to reach it.
#[derive(Clone)]
pub struct SmtpServer {
    /// Host (also the name its certificate must carry).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Protection.
    pub tls: SmtpTls,
    /// A PEM CA certificate trusted besides the system's.
    pub ca: Option<Vec<u8>>,
    /// User name and password (sent over TLS only).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("ca", &self.ca.is_some())
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl SmtpServer {
    /// The lettre transport for this server.
    pub fn transport(&self) -> Result<lettre::SmtpTransport, OutboxError> {
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let mut b = lettre::SmtpTransport::builder_dangerous(self.host.as_str()).port(self.port);
        if self.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca {
                params = params.add_root_certificate(
                    Certificate::from_pem(pem)
                        .map_err(|e| OutboxError::rule(format!("the SMTP CA certificate: {e}")))?,
                );
            }
            let params = params
                .build_rustls()
                .map_err(|e| OutboxError::rule(format!("SMTP TLS settings: {e}")))?;
            b = b.tls(match self.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let Some((user, password)) = &self.credentials {
            b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
                user.clone(),
                password.clone(),
            ));
        }
        Ok(b.build())
    }
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

/// An email. Into a maildir its text goes as 8-bit UTF-8 (the MTA that picks it up
/// speaks 8BITMIME); over SMTP lettre chooses (quoted-printable for French text).
fn email_of(
    m: &Outgoing,
    to: &str,
    (subject, body): (String, String),
    hub: &HubIdentity,
    eight_bit: bool,
) -> Result<lettre::Message, OutboxError> {
    use lettre::message::{header::ContentTransferEncoding, Body};
    let from: Mailbox = hub
        .from
        .parse()
        .map_err(|e| OutboxError::rule(format!("sender {:?}: {e}", hub.from)))?;
    let to: Mailbox = format!("{} <{to}>", m.addressee.replace(['<', '>', '"'], ""))
        .parse()
        .map_err(|e| OutboxError::rule(format!("recipient {to:?}: {e}")))?;
    Ok(lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(match eight_bit.then(|| eight_bit_body(&body)).flatten() {
            Some(encoded) => {
                Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::EightBit)
            }
            None => Body::new(body),
        })?)
}

/// The text as an 8-bit body (CRLF line ends), when it is one: no CR or NUL of its own,
/// and no line over RFC 5322's 998 characters. Paragraphs stay on one line, which
/// lettre's own choice (76 characters) would send as quoted-printable instead.
fn eight_bit_body(text: &str) -> Option<Vec<u8>> {
    let fits = !text.contains(['\r', '\0']) && text.split('\n').all(|line| line.len() <= 998);
    fits.then(|| text.replace('\n', "\r\n").into_bytes())
}

fn sync(dir: &Path) -> Result<(), OutboxError> {
    let f = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&f)?;
    Ok(())
}

/// An email written, not yet in `new/`.
enum Written {
    /// A file with no name (`O_TMPFILE`), held open until it is linked.
    Unnamed(File),
    /// A file in `tmp/`, to rename.
    Named(PathBuf),
}

/// One message made ready by a delivery worker.
enum Rendered {
    /// An email written, to name in `new/`.
    Email { file: Written, name: String },
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

/// Writes an email's bytes as a file with no name in `tmp/`, or `None` where the file
/// system cannot.
fn unnamed(tmp: &File, bytes: &[u8]) -> Result<Option<File>, OutboxError> {
    use rustix::fs::{openat, Mode, OFlags};
    match openat(
        tmp,
        ".",
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => {
            let mut f = File::from(fd);
            f.write_all(bytes)?;
            Ok(Some(f))
        }
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Where a batch's emails are written: `tmp/` open (for unnamed files, when the file
/// system has them) and its path.
struct MaildirTmp {
    dir: File,
    path: PathBuf,
    unnamed: bool,
}

fn render_one(
    m: &Outgoing,
    seq: &str,
    host: u32,
    code_key: &[u8; 32],
    templates: &Templates,
    d: &Delivery,
    tmp: Option<&MaildirTmp>,
) -> Result<Rendered, OutboxError> {
    let body = templates.render(m, m.code(code_key).as_deref(), &d.hub)?;
    Ok(match (&m.email, &d.email, tmp) {
        (Some(to), EmailSink::Maildir(_), Some(tmp)) => {
            let subject = templates.subject(m, &d.hub)?;
            let bytes = email_of(m, to, (subject, body), &d.hub, true)?.formatted();
            let name = format!(
                "{}.M{seq}P{host}.mes-relay",
                mes_protocol::time::UnixMillis::now().0 / 1000
            );
            let unnamed = if tmp.unnamed {
                unnamed(&tmp.dir, &bytes)?
            } else {
                None
            };
            let file = match unnamed {
                Some(f) => Written::Unnamed(f),
                None => {
                    let path = tmp.path.join(&name);
                    crate::private_files::write(&path, &bytes)?;
                    Written::Named(path)
                }
            };
            Rendered::Email { file, name }
        }
        (Some(to), EmailSink::Smtp(_), _) => Rendered::Smtp {
            to: to.clone(),
            message: email_of(m, to, (templates.subject(m, &d.hub)?, body), &d.hub, false)?,
        },
        (Some(_), EmailSink::Maildir(_), None) => {
            return Err(OutboxError::rule(
                "a maildir without its tmp/ directory open".to_string(),
            ))
        }
        (None, _, _) => Rendered::Letter {
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

/// Batches in flight: one rendered while one is printed and one named.
const IN_FLIGHT: usize = 3;

/// Whether two paths are on one file system (one `syncfs` covers both).
fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    matches!((a.metadata(), b.metadata()), (Ok(a), Ok(b)) if a.dev() == b.dev())
}

/// Whether the file system of `tmp` takes files with no name.
fn has_unnamed_files(tmp: &File) -> bool {
    unnamed(tmp, b"").is_ok_and(|f| f.is_some())
}

/// Raises the open-file limit to what the system allows and says how many files a
/// batch may hold open (its emails wait open until they are named).
fn open_file_budget() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    // Room for the store's files, sockets and the print files.
    now.saturating_sub(256).min(usize::MAX as u64) as usize
}

/// Names the batch's emails in `new/`, from one thread (see the module's header).
fn name_emails(new: &Path, emails: Vec<(Written, String)>) -> Result<(), OutboxError> {
    use rustix::fs::{linkat, AtFlags, CWD};
    let dir = File::open(new)?;
    for (file, name) in emails {
        match file {
            Written::Unnamed(f) => linkat(
                CWD,
                format!("/proc/self/fd/{}", f.as_raw_fd()).as_str(),
                &dir,
                name.as_str(),
                AtFlags::SYMLINK_FOLLOW,
            )
            .map_err(|e| OutboxError::rule(format!("naming {name} in {}: {e}", new.display())))?,
            Written::Named(tmp) => std::fs::rename(&tmp, new.join(&name))?,
        }
    }
    Ok(())
}

/// A batch rendered, its emails' data written, for the printing thread: its letters to
/// append to the print files (by département), then its emails to name and what to
/// remove from the outbox once all is on disk.
struct ToPrint {
    letters: std::collections::BTreeMap<String, Vec<(String, String)>>,
    next: ToName,
}

/// A batch written and on disk, for the naming thread: its emails to name, then what
/// to remove from the outbox once they are named and synced.
struct ToName {
    emails: Vec<(Written, String)>,
    done: Vec<Op>,
}

/// Writes each batch's letters into print files (one per département and batch), puts
/// the batch's letters and emails on disk (one `syncfs` when they share a file system),
/// and hands it to the naming thread; an error is answered in its place.
fn printer(
    d: &Delivery,
    tmp: Option<&Path>,
    jobs: std::sync::mpsc::Receiver<ToPrint>,
    next: std::sync::mpsc::SyncSender<ToName>,
    answers: std::sync::mpsc::Sender<Result<(), OutboxError>>,
) {
    for job in jobs {
        let r = (|| {
            for (departement, letters) in job.letters {
                let dir = d.letters.join(&departement);
                crate::private_files::create_dir(&dir)?;
                let first = &letters.first().expect("a département with letters").0;
                let mut file = std::io::BufWriter::new(crate::private_files::create(
                    &dir.join(format!("{first:0>24}.txt")),
                )?);
                for (_, text) in letters {
                    file.write_all(text.as_bytes())?;
                }
                file.flush()?;
            }
            sync(&d.letters)?;
            if let Some(tmp) = tmp {
                sync(tmp)?;
            }
            Ok::<(), OutboxError>(())
        })();
        match r {
            Ok(()) => {
                if next.send(job.next).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = answers.send(Err(e));
                return;
            }
        }
    }
}

/// Names each batch's emails, syncs, and removes the batch from the outbox, in order; one
/// answer per batch.
fn namer(
    t: &EnrolmentTables,
    d: &Delivery,
    jobs: std::sync::mpsc::Receiver<ToName>,
    answers: std::sync::mpsc::Sender<Result<(), OutboxError>>,
) {
    for job in jobs {
        let r = (|| {
            if let EmailSink::Maildir(dir) = &d.email {
                name_emails(&dir.join("new"), job.emails)?;
                sync(dir)?;
            }
            t.apply(job.done, true)?;
            Ok::<(), OutboxError>(())
        })();
        let failed = r.is_err();
        if answers.send(r).is_err() || failed {
            return;
        }
    }
}

/// Delivers up to `limit` messages, in batches; `progress` is told of each.
///
/// Batches overlap in three stages: the workers render a batch and write its emails'
/// data while one thread writes the previous batch's letters and syncs, and another
/// names the emails of the one before (one directory operation each, on one thread),
/// syncs, and removes it from the outbox. A batch that ends inside
/// an outbox chunk waits for the batches before it and is named before the next is read,
/// since its chunk is rewritten with what is left of it.
pub fn deliver(
    t: &EnrolmentTables,
    code_key: &[u8; 32],
    templates: &Templates,
    d: &Delivery,
    limit: usize,
    progress: impl FnMut(usize),
) -> Result<DeliveryReport, OutboxError> {
    let batch = crate::enrolment::service::BATCH;
    deliver_in_batches(t, code_key, templates, d, limit, batch, progress)
}

/// [`deliver`], in batches of at most `batch_size` messages.
pub fn deliver_in_batches(
    t: &EnrolmentTables,
    code_key: &[u8; 32],
    templates: &Templates,
    d: &Delivery,
    limit: usize,
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<DeliveryReport, OutboxError> {
    let mut report = DeliveryReport::default();
    // The most one batch may hold: a batch takes whole outbox chunks past
    // `batch_size` (a chunk cut short must be written back before the next batch reads,
    // which stops the overlap), up to this.
    let cap = batch_size.saturating_mul(4);
    // The most emails one batch may hold open (unnamed files wait open until named).
    let mut open_emails = usize::MAX;
    let (smtp, tmp) = match &d.email {
        EmailSink::Smtp(server) => (Some(server.transport()?), None),
        EmailSink::Maildir(m) => {
            for sub in ["tmp", "new", "cur"] {
                crate::private_files::create_dir(&m.join(sub))?;
            }
            let path = m.join("tmp");
            let dir = File::open(&path)?;
            // Unnamed files stay open until named: the batches in flight (one rendered,
            // one printed, one named) hold at most what the open-file limit allows.
            let budget = open_file_budget() / IN_FLIGHT;
            let unnamed =
                budget >= 64 && has_unnamed_files(&dir) && Path::new("/proc/self/fd").exists();
            if unnamed {
                open_emails = budget;
            }
            (None, Some(MaildirTmp { dir, path, unnamed }))
        }
    };
    crate::private_files::create_dir(&d.letters)?;
    let same_fs = tmp
        .as_ref()
        .is_some_and(|tmp| same_file_system(&tmp.path, &d.letters));
    let tmp_to_sync = tmp.as_ref().filter(|_| !same_fs).map(|t| t.path.clone());
    let host = std::process::id();
    std::thread::scope(|scope| -> Result<DeliveryReport, OutboxError> {
        let (jobs, jobs_rx) = std::sync::mpsc::sync_channel::<ToPrint>(0);
        let (names, names_rx) = std::sync::mpsc::sync_channel::<ToName>(0);
        let (answers_tx, answers) = std::sync::mpsc::channel();
        let printer_answers = answers_tx.clone();
        let printing = scope
            .spawn(move || printer(d, tmp_to_sync.as_deref(), jobs_rx, names, printer_answers));
        let naming = scope.spawn(move || namer(t, d, names_rx, answers_tx));
        let mut in_flight = 0;
        // Waits for the namer to finish every batch handed to it.
        let drain = |in_flight: &mut usize| -> Result<(), OutboxError> {
            while *in_flight > 0 {
                answers
                    .recv()
                    .map_err(|_| OutboxError::rule("the delivery threads stopped".into()))??;
                *in_flight -= 1;
            }
            Ok(())
        };
        let mut next_chunk = 0u64;
        while report.emails + report.letters < limit {
            let left = limit - report.emails - report.letters;
            let (want, room) = (batch_size.min(left), cap.min(left));
            // Whole chunks from the first not yet handed over, the last one cut at
            // `want`: what is left of it is written back. File names carry a number
            // never used before (not the chunk's: a chunk cut short is delivered again
            // under the same key).
            let run = t.next_seq()?;
            let mut batch: Vec<Outgoing> = Vec::with_capacity(want);
            let mut done = Vec::new();
            let mut cut = false;
            // Emails in the batch, held open until named: at most `open_emails`.
            let mut emails = 0;
            for (chunk, messages) in t.outbox_from(next_chunk, want)? {
                // As many as fit the batch and the open-file budget.
                let mut take = 0;
                for m in messages.iter().take(room - batch.len()) {
                    if m.email.is_some() {
                        if emails == open_emails {
                            break;
                        }
                        emails += 1;
                    }
                    take += 1;
                }
                if take == 0 {
                    break;
                }
                cut = take < messages.len();
                let mut messages = messages.into_iter();
                batch.extend(messages.by_ref().take(take));
                done.push(Op::OutboxChunk(chunk, Some(messages.collect())));
                next_chunk = chunk + 1;
            }
            if batch.is_empty() {
                break;
            }
            let rendered = render_all(&batch, run, host, code_key, templates, d, tmp.as_ref())?;
            let mut emails = Vec::new();
            let mut letters: std::collections::BTreeMap<String, Vec<(String, String)>> =
                Default::default();
            for r in rendered {
                match r {
                    Rendered::Email { file, name } => {
                        emails.push((file, name));
                        report.emails += 1;
                    }
                    Rendered::Smtp { to, message } => {
                        smtp.as_ref()
                            .expect("an SMTP transport for an SMTP sink")
                            .send(&message)
                            .map_err(|e| {
                                OutboxError::rule(format!("SMTP delivery to {to}: {e}"))
                            })?;
                        report.emails += 1;
                    }
                    Rendered::Letter {
                        departement,
                        seq,
                        text,
                    } => {
                        letters.entry(departement).or_default().push((seq, text));
                        report.letters += 1;
                    }
                }
            }
            report.print_files += letters.len();
            // The printer writes the letters and puts them and the emails' data on disk;
            // the namer then names the emails, syncs the names, and only then removes the
            // batch from the outbox.
            if cut {
                drain(&mut in_flight)?;
            }
            let job = ToPrint {
                letters,
                next: ToName { emails, done },
            };
            if jobs.send(job).is_err() {
                break; // the printer or the namer failed: its answer says why
            }
            in_flight += 1;
            if cut {
                // Its chunk is rewritten with what is left: read again from there.
                drain(&mut in_flight)?;
                next_chunk = 0;
            } else if in_flight >= IN_FLIGHT {
                // At most one batch printed and one named while the next is rendered.
                answers
                    .recv()
                    .map_err(|_| OutboxError::rule("the delivery threads stopped".into()))??;
                in_flight -= 1;
            }
            progress(batch.len());
        }
        drop(jobs);
        let drained = drain(&mut in_flight);
        printing
            .join()
            .map_err(|_| OutboxError::rule("the printing thread panicked".into()))?;
        naming
            .join()
            .map_err(|_| OutboxError::rule("the naming thread panicked".into()))?;
        drained?;
        Ok(report)
    })
}

/// Renders and writes a batch on every core: each worker takes a slice and returns what
/// stays to do in order (letters, SMTP, names).
fn render_all(
    batch: &[Outgoing],
    run: u64,
    host: u32,
    code_key: &[u8; 32],
    templates: &Templates,
    d: &Delivery,
    tmp: Option<&MaildirTmp>,
) -> Result<Vec<Rendered>, OutboxError> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
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
                            render_one(m, &seq, host, code_key, templates, d, tmp)
                        })
                        .collect::<Result<Vec<Rendered>, OutboxError>>()
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .map_err(|_| OutboxError::rule("a delivery worker panicked".into()))?
            })
            .collect::<Result<_, OutboxError>>()
    })?;
    Ok(rendered.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eight_bit_body_has_crlf_and_refuses_what_8bit_cannot_carry() {
        assert_eq!(
            eight_bit_body("Bonjour Hélène,\n\nVotre code : ABCD").as_deref(),
            Some("Bonjour Hélène,\r\n\r\nVotre code : ABCD".as_bytes())
        );
        // A paragraph of 900 bytes stays whole; a line over 998 does not fit.
        assert!(eight_bit_body(&"é".repeat(450)).is_some());
        assert!(eight_bit_body(&"a".repeat(999)).is_none());
        assert!(eight_bit_body("a\rb").is_none());
        assert!(eight_bit_body("a\0b").is_none());
    }
}
