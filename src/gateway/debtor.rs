//! The court-facing debtor service: the decisions that move a debtor between
//! enforcement and bankruptcy (R24–R26). Each reads top-down, after the spine:
//! validate every field → the court acts on its own case (an enforcement case
//! for a review, authorized as a control step; its own bankruptcy case for an
//! acceptance or a refusal) → the debtor's kind → one ledger step.

use prost::Message as _;
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::{
    core::{
        clock::beijing_date,
        error::Error,
        identifiers::{CaseNumber, DebtorId},
        proto::{
            BankruptcyOutcome, Debtor, RecordBankruptcyAcceptanceRequest, RecordBankruptcyAcceptanceResponse,
            RecordBankruptcyRefusalRequest, RecordBankruptcyRefusalResponse, TransferToBankruptcyReviewRequest,
            TransferToBankruptcyReviewResponse, debtor_service_server::DebtorService, time_of,
        },
    },
    gateway::{
        acting::Acting,
        audit::Key,
        call::{Call, reply},
        validate::Checks,
    },
    ledger::{
        command::{Command, RequestKey},
        rules::{self, Action, BankruptcyAct, Decision},
    },
};

/// The debtor service over the ledger.
pub struct DebtorApi {
    /// The ledger and who may act on it.
    acting: Acting,
    /// Keys debtors as the audit trail and the cases do.
    debtors: Key,
    /// Credit-code prefixes of enterprise legal persons.
    enterprise_prefixes: Vec<String>,
}

/// What every decision request carries.
struct Asked<'a> {
    request_id: &'a str,
    case_number: &'a str,
    debtor: Option<&'a Debtor>,
    decision_reference: &'a str,
    decided_at: Option<&'a prost_types::Timestamp>,
}

impl DebtorApi {
    /// The service.
    pub fn new(acting: Acting, debtors: Key, enterprise_prefixes: Vec<String>) -> Self {
        Self { acting, debtors, enterprise_prefixes }
    }

    /// R24: an execution court transfers the debtor to review under one of its enforcement cases.
    async fn review(&self, call: &Call, r: TransferToBankruptcyReviewRequest) -> Result<BankruptcyOutcome, Error> {
        let asked = r.asked();
        let mut c = Checks::default();
        c.present("grounds", &r.grounds);
        let case = c.case("case_number", &r.case_number);
        let (case, debtor, at) = self.checked(call, &asked, c, case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        self.decide(call, (&asked, &r.encode_to_vec()), (case, debtor, at), (BankruptcyAct::Review, &r.grounds)).await
    }

    /// R25, R26: the bankruptcy court decides under its own bankruptcy case.
    async fn bankruptcy(&self, call: &Call, r: &impl Deciding, act: BankruptcyAct) -> Result<BankruptcyOutcome, Error> {
        let (asked, bytes) = (r.asked(), r.encode_to_vec());
        let mut c = Checks::default();
        let case = c.bankruptcy_case("case_number", asked.case_number);
        let (case, debtor, at) = self.checked(call, &asked, c, case)?;
        // A court decides under its own bankruptcy case, as it acts under its own enforcement case (R15).
        self.acting.authorize(call, &case, Action::Control).await?;
        self.decide(call, (&asked, &bytes), (case, debtor, at), (act, "")).await
    }

    /// Every field checked at once: the case, the debtor and the decision's reference and date.
    fn checked(
        &self,
        call: &Call,
        asked: &Asked<'_>,
        mut c: Checks,
        case: Option<CaseNumber>,
    ) -> Result<(CaseNumber, DebtorId, crate::core::clock::Time), Error> {
        call.note.request_id(asked.request_id);
        call.note.case(asked.case_number);
        call.note.detail(json!({ "decision_reference": asked.decision_reference }));
        c.present("request_id", asked.request_id);
        c.present("decision_reference", asked.decision_reference);
        let now = self.acting.store.now();
        let debtor = match asked.debtor {
            Some(d) => c.debtor("debtor", d, beijing_date(now)).map(|(id, _)| id),
            None => {
                c.bad("debtor", "is required: the debtor the decision is about");
                None
            }
        };
        if asked.decided_at.is_some_and(|t| time_of(t) > now) {
            c.bad("decided_at", "is in the future");
        }
        let (case, debtor) = c.done(case.zip(debtor))?;
        call.note.debtors([debtor.clone()]);
        Ok((case, debtor, asked.decided_at.map_or(now, time_of)))
    }

    /// One ledger step recording the decision.
    async fn decide(
        &self,
        call: &Call,
        (asked, bytes): (&Asked<'_>, &[u8]),
        (case, debtor, at): (CaseNumber, DebtorId, crate::core::clock::Time),
        (act, grounds): (BankruptcyAct, &str),
    ) -> Result<BankruptcyOutcome, Error> {
        let kind = rules::debtor_kind(&debtor, &self.enterprise_prefixes);
        if act != BankruptcyAct::Review {
            rules::bankruptcy_decision(kind, &case).map_err(crate::ledger::LedgerError::from)?;
        }
        let request = RequestKey::of(&call.caller.court, &call.caller.officer, asked.request_id, bytes);
        let decision = Decision {
            reference: asked.decision_reference.trim().to_string(),
            court: call.caller.court.clone(),
            case_number: case.to_string(),
            grounds: grounds.trim().to_string(),
            at,
        };
        let debtor_key = self.debtors.debtor(&debtor);
        self.acting.execute(call, Command::Bankruptcy { request, debtor_key, kind, act, decision }).await
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
}

/// The decision requests, each read as what every decision carries.
trait Deciding: prost::Message {
    fn asked(&self) -> Asked<'_>;
}

macro_rules! deciding {
    ($($request:ty),*) => {
        $(impl Deciding for $request {
            fn asked(&self) -> Asked<'_> {
                Asked {
                    request_id: &self.request_id,
                    case_number: &self.case_number,
                    debtor: self.debtor.as_ref(),
                    decision_reference: &self.decision_reference,
                    decided_at: self.decided_at.as_ref(),
                }
            }
        })*
    };
}

deciding!(TransferToBankruptcyReviewRequest, RecordBankruptcyAcceptanceRequest, RecordBankruptcyRefusalRequest);
