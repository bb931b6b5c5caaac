//! The court-facing seizure service. A step reads top-down: identify the
//! court and audit the call ([`crate::auth::Gate::handle`]), validate the
//! request, authorize it (R15), find the asset through search (placements only: what is seized
//! must be what a registry reports), then one durable ledger step, whose
//! reply is returned (and remembered under the request id).

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    rules::{self, Disposal},
    store::{self, Command, Reply, Store},
};
use crate::{
    auth::{Action, Caller, Note},
    error::{Error, Violation},
    identifiers::{self, CaseNumber},
    proto::{
        self, AcceptTransferRequest, AcceptTransferResponse, AnswerDisposalTransferRequest,
        AnswerDisposalTransferResponse, AssetKind, ControlResult, DeductFundsRequest, DeductFundsResponse,
        DisposalStep, GetSeizureQueueRequest, GetSeizureQueueResponse, ListCaseSeizuresRequest,
        ListCaseSeizuresResponse, ListLapsingSeizuresRequest, ListLapsingSeizuresResponse, ListTransfersRequest,
        ListTransfersResponse, PlaceSeizureRequest, PlaceSeizureResponse, RecordDisposalRequest,
        RecordDisposalResponse, ReleaseSeizureRequest, ReleaseSeizureResponse, RenewSeizureRequest,
        RenewSeizureResponse, RequestDisposalTransferRequest, RequestDisposalTransferResponse, TransferCaseRequest,
        TransferCaseResponse, WatchEventsRequest, WatchEventsResponse, asset::Detail,
        seizure_service_server::SeizureService,
    },
    search::Gateway,
};

/// How often a watcher looks for changes committed by other replicas.
const WATCH_POLL: Duration = Duration::from_millis(200);

/// The seizure service over the ledger and the search gateway.
pub struct SeizureApi {
    store: Store,
    gateway: Arc<Gateway>,
}

impl SeizureApi {
    /// The service.
    pub fn new(store: Store, gateway: Arc<Gateway>) -> Self {
        Self { store, gateway }
    }

    async fn control(&self, command: Command) -> Result<ControlResult, Error> {
        match self.store.execute(command).await? {
            Reply::Control(r) => Ok(r),
            other => Err(Error::Internal(format!("unexpected ledger reply {other:?}"))),
        }
    }

    async fn transfer(&self, command: Command) -> Result<TransferCaseResponse, Error> {
        match self.store.execute(command).await? {
            Reply::Transfer(r) => Ok(r),
            other => Err(Error::Internal(format!("unexpected ledger reply {other:?}"))),
        }
    }

    /// Notes the validated case for the audit and checks the caller may act on it (R15).
    async fn authorize(
        &self,
        caller: &Caller,
        note: &Note,
        case: Option<CaseNumber>,
        action: Action,
    ) -> Result<CaseNumber, Error> {
        let case = case_of(case)?;
        note.case(case.to_string());
        self.gateway.gate().authorize(caller, &case, action).await?;
        Ok(case)
    }

    async fn disposal(&self, command: Command) -> Result<AnswerDisposalTransferResponse, Error> {
        match self.store.execute(command).await? {
            Reply::Disposal(r) => Ok(r),
            other => Err(Error::Internal(format!("unexpected ledger reply {other:?}"))),
        }
    }
}

/// Collects every bad field of a request, then fails once with all of them.
#[derive(Default)]
struct Checks(Vec<Violation>);

impl Checks {
    fn bad(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(Violation { field: field.into(), description: description.into() });
    }

    fn case(&mut self, field: &str, input: &str) -> Option<CaseNumber> {
        CaseNumber::parse_acting(input).map_err(|e| self.bad(field, e)).ok()
    }

    fn present(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.bad(field, "is required");
        }
    }

    /// The fields every step on one seizure carries.
    fn step(&mut self, request_id: &str, case_number: &str, seizure_id: &str) -> Option<CaseNumber> {
        self.present("request_id", request_id);
        let case = self.case("case_number", case_number);
        self.present("seizure_id", seizure_id);
        case
    }

    fn kind(&mut self, field: &str, value: i32) -> AssetKind {
        match AssetKind::try_from(value) {
            Ok(k) if k != AssetKind::Unspecified => k,
            _ => {
                self.bad(field, format!("{value} is not an asset kind"));
                AssetKind::Unspecified
            }
        }
    }

    fn done(self) -> Result<(), Error> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::InvalidArgument(self.0)) }
    }
}

fn case_of(c: Option<CaseNumber>) -> Result<CaseNumber, Error> {
    c.ok_or_else(|| Error::Internal("validated case missing".into()))
}

/// The court code of a case number, if it parses.
fn court_of(case: &str) -> Option<String> {
    CaseNumber::parse_acting(case).ok().map(|c| c.court_code)
}

fn months(m: u32) -> Option<u32> {
    (m > 0).then_some(m)
}

#[tonic::async_trait]
impl SeizureService for SeizureApi {
    async fn place_seizure(
        &self,
        request: Request<PlaceSeizureRequest>,
    ) -> Result<Response<PlaceSeizureResponse>, Status> {
        self.gateway
            .gate()
            .handle("PlaceSeizure", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id, "amount": r.amount }));
                let mut c = Checks::default();
                c.present("request_id", &r.request_id);
                let case = c.case("case_number", &r.case_number);
                let kind = c.kind("asset_kind", r.asset_kind);
                c.present("asset_id", &r.asset_id);
                let debtor = match &r.debtor {
                    Some(d) => self.gateway.check_debtor("debtor", d).map_err(|v| c.0.push(v)).ok(),
                    None => {
                        c.bad("debtor", "is required: the debtor who owns the asset");
                        None
                    }
                };
                if rules::is_divisible(kind) && r.amount <= 0 {
                    c.bad("amount", "a freeze of a deposit or securities names a positive amount (R4)");
                }
                let claim = r.claim.as_ref().map(|m| (m.currency.trim().to_ascii_uppercase(), m.minor_units));
                if kind == AssetKind::Deposit && claim.as_ref().is_none_or(|(cur, v)| cur.is_empty() || *v <= 0) {
                    c.bad("claim", "a deposit freeze states the claim it secures: currency and a positive amount (R4)");
                }
                c.done()?;
                let Some(debtor) = debtor else { return Err(Error::Internal("validated debtor missing".into())) };
                note.debtors([debtor.0.clone()]);
                let case = self.authorize(&caller, &note, case, Action::Control).await?;
                let found = self.gateway.find_asset(&case, &debtor, kind, &r.asset_id, &r.registry).await?;
                let (unit, total) = match found.asset.asset.detail.as_ref() {
                    Some(Detail::Deposit(d)) => {
                        d.balance.as_ref().map_or((String::new(), 0), |b| (b.currency.clone(), b.minor_units))
                    }
                    Some(Detail::Securities(s)) => ("units".to_string(), s.quantity),
                    _ => (String::new(), 1),
                };
                let asset = rules::Asset {
                    kind,
                    asset_id: found.asset.id.clone(),
                    registry: found.registry.to_string(),
                    debtor: debtor.0.masked().to_string(),
                    unit,
                    total,
                    sale_started: false,
                    disposed: false,
                };
                let command = Command::Place {
                    request_id: r.request_id,
                    asset,
                    case,
                    amount: r.amount,
                    claim,
                    emergency: r.emergency_approval,
                };
                Ok(PlaceSeizureResponse { result: Some(self.control(command).await?) })
            })
            .await
    }

    async fn release_seizure(
        &self,
        request: Request<ReleaseSeizureRequest>,
    ) -> Result<Response<ReleaseSeizureResponse>, Status> {
        self.gateway
            .gate()
            .handle("ReleaseSeizure", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                note.detail(json!({ "seizure_id": r.seizure_id, "emergency_approval": r.emergency_approval }));
                let mut c = Checks::default();
                let case = c.step(&r.request_id, &r.case_number, &r.seizure_id);
                c.done()?;
                let case = self.authorize(&caller, &note, case, Action::Control).await?;
                let command = Command::Release {
                    request_id: r.request_id,
                    case: case.to_string(),
                    seizure_id: r.seizure_id,
                    emergency: r.emergency_approval,
                };
                Ok(ReleaseSeizureResponse { result: Some(self.control(command).await?) })
            })
            .await
    }

    async fn renew_seizure(
        &self,
        request: Request<RenewSeizureRequest>,
    ) -> Result<Response<RenewSeizureResponse>, Status> {
        self.gateway
            .gate()
            .handle("RenewSeizure", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                note.detail(json!({ "seizure_id": r.seizure_id, "months": r.months }));
                let mut c = Checks::default();
                let case = c.step(&r.request_id, &r.case_number, &r.seizure_id);
                c.done()?;
                let case = self.authorize(&caller, &note, case, Action::Control).await?;
                let command = Command::Renew {
                    request_id: r.request_id,
                    case: case.to_string(),
                    seizure_id: r.seizure_id,
                    months: months(r.months),
                };
                Ok(RenewSeizureResponse { result: Some(self.control(command).await?) })
            })
            .await
    }

    async fn deduct_funds(
        &self,
        request: Request<DeductFundsRequest>,
    ) -> Result<Response<DeductFundsResponse>, Status> {
        self.gateway.gate().handle("DeductFunds", request, |caller, _, r, note| async move {
            note.case(r.case_number.clone());
            note.detail(json!({ "seizure_id": r.seizure_id, "amount": r.amount, "emergency_approval": r.emergency_approval }));
            let mut c = Checks::default();
            let case = c.step(&r.request_id, &r.case_number, &r.seizure_id);
            if r.amount <= 0 {
                c.bad("amount", "a deduction names a positive amount in minor units");
            }
            c.done()?;
            let case = self.authorize(&caller, &note, case, Action::Control).await?;
            let command = Command::Deduct {
                request_id: r.request_id,
                case: case.to_string(),
                seizure_id: r.seizure_id,
                amount: r.amount,
                emergency: r.emergency_approval,
            };
            Ok(DeductFundsResponse { result: Some(self.control(command).await?) })
        })
        .await
    }

    async fn record_disposal(
        &self,
        request: Request<RecordDisposalRequest>,
    ) -> Result<Response<RecordDisposalResponse>, Status> {
        self.gateway
            .gate()
            .handle("RecordDisposal", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                note.detail(json!({ "seizure_id": r.seizure_id, "step": r.step, "amount": r.amount }));
                let mut c = Checks::default();
                let case = c.step(&r.request_id, &r.case_number, &r.seizure_id);
                let disposal = match DisposalStep::try_from(r.step) {
                    Ok(DisposalStep::AuctionNotice) => Some(Disposal::AuctionNotice),
                    Ok(DisposalStep::Sold) => Some(Disposal::Sold),
                    Ok(DisposalStep::PartlySold) if r.amount > 0 => Some(Disposal::PartlySold(r.amount)),
                    Ok(DisposalStep::PartlySold) => {
                        c.bad("amount", "a partial sale names the positive amount sold");
                        None
                    }
                    _ => {
                        c.bad("step", "must be AUCTION_NOTICE, SOLD or PARTLY_SOLD");
                        None
                    }
                };
                c.done()?;
                let Some(disposal) = disposal else { return Err(Error::Internal("validated step missing".into())) };
                let case = self.authorize(&caller, &note, case, Action::Control).await?;
                let command = Command::Dispose {
                    request_id: r.request_id,
                    case: case.to_string(),
                    seizure_id: r.seizure_id,
                    disposal,
                };
                Ok(RecordDisposalResponse { result: Some(self.control(command).await?) })
            })
            .await
    }

    /// Any court may see an asset's queue: it shows cases and ranks, not debtors.
    async fn get_seizure_queue(
        &self,
        request: Request<GetSeizureQueueRequest>,
    ) -> Result<Response<GetSeizureQueueResponse>, Status> {
        self.gateway
            .gate()
            .handle("GetSeizureQueue", request, |_, _, r, note| async move {
                note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id }));
                let mut c = Checks::default();
                let kind = c.kind("asset_kind", r.asset_kind);
                c.present("asset_id", &r.asset_id);
                c.done()?;
                let key = store::asset_key(kind, &crate::merge::normalise(&r.asset_id));
                let ledger = self.store.ledgers(std::slice::from_ref(&key)).await?.pop();
                let ledger =
                    ledger.ok_or_else(|| Error::NotFound(format!("no seizure has ever been placed on {key}")))?;
                Ok(GetSeizureQueueResponse { queue: Some(store::queue_proto(&ledger)) })
            })
            .await
    }

    async fn list_case_seizures(
        &self,
        request: Request<ListCaseSeizuresRequest>,
    ) -> Result<Response<ListCaseSeizuresResponse>, Status> {
        self.gateway
            .gate()
            .handle("ListCaseSeizures", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                let mut c = Checks::default();
                let case = c.case("case_number", &r.case_number);
                c.done()?;
                let case = self.authorize(&caller, &note, case, Action::Query).await?;
                let seizures = self.store.case_seizures(&case.to_string()).await?;
                Ok(ListCaseSeizuresResponse { seizures })
            })
            .await
    }

    /// A court sees its own lapsing seizures only.
    async fn list_lapsing_seizures(
        &self,
        request: Request<ListLapsingSeizuresRequest>,
    ) -> Result<Response<ListLapsingSeizuresResponse>, Status> {
        self.gateway
            .gate()
            .handle("ListLapsingSeizures", request, |caller, _, r, note| async move {
                note.detail(json!({ "within_days": r.within_days, "court_code": r.court_code }));
                let mut c = Checks::default();
                if !(1..=3650).contains(&r.within_days) {
                    c.bad("within_days", "must be 1 to 3650");
                }
                let court = match r.court_code.trim() {
                    "" => None,
                    code => identifiers::parse_court_code(code).map_err(|e| c.bad("court_code", e)).ok(),
                };
                c.done()?;
                if court.as_ref().is_some_and(|code| *code != caller.court) {
                    return Err(Error::PermissionDenied(format!(
                        "a court lists its own lapsing seizures; this caller is court {} (R15)",
                        caller.court
                    )));
                }
                let seizures = self.store.lapsing(r.within_days, &caller.court).await?;
                Ok(ListLapsingSeizuresResponse { seizures })
            })
            .await
    }

    async fn transfer_case(
        &self,
        request: Request<TransferCaseRequest>,
    ) -> Result<Response<TransferCaseResponse>, Status> {
        self.gateway
            .gate()
            .handle("TransferCase", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                note.detail(json!({ "to_court_code": r.to_court_code, "decision_reference": r.decision_reference }));
                let mut c = Checks::default();
                c.present("request_id", &r.request_id);
                let case = c.case("case_number", &r.case_number);
                let to_court =
                    identifiers::parse_court_code(&r.to_court_code).map_err(|e| c.bad("to_court_code", e)).ok();
                c.present("decision_reference", &r.decision_reference);
                let now = self.store.now();
                let decided_at = r.decided_at.as_ref().map_or(now, proto::time_of);
                if decided_at > now {
                    c.bad("decided_at", "is in the future");
                }
                c.done()?;
                let case = self.authorize(&caller, &note, case, Action::Control).await?;
                let command = Command::Transfer {
                    request_id: r.request_id,
                    case,
                    to_court: to_court.unwrap_or_default(),
                    decision: r.decision_reference,
                    decided_at,
                };
                self.transfer(command).await
            })
            .await
    }

    /// The receiving court files its new case; it must be that court's case.
    async fn accept_transfer(
        &self,
        request: Request<AcceptTransferRequest>,
    ) -> Result<Response<AcceptTransferResponse>, Status> {
        self.gateway
            .gate()
            .handle("AcceptTransfer", request, |caller, _, r, note| async move {
                note.case(r.new_case_number.clone());
                note.detail(json!({ "transfer_id": r.transfer_id }));
                let mut c = Checks::default();
                c.present("request_id", &r.request_id);
                c.present("transfer_id", &r.transfer_id);
                let new_case = c.case("new_case_number", &r.new_case_number);
                c.done()?;
                let new_case = self.authorize(&caller, &note, new_case, Action::Control).await?;
                let command = Command::Accept { request_id: r.request_id, transfer_id: r.transfer_id, new_case };
                let t = self.transfer(command).await?;
                Ok(AcceptTransferResponse { transfer: t.transfer, message: t.message })
            })
            .await
    }

    /// A court sees the transfers it sends or receives.
    async fn list_transfers(
        &self,
        request: Request<ListTransfersRequest>,
    ) -> Result<Response<ListTransfersResponse>, Status> {
        self.gateway
            .gate()
            .handle("ListTransfers", request, |caller, _, r, _| async move {
                let (mut transfers, mut disposal_transfers) = self.store.transfers(r.overdue_only).await?;
                let mine = |court: Option<String>| court.as_deref() == Some(caller.court.as_str());
                transfers.retain(|t| t.from_court == caller.court || t.to_court == caller.court);
                disposal_transfers.retain(|d| mine(court_of(&d.from_case)) || mine(court_of(&d.to_case)));
                Ok(ListTransfersResponse { transfers, disposal_transfers })
            })
            .await
    }

    async fn request_disposal_transfer(
        &self,
        request: Request<RequestDisposalTransferRequest>,
    ) -> Result<Response<RequestDisposalTransferResponse>, Status> {
        self.gateway
            .gate()
            .handle("RequestDisposalTransfer", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id }));
                let mut c = Checks::default();
                c.present("request_id", &r.request_id);
                let case = c.case("case_number", &r.case_number);
                let kind = c.kind("asset_kind", r.asset_kind);
                c.present("asset_id", &r.asset_id);
                c.done()?;
                let case = self.authorize(&caller, &note, case, Action::Control).await?;
                let asset_key = store::asset_key(kind, &crate::merge::normalise(&r.asset_id));
                let d = self.disposal(Command::RequestDisposal { request_id: r.request_id, case, asset_key }).await?;
                Ok(RequestDisposalTransferResponse { disposal_transfer: d.disposal_transfer, message: d.message })
            })
            .await
    }

    async fn answer_disposal_transfer(
        &self,
        request: Request<AnswerDisposalTransferRequest>,
    ) -> Result<Response<AnswerDisposalTransferResponse>, Status> {
        self.gateway
            .gate()
            .handle("AnswerDisposalTransfer", request, |caller, _, r, note| async move {
                note.case(r.case_number.clone());
                note.detail(json!({ "disposal_transfer_id": r.disposal_transfer_id, "approve": r.approve }));
                let mut c = Checks::default();
                c.present("request_id", &r.request_id);
                let case = c.case("case_number", &r.case_number);
                c.present("disposal_transfer_id", &r.disposal_transfer_id);
                c.done()?;
                let case = self.authorize(&caller, &note, case, Action::Control).await?;
                let command = Command::AnswerDisposal {
                    request_id: r.request_id,
                    case: case.to_string(),
                    id: r.disposal_transfer_id,
                    approve: r.approve,
                };
                self.disposal(command).await
            })
            .await
    }

    type WatchEventsStream = ReceiverStream<Result<WatchEventsResponse, Status>>;

    /// A court watches the events of the seizures it holds.
    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        self.gateway
            .gate()
            .handle("WatchEvents", request, |caller, _, r, note| async move {
                note.detail(json!({ "after_sequence": r.after_sequence }));
                let mut last = r.after_sequence;
                if last < 0 {
                    return Err(Error::InvalidArgument(vec![Violation {
                        field: "after_sequence".into(),
                        description: "must be 0 or a sequence number already seen".into(),
                    }]));
                }
                let (tx, rx) = mpsc::channel(256);
                let store = self.store.clone();
                let committed = store.committed();
                tokio::spawn(async move {
                    loop {
                        // Register interest before reading, so a commit between the read and the wait is not missed.
                        let notified = committed.notified();
                        let events = match store.events_after(last, 500).await {
                            Ok(events) => events,
                            Err(e) => {
                                let _ = tx.send(Err(Error::from(e).into())).await;
                                return;
                            }
                        };
                        let full = events.len() == 500;
                        for e in events {
                            last = e.sequence;
                            if e.court_code == caller.court && tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                        if !full {
                            tokio::select! {
                                _ = notified => {}
                                _ = tokio::time::sleep(WATCH_POLL) => {}
                                _ = tx.closed() => return,
                            }
                        }
                    }
                });
                Ok(ReceiverStream::new(rx))
            })
            .await
    }
}
