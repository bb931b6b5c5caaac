//! Durable storage of the ledger on SQLite or PostgreSQL, through one set of
//! SQL statements (sqlx `Any`). Every step is one transaction: load the
//! asset's seizures (locked), ask the rules, write the seizures, the events
//! and the outbox orders, remember the reply under the client's request id. A
//! reply is sent only after the commit.
//!
//! - **SQLite** (one process): one writer task takes whatever steps are queued
//!   and commits them together, each in its own savepoint, so many concurrent
//!   steps share one fsync (`synchronous=FULL`, WAL).
//! - **PostgreSQL** (many replicas): each step is its own transaction; asset
//!   rows are locked `FOR UPDATE` in key order.
//!
//! Events are numbered gap-free in a short pass of their own after the step
//! ([`journal`]), so no step holds one row lock across its commit.
//!
//! This file is the engine (connections, transactions, group commit,
//! idempotency); [`rows`] loads and saves, [`journal`] takes ids and numbers
//! events, [`steps`] and [`transfers`] are the steps, [`reads`] the queries;
//! the debtor's steps are in [`cases`], [`debtors`] and [`research`], money
//! for distribution in [`funds`] and its plans in [`distribution`].

mod cases;
mod debtors;
mod distribution;
mod funds;
mod journal;
mod reads;
mod research;
mod rows;
mod schema;
mod steps;
mod transfers;

pub use cases::PicturePage;
pub use research::{DueResearch, ResearchClaim};

use std::{str::FromStr, sync::Arc};

use sqlx::{
    AnyConnection, AnyPool, Row,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};
use tokio::sync::{Notify, mpsc, oneshot};

use self::schema::Embedded;
use crate::{
    core::{
        batch,
        clock::{SharedClock, Time},
        method::Method,
    },
    ledger::{
        LedgerError, asset_key,
        command::{Command, Reply, RequestKey, Unaudited},
        rules::{self, EnforcementStep, Terms},
        views,
    },
};

/// The PostgreSQL channel every ledger commit notifies (read models listen on it).
pub const CHANNEL: &str = "assetgw_ledger";

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, one process.
    Sqlite,
    /// Shared by many gateway replicas.
    Postgres,
}

/// The stored states of a seizure on the queue.
const LIVE: &str = "('waiting', 'effective', 'partly_effective')";

/// The ledger's storage.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: Option<mpsc::Sender<Queued>>,
    numberer: Option<mpsc::Sender<journal::Waiter>>,
    clock: SharedClock,
    terms: Terms,
    committed: Arc<Notify>,
}

/// A step waiting for the SQLite writer.
struct Queued {
    command: Command,
    reply: oneshot::Sender<Result<Reply, LedgerError>>,
}

fn micros(t: Time) -> i64 {
    t.timestamp_micros()
}

impl Store {
    /// Opens (and migrates) the ledger at `url`: `sqlite://path` or `postgres://…`.
    pub async fn open(url: &str, clock: SharedClock, terms: Terms) -> Result<Store, LedgerError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let url = if backend == Backend::Sqlite { sqlite_url(url)? } else { url.to_string() };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { postgres_connections() })
            // A SQLite connection is a file handle that cannot go stale; pinging it on every
            // acquire was a round trip to its worker thread per query.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Durable on reply: WAL with a full fsync at every commit.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 5000",
                            // Reads map the file instead of copying each page out of the kernel: a
                            // profile of the search-job poller had a sixth of its CPU in pread copies.
                            "PRAGMA mmap_size = 268435456",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // The shared schema, then what only one database can say (each ignores the other's versions).
        let own = match backend {
            Backend::Postgres => schema::POSTGRES,
            Backend::Sqlite => schema::SQLITE,
        };
        for migrations in [schema::SHARED, own] {
            let mut migrator = Migrator::new(Embedded(migrations)).await?;
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
        }
        let committed = Arc::new(Notify::new());
        let mut store = Store { pool, backend, writer: None, numberer: None, clock, terms, committed };
        // The tasks get clones made before their own sender is stored, so they end with the last Store.
        if backend == Backend::Sqlite {
            let (tx, rx) = mpsc::channel(1024);
            let conn = store.pool.acquire().await?.detach();
            tokio::spawn(store.clone().group_commit(conn, rx));
            store.writer = Some(tx);
        } else {
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(store.clone().numberer(rx));
            store.numberer = Some(tx);
        }
        Ok(store)
    }

    /// The database, for the audit trail that lives beside the ledger.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database it is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The clock every "now" of the gateway comes from.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// The legal terms the ledger applies (R5, R6).
    pub fn terms(&self) -> Terms {
        self.terms.clone()
    }

    /// The time now, by the ledger's clock.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// Notified after every commit of this process.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// Applies one step durably and returns its reply; a repeated request id
    /// returns the first reply without acting again.
    pub async fn execute(&self, command: Command) -> Result<Reply, LedgerError> {
        match &self.writer {
            Some(writer) => {
                let (reply, answer) = oneshot::channel();
                writer.send(Queued { command, reply }).await.map_err(|_| LedgerError::Closed)?;
                answer.await.map_err(|_| LedgerError::Closed)?
            }
            None => {
                // Two replicas may race on one request id or lock order; the loser retries and then sees the winner.
                let mut attempt = 0;
                loop {
                    let mut tx = self.pool.begin().await?;
                    let result = match self.apply(&mut tx, &command).await {
                        // Every replica's read model hears of it when it commits (designations at once, events once numbered).
                        Ok(reply) => {
                            match sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *tx).await {
                                Ok(_) => tx.commit().await.map(|_| reply).map_err(LedgerError::from),
                                Err(e) => Err(e.into()),
                            }
                        }
                        Err(e) => Err(e),
                    };
                    match result {
                        Err(LedgerError::Db(e)) if attempt < 3 && retryable(&e) => attempt += 1,
                        other => {
                            if other.is_ok() {
                                self.committed.notify_waiters();
                                if command.changes_seizures() {
                                    self.numbered().await;
                                }
                            }
                            return other;
                        }
                    }
                }
            }
        }
    }

    /// The SQLite writer: takes every queued step, applies each in its own
    /// savepoint, and commits them together.
    async fn group_commit(self, mut conn: AnyConnection, mut jobs: mpsc::Receiver<Queued>) {
        while let Some(batch) = batch::next(&mut jobs).await {
            let results = self.run_batch(&mut conn, &batch).await;
            let ok = results.is_ok();
            match results {
                Ok(results) => {
                    for (job, result) in batch.into_iter().zip(results) {
                        let _ = job.reply.send(result);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "ledger commit failed; the batch is refused");
                    let cause = Arc::new(e);
                    for job in batch {
                        let _ = job.reply.send(Err(LedgerError::Batch(cause.clone())));
                    }
                }
            }
            if ok {
                self.committed.notify_waiters();
            }
        }
    }

    /// One transaction for the batch, a savepoint per step. `BEGIN IMMEDIATE`
    /// takes the write lock up front: a deferred transaction that reads first
    /// could not upgrade once another connection (the outbox) had written.
    async fn run_batch(
        &self,
        conn: &mut AnyConnection,
        batch: &[Queued],
    ) -> Result<Vec<Result<Reply, LedgerError>>, LedgerError> {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            match self.step(conn, &job.command).await {
                Ok(result) => results.push(result),
                Err(e) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    return Err(e.into());
                }
            }
        }
        let numbered = match self.number_events(conn).await {
            Ok(_) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| ()).map_err(LedgerError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = numbered {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err(e);
        }
        Ok(results)
    }

    /// One step of a batch in its own savepoint; a refused step leaves no trace.
    async fn step(
        &self,
        conn: &mut AnyConnection,
        command: &Command,
    ) -> Result<Result<Reply, LedgerError>, sqlx::Error> {
        sqlx::query("SAVEPOINT step").execute(&mut *conn).await?;
        let result = self.apply(conn, command).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO step").execute(&mut *conn).await?;
        }
        sqlx::query("RELEASE step").execute(&mut *conn).await?;
        Ok(result)
    }

    async fn apply(&self, conn: &mut AnyConnection, command: &Command) -> Result<Reply, LedgerError> {
        let now = self.clock.now();
        if let Some((key, method)) = command.request() {
            if let Some(stored) = self.stored_reply(conn, key, method, now).await? {
                return Ok(stored);
            }
        }
        let reply = match command {
            Command::Place { asset, debtor_key, case, amount, claim, emergency, secured, request } => {
                let reply =
                    self.place(conn, (asset, debtor_key), case, (*amount, claim.as_ref()), emergency, now).await?;
                let key = asset_key(asset.kind, &asset.asset_id);
                let by = (request.court.as_str(), case.to_string());
                self.registry_secured(conn, &key, (by.0, &by.1), secured, now).await?;
                reply
            }
            Command::Release { case, seizure_id, emergency, .. } => {
                let step = (EnforcementStep::Release, Some(emergency.as_str()));
                self.on_seizure(conn, seizure_id, case, step, |l, t| l.release(seizure_id, case, now, t)).await?
            }
            Command::Renew { case, seizure_id, months, emergency, .. } => {
                let designation = self.designation(conn, case).await?;
                self.on_seizure(conn, seizure_id, case, (EnforcementStep::Renew, None), |l, t| {
                    let soon = l
                        .ending_within(case, now, rules::RENEW_BEFORE_TRANSFER_DAYS)
                        .iter()
                        .any(|s| s.id == *seizure_id);
                    if rules::renewal_on_designation(case, designation.as_ref(), soon, emergency)? {
                        tracing::warn!(case, approval = %emergency, "emergency renewal on a designated case (R12)");
                    }
                    l.renew(seizure_id, case, *months, now, t)
                })
                .await?
            }
            Command::Deduct { case, seizure_id, amount, emergency, .. } => {
                let step = (EnforcementStep::Deduct, Some(emergency.as_str()));
                let reply = self
                    .on_seizure(conn, seizure_id, case, step, |l, t| l.deduct(seizure_id, case, *amount, now, t))
                    .await?;
                self.deduction_received(conn, (case, seizure_id), *amount, now).await?;
                reply
            }
            Command::Dispose { case, seizure_id, disposal, .. } => {
                let step = (EnforcementStep::Dispose, Some(""));
                self.on_seizure(conn, seizure_id, case, step, |l, t| l.dispose(seizure_id, case, *disposal, now, t))
                    .await?
            }
            Command::Transfer { case, to_court, decision, decided_at, handover, .. } => {
                let designation = rules::Designation {
                    to_court: to_court.clone(),
                    decision: decision.clone(),
                    decided_at: *decided_at,
                };
                match handover {
                    true => self.transfer(conn, case, designation, now).await?,
                    false => self.designate(conn, case, designation, now).await?,
                }
            }
            Command::Accept { transfer_id, new_case, .. } => self.accept(conn, transfer_id, new_case, now).await?,
            Command::RequestDisposal { case, asset_key, .. } => {
                self.request_disposal(conn, case, asset_key, now).await?
            }
            Command::AnswerDisposal { case, id, approve, .. } => {
                self.answer_disposal(conn, case, id, *approve, now).await?
            }
            Command::Bankruptcy { debtor_key, debtor, kind, act, decision, lifting, .. } => {
                self.bankruptcy(conn, (debtor_key, debtor, *kind), (*act, *lifting), decision, now).await?
            }
            Command::RegisterCase { case, debtors, applicant, claim, .. } => {
                self.register(conn, case, debtors, applicant, (&claim.0, claim.1), now).await?
            }
            Command::Terminate { case, debtors, at, .. } => self.terminate(conn, case, debtors, *at, now).await?,
            Command::Resume { case, new_case, .. } => self.resume(conn, case, new_case, now).await?,
            Command::DesignateSeries { request, debtor_key, designation, cases, with_preservation, .. } => {
                let whom = (request.court.as_str(), debtor_key.as_str());
                self.designate_series(conn, whom, designation, (cases, *with_preservation), now).await?
            }
            Command::RecordProceeds { case, seizure_id, amounts, currency, .. } => {
                let (amount, costs) = *amounts;
                self.record_proceeds(conn, (case, seizure_id), (amount, costs, currency), now).await?
            }
            Command::RecordSecured { request, case, asset_key, kind, secured, evidence } => {
                self.record_secured(conn, (&request.court, case), asset_key, (*kind, secured, evidence), now).await?
            }
            Command::Participate { request, case, proceeds_id, debtor } => {
                self.participate(conn, (&request.court, case), proceeds_id, (&debtor.0, debtor.1), now).await?
            }
            Command::Draft { request, case, debtor, sharing, proceeds } => {
                let whom = (debtor.0.as_str(), debtor.1.as_str());
                self.draft_distribution(conn, (&request.court, case), whom, *sharing, proceeds, now).await?
            }
            Command::Plan { by, distribution_id, step, holidays } => {
                let case = by.as_ref().map(|(_, case)| case.as_str());
                self.plan_step(conn, (case, distribution_id), step, holidays, now).await?
            }
            Command::Delivered { outbox_id, result, retry_at } => {
                self.delivered(conn, *outbox_id, result, *retry_at, now).await?
            }
            Command::Audited { request, method } => {
                sqlx::query("UPDATE replies SET audited = 1 WHERE court = $1 AND method = $2 AND request_id = $3")
                    .bind(&request.court)
                    .bind(method.step_name())
                    .bind(&request.id)
                    .execute(&mut *conn)
                    .await?;
                Reply::Done
            }
            Command::Sweep { asset_key } => {
                let mut w = self.open_ledgers(conn, std::slice::from_ref(asset_key)).await?;
                w.settle(now, &self.terms);
                self.commit_ledgers(conn, w).await?;
                Reply::Done
            }
        };
        if let Some((key, method)) = command.request() {
            sqlx::query(
                "INSERT INTO replies (court, method, request_id, digest, reply, at, officer, case_number, audited) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
            )
            .bind(&key.court)
            .bind(method.step_name())
            .bind(&key.id)
            .bind(&key.digest)
            .bind(hex::encode(reply.encode()))
            .bind(micros(now))
            .bind(&key.officer)
            .bind(command.case_number())
            .execute(&mut *conn)
            .await?;
        }
        Ok(reply)
    }

    /// The reply stored for `key`'s earlier request, if it made one; a
    /// different request under the same id is refused. A replayed step's
    /// queue is read now (replies are stored without it).
    async fn stored_reply(
        &self,
        conn: &mut AnyConnection,
        key: &RequestKey,
        method: Method,
        now: Time,
    ) -> Result<Option<Reply>, LedgerError> {
        if key.id.trim().is_empty() {
            return Err(LedgerError::NoRequestId);
        }
        let row = sqlx::query("SELECT digest, reply FROM replies WHERE court = $1 AND method = $2 AND request_id = $3")
            .bind(&key.court)
            .bind(method.step_name())
            .bind(&key.id)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let digest: String = row.try_get(0)?;
        if !digest.is_empty() && digest != key.digest {
            return Err(LedgerError::RequestReused { id: key.id.clone(), step: method.step_name() });
        }
        let stored = hex::decode(row.try_get::<String, _>(1)?)
            .map_err(|e| LedgerError::Corrupt(format!("stored reply of request {} is not hex: {e}", key.id)))?;
        Ok(Some(match Reply::decode(method, &stored)? {
            Reply::Control(mut r) => {
                let asset = r.seizure.as_ref().and_then(|s| s.asset.as_ref());
                if let Some(a) = asset {
                    let key = asset_key(rows::kind_of(i64::from(a.kind))?, &a.asset_id);
                    let mut ledgers = self.load(conn, &[key], false).await?;
                    for l in &mut ledgers {
                        l.settle(now, &self.terms);
                    }
                    r.queue = ledgers.first().map(views::queue);
                }
                Reply::Control(r)
            }
            other => other,
        }))
    }

    /// Acknowledged client steps made before `before` whose audit record was never written.
    pub async fn unaudited(&self, before: Time) -> Result<Vec<Unaudited>, LedgerError> {
        let rows = sqlx::query(
            "SELECT court, officer, method, request_id, case_number, at FROM replies WHERE audited = 0 AND at < $1 \
             ORDER BY at LIMIT 500",
        )
        .bind(micros(before))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let method: String = r.try_get(2)?;
                let method = Method::from_step_name(&method)
                    .ok_or_else(|| LedgerError::Corrupt(format!("stored reply of unknown method {method}")))?;
                Ok(Unaudited {
                    request: RequestKey {
                        court: r.try_get(0)?,
                        officer: r.try_get(1)?,
                        id: r.try_get(3)?,
                        digest: String::new(),
                    },
                    method,
                    case_number: r.try_get(4)?,
                    at: crate::core::clock::from_micros(r.try_get(5)?),
                })
            })
            .collect()
    }

    /// Forgets replies stored before `before`: a request id is good for the configured window.
    pub async fn purge_replies(&self, before: Time) -> Result<u64, LedgerError> {
        let done = sqlx::query("DELETE FROM replies WHERE at < $1").bind(micros(before)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// On a clean stop: SQLite folds its write-ahead log into the database
    /// file, so that the file alone holds everything (copies, backups).
    pub async fn checkpoint(&self) -> Result<(), LedgerError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    fn lock_suffix(&self, lock: bool) -> &'static str {
        // SQLite has one writer at a time already; PostgreSQL replicas lock the asset rows.
        if lock && self.backend == Backend::Postgres { " FOR UPDATE" } else { "" }
    }

    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, LedgerError> {
        Ok(self.pool.acquire().await?)
    }

    /// A read-only transaction: every statement in it sees the same snapshot
    /// (SQLite's WAL read transaction; PostgreSQL's repeatable read).
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, LedgerError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        }
        Ok(tx)
    }
}

/// A SQLite URL that creates the file, with its directory made.
fn sqlite_url(url: &str) -> Result<String, LedgerError> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let file = path.split('?').next().unwrap_or(path);
    if let Some(dir) = std::path::Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| LedgerError::Db(sqlx::Error::Io(e)))?;
    }
    Ok(if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") })
}

/// Connections per replica to PostgreSQL: twice the cores plus one. More
/// only queue inside the server: at 16 on two cores, placements under 64
/// writers took twice as long at p99 as at 5 (docs/BENCHMARKS.md).
fn postgres_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(2 * cores + 1).unwrap_or(16)
}

fn retryable(e: &sqlx::Error) -> bool {
    // Unique violation (a racing replica stored the same request), serialization failure, deadlock.
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| matches!(c.as_ref(), "23505" | "40001" | "40P01"))
}
