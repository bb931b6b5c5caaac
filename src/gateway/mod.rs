//! The gateway: the court-facing gRPC services and what stands around them —
//! identity and authorization, the audit trail, admission control, request
//! validation, the server, the outbox worker that delivers the ledger's
//! orders through the registry clients, and the search jobs that keep the
//! answers registries give later. The only wing that sees both the
//! [`crate::ledger`] and the [`crate::registry`] side; it may use everything
//! below it, nothing of [`crate::tools`].

pub mod acting;
pub mod admission;
pub mod audit;
pub mod auth;
pub mod call;
pub mod debtor;
pub mod distribution;
pub mod jobs;
pub mod limits;
pub mod outbox;
pub mod search;
pub mod seizure;
pub mod server;
pub mod spine;
pub mod validate;
