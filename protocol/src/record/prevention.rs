//! Prevention as data (F10, F2.4, F5.2): the vaccine calendar and screening programmes of
//! `protocol/data/prevention.toml`, evaluated against a person's birth date, sex and
//! history into reminders for the agenda. Pure: today is an input.

use crate::invalid::Invalid;
use jiff::civil::Date;
use jiff::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::OnceLock;

/// An age or an interval: years and months ("11Y", "2M", "11Y5M").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Months(pub u32);

impl FromStr for Months {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || format!("{s:?} is not a duration like \"2M\", \"11Y\" or \"11Y5M\"");
        let (mut total, mut digits, mut any) = (0u32, String::new(), false);
        for c in s.chars() {
            match c {
                '0'..='9' => digits.push(c),
                'Y' | 'M' if !digits.is_empty() => {
                    let n: u32 = digits.parse().map_err(|_| bad())?;
                    total += if c == 'Y' { n * 12 } else { n };
                    digits.clear();
                    any = true;
                }
                _ => return Err(Invalid::from(bad())),
            }
        }
        if !any || !digits.is_empty() {
            return Err(Invalid::from(bad()));
        }
        Ok(Months(total))
    }
}

impl<'de> Deserialize<'de> for Months {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Months {
    fn after(self, d: Date) -> Date {
        d.checked_add(Span::new().months(i64::from(self.0)))
            .unwrap_or(Date::MAX)
    }
    fn before(self, d: Date) -> Date {
        d.checked_sub(Span::new().months(i64::from(self.0)))
            .unwrap_or(Date::MIN)
    }
}

/// Sex as the rules use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
}

/// One dose of a series.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dose {
    /// Due from this age.
    pub from: Option<Months>,
    /// Due this long after the previous dose.
    pub after: Option<Months>,
    /// Late after this age.
    pub until: Months,
}

/// A vaccine of the calendar.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vaccine {
    /// Rule id.
    pub id: String,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// Mandatory for children born since 2018.
    #[serde(default)]
    pub mandatory: bool,
    /// A series of doses.
    #[serde(default)]
    pub doses: Vec<Dose>,
    /// How long after the last dose's `until` a missing dose is still reminded.
    pub catch_up: Option<Months>,
    /// Booster ages.
    #[serde(default)]
    pub boosters: Vec<Months>,
}

/// A screening programme, check-up or seasonal vaccine.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Programme {
    /// Rule id.
    pub id: String,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// Only for this sex.
    pub sex: Option<Sex>,
    /// From this age.
    pub from: Months,
    /// Before this age.
    pub until: Option<Months>,
    /// An act within this interval satisfies the programme.
    pub every: Months,
}

/// The whole policy file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Vaccines.
    #[serde(default)]
    pub vaccine: Vec<Vaccine>,
    /// Programmes.
    #[serde(default)]
    pub programme: Vec<Programme>,
}

impl Policy {
    /// Parses and checks a policy file.
    pub fn parse(text: &str) -> Result<Policy, Invalid> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut ids = std::collections::BTreeSet::new();
        for v in &p.vaccine {
            if !ids.insert(v.id.clone()) {
                return Err(Invalid::from(format!("rule {} is defined twice", v.id)));
            }
            if v.doses.is_empty() == v.boosters.is_empty() {
                return Err(Invalid::from(format!(
                    "vaccine {} needs either doses or boosters",
                    v.id
                )));
            }
            if let Some(d) = v.doses.first() {
                if d.from.is_none() {
                    return Err(Invalid::from(format!(
                        "the first dose of {} needs `from`",
                        v.id
                    )));
                }
            }
        }
        for g in &p.programme {
            if !ids.insert(g.id.clone()) {
                return Err(Invalid::from(format!("rule {} is defined twice", g.id)));
            }
        }
        Ok(p)
    }

    /// The policy shipped with this build (protocol/data/prevention.toml).
    pub fn builtin() -> &'static Policy {
        static P: OnceLock<Policy> = OnceLock::new();
        P.get_or_init(|| {
            Policy::parse(include_str!("../../data/prevention.toml"))
                .expect("protocol/data/prevention.toml is checked by a test")
        })
    }
}

/// Where a reminder stands today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Due within the horizon, not yet.
    Upcoming,
    /// Due now.
    Due,
    /// Past its window (catch-up).
    Late,
}

/// A reminder for the agenda.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Rule id.
    pub rule: String,
    /// Dose number (from 1) for a vaccine series.
    pub dose: Option<u32>,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// Due from.
    pub from: Date,
    /// Late after, if the rule says.
    pub until: Option<Date>,
    /// Today's standing.
    pub status: Status,
}

/// What was done: dates per rule id (vaccine doses, screening acts).
pub type History = BTreeMap<String, Vec<Date>>;

fn standing(today: Date, horizon: Date, from: Date, until: Option<Date>) -> Option<Status> {
    if from > horizon {
        None
    } else if from > today {
        Some(Status::Upcoming)
    } else if until.is_some_and(|u| today > u) {
        Some(Status::Late)
    } else {
        Some(Status::Due)
    }
}

/// Reminders due by `today + horizon` for a person born on `birth`, of sex `sex`, with
/// `history`, sorted by due date then rule id.
pub fn evaluate(
    policy: &Policy,
    birth: Date,
    sex: Sex,
    history: &History,
    today: Date,
    horizon: Months,
) -> Vec<Reminder> {
    let until_horizon = horizon.after(today);
    let none = Vec::new();
    let mut out = Vec::new();
    for v in &policy.vaccine {
        let mut done = history.get(&v.id).unwrap_or(&none).clone();
        done.sort();
        if !v.doses.is_empty() {
            let n = done.len();
            let Some(dose) = v.doses.get(n) else { continue };
            let mut from = dose.from.map(|a| a.after(birth)).unwrap_or(birth);
            if let (Some(after), Some(last)) = (dose.after, done.last()) {
                from = from.max(after.after(*last));
            }
            let until = dose.until.after(birth);
            let catch_up = v.catch_up.unwrap_or(Months(12)).after(until);
            if today > catch_up {
                continue;
            }
            if let Some(status) = standing(today, until_horizon, from, Some(until)) {
                out.push(Reminder {
                    rule: v.id.clone(),
                    dose: Some(n as u32 + 1),
                    fr: v.fr.clone(),
                    en: v.en.clone(),
                    from,
                    until: Some(until),
                    status,
                });
            }
        } else {
            // The latest booster age reached by the horizon counts.
            let Some(age) = v
                .boosters
                .iter()
                .rev()
                .find(|a| a.after(birth) <= until_horizon)
            else {
                continue;
            };
            let from = age.after(birth);
            let window_start = Months(12).before(from);
            if done.iter().any(|d| *d >= window_start) {
                continue;
            }
            let until = Months(12).after(from);
            if let Some(status) = standing(today, until_horizon, from, Some(until)) {
                out.push(Reminder {
                    rule: v.id.clone(),
                    dose: None,
                    fr: v.fr.clone(),
                    en: v.en.clone(),
                    from,
                    until: Some(until),
                    status,
                });
            }
        }
    }
    for g in &policy.programme {
        if g.sex.is_some_and(|s| s != sex) {
            continue;
        }
        let start = g.from.after(birth);
        let end = g.until.map(|u| u.after(birth));
        if end.is_some_and(|e| today >= e) {
            continue;
        }
        let last = history.get(&g.id).and_then(|d| d.iter().max().copied());
        let from = match last {
            Some(l) => start.max(g.every.after(l)),
            None => start,
        };
        if end.is_some_and(|e| from >= e) {
            continue;
        }
        if let Some(status) = standing(today, until_horizon, from, None) {
            out.push(Reminder {
                rule: g.id.clone(),
                dose: None,
                fr: g.fr.clone(),
                en: g.en.clone(),
                from,
                until: end,
                status,
            });
        }
    }
    out.sort_by(|a, b| (a.from, &a.rule).cmp(&(b.from, &b.rule)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn rules(r: &[Reminder]) -> Vec<(&str, Option<u32>, Status)> {
        r.iter()
            .map(|r| (r.rule.as_str(), r.dose, r.status))
            .collect()
    }

    #[test]
    fn the_shipped_policy_parses_and_bad_files_are_named() {
        let p = Policy::builtin();
        assert!(p.vaccine.len() >= 10 && p.programme.len() >= 8);
        assert_eq!("11Y5M".parse::<Months>(), Ok(Months(137)));
        assert!("5".parse::<Months>().unwrap_err().contains("\"5\""));
        assert!("Y".parse::<Months>().is_err());
        let twice = "[[programme]]\nid='a'\nfr='a'\nen='a'\nfrom='1Y'\nevery='1Y'\n".repeat(2);
        assert!(Policy::parse(&twice).unwrap_err().contains("defined twice"));
        let bad_age = "[[programme]]\nid='a'\nfr='a'\nen='a'\nfrom='1X'\nevery='1Y'\n";
        assert!(Policy::parse(bad_age).unwrap_err().contains("1X"));
    }

    #[test]
    fn an_infant_gets_the_first_doses_then_the_next_ones() {
        let p = Policy::builtin();
        let birth = date(2026, 6, 1);
        let mut h = History::new();
        let r = evaluate(p, birth, Sex::M, &h, date(2026, 8, 3), Months(0));
        assert_eq!(
            rules(&r),
            vec![
                ("hexa", Some(1), Status::Due),
                ("pcv", Some(1), Status::Due)
            ]
        );
        h.insert("hexa".into(), vec![date(2026, 8, 3)]);
        h.insert("pcv".into(), vec![date(2026, 8, 3)]);
        let r = evaluate(p, birth, Sex::M, &h, date(2026, 8, 10), Months(2));
        assert_eq!(
            rules(&r),
            vec![
                ("menB", Some(1), Status::Upcoming),
                ("hexa", Some(2), Status::Upcoming),
                ("pcv", Some(2), Status::Upcoming),
            ]
        );
        // Never vaccinated at 14 months: the missed doses are late (catch-up).
        let r = evaluate(
            p,
            birth,
            Sex::M,
            &History::new(),
            date(2027, 8, 1),
            Months(0),
        );
        assert!(rules(&r).contains(&("hexa", Some(1), Status::Late)));
        assert!(rules(&r).contains(&("mmr", Some(1), Status::Late)));
        assert!(rules(&r).contains(&("menB", Some(1), Status::Late)));
    }

    #[test]
    fn screenings_follow_sex_age_and_the_last_act() {
        let p = Policy::builtin();
        let birth = date(1975, 3, 10);
        let today = date(2026, 11, 24);
        let r = evaluate(p, birth, Sex::F, &History::new(), today, Months(0));
        let ids: Vec<&str> = r.iter().map(|r| r.rule.as_str()).collect();
        for id in ["breast", "colorectal", "cervical"] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        let men = evaluate(p, birth, Sex::M, &History::new(), today, Months(0));
        assert!(!men
            .iter()
            .any(|r| r.rule == "breast" || r.rule == "cervical"));
        let mut h = History::new();
        h.insert("breast".into(), vec![date(2025, 12, 1)]);
        let r = evaluate(p, birth, Sex::F, &h, today, Months(0));
        assert!(!r.iter().any(|r| r.rule == "breast"), "done a year ago");
        let r = evaluate(p, birth, Sex::F, &h, today, Months(13));
        let next = r.iter().find(|r| r.rule == "breast").expect("due in 2027");
        assert_eq!(
            (next.from, next.status),
            (date(2027, 12, 1), Status::Upcoming)
        );
        // Past 75: no more breast screening.
        let r = evaluate(
            p,
            date(1940, 1, 1),
            Sex::F,
            &History::new(),
            today,
            Months(0),
        );
        assert!(!r.iter().any(|r| r.rule == "breast"));
        assert!(r.iter().any(|r| r.rule == "flu65"));
    }

    #[test]
    fn adult_boosters_count_the_latest_age_reached() {
        let p = Policy::builtin();
        let birth = date(1980, 5, 5);
        let today = date(2026, 11, 24); // 46: the 45-year booster is late
        let r = evaluate(p, birth, Sex::M, &History::new(), today, Months(0));
        let dtp = r.iter().find(|r| r.rule == "dtp_adult").expect("dtp");
        assert_eq!((dtp.from, dtp.status), (date(2025, 5, 5), Status::Late));
        let mut h = History::new();
        h.insert("dtp_adult".into(), vec![date(2024, 9, 1)]); // a year early counts
        let r = evaluate(p, birth, Sex::M, &h, today, Months(0));
        assert!(!r.iter().any(|r| r.rule == "dtp_adult"));
    }
}
