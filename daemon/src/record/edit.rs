//! Applying a [`ProfileEdit`] to a [`Profile`]: pure, and checked against the types (the
//! edit goes through JSON, so a misspelt field or a wrong type is refused by name and
//! nothing changes).

use mes_protocol::record::{Profile, ProfileEdit, PROFILE_FIELDS, PROFILE_LISTS};
use serde_json::{Map, Value};

fn section<'a>(
    root: &'a mut Map<String, Value>,
    name: &str,
    known: &[&str],
) -> Result<&'a mut Value, String> {
    if !known.contains(&name) {
        return Err(format!(
            "unknown profile section {name:?}; known: {}",
            known.join(", ")
        ));
    }
    root.get_mut(name)
        .ok_or_else(|| format!("profile section {name:?} is missing"))
}

/// The edited profile and the id of the record touched (for `Set`, the field).
pub fn apply(
    profile: &Profile,
    edit: &ProfileEdit,
    new_id: impl FnOnce() -> String,
) -> Result<(Profile, String), String> {
    let mut root = match serde_json::to_value(profile).map_err(|e| e.to_string())? {
        Value::Object(m) => m,
        _ => unreachable!("a profile is a JSON object"),
    };
    let touched = match edit {
        ProfileEdit::Put {
            section: name,
            record,
        } => {
            let mut record: Value = serde_json::from_str(record)
                .map_err(|e| format!("the {name} record is not JSON: {e}"))?;
            let Value::Object(fields) = &mut record else {
                return Err(format!("the {name} record must be a JSON object"));
            };
            let id = match fields.get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => new_id(),
            };
            fields.insert("id".into(), Value::String(id.clone()));
            let Value::Array(list) = section(&mut root, name, PROFILE_LISTS)? else {
                return Err(format!("profile section {name:?} is not a list"));
            };
            match list
                .iter_mut()
                .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str()))
            {
                Some(existing) => *existing = record,
                None => list.push(record),
            }
            id
        }
        ProfileEdit::Remove { section: name, id } => {
            let Value::Array(list) = section(&mut root, name, PROFILE_LISTS)? else {
                return Err(format!("profile section {name:?} is not a list"));
            };
            let before = list.len();
            list.retain(|r| r.get("id").and_then(Value::as_str) != Some(id.as_str()));
            if list.len() == before {
                return Err(format!("no {name} record with id {id:?}"));
            }
            id.clone()
        }
        ProfileEdit::Set { field, value } => {
            let Some((name, key)) = field.split_once('.') else {
                return Err(format!(
                    "{field:?} is not section.field (e.g. situation.lives_alone)"
                ));
            };
            let Value::Object(fields) = section(&mut root, name, PROFILE_FIELDS)? else {
                return Err(format!("profile section {name:?} is not a record"));
            };
            if !fields.contains_key(key) {
                let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                return Err(format!(
                    "{name} has no field {key:?}; known: {}",
                    known.join(", ")
                ));
            }
            let v = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
            fields.insert(key.to_string(), v);
            field.clone()
        }
    };
    let edited: Profile =
        serde_json::from_value(Value::Object(root)).map_err(|e| format!("refused: {e}"))?;
    Ok((edited, touched))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(section: &str, record: &str) -> ProfileEdit {
        ProfileEdit::Put {
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
        let set = |field: &str, value: &str| ProfileEdit::Set {
            field: field.into(),
            value: value.into(),
        };
        let (p, _) = apply(&p, &set("situation.lives_alone", "true"), || unreachable!()).unwrap();
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
            &ProfileEdit::Remove {
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
        let set = |field: &str, value: &str| ProfileEdit::Set {
            field: field.into(),
            value: value.into(),
        };
        let e = apply(&p, &set("situation.alone", "true"), || "x".into()).unwrap_err();
        assert!(e.contains("lives_alone"), "{e}");
        let e = apply(&p, &set("situation.lives_alone", "yes"), || "x".into()).unwrap_err();
        assert!(e.contains("boolean"), "{e}");
        let e = apply(
            &p,
            &ProfileEdit::Remove {
                section: "allergies".into(),
                id: "zz".into(),
            },
            || "x".into(),
        )
        .unwrap_err();
        assert!(e.contains("zz"), "{e}");
    }
}
