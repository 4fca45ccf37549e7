//! The medical profile summary as a real PDF (F2.11), pure: A4 pages of text in the
//! standard Helvetica font (WinAnsi encoding, so French accents and œ print), written
//! with `pdf-writer`. A professional can be handed it; a test extracts its text.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// One line of the summary: a heading or body text.
pub enum Line {
    /// A section heading.
    Heading(String),
    /// Body text (wrapped to the page width).
    Text(String),
}

/// Encodes text for a WinAnsi font; what it cannot show becomes '?'.
pub fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{A0}'..='\u{FF}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            'Œ' => 0x8C,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            'œ' => 0x9C,
            _ => b'?',
        })
        .collect()
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// Renders lines into a PDF document.
pub fn render(title: &str, lines: &[Line]) -> Vec<u8> {
    const TOP: f32 = 800.0;
    const BOTTOM: f32 = 50.0;
    let mut laid: Vec<(bool, String)> = vec![(true, title.to_string())];
    for l in lines {
        match l {
            Line::Heading(h) => laid.push((true, h.clone())),
            Line::Text(t) => laid.extend(wrap(t, 95).into_iter().map(|w| (false, w))),
        }
    }
    let mut pages: Vec<Vec<(bool, String)>> = vec![Vec::new()];
    let mut y = TOP;
    for item in laid {
        let h = if item.0 { 20.0 } else { 14.0 };
        if y - h < BOTTOM {
            pages.push(Vec::new());
            y = TOP;
        }
        y -= h;
        pages.last_mut().expect("a page").push(item);
    }
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let mut next = 5;
    let mut ids = Vec::new();
    for _ in &pages {
        ids.push((Ref::new(next), Ref::new(next + 1)));
        next += 2;
    }
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(ids.iter().map(|(p, _)| *p))
        .count(pages.len() as i32);
    for (font, base) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
        pdf.type1_font(font)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (page, (page_id, content_id)) in pages.iter().zip(&ids) {
        let mut p = pdf.page(*page_id);
        p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
        p.parent(tree);
        p.contents(*content_id);
        {
            let mut resources = p.resources();
            let mut fonts = resources.fonts();
            fonts.pair(Name(b"F1"), regular);
            fonts.pair(Name(b"F2"), bold);
        }
        p.finish();
        let mut c = Content::new();
        let mut y = TOP;
        for (heading, text) in page {
            let (font, size, h) = if *heading {
                (Name(b"F2"), 13.0, 20.0)
            } else {
                (Name(b"F1"), 10.0, 14.0)
            };
            y -= h;
            c.begin_text();
            c.set_font(font, size);
            c.next_line(50.0, y);
            c.show(Str(&win_ansi(text)));
            c.end_text();
        }
        pdf.stream(*content_id, &c.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_text_is_encoded_and_long_text_makes_pages() {
        assert_eq!(win_ansi("é œ €"), vec![0xE9, b' ', 0x9C, b' ', 0x80]);
        let lines: Vec<Line> = (0..200).map(|i| Line::Text(format!("ligne {i}"))).collect();
        let pdf = render("Résumé", &lines);
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.matches("/Type /Page\n").count() >= 3 || text.matches("/Type /Page").count() >= 4,
            "several pages"
        );
    }
}
