//! How replies are shown: JSON for scripts, short bilingual text for people.

use mes_protocol::api::ApiReply;

/// A record document, readable and complete: indented JSON (French labels are the TUI's
/// job), then the conflicts the person has to resolve.
fn with_conflicts(
    doc: &impl serde::Serialize,
    conflicts: &[mes_protocol::record::Conflict],
) -> anyhow::Result<String> {
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

/// Renders a reply.
pub fn reply(r: &ApiReply, json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(match r {
            ApiReply::Done => serde_json::json!({ "ok": true }).to_string(),
            ApiReply::Values(v) => serde_json::json!({ "values": v }).to_string(),
            ApiReply::Status(s) => serde_json::to_string(s)?,
            ApiReply::Profile { profile, conflicts } => {
                serde_json::json!({ "profile": profile, "conflicts": conflicts }).to_string()
            }
            ApiReply::Touched(id) => serde_json::json!({ "id": id }).to_string(),
            ApiReply::Prevention { record, conflicts } => {
                serde_json::json!({ "record": record, "conflicts": conflicts }).to_string()
            }
            ApiReply::Reminders(r) => serde_json::json!({ "reminders": r }).to_string(),
            ApiReply::EmergencyNumbers(n) => serde_json::json!({ "numbers": n }).to_string(),
            other => serde_json::to_string(other)?,
        });
    }
    Ok(match r {
        ApiReply::Done => "ok".into(),
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
            out.trim_end().to_string()
        }
        ApiReply::Identity {
            principal,
            device,
            name,
        } => format!("personne / principal: {principal}\nappareil / device: {device} ({name})"),
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
        ApiReply::Prevention { record, conflicts } => with_conflicts(record, conflicts)?,
        ApiReply::Profile { profile, conflicts } => with_conflicts(profile, conflicts)?,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mes_protocol::record::{Conflict, Profile};

    #[test]
    fn a_record_shows_its_conflicts_in_text_and_json() {
        let r = ApiReply::Profile {
            profile: Box::new(Profile::default()),
            conflicts: vec![Conflict {
                path: "allergies/0/reaction".into(),
                values: vec!["choc".into(), "œdème".into()],
            }],
        };
        let text = reply(&r, false).unwrap();
        assert!(text.starts_with('{'), "{text}");
        assert!(
            text.ends_with("conflit / conflict: allergies/0/reaction = choc | œdème"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&reply(&r, true).unwrap()).unwrap();
        assert_eq!(json["conflicts"][0]["values"][1], "œdème");
        assert_eq!(json["profile"]["allergies"], serde_json::json!([]));
    }
}
