//! The health record's typed documents (docs/health-record.md): each is an automerge
//! document reconciled from and hydrated into Rust types with autosurgeon, plus the
//! conflict report every record kind shares.

use mes_protocol::invalid::Invalid;
pub mod check;
pub mod doc_index;
pub mod documents;
pub mod edit;
pub mod inbox_items;
pub mod measurements;
pub mod messaging;
pub mod notes;
pub mod notifications;
pub mod threads;
pub mod typed;

use automerge::{ObjId, ObjType, ReadDoc, Value, ROOT};
use mes_protocol::ids::SpaceId;
use mes_protocol::record::agenda::Agenda;
use mes_protocol::record::care::CareHistory;
use mes_protocol::record::messages::Messages;
pub use mes_protocol::record::Conflict;
use mes_protocol::record::{
    Emergency, PreventionRecord, Profile, RecordBody, RecordEdit, RecordKind,
};
use mes_protocol::wire::api::ApiError;

use crate::daemon::Daemon;

/// A record document kind: its volume, its sections and what the types cannot check.
pub trait RecordDoc:
    autosurgeon::Hydrate
    + autosurgeon::Reconcile
    + Default
    + serde::Serialize
    + serde::de::DeserializeOwned
{
    /// The volume's label.
    const LABEL: &'static str;
    /// Its sections.
    const SECTIONS: edit::Sections;
    /// Checks an edited document before it is written.
    fn check(&self) -> Result<(), Invalid>;
}

impl RecordDoc for Profile {
    const LABEL: &'static str = crate::daemon::PROFILE;
    const SECTIONS: edit::Sections = edit::PROFILE;
    fn check(&self) -> Result<(), Invalid> {
        check::profile(self)
    }
}

impl RecordDoc for PreventionRecord {
    const LABEL: &'static str = crate::daemon::PREVENTION;
    const SECTIONS: edit::Sections = edit::PREVENTION;
    fn check(&self) -> Result<(), Invalid> {
        check::prevention(self)
    }
}

impl RecordDoc for Emergency {
    const LABEL: &'static str = crate::daemon::EMERGENCY;
    const SECTIONS: edit::Sections = edit::EMERGENCY;
    fn check(&self) -> Result<(), Invalid> {
        check::emergency(self)
    }
}

impl RecordDoc for Agenda {
    const LABEL: &'static str = crate::daemon::AGENDA;
    const SECTIONS: edit::Sections = edit::AGENDA;
    fn check(&self) -> Result<(), Invalid> {
        check::agenda(self)
    }
}

impl RecordDoc for Messages {
    const LABEL: &'static str = crate::daemon::MESSAGES;
    const SECTIONS: edit::Sections = edit::MESSAGES;
    fn check(&self) -> Result<(), Invalid> {
        check::messages(self)
    }
}

impl RecordDoc for CareHistory {
    const LABEL: &'static str = crate::daemon::CARE;
    const SECTIONS: edit::Sections = edit::CARE;
    fn check(&self) -> Result<(), Invalid> {
        check::care(self)
    }
}

/// A record document of any kind, with its conflicts.
pub fn get(
    d: &Daemon,
    space: SpaceId,
    kind: RecordKind,
) -> Result<(RecordBody, Vec<Conflict>), ApiError> {
    fn one<T: RecordDoc>(
        d: &Daemon,
        space: SpaceId,
        wrap: fn(Box<T>) -> RecordBody,
    ) -> Result<(RecordBody, Vec<Conflict>), ApiError> {
        let (t, c) = d.record_get::<T>(space)?;
        Ok((wrap(Box::new(t)), c))
    }
    match kind {
        RecordKind::Profile => one::<Profile>(d, space, RecordBody::Profile),
        RecordKind::Prevention => one::<PreventionRecord>(d, space, RecordBody::Prevention),
        RecordKind::Emergency => one::<Emergency>(d, space, RecordBody::Emergency),
        RecordKind::Agenda => one::<Agenda>(d, space, RecordBody::Agenda),
        RecordKind::Messages => {
            let (m, c) = d.messages_view(space)?;
            Ok((RecordBody::Messages(Box::new(m)), c))
        }
        RecordKind::Care => one::<CareHistory>(d, space, RecordBody::Care),
    }
}

/// Edits a record document of any kind; the id touched.
pub async fn edit(
    d: &Daemon,
    space: SpaceId,
    kind: RecordKind,
    e: &RecordEdit,
) -> Result<String, ApiError> {
    match kind {
        RecordKind::Profile => d.record_edit::<Profile>(space, e).await,
        RecordKind::Prevention => d.record_edit::<PreventionRecord>(space, e).await,
        RecordKind::Emergency => d.record_edit::<Emergency>(space, e).await,
        RecordKind::Agenda => d.record_edit::<Agenda>(space, e).await,
        RecordKind::Messages => d.record_edit::<Messages>(space, e).await,
        RecordKind::Care => d.record_edit::<CareHistory>(space, e).await,
    }
}

/// The actor of every record volume's seed change: the same on every device, so that the
/// seed is one and the same automerge change wherever it is made.
const SEED_ACTOR: &[u8; 16] = b"mes.record.seed.";

/// The first change of a record volume: its typed document, empty, so that every list and
/// map exists before any device edits. Two devices that each created `items` would keep
/// one list of the two and lose the other's records; instead every device derives this
/// same change (fixed actor, time 0, from nothing) when it opens the volume, so the
/// creator's and a joiner's are one change and no list is ever created twice. `None` for
/// volumes that are not records.
pub fn seed_change(label: &str) -> Option<Vec<u8>> {
    fn of<T: autosurgeon::Reconcile + Default>() -> Vec<u8> {
        let mut doc =
            automerge::AutoCommit::new().with_actor(automerge::ActorId::from(&SEED_ACTOR[..]));
        autosurgeon::reconcile(&mut doc, T::default()).expect("an empty record reconciles");
        doc.save_after(&[])
    }
    Some(match label {
        crate::daemon::PROFILE => of::<Profile>(),
        crate::daemon::PREVENTION => of::<PreventionRecord>(),
        crate::daemon::EMERGENCY => of::<Emergency>(),
        crate::daemon::AGENDA => of::<Agenda>(),
        crate::daemon::MESSAGES => of::<Messages>(),
        crate::daemon::CARE => of::<CareHistory>(),
        l if l.starts_with(mes_protocol::record::messages::THREADS_PREFIX) => of::<Messages>(),
        _ => return None,
    })
}

/// Every conflicting field of a document, in path order.
pub fn conflicts(doc: &impl ReadDoc) -> Vec<Conflict> {
    let mut out = Vec::new();
    walk(doc, &ROOT, ObjType::Map, String::new(), &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn show(v: &Value<'_>) -> String {
    match v {
        Value::Scalar(s) => match s.as_ref() {
            automerge::ScalarValue::Str(t) => t.to_string(),
            other => other.to_string(),
        },
        Value::Object(t) => format!("<{t:?}>"),
    }
}

fn walk(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, path: String, out: &mut Vec<Conflict>) {
    let props: Vec<automerge::Prop> = match kind {
        ObjType::Map | ObjType::Table => doc.keys(obj).map(automerge::Prop::Map).collect(),
        ObjType::List => (0..doc.length(obj)).map(automerge::Prop::Seq).collect(),
        ObjType::Text => return,
    };
    for prop in props {
        let here = match &prop {
            automerge::Prop::Map(k) if path.is_empty() => k.clone(),
            automerge::Prop::Map(k) => format!("{path}/{k}"),
            automerge::Prop::Seq(i) => format!("{path}/{i}"),
        };
        let all = doc.get_all(obj, prop).unwrap_or_default();
        if all.len() > 1 {
            // Two devices writing the same thing at once is no conflict to resolve (the
            // emergency copies each device derives from the same profile): only
            // differing values, objects compared by their content, are reported.
            let content = |(v, id): &(Value<'_>, ObjId)| match v {
                Value::Object(_) => doc
                    .hydrate(id, None)
                    .map(|h| format!("{h:?}"))
                    .unwrap_or_default(),
                v => show(v),
            };
            let mut distinct: Vec<String> = all.iter().map(content).collect();
            distinct.sort();
            distinct.dedup();
            if distinct.len() > 1 {
                let mut values: Vec<String> = all.iter().map(|(v, _)| show(v)).collect();
                values.sort();
                out.push(Conflict {
                    path: here.clone(),
                    values,
                });
            }
        }
        // Descend into the winning value's object.
        if let Some((Value::Object(t), id)) = all.last() {
            walk(doc, id, *t, here, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{ActorId, AutoCommit};
    use mes_protocol::record::{Allergy, Profile, Source};

    fn device(actor: u8, base: &AutoCommit) -> AutoCommit {
        base.clone().with_actor(ActorId::from(vec![actor; 16]))
    }

    fn allergy(id: &str, substance: &str) -> Allergy {
        Allergy {
            id: id.into(),
            substance: substance.into(),
            reaction: "urticaire".into(),
            major: false,
            source: Source {
                kind: "person".into(),
                name: String::new(),
            },
        }
    }

    /// Two devices that each start a volume from nothing and add a care item.
    fn two_items_from(seed: impl Fn(u8) -> AutoCommit) -> usize {
        use mes_protocol::record::care::CareItem;
        let mut docs: Vec<AutoCommit> = (1..=2u8)
            .map(|n| {
                let mut doc = seed(n).with_actor(ActorId::from(vec![n + 10; 16]));
                let mut h: CareHistory = autosurgeon::hydrate(&doc).unwrap_or_default();
                h.items.push(CareItem {
                    id: format!("item-{n}"),
                    label: format!("Soin {n}"),
                    ..Default::default()
                });
                autosurgeon::reconcile(&mut doc, &h).unwrap();
                doc
            })
            .collect();
        let mut b = docs.pop().unwrap();
        let mut a = docs.pop().unwrap();
        a.merge(&mut b).unwrap();
        autosurgeon::hydrate::<_, CareHistory>(&a)
            .unwrap()
            .items
            .len()
    }

    #[test]
    fn devices_that_each_seed_a_record_volume_keep_both_lists() {
        let seeded = |_| AutoCommit::load(&seed_change(crate::daemon::CARE).unwrap()).unwrap();
        assert_eq!(two_items_from(seeded), 2);
        assert_eq!(
            seed_change(crate::daemon::CARE),
            seed_change(crate::daemon::CARE),
            "the seed is one change everywhere"
        );
        assert!(seed_change("threads/t1").is_some());
        assert!(seed_change("documents/care").is_none());
        // Control: each device creating the list itself loses one device's item.
        assert_eq!(two_items_from(|_| AutoCommit::new()), 1);
    }

    #[test]
    fn edits_to_different_records_and_fields_all_survive_a_merge() {
        let mut base = AutoCommit::new().with_actor(ActorId::from(vec![0; 16]));
        let mut p = Profile::default();
        p.allergies.push(allergy("a1", "pénicilline"));
        autosurgeon::reconcile(&mut base, &p).unwrap();
        let (mut laptop, mut phone) = (device(1, &base), device(2, &base));
        // Laptop: a new allergy and a field of the first; phone: another field and the
        // situation.
        let mut on_laptop: Profile = autosurgeon::hydrate(&laptop).unwrap();
        on_laptop.allergies.push(allergy("a2", "arachide"));
        on_laptop.allergies[0].major = true;
        autosurgeon::reconcile(&mut laptop, &on_laptop).unwrap();
        let mut on_phone: Profile = autosurgeon::hydrate(&phone).unwrap();
        on_phone.allergies[0].reaction = "œdème de Quincke".into();
        on_phone.situation.lives_alone = true;
        autosurgeon::reconcile(&mut phone, &on_phone).unwrap();
        laptop.merge(&mut phone).unwrap();
        phone.merge(&mut laptop).unwrap();
        let merged: Profile = autosurgeon::hydrate(&laptop).unwrap();
        assert_eq!(merged, autosurgeon::hydrate::<_, Profile>(&phone).unwrap());
        assert_eq!(merged.allergies.len(), 2);
        let a1 = merged.allergies.iter().find(|a| a.id == "a1").unwrap();
        assert!(a1.major);
        assert_eq!(a1.reaction, "œdème de Quincke");
        assert!(merged.situation.lives_alone);
        assert_eq!(conflicts(&laptop), vec![]);
    }

    #[test]
    fn concurrent_edits_to_one_field_are_reported_not_dropped() {
        let mut base = AutoCommit::new().with_actor(ActorId::from(vec![0; 16]));
        let mut p = Profile::default();
        p.allergies.push(allergy("a1", "pénicilline"));
        autosurgeon::reconcile(&mut base, &p).unwrap();
        let (mut laptop, mut phone) = (device(1, &base), device(2, &base));
        for (doc, reaction) in [(&mut laptop, "urticaire géante"), (&mut phone, "choc")] {
            let mut q: Profile = autosurgeon::hydrate(&*doc).unwrap();
            q.allergies[0].reaction = reaction.into();
            autosurgeon::reconcile(doc, &q).unwrap();
        }
        laptop.merge(&mut phone).unwrap();
        let c = conflicts(&laptop);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].path, "allergies/0/reaction");
        assert_eq!(c[0].values, vec!["choc", "urticaire géante"]);
        // Control: without the concurrent edit there is nothing to report.
        assert_eq!(conflicts(&base), vec![]);
    }

    #[test]
    fn the_same_value_written_twice_at_once_is_no_conflict() {
        let mut base = AutoCommit::new().with_actor(ActorId::from(vec![0; 16]));
        let mut p = Profile::default();
        p.allergies.push(allergy("a1", "pénicilline"));
        autosurgeon::reconcile(&mut base, &p).unwrap();
        let (mut laptop, mut phone) = (device(1, &base), device(2, &base));
        for doc in [&mut laptop, &mut phone] {
            let mut q: Profile = autosurgeon::hydrate(&*doc).unwrap();
            q.allergies[0].reaction = "choc".into();
            autosurgeon::reconcile(doc, &q).unwrap();
        }
        laptop.merge(&mut phone).unwrap();
        assert_eq!(conflicts(&laptop), vec![]);
    }
}
