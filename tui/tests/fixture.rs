//! A fixed state for the screen tests: what the daemon would have answered for a small
//! space on 2026-12-01, fed through `update` like real answers.

use mes_protocol::agenda::{AgendaItem, Appointment};
use mes_protocol::api::{ApiReply, DeviceSummary, SpaceSummary, StatusReport};
use mes_protocol::care::{CareHistory, CareItem};
use mes_protocol::documents::{DocumentMeta, Visibility};
use mes_protocol::ids::{DeviceId, PrincipalId, SpaceId};
use mes_protocol::measurements::Measurement;
use mes_protocol::messages::{Message, Messages, Thread};
use mes_protocol::record::{
    Allergy, Condition, Contact, Emergency, EmergencyCard, Person, PreventionRecord, Profile,
    RecordBody, ReminderItem, Treatment, VaccineDose,
};
use mes_tui::app::action::{Action, Slot};
use mes_tui::app::i18n::Lang;
use mes_tui::app::settings::Settings;
use mes_tui::app::state::State;
use mes_tui::app::update::update;

fn id<T: std::str::FromStr>(byte: u8, len: usize) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("{byte:02x}").repeat(len).parse().unwrap()
}

/// The own space, then a child's.
pub fn spaces() -> (SpaceId, SpaceId) {
    (id(0x11, 16), id(0x22, 16))
}

fn doc(
    i: u32,
    title: &str,
    date: &str,
    author: &str,
    category: &str,
    hidden: bool,
) -> DocumentMeta {
    DocumentMeta {
        id: format!("doc-{i}"),
        title: title.into(),
        date: date.into(),
        author: author.into(),
        category: category.into(),
        type_code: "11502-2".into(),
        file_name: format!("doc-{i}.txt"),
        media_type: "text/plain".into(),
        size: 120,
        visibility: Visibility {
            hidden_from_professionals: hidden,
            ..Default::default()
        },
        excerpt: format!("{title}.\nHémoglobine 13,2 g/dL."),
        ..Default::default()
    }
}

/// The documents of the fixture, newest first.
pub fn documents() -> Vec<DocumentMeta> {
    vec![
        doc(
            5,
            "Compte rendu d'arthroscopie du genou",
            "2026-11-20",
            "Dr Pierre Angeli",
            "reports",
            false,
        ),
        doc(
            4,
            "Résultats d'analyses",
            "2026-10-01",
            "Laboratoire Bio Rhône",
            "biology",
            false,
        ),
        doc(
            3,
            "Consultation de psychologie",
            "2026-06-12",
            "Mme Sophie Laurent",
            "reports",
            true,
        ),
        doc(
            2,
            "Radiologie genou droit",
            "2021-03-15",
            "Halima Dialo",
            "imaging",
            false,
        ),
        doc(
            1,
            "Résultats_AnalyseMed",
            "2021-01-27",
            "Hun Nguyen",
            "biology",
            false,
        ),
    ]
}

fn profile() -> Profile {
    Profile {
        person: Person {
            name: "Inaya M.".into(),
            birth_date: "1988-05-14".into(),
            sex: "F".into(),
        },
        conditions: vec![Condition {
            id: "c1".into(),
            label: "Asthme".into(),
            since: "2004".into(),
            chronic: true,
            ..Default::default()
        }],
        treatments: vec![Treatment {
            id: "t1".into(),
            label: "Salbutamol".into(),
            dosage: "100 µg si besoin".into(),
            since: "2004".into(),
            ..Default::default()
        }],
        allergies: vec![Allergy {
            id: "a1".into(),
            substance: "Pénicilline".into(),
            reaction: "urticaire".into(),
            major: true,
            ..Default::default()
        }],
        contacts: vec![Contact {
            id: "k1".into(),
            role: "trusted_person".into(),
            name: "Karim M.".into(),
            phone: "06 12 34 56 78".into(),
            relationship: "frère".into(),
        }],
        ..Default::default()
    }
}

fn answer(s: &mut State, slot: Slot, reply: ApiReply) {
    update(s, Action::Answer(slot, Ok(reply)));
}

/// The state after every first answer, in `lang`, tutorial seen, at 100 x 30.
pub fn state(lang: Lang, linear: bool) -> State {
    let settings = Settings {
        lang,
        linear,
        tutorial_done: true,
        ..Settings::default()
    };
    let mut s = State::new(settings, "2026-12-01".parse().unwrap());
    s.size = (100, 30);
    let (own, child) = spaces();
    let owner: PrincipalId = id(0x33, 32);
    answer(
        &mut s,
        Slot::Status,
        ApiReply::Status(StatusReport {
            online: true,
            relay: "127.0.0.1:4433".into(),
            volumes: vec![],
        }),
    );
    answer(
        &mut s,
        Slot::Spaces,
        ApiReply::Spaces(vec![
            SpaceSummary {
                space: child,
                label: "Mathis M.".into(),
                owner,
            },
            SpaceSummary {
                space: own,
                label: "personal".into(),
                owner,
            },
        ]),
    );
    answer(
        &mut s,
        Slot::Devices,
        ApiReply::Devices(vec![
            DeviceSummary {
                device: id(0x44, 32),
                name: "ordinateur".into(),
                this_device: true,
            },
            DeviceSummary {
                device: id(0x55, 32),
                name: "téléphone".into(),
                this_device: false,
            },
        ]),
    );
    let docs = documents();
    answer(
        &mut s,
        Slot::HomeDocs,
        ApiReply::Documents {
            total: 5,
            docs: docs.clone(),
        },
    );
    answer(&mut s, Slot::Docs, ApiReply::Documents { total: 5, docs });
    let care = CareHistory {
        items: vec![
            CareItem {
                id: "h1".into(),
                date: "2021-04-15".into(),
                label: "Acte de chirurgie orthopédique".into(),
                category: "act".into(),
            },
            CareItem {
                id: "h2".into(),
                date: "2021-01-25".into(),
                label: "Prélèvement sanguin".into(),
                category: "biology".into(),
            },
        ],
    };
    let record = |body| ApiReply::Record {
        record: body,
        conflicts: vec![],
    };
    answer(&mut s, Slot::Care, record(RecordBody::Care(Box::new(care))));
    answer(
        &mut s,
        Slot::Reminders,
        ApiReply::Reminders(vec![ReminderItem {
            rule: "dtp-adult".into(),
            dose: None,
            fr: "Rappel diphtérie, tétanos, poliomyélite (25 ans)".into(),
            en: "Diphtheria, tetanus, polio booster (25)".into(),
            from: "2026-12-15".into(),
            until: None,
            status: "Due".into(),
        }]),
    );
    let messages = Messages {
        threads: vec![Thread {
            id: "th1".into(),
            subject: "Suite de votre arthroscopie".into(),
            participants: vec!["Dr Pierre Angeli".into()],
            started_at: "2026-11-21T09:00:00+01:00".into(),
        }],
        messages: [(
            "m1".to_string(),
            Message {
                id: "m1".into(),
                thread: "th1".into(),
                from: "Dr Pierre Angeli".into(),
                at: "2026-11-21T09:00:00+01:00".into(),
                body: "Bonjour Madame, l'intervention s'est bien passée.".into(),
                attachments: vec!["consignes.pdf".into()],
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
    };
    answer(
        &mut s,
        Slot::Messages,
        record(RecordBody::Messages(Box::new(messages))),
    );
    answer(
        &mut s,
        Slot::Profile,
        ApiReply::Record {
            record: RecordBody::Profile(Box::new(profile())),
            conflicts: vec![],
        },
    );
    answer(
        &mut s,
        Slot::Prevention,
        record(RecordBody::Prevention(Box::new(PreventionRecord {
            doses: vec![VaccineDose {
                id: "v1".into(),
                rule: "dtp".into(),
                date: "2013-05-14".into(),
                product: "Revaxis".into(),
                ..Default::default()
            }],
            acts: vec![],
        }))),
    );
    answer(
        &mut s,
        Slot::Emergency,
        record(RecordBody::Emergency(Box::new(Emergency {
            card: EmergencyCard {
                blood_group: "A+".into(),
                ..Default::default()
            },
            major_allergies: vec!["Pénicilline (urticaire)".into()],
            ..Default::default()
        }))),
    );
    let points = (0..24)
        .map(|i| Measurement {
            id: format!("p{i}"),
            kind: "weight".into(),
            at: format!("{}-{:02}-01T08:00", 2025 + i / 12, i % 12 + 1),
            value: 62.0 + f64::from(i % 5) * 0.4,
            ..Default::default()
        })
        .collect();
    answer(&mut s, Slot::Measurements, ApiReply::Measurements(points));
    answer(
        &mut s,
        Slot::Agenda,
        ApiReply::Agenda(vec![AgendaItem::Appointment(Appointment {
            id: "r1".into(),
            at: "2026-12-10T09:30".into(),
            minutes: 20,
            title: "Consultation de suivi".into(),
            with: "Dr Antoine Robert".into(),
            place: "Lyon 3e".into(),
            ..Default::default()
        })]),
    );
    s
}
