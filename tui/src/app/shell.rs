//! The async shell around the pure core: it owns the terminal and the daemon connections.
//!
//! - A thread reads the terminal (keys, resizes) and forwards them.
//! - One connection runs requests in order; before each it drains what is queued and
//!   keeps only the newest request of each slot (typing a search sends one query per
//!   key, only the last is run). User commands are all run, in order.
//! - A second connection is subscribed to the daemon's events (a change synced from
//!   another device, the relay going up or down).
//! - A tick each second (notices expire, sync state is asked again).
//!
//! The loop applies everything that arrived, then draws one frame: a frame never waits
//! on the daemon. `MES_TUI_TRACE=FILE` appends a JSON line when the first complete frame
//! (Home with its real data) is drawn, for the `first-frame` benchmark;
//! `MES_TUI_FAULT=panic` panics right after it, for the test that the terminal is
//! restored.

use mes_client::ApiClient;
use mes_protocol::wire::api::ApiCall;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

use super::action::{Action, Request, Slot};
use super::settings::{self, Settings};
use super::state::State;
use super::{draw, keymap, update};

/// What reaches the loop.
enum Incoming {
    /// A terminal event.
    Terminal(Event),
    /// An action from the daemon side or the clock.
    Act(Action),
}

/// How the TUI starts.
pub struct Options {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The space to show first (default: the first).
    pub space: Option<mes_protocol::ids::SpaceId>,
    /// When the process started (for the trace).
    pub started: Instant,
}

/// The terminal restored on every way out (an error, a panic: `ratatui::init` installs
/// the panic hook).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Why the client stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// No daemon at the socket: how to start one.
    #[error("{0}")]
    NoDaemon(String),
    /// The daemon refused the event subscription.
    #[error("mesd refused the event stream: {0}")]
    Refused(String),
    /// The local API connection failed.
    #[error(transparent)]
    Client(#[from] mes_client::ClientError),
    /// The terminal failed.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// The settings do not load.
    #[error(transparent)]
    Settings(#[from] crate::app::settings::SettingsError),
}

/// Runs the TUI until the person quits. A daemon that cannot be reached is an error that
/// says how to start one, before the terminal is touched.
pub async fn run(opts: Options) -> Result<(), ShellError> {
    let missing = || {
        format!(
            "aucun démon mesd sur {0} / no mesd daemon at {0}\n  \
             démarrez-le / start it: mesd serve (then mes; or mesd serve --data DIR, then MES_DATA=DIR mes)\n  \
             ou essayez le bac à sable / or try the sandbox: mes demo",
            opts.socket.display()
        )
    };
    let requests = ApiClient::connect(&opts.socket)
        .await
        .map_err(|_| ShellError::NoDaemon(missing()))?;
    let mut events = ApiClient::connect(&opts.socket)
        .await
        .map_err(|_| ShellError::NoDaemon(missing()))?;
    events
        .call(None, ApiCall::Subscribe)
        .await?
        .map_err(|e| ShellError::Refused(e.message))?;

    let settings_path = settings::path();
    let settings = match &settings_path {
        Some(p) => Settings::load(p)?,
        None => Settings::default(),
    };
    let mut state = State::new(settings, jiff::Zoned::now().date());
    state.space = opts.space;

    let (tx, mut rx) = mpsc::unbounded_channel::<Incoming>();
    let (req_tx, req_rx) = mpsc::unbounded_channel::<Request>();
    tokio::spawn(run_requests(requests, req_rx, tx.clone()));
    tokio::spawn(forward_events(events, tx.clone()));
    tokio::spawn(tick(tx.clone()));
    let input_tx = tx.clone();
    std::thread::spawn(move || read_terminal(input_tx));

    let mut terminal = ratatui::init();
    let _restore = Restore;
    let size = terminal.size()?;
    state.size = (size.width, size.height);
    for r in update::start(&state) {
        let _ = req_tx.send(r);
    }
    let trace = std::env::var_os("MES_TUI_TRACE").map(PathBuf::from);
    let mut traced = false;
    terminal.draw(|f| draw::draw(&state, f))?;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        for incoming in batch {
            let action = match incoming {
                Incoming::Terminal(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                    keymap::action_for(&state, k)
                }
                Incoming::Terminal(Event::Resize(w, h)) => Some(Action::Resize(w, h)),
                Incoming::Terminal(_) => None,
                Incoming::Act(a) => Some(a),
            };
            if let Some(a) = action {
                for r in update::update(&mut state, a) {
                    let _ = req_tx.send(r);
                }
            }
        }
        if state.settings_dirty {
            state.settings_dirty = false;
            if let Some(p) = &settings_path {
                if let Err(e) = state.settings.save(p) {
                    update::update(
                        &mut state,
                        Action::Answer(Slot::Command, Err(format!("{e:#}"))),
                    );
                }
            }
        }
        if state.quit {
            break;
        }
        terminal.draw(|f| draw::draw(&state, f))?;
        if !traced && state.ready() {
            traced = true;
            if let Some(p) = &trace {
                write_trace(p, opts.started)?;
            }
            // Fault injection for the test that a panic restores the terminal.
            if std::env::var_os("MES_TUI_FAULT").is_some_and(|v| v == "panic") {
                panic!("MES_TUI_FAULT=panic: a planted panic after the first complete frame");
            }
        }
    }
    Ok(())
}

fn write_trace(path: &std::path::Path, started: Instant) -> std::io::Result<()> {
    let unix_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    let line = serde_json::json!({
        "event": "first_complete_frame",
        "unix_ms": unix_ms,
        "since_start_ms": started.elapsed().as_secs_f64() * 1000.0,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")?;
    Ok(())
}

fn read_terminal(tx: mpsc::UnboundedSender<Incoming>) {
    while let Ok(ev) = event::read() {
        if tx.send(Incoming::Terminal(ev)).is_err() {
            return;
        }
    }
}

async fn tick(tx: mpsc::UnboundedSender<Incoming>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    loop {
        every.tick().await;
        if tx.send(Incoming::Act(Action::Tick)).is_err() {
            return;
        }
    }
}

async fn forward_events(mut c: ApiClient, tx: mpsc::UnboundedSender<Incoming>) {
    loop {
        let act = match c.next_event().await {
            Ok(e) => Action::Event(e),
            Err(e) => Action::Disconnected(format!("{e:#}")),
        };
        let lost = matches!(act, Action::Disconnected(_));
        if tx.send(Incoming::Act(act)).is_err() || lost {
            return;
        }
    }
}

/// Keeps the newest queued request of each slot (user commands all, in order).
pub fn coalesce(queue: VecDeque<Request>) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::with_capacity(queue.len());
    for r in queue {
        if r.slot != Slot::Command {
            out.retain(|o| !(o.slot == r.slot && o.space == r.space));
        }
        out.push(r);
    }
    out
}

async fn run_requests(
    mut c: ApiClient,
    mut rx: mpsc::UnboundedReceiver<Request>,
    tx: mpsc::UnboundedSender<Incoming>,
) {
    let mut queue = VecDeque::new();
    while let Some(r) = rx.recv().await {
        queue.push_back(r);
        while let Ok(r) = rx.try_recv() {
            queue.push_back(r);
        }
        let mut todo: VecDeque<Request> = coalesce(std::mem::take(&mut queue)).into();
        while let Some(r) = todo.pop_front() {
            let answer = match c.call(r.space, r.call).await {
                Ok(result) => Action::Answer(r.slot, result.map_err(|e| e.message)),
                Err(e) => {
                    let _ = tx.send(Incoming::Act(Action::Disconnected(format!("{e:#}"))));
                    return;
                }
            };
            if tx.send(Incoming::Act(answer)).is_err() {
                return;
            }
            // Newer requests that arrived meanwhile supersede queued ones.
            let mut arrived = false;
            while let Ok(r) = rx.try_recv() {
                todo.push_back(r);
                arrived = true;
            }
            if arrived {
                todo = coalesce(std::mem::take(&mut todo)).into();
            }
        }
    }
}
