//! One court call as the spine and its handler share it: who calls
//! ([`Caller`]), what the audit record is made from ([`Note`]), the two
//! together as a handler receives them ([`Call`]), the [`Step`] each concern
//! of the spine is, and the one place a handler's typed result becomes the
//! court's answer ([`reply`], [`refuse`]).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use serde_json::Value;
use tonic::{
    Code, Request, Response, Status,
    body::Body,
    codegen::{Context, Poll, http},
    metadata::MetadataMap,
};
use tower::{Layer, Service};

use crate::{
    core::{
        error::{Error, MESSAGE_CHARS, QUOTE_CHARS, bounded},
        identifiers::DebtorId,
        method::Method,
    },
    gateway::audit::Record,
    ledger::command::RequestKey,
};

/// An authenticated caller.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Court code, e.g. `京0105`.
    pub court: String,
    /// The acting officer's id.
    pub officer: String,
}

/// A court call as the server sees it.
pub type HttpRequest = http::Request<Body>;
/// Its answer.
pub type HttpResponse = http::Response<Body>;
/// The rest of the spine and the handler, as one step sees them.
pub type Next = Box<dyn FnOnce(HttpRequest) -> BoxFuture<'static, HttpResponse> + Send>;

/// One concern of the spine: what it does around the rest of a court call.
pub trait Step: Clone + Send + Sync + 'static {
    /// Runs `next` (or refuses in its place) for a call of `method`.
    fn around(&self, method: Method, request: HttpRequest, next: Next) -> BoxFuture<'static, HttpResponse>;
}

/// What the spine hands a handler: who calls (authenticated, within its
/// limits), and the note its audit record is made from.
#[derive(Clone)]
pub struct Call {
    /// The court and its acting officer.
    pub caller: Caller,
    /// What the handler learns that the audit record keeps.
    pub note: Note,
}

impl Call {
    /// The call, its metadata and its message.
    pub fn of<T>(request: Request<T>) -> Result<(Call, MetadataMap, T), Status> {
        let caller = request.extensions().get::<Caller>().cloned();
        let note = request.extensions().get::<Note>().cloned();
        let (metadata, _, message) = request.into_parts();
        match (caller, note) {
            (Some(caller), Some(note)) => Ok((Call { caller, note }, metadata, message)),
            _ => Err(Error::Internal("a court call reached its handler without passing the spine".into()).into()),
        }
    }
}

/// A handler's typed result as the court receives it.
pub fn reply<T>(result: Result<T, Error>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

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

/// Wraps a service in one [`Step`].
#[derive(Clone)]
pub struct StepLayer<T>(T);

impl<T> StepLayer<T> {
    /// The layer of `step`.
    pub fn new(step: T) -> Self {
        Self(step)
    }
}

impl<S, T: Step> Layer<S> for StepLayer<T> {
    type Service = StepService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        StepService { inner, step: self.0.clone() }
    }
}

/// The service a [`StepLayer`] makes.
#[derive(Clone)]
pub struct StepService<S, T> {
    inner: S,
    step: T,
}

impl<S, T> Service<HttpRequest> for StepService<S, T>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: Step,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<HttpResponse, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest) -> Self::Future {
        // The clone that was made ready is the one that serves (tower's rule).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        // The method is read from the path once; the steps inside find it in the extensions.
        let method = match request.extensions().get::<Method>() {
            Some(method) => *method,
            None => match Method::from_path(request.uri().path()) {
                Some(method) => {
                    request.extensions_mut().insert(method);
                    method
                }
                None => return Box::pin(inner.call(request)),
            },
        };
        let next: Next = Box::new(move |request| {
            Box::pin(async move {
                match inner.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            })
        });
        let step = self.step.around(method, request, next);
        Box::pin(async move { Ok(step.await) })
    }
}

/// A refusal as the court receives it.
pub fn refuse(e: Error) -> HttpResponse {
    Status::from(e).into_http()
}
