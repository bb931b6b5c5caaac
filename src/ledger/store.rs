//! Durable storage of the ledger on SQLite or PostgreSQL, through one set of
//! SQL statements (sqlx `Any`). Every step is one transaction: load the
//! asset's seizures (locked), apply a rule, write the seizures, the events and
//! the outbox orders, remember the reply under the client's request id. A reply
//! is sent only after the commit.
//!
//! - **SQLite** (one process): one writer task takes whatever steps are queued
//!   and commits them together, each in its own savepoint, so many concurrent
//!   steps share one fsync (`synchronous=FULL`, WAL).
//! - **PostgreSQL** (many replicas): each step is its own transaction; asset
//!   rows are locked `FOR UPDATE` in key order.
//!
//! Events and outbox orders are numbered from one counter row, updated last in
//! each transaction: its row lock orders commits by number, so a reader that
//! has seen event N never later finds an N-1 it missed.

use std::{str::FromStr, sync::Arc, time::Duration};

use chrono::DateTime;
use prost::Message;
use sqlx::{
    AnyConnection, AnyPool, Row,
    any::{AnyConnectOptions, AnyPoolOptions, AnyRow},
};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{
    Clock, LedgerError, Time,
    rules::{self, Asset, Change, ChangeKind, Disposal, Ledger, Order, Seizure, State, Terms},
};
use crate::{
    identifiers::CaseNumber,
    proto::{
        self, AnswerDisposalTransferResponse, AssetKind, AssetQueue, AssetRef, ControlResult, DisposalTransferState,
        TransferCaseResponse, TransferState, WatchEventsResponse, time_of, ts,
    },
};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, one process.
    Sqlite,
    /// Shared by many gateway replicas.
    Postgres,
}

/// A step that changes the ledger.
#[derive(Debug, Clone)]
pub enum Command {
    /// Seize or freeze (R1, R4).
    Place {
        /// Client request id.
        request_id: String,
        /// The asset as the registry reported it just now.
        asset: Asset,
        /// Acting case.
        case: CaseNumber,
        /// Amount or quantity.
        amount: i64,
        /// For deposits: currency and amount of the claim.
        claim: Option<(String, i64)>,
        /// Superior court approval of an emergency measure (R12).
        emergency: String,
    },
    /// Release (R7).
    Release {
        /// Client request id.
        request_id: String,
        /// Acting case.
        case: String,
        /// The seizure.
        seizure_id: String,
        /// R12 approval.
        emergency: String,
    },
    /// Renew (R6).
    Renew {
        /// Client request id.
        request_id: String,
        /// Acting case.
        case: String,
        /// The seizure.
        seizure_id: String,
        /// Months; `None` a full term.
        months: Option<u32>,
    },
    /// Deduct deposit funds (R9).
    Deduct {
        /// Client request id.
        request_id: String,
        /// Acting case.
        case: String,
        /// The freeze.
        seizure_id: String,
        /// Minor units.
        amount: i64,
        /// R12 approval.
        emergency: String,
    },
    /// A disposal step (R8).
    Dispose {
        /// Client request id.
        request_id: String,
        /// Acting case.
        case: String,
        /// The effective seizure.
        seizure_id: String,
        /// What happened.
        disposal: Disposal,
    },
    /// Hand a designated case over (R10–R13).
    Transfer {
        /// Client request id.
        request_id: String,
        /// The case.
        case: CaseNumber,
        /// Receiving court.
        to_court: String,
        /// Designation decision.
        decision: String,
        /// When decided.
        decided_at: Time,
    },
    /// The receiving court files its case (R10).
    Accept {
        /// Client request id.
        request_id: String,
        /// The transfer.
        transfer_id: String,
        /// The new case.
        new_case: CaseNumber,
    },
    /// Ask for disposal to move to a priority creditor (R14).
    RequestDisposal {
        /// Client request id.
        request_id: String,
        /// Requesting case.
        case: CaseNumber,
        /// The asset.
        asset_key: String,
    },
    /// Answer such a request (R14).
    AnswerDisposal {
        /// Client request id.
        request_id: String,
        /// The case holding the first seizure.
        case: String,
        /// The request.
        id: String,
        /// Approve or refuse.
        approve: bool,
    },
    /// A registry answered an outbox order.
    Delivered {
        /// The order.
        outbox_id: i64,
        /// The registry's record, or why delivery failed.
        result: Result<Ack, String>,
        /// When to try again after a failure (Unix µs, wall clock).
        retry_at: i64,
    },
    /// Persist the lapses due on an asset (the sweeper).
    Sweep {
        /// The asset.
        asset_key: String,
    },
}

impl Command {
    /// The client's request id and the request's name, for idempotency.
    fn request(&self) -> Option<(&str, &'static str)> {
        match self {
            Command::Place { request_id, .. } => Some((request_id, "place")),
            Command::Release { request_id, .. } => Some((request_id, "release")),
            Command::Renew { request_id, .. } => Some((request_id, "renew")),
            Command::Deduct { request_id, .. } => Some((request_id, "deduct")),
            Command::Dispose { request_id, .. } => Some((request_id, "dispose")),
            Command::Transfer { request_id, .. } => Some((request_id, "transfer")),
            Command::Accept { request_id, .. } => Some((request_id, "accept")),
            Command::RequestDisposal { request_id, .. } => Some((request_id, "request_disposal")),
            Command::AnswerDisposal { request_id, .. } => Some((request_id, "answer_disposal")),
            Command::Delivered { .. } | Command::Sweep { .. } => None,
        }
    }
}

/// A registry's acknowledgement of an order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ack {
    /// Its reference.
    pub reference: String,
    /// Term start by its calendar.
    pub start: Option<Time>,
    /// Term end by its calendar.
    pub end: Option<Time>,
}

/// What a step answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A seizure step.
    Control(ControlResult),
    /// A case transfer step.
    Transfer(TransferCaseResponse),
    /// A disposal-transfer step.
    Disposal(AnswerDisposalTransferResponse),
    /// Internal steps.
    Done,
}

impl Reply {
    fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Control(r) => r.encode_to_vec(),
            Reply::Transfer(r) => r.encode_to_vec(),
            Reply::Disposal(r) => r.encode_to_vec(),
            Reply::Done => Vec::new(),
        }
    }

    fn decode(method: &str, bytes: &[u8]) -> Result<Reply, LedgerError> {
        let bad = |e: prost::DecodeError| LedgerError::Invalid(format!("stored reply unreadable: {e}"));
        Ok(match method {
            "place" | "release" | "renew" | "deduct" | "dispose" => {
                Reply::Control(ControlResult::decode(bytes).map_err(bad)?)
            }
            "transfer" | "accept" => Reply::Transfer(TransferCaseResponse::decode(bytes).map_err(bad)?),
            "request_disposal" | "answer_disposal" => {
                Reply::Disposal(AnswerDisposalTransferResponse::decode(bytes).map_err(bad)?)
            }
            _ => Reply::Done,
        })
    }
}

/// An order due for delivery, leased to this replica.
#[derive(Debug, Clone)]
pub struct PendingOrder {
    /// Outbox id; also the order's idempotency key.
    pub id: i64,
    /// `seize`, `renew`, `release` or `deduct`.
    pub kind: String,
    /// The registry.
    pub registry: String,
    /// The seizure.
    pub seizure_id: String,
    /// The asset.
    pub asset_kind: AssetKind,
    /// The asset's id.
    pub asset_id: String,
    /// Amount (seize, deduct).
    pub amount: i64,
    /// Term end (seize, renew).
    pub end: Option<Time>,
    /// Ordering court.
    pub court: String,
    /// Ordering case.
    pub case_number: String,
    /// The registry's reference of the seizure, once known.
    pub registry_ref: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
}

const LIVE: &str = "('waiting', 'effective', 'partly_effective')";

/// The ledger's storage.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: Option<mpsc::Sender<Job>>,
    clock: Arc<dyn Clock>,
    terms: Terms,
    committed: Arc<Notify>,
}

struct Job {
    command: Command,
    reply: oneshot::Sender<Result<Reply, LedgerError>>,
}

fn micros(t: Time) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> Time {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Wall-clock Unix microseconds, for outbox scheduling.
pub fn wall_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `<kind>:<asset id>`, the ledger's key of an asset.
pub fn asset_key(kind: AssetKind, asset_id: &str) -> String {
    format!("{}:{asset_id}", kind.short_name())
}

impl Store {
    /// Opens (and migrates) the ledger at `url`: `sqlite://path` or `postgres://…`.
    pub async fn open(url: &str, clock: Arc<dyn Clock>, terms: Terms) -> Result<Store, LedgerError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let url = if backend == Backend::Sqlite { sqlite_url(url)? } else { url.to_string() };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
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
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let committed = Arc::new(Notify::new());
        let mut store = Store { pool, backend, writer: None, clock, terms, committed };
        if backend == Backend::Sqlite {
            let (tx, rx) = mpsc::channel(1024);
            let conn = store.pool.acquire().await?.detach();
            tokio::spawn(store.clone().group_commit(conn, rx));
            store.writer = Some(tx);
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

    /// The court a case was designated to, if its court was designated away from it (R12).
    pub async fn designated_to(&self, case: &str) -> Result<Option<String>, LedgerError> {
        let mut conn = self.reader().await?;
        Ok(self.stopped(&mut conn, case).await?.map(|(to_court, _)| to_court))
    }

    /// The ledger's clock.
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
                writer.send(Job { command, reply }).await.map_err(|_| LedgerError::Closed)?;
                answer.await.map_err(|_| LedgerError::Closed)?
            }
            None => {
                // Two replicas may race on one request id or lock order; the loser retries and then sees the winner.
                let mut attempt = 0;
                loop {
                    let mut tx = self.pool.begin().await?;
                    let result = match self.apply(&mut tx, &command).await {
                        Ok(reply) => tx.commit().await.map(|_| reply).map_err(LedgerError::from),
                        Err(e) => Err(e),
                    };
                    match result {
                        Err(LedgerError::Db(e)) if attempt < 3 && retryable(&e) => attempt += 1,
                        other => {
                            if other.is_ok() {
                                self.committed.notify_waiters();
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
    async fn group_commit(self, mut conn: AnyConnection, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < 256 {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
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
                    for job in batch {
                        let _ = job.reply.send(Err(LedgerError::Db(sqlx::Error::Protocol(e.to_string()))));
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
        batch: &[Job],
    ) -> Result<Vec<Result<Reply, LedgerError>>, sqlx::Error> {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            match self.step(conn, &job.command).await {
                Ok(result) => results.push(result),
                Err(e) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    return Err(e);
                }
            }
        }
        if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
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
        if let Some((id, method)) = command.request() {
            if id.is_empty() {
                return Err(LedgerError::Invalid(
                    "request_id is required: a client-chosen id that makes retries safe".into(),
                ));
            }
            let row = sqlx::query("SELECT method, reply FROM requests WHERE request_id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = row {
                let stored: String = row.try_get(0)?;
                if stored != method {
                    return Err(LedgerError::Invalid(format!(
                        "request_id {id} was already used for a different kind of request"
                    )));
                }
                let stored = hex::decode(row.try_get::<String, _>(1)?)
                    .map_err(|e| LedgerError::Invalid(format!("stored reply unreadable: {e}")))?;
                return Reply::decode(method, &stored);
            }
        }
        let now = self.clock.now();
        let reply = match command {
            Command::Place { asset, case, amount, claim, emergency, .. } => {
                self.place(conn, asset, case, *amount, claim.as_ref(), emergency, now).await?
            }
            Command::Release { case, seizure_id, emergency, .. } => {
                self.on_seizure(conn, seizure_id, case, Some(emergency), |l, t| l.release(seizure_id, case, now, t))
                    .await?
            }
            Command::Renew { case, seizure_id, months, .. } => {
                self.on_seizure(conn, seizure_id, case, None, |l, t| l.renew(seizure_id, case, *months, now, t)).await?
            }
            Command::Deduct { case, seizure_id, amount, emergency, .. } => {
                self.on_seizure(conn, seizure_id, case, Some(emergency), |l, t| {
                    l.deduct(seizure_id, case, *amount, now, t)
                })
                .await?
            }
            Command::Dispose { case, seizure_id, disposal, .. } => {
                self.on_seizure(conn, seizure_id, case, Some(""), |l, t| l.dispose(seizure_id, case, *disposal, now, t))
                    .await?
            }
            Command::Transfer { case, to_court, decision, decided_at, .. } => {
                self.transfer(conn, case, to_court, decision, *decided_at, now).await?
            }
            Command::Accept { transfer_id, new_case, .. } => self.accept(conn, transfer_id, new_case, now).await?,
            Command::RequestDisposal { case, asset_key, .. } => {
                self.request_disposal(conn, case, asset_key, now).await?
            }
            Command::AnswerDisposal { case, id, approve, .. } => {
                self.answer_disposal(conn, case, id, *approve, now).await?
            }
            Command::Delivered { outbox_id, result, retry_at } => {
                self.delivered(conn, *outbox_id, result, *retry_at, now).await?
            }
            Command::Sweep { asset_key } => {
                let mut ledgers = self.load(conn, std::slice::from_ref(asset_key), true).await?;
                for l in &mut ledgers {
                    let before = l.clone();
                    let changes = l.settle(now, &self.terms);
                    self.save(conn, l, &before).await?;
                    self.record(conn, &[(l, changes, vec![])]).await?;
                }
                Reply::Done
            }
        };
        if let Some((id, method)) = command.request() {
            sqlx::query("INSERT INTO requests (request_id, method, reply, at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(method)
                .bind(hex::encode(reply.encode()))
                .bind(micros(now))
                .execute(&mut *conn)
                .await?;
        }
        Ok(reply)
    }

    // ---- loading and saving ----

    fn lock_suffix(&self, lock: bool) -> &'static str {
        // SQLite has one writer at a time already; PostgreSQL replicas lock the asset rows.
        if lock && self.backend == Backend::Postgres { " FOR UPDATE" } else { "" }
    }

    /// Loads the ledgers of `keys` (those that exist), in key order.
    async fn load(&self, conn: &mut AnyConnection, keys: &[String], lock: bool) -> Result<Vec<Ledger>, LedgerError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let list = (1..=keys.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT asset_key, kind, asset_id, registry, debtor, unit, total, sale_started, disposed FROM assets \
             WHERE asset_key IN ({list}) ORDER BY asset_key{}",
            self.lock_suffix(lock)
        );
        let mut q = sqlx::query(&sql);
        for k in &keys {
            q = q.bind(k.clone());
        }
        let mut ledgers: Vec<(String, Ledger)> = Vec::new();
        for row in q.fetch_all(&mut *conn).await? {
            let asset = Asset {
                kind: kind_of(row.try_get(1)?),
                asset_id: row.try_get(2)?,
                registry: row.try_get(3)?,
                debtor: row.try_get(4)?,
                unit: row.try_get(5)?,
                total: row.try_get(6)?,
                sale_started: row.try_get::<i64, _>(7)? != 0,
                disposed: row.try_get::<i64, _>(8)? != 0,
            };
            ledgers.push((row.try_get(0)?, Ledger { asset, seizures: Vec::new() }));
        }
        // Seizures belong to known assets: none known, none to read (a search's usual case).
        if ledgers.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT asset_key, seizure_id, seq, court, case_number, requested, effective, state, placed_at, start_at, \
             end_at, ended_at, registry_ref, renewals FROM seizures WHERE asset_key IN ({list}) ORDER BY asset_key, seq"
        );
        let mut q = sqlx::query(&sql);
        for k in &keys {
            q = q.bind(k.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let key: String = row.try_get(0)?;
            if let Some((_, l)) = ledgers.iter_mut().find(|(k, _)| *k == key) {
                l.seizures.push(seizure(&row)?);
            }
        }
        Ok(ledgers.into_iter().map(|(_, l)| l).collect())
    }

    async fn load_one(&self, conn: &mut AnyConnection, key: &str, lock: bool) -> Result<Ledger, LedgerError> {
        self.load(conn, &[key.to_string()], lock)
            .await?
            .pop()
            .ok_or_else(|| LedgerError::NotFound(format!("no seizure has ever been placed on asset {key}")))
    }

    /// Writes what changed since `before` (the ledger as loaded).
    async fn save(&self, conn: &mut AnyConnection, l: &Ledger, before: &Ledger) -> Result<(), LedgerError> {
        let key = asset_key(l.asset.kind, &l.asset.asset_id);
        if l.asset != before.asset {
            sqlx::query("UPDATE assets SET total = $1, sale_started = $2, disposed = $3 WHERE asset_key = $4")
                .bind(l.asset.total)
                .bind(i64::from(l.asset.sale_started))
                .bind(i64::from(l.asset.disposed))
                .bind(&key)
                .execute(&mut *conn)
                .await?;
        }
        for s in l.seizures.iter().filter(|s| !before.seizures.contains(s)) {
            sqlx::query(
                "INSERT INTO seizures (seizure_id, asset_key, seq, court, case_number, requested, effective, state, \
                 placed_at, start_at, end_at, ended_at, registry_ref, renewals) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (seizure_id) DO UPDATE SET court = excluded.court, case_number = excluded.case_number, \
                 requested = excluded.requested, effective = excluded.effective, state = excluded.state, \
                 start_at = excluded.start_at, end_at = excluded.end_at, ended_at = excluded.ended_at, \
                 registry_ref = excluded.registry_ref, renewals = excluded.renewals",
            )
            .bind(&s.id)
            .bind(&key)
            .bind(s.seq)
            .bind(&s.court)
            .bind(&s.case_number)
            .bind(s.requested)
            .bind(s.effective)
            .bind(s.state.as_str())
            .bind(micros(s.placed_at))
            .bind(s.start.map(micros))
            .bind(s.end.map(micros))
            .bind(s.ended_at.map(micros))
            .bind(s.registry_ref.clone())
            .bind(s.renewals)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Writes events and outbox orders, numbered from the counter. Called last
    /// in a step: the counter's row lock is what orders commits.
    async fn record(
        &self,
        conn: &mut AnyConnection,
        work: &[(&Ledger, Vec<Change>, Vec<Order>)],
    ) -> Result<(), LedgerError> {
        let n: usize = work.iter().map(|(_, c, o)| c.len() + o.len()).sum();
        if n == 0 {
            return Ok(());
        }
        let last: i64 = sqlx::query("UPDATE counters SET value = value + $1 WHERE name = 'seq' RETURNING value")
            .bind(n as i64)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let mut seq = last - n as i64;
        let wall = wall_micros();
        for (l, changes, orders) in work {
            let key = asset_key(l.asset.kind, &l.asset.asset_id);
            let holder = |id: &str| {
                l.seizures
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| (s.court.clone(), s.case_number.clone()))
                    .unwrap_or_default()
            };
            for c in changes {
                seq += 1;
                let (court, case) = holder(&c.seizure_id);
                insert_event(conn, seq, micros(c.at), c.kind.as_str(), &c.seizure_id, &key, &court, &case, &c.message)
                    .await?;
            }
            for o in orders {
                seq += 1;
                let (court, case) = holder(o.seizure_id());
                let (kind, amount, end) = match o {
                    Order::Seize { amount, end, .. } => ("seize", *amount, *end),
                    Order::Renew { end, .. } => ("renew", 0, Some(*end)),
                    Order::Release { .. } => ("release", 0, None),
                    Order::Deduct { amount, .. } => ("deduct", *amount, None),
                };
                sqlx::query(
                    "INSERT INTO outbox (id, asset_key, seizure_id, registry, kind, amount, end_at, court, case_number, \
                     attempts, next_attempt_at, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, 0)",
                )
                .bind(seq)
                .bind(&key)
                .bind(o.seizure_id())
                .bind(&l.asset.registry)
                .bind(kind)
                .bind(amount)
                .bind(end.map(micros))
                .bind(court)
                .bind(case)
                .bind(wall)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    // ---- the steps ----

    /// The transfer that stopped `case`, if its court was designated away (R12).
    async fn stopped(&self, conn: &mut AnyConnection, case: &str) -> Result<Option<(String, String)>, LedgerError> {
        let row = sqlx::query("SELECT to_court, decision_reference FROM transfers WHERE from_case = $1")
            .bind(case)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    async fn check_not_stopped(
        &self,
        conn: &mut AnyConnection,
        case: &str,
        emergency: &str,
    ) -> Result<(), LedgerError> {
        if let Some((to_court, decision)) = self.stopped(conn, case).await? {
            if emergency.trim().is_empty() {
                return Err(LedgerError::Denied(format!(
                    "case {case} was designated to court {to_court} by {decision}; its court must stop executing it (R12). \
                     An emergency measure needs the superior court's approval in emergency_approval"
                )));
            }
            tracing::warn!(case, to_court, approval = emergency, "emergency measure on a designated case (R12)");
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn place(
        &self,
        conn: &mut AnyConnection,
        asset: &Asset,
        case: &CaseNumber,
        amount: i64,
        claim: Option<&(String, i64)>,
        emergency: &str,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let case_number = case.to_string();
        self.check_not_stopped(conn, &case_number, emergency).await?;
        let key = asset_key(asset.kind, &asset.asset_id);
        sqlx::query(
            "INSERT INTO assets (asset_key, kind, asset_id, registry, debtor, unit, total, sale_started, disposed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (asset_key) DO NOTHING",
        )
        .bind(&key)
        .bind(asset.kind as i64)
        .bind(&asset.asset_id)
        .bind(&asset.registry)
        .bind(&asset.debtor)
        .bind(&asset.unit)
        .bind(asset.total)
        .bind(0i64)
        .bind(0i64)
        .execute(&mut *conn)
        .await?;
        let mut l = self.load_one(conn, &key, true).await?;
        let before = l.clone();
        let mut changes = l.set_total(asset.total, now, &self.terms);
        if asset.kind == AssetKind::Deposit {
            let (currency, claimed) = claim.ok_or_else(|| {
                LedgerError::Invalid("a deposit freeze states the claim (currency and amount) it secures (R4)".into())
            })?;
            if *currency != asset.unit {
                return Err(LedgerError::Invalid(format!(
                    "the claim is in {currency} but the account holds {}",
                    asset.unit
                )));
            }
            let other: i64 = sqlx::query(&format!(
                "SELECT CAST(COALESCE(SUM(s.requested), 0) AS BIGINT) FROM seizures s JOIN assets a ON a.asset_key = s.asset_key \
                 WHERE s.case_number = $1 AND a.kind = $2 AND a.unit = $3 AND s.asset_key <> $4 AND s.state IN {LIVE}"
            ))
            .bind(&case_number)
            .bind(AssetKind::Deposit as i64)
            .bind(currency)
            .bind(&key)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
            if amount + other > *claimed {
                return Err(LedgerError::Refused(format!(
                    "over-seizure: this freeze of {amount} plus the case's other freezes of {other} exceed the claim of {claimed} \
                     {currency} minor units (R4); freeze at most {}",
                    (claimed - other).max(0)
                )));
            }
        }
        let seq = l.seizures.last().map_or(1, |s| s.seq + 1);
        let id = uuid::Uuid::new_v4().to_string();
        let outcome = l.place(id.clone(), seq, &case.court_code, &case_number, amount, now, &self.terms)?;
        changes.extend(outcome.changes);
        self.save(conn, &l, &before).await?;
        self.record(conn, &[(&l, changes, outcome.orders)]).await?;
        Ok(Reply::Control(control_result(&l, &id, outcome.message)))
    }

    /// Release, renew, deduct and dispose: one seizure, its holder's step.
    #[allow(clippy::too_many_arguments)]
    async fn on_seizure(
        &self,
        conn: &mut AnyConnection,
        seizure_id: &str,
        case: &str,
        emergency: Option<&str>,
        step: impl FnOnce(&mut Ledger, &Terms) -> Result<rules::Outcome, rules::RuleError>,
    ) -> Result<Reply, LedgerError> {
        let key: String = sqlx::query("SELECT asset_key FROM seizures WHERE seizure_id = $1")
            .bind(seizure_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| LedgerError::NotFound(format!("no seizure {seizure_id}")))?
            .try_get(0)?;
        if let Some(emergency) = emergency {
            self.check_not_stopped(conn, case, emergency).await?;
        }
        let mut l = self.load_one(conn, &key, true).await?;
        let before = l.clone();
        let outcome = step(&mut l, &self.terms)?;
        self.save(conn, &l, &before).await?;
        self.record(conn, &[(&l, outcome.changes, outcome.orders)]).await?;
        Ok(Reply::Control(control_result(&l, seizure_id, outcome.message)))
    }

    async fn live_keys_of_case(&self, conn: &mut AnyConnection, case: &str) -> Result<Vec<String>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT asset_key FROM seizures WHERE case_number = $1 AND state IN {LIVE} ORDER BY asset_key"
        ))
        .bind(case)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(|r| r.try_get(0).map_err(LedgerError::from)).collect()
    }

    async fn transfer(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        to_court: &str,
        decision: &str,
        decided_at: Time,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let case_number = case.to_string();
        if let Some((court, _)) = self.stopped(conn, &case_number).await? {
            return Err(LedgerError::Refused(format!(
                "case {case_number} has already been handed over to court {court}"
            )));
        }
        if to_court == case.court_code {
            return Err(LedgerError::Invalid("a case is designated to another court, not its own".into()));
        }
        let keys = self.live_keys_of_case(conn, &case_number).await?;
        let mut ledgers = self.load(conn, &keys, true).await?;
        let before = ledgers.clone();
        let mut work = Vec::new();
        let mut near = Vec::new();
        for l in &mut ledgers {
            work.push(l.settle(now, &self.terms));
            for s in l.ending_within(&case_number, now, 30) {
                near.push(format!(
                    "seizure {} on {} ends {}",
                    s.id,
                    asset_key(l.asset.kind, &l.asset.asset_id),
                    s.end.map(rules::day).unwrap_or_default()
                ));
            }
        }
        if !near.is_empty() {
            return Err(LedgerError::Refused(format!(
                "{} measure(s) of the case end within 30 days and must be renewed by this court before the transfer (R11): {}",
                near.len(),
                near.join("; ")
            )));
        }
        let count: usize =
            ledgers.iter().map(|l| l.queue().filter(|(_, s)| s.case_number == case_number).count()).sum();
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO transfers (transfer_id, from_case, from_court, to_court, to_case, decision_reference, decided_at, \
             handed_over_at, filed_at, seizure_count) VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, NULL, $8)",
        )
        .bind(&id)
        .bind(&case_number)
        .bind(&case.court_code)
        .bind(to_court)
        .bind(decision)
        .bind(micros(decided_at))
        .bind(micros(now))
        .bind(count as i64)
        .execute(&mut *conn)
        .await?;
        for (l, b) in ledgers.iter().zip(&before) {
            self.save(conn, l, b).await?;
        }
        let settled: Vec<_> = ledgers.iter().zip(work).map(|(l, c)| (l, c, vec![])).collect();
        self.record(conn, &settled).await?;
        let transfer = self.transfer_row(conn, &id, now).await?;
        let late =
            if transfer.handover_late { " The handover is more than 7 days after the decision (R13)." } else { "" };
        let message = format!(
            "case {case_number} handed over to court {to_court} under {decision}; its {count} seizure(s) pass with their rank \
             when that court files its case, due {} (R10, R13). This court may no longer act on the case (R12).{late}",
            transfer.filing_due.as_ref().map(|t| rules::day(time_of(t))).unwrap_or_default()
        );
        Ok(Reply::Transfer(TransferCaseResponse { transfer: Some(transfer), message }))
    }

    async fn accept(
        &self,
        conn: &mut AnyConnection,
        transfer_id: &str,
        new_case: &CaseNumber,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let t = self.transfer_row(conn, transfer_id, now).await?;
        if new_case.court_code != t.to_court {
            return Err(LedgerError::Denied(format!(
                "transfer {transfer_id} was designated to court {}; case {new_case} belongs to court {}",
                t.to_court, new_case.court_code
            )));
        }
        if t.state == TransferState::Filed as i32 {
            return Err(LedgerError::Refused(format!("transfer {transfer_id} was already filed as {}", t.to_case)));
        }
        if new_case.case_type != "执" {
            return Err(LedgerError::Invalid(format!(
                "the receiving court files a first-enforcement case (执) for the remainder (R10), not a {} case",
                new_case.case_type
            )));
        }
        let to_case = new_case.to_string();
        let keys = self.live_keys_of_case(conn, &t.from_case).await?;
        let mut ledgers = self.load(conn, &keys, true).await?;
        let before = ledgers.clone();
        let mut work = Vec::new();
        for l in &mut ledgers {
            let mut changes = l.settle(now, &self.terms);
            changes.extend(l.change_holder(
                &t.from_case,
                &t.to_court,
                &to_case,
                now,
                &format!("designation {}", t.decision_reference),
            ));
            work.push(changes);
        }
        let moved: usize = work.iter().map(|c| c.iter().filter(|c| c.kind == ChangeKind::HolderChanged).count()).sum();
        sqlx::query("UPDATE transfers SET to_case = $1, filed_at = $2 WHERE transfer_id = $3")
            .bind(&to_case)
            .bind(micros(now))
            .bind(transfer_id)
            .execute(&mut *conn)
            .await?;
        for (l, b) in ledgers.iter().zip(&before) {
            self.save(conn, l, b).await?;
        }
        let recorded: Vec<_> = ledgers.iter().zip(work).map(|(l, c)| (l, c, vec![])).collect();
        self.record(conn, &recorded).await?;
        let transfer = self.transfer_row(conn, transfer_id, now).await?;
        let message = format!(
            "{moved} seizure(s) of {} now held by {to_case}, rank, references and dates unchanged (R10)",
            t.from_case
        );
        Ok(Reply::Transfer(TransferCaseResponse { transfer: Some(transfer), message }))
    }

    async fn request_disposal(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        key: &str,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let case_number = case.to_string();
        let mut l = self.load_one(conn, key, true).await?;
        let before = l.clone();
        let changes = l.settle(now, &self.terms);
        let from_case = l.check_disposal_transfer(&case_number, now)?;
        let pending = sqlx::query(
            "SELECT id FROM disposal_transfers WHERE asset_key = $1 AND to_case = $2 AND state = 'requested'",
        )
        .bind(key)
        .bind(&case_number)
        .fetch_optional(&mut *conn)
        .await?;
        if pending.is_some() {
            return Err(LedgerError::Refused(format!(
                "{case_number} already has a pending disposal-transfer request on {key}"
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO disposal_transfers (id, asset_key, from_case, to_case, requested_at, answered_at, state) \
             VALUES ($1, $2, $3, $4, $5, NULL, 'requested')",
        )
        .bind(&id)
        .bind(key)
        .bind(&from_case)
        .bind(&case_number)
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
        self.save(conn, &l, &before).await?;
        self.record(conn, &[(&l, changes, vec![])]).await?;
        let d = self.disposal_row(conn, &id, now).await?;
        let message = format!(
            "disposal-transfer requested from {from_case}; the first-seizing court must answer by {} (R14)",
            d.answer_due.as_ref().map(|t| rules::day(time_of(t))).unwrap_or_default()
        );
        Ok(Reply::Disposal(AnswerDisposalTransferResponse { disposal_transfer: Some(d), message }))
    }

    async fn answer_disposal(
        &self,
        conn: &mut AnyConnection,
        case: &str,
        id: &str,
        approve: bool,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let d = self.disposal_row(conn, id, now).await?;
        if d.from_case != case {
            return Err(LedgerError::Denied(format!(
                "disposal-transfer {id} is addressed to {}, the case holding the first seizure",
                d.from_case
            )));
        }
        if d.state != DisposalTransferState::Requested as i32 {
            return Err(LedgerError::Refused(format!("disposal-transfer {id} has already been answered")));
        }
        let key = d
            .asset
            .as_ref()
            .map(|a| asset_key(AssetKind::try_from(a.kind).unwrap_or_default(), &a.asset_id))
            .unwrap_or_default();
        let mut l = self.load_one(conn, &key, true).await?;
        let before = l.clone();
        let mut changes = l.settle(now, &self.terms);
        let message = if approve {
            if l.first().map(|s| s.case_number.as_str()) != Some(case) {
                return Err(LedgerError::Refused(format!("{case} no longer holds the first seizure on {key}")));
            }
            let to = CaseNumber::parse(&d.to_case).map_err(LedgerError::Invalid)?;
            changes.extend(l.change_holder(
                case,
                &to.court_code,
                &d.to_case,
                now,
                "disposal transfer to a priority creditor (R14)",
            ));
            format!("approved: the first seizure on {key} is now held by {}, keeping its rank (R14)", d.to_case)
        } else {
            format!("refused: {case} keeps disposal of {key}")
        };
        sqlx::query("UPDATE disposal_transfers SET state = $1, answered_at = $2 WHERE id = $3")
            .bind(if approve { "approved" } else { "refused" })
            .bind(micros(now))
            .bind(id)
            .execute(&mut *conn)
            .await?;
        self.save(conn, &l, &before).await?;
        self.record(conn, &[(&l, changes, vec![])]).await?;
        let d = self.disposal_row(conn, id, now).await?;
        Ok(Reply::Disposal(AnswerDisposalTransferResponse { disposal_transfer: Some(d), message }))
    }

    async fn delivered(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        result: &Result<Ack, String>,
        retry_at: i64,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let ack = match result {
            Err(error) => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, lease_until = 0, last_error = $2 WHERE id = $3",
                )
                .bind(retry_at)
                .bind(error)
                .bind(id)
                .execute(&mut *conn)
                .await?;
                return Ok(Reply::Done);
            }
            Ok(ack) => ack,
        };
        let row = sqlx::query(
            "SELECT asset_key, seizure_id, kind, registry FROM outbox WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(Reply::Done) };
        let (key, seizure_id, kind, registry): (String, String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
        sqlx::query("UPDATE outbox SET delivered_at = $1, lease_until = 0, attempts = attempts + 1 WHERE id = $2")
            .bind(wall_micros())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        // A later renewal order supersedes the dates this answer carries.
        let superseded: i64 =
            sqlx::query("SELECT COUNT(*) FROM outbox WHERE seizure_id = $1 AND id > $2 AND kind = 'renew'")
                .bind(&seizure_id)
                .bind(id)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
        let mut l = self.load_one(conn, &key, true).await?;
        let before = l.clone();
        if let Some(s) = l.seizures.iter_mut().find(|s| s.id == seizure_id) {
            if s.registry_ref.is_none() && !ack.reference.is_empty() {
                s.registry_ref = Some(ack.reference.clone());
            }
            // The registry's calendar is authoritative for a term it has started (R6).
            if s.state.is_live() && s.start.is_some() && superseded == 0 {
                s.start = ack.start.or(s.start);
                s.end = ack.end.or(s.end);
            }
        }
        let message = format!(
            "{registry} acknowledged the {kind} order, reference {}{}",
            ack.reference,
            ack.end.map(|e| format!(", until {}", rules::day(e))).unwrap_or_default()
        );
        self.save(conn, &l, &before).await?;
        self.record_delivery(conn, &l, &seizure_id, now, &message).await?;
        Ok(Reply::Done)
    }

    async fn record_delivery(
        &self,
        conn: &mut AnyConnection,
        l: &Ledger,
        seizure_id: &str,
        at: Time,
        message: &str,
    ) -> Result<(), LedgerError> {
        let last: i64 = sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let (court, case) = l
            .seizures
            .iter()
            .find(|s| s.id == seizure_id)
            .map(|s| (s.court.clone(), s.case_number.clone()))
            .unwrap_or_default();
        let key = asset_key(l.asset.kind, &l.asset.asset_id);
        insert_event(conn, last, micros(at), "order_delivered", seizure_id, &key, &court, &case, message).await
    }

    // ---- transfers as the API shows them ----

    async fn transfer_row(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        now: Time,
    ) -> Result<proto::Transfer, LedgerError> {
        let row = sqlx::query(
            "SELECT transfer_id, from_case, from_court, to_court, to_case, decision_reference, decided_at, handed_over_at, \
             filed_at, seizure_count FROM transfers WHERE transfer_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("no transfer {id}")))?;
        transfer_proto(&row, now)
    }

    async fn disposal_row(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        now: Time,
    ) -> Result<proto::DisposalTransfer, LedgerError> {
        let row = sqlx::query(
            "SELECT d.id, d.asset_key, d.from_case, d.to_case, d.requested_at, d.answered_at, d.state, a.kind, a.asset_id, a.registry \
             FROM disposal_transfers d JOIN assets a ON a.asset_key = d.asset_key WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("no disposal-transfer request {id}")))?;
        disposal_proto(&row, now)
    }

    // ---- reads ----

    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, LedgerError> {
        Ok(self.pool.acquire().await?)
    }

    /// The ledgers of `keys` as of now (lapses applied in memory, R6).
    pub async fn ledgers(&self, keys: &[String]) -> Result<Vec<Ledger>, LedgerError> {
        let now = self.clock.now();
        let mut conn = self.reader().await?;
        let mut ledgers = self.load(&mut conn, keys, false).await?;
        for l in &mut ledgers {
            l.settle(now, &self.terms);
        }
        Ok(ledgers)
    }

    /// Every seizure of a case as of now, by asset then rank.
    pub async fn case_seizures(&self, case: &str) -> Result<Vec<proto::Seizure>, LedgerError> {
        let keys =
            self.keys("SELECT DISTINCT asset_key FROM seizures WHERE case_number = $1", case.to_string()).await?;
        let ledgers = self.ledgers(&keys).await?;
        Ok(ledgers
            .iter()
            .flat_map(|l| l.seizures.iter().filter(|s| s.case_number == case).map(move |s| seizure_proto(l, s)))
            .collect())
    }

    /// Effective seizures ending within `days`, soonest first; optionally one court's.
    pub async fn lapsing(&self, days: u32, court: &str) -> Result<Vec<proto::Seizure>, LedgerError> {
        let now = self.clock.now();
        let horizon = now + chrono::Duration::days(i64::from(days));
        let keys = self
            .keys(
                &format!("SELECT DISTINCT asset_key FROM seizures WHERE state IN {LIVE} AND end_at < $1"),
                micros(horizon),
            )
            .await?;
        let ledgers = self.ledgers(&keys).await?;
        let mut out: Vec<(Time, proto::Seizure)> = ledgers
            .iter()
            .flat_map(|l| {
                l.queue()
                    .filter(|(_, s)| s.end.is_some_and(|e| e < horizon) && (court.is_empty() || s.court == court))
                    .map(move |(_, s)| (s.end.unwrap_or(now), seizure_proto(l, s)))
            })
            .collect();
        out.sort_by_key(|(end, _)| *end);
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    async fn keys<T>(&self, sql: &str, arg: T) -> Result<Vec<String>, LedgerError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
    {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(sql).bind(arg).fetch_all(&mut *conn).await?;
        rows.iter().map(|r| r.try_get(0).map_err(LedgerError::from)).collect()
    }

    /// Case transfers and disposal transfers, newest first.
    pub async fn transfers(
        &self,
        overdue_only: bool,
    ) -> Result<(Vec<proto::Transfer>, Vec<proto::DisposalTransfer>), LedgerError> {
        let now = self.clock.now();
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT transfer_id, from_case, from_court, to_court, to_case, decision_reference, decided_at, handed_over_at, \
             filed_at, seizure_count FROM transfers ORDER BY handed_over_at DESC",
        )
        .fetch_all(&mut *conn)
        .await?;
        let transfers = rows.iter().map(|r| transfer_proto(r, now)).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT d.id, d.asset_key, d.from_case, d.to_case, d.requested_at, d.answered_at, d.state, a.kind, a.asset_id, a.registry \
             FROM disposal_transfers d JOIN assets a ON a.asset_key = d.asset_key ORDER BY d.requested_at DESC",
        )
        .fetch_all(&mut *conn)
        .await?;
        let disposals = rows.iter().map(|r| disposal_proto(r, now)).collect::<Result<Vec<_>, _>>()?;
        Ok(if overdue_only {
            (
                transfers.into_iter().filter(|t| t.filing_overdue || t.handover_late).collect(),
                disposals.into_iter().filter(|d| d.overdue).collect(),
            )
        } else {
            (transfers, disposals)
        })
    }

    /// Events after `seq`, in order, at most `limit`.
    pub async fn events_after(&self, seq: i64, limit: i64) -> Result<Vec<WatchEventsResponse>, LedgerError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT e.seq, e.at, e.kind, e.seizure_id, e.court, e.case_number, e.message, a.kind, a.asset_id, a.registry \
             FROM events e JOIN assets a ON a.asset_key = e.asset_key WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WatchEventsResponse {
                    sequence: r.try_get(0)?,
                    at: Some(ts(time(r.try_get(1)?))),
                    kind: r.try_get(2)?,
                    seizure_id: r.try_get(3)?,
                    court_code: r.try_get(4)?,
                    case_number: r.try_get(5)?,
                    message: r.try_get(6)?,
                    asset: Some(AssetRef {
                        kind: kind_of(r.try_get(7)?) as i32,
                        asset_id: r.try_get(8)?,
                        registry: r.try_get(9)?,
                    }),
                })
            })
            .collect()
    }

    /// Assets with an effective seizure whose term has ended, for the sweeper.
    pub async fn due_lapses(&self) -> Result<Vec<String>, LedgerError> {
        let now = micros(self.clock.now());
        self.keys(&format!("SELECT DISTINCT asset_key FROM seizures WHERE state IN {LIVE} AND end_at <= $1"), now).await
    }

    /// Leases the next deliverable order: the oldest undelivered one of an
    /// asset none of whose earlier orders is still undelivered (so a registry
    /// sees an asset's orders in ledger order, R1).
    pub async fn claim_order(&self, lease: Duration) -> Result<Option<PendingOrder>, LedgerError> {
        let now = wall_micros();
        let until = now + i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        let mut conn = self.reader().await?;
        let claimed = sqlx::query(
            "UPDATE outbox SET lease_until = $1 WHERE id = (\
                SELECT o.id FROM outbox o WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $2 AND o.lease_until < $2 \
                AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.asset_key = o.asset_key AND p.id < o.id AND p.delivered_at IS NULL) \
                ORDER BY o.id LIMIT 1) \
             AND lease_until < $2 AND delivered_at IS NULL RETURNING id",
        )
        .bind(until)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = claimed else { return Ok(None) };
        let id: i64 = row.try_get(0)?;
        let row = sqlx::query(
            "SELECT o.id, o.kind, o.registry, o.seizure_id, a.kind, a.asset_id, o.amount, o.end_at, o.court, o.case_number, \
             s.registry_ref, o.attempts FROM outbox o JOIN assets a ON a.asset_key = o.asset_key \
             JOIN seizures s ON s.seizure_id = o.seizure_id WHERE o.id = $1",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(Some(PendingOrder {
            id: row.try_get(0)?,
            kind: row.try_get(1)?,
            registry: row.try_get(2)?,
            seizure_id: row.try_get(3)?,
            asset_kind: kind_of(row.try_get(4)?),
            asset_id: row.try_get(5)?,
            amount: row.try_get(6)?,
            end: row.try_get::<Option<i64>, _>(7)?.map(time),
            court: row.try_get(8)?,
            case_number: row.try_get(9)?,
            registry_ref: row.try_get(10)?,
            attempts: row.try_get(11)?,
        }))
    }

    /// Checks the ledger's invariants on the live database; returns every violation.
    pub async fn verify(&self) -> Result<Vec<String>, LedgerError> {
        let mut out = Vec::new();
        let mut conn = self.reader().await?;
        let keys: Vec<String> = sqlx::query("SELECT asset_key FROM assets ORDER BY asset_key")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        drop(conn);
        for chunk in keys.chunks(200) {
            let mut conn = self.reader().await?;
            let stored = self.load(&mut conn, chunk, false).await?;
            for mut l in stored {
                out.extend(l.violations().into_iter().map(|v| format!("stored {v}")));
                l.settle(self.clock.now(), &self.terms);
                out.extend(l.violations().into_iter().map(|v| format!("as of now {v}")));
            }
        }
        let mut conn = self.reader().await?;
        let (count, max): (i64, Option<i64>) = {
            let row = sqlx::query("SELECT COUNT(*), MAX(seq) FROM events").fetch_one(&mut *conn).await?;
            (row.try_get(0)?, row.try_get(1)?)
        };
        let orders: i64 = sqlx::query("SELECT COUNT(*) FROM outbox").fetch_one(&mut *conn).await?.try_get(0)?;
        let counter: i64 =
            sqlx::query("SELECT value FROM counters WHERE name = 'seq'").fetch_one(&mut *conn).await?.try_get(0)?;
        if count + orders != counter || max.unwrap_or(0) > counter {
            out.push(format!(
                "event and order numbers have gaps: {count} events and {orders} orders, counter at {counter}"
            ));
        }
        let orphans: i64 = sqlx::query(
            "SELECT COUNT(*) FROM seizures s WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seizure_id = s.seizure_id AND o.kind = 'seize')",
        )
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        if orphans > 0 {
            out.push(format!("{orphans} seizure(s) without a seize order for their registry"));
        }
        Ok(out)
    }
}

fn kind_of(stored: i64) -> AssetKind {
    i32::try_from(stored).ok().and_then(|k| AssetKind::try_from(k).ok()).unwrap_or_default()
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

fn retryable(e: &sqlx::Error) -> bool {
    // Unique violation (a racing replica stored the same request), serialization failure, deadlock.
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| matches!(c.as_ref(), "23505" | "40001" | "40P01"))
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    conn: &mut AnyConnection,
    seq: i64,
    at: i64,
    kind: &str,
    seizure_id: &str,
    key: &str,
    court: &str,
    case: &str,
    message: &str,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO events (seq, at, kind, seizure_id, asset_key, court, case_number, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(kind)
    .bind(seizure_id)
    .bind(key)
    .bind(court)
    .bind(case)
    .bind(message)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn seizure(row: &AnyRow) -> Result<Seizure, LedgerError> {
    let state: String = row.try_get(7)?;
    Ok(Seizure {
        id: row.try_get(1)?,
        seq: row.try_get(2)?,
        court: row.try_get(3)?,
        case_number: row.try_get(4)?,
        requested: row.try_get(5)?,
        effective: row.try_get(6)?,
        state: State::parse(&state).ok_or_else(|| LedgerError::Invalid(format!("unknown stored state {state}")))?,
        placed_at: time(row.try_get(8)?),
        start: row.try_get::<Option<i64>, _>(9)?.map(time),
        end: row.try_get::<Option<i64>, _>(10)?.map(time),
        ended_at: row.try_get::<Option<i64>, _>(11)?.map(time),
        registry_ref: row.try_get(12)?,
        renewals: row.try_get(13)?,
    })
}

fn transfer_proto(row: &AnyRow, now: Time) -> Result<proto::Transfer, LedgerError> {
    let decided = time(row.try_get(6)?);
    let handed = time(row.try_get(7)?);
    let filed: Option<i64> = row.try_get(8)?;
    let filing_due = handed + chrono::Duration::days(7);
    Ok(proto::Transfer {
        transfer_id: row.try_get(0)?,
        from_case: row.try_get(1)?,
        from_court: row.try_get(2)?,
        to_court: row.try_get(3)?,
        to_case: row.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
        decision_reference: row.try_get(5)?,
        decided_at: Some(ts(decided)),
        handed_over_at: Some(ts(handed)),
        handover_late: handed > decided + chrono::Duration::days(7),
        filing_due: Some(ts(filing_due)),
        filed_at: filed.map(|f| ts(time(f))),
        filing_overdue: filed.is_none() && now > filing_due,
        state: if filed.is_some() { TransferState::Filed } else { TransferState::HandedOver } as i32,
        seizure_count: u32::try_from(row.try_get::<i64, _>(9)?).unwrap_or(0),
    })
}

fn disposal_proto(row: &AnyRow, now: Time) -> Result<proto::DisposalTransfer, LedgerError> {
    let requested = time(row.try_get(4)?);
    let due = requested + chrono::Duration::days(15);
    let state: String = row.try_get(6)?;
    let state = match state.as_str() {
        "approved" => DisposalTransferState::Approved,
        "refused" => DisposalTransferState::Refused,
        _ => DisposalTransferState::Requested,
    };
    Ok(proto::DisposalTransfer {
        disposal_transfer_id: row.try_get(0)?,
        asset: Some(AssetRef {
            kind: kind_of(row.try_get(7)?) as i32,
            asset_id: row.try_get(8)?,
            registry: row.try_get(9)?,
        }),
        from_case: row.try_get(2)?,
        to_case: row.try_get(3)?,
        requested_at: Some(ts(requested)),
        answer_due: Some(ts(due)),
        answered_at: row.try_get::<Option<i64>, _>(5)?.map(|t| ts(time(t))),
        overdue: state == DisposalTransferState::Requested && now > due,
        state: state as i32,
    })
}

fn state_proto(s: State) -> proto::SeizureState {
    match s {
        State::Waiting => proto::SeizureState::Waiting,
        State::Effective => proto::SeizureState::Effective,
        State::PartlyEffective => proto::SeizureState::PartlyEffective,
        State::Released => proto::SeizureState::Released,
        State::Lapsed => proto::SeizureState::Lapsed,
        State::Disposed => proto::SeizureState::Disposed,
        State::Satisfied => proto::SeizureState::Satisfied,
    }
}

fn asset_ref(l: &Ledger) -> AssetRef {
    AssetRef { kind: l.asset.kind as i32, asset_id: l.asset.asset_id.clone(), registry: l.asset.registry.clone() }
}

/// A seizure as the API shows it.
pub fn seizure_proto(l: &Ledger, s: &Seizure) -> proto::Seizure {
    let rank = l.queue().find(|(_, q)| q.id == s.id).map_or(0, |(r, _)| r);
    proto::Seizure {
        seizure_id: s.id.clone(),
        rank: u32::try_from(rank).unwrap_or(u32::MAX),
        court_code: s.court.clone(),
        case_number: s.case_number.clone(),
        state: state_proto(s.state) as i32,
        requested: s.requested,
        effective: s.effective,
        placed_at: Some(ts(s.placed_at)),
        start_time: s.start.map(ts),
        end_time: s.end.map(ts),
        ended_at: s.ended_at.map(ts),
        registry_reference: s.registry_ref.clone().unwrap_or_default(),
        renewals: u32::try_from(s.renewals).unwrap_or(0),
        asset: Some(asset_ref(l)),
    }
}

/// An asset's live queue as the API shows it.
pub fn queue_proto(l: &Ledger) -> AssetQueue {
    AssetQueue {
        asset: Some(asset_ref(l)),
        unit: if l.asset.kind == AssetKind::Securities { "units".into() } else { l.asset.unit.clone() },
        total: l.asset.total,
        sale_started: l.asset.sale_started,
        disposed: l.asset.disposed,
        seizures: l.queue().map(|(_, s)| seizure_proto(l, s)).collect(),
    }
}

fn control_result(l: &Ledger, seizure_id: &str, message: String) -> ControlResult {
    ControlResult {
        message,
        seizure: l.seizures.iter().find(|s| s.id == seizure_id).map(|s| seizure_proto(l, s)),
        queue: Some(queue_proto(l)),
    }
}
