//! Notifications rendered from templates (F1.2, F1.7, F1.8): French first, English
//! complete, carrying what seed 001's letter carries (the code, its validity, the
//! opposition deadline, how to activate or oppose). The templates are embedded and an
//! operator may replace them with files of the same names in a directory.

use super::OutboxError;
use std::path::Path;

use crate::enrolment::service::paris_date;
use crate::enrolment::store::{MessageKind, Outgoing};

/// The embedded templates, by name.
const BUILTIN: &[(&str, &str)] = &[
    (
        "notification.txt.j2",
        include_str!("../../templates/notification.txt.j2"),
    ),
    (
        "regenerated.txt.j2",
        include_str!("../../templates/regenerated.txt.j2"),
    ),
    (
        "reminder.txt.j2",
        include_str!("../../templates/reminder.txt.j2"),
    ),
    (
        "opposed_for_you.txt.j2",
        include_str!("../../templates/opposed_for_you.txt.j2"),
    ),
    (
        "closed_for_you.txt.j2",
        include_str!("../../templates/closed_for_you.txt.j2"),
    ),
];

/// What every message says about the hub.
#[derive(Clone, Debug)]
pub struct HubIdentity {
    /// Where to activate ("monespace.sante.fr").
    pub site: String,
    /// The signature ("Votre correspondant Mon espace santé").
    pub signature: String,
    /// The sender address of emails.
    pub from: String,
}

impl Default for HubIdentity {
    fn default() -> Self {
        HubIdentity {
            site: "monespace.sante.fr".into(),
            signature: "Votre correspondant Mon espace santé / Your Mon espace santé contact"
                .into(),
            from: "Mon espace santé <ne-pas-repondre@monespace.sante.fr>".into(),
        }
    }
}

/// The templates, compiled once.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

fn template_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Notification => "notification.txt.j2",
        MessageKind::Regenerated => "regenerated.txt.j2",
        MessageKind::Reminder => "reminder.txt.j2",
        MessageKind::OpposedForYou => "opposed_for_you.txt.j2",
        MessageKind::ClosedForYou => "closed_for_you.txt.j2",
    }
}

impl Templates {
    /// The embedded templates, each replaced by a file of the same name in `dir` if any;
    /// a template that does not compile is named.
    pub fn load(dir: Option<&Path>) -> Result<Self, OutboxError> {
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        for (name, text) in BUILTIN {
            let text = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(p) => std::fs::read_to_string(&p).map_err(|e| {
                    OutboxError::rule(format!("reading template {}: {e}", p.display()))
                })?,
                None => text.to_string(),
            };
            env.add_template_owned(*name, text)
                .map_err(|e| OutboxError::rule(format!("template {name}: {e}")))?;
        }
        Ok(Templates { env })
    }

    /// The subject of an email.
    pub fn subject(m: &Outgoing) -> String {
        match m.kind {
            MessageKind::Notification => format!(
                "Mon espace santé de {} : votre code provisoire / your provisional code",
                m.for_name
            ),
            MessageKind::Regenerated => {
                "Mon espace santé : nouveau code provisoire / new provisional code".into()
            }
            MessageKind::Reminder => "Mon espace santé vous attend / is waiting for you".into(),
            MessageKind::OpposedForYou => format!(
                "Mon espace santé de {} : opposition enregistrée / opposition recorded",
                m.for_name
            ),
            MessageKind::ClosedForYou => format!(
                "Mon espace santé de {} : clôture enregistrée / closure recorded",
                m.for_name
            ),
        }
    }

    /// The body of a message.
    pub fn render(
        &self,
        m: &Outgoing,
        code: Option<&str>,
        hub: &HubIdentity,
    ) -> Result<String, OutboxError> {
        let t = self.env.get_template(template_name(m.kind))?;
        let date =
            |t: Option<mes_protocol::time::UnixMillis>| t.map(paris_date).unwrap_or_default();
        Ok(t.render(minijinja::context! {
            addressee => m.addressee,
            for_name => m.for_name,
            minor => m.minor,
            code => code.unwrap_or_default(),
            code_expires => date(m.code_expires),
            deadline => date(m.deadline),
            site => hub.site,
            signature => hub.signature,
            channel => if m.email.is_some() { "email" } else { "courrier" },
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_letter_carries_the_code_the_deadline_and_both_choices_in_both_languages() {
        let t = Templates::load(None).unwrap();
        let m = Outgoing {
            kind: MessageKind::Notification,
            about: "1840569123456".into(),
            email: None,
            postal_address: Some("1 rue de la Paix, 69001 Lyon".into()),
            addressee: "Camille Martin".into(),
            for_name: "Lola Martin".into(),
            minor: true,
            code_issue: Some(1),
            code_expires: Some(mes_protocol::time::UnixMillis(1_775_000_000_000)),
            deadline: Some(mes_protocol::time::UnixMillis(1_776_000_000_000)),
            departement: "69".into(),
        };
        let body = t
            .render(&m, Some("123456789ABC"), &HubIdentity::default())
            .unwrap();
        for needle in [
            "Code provisoire pour Lola Martin : 123456789ABC",
            "Provisional code for Lola Martin: 123456789ABC",
            "la carte Vitale de Lola Martin",
            "vous opposer à sa création automatique jusqu'au 12/04/2026",
            "valable jusqu'au 01/04/2026",
            "mes enrol activate",
        ] {
            assert!(body.contains(needle), "{needle:?} missing from:\n{body}");
        }
        assert!(
            !body.contains("regenerate"),
            "a letter offers no new code by email"
        );
        assert!(body.find("Bonjour").unwrap() < body.find("Hello").unwrap());
    }
}
