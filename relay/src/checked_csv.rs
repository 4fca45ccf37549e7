//! Operator CSV files checked row by row (the directory, the population): the header must
//! be exactly the expected one, each row is turned into a value or a reason, and every
//! problem is named with its line. A caller imports nothing when any row is bad
//! ([`parse`]) or the good rows and a list of the bad ones ([`parse_rows`]). Files come as
//! spreadsheets export them: UTF-8 with or without a byte-order mark, CRLF or LF, `,` or
//! another separator; another encoding is named, never guessed into garbage ([`decode`]).

use mes_protocol::invalid::Invalid;
/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Line in the file, from 1 (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// The text of a file's bytes: UTF-8, its byte-order mark dropped. UTF-16 and bytes that
/// are not UTF-8 (a Windows-1252 or Latin-1 export) are refused by name, with the first
/// bad byte, so the operator saves the file as UTF-8 rather than importing mangled names.
pub fn decode(bytes: &[u8]) -> Result<String, Invalid> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Invalid::from(
            "the file is UTF-16: save it as UTF-8 (CSV UTF-8 in a spreadsheet)",
        ));
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Invalid(format!(
            "the file is not UTF-8 (byte {at}, 0x{:02X}): it looks like a Windows-1252 or Latin-1 export; save it as UTF-8 (CSV UTF-8 in a spreadsheet)",
            bytes[at]
        ))
    })
}

/// Parses `text` with `header`, each record through `row` (given its line and a field
/// getter, answering the value or why the row is refused, in words), into every value or
/// every bad row.
pub fn parse<T>(
    text: &str,
    header: &[&str],
    row: impl FnMut(u64, &dyn Fn(usize) -> String) -> Result<T, String>,
) -> Result<Vec<T>, Vec<BadRow>> {
    let (rows, bad) = parse_rows(text, header, b',', row);
    if bad.is_empty() {
        Ok(rows)
    } else {
        Err(bad)
    }
}

/// Parses `text` separated by `delimiter` into the good rows and the bad ones; a wrong
/// header makes every row bad (one entry, line 1).
pub fn parse_rows<T>(
    text: &str,
    header: &[&str],
    delimiter: u8,
    mut row: impl FnMut(u64, &dyn Fn(usize) -> String) -> Result<T, String>,
) -> (Vec<T>, Vec<BadRow>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    match reader.headers() {
        Ok(h) if h.iter().eq(header.iter().copied()) => {}
        Ok(h) => {
            let reason = format!(
                "header is {:?}; expected {}{}",
                h.iter().collect::<Vec<_>>(),
                header.join(&(delimiter as char).to_string()),
                if h.len() == 1 && h.iter().any(|f| f.contains(';')) {
                    " (separated by `;`? give --delimiter ';')"
                } else {
                    ""
                }
            );
            return (Vec::new(), vec![BadRow { line: 1, reason }]);
        }
        Err(e) => {
            return (
                Vec::new(),
                vec![BadRow {
                    line: 1,
                    reason: e.to_string(),
                }],
            )
        }
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut lines = Lines::new(text);
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.at(p));
                bad.push(BadRow {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.at(p));
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        match row(line, &field) {
            Ok(r) => rows.push(r),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    (rows, bad)
}

/// The line, from 1, where a record starts, from its byte offset: after a CRLF line end
/// the csv crate starts the next record at the `\n` (and counts its line one short).
/// Records come in order, so the newlines are counted from the previous record on: one
/// pass over the file, not one per record (3.4 million rows read in seconds, not hours).
struct Lines<'a> {
    bytes: &'a [u8],
    /// Up to where newlines are counted, and how many there were before it.
    counted: (usize, u64),
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            bytes: text.as_bytes(),
            counted: (0, 0),
        }
    }

    fn at(&mut self, p: &csv::Position) -> u64 {
        let at = (p.byte() as usize).min(self.bytes.len());
        let (from, before) = self.counted;
        let before = if at < from {
            count_newlines(&self.bytes[..at])
        } else {
            before + count_newlines(&self.bytes[from..at])
        };
        self.counted = (at, before);
        before + 1 + u64::from(self.bytes.get(at) == Some(&b'\n'))
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_exports_are_read_and_other_encodings_named() {
        let header = ["a", "b"];
        let row = |_: u64, f: &dyn Fn(usize) -> String| Ok::<_, String>((f(0), f(1)));
        // UTF-8 with a byte-order mark, CRLF, `;`: what a French spreadsheet exports.
        let bytes = b"\xEF\xBB\xBFa;b\r\nH\xC3\xA9l\xC3\xA8ne;2\r\n";
        let text = decode(bytes).unwrap();
        let (rows, bad) = parse_rows(&text, &header, b';', row);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(rows, vec![("Hélène".to_string(), "2".to_string())]);
        // The same file read with `,` is told to give the separator.
        let (_, bad) = parse_rows(&text, &header, b',', row);
        assert!(bad[0].reason.contains("--delimiter ';'"), "{:?}", bad[0]);
        // Lines are the file's, CRLF or not.
        let bad_row = |_: u64, f: &dyn Fn(usize) -> String| Err::<(), _>(f(0));
        for text in ["a,b\nx,1\ny,2\n", "a,b\r\nx,1\r\ny,2\r\n"] {
            let (_, bad) = parse_rows(text, &header, b',', bad_row);
            let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
            assert_eq!(lines, vec![2, 3], "{text:?}");
        }
        // Latin-1 and UTF-16 are named, not mangled.
        let latin1 = decode(b"a,b\nH\xE9l\xE8ne,2\n").unwrap_err();
        assert!(latin1.contains("not UTF-8 (byte 5, 0xE9)"), "{latin1}");
        assert!(decode(&[0xFF, 0xFE, b'a', 0])
            .unwrap_err()
            .contains("UTF-16"));
    }
}
