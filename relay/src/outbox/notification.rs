//! Notifications rendered from templates (F1.2, F1.7, F1.8): French first, English
//! complete, carrying what seed 001's letter carries (the code, its validity, the
//! opposition deadline, how to activate or oppose). The templates are embedded and an
//! operator may replace them with files of the same names in a directory.

use super::OutboxError;
use std::path::Path;

use crate::enrolment::store::{MessageKind, Outgoing};

/// The embedded templates, by name: each kind's body, and its email subject.
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
    (
        "notification.subject.j2",
        include_str!("../../templates/notification.subject.j2"),
    ),
    (
        "regenerated.subject.j2",
        include_str!("../../templates/regenerated.subject.j2"),
    ),
    (
        "reminder.subject.j2",
        include_str!("../../templates/reminder.subject.j2"),
    ),
    (
        "opposed_for_you.subject.j2",
        include_str!("../../templates/opposed_for_you.subject.j2"),
    ),
    (
        "closed_for_you.subject.j2",
        include_str!("../../templates/closed_for_you.subject.j2"),
    ),
];

/// What a template may use (see [`context`]).
const VARIABLES: [&str; 9] = [
    "addressee",
    "for_name",
    "minor",
    "code",
    "code_expires",
    "deadline",
    "site",
    "signature",
    "channel",
];

/// Every kind of message, to check each template once at start.
const KINDS: [MessageKind; 5] = [
    MessageKind::Notification,
    MessageKind::Regenerated,
    MessageKind::Reminder,
    MessageKind::OpposedForYou,
    MessageKind::ClosedForYou,
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

/// The name of a kind's templates, without `.txt.j2` (body) or `.subject.j2`.
fn template_stem(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Notification => "notification",
        MessageKind::Regenerated => "regenerated",
        MessageKind::Reminder => "reminder",
        MessageKind::OpposedForYou => "opposed_for_you",
        MessageKind::ClosedForYou => "closed_for_you",
    }
}

impl Templates {
    /// The embedded templates, each replaced by a file of the same name in `dir` if any.
    /// Rendering is strict: a template that does not compile, or that names a variable
    /// no message has (a typo in an operator's template), is refused here, when
    /// `campaign run` or `deliver` starts, with its name, rather than sent with a blank.
    pub fn load(dir: Option<&Path>) -> Result<Self, OutboxError> {
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
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
        for (name, _) in BUILTIN {
            let mut unknown: Vec<String> = env
                .get_template(name)?
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| !VARIABLES.contains(&v.as_str()))
                .collect();
            if !unknown.is_empty() {
                unknown.sort();
                return Err(OutboxError::rule(format!(
                    "template {name} names {}, which no message has; a template may use {}",
                    unknown.join(", "),
                    VARIABLES.join(", ")
                )));
            }
        }
        let templates = Templates { env };
        for kind in KINDS {
            let sample = Outgoing {
                kind,
                about: "1800569123456".into(),
                email: Some("camille.martin@exemple.fr".into()),
                postal_address: Some("1 rue de la Paix, 69001 Lyon".into()),
                addressee: "Camille Martin".into(),
                for_name: "Camille Martin".into(),
                minor: false,
                code_issue: Some(1),
                code_expires: Some(mes_protocol::time::UnixMillis(1_775_000_000_000)),
                deadline: Some(mes_protocol::time::UnixMillis(1_776_000_000_000)),
                departement: "69".into(),
            };
            let hub = HubIdentity::default();
            templates
                .subject(&sample, &hub)
                .and_then(|_| templates.render(&sample, Some("123456789ABC"), &hub))
                .map_err(|e| OutboxError::rule(format!("template {}: {e}", template_stem(kind))))?;
        }
        Ok(templates)
    }

    /// The subject of an email, one line.
    pub fn subject(&self, m: &Outgoing, hub: &HubIdentity) -> Result<String, OutboxError> {
        let t = self
            .env
            .get_template(&format!("{}.subject.j2", template_stem(m.kind)))?;
        let text = t.render(context(m, None, hub))?;
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// The body of a message.
    pub fn render(
        &self,
        m: &Outgoing,
        code: Option<&str>,
        hub: &HubIdentity,
    ) -> Result<String, OutboxError> {
        let t = self
            .env
            .get_template(&format!("{}.txt.j2", template_stem(m.kind)))?;
        Ok(t.render(context(m, code, hub))?)
    }
}

/// What a template may use: the person, the code, its validity and the deadline as the
/// person reads dates (in their own time zone overseas), the hub, and the channel.
fn context(m: &Outgoing, code: Option<&str>, hub: &HubIdentity) -> minijinja::Value {
    let date = |t: Option<mes_protocol::time::UnixMillis>| {
        t.map(|t| mes_protocol::time::local_date(t, &m.departement))
            .unwrap_or_default()
    };
    minijinja::context! {
        addressee => m.addressee,
        for_name => m.for_name,
        minor => m.minor,
        code => code.unwrap_or_default(),
        code_expires => date(m.code_expires),
        deadline => date(m.deadline),
        site => hub.site,
        signature => hub.signature,
        channel => if m.email.is_some() { "email" } else { "courrier" },
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

    #[test]
    fn an_operators_template_naming_an_unknown_variable_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reminder.txt.j2");
        std::fs::write(&path, "Bonjour {{ adressee }},\n").unwrap();
        let Err(e) = Templates::load(Some(dir.path())) else {
            panic!("a misspelt variable loads")
        };
        assert!(
            e.to_string().contains("reminder") && e.to_string().contains("adressee"),
            "{e}"
        );
        // Control: spelt right, it loads and is what is sent.
        std::fs::write(&path, "Bonjour {{ addressee }},\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let subject = dir.path().join("reminder.subject.j2");
        std::fs::write(&subject, "Rappel pour {{ for_name }}").unwrap();
        let t2 = Templates::load(Some(dir.path())).unwrap();
        let m = Outgoing {
            kind: MessageKind::Reminder,
            about: "1840569123456".into(),
            email: Some("a@exemple.fr".into()),
            postal_address: None,
            addressee: "Camille Martin".into(),
            for_name: "Camille Martin".into(),
            minor: false,
            code_issue: None,
            code_expires: None,
            deadline: None,
            departement: "69".into(),
        };
        assert_eq!(
            t.render(&m, None, &HubIdentity::default()).unwrap(),
            "Bonjour Camille Martin,\n"
        );
        assert_eq!(
            t2.subject(&m, &HubIdentity::default()).unwrap(),
            "Rappel pour Camille Martin"
        );
    }

    #[test]
    fn overseas_letters_give_dates_in_the_persons_time_zone() {
        let t = Templates::load(None).unwrap();
        // The deadline is 14 April 2026 at 01:00 in Paris: still the 13th in Guadeloupe.
        let deadline = jiff::civil::date(2026, 4, 14)
            .at(1, 0, 0, 0)
            .to_zoned(mes_protocol::time::paris())
            .unwrap()
            .timestamp()
            .as_millisecond() as u64;
        let letter = |departement: &str| {
            let m = Outgoing {
                kind: MessageKind::Notification,
                about: "1840597112345".into(),
                email: None,
                postal_address: Some("1 rue Schoelcher, 97110 Pointe-à-Pitre".into()),
                addressee: "Léa Bernard".into(),
                for_name: "Léa Bernard".into(),
                minor: false,
                code_issue: Some(1),
                code_expires: Some(mes_protocol::time::UnixMillis(deadline)),
                deadline: Some(mes_protocol::time::UnixMillis(deadline)),
                departement: departement.into(),
            };
            t.render(&m, Some("123456789ABC"), &HubIdentity::default())
                .unwrap()
        };
        assert!(letter("971").contains("jusqu'au 13/04/2026"));
        // Control: the same deadline in Lyon.
        assert!(letter("69").contains("jusqu'au 14/04/2026"));
    }
}
