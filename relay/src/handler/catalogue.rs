//! The relay's side of the catalogue (F6): importing the operator's services (each signed
//! with the hub's key, a suspension computed from where it is hosted and who controls
//! it), serving the list, and enforcing it: a suspended service is refused every request
//! on every space, and a grant to a service must stay inside the data it was approved
//! for, read or write, never the whole space nor administration.

use mes_protocol::access::membership::{Grant, Membership, Role, Signed};
use mes_protocol::enrolment::catalogue::{CatalogueEntry, Service, Suspension};
use mes_protocol::ids::PrincipalId;
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, WireError};
use serde::Serialize;

use crate::handler::Relay;
use crate::store::Table;

/// What an import did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct CatalogueReport {
    /// Services in the file.
    pub listed: usize,
    /// Of which suspended (hosting or control outside the EU).
    pub suspended: usize,
    /// Services of the previous catalogue missing from the file, now withdrawn.
    pub withdrawn: usize,
}

impl Relay {
    /// Replaces the catalogue with `services` (checked by [`crate::catalogue::parse`]):
    /// each is signed with its suspension, if any; a service of the old catalogue that
    /// the file no longer lists stays known, withdrawn, so it keeps being refused.
    /// Refuses, changing nothing, a service whose principal the directory lists as a
    /// professional.
    pub async fn import_catalogue(
        &self,
        services: Vec<Service>,
    ) -> Result<CatalogueReport, WireError> {
        for s in &services {
            if let Some(p) = self.professional(s.principal).await? {
                return Err(WireError::new(
                    ErrorCode::BadRecord,
                    format!(
                        "service {:?}: principal {} is the professional {} in the directory; nothing imported",
                        s.id, s.principal, p.body.professional.rpps
                    ),
                ));
            }
        }
        let now = self.clock.now();
        let mut report = CatalogueReport {
            listed: services.len(),
            ..Default::default()
        };
        let mut entries: Vec<Signed<CatalogueEntry>> = Vec::new();
        let listed: std::collections::BTreeSet<PrincipalId> =
            services.iter().map(|s| s.principal).collect();
        for service in services {
            let suspended = service.suspension();
            report.suspended += usize::from(suspended.is_some());
            entries.push(Signed::sign(
                CatalogueEntry {
                    service,
                    listed_at: now,
                    suspended,
                },
                &self.key,
            ));
        }
        for old in self.catalogue_entries() {
            let withdrawn = old.body.suspended == Some(Suspension::Withdrawn);
            if !listed.contains(&old.body.service.principal) && !withdrawn {
                report.withdrawn += 1;
                entries.push(Signed::sign(
                    CatalogueEntry {
                        service: old.body.service,
                        listed_at: now,
                        suspended: Some(Suspension::Withdrawn),
                    },
                    &self.key,
                ));
            }
        }
        for e in &entries {
            self.store
                .put_record(
                    Table::Catalogue,
                    e.body.service.principal.0.to_vec(),
                    codec::to_bytes(e),
                )
                .await
                .map_err(super::internal)?;
        }
        let mut c = self.catalogue.write().expect("catalogue lock");
        for e in entries {
            c.insert(e.body.service.principal, e);
        }
        Ok(report)
    }

    /// Every entry, by service id.
    pub fn catalogue_entries(&self) -> Vec<Signed<CatalogueEntry>> {
        let mut v: Vec<_> = self
            .catalogue
            .read()
            .expect("catalogue lock")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.body.service.id.cmp(&b.body.service.id));
        v
    }

    /// The catalogue's entry for a principal, if it is a service.
    pub(crate) fn service(&self, principal: PrincipalId) -> Option<Signed<CatalogueEntry>> {
        self.catalogue
            .read()
            .expect("catalogue lock")
            .get(&principal)
            .cloned()
    }

    /// Refuses a suspended service (F6.3), whatever it asks.
    pub(crate) fn refuse_suspended(&self, who: PrincipalId) -> Result<(), WireError> {
        let c = self.catalogue.read().expect("catalogue lock");
        match c
            .get(&who)
            .and_then(|e| e.body.suspended.as_ref().map(|s| (e, s)))
        {
            Some((e, why)) => Err(WireError::new(
                ErrorCode::Forbidden,
                format!("service {:?} is {why}", e.body.service.id),
            )),
            None => Ok(()),
        }
    }

    /// A grant to a service (F6.2): per volume, on volumes its approved data cover, read
    /// or write; never to a suspended service. Removals always pass.
    pub(crate) fn check_service_grant(
        &self,
        m: &Membership,
        g: &Grant,
        entry: &CatalogueEntry,
    ) -> Result<(), WireError> {
        let Some(role) = g.role else {
            return Ok(());
        };
        let s = &entry.service;
        let refuse = |why: String| {
            Err(WireError::new(
                ErrorCode::Forbidden,
                format!("service {:?}: {why}", s.id),
            ))
        };
        if let Some(why) = &entry.suspended {
            return refuse(format!("{why}; it cannot be allowed anything"));
        }
        let Some(label) = g.volume.and_then(|v| m.volume(v)).map(|d| d.label.as_str()) else {
            return refuse("a service is allowed named data, never the whole space".into());
        };
        if role > Role::Write {
            return refuse("a service cannot administer a space".into());
        }
        if !s.offers(label) {
            return refuse(format!(
                "it was approved to exchange {}, not {label:?}",
                s.data.join(", ")
            ));
        }
        Ok(())
    }
}
