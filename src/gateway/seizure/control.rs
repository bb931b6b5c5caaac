//! The control steps: each validates its request (every bad field at once),
//! authorizes the acting case, builds one ledger command and executes it
//! ([`SeizureApi::execute`]). What they share is here too: finding a placed
//! asset at its registry, the request key that makes a retry safe, and the
//! fields every control request carries.

use serde_json::json;

use super::SeizureApi;
use crate::{
    core::{
        clock::beijing_date,
        error::Error,
        identifiers::CaseNumber,
        proto::{
            AcceptTransferRequest, AcceptTransferResponse, AnswerDisposalTransferRequest,
            AnswerDisposalTransferResponse, AssetKind, ControlResult, DeductFundsRequest, DeductFundsResponse,
            DisposalStep, EncumbranceKind, PlaceSeizureRequest, PlaceSeizureResponse, RecordDesignationRequest,
            RecordDesignationResponse, RecordDisposalRequest, RecordDisposalResponse, ReleaseSeizureRequest,
            ReleaseSeizureResponse, RenewSeizureRequest, RenewSeizureResponse, RequestDisposalTransferRequest,
            RequestDisposalTransferResponse, TransferCaseRequest, TransferCaseResponse, asset::Detail, time_of,
        },
    },
    gateway::{
        call::{Call, Note},
        validate::Checks,
    },
    ledger::{
        asset_key,
        command::{Command, Reply, RequestKey},
        rules::{self, Action, Disposal},
    },
    registry::call::Inquiry,
};

impl SeizureApi {
    pub(super) async fn place(&self, call: &Call, r: PlaceSeizureRequest) -> Result<PlaceSeizureResponse, Error> {
        let (request, note) = (request_key(call, &r), &call.note);
        note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id, "amount": r.amount }));
        let mut c = Checks::default();
        let case = control(&mut c, note, &r.request_id, &r.case_number);
        let kind = c.kind("asset_kind", r.asset_kind);
        c.present("asset_id", &r.asset_id);
        match &r.debtor {
            Some(d) => {
                if let Some((id, _)) = c.debtor("debtor", d, beijing_date(self.acting.store.now())) {
                    note.debtors([id]);
                }
            }
            None => c.bad("debtor", "is required: the debtor who owns the asset"),
        }
        if rules::is_divisible(kind) {
            c.amount("amount", r.amount, "a freeze of a deposit or securities names its amount (R4)");
        }
        match r.claim.as_ref().map(|m| (m.currency.trim(), m.minor_units)) {
            Some((currency, minor_units)) if kind == AssetKind::Deposit => {
                c.present("claim.currency", currency);
                c.amount("claim.minor_units", minor_units, "the claim a deposit freeze secures (R4)");
            }
            None if kind == AssetKind::Deposit => {
                c.bad("claim", "a deposit freeze states the claim it secures: currency and a positive amount (R4)")
            }
            _ => {}
        }
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let (asset, debtor_key, secured) = self.find(&r, &case, kind).await?;
        let claim = r.claim.as_ref().map(|m| (m.currency.trim().to_ascii_uppercase(), m.minor_units));
        let (amount, emergency) = (r.amount, r.emergency_approval);
        let command = Command::Place { request, asset, debtor_key, case, amount, claim, emergency, secured };
        Ok(PlaceSeizureResponse { result: Some(self.acting.execute(call, command).await?) })
    }

    pub(super) async fn release(&self, call: &Call, r: ReleaseSeizureRequest) -> Result<ReleaseSeizureResponse, Error> {
        let request = request_key(call, &r);
        call.note.detail(json!({ "seizure_id": r.seizure_id, "emergency_approval": r.emergency_approval }));
        let mut c = Checks::default();
        let case = seizure_step(&mut c, &call.note, &r.request_id, &r.case_number, &r.seizure_id);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let case = case.to_string();
        let command = Command::Release { request, case, seizure_id: r.seizure_id, emergency: r.emergency_approval };
        Ok(ReleaseSeizureResponse { result: Some(self.acting.execute(call, command).await?) })
    }

    pub(super) async fn renew(&self, call: &Call, r: RenewSeizureRequest) -> Result<RenewSeizureResponse, Error> {
        let request = request_key(call, &r);
        call.note.detail(json!({
            "seizure_id": r.seizure_id, "months": r.months, "emergency_approval": r.emergency_approval
        }));
        let mut c = Checks::default();
        let case = seizure_step(&mut c, &call.note, &r.request_id, &r.case_number, &r.seizure_id);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let case = case.to_string();
        let months = (r.months > 0).then_some(r.months);
        let command =
            Command::Renew { request, case, seizure_id: r.seizure_id, months, emergency: r.emergency_approval };
        Ok(RenewSeizureResponse { result: Some(self.acting.execute(call, command).await?) })
    }

    pub(super) async fn deduct(&self, call: &Call, r: DeductFundsRequest) -> Result<DeductFundsResponse, Error> {
        let request = request_key(call, &r);
        call.note.detail(
            json!({ "seizure_id": r.seizure_id, "amount": r.amount, "emergency_approval": r.emergency_approval }),
        );
        let mut c = Checks::default();
        let case = seizure_step(&mut c, &call.note, &r.request_id, &r.case_number, &r.seizure_id);
        c.amount("amount", r.amount, "a deduction names its amount in minor units (R9)");
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let case = case.to_string();
        let (seizure_id, amount, emergency) = (r.seizure_id, r.amount, r.emergency_approval);
        let command = Command::Deduct { request, case, seizure_id, amount, emergency };
        Ok(DeductFundsResponse { result: Some(self.acting.execute(call, command).await?) })
    }

    pub(super) async fn dispose(&self, call: &Call, r: RecordDisposalRequest) -> Result<RecordDisposalResponse, Error> {
        let request = request_key(call, &r);
        call.note.detail(json!({ "seizure_id": r.seizure_id, "step": r.step, "amount": r.amount }));
        let mut c = Checks::default();
        let case = seizure_step(&mut c, &call.note, &r.request_id, &r.case_number, &r.seizure_id);
        let disposal = match DisposalStep::try_from(r.step) {
            Ok(DisposalStep::AuctionNotice) => Some(Disposal::AuctionNotice),
            Ok(DisposalStep::Sold) => Some(Disposal::Sold),
            Ok(DisposalStep::PartlySold) if (1..=rules::MAX_AMOUNT).contains(&r.amount) => {
                Some(Disposal::PartlySold(r.amount))
            }
            Ok(DisposalStep::PartlySold) => {
                c.bad("amount", "a partial sale names the amount sold, 1 to 10^15 minor units or units");
                None
            }
            _ => {
                c.bad("step", "must be AUCTION_NOTICE, SOLD or PARTLY_SOLD");
                None
            }
        };
        let (case, disposal) = c.done(case.zip(disposal))?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let case = case.to_string();
        let command = Command::Dispose { request, case, seizure_id: r.seizure_id, disposal };
        let result: ControlResult = self.acting.execute(call, command).await?;
        Ok(RecordDisposalResponse { result: Some(result) })
    }

    pub(super) async fn designate(
        &self,
        call: &Call,
        r: RecordDesignationRequest,
    ) -> Result<RecordDesignationResponse, Error> {
        self.designation(call, r, false).await
    }

    pub(super) async fn transfer(&self, call: &Call, r: TransferCaseRequest) -> Result<TransferCaseResponse, Error> {
        self.designation(call, r, true).await
    }

    /// RecordDesignation (`handover` false) and TransferCase: one designation, checked alike (R12).
    async fn designation<R: TryFrom<Reply, Error = Reply>>(
        &self,
        call: &Call,
        r: impl Designating,
        handover: bool,
    ) -> Result<R, Error> {
        let request = request_key(call, &r);
        let now = self.acting.store.now();
        let (case, to_court, decision, decided_at) = r.designation();
        call.note.detail(json!({ "to_court_code": to_court, "decision_reference": decision }));
        let mut c = Checks::default();
        let case = control(&mut c, &call.note, r.request_id(), case);
        let to = c.court("to_court_code", to_court);
        c.present("decision_reference", decision);
        if decided_at.is_some_and(|t| time_of(t) > now) {
            c.bad("decided_at", "is in the future");
        }
        let (case, to_court) = c.done(case.zip(to))?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let decided_at = decided_at.map_or(now, time_of);
        let command = Command::Transfer { request, case, to_court, decision: decision.into(), decided_at, handover };
        self.acting.execute(call, command).await
    }

    /// The receiving court files its new case; it must be that court's case.
    pub(super) async fn accept(&self, call: &Call, r: AcceptTransferRequest) -> Result<AcceptTransferResponse, Error> {
        let request = request_key(call, &r);
        call.note.case(&r.new_case_number);
        call.note.detail(json!({ "transfer_id": r.transfer_id }));
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        c.present("transfer_id", &r.transfer_id);
        let new_case = c.case("new_case_number", &r.new_case_number);
        let new_case = c.done(new_case)?;
        self.acting.authorize(call, &new_case, Action::Control).await?;
        let t: TransferCaseResponse =
            self.acting.execute(call, Command::Accept { request, transfer_id: r.transfer_id, new_case }).await?;
        Ok(AcceptTransferResponse { transfer: t.transfer, message: t.message })
    }

    pub(super) async fn request_disposal(
        &self,
        call: &Call,
        r: RequestDisposalTransferRequest,
    ) -> Result<RequestDisposalTransferResponse, Error> {
        let request = request_key(call, &r);
        call.note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id }));
        let mut c = Checks::default();
        let case = control(&mut c, &call.note, &r.request_id, &r.case_number);
        let kind = c.kind("asset_kind", r.asset_kind);
        c.present("asset_id", &r.asset_id);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let asset_key = asset_key(kind, &crate::core::merge::normalise(&r.asset_id));
        let d: AnswerDisposalTransferResponse =
            self.acting.execute(call, Command::RequestDisposal { request, case, asset_key }).await?;
        Ok(RequestDisposalTransferResponse { disposal_transfer: d.disposal_transfer, message: d.message })
    }

    pub(super) async fn answer_disposal(
        &self,
        call: &Call,
        r: AnswerDisposalTransferRequest,
    ) -> Result<AnswerDisposalTransferResponse, Error> {
        let request = request_key(call, &r);
        call.note.detail(json!({ "disposal_transfer_id": r.disposal_transfer_id, "approve": r.approve }));
        let mut c = Checks::default();
        let case = control(&mut c, &call.note, &r.request_id, &r.case_number);
        c.present("disposal_transfer_id", &r.disposal_transfer_id);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let case = case.to_string();
        let command = Command::AnswerDisposal { request, case, id: r.disposal_transfer_id, approve: r.approve };
        self.acting.execute(call, command).await
    }

    /// The rules' asset, as its registry reports it now, and its owner's key (placements only).
    async fn find(
        &self,
        r: &PlaceSeizureRequest,
        case: &CaseNumber,
        kind: AssetKind,
    ) -> Result<(rules::Asset, String, Vec<(EncumbranceKind, rules::Secured)>), Error> {
        let mut c = Checks::default();
        let today = beijing_date(self.acting.store.now());
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
        let debtor_key = self.debtors.debtor(&debtor.0);
        let asset = rules::Asset {
            kind,
            asset_id: found.asset.id.clone(),
            registry: found.registry.to_string(),
            debtor: debtor.0.masked().to_string(),
            unit,
            total,
            sale_started: false,
            disposed: false,
            total_at: found.reported_at,
        };
        // The registry's answer was checked on its way in (a record with a broken encumbrance is dropped).
        let secured = found
            .asset
            .asset
            .encumbrances
            .iter()
            .map(|e| {
                let secured = rules::Secured {
                    holder: e.holder.trim().to_string(),
                    registered_at: e.registered_at.as_ref().map_or(found.reported_at, time_of),
                    amount: e.amount.as_ref().map_or(0, |m| m.minor_units),
                };
                (e.kind(), secured)
            })
            .collect();
        Ok((asset, debtor_key, secured))
    }
}

/// The key that makes a retry of `r` safe: its court, officer, id and whole content; the id is noted for the audit.
fn request_key(call: &Call, r: &impl Idempotent) -> RequestKey {
    call.note.request_id(r.request_id());
    RequestKey::of(&call.caller.court, &call.caller.officer, r.request_id(), &r.encode_to_vec())
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
fn control(c: &mut Checks, note: &Note, request_id: &str, case: &str) -> Option<CaseNumber> {
    note.case(case);
    c.present("request_id", request_id);
    c.case("case_number", case)
}

/// The fields a control step on one seizure carries.
fn seizure_step(c: &mut Checks, note: &Note, request_id: &str, case: &str, seizure_id: &str) -> Option<CaseNumber> {
    let case = control(c, note, request_id, case);
    c.present("seizure_id", seizure_id);
    case
}

/// The two requests that carry a designation (R12): its receipt, and the handover.
trait Designating: Idempotent + Send {
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
