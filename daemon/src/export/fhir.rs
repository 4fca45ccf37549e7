//! The space as FHIR R4 (F12.2), pure: a `collection` Bundle (Patient, Condition,
//! AllergyIntolerance, MedicationStatement, Immunization, Procedure, Encounter,
//! Observation, DocumentReference with Binary, Appointment, Communication), an
//! IPS-shaped `document` Bundle for emergencies, and the way back.
//!
//! Standard fields carry the meaning any FHIR reader understands; each resource also
//! carries our record, exactly, in the extension [`RECORD_EXT`], so importing an export
//! gives back the same records (fields FHIR has no place for included). A resource
//! without the extension (from another system) is read from its standard fields where
//! that is unambiguous (Observation, AllergyIntolerance, Condition).
//!
//! Over 600 lines: the FHIR R4 mapping of every record section, one table read top to bottom.

use base64::Engine;
use mes_protocol::record::agenda::{Agenda, Appointment};
use mes_protocol::record::care::CareHistory;
use mes_protocol::record::codes::Codes;
use mes_protocol::record::documents::DocumentMeta;
use mes_protocol::record::measurements::Measurement;
use mes_protocol::record::messages::{Messages, Thread};
use mes_protocol::record::prevention::Policy;
use mes_protocol::record::{
    Allergy, Condition, EmergencyCard, Hospitalisation, PreventionAct, PreventionRecord, Profile,
    Treatment, VaccineDose,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The extension holding a record exactly.
pub const RECORD_EXT: &str = "urn:mes:record";

/// Everything a space holds, as records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpaceRecords {
    /// Medical profile.
    pub profile: Profile,
    /// Vaccines and screenings.
    pub prevention: PreventionRecord,
    /// The emergency card (the copies follow the profile).
    pub emergency: EmergencyCard,
    /// Appointments.
    pub agenda: Agenda,
    /// Messages.
    pub messages: Messages,
    /// Care history.
    pub care: CareHistory,
    /// Documents (keys emptied).
    pub documents: Vec<DocumentMeta>,
    /// Measurements.
    pub measurements: Vec<Measurement>,
}

/// What the Patient resource carries besides its standard fields.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct PatientExtra {
    person: mes_protocol::record::Person,
    wishes: mes_protocol::record::Wishes,
    situation: mes_protocol::record::Situation,
    contacts: Vec<mes_protocol::record::Contact>,
    emergency: EmergencyCard,
    care: CareHistory,
}

/// A valid FHIR id for one of ours (ids may be any text; FHIR's are [A-Za-z0-9.-]{1,64}).
pub fn fhir_id(id: &str) -> String {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        id.to_string()
    } else {
        hex::encode(&blake3::hash(id.as_bytes()).as_bytes()[..16])
    }
}

/// The bundle-wide name of a resource: a UUID URN derived from its type and id.
pub fn urn(kind: &str, id: &str) -> String {
    let h = blake3::hash(format!("{kind}/{id}").as_bytes());
    let b = &h.as_bytes()[..16];
    let x = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-5{}-a{}-{}",
        &x[..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

fn ext(record: &impl Serialize) -> Value {
    json!([{ "url": RECORD_EXT, "valueString": serde_json::to_string(record).expect("records serialise") }])
}

fn is_date(s: &str) -> bool {
    s.parse::<jiff::civil::Date>().is_ok()
}

/// A FHIR dateTime/instant for a civil date-time in France ("2026-12-03T14:30"), or the
/// date alone.
pub fn instant(at: &str) -> Option<String> {
    if let Ok(dt) = at.parse::<jiff::civil::DateTime>() {
        let z = dt.to_zoned(mes_protocol::time::paris()).ok()?;
        return Some(z.timestamp().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    if let Ok(t) = at.parse::<jiff::Timestamp>() {
        return Some(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    is_date(at).then(|| at.to_string())
}

/// The bundle-local absolute URL of a Binary: FHIR resolves an attachment URL equal to
/// an entry's fullUrl inside the bundle (`.invalid` never resolves elsewhere). Binaries
/// are named so because `Attachment.url` must be an absolute URL for strict readers.
pub fn binary_url(id: &str) -> String {
    format!("https://mes.invalid/fhir/Binary/{}", fhir_id(id))
}

fn entry(kind: &str, id: &str, mut resource: Value) -> Value {
    resource["resourceType"] = json!(kind);
    resource["id"] = json!(fhir_id(id));
    let full = if kind == "Binary" {
        binary_url(id)
    } else {
        urn(kind, id)
    };
    json!({ "fullUrl": full, "resource": resource })
}

const PATIENT: &str = "patient";

fn subject() -> Value {
    json!({ "reference": urn("Patient", PATIENT) })
}

fn patient(r: &SpaceRecords) -> Value {
    let p = &r.profile;
    let mut res = json!({
        "extension": ext(&PatientExtra {
            person: p.person.clone(),
            wishes: p.wishes.clone(),
            situation: p.situation.clone(),
            contacts: p.contacts.clone(),
            emergency: r.emergency.clone(),
            care: r.care.clone(),
        }),
    });
    if !p.person.name.is_empty() {
        res["name"] = json!([{ "text": p.person.name }]);
    }
    match p.person.sex.as_str() {
        "F" => res["gender"] = json!("female"),
        "M" => res["gender"] = json!("male"),
        _ => {}
    }
    if is_date(&p.person.birth_date) {
        res["birthDate"] = json!(p.person.birth_date);
    }
    let contacts: Vec<Value> = p
        .contacts
        .iter()
        .map(|c| {
            let mut v = json!({
                "relationship": [{ "text": if c.relationship.is_empty() { &c.role } else { &c.relationship } }],
                "name": { "text": c.name },
            });
            if !c.phone.is_empty() {
                v["telecom"] = json!([{ "system": "phone", "value": c.phone }]);
            }
            v
        })
        .collect();
    if !contacts.is_empty() {
        res["contact"] = json!(contacts);
    }
    entry("Patient", PATIENT, res)
}

fn condition(c: &Condition) -> Value {
    let mut res = json!({
        "extension": ext(c),
        "subject": subject(),
        "code": { "text": c.label },
        "category": [{ "text": if c.history.is_empty() { "current" } else { &c.history } }],
    });
    if !c.since.is_empty() {
        res["onsetString"] = json!(c.since);
    }
    entry("Condition", &c.id, res)
}

fn allergy(a: &Allergy) -> Value {
    let mut res = json!({
        "extension": ext(a),
        "patient": subject(),
        "code": { "text": a.substance },
        "criticality": if a.major { "high" } else { "low" },
    });
    if !a.reaction.is_empty() {
        res["reaction"] = json!([{ "manifestation": [{ "text": a.reaction }] }]);
    }
    entry("AllergyIntolerance", &a.id, res)
}

/// A FHIR Period from the bounds that are dates; `None` when neither is.
fn period(start: &str, end: &str) -> Option<Value> {
    let mut p = serde_json::Map::new();
    for (key, v) in [("start", start), ("end", end)] {
        if is_date(v) {
            p.insert(key.into(), json!(v));
        }
    }
    (!p.is_empty()).then_some(Value::Object(p))
}

fn treatment(t: &Treatment) -> Value {
    let mut res = json!({
        "extension": ext(t),
        "status": if t.until.is_empty() { "active" } else { "completed" },
        "medicationCodeableConcept": { "text": t.label },
        "subject": subject(),
    });
    if !t.dosage.is_empty() {
        res["dosage"] = json!([{ "text": t.dosage }]);
    }
    if let Some(p) = period(&t.since, &t.until) {
        res["effectivePeriod"] = p;
    }
    entry("MedicationStatement", &t.id, res)
}

fn hospitalisation(h: &Hospitalisation) -> Value {
    let mut res = json!({
        "extension": ext(h),
        "status": "finished",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter" },
        "subject": subject(),
    });
    if !h.reason.is_empty() {
        res["reasonCode"] = json!([{ "text": h.reason }]);
    }
    if !h.establishment.is_empty() {
        res["serviceProvider"] = json!({ "display": h.establishment });
    }
    if let Some(p) = period(&h.from, &h.until) {
        res["period"] = p;
    }
    entry("Encounter", &h.id, res)
}

fn vaccine_label(rule: &str) -> String {
    Policy::builtin()
        .vaccine
        .iter()
        .find(|v| v.id == rule)
        .map(|v| v.fr.clone())
        .unwrap_or_else(|| rule.to_string())
}

fn dose(d: &VaccineDose) -> Value {
    let mut res = json!({
        "extension": ext(d),
        "status": "completed",
        "vaccineCode": { "text": if d.product.is_empty() { vaccine_label(&d.rule) } else { d.product.clone() } },
        "patient": subject(),
        "occurrenceDateTime": d.date,
    });
    if !d.lot.is_empty() {
        res["lotNumber"] = json!(d.lot);
    }
    entry("Immunization", &d.id, res)
}

fn act(a: &PreventionAct) -> Value {
    let label = Policy::builtin()
        .programme
        .iter()
        .find(|p| p.id == a.rule)
        .map(|p| p.fr.clone())
        .unwrap_or_else(|| a.rule.clone());
    entry(
        "Procedure",
        &a.id,
        json!({
            "extension": ext(a),
            "status": "completed",
            "code": { "text": label },
            "subject": subject(),
            "performedDateTime": a.date,
        }),
    )
}

fn observation(m: &Measurement) -> Value {
    let kind = Codes::builtin().measurement_kind(&m.kind).ok();
    let mut res = json!({
        "extension": ext(m),
        "status": "final",
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs" }] }],
        "subject": subject(),
    });
    if let Some(k) = kind {
        res["code"] = json!({ "coding": [{ "system": "http://loinc.org", "code": k.loinc, "display": k.en }], "text": k.fr });
        res["valueQuantity"] = json!({ "value": m.value, "unit": k.unit, "system": "http://unitsofmeasure.org", "code": k.unit });
    } else {
        res["code"] = json!({ "text": m.kind });
        res["valueQuantity"] = json!({ "value": m.value });
    }
    if let Some(t) = instant(&m.at) {
        res["effectiveDateTime"] = json!(t);
    }
    entry("Observation", &m.id, res)
}

fn document(d: &DocumentMeta, data: Option<&[u8]>) -> Vec<Value> {
    let codes = Codes::builtin();
    let ty = codes.doc_type(&d.type_code).ok();
    let class = codes.class_code(&d.class_code).ok();
    let mut attachment = json!({
        "contentType": d.media_type,
        "title": d.file_name,
        "size": d.size,
        "url": binary_url(&d.id),
    });
    if is_date(&d.date) {
        attachment["creation"] = json!(d.date);
    }
    let mut res = json!({
        "extension": ext(&DocumentMeta { blob_key: String::new(), ..d.clone() }),
        "status": "current",
        "subject": subject(),
        "description": d.title,
        "content": [{ "attachment": attachment }],
    });
    if let Some(t) = ty {
        res["type"] =
            json!({ "coding": [{ "system": t.system(), "code": t.code, "display": t.fr }] });
    }
    if let Some(c) = class {
        res["category"] = json!([{ "coding": [{ "system": "urn:mes:dmp-class-code", "code": c.code, "display": c.fr }] }]);
    }
    if let Some(t) = instant(&d.added_at) {
        res["date"] = json!(t);
    }
    if !d.author.is_empty() {
        res["author"] = json!([{ "display": d.author }]);
    }
    let mut out = vec![entry("DocumentReference", &d.id, res)];
    if let Some(data) = data {
        out.push(entry(
            "Binary",
            &d.id,
            json!({
                "contentType": d.media_type,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            }),
        ));
    }
    out
}

fn appointment(a: &Appointment, now: &str) -> Value {
    let start = instant(&a.at);
    let mut res = json!({
        "extension": ext(a),
        "description": a.title,
        "participant": [
            { "actor": subject(), "status": "accepted" },
        ],
    });
    if !a.with.is_empty() {
        res["participant"]
            .as_array_mut()
            .expect("an array")
            .push(json!({ "actor": { "display": a.with }, "status": "accepted" }));
    }
    let past = a.at.as_str() < &now[..now.len().min(16)];
    res["status"] = json!(if past { "fulfilled" } else { "booked" });
    if let Some(s) = start.filter(|s| s.contains('T')) {
        res["start"] = json!(s);
        if a.minutes > 0 {
            if let Ok(t) = s.parse::<jiff::Timestamp>() {
                let end = t + jiff::SignedDuration::from_mins(i64::from(a.minutes));
                res["end"] = json!(end.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                res["minutesDuration"] = json!(a.minutes);
            }
        }
    }
    if !a.notes.is_empty() {
        res["comment"] = json!(a.notes);
    }
    entry("Appointment", &a.id, res)
}

#[derive(Serialize, Deserialize)]
struct MessageExtra {
    message: mes_protocol::record::messages::Message,
    thread: Thread,
}

fn communication(m: &mes_protocol::record::messages::Message, thread: &Thread) -> Value {
    let mut payload = vec![json!({ "contentString": m.body })];
    for a in &m.attachments {
        payload.push(json!({ "contentReference": { "reference": urn("DocumentReference", a) } }));
    }
    let mut res = json!({
        "extension": ext(&MessageExtra { message: m.clone(), thread: thread.clone() }),
        "status": "completed",
        "subject": subject(),
        "topic": { "text": thread.subject },
        "payload": payload,
    });
    if let Some(t) = instant(&m.at) {
        res["sent"] = json!(t);
    }
    if let Some(t) = instant(&m.read_at) {
        res["received"] = json!(t);
    }
    res["sender"] = json!({ "display": m.from });
    entry("Communication", &m.id, res)
}

/// The whole space as a FHIR R4 `collection` Bundle; `files` holds each document's bytes
/// by id (embedded as Binary).
pub fn bundle(r: &SpaceRecords, files: &BTreeMap<String, Vec<u8>>, now: &str) -> Value {
    let p = &r.profile;
    let mut entries = vec![patient(r)];
    entries.extend(p.conditions.iter().map(condition));
    entries.extend(p.allergies.iter().map(allergy));
    entries.extend(p.treatments.iter().map(treatment));
    entries.extend(p.hospitalisations.iter().map(hospitalisation));
    entries.extend(r.prevention.doses.iter().map(dose));
    entries.extend(r.prevention.acts.iter().map(act));
    entries.extend(r.measurements.iter().map(observation));
    for d in &r.documents {
        entries.extend(document(d, files.get(&d.id).map(Vec::as_slice)));
    }
    entries.extend(r.agenda.appointments.iter().map(|a| appointment(a, now)));
    for m in r.messages.messages.values() {
        if let Some(t) = r.messages.threads.iter().find(|t| t.id == m.thread) {
            entries.push(communication(m, t));
        }
    }
    json!({
        "resourceType": "Bundle",
        "id": "export",
        "type": "collection",
        "timestamp": now,
        "entry": entries,
    })
}

/// The emergency summary, IPS-shaped: a `document` Bundle whose Composition (LOINC
/// 60591-5) has the IPS sections allergies, medication, problems and immunisations, plus
/// the emergency card (blood group, phenotype, notes) and contacts.
pub fn ips(r: &SpaceRecords, emergency: &mes_protocol::record::Emergency, now: &str) -> Value {
    let p = &r.profile;
    let refs = |kind: &str, ids: Vec<&str>| -> Vec<Value> {
        ids.into_iter()
            .map(|id| json!({ "reference": urn(kind, id) }))
            .collect()
    };
    let section = |code: &str, title: &str, text: String, entry: Vec<Value>| {
        let mut s = json!({
            "title": title,
            "code": { "coding": [{ "system": "http://loinc.org", "code": code }] },
            "text": { "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", xml_escape(&text)) },
        });
        if entry.is_empty() {
            s["emptyReason"] = json!({ "text": "aucune / none" });
        } else {
            s["entry"] = json!(entry);
        }
        s
    };
    let live: Vec<&Treatment> = p.treatments.iter().filter(|t| t.until.is_empty()).collect();
    let current: Vec<&Condition> = p
        .conditions
        .iter()
        .filter(|c| c.history != "family")
        .collect();
    let card = &emergency.card;
    let composition = json!({
        "status": "final",
        "type": { "coding": [{ "system": "http://loinc.org", "code": "60591-5", "display": "Patient summary Document" }] },
        "subject": subject(),
        "date": now,
        "author": [{ "display": "Mon espace santé (local-first)" }],
        "title": "Résumé d'urgence / Emergency summary",
        "section": [
            section("48765-2", "Allergies", emergency.major_allergies.join("; "), refs("AllergyIntolerance", p.allergies.iter().map(|a| a.id.as_str()).collect())),
            section("10160-0", "Traitements / Medication", emergency.anticoagulants.join("; "), refs("MedicationStatement", live.iter().map(|t| t.id.as_str()).collect())),
            section("11450-4", "Problèmes / Problems", emergency.chronic_conditions.join("; "), refs("Condition", current.iter().map(|c| c.id.as_str()).collect())),
            section("11369-6", "Vaccinations / Immunizations", String::new(), refs("Immunization", r.prevention.doses.iter().map(|d| d.id.as_str()).collect())),
            section("42348-3", "Urgence / Emergency", format!(
                "Groupe sanguin / blood group: {} {}. {} Contacts: {}",
                card.blood_group, card.phenotype, card.notes, emergency.contacts.join("; ")
            ), Vec::new()),
        ],
    });
    let mut entries = vec![
        entry("Composition", "emergency-summary", composition),
        patient(r),
    ];
    entries.extend(p.allergies.iter().map(allergy));
    entries.extend(live.iter().map(|t| treatment(t)));
    entries.extend(current.iter().map(|c| condition(c)));
    entries.extend(r.prevention.doses.iter().map(dose));
    json!({
        "resourceType": "Bundle",
        "id": "emergency-summary",
        "identifier": { "system": "urn:mes:ips", "value": "emergency-summary" },
        "type": "document",
        "timestamp": now,
        "entry": entries,
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn record_of<T: serde::de::DeserializeOwned>(res: &Value) -> Result<Option<T>, String> {
    let Some(exts) = res.get("extension").and_then(Value::as_array) else {
        return Ok(None);
    };
    for e in exts {
        if e.get("url").and_then(Value::as_str) == Some(RECORD_EXT) {
            let text = e
                .get("valueString")
                .and_then(Value::as_str)
                .ok_or("a record extension without valueString")?;
            return serde_json::from_str(text)
                .map(Some)
                .map_err(|e| format!("a record extension does not read: {e}"));
        }
    }
    Ok(None)
}

fn text_at<'a>(res: &'a Value, path: &[&str]) -> &'a str {
    let mut v = res;
    for p in path {
        v = match p.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[*p],
        };
    }
    v.as_str().unwrap_or_default()
}

/// Reads a bundle back into records and document bytes (by document id).
pub fn parse(bundle: &Value) -> Result<(SpaceRecords, BTreeMap<String, Vec<u8>>), String> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err("not a FHIR Bundle (resourceType is not \"Bundle\")".into());
    }
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .ok_or("the bundle has no entries")?;
    let mut r = SpaceRecords::default();
    let mut binaries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut threads: BTreeMap<String, Thread> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let res = &e["resource"];
        let kind = res
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or(format!("entry {i} has no resourceType"))?;
        let at = |e: String| format!("entry {i} ({kind}): {e}");
        match kind {
            "Patient" => {
                if let Some(x) = record_of::<PatientExtra>(res).map_err(at)? {
                    r.profile.person = x.person;
                    r.profile.wishes = x.wishes;
                    r.profile.situation = x.situation;
                    r.profile.contacts = x.contacts;
                    r.emergency = x.emergency;
                    r.care = x.care;
                } else {
                    r.profile.person.name = text_at(res, &["name", "0", "text"]).into();
                    r.profile.person.birth_date = text_at(res, &["birthDate"]).into();
                }
            }
            "Condition" => r
                .profile
                .conditions
                .push(match record_of(res).map_err(at)? {
                    Some(c) => c,
                    None => Condition {
                        id: text_at(res, &["id"]).into(),
                        label: text_at(res, &["code", "text"]).into(),
                        ..Default::default()
                    },
                }),
            "AllergyIntolerance" => r.profile.allergies.push(match record_of(res).map_err(at)? {
                Some(a) => a,
                None => Allergy {
                    id: text_at(res, &["id"]).into(),
                    substance: text_at(res, &["code", "text"]).into(),
                    reaction: text_at(res, &["reaction", "0", "manifestation", "0", "text"]).into(),
                    major: text_at(res, &["criticality"]) == "high",
                    ..Default::default()
                },
            }),
            "MedicationStatement" => {
                if let Some(t) = record_of(res).map_err(at)? {
                    r.profile.treatments.push(t);
                }
            }
            "Encounter" => {
                if let Some(h) = record_of(res).map_err(at)? {
                    r.profile.hospitalisations.push(h);
                }
            }
            "Immunization" => {
                if let Some(d) = record_of(res).map_err(at)? {
                    r.prevention.doses.push(d);
                }
            }
            "Procedure" => {
                if let Some(a) = record_of(res).map_err(at)? {
                    r.prevention.acts.push(a);
                }
            }
            "Observation" => r.measurements.push(match record_of(res).map_err(at)? {
                Some(m) => m,
                None => {
                    let loinc = text_at(res, &["code", "coding", "0", "code"]);
                    let kind = Codes::builtin()
                        .measurement_kind(loinc)
                        .map_err(|e| at(e.0))?;
                    Measurement {
                        id: fhir_id(text_at(res, &["id"])),
                        kind: kind.id.clone(),
                        at: text_at(res, &["effectiveDateTime"]).into(),
                        value: res["valueQuantity"]["value"]
                            .as_f64()
                            .ok_or_else(|| at("no valueQuantity.value".into()))?,
                        ..Default::default()
                    }
                }
            }),
            "DocumentReference" => {
                if let Some(d) = record_of::<DocumentMeta>(res).map_err(at)? {
                    r.documents.push(d);
                }
            }
            "Binary" => {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(text_at(res, &["data"]))
                    .map_err(|e| at(format!("Binary data is not base64: {e}")))?;
                binaries.insert(text_at(res, &["id"]).to_string(), data);
            }
            "Appointment" => {
                if let Some(a) = record_of(res).map_err(at)? {
                    r.agenda.appointments.push(a);
                }
            }
            "Communication" => {
                if let Some(x) = record_of::<MessageExtra>(res).map_err(at)? {
                    threads.entry(x.thread.id.clone()).or_insert(x.thread);
                    r.messages.messages.insert(x.message.id.clone(), x.message);
                }
            }
            _ => {}
        }
    }
    r.messages.threads = threads.into_values().collect();
    let files = r
        .documents
        .iter()
        .filter_map(|d| binaries.remove(&fhir_id(&d.id)).map(|b| (d.id.clone(), b)))
        .collect();
    Ok((r, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_reads_back_into_the_same_records() {
        let mut r = SpaceRecords::default();
        r.profile.person.name = "Inaya M.".into();
        r.profile.allergies.push(Allergy {
            id: "a 1".into(),
            substance: "pénicilline".into(),
            reaction: "urticaire".into(),
            major: true,
            ..Default::default()
        });
        r.measurements.push(Measurement {
            id: "m1".into(),
            kind: "weight".into(),
            at: "2026-03-01T08:30".into(),
            value: 61.5,
            ..Default::default()
        });
        let b = bundle(&r, &BTreeMap::new(), "2026-11-24T10:00:00Z");
        let (back, files) = parse(&b).unwrap();
        assert_eq!(back, r);
        assert!(files.is_empty());
        assert_eq!(b["entry"][1]["resource"]["id"], json!(fhir_id("a 1")));
        assert_eq!(
            b["entry"][2]["resource"]["effectiveDateTime"],
            json!("2026-03-01T07:30:00Z"),
            "civil times are in France (UTC+1 in March)"
        );
    }

    #[test]
    fn a_foreign_observation_is_read_from_its_standard_fields_and_an_unknown_code_is_named() {
        let b = json!({"resourceType": "Bundle", "entry": [{"resource": {
            "resourceType": "Observation", "id": "o1",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "effectiveDateTime": "2025-01-02", "valueQuantity": {"value": 70.0}}}]});
        let (r, _) = parse(&b).unwrap();
        assert_eq!(r.measurements[0].kind, "weight");
        let bad = json!({"resourceType": "Bundle", "entry": [{"resource": {
            "resourceType": "Observation", "code": {"coding": [{"code": "0000-0"}]}}}]});
        let e = parse(&bad).unwrap_err();
        assert!(e.contains("entry 0") && e.contains("0000-0"), "{e}");
    }
}
