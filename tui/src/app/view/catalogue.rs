//! Catalogue (F6): the services the authorities approved, each with its referencing
//! criteria, eco-score, hosting and control country, whether it is suspended (hosting or
//! control outside the EU), and what this person allows it to exchange. `a` allows the
//! selected service (choosing the data), `x` revokes it.

use super::{list, selection, text, Arrange, Item, Page};
use crate::app::state::{Screen, State};
use mes_protocol::enrolment::catalogue::ServiceView;

/// The selected service.
pub fn selected(s: &State) -> Option<&ServiceView> {
    s.catalogue.get(s.cursor(Screen::Catalogue, 0))
}

fn tag(s: &State, v: &ServiceView) -> String {
    if v.suspended_fr.is_some() {
        s.t("catalogue.suspended").into()
    } else if v.allowed.is_empty() {
        s.t("catalogue.not_allowed").into()
    } else {
        s.tf("catalogue.allowed", &[("data", &v.allowed.join(", "))])
    }
}

fn details(s: &State, v: &ServiceView) -> Vec<String> {
    let sv = &v.service;
    let yes_no = |b: bool| s.t(if b { "catalogue.yes" } else { "catalogue.no" });
    let c = &sv.criteria;
    let fr = s.lang() == crate::app::i18n::Lang::Fr;
    let mut lines = vec![
        format!("{} — {}", sv.name, sv.editor),
        if fr {
            sv.description_fr.clone()
        } else {
            sv.description_en.clone()
        },
        sv.url.clone(),
        format!(
            "{} : {} {} · {} {} · {} {} · {} {} · {} {}",
            s.t("catalogue.criteria"),
            s.t("catalogue.technical"),
            yes_no(c.technical),
            s.t("catalogue.ethical"),
            yes_no(c.ethical),
            s.t("catalogue.security"),
            yes_no(c.security),
            s.t("catalogue.interoperability"),
            yes_no(c.interoperability),
            s.t("catalogue.eco"),
            c.eco_score
        ),
        format!(
            "{} : {} · {} : {}",
            s.t("catalogue.hosting"),
            sv.hosting_country,
            s.t("catalogue.controller"),
            sv.controller_country
        ),
        format!("{} : {}", s.t("catalogue.data"), sv.data.join(", ")),
    ];
    let why = if fr { &v.suspended_fr } else { &v.suspended_en };
    if let Some(why) = why {
        lines.push(format!("⚠ {why}"));
    }
    lines.push(tag(s, v));
    lines
}

/// The page.
pub fn page(s: &State) -> Page {
    let (c, f) = selection(s, Screen::Catalogue, 0);
    let services = list(
        s,
        s.t("catalogue.title").into(),
        s.catalogue.len(),
        c,
        f,
        "catalogue.none",
        |i| {
            let v = &s.catalogue[i];
            Item {
                text: format!(
                    "{} ({}, {})",
                    v.service.name, v.service.criteria.eco_score, v.service.hosting_country
                ),
                tag: Some(format!("[{}]", tag(s, v))),
            }
        },
    )
    .or_error(s, crate::app::action::Slot::Catalogue);
    let mut about = selected(s).map(|v| details(s, v)).unwrap_or_default();
    about.push(String::new());
    about.push(s.t("catalogue.about").into());
    about.push(s.t("catalogue.hint").into());
    Page {
        arrange: Arrange::Rows,
        sections: vec![services, text(String::new(), about)],
    }
}
