//! What each screen shows, as data: a [`Page`] of [`Section`]s (lists, text, a chart).
//! The boxed and the linear renderers (`draw`) both draw pages, so the reading order of
//! linear mode is the order sections and items are built here.
//!
//! Lists carry only a window of items around the selection (as many as the terminal has
//! rows), so a frame costs the same with ten or ten thousand documents.

pub mod access;
pub mod agenda;
pub mod catalogue;
pub mod documents;
pub mod help;
pub mod home;
pub mod messages;
pub mod profile;
pub mod relatives;
pub mod settings;

use std::ops::Range;

use super::state::{Screen, State};

/// A screen's content.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// How the sections share the body.
    pub arrange: Arrange,
    /// Sections in reading order.
    pub sections: Vec<Section>,
}

/// How sections share the body (percentages per row or column).
#[derive(Clone, Debug, Default)]
pub enum Arrange {
    /// Stacked.
    #[default]
    Rows,
    /// Side by side, with these widths in percent.
    Columns(Vec<u16>),
    /// Two by two.
    Grid,
}

/// One section.
#[derive(Clone, Debug)]
pub struct Section {
    /// Title.
    pub title: String,
    /// Content.
    pub body: Body,
    /// Has the focus.
    pub focused: bool,
}

/// A section's content.
#[derive(Clone, Debug)]
pub enum Body {
    /// A list: a window of items starting at `first`, of `len` in all.
    List {
        /// The window.
        items: Vec<Item>,
        /// Index of `items[0]`.
        first: usize,
        /// Items in all.
        len: usize,
        /// The selected item (absolute).
        selected: Option<usize>,
        /// Shown when empty.
        empty: String,
    },
    /// Lines of text (wrapped).
    Text(Vec<String>),
    /// A chart of a measurement over time.
    Chart(Chart),
}

/// A list item.
#[derive(Clone, Debug, Default)]
pub struct Item {
    /// Text.
    pub text: String,
    /// A state in words (`[masqué]`, `non lu`), shown after the text.
    pub tag: Option<String>,
}

impl Item {
    /// An item without a tag.
    pub fn new(text: impl Into<String>) -> Item {
        Item {
            text: text.into(),
            tag: None,
        }
    }
}

/// A measurement chart; `summary` says it in words (linear mode, screen readers).
#[derive(Clone, Debug, Default)]
pub struct Chart {
    /// Name and unit.
    pub title: String,
    /// (days since the first point, value).
    pub points: Vec<(f64, f64)>,
    /// Labels under the x axis (first, middle, last date).
    pub x_labels: Vec<String>,
    /// y range.
    pub y_bounds: [f64; 2],
    /// In words.
    pub summary: String,
}

/// The window of a list of `len` items to build around `selected` for `rows` rows.
pub fn window(len: usize, selected: usize, rows: usize) -> Range<usize> {
    let rows = rows.max(1);
    if len <= rows {
        return 0..len;
    }
    let start = selected.saturating_sub(rows / 2).min(len - rows);
    start..start + rows
}

/// A list section whose items come from `item(i)` for the window around `selected`.
pub fn list(
    s: &State,
    title: String,
    len: usize,
    selected: Option<usize>,
    focused: bool,
    empty: &str,
    item: impl Fn(usize) -> Item,
) -> Section {
    let range = window(len, selected.unwrap_or(0), usize::from(s.size.1));
    Section {
        title,
        focused,
        body: Body::List {
            first: range.start,
            items: range.map(item).collect(),
            len,
            selected,
            empty: s.t(empty).to_string(),
        },
    }
}

impl Section {
    /// The section with the load error of `slot` as its empty text, when the last load
    /// of that slot failed.
    pub fn or_error(mut self, s: &State, slot: super::action::Slot) -> Section {
        if let (Some(e), Body::List { empty, .. }) = (s.load_errors.get(&slot), &mut self.body) {
            *empty = format!("✗ {e}");
        }
        self
    }
}

/// A text section.
pub fn text(title: String, lines: Vec<String>) -> Section {
    Section {
        title,
        body: Body::Text(lines),
        focused: false,
    }
}

/// The selection of a pane when it is shown focused, else none (a focused list shows
/// its cursor; the others keep it without showing it).
pub fn selection(s: &State, screen: Screen, pane: u8) -> (Option<usize>, bool) {
    let focused = s.pane(screen) == pane;
    (Some(s.cursor(screen, pane)), focused)
}

/// The page of the screen shown, every string of it printable (other people's text never
/// reaches the terminal with a control character, [`crate::printable`]).
pub fn page(s: &State) -> Page {
    let mut page = screen_page(s);
    page.make_printable();
    page
}

impl Page {
    /// Removes control characters from every string of the page.
    pub fn make_printable(&mut self) {
        use crate::printable::clean_in_place as clean;
        for section in &mut self.sections {
            clean(&mut section.title);
            match &mut section.body {
                Body::List { items, empty, .. } => {
                    clean(empty);
                    for item in items {
                        clean(&mut item.text);
                        if let Some(tag) = &mut item.tag {
                            clean(tag);
                        }
                    }
                }
                Body::Text(lines) => lines.iter_mut().for_each(clean),
                Body::Chart(chart) => {
                    clean(&mut chart.title);
                    clean(&mut chart.summary);
                    chart.x_labels.iter_mut().for_each(clean);
                }
            }
        }
    }
}

fn screen_page(s: &State) -> Page {
    match s.screen {
        Screen::Home => home::page(s),
        Screen::Profile => profile::page(s),
        Screen::Documents => documents::page(s),
        Screen::Messages => messages::page(s),
        Screen::Agenda => agenda::page(s),
        Screen::Access => access::page(s),
        Screen::Relatives => relatives::page(s),
        Screen::Catalogue => catalogue::page(s),
        Screen::Settings => settings::page(s),
        Screen::Help => help::page(s),
    }
}

/// "—" for an empty field.
pub fn or_dash(v: &str) -> &str {
    if v.trim().is_empty() {
        "—"
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::window;

    /// Issue 22, finding 10: a page drawn from someone's hostile title keeps no control
    /// character in any of its strings. Control: the page as built holds them.
    #[test]
    fn a_page_keeps_no_control_character_of_anyones_text() {
        use super::{Body, Item, Page, Section};
        let hostile = "Ordonnance\u{1b}[2J\u{1b}]52;c;cGF5bG9hZA==\u{7}";
        let mut page = Page {
            sections: vec![Section {
                title: hostile.into(),
                focused: true,
                body: Body::List {
                    items: vec![Item {
                        text: hostile.into(),
                        tag: Some(hostile.into()),
                    }],
                    first: 0,
                    len: 1,
                    selected: Some(0),
                    empty: String::new(),
                },
            }],
            ..Default::default()
        };
        let controls = |p: &Page| format!("{p:?}").contains("\\u{1b}");
        assert!(
            controls(&page),
            "control: the built page carries the escapes"
        );
        page.make_printable();
        assert!(!controls(&page), "{page:?}");
    }

    #[test]
    fn the_window_keeps_the_selection_and_stays_inside() {
        assert_eq!(window(5, 3, 10), 0..5);
        assert_eq!(window(100, 0, 10), 0..10);
        assert_eq!(window(100, 50, 10), 45..55);
        assert_eq!(window(100, 99, 10), 90..100);
        for sel in 0..100 {
            let w = window(100, sel, 7);
            assert!(w.contains(&sel) && w.len() == 7 && w.end <= 100);
        }
    }
}
