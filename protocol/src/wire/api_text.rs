//! How a reply is shown, next to its type: JSON for scripts, short bilingual text for
//! people ([`ApiReply::to_json`], [`ApiReply::to_text`]). A client strips control
//! characters of anyone's text before printing it (issue 22, finding 10).

use crate::wire::api::ApiReply;

/// A record document, readable and complete: indented JSON (French labels are the TUI's
/// job), then the conflicts the person has to resolve.
fn with_conflicts(
    doc: &impl serde::Serialize,
    conflicts: &[crate::record::Conflict],
) -> Result<String, serde_json::Error> {
    let mut out = serde_json::to_string_pretty(doc)?;
    for c in conflicts {
        out.push_str(&format!(
            "\nconflit / conflict: {} = {}",
            c.path,
            c.values.join(" | ")
        ));
    }
    Ok(out)
}

/// One document per line: date, category, title, author, hidden flag, id.
fn doc_line(d: &crate::record::documents::DocumentMeta) -> String {
    format!(
        "{}  {:<14} {}  — {}{}  [{}]",
        d.date,
        d.category,
        d.title,
        d.author,
        if d.visibility.hidden_from_professionals {
            "  (masqué / hidden)"
        } else {
            ""
        },
        d.id
    )
}

/// Renders a reply.
/// A service of the catalogue (F6): name, criteria, hosting, suspension, what is allowed.
fn service_text(v: &crate::enrolment::catalogue::ServiceView) -> String {
    let s = &v.service;
    let mut out = format!(
        "{} — {} ({})\n  {}\n  {}\n  éco-score / eco-score {} · hébergé en / hosted in {} · contrôlé depuis / controlled from {}\n  échange / exchanges: {}",
        s.id,
        s.name,
        s.editor,
        s.description_fr,
        s.description_en,
        s.criteria.eco_score,
        s.hosting_country,
        s.controller_country,
        s.data.join(", ")
    );
    if let (Some(fr), Some(en)) = (&v.suspended_fr, &v.suspended_en) {
        out.push_str(&format!("\n  SUSPENDU / SUSPENDED: {fr} / {en}"));
    }
    out.push_str(&if v.allowed.is_empty() {
        "\n  non autorisé / not allowed".to_string()
    } else {
        format!("\n  autorisé / allowed: {}", v.allowed.join(", "))
    });
    out
}

impl ApiReply {
    /// The reply as one line of JSON, for scripts (`--json`).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let r = self;
        Ok(match r {
            ApiReply::Done => serde_json::json!({ "ok": true }).to_string(),
            ApiReply::Values(v) => serde_json::json!({ "values": v }).to_string(),
            ApiReply::Status(s) => serde_json::to_string(s)?,
            ApiReply::Record { record, conflicts } => {
                let mut v = serde_json::to_value(record)?;
                v["conflicts"] = serde_json::to_value(conflicts)?;
                v.to_string()
            }
            ApiReply::Documents { total, docs } => {
                serde_json::json!({ "total": total, "documents": docs }).to_string()
            }
            ApiReply::Document(d) => serde_json::json!({ "document": d }).to_string(),
            ApiReply::Measurements(m) => serde_json::json!({ "measurements": m }).to_string(),
            ApiReply::Agenda(a) => serde_json::json!({ "agenda": a }).to_string(),
            ApiReply::Written { path, size } => {
                serde_json::json!({ "path": path, "size": size }).to_string()
            }
            ApiReply::Exported { path, files, bytes } => {
                serde_json::json!({ "path": path, "files": files, "bytes": bytes }).to_string()
            }
            ApiReply::Imported(n) => serde_json::json!({ "imported": n }).to_string(),
            ApiReply::Touched(id) => serde_json::json!({ "id": id }).to_string(),
            ApiReply::Reminders(r) => serde_json::json!({ "reminders": r }).to_string(),
            ApiReply::EmergencyNumbers(n) => serde_json::json!({ "numbers": n }).to_string(),
            ApiReply::AccessHistory(h) => serde_json::to_string(h)?,
            ApiReply::Consents(c) => serde_json::json!({ "consents": c }).to_string(),
            ApiReply::Catalogue(c) => serde_json::json!({ "services": c }).to_string(),
            ApiReply::Notifications(n) => serde_json::json!({ "notifications": n }).to_string(),
            ApiReply::Blocks(b) => serde_json::json!({ "blocks": b }).to_string(),
            ApiReply::Attending { consent, warning } => {
                serde_json::json!({ "consent": consent, "warning": warning }).to_string()
            }
            ApiReply::Spaces(s) => serde_json::json!({ "spaces": s }).to_string(),
            ApiReply::EnrolProfiles(p) => serde_json::json!({ "profiles": p }).to_string(),
            other => serde_json::to_string(other)?,
        })
    }

    /// The reply as short bilingual text, for people.
    pub fn to_text(&self) -> Result<String, serde_json::Error> {
        text(self)
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one arm of text per reply kind, the list a reader looks things up in"
)]
fn text(r: &ApiReply) -> Result<String, serde_json::Error> {
    Ok(match r {
        ApiReply::Done => "ok".into(),
        ApiReply::Enrolment(e) => e.detail.clone(),
        ApiReply::DocChecked(c) => format!(
            "{} problème(s) / problem(s), {} déjà présent(s) / already present",
            c.problems.len(),
            c.present.len()
        ),
        ApiReply::Values(v) => v.join("\n"),
        ApiReply::Status(s) => {
            let mut out = format!(
                "relais / relay: {} — {}\n{:<10} {:<8} {:>5} {:>8} {:>8} {:>8}\n",
                s.relay,
                if s.online {
                    "en ligne / online"
                } else {
                    "hors ligne / offline"
                },
                "volume",
                "espace",
                "gen",
                "curseur",
                "tête",
                "en att."
            );
            for v in &s.volumes {
                out.push_str(&format!(
                    "{:<10} {:<8} {:>5} {:>8} {:>8} {:>8}\n",
                    v.label,
                    v.space.short(),
                    v.generation,
                    v.cursor.0,
                    v.head.0,
                    v.pending_uploads
                ));
            }
            if s.slow_store_operations > 0 {
                out.push_str(&format!(
                    "⚠ {} opération(s) du stockage ont duré plus de 5 s (voir le journal de mesd) / store operation(s) took over 5 s (see mesd's log)\n",
                    s.slow_store_operations
                ));
            }
            out.trim_end().to_string()
        }
        ApiReply::Identity {
            principal,
            device,
            name,
            recipient,
        } => format!(
            "personne / principal: {principal}\nappareil / device: {device} ({name})\ndestinataire / recipient: {recipient}"
        ),
        ApiReply::SpaceCreated { space } => space.to_string(),
        ApiReply::Spaces(s) => s
            .iter()
            .map(|s| format!("{}  {}", s.space, s.label))
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::Notes(n) => n
            .iter()
            .map(|n| format!("{} = {}", n.key, n.values.join(" | ")))
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::Log(l) | ApiReply::Inbox(l) => l.join("\n"),
        ApiReply::Reminders(r) => r
            .iter()
            .map(|r| {
                let status = match r.status.as_str() {
                    "Late" => "en retard / late",
                    "Due" => "à faire / due",
                    _ => "à venir / upcoming",
                };
                let dose = r.dose.map(|d| format!(" (dose {d})")).unwrap_or_default();
                format!("{}  {:<22} {}{} / {}", r.from, status, r.fr, dose, r.en)
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::EmergencyNumbers(n) => n
            .iter()
            .map(|n| format!("{:<8} {}\n         {}", n.number, n.fr, n.en))
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::Record { record, conflicts } => with_conflicts(record, conflicts)?,
        ApiReply::Documents { total, docs } => {
            let mut lines: Vec<String> = docs.iter().map(doc_line).collect();
            if (docs.len() as u32) < *total {
                lines.push(format!(
                    "({} sur {total} / {} of {total}; --limit 0 pour tout / for all)",
                    docs.len(),
                    docs.len()
                ));
            }
            lines.join("\n")
        }
        ApiReply::Document(d) => doc_line(d),
        ApiReply::Measurements(m) => {
            let codes = crate::record::codes::Codes::builtin();
            m.iter()
                .map(|m| {
                    let unit = codes
                        .measurement_kind(&m.kind)
                        .map(|k| k.unit.clone())
                        .unwrap_or_default();
                    format!("{}  {:<12} {} {}", m.at, m.kind, m.value, unit)
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        ApiReply::Agenda(a) => a
            .iter()
            .map(|i| match i {
                crate::record::agenda::AgendaItem::Appointment(a) => format!(
                    "{}  RDV / appointment  {} {} {}  [{}]",
                    a.at, a.title, a.with, a.place, a.id
                ),
                crate::record::agenda::AgendaItem::Reminder(r) => {
                    format!("{}  rappel / reminder  {} / {}", r.from, r.fr, r.en)
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::Exported { path, files, bytes } => {
            format!("{path}\n({files} fichiers / files, {bytes} octets / bytes)")
        }
        ApiReply::Imported(n) => format!("{n} éléments importés / records imported"),
        ApiReply::Touched(id) => id.clone(),
        ApiReply::Blob { blob, size } => format!("{blob} ({size} octets / bytes)"),
        ApiReply::Written { path, size } => format!("{path} ({size} octets / bytes)"),
        ApiReply::PairingCode(c) => format!("code d'appairage / pairing code: {c}"),
        ApiReply::Devices(d) => d
            .iter()
            .map(|d| {
                format!(
                    "{} {}{}",
                    d.device,
                    d.name,
                    if d.this_device {
                        " (cet appareil / this device)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::Notifications(n) if n.is_empty() => {
            "aucune notification / no notification".into()
        }
        ApiReply::Notifications(n) => n
            .iter()
            .map(|n| format!("{}  {:<8} {} / {}", n.at.paris(), n.kind, n.fr, n.en))
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::Blocks(b) if b.is_empty() => "aucun blocage / nothing blocked".into(),
        ApiReply::Blocks(b) => b.join("\n"),
        ApiReply::Attending { consent, warning } => {
            let mut out = format!(
                "médecin traitant / attending physician: {}\n  lit / reads: {}",
                consent.name.as_deref().unwrap_or("?"),
                consent.reads.join(", ")
            );
            if let Some(w) = warning {
                out.push_str(&format!("\nATTENTION / WARNING: {w}"));
            }
            out
        }
        ApiReply::EnrolProfiles(p) if p.is_empty() => {
            "aucun profil inscrit depuis cet appareil / no profile enrolled from this device".into()
        }
        ApiReply::EnrolProfiles(p) => p
            .iter()
            .map(|p| format!("{} — {}", p.label, p.status.detail))
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::Catalogue(c) if c.is_empty() => {
            "catalogue vide / the catalogue is empty".into()
        }
        ApiReply::Catalogue(c) => c.iter().map(service_text).collect::<Vec<_>>().join("\n"),
        ApiReply::Service(v) => service_text(v),
        ApiReply::Consents(c) if c.is_empty() => "aucun accès accordé / no access granted".into(),
        ApiReply::Consents(c) => c
            .iter()
            .map(|c| {
                let who = match (&c.name, &c.rpps) {
                    (Some(n), Some(r)) => {
                        format!("{n} (RPPS {r}, {})", c.profession.as_deref().unwrap_or("?"))
                    }
                    _ => c.principal.to_string(),
                };
                let mut line = format!("{who}\n  lit / reads: {}", c.reads.join(", "));
                if !c.appends.is_empty() {
                    line.push_str(&format!(
                        "\n  dépose / drops into: {}",
                        c.appends.join(", ")
                    ));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ApiReply::AccessHistory(h) => {
            let mut lines = Vec::new();
            if let Some(a) = &h.alarm {
                lines.push(format!("ALERTE / ALARM: {a}"));
            }
            if h.entries.is_empty() {
                lines.push("aucun accès par un tiers / no access by anyone else".into());
            }
            for e in &h.entries {
                let who = match &e.name {
                    Some(n) => format!(
                        "{n} ({}{}{})",
                        e.profession.as_deref().unwrap_or("?"),
                        e.specialty
                            .as_deref()
                            .map(|s| format!(", {s}"))
                            .unwrap_or_default(),
                        e.structure
                            .as_deref()
                            .map(|s| format!(", {s}"))
                            .unwrap_or_default()
                    ),
                    None => e.actor.short(),
                };
                lines.push(format!(
                    "{:>4}  {}  {:<11} {:<20} {}{}",
                    e.seq,
                    e.at.paris(),
                    e.mode,
                    e.target,
                    who,
                    if e.suspicious {
                        "  [signalé / flagged]"
                    } else {
                        ""
                    }
                ));
            }
            lines.join("\n")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Conflict, RecordBody};

    #[test]
    fn a_record_shows_its_conflicts_in_text_and_json() {
        let r = ApiReply::Record {
            record: RecordBody::Profile(Box::default()),
            conflicts: vec![Conflict {
                path: "allergies/0/reaction".into(),
                values: vec!["choc".into(), "œdème".into()],
            }],
        };
        let text = r.to_text().unwrap();
        assert!(text.starts_with('{'), "{text}");
        assert!(
            text.ends_with("conflit / conflict: allergies/0/reaction = choc | œdème"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(json["conflicts"][0]["values"][1], "œdème");
        assert_eq!(json["profile"]["allergies"], serde_json::json!([]));
    }
}
