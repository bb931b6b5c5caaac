//! The seizure ledger: which court holds the first seizure on every asset and
//! who waits behind it, kept right through releases, lapses, renewals,
//! deductions, disposals and transfers (docs/RULES.md, R1–R15).
//!
//! - [`rules`]: every rule that decides something, as pure functions.
//! - [`command`]: the steps the ledger takes and what it answers.
//! - [`store`]: durable storage on SQLite (group commit) or PostgreSQL, one
//!   transaction per step with its events and outbox orders.
//! - [`views`]: the ledger as the court API shows it.
//! - [`model`]: the ledger in memory, as searches read it.
//! - [`sweep`]: writes lapses as they fall due.
//!
//! It knows nothing of registries' transport, of authentication or of the
//! court services; it may use [`crate::ops`] and [`crate::core`].

pub mod command;
pub mod model;
pub mod rules;
pub mod store;
pub mod sweep;
pub mod views;

pub use crate::core::clock::Time;
use crate::core::proto::AssetKind;

/// `<kind>:<asset id>`, the ledger's key of an asset.
pub fn asset_key(kind: AssetKind, asset_id: &str) -> String {
    // Built by hand: every asset of every search result is keyed, and `format!` costs several times this.
    let kind = kind.short_name();
    let mut key = String::with_capacity(kind.len() + 1 + asset_id.len());
    key.push_str(kind);
    key.push(':');
    key.push_str(asset_id);
    key
}

/// Why a ledger step failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A rule refused it.
    #[error(transparent)]
    Rule(#[from] rules::RuleError),
    /// An asset, seizure or transfer that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not act on it.
    #[error("{0}")]
    Denied(String),
    /// A rule outside one asset forbids it now (R4 claim, R11, R12, R14).
    #[error("{0}")]
    Refused(String),
    /// The request makes no sense.
    #[error("{0}")]
    Invalid(String),
    /// The database failed; nothing was acknowledged.
    #[error("ledger database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed at start-up.
    #[error("ledger migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data that cannot be decoded: a bug or a damaged database.
    #[error("ledger data unreadable: {0}")]
    Corrupt(String),
    /// The writer has stopped.
    #[error("the ledger is shutting down")]
    Closed,
}

/// The database refused a write that breaks an invariant it enforces: the
/// schema's `invariant_*` checks answer PostgreSQL's `check_violation` (its
/// triggers raise that code too) and SQLite's check or trigger constraint.
fn broke_invariant(e: &sqlx::Error) -> bool {
    /// SQLite's extended result code of a `RAISE(ABORT, …)` in a trigger.
    const SQLITE_CONSTRAINT_TRIGGER: &str = "1811";
    e.as_database_error().is_some_and(|d| {
        d.kind() == sqlx::error::ErrorKind::CheckViolation || d.code().as_deref() == Some(SQLITE_CONSTRAINT_TRIGGER)
    })
}

impl From<LedgerError> for crate::core::error::Error {
    fn from(e: LedgerError) -> Self {
        use crate::core::error::{Error, Violation};
        use rules::RuleError;
        match e {
            LedgerError::Rule(RuleError::UnknownSeizure(id)) => Error::NotFound(format!("no seizure {id}")),
            LedgerError::Rule(RuleError::NotHolder(m)) | LedgerError::Denied(m) => Error::PermissionDenied(m),
            LedgerError::Rule(RuleError::Refused(m)) | LedgerError::Refused(m) => Error::FailedPrecondition(m),
            LedgerError::Rule(RuleError::Invalid(m)) | LedgerError::Invalid(m) => {
                Error::InvalidArgument(vec![Violation { field: "request".into(), description: m }])
            }
            LedgerError::NotFound(m) => Error::NotFound(m),
            LedgerError::Db(e) if broke_invariant(&e) => {
                tracing::error!(error = %e, "the database refused a step that breaks a ledger invariant");
                Error::Internal(
                    "the ledger refused a step that would break one of its invariants; nothing was recorded. \
                     This is a defect of the gateway: report it with the request_id"
                        .into(),
                )
            }
            LedgerError::Db(e) => {
                tracing::error!(error = %e, "ledger database error");
                Error::Unavailable(
                    "the seizure ledger is unavailable; nothing was recorded, retry with the same request_id".into(),
                )
            }
            LedgerError::Migrate(e) => Error::Internal(e.to_string()),
            LedgerError::Corrupt(what) => {
                tracing::error!(%what, "ledger data unreadable; check the database");
                Error::Internal(format!("ledger data unreadable: {what}"))
            }
            LedgerError::Closed => {
                Error::Unavailable("the gateway is shutting down; retry with the same request_id".into())
            }
        }
    }
}
