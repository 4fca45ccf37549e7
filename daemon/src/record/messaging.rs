//! Messages (F4) and the agenda view (F5): posting in a thread (or starting one), marking
//! read (the read receipt, F4.3), and the agenda's appointments with the prevention
//! reminders computed beside them (F5.2).

use jiff::civil::Date;
use mes_protocol::ids::SpaceId;
use mes_protocol::record::agenda::{Agenda, AgendaItem};
use mes_protocol::record::messages::{Message, Messages, Thread};
use mes_protocol::wire::api::{ApiError, ApiErrorCode};

use crate::daemon::Daemon;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorCode::BadRequest, m)
}

fn new_id() -> String {
    hex::encode(rand::Rng::gen::<[u8; 6]>(&mut rand::rngs::OsRng))
}

impl Daemon {
    /// Posts a message: a reply in `message.thread`, or the first of a new thread titled
    /// `subject`. Attachments must be documents of the space. Answers the message id.
    pub async fn message_post(
        &self,
        space: SpaceId,
        mut message: Message,
        subject: &str,
    ) -> Result<String, ApiError> {
        for a in &message.attachments {
            self.doc_find(space, a)
                .map_err(|_| bad(format!("attachment {a:?} is not a document of this space")))?;
        }
        if message.body.trim().is_empty() && message.attachments.is_empty() {
            return Err(bad("a message needs a text or an attachment"));
        }
        let now = jiff::Timestamp::now().to_string();
        if message.id.is_empty() {
            message.id = new_id();
        }
        if message.at.is_empty() {
            message.at = now.clone();
        }
        let home = if message.thread.is_empty() {
            crate::daemon::MESSAGES.to_string()
        } else {
            self.thread_home(space, &message.thread)
        };
        let owner = {
            let st = self.state();
            let me = self.identity().principal.principal_id();
            st.spaces.get(&space).is_some_and(|s| s.owner() == me)
        };
        self.record_update_in::<Messages>(space, &home, |m| {
            if message.from.is_empty() {
                // The professional answering in a shared thread signs with the name the
                // person's daemon gave them there.
                message.from = match m.threads.iter().find(|t| t.id == message.thread) {
                    Some(t) if !owner => t.participants.first().cloned().unwrap_or_default(),
                    _ => "me".into(),
                };
            }
            if message.thread.is_empty() {
                if subject.trim().is_empty() {
                    return Err(bad("a new thread needs a subject"));
                }
                message.thread = new_id();
                m.threads.push(Thread {
                    id: message.thread.clone(),
                    subject: subject.trim().into(),
                    participants: vec![message.from.clone()],
                    started_at: message.at.clone(),
                });
            } else if !m.threads.iter().any(|t| t.id == message.thread) {
                return Err(bad(format!("no thread {:?}", message.thread)));
            }
            let id = message.id.clone();
            m.messages.insert(id.clone(), message);
            Ok(id)
        })
        .await
    }

    /// Marks a message read (once; the time is the read receipt the sender sees).
    pub async fn message_read(&self, space: SpaceId, id: &str) -> Result<(), ApiError> {
        let (all, _) = self.messages_view(space)?;
        let home = match all.messages.get(id) {
            Some(msg) => self.thread_home(space, &msg.thread),
            None => crate::daemon::MESSAGES.to_string(),
        };
        self.record_update_in::<Messages>(space, &home, |m| {
            let msg = m.messages.get_mut(id).ok_or_else(|| {
                ApiError::new(ApiErrorCode::NotFound, format!("no message {id:?}"))
            })?;
            if msg.read_at.is_empty() {
                msg.read_at = jiff::Timestamp::now().to_string();
            }
            Ok(id.to_string())
        })
        .await
        .map(|_| ())
    }

    /// Appointments from `from` for `months`, and the reminders due by then, in time order.
    pub fn agenda_list(
        &self,
        space: SpaceId,
        from: Date,
        months: u32,
    ) -> Result<Vec<AgendaItem>, ApiError> {
        let until = from
            .checked_add(jiff::Span::new().months(i64::from(months)))
            .map_err(|e| bad(e.to_string()))?;
        let (agenda, _) = self.record_get::<Agenda>(space)?;
        let (from_s, until_s) = (from.to_string(), until.to_string());
        let mut items: Vec<AgendaItem> = agenda
            .appointments
            .into_iter()
            .filter(|a| a.at.as_str() >= from_s.as_str() && a.at.as_str() < until_s.as_str())
            .map(AgendaItem::Appointment)
            .collect();
        // Reminders need the birth date and sex; without them the agenda still shows.
        if let Ok(r) = self.reminders(space, from, months) {
            items.extend(r.into_iter().map(AgendaItem::Reminder));
        }
        items.sort_by(|a, b| a.when().cmp(b.when()));
        Ok(items)
    }
}
