//! The decisions that move a debtor between enforcement and bankruptcy
//! (R24–R26): an execution court's transfer to review under its enforcement
//! case (authorized as a control step); the bankruptcy court's acceptance,
//! refusal or dismissal under its own bankruptcy case. Each: validate → the
//! court acts on its own case → the debtor's kind → one ledger step.

use prost::Message as _;
use serde_json::json;

use super::DebtorApi;
use crate::{
    core::{
        clock::{Time, beijing_date},
        error::Error,
        identifiers::{CaseNumber, DebtorId},
        proto::{
            BankruptcyOutcome, Debtor, RecordBankruptcyAcceptanceRequest, RecordBankruptcyDismissalRequest,
            RecordBankruptcyRefusalRequest, TransferToBankruptcyReviewRequest, time_of,
        },
    },
    gateway::{call::Call, validate::Checks},
    ledger::{
        LedgerError,
        command::{Command, RequestKey},
        rules::{self, Action, BankruptcyAct, Decision},
    },
};

/// What every decision request carries.
pub(super) struct Asked<'a> {
    request_id: &'a str,
    case_number: &'a str,
    debtor: Option<&'a Debtor>,
    decision_reference: &'a str,
    decided_at: Option<&'a prost_types::Timestamp>,
}

impl DebtorApi {
    /// R24: an execution court transfers the debtor to review under one of its enforcement cases.
    pub(super) async fn review(
        &self,
        call: &Call,
        r: TransferToBankruptcyReviewRequest,
    ) -> Result<BankruptcyOutcome, Error> {
        let asked = r.asked();
        let mut c = Checks::default();
        c.present("grounds", &r.grounds);
        let case = c.case("case_number", &r.case_number);
        let (case, debtor, at) = self.checked(call, &asked, c, case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        self.decide(call, (&asked, &r.encode_to_vec()), (case, debtor, at), (BankruptcyAct::Review, &r.grounds)).await
    }

    /// R25, R26: the bankruptcy court decides under its own bankruptcy case.
    pub(super) async fn bankruptcy(
        &self,
        call: &Call,
        r: &impl Deciding,
        act: BankruptcyAct,
    ) -> Result<BankruptcyOutcome, Error> {
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
    ) -> Result<(CaseNumber, DebtorId, Time), Error> {
        call.note.request_id(asked.request_id);
        call.note.case(asked.case_number);
        call.note.detail(json!({ "decision_reference": asked.decision_reference }));
        c.present("request_id", asked.request_id);
        c.present("decision_reference", asked.decision_reference);
        let now = self.acting.store.now();
        let debtor = self.debtor(&mut c, asked.debtor, now);
        if asked.decided_at.is_some_and(|t| time_of(t) > now) {
            c.bad("decided_at", "is in the future");
        }
        let (case, debtor) = c.done(case.zip(debtor))?;
        call.note.debtors([debtor.clone()]);
        Ok((case, debtor, asked.decided_at.map_or(now, time_of)))
    }

    /// The request's one debtor, validated (R21, R22).
    pub(super) fn debtor(&self, c: &mut Checks, debtor: Option<&Debtor>, now: Time) -> Option<DebtorId> {
        match debtor {
            Some(d) => c.debtor("debtor", d, beijing_date(now)).map(|(id, _)| id),
            None => {
                c.bad("debtor", "is required: the debtor the request is about");
                None
            }
        }
    }

    /// One ledger step recording the decision.
    async fn decide(
        &self,
        call: &Call,
        (asked, bytes): (&Asked<'_>, &[u8]),
        (case, debtor, at): (CaseNumber, DebtorId, Time),
        (act, grounds): (BankruptcyAct, &str),
    ) -> Result<BankruptcyOutcome, Error> {
        let kind = rules::debtor_kind(&debtor, &self.enterprise_prefixes);
        if act != BankruptcyAct::Review {
            rules::bankruptcy_decision(kind, &case).map_err(LedgerError::from)?;
        }
        let request = RequestKey::of(&call.caller.court, &call.caller.officer, asked.request_id, bytes);
        let decision = Decision {
            reference: asked.decision_reference.trim().to_string(),
            court: call.caller.court.clone(),
            case_number: case.to_string(),
            grounds: grounds.trim().to_string(),
            at,
        };
        let (debtor_key, masked) = (self.debtors.debtor(&debtor), debtor.masked().to_string());
        let lifting = self.lifting;
        let command = Command::Bankruptcy { request, debtor_key, debtor: masked, kind, act, decision, lifting };
        self.acting.execute(call, command).await
    }
}

/// The decision requests, each read as what every decision carries.
pub(super) trait Deciding: prost::Message {
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

deciding!(
    TransferToBankruptcyReviewRequest,
    RecordBankruptcyAcceptanceRequest,
    RecordBankruptcyRefusalRequest,
    RecordBankruptcyDismissalRequest
);
