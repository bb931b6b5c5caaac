//! The audit trail (R16): every query and every control order, allowed or
//! denied, with who asked, for which case and debtor, and what came back.
//!
//! Records live in the ledger's database. Each gateway process appends to its
//! own chain; a record's seal is an HMAC (keyed with the audit key, so nobody
//! with only database access can forge one) over its content and the previous
//! record's seal. A change, deletion, insertion or reordering breaks the chain
//! and [`verify`] names the first bad record. A record is committed before the
//! reply it describes is sent; when it cannot be, the request fails.

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{AnyPool, Row, any::AnyRow};
use tokio::sync::{mpsc, oneshot};
use tonic::Code;

use crate::{
    core::{
        batch,
        clock::{SharedClock, Time},
        error::Error,
        identifiers::DebtorId,
        method::Method,
    },
    ledger::{
        command::{Command, Unaudited},
        store::{Backend, Store},
    },
};

mod read;
pub mod recorder;

pub use read::{Filter, export, time_text, verify};

/// The previous seal of a chain's first record.
const GENESIS: &str = "genesis";
/// Method name of the record a retention purge leaves behind.
const PURGE: &str = "AuditPurge";
/// Method name of the record of a SearchStream's outcome (the call itself is recorded when it is allowed).
pub const STREAM_RESULT: &str = "SearchStreamResult";

/// Why the audit trail failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The database refused a read or a write.
    #[error("audit database: {0}")]
    Db(#[from] Arc<sqlx::Error>),
    /// The writer task has stopped (the gateway is shutting down).
    #[error("the audit writer has stopped")]
    Stopped,
    /// The key file is missing, unreadable or malformed.
    #[error("audit key {path}: {why}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Db(Arc::new(e))
    }
}

/// A request that cannot be recorded is refused (R16); the cause is logged, never sent.
impl From<AuditError> for Error {
    fn from(e: AuditError) -> Self {
        tracing::error!(error = %e, "audit record not written; refusing the request");
        Error::Unavailable(
            "the audit trail could not record this request, so it was refused (R16); retry shortly".into(),
        )
    }
}

/// The secret that seals chains and keys debtor hashes, held as the HMAC
/// already keyed: every MAC starts from a copy of it, so the key's two blocks
/// are hashed once, not per record.
#[derive(Clone)]
pub struct Key(Arc<Hmac<Sha256>>);

impl Key {
    /// Reads the key file (64 hex characters), creating it with a random key if missing.
    pub fn load_or_create(path: &Path) -> Result<Key, AuditError> {
        let bad = |why: String| AuditError::Key { path: path.display().to_string(), why };
        if !path.exists() {
            create(path).map_err(|e| bad(e.to_string()))?;
            tracing::warn!(path = %path.display(), "created a new audit key; replicas sharing this database need the same file");
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|e| bad(format!("not hex: {e}")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad("must be 32 bytes (64 hex characters)".into()))?;
        Ok(Key::new(key))
    }

    fn new(key: [u8; 32]) -> Key {
        Key(Arc::new(Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC takes any key"))))
    }

    fn hmac(&self) -> Hmac<Sha256> {
        Hmac::clone(&self.0)
    }

    /// A secret for `purpose`, derived from this key: replicas sharing the key share it.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.hmac();
        mac.update(b"derive\n");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, domain: &str, parts: &[&str]) -> String {
        let mut mac = self.hmac();
        mac.update(domain.as_bytes());
        for p in parts {
            mac.update(b"\n");
            mac.update(p.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// The keyed hash under which a debtor's records can be found without storing the number.
    pub fn debtor(&self, id: &DebtorId) -> String {
        self.mac("debtor", &[id.as_str()])
    }
}

/// What one request did, as recorded.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The caller's court code ('' if it could not be authenticated).
    pub court: String,
    /// The acting officer.
    pub officer: String,
    /// The gRPC method.
    pub method: String,
    /// The case named.
    pub case_number: String,
    /// The debtors named.
    pub debtors: Vec<DebtorId>,
    /// Registries asked and their outcomes, or the order's target.
    pub detail: Value,
    /// The code answered.
    pub code: Option<Code>,
    /// The answer's message (never with a full identifier).
    pub message: String,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stored {
    /// The chain (gateway process).
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When (Unix µs).
    pub at: i64,
    /// Court code.
    pub court: String,
    /// Officer.
    pub officer: String,
    /// Method.
    pub method: String,
    /// Case number.
    pub case_number: String,
    /// Masked debtors, comma-separated.
    pub debtors: String,
    /// Keyed debtor hashes, comma-separated.
    pub debtor_keys: String,
    /// JSON detail.
    pub detail: String,
    /// gRPC code name.
    pub code: String,
    /// Message.
    pub message: String,
    /// Previous record's seal.
    pub prev: String,
    /// This record's seal.
    pub hash: String,
}

impl Stored {
    fn seal(&self, key: &Key) -> String {
        let (seq, at) = (self.seq.to_string(), self.at.to_string());
        key.mac(
            "record",
            &[
                &self.prev,
                &self.chain,
                &seq,
                &at,
                &self.court,
                &self.officer,
                &self.method,
                &self.case_number,
                &self.debtors,
                &self.debtor_keys,
                &self.detail,
                &self.code,
                &self.message,
            ],
        )
    }

    fn from_row(r: &AnyRow) -> Result<Stored, sqlx::Error> {
        Ok(Stored {
            chain: r.try_get(0)?,
            seq: r.try_get(1)?,
            at: r.try_get(2)?,
            court: r.try_get(3)?,
            officer: r.try_get(4)?,
            method: r.try_get(5)?,
            case_number: r.try_get(6)?,
            debtors: r.try_get(7)?,
            debtor_keys: r.try_get(8)?,
            detail: r.try_get(9)?,
            code: r.try_get(10)?,
            message: r.try_get(11)?,
            prev: r.try_get(12)?,
            hash: r.try_get(13)?,
        })
    }
}

const COLUMNS: &str =
    "chain, seq, at, court, officer, method, case_number, debtors, debtor_keys, detail, code, message, prev, hash";

/// A record waiting for the writer.
struct Pending {
    record: Record,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// Appends records to this process's chain.
#[derive(Clone)]
pub struct Trail {
    jobs: mpsc::Sender<Pending>,
    key: Key,
    pool: AnyPool,
    clock: SharedClock,
}

impl Trail {
    /// Starts this process's chain in the ledger's database.
    pub fn start(store: &Store, key: Key) -> Trail {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into());
        let chain = format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(append(store.pool().clone(), store.backend(), key.clone(), chain, store.clock(), rx));
        Trail { jobs, key, pool: store.pool().clone(), clock: store.clock() }
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Commits `record`; an error means it is not on record and the request must fail.
    pub async fn record(&self, record: Record) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.jobs.send(Pending { record, done }).await.map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }

    /// Searches this court made since `since`, on every replica.
    pub async fn searches_since(&self, court: &str, since: Time) -> Result<u64, AuditError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit WHERE court = $1 AND at >= $2 AND code = 'Ok' AND method IN ($3, $4, $5)",
        )
        .bind(court)
        .bind(since.timestamp_micros())
        .bind(Method::SEARCHES[0].name())
        .bind(Method::SEARCHES[1].name())
        .bind(Method::SEARCHES[2].name())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Counts one search of `court` on `day` (which began at `since`) against `quota` in the
    /// database: `false` when the quota is used. Exact across replicas (one conditional update of
    /// one row); the count starts from the trail's, so searches recorded before it are counted.
    pub async fn count_search(
        &self,
        court: &str,
        (day, since): (chrono::NaiveDate, Time),
        quota: u64,
    ) -> Result<bool, AuditError> {
        let recorded = i64::try_from(self.searches_since(court, since).await?).unwrap_or(i64::MAX);
        let day = day.to_string();
        sqlx::query(
            "INSERT INTO search_quota (court, day, used) VALUES ($1, $2, 0) ON CONFLICT (court, day) DO NOTHING",
        )
        .bind(court)
        .bind(&day)
        .execute(&self.pool)
        .await?;
        let counted = sqlx::query(
            "UPDATE search_quota SET used = (CASE WHEN used > $3 THEN used ELSE $3 END) + 1 \
             WHERE court = $1 AND day = $2 AND (CASE WHEN used > $3 THEN used ELSE $3 END) < $4",
        )
        .bind(court)
        .bind(&day)
        .bind(recorded)
        .bind(i64::try_from(quota).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(counted.rows_affected() == 1)
    }

    /// Purges records older than `before` (Unix µs) from every chain, leaving
    /// in this chain a sealed record of where each purged chain now starts.
    pub async fn purge(&self, before: i64) -> Result<usize, AuditError> {
        let old = sqlx::query("SELECT chain, MAX(seq) FROM audit WHERE at < $1 AND method <> $2 GROUP BY chain")
            .bind(before)
            .bind(PURGE)
            .fetch_all(&self.pool)
            .await?;
        let mut purged = 0;
        for row in old {
            let (chain, last): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
            let hash: String = sqlx::query_scalar("SELECT hash FROM audit WHERE chain = $1 AND seq = $2")
                .bind(&chain)
                .bind(last)
                .fetch_one(&self.pool)
                .await?;
            // The anchor is recorded before anything is deleted.
            self.record(Record {
                method: PURGE.into(),
                detail: json!({ "chain": chain, "from_seq": last + 1, "prev": hash }),
                code: Some(Code::Ok),
                message: format!("retention: records of chain {chain} up to {last} purged"),
                ..Record::default()
            })
            .await?;
            let done = sqlx::query("DELETE FROM audit WHERE chain = $1 AND seq <= $2")
                .bind(&chain)
                .bind(last)
                .execute(&self.pool)
                .await?;
            purged += usize::try_from(done.rows_affected()).unwrap_or(0);
        }
        Ok(purged)
    }
}

/// Writes a random key to `path` unless another process got there first:
/// the key is written aside and linked into place, so no reader sees half a key
/// and two gateways starting together end up with the same one.
fn create(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let aside = path.with_extension(format!("new-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&aside, hex::encode(rand::random::<[u8; 32]>()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o600))?;
    }
    let linked = std::fs::hard_link(&aside, path);
    std::fs::remove_file(&aside)?;
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Purges records past `retention` now and then, until `shutdown` completes.
pub async fn retain(trail: Trail, retention: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let before = trail.clock.micros().saturating_sub(i64::try_from(retention.as_micros()).unwrap_or(i64::MAX));
        match trail.purge(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "audit records past their retention purged"),
            Err(e) => tracing::warn!(error = %e, "audit purge failed; will retry"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// How long after its commit an unaudited step is taken as left behind by a
/// gateway that died (a live one writes its record within milliseconds).
const LEFT_BEHIND: Duration = Duration::from_secs(5);

/// Records every acknowledged control step whose gateway died before writing
/// its audit record, now and then, until `shutdown` completes (R16).
pub async fn recover(store: Store, trail: Trail, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let before = chrono::Duration::from_std(LEFT_BEHIND).ok().and_then(|d| store.now().checked_sub_signed(d));
        match store.unaudited(before.unwrap_or_default()).await {
            Ok(steps) => {
                for step in steps {
                    if let Err(e) = record_left_behind(&store, &trail, step).await {
                        tracing::warn!(error = %e, "a step left unaudited could not be recorded; will retry");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "unaudited steps unreadable; will retry"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(LEFT_BEHIND / 2) => {}
        }
    }
}

async fn record_left_behind(store: &Store, trail: &Trail, step: Unaudited) -> Result<(), Error> {
    let acknowledged = step.at.to_rfc3339();
    trail
        .record(Record {
            court: step.request.court.clone(),
            officer: step.request.officer.clone(),
            method: step.method.name().into(),
            case_number: step.case_number,
            debtors: Vec::new(),
            detail: json!({ "request_id": step.request.id, "recovered": true, "acknowledged_at": acknowledged }),
            code: Some(Code::Ok),
            message: format!("recorded after its gateway stopped: the ledger acknowledged this step at {acknowledged}"),
        })
        .await?;
    store.execute(Command::Audited { request: step.request, method: step.method }).await?;
    Ok(())
}

/// Rows per INSERT statement (14 parameters each, well under SQLite's limit
/// of 32,766). A batch of up to this many is one statement, atomic on its own:
/// no BEGIN and COMMIT, so one round trip to the database instead of three.
const INSERT_ROWS: usize = 64;

/// The writer: seals and commits queued records in batches, one transaction each.
async fn append(
    pool: AnyPool,
    backend: Backend,
    key: Key,
    chain: String,
    clock: SharedClock,
    mut jobs: mpsc::Receiver<Pending>,
) {
    let (mut seq, mut prev) = (0i64, GENESIS.to_string());
    while let Some(batch) = batch::next(&mut jobs).await {
        let (mut s, mut p) = (seq, prev.clone());
        let rows: Vec<Stored> = batch
            .iter()
            .map(|job| {
                s += 1;
                let r = &job.record;
                let mut row = Stored {
                    chain: chain.clone(),
                    seq: s,
                    at: clock.micros(),
                    court: r.court.clone(),
                    officer: r.officer.clone(),
                    method: r.method.clone(),
                    case_number: r.case_number.clone(),
                    debtors: r.debtors.iter().map(|d| d.masked().to_string()).collect::<Vec<_>>().join(","),
                    debtor_keys: r.debtors.iter().map(|d| key.debtor(d)).collect::<Vec<_>>().join(","),
                    detail: r.detail.to_string(),
                    code: format!("{:?}", r.code.unwrap_or(Code::Unknown)),
                    message: r.message.clone(),
                    prev: p.clone(),
                    hash: String::new(),
                };
                row.hash = row.seal(&key);
                p = row.hash.clone();
                row
            })
            .collect();
        let result = insert(&pool, backend, &rows).await;
        if result.is_ok() {
            (seq, prev) = (s, p);
        }
        for job in batch {
            let _ = job.done.send(result.clone().map_err(AuditError::Db));
        }
    }
}

async fn insert(pool: &AnyPool, backend: Backend, rows: &[Stored]) -> Result<(), Arc<sqlx::Error>> {
    let mut conn = pool.acquire().await?;
    if rows.len() <= INSERT_ROWS {
        let sql = insert_sql(backend, rows.len());
        bind(sqlx::query(&sql), rows).execute(&mut *conn).await?;
        return Ok(());
    }
    let begin = if backend == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
    sqlx::query(begin).execute(&mut *conn).await?;
    let mut result = Ok(());
    for chunk in rows.chunks(INSERT_ROWS) {
        let sql = insert_sql(backend, chunk.len());
        result = bind(sqlx::query(&sql), chunk).execute(&mut *conn).await.map(|_| ());
        if result.is_err() {
            break;
        }
    }
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::query(end).execute(&mut *conn).await;
    result?;
    ended?;
    Ok(())
}

/// One INSERT of `n` rows. SQLite gets anonymous `?` parameters: it looks a
/// numbered one up by a scan of every name, which costs quadratically in a
/// 900-parameter statement.
fn insert_sql(backend: Backend, n: usize) -> String {
    let row = |i: usize| match backend {
        Backend::Sqlite => format!("({})", ["?"; 14].join(", ")),
        Backend::Postgres => {
            format!("({})", (1..=14).map(|j| format!("${}", i * 14 + j)).collect::<Vec<_>>().join(", "))
        }
    };
    format!("INSERT INTO audit ({COLUMNS}) VALUES {}", (0..n).map(row).collect::<Vec<_>>().join(", "))
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    rows: &'q [Stored],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for r in rows {
        query = query
            .bind(&r.chain)
            .bind(r.seq)
            .bind(r.at)
            .bind(&r.court)
            .bind(&r.officer)
            .bind(&r.method)
            .bind(&r.case_number)
            .bind(&r.debtors)
            .bind(&r.debtor_keys)
            .bind(&r.detail)
            .bind(&r.code)
            .bind(&r.message)
            .bind(&r.prev)
            .bind(&r.hash);
    }
    query
}
