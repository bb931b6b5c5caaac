//! The court-facing seizure service. Every control step reads top-down, after
//! the spine ([`crate::gateway::spine`]) has named the court and will record
//! the call: validate every field ([`Checks`]) → authorize the acting case
//! (R15) → build the ledger command (a placement first finds the asset at its
//! registry: what is seized must be what a registry reports) → one durable
//! ledger step ([`SeizureApi::execute`]), whose reply is returned and
//! remembered under the request id. The steps are in [`control`]; reads and
//! the event stream in [`reads`].

mod control;
mod reads;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::{
    core::{
        error::Error,
        identifiers::CaseNumber,
        proto::{
            AcceptTransferRequest, AcceptTransferResponse, AnswerDisposalTransferRequest,
            AnswerDisposalTransferResponse, DeductFundsRequest, DeductFundsResponse, GetSeizureQueueRequest,
            GetSeizureQueueResponse, ListCaseSeizuresRequest, ListCaseSeizuresResponse, ListLapsingSeizuresRequest,
            ListLapsingSeizuresResponse, ListTransfersRequest, ListTransfersResponse, PlaceSeizureRequest,
            PlaceSeizureResponse, RecordDesignationRequest, RecordDesignationResponse, RecordDisposalRequest,
            RecordDisposalResponse, ReleaseSeizureRequest, ReleaseSeizureResponse, RenewSeizureRequest,
            RenewSeizureResponse, RequestDisposalTransferRequest, RequestDisposalTransferResponse, TransferCaseRequest,
            TransferCaseResponse, WatchEventsRequest, seizure_service_server::SeizureService,
        },
    },
    gateway::{
        audit::Key,
        auth::Authority,
        call::{Call, reply},
    },
    ledger::{
        command::{Command, Reply},
        model::Model,
        rules::Action,
        store::Store,
    },
    registry::network::Network,
};

/// The seizure service over the ledger and the registries.
pub struct SeizureApi {
    store: Store,
    /// Keys debtors as the audit trail does, so a debtor's cases are found without its number.
    debtors: Key,
    /// The ledger in memory, refreshed before a court hears of its step.
    model: Arc<Model>,
    network: Arc<Network>,
    authority: Authority,
}

impl SeizureApi {
    /// The service.
    pub fn new(store: Store, debtors: Key, model: Arc<Model>, network: Arc<Network>, authority: Authority) -> Self {
        Self { store, debtors, model, network, authority }
    }

    /// Notes the validated case for the audit and checks the caller may act on it (R15).
    async fn authorize(&self, call: &Call, case: &CaseNumber, action: Action) -> Result<(), Error> {
        call.note.case(case.to_string());
        self.authority.authorize(&call.caller, case, action).await
    }

    /// One durable ledger step; its reply, as the method answers it.
    async fn execute<R: TryFrom<Reply, Error = Reply>>(&self, call: &Call, command: Command) -> Result<R, Error> {
        let step = command.request().map(|(key, method)| (key.clone(), method));
        let reply = self.store.execute(command).await?;
        // Before the court hears of its step, its own searches here must see it.
        if let Err(e) = self.model.refresh().await {
            tracing::warn!(error = %e, "the read model missed a step; the next refresh applies it");
        }
        if let Some((key, method)) = step {
            // Marked audited once the spine has its record (R16).
            call.note.acknowledged(key, method);
        }
        R::try_from(reply).map_err(|other| Error::Internal(format!("unexpected ledger reply {other:?}")))
    }
}

/// Each method hands the call the spine passed to its step and answers what the step returns.
#[tonic::async_trait]
impl SeizureService for SeizureApi {
    type WatchEventsStream = reads::EventStream;

    async fn place_seizure(
        &self,
        request: Request<PlaceSeizureRequest>,
    ) -> Result<Response<PlaceSeizureResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.place(&call, request).await)
    }

    async fn release_seizure(
        &self,
        request: Request<ReleaseSeizureRequest>,
    ) -> Result<Response<ReleaseSeizureResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.release(&call, request).await)
    }

    async fn renew_seizure(
        &self,
        request: Request<RenewSeizureRequest>,
    ) -> Result<Response<RenewSeizureResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.renew(&call, request).await)
    }

    async fn deduct_funds(
        &self,
        request: Request<DeductFundsRequest>,
    ) -> Result<Response<DeductFundsResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.deduct(&call, request).await)
    }

    async fn record_disposal(
        &self,
        request: Request<RecordDisposalRequest>,
    ) -> Result<Response<RecordDisposalResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.dispose(&call, request).await)
    }

    async fn get_seizure_queue(
        &self,
        request: Request<GetSeizureQueueRequest>,
    ) -> Result<Response<GetSeizureQueueResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.queue(&call, request).await)
    }

    async fn list_case_seizures(
        &self,
        request: Request<ListCaseSeizuresRequest>,
    ) -> Result<Response<ListCaseSeizuresResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.case_seizures(&call, request).await)
    }

    async fn list_lapsing_seizures(
        &self,
        request: Request<ListLapsingSeizuresRequest>,
    ) -> Result<Response<ListLapsingSeizuresResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.lapsing(&call, request).await)
    }

    async fn record_designation(
        &self,
        request: Request<RecordDesignationRequest>,
    ) -> Result<Response<RecordDesignationResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.designate(&call, request).await)
    }

    async fn transfer_case(
        &self,
        request: Request<TransferCaseRequest>,
    ) -> Result<Response<TransferCaseResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.transfer(&call, request).await)
    }

    async fn accept_transfer(
        &self,
        request: Request<AcceptTransferRequest>,
    ) -> Result<Response<AcceptTransferResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.accept(&call, request).await)
    }

    async fn list_transfers(
        &self,
        request: Request<ListTransfersRequest>,
    ) -> Result<Response<ListTransfersResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.transfers(&call, request).await)
    }

    async fn request_disposal_transfer(
        &self,
        request: Request<RequestDisposalTransferRequest>,
    ) -> Result<Response<RequestDisposalTransferResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.request_disposal(&call, request).await)
    }

    async fn answer_disposal_transfer(
        &self,
        request: Request<AnswerDisposalTransferRequest>,
    ) -> Result<Response<AnswerDisposalTransferResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.answer_disposal(&call, request).await)
    }

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.watch(&call, request).await)
    }
}
