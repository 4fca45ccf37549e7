//! Home: the latest documents, the care history, reminders due and notifications.

use super::{list, selection, Arrange, Item, Page};
use crate::app::action::Slot;
use crate::app::state::{Screen, State};

/// A reminder as a line.
pub fn reminder_line(s: &State, r: &mes_protocol::record::ReminderItem) -> Item {
    let label = match s.lang() {
        crate::app::i18n::Lang::Fr => &r.fr,
        crate::app::i18n::Lang::En => &r.en,
    };
    let dose = r
        .dose
        .map(|d| format!(" ({} {d})", s.t("reminders.dose")))
        .unwrap_or_default();
    Item {
        text: format!("{}  {label}{dose}", r.from),
        tag: Some(format!(
            "[{}]",
            s.t_or(&format!("reminders.status_{}", r.status), &r.status)
        )),
    }
}

/// A document as a line: date, its visibility in words when hidden, title, author.
pub fn doc_line(s: &State, d: &mes_protocol::record::documents::DocumentMeta) -> Item {
    let author = if d.author.is_empty() {
        String::new()
    } else {
        format!(" — {}", d.author)
    };
    // The visibility goes first, so a narrow column still shows it at a glance.
    let hidden = if d.visibility.hidden_from_professionals {
        format!("[{}] ", s.t("documents.hidden_tag"))
    } else {
        String::new()
    };
    Item::new(format!("{}  {hidden}{}{author}", d.date, d.title))
}

/// The page.
pub fn page(s: &State) -> Page {
    let sel = |pane| selection(s, Screen::Home, pane);
    let (d, df) = sel(0);
    let docs = list(
        s,
        s.t("home.latest").into(),
        s.home_docs.len(),
        d,
        df,
        "home.no_documents",
        |i| doc_line(s, &s.home_docs[i]),
    );
    let (c, cf) = sel(1);
    let care = list(
        s,
        s.t("home.care").into(),
        s.care.len(),
        c,
        cf,
        "home.no_care",
        |i| {
            let it = &s.care[i];
            Item::new(format!("{}  {}", it.date, it.label))
        },
    );
    let (r, rf) = sel(2);
    let reminders = list(
        s,
        s.t("home.reminders").into(),
        s.reminders.len(),
        r,
        rf,
        "home.no_reminders",
        |i| reminder_line(s, &s.reminders[i]),
    )
    .or_error(s, Slot::Reminders);
    let unread: Vec<_> = if s.settings.notifications {
        s.messages
            .as_ref()
            .map(|m| {
                m.messages
                    .values()
                    .filter(|m| crate::app::state::unread(m))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (n, nf) = sel(3);
    let empty = if s.settings.notifications {
        "home.no_notifications"
    } else {
        "home.notifications_off"
    };
    let daemon_notes: &[mes_protocol::access::consent::NotificationView] =
        if s.settings.notifications {
            &s.notifications
        } else {
            &[]
        };
    let notes = list(
        s,
        s.t("home.notifications").into(),
        unread.len() + daemon_notes.len(),
        n,
        nf,
        empty,
        |i| {
            if i >= unread.len() {
                let d = &daemon_notes[i - unread.len()];
                return Item {
                    text: match s.lang() {
                        crate::app::i18n::Lang::Fr => d.fr.clone(),
                        crate::app::i18n::Lang::En => d.en.clone(),
                    },
                    tag: Some(format!("[{}]", s.t(&format!("home.kind_{}", d.kind)))),
                };
            }
            let m = unread[i];
            Item {
                text: s.tf(
                    "home.new_message",
                    &[
                        ("from", &m.from),
                        ("at", &super::messages::short_time(&m.at)),
                    ],
                ),
                tag: Some(format!("[{}]", s.t("messages.unread"))),
            }
        },
    );
    Page {
        arrange: Arrange::Grid,
        sections: vec![docs, care, reminders, notes],
    }
}
