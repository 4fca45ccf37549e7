//! What is typed in the Documents search box, as a query (F3.5): keywords, and filters
//! written as `mot:valeur` in either language: `auteur:`/`author:`, `depuis:`/`from:`,
//! `jusqua:`/`to:`, `type:`. A year alone stands for its first or last day.

use mes_protocol::record::documents::DocQuery;

/// The query typed text stands for (category, visibility and paging left to the caller).
pub fn parse(text: &str) -> DocQuery {
    let mut q = DocQuery::default();
    let mut words = Vec::new();
    for token in text.split_whitespace() {
        let Some((name, value)) = token.split_once(':').filter(|(_, v)| !v.is_empty()) else {
            words.push(token);
            continue;
        };
        match name.to_lowercase().as_str() {
            "auteur" | "author" | "par" | "by" => q.author = value.replace('_', " "),
            "depuis" | "from" | "du" => q.from = day(value, "01-01"),
            "jusqua" | "to" | "au" => q.to = day(value, "12-31"),
            "type" => q.type_code = value.to_string(),
            _ => words.push(token),
        }
    }
    q.text = words.join(" ");
    q
}

/// `2024` as `2024-MM-DD` with `fill`; anything else as typed (the daemon checks it).
fn day(value: &str, fill: &str) -> String {
    if value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()) {
        format!("{value}-{fill}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_both_languages_and_keywords_remain() {
        let q = parse("genou auteur:dialo depuis:2021 to:2022-06-30 irm");
        assert_eq!(q.text, "genou irm");
        assert_eq!(q.author, "dialo");
        assert_eq!(q.from, "2021-01-01");
        assert_eq!(q.to, "2022-06-30");
        let q = parse("author:Hun_Nguyen type:11502-2 jusqua:2020 x:");
        assert_eq!(
            (
                q.author.as_str(),
                q.type_code.as_str(),
                q.to.as_str(),
                q.text.as_str()
            ),
            ("Hun Nguyen", "11502-2", "2020-12-31", "x:")
        );
    }
}
