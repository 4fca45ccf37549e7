//! Operator CSV files checked whole (the directory, the population): the header must be
//! exactly the expected one, each row is turned into a value or a reason, and any bad
//! row means nothing is imported; every problem is named with its line.

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Line in the file, from 1 (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Parses `text` with `header`, each record through `row` (given its line and a field
/// getter), into every value or every bad row.
pub fn parse<T>(
    text: &str,
    header: &[&str],
    mut row: impl FnMut(u64, &dyn Fn(usize) -> String) -> Result<T, String>,
) -> Result<Vec<T>, Vec<BadRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    match reader.headers() {
        Ok(h) if h.iter().eq(header.iter().copied()) => {}
        Ok(h) => {
            return Err(vec![BadRow {
                line: 1,
                reason: format!(
                    "header is {:?}; expected {}",
                    h.iter().collect::<Vec<_>>(),
                    header.join(",")
                ),
            }])
        }
        Err(e) => {
            return Err(vec![BadRow {
                line: 1,
                reason: e.to_string(),
            }])
        }
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(csv::Position::line).unwrap_or(0);
                bad.push(BadRow {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map(csv::Position::line).unwrap_or(0);
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        match row(line, &field) {
            Ok(r) => rows.push(r),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    if bad.is_empty() {
        Ok(rows)
    } else {
        Err(bad)
    }
}
