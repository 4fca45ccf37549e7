//! The PostgreSQL backend: several relay instances share one database (issue 8).
//!
//! - Appends go through a group-commit queue: writer tasks take every append waiting
//!   and run one statement, `mes_append` (migrations/0002), which locks the volumes'
//!   head rows in volume order (`SELECT ... FOR UPDATE`), inserts the bundles with dense
//!   sequence numbers, raises the heads and sends one `NOTIFY` for the whole batch; the
//!   statement is its own transaction, so the rows stay locked only on the server. The row lock makes commits of one volume happen in sequence
//!   order, so a reader bounded by the committed head never skips a number (a plain
//!   database sequence hands out N+2 that can commit before N+1; [`SeqMode::Unordered`]
//!   is that mistake, kept as the control of the race test).
//! - Every instance `LISTEN`s on `mes_heads` and `mes_records`: an append or a
//!   membership change made on one instance reaches devices connected to another.
//! - Writes return after `COMMIT`, with the server's default durability.
//!
//! Over 600 lines: one backend's SQL for every operation of the store trait.

use mes_protocol::ids::{Seq, VolumeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use super::pg_connect::{self, PgTarget};

use super::{
    BlobChunk, BoxFuture, NotifyHook, ReadResult, Record, RecordHook, Snapshot, Store, StoreError,
    Table,
};

/// The schema, applied in order; each runs once (table `mes_migrations`).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_relay.sql")),
    (2, include_str!("../../migrations/0002_append_function.sql")),
    (3, include_str!("../../migrations/0003_enrolment.sql")),
];

/// Channel carrying `volume-hex:head` pairs, one notification per commit batch.
const HEADS_CHANNEL: &str = "mes_heads";
/// Channel carrying `kind:key-hex` of changed records that relays cache.
const RECORDS_CHANNEL: &str = "mes_records";
/// Appends taken into one transaction at most.
const MAX_BATCH: usize = 512;
/// Server process ids of this instance's connections remembered at most.
const MAX_OWN_CONNECTIONS: usize = 4096;
/// PostgreSQL's limit on a notification payload is 8000 bytes.
const MAX_PAYLOAD: usize = 7900;

impl From<tokio_postgres::Error> for StoreError {
    /// A lost connection, a server that cannot be reached, or a server shutting down or
    /// starting (SQLSTATE classes 08 and 57P), is `Unavailable`: the request may be tried
    /// again once the pool reconnects. The message names every cause (e.g. why a TLS
    /// handshake failed).
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let message = format!("PostgreSQL: {} ({code})", db.message());
                if code.starts_with("08") || code.starts_with("57P") {
                    StoreError::unavailable(message)
                } else {
                    StoreError::backend(message)
                }
            }
            None => {
                let mut message = format!("PostgreSQL: {e}");
                let mut source = std::error::Error::source(&e);
                let io = source.is_some_and(<dyn std::error::Error>::is::<std::io::Error>);
                while let Some(s) = source {
                    message.push_str(&format!(": {s}"));
                    source = s.source();
                }
                // Cannot connect, or the connection broke: the server is away for now.
                if e.is_closed() || io {
                    StoreError::unavailable(message)
                } else {
                    StoreError::backend(message)
                }
            }
        }
    }
}

/// How sequence numbers are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeqMode {
    /// Under the volume's head-row lock, committed in order (the only correct mode).
    #[default]
    Ordered,
    /// Taken like a database sequence, in their own statement, then inserted in a
    /// later transaction: numbers can become visible out of order. Tests' control only.
    Unordered,
}

/// Options of the PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connection string, e.g. `postgres://mes@127.0.0.1/mes`.
    pub url: String,
    /// PEM certificates the server's must chain to (none: the system's roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// Replace connections the server closed (turned off only as a test's control).
    pub reconnect: bool,
    /// Concurrent group-commit writers (each its own connection).
    pub writers: usize,
    /// Connections for reads and single-record writes.
    pub readers: usize,
    /// Sleep a random time up to this before each commit (tests' race only).
    pub commit_jitter: Option<Duration>,
    /// See [`SeqMode`].
    pub seq_mode: SeqMode,
}

impl PgOptions {
    /// Where to connect, and how.
    pub fn target(&self) -> PgTarget {
        PgTarget {
            url: self.url.clone(),
            ca_file: self.ca_file.clone(),
            reconnect: self.reconnect,
        }
    }

    /// Defaults for a connection string.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            ca_file: None,
            reconnect: true,
            writers: 4,
            readers: 4,
            commit_jitter: None,
            seq_mode: SeqMode::Ordered,
        }
    }
}

struct AppendJob {
    volume: VolumeId,
    bundles: Vec<Vec<u8>>,
    done: oneshot::Sender<Result<(Seq, Seq), StoreError>>,
}

struct Hooks {
    notify: RwLock<Option<NotifyHook>>,
    records: RwLock<Option<RecordHook>>,
    /// Last head announced per volume, so a head is announced once and never backwards.
    announced: Mutex<HashMap<VolumeId, Seq>>,
    /// Server processes of this instance's connections: their notifications are its own,
    /// already announced when they committed.
    own: RwLock<std::collections::HashSet<i32>>,
}

impl Hooks {
    fn announce(&self, volume: VolumeId, head: Seq) {
        {
            let mut a = self.announced.lock().expect("announced heads");
            let e = a.entry(volume).or_default();
            if head <= *e {
                return;
            }
            *e = head;
        }
        if let Some(hook) = &*self.notify.read().expect("notify hook") {
            hook(volume, head);
        }
    }

    fn record_changed(&self, kind: Table, key: &[u8]) {
        if let Some(hook) = &*self.records.read().expect("record hook") {
            hook(kind, key);
        }
    }
}

/// PostgreSQL-backed relay store.
pub struct PgStore {
    /// Every connection: reads, single writes, the writers' batches (issue 27 item 1).
    pool: deadpool_postgres::Pool,
    appends: mpsc::Sender<AppendJob>,
    hooks: Arc<Hooks>,
    seq_mode: SeqMode,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Records each new connection's server process: its notifications are this instance's.
fn own_connections(hooks: Arc<Hooks>) -> pg_connect::OnConnect {
    Arc::new(move |client: &Client| {
        let hooks = hooks.clone();
        Box::pin(async move {
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await?
                .get(0);
            let mut own = hooks.own.write().expect("own pids");
            // Bounded: connections replaced after restarts leave stale ids; forgetting
            // them only costs a cached record read again.
            if own.len() >= MAX_OWN_CONNECTIONS {
                own.clear();
            }
            own.insert(pid);
            Ok(())
        })
    })
}

/// Applies the migrations not yet applied, under an advisory lock (instances starting
/// together migrate once), and returns the versions it applied. A schema newer than
/// this binary knows is refused by name.
pub(crate) async fn migrate(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    let mut applied = Vec::new();
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7470611)", &[])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS mes_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM mes_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = MIGRATIONS.iter().map(|(v, _)| *v).max().unwrap_or(0);
    if let Some(newer) = done.iter().copied().filter(|v| *v > known).max() {
        return Err(StoreError::backend(format!(
            "the database's schema is at version {newer}, newer than this mes-relay knows ({known}): run a mes-relay at least as recent as the one that migrated it"
        )));
    }
    for (version, sql) in MIGRATIONS {
        if !done.contains(version) {
            tx.batch_execute(sql).await.map_err(|e| {
                StoreError::backend(format!(
                    "migration {version}: {}",
                    StoreError::from(e).message
                ))
            })?;
            tx.execute(
                "INSERT INTO mes_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            applied.push(*version);
        }
    }
    tx.commit().await?;
    Ok(applied)
}

/// Applies the migrations not yet applied (`mes-relay migrate`); returns their versions.
pub async fn migrate_database(options: &PgOptions) -> Result<Vec<i32>, StoreError> {
    let (mut client, connection) = pg_connect::connect(&options.target()).await?;
    let task = tokio::spawn(connection);
    let applied = migrate(&mut client).await;
    drop(client);
    let _ = task.await;
    applied
}

fn i64_of(seq: Seq) -> i64 {
    seq.0 as i64
}

fn seq_of(v: i64) -> Seq {
    Seq(v as u64)
}

fn kind_code(kind: Table) -> i16 {
    kind as i16
}

fn kind_of(code: i16) -> Option<Table> {
    Table::ALL.get(usize::try_from(code).ok()?).copied()
}

/// Payloads of `volume-hex:head` pairs joined by commas, each under the payload limit.
fn heads_payloads(heads: &[(VolumeId, Seq)]) -> Vec<String> {
    let mut out = vec![String::new()];
    for (v, s) in heads {
        let item = format!("{}:{}", hex::encode(v.0), s.0);
        let last = out.last_mut().expect("one payload");
        if !last.is_empty() && last.len() + 1 + item.len() > MAX_PAYLOAD {
            out.push(item);
        } else {
            if !last.is_empty() {
                last.push(',');
            }
            last.push_str(&item);
        }
    }
    out
}

fn parse_heads(payload: &str) -> Vec<(VolumeId, Seq)> {
    payload
        .split(',')
        .filter_map(|item| {
            let (v, s) = item.split_once(':')?;
            let v: [u8; 16] = hex::decode(v).ok()?.try_into().ok()?;
            Some((VolumeId(v), Seq(s.parse().ok()?)))
        })
        .collect()
}

fn parse_record(payload: &str) -> Option<(Table, Vec<u8>)> {
    let (k, key) = payload.split_once(':')?;
    Some((kind_of(k.parse().ok()?)?, hex::decode(key).ok()?))
}

/// Deadlocks and serialization failures are retried; anything else is reported.
fn retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
    })
}

impl PgStore {
    /// Connects, migrates, and starts the writers and the listener.
    pub async fn open(options: PgOptions) -> Result<Self, StoreError> {
        let hooks = Arc::new(Hooks {
            notify: RwLock::new(None),
            records: RwLock::new(None),
            announced: Mutex::new(HashMap::new()),
            own: Default::default(),
        });
        let target = options.target();
        let pool = pg_connect::pool(
            &target,
            options.readers.max(1) + options.writers.max(1) + 1,
            Some(own_connections(hooks.clone())),
        )?;
        let mut first = pg_connect::get(&pool).await?;
        migrate(&mut first).await?;
        drop(first);
        let mut tasks = Vec::new();
        let (tx, rx) = mpsc::channel::<AppendJob>(4096);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..options.writers.max(1) {
            tasks.push(tokio::spawn(writer(
                pool.clone(),
                rx.clone(),
                hooks.clone(),
                options.clone(),
            )));
        }
        tasks.push(listen(target, pool.clone(), hooks.clone()).await?);
        Ok(PgStore {
            pool,
            appends: tx,
            hooks,
            seq_mode: options.seq_mode,
            tasks,
        })
    }

    /// A connection of the pool (a database away is `Unavailable`).
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        pg_connect::get(&self.pool).await
    }

    /// Empties every table (tests share one database and start each from nothing).
    pub async fn truncate_all(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .batch_execute("TRUNCATE volume_heads, log, snapshots, records, blob_chunks, blobs")
            .await?;
        Ok(())
    }
}

/// Takes every waiting append (up to [`MAX_BATCH`]) and commits them as one transaction.
async fn writer(
    pool: deadpool_postgres::Pool,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<AppendJob>>>,
    hooks: Arc<Hooks>,
    options: PgOptions,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            jobs.push(first);
            crate::group_commit::gather().await;
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
        }
        let outcome = match pg_connect::get(&pool).await {
            Ok(mut client) => loop {
                let r = match options.seq_mode {
                    SeqMode::Ordered => commit_ordered(&mut client, &jobs, &options).await,
                    SeqMode::Unordered => commit_unordered(&mut client, &jobs, &options).await,
                };
                match r {
                    Err(e) if retryable(&e) => continue,
                    r => break r.map_err(StoreError::from),
                }
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(ranges) => {
                let mut heads: BTreeMap<VolumeId, Seq> = BTreeMap::new();
                for (job, range) in jobs.into_iter().zip(ranges) {
                    let h = heads.entry(job.volume).or_default();
                    *h = (*h).max(range.1);
                    let _ = job.done.send(Ok(range));
                }
                for (v, h) in heads {
                    hooks.announce(v, h);
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn jitter(options: &PgOptions) {
    if let Some(max) = options.commit_jitter {
        let ms = rand::random::<u64>() % (max.as_millis() as u64 + 1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

async fn notify_heads(
    tx: &tokio_postgres::Transaction<'_>,
    heads: &HashMap<VolumeId, Seq>,
) -> Result<(), tokio_postgres::Error> {
    let mut list: Vec<(VolumeId, Seq)> = heads.iter().map(|(v, s)| (*v, *s)).collect();
    list.sort();
    for payload in heads_payloads(&list) {
        tx.execute("SELECT pg_notify($1, $2)", &[&HEADS_CHANNEL, &payload])
            .await?;
    }
    Ok(())
}

async fn commit_ordered(
    client: &mut Client,
    jobs: &[AppendJob],
    options: &PgOptions,
) -> Result<Vec<(Seq, Seq)>, tokio_postgres::Error> {
    let volumes: Vec<&[u8]> = jobs.iter().map(|j| j.volume.0.as_slice()).collect();
    let counts: Vec<i64> = jobs.iter().map(|j| j.bundles.len() as i64).collect();
    let bundles: Vec<&[u8]> = jobs
        .iter()
        .flat_map(|j| j.bundles.iter().map(Vec::as_slice))
        .collect();
    let max_payload = MAX_PAYLOAD as i32;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&volumes, &counts, &bundles, &HEADS_CHANNEL, &max_payload];
    // migrations/0002: locks, numbers, inserts, raises the heads and notifies, in order.
    const APPEND: &str = "SELECT mes_append($1, $2, $3, $4, $5)";
    let lasts: Vec<i64> = if options.commit_jitter.is_some() {
        let tx = client.transaction().await?;
        let lasts = tx.query_one(APPEND, &params).await?.get(0);
        jitter(options).await;
        tx.commit().await?;
        lasts
    } else {
        // Alone, the statement is its own transaction: one round trip per batch.
        client.query_one(APPEND, &params).await?.get(0)
    };
    Ok(jobs
        .iter()
        .zip(lasts)
        .map(|(j, last)| {
            let last = seq_of(last);
            (Seq(last.0 + 1 - j.bundles.len() as u64), last)
        })
        .collect())
}

/// The mistake the ordered mode avoids: numbers taken and committed at once (like
/// `nextval`), rows inserted in a later transaction; readers then read past the rows.
async fn commit_unordered(
    client: &mut Client,
    jobs: &[AppendJob],
    options: &PgOptions,
) -> Result<Vec<(Seq, Seq)>, tokio_postgres::Error> {
    let (mut vols, mut seqs, mut bundles) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ranges, mut heads) = (Vec::new(), HashMap::new());
    for job in jobs {
        let row = client
            .query_one(
                "INSERT INTO volume_heads (volume, head) VALUES ($1, $2) ON CONFLICT (volume) DO UPDATE SET head = volume_heads.head + $2 RETURNING head",
                &[&job.volume.0.as_slice(), &(job.bundles.len() as i64)],
            )
            .await?;
        let last = seq_of(row.get(0));
        let mut seq = Seq(last.0 - job.bundles.len() as u64);
        ranges.push((seq.next(), last));
        for b in &job.bundles {
            seq = seq.next();
            vols.push(job.volume.0.as_slice());
            seqs.push(i64_of(seq));
            bundles.push(b.as_slice());
        }
        let h = heads.entry(job.volume).or_insert(last);
        *h = (*h).max(last);
    }
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO log (volume, seq, bundle) SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[])",
        &[&vols, &seqs, &bundles],
    )
    .await?;
    notify_heads(&tx, &heads).await?;
    jitter(options).await;
    tx.commit().await?;
    Ok(ranges)
}

/// Listens for other instances' commits; reconnects when the connection drops, then
/// re-reads what it may have missed meanwhile ([`resync`]).
async fn listen(
    target: PgTarget,
    pool: deadpool_postgres::Pool,
    hooks: Arc<Hooks>,
) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    let first = pg_connect::connect(&target).await?;
    Ok(tokio::spawn(async move {
        let mut conn = Some(first);
        let mut again = false;
        loop {
            let (client, mut connection) = match conn.take() {
                Some(c) => c,
                None if !target.reconnect => {
                    tracing::warn!("PostgreSQL listener: reconnection is turned off");
                    return;
                }
                None => match pg_connect::connect(&target).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("PostgreSQL listener: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                },
            };
            let messages = futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
            futures_util::pin_mut!(messages);
            let listen = format!("LISTEN {HEADS_CHANNEL}; LISTEN {RECORDS_CHANNEL}");
            let subscribe = client.batch_execute(&listen);
            futures_util::pin_mut!(subscribe);
            let mut subscribed = false;
            loop {
                tokio::select! {
                    r = &mut subscribe, if !subscribed => {
                        subscribed = true;
                        if let Err(e) = r {
                            tracing::warn!("PostgreSQL LISTEN failed: {e}");
                            break;
                        }
                        if again {
                            match resync(&pool, &hooks).await {
                                Ok(()) => tracing::info!("PostgreSQL listener back; missed changes re-read"),
                                Err(e) => {
                                    tracing::warn!("PostgreSQL listener: re-reading missed changes: {e}");
                                    break;
                                }
                            }
                        }
                    }
                    m = futures_util::StreamExt::next(&mut messages) => match m {
                        Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                            if hooks.own.read().expect("own pids").contains(&n.process_id()) {
                                continue;
                            }
                            if n.channel() == HEADS_CHANNEL {
                                for (v, s) in parse_heads(n.payload()) {
                                    hooks.announce(v, s);
                                }
                            } else if let Some((kind, key)) = parse_record(n.payload()) {
                                hooks.record_changed(kind, &key);
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!("PostgreSQL listener connection: {e}");
                            break;
                        }
                        None => break,
                    }
                }
            }
            again = true;
        }
    }))
}

/// What the listener may have missed while away: the heads of the volumes this instance
/// has announced, and every record relays cache (as at start).
async fn resync(pool: &deadpool_postgres::Pool, hooks: &Hooks) -> Result<(), StoreError> {
    let volumes: Vec<Vec<u8>> = hooks
        .announced
        .lock()
        .expect("announced heads")
        .keys()
        .map(|v| v.0.to_vec())
        .collect();
    let c = pg_connect::get(pool).await?;
    for row in c
        .query(
            "SELECT volume, head FROM volume_heads WHERE volume = ANY($1)",
            &[&volumes],
        )
        .await?
    {
        if let Ok(v) = <[u8; 16]>::try_from(row.get::<_, &[u8]>(0)) {
            hooks.announce(VolumeId(v), seq_of(row.get(1)));
        }
    }
    for kind in Table::ALL.into_iter().filter(|k| k.cached()) {
        for row in c
            .query(
                "SELECT key FROM records WHERE kind = $1",
                &[&kind_code(kind)],
            )
            .await?
        {
            hooks.record_changed(kind, row.get(0));
        }
    }
    Ok(())
}

impl Store for PgStore {
    fn append<'a>(
        &'a self,
        volume: VolumeId,
        bundles: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(Seq, Seq), StoreError>> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            self.appends
                .send(AppendJob {
                    volume,
                    bundles,
                    done,
                })
                .await
                .map_err(|_| StoreError::unavailable("the PostgreSQL writers stopped"))?;
            wait.await
                .map_err(|_| StoreError::unavailable("the PostgreSQL writer dropped the append"))?
        })
    }

    fn read(
        &self,
        volume: VolumeId,
        after: Seq,
        max: usize,
    ) -> BoxFuture<'_, Result<ReadResult, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let Some(row) = c
                .query_opt(
                    "SELECT head, pruned FROM volume_heads WHERE volume = $1",
                    &[&volume.0.as_slice()],
                )
                .await?
            else {
                return Ok(ReadResult::default());
            };
            let (mut head, pruned) = (seq_of(row.get(0)), seq_of(row.get(1)));
            if after < pruned {
                return Ok(ReadResult {
                    items: Vec::new(),
                    head,
                    pruned_upto: Some(pruned),
                });
            }
            // Bounded by the committed head: rows at or below it are committed.
            let bound = match self.seq_mode {
                SeqMode::Unordered => i64::MAX,
                SeqMode::Ordered => i64_of(head),
            };
            let rows = c
                .query(
                    "SELECT seq, bundle FROM log WHERE volume = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
                    &[&volume.0.as_slice(), &i64_of(after), &bound, &(max.min(100_000) as i64)],
                )
                .await?;
            let mut items = Vec::new();
            let mut bytes = 0;
            for r in rows {
                let b: Vec<u8> = r.get(1);
                if !items.is_empty() && bytes + b.len() > mes_protocol::wire::MAX_FETCH_BYTES {
                    break;
                }
                bytes += b.len();
                items.push((seq_of(r.get(0)), b));
            }
            if let Some((last, _)) = items.last() {
                head = head.max(*last);
            }
            Ok(ReadResult {
                items,
                head,
                pruned_upto: None,
            })
        })
    }

    fn head(&self, volume: VolumeId) -> BoxFuture<'_, Result<Seq, StoreError>> {
        Box::pin(async move {
            Ok(self
                .client()
                .await?
                .query_opt(
                    "SELECT head FROM volume_heads WHERE volume = $1",
                    &[&volume.0.as_slice()],
                )
                .await?
                .map(|r| seq_of(r.get(0)))
                .unwrap_or_default())
        })
    }

    fn put_snapshot<'a>(
        &'a self,
        volume: VolumeId,
        upto: Seq,
        snapshot: Vec<u8>,
        prune: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut admin = self.client().await?;
            let tx = admin.transaction().await?;
            let v = volume.0.as_slice();
            tx.execute(
                "INSERT INTO snapshots (volume, upto, snapshot) VALUES ($1, $2, $3) ON CONFLICT (volume) DO UPDATE SET upto = EXCLUDED.upto, snapshot = EXCLUDED.snapshot",
                &[&v, &i64_of(upto), &snapshot],
            )
            .await?;
            if prune {
                // One transaction: the snapshot and the pruning commit together.
                tx.execute(
                    "DELETE FROM log WHERE volume = $1 AND seq <= $2",
                    &[&v, &i64_of(upto)],
                )
                .await?;
                tx.execute(
                    "UPDATE volume_heads SET pruned = GREATEST(pruned, $2) WHERE volume = $1",
                    &[&v, &i64_of(upto)],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn get_snapshot(
        &self,
        volume: VolumeId,
    ) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .client()
                .await?
                .query_opt(
                    "SELECT upto, snapshot FROM snapshots WHERE volume = $1",
                    &[&volume.0.as_slice()],
                )
                .await?
                .map(|r| (seq_of(r.get(0)), r.get(1))))
        })
    }

    fn remove_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let payload = format!("{}:{}", kind_code(kind), hex::encode(&key));
            self.client()
                .await?
                .execute(
                    "WITH d AS (DELETE FROM records WHERE kind = $1 AND key = $2) SELECT pg_notify($3, $4)",
                    &[&kind_code(kind), &key, &RECORDS_CHANNEL, &payload],
                )
                .await?;
            Ok(())
        })
    }

    fn put_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            const UPSERT: &str = "INSERT INTO records (kind, key, value) VALUES ($1, $2, $3) ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value";
            if kind.cached() {
                // What relays cache is announced in the same statement as the write.
                let payload = format!("{}:{}", kind_code(kind), hex::encode(&key));
                self.client()
                    .await?
                    .execute(
                        &format!(
                            "WITH w AS ({UPSERT} RETURNING 1) SELECT pg_notify($4, $5) FROM w"
                        ),
                        &[&kind_code(kind), &key, &value, &RECORDS_CHANNEL, &payload],
                    )
                    .await?;
            } else {
                self.client()
                    .await?
                    .execute(UPSERT, &[&kind_code(kind), &key, &value])
                    .await?;
            }
            Ok(())
        })
    }

    fn get_record<'a>(
        &'a self,
        kind: Table,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .client()
                .await?
                .query_opt(
                    "SELECT value FROM records WHERE kind = $1 AND key = $2",
                    &[&kind_code(kind), &key],
                )
                .await?
                .map(|r| r.get(0)))
        })
    }

    fn scan_records<'a>(
        &'a self,
        kind: Table,
        prefix: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            // Keys from the prefix (inclusive) to the prefix's successor (exclusive).
            let rows = match prefix_successor(prefix) {
                Some(end) => {
                    self.client()
                .await?
                        .query(
                            "SELECT key, value FROM records WHERE kind = $1 AND key >= $2 AND key < $3 ORDER BY key",
                            &[&kind_code(kind), &prefix, &end],
                        )
                        .await?
                }
                None => {
                    self.client()
                .await?
                        .query(
                            "SELECT key, value FROM records WHERE kind = $1 AND key >= $2 ORDER BY key",
                            &[&kind_code(kind), &prefix],
                        )
                        .await?
                }
            };
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn put_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    // A committed blob is immutable (its id is its hash): chunks for it are ignored.
                    "INSERT INTO blob_chunks (blob, idx, data) SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE blob = $1) ON CONFLICT (blob, idx) DO UPDATE SET data = EXCLUDED.data",
                    &[&blob.as_slice(), &(index as i32), &data],
                )
                .await?;
            Ok(())
        })
    }

    fn remove_volume(&self, volume: VolumeId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            // One statement, one transaction: the log, the snapshot and the head go together.
            self.client()
                .await?
                .execute(
                    "WITH l AS (DELETE FROM log WHERE volume = $1), s AS (DELETE FROM snapshots WHERE volume = $1) DELETE FROM volume_heads WHERE volume = $1",
                    &[&volume.0.as_slice()],
                )
                .await?;
            self.hooks
                .announced
                .lock()
                .expect("announced heads")
                .remove(&volume);
            Ok(())
        })
    }

    fn remove_blob<'a>(&'a self, blob: &'a [u8; 32]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "WITH b AS (DELETE FROM blobs WHERE blob = $1) DELETE FROM blob_chunks WHERE blob = $1",
                    &[&blob.as_slice()],
                )
                .await?;
            Ok(())
        })
    }

    fn commit_blob<'a>(
        &'a self,
        blob: [u8; 32],
        chunks: u32,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            if let Some(r) = c
                .query_opt(
                    "SELECT chunks FROM blobs WHERE blob = $1",
                    &[&blob.as_slice()],
                )
                .await?
            {
                return Ok(r.get::<_, i32>(0) == chunks as i32);
            }
            let rows = c
                .query(
                    "SELECT idx, data FROM blob_chunks WHERE blob = $1 AND idx < $2 ORDER BY idx",
                    &[&blob.as_slice(), &(chunks as i32)],
                )
                .await?;
            if rows.len() != chunks as usize {
                return Ok(false);
            }
            let mut hasher = blake3::Hasher::new();
            for r in &rows {
                hasher.update(r.get::<_, &[u8]>(1));
            }
            if *hasher.finalize().as_bytes() != blob {
                c.execute(
                    "DELETE FROM blob_chunks WHERE blob = $1",
                    &[&blob.as_slice()],
                )
                .await?;
                return Ok(false);
            }
            c.execute(
                "INSERT INTO blobs (blob, chunks) VALUES ($1, $2) ON CONFLICT (blob) DO UPDATE SET chunks = EXCLUDED.chunks",
                &[&blob.as_slice(), &(chunks as i32)],
            )
            .await?;
            Ok(true)
        })
    }

    fn remove_blob_chunks<'a>(
        &'a self,
        blob: &'a [u8; 32],
        from: u32,
        to: u32,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "DELETE FROM blob_chunks WHERE blob = $1 AND idx >= GREATEST($2, COALESCE((SELECT chunks FROM blobs WHERE blob = $1), 0)) AND idx < $3",
                    &[&blob.as_slice(), &(from as i32), &(to.min(i32::MAX as u32) as i32)],
                )
                .await?;
            Ok(())
        })
    }

    fn get_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
    ) -> BoxFuture<'a, Result<Option<BlobChunk>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .client()
                .await?
                .query_opt(
                    "SELECT c.data, b.chunks FROM blobs b JOIN blob_chunks c ON c.blob = b.blob AND c.idx = $2 WHERE b.blob = $1",
                    &[&blob.as_slice(), &(index as i32)],
                )
                .await?
                .map(|r| (r.get(0), index as i32 + 1 == r.get::<_, i32>(1))))
        })
    }

    fn set_notify(&self, hook: NotifyHook) {
        *self.hooks.notify.write().expect("notify hook") = Some(hook);
    }

    fn set_record_hook(&self, hook: RecordHook) {
        *self.hooks.records.write().expect("record hook") = Some(hook);
    }
}

/// The smallest byte string greater than every string starting with `prefix` (none when
/// the prefix is empty or all 0xff).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_bounds_every_key_with_the_prefix() {
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
    }

    #[test]
    fn head_payloads_round_trip_and_stay_under_the_limit() {
        let heads: Vec<(VolumeId, Seq)> = (0..1000u32)
            .map(|i| {
                let mut v = [0u8; 16];
                v[..4].copy_from_slice(&i.to_be_bytes());
                (VolumeId(v), Seq(u64::from(i) * 7))
            })
            .collect();
        let payloads = heads_payloads(&heads);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<_> = payloads.iter().flat_map(|p| parse_heads(p)).collect();
        assert_eq!(back, heads);
    }
}
