//! Medical profile: every section of F2 on the left, the chosen one on the right; the
//! measurements section charts one kind over time (`[` and `]` change the kind).

use super::{list, or_dash, selection, text, Arrange, Body, Chart, Item, Page, Section};
use crate::app::i18n::Lang;
use crate::app::state::{ProfileSection, Screen, State};
use mes_protocol::record::codes::Codes;

fn yes_no(s: &State, b: bool) -> &'static str {
    s.t(if b { "common.yes" } else { "common.no" })
}

/// The chosen section.
pub fn chosen(s: &State) -> ProfileSection {
    ProfileSection::ALL[s
        .cursor(Screen::Profile, 0)
        .min(ProfileSection::ALL.len() - 1)]
}

/// The lines of a section's detail.
#[allow(
    clippy::too_many_lines,
    reason = "every profile section's layout in one place"
)]
fn detail(s: &State, section: ProfileSection) -> Vec<String> {
    let Some((p, conflicts)) = &s.profile else {
        return vec![s.t("common.loading").into()];
    };
    let src = |src: &mes_protocol::record::Source| {
        if src.name.is_empty() {
            String::new()
        } else {
            format!(" ({} {})", s.t("profile.source"), src.name)
        }
    };
    let mut out: Vec<String> = match section {
        ProfileSection::Person => vec![
            format!("{} : {}", s.t("profile.name"), or_dash(&p.person.name)),
            format!(
                "{} : {}",
                s.t("profile.birth_date"),
                or_dash(&p.person.birth_date)
            ),
            format!("{} : {}", s.t("profile.sex"), or_dash(&p.person.sex)),
        ],
        ProfileSection::Conditions => p
            .conditions
            .iter()
            .map(|c| {
                let mut l = format!("{}  {}", or_dash(&c.since), c.label);
                if c.chronic {
                    l += &format!(" [{}]", s.t("profile.chronic"));
                }
                if c.history == "family" {
                    l += &format!(" [{} {}]", s.t("profile.family"), c.relative);
                }
                l + &src(&c.source)
            })
            .collect(),
        ProfileSection::Treatments => p
            .treatments
            .iter()
            .map(|t| {
                let until = if t.until.is_empty() {
                    s.t("profile.ongoing").to_string()
                } else {
                    format!("→ {}", t.until)
                };
                let anti = if t.anticoagulant {
                    format!(" [{}]", s.t("profile.anticoagulant"))
                } else {
                    String::new()
                };
                format!(
                    "{}  {} {} ({until}){anti}{}",
                    or_dash(&t.since),
                    t.label,
                    t.dosage,
                    src(&t.source)
                )
            })
            .collect(),
        ProfileSection::Allergies => p
            .allergies
            .iter()
            .map(|a| {
                let major = if a.major {
                    format!(" [{}]", s.t("profile.major"))
                } else {
                    String::new()
                };
                format!(
                    "{} — {}{major}{}",
                    a.substance,
                    or_dash(&a.reaction),
                    src(&a.source)
                )
            })
            .collect(),
        ProfileSection::Vaccinations => s
            .prevention
            .iter()
            .flat_map(|pr| pr.doses.iter())
            .map(|d| {
                format!("{}  {} {} {}", d.date, d.rule, d.product, d.lot)
                    .trim_end()
                    .to_string()
            })
            .collect(),
        ProfileSection::Measurements => vec![],
        ProfileSection::Hospitalisations => p
            .hospitalisations
            .iter()
            .map(|h| {
                let docs = if h.documents.is_empty() {
                    String::new()
                } else {
                    format!(
                        " [{} {}]",
                        h.documents.len(),
                        s.t("profile.linked_documents")
                    )
                };
                format!(
                    "{} → {}  {} — {}{docs}",
                    h.from,
                    or_dash(&h.until),
                    h.establishment,
                    h.reason
                )
            })
            .collect(),
        ProfileSection::Wishes => vec![
            format!(
                "{} : {}",
                s.t("profile.advance_directives"),
                or_dash(&p.wishes.advance_directives)
            ),
            format!(
                "{} : {}",
                s.t("profile.organ_donation"),
                or_dash(&p.wishes.organ_donation)
            ),
            format!(
                "{} : {}",
                s.t("profile.personal_wishes"),
                or_dash(&p.wishes.personal)
            ),
        ],
        ProfileSection::Contacts => p
            .contacts
            .iter()
            .map(|c| {
                let role = s.t_or(&format!("profile.role_{}", c.role), &c.role);
                format!("{role} : {} — {} {}", c.name, c.relationship, c.phone)
            })
            .collect(),
        ProfileSection::Situation => {
            let st = &p.situation;
            vec![
                format!(
                    "{} : {}",
                    s.t("profile.lives_alone"),
                    yes_no(s, st.lives_alone)
                ),
                format!("{} : {}", s.t("profile.home_help"), yes_no(s, st.home_help)),
                format!("{} : {}", s.t("profile.floor"), or_dash(&st.floor)),
                format!("{} : {}", s.t("profile.lift"), yes_no(s, st.lift)),
                format!(
                    "{} : {}",
                    s.t("profile.economic_difficulty"),
                    yes_no(s, st.economic_difficulty)
                ),
            ]
        }
        ProfileSection::Emergency => match &s.emergency {
            None => vec![s.t("common.loading").into()],
            Some(e) => {
                let mut v = vec![
                    format!(
                        "{} : {} {}",
                        s.t("profile.blood_group"),
                        or_dash(&e.card.blood_group),
                        e.card.phenotype
                    ),
                    format!(
                        "{} : {}",
                        s.t("profile.anticoagulants"),
                        or_dash(&e.anticoagulants.join(", "))
                    ),
                    format!(
                        "{} : {}",
                        s.t("profile.chronic_conditions"),
                        or_dash(&e.chronic_conditions.join(", "))
                    ),
                    format!(
                        "{} : {}",
                        s.t("profile.major_allergies"),
                        or_dash(&e.major_allergies.join(", "))
                    ),
                ];
                v.extend(
                    e.contacts
                        .iter()
                        .map(|c| format!("{} : {c}", s.t("profile.emergency_contact"))),
                );
                v
            }
        },
    };
    if out.is_empty() {
        out.push(s.t("profile.empty_section").into());
    }
    for c in conflicts {
        out.push(s.tf(
            "profile.conflict",
            &[("path", &c.path), ("values", &c.values.join(" | "))],
        ));
    }
    out
}

/// How many lines the chosen section's detail has (its cursor's range).
pub fn detail_len(s: &State) -> usize {
    detail(s, chosen(s)).len()
}

/// The chart of the chosen measurement kind.
pub fn chart(s: &State) -> Chart {
    let codes = Codes::builtin();
    let Some(kind) = codes.measurement.get(s.measure_kind) else {
        return Chart::default();
    };
    let name = match s.lang() {
        Lang::Fr => &kind.fr,
        Lang::En => &kind.en,
    };
    let title = format!("{name} ({})", kind.unit);
    let day = |at: &str| {
        at.get(..10)
            .and_then(|d| d.parse::<jiff::civil::Date>().ok())
    };
    let first = s.measurements.first().and_then(|m| day(&m.at));
    let points: Vec<(f64, f64)> = s
        .measurements
        .iter()
        .filter_map(|m| {
            let d = day(&m.at)?;
            let x = (d - first?).get_days() as f64;
            Some((x, m.value))
        })
        .collect();
    if points.is_empty() {
        return Chart {
            summary: s.tf("profile.no_points", &[("kind", &title)]),
            title,
            ..Chart::default()
        };
    }
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let last = s.measurements.last().expect("points exist");
    let dates = |m: &mes_protocol::record::measurements::Measurement| {
        m.at.get(..10).unwrap_or(&m.at).to_string()
    };
    let mid = &s.measurements[s.measurements.len() / 2];
    let pad = ((hi - lo) * 0.1).max(0.5);
    Chart {
        summary: s.tf(
            "profile.chart_summary",
            &[
                ("kind", &title),
                ("n", &points.len()),
                ("from", &dates(&s.measurements[0])),
                ("to", &dates(last)),
                ("min", &lo),
                ("max", &hi),
                ("last", &last.value),
            ],
        ),
        title,
        x_labels: vec![dates(&s.measurements[0]), dates(mid), dates(last)],
        y_bounds: [lo - pad, hi + pad],
        points,
    }
}

/// The page.
pub fn page(s: &State) -> Page {
    let (sel, focused) = selection(s, Screen::Profile, 0);
    let sections = list(
        s,
        s.t("screen.profile").into(),
        ProfileSection::ALL.len(),
        sel,
        focused,
        "common.empty",
        |i| Item::new(s.t(ProfileSection::ALL[i].name_key())),
    );
    let section = chosen(s);
    let right = if section == ProfileSection::Measurements {
        Section {
            title: format!(
                "{} — {}",
                s.t("profile.measurements"),
                s.t("profile.kind_keys")
            ),
            body: Body::Chart(chart(s)),
            focused: s.pane(Screen::Profile) == 1,
        }
    } else {
        let lines = detail(s, section);
        let (sel, focused) = selection(s, Screen::Profile, 1);
        if focused {
            list(
                s,
                s.t(section.name_key()).into(),
                lines.len(),
                sel,
                true,
                "profile.empty_section",
                |i| Item::new(lines[i].clone()),
            )
        } else {
            text(s.t(section.name_key()).into(), lines)
        }
    };
    Page {
        arrange: Arrange::Columns(vec![28, 72]),
        sections: vec![sections, right],
    }
}
