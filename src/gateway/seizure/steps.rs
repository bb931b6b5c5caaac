//! What every seizure step shares: the service's state, the step pipeline
//! ([`SeizureApi::step`]: validate → authorize → one ledger command →
//! typed reply), authorization of the acting case (R15), finding a placed
//! asset at its registry, and the fields every control request carries.

use std::sync::{Arc, OnceLock};

use serde_json::json;
use tonic::{Request, Response, Status};

use crate::{
    core::{
        clock::beijing_date,
        error::Error,
        identifiers::CaseNumber,
        proto::{
            AcceptTransferRequest, AnswerDisposalTransferRequest, AssetKind, DeductFundsRequest, PlaceSeizureRequest,
            RecordDesignationRequest, RecordDisposalRequest, ReleaseSeizureRequest, RenewSeizureRequest,
            RequestDisposalTransferRequest, TransferCaseRequest, asset::Detail, time_of,
        },
    },
    gateway::{
        auth::{Caller, Gate, Note},
        validate::Checks,
    },
    ledger::{
        command::{Command, Reply, RequestKey},
        rules::{self, Action},
        store::Store,
    },
    registry::{call::Inquiry, network::Network},
};

/// The seizure service over the ledger and the registries.
pub struct SeizureApi {
    pub(super) store: Store,
    network: Arc<Network>,
    pub(super) gate: Arc<Gate>,
}

impl SeizureApi {
    /// The service.
    pub fn new(store: Store, network: Arc<Network>, gate: Arc<Gate>) -> Self {
        Self { store, network, gate }
    }

    /// One step that changes the ledger: `check` validates the request
    /// (noting it for the audit) and names the acting case; `command` builds
    /// the ledger command once the case is authorized.
    pub(super) async fn step<Req, R, T, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        check: impl FnOnce(&Req, &Note, &mut Checks) -> Option<CaseNumber> + Send,
        command: impl FnOnce(Req, CaseNumber, RequestKey) -> Fut + Send,
        respond: impl FnOnce(R) -> T + Send,
    ) -> Result<Response<T>, Status>
    where
        Req: Idempotent + Send,
        R: TryFrom<Reply, Error = Reply>,
        Fut: Future<Output = Result<Command, Error>> + Send,
    {
        // The step the ledger acknowledged, marked audited once the gate has written its record (R16).
        let acknowledged = OnceLock::new();
        let mark = &acknowledged;
        let response = self
            .gate
            .handle(method, request, |caller, _, r, note| async move {
                note.request_id(r.request_id());
                let mut c = Checks::default();
                let case = check(&r, &note, &mut c);
                let case = c.done(case)?;
                self.authorize(&caller, &note, &case, Action::Control).await?;
                let request = RequestKey::of(&caller.court, &caller.officer, r.request_id(), &r.encode_to_vec());
                let command = command(r, case, request).await?;
                let step = command.request().map(|(key, name)| (key.clone(), name));
                let reply = self.store.execute(command).await?;
                // Before the court hears of its step, its own searches here must see it.
                if let Err(e) = self.gate.model().refresh().await {
                    tracing::warn!(error = %e, "the read model missed a step; the next refresh applies it");
                }
                if let Some(step) = step {
                    let _ = mark.set(step);
                }
                let reply = R::try_from(reply)
                    .map_err(|other| Error::Internal(format!("{method}: unexpected ledger reply {other:?}")))?;
                Ok(respond(reply))
            })
            .await?;
        if let Some((request, method)) = acknowledged.into_inner() {
            // Not marked, the step is audited again by the sweep: a second record, never none.
            if let Err(e) = self.store.execute(Command::Audited { request, method }).await {
                tracing::warn!(error = %e, "audited step not marked; the audit sweep will record it again");
            }
        }
        Ok(response)
    }

    /// Notes the validated case for the audit and checks the caller may act on it (R15).
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        note: &Note,
        case: &CaseNumber,
        action: Action,
    ) -> Result<(), Error> {
        note.case(case.to_string());
        self.gate.authorize(caller, case, action).await
    }

    /// The rules' asset, as its registry reports it now (placements only).
    pub(super) async fn find(
        &self,
        r: &PlaceSeizureRequest,
        case: &CaseNumber,
        kind: AssetKind,
    ) -> Result<rules::Asset, Error> {
        let mut c = Checks::default();
        let today = beijing_date(self.store.now());
        let debtor = r.debtor.as_ref().and_then(|d| c.debtor("debtor", d, today));
        let debtor = c.done(debtor)?;
        let inquiry = Inquiry::new(case.to_string(), case.court_code.clone());
        let found = self.network.find(inquiry, &debtor, kind, &r.asset_id, &r.registry).await?;
        let (unit, total) = match found.asset.asset.detail.as_ref() {
            Some(Detail::Deposit(d)) => {
                d.balance.as_ref().map_or((String::new(), 0), |b| (b.currency.clone(), b.minor_units))
            }
            Some(Detail::Securities(s)) => ("units".to_string(), s.quantity),
            _ => (String::new(), 1),
        };
        Ok(rules::Asset {
            kind,
            asset_id: found.asset.id.clone(),
            registry: found.registry.to_string(),
            debtor: debtor.0.masked().to_string(),
            unit,
            total,
            sale_started: false,
            disposed: false,
            total_at: found.reported_at,
        })
    }
}

/// A control step's request, which names its court-chosen id (AIP-155).
pub(super) trait Idempotent: prost::Message {
    fn request_id(&self) -> &str;
}

macro_rules! idempotent {
    ($($request:ty),*) => {
        $(impl Idempotent for $request {
            fn request_id(&self) -> &str {
                &self.request_id
            }
        })*
    };
}

idempotent!(
    PlaceSeizureRequest,
    ReleaseSeizureRequest,
    RenewSeizureRequest,
    DeductFundsRequest,
    RecordDisposalRequest,
    RecordDesignationRequest,
    TransferCaseRequest,
    AcceptTransferRequest,
    RequestDisposalTransferRequest,
    AnswerDisposalTransferRequest
);

/// The fields every control step carries: its request id and acting case, noted for the audit.
pub(super) fn control(c: &mut Checks, note: &Note, request_id: &str, case: &str) -> Option<CaseNumber> {
    note.case(case);
    c.present("request_id", request_id);
    c.case("case_number", case)
}

/// The fields a control step on one seizure carries.
pub(super) fn seizure_step(
    c: &mut Checks,
    note: &Note,
    request_id: &str,
    case: &str,
    seizure_id: &str,
) -> Option<CaseNumber> {
    let case = control(c, note, request_id, case);
    c.present("seizure_id", seizure_id);
    case
}

/// The court code of a case number, if it parses.
pub(super) fn court_of(case: &str) -> Option<String> {
    CaseNumber::parse_acting(case).ok().map(|c| c.court_code)
}

/// The two requests that carry a designation (R12): its receipt, and the handover.
pub(super) trait Designating: Idempotent {
    /// Case, designated court, decision, and when it was decided.
    fn designation(&self) -> (&str, &str, &str, Option<&prost_types::Timestamp>);
}

macro_rules! designating {
    ($($request:ty),*) => {
        $(impl Designating for $request {
            fn designation(&self) -> (&str, &str, &str, Option<&prost_types::Timestamp>) {
                (&self.case_number, &self.to_court_code, &self.decision_reference, self.decided_at.as_ref())
            }
        })*
    };
}

designating!(RecordDesignationRequest, TransferCaseRequest);

impl SeizureApi {
    /// RecordDesignation (`handover` false) and TransferCase: one designation, checked alike.
    pub(super) async fn designation_step<Req, R, T>(
        &self,
        method: &'static str,
        request: Request<Req>,
        handover: bool,
        respond: impl FnOnce(R) -> T + Send,
    ) -> Result<Response<T>, Status>
    where
        Req: Designating + Send,
        R: TryFrom<Reply, Error = Reply>,
    {
        let now = self.store.now();
        self.step(
            method,
            request,
            |r, note, c| {
                let (case, to_court, decision, decided_at) = r.designation();
                note.detail(json!({ "to_court_code": to_court, "decision_reference": decision }));
                let case = control(c, note, r.request_id(), case);
                c.court("to_court_code", to_court);
                c.present("decision_reference", decision);
                if decided_at.is_some_and(|t| time_of(t) > now) {
                    c.bad("decided_at", "is in the future");
                }
                case
            },
            |r, case, request| async move {
                let (_, to_court, decision, decided_at) = r.designation();
                let mut c = Checks::default();
                let to_court = c.court("to_court_code", to_court);
                Ok(Command::Transfer {
                    request,
                    case,
                    to_court: c.done(to_court)?,
                    decision: decision.to_string(),
                    decided_at: decided_at.map_or(now, time_of),
                    handover,
                })
            },
            respond,
        )
        .await
    }
}
