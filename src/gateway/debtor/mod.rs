//! The court-facing debtor service: the debtor as a whole (R23–R27). Its
//! decisions ([`decisions`]) move a debtor between enforcement and bankruptcy;
//! its cases ([`cases`]) are registered, read as the debtor's picture, and
//! concentrated in one court by a series designation. Each method reads
//! top-down after the spine: validate every field → the court's authority on
//! its own case → one ledger step or one read.

mod cases;
mod decisions;
mod research;

use tonic::{Request, Response, Status};

use crate::{
    core::proto::{
        DesignateSeriesRequest, DesignateSeriesResponse, GetDebtorPictureRequest, GetDebtorPictureResponse,
        ListBankruptcyLiftsRequest, ListBankruptcyLiftsResponse, ListResearchesRequest, ListResearchesResponse,
        RecordBankruptcyAcceptanceRequest, RecordBankruptcyAcceptanceResponse, RecordBankruptcyDismissalRequest,
        RecordBankruptcyDismissalResponse, RecordBankruptcyRefusalRequest, RecordBankruptcyRefusalResponse,
        RegisterCaseRequest, RegisterCaseResponse, ResumeCaseRequest, ResumeCaseResponse, TerminateCaseRequest,
        TerminateCaseResponse, TransferToBankruptcyReviewRequest, TransferToBankruptcyReviewResponse,
        debtor_service_server::DebtorService,
    },
    gateway::{
        acting::Acting,
        audit::Key,
        call::{Call, reply},
        jobs::research::Researches,
    },
    ledger::rules::{BankruptcyAct, Lifting},
    ops::config::LedgerConfig,
};

/// The debtor service over the ledger.
pub struct DebtorApi {
    /// The ledger and who may act on it.
    acting: Acting,
    /// Keys debtors as the audit trail and the cases do.
    debtors: Key,
    /// Credit-code prefixes of enterprise legal persons.
    enterprise_prefixes: Vec<String>,
    /// Who lifts the seizures on an acceptance (R25).
    lifting: Lifting,
    /// Whether a series designation moves preservation cases it does not list (R23).
    series_with_preservation: bool,
    /// The re-search duty: seals a terminated case's debtors, wakes the worker (R30).
    researches: Researches,
}

impl DebtorApi {
    /// The service, keying debtors with `debtors`, handing terminated cases to `researches`, with the
    /// debtor rules' settings of `ledger`.
    pub fn new(acting: Acting, (debtors, researches): (Key, Researches), ledger: &LedgerConfig) -> Self {
        Self {
            acting,
            debtors: debtors.clone(),
            enterprise_prefixes: ledger.enterprise_prefixes.clone(),
            lifting: ledger.bankruptcy_lifting,
            series_with_preservation: ledger.series_with_preservation,
            researches,
        }
    }
}

/// Each method hands the call the spine passed to its step and answers what the step returns.
#[tonic::async_trait]
impl DebtorService for DebtorApi {
    async fn transfer_to_bankruptcy_review(
        &self,
        request: Request<TransferToBankruptcyReviewRequest>,
    ) -> Result<Response<TransferToBankruptcyReviewResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(
            self.review(&call, request)
                .await
                .map(|outcome| TransferToBankruptcyReviewResponse { outcome: Some(outcome) }),
        )
    }

    async fn record_bankruptcy_acceptance(
        &self,
        request: Request<RecordBankruptcyAcceptanceRequest>,
    ) -> Result<Response<RecordBankruptcyAcceptanceResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        let outcome = self.bankruptcy(&call, &r, BankruptcyAct::Accept).await;
        reply(outcome.map(|outcome| RecordBankruptcyAcceptanceResponse { outcome: Some(outcome) }))
    }

    async fn record_bankruptcy_refusal(
        &self,
        request: Request<RecordBankruptcyRefusalRequest>,
    ) -> Result<Response<RecordBankruptcyRefusalResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        let outcome = self.bankruptcy(&call, &r, BankruptcyAct::Refuse).await;
        reply(outcome.map(|outcome| RecordBankruptcyRefusalResponse { outcome: Some(outcome) }))
    }

    async fn record_bankruptcy_dismissal(
        &self,
        request: Request<RecordBankruptcyDismissalRequest>,
    ) -> Result<Response<RecordBankruptcyDismissalResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        let outcome = self.bankruptcy(&call, &r, BankruptcyAct::Dismiss).await;
        reply(outcome.map(|outcome| RecordBankruptcyDismissalResponse { outcome: Some(outcome) }))
    }

    async fn register_case(
        &self,
        request: Request<RegisterCaseRequest>,
    ) -> Result<Response<RegisterCaseResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.register(&call, r).await.map(|case| RegisterCaseResponse { case: Some(case) }))
    }

    async fn get_debtor_picture(
        &self,
        request: Request<GetDebtorPictureRequest>,
    ) -> Result<Response<GetDebtorPictureResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.picture(&call, r).await)
    }

    async fn list_bankruptcy_lifts(
        &self,
        request: Request<ListBankruptcyLiftsRequest>,
    ) -> Result<Response<ListBankruptcyLiftsResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.lifts(&call, r).await)
    }

    async fn terminate_case(
        &self,
        request: Request<TerminateCaseRequest>,
    ) -> Result<Response<TerminateCaseResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.terminate(&call, r).await)
    }

    async fn resume_case(&self, request: Request<ResumeCaseRequest>) -> Result<Response<ResumeCaseResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.resume(&call, r).await)
    }

    async fn list_researches(
        &self,
        request: Request<ListResearchesRequest>,
    ) -> Result<Response<ListResearchesResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.researches(&call, r).await)
    }

    async fn designate_series(
        &self,
        request: Request<DesignateSeriesRequest>,
    ) -> Result<Response<DesignateSeriesResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.series(&call, r).await)
    }
}
