//! Feeding a space without reading it (F7.6, F4.2, F5): a professional's daemon drops
//! structured items into the space's inbox, sealed to its inbox recipient (documents with
//! their file uploaded first, a message starting a thread, an appointment, a request for
//! consent); the owner's daemon files each where it belongs, once, under a stable id
//! (`inbox-<seq>`), naming the sender as the relay's directory lists them.

use mes_protocol::ids::{DeviceId, SpaceId};
use mes_protocol::record::agenda::{Agenda, Appointment};
use mes_protocol::record::documents::NewDocument;
use mes_protocol::record::inbox::InboxItem;
use mes_protocol::record::messages::Message;
use mes_protocol::record::Source;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use std::path::Path;

use crate::daemon::{Daemon, INBOX};
use crate::replica::volume::Replica;

/// Notes key prefix of consent requests waiting for the person.
pub const CONSENT_REQUEST_PREFIX: &str = "_consent-request/";

impl Daemon {
    /// Drops an item into the space's inbox.
    pub async fn drop_item(&self, space: SpaceId, item: &InboxItem) -> Result<(), ApiError> {
        self.inbox_drop(space, &item.encode()).await
    }

    /// Sends a document into the space's inbox: the file is sealed and queued for upload
    /// (before the drop, like every document), its key travels inside the sealed drop.
    pub async fn send_document(&self, space: SpaceId, new: &NewDocument) -> Result<(), ApiError> {
        let mut meta = crate::record::documents::checked_meta(new)?;
        let inbox = Daemon::volume_of(&self.state(), space, crate::daemon::INBOX)?;
        self.attach_file(space, inbox, &mut meta, Path::new(&new.path))?;
        self.drop_item(space, &InboxItem::Document(Box::new(meta)))
            .await
    }

    /// Who a dropping device is, as the directory says (or "unverified").
    fn sender_principal(&self, device: DeviceId) -> Option<mes_protocol::ids::PrincipalId> {
        self.access.principal_of(device)
    }

    fn sender(&self, device: DeviceId) -> Source {
        match self
            .sender_principal(device)
            .and_then(|p| self.directory_entry(p))
        {
            Some(e) => Source {
                kind: "professional".into(),
                name: format!(
                    "{} (RPPS {})",
                    e.body.professional.name, e.body.professional.rpps
                ),
            },
            None => Source {
                kind: "unverified".into(),
                name: format!("appareil / device {}", device.short()),
            },
        }
    }

    /// Files every structured drop not filed yet (owner only; idempotent).
    pub(crate) async fn file_inbox(&self, space: SpaceId) -> Result<usize, ApiError> {
        let drops = {
            let mut st = self.state();
            if st
                .spaces
                .get(&space)
                .map(super::super::replica::spaces::Space::owner)
                != Some(self.identity().principal.principal_id())
            {
                return Ok(0);
            }
            match Self::replica_of(&mut st, space, INBOX)? {
                Replica::Inbox(i) => i.drops().to_vec(),
                _ => return Ok(0),
            }
        };
        let mut filed = 0;
        for d in drops {
            let Some(item) = InboxItem::decode(&d.text) else {
                continue;
            };
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!("inbox drop {} does not decode: {e}", d.seq.0);
                    continue;
                }
            };
            let id = format!("inbox-{}", d.seq.0);
            let from = self.sender(d.from);
            let done = match item {
                InboxItem::Document(mut meta) => {
                    if self.doc_find(space, &id).is_ok() {
                        continue;
                    }
                    meta.id = id;
                    meta.source = from.clone();
                    if meta.author.is_empty() {
                        meta.author = from.name.clone();
                    }
                    // The professional's flags, made consistent; MASQUE_PS moves it to
                    // the hidden volume like any hidden document.
                    meta.visibility =
                        mes_protocol::record::documents::Visibility::from_professional(
                            &meta.visibility,
                        );
                    let label = self.doc_label(space, &meta)?;
                    // Its file was uploaded for the inbox: readers of `label` get it
                    // once the relay binds it there too (finding 8).
                    self.bind_to(space, &label, &meta)?;
                    let r = self.doc_write(space, &label, &meta).await;
                    if r.is_ok() {
                        self.notify(
                            space,
                            "document",
                            format!("Nouveau document « {} » de {}", meta.title, from.name),
                            format!("New document \"{}\" from {}", meta.title, from.name),
                        );
                    }
                    r
                }
                InboxItem::Message { subject, body } => {
                    let (m, _) = self.messages_view(space)?;
                    if m.messages.contains_key(&id) {
                        continue;
                    }
                    let message = Message {
                        thread: format!("t-{id}"),
                        id,
                        from: from.name.clone(),
                        body,
                        at: jiff::Timestamp::now().to_string(),
                        ..Default::default()
                    };
                    // A listed professional gets the thread's own volume, to read the
                    // replies and answer them (F4.2); anyone else's lands in messages.
                    match self
                        .sender_principal(d.from)
                        .filter(|p| self.directory_entry(*p).is_some())
                    {
                        Some(pro) => {
                            self.start_shared_thread(space, pro, &subject, message)
                                .await
                        }
                        None => self
                            .message_post(
                                space,
                                Message {
                                    thread: String::new(),
                                    ..message
                                },
                                &subject,
                            )
                            .await
                            .map(|_| ()),
                    }
                }
                InboxItem::Appointment(a) => {
                    let (agenda, _) = self.record_get::<Agenda>(space)?;
                    if agenda.appointments.iter().any(|x| x.id == id) {
                        continue;
                    }
                    self.record_update::<Agenda>(space, |ag| {
                        ag.appointments.push(Appointment {
                            id: id.clone(),
                            with: if a.with.is_empty() {
                                from.name.clone()
                            } else {
                                a.with.clone()
                            },
                            ..a
                        });
                        Ok(id.clone())
                    })
                    .await
                    .map(|_| ())
                }
                InboxItem::ConsentRequest { note } => {
                    let key = format!("{CONSENT_REQUEST_PREFIX}{}", d.seq.0);
                    if self.note_get(space, &key).is_ok() {
                        continue;
                    }
                    self.note_set_internal(space, &key, &format!("{}: {note}", from.name))
                        .await
                }
            };
            match done {
                Ok(()) => filed += 1,
                Err(e) => tracing::warn!("inbox drop {} not filed: {}", d.seq.0, e.message),
            }
        }
        Ok(filed)
    }

    /// The consent requests professionals sent, in words.
    pub fn consent_requests(&self, space: SpaceId) -> Result<Vec<String>, ApiError> {
        Ok(self
            .note_list_all(space)?
            .into_iter()
            .filter(|(k, _)| k.starts_with(CONSENT_REQUEST_PREFIX))
            .flat_map(|(_, v)| v)
            .collect())
    }

    /// The spaces this principal reads or feeds without owning them (a professional's
    /// patients), with what it may read.
    pub fn patients(&self) -> Vec<String> {
        let st = self.state();
        let me = self.identity().principal.principal_id();
        st.spaces
            .values()
            .filter(|s| s.owner() != me)
            .filter_map(|s| {
                let m = s.membership.as_ref()?;
                let reads: Vec<String> = m
                    .volumes
                    .values()
                    .filter(|d| {
                        m.role(me, Some(d.body.volume))
                            .is_some_and(mes_protocol::access::membership::Role::can_read)
                    })
                    .map(|d| d.body.label.clone())
                    .collect();
                Some(format!(
                    "{}  lit / reads: {}",
                    s.id(),
                    if reads.is_empty() {
                        "—".to_string()
                    } else {
                        reads.join(", ")
                    }
                ))
            })
            .collect()
    }
}

/// Refuses an empty subject or body before anything is dropped.
pub fn check_message(subject: &str, body: &str) -> Result<(), ApiError> {
    if subject.trim().is_empty() || body.trim().is_empty() {
        return Err(ApiError::new(
            ApiErrorCode::BadRequest,
            "a new thread needs a subject and a text",
        ));
    }
    Ok(())
}
