//! Who hears what: per-connection push state, volume subscriptions and pairing rendezvous.
//!
//! Head pushes are coalesced per volume (a connection that is slow to read gets the latest
//! head once, never a backlog) and never dropped: the pending map is only emptied by the
//! connection's writer.

use mes_protocol::ids::{DeviceId, PrincipalId, Seq, SpaceId, VolumeId};
use mes_protocol::wire::Push;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// What is waiting to be pushed to one connection.
#[derive(Default)]
pub struct Outbox {
    heads: Mutex<BTreeMap<VolumeId, (SpaceId, Seq)>>,
    others: Mutex<VecDeque<Push>>,
    /// Woken when something is added.
    pub notify: Notify,
    /// The connection's principal and device, once it joined ([`Hub::join_principal`]).
    principal: std::sync::OnceLock<(PrincipalId, DeviceId)>,
    /// Set when the device is revoked: the connection's writer ends it at once (issue
    /// 22, the authorization matrix), and its reader refuses what is still in flight.
    revoked: std::sync::atomic::AtomicBool,
}

impl Outbox {
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
            let mut q = self.others.lock().expect("outbox lock");
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
            q.push_back(p);
        }
        self.notify.notify_one();
    }

    /// Whether the connection's device was revoked while it was connected.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes everything pending.
    pub fn drain(&self) -> Vec<Push> {
        let mut out: Vec<Push> = self.others.lock().expect("outbox lock").drain(..).collect();
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
type Subscribers = Vec<Weak<Outbox>>;

/// The live connections a hub map holds under `key`.
fn live<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Subscribers>>,
    key: &K,
) -> Vec<Arc<Outbox>> {
    map.lock()
        .expect("hub lock")
        .get(key)
        .map(|s| s.iter().filter_map(Weak::upgrade).collect())
        .unwrap_or_default()
}

/// Subscriptions of all connections.
#[derive(Default)]
pub struct Hub {
    volumes: Mutex<HashMap<VolumeId, (SpaceId, Subscribers)>>,
    spaces: Mutex<HashMap<SpaceId, Vec<Weak<Outbox>>>>,
    rendezvous: Mutex<HashMap<[u8; 16], Vec<Weak<Outbox>>>>,
    principals: Mutex<HashMap<PrincipalId, Subscribers>>,
}

impl Hub {
    /// Subscribes a connection to a volume's heads and its space's membership changes.
    pub fn subscribe(&self, space: SpaceId, volume: VolumeId, out: &Arc<Outbox>) {
        let mut v = self.volumes.lock().expect("hub lock");
        let e = v.entry(volume).or_insert_with(|| (space, Vec::new()));
        e.1.retain(|w| w.strong_count() > 0);
        if !e.1.iter().any(|w| w.as_ptr() == Arc::as_ptr(out)) {
            e.1.push(Arc::downgrade(out));
        }
        drop(v);
        let mut s = self.spaces.lock().expect("hub lock");
        let e = s.entry(space).or_default();
        e.retain(|w| w.strong_count() > 0);
        if !e.iter().any(|w| w.as_ptr() == Arc::as_ptr(out)) {
            e.push(Arc::downgrade(out));
        }
    }

    /// A volume's visible head advanced: tell every subscriber.
    pub fn publish_head(&self, volume: VolumeId, head: Seq) {
        let targets: Vec<(SpaceId, Arc<Outbox>)> = {
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
    pub fn subscriptions_of(&self, space: SpaceId) -> Vec<(VolumeId, PrincipalId, Arc<Outbox>)> {
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
    pub fn unsubscribe(&self, volume: VolumeId, out: &Arc<Outbox>) {
        if let Some((_, subs)) = self.volumes.lock().expect("hub lock").get_mut(&volume) {
            subs.retain(|w| w.strong_count() > 0 && w.as_ptr() != Arc::as_ptr(out));
        }
    }

    /// Registers a connection as `device` of `principal`.
    pub fn join_principal(&self, principal: PrincipalId, device: DeviceId, out: &Arc<Outbox>) {
        let _ = out.principal.set((principal, device));
        let mut m = self.principals.lock().expect("hub lock");
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
                o.revoked.store(true, std::sync::atomic::Ordering::SeqCst);
                o.notify.notify_one();
            }
        }
    }

    /// Joins a pairing rendezvous (at most two live parties).
    pub fn join_rendezvous(&self, r: [u8; 16], out: &Arc<Outbox>) -> bool {
        let mut m = self.rendezvous.lock().expect("hub lock");
        let e = m.entry(r).or_default();
        e.retain(|w| w.strong_count() > 0);
        if e.iter().any(|w| w.as_ptr() == Arc::as_ptr(out)) {
            return true;
        }
        if e.len() >= 2 {
            return false;
        }
        e.push(Arc::downgrade(out));
        true
    }

    /// Forwards a pairing message to the other parties of the rendezvous.
    pub fn forward_pairing(&self, r: [u8; 16], from: &Arc<Outbox>, body: Vec<u8>) -> usize {
        let targets: Vec<Arc<Outbox>> = self
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

    #[test]
    fn heads_are_coalesced_not_dropped() {
        let hub = Hub::default();
        let out = Arc::new(Outbox::default());
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
