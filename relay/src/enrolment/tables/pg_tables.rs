//! The enrolment tables on PostgreSQL (migrations/0003): people as rows by place with a
//! unique NIR, and the small tables of [`crate::enrolment::store`] as the same ordered
//! keys as on sled, so that every relay instance of a deployment serves activations and
//! any of them runs the campaign, the delivery and the sweep while the others serve.
//!
//! The service is blocking code (it runs on the relay's blocking pool and in operator
//! commands), so this backend runs its connections on a runtime of its own and callers
//! wait for their statements on a channel: it is usable from any thread, inside another
//! runtime or not.
//!
//! - A write is one transaction. A person written with the bytes read is
//!   `UPDATE ... WHERE record = $was` (none updated: a conflict); a claim is an insert
//!   whose `ON CONFLICT` updates only a row holding the same value (none: a conflict).
//!   Concurrent transactions on one row wait on its lock and then re-check the condition
//!   (READ COMMITTED), so a conflict is never missed.
//! - A bulk update locks its rows (`SELECT ... FOR UPDATE`, in place order), hands them to
//!   the caller's function, and writes what it changed in the same transaction.
//! - Writes return after `COMMIT`, with the server's default durability.

use std::future::Future;
use std::sync::mpsc::{sync_channel, Receiver};

use tokio_postgres::Transaction;

use crate::enrolment::pages::PAGE;
use crate::enrolment::store::{
    decode, split_ops, ApplyError, Backend, Change, Found, KvWrite, Loc, Op, Person, PersonWrite,
    Visit,
};
use crate::store::StoreError;

/// Connections each backend opens.
const CONNECTIONS: usize = 8;
/// Rows in flight between a streaming query and its reader.
const STREAM: usize = 256;

/// A runtime of the backend's own, shut down without waiting when the last user goes
/// (dropping a runtime may happen inside another one).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The enrolment tables on PostgreSQL.
pub struct PgTables {
    rt: OwnedRuntime,
    /// Connections that reconnect after a database restart (`pg_connect`, issue 27).
    pool: deadpool_postgres::Pool,
}

type Pooled = deadpool_postgres::Object;

async fn put(tx: &Transaction<'_>, w: &KvWrite) -> Result<bool, tokio_postgres::Error> {
    Ok(match (&w.value, w.claim) {
        (Some(v), true) => {
            tx.execute(
                "INSERT INTO enrol_kv (key, value) VALUES ($1, $2) ON CONFLICT (key) \
                 DO UPDATE SET value = EXCLUDED.value WHERE enrol_kv.value = EXCLUDED.value",
                &[&w.key, v],
            )
            .await?
                == 1
        }
        (Some(v), false) => {
            tx.execute(
                "INSERT INTO enrol_kv (key, value) VALUES ($1, $2) ON CONFLICT (key) \
                 DO UPDATE SET value = EXCLUDED.value",
                &[&w.key, v],
            )
            .await?;
            true
        }
        (None, _) => {
            tx.execute("DELETE FROM enrol_kv WHERE key = $1", &[&w.key])
                .await?;
            true
        }
    })
}

/// Writes people and small-table entries in the transaction; `Ok(false)` when a `was`
/// or a claim no longer holds (the caller rolls back).
async fn write_all(
    tx: &Transaction<'_>,
    people: &[PersonWrite],
    kv: &[KvWrite],
) -> Result<bool, StoreError> {
    for p in people {
        let loc = p.loc.0 as i64;
        let n = match &p.was {
            Some(was) => {
                tx.execute(
                    "UPDATE enrol_people SET record = $2 WHERE loc = $1 AND record = $3",
                    &[&loc, &p.now, was],
                )
                .await?
            }
            None => {
                tx.execute(
                    "UPDATE enrol_people SET record = $2 WHERE loc = $1",
                    &[&loc, &p.now],
                )
                .await?
            }
        };
        if n != 1 {
            let exists = tx
                .query_opt("SELECT 1 FROM enrol_people WHERE loc = $1", &[&loc])
                .await?
                .is_some();
            if !exists {
                return Err(StoreError::corrupt(format!(
                    "no person at place {}",
                    p.loc.0
                )));
            }
            return Ok(false);
        }
    }
    for w in kv {
        if !put(tx, w).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

impl PgTables {
    /// Connects (`postgres://...`) and applies the migrations not yet applied.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(&crate::store::postgres_store::PgOptions::new(url))
    }

    /// Connects as `options` say (TLS, reconnection) and migrates.
    pub fn open_with(
        options: &crate::store::postgres_store::PgOptions,
    ) -> Result<Self, StoreError> {
        use crate::store::pg_connect;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mes-enrolment-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::unavailable(format!("enrolment runtime: {e}")))?;
        let target = options.target();
        let (tx, rx) = sync_channel(1);
        rt.spawn(async move {
            let connected = async {
                let pool = pg_connect::pool(&target, CONNECTIONS, None)?;
                let mut first = pg_connect::get(&pool).await?;
                crate::store::postgres_store::migrate(&mut first).await?;
                drop(first);
                Ok::<_, StoreError>(pool)
            };
            let _ = tx.send(connected.await);
        });
        let pool = rx
            .recv()
            .map_err(|_| StoreError::unavailable("enrolment runtime stopped"))??;
        Ok(PgTables {
            rt: OwnedRuntime(Some(rt)),
            pool,
        })
    }

    /// Runs `work` with a connection on the backend's runtime and waits for it.
    fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pooled) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let (tx, rx) = sync_channel(1);
        let failed = tx.clone();
        self.spawn(
            move |c| async move {
                let _ = tx.send(work(c).await);
            },
            move |e| {
                let _ = failed.send(Err(e));
            },
        );
        rx.recv()
            .map_err(|_| StoreError::unavailable("enrolment runtime stopped"))?
    }

    /// Starts `work` with a connection on the backend's runtime, or tells `failed` why
    /// there is none (the database is away).
    fn spawn<F, Fut>(&self, work: F, failed: impl FnOnce(StoreError) + Send + 'static)
    where
        F: FnOnce(Pooled) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let pool = self.pool.clone();
        self.rt
            .0
            .as_ref()
            .expect("runtime until dropped")
            .spawn(async move {
                match crate::store::pg_connect::get(&pool).await {
                    Ok(c) => work(c).await,
                    Err(e) => failed(e),
                }
            });
    }

    /// Streams a query's rows to the caller, who may stop reading early.
    fn stream(
        &self,
        sql: &'static str,
        params: Vec<Vec<u8>>,
    ) -> Receiver<Result<tokio_postgres::Row, StoreError>> {
        let (tx, rx) = sync_channel(STREAM);
        let failed = tx.clone();
        self.spawn(
            move |c| async move {
                use futures_util::StreamExt;
                let rows = c.query_raw(sql, params.iter()).await;
                let mut rows = match rows {
                    Ok(r) => Box::pin(r),
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                while let Some(row) = rows.next().await {
                    // A reader gone stops the query; a full channel waits for it (on a
                    // blocking thread: this runtime's workers keep serving the others).
                    let sent = tokio::task::block_in_place(|| tx.send(row.map_err(Into::into)));
                    if sent.is_err() {
                        return;
                    }
                }
            },
            move |e| {
                let _ = failed.send(Err(e));
            },
        );
        rx
    }
}

impl Backend for PgTables {
    fn locate(&self, nir: &str) -> Result<Option<Loc>, StoreError> {
        let nir = nir.get(..13).unwrap_or(nir).to_string();
        self.run(move |c| async move {
            Ok(
                c.query_opt("SELECT loc FROM enrol_people WHERE nir = $1", &[&nir])
                    .await?
                    .map(|r| Loc(r.get::<_, i64>(0) as u64)),
            )
        })
    }

    fn at(&self, loc: Loc) -> Result<Option<Found>, StoreError> {
        self.run(move |c| async move {
            c.query_opt(
                "SELECT record FROM enrol_people WHERE loc = $1",
                &[&(loc.0 as i64)],
            )
            .await?
            .map(|r| Found::decode(loc, r.get::<_, &[u8]>(0)))
            .transpose()
        })
    }

    fn on_file(&self, nirs: &[&str]) -> Result<Vec<String>, StoreError> {
        let nirs: Vec<String> = nirs
            .iter()
            .map(|n| n.get(..13).unwrap_or(n).to_string())
            .collect();
        self.run(move |c| async move {
            let mut found = Vec::new();
            for chunk in nirs.chunks(50_000) {
                let chunk = chunk.to_vec();
                found.extend(
                    c.query(
                        "SELECT nir FROM enrol_people WHERE nir = ANY($1)",
                        &[&chunk],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get::<_, String>(0)),
                );
            }
            Ok(found)
        })
    }

    fn write(
        &self,
        people: Vec<PersonWrite>,
        kv: Vec<KvWrite>,
        _durable: bool,
    ) -> Result<(), ApplyError> {
        let held = self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            match write_all(&tx, &people, &kv).await {
                Ok(true) => {
                    tx.commit().await?;
                    Ok(true)
                }
                Ok(false) => Ok(false),
                Err(e) => Err(e),
            }
        });
        match held {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApplyError::Conflict),
            // Two new claims of one key race on its unique index: the loser conflicts.
            Err(e) if e.message.contains("(23505)") => Err(ApplyError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    fn update(
        &self,
        locs: &[Loc],
        extra: Vec<Op>,
        _durable: bool,
        f: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        let mut ids: Vec<i64> = locs.iter().map(|l| l.0 as i64).collect();
        ids.sort_unstable();
        ids.dedup();
        // The transaction stays on the runtime: rows go to the caller, the changes come
        // back, and the same transaction writes them.
        let (rows_tx, rows_rx) = sync_channel(1);
        let (changes_tx, changes_rx) =
            tokio::sync::oneshot::channel::<(Vec<PersonWrite>, Vec<KvWrite>)>();
        let (done_tx, done_rx) = sync_channel(1);
        let (failed_rows, failed_done) = (rows_tx.clone(), done_tx.clone());
        self.spawn(
            move |mut c| async move {
                let outcome = async {
                    let tx = c.transaction().await?;
                    let rows = tx
                        .query(
                            "SELECT loc, record FROM enrol_people WHERE loc = ANY($1) \
                         ORDER BY loc FOR UPDATE",
                            &[&ids],
                        )
                        .await?;
                    let rows: Vec<(Loc, Vec<u8>)> = rows
                        .iter()
                        .map(|r| (Loc(r.get::<_, i64>(0) as u64), r.get::<_, Vec<u8>>(1)))
                        .collect();
                    if rows_tx.send(Ok(rows)).is_err() {
                        return Ok(());
                    }
                    let Ok((people, kv)) = changes_rx.await else {
                        return Ok(()); // the caller failed: roll back
                    };
                    if !write_all(&tx, &people, &kv).await? {
                        return Err(StoreError::backend("a bulk update conflicted with itself"));
                    }
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                if let Err(e) = &outcome {
                    let _ = rows_tx.send(Err(e.clone()));
                }
                let _ = done_tx.send(outcome);
            },
            move |e| {
                let _ = failed_rows.send(Err(e.clone()));
                let _ = failed_done.send(Err(e));
            },
        );
        let rows = rows_rx
            .recv()
            .map_err(|_| StoreError::unavailable("enrolment runtime stopped"))??;
        let mut ops = extra;
        let mut people = Vec::new();
        for (loc, bytes) in rows {
            let mut p: Person = decode(&bytes)?;
            if f(loc, &mut p, &mut ops)? {
                people.push(PersonWrite {
                    loc,
                    was: None,
                    now: mes_protocol::wire::codec::to_bytes(&p),
                });
            }
        }
        let (others, kv) = split_ops(ops, || self.next_seq())?;
        if !others.is_empty() {
            return Err(StoreError::backend(
                "a bulk update cannot write other people",
            ));
        }
        let _ = changes_tx.send((people, kv));
        done_rx
            .recv()
            .map_err(|_| StoreError::unavailable("enrolment runtime stopped"))?
    }

    fn insert_people(
        &self,
        import: u64,
        pages: &[(u64, Vec<Person>)],
        kv: Vec<KvWrite>,
    ) -> Result<(), StoreError> {
        let (mut locs, mut nirs, mut records) = (Vec::new(), Vec::new(), Vec::new());
        for (page, people) in pages {
            for (slot, p) in people.iter().enumerate() {
                locs.push(Loc::new(*page, slot).0 as i64);
                nirs.push(p.insured.nir.clone());
                records.push(mes_protocol::wire::codec::to_bytes(p));
            }
        }
        let import = import as i64;
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO enrol_people (loc, nir, import, record) \
                 SELECT l, n, $3, r FROM unnest($1::bigint[], $2::text[], $4::bytea[]) AS t(l, n, r)",
                &[&locs, &nirs, &import, &records],
            )
            .await?;
            if !write_all(&tx, &[], &kv).await? {
                return Err(StoreError::backend("an import's metadata was claimed"));
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn index_people(&self, _entries: Vec<(String, Loc)>) -> Result<(), StoreError> {
        Ok(()) // the unique index on nir is kept by every insert
    }

    fn remove_people_from(&self, first_page: u64) -> Result<usize, StoreError> {
        let from = (first_page * PAGE as u64) as i64;
        self.run(move |c| async move {
            Ok(
                c.execute("DELETE FROM enrol_people WHERE loc >= $1", &[&from])
                    .await? as usize,
            )
        })
    }

    fn each_person(&self, f: &mut dyn FnMut(Loc, Person)) -> Result<(), StoreError> {
        for row in self.stream(
            "SELECT loc, record FROM enrol_people ORDER BY loc",
            Vec::new(),
        ) {
            let row = row?;
            f(
                Loc(row.get::<_, i64>(0) as u64),
                decode(row.get::<_, &[u8]>(1))?,
            );
        }
        Ok(())
    }

    fn kv_range(&self, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let rows = self.stream(
            "SELECT key, value FROM enrol_kv WHERE key >= $1 AND key < $2 ORDER BY key",
            vec![start.to_vec(), end.to_vec()],
        );
        for row in rows {
            let row = row?;
            if !visit(row.get::<_, &[u8]>(0), row.get::<_, &[u8]>(1))? {
                break;
            }
        }
        Ok(())
    }

    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.run(move |c| async move {
            Ok(
                c.query_opt("SELECT value FROM enrol_kv WHERE key = $1", &[&key])
                    .await?
                    .map(|r| r.get::<_, Vec<u8>>(0)),
            )
        })
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        self.run(|c| async move {
            Ok(c.query_one("SELECT nextval('enrol_seq')", &[])
                .await?
                .get::<_, i64>(0) as u64)
        })
    }
}
