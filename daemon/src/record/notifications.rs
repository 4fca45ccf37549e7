//! Notifications in the client (F8.2): a professional's access, a document added or
//! modified by someone else, a new device of the person; each kind on or off as the
//! person chooses (the note `_notify`, all on by default). They are kept sealed in the
//! replica, newest first, and announced with an `ApiEvent::Notified`. Email from the hub
//! comes with the hub's enrolment (issue 7).

use mes_protocol::access::consent::{NotificationView, NOTIFICATION_KINDS};
use mes_protocol::ids::{DeviceId, SpaceId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode, ApiEvent};
use mes_protocol::wire::codec;
use std::collections::BTreeSet;

use crate::daemon::Daemon;

const NAMESPACE: &str = "notifications";
const KNOWN_DEVICES: &str = "known-devices";
/// Notes key of the kinds turned off.
pub const PREFS_KEY: &str = "_notify";
/// How many notifications are kept per space.
const KEEP: usize = 500;

impl Daemon {
    /// The kinds the person wants.
    pub fn notify_prefs(&self, space: SpaceId) -> BTreeSet<String> {
        let off: BTreeSet<String> = self
            .note_value(space, PREFS_KEY)
            .map(|v| {
                v.strip_prefix("off:")
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        NOTIFICATION_KINDS
            .iter()
            .map(std::string::ToString::to_string)
            .filter(|k| !off.contains(k))
            .collect()
    }

    /// Keeps exactly `kinds` on.
    pub async fn set_notify_prefs(&self, space: SpaceId, kinds: &[String]) -> Result<(), ApiError> {
        for k in kinds {
            if !NOTIFICATION_KINDS.contains(&k.as_str()) {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    format!(
                        "unknown notification kind {k:?}; known: {}",
                        NOTIFICATION_KINDS.join(", ")
                    ),
                ));
            }
        }
        let off: Vec<&str> = NOTIFICATION_KINDS
            .iter()
            .copied()
            .filter(|k| !kinds.iter().any(|x| x == k))
            .collect();
        self.note_set_internal(space, PREFS_KEY, &format!("off:{}", off.join(",")))
            .await
    }

    /// The notifications of a space, newest first.
    pub fn notifications(&self, space: SpaceId) -> Vec<NotificationView> {
        self.store
            .get_decoded(NAMESPACE, &space.0)
            .unwrap_or_default()
    }

    /// Raises a notification if the person wants that kind.
    pub(crate) fn notify(&self, space: SpaceId, kind: &str, fr: String, en: String) {
        if !self.notify_prefs(space).contains(kind) {
            return;
        }
        let mut all = self.notifications(space);
        all.insert(
            0,
            NotificationView {
                at: UnixMillis::now(),
                kind: kind.into(),
                fr,
                en,
            },
        );
        all.truncate(KEEP);
        let mut batch = self.store.batch();
        batch.put(NAMESPACE, &space.0, &codec::to_bytes(&all));
        match self.store.apply(batch) {
            Ok(()) => self.emit(ApiEvent::Notified { space }),
            Err(e) => tracing::warn!("saving a notification: {e}"),
        }
    }

    /// Notices devices of the person not seen before (the first look only remembers).
    pub(crate) fn notice_devices(&self, space: SpaceId, devices: &[(DeviceId, String)]) {
        let known: Option<BTreeSet<DeviceId>> = self.store.get_decoded(KNOWN_DEVICES, &space.0);
        let now: BTreeSet<DeviceId> = devices.iter().map(|(d, _)| *d).collect();
        if let Some(known) = &known {
            for (d, name) in devices.iter().filter(|(d, _)| !known.contains(d)) {
                self.notify(
                    space,
                    "device",
                    format!("Nouvel appareil connecté : {name} ({})", d.short()),
                    format!("New device connected: {name} ({})", d.short()),
                );
            }
        }
        if known.as_ref() != Some(&now) {
            let mut all = known.unwrap_or_default();
            all.extend(now);
            let mut batch = self.store.batch();
            batch.put(KNOWN_DEVICES, &space.0, &codec::to_bytes(&all));
            if let Err(e) = self.store.apply(batch) {
                tracing::warn!("saving known devices: {e}");
            }
        }
    }
}
