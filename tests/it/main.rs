//! The integration tests: mock registries and the gateway in-process, on
//! `127.0.0.1:0`, over real gRPC. One binary, one module per concern.

mod harness;

mod alerts;
mod audit;
mod cache;
mod cli;
mod conformance;
mod connections;
mod court_rules;
mod debtor_props;
mod debtors;
mod dev;
mod distribution;
mod faults;
mod fleet;
mod hostile;
mod integrity;
mod internals;
mod interop;
mod jobs;
mod ledger;
mod ledger_props;
mod loadgen;
mod lying;
mod matrix;
mod ops;
mod processes;
mod replicas;
mod research;
mod research_pace;
mod search;
mod security;
mod spawned;
mod telemetry;
mod validation;
mod whole_debtor;
mod width;
mod wings;
