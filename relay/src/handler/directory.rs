//! The professional directory (lookups by RPPS and by structure, its import) and the catalogue of approved services.

use super::{internal, Relay};
use crate::store::{StoreError, Table};
use mes_protocol::access::membership::Signed;
use mes_protocol::enrolment::principal::{DirectoryEntry, Professional, Rpps};
use mes_protocol::ids::PrincipalId;
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, WireError};

pub(super) fn rpps_key(rpps: &Rpps) -> Vec<u8> {
    [b"r".as_slice(), rpps.as_str().as_bytes()].concat()
}

/// The structure index of the directory: `s` || structure || 0 || principal, whose value
/// is the principal while it works there, empty once it left (finding 6: `ListStructure`
/// reads one structure, not the whole directory).
pub(super) fn structure_key(structure: &str, p: PrincipalId) -> Vec<u8> {
    [b"s".as_slice(), structure.as_bytes(), &[0], p.0.as_slice()].concat()
}

pub(super) fn principal_key(p: PrincipalId) -> Vec<u8> {
    [b"p".as_slice(), p.0.as_slice()].concat()
}

impl Relay {
    /// The directory's signed entries of everyone listed under a structure (a care team).
    pub(super) async fn list_structure(&self, structure: String) -> Result<Reply, WireError> {
        // One structure's index lines, then each listed entry (finding 6).
        let prefix = [b"s".as_slice(), structure.as_bytes(), &[0]].concat();
        let mut entries = Vec::new();
        for (_, v) in self
            .store
            .scan_records(Table::Directory, &prefix)
            .await
            .map_err(internal)?
        {
            let Ok(p) = <[u8; 32]>::try_from(v.as_slice()) else {
                continue;
            };
            if let Some(e) = self.professional(PrincipalId(p)).await? {
                if e.body.professional.structure.as_deref() == Some(structure.as_str()) {
                    entries.push(e);
                }
            }
        }
        Ok(Reply::Professionals { entries })
    }

    /// The directory's signed entry for a professional, by RPPS number.
    pub(super) async fn find_professional(&self, rpps: String) -> Result<Reply, WireError> {
        let rpps =
            Rpps::parse(&rpps).map_err(|e| WireError::new(ErrorCode::BadRecord, e.to_string()))?;
        let principal = self
            .store
            .get_record(Table::Directory, &rpps_key(&rpps))
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::NotFound,
                    format!("no professional with RPPS {rpps} in the directory"),
                )
            })?;
        let principal = PrincipalId(
            principal
                .as_slice()
                .try_into()
                .map_err(|_| internal(StoreError::corrupt("directory index holds a bad key")))?,
        );
        let entry = self.professional(principal).await?.ok_or_else(|| {
            internal(StoreError::corrupt(format!(
                "directory index names {principal:?} but no entry"
            )))
        })?;
        Ok(Reply::Professional { entry })
    }

    /// The hub's catalogue of approved services (F6), suspended ones included.
    pub(super) async fn get_catalogue(&self) -> Result<Reply, WireError> {
        let mut entries = self.catalogue_entries();
        self.faults.alter_catalogue(&mut entries);
        Ok(Reply::Catalogue { entries })
    }

    /// The directory's entry for a principal, if listed.
    pub async fn professional(
        &self,
        principal: PrincipalId,
    ) -> Result<Option<Signed<DirectoryEntry>>, WireError> {
        self.store
            .get_record(Table::Directory, &principal_key(principal))
            .await
            .map_err(internal)?
            .map(|v| {
                codec::from_bytes(&v).map_err(|e| internal(StoreError::corrupt(e.to_string())))
            })
            .transpose()
    }

    /// Imports checked directory rows (see [`crate::directory::parse`]), each signed with
    /// the relay's key; a professional listed again replaces their entry. Returns how many.
    pub async fn import_directory(
        &self,
        rows: Vec<(PrincipalId, Professional)>,
    ) -> Result<usize, StoreError> {
        let n = rows.len();
        for (principal, professional) in rows {
            // A principal whose RPPS changed loses the old index line.
            if let Some(old) = self
                .professional(principal)
                .await
                .map_err(|e| StoreError::backend(e.message))?
            {
                if old.body.professional.rpps != professional.rpps {
                    self.store
                        .put_record(
                            Table::Directory,
                            rpps_key(&old.body.professional.rpps),
                            Vec::new(),
                        )
                        .await?;
                }
                if let Some(left) = old.body.professional.structure.as_deref() {
                    if Some(left) != professional.structure.as_deref() {
                        self.store
                            .put_record(
                                Table::Directory,
                                structure_key(left, principal),
                                Vec::new(),
                            )
                            .await?;
                    }
                }
            }
            if let Some(structure) = &professional.structure {
                self.store
                    .put_record(
                        Table::Directory,
                        structure_key(structure, principal),
                        principal.0.to_vec(),
                    )
                    .await?;
            }
            let rk = rpps_key(&professional.rpps);
            let entry = Signed::sign(
                DirectoryEntry {
                    principal,
                    professional,
                    listed_at: self.clock.now(),
                },
                &self.key,
            );
            self.store
                .put_record(
                    Table::Directory,
                    principal_key(principal),
                    codec::to_bytes(&entry),
                )
                .await?;
            self.store
                .put_record(Table::Directory, rk, principal.0.to_vec())
                .await?;
        }
        Ok(n)
    }
}
