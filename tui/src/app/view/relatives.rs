//! Relatives (F9) and the profile switcher of enrolment (F1.10): the person's own space,
//! the spaces they manage (their children's), and the profiles they follow with the hub
//! that have no space yet, each with its status ("En attente de décision"). Enter shows a
//! profile on every screen; `a` activates it, `o` opposes, `n` follows a new one.

use super::{list, selection, Arrange, Item, Page};
use crate::app::state::{Screen, State, OWN_SPACE_LABEL};
use mes_protocol::enrolment::EnrolProfile;

/// One row of the switcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// A space this daemon holds (index into `spaces`).
    Space(usize),
    /// A followed profile without a space yet (index into `enrol_profiles`).
    Pending(usize),
}

/// The rows: spaces first (the person's own first), then profiles not activated here.
pub fn rows(s: &State) -> Vec<Row> {
    let mut out: Vec<Row> = (0..s.spaces.len()).map(Row::Space).collect();
    out.extend(
        s.enrol_profiles
            .iter()
            .enumerate()
            .filter(|(_, p)| profile_space(s, p).is_none())
            .map(|(i, _)| Row::Pending(i)),
    );
    out
}

/// The space a profile is about: its activated space, or the space of its label.
fn profile_space(s: &State, p: &EnrolProfile) -> Option<usize> {
    s.spaces
        .iter()
        .position(|sp| Some(sp.space) == p.space || sp.label == p.label)
}

/// The followed profile of a row, if any.
pub fn profile_of(s: &State, row: Row) -> Option<&EnrolProfile> {
    match row {
        Row::Pending(i) => s.enrol_profiles.get(i),
        Row::Space(i) => {
            let sp = s.spaces.get(i)?;
            s.enrol_profiles
                .iter()
                .find(|p| p.space == Some(sp.space) || p.label == sp.label)
        }
    }
}

/// The profile name a row stands for (the label its space has or will have).
pub fn profile_label(s: &State, row: Row) -> String {
    match (row, profile_of(s, row)) {
        (_, Some(p)) => p.label.clone(),
        (Row::Space(i), None) => s
            .spaces
            .get(i)
            .map_or(OWN_SPACE_LABEL.to_string(), |sp| sp.label.clone()),
        (Row::Pending(_), None) => String::new(),
    }
}

/// The selected row.
pub fn selected(s: &State) -> Option<Row> {
    rows(s).get(s.cursor(Screen::Relatives, 0)).copied()
}

/// A status in words, short (`enrol.status_notified`: "En attente de décision").
pub fn status_words(s: &State, p: &EnrolProfile) -> String {
    let key = format!("enrol.status_{}", p.status.status.replace('-', "_"));
    s.t_or(&key, &p.status.status)
}

/// The page.
pub fn page(s: &State) -> Page {
    let (c, f) = selection(s, Screen::Relatives, 0);
    let own = s.spaces.first().map(|x| x.owner);
    let all = rows(s);
    let profiles = list(
        s,
        s.t("relatives.title").into(),
        all.len(),
        c,
        f,
        "relatives.none",
        |i| {
            let row = all[i];
            let mut tags = Vec::new();
            let text = match row {
                Row::Space(j) => {
                    let sp = &s.spaces[j];
                    if Some(sp.space) == s.space {
                        tags.push(s.t("relatives.shown").to_string());
                    }
                    if j > 0 && Some(sp.owner) == own {
                        tags.push(s.t("relatives.managed").to_string());
                    }
                    s.space_name(sp)
                }
                Row::Pending(j) => s.enrol_profiles[j].label.clone(),
            };
            if let Some(p) = profile_of(s, row) {
                tags.push(status_words(s, p));
            }
            Item {
                text,
                tag: (!tags.is_empty()).then(|| format!("[{}]", tags.join(", "))),
            }
        },
    );
    let mut detail = Vec::new();
    if let Some(p) = selected(s).and_then(|r| profile_of(s, r)) {
        detail.push(p.status.detail.clone());
    }
    detail.push(s.t("relatives.hint").into());
    Page {
        arrange: Arrange::Rows,
        sections: vec![profiles, super::text(String::new(), detail)],
    }
}
