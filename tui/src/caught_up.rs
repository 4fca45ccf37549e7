//! `mes status --wait` (issue 27): polls the daemon's status with a progress bar of the
//! changes fetched against the relay's heads, until the device is online, at the head of
//! every volume and has nothing left to upload; then prints the status as `mes status`
//! does. Scripts use it instead of sleeping: exit 0 caught up, 1 not within the timeout.

use mes_client::ApiClient;
use mes_protocol::wire::api::{ApiCall, ApiReply, StatusReport};
use std::time::{Duration, Instant};

/// How often the status is asked.
const POLL: Duration = Duration::from_millis(100);

/// Changes still to fetch and uploads still to make, and changes fetched so far.
fn behind(s: &StatusReport) -> (u64, u64) {
    let (mut left, mut done) = (0, 0);
    for v in &s.volumes {
        left += v.head.0.saturating_sub(v.cursor.0) + v.pending_uploads;
        done += v.cursor.0.min(v.head.0);
    }
    (left, done)
}

/// Whether `s` is caught up: online, nothing to fetch, nothing to upload.
pub fn is_caught_up(s: &StatusReport) -> bool {
    s.online && behind(s).0 == 0
}

/// Waits until caught up or `timeout`; prints the last status. True when caught up.
pub async fn wait(c: &mut ApiClient, timeout: Duration, json: bool) -> anyhow::Result<bool> {
    let started = Instant::now();
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} changes")?
            .progress_chars("=> "),
    );
    let last = loop {
        let status = match c.call(None, ApiCall::Status).await? {
            Ok(ApiReply::Status(s)) => s,
            Ok(other) => anyhow::bail!("unexpected reply to a status: {other:?}"),
            Err(e) => anyhow::bail!("{}", e.message),
        };
        let (left, done) = behind(&status);
        bar.set_length(done + left);
        bar.set_position(done);
        bar.set_message(if status.online {
            "rattrapage / catching up"
        } else {
            "hors ligne / offline"
        });
        if is_caught_up(&status) || started.elapsed() >= timeout {
            break status;
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish_and_clear();
    let caught_up = is_caught_up(&last);
    let reply = ApiReply::Status(last);
    if json {
        println!("{}", reply.to_json()?);
    } else {
        println!("{}", mes_tui::printable::text(&reply.to_text()?));
    }
    if !caught_up {
        eprintln!(
            "pas à jour après {0} s / not caught up after {0} s",
            timeout.as_secs()
        );
    }
    Ok(caught_up)
}
