//! Opening fetched bundles: author signatures verified in batches, binding checked,
//! decrypted, payloads decoded. Pure CPU on a snapshot of the keys, so it runs off the
//! async runtime and overlaps with applying the previous batch (the catch-up hot path).

use mes_protocol::crypto::keys::AgeSecret;
use mes_protocol::crypto::seal::{SealedBundle, SymmetricKey};
use mes_protocol::ids::{Epoch, Generation, Seq, SpaceId, VolumeId, VolumeKind};
use std::collections::HashMap;

use crate::daemon::SyncError;
use crate::replica::volume::{self, Payload};

/// What opening a batch gave.
#[derive(Default)]
pub struct Opened {
    /// Payloads in relay order.
    pub payloads: Vec<(Seq, Payload)>,
    /// The newer generation they start, if any.
    pub new_generation: Option<Generation>,
    /// Inbox drops that could not be opened, and why: set aside and reported, so one bad
    /// drop from a feeder never stalls the inbox (issue 22, finding 7).
    pub quarantined: Vec<(Seq, String)>,
}

/// One opened bundle, or the reason an inbox drop was set aside.
type OpenedOne = Result<(Seq, Generation, Payload), (Seq, String)>;

/// What opening a volume's bundles needs, copied out of the daemon's state.
pub struct OpenContext {
    /// Space.
    pub space: SpaceId,
    /// Volume.
    pub volume: VolumeId,
    /// The volume's current generation (older bundles are skipped).
    pub generation: Generation,
    /// Kind (inbox drops are opened with the inbox identity).
    pub kind: VolumeKind,
    /// Epoch keys by (generation, epoch).
    pub keys: HashMap<(Generation, Epoch), SymmetricKey>,
    /// The inbox identity, when this device's principal owns the space.
    pub inbox: Option<AgeSecret>,
    /// Accept the null cipher (the confidentiality tests' control only).
    pub allow_null: bool,
}

fn refused(seq: Seq, volume: VolumeId, e: impl std::fmt::Display) -> SyncError {
    SyncError::Refused(format!(
        "bundle {} of volume {} refused: {e}",
        seq.0,
        volume.short()
    ))
}

impl OpenContext {
    /// True when some bundle needs an epoch key this context lacks.
    pub fn misses_keys(&self, items: &[(Seq, SealedBundle)]) -> bool {
        self.kind != VolumeKind::Inbox
            && items.iter().any(|(_, b)| {
                b.header.generation >= self.generation
                    && !self
                        .keys
                        .contains_key(&(b.header.generation, b.header.epoch))
            })
    }

    fn open_one(
        &self,
        seq: Seq,
        b: &SealedBundle,
    ) -> Result<Option<(Seq, Generation, Payload)>, SyncError> {
        let h = &b.header;
        if h.generation < self.generation {
            return Ok(None);
        }
        let plain = if self.kind == VolumeKind::Inbox {
            match &self.inbox {
                Some(id) => b.open_drop(id, (self.space, self.volume)),
                None => return Ok(None),
            }
        } else {
            let Some(key) = self.keys.get(&(h.generation, h.epoch)) else {
                return Err(refused(
                    seq,
                    self.volume,
                    format!(
                        "no key for generation {} epoch {}: not a reader any more?",
                        h.generation.0, h.epoch.0
                    ),
                ));
            };
            b.open_verified(
                key,
                (self.space, self.volume, h.generation, h.epoch),
                self.allow_null,
            )
        }
        .map_err(|e| refused(seq, self.volume, e))?;
        let payload = volume::decode(&plain).map_err(|e| refused(seq, self.volume, e))?;
        Ok(Some((seq, h.generation, payload)))
    }

    fn open_part(&self, part: &[(Seq, SealedBundle)]) -> Result<Vec<OpenedOne>, SyncError> {
        if self.kind == VolumeKind::Inbox {
            // Drops come from many writers, each on its own: checked one by one, and one
            // that does not open is set aside, never a reason to stop.
            let mut out = Vec::with_capacity(part.len());
            for (seq, b) in part {
                let one = SealedBundle::verify_authors([b])
                    .map_err(|(_, e)| refused(*seq, self.volume, e))
                    .and_then(|()| self.open_one(*seq, b));
                match one {
                    Ok(Some(o)) => out.push(Ok(o)),
                    Ok(None) => {}
                    Err(e) => out.push(Err((*seq, e.to_string()))),
                }
            }
            return Ok(out);
        }
        if let Err((i, e)) = SealedBundle::verify_authors(part.iter().map(|(_, b)| b)) {
            return Err(refused(part[i].0, self.volume, e));
        }
        let mut out = Vec::with_capacity(part.len());
        for (seq, b) in part {
            out.extend(self.open_one(*seq, b)?.map(Ok));
        }
        Ok(out)
    }

    /// Opens every bundle, on every core; a newer generation keeps only its own bundles
    /// (its snapshot holds what came before).
    pub fn open(&self, items: &[(Seq, SealedBundle)]) -> Result<Opened, SyncError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(4);
        let per = items.len().div_ceil(threads).max(256);
        let out = std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(per)
                .map(|part| scope.spawn(move || self.open_part(part)))
                .collect();
            let mut out = Vec::with_capacity(items.len());
            for h in handles {
                out.extend(h.join().expect("bundle opening thread panicked")?);
            }
            Ok::<_, SyncError>(out)
        })?;
        let mut quarantined = Vec::new();
        let out: Vec<(Seq, Generation, Payload)> = out
            .into_iter()
            .filter_map(|o| o.map_err(|q| quarantined.push(q)).ok())
            .collect();
        let newest = out
            .iter()
            .map(|(_, g, _)| *g)
            .max()
            .filter(|g| *g > self.generation);
        let payloads = out
            .into_iter()
            .filter(|(_, g, _)| newest.is_none_or(|n| *g == n))
            .map(|(s, _, p)| (s, p))
            .collect();
        Ok(Opened {
            payloads,
            new_generation: newest,
            quarantined,
        })
    }
}
