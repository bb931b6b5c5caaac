//! The core: pure types and functions every other wing shares — the
//! generated protobuf code, identifiers (R20–R22), the field rules and the
//! merge of registry answers, the clock, and the court-facing error type with its one mapping
//! to gRPC status codes. It imports nothing else of this crate.

pub mod answer;
pub mod batch;
pub mod clock;
pub mod error;
pub mod identifiers;
pub mod merge;
pub mod method;
pub mod proto;
