//! The seizure ledger: which court holds the first seizure on every asset and
//! who waits behind it, kept right through releases, lapses, renewals,
//! deductions, disposals and transfers (DOMAIN R1–R14).
//!
//! - [`rules`]: the rules as pure functions over one asset's seizures.
//! - [`store`]: durable storage on SQLite (group commit) or PostgreSQL, one
//!   transaction per step with its events and outbox orders.
//! - [`outbox`]: delivers control orders to registries until acknowledged.
//! - [`service`]: the court-facing gRPC service.

pub mod bench;
pub mod outbox;
pub mod rules;
pub mod service;
pub mod store;

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

pub use rules::Time;

/// Where the ledger's "now" comes from; tests jump years ahead with [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Time;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: Time) -> Self {
        Self(AtomicI64::new(t.timestamp_micros()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_microseconds().unwrap_or(0), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
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
    /// The writer has stopped.
    #[error("the ledger is shutting down")]
    Closed,
}

impl From<LedgerError> for crate::error::Error {
    fn from(e: LedgerError) -> Self {
        use crate::error::{Error, Violation};
        use rules::RuleError;
        match e {
            LedgerError::Rule(RuleError::UnknownSeizure(id)) => Error::NotFound(format!("no seizure {id}")),
            LedgerError::Rule(RuleError::NotHolder(m)) | LedgerError::Denied(m) => Error::PermissionDenied(m),
            LedgerError::Rule(RuleError::Refused(m)) | LedgerError::Refused(m) => Error::FailedPrecondition(m),
            LedgerError::Rule(RuleError::Invalid(m)) | LedgerError::Invalid(m) => {
                Error::InvalidArgument(vec![Violation { field: "request".into(), description: m }])
            }
            LedgerError::NotFound(m) => Error::NotFound(m),
            LedgerError::Db(e) => {
                tracing::error!(error = %e, "ledger database error");
                Error::Unavailable(
                    "the seizure ledger is unavailable; nothing was recorded, retry with the same request_id".into(),
                )
            }
            LedgerError::Migrate(e) => Error::Internal(e.to_string()),
            LedgerError::Closed => {
                Error::Unavailable("the gateway is shutting down; retry with the same request_id".into())
            }
        }
    }
}
