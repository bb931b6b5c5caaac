//! One registry call's vocabulary: what the registry is told about the search
//! ([`Inquiry`]), its answer as checked ([`Checked`]) and why a call ended
//! without assets ([`Failure`]), which becomes the registry's status in the
//! court's result.

use std::time::Duration;

use tonic::Code;

use crate::core::{merge::Reported, proto::RegistryStatus};

/// A registry's answer as checked: the records kept, and why any were
/// dropped (the registry's status then says INVALID_RESPONSE; the rest stands).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    /// The records that keep the field rules.
    pub assets: Vec<Reported>,
    /// How many records were dropped, and the first one's broken rule.
    pub dropped: Option<String>,
}

/// Why a registry's part of a search produced no assets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No answer within the registry's timeout.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Not reachable, or it said it is unavailable.
    #[error("unavailable")]
    Unavailable,
    /// It answered with an error status.
    #[error("answered {0:?}")]
    Error(Code),
    /// Its answer broke the contract.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// Not asked: its circuit breaker is open after repeated failures.
    #[error("not asked: circuit open after repeated failures, next probe in {}", humantime::format_duration(*.0))]
    CircuitOpen(Duration),
    /// Not asked: the gateway already has this many searches in flight to it.
    #[error("not asked: {0} searches already in flight to it")]
    Shed(usize),
}

impl Failure {
    /// No answer within `after`, shown to the millisecond (rounded up: the time a call was given, not what was left of it).
    pub fn timeout(after: Duration) -> Self {
        Failure::Timeout(Duration::from_millis(after.as_micros().div_ceil(1000) as u64))
    }

    /// The status reported to the court.
    pub fn status(&self) -> RegistryStatus {
        match self {
            Failure::Timeout(_) => RegistryStatus::Timeout,
            Failure::Unavailable | Failure::CircuitOpen(_) | Failure::Shed(_) => RegistryStatus::Unavailable,
            Failure::Error(_) => RegistryStatus::Error,
            Failure::InvalidResponse(_) => RegistryStatus::InvalidResponse,
        }
    }

    /// Its name in the `outcome` label of registry-call metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Unavailable => "unavailable",
            Failure::Error(_) => "error",
            Failure::InvalidResponse(_) => "invalid_response",
            Failure::CircuitOpen(_) => "circuit_open",
            Failure::Shed(_) => "shed",
        }
    }

    /// Whether it says the registry is unhealthy (counts toward opening its
    /// breaker), rather than that one request was refused.
    pub fn is_unhealthy(&self) -> bool {
        match self {
            Failure::Timeout(_) | Failure::Unavailable | Failure::InvalidResponse(_) => true,
            Failure::Error(code) => {
                matches!(
                    code,
                    Code::Internal | Code::Unknown | Code::ResourceExhausted | Code::DataLoss | Code::Aborted
                )
            }
            Failure::CircuitOpen(_) | Failure::Shed(_) => false,
        }
    }
}

/// What the registry is told about the caller.
#[derive(Debug, Clone)]
pub struct Inquiry {
    /// The enforcement case number.
    pub case_number: String,
    /// The asking court's code.
    pub court_code: String,
    /// This search's id.
    pub request_id: String,
}

impl Inquiry {
    /// A new search's caller, with a fresh request id.
    pub fn new(case_number: String, court_code: String) -> Self {
        Self { case_number, court_code, request_id: uuid::Uuid::new_v4().to_string() }
    }
}
