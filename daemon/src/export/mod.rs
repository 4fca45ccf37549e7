//! Export and import of a whole space (F2.11, F3.6, F12.2): the async shell around the
//! pure [`fhir`] and [`pdf`] cores.
//!
//! `export` writes a new directory:
//! - `bundle.json`: FHIR R4 `collection` Bundle of everything (documents as Binary);
//! - `emergency-summary.json`: the IPS-shaped emergency summary;
//! - `summary.pdf`: the medical profile summary to hand to a professional;
//! - `files/<id>-<name>`: the original files;
//! - `LISEZMOI.txt`: what is where, French then English.
//!
//! `import` reads such a bundle back into a space: records are replaced by the bundle's,
//! documents are added under their ids (adding one twice changes nothing).

pub mod fhir;
pub mod pdf;
pub mod research;

use mes_protocol::ids::SpaceId;
use mes_protocol::record::documents::NewDocument;
use mes_protocol::record::measurements::MeasureQuery;
use mes_protocol::record::Emergency;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use std::collections::BTreeMap;
use std::path::Path;

use crate::daemon::Daemon;
use fhir::SpaceRecords;
use pdf::Line;

fn io(what: &Path, e: std::io::Error) -> ApiError {
    ApiError::new(ApiErrorCode::Storage, format!("{}: {e}", what.display()))
}

/// A file name safe on every system.
fn safe_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() {
        "document".into()
    } else {
        n
    }
}

impl Daemon {
    /// Everything the space holds, as records.
    pub fn space_records(&self, space: SpaceId) -> Result<(SpaceRecords, Emergency), ApiError> {
        let emergency: Emergency = self.record_get(space)?.0;
        let mut documents = self.documents_all(space)?;
        documents.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.id.cmp(&b.id)));
        Ok((
            SpaceRecords {
                profile: self.record_get(space)?.0,
                prevention: self.record_get(space)?.0,
                emergency: emergency.card.clone(),
                agenda: self.record_get(space)?.0,
                messages: self.record_get(space)?.0,
                care: self.record_get(space)?.0,
                documents,
                measurements: self.measure_list(space, &MeasureQuery::default())?,
            },
            emergency,
        ))
    }
}

/// The profile summary's lines, French first then English labels.
pub fn summary_lines(r: &SpaceRecords, e: &Emergency) -> Vec<Line> {
    let p = &r.profile;
    let mut out = vec![Line::Text(format!(
        "{} — né(e) le / born {} — {}",
        p.person.name, p.person.birth_date, p.person.sex
    ))];
    let mut list = |title: &str, items: Vec<String>| {
        out.push(Line::Heading(title.into()));
        if items.is_empty() {
            out.push(Line::Text("— aucun / none".into()));
        }
        out.extend(items.into_iter().map(|i| Line::Text(format!("• {i}"))));
    };
    list(
        "Urgence / Emergency",
        vec![
            format!(
                "Groupe sanguin / Blood group: {} {}",
                e.card.blood_group, e.card.phenotype
            ),
            format!("Anticoagulants: {}", e.anticoagulants.join(", ")),
            format!("Notes: {}", e.card.notes),
        ],
    );
    list(
        "Allergies",
        p.allergies
            .iter()
            .map(|a| {
                format!(
                    "{}{}{}",
                    a.substance,
                    if a.reaction.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", a.reaction)
                    },
                    if a.major { " — MAJEURE / MAJOR" } else { "" }
                )
            })
            .collect(),
    );
    list(
        "Traitements / Treatments",
        p.treatments
            .iter()
            .map(|t| {
                format!(
                    "{} {} {}",
                    t.label,
                    t.dosage,
                    if t.until.is_empty() {
                        String::new()
                    } else {
                        format!("(arrêté / stopped {})", t.until)
                    }
                )
            })
            .collect(),
    );
    list(
        "Maladies et antécédents / Conditions and history",
        p.conditions
            .iter()
            .map(|c| {
                format!(
                    "{} [{}{}] {}",
                    c.label,
                    c.history,
                    if c.relative.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.relative)
                    },
                    c.since
                )
            })
            .collect(),
    );
    list(
        "Hospitalisations",
        p.hospitalisations
            .iter()
            .map(|h| {
                format!(
                    "{} → {} {} — {}",
                    h.from, h.until, h.establishment, h.reason
                )
            })
            .collect(),
    );
    list(
        "Vaccinations",
        r.prevention
            .doses
            .iter()
            .map(|d| format!("{} {} {}", d.date, d.rule, d.product))
            .collect(),
    );
    list(
        "Entourage / Contacts",
        p.contacts
            .iter()
            .map(|c| format!("{} ({}, {}) {}", c.name, c.role, c.relationship, c.phone))
            .collect(),
    );
    list(
        "Volontés / Wishes",
        vec![
            format!(
                "Directives anticipées / Advance directives: {}",
                p.wishes.advance_directives
            ),
            format!(
                "Don d'organes / Organ donation: {}",
                p.wishes.organ_donation
            ),
            format!("Souhaits / Wishes: {}", p.wishes.personal),
        ],
    );
    out
}

/// Writes the whole space to `out` (a directory that must not exist); (files, bytes).
pub async fn export(d: &Daemon, space: SpaceId, out: &Path) -> Result<(u64, u64), ApiError> {
    if !out.is_absolute() {
        return Err(ApiError::new(
            ApiErrorCode::BadRequest,
            format!("{} is not an absolute path", out.display()),
        ));
    }
    if out.exists() {
        return Err(ApiError::new(
            ApiErrorCode::BadRequest,
            format!("{} already exists; name a new directory", out.display()),
        ));
    }
    let (records, emergency) = d.space_records(space)?;
    let parent = out.parent().unwrap_or(Path::new("/"));
    // Built in a temporary directory beside `out`, renamed at the end: an interrupted
    // export leaves nothing that looks complete.
    let tmp = tempfile::Builder::new()
        .prefix(".mes-export-")
        .tempdir_in(parent)
        .map_err(|e| io(parent, e))?;
    let files_dir = tmp.path().join("files");
    std::fs::create_dir(&files_dir).map_err(|e| io(&files_dir, e))?;
    let mut files = BTreeMap::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    for doc in &records.documents {
        let path = files_dir.join(format!(
            "{}-{}",
            safe_name(&doc.id),
            safe_name(&doc.file_name)
        ));
        bytes += d.doc_get(space, &doc.id, &path).await?;
        count += 1;
        files.insert(
            doc.id.clone(),
            std::fs::read(&path).map_err(|e| io(&path, e))?,
        );
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut write = |name: &str, data: &[u8]| -> Result<(), ApiError> {
        let p = tmp.path().join(name);
        std::fs::write(&p, data).map_err(|e| io(&p, e))?;
        count += 1;
        bytes += data.len() as u64;
        Ok(())
    };
    let bundle = fhir::bundle(&records, &files, &now);
    drop(files);
    write(
        "bundle.json",
        &serde_json::to_vec(&bundle)
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?,
    )?;
    drop(bundle);
    write(
        "emergency-summary.json",
        &serde_json::to_vec_pretty(&fhir::ips(&records, &emergency, &now))
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?,
    )?;
    write(
        "summary.pdf",
        &pdf::render(
            "Mon espace santé — Résumé du profil médical / Medical profile summary",
            &summary_lines(&records, &emergency),
        ),
    )?;
    write(
        "LISEZMOI.txt",
        "bundle.json : tout l'espace en FHIR R4 ; emergency-summary.json : résumé d'urgence (IPS) ; summary.pdf : résumé du profil ; files/ : les fichiers d'origine.\nbundle.json: the whole space as FHIR R4; emergency-summary.json: emergency summary (IPS); summary.pdf: profile summary; files/: the original files.\n"
            .as_bytes(),
    )?;
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(|e| io(out, e))?;
    Ok((count, bytes))
}

/// Imports a bundle written by [`export`] (or the directory holding it); how many records
/// and documents it brought. Everything is checked before anything is written.
pub async fn import(d: &Daemon, space: SpaceId, path: &Path) -> Result<u64, ApiError> {
    let file = if path.is_dir() {
        path.join("bundle.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read(&file).map_err(|e| {
        ApiError::new(
            ApiErrorCode::BadRequest,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        ApiError::new(
            ApiErrorCode::BadRequest,
            format!("{} is not JSON: {e}", file.display()),
        )
    })?;
    let (r, files) = fhir::parse(&value).map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e))?;
    // Checks first: every record kind against its rules, every document's metadata.
    use crate::record::RecordDoc;
    let check = ApiError::from;
    r.profile.check().map_err(check)?;
    r.prevention.check().map_err(check)?;
    r.agenda.check().map_err(check)?;
    r.messages.check().map_err(check)?;
    r.care.check().map_err(check)?;
    for doc in &r.documents {
        if !files.contains_key(&doc.id) {
            return Err(check(mes_protocol::invalid::Invalid(format!(
                "document {} has no Binary in the bundle",
                doc.id
            ))));
        }
    }
    let n = r.profile.conditions.len()
        + r.profile.allergies.len()
        + r.profile.treatments.len()
        + r.profile.hospitalisations.len()
        + r.prevention.doses.len()
        + r.prevention.acts.len()
        + r.agenda.appointments.len()
        + r.messages.messages.len()
        + r.care.items.len()
        + r.documents.len()
        + r.measurements.len();
    let dir = tempfile::tempdir_in(&d.files.blob_dir)
        .or_else(|_| tempfile::tempdir())
        .map_err(|e| io(&d.files.blob_dir, e))?;
    for doc in &r.documents {
        let p = dir.path().join(safe_name(&doc.file_name));
        std::fs::write(&p, &files[&doc.id]).map_err(|e| io(&p, e))?;
        d.doc_add(
            space,
            &NewDocument {
                path: p.to_string_lossy().into_owned(),
                title: doc.title.clone(),
                category: doc.category.clone(),
                type_code: doc.type_code.clone(),
                class_code: doc.class_code.clone(),
                date: doc.date.clone(),
                author: doc.author.clone(),
                id: doc.id.clone(),
                source: doc.source.clone(),
            },
        )
        .await?;
        if doc.visibility.hidden_from_professionals {
            d.doc_hide(space, &doc.id, true).await?;
        }
        let _ = std::fs::remove_file(&p);
    }
    d.measure_add(space, r.measurements.clone()).await?;
    replace(d, space, &r.profile).await?;
    replace(d, space, &r.prevention).await?;
    replace(d, space, &r.agenda).await?;
    replace(d, space, &r.messages).await?;
    replace(d, space, &r.care).await?;
    d.record_update::<Emergency>(space, |e| {
        e.card = r.emergency.clone();
        e.copy_from(&r.profile);
        Ok(String::new())
    })
    .await?;
    Ok(n as u64)
}

/// Replaces a whole record document (checked like any edit).
async fn replace<T: crate::record::RecordDoc + Clone>(
    d: &Daemon,
    space: SpaceId,
    value: &T,
) -> Result<(), ApiError> {
    d.record_update::<T>(space, |doc| {
        *doc = value.clone();
        Ok(String::new())
    })
    .await
    .map(|_| ())
}
