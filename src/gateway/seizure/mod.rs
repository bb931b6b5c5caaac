//! The court-facing seizure service. Every control step reads top-down, after
//! the spine ([`crate::gateway::spine`]) has named the court and will record
//! the call: validate every field ([`Checks`]) → authorize the acting case
//! (R15) → build the ledger command (a placement first finds the asset at its
//! registry: what is seized must be what a registry reports) → one durable
//! ledger step ([`Acting::execute`]), whose reply is returned and
//! remembered under the request id. The steps are in [`control`]; reads and
//! the event stream in [`reads`].

mod control;
mod reads;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::{
    core::proto::{
        AcceptTransferRequest, AcceptTransferResponse, AnswerDisposalTransferRequest, AnswerDisposalTransferResponse,
        DeductFundsRequest, DeductFundsResponse, GetSeizureQueueRequest, GetSeizureQueueResponse,
        ListCaseSeizuresRequest, ListCaseSeizuresResponse, ListLapsingSeizuresRequest, ListLapsingSeizuresResponse,
        ListTransfersRequest, ListTransfersResponse, PlaceSeizureRequest, PlaceSeizureResponse,
        RecordDesignationRequest, RecordDesignationResponse, RecordDisposalRequest, RecordDisposalResponse,
        ReleaseSeizureRequest, ReleaseSeizureResponse, RenewSeizureRequest, RenewSeizureResponse,
        RequestDisposalTransferRequest, RequestDisposalTransferResponse, TransferCaseRequest, TransferCaseResponse,
        WatchEventsRequest, seizure_service_server::SeizureService,
    },
    gateway::{
        acting::Acting,
        audit::Key,
        call::{Call, reply},
    },
    registry::network::Network,
};

/// The seizure service over the ledger and the registries.
pub struct SeizureApi {
    /// The ledger and who may act on it.
    acting: Acting,
    /// Keys debtors as the audit trail does, so a debtor's cases are found without its number.
    debtors: Key,
    network: Arc<Network>,
}

impl SeizureApi {
    /// The service.
    pub fn new(acting: Acting, debtors: Key, network: Arc<Network>) -> Self {
        Self { acting, debtors, network }
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
