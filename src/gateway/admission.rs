//! Admission control at the gateway's door: at most `limit` calls in flight;
//! the next one is refused at once with `RESOURCE_EXHAUSTED` instead of
//! queueing without bound, so an overloaded gateway stays fast at saying no
//! and the calls it took keep their latency.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::{BoxFuture, FutureExt};
use prometheus::IntCounter;
use tokio::sync::Semaphore;
use tonic::{Status, body::Body, codegen::http};
use tower::{Layer, Service};

/// Limits the calls in flight through the services it wraps.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
    limit: usize,
    shed: IntCounter,
}

impl AdmissionLayer {
    /// At most `limit` calls in flight; refusals are counted in `shed`.
    pub fn new(limit: usize, shed: IntCounter) -> Self {
        Self { permits: Arc::new(Semaphore::new(limit)), limit, shed }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission { inner, layer: self.clone() }
    }
}

/// The service [`AdmissionLayer`] makes.
#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

impl<S, B> Service<http::Request<B>> for Admission<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.layer.permits.clone().try_acquire_owned() {
            Ok(permit) => self
                .inner
                .call(request)
                .map(move |response| {
                    drop(permit);
                    response
                })
                .boxed(),
            Err(_) => {
                self.layer.shed.inc();
                let refused = Status::resource_exhausted(format!(
                    "the gateway is at its limit of {} calls in flight; retry shortly",
                    self.layer.limit
                ));
                futures::future::ready(Ok(refused.into_http())).boxed()
            }
        }
    }
}
