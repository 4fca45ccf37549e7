//! Closed spaces (F1.6): refused to everyone while archived, then erased from the store
//! when their day comes (`crate::erase`, issue 27 item 3).

use super::{internal, Relay};
use crate::store::{StoreError, Table};
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::WireError;

impl Relay {
    /// Whether a space is closed (F1.6): refused to everyone while archived.
    pub fn is_closed(&self, space: SpaceId) -> bool {
        self.closed.read().expect("closed lock").contains(&space)
    }

    /// Marks a space closed (refused to everyone) until it is erased at `erase_at`
    /// (`crate::erase`), or reopened (`None`), durably.
    pub async fn set_closed(
        &self,
        space: SpaceId,
        erase_at: Option<mes_protocol::time::UnixMillis>,
    ) -> Result<(), WireError> {
        if let Some(at) = erase_at {
            self.store
                .put_record(
                    Table::Closed,
                    space.0.to_vec(),
                    crate::erase::closed_value(at),
                )
                .await
                .map_err(internal)?;
            self.closed.write().expect("closed lock").insert(space);
        } else {
            self.store
                .remove_record(Table::Closed, space.0.to_vec())
                .await
                .map_err(internal)?;
            self.closed.write().expect("closed lock").remove(&space);
        }
        Ok(())
    }

    /// Erases every closed space whose day has come (F1.6, `crate::erase`): the sweep
    /// runs it. Returns what each erasure removed.
    pub async fn erase_due(
        &self,
        now: mes_protocol::time::UnixMillis,
    ) -> Result<Vec<(SpaceId, crate::erase::Erasure)>, StoreError> {
        let mut done = Vec::new();
        for space in crate::erase::due(&*self.store, now).await? {
            let lock = self.membership_lock(space);
            let _one_writer = lock.lock().await;
            let erased = crate::erase::erase_space(&*self.store, space, now).await?;
            self.memberships
                .write()
                .expect("membership lock")
                .remove(&space);
            self.closed.write().expect("closed lock").remove(&space);
            tracing::info!(space = %space.short(), ?erased, "closed space erased at the hub (F1.6)");
            done.push((space, erased));
        }
        Ok(done)
    }
}
