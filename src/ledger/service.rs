//! The court-facing seizure service. A step reads top-down: validate the
//! request, find the asset through search (placements only: what is seized
//! must be what a registry reports), then one durable ledger step, whose
//! reply is returned (and remembered under the request id).

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    rules::{self, Disposal},
    store::{self, Command, Reply, Store},
};
use crate::{
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
    fn step(&mut self, request_id: &str, case_number: &str, seizure_id: &str) {
        self.present("request_id", request_id);
        self.case("case_number", case_number);
        self.present("seizure_id", seizure_id);
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

fn months(m: u32) -> Option<u32> {
    (m > 0).then_some(m)
}

#[tonic::async_trait]
impl SeizureService for SeizureApi {
    async fn place_seizure(
        &self,
        request: Request<PlaceSeizureRequest>,
    ) -> Result<Response<PlaceSeizureResponse>, Status> {
        let r = request.into_inner();
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
        let (case, Some(debtor)) = (case_of(case)?, debtor) else {
            return Err(Error::Internal("validated debtor missing".into()).into());
        };
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
        Ok(Response::new(PlaceSeizureResponse { result: Some(self.control(command).await?) }))
    }

    async fn release_seizure(
        &self,
        request: Request<ReleaseSeizureRequest>,
    ) -> Result<Response<ReleaseSeizureResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.step(&r.request_id, &r.case_number, &r.seizure_id);
        c.done()?;
        let command = Command::Release {
            request_id: r.request_id,
            case: r.case_number,
            seizure_id: r.seizure_id,
            emergency: r.emergency_approval,
        };
        Ok(Response::new(ReleaseSeizureResponse { result: Some(self.control(command).await?) }))
    }

    async fn renew_seizure(
        &self,
        request: Request<RenewSeizureRequest>,
    ) -> Result<Response<RenewSeizureResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.step(&r.request_id, &r.case_number, &r.seizure_id);
        c.done()?;
        let command = Command::Renew {
            request_id: r.request_id,
            case: r.case_number,
            seizure_id: r.seizure_id,
            months: months(r.months),
        };
        Ok(Response::new(RenewSeizureResponse { result: Some(self.control(command).await?) }))
    }

    async fn deduct_funds(
        &self,
        request: Request<DeductFundsRequest>,
    ) -> Result<Response<DeductFundsResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.step(&r.request_id, &r.case_number, &r.seizure_id);
        if r.amount <= 0 {
            c.bad("amount", "a deduction names a positive amount in minor units");
        }
        c.done()?;
        let command = Command::Deduct {
            request_id: r.request_id,
            case: r.case_number,
            seizure_id: r.seizure_id,
            amount: r.amount,
            emergency: r.emergency_approval,
        };
        Ok(Response::new(DeductFundsResponse { result: Some(self.control(command).await?) }))
    }

    async fn record_disposal(
        &self,
        request: Request<RecordDisposalRequest>,
    ) -> Result<Response<RecordDisposalResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.step(&r.request_id, &r.case_number, &r.seizure_id);
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
        let Some(disposal) = disposal else { return Err(Error::Internal("validated step missing".into()).into()) };
        let command =
            Command::Dispose { request_id: r.request_id, case: r.case_number, seizure_id: r.seizure_id, disposal };
        Ok(Response::new(RecordDisposalResponse { result: Some(self.control(command).await?) }))
    }

    async fn get_seizure_queue(
        &self,
        request: Request<GetSeizureQueueRequest>,
    ) -> Result<Response<GetSeizureQueueResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        let kind = c.kind("asset_kind", r.asset_kind);
        c.present("asset_id", &r.asset_id);
        c.done()?;
        let key = store::asset_key(kind, &crate::merge::normalise(&r.asset_id));
        let ledger = self.store.ledgers(std::slice::from_ref(&key)).await.map_err(Error::from)?.pop();
        let ledger = ledger.ok_or_else(|| Error::NotFound(format!("no seizure has ever been placed on {key}")))?;
        Ok(Response::new(GetSeizureQueueResponse { queue: Some(store::queue_proto(&ledger)) }))
    }

    async fn list_case_seizures(
        &self,
        request: Request<ListCaseSeizuresRequest>,
    ) -> Result<Response<ListCaseSeizuresResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        let case = c.case("case_number", &r.case_number);
        c.done()?;
        let seizures = self.store.case_seizures(&case_of(case)?.to_string()).await.map_err(Error::from)?;
        Ok(Response::new(ListCaseSeizuresResponse { seizures }))
    }

    async fn list_lapsing_seizures(
        &self,
        request: Request<ListLapsingSeizuresRequest>,
    ) -> Result<Response<ListLapsingSeizuresResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        if !(1..=3650).contains(&r.within_days) {
            c.bad("within_days", "must be 1 to 3650");
        }
        if !r.court_code.is_empty() {
            let _ = identifiers::parse_court_code(&r.court_code).map_err(|e| c.bad("court_code", e));
        }
        c.done()?;
        let seizures = self.store.lapsing(r.within_days, r.court_code.trim()).await.map_err(Error::from)?;
        Ok(Response::new(ListLapsingSeizuresResponse { seizures }))
    }

    async fn transfer_case(
        &self,
        request: Request<TransferCaseRequest>,
    ) -> Result<Response<TransferCaseResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        let case = c.case("case_number", &r.case_number);
        let to_court = identifiers::parse_court_code(&r.to_court_code).map_err(|e| c.bad("to_court_code", e)).ok();
        c.present("decision_reference", &r.decision_reference);
        let now = self.store.now();
        let decided_at = r.decided_at.as_ref().map_or(now, proto::time_of);
        if decided_at > now {
            c.bad("decided_at", "is in the future");
        }
        c.done()?;
        let command = Command::Transfer {
            request_id: r.request_id,
            case: case_of(case)?,
            to_court: to_court.unwrap_or_default(),
            decision: r.decision_reference,
            decided_at,
        };
        Ok(Response::new(self.transfer(command).await?))
    }

    async fn accept_transfer(
        &self,
        request: Request<AcceptTransferRequest>,
    ) -> Result<Response<AcceptTransferResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        c.present("transfer_id", &r.transfer_id);
        let new_case = c.case("new_case_number", &r.new_case_number);
        c.done()?;
        let command =
            Command::Accept { request_id: r.request_id, transfer_id: r.transfer_id, new_case: case_of(new_case)? };
        let t = self.transfer(command).await?;
        Ok(Response::new(AcceptTransferResponse { transfer: t.transfer, message: t.message }))
    }

    async fn list_transfers(
        &self,
        request: Request<ListTransfersRequest>,
    ) -> Result<Response<ListTransfersResponse>, Status> {
        let (transfers, disposal_transfers) =
            self.store.transfers(request.into_inner().overdue_only).await.map_err(Error::from)?;
        Ok(Response::new(ListTransfersResponse { transfers, disposal_transfers }))
    }

    async fn request_disposal_transfer(
        &self,
        request: Request<RequestDisposalTransferRequest>,
    ) -> Result<Response<RequestDisposalTransferResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        let case = c.case("case_number", &r.case_number);
        let kind = c.kind("asset_kind", r.asset_kind);
        c.present("asset_id", &r.asset_id);
        c.done()?;
        let asset_key = store::asset_key(kind, &crate::merge::normalise(&r.asset_id));
        let command = Command::RequestDisposal { request_id: r.request_id, case: case_of(case)?, asset_key };
        let d = self.disposal(command).await?;
        Ok(Response::new(RequestDisposalTransferResponse {
            disposal_transfer: d.disposal_transfer,
            message: d.message,
        }))
    }

    async fn answer_disposal_transfer(
        &self,
        request: Request<AnswerDisposalTransferRequest>,
    ) -> Result<Response<AnswerDisposalTransferResponse>, Status> {
        let r = request.into_inner();
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        c.case("case_number", &r.case_number);
        c.present("disposal_transfer_id", &r.disposal_transfer_id);
        c.done()?;
        let command = Command::AnswerDisposal {
            request_id: r.request_id,
            case: r.case_number,
            id: r.disposal_transfer_id,
            approve: r.approve,
        };
        Ok(Response::new(self.disposal(command).await?))
    }

    type WatchEventsStream = ReceiverStream<Result<WatchEventsResponse, Status>>;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let mut last = request.into_inner().after_sequence;
        if last < 0 {
            return Err(Error::InvalidArgument(vec![Violation {
                field: "after_sequence".into(),
                description: "must be 0 or a sequence number already seen".into(),
            }])
            .into());
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
                    if tx.send(Ok(e)).await.is_err() {
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
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
