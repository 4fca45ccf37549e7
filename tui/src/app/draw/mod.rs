//! `draw`: a pure function of the state onto a frame. The top line names the screens
//! (the current one in brackets as well as in colour), the bottom line says whether the
//! relay is reachable and how many uploads wait, and the page of the screen fills the
//! rest, boxed or (linear mode) one item per line without box drawing.

mod boxed;
mod linear;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::keymap::{key_name, shown_on};
use super::state::{Form, Link, Overlay, Screen, State};
use super::view;

/// Draws the state.
pub fn draw(s: &State, f: &mut Frame<'_>) {
    let [top, body, notice, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(
        Paragraph::new(tabs(s, top.width)).style(s.theme().text),
        top,
    );
    let page = view::page(s);
    let cover = cover_lines(s).map(|(mut title, mut lines)| {
        crate::printable::clean_in_place(&mut title);
        lines.iter_mut().for_each(crate::printable::clean_in_place);
        (title, lines)
    });
    if s.settings.linear {
        linear::page(s, &page, cover.as_ref(), f, body);
    } else {
        boxed::page(s, &page, f, body);
        if let Some((title, lines)) = &cover {
            boxed::popup(s, title, lines, f, body);
        }
    }
    f.render_widget(Paragraph::new(notice_line(s)), notice);
    f.render_widget(Paragraph::new(status_line(s)), status);
}

/// The tab line: `Mon espace santé  1 Accueil [2 Profil médical] 3 Documents ...`; on a
/// narrow terminal the app's name goes first, then the other tabs' names (digits stay).
fn tabs(s: &State, width: u16) -> Line<'static> {
    let th = s.theme();
    let full = |screen: Screen| format!("{} {}", screen.digit(), s.t(screen.name_key()));
    let length = |names: bool| -> usize {
        Screen::ALL
            .iter()
            .map(|sc| {
                if names || *sc == s.screen {
                    full(*sc).chars().count() + 3
                } else {
                    4
                }
            })
            .sum()
    };
    let names = length(true) <= usize::from(width);
    let mut spans = Vec::new();
    let app = format!("{}  ", s.t("app.name"));
    if names && length(true) + app.chars().count() <= usize::from(width) {
        spans.push(Span::styled(app, th.title));
    }
    for screen in Screen::ALL {
        if screen == s.screen {
            spans.push(Span::styled(format!("[{}]", full(screen)), th.selected));
        } else if names {
            spans.push(Span::styled(format!(" {} ", full(screen)), th.muted));
        } else {
            spans.push(Span::styled(format!(" {} ", screen.digit()), th.muted));
        }
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

/// The status line: daemon link, relay, pending uploads, profile, key hints.
fn status_line(s: &State) -> Line<'static> {
    let th = s.theme();
    let mut spans = Vec::new();
    match &s.link {
        Link::Lost(why) => {
            spans.push(Span::styled(
                format!("✗ {} ", s.t("status.daemon_lost")),
                th.warn,
            ));
            spans.push(Span::raw(why.clone()));
            return Line::from(spans);
        }
        Link::Connecting => spans.push(Span::styled(
            format!("… {}", s.t("status.connecting")),
            th.muted,
        )),
        Link::Up => {
            let online = s.status.as_ref().is_some_and(|x| x.online);
            spans.push(if online {
                Span::styled(format!("● {}", s.t("status.online")), th.ok)
            } else {
                Span::styled(format!("○ {}", s.t("status.offline")), th.warn)
            });
        }
    }
    let pending = s.pending_uploads();
    spans.push(Span::raw(" · "));
    spans.push(Span::styled(
        s.tf("status.pending", &[("n", &pending)]),
        if pending > 0 { th.warn } else { th.text },
    ));
    if let Some(label) = s.space_label() {
        spans.push(Span::raw(" · "));
        spans.push(Span::raw(s.tf("status.profile", &[("name", &label)])));
    }
    if s.unread() > 0 && s.settings.notifications {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(
            s.tf("status.unread", &[("n", &s.unread())]),
            th.warn,
        ));
    }
    spans.push(Span::raw(" · "));
    spans.push(Span::styled(s.t("status.hints").to_string(), th.muted));
    Line::from(spans)
}

fn notice_line(s: &State) -> Line<'static> {
    let th = s.theme();
    match &s.notice {
        Some(n) if n.error => Line::from(Span::styled(
            format!("✗ {}", crate::printable::line(&n.text)),
            th.warn,
        )),
        Some(n) => Line::from(Span::styled(
            format!("✓ {}", crate::printable::line(&n.text)),
            th.ok,
        )),
        None => Line::default(),
    }
}

/// What covers the page (a form, the keys, the tutorial), as a title and lines.
fn cover_lines(s: &State) -> Option<(String, Vec<String>)> {
    if let Some(form) = &s.form {
        return Some(form_lines(s, form));
    }
    match s.overlay? {
        Overlay::Keys => {
            let lines = shown_on(s.screen)
                .iter()
                .map(|b| format!("{:<14} {}", key_name(b.key), s.t(b.help)))
                .collect();
            Some((
                s.tf("keys.title", &[("screen", &s.t(s.screen.name_key()))]),
                lines,
            ))
        }
        Overlay::Tutorial(n) => {
            let step = s.t(&format!("tutorial.step{n}"));
            let mut lines: Vec<String> = step.lines().map(str::to_string).collect();
            lines.push(String::new());
            lines.push(s.tf(
                "tutorial.progress",
                &[("n", &(n + 1)), ("of", &super::state::TUTORIAL_STEPS)],
            ));
            Some((s.t("tutorial.title").into(), lines))
        }
    }
}

fn form_lines(s: &State, form: &Form) -> (String, Vec<String>) {
    use super::state::FormKind;
    let title = match form.kind {
        FormKind::AddDocument => s.t("documents.add_title"),
        FormKind::SaveDocument { .. } => s.t("documents.save_title"),
        FormKind::Reply { .. } => s.t("messages.reply_title"),
        FormKind::EnrolActivate => s.t("enrol.activate_title"),
        FormKind::EnrolOppose => s.t("enrol.oppose_title"),
        FormKind::EnrolFollow => s.t("enrol.follow_title"),
        FormKind::AllowService { .. } => s.t("catalogue.allow_title"),
    };
    let mut lines: Vec<String> = form
        .fields
        .iter()
        .enumerate()
        .map(|(i, (label, value))| {
            let (mark, cursor) = if i == form.focus {
                ("▶", "▏")
            } else {
                (" ", "")
            };
            // A password is never drawn, only its length.
            let shown = if *label == super::update::PASSWORD_FIELD {
                "•".repeat(value.chars().count())
            } else {
                value.clone()
            };
            format!("{mark} {} : {shown}{cursor}", s.t(label))
        })
        .collect();
    lines.push(String::new());
    if let Some(e) = &form.error {
        lines.push(format!("✗ {e}"));
    }
    lines.push(s.t("form.hint").into());
    (title.into(), lines)
}

/// The area of a centred popup.
pub(crate) fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
