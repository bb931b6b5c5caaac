//! The court-facing seizure service. Every step reads the same way
//! ([`SeizureApi::step`]): identify the court and audit the call
//! ([`Gate::handle`]) → validate every field ([`Checks`]) → authorize the
//! acting case (R15) → build the ledger command (a placement first finds the
//! asset at its registry: what is seized must be what a registry reports) →
//! one durable ledger step, whose reply is returned and remembered under the
//! request id. Reads go through the gate and the same checks. The pipeline
//! and what the steps share are in [`steps`].

mod steps;

pub use steps::SeizureApi;
use steps::{control, court_of, seizure_step};

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    core::{
        clock::beijing_date,
        error::Error,
        merge,
        proto::{
            AcceptTransferRequest, AcceptTransferResponse, AnswerDisposalTransferRequest,
            AnswerDisposalTransferResponse, AssetKind, ControlResult, DeductFundsRequest, DeductFundsResponse,
            DisposalStep, GetSeizureQueueRequest, GetSeizureQueueResponse, ListCaseSeizuresRequest,
            ListCaseSeizuresResponse, ListLapsingSeizuresRequest, ListLapsingSeizuresResponse, ListTransfersRequest,
            ListTransfersResponse, PlaceSeizureRequest, PlaceSeizureResponse, RecordDesignationRequest,
            RecordDesignationResponse, RecordDisposalRequest, RecordDisposalResponse, ReleaseSeizureRequest,
            ReleaseSeizureResponse, RenewSeizureRequest, RenewSeizureResponse, RequestDisposalTransferRequest,
            RequestDisposalTransferResponse, TransferCaseRequest, TransferCaseResponse, WatchEventsRequest,
            WatchEventsResponse, seizure_service_server::SeizureService,
        },
    },
    gateway::validate::{Checks, violation},
    ledger::{
        asset_key,
        command::Command,
        rules::{self, Action, Disposal},
        views,
    },
};

/// How often a watcher looks for changes committed by other replicas.
const WATCH_POLL: Duration = Duration::from_millis(200);

#[tonic::async_trait]
impl SeizureService for SeizureApi {
    async fn place_seizure(
        &self,
        request: Request<PlaceSeizureRequest>,
    ) -> Result<Response<PlaceSeizureResponse>, Status> {
        self.step(
            "PlaceSeizure",
            request,
            |r, note, c| {
                note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id, "amount": r.amount }));
                let case = control(c, note, &r.request_id, &r.case_number);
                let kind = c.kind("asset_kind", r.asset_kind);
                c.present("asset_id", &r.asset_id);
                match &r.debtor {
                    Some(d) => {
                        if let Some((id, _)) = c.debtor("debtor", d, beijing_date(self.store.now())) {
                            note.debtors([id]);
                        }
                    }
                    None => c.bad("debtor", "is required: the debtor who owns the asset"),
                }
                if rules::is_divisible(kind) {
                    c.amount("amount", r.amount, "a freeze of a deposit or securities names its amount (R4)");
                }
                let claim = r.claim.as_ref().map(|m| (m.currency.trim(), m.minor_units));
                match claim {
                    Some((currency, minor_units)) if kind == AssetKind::Deposit => {
                        c.present("claim.currency", currency);
                        c.amount("claim.minor_units", minor_units, "the claim a deposit freeze secures (R4)");
                    }
                    None if kind == AssetKind::Deposit => c.bad(
                        "claim",
                        "a deposit freeze states the claim it secures: currency and a positive amount (R4)",
                    ),
                    _ => {}
                }
                case
            },
            |r, case, request| async move {
                let kind = AssetKind::try_from(r.asset_kind).unwrap_or_default();
                let asset = self.find(&r, &case, kind).await?;
                let claim = r.claim.as_ref().map(|m| (m.currency.trim().to_ascii_uppercase(), m.minor_units));
                Ok(Command::Place { request, asset, case, amount: r.amount, claim, emergency: r.emergency_approval })
            },
            |result: ControlResult| PlaceSeizureResponse { result: Some(result) },
        )
        .await
    }

    async fn release_seizure(
        &self,
        request: Request<ReleaseSeizureRequest>,
    ) -> Result<Response<ReleaseSeizureResponse>, Status> {
        self.step(
            "ReleaseSeizure",
            request,
            |r, note, c| {
                note.detail(json!({ "seizure_id": r.seizure_id, "emergency_approval": r.emergency_approval }));
                seizure_step(c, note, &r.request_id, &r.case_number, &r.seizure_id)
            },
            |r, case, request| async move {
                Ok(Command::Release {
                    request,
                    case: case.to_string(),
                    seizure_id: r.seizure_id,
                    emergency: r.emergency_approval,
                })
            },
            |result: ControlResult| ReleaseSeizureResponse { result: Some(result) },
        )
        .await
    }

    async fn renew_seizure(
        &self,
        request: Request<RenewSeizureRequest>,
    ) -> Result<Response<RenewSeizureResponse>, Status> {
        self.step(
            "RenewSeizure",
            request,
            |r, note, c| {
                note.detail(json!({
                    "seizure_id": r.seizure_id, "months": r.months, "emergency_approval": r.emergency_approval
                }));
                seizure_step(c, note, &r.request_id, &r.case_number, &r.seizure_id)
            },
            |r, case, request| async move {
                Ok(Command::Renew {
                    request,
                    case: case.to_string(),
                    seizure_id: r.seizure_id,
                    months: (r.months > 0).then_some(r.months),
                    emergency: r.emergency_approval,
                })
            },
            |result: ControlResult| RenewSeizureResponse { result: Some(result) },
        )
        .await
    }

    async fn deduct_funds(
        &self,
        request: Request<DeductFundsRequest>,
    ) -> Result<Response<DeductFundsResponse>, Status> {
        self.step(
            "DeductFunds",
            request,
            |r, note, c| {
                note.detail(json!({ "seizure_id": r.seizure_id, "amount": r.amount, "emergency_approval": r.emergency_approval }));
                let case = seizure_step(c, note, &r.request_id, &r.case_number, &r.seizure_id);
                c.amount("amount", r.amount, "a deduction names its amount in minor units (R9)");
                case
            },
            |r, case, request| async move {
                Ok(Command::Deduct {
                    request,
                    case: case.to_string(),
                    seizure_id: r.seizure_id,
                    amount: r.amount,
                    emergency: r.emergency_approval,
                })
            },
            |result: ControlResult| DeductFundsResponse { result: Some(result) },
        )
        .await
    }

    async fn record_disposal(
        &self,
        request: Request<RecordDisposalRequest>,
    ) -> Result<Response<RecordDisposalResponse>, Status> {
        fn disposal(r: &RecordDisposalRequest) -> Result<Disposal, (&'static str, &'static str)> {
            match DisposalStep::try_from(r.step) {
                Ok(DisposalStep::AuctionNotice) => Ok(Disposal::AuctionNotice),
                Ok(DisposalStep::Sold) => Ok(Disposal::Sold),
                Ok(DisposalStep::PartlySold) if (1..=rules::MAX_AMOUNT).contains(&r.amount) => {
                    Ok(Disposal::PartlySold(r.amount))
                }
                Ok(DisposalStep::PartlySold) => {
                    Err(("amount", "a partial sale names the amount sold, 1 to 10^15 minor units or units"))
                }
                _ => Err(("step", "must be AUCTION_NOTICE, SOLD or PARTLY_SOLD")),
            }
        }
        self.step(
            "RecordDisposal",
            request,
            |r, note, c| {
                note.detail(json!({ "seizure_id": r.seizure_id, "step": r.step, "amount": r.amount }));
                let case = seizure_step(c, note, &r.request_id, &r.case_number, &r.seizure_id);
                if let Err((field, why)) = disposal(r) {
                    c.bad(field, why);
                }
                case
            },
            |r, case, request| async move {
                let disposal = disposal(&r).map_err(|(field, why)| violation(field, why))?;
                Ok(Command::Dispose { request, case: case.to_string(), seizure_id: r.seizure_id, disposal })
            },
            |result: ControlResult| RecordDisposalResponse { result: Some(result) },
        )
        .await
    }

    /// Any court may see an asset's queue: it shows cases and ranks, not debtors.
    async fn get_seizure_queue(
        &self,
        request: Request<GetSeizureQueueRequest>,
    ) -> Result<Response<GetSeizureQueueResponse>, Status> {
        self.gate
            .handle("GetSeizureQueue", request, |_, _, r, note| async move {
                note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id }));
                let mut c = Checks::default();
                let kind = c.kind("asset_kind", r.asset_kind);
                c.present("asset_id", &r.asset_id);
                c.done(Some(()))?;
                let key = asset_key(kind, &merge::normalise(&r.asset_id));
                let ledger = self.store.ledgers(std::slice::from_ref(&key)).await?.pop();
                let ledger =
                    ledger.ok_or_else(|| Error::NotFound(format!("no seizure has ever been placed on {key}")))?;
                Ok(GetSeizureQueueResponse { queue: Some(views::queue(&ledger)) })
            })
            .await
    }

    async fn list_case_seizures(
        &self,
        request: Request<ListCaseSeizuresRequest>,
    ) -> Result<Response<ListCaseSeizuresResponse>, Status> {
        self.gate
            .handle("ListCaseSeizures", request, |caller, _, r, note| async move {
                note.case(&r.case_number);
                let mut c = Checks::default();
                let case = c.case("case_number", &r.case_number);
                let case = c.done(case)?;
                self.authorize(&caller, &note, &case, Action::Query).await?;
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
        self.gate
            .handle("ListLapsingSeizures", request, |caller, _, r, note| async move {
                note.detail(json!({ "within_days": r.within_days, "court_code": r.court_code }));
                let mut c = Checks::default();
                if !(1..=3650).contains(&r.within_days) {
                    c.bad("within_days", "must be 1 to 3650");
                }
                let court = match r.court_code.trim() {
                    "" => None,
                    code => c.court("court_code", code),
                };
                c.done(Some(()))?;
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

    async fn record_designation(
        &self,
        request: Request<RecordDesignationRequest>,
    ) -> Result<Response<RecordDesignationResponse>, Status> {
        self.designation_step("RecordDesignation", request, false, |d: RecordDesignationResponse| d).await
    }

    async fn transfer_case(
        &self,
        request: Request<TransferCaseRequest>,
    ) -> Result<Response<TransferCaseResponse>, Status> {
        self.designation_step("TransferCase", request, true, |t: TransferCaseResponse| t).await
    }

    /// The receiving court files its new case; it must be that court's case.
    async fn accept_transfer(
        &self,
        request: Request<AcceptTransferRequest>,
    ) -> Result<Response<AcceptTransferResponse>, Status> {
        self.step(
            "AcceptTransfer",
            request,
            |r, note, c| {
                note.case(&r.new_case_number);
                note.detail(json!({ "transfer_id": r.transfer_id }));
                c.present("request_id", &r.request_id);
                c.present("transfer_id", &r.transfer_id);
                c.case("new_case_number", &r.new_case_number)
            },
            |r, new_case, request| async move { Ok(Command::Accept { request, transfer_id: r.transfer_id, new_case }) },
            |t: TransferCaseResponse| AcceptTransferResponse { transfer: t.transfer, message: t.message },
        )
        .await
    }

    /// A court sees the transfers it sends or receives.
    async fn list_transfers(
        &self,
        request: Request<ListTransfersRequest>,
    ) -> Result<Response<ListTransfersResponse>, Status> {
        self.gate
            .handle("ListTransfers", request, |caller, _, r, _| async move {
                let mut all = self.store.transfers(r.overdue_only).await?;
                let mine = |court: Option<String>| court.as_deref() == Some(caller.court.as_str());
                all.transfers.retain(|t| t.from_court == caller.court || t.to_court == caller.court);
                all.disposal_transfers.retain(|d| mine(court_of(&d.from_case)) || mine(court_of(&d.to_case)));
                all.designations.retain(|d| mine(court_of(&d.case_number)) || d.to_court_code == caller.court);
                Ok(all)
            })
            .await
    }

    async fn request_disposal_transfer(
        &self,
        request: Request<RequestDisposalTransferRequest>,
    ) -> Result<Response<RequestDisposalTransferResponse>, Status> {
        self.step(
            "RequestDisposalTransfer",
            request,
            |r, note, c| {
                note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id }));
                let case = control(c, note, &r.request_id, &r.case_number);
                c.kind("asset_kind", r.asset_kind);
                c.present("asset_id", &r.asset_id);
                case
            },
            |r, case, request| async move {
                let kind = AssetKind::try_from(r.asset_kind).unwrap_or_default();
                let asset_key = asset_key(kind, &merge::normalise(&r.asset_id));
                Ok(Command::RequestDisposal { request, case, asset_key })
            },
            |d: AnswerDisposalTransferResponse| RequestDisposalTransferResponse {
                disposal_transfer: d.disposal_transfer,
                message: d.message,
            },
        )
        .await
    }

    async fn answer_disposal_transfer(
        &self,
        request: Request<AnswerDisposalTransferRequest>,
    ) -> Result<Response<AnswerDisposalTransferResponse>, Status> {
        self.step(
            "AnswerDisposalTransfer",
            request,
            |r, note, c| {
                note.detail(json!({ "disposal_transfer_id": r.disposal_transfer_id, "approve": r.approve }));
                let case = control(c, note, &r.request_id, &r.case_number);
                c.present("disposal_transfer_id", &r.disposal_transfer_id);
                case
            },
            |r, case, request| async move {
                Ok(Command::AnswerDisposal {
                    request,
                    case: case.to_string(),
                    id: r.disposal_transfer_id,
                    approve: r.approve,
                })
            },
            |d: AnswerDisposalTransferResponse| d,
        )
        .await
    }

    type WatchEventsStream = ReceiverStream<Result<WatchEventsResponse, Status>>;

    /// A court watches the events of the seizures it holds.
    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        self.gate
            .handle("WatchEvents", request, |caller, _, r, note| async move {
                note.detail(json!({ "after_sequence": r.after_sequence }));
                let mut last = r.after_sequence;
                let head = self.store.last_event().await?;
                if !(0..=head).contains(&last) {
                    return Err(violation(
                        "after_sequence",
                        &format!("is {last}; it must be 0 or a sequence number already seen (the last is {head})"),
                    ));
                }
                let slot = self.gate.stream_slot(&caller)?;
                let (tx, rx) = mpsc::channel(256);
                let store = self.store.clone();
                let committed = store.committed();
                tokio::spawn(async move {
                    // The court's slot is held as long as this stream runs.
                    let _slot = slot;
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
