//! The typed record documents (profile, prevention, emergency, agenda, messages, care): read, edit and update through [`crate::record::RecordDoc`], the emergency card following the profile (F2.10), reminders (F5.2).

use crate::daemon::{storage, Daemon, EMERGENCY, PROFILE};
use crate::replica::volume::Replica;
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use rand::rngs::OsRng;

impl Daemon {
    /// A record document (the profile, the prevention record) and its conflicts.
    pub fn record_get<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
    ) -> Result<(T, Vec<crate::record::Conflict>), ApiError> {
        self.record_get_in::<T>(space, T::LABEL)
    }

    /// A record document kept in the volume `label` (a thread volume holds messages).
    pub fn record_get_in<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        label: &str,
    ) -> Result<(T, Vec<crate::record::Conflict>), ApiError> {
        let mut st = self.state();
        match Self::replica_of(&mut st, space, label)? {
            Replica::Doc(d) => Ok((
                d.hydrate()
                    .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?,
                d.conflicts(),
            )),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                format!("{} volume is not a document", T::LABEL),
            )),
        }
    }

    /// Edits a record document, checked against its type and [`RecordDoc::check`];
    /// acknowledged after the flush. The id of the record touched.
    ///
    /// [`RecordDoc::check`]: crate::record::RecordDoc::check
    pub async fn record_edit<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        edit: &mes_protocol::record::RecordEdit,
    ) -> Result<String, ApiError> {
        self.record_update::<T>(space, |current| {
            let (edited, id) = crate::record::edit::apply(&*current, &T::SECTIONS, edit, || {
                hex::encode(rand::Rng::gen::<[u8; 6]>(&mut OsRng))
            })
            .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e))?;
            *current = edited;
            Ok(id)
        })
        .await
    }

    /// Changes a record document through `f` (which answers what it touched), checks it
    /// with [`RecordDoc::check`] and writes the difference; nothing is written on error.
    /// A profile change brings the emergency section's copies up to date.
    ///
    /// [`RecordDoc::check`]: crate::record::RecordDoc::check
    pub async fn record_update<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        f: impl FnOnce(&mut T) -> Result<String, ApiError>,
    ) -> Result<String, ApiError> {
        self.record_update_in::<T>(space, T::LABEL, f).await
    }

    /// [`Daemon::record_update`] on the volume `label`.
    pub async fn record_update_in<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        label: &str,
        f: impl FnOnce(&mut T) -> Result<String, ApiError>,
    ) -> Result<String, ApiError> {
        let mut touched = String::new();
        self.local_change(space, label, |v, _| {
            let Replica::Doc(d) = v.replica().map_err(storage)? else {
                return Err(ApiError::new(
                    ApiErrorCode::Internal,
                    format!("{} volume is not a document", T::LABEL),
                ));
            };
            let mut doc: T = d
                .hydrate()
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
            touched = f(&mut doc)?;
            doc.check()
                .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e))?;
            d.reconcile(&doc)
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
        })
        .await?;
        if T::LABEL == PROFILE {
            // The emergency section keeps copies of the profile (F2.10).
            self.emergency_follow_profile(space).await?;
        }
        Ok(touched)
    }

    /// Brings the emergency section's copies of the profile up to date (F2.10).
    pub async fn emergency_follow_profile(&self, space: SpaceId) -> Result<(), ApiError> {
        let (profile, _) = self.record_get::<mes_protocol::record::Profile>(space)?;
        self.local_change(space, EMERGENCY, |v, _| {
            let Replica::Doc(d) = v.replica().map_err(storage)? else {
                return Err(ApiError::new(
                    ApiErrorCode::Internal,
                    "emergency is not a document",
                ));
            };
            let mut e: mes_protocol::record::Emergency = d
                .hydrate()
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
            e.copy_from(&profile);
            d.reconcile(&e)
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
        })
        .await
        .map(|_| ())
    }

    /// Reminders due by `today + months`, from the profile's person and the prevention
    /// record.
    pub fn reminders(
        &self,
        space: SpaceId,
        today: jiff::civil::Date,
        months: u32,
    ) -> Result<Vec<mes_protocol::record::ReminderItem>, ApiError> {
        let (profile, _) = self.record_get(space)?;
        let (record, _) = self.record_get(space)?;
        crate::record::check::reminders(&profile, &record, today, months)
            .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e))
    }
}
