//! Bulk import manifests (F3.7), sans IO: a CSV (`,` or `;`, header row) or JSON (an
//! array of objects, or one object per line) naming each file with its category, date
//! and optional title, type, class, author and id. Every bad row is reported with its
//! line and the reason; nothing comes out unless every row is good.

use mes_protocol::record::documents::NewDocument;
use serde::Deserialize;
use std::path::Path;

/// One manifest row: where it was, and the document it asks for (path still relative to
/// the import folder, id empty unless given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// 1-based line in the manifest (for JSON arrays: the 1-based entry).
    pub line: usize,
    /// The document.
    pub doc: NewDocument,
}

/// A bad row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (or entry).
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// Columns, with their French names accepted too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(alias = "fichier")]
    file: String,
    #[serde(alias = "catégorie", alias = "categorie")]
    category: String,
    date: String,
    #[serde(default, alias = "titre")]
    title: String,
    #[serde(default, rename = "type")]
    type_code: String,
    #[serde(default, alias = "classe")]
    class: String,
    #[serde(default, alias = "auteur")]
    author: String,
    #[serde(default)]
    id: String,
}

/// Parses a manifest; `json` chooses the format (the shell decides from the extension).
pub fn parse(text: &str, json: bool) -> Result<Vec<Row>, Vec<Problem>> {
    let entries = if json {
        parse_json(text)
    } else {
        parse_csv(text)
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (line, entry) in entries {
        match entry.and_then(|e| row(line, e)) {
            Ok(r) => rows.push(r),
            Err(reason) => problems.push(Problem { line, reason }),
        }
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push(Problem {
            line: 1,
            reason: "the manifest names no document".into(),
        });
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

fn parse_csv(text: &str) -> Vec<(usize, Result<Entry, String>)> {
    let header = text.lines().next().unwrap_or_default();
    let delimiter = if header.contains(';') && !header.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return vec![(1, Err(format!("unreadable header: {e}")))],
    };
    // The reader's own line count skips blank lines, and a record's offset is where the
    // blank lines before it start: count newlines up to its first non-blank byte.
    let line_at = |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let bytes = text.as_bytes();
            let mut at = (p.byte() as usize).min(bytes.len());
            while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
                at += 1;
            }
            1 + bytes[..at].iter().filter(|&&b| b == b'\n').count()
        })
    };
    let mut out = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = line_at(r.position());
                if r.iter().all(str::is_empty) {
                    continue;
                }
                out.push((
                    line,
                    r.deserialize::<Entry>(Some(&headers))
                        .map_err(|e| csv_reason(&e)),
                ));
            }
            Err(e) => {
                let line = line_at(e.position());
                out.push((line, Err(csv_reason(&e))));
            }
        }
    }
    out
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        _ => e.to_string(),
    }
}

fn parse_json(text: &str) -> Vec<(usize, Result<Entry, String>)> {
    if text.trim_start().starts_with('[') {
        return match serde_json::from_str::<Vec<serde_json::Value>>(text) {
            Ok(values) => values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i + 1, serde_json::from_value(v).map_err(|e| e.to_string())))
                .collect(),
            Err(e) => vec![(e.line(), Err(format!("not a JSON array of objects: {e}")))],
        };
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, serde_json::from_str(l).map_err(|e| e.to_string())))
        .collect()
}

fn row(line: usize, e: Entry) -> Result<Row, String> {
    if e.file.trim().is_empty() {
        return Err("no file named".into());
    }
    if Path::new(e.file.trim()).is_absolute() || e.file.split('/').any(|p| p == "..") {
        return Err(format!(
            "file {:?} must be a path inside the import folder",
            e.file
        ));
    }
    Ok(Row {
        line,
        doc: NewDocument {
            path: e.file.trim().to_string(),
            title: e.title,
            category: e.category,
            type_code: e.type_code,
            class_code: e.class,
            date: date(&e.date)?,
            author: e.author,
            id: e.id,
            ..Default::default()
        },
    })
}

/// Accepts 2021-04-19 and the French 19/04/2021.
fn date(s: &str) -> Result<String, String> {
    let s = s.trim();
    let parsed = if s.contains('/') {
        jiff::civil::Date::strptime("%d/%m/%Y", s)
    } else {
        s.parse()
    };
    parsed
        .map(|d| d.to_string())
        .map_err(|_| format!("date {s:?} is not a date like 2021-04-19 or 19/04/2021"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_semicolons_french_headers_and_french_dates() {
        let rows = parse(
            "fichier;catégorie;date;titre;auteur\n\
             cr.pdf;reports;16/04/2021;CR chirurgie genou droit;Pierre Angeli\n\
             \n\
             bio.pdf;biology;2021-01-27;;\n",
            false,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].doc.date, "2021-04-16");
        assert_eq!(rows[0].doc.author, "Pierre Angeli");
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].doc.category, "biology");
    }

    #[test]
    fn every_bad_row_is_reported_by_line_and_no_row_comes_out() {
        let problems = parse(
            "file,category,date\n\
             ok.pdf,reports,2021-04-16\n\
             bad.pdf,reports,hier\n\
             short.pdf,reports\n\
             ../etc/passwd,reports,2021-01-01\n\
             ,reports,2021-01-01\n",
            false,
        )
        .unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{problems:?}");
        assert!(problems[0].reason.contains("hier"));
        assert!(problems[1].reason.contains("2 fields"), "{problems:?}");
        assert!(problems[2].reason.contains("inside the import folder"));
    }

    #[test]
    fn an_unknown_column_is_named() {
        let problems = parse(
            "file,category,date,colour\na.pdf,other,2021-01-01,red\n",
            false,
        )
        .unwrap_err();
        assert!(problems[0].reason.contains("colour"), "{problems:?}");
    }

    #[test]
    fn json_lines_and_arrays() {
        let lines = parse(
            "{\"file\":\"a.pdf\",\"category\":\"other\",\"date\":\"2021-01-01\"}\n\n{\"file\":\"b.pdf\",\"category\":\"other\",\"date\":\"1er janvier\"}\n",
            true,
        )
        .unwrap_err();
        assert_eq!(lines[0].line, 3);
        let rows = parse(
            r#"[{"file":"a.pdf","category":"other","date":"2021-01-01","id":"x1"}]"#,
            true,
        )
        .unwrap();
        assert_eq!(rows[0].doc.id, "x1");
        assert!(parse("", true).is_err());
    }
}
