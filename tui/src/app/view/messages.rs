//! Messages (F4): threads on the left, the chosen thread's messages on the right with
//! their attachments and read state; `r` replies.

use super::{list, selection, Arrange, Item, Page};

use crate::app::state::{unread, Screen, State, OWN_SENDER};
use mes_protocol::record::messages::Message;

/// The messages of the chosen thread, oldest first.
pub fn thread_messages(s: &State) -> Vec<&Message> {
    let Some(m) = &s.messages else { return vec![] };
    let Some(t) = m.threads.get(s.cursor(Screen::Messages, 0)) else {
        return vec![];
    };
    let mut out: Vec<&Message> = m.messages.values().filter(|x| x.thread == t.id).collect();
    out.sort_by(|a, b| a.at.cmp(&b.at));
    out
}

/// `2026-12-01T21:58:28.42+01:00` as `2026-12-01 21:58`.
pub fn short_time(at: &str) -> String {
    at.get(..16).unwrap_or(at).replace('T', " ")
}

/// The page.
pub fn page(s: &State) -> Page {
    let threads = s
        .messages
        .as_ref()
        .map(|m| m.threads.as_slice())
        .unwrap_or_default();
    let (t, tf) = selection(s, Screen::Messages, 0);
    let left = list(
        s,
        s.t("messages.threads").into(),
        threads.len(),
        t,
        tf,
        "messages.no_threads",
        |i| {
            let th = &threads[i];
            let unread = s.messages.as_ref().map_or(0, |m| {
                m.messages
                    .values()
                    .filter(|x| x.thread == th.id && unread(x))
                    .count()
            });
            Item {
                text: format!(
                    "{}  {} — {}",
                    th.started_at.get(..10).unwrap_or(&th.started_at),
                    th.subject,
                    th.participants.join(", ")
                ),
                tag: (unread > 0).then(|| format!("[{} {}]", unread, s.t("messages.unread"))),
            }
        },
    );
    let msgs = thread_messages(s);
    let mut lines = Vec::new();
    for x in &msgs {
        let state = if x.from == OWN_SENDER {
            String::new()
        } else if unread(x) {
            format!("[{}]", s.t("messages.unread"))
        } else {
            format!("[{} {}]", s.t("messages.read"), short_time(&x.read_at))
        };
        let from = if x.from == OWN_SENDER {
            s.t("messages.me")
        } else {
            x.from.as_str()
        };
        lines.push(
            format!("{} — {from} {state}", short_time(&x.at))
                .trim_end()
                .to_string(),
        );
        lines.extend(x.body.lines().map(str::to_string));
        for a in &x.attachments {
            lines.push(format!("[{} {a}]", s.t("messages.attachment")));
        }
        lines.push(String::new());
    }
    if lines.is_empty() {
        lines.push(s.t("messages.no_messages").into());
    }
    let mut right = super::text(s.t("messages.thread").into(), lines);
    right.focused = s.pane(Screen::Messages) == 1;
    Page {
        arrange: Arrange::Columns(vec![40, 60]),
        sections: vec![left, right],
    }
}
