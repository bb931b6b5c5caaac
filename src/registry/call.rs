//! One registry call's vocabulary: what the registry is told about the search
//! ([`Inquiry`]) and the trace it continues ([`carry_trace`]), its answer as
//! checked ([`Checked`]) and why a call ended without assets ([`Failure`]),
//! which becomes the registry's status in the court's result.

use std::time::{Duration, SystemTime};

use prost::Message;
use tonic::Code;

use crate::core::{
    clock::{Time, from_micros},
    merge::Reported,
    proto::{Asset, RegistryStatus},
};

/// Writes trace-context headers into gRPC metadata.
struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (key.parse::<tonic::metadata::AsciiMetadataKey>(), value.parse()) {
            self.0.insert(key, value);
        }
    }
}

/// The search's trace continues at the registry: `context`'s W3C headers go with `request` (a
/// no-op unless trace export is configured).
pub fn carry_trace<T>(request: &mut tonic::Request<T>, context: &opentelemetry::Context) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(context, &mut Metadata(request.metadata_mut()))
    });
}

/// The trace context of the current span.
pub fn current_trace() -> opentelemetry::Context {
    tracing_opentelemetry::OpenTelemetrySpanExt::context(&tracing::Span::current())
}

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
    /// Not asked (a scheduled search): the registry's declared rate is taken, the courts' searches first.
    #[error("not asked yet: its declared rate is taken; asked again in {}", humantime::format_duration(*.0))]
    Paced(Duration),
    /// It took the search and answers later, by ticket.
    #[error("answers later; asked again after {}", .0.ask_after.format("%Y-%m-%d %H:%M:%S UTC"))]
    Deferred(Ticket),
}

/// A registry's promise of a later answer: ask by `ticket` after `ask_after`, until `answer_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The registry's handle on the search.
    pub ticket: String,
    /// When asking again is useful.
    pub ask_after: Time,
    /// The end of the answer window as the gateway keeps it: the registry's, capped at its declared
    /// window and the gateway's maximum.
    pub answer_by: Time,
    /// The end of the window as the registry stated it: the contract fixes it for the ticket's life.
    pub stated_by: Time,
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
            Failure::Paced(_) => RegistryStatus::Pending,
            Failure::Error(_) => RegistryStatus::Error,
            Failure::InvalidResponse(_) => RegistryStatus::InvalidResponse,
            Failure::Deferred(_) => RegistryStatus::Pending,
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
            Failure::Paced(_) => "paced",
            Failure::Deferred(_) => "deferred",
        }
    }

    /// Whether asking again later may well succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Timeout(_)
            | Failure::Unavailable
            | Failure::CircuitOpen(_)
            | Failure::Shed(_)
            | Failure::Paced(_) => true,
            Failure::Error(code) => matches!(
                code,
                Code::Unavailable | Code::ResourceExhausted | Code::Internal | Code::Unknown | Code::Aborted
            ),
            Failure::InvalidResponse(_) | Failure::Deferred(_) => false,
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
            Failure::CircuitOpen(_) | Failure::Shed(_) | Failure::Paced(_) | Failure::Deferred(_) => false,
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
    /// Whether the search takes a ticket for a later answer (a search job), or needs the answer now.
    pub accept_deferred: bool,
    /// A scheduled search (a re-search of a terminated case): it goes only within the registry's
    /// declared rate, after the courts' searches.
    pub scheduled: bool,
}

impl Inquiry {
    /// A new search's caller, with a fresh request id, that needs the answer now.
    pub fn new(case_number: String, court_code: String) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        Self { case_number, court_code, request_id, accept_deferred: false, scheduled: false }
    }
}

/// An answer as stored: the records with their identities, and when fetched.
#[derive(Clone, PartialEq, Message)]
struct Stored {
    #[prost(message, repeated, tag = "1")]
    records: Vec<StoredRecord>,
    #[prost(string, optional, tag = "2")]
    dropped: Option<String>,
    #[prost(int64, tag = "3")]
    fetched_at_micros: i64,
}

#[derive(Clone, PartialEq, Message)]
struct StoredRecord {
    #[prost(int32, tag = "1")]
    kind: i32,
    #[prost(string, tag = "2")]
    id: String,
    #[prost(message, optional, tag = "3")]
    asset: Option<Asset>,
}

/// A failure as the shared tier hands it to the replicas waiting on the same call.
#[derive(Clone, PartialEq, Message)]
struct StoredFailure {
    #[prost(uint32, tag = "1")]
    status: u32,
    #[prost(int32, tag = "2")]
    code: i32,
    #[prost(uint64, tag = "3")]
    millis: u64,
    #[prost(string, tag = "4")]
    message: String,
    #[prost(string, tag = "5")]
    ticket: String,
    #[prost(int64, repeated, tag = "6")]
    times_micros: Vec<i64>,
}

/// A failure of a call to the registry itself, for another replica waiting on it; `None` for a
/// failure of this replica's own (its breaker, its bulkhead), which says nothing about the registry.
pub fn encode_failure(failure: &Failure) -> Option<Vec<u8>> {
    let mut stored = StoredFailure::default();
    match failure {
        Failure::Timeout(after) => {
            stored.status = 1;
            stored.millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        }
        Failure::Unavailable => stored.status = 2,
        Failure::Error(code) => (stored.status, stored.code) = (3, *code as i32),
        Failure::InvalidResponse(why) => (stored.status, stored.message) = (4, why.clone()),
        Failure::Deferred(t) => {
            (stored.status, stored.ticket) = (5, t.ticket.clone());
            stored.times_micros = [t.ask_after, t.answer_by, t.stated_by].map(|t| t.timestamp_micros()).to_vec();
        }
        Failure::CircuitOpen(_) | Failure::Shed(_) | Failure::Paced(_) => return None,
    }
    Some(stored.encode_to_vec())
}

/// A failure [`encode_failure`] wrote; `None` if the bytes are not one.
pub fn decode_failure(bytes: &[u8]) -> Option<Failure> {
    let stored = StoredFailure::decode(bytes).ok()?;
    Some(match stored.status {
        1 => Failure::Timeout(Duration::from_millis(stored.millis)),
        2 => Failure::Unavailable,
        3 => Failure::Error(Code::from(stored.code)),
        4 => Failure::InvalidResponse(stored.message),
        5 => {
            let [ask_after, answer_by, stated_by] = <[i64; 3]>::try_from(stored.times_micros).ok()?;
            Failure::Deferred(Ticket {
                ticket: stored.ticket,
                ask_after: from_micros(ask_after),
                answer_by: from_micros(answer_by),
                stated_by: from_micros(stated_by),
            })
        }
        _ => return None,
    })
}

/// An answer as kept outside memory (the shared tier, search jobs): its records and when it was fetched.
pub fn encode(assets: &[Reported], dropped: Option<&str>, fetched_at: SystemTime) -> Vec<u8> {
    let records = assets
        .iter()
        .map(|r| StoredRecord { kind: r.kind as i32, id: r.id.clone(), asset: Some(r.asset.clone()) })
        .collect();
    let micros = fetched_at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros();
    let stored = Stored {
        records,
        dropped: dropped.map(str::to_string),
        fetched_at_micros: i64::try_from(micros).unwrap_or(i64::MAX),
    };
    stored.encode_to_vec()
}

/// An answer [`encode`] wrote; `None` if the bytes are not one.
pub fn decode(bytes: &[u8]) -> Option<(Checked, SystemTime)> {
    let stored = Stored::decode(bytes).ok()?;
    let fetched_at = SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(stored.fetched_at_micros).ok()?);
    let assets = stored
        .records
        .into_iter()
        .map(|r| Some(Reported::new(r.kind.try_into().ok()?, r.id, r.asset?)))
        .collect::<Option<Vec<_>>>()?;
    Some((Checked { assets, dropped: stored.dropped }, fetched_at))
}
