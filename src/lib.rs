//! # assetgw: the debtor asset-search federation gateway
//!
//! Courts enforcing judgments ask one gRPC service for a debtor's assets; the
//! gateway asks every registry of the network at once (banks, real estate,
//! IP, aviation, securities) and answers with one merged, de-duplicated list
//! that says where each asset was found and how each registry fared. Courts
//! then seize and freeze through it; a durable ledger keeps who holds the
//! first seizure on every asset and who waits behind it (docs/RULES.md).
//!
//! # Layout
//! Six wings, each a folder; a wing imports only from the wings below it
//! (`tests/it/wings.rs` fails the build otherwise):
//!
//! ```text
//! tools ─▶ gateway ─▶ ledger ──▶ ops ─▶ core
//!               └───▶ registry ─┘
//! ```
//!
//! A search, top-down:
//! - [`gateway::server`]: serves the court-facing services over mutual TLS until shutdown.
//! - [`gateway::auth`]: who calls (the court's certificate), whether it may (R15), rates and quotas.
//! - [`gateway::search`]: the search handler: validate, authorize, fan out, merge, annotate, respond.
//! - [`gateway::validate`]: every bad field of a request at once (R20–R22).
//! - [`registry::network`]: the registries (the directory, followed as its file changes) and their cache;
//!   fan-out, or one asset found for a control order.
//! - [`registry::fanout`]: one leg per (debtor, registry), yielded as each finishes.
//! - [`registry::cache`]: answers per (registry, debtor) with TTLs and single flight.
//! - [`registry::client`]: one registry's client and the contract check of its answers;
//!   [`registry::call`] what a call asks and how it can fail; [`registry::pool`] its connection,
//!   opened on demand and closed when idle.
//! - [`registry::resilience`] and [`registry::breaker`]: the tower stack of each registry's calls.
//! - [`core::merge`]: the pure merge of answers into one asset list with totals.
//!
//! A registry that answers later, top-down:
//! - [`gateway::search`]: a reply with a registry `PENDING` carries a search id; the search is kept
//!   as a job, and `GetSearch` / `WatchSearch` read it.
//! - [`gateway::jobs`]: the jobs' rows; [`gateway::jobs::poll`] claims due legs from the database
//!   and asks the registries again by ticket ([`registry::client::Registry::answer`]).
//!
//! A control step, top-down:
//! - [`gateway::seizure`]: the seizure handler: validate, authorize, find the asset, one ledger step.
//! - [`ledger::store`]: one durable transaction per step (SQLite or PostgreSQL).
//! - [`ledger::rules`]: every rule that decides something, as pure functions.
//! - [`ledger::views`]: the ledger as the API shows it.
//! - [`gateway::outbox`]: delivers each control order to its registry until acknowledged.
//!
//! The debtor as a whole and what rank is for take the same road: [`gateway::debtor`] and
//! [`gateway::distribution`] validate and authorize, then one step of [`ledger::store`] decided by
//! [`ledger::rules`] (R23–R30; the plans and funds of R28–R29 in `ledger::store::distribution`
//! and `ledger::store::funds`).
//!
//! Around them: [`gateway::audit`] (the sealed audit trail, R16),
//! [`gateway::admission`] (calls in flight), [`ledger::sweep`] (lapses as they
//! fall due, plans whose objection periods ran), [`ops`] (configuration, telemetry, metrics, certificates,
//! sockets), [`core`] (protos, identifiers, the clock, the error type), and
//! [`tools`] (command-line clients, load generator, conformance suite, mock
//! registries, the development stack).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms, missing_docs)]

pub mod core;
pub mod gateway;
pub mod ledger;
pub mod ops;
pub mod registry;
pub mod tools;
