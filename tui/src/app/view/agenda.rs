//! Agenda (F5): a month grid (days with an appointment or reminder marked `*`, today in
//! brackets) over that month's items, or the list of the next twelve months (`v`);
//! `[` and `]` change the month.

use super::home::reminder_line;
use super::{list, selection, text, Arrange, Item, Page};
use crate::app::state::{Screen, State};
use mes_protocol::record::agenda::AgendaItem;

/// The items shown: the month's in the month view, all in the list view.
pub fn items_shown(s: &State) -> Vec<&AgendaItem> {
    let (y, m) = s.month;
    let prefix = format!("{y:04}-{m:02}");
    s.agenda
        .iter()
        .filter(|i| s.agenda_list || i.when().starts_with(&prefix))
        .collect()
}

/// The month grid as lines.
fn grid(s: &State) -> Vec<String> {
    let (y, m) = s.month;
    let Ok(first) = jiff::civil::Date::new(y, m, 1) else {
        return vec![];
    };
    let marked: std::collections::HashSet<i8> = items_shown(s)
        .iter()
        .filter_map(|i| i.when().get(8..10)?.parse().ok())
        .collect();
    let mut lines = vec![s.t("agenda.weekdays").to_string()];
    let offset = first.weekday().to_monday_zero_offset() as usize;
    let mut cells: Vec<String> = vec!["    ".into(); offset];
    for d in 1..=first.days_in_month() {
        let today = s.today == first.with().day(d).build().unwrap_or(first);
        let mark = if marked.contains(&d) { '*' } else { ' ' };
        cells.push(if today {
            format!("[{d:>2}]")
        } else {
            format!(" {d:>2}{mark}")
        });
    }
    for week in cells.chunks(7) {
        lines.push(week.concat());
    }
    lines
}

/// The month's name and year.
fn month_title(s: &State) -> String {
    let (y, m) = s.month;
    let names: Vec<&str> = s.t("agenda.months").split(',').collect();
    let name = names
        .get(usize::try_from(m - 1).unwrap_or(0))
        .copied()
        .unwrap_or("");
    format!("{} {y}", name.trim())
}

/// The page.
pub fn page(s: &State) -> Page {
    let items = items_shown(s);
    let (sel, focused) = selection(s, Screen::Agenda, 0);
    let title = if s.agenda_list {
        s.tf("agenda.list_title", &[("from", &month_title(s))])
    } else {
        month_title(s)
    };
    let entries = list(
        s,
        title.clone(),
        items.len(),
        sel,
        focused,
        "agenda.none",
        |i| match items[i] {
            AgendaItem::Appointment(a) => {
                let with = if a.with.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", a.with)
                };
                let place = if a.place.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.place)
                };
                Item {
                    text: format!("{}  {}{with}{place}", a.at.replace('T', " "), a.title),
                    tag: Some(format!("[{}]", s.t("agenda.appointment"))),
                }
            }
            AgendaItem::Reminder(r) => reminder_line(s, r),
        },
    );
    if s.agenda_list || s.settings.linear {
        return Page {
            arrange: Arrange::Rows,
            sections: vec![entries],
        };
    }
    Page {
        arrange: Arrange::Columns(vec![34, 66]),
        sections: vec![
            text(format!("{title} — {}", s.t("agenda.month_keys")), grid(s)),
            entries,
        ],
    }
}
