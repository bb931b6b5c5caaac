//! The audit step of the spine ([`Recorder`]): every court call, answered or
//! refused, is committed to the trail before its reply leaves, from the
//! [`Note`] the identity step and the handler fill in; the call is also
//! counted in the metrics and a refusal logged. A ledger step the court is
//! answered for is then marked audited (R16).

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::Value;
use tonic::{Code, Status};

use super::{Record, Trail};
use crate::{
    core::{
        error::{Error, MESSAGE_CHARS, QUOTE_CHARS, bounded},
        identifiers::DebtorId,
        method::Method,
    },
    gateway::{
        auth::Caller,
        spine::{HttpRequest, HttpResponse, Next, Step, refuse},
    },
    ledger::{
        command::{Command, RequestKey},
        store::Store,
    },
    ops::metrics::Metrics,
};

/// What a call's audit record is made from, filled in as the call goes.
#[derive(Clone, Default)]
pub struct Note(Arc<Mutex<Facts>>);

#[derive(Default)]
struct Facts {
    caller: Caller,
    case: String,
    debtors: Vec<DebtorId>,
    detail: Value,
    request_id: String,
    /// The ledger step this call was answered for, marked audited once on record.
    acknowledged: Option<(RequestKey, Method)>,
}

impl Note {
    /// A note of a call by `caller` (a record the handler writes itself).
    pub fn of(caller: &Caller) -> Self {
        let note = Note::default();
        note.caller(caller.clone());
        note
    }

    fn with(&self, f: impl FnOnce(&mut Facts)) {
        if let Ok(mut facts) = self.0.lock() {
            f(&mut facts);
        }
    }

    /// Who calls, as far as it is known.
    pub fn caller(&self, caller: Caller) {
        self.with(|f| f.caller = caller);
    }

    /// The case the request names (normal form when it parsed).
    pub fn case(&self, case: impl Into<String>) {
        // Kept for years: a bad case number is recorded in part, as the reply quotes it.
        let case = bounded(&case.into(), 2 * QUOTE_CHARS);
        self.with(|f| f.case = case);
    }

    /// The debtors the request names.
    pub fn debtors(&self, debtors: impl IntoIterator<Item = DebtorId>) {
        let debtors = debtors.into_iter().collect();
        self.with(|f| f.debtors = debtors);
    }

    /// A control step's request id, kept in the record's detail.
    pub fn request_id(&self, id: &str) {
        let id = id.chars().take(128).collect();
        self.with(|f| f.request_id = id);
    }

    /// Registries asked and outcomes, or an order's target.
    pub fn detail(&self, mut detail: Value) {
        bound_strings(&mut detail);
        self.with(|f| f.detail = detail);
    }

    /// The ledger acknowledged `request`, a step of `method`.
    pub fn acknowledged(&self, request: RequestKey, method: Method) {
        self.with(|f| f.acknowledged = Some((request, method)));
    }

    /// The record of a call of `method` that ended with `code` and `message`, and the step it acknowledged.
    pub fn record(&self, method: &str, code: Code, message: &str) -> (Record, Option<(RequestKey, Method)>) {
        let mut facts = self.0.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        if !facts.request_id.is_empty() {
            if !facts.detail.is_object() {
                facts.detail = Value::Object(Default::default());
            }
            facts.detail["request_id"] = Value::String(facts.request_id);
        }
        let record = Record {
            court: facts.caller.court,
            officer: facts.caller.officer,
            method: method.into(),
            case_number: facts.case,
            debtors: facts.debtors,
            detail: facts.detail,
            code: Some(code),
            message: bounded(message, MESSAGE_CHARS),
        };
        (record, facts.acknowledged)
    }
}

/// Cuts every string in an audit detail to what a reply would quote of it.
fn bound_strings(v: &mut Value) {
    match v {
        // Bytes first: a string no longer in bytes than the bound is within it in characters.
        Value::String(s) if s.len() > 4 * QUOTE_CHARS && s.chars().count() > 4 * QUOTE_CHARS => {
            *s = bounded(s, 4 * QUOTE_CHARS)
        }
        Value::Array(items) => items.iter_mut().for_each(bound_strings),
        Value::Object(fields) => fields.values_mut().for_each(bound_strings),
        _ => {}
    }
}

/// The spine's audit step.
#[derive(Clone)]
pub struct Recorder {
    trail: Trail,
    /// Where an acknowledged step is marked audited.
    ledger: Store,
    metrics: Metrics,
}

impl Recorder {
    /// Records into `trail`, marks steps in `ledger`, counts in `metrics`.
    pub fn new(trail: Trail, ledger: Store, metrics: Metrics) -> Self {
        Self { trail, ledger, metrics }
    }
}

impl Step for Recorder {
    fn around(&self, method: Method, mut request: HttpRequest, next: Next) -> BoxFuture<'static, HttpResponse> {
        let this = self.clone();
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let note = Note::default();
            request.extensions_mut().insert(note.clone());
            let response = next(request).await;
            // An answer's status is in its trailers; a refusal's, in its headers (gRPC's trailers-only form).
            let (code, message) = match Status::from_header_map(response.headers()) {
                Some(status) => (status.code(), status.message().to_string()),
                None => (Code::Ok, String::new()),
            };
            let (record, acknowledged) = note.record(method.name(), code, &message);
            if code != Code::Ok {
                tracing::info!(%method, court = %record.court, ?code, "refused: {message}");
            }
            let (response, code) = match this.trail.record(record).await {
                Ok(()) => (response, code),
                Err(e) => {
                    this.metrics.audit_failures.inc();
                    (refuse(Error::from(e)), Code::Unavailable)
                }
            };
            if let (Some((request, method)), Code::Ok) = (acknowledged, code) {
                // Not marked, the step is audited again by the sweep: a second record, never none.
                if let Err(e) = this.ledger.execute(Command::Audited { request, method }).await {
                    tracing::warn!(error = %e, "audited step not marked; the audit sweep will record it again");
                }
            }
            this.metrics.request(method.name(), code, started.elapsed());
            response
        })
    }
}
