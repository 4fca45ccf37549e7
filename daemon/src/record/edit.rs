//! Applying a [`RecordEdit`] to a record document (the profile, the prevention record):
//! pure, and checked against the types (the edit goes through JSON, so a misspelt field
//! or a wrong type is refused by name and nothing changes).

use mes_protocol::invalid::Invalid;
use mes_protocol::record::RecordEdit;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// The sections of a record document: lists of keyed records, and single records whose
/// fields are set one by one.
pub struct Sections {
    /// List sections.
    pub lists: &'static [&'static str],
    /// Single-record sections.
    pub fields: &'static [&'static str],
}

/// The profile's sections.
pub const PROFILE: Sections = Sections {
    lists: mes_protocol::record::PROFILE_LISTS,
    fields: mes_protocol::record::PROFILE_FIELDS,
};

/// The prevention record's sections.
pub const PREVENTION: Sections = Sections {
    lists: mes_protocol::record::PREVENTION_LISTS,
    fields: &[],
};

/// The emergency section's sections.
pub const EMERGENCY: Sections = Sections {
    lists: &[],
    fields: mes_protocol::record::EMERGENCY_FIELDS,
};

/// The agenda's sections.
pub const AGENDA: Sections = Sections {
    lists: mes_protocol::record::agenda::AGENDA_LISTS,
    fields: &[],
};

/// The messages' sections (`messages` is a map by id; `put` and `rm` treat it alike).
pub const MESSAGES: Sections = Sections {
    lists: mes_protocol::record::messages::MESSAGES_LISTS,
    fields: &[],
};

/// The care history's sections.
pub const CARE: Sections = Sections {
    lists: mes_protocol::record::care::CARE_LISTS,
    fields: &[],
};

fn section<'a>(
    root: &'a mut Map<String, Value>,
    name: &str,
    known: &[&str],
) -> Result<&'a mut Value, Invalid> {
    if !known.contains(&name) {
        return Err(Invalid::from(format!(
            "unknown section {name:?}; known: {}",
            known.join(", ")
        )));
    }
    root.get_mut(name)
        .ok_or_else(|| Invalid(format!("section {name:?} is missing")))
}

/// The edited document and the id of the record touched (for `Set`, the field).
pub fn apply<T: Serialize + DeserializeOwned>(
    doc: &T,
    sections: &Sections,
    edit: &RecordEdit,
    new_id: impl FnOnce() -> String,
) -> Result<(T, String), Invalid> {
    let mut root = match serde_json::to_value(doc).map_err(|e| e.to_string())? {
        Value::Object(m) => m,
        _ => return Err(Invalid::from("a record document is a JSON object")),
    };
    let touched = match edit {
        RecordEdit::Put {
            section: name,
            record,
        } => {
            let mut record: Value = serde_json::from_str(record)
                .map_err(|e| format!("the {name} record is not JSON: {e}"))?;
            let Value::Object(fields) = &mut record else {
                return Err(Invalid::from(format!(
                    "the {name} record must be a JSON object"
                )));
            };
            let id = match fields.get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => new_id(),
            };
            fields.insert("id".into(), Value::String(id.clone()));
            match section(&mut root, name, sections.lists)? {
                Value::Array(list) => match list
                    .iter_mut()
                    .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str()))
                {
                    Some(existing) => *existing = record,
                    None => list.push(record),
                },
                Value::Object(map) => {
                    map.insert(id.clone(), record);
                }
                _ => return Err(Invalid::from(format!("section {name:?} is not a list"))),
            }
            id
        }
        RecordEdit::Remove { section: name, id } => {
            let found = match section(&mut root, name, sections.lists)? {
                Value::Array(list) => {
                    let before = list.len();
                    list.retain(|r| r.get("id").and_then(Value::as_str) != Some(id.as_str()));
                    list.len() != before
                }
                Value::Object(map) => map.remove(id).is_some(),
                _ => return Err(Invalid::from(format!("section {name:?} is not a list"))),
            };
            if !found {
                return Err(Invalid::from(format!("no {name} record with id {id:?}")));
            }
            id.clone()
        }
        RecordEdit::Set { field, value } => {
            let Some((name, key)) = field.split_once('.') else {
                return Err(Invalid::from(format!(
                    "{field:?} is not section.field (e.g. situation.lives_alone)"
                )));
            };
            let Value::Object(fields) = section(&mut root, name, sections.fields)? else {
                return Err(Invalid::from(format!("section {name:?} is not a record")));
            };
            if !fields.contains_key(key) {
                let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                return Err(Invalid::from(format!(
                    "{name} has no field {key:?}; known: {}",
                    known.join(", ")
                )));
            }
            // A text field takes the value as typed (`situation.floor 3` is the text "3");
            // other fields take it as JSON (`true`, `12`), or as text where that fails.
            let v = if fields[key].is_string() {
                Value::String(value.clone())
            } else {
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()))
            };
            fields.insert(key.to_string(), v);
            field.clone()
        }
    };
    let edited: T =
        serde_json::from_value(Value::Object(root)).map_err(|e| format!("refused: {e}"))?;
    Ok((edited, touched))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mes_protocol::record::Profile;

    fn apply(
        p: &Profile,
        e: &RecordEdit,
        id: impl FnOnce() -> String,
    ) -> Result<(Profile, String), Invalid> {
        super::apply(p, &PROFILE, e, id)
    }

    fn put(section: &str, record: &str) -> RecordEdit {
        RecordEdit::Put {
            section: section.into(),
            record: record.into(),
        }
    }

    #[test]
    fn put_replace_remove_and_set() {
        let p = Profile::default();
        let (p, id) = apply(
            &p,
            &put("allergies", r#"{"substance":"pénicilline","major":true}"#),
            || "a1".into(),
        )
        .unwrap();
        assert_eq!(id, "a1");
        assert!(p.allergies[0].major);
        let (p, _) = apply(
            &p,
            &put("allergies", r#"{"id":"a1","substance":"amoxicilline"}"#),
            || unreachable!(),
        )
        .unwrap();
        assert_eq!(p.allergies.len(), 1, "same id replaces");
        assert_eq!(p.allergies[0].substance, "amoxicilline");
        let set = |field: &str, value: &str| RecordEdit::Set {
            field: field.into(),
            value: value.into(),
        };
        let (p, _) = apply(&p, &set("situation.lives_alone", "true"), || unreachable!()).unwrap();
        let (p, _) = apply(&p, &set("situation.floor", "3"), || unreachable!()).unwrap();
        assert_eq!(p.situation.floor, "3", "a text field takes digits as text");
        let (p, _) = apply(
            &p,
            &set("wishes.personal", "refus de transfusion"),
            || unreachable!(),
        )
        .unwrap();
        assert!(p.situation.lives_alone);
        assert_eq!(p.wishes.personal, "refus de transfusion");
        let (p, _) = apply(
            &p,
            &RecordEdit::Remove {
                section: "allergies".into(),
                id: "a1".into(),
            },
            || unreachable!(),
        )
        .unwrap();
        assert!(p.allergies.is_empty());
    }

    #[test]
    fn bad_edits_are_named_and_change_nothing() {
        let p = Profile::default();
        let e = apply(&p, &put("alergies", "{}"), || "x".into()).unwrap_err();
        assert!(e.contains("\"alergies\"") && e.contains("allergies"), "{e}");
        let e = apply(&p, &put("allergies", r#"{"substanse":"x"}"#), || "x".into()).unwrap_err();
        assert!(e.contains("substanse"), "{e}");
        let e = apply(&p, &put("allergies", r#"{"major":"yes"}"#), || "x".into()).unwrap_err();
        assert!(e.contains("boolean"), "{e}");
        let e = apply(&p, &put("allergies", "not json"), || "x".into()).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let set = |field: &str, value: &str| RecordEdit::Set {
            field: field.into(),
            value: value.into(),
        };
        let e = apply(&p, &set("situation.alone", "true"), || "x".into()).unwrap_err();
        assert!(e.contains("lives_alone"), "{e}");
        let e = apply(&p, &set("situation.lives_alone", "yes"), || "x".into()).unwrap_err();
        assert!(e.contains("boolean"), "{e}");
        let e = apply(
            &p,
            &RecordEdit::Remove {
                section: "allergies".into(),
                id: "zz".into(),
            },
            || "x".into(),
        )
        .unwrap_err();
        assert!(e.contains("zz"), "{e}");
    }
}
