//! The terminal client's scenarios on the 10-year space, against a running `mesd`:
//! - `first-frame`: from starting the real `mes` in a real terminal (tmux) until it has
//!   drawn its first complete frame with the daemon's data (Home: latest documents, care
//!   history, reminders, notifications, sync state). `mes` writes the wall-clock time of
//!   that frame to `MES_TUI_TRACE`; the shell that starts it writes the time just before
//!   (`date +%s%N`), so process start, connection, the answers and the frame count, and
//!   tmux's own start-up does not. `ms` is the median of the runs, `max_ms` the slowest.
//! - `render`: the client's own code per frame while scrolling the whole document list
//!   with ↓ on a 160 x 48 terminal: `update` for the key, then `draw` with ratatui's
//!   crossterm backend writing the escape sequences to a sink (`p50_ms`, `p99_ms`).
//!   Pages the list asks for while scrolling are fetched between frames, not timed.

use super::space::TenYears;
use super::{measure, percentile, Measure, Size};
use crate::tmux::Tmux;
use mes_client::ApiClient;
use mes_tui::app::action::{Action, Move, Request};
use mes_tui::app::settings::Settings;
use mes_tui::app::state::{Screen, State};
use mes_tui::app::update::{start, update};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `first-frame`.
pub async fn first_frame(space: &TenYears, size: Size) -> anyhow::Result<Vec<Measure>> {
    let runs = size.pick(7, 2);
    let mesd = space.start()?;
    // A daemon that has been running: its first answers are served once before.
    let mut c = ApiClient::connect(&mesd.socket).await?;
    let mut s = State::new(Settings::default(), jiff::Zoned::now().date());
    let first = start(&s);
    settle(&mut c, &mut s, first).await?;
    let mes = crate::binary("mes")?;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let settings = Settings {
            tutorial_done: true,
            ..Settings::default()
        };
        settings.save(&dir.path().join("mes/tui.toml"))?;
        let (started, trace) = (dir.path().join("started"), dir.path().join("trace"));
        let command = format!(
            "date +%s%N > {}; MES_TUI_TRACE={} {} --socket {}",
            started.display(),
            trace.display(),
            mes.display(),
            mesd.socket.display()
        );
        let term = Tmux::start(&command, 160, 48, &[("XDG_CONFIG_HOME", dir.path())])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let frame_ms = loop {
            if let Ok(line) = std::fs::read_to_string(&trace) {
                // Only a whole line: the client may be writing it as we read (a smoke
                // run once read half a line).
                if let Some(first) = line
                    .split_inclusive('\n')
                    .next()
                    .filter(|l| l.ends_with('\n'))
                {
                    let v: serde_json::Value = serde_json::from_str(first.trim_end())?;
                    break v["unix_ms"].as_f64().unwrap_or(f64::NAN);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "mes drew no complete frame:\n{}",
                term.screen()?
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let started_ns: f64 = std::fs::read_to_string(&started)?.trim().parse()?;
        ms.push(frame_ms - started_ns / 1e6);
        term.keys(&["q"])?;
        tokio::task::block_in_place(|| term.wait_for(&["[exited]"], Duration::from_secs(30)))?;
    }
    mesd.stop()?;
    ms.sort_by(f64::total_cmp);
    Ok(vec![
        measure("first-frame", "ms", percentile(&ms, 50.0), "ms"),
        measure("first-frame", "max_ms", ms[ms.len() - 1], "ms"),
    ])
}

/// Runs requests against the daemon and feeds the answers back until nothing is asked.
async fn settle(c: &mut ApiClient, s: &mut State, first: Vec<Request>) -> anyhow::Result<()> {
    let mut todo: VecDeque<Request> = first.into();
    while let Some(r) = todo.pop_front() {
        let result = c.call(r.space, r.call).await?.map_err(|e| e.message);
        todo.extend(update(s, Action::Answer(r.slot, result)));
    }
    Ok(())
}

/// `render`.
pub async fn render(space: &TenYears, size: Size) -> anyhow::Result<Vec<Measure>> {
    let frames = size.pick(12_000, 200);
    let mesd = space.start()?;
    let mut c = ApiClient::connect(&mesd.socket).await?;
    let settings = Settings {
        tutorial_done: true,
        ..Settings::default()
    };
    let mut s = State::new(settings, jiff::Zoned::now().date());
    let area = Rect::new(0, 0, 160, 48);
    s.size = (area.width, area.height);
    let first = start(&s);
    settle(&mut c, &mut s, first).await?;
    for a in [Action::Goto(Screen::Documents), Action::NextPane] {
        let asked = update(&mut s, a);
        settle(&mut c, &mut s, asked).await?;
    }
    let mut terminal = Terminal::with_options(
        CrosstermBackend::new(std::io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(area),
        },
    )?;
    terminal.draw(|f| mes_tui::app::draw::draw(&s, f))?;
    let mut ms = Vec::with_capacity(frames);
    for _ in 0..frames {
        let started = Instant::now();
        let asked = update(&mut s, Action::Move(Move::Down));
        terminal.draw(|f| mes_tui::app::draw::draw(&s, f))?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        settle(&mut c, &mut s, asked).await?;
    }
    let reached = s.cursor(Screen::Documents, 1);
    mesd.stop()?;
    ms.sort_by(f64::total_cmp);
    Ok(vec![
        measure("render", "p50_ms", percentile(&ms, 50.0), "ms"),
        measure("render", "p99_ms", percentile(&ms, 99.0), "ms"),
        measure("render", "frames", ms.len() as f64, "frames"),
        measure(
            "render",
            "documents_scrolled",
            reached as f64 + 1.0,
            "documents",
        ),
    ])
}
