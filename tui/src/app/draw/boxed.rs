//! The boxed renderer: sections in bordered blocks laid out as the page says.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Clear, Dataset, GraphType, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::state::State;
use crate::app::view::{Arrange, Body, Item, Page, Section};

/// Draws a page into `area`.
pub fn page(s: &State, page: &Page, f: &mut Frame<'_>, area: Rect) {
    let n = page.sections.len().max(1);
    let areas: Vec<Rect> = match &page.arrange {
        Arrange::Rows => {
            // Lists take the room; a last text section gets what its lines need.
            let constraints: Vec<Constraint> = page
                .sections
                .iter()
                .map(|sec| match &sec.body {
                    Body::Text(lines) if n > 1 => {
                        Constraint::Length(wrapped_rows(lines, area.width.saturating_sub(2)) + 2)
                    }
                    _ => Constraint::Min(3),
                })
                .collect();
            Layout::vertical(constraints).split(area).to_vec()
        }
        Arrange::Columns(widths) => {
            Layout::horizontal(widths.iter().map(|w| Constraint::Percentage(*w)))
                .split(area)
                .to_vec()
        }
        Arrange::Grid => {
            let rows = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .split(area);
            rows.iter()
                .flat_map(|r| {
                    Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                        .split(*r)
                        .to_vec()
                })
                .collect()
        }
    };
    for (sec, a) in page.sections.iter().zip(areas) {
        section(s, sec, f, a);
    }
}

fn block(s: &State, sec: &Section) -> Block<'static> {
    let th = s.theme();
    let title = if sec.focused {
        format!(" ▶ {} ", sec.title)
    } else {
        format!(" {} ", sec.title)
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(if sec.focused { th.focus } else { th.border })
        .title(Span::styled(title, th.title))
}

/// A list item as a line: the `▶` marker and the selected style on the selection.
pub fn item_line(s: &State, it: &Item, selected: bool) -> Line<'static> {
    let th = s.theme();
    let (mark, style) = if selected {
        ("▶ ", th.selected)
    } else {
        ("  ", th.text)
    };
    let mut spans = vec![Span::styled(format!("{mark}{}", it.text), style)];
    if let Some(tag) = &it.tag {
        spans.push(Span::styled(
            format!(" {tag}"),
            if selected { style } else { th.warn },
        ));
    }
    Line::from(spans)
}

fn section(s: &State, sec: &Section, f: &mut Frame<'_>, area: Rect) {
    let th = s.theme();
    let b = block(s, sec);
    let inner = b.inner(area);
    f.render_widget(b, area);
    match &sec.body {
        Body::List {
            items,
            first,
            len,
            selected,
            empty,
        } => {
            if *len == 0 {
                f.render_widget(
                    Paragraph::new(empty.clone())
                        .style(th.muted)
                        .wrap(Wrap { trim: true }),
                    inner,
                );
                return;
            }
            let rows = usize::from(inner.height).max(1);
            let range = crate::app::view::window(*len, selected.unwrap_or(0), rows);
            let show_selection = sec.focused;
            let lines: Vec<Line<'static>> = range
                .filter_map(|i| {
                    let it = items.get(i.checked_sub(*first)?)?;
                    Some(item_line(s, it, show_selection && Some(i) == *selected))
                })
                .collect();
            f.render_widget(Paragraph::new(lines), inner);
        }
        Body::Text(lines) => {
            let text: Vec<Line<'static>> = lines.iter().map(|l| Line::from(l.clone())).collect();
            f.render_widget(
                Paragraph::new(text)
                    .style(th.text)
                    .wrap(Wrap { trim: false }),
                inner,
            );
        }
        Body::Chart(c) => {
            let [chart_area, summary] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(inner);
            f.render_widget(
                Paragraph::new(c.summary.clone()).wrap(Wrap { trim: true }),
                summary,
            );
            if c.points.is_empty() {
                return;
            }
            let max_x = c.points.last().map_or(1.0, |p| p.0.max(1.0));
            let data = Dataset::default()
                .name(c.title.clone())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(th.chart)
                .data(&c.points);
            let y_labels = vec![
                Span::raw(format!("{:.1}", c.y_bounds[0])),
                Span::raw(format!("{:.1}", (c.y_bounds[0] + c.y_bounds[1]) / 2.0)),
                Span::raw(format!("{:.1}", c.y_bounds[1])),
            ];
            let chart = Chart::new(vec![data])
                .x_axis(
                    Axis::default()
                        .bounds([0.0, max_x])
                        .labels(
                            c.x_labels
                                .iter()
                                .map(|l| Span::raw(l.clone()))
                                .collect::<Vec<_>>(),
                        )
                        .style(th.muted),
                )
                .y_axis(
                    Axis::default()
                        .bounds(c.y_bounds)
                        .labels(y_labels)
                        .style(th.muted),
                );
            f.render_widget(chart, chart_area);
        }
    }
}

/// A centred box over the page (a form, the keys, the tutorial).
pub fn popup(s: &State, title: &str, lines: &[String], f: &mut Frame<'_>, area: Rect) {
    let th = s.theme();
    let width = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(20)
        .max(title.chars().count())
        + 4;
    let a = super::centred(area, (width as u16).max(30), lines.len() as u16 + 2);
    f.render_widget(Clear, a);
    let text: Vec<Line<'static>> = lines.iter().map(|l| Line::from(l.clone())).collect();
    f.render_widget(
        Paragraph::new(text)
            .style(th.text)
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(th.focus)
                    .title(Span::styled(format!(" {title} "), th.title)),
            ),
        a,
    );
}

/// How many rows `lines` take wrapped at `width` columns (word wrapping may take a row
/// more than this estimate on long words; never fewer).
fn wrapped_rows(lines: &[String], width: u16) -> u16 {
    let width = usize::from(width.max(1));
    lines
        .iter()
        .map(|l| l.chars().count().div_ceil(width).max(1) as u16)
        .sum()
}
