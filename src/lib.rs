//! # assetgw: the debtor asset-search federation gateway
//!
//! Courts enforcing judgments ask one gRPC service for a debtor's assets; the
//! gateway asks every registry of the network at once (banks, real estate,
//! IP, aviation, securities) and answers with one merged, de-duplicated list
//! that says where each asset was found and how each registry fared.
//!
//! # Layout
//! A search, top-down:
//! - [`auth`]: who calls (mutual TLS court certificates), whether it may (R15), rate limits and quotas.
//! - [`search`]: the court-facing gRPC handler: validate, authorize, fan out, merge, respond.
//! - [`identifiers`]: case numbers, resident IDs, credit codes (DOMAIN R20–R22) and masking.
//! - [`fanout`]: one leg per (debtor, registry), yielded as each finishes.
//! - [`cache`]: answers per (registry, debtor) with TTLs and single flight.
//! - [`registry`]: the client of one registry and the contract check of its answers.
//! - [`resilience`]: the tower stack of each registry's calls: bulkhead, breaker, timeouts, retries, hedging.
//! - [`breaker`]: the circuit breaker's state machine.
//! - [`merge`]: the pure merge of answers into one asset list with totals.
//!
//! A control step, top-down:
//! - [`ledger::service`]: the seizure gRPC handler: validate, find the asset through search.
//! - [`ledger::store`]: one durable transaction per step (SQLite or PostgreSQL).
//! - [`ledger::rules`]: DOMAIN R1–R14 as pure functions over one asset's seizures.
//! - [`ledger::outbox`]: delivers each control order to its registry until acknowledged.
//!
//! Around it:
//! - [`audit`]: the hash-chained audit trail of every query and control order (R16).
//! - [`pki`]: certificates: the network CA, issuing, what a certificate says about its holder.
//! - [`server`]: runs the gateway with health and reflection until shutdown.
//! - [`admission`]: the limit of calls in flight, refusing the excess at once.
//! - [`config`]: strict TOML configuration with environment overrides.
//! - [`error`]: the error types and their one mapping to gRPC status codes.
//! - [`mock`]: mock registries with synthetic data and injectable faults.
//! - [`dev`]: the whole stack on loopback, for a laptop.
//! - [`client`]: the `assetgw search` and `assetgw call` command-line clients.
//! - [`loadgen`]: the load generator (`assetgw loadgen`) and its ghz-style report.
//! - [`conformance`]: the registry partners' conformance suite (`assetgw conformance`).
//! - [`telemetry`]: logging, trace export and span names.
//! - [`metrics`]: counters and histograms, served as Prometheus text.
//! - [`proto`]: the generated protobuf code.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms, missing_docs)]

pub mod admission;
pub mod audit;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod client;
pub mod config;
pub mod conformance;
pub mod dev;
pub mod error;
pub mod fanout;
pub mod identifiers;
pub mod ledger;
pub mod loadgen;
pub mod merge;
pub mod metrics;
pub mod mock;
pub mod pki;
pub mod proto;
pub mod registry;
pub mod resilience;
pub mod search;
pub mod server;
pub mod telemetry;
