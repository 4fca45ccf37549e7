//! Who hears what: per-connection push state, volume subscriptions and pairing rendezvous.
//!
//! Head pushes are coalesced per volume (a connection that is slow to read gets the latest
//! head once, never a backlog) and never dropped: the pending map is only emptied by the
//! connection's writer. Other pushes are bounded in bytes
//! ([`crate::defaults::OUTBOX_BYTES`]): a connection that lets more wait is ended, told to
//! reconnect, rather than buffered (issue 22 finding 5). The hub's maps are swept of dead
//! connections as they grow ([`crate::pruned_map::Sweep`]).

use mes_protocol::ids::{DeviceId, PrincipalId, Seq, SpaceId, VolumeId};
use mes_protocol::wire::{ErrorCode, Push, WireError};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

use crate::defaults::{MAX_RENDEZVOUS_PER_CONNECTION, OUTBOX_BYTES};
use crate::pruned_map::Sweep;

/// Why the hub ended a connection (its code in [`PushQueue`]'s flag; 0 while it lives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ended {
    /// Its device was revoked while connected.
    Revoked = 1,
    /// It let more pushes wait than [`OUTBOX_BYTES`].
    TooFarBehind = 2,
}

impl Ended {
    /// The QUIC close reason.
    pub fn reason(self) -> &'static [u8] {
        match self {
            Ended::Revoked => b"revoked",
            Ended::TooFarBehind => b"too far behind",
        }
    }

    /// What the device is told before its connection closes.
    pub fn error(self) -> WireError {
        match self {
            Ended::Revoked => WireError::new(
                ErrorCode::Revoked,
                "this device was revoked by its person; it can no longer connect",
            ),
            Ended::TooFarBehind => WireError::new(
                ErrorCode::Busy,
                format!(
                    "this connection let more than {} KiB of messages wait unread; reconnect",
                    OUTBOX_BYTES / 1024
                ),
            ),
        }
    }
}

/// What a push costs while it waits, roughly: its payload and a frame's overhead.
fn push_bytes(p: &Push) -> usize {
    match p {
        Push::Pair { body, .. } => body.len() + 64,
        _ => 64,
    }
}

/// What is waiting to be pushed to one connection.
#[derive(Default)]
pub struct PushQueue {
    heads: Mutex<BTreeMap<VolumeId, (SpaceId, Seq)>>,
    /// Other pushes waiting, and their bytes.
    others: Mutex<(VecDeque<Push>, usize)>,
    /// Woken when something is added.
    pub notify: Notify,
    /// The connection's principal and device, once it joined ([`Pushes::join_principal`]).
    principal: std::sync::OnceLock<(PrincipalId, DeviceId)>,
    /// Set when the hub ends the connection ([`Ended`], 0 while it lives): its writer
    /// ends it at once, and its reader refuses what is still in flight.
    ended: AtomicU8,
    /// Pairing rendezvous this connection joined.
    rendezvous: AtomicUsize,
    /// Woken (all waiters) when the hub ends the connection.
    ending: Notify,
    /// Pairing messages this connection sent.
    pair_messages: AtomicUsize,
}

impl PushQueue {
    /// Records a head, keeping only the highest per volume.
    pub fn head(&self, space: SpaceId, volume: VolumeId, head: Seq) {
        {
            let mut h = self.heads.lock().expect("outbox lock");
            let e = h.entry(volume).or_insert((space, head));
            if head > e.1 {
                e.1 = head;
            }
        }
        self.notify.notify_one();
    }

    /// Queues another push (pairing messages, membership changes).
    pub fn push(&self, p: Push) {
        {
            let mut guard = self.others.lock().expect("outbox lock");
            let (q, bytes) = &mut *guard;
            // A membership change already waiting says the same thing.
            if matches!(p, Push::MembershipChanged { .. }) && q.contains(&p) {
                return;
            }
            // History heads are coalesced per space, like volume heads.
            if let Push::History { space, head } = p {
                for waiting in q.iter_mut() {
                    if let Push::History { space: s, head: h } = waiting {
                        if *s == space {
                            *h = (*h).max(head);
                            return;
                        }
                    }
                }
            }
            let cost = push_bytes(&p);
            if *bytes + cost > OUTBOX_BYTES {
                drop(guard);
                self.end(Ended::TooFarBehind);
                return;
            }
            *bytes += cost;
            q.push_back(p);
        }
        self.notify.notify_one();
    }

    /// Counts a pairing message this connection sends; false past
    /// [`crate::defaults::MAX_PAIRING_MESSAGES_PER_CONNECTION`].
    pub fn count_pairing_message(&self) -> bool {
        self.pair_messages.fetch_add(1, Ordering::SeqCst)
            < crate::defaults::MAX_PAIRING_MESSAGES_PER_CONNECTION
    }

    /// Why the hub ended this connection, if it did.
    pub fn ended(&self) -> Option<Ended> {
        match self.ended.load(Ordering::SeqCst) {
            1 => Some(Ended::Revoked),
            2 => Some(Ended::TooFarBehind),
            _ => None,
        }
    }

    /// Ends the connection (the first reason stays) and wakes its writer.
    fn end(&self, why: Ended) {
        let _ = self
            .ended
            .compare_exchange(0, why as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.notify.notify_one();
        self.ending.notify_waiters();
    }

    /// Resolves once the hub ended the connection (a writer stuck on a peer that does not
    /// read gives up then, not at its stall timeout).
    pub async fn until_ended(&self) -> Ended {
        loop {
            let woken = self.ending.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(why) = self.ended() {
                return why;
            }
            woken.await;
        }
    }

    /// Takes everything pending.
    pub fn drain(&self) -> Vec<Push> {
        let mut out: Vec<Push> = {
            let mut guard = self.others.lock().expect("outbox lock");
            guard.1 = 0;
            guard.0.drain(..).collect()
        };
        let heads = std::mem::take(&mut *self.heads.lock().expect("outbox lock"));
        out.extend(heads.into_iter().map(|(volume, (space, head))| Push::Head {
            space,
            volume,
            head,
        }));
        out
    }
}

/// Weak handles to the outboxes of live connections.
type Subscribers = Vec<Weak<PushQueue>>;

/// The live connections a hub map holds under `key`.
fn live<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Subscribers>>,
    key: &K,
) -> Vec<Arc<PushQueue>> {
    map.lock()
        .expect("hub lock")
        .get(key)
        .map(|s| s.iter().filter_map(Weak::upgrade).collect())
        .unwrap_or_default()
}

/// Whether any of a map entry's connections still lives (what a sweep keeps).
fn any_live(subs: &mut Subscribers) -> bool {
    subs.retain(|w| w.strong_count() > 0);
    !subs.is_empty()
}

/// Subscriptions of all connections.
#[derive(Default)]
pub struct Pushes {
    volumes: Mutex<HashMap<VolumeId, (SpaceId, Subscribers)>>,
    spaces: Mutex<HashMap<SpaceId, Vec<Weak<PushQueue>>>>,
    rendezvous: Mutex<HashMap<[u8; 16], Vec<Weak<PushQueue>>>>,
    principals: Mutex<HashMap<PrincipalId, Subscribers>>,
    /// When each map is next swept of dead connections.
    sweeps: [Sweep; 4],
}

impl Pushes {
    /// Subscribes a connection to a volume's heads and its space's membership changes.
    pub fn subscribe(&self, space: SpaceId, volume: VolumeId, out: &Arc<PushQueue>) {
        let mut v = self.volumes.lock().expect("hub lock");
        self.sweeps[0].maybe(&mut v, |_, (_, subs)| any_live(subs));
        let e = v.entry(volume).or_insert_with(|| (space, Vec::new()));
        e.1.retain(|w| w.strong_count() > 0);
        if !e.1.iter().any(|w| w.as_ptr() == Arc::as_ptr(out)) {
            e.1.push(Arc::downgrade(out));
        }
        drop(v);
        let mut s = self.spaces.lock().expect("hub lock");
        self.sweeps[1].maybe(&mut s, |_, subs| any_live(subs));
        let e = s.entry(space).or_default();
        e.retain(|w| w.strong_count() > 0);
        if !e.iter().any(|w| w.as_ptr() == Arc::as_ptr(out)) {
            e.push(Arc::downgrade(out));
        }
    }

    /// A volume's visible head advanced: tell every subscriber.
    pub fn publish_head(&self, volume: VolumeId, head: Seq) {
        let targets: Vec<(SpaceId, Arc<PushQueue>)> = {
            let v = self.volumes.lock().expect("hub lock");
            match v.get(&volume) {
                Some((space, subs)) => subs
                    .iter()
                    .filter_map(Weak::upgrade)
                    .map(|o| (*space, o))
                    .collect(),
                None => Vec::new(),
            }
        };
        for (space, o) in targets {
            o.head(space, volume, head);
        }
    }

    /// The membership of a space changed.
    pub fn publish_membership(&self, space: SpaceId) {
        let targets = live(&self.spaces, &space);
        for o in targets {
            o.push(Push::MembershipChanged { space });
        }
    }

    /// Every live subscription to the volumes of a space: (volume, principal, outbox).
    pub fn subscriptions_of(&self, space: SpaceId) -> Vec<(VolumeId, PrincipalId, Arc<PushQueue>)> {
        let v = self.volumes.lock().expect("hub lock");
        v.iter()
            .filter(|(_, (s, _))| *s == space)
            .flat_map(|(volume, (_, subs))| {
                subs.iter().filter_map(Weak::upgrade).filter_map(|o| {
                    let (p, _) = *o.principal.get()?;
                    Some((*volume, p, o))
                })
            })
            .collect()
    }

    /// Ends a connection's subscription to a volume (its rights changed).
    pub fn unsubscribe(&self, volume: VolumeId, out: &Arc<PushQueue>) {
        if let Some((_, subs)) = self.volumes.lock().expect("hub lock").get_mut(&volume) {
            subs.retain(|w| w.strong_count() > 0 && w.as_ptr() != Arc::as_ptr(out));
        }
    }

    /// Registers a connection as `device` of `principal`.
    pub fn join_principal(&self, principal: PrincipalId, device: DeviceId, out: &Arc<PushQueue>) {
        let _ = out.principal.set((principal, device));
        let mut m = self.principals.lock().expect("hub lock");
        self.sweeps[2].maybe(&mut m, |_, subs| any_live(subs));
        let e = m.entry(principal).or_default();
        e.retain(|w| w.strong_count() > 0);
        e.push(Arc::downgrade(out));
    }

    /// Sends a push to every connected device of `principal` (a membership change of a
    /// space it was not subscribed to yet, newly created or granted; its access history).
    pub fn publish_to_principal(&self, principal: PrincipalId, push: Push) {
        let targets = live(&self.principals, &principal);
        for o in targets {
            o.push(push.clone());
        }
    }

    /// Ends every live connection of a revoked device: what it asks from now on is
    /// refused and nothing more is pushed to it.
    pub fn revoke_device(&self, principal: PrincipalId, device: DeviceId) {
        let targets = live(&self.principals, &principal);
        for o in targets {
            if o.principal.get().is_some_and(|(_, d)| *d == device) {
                o.end(Ended::Revoked);
            }
        }
    }

    /// Joins a pairing rendezvous (at most two live parties; a connection joins at most
    /// [`MAX_RENDEZVOUS_PER_CONNECTION`]).
    pub fn join_rendezvous(&self, r: [u8; 16], out: &Arc<PushQueue>) -> Result<(), WireError> {
        let mut m = self.rendezvous.lock().expect("hub lock");
        self.sweeps[3].maybe(&mut m, |_, subs| any_live(subs));
        let e = m.entry(r).or_default();
        e.retain(|w| w.strong_count() > 0);
        if e.iter().any(|w| w.as_ptr() == Arc::as_ptr(out)) {
            return Ok(());
        }
        if e.len() >= 2 {
            return Err(WireError::new(
                ErrorCode::Conflict,
                "this pairing code is already in use by two devices",
            ));
        }
        if out.rendezvous.load(Ordering::SeqCst) >= MAX_RENDEZVOUS_PER_CONNECTION {
            if e.is_empty() {
                m.remove(&r);
            }
            return Err(WireError::new(
                ErrorCode::Busy,
                format!("a connection pairs through at most {MAX_RENDEZVOUS_PER_CONNECTION} codes"),
            ));
        }
        out.rendezvous.fetch_add(1, Ordering::SeqCst);
        e.push(Arc::downgrade(out));
        Ok(())
    }

    /// Entries in the hub's maps (volumes, spaces, principals, rendezvous), dead or
    /// alive: what a sweep bounds (tests, metrics).
    pub fn map_sizes(&self) -> [usize; 4] {
        [
            self.volumes.lock().expect("hub lock").len(),
            self.spaces.lock().expect("hub lock").len(),
            self.principals.lock().expect("hub lock").len(),
            self.rendezvous.lock().expect("hub lock").len(),
        ]
    }

    /// Forwards a pairing message to the other parties of the rendezvous.
    pub fn forward_pairing(&self, r: [u8; 16], from: &Arc<PushQueue>, body: Vec<u8>) -> usize {
        let targets: Vec<Arc<PushQueue>> = self
            .rendezvous
            .lock()
            .expect("hub lock")
            .get(&r)
            .map(|s| {
                s.iter()
                    .filter_map(Weak::upgrade)
                    .filter(|o| !Arc::ptr_eq(o, from))
                    .collect()
            })
            .unwrap_or_default();
        for o in &targets {
            o.push(Push::Pair {
                rendezvous: r,
                body: body.clone(),
            });
        }
        targets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 5: connections that come and go leave the hub's maps bounded (each is
    /// swept once it doubled); a live connection's entries survive every sweep (control).
    #[test]
    fn maps_forget_connections_that_went() {
        let hub = Pushes::default();
        let alive = Arc::new(PushQueue::default());
        hub.join_rendezvous([0; 16], &alive).unwrap();
        hub.join_principal(PrincipalId([0; 32]), DeviceId([0; 32]), &alive);
        for i in 1..100_000u32 {
            let gone = Arc::new(PushQueue::default());
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            hub.join_rendezvous(id[..16].try_into().unwrap(), &gone)
                .unwrap();
            hub.join_principal(PrincipalId(id), DeviceId(id), &gone);
            hub.subscribe(
                SpaceId(id[..16].try_into().unwrap()),
                VolumeId(id[..16].try_into().unwrap()),
                &gone,
            );
        }
        for size in hub.map_sizes() {
            assert!(size <= 2 * 1024 + 1, "a map kept {size} entries");
        }
        assert!(hub.join_rendezvous([0; 16], &alive).is_ok(), "still there");
        assert_eq!(live(&hub.principals, &PrincipalId([0; 32])).len(), 1);
    }

    #[test]
    fn heads_are_coalesced_not_dropped() {
        let hub = Pushes::default();
        let out = Arc::new(PushQueue::default());
        let (s, v) = (SpaceId([1; 16]), VolumeId([2; 16]));
        hub.subscribe(s, v, &out);
        for i in 1..=100 {
            hub.publish_head(v, Seq(i));
        }
        hub.publish_head(VolumeId([3; 16]), Seq(5));
        assert_eq!(
            out.drain(),
            vec![Push::Head {
                space: s,
                volume: v,
                head: Seq(100)
            }]
        );
        assert!(out.drain().is_empty());
    }
}
