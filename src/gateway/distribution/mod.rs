//! The court-facing distribution service (R28–R29): proceeds and secured
//! claims recorded, participations, plans drafted, served, objected to and
//! paid out, and a case's funds. Each method reads top-down after the spine:
//! validate every field → the court's authority on its own case → one ledger
//! step or one read ([`steps`]).

mod steps;

use tonic::{Request, Response, Status};

use crate::{
    core::proto::{
        ApplyToParticipateRequest, ApplyToParticipateResponse, DraftDistributionRequest, DraftDistributionResponse,
        GetCaseFundsRequest, GetCaseFundsResponse, GetDistributionRequest, GetDistributionResponse,
        ListDistributionsRequest, ListDistributionsResponse, ObjectToDistributionRequest, ObjectToDistributionResponse,
        PayOutDistributionRequest, PayOutDistributionResponse, RecordProceedsRequest, RecordProceedsResponse,
        RecordSecuredClaimRequest, RecordSecuredClaimResponse, ServeDistributionRequest, ServeDistributionResponse,
        distribution_service_server::DistributionService,
    },
    gateway::{
        acting::Acting,
        audit::Key,
        call::{Call, reply},
    },
    ledger::rules::Holidays,
    ops::config::LedgerConfig,
};

/// The distribution service over the ledger.
pub struct DistributionApi {
    /// The ledger and who may act on it.
    acting: Acting,
    /// Keys debtors as the audit trail and the cases do.
    debtors: Key,
    /// Credit-code prefixes of enterprise legal persons (R28's by-rank branch).
    enterprise_prefixes: Vec<String>,
    /// The first seizer's bonus under pro-rata sharing, percent (R28).
    bonus_percent: u32,
    /// The calendar R29's periods end by.
    holidays: Holidays,
}

impl DistributionApi {
    /// The service, keying debtors with `debtors`, with the distribution settings of `ledger`.
    pub fn new(acting: Acting, debtors: Key, ledger: &LedgerConfig) -> Self {
        Self {
            acting,
            debtors,
            enterprise_prefixes: ledger.enterprise_prefixes.clone(),
            bonus_percent: ledger.first_seizure_bonus_percent,
            holidays: ledger.holidays(),
        }
    }
}

/// Each method hands the call the spine passed to its step and answers what the step returns.
#[tonic::async_trait]
impl DistributionService for DistributionApi {
    async fn record_proceeds(
        &self,
        request: Request<RecordProceedsRequest>,
    ) -> Result<Response<RecordProceedsResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.proceeds(&call, r).await.map(|p| RecordProceedsResponse { proceeds: Some(p) }))
    }

    async fn record_secured_claim(
        &self,
        request: Request<RecordSecuredClaimRequest>,
    ) -> Result<Response<RecordSecuredClaimResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.secured(&call, r).await.map(|s| RecordSecuredClaimResponse { secured_claim: Some(s) }))
    }

    async fn apply_to_participate(
        &self,
        request: Request<ApplyToParticipateRequest>,
    ) -> Result<Response<ApplyToParticipateResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.participate(&call, r).await)
    }

    async fn draft_distribution(
        &self,
        request: Request<DraftDistributionRequest>,
    ) -> Result<Response<DraftDistributionResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.draft(&call, r).await.map(|d| DraftDistributionResponse { distribution: Some(d) }))
    }

    async fn serve_distribution(
        &self,
        request: Request<ServeDistributionRequest>,
    ) -> Result<Response<ServeDistributionResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        let plan = self.serve(&call, r).await;
        reply(plan.map(|d| ServeDistributionResponse { distribution: Some(d) }))
    }

    async fn object_to_distribution(
        &self,
        request: Request<ObjectToDistributionRequest>,
    ) -> Result<Response<ObjectToDistributionResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.object(&call, r).await.map(|d| ObjectToDistributionResponse { distribution: Some(d) }))
    }

    async fn pay_out_distribution(
        &self,
        request: Request<PayOutDistributionRequest>,
    ) -> Result<Response<PayOutDistributionResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.pay_out(&call, r).await.map(|d| PayOutDistributionResponse { distribution: Some(d) }))
    }

    async fn get_distribution(
        &self,
        request: Request<GetDistributionRequest>,
    ) -> Result<Response<GetDistributionResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.get(&call, r).await.map(|d| GetDistributionResponse { distribution: Some(d) }))
    }

    async fn list_distributions(
        &self,
        request: Request<ListDistributionsRequest>,
    ) -> Result<Response<ListDistributionsResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.list(&call, r).await)
    }

    async fn get_case_funds(
        &self,
        request: Request<GetCaseFundsRequest>,
    ) -> Result<Response<GetCaseFundsResponse>, Status> {
        let (call, _, r) = Call::of(request)?;
        reply(self.funds(&call, r).await)
    }
}
