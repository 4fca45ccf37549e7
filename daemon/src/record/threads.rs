//! Threads shared both ways with a professional (F4.2): a thread a professional starts
//! through the inbox gets a volume of its own, `threads/<id>`, which the person's daemon
//! declares and grants that professional alone (read and write). The person's replies and
//! theirs live there; the person's other messages stay in the `messages` volume, which no
//! professional reads. The messages view merges both.

use mes_protocol::access::membership::Role;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{PrincipalId, SpaceId, VolumeId};
use mes_protocol::record::messages::{thread_label, Message, Messages, Thread, THREADS_PREFIX};
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::Request;
use rand::rngs::OsRng;

use crate::daemon::{Daemon, MESSAGES};
use crate::record::Conflict;

impl Daemon {
    /// The thread volumes of a space this device holds a key for.
    fn thread_labels(&self, space: SpaceId) -> Vec<String> {
        let st = self.state();
        st.volumes
            .values()
            .filter(|v| v.meta.space == space && v.meta.label.starts_with(THREADS_PREFIX))
            .filter(|v| st.keys.current(v.meta.volume, v.meta.generation).is_some())
            .map(|v| v.meta.label.clone())
            .collect()
    }

    /// Every message this device may read in a space: the `messages` volume (the person's
    /// devices) and each thread volume it holds a key for (a professional, their own).
    pub fn messages_view(&self, space: SpaceId) -> Result<(Messages, Vec<Conflict>), ApiError> {
        let mut m = match self.record_get::<Messages>(space) {
            Ok(own) => own,
            Err(e) if self.thread_labels(space).is_empty() => return Err(e),
            Err(_) => (Messages::default(), Vec::new()),
        };
        for label in self.thread_labels(space) {
            let (t, c) = self.record_get_in::<Messages>(space, &label)?;
            m.0.threads.extend(t.threads);
            m.0.messages.extend(t.messages);
            m.1.extend(c);
        }
        Ok(m)
    }

    /// The volume a thread lives in: its own, or the `messages` volume.
    pub(crate) fn thread_home(&self, space: SpaceId, thread: &str) -> String {
        let label = thread_label(thread);
        if self.thread_labels(space).contains(&label) {
            label
        } else {
            MESSAGES.to_string()
        }
    }

    /// Files the first message of a thread a professional started: a volume of its own,
    /// declared and granted to them (read and write) before the message is written.
    pub(crate) async fn start_shared_thread(
        &self,
        space: SpaceId,
        professional: PrincipalId,
        subject: &str,
        message: Message,
    ) -> Result<(), ApiError> {
        let c = self.online_client("a shared thread")?;
        let thread = message.thread.clone();
        let label = thread_label(&thread);
        let decl = {
            let mut st = self.state();
            let volume = VolumeId(rand::Rng::gen(&mut OsRng));
            let mut batch = self.store.batch();
            let key = SymmetricKey::generate(&mut OsRng);
            let decl = crate::replica::partition::declare_new(
                &mut st,
                &self.identity(),
                (space, volume, &label),
                key,
                &mut batch,
            );
            self.store
                .apply(batch)
                .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
            decl
        };
        let volume = decl.body.volume;
        c.request(Request::DeclareVolume { decl })
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        let m = self.membership_of(space)?;
        let grant = self.signed_grant(&m, professional, Some(volume), Some(Role::Write));
        c.request(Request::PutGrant { grant })
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        self.record_update_in::<Messages>(space, &label, |m| {
            m.threads.push(Thread {
                id: thread.clone(),
                subject: subject.trim().into(),
                participants: vec![message.from.clone()],
                started_at: message.at.clone(),
            });
            let id = message.id.clone();
            m.messages.insert(id.clone(), message);
            Ok(id)
        })
        .await?;
        self.refresh_space(&c, space)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
    }
}
