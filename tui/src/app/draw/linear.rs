//! The linear renderer (F11.2): no box drawing, one item per line, in reading order:
//! the screen's name, then each section's title and its items; the selected item starts
//! with `▶` and the view scrolls to keep it on screen.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::boxed::item_line;
use crate::app::state::State;
use crate::app::view::{Body, Page};

/// Draws a page (or what covers it) as lines.
pub fn page(
    s: &State,
    page: &Page,
    cover: Option<&(String, Vec<String>)>,
    f: &mut Frame<'_>,
    area: Rect,
) {
    let th = s.theme();
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut focus_line = 0;
    if let Some((title, body)) = cover {
        lines.push(Line::styled(format!("## {title}"), th.title));
        lines.extend(body.iter().map(|l| Line::from(l.clone())));
    } else {
        lines.push(Line::styled(
            format!("# {}", s.t(s.screen.name_key())),
            th.title,
        ));
        for sec in &page.sections {
            if !sec.title.is_empty() {
                let mark = if sec.focused { "▶ " } else { "" };
                lines.push(Line::styled(format!("## {mark}{}", sec.title), th.title));
            }
            match &sec.body {
                Body::List {
                    items,
                    first,
                    len,
                    selected,
                    empty,
                } => {
                    if *len == 0 {
                        lines.push(Line::styled(empty.clone(), th.muted));
                    }
                    for (k, it) in items.iter().enumerate() {
                        let chosen = sec.focused && *selected == Some(first + k);
                        if chosen {
                            focus_line = lines.len();
                        }
                        lines.push(item_line(s, it, chosen));
                    }
                }
                Body::Text(text) => lines.extend(
                    text.iter()
                        .filter(|l| !l.is_empty())
                        .map(|l| Line::from(l.clone())),
                ),
                Body::Chart(c) => lines.push(Line::from(c.summary.clone())),
            }
        }
    }
    let rows = usize::from(area.height).max(1);
    let top = if lines.len() <= rows {
        0
    } else {
        focus_line.saturating_sub(rows / 2).min(lines.len() - rows)
    };
    let shown: Vec<Line<'static>> = lines.into_iter().skip(top).take(rows).collect();
    f.render_widget(Paragraph::new(shown).style(th.text), area);
}
