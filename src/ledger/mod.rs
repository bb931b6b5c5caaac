//! The seizure ledger: which court holds the first seizure on every asset and
//! who waits behind it, kept right through releases, lapses, renewals,
//! deductions, disposals and transfers (docs/RULES.md, R1–R15); the debtor as
//! a whole (R23–R27, R30); and what rank is for: the distribution of proceeds
//! and the cases' funds (R28–R29).
//!
//! - [`rules`]: every rule that decides something, as pure functions.
//! - [`command`]: the steps the ledger takes and what it answers.
//! - [`store`]: durable storage on SQLite (group commit) or PostgreSQL, one
//!   transaction per step with its events and outbox orders.
//! - [`views`]: the ledger as the court API shows it.
//! - [`model`]: the ledger in memory, as searches read it.
//! - [`sweep`]: writes lapses as they fall due, pays out plans whose periods ran.
//! - [`health`]: what is overdue and whether the invariants hold, as metrics.
//!
//! It knows nothing of registries' transport, of authentication or of the
//! court services; it may use [`crate::ops`] and [`crate::core`].

pub mod command;
pub mod health;
pub mod model;
pub mod rules;
pub mod store;
pub mod sweep;
pub mod views;

use std::sync::Arc;

pub use crate::core::clock::Time;
use crate::core::{
    error::{Error, Violation},
    proto::AssetKind,
};

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

/// Why a ledger step failed, with its facts; worded for the court where it is answered ([`answer`]).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A rule refused it.
    #[error(transparent)]
    Rule(#[from] rules::RuleError),
    /// No seizure with this id.
    #[error("no seizure {0}")]
    UnknownSeizure(String),
    /// No seizure was ever placed on this asset.
    #[error("no seizure has ever been placed on asset {0}")]
    NeverSeized(String),
    /// No case transfer with this id.
    #[error("no transfer {0}")]
    UnknownTransfer(String),
    /// A listed case cannot be part of the series (R23).
    #[error(
        "{0} is not an active enforcement case against the debtor held by another court than the receiving one (R23)"
    )]
    NotInSeries(String),
    /// The calling court holds no case against the debtor that lets it read the picture (R27).
    #[error(
        "no active case {0} against this debtor is registered; a court reads the picture of a debtor it holds an active or bankruptcy case against (R27)"
    )]
    NoCaseAgainst(String),
    /// No disposal-transfer request with this id.
    #[error("no disposal-transfer request {0}")]
    UnknownDisposalTransfer(String),
    /// No proceeds with this id that the calling case holds, of this debtor.
    #[error("no proceeds {0} of this debtor held by the case")]
    UnknownProceeds(String),
    /// No plan with this id that the calling court has a part in.
    #[error("no distribution {0} that the calling court drafted or has a creditor's line in")]
    UnknownDistribution(String),
    /// The case holds no seizure on the asset a secured claim is recorded on.
    #[error("{case} holds no seizure on asset {asset}: a court records a secured claim on an asset its case seized")]
    NotSeizedBy {
        /// The asset.
        asset: String,
        /// The case.
        case: String,
    },
    /// A control step without its request id.
    #[error("request_id is required: a client-chosen id that makes retries safe")]
    NoRequestId,
    /// A request id the court already used for another request of the method.
    #[error(
        "request_id {id} was already used by this court for a different {step} request; \
         send a new request_id for a new request"
    )]
    RequestReused {
        /// The request id.
        id: String,
        /// The step's stored name.
        step: &'static str,
    },
    /// A request id the court already used for another search.
    #[error("request_id {0} already submitted a different search; send a new request_id for a new search")]
    SearchReused(String),
    /// A step wrote more events than a sequence number counts.
    #[error("too many events in one step")]
    TooManyEvents,
    /// The database failed; nothing was acknowledged.
    #[error("ledger database: {0}")]
    Db(#[from] sqlx::Error),
    /// The commit of the batch this step shared failed; nothing of the batch was acknowledged.
    #[error("ledger commit: {0}")]
    Batch(Arc<LedgerError>),
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

/// How the court is answered for a ledger step that failed: which kind of
/// answer (the code follows from it, [`Error::code`]) and its words.
fn answer(e: &LedgerError) -> Error {
    use rules::RuleError;
    let invalid = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(vec![Violation { field: "request".into(), description: e.to_string() }])
    };
    match e {
        LedgerError::Rule(RuleError::UnknownSeizure(id)) | LedgerError::UnknownSeizure(id) => {
            Error::NotFound(format!("no seizure {id}"))
        }
        LedgerError::NeverSeized(_)
        | LedgerError::UnknownTransfer(_)
        | LedgerError::UnknownDisposalTransfer(_)
        | LedgerError::UnknownProceeds(_)
        | LedgerError::UnknownDistribution(_)
        | LedgerError::NotSeizedBy { .. }
        | LedgerError::NotInSeries(_)
        | LedgerError::NoCaseAgainst(_) => Error::NotFound(e.to_string()),
        LedgerError::Rule(RuleError::Denied(denial)) => Error::PermissionDenied(denial.to_string()),
        LedgerError::Rule(RuleError::Refused(refusal)) => Error::FailedPrecondition(refusal.to_string()),
        LedgerError::Rule(RuleError::Invalid(why)) => invalid(why),
        LedgerError::NoRequestId | LedgerError::RequestReused { .. } | LedgerError::SearchReused(_) => invalid(e),
        LedgerError::Db(db) if broke_invariant(db) => {
            tracing::error!(error = %db, "the database refused a step that breaks a ledger invariant");
            Error::Internal(
                "the ledger refused a step that would break one of its invariants; nothing was recorded. \
                 This is a defect of the gateway: report it with the request_id"
                    .into(),
            )
        }
        LedgerError::Db(db) => {
            tracing::error!(error = %db, "ledger database error");
            Error::Unavailable(
                "the seizure ledger is unavailable; nothing was recorded, retry with the same request_id".into(),
            )
        }
        LedgerError::Batch(cause) => answer(cause),
        LedgerError::TooManyEvents | LedgerError::Migrate(_) => Error::Internal(e.to_string()),
        LedgerError::Corrupt(what) => {
            tracing::error!(%what, "ledger data unreadable; check the database");
            Error::Internal(format!("ledger data unreadable: {what}"))
        }
        LedgerError::Closed => {
            Error::Unavailable("the gateway is shutting down; retry with the same request_id".into())
        }
    }
}

impl From<rules::Refusal> for LedgerError {
    fn from(refusal: rules::Refusal) -> Self {
        LedgerError::Rule(refusal.into())
    }
}

impl From<rules::Invalid> for LedgerError {
    fn from(invalid: rules::Invalid) -> Self {
        LedgerError::Rule(invalid.into())
    }
}

impl From<LedgerError> for Error {
    fn from(e: LedgerError) -> Self {
        answer(&e)
    }
}
