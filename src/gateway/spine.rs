//! The spine every court-facing call walks before its handler and after it:
//! the audit record, the caller's identity and the caller's limits, as tower
//! layers around the court services ([`spine`]). A handler receives the
//! authenticated [`Call`] and returns a typed result; [`reply`] is the one
//! place that result becomes a gRPC answer. Health and reflection, which no
//! court calls, pass through untouched.

use std::{convert::Infallible, sync::Arc};

use futures::future::BoxFuture;
use tonic::{
    Request, Response, Status,
    body::Body,
    codegen::{
        Context, Poll,
        http::{self},
    },
    metadata::MetadataMap,
};
use tower::{Layer, Service, ServiceBuilder, layer::util::Stack};

use crate::{
    core::{error::Error, method::Method},
    gateway::{
        audit::note::{Note, Recorder},
        auth::{Caller, Identity},
        limits::Limits,
    },
};

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

/// The layers of the spine, outermost first.
pub type Spine =
    Stack<StepLayer<Arc<Limits>>, Stack<StepLayer<Identity>, Stack<StepLayer<Recorder>, tower::layer::util::Identity>>>;

/// The spine, in the order a call meets it. The audit record wraps the other
/// two so that every refusal is on the record as well as every answer: it is
/// written last, once identity, limits and the handler have decided, and
/// before the reply leaves (R16). Identity comes before limits because rates,
/// quotas and stream slots are per court, and a caller not yet known has none.
/// (The daily search quota is counted by the search itself, once the search
/// is valid and authorized: a refused search costs the court nothing.)
pub fn spine(recorder: Recorder, identity: Identity, limits: Arc<Limits>) -> ServiceBuilder<Spine> {
    ServiceBuilder::new().layer(StepLayer(recorder)).layer(StepLayer(identity)).layer(StepLayer(limits))
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

/// Wraps a service in one [`Step`].
#[derive(Clone)]
pub struct StepLayer<T>(T);

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
