//! What the types alone cannot check: dates, sexes and rule ids of record documents, and
//! the reminders computed from them (F10).

use jiff::civil::Date;
use mes_protocol::invalid::Invalid;
use mes_protocol::record::prevention::{evaluate, History, Months, Policy, Sex};
use mes_protocol::record::{PreventionRecord, Profile, ReminderItem};

fn date(what: &str, s: &str) -> Result<Date, Invalid> {
    s.parse::<Date>()
        .map_err(|_| Invalid(format!("{what} {s:?} is not a date like 2026-11-24")))
}

fn sex(s: &str) -> Result<Sex, Invalid> {
    match s {
        "F" => Ok(Sex::F),
        "M" => Ok(Sex::M),
        _ => Err(Invalid::from(format!("sex {s:?} must be \"F\" or \"M\""))),
    }
}

/// The profile: its person's birth date and sex, when given.
pub fn profile(p: &Profile) -> Result<(), Invalid> {
    if !p.person.birth_date.is_empty() {
        date("birth_date", &p.person.birth_date)?;
    }
    if !p.person.sex.is_empty() {
        sex(&p.person.sex)?;
    }
    Ok(())
}

/// A rule id the policy knows (`what`: "vaccine" or "programme") and a date.
fn known(what: &str, rule: &str, at: &str, ids: &[&str]) -> Result<(), Invalid> {
    if !ids.contains(&rule) {
        return Err(Invalid::from(format!(
            "unknown {what} {rule:?}; known: {}",
            ids.join(", ")
        )));
    }
    date("date", at).map(|_| ())
}

/// The prevention record: every rule known to the shipped policy, every date a date.
pub fn prevention(r: &PreventionRecord) -> Result<(), Invalid> {
    let policy = Policy::builtin();
    let vaccines: Vec<&str> = policy.vaccine.iter().map(|v| v.id.as_str()).collect();
    let programmes: Vec<&str> = policy.programme.iter().map(|p| p.id.as_str()).collect();
    for d in &r.doses {
        known("vaccine", &d.rule, &d.date, &vaccines)?;
    }
    for a in &r.acts {
        known("programme", &a.rule, &a.date, &programmes)?;
    }
    Ok(())
}

/// Reminders due by `today + months`.
pub fn reminders(
    profile: &Profile,
    record: &PreventionRecord,
    today: Date,
    months: u32,
) -> Result<Vec<ReminderItem>, Invalid> {
    if profile.person.birth_date.is_empty() || profile.person.sex.is_empty() {
        return Err(Invalid::from(
            "reminders need the person's birth date and sex: mes profile set person.birth_date 1990-05-04; mes profile set person.sex F",
        ));
    }
    let birth = date("birth_date", &profile.person.birth_date)?;
    let sex = sex(&profile.person.sex)?;
    let mut history = History::new();
    for d in &record.doses {
        history
            .entry(d.rule.clone())
            .or_default()
            .push(date("date", &d.date)?);
    }
    for a in &record.acts {
        history
            .entry(a.rule.clone())
            .or_default()
            .push(date("date", &a.date)?);
    }
    Ok(evaluate(
        Policy::builtin(),
        birth,
        sex,
        &history,
        today,
        Months(months),
    )
    .into_iter()
    .map(|r| ReminderItem {
        rule: r.rule,
        dose: r.dose,
        fr: r.fr,
        en: r.en,
        from: r.from.to_string(),
        until: r.until.map(|u| u.to_string()),
        status: format!("{:?}", r.status),
    })
    .collect())
}

/// A civil date-time "2026-12-03T14:30" (or a bare date).
fn when(what: &str, s: &str) -> Result<(), Invalid> {
    if s.parse::<jiff::civil::DateTime>().is_ok() || s.parse::<Date>().is_ok() {
        Ok(())
    } else {
        Err(Invalid::from(format!(
            "{what} {s:?} is not like 2026-12-03T14:30"
        )))
    }
}

/// Blood groups and rhesus.
pub const BLOOD_GROUPS: &[&str] = &["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"];

/// The emergency section: a known blood group.
pub fn emergency(e: &mes_protocol::record::Emergency) -> Result<(), Invalid> {
    let g = &e.card.blood_group;
    if !g.is_empty() && !BLOOD_GROUPS.contains(&g.as_str()) {
        return Err(Invalid::from(format!(
            "blood group {g:?} is not one of {}",
            BLOOD_GROUPS.join(", ")
        )));
    }
    Ok(())
}

/// The agenda: every appointment has a time and a title.
pub fn agenda(a: &mes_protocol::record::agenda::Agenda) -> Result<(), Invalid> {
    for x in &a.appointments {
        when("appointment time", &x.at)?;
        if x.title.trim().is_empty() {
            return Err(Invalid::from(format!("appointment {} has no title", x.id)));
        }
    }
    Ok(())
}

/// Messages: each in a known thread, at a valid time.
pub fn messages(m: &mes_protocol::record::messages::Messages) -> Result<(), Invalid> {
    for x in m.messages.values() {
        if !m.threads.iter().any(|t| t.id == x.thread) {
            return Err(Invalid::from(format!(
                "message {} names no known thread {:?}",
                x.id, x.thread
            )));
        }
        x.at.parse::<jiff::Timestamp>()
            .map_err(|_| format!("message time {:?} is not like 2026-11-24T08:30:00Z", x.at))?;
    }
    Ok(())
}

/// Care history: dates.
pub fn care(c: &mes_protocol::record::care::CareHistory) -> Result<(), Invalid> {
    for x in &c.items {
        date("date", &x.date)?;
    }
    Ok(())
}
