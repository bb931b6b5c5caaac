//! The tools around the service: the command-line clients, the load
//! generator, the registry partners' conformance suite, the mock registries,
//! the development stack and the ledger benchmark. They use the library's
//! public API only, and nothing below imports them.

pub mod bankruptcy_bench;
pub mod call;
pub mod cli;
pub mod client;
pub mod commands;
pub mod conformance;
pub mod debtor_cli;
pub mod dev;
pub mod dispatch;
pub mod distribution_cli;
pub mod jobs_bench;
pub mod ledger_bench;
pub mod loadgen;
pub mod mock;
pub mod outbox_bench;
pub mod research_bench;
pub mod searches;

use crate::{
    gateway::{audit::AuditError, server::StartError},
    ledger::LedgerError,
    ops::{config::Problems, net::BindError, pki::PkiError},
    registry::client::SetupError,
    tools::client::ClientError,
};

/// Why a command failed; `main` prints it and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The gateway or a mock could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The configuration has problems (all listed).
    #[error(transparent)]
    Config(#[from] Problems),
    /// A socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// `assetgw dev` runs mocks only at literal loopback addresses.
    #[error("registry `{registry}`: a mock needs an endpoint with an IP address and port, not `{endpoint}`")]
    MockAddress {
        /// The registry's name.
        registry: String,
        /// Its endpoint.
        endpoint: String,
    },
    /// The demo-debtor fixture does not parse.
    #[error("demo debtor fixture: {0}")]
    Fixture(#[from] toml::de::Error),
    /// The ledger could not be opened or read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The audit trail could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A certificate could not be made or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The conformance suite could not set out.
    #[error(transparent)]
    Conformance(#[from] crate::tools::conformance::ConnectError),
    /// A call to the gateway failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A registry client could not be made.
    #[error(transparent)]
    Registry(#[from] SetupError),
    /// The metrics could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Output could not be written as JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A database read failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The command was used wrongly.
    #[error("{0}")]
    Usage(String),
    /// A check ran and found what it reports (violations, a broken chain, a non-conforming registry).
    #[error("{0}")]
    Failed(String),
}
