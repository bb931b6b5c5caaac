//! The audit step of the spine ([`Recorder`]): every court call, answered or
//! refused, is committed to the trail before its reply leaves, from the
//! [`Note`] the identity step and the handler filled in; the call is also
//! counted in the metrics and a refusal logged. A ledger step the court is
//! answered for is then marked audited (R16).

use futures::future::BoxFuture;
use tonic::{Code, Status};

use super::Trail;
use crate::{
    core::{error::Error, method::Method},
    gateway::call::{HttpRequest, HttpResponse, Next, Note, Step, refuse},
    ledger::{command::Command, store::Store},
    ops::metrics::Metrics,
};

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
