//! What the ledger is asked to do and what it answers: the steps
//! ([`Command`]), their replies (remembered under the request id), and the
//! orders it hands to the outbox worker with the registry's acknowledgement.

mod reply;

pub use reply::Reply;

use std::{error::Error as StdError, sync::Arc};

use sha2::{Digest, Sha256};

use crate::{
    core::{
        identifiers::CaseNumber,
        method::Method,
        proto::{AssetKind, EncumbranceKind},
    },
    ledger::{
        Time,
        rules::{
            Asset, BankruptcyAct, DebtorKind, Decision, Designation, Disposal, Holidays, Lifting, OrderKind, Secured,
            Sharing, Step,
        },
    },
};

/// Why an order was not delivered: the outbox worker's cause, kept whole
/// until it is written to the order's `last_error` for operators.
pub type Undelivered = Arc<dyn StdError + Send + Sync>;

/// A court's request id, scoped to the court and the method (AIP-155) and
/// bound to the request: the same id with the same request is answered from
/// the stored reply; with another request it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The calling court.
    pub court: String,
    /// The acting officer, for the audit record of a step whose gateway died before writing it (R16).
    pub officer: String,
    /// The court's request id.
    pub id: String,
    /// SHA-256 of the whole request, hex.
    pub digest: String,
}

impl RequestKey {
    /// The key of `request` (its encoded bytes) sent by `officer` of `court` under `id`.
    pub fn of(court: &str, officer: &str, id: &str, request: &[u8]) -> Self {
        Self {
            court: court.into(),
            officer: officer.into(),
            id: id.into(),
            digest: hex::encode(Sha256::digest(request)),
        }
    }
}

/// A step that changes the ledger.
#[derive(Debug, Clone)]
pub enum Command {
    /// Seize or freeze (R1, R4).
    Place {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The asset as the registry reported it just now.
        asset: Asset,
        /// Its owner, the debtor, as the keyed hash the audit trail uses (never the clear identifier).
        debtor_key: String,
        /// Acting case.
        case: CaseNumber,
        /// Amount or quantity.
        amount: i64,
        /// For deposits: currency and amount of the claim.
        claim: Option<(String, i64)>,
        /// Superior court approval of an emergency measure (R12).
        emergency: String,
        /// The claims secured on the asset as the registry reported them (R28).
        secured: Vec<(EncumbranceKind, Secured)>,
    },
    /// Release (R7).
    Release {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// Acting case.
        case: String,
        /// The seizure.
        seizure_id: String,
        /// R12 approval.
        emergency: String,
    },
    /// Renew (R6).
    Renew {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// Acting case.
        case: String,
        /// The seizure.
        seizure_id: String,
        /// Months; `None` a full term.
        months: Option<u32>,
        /// R12 approval, for what does not end within 30 days (R11).
        emergency: String,
    },
    /// Deduct deposit funds (R9).
    Deduct {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// Acting case.
        case: String,
        /// The freeze.
        seizure_id: String,
        /// Minor units.
        amount: i64,
        /// R12 approval.
        emergency: String,
    },
    /// A disposal step (R8).
    Dispose {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// Acting case.
        case: String,
        /// The effective seizure.
        seizure_id: String,
        /// What happened.
        disposal: Disposal,
    },
    /// Record a designation on receipt (R12), or hand a designated case over (R10–R13).
    Transfer {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The case.
        case: CaseNumber,
        /// Receiving court.
        to_court: String,
        /// Designation decision.
        decision: String,
        /// When decided.
        decided_at: Time,
        /// A handover (TransferCase), or only the receipt (RecordDesignation).
        handover: bool,
    },
    /// The receiving court files its case (R10).
    Accept {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The transfer.
        transfer_id: String,
        /// The new case.
        new_case: CaseNumber,
    },
    /// Ask for disposal to move to a priority creditor (R14).
    RequestDisposal {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// Requesting case.
        case: CaseNumber,
        /// The asset.
        asset_key: String,
    },
    /// Answer such a request (R14).
    AnswerDisposal {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The case holding the first seizure.
        case: String,
        /// The request.
        id: String,
        /// Approve or refuse.
        approve: bool,
    },
    /// A decision on a debtor's bankruptcy (R24–R26).
    Bankruptcy {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The debtor, as the keyed hash its cases know it by.
        debtor_key: String,
        /// The debtor, masked: the decision's case is registered against it.
        debtor: String,
        /// What kind of debtor it is.
        kind: DebtorKind,
        /// Review, acceptance, refusal or dismissal.
        act: BankruptcyAct,
        /// The decision.
        decision: Decision,
        /// Who lifts the seizures on an acceptance (R25).
        lifting: Lifting,
    },
    /// Register a case against its debtors, with its applicant and claim.
    RegisterCase {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The case.
        case: CaseNumber,
        /// Its debtors: keyed hash and masked form.
        debtors: Vec<(String, String)>,
        /// The applicant.
        applicant: String,
        /// Currency and amount of the claim, in minor units.
        claim: (String, i64),
    },
    /// A superior court designates one court for a debtor's cases (R23).
    DesignateSeries {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The debtor, as the keyed hash its cases know it by.
        debtor_key: String,
        /// The receiving court and the decision.
        designation: Designation,
        /// Only these cases; empty: every active enforcement case against the debtor.
        cases: Vec<String>,
        /// Whether preservation cases (执保) move when not listed.
        with_preservation: bool,
    },
    /// Terminate a case for now, scheduling its re-searches (R30).
    Terminate {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The case.
        case: CaseNumber,
        /// Its debtors as the re-searches ask for them.
        debtors: Vec<ResearchDebtor>,
        /// When it was terminated.
        at: Time,
    },
    /// Resume a terminated case under a new 执恢 case (R30).
    Resume {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The terminated case.
        case: CaseNumber,
        /// The resumed case.
        new_case: CaseNumber,
    },
    /// The selling case records a sale's proceeds and costs (R28).
    RecordProceeds {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The selling case.
        case: String,
        /// The seizure the sale ended or was made under.
        seizure_id: String,
        /// Proceeds and costs, minor units.
        amounts: (i64, i64),
        /// ISO 4217; empty: the case's.
        currency: String,
    },
    /// A court records a claim secured on an asset (R28).
    RecordSecured {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The case with a seizure on the asset.
        case: String,
        /// The asset.
        asset_key: String,
        /// Mortgage or pledge.
        kind: EncumbranceKind,
        /// Holder, amount, registration.
        secured: Secured,
        /// The evidence.
        evidence: String,
    },
    /// A case applies to share in proceeds (R28).
    Participate {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The applying case.
        case: String,
        /// The proceeds.
        proceeds_id: String,
        /// The debtor as the keyed hash, and what kind of debtor it is.
        debtor: (String, DebtorKind),
    },
    /// Draft a distribution (R28).
    Draft {
        /// Who asked, with which id, for what (idempotency).
        request: RequestKey,
        /// The case holding the proceeds.
        case: String,
        /// The debtor: keyed hash and masked form.
        debtor: (String, String),
        /// How ordinary claims share, and whether across every case against the debtor (R23).
        sharing: (Sharing, bool),
        /// The proceeds; empty for a series.
        proceeds: Vec<String>,
    },
    /// A step on a plan (R29): a court's, or the gateway's own payout when its period has run.
    Plan {
        /// Who asked (idempotency) and under which case; `None` for the sweeper.
        by: Option<(RequestKey, String)>,
        /// The plan.
        distribution_id: String,
        /// The step.
        step: PlanStep,
        /// The calendar the periods end by.
        holidays: Holidays,
    },
    /// A registry answered an outbox order.
    Delivered {
        /// The order.
        outbox_id: i64,
        /// The registry's record, or why delivery failed.
        result: Result<Ack, Undelivered>,
        /// When to try again after a failure.
        retry_at: Time,
    },
    /// The audit record of a client step is written (R16).
    Audited {
        /// The step's request.
        request: RequestKey,
        /// Its method.
        method: Method,
    },
    /// Persist the lapses due on an asset (the sweeper).
    Sweep {
        /// The asset.
        asset_key: String,
    },
}

impl Command {
    /// The case a client step acts under.
    pub(crate) fn case_number(&self) -> String {
        match self {
            Command::Place { case, .. } | Command::Transfer { case, .. } | Command::RequestDisposal { case, .. } => {
                case.to_string()
            }
            Command::Accept { new_case, .. } => new_case.to_string(),
            Command::Release { case, .. }
            | Command::Renew { case, .. }
            | Command::Deduct { case, .. }
            | Command::Dispose { case, .. }
            | Command::AnswerDisposal { case, .. } => case.clone(),
            Command::Bankruptcy { decision, .. } => decision.case_number.clone(),
            Command::RegisterCase { case, .. } => case.to_string(),
            Command::DesignateSeries { .. } => String::new(),
            Command::Terminate { case, .. } | Command::Resume { case, .. } => case.to_string(),
            Command::RecordProceeds { case, .. }
            | Command::RecordSecured { case, .. }
            | Command::Participate { case, .. }
            | Command::Draft { case, .. } => case.clone(),
            Command::Plan { by, .. } => by.as_ref().map(|(_, case)| case.clone()).unwrap_or_default(),
            Command::Delivered { .. } | Command::Audited { .. } | Command::Sweep { .. } => String::new(),
        }
    }

    /// Whether the step can change a seizure, and so record events that its
    /// reply must wait to see numbered: marking a step audited and recording
    /// a failed delivery change none.
    pub(crate) fn changes_seizures(&self) -> bool {
        !matches!(self, Command::Audited { .. } | Command::Delivered { result: Err(_), .. })
    }

    /// Who asked and the step's method, for idempotency; `None` for the gateway's own steps.
    pub fn request(&self) -> Option<(&RequestKey, Method)> {
        match self {
            Command::Place { request, .. } => Some((request, Method::PlaceSeizure)),
            Command::Release { request, .. } => Some((request, Method::ReleaseSeizure)),
            Command::Renew { request, .. } => Some((request, Method::RenewSeizure)),
            Command::Deduct { request, .. } => Some((request, Method::DeductFunds)),
            Command::Dispose { request, .. } => Some((request, Method::RecordDisposal)),
            Command::Transfer { request, handover: false, .. } => Some((request, Method::RecordDesignation)),
            Command::Transfer { request, .. } => Some((request, Method::TransferCase)),
            Command::Accept { request, .. } => Some((request, Method::AcceptTransfer)),
            Command::RequestDisposal { request, .. } => Some((request, Method::RequestDisposalTransfer)),
            Command::AnswerDisposal { request, .. } => Some((request, Method::AnswerDisposalTransfer)),
            Command::Bankruptcy { request, act: BankruptcyAct::Review, .. } => {
                Some((request, Method::TransferToBankruptcyReview))
            }
            Command::Bankruptcy { request, act: BankruptcyAct::Accept, .. } => {
                Some((request, Method::RecordBankruptcyAcceptance))
            }
            Command::Bankruptcy { request, act: BankruptcyAct::Refuse, .. } => {
                Some((request, Method::RecordBankruptcyRefusal))
            }
            Command::Bankruptcy { request, act: BankruptcyAct::Dismiss, .. } => {
                Some((request, Method::RecordBankruptcyDismissal))
            }
            Command::RegisterCase { request, .. } => Some((request, Method::RegisterCase)),
            Command::DesignateSeries { request, .. } => Some((request, Method::DesignateSeries)),
            Command::Terminate { request, .. } => Some((request, Method::TerminateCase)),
            Command::Resume { request, .. } => Some((request, Method::ResumeCase)),
            Command::RecordProceeds { request, .. } => Some((request, Method::RecordProceeds)),
            Command::RecordSecured { request, .. } => Some((request, Method::RecordSecuredClaim)),
            Command::Participate { request, .. } => Some((request, Method::ApplyToParticipate)),
            Command::Draft { request, .. } => Some((request, Method::DraftDistribution)),
            Command::Plan { by: Some((request, _)), step, .. } => Some((request, step.method())),
            Command::Plan { by: None, .. } => None,
            Command::Delivered { .. } | Command::Audited { .. } | Command::Sweep { .. } => None,
        }
    }
}

/// A step on a served or drafted distribution plan (R29).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanStep {
    /// Serve it on every creditor's court; served then (a plan served on paper, recorded late).
    Serve(Time),
    /// A creditor objects, asking these lines (index, amount) corrected.
    Object(Vec<(usize, i64)>),
    /// Another creditor opposes the objection.
    Oppose,
    /// The objector sues the opponents.
    Sue,
    /// Pay it out.
    PayOut,
}

impl PlanStep {
    /// The step as a refusal names it.
    pub fn name(&self) -> &'static str {
        match self {
            PlanStep::Serve(_) => "serving",
            PlanStep::Object(_) => "an objection",
            PlanStep::Oppose => "an opposition",
            PlanStep::Sue => "a suit",
            PlanStep::PayOut => "a payout",
        }
    }

    /// The step of R29 it is, if it answers the plan's service.
    pub fn objection(&self) -> Option<Step> {
        match self {
            PlanStep::Object(_) => Some(Step::Object),
            PlanStep::Oppose => Some(Step::Oppose),
            PlanStep::Sue => Some(Step::Sue),
            PlanStep::Serve(_) | PlanStep::PayOut => None,
        }
    }

    fn method(&self) -> Method {
        match self {
            PlanStep::Serve(_) => Method::ServeDistribution,
            PlanStep::Object(_) | PlanStep::Oppose | PlanStep::Sue => Method::ObjectToDistribution,
            PlanStep::PayOut => Method::PayOutDistribution,
        }
    }
}

/// A terminated case's debtor as its re-searches ask for it (R30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResearchDebtor {
    /// The keyed hash the cases know it by.
    pub key: String,
    /// Masked.
    pub masked: String,
    /// A credit code (or a resident id).
    pub organisation: bool,
    /// The identifier, sealed for its place in the schedule.
    pub sealed: Vec<u8>,
}

/// An acknowledged client step whose audit record was never written (its
/// gateway died between the ledger's commit and the record).
#[derive(Debug, Clone)]
pub struct Unaudited {
    /// Who asked, under which id.
    pub request: RequestKey,
    /// The step's method.
    pub method: Method,
    /// The case it acted under.
    pub case_number: String,
    /// When the ledger committed it.
    pub at: Time,
}

/// A registry's acknowledgement of an order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ack {
    /// Its reference.
    pub reference: String,
    /// Term start by its calendar.
    pub start: Option<Time>,
    /// Term end by its calendar.
    pub end: Option<Time>,
}

/// An order due for delivery, leased to this replica.
#[derive(Debug, Clone)]
pub struct PendingOrder {
    /// Outbox id; also the order's idempotency key.
    pub id: i64,
    /// What it orders.
    pub kind: OrderKind,
    /// The registry.
    pub registry: String,
    /// The seizure.
    pub seizure_id: String,
    /// The asset.
    pub asset_kind: AssetKind,
    /// The asset's id.
    pub asset_id: String,
    /// Amount (seize, deduct).
    pub amount: i64,
    /// Term end (seize, renew).
    pub end: Option<Time>,
    /// Ordering court.
    pub court: String,
    /// Ordering case.
    pub case_number: String,
    /// The registry's reference of the seizure, once known.
    pub registry_ref: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// Why a release is ordered.
    pub reason: String,
}
