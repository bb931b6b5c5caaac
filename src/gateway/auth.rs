//! Who is calling and what they may do. The court comes from its client
//! certificate (see [`crate::ops::pki`]), the acting officer from the
//! `x-officer-id` metadata ([`Identity`], the spine's step that refuses an
//! unknown caller); a court acts only for its own enforcement cases, or for a
//! case designated to it, and never for a case designated away from it
//! ([`Authority`]: R15, R10, R12).

use std::sync::Arc;

use futures::future::BoxFuture;
use tonic::{Request, Status, metadata::MetadataMap};

use crate::{
    core::{
        error::Error,
        identifiers::{self, CaseNumber},
        method::Method,
    },
    gateway::call::{Caller, HttpRequest, HttpResponse, Next, Note, Step, refuse},
    ledger::{
        model::Model,
        rules::{self, Action},
        store::Store,
    },
    ops::{net::Peer, pki::Role},
};

/// Metadata naming the acting enforcement officer.
pub const OFFICER_HEADER: &str = "x-officer-id";
/// Metadata naming the court (UTF-8, binary metadata since court codes are
/// not ASCII), honoured only by a gateway running plaintext.
pub const COURT_HEADER: &str = "x-court-code-bin";

/// The spine's identity step: names the caller, or refuses the call.
#[derive(Clone)]
pub struct Identity {
    /// Court identities are taken on trust from metadata (a plaintext gateway).
    plaintext: bool,
}

impl Identity {
    /// The step; `plaintext` takes court identities on trust from metadata.
    pub fn new(plaintext: bool) -> Self {
        Self { plaintext }
    }

    /// The caller's court: from its certificate (from metadata on a plaintext gateway).
    fn court(&self, request: &HttpRequest) -> Result<String, Error> {
        Ok(if self.plaintext {
            tracing::warn!("plaintext gateway: the court identity below is taken on trust from metadata");
            let metadata = MetadataMap::from_headers(request.headers().clone());
            let code = metadata.get_bin(COURT_HEADER).and_then(|v| v.to_bytes().ok()).ok_or_else(|| {
                Error::Unauthenticated(format!("this plaintext gateway needs the court code in `{COURT_HEADER}`"))
            })?;
            identifiers::parse_court_code(&String::from_utf8_lossy(&code)).map_err(Error::Unauthenticated)?
        } else {
            let holder = request.extensions().get::<Peer>().and_then(Peer::role).ok_or_else(|| {
                Error::Unauthenticated("no client certificate; connect over mutual TLS with the court's".into())
            })?;
            match holder.as_ref().clone().map_err(Error::Unauthenticated)? {
                Role::Court(code) => code,
                other => {
                    return Err(Error::PermissionDenied(format!(
                        "the certificate is the {other}'s; only courts call this service (R15)"
                    )));
                }
            }
        })
    }
}

impl Step for Identity {
    fn around(&self, _: Method, mut request: HttpRequest, next: Next) -> BoxFuture<'static, HttpResponse> {
        let court = self.court(&request);
        let officer = officer(request.headers());
        let note = request.extensions().get::<Note>().cloned().unwrap_or_default();
        // The court, when its certificate named one, is on the record even when the call is refused.
        note.caller(Caller {
            court: court.as_ref().map(Clone::clone).unwrap_or_default(),
            officer: officer.clone().unwrap_or_default(),
        });
        let caller = court.and_then(|court| {
            let officer = officer.ok_or_else(|| {
                Error::Unauthenticated(format!(
                    "name the acting enforcement officer in `{OFFICER_HEADER}` metadata (1 to 64 letters, digits, `-` or `_`)"
                ))
            })?;
            Ok(Caller { court, officer })
        });
        match caller {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                next(request)
            }
            Err(e) => Box::pin(std::future::ready(refuse(e))),
        }
    }
}

/// Decides whether a caller may act on a case, from the facts the ledger holds.
#[derive(Clone)]
pub struct Authority {
    /// The ledger in memory, for a look.
    model: Arc<Model>,
    /// The ledger itself, for a step.
    ledger: Store,
}

impl Authority {
    /// Authority over the ledger `ledger`, read in memory through `model`.
    pub fn new(model: Arc<Model>, ledger: Store) -> Self {
        Self { model, ledger }
    }

    /// May `caller` act on `case` (R15, R10, R12)? Gathers the facts; the rule decides.
    /// A look is decided from the read model; a step from the database (which its transaction checks again).
    pub async fn authorize(&self, caller: &Caller, case: &CaseNumber, action: Action) -> Result<(), Error> {
        let designated = match action {
            Action::Query => self.model.designated_to(&case.to_string()),
            Action::Control => self.ledger.designated_to(&case.to_string()).await?,
        };
        rules::authority(&caller.court, case, designated.as_deref(), action)
            .map_err(|e| Error::PermissionDenied(e.to_string()))
    }
}

/// A registry's interceptor: over mutual TLS only the gateway may call it
/// (a court's certificate is from the same CA, but courts go through the gateway).
pub fn gateway_only(request: Request<()>) -> Result<Request<()>, Status> {
    let Some(holder) = Peer::holder(&request) else { return Ok(request) };
    match holder.as_ref() {
        Ok(Role::Gateway) => Ok(request),
        Ok(other) => Err(Status::permission_denied(format!("this registry answers only the gateway, not the {other}"))),
        Err(e) => Err(Status::unauthenticated(e.clone())),
    }
}

/// The officer id from metadata, if well formed.
fn officer(headers: &tonic::codegen::http::HeaderMap) -> Option<String> {
    let v = headers.get(OFFICER_HEADER)?.to_str().ok()?.trim();
    let ok = (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| v.to_string())
}
