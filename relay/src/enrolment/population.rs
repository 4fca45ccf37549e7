//! The insured population the operator imports (F1.1): a CSV of
//! `nir,vitale_serial,last_name,first_names,birth_date,sex,email,postal_address,departement,representatives`,
//! checked whole (see [`crate::checked_csv`]): NIR keys (Corsica included), dates, sex
//! against the NIR, a contact, the département, and each minor's legal representatives
//! (`;`-separated NIRs of people in the same file). Sans IO: today is an input.

use jiff::civil::Date;
use mes_protocol::enrolment::nir::Nir;
use mes_protocol::invalid::Invalid;
use std::collections::HashMap;

pub use crate::checked_csv::BadRow;

/// The expected header.
pub const HEADER: &[&str] = &[
    "nir",
    "vitale_serial",
    "last_name",
    "first_names",
    "birth_date",
    "sex",
    "email",
    "postal_address",
    "departement",
    "representatives",
];

/// One insured person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insured {
    /// NIR (key checked).
    pub nir: Nir,
    /// Carte Vitale serial.
    pub vitale_serial: String,
    /// Last name.
    pub last_name: String,
    /// First names.
    pub first_names: String,
    /// Birth date.
    pub birth_date: Date,
    /// "F" or "M".
    pub sex: String,
    /// Email, if on file.
    pub email: Option<String>,
    /// Postal address, if on file.
    pub postal_address: Option<String>,
    /// Département of residence ("69", "2A", "974"): the campaign's order (F1.2).
    pub departement: String,
    /// A minor's legal representatives (F1.10).
    pub representatives: Vec<Nir>,
}

/// Whether a département code is one ("01".."95", "2A", "2B", "971".."976").
pub fn check_departement(d: &str) -> Result<(), Invalid> {
    let ok = match d.len() {
        2 => {
            matches!(d, "2A" | "2B")
                || d.parse::<u32>()
                    .is_ok_and(|n| (1..=95).contains(&n) && n != 20)
        }
        3 => d.parse::<u32>().is_ok_and(|n| (971..=976).contains(&n)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Invalid::from(format!(
            "département {d:?} is not one (01 to 95, 2A, 2B, 971 to 976)"
        )))
    }
}

/// Parses a population file, or names every bad row (nothing is imported then).
/// Row checks come first; links between rows are reported once every row parses.
pub fn parse(text: &str, today: Date) -> Result<Vec<Insured>, Vec<BadRow>> {
    let (rows, row_bad, link_bad, _) = parse_parts(text, today, b',');
    match (row_bad.is_empty(), link_bad.is_empty()) {
        (true, true) => Ok(rows),
        (true, false) => Err(link_bad),
        (false, _) => Err(row_bad),
    }
}

/// Parses a population file separated by `delimiter` into the people who can be
/// imported and every bad row with its reason. A row that depends on a bad one (a minor
/// whose representative's row is bad) is bad too, with that reason, so what is imported
/// is always complete (F1.1, F1.10).
pub fn parse_rows(text: &str, today: Date, delimiter: u8) -> (Vec<Insured>, Vec<BadRow>) {
    let (rows, bad) = parse_lines(text, today, delimiter);
    (rows.into_iter().map(|(_, r)| r).collect(), bad)
}

/// As [`parse_rows`], each person with their line in the file (so a row refused later,
/// someone already on file, is named by its line too).
pub fn parse_lines(text: &str, today: Date, delimiter: u8) -> (Vec<(u64, Insured)>, Vec<BadRow>) {
    let (rows, mut bad, links, lines) = parse_parts(text, today, delimiter);
    bad.extend(links);
    bad.sort_by_key(|b| b.line);
    let rows = rows.into_iter().map(|r| (lines[&r.nir], r)).collect();
    (rows, bad)
}

/// The people kept, the rows bad in themselves, the rows refused for their links, and
/// the line of each person kept.
type Parts = (Vec<Insured>, Vec<BadRow>, Vec<BadRow>, HashMap<Nir, u64>);

fn parse_parts(text: &str, today: Date, delimiter: u8) -> Parts {
    let mut lines = HashMap::new();
    // Every NIR that parses, good row or not, by its first line.
    let mut seen: HashMap<Nir, u64> = HashMap::new();
    let (mut rows, row_bad) = crate::checked_csv::parse_rows(
        text,
        HEADER,
        delimiter,
        |line_no, field| {
            let nir = Nir::parse(&field(0)).map_err(|e| e.to_string())?;
            seen.entry(nir.clone()).or_insert(line_no);
            let vitale_serial = field(1);
            if vitale_serial.is_empty() || !vitale_serial.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "carte Vitale serial {vitale_serial:?} must be letters and digits, not empty"
                ));
            }
            let (last_name, first_names) = (field(2), field(3));
            if last_name.is_empty() || first_names.is_empty() {
                return Err("last name and first names are required".into());
            }
            let birth_date: Date = field(4)
                .parse()
                .map_err(|e| format!("birth date {:?} is not YYYY-MM-DD: {e}", field(4)))?;
            if birth_date > today {
                return Err(format!("birth date {birth_date} is in the future"));
            }
            let sex = field(5);
            let nir_sex = match nir.as_str().as_bytes()[0] {
                b'1' => Some("M"),
                b'2' => Some("F"),
                _ => None,
            };
            if sex != "F" && sex != "M" {
                return Err(format!("sex {sex:?} is not F or M"));
            }
            if nir_sex.is_some_and(|n| n != sex) {
                return Err(format!(
                    "sex {sex} but the NIR starts with {} ({})",
                    &nir.as_str()[..1],
                    nir_sex.unwrap_or("?")
                ));
            }
            let email = Some(field(6)).filter(|s| !s.is_empty());
            if let Some(e) = &email {
                let at = e.find('@');
                if !at.is_some_and(|i| i > 0 && e[i + 1..].contains('.')) {
                    return Err(format!("email {e:?} is not an address"));
                }
            }
            let postal_address = Some(field(7)).filter(|s| !s.is_empty());
            let departement = field(8);
            check_departement(&departement)?;
            let representatives = field(9)
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Nir::parse(s).map_err(|e| format!("representative {s}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            // A minor is told through their representative (F1.10), whose row has a contact.
            if email.is_none() && postal_address.is_none() && representatives.is_empty() {
                return Err(
                "neither an email, a postal address nor a legal representative: the person cannot be told"
                    .into(),
            );
            }
            if let Some(first) = lines.get(&nir) {
                return Err(format!(
                    "NIR {} is listed twice (first on line {first})",
                    nir.display()
                ));
            }
            lines.insert(nir.clone(), line_no);
            Ok(Insured {
                nir,
                vitale_serial,
                last_name,
                first_names,
                birth_date,
                sex,
                email,
                postal_address,
                departement,
                representatives,
            })
        },
    );
    // Links between rows: a minor has representatives, all adults of this file. Ages
    // are worked out once per birth date (a population has a few tens of thousands).
    let mut ages: HashMap<Date, bool> = HashMap::new();
    let mut adult = |d: Date| {
        *ages.entry(d).or_insert_with(|| {
            mes_protocol::access::authority::age_on(&d.to_string(), today).unwrap_or(0) >= 18
        })
    };
    // A row refused for its links takes with it the rows that need it: check again
    // until nothing more goes (a representative's row, then a minor's).
    let mut bad = Vec::new();
    loop {
        let by_nir: HashMap<&Nir, &Insured> = rows.iter().map(|r| (&r.nir, r)).collect();
        let mut refused = Vec::new();
        for r in &rows {
            let line = lines[&r.nir];
            let minor = !adult(r.birth_date);
            let reason = if minor && r.representatives.is_empty() {
                Some("a minor needs a legal representative to be told".to_string())
            } else if !minor && !r.representatives.is_empty() {
                Some(
                    "an adult has no legal representative here (a guardian is given access later)"
                        .to_string(),
                )
            } else {
                r.representatives.iter().find_map(|n| match by_nir.get(n) {
                    None => Some(match seen.get(n) {
                        Some(l) => format!(
                            "representative {} is on line {l}, which is not imported",
                            n.display()
                        ),
                        None => format!("representative {} is not in this file", n.display()),
                    }),
                    Some(p) if !adult(p.birth_date) => {
                        Some(format!("representative {} is a minor", n.display()))
                    }
                    Some(p) if p.nir == r.nir => {
                        Some("a person cannot represent themselves".into())
                    }
                    _ => None,
                })
            };
            if let Some(reason) = reason {
                refused.push((r.nir.clone(), BadRow { line, reason }));
            }
        }
        if refused.is_empty() {
            break;
        }
        rows.retain(|r| !refused.iter().any(|(n, _)| *n == r.nir));
        bad.extend(refused.into_iter().map(|(_, b)| b));
    }
    (rows, row_bad, bad, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nir(body: &str) -> String {
        let digits = body.replace("2A", "19").replace("2B", "18");
        format!("{body}{:02}", 97 - digits.parse::<u64>().unwrap() % 97)
    }

    fn file(rows: &[String]) -> String {
        format!("{}\n{}\n", HEADER.join(","), rows.join("\n"))
    }

    #[test]
    fn a_family_imports_and_every_bad_row_is_named_with_its_line() {
        let today = jiff::civil::date(2026, 12, 2);
        let inaya = nir("2880569388123");
        let lola = nir("2100669388456");
        let corse = nir("175052A004017");
        let good = file(&[
            format!("{inaya},123456789,M.,Inaya,1988-05-14,F,inaya@example.fr,,69,"),
            format!("{lola},223456789,M.,Lola,2010-06-15,F,,\"3 rue X, 69003 Lyon\",69,{inaya}"),
            format!("{corse},323456789,Santoni,Paul,1975-05-01,M,paul@example.fr,,2A,"),
        ]);
        let rows = parse(&good, today).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].representatives, vec![Nir::parse(&inaya).unwrap()]);
        assert_eq!(rows[2].departement, "2A");

        let mut wrong_key = inaya.clone();
        wrong_key.replace_range(13.., "00");
        let bad = file(&[
            format!("{inaya},123456789,M.,Inaya,1988-05-14,F,inaya@example.fr,,69,"),
            format!("{wrong_key},1,M.,X,1988-05-14,F,x@example.fr,,69,"),
            format!("{lola},2,M.,Lola,2010-06-15,F,,adresse,69,"),
            format!("{corse},3,Santoni,Paul,1975-05-01,F,paul@example.fr,,2A,"),
            format!("{},4,A,B,1990-01-01,M,,,69,", nir("1900169388001")),
            format!("{},5,A,B,1990-01-01,M,a@b.fr,,20,", nir("1900169388002")),
            format!("{inaya},6,Dup,Dup,1988-05-14,F,d@example.fr,,69,"),
        ]);
        let errors = parse(&bad, today).unwrap_err();
        let at = |line: u64| {
            errors
                .iter()
                .find(|b| b.line == line)
                .map(|b| b.reason.clone())
                .unwrap_or_default()
        };
        assert!(at(3).contains("key"), "{errors:?}");
        assert!(at(5).contains("the NIR starts with 1"), "{errors:?}");
        assert!(at(6).contains("neither an email"), "{errors:?}");
        assert!(at(7).contains("département"), "{errors:?}");
        assert!(at(8).contains("listed twice"), "{errors:?}");
        // Row checks first; links are checked once every row parses.
        assert_eq!(errors.len(), 5, "{errors:?}");
        let orphan = file(&[format!("{lola},2,M.,Lola,2010-06-15,F,,adresse,69,")]);
        let e = parse(&orphan, today).unwrap_err();
        assert_eq!((e[0].line, e[0].reason.contains("minor needs")), (2, true));
        let missing = file(&[format!("{lola},2,M.,Lola,2010-06-15,F,,adresse,69,{inaya}")]);
        assert!(parse(&missing, today).unwrap_err()[0]
            .reason
            .contains("not in this file"));
        assert!(parse("nir,x\n", today).unwrap_err()[0]
            .reason
            .contains("header"));
    }

    /// Issue 27, item 2: with rejects, the good rows are kept and every bad one named,
    /// and a minor whose representative's row is refused goes with it, naming that line.
    #[test]
    fn with_rejects_the_good_rows_are_kept_and_dependents_follow_their_representative() {
        let today = jiff::civil::date(2026, 12, 2);
        let inaya = nir("2880569388123");
        let lola = nir("2100669388456");
        let corse = nir("175052A004017");
        let text = file(&[
            format!("{inaya},123456789,M.,Inaya,1988-05-14,F,not-an-address,,69,"),
            format!("{lola},223456789,M.,Lola,2010-06-15,F,,adresse,69,{inaya}"),
            format!("{corse},323456789,Santoni,Paul,1975-05-01,M,paul@example.fr,,2A,"),
            format!("{corse},423456789,Santoni,Paul,1975-05-01,M,paul@example.fr,,2A,"),
        ]);
        let (rows, bad) = parse_rows(&text, today, b',');
        assert_eq!(rows.len(), 1, "{bad:?}");
        assert_eq!(
            rows[0].vitale_serial, "323456789",
            "the first of a duplicate is kept"
        );
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![2, 3, 5], "{bad:?}");
        assert!(bad[0].reason.contains("email"), "{bad:?}");
        assert!(bad[1].reason.contains("which is not imported"), "{bad:?}");
        assert!(bad[2].reason.contains("first on line 4"), "{bad:?}");
        // Control: the same file checked whole imports nothing.
        assert!(parse(&text, today).is_err());
    }
}
