//! The deterministic mode: the real relay handler over a real sled store, and simulated
//! devices built on the daemon's sans-IO cores, exchanging messages through a simulated
//! network on a simulated clock. No sockets and no timers: one event queue, ordered by
//! (time, insertion), and every random draw from the trace's seed, so a trace replays
//! identically.
//!
//! Network model: each message between a device and the relay takes the scenario's
//! delay; it may be held back (reordered), delivered twice, or lost. A lost message, like
//! any message on a partitioned link, kills its connection after [`DEAD_AFTER_MS`] (as a
//! QUIC idle timeout would); the device then reconnects with its backoff.
//!
//! Over 600 lines: the deterministic simulation's event loop and its checker, one state machine.

pub mod device;

use mes_daemon::sync::pipeline::MAX_UPLOAD;
use mes_daemon::sync::step::Step;
use mes_protocol::access::membership::{Signed, SpaceGenesis, VolumeDecl};
use mes_protocol::crypto::keys::{DeviceCert, KeyPair};
use mes_protocol::ids::{Generation, Seq, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{Push, Reply, Request, WireError};
use mes_relay::handler::{Caller, Misbehaviour, Relay};
use mes_relay::push::PushQueue;
use mes_relay::store::sled_store::SledStore;
use mes_relay::store::Store;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use super::report::{Oracle, Report};
use super::trace::{devices, Action, PlantedBug, Trace};
use device::{Pending, SimDevice, SIM_FETCH};

/// A connection whose message was lost is declared dead this long after.
pub const DEAD_AFTER_MS: u64 = 3_000;
/// A refused step is retried after this long (the daemon's retry tick).
pub const RETRY_MS: u64 = 2_000;
/// After the faulty period, the world must settle within this much simulated time.
pub const SETTLE_LIMIT_MS: u64 = 6 * 3_600_000;
/// With [`PlantedBug::AckBeforeFlush`], devices flush on this period.
pub const LAZY_FLUSH_MS: u64 = 1_000;

/// A message on the simulated network.
#[derive(Clone, Debug)]
enum Msg {
    Request(u64, Request),
    Reply(u64, Result<Reply, WireError>),
    Push(Push),
}

#[derive(Debug)]
enum Ev {
    Action(usize),
    Heal,
    Flush { device: usize, life: u64 },
    ToRelay { device: usize, conn: u64, msg: Msg },
    ToDevice { device: usize, conn: u64, msg: Msg },
    ConnDead { device: usize, conn: u64 },
    Connect { device: usize, life: u64 },
    RelayUp,
    DeviceUp { device: usize },
    Retry { device: usize, life: u64 },
}

/// The world of one deterministic run.
pub struct World {
    trace: Trace,
    now: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    next_event: u64,
    net: ChaCha8Rng,
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    _store_dir: tempfile::TempDir,
    relay: Option<Arc<Relay>>,
    callers: BTreeMap<u64, (usize, Caller)>,
    next_conn: u64,
    next_request: u64,
    devices: Vec<SimDevice>,
    spaces: Vec<(SpaceId, Vec<VolumeId>)>,
    faults_on: bool,
    healed_at: Option<u64>,
    oracle: Oracle,
    report: Report,
    log: VecDeque<String>,
}

const LOG_LINES: usize = 4_000;

impl World {
    /// Builds the world of a trace: relay, spaces, volumes, devices.
    pub fn new(trace: Trace) -> anyhow::Result<World> {
        let s = &trace.scenario;
        let mut rng = ChaCha8Rng::seed_from_u64(trace.net_seed);
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path())?);
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        let misbehaviour = Misbehaviour {
            drop_bundle: trace.drop_bundle,
            ..Default::default()
        };
        let relay = rt.block_on(Relay::new(
            store.clone(),
            sim_keys(),
            Default::default(),
            misbehaviour,
        ))?;
        let slots = devices(s);
        let mut spaces = Vec::new();
        let mut devs = Vec::new();
        for person in 0..s.persons {
            let principal = KeyPair::generate(&mut rng);
            let space = SpaceId(rng.gen());
            let genesis = Signed::sign(
                SpaceGenesis {
                    space,
                    owner: principal.principal_id(),
                    inbox_recipient: principal.age.recipient(),
                    created_at: UnixMillis(0),
                },
                &principal.signing,
            );
            let volumes: Vec<(VolumeId, [u8; 32])> = (0..s.volumes_per_space)
                .map(|_| (VolumeId(rng.gen()), rng.gen()))
                .collect();
            let mut first_caller = None;
            for (index, slot) in slots.iter().enumerate() {
                if slot.person != person {
                    continue;
                }
                let keys = KeyPair::generate(&mut rng);
                let cert = DeviceCert::for_device(
                    &principal,
                    &keys,
                    &format!("device {index}"),
                    UnixMillis(0),
                );
                // Every device of the person is on their list, as pairing would leave it.
                rt.block_on(relay.list_device(&cert))
                    .map_err(|e| anyhow::anyhow!("list: {e}"))?;
                first_caller.get_or_insert(Caller {
                    device: keys.device_id(),
                    principal: principal.principal_id(),
                    outbox: Arc::new(PushQueue::default()),
                    source: None,
                    blob_reads: Default::default(),
                    first_device: Default::default(),
                });
                devs.push(SimDevice::new(index, person, keys, cert, space, &volumes));
            }
            let caller = first_caller.expect("every person has a device");
            let mut setup = vec![Request::RegisterSpace { genesis }];
            for (volume, _) in &volumes {
                setup.push(Request::DeclareVolume {
                    decl: Signed::sign(
                        VolumeDecl {
                            space,
                            volume: *volume,
                            kind: VolumeKind::Automerge,
                            generation: Generation(0),
                            label: "notes".into(),
                        },
                        &principal.signing,
                    ),
                });
            }
            for req in setup {
                rt.block_on(relay.handle(&caller, req))
                    .map_err(|e| anyhow::anyhow!("space setup: {e}"))?;
            }
            spaces.push((space, volumes.iter().map(|(v, _)| *v).collect()));
        }
        devs.sort_by_key(|d| d.index);
        let report = Report::new(&trace, devs.len(), spaces.len());
        Ok(World {
            now: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            net: rng,
            rt,
            store,
            _store_dir: dir,
            relay: Some(relay),
            callers: BTreeMap::new(),
            next_conn: 1,
            next_request: 1,
            devices: devs,
            spaces,
            faults_on: true,
            healed_at: None,
            oracle: Oracle::default(),
            report,
            log: VecDeque::new(),
            trace,
        })
    }

    fn at(&mut self, t: u64, ev: Ev) {
        let id = self.next_event;
        self.next_event += 1;
        self.queue.push(Reverse((t, id)));
        self.events.insert(id, ev);
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        let l = line();
        self.log.push_back(format!("{:>12} {l}", self.now));
    }

    /// Runs the trace, the healing and the settling, then checks; the report.
    pub fn run(mut self) -> super::RunOutput {
        let started = std::time::Instant::now();
        for i in 0..self.trace.actions.len() {
            self.at(self.trace.actions[i].at_ms, Ev::Action(i));
        }
        let end = self.trace.scenario.duration_s * 1000;
        self.at(end, Ev::Heal);
        for d in 0..self.devices.len() {
            self.at(0, Ev::Connect { device: d, life: 0 });
            self.devices[d].connecting = true;
        }
        let mut settled = true;
        while let Some(Reverse((t, id))) = self.queue.pop() {
            self.now = t;
            if let Some(h) = self.healed_at {
                if t > h + SETTLE_LIMIT_MS {
                    settled = false;
                    break;
                }
            }
            let ev = self.events.remove(&id).expect("queued event");
            if let Err(e) = self.step(ev) {
                self.report.problem(format!("at {} ms: {e}", self.now));
            }
        }
        if !settled {
            self.report.problem(format!(
                "did not settle within {} s of simulated time after the faults stopped",
                SETTLE_LIMIT_MS / 1000
            ));
        }
        let healed = self.healed_at.unwrap_or(end);
        self.report.convergence_ms = self.now.saturating_sub(healed);
        self.report.sim_ms = self.now;
        self.check();
        self.report.wall_ms = started.elapsed().as_millis() as u64;
        let log = self.log.into_iter().collect();
        (self.report, log)
    }

    fn step(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Action(i) => {
                let action = self.trace.actions[i].action.clone();
                self.action(action)
            }
            Ev::Heal => {
                self.note(|| "heal: faults stop".into());
                self.faults_on = false;
                self.healed_at = Some(self.now);
                for d in 0..self.devices.len() {
                    self.devices[d].cut_until = 0;
                    self.wake_connect(d, 0);
                }
                Ok(())
            }
            Ev::Flush { device, life } => {
                if self.devices[device].incarnation != life || !self.devices[device].up {
                    return Ok(());
                }
                let flushed = self.devices[device].flush();
                if self.trace.plant != Some(PlantedBug::AckBeforeFlush) {
                    let space = self.devices[device].person;
                    for (v, k, val) in flushed {
                        self.acknowledge(device, space, v, k, val);
                    }
                }
                self.drive(device);
                Ok(())
            }
            Ev::ToRelay { device, conn, msg } => self.relay_receives(device, conn, msg),
            Ev::ToDevice { device, conn, msg } => {
                if self.devices[device].conn != Some(conn) {
                    return Ok(());
                }
                self.device_receives(device, msg)
            }
            Ev::ConnDead { device, conn } => {
                self.callers.remove(&conn);
                if self.devices[device].conn == Some(conn) {
                    self.note(|| format!("d{device}: connection {conn} dead"));
                    self.devices[device].disconnected();
                    self.schedule_reconnect(device);
                }
                Ok(())
            }
            Ev::Connect { device, life } => {
                let d = &mut self.devices[device];
                if d.incarnation != life || !d.up || d.conn.is_some() {
                    return Ok(());
                }
                d.connecting = false;
                if d.cut_until > self.now || self.relay.is_none() {
                    self.schedule_reconnect(device);
                    return Ok(());
                }
                self.connect(device)
            }
            Ev::RelayUp => {
                let misbehaviour = Misbehaviour {
                    drop_bundle: self.trace.drop_bundle,
                    ..Default::default()
                };
                self.relay = Some(
                    self.rt
                        .block_on(Relay::new(
                            self.store.clone(),
                            sim_keys(),
                            Default::default(),
                            misbehaviour,
                        ))
                        .map_err(|e| e.to_string())?,
                );
                self.note(|| "relay up".into());
                Ok(())
            }
            Ev::DeviceUp { device } => {
                self.devices[device].restart()?;
                self.note(|| format!("d{device}: restarted from disk"));
                let life = self.devices[device].incarnation;
                self.at(self.now, Ev::Connect { device, life });
                self.devices[device].connecting = true;
                Ok(())
            }
            Ev::Retry { device, life } => {
                if self.devices[device].incarnation == life {
                    for v in &mut self.devices[device].volumes {
                        v.progress.retry_refused();
                    }
                    self.drive(device);
                }
                Ok(())
            }
        }
    }

    fn action(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Edit {
                device,
                volume,
                key,
                value,
            } => {
                if !self.devices[device].up {
                    self.report.operations.edits_while_down += 1;
                    return Ok(());
                }
                self.devices[device].edit(volume, &key, &value)?;
                self.report.operations.edits += 1;
                let life = self.devices[device].incarnation;
                if self.trace.plant == Some(PlantedBug::AckBeforeFlush) {
                    let space = self.devices[device].person;
                    self.acknowledge(device, space, volume, key, value);
                    if !self.devices[device].flush_scheduled {
                        self.devices[device].flush_scheduled = true;
                        let t = (self.now / LAZY_FLUSH_MS + 1) * LAZY_FLUSH_MS;
                        self.at(t, Ev::Flush { device, life });
                    }
                } else if !self.devices[device].flush_scheduled {
                    self.devices[device].flush_scheduled = true;
                    let t = self.now + self.net.gen_range(1..=3);
                    self.at(t, Ev::Flush { device, life });
                }
                Ok(())
            }
            Action::Partition { device, for_ms } | Action::Offline { device, for_ms } => {
                if matches!(action, Action::Offline { .. }) {
                    self.report.faults.offline += 1;
                } else {
                    self.report.faults.partitions += 1;
                }
                self.note(|| format!("d{device}: cut from the relay for {for_ms} ms"));
                let d = &mut self.devices[device];
                d.cut_until = d.cut_until.max(self.now + for_ms);
                if let Some(conn) = d.conn {
                    self.at(self.now + DEAD_AFTER_MS, Ev::ConnDead { device, conn });
                }
                let until = self.devices[device].cut_until;
                self.wake_connect(device, until);
                Ok(())
            }
            Action::RelayRestart { down_ms } => {
                if self.relay.is_none() {
                    return Ok(());
                }
                self.report.faults.relay_restarts += 1;
                self.note(|| format!("relay down for {down_ms} ms"));
                self.relay = None;
                let conns: Vec<(u64, usize)> =
                    self.callers.iter().map(|(c, (d, _))| (*c, *d)).collect();
                self.callers.clear();
                for (conn, device) in conns {
                    self.at(self.now + 1, Ev::ConnDead { device, conn });
                }
                self.at(self.now + down_ms, Ev::RelayUp);
                Ok(())
            }
            Action::Crash { device, down_ms } => {
                if !self.devices[device].up {
                    return Ok(());
                }
                self.report.faults.crashes += 1;
                self.note(|| format!("d{device}: killed, restarts in {down_ms} ms"));
                if let Some(conn) = self.devices[device].conn {
                    self.callers.remove(&conn);
                }
                self.devices[device].crash();
                self.at(self.now + down_ms, Ev::DeviceUp { device });
                Ok(())
            }
        }
    }

    fn acknowledge(
        &mut self,
        device: usize,
        space: usize,
        volume: usize,
        key: String,
        value: String,
    ) {
        self.report.operations.acknowledged += 1;
        let others: Vec<usize> = self
            .devices
            .iter()
            .filter(|d| d.person == space && d.index != device)
            .map(|d| d.index)
            .collect();
        self.oracle
            .acknowledged(space, volume, key, value, self.now, others);
    }

    fn wake_connect(&mut self, device: usize, not_before: u64) {
        let d = &mut self.devices[device];
        if d.up && d.conn.is_none() {
            let life = d.incarnation;
            d.connecting = true;
            let t = not_before.max(self.now) + 1;
            self.at(t, Ev::Connect { device, life });
        }
    }

    fn schedule_reconnect(&mut self, device: usize) {
        let u: f64 = self.net.gen();
        let d = &mut self.devices[device];
        if !d.up || d.connecting {
            return;
        }
        d.connecting = true;
        let delay = d.backoff.next_delay(u).as_millis() as u64;
        let life = d.incarnation;
        self.at(self.now + delay, Ev::Connect { device, life });
    }

    fn connect(&mut self, device: usize) -> Result<(), String> {
        let relay = self.relay.clone().expect("checked by the caller");
        let d = &self.devices[device];
        self.rt
            .block_on(relay.admit(&d.cert, None))
            .map_err(|e| format!("d{device}: admission refused: {e}"))?;
        let outbox = Arc::new(PushQueue::default());
        relay
            .pushes
            .join_principal(d.cert.body.principal, d.keys.device_id(), &outbox);
        let conn = self.next_conn;
        self.next_conn += 1;
        let caller = Caller {
            device: d.keys.device_id(),
            principal: d.cert.body.principal,
            outbox,
            source: None,
            blob_reads: Default::default(),
            first_device: Default::default(),
        };
        self.callers.insert(conn, (device, caller));
        let d = &mut self.devices[device];
        d.conn = Some(conn);
        d.backoff.reset();
        self.report.operations.connections += 1;
        self.note(|| format!("d{device}: connected ({conn})"));
        let space = self.devices[device].space;
        let volumes = self.devices[device].volumes.iter().map(|v| v.id).collect();
        self.request(
            device,
            Pending::Subscribe,
            Request::Subscribe { space, volumes },
        );
        self.drive(device);
        Ok(())
    }

    /// Sends one message on a device's connection through the faulty network.
    fn send(&mut self, device: usize, conn: u64, to_relay: bool, msg: Msg) {
        self.report.operations.messages += 1;
        let cut = self.devices[device].cut_until > self.now;
        let n = self.trace.scenario.network.clone();
        let lost = cut || (self.faults_on && self.net.gen_bool(n.loss));
        if lost {
            if !cut {
                self.report.faults.lost += 1;
            }
            self.at(self.now + DEAD_AFTER_MS, Ev::ConnDead { device, conn });
            return;
        }
        let mut delay = self.net.gen_range(n.delay_ms[0]..=n.delay_ms[1]);
        if self.faults_on && self.net.gen_bool(n.reorder) {
            self.report.faults.reordered += 1;
            delay += self
                .net
                .gen_range(n.delay_ms[1] + 1..=n.delay_ms[1] * 4 + 50);
        }
        let copies = if self.faults_on && self.net.gen_bool(n.duplicate) {
            self.report.faults.duplicated += 1;
            2
        } else {
            1
        };
        for c in 0..copies {
            let t = self.now + delay + c * self.net.gen_range(1..=20);
            let ev = if to_relay {
                Ev::ToRelay {
                    device,
                    conn,
                    msg: msg.clone(),
                }
            } else {
                Ev::ToDevice {
                    device,
                    conn,
                    msg: msg.clone(),
                }
            };
            self.at(t, ev);
        }
    }

    fn request(&mut self, device: usize, pending: Pending, req: Request) {
        let Some(conn) = self.devices[device].conn else {
            return;
        };
        let id = self.next_request;
        self.next_request += 1;
        self.devices[device].pending.insert(id, pending);
        self.send(device, conn, true, Msg::Request(id, req));
    }

    /// Executes the steps the sync core asks for (the daemon's `drive`).
    fn drive(&mut self, device: usize) {
        if !self.devices[device].up || self.devices[device].conn.is_none() {
            return;
        }
        for volume in 0..self.devices[device].volumes.len() {
            while let Some(step) = self.devices[device].volumes[volume]
                .progress
                .next_step(MAX_UPLOAD)
            {
                let (space, id) = (
                    self.devices[device].space,
                    self.devices[device].volumes[volume].id,
                );
                match step {
                    Step::Upload { from, to } => {
                        self.report.operations.uploads += 1;
                        let (bundles, link) =
                            self.devices[device].seal_upload(volume, from, to, &mut self.net);
                        self.request(
                            device,
                            Pending::Upload { volume, to, link },
                            Request::Append {
                                space,
                                volume: id,
                                bundles,
                            },
                        );
                    }
                    Step::Fetch { after } => {
                        self.report.operations.fetches += 1;
                        self.request(
                            device,
                            Pending::Fetch { volume, after },
                            Request::Fetch {
                                space,
                                volume: id,
                                after,
                                max: SIM_FETCH,
                            },
                        );
                    }
                    Step::Snapshot => {
                        // The simulation never prunes; a snapshot step is a bug.
                        self.report
                            .problem(format!("d{device}: asked for a snapshot nobody made"));
                        self.devices[device].volumes[volume].progress.stalled = true;
                    }
                }
            }
        }
    }

    fn relay_receives(&mut self, device: usize, conn: u64, msg: Msg) -> Result<(), String> {
        let Some(relay) = self.relay.clone() else {
            return Ok(());
        };
        let Msg::Request(id, req) = msg else {
            return Err("the relay received a non-request".into());
        };
        let Some((_, caller)) = self.callers.get(&conn) else {
            return Ok(());
        };
        let reply = self.rt.block_on(relay.handle(caller, req));
        self.send(device, conn, false, Msg::Reply(id, reply));
        // Pushes go out after each request, as the connection tasks' writers would.
        let outgoing: Vec<(u64, usize, Vec<Push>)> = self
            .callers
            .iter()
            .map(|(c, (d, caller))| (*c, *d, caller.outbox.drain()))
            .filter(|(_, _, p)| !p.is_empty())
            .collect();
        for (c, d, pushes) in outgoing {
            for p in pushes {
                self.send(d, c, false, Msg::Push(p));
            }
        }
        Ok(())
    }

    fn device_receives(&mut self, device: usize, msg: Msg) -> Result<(), String> {
        match msg {
            Msg::Push(Push::Head { volume, head, .. }) => {
                if let Some(v) = self.devices[device]
                    .volumes
                    .iter_mut()
                    .find(|v| v.id == volume)
                {
                    v.progress.on_head(head);
                }
            }
            Msg::Push(_) => {}
            Msg::Request(..) => return Err("a device received a request".into()),
            Msg::Reply(id, reply) => {
                // A duplicate or a reply to an earlier life is ignored, as QUIC would.
                let Some(pending) = self.devices[device].pending.remove(&id) else {
                    return Ok(());
                };
                self.on_reply(device, pending, reply)?;
            }
        }
        self.drive(device);
        Ok(())
    }

    fn on_reply(
        &mut self,
        device: usize,
        pending: Pending,
        reply: Result<Reply, WireError>,
    ) -> Result<(), String> {
        let life = self.devices[device].incarnation;
        match (pending, reply) {
            (Pending::Subscribe, Ok(_)) => {}
            (Pending::Upload { volume, to, link }, Ok(Reply::Appended { last, .. })) => {
                let v = &mut self.devices[device].volumes[volume];
                v.progress.on_uploaded(to, last);
                v.disk.uploaded = v.disk.uploaded.max(to);
                v.chain = link;
            }
            (Pending::Fetch { volume, after }, Ok(Reply::Bundles { items, head, .. })) => {
                match self.devices[device].apply_fetched(volume, after, &items) {
                    Ok(cursor) => {
                        self.devices[device].volumes[volume].progress.on_fetched(
                            cursor,
                            head,
                            Seq(0),
                        );
                        self.seen(device, volume);
                    }
                    Err(e) => {
                        self.note(|| format!("d{device}: fetch refused: {e}"));
                        self.report.operations.refused += 1;
                        let p = &mut self.devices[device].volumes[volume].progress;
                        p.on_disconnected();
                        p.stalled = true;
                        self.at(self.now + RETRY_MS, Ev::Retry { device, life });
                    }
                }
            }
            (pending, reply) => {
                let what = match &reply {
                    Ok(r) => format!("unexpected reply {r:?}"),
                    Err(e) => e.to_string(),
                };
                self.note(|| format!("d{device}: {pending:?} refused: {what}"));
                self.report.operations.refused += 1;
                match pending {
                    Pending::Upload { volume, .. } => {
                        self.devices[device].volumes[volume]
                            .progress
                            .on_upload_refused();
                    }
                    Pending::Fetch { volume, .. } => {
                        let p = &mut self.devices[device].volumes[volume].progress;
                        p.on_disconnected();
                        p.stalled = true;
                    }
                    Pending::Subscribe => {}
                }
                self.at(self.now + RETRY_MS, Ev::Retry { device, life });
            }
        }
        Ok(())
    }

    /// Records when acknowledged keys became visible on this device.
    fn seen(&mut self, device: usize, volume: usize) {
        let space = self.devices[device].person;
        let d = &self.devices[device];
        let visible = self
            .oracle
            .awaited_by(device, space, volume)
            .into_iter()
            .filter(|(k, val)| d.get(volume, k).contains(val))
            .map(|(k, _)| k)
            .collect::<Vec<_>>();
        for k in visible {
            self.oracle.visible(device, space, volume, &k, self.now);
        }
    }

    /// Convergence and loss: every device of a space holds the same state of every volume,
    /// and every acknowledged write.
    fn check(&mut self) {
        for (space, (_, volumes)) in self.spaces.iter().enumerate() {
            for volume in 0..volumes.len() {
                let mut digests: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for d in self.devices.iter_mut().filter(|d| d.person == space) {
                    let digest = d.volumes[volume].replica.digest();
                    digests.entry(digest).or_default().push(d.index);
                }
                if digests.len() > 1 {
                    let groups: Vec<String> =
                        digests.values().map(|ds| format!("{ds:?}")).collect();
                    self.report.problem(format!(
                        "divergence: space {space} volume {volume} has {} states across devices {}",
                        digests.len(),
                        groups.join(" / ")
                    ));
                }
            }
        }
        let mut lost = 0;
        for (space, volume, key, value) in self.oracle.unique_writes() {
            for d in self.devices.iter().filter(|d| d.person == space) {
                if !d.get(volume, &key).contains(&value) {
                    lost += 1;
                    if lost <= 10 {
                        self.report.problem(format!(
                            "lost: acknowledged write {key}={value} (space {space} volume {volume}) is missing on device {}",
                            d.index
                        ));
                    }
                }
            }
        }
        if lost > 10 {
            self.report
                .problem(format!("lost: {} more missing writes", lost - 10));
        }
        self.report.latency_ms = self.oracle.latencies();
        self.report.ok = self.report.problems.is_empty();
    }
}

/// Runs a trace deterministically.
pub fn run(trace: Trace) -> anyhow::Result<super::RunOutput> {
    Ok(World::new(trace)?.run())
}

/// The simulated relay's keys: a fixed signing key, so runs stay deterministic.
fn sim_keys() -> mes_relay::handler::RelayKeys {
    mes_relay::handler::RelayKeys {
        signing: mes_protocol::crypto::keys::SigningSecret::from_bytes(&[0x5a; 32]),
        escrow: mes_relay::escrow::Escrow::generate(),
    }
}
