//! The sandbox account (F11.3) and synthetic long histories, as plans of ordinary API
//! calls: seed 001's fictitious Inaya M. (her documents and care history exactly as the
//! seed lists them, her children Mathis, Lola and Louis) with years of realistic
//! measurements, vaccinations, appointments and messages; and, for benchmarks, a space of
//! any size (`history`). Planning is pure and deterministic (a seeded RNG); `apply` runs
//! a plan against a daemon through its local API, like any client.

use jiff::civil::Date;
use jiff::ToSpan;
use mes_protocol::ids::SpaceId;
use mes_protocol::record::documents::NewDocument;
use mes_protocol::record::measurements::Measurement;
use mes_protocol::record::messages::Message;
use mes_protocol::record::{RecordEdit, RecordKind, Source};
use mes_protocol::wire::api::{ApiCall, ApiReply};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::{Path, PathBuf};

use mes_client::ApiClient;

/// What to write and which calls to make, in order.
#[derive(Debug, Default)]
pub struct Plan {
    /// Files to write first (absolute path, content).
    pub files: Vec<(PathBuf, String)>,
    /// Calls on the person's own space.
    pub calls: Vec<ApiCall>,
    /// Spaces the person manages (their label, then the calls on each).
    pub children: Vec<(String, Vec<ApiCall>)>,
}

/// A synthetic history's size.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Years back from today.
    pub years: u32,
    /// Documents over those years.
    pub documents: u32,
    /// Measurement points over those years.
    pub measurements: u32,
    /// Days of measurements per call (1: a phone sending each day's readings).
    pub days_per_call: u32,
}

fn put(kind: RecordKind, section: &str, record: serde_json::Value) -> ApiCall {
    ApiCall::RecordEdit {
        kind,
        edit: RecordEdit::Put {
            section: section.into(),
            record: record.to_string(),
        },
    }
}

fn set(kind: RecordKind, field: &str, value: &str) -> ApiCall {
    ApiCall::RecordEdit {
        kind,
        edit: RecordEdit::Set {
            field: field.into(),
            value: value.into(),
        },
    }
}

fn professional(name: &str) -> serde_json::Value {
    json!({ "kind": "professional", "name": name })
}

/// A document of the plan: its file (text, so it can be previewed) and its `DocAdd`.
#[allow(clippy::too_many_arguments)]
fn document(
    plan: &mut Plan,
    dir: &Path,
    id: &str,
    file: &str,
    title: &str,
    date: &str,
    author: &str,
    category: &str,
    text: &str,
) {
    let path = dir.join(file);
    plan.files.push((path.clone(), text.to_string()));
    plan.calls.push(ApiCall::DocAdd {
        doc: NewDocument {
            path: path.to_string_lossy().into_owned(),
            title: title.into(),
            category: category.into(),
            date: date.into(),
            author: author.into(),
            id: id.into(),
            source: Source {
                kind: if author.is_empty() {
                    "person"
                } else {
                    "professional"
                }
                .into(),
                name: author.into(),
            },
            ..Default::default()
        },
    });
}

/// The sandbox's own history: six years of use up to today.
pub const SANDBOX_HISTORY: Scale = Scale {
    years: 6,
    documents: 36,
    measurements: 2_400,
    days_per_call: 30,
};

/// Seed 001's sandbox account: Inaya M., born 1988, her record, a history of `scale` up to
/// `today` (`SANDBOX_HISTORY` for the demo, ten years of daily use for the benchmarks),
/// and her three children awaiting their parents' decision.
#[allow(
    clippy::too_many_lines,
    reason = "the sandbox account's content, written out as data"
)]
pub fn seed_001(dir: &Path, today: Date, scale: Scale) -> Plan {
    let mut plan = Plan::default();
    let p = RecordKind::Profile;
    plan.calls.extend([
        set(p, "person.name", "Inaya M."),
        set(p, "person.birth_date", "1988-05-14"),
        set(p, "person.sex", "F"),
        put(p, "conditions", json!({ "id": "menisque", "label": "Lésion méniscale du genou droit", "since": "2021-01", "source": professional("Pierre Angeli") })),
        put(p, "conditions", json!({ "id": "asthme", "label": "Asthme", "since": "1996", "chronic": true, "source": professional("Antoine Robert") })),
        put(p, "conditions", json!({ "id": "diabete-pere", "label": "Diabète de type 2", "history": "family", "relative": "père" })),
        put(p, "treatments", json!({ "id": "ventoline", "label": "Salbutamol (Ventoline) 100 µg", "dosage": "2 bouffées si besoin", "since": "1996", "source": professional("Antoine Robert") })),
        put(p, "treatments", json!({ "id": "paracetamol", "label": "Paracétamol 1 g", "dosage": "1 comprimé 3 fois par jour pendant 6 jours", "since": "2021-02-02", "until": "2021-02-08", "source": professional("Antoine Robert") })),
        put(p, "allergies", json!({ "id": "penicilline", "substance": "Pénicilline", "reaction": "urticaire géante", "major": true })),
        put(p, "allergies", json!({ "id": "acariens", "substance": "Acariens", "reaction": "rhinite" })),
        put(p, "hospitalisations", json!({ "id": "genou", "establishment": "Clinique du Parc, Lyon", "reason": "Arthroscopie du genou droit", "from": "2021-04-15", "until": "2021-04-16", "documents": ["sbx-cr-chirurgie"] })),
        put(p, "contacts", json!({ "id": "confiance", "role": "trusted_person", "name": "Karim M.", "phone": "06 12 34 56 78", "relationship": "frère" })),
        put(p, "contacts", json!({ "id": "mt", "role": "doctor", "name": "Dr Antoine Robert", "phone": "04 72 00 00 00", "relationship": "médecin traitant" })),
        set(p, "wishes.organ_donation", "Je suis donneuse d'organes ; mes proches le savent."),
        set(p, "wishes.personal", "Prévenir mon frère Karim en cas d'hospitalisation."),
        set(p, "situation.floor", "3"),
        set(p, "situation.lift", "true"),
        set(RecordKind::Emergency, "card.blood_group", "A+"),
        set(RecordKind::Emergency, "card.notes", "Asthme : Ventoline dans le sac à main."),
    ]);
    // Her documents, exactly as seed 001 lists them.
    for (id, file, title, date, author, category, text) in [
        ("sbx-prescription-soins", "prescription_soins_infirmiers.txt", "Prescription soins infirmiers", "2021-04-19", "Antoine Robert", "prescriptions", "Soins infirmiers à domicile : pansement et surveillance de la cicatrice du genou droit, tous les deux jours pendant 15 jours."),
        ("sbx-cr-chirurgie", "CR_chirurgie_genou_droit.txt", "CR_chirurgie genou droit - Inaya Michel", "2021-04-16", "Pierre Angeli", "reports", "Compte rendu opératoire. Arthroscopie du genou droit le 15/04/2021 : méniscectomie partielle interne. Suites simples. Appui autorisé, kinésithérapie 10 séances."),
        ("sbx-radio-genou", "Radiologie_genou_droit_20210311.txt", "Radiologie_Inaya Michel_genou droit_20210311", "2021-03-15", "Halima Diallo", "imaging", "Radiographie du genou droit, face et profil, du 11/03/2021. Pas de lésion osseuse. Épanchement articulaire modéré."),
        ("sbx-ordonnance-radio", "ordonnance_radio_genou_droit.txt", "Ordonnance radio genou droit", "2021-02-02", "Antoine Robert", "prescriptions", "Radiographie du genou droit face et profil. Paracétamol 1 g, boîte de 6 comprimés."),
        ("sbx-analyses", "Resultats_AnalyseMed.txt", "Résultats_AnalyseMed_Inaya-Michel", "2021-01-27", "Hun Nguyen", "biology", "Prélèvement du 25/01/2021. NFS normale. CRP 3 mg/L. Glycémie à jeun 0,92 g/L. Cholestérol total 1,85 g/L."),
    ] {
        document(&mut plan, dir, id, file, title, date, author, category, text);
    }
    // Her care history, exactly as seed 001 lists it.
    for (date, label, category) in [
        (
            "2021-04-21",
            "Soins infirmiers",
            "Soins médicaux ou dentaires",
        ),
        (
            "2021-04-15",
            "Acte de chirurgie orthopédique",
            "Hospitalisations",
        ),
        ("2021-03-11", "Radiographie membre inférieur", "Radiologie"),
        (
            "2021-02-02",
            "Paracétamol 1g - boîte de 6 comprimés",
            "Médicaments",
        ),
        ("2021-01-25", "Prélèvement sanguin", "Biologie"),
    ] {
        plan.calls.push(put(
            RecordKind::Care,
            "items",
            json!({ "date": date, "label": label, "category": category }),
        ));
    }
    // Vaccinations since birth, and screenings done.
    let v = RecordKind::Prevention;
    for (rule, date, product) in [
        ("hexa", "1988-07-14", "Tetracoq"),
        ("hexa", "1988-09-14", "Tetracoq"),
        ("hexa", "1989-05-14", "Tetracoq"),
        ("mmr", "1989-05-20", "ROR Vax"),
        ("mmr", "1990-06-02", "ROR Vax"),
        ("dtcap6", "1994-06-01", "Tetravac"),
        ("dtcap11", "1999-09-10", "Repevax"),
        ("dtp_adult", "2013-06-04", "Revaxis"),
    ] {
        plan.calls.push(put(
            v,
            "doses",
            json!({ "rule": rule, "date": date, "product": product }),
        ));
    }
    plan.calls.push(put(
        v,
        "acts",
        json!({ "rule": "cervical", "date": "2023-03-09", "result": "normal" }),
    ));
    // Appointments: the knee's physiotherapy, then the coming ones.
    for (i, day) in [22, 26, 29].into_iter().enumerate() {
        plan.calls.push(put(
            RecordKind::Agenda,
            "appointments",
            json!({ "at": format!("2021-04-{day}T18:00"), "minutes": 30, "title": format!("Kinésithérapie genou ({}/10)", i + 1), "with": "Cabinet de kinésithérapie Bellecour", "place": "Lyon 2e" }),
        ));
    }
    for (in_days, time, title, with, place, remind) in [
        (
            9,
            "09:30",
            "Consultation de suivi",
            "Dr Antoine Robert",
            "Cabinet médical, Lyon 3e",
            1440,
        ),
        (
            23,
            "14:00",
            "Détartrage",
            "Dr Claire Besson, chirurgienne-dentiste",
            "Lyon 6e",
            1440,
        ),
        (
            61,
            "10:15",
            "Bilan ophtalmologique",
            "Dr Samir Haddad",
            "Centre de la vision, Villeurbanne",
            2880,
        ),
        (
            -40,
            "11:00",
            "Vaccination grippe",
            "Pharmacie des Brotteaux",
            "Lyon 6e",
            0,
        ),
    ] {
        let at = today.saturating_add(in_days.days());
        plan.calls.push(put(
            RecordKind::Agenda,
            "appointments",
            json!({ "at": format!("{at}T{time}"), "minutes": 30, "title": title, "with": with, "place": place, "remind_minutes": remind }),
        ));
    }
    // Messages from her professionals; the latest unread.
    plan.calls.extend([
        ApiCall::MessagePost {
            message: Message {
                from: "Dr Pierre Angeli".into(),
                body: "Bonjour Madame, l'intervention s'est bien passée. Je vous revois dans six semaines ; d'ici là, kinésithérapie et appui progressif.".into(),
                ..Default::default()
            },
            subject: "Suite de votre arthroscopie".into(),
        },
        ApiCall::MessagePost {
            message: Message {
                from: "Laboratoire Hun Nguyen".into(),
                body: "Vos résultats d'analyses sont disponibles dans vos documents.".into(),
                attachments: vec!["sbx-analyses".into()],
                receipt_requested: true,
                ..Default::default()
            },
            subject: "Vos résultats sont disponibles".into(),
        },
    ]);
    let history = history(dir, today, scale, 1);
    plan.files.extend(history.files);
    plan.calls.extend(history.calls);
    // Her children: each a space she manages, awaiting the parents' decision (F1.9).
    for (name, birth, sex, doses) in [
        (
            "Mathis M.",
            "2014-09-03",
            "M",
            &[
                ("hexa", "2014-11-03"),
                ("hexa", "2015-01-05"),
                ("mmr", "2015-09-10"),
                ("mmr", "2016-01-12"),
                ("dtcap6", "2020-09-15"),
            ][..],
        ),
        (
            "Lola M.",
            "2017-02-21",
            "F",
            &[
                ("hexa", "2017-04-21"),
                ("hexa", "2017-06-22"),
                ("mmr", "2018-02-27"),
            ][..],
        ),
        (
            "Louis M.",
            "2022-07-08",
            "M",
            &[("hexa", "2022-09-08"), ("pcv", "2022-09-08")][..],
        ),
    ] {
        let mut calls = vec![
            set(p, "person.name", name),
            set(p, "person.birth_date", birth),
            set(p, "person.sex", sex),
            put(
                p,
                "contacts",
                json!({ "role": "legal_representative", "name": "Inaya M.", "relationship": "mère" }),
            ),
        ];
        calls.extend(
            doses
                .iter()
                .map(|(rule, date)| put(v, "doses", json!({ "rule": rule, "date": date }))),
        );
        plan.children.push((name.to_string(), calls));
    }
    plan
}

const AUTHORS: &[&str] = &[
    "Antoine Robert",
    "Hun Nguyen",
    "Halima Diallo",
    "Pierre Angeli",
    "Claire Besson",
    "Samir Haddad",
    "Laboratoire Bio Rhône",
];

const KINDS: &[(&str, &str, &str)] = &[
    (
        "biology",
        "Résultats d'analyses",
        "NFS, ionogramme, glycémie à jeun, bilan lipidique.",
    ),
    (
        "prescriptions",
        "Ordonnance",
        "Traitement de fond, renouvellement pour trois mois.",
    ),
    (
        "reports",
        "Compte rendu de consultation",
        "Examen clinique sans particularité. Poursuite du traitement.",
    ),
    (
        "imaging",
        "Échographie",
        "Échographie abdominale : foie, vésicule et reins normaux.",
    ),
    (
        "prevention",
        "Certificat de vaccination",
        "Vaccination à jour selon le calendrier en vigueur.",
    ),
    (
        "certificates",
        "Certificat médical",
        "Absence de contre-indication à la pratique sportive.",
    ),
];

/// A synthetic history of `scale` ending at `today`: documents spread over the years
/// (ids `sbx-h<seed>-<n>`, so applying twice adds nothing twice), and measurements
/// (weight, blood pressure, heart rate, steps; enough heart-rate points per day to reach
/// the total) sent `days_per_call` days at a time.
pub fn history(dir: &Path, today: Date, scale: Scale, seed: u64) -> Plan {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut plan = Plan::default();
    let days = (scale.years * 365).max(1);
    let start = today.saturating_sub((days as i64).days());
    for n in 0..scale.documents {
        let offset = u64::from(n) * u64::from(days) / u64::from(scale.documents.max(1));
        let day = start.saturating_add((offset as i64).days());
        let (category, title, text) = KINDS[rng.gen_range(0..KINDS.len())];
        let author = AUTHORS[rng.gen_range(0..AUTHORS.len())];
        document(
            &mut plan,
            dir,
            &format!("sbx-h{seed}-{n}"),
            &format!("h{seed}-{n}.txt"),
            &format!("{title} du {}", day.strftime("%d/%m/%Y")),
            &day.to_string(),
            author,
            category,
            &format!("{text}\n{author}, le {}.", day.strftime("%d/%m/%Y")),
        );
    }
    let per_day = scale.measurements / days;
    let mut extra = scale.measurements % days;
    let mut weight = 62.0f64;
    let mut points = Vec::new();
    for d in 0..days {
        let day = start.saturating_add((d as i64).days());
        let mut want = per_day + u32::from(extra > 0);
        extra = extra.saturating_sub(1);
        let point = |kind: &str, hour: u32, value: f64| Measurement {
            kind: kind.into(),
            at: format!("{day}T{hour:02}:{:02}", (d * 7 + hour) % 60),
            value: (value * 10.0).round() / 10.0,
            ..Default::default()
        };
        if want > 0 && d % 7 == 0 {
            weight = (weight + rng.gen_range(-0.4..0.4)).clamp(56.0, 68.0);
            points.push(point("weight", 7, weight));
            want -= 1;
        }
        if want > 0 {
            points.push(point("steps", 22, f64::from(rng.gen_range(3_000..13_000))));
            want -= 1;
        }
        if want >= 2 && d % 3 == 0 {
            points.push(point("systolic", 8, rng.gen_range(108.0..128.0)));
            points.push(point("diastolic", 8, rng.gen_range(65.0..82.0)));
            want -= 2;
        }
        for i in 0..want {
            points.push(point("heart_rate", i % 24, rng.gen_range(58.0..92.0)));
        }
        let last_of_call = (d + 1) % scale.days_per_call.max(1) == 0 || d + 1 == days;
        if last_of_call && !points.is_empty() {
            plan.calls.push(ApiCall::MeasureAdd {
                points: std::mem::take(&mut points),
            });
        }
    }
    plan
}

/// Runs a plan through the daemon's API: writes its files into place, makes its calls on
/// `space` (the first space by default) and creates the managed spaces. Stops at the first
/// refused call, naming it.
pub async fn apply(
    client: &mut ApiClient,
    space: Option<SpaceId>,
    plan: Plan,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<SpaceId>, ApplyError> {
    for (path, text) in &plan.files {
        let write = |source| ApplyError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write)?;
        }
        std::fs::write(path, text).map_err(write)?;
    }
    let total = plan.calls.len() + plan.children.iter().map(|c| c.1.len() + 1).sum::<usize>();
    let mut done = 0;
    for call in plan.calls {
        run(client, space, call).await?;
        done += 1;
        progress(done, total);
    }
    let mut children = Vec::new();
    for (label, calls) in plan.children {
        let ApiReply::SpaceCreated { space } =
            run(client, None, ApiCall::CreateSpace { label }).await?
        else {
            return Err(ApplyError::Refused {
                call: "CreateSpace".into(),
                message: "answered something else".into(),
            });
        };
        for call in calls {
            run(client, Some(space), call).await?;
            done += 1;
            progress(done, total);
        }
        children.push(space);
    }
    Ok(children)
}

async fn run(
    client: &mut ApiClient,
    space: Option<SpaceId>,
    call: ApiCall,
) -> Result<ApiReply, ApplyError> {
    let what = format!("{call:?}");
    client
        .call(space, call)
        .await?
        .map_err(|e| ApplyError::Refused {
            call: what.chars().take(160).collect(),
            message: e.message,
        })
}

/// Why the sandbox account could not be written through the API.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A file the plan holds could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon could not be reached.
    #[error(transparent)]
    Client(#[from] mes_client::ClientError),
    /// The daemon refused a call (the call, shortened, and its answer).
    #[error("{call}: {message}")]
    Refused {
        /// The call.
        call: String,
        /// Why.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_has_the_size_asked_and_is_the_same_each_time() {
        let today: Date = "2026-11-24".parse().unwrap();
        let scale = Scale {
            years: 2,
            documents: 50,
            measurements: 5_000,
            days_per_call: 1,
        };
        let plan = history(Path::new("/tmp/x"), today, scale, 7);
        let points: usize = plan
            .calls
            .iter()
            .map(|c| match c {
                ApiCall::MeasureAdd { points } => points.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(points, 5_000);
        assert_eq!(plan.files.len(), 50);
        let again = history(Path::new("/tmp/x"), today, scale, 7);
        assert_eq!(format!("{:?}", plan.calls), format!("{:?}", again.calls));
    }

    #[test]
    fn the_sandbox_holds_seed_001_exactly() {
        let plan = seed_001(
            Path::new("/tmp/x"),
            "2026-11-24".parse().unwrap(),
            SANDBOX_HISTORY,
        );
        let titles: Vec<String> = plan
            .calls
            .iter()
            .filter_map(|c| match c {
                ApiCall::DocAdd { doc } if !doc.id.starts_with("sbx-h") => {
                    Some(format!("{} {} {}", doc.title, doc.date, doc.author))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            titles,
            [
                "Prescription soins infirmiers 2021-04-19 Antoine Robert",
                "CR_chirurgie genou droit - Inaya Michel 2021-04-16 Pierre Angeli",
                "Radiologie_Inaya Michel_genou droit_20210311 2021-03-15 Halima Diallo",
                "Ordonnance radio genou droit 2021-02-02 Antoine Robert",
                "Résultats_AnalyseMed_Inaya-Michel 2021-01-27 Hun Nguyen",
            ]
        );
        let children: Vec<&str> = plan.children.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(children, ["Mathis M.", "Lola M.", "Louis M."]);
    }
}
