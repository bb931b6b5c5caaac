//! Why a rule refused an operation: each cause with the facts it was refused
//! on (seizure, case, court, amounts, dates) and the rule that decided, said
//! for the court only when it is answered. The four kinds of cause are the
//! four ways a court is answered: no such seizure, not yours to act on, not
//! now, and not a request that makes sense (its causes in `invalid`).

use std::fmt;

use super::{Invalid, SeizureState, Time, day, debtor::EnforcementStep};
use crate::core::proto::AssetKind;

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No such seizure on this asset.
    #[error("no seizure {0} on this asset")]
    UnknownSeizure(String),
    /// The caller may not act on it (R7, R10, R12, R14, R15).
    #[error(transparent)]
    Denied(#[from] Denial),
    /// A rule forbids it now.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The request makes no sense for this asset or case.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// An amount or quantity of one asset, in its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    /// Minor units of a deposit's currency, or units.
    pub value: i64,
    /// The asset's kind.
    pub kind: AssetKind,
    /// A deposit's currency.
    pub unit: String,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        match self.kind {
            AssetKind::Deposit => write!(f, "{} {}.{:02}", self.unit, v / 100, v % 100),
            AssetKind::Securities => write!(f, "{v} units"),
            _ => Ok(()),
        }
    }
}

/// The caller may not act on what it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// R7: only the holding case acts on a seizure.
    #[error("seizure {seizure} is held by {case} of court {court}; only the holding court may act on it (R7)")]
    NotHolder {
        /// The seizure.
        seizure: String,
        /// Its holding case.
        case: String,
        /// Its holding court.
        court: String,
    },
    /// R12: a case designated away is searched by the court it went to.
    #[error(
        "case {case} was designated to court {to_court}; this court stops executing it (R12) and court {to_court} \
         searches under its own case"
    )]
    SearchDesignatedAway {
        /// The case.
        case: String,
        /// The court it was designated to.
        to_court: String,
    },
    /// R10: a case designated here is acted on under the case this court files.
    #[error(
        "case {case} was designated to this court; accept the transfer under the case you filed \
         (AcceptTransfer) and act under that case number (R10)"
    )]
    DesignatedHere {
        /// The case.
        case: String,
    },
    /// R15: a court acts for its own cases.
    #[error(
        "case {case} belongs to court {case_court}; this caller is court {caller}. A court acts only for its own \
         enforcement cases (R15)"
    )]
    NotItsCase {
        /// The case.
        case: String,
        /// Its court.
        case_court: String,
        /// The calling court.
        caller: String,
    },
    /// R12: a case designated away stops, unless an emergency measure was approved.
    #[error(
        "case {case} was designated to court {to_court} by {decision}; its court must stop executing it (R12). \
         An emergency measure needs the superior court's approval in emergency_approval"
    )]
    Stopped {
        /// The case.
        case: String,
        /// The court it was designated to.
        to_court: String,
        /// The designation's decision.
        decision: String,
    },
    /// R10: a transfer is filed by the court it was designated to.
    #[error("transfer {transfer} was designated to court {to_court}; case {case} belongs to court {case_court}")]
    TransferElsewhere {
        /// The transfer.
        transfer: String,
        /// The court it was designated to.
        to_court: String,
        /// The case named to file it.
        case: String,
        /// That case's court.
        case_court: String,
    },
    /// R14: a disposal-transfer request is answered by the case holding the first seizure.
    #[error("disposal-transfer {id} is addressed to {addressed_to}, the case holding the first seizure")]
    NotAddressed {
        /// The request.
        id: String,
        /// The case it is addressed to.
        addressed_to: String,
    },
    /// R23: only a superior court of every court involved designates a series.
    #[error(
        "court {caller} is not a superior court of {court}: a series designation is made by a court superior to every court involved (R23)"
    )]
    NotSuperior {
        /// The caller.
        caller: String,
        /// The court it is not superior to.
        court: String,
    },
}

/// A rule forbids the operation now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// R12: a handover follows the designation recorded.
    #[error(
        "case {case} was already designated to court {to_court} by {decision}; a handover follows that designation"
    )]
    OtherDesignation {
        /// The case.
        case: String,
        /// The court of the recorded designation.
        to_court: String,
        /// Its decision.
        decision: String,
    },
    /// R4: a case's freezes stay within its claim.
    #[error(
        "over-seizure: this freeze of {amount} plus the case's other freezes of {others} exceed the claim of \
         {claimed} {currency} minor units (R4); freeze at most {}", claimed.saturating_sub(*others).max(0)
    )]
    OverClaim {
        /// This freeze.
        amount: i64,
        /// The case's other live freezes in the currency.
        others: i64,
        /// The claim.
        claimed: i64,
        /// Its currency.
        currency: String,
    },
    /// R10: a case is handed over once.
    #[error("case {case} has already been handed over to court {court}")]
    HandedOver {
        /// The case.
        case: String,
        /// The court it went to.
        court: String,
    },
    /// R11: measures about to end are renewed before a transfer.
    #[error(
        "{} measure(s) of the case end within {within_days} days and must be renewed by this court \
         before the transfer (R11): {}", ending.len(), ending.join("; ")
    )]
    RenewFirst {
        /// The measures, described.
        ending: Vec<String>,
        /// The window, in days.
        within_days: i64,
    },
    /// R10: a transfer is filed once.
    #[error("transfer {transfer} was already filed as {filed}")]
    AlreadyFiled {
        /// The transfer.
        transfer: String,
        /// The case it was filed as.
        filed: String,
    },
    /// R14: one pending request per case and asset.
    #[error("{case} already has a pending disposal-transfer request on {asset}")]
    DisposalPending {
        /// The requesting case.
        case: String,
        /// The asset.
        asset: String,
    },
    /// R14: a request is answered once.
    #[error("disposal-transfer {id} has already been answered")]
    AlreadyAnswered {
        /// The request.
        id: String,
    },
    /// R8: a sold asset has nothing left to seize.
    #[error("the asset has been sold (R8); there is nothing left to seize — search the debtor again")]
    Sold,
    /// R1: a case holds one live seizure per asset.
    #[error("case {case} already holds the seizure at rank {rank} on this asset; renew or release it instead")]
    AlreadyHeld {
        /// The case.
        case: String,
        /// Its seizure's rank.
        rank: usize,
    },
    /// The seizure has ended (R6: a lapsed one is placed anew).
    #[error(
        "seizure {seizure} is {} since {}{}", state.as_str(), ended.map(day).unwrap_or_default(),
        if *state == SeizureState::Lapsed { "; place a new seizure (R6)" } else { "" }
    )]
    Ended {
        /// The seizure.
        seizure: String,
        /// How it ended.
        state: SeizureState,
        /// When.
        ended: Option<Time>,
    },
    /// R2: a waiting seizure has no term yet.
    #[error("seizure {seizure} is waiting and has no term to renew (R2); it gets one when it takes effect")]
    NoTerm {
        /// The seizure.
        seizure: String,
    },
    /// R9: a deduction takes at most what is in effect.
    #[error("deduction of {asked} exceeds this freeze's effective amount of {effective} (R9); deduct at most that")]
    OverDeduction {
        /// The deduction.
        asked: Quantity,
        /// The freeze's effective amount.
        effective: Quantity,
    },
    /// R8, R14: the court of the effective seizure disposes.
    #[error(
        "seizure {seizure} is waiting; only the court holding the effective seizure disposes of the asset (R8, R14)"
    )]
    WaitingDisposes {
        /// The seizure.
        seizure: String,
    },
    /// R8: a partial sale disposes of what the seizure holds.
    #[error("a partial sale disposes of at most {effective} under this seizure, its effective amount (R8)")]
    OverSale {
        /// The seizure's effective amount.
        effective: Quantity,
    },
    /// R14: the case no longer holds the first seizure.
    #[error("{case} no longer holds the first seizure on {asset}")]
    NoLongerFirst {
        /// The case.
        case: String,
        /// The asset.
        asset: String,
    },
    /// R14: disposal is asked for by a case seizing the asset.
    #[error("{case} holds no seizure on this asset; seize it first, then ask for disposal (R14)")]
    NotSeized {
        /// The requesting case.
        case: String,
    },
    /// R14: there is no first seizure to move disposal from.
    #[error("no effective seizure on this asset (R14)")]
    NoFirst,
    /// R14: the first seizure's own case disposes already.
    #[error("{case} already holds the first seizure (R14)")]
    HoldsFirst {
        /// The requesting case.
        case: String,
    },
    /// R14: disposal moves only after the first seizure has waited its days.
    #[error(
        "the first seizure took effect on {}; disposal may move to a priority creditor only after {days} days, \
         from {} (R14)", day(*since), day(*from)
    )]
    TooSoon {
        /// When the first seizure took effect.
        since: Time,
        /// The days it has to dispose first.
        days: u64,
        /// When disposal may move.
        from: Time,
    },
    /// R14: a sale under way stays with its court.
    #[error("the first-seizing court has already published an auction notice or started a sale (R14)")]
    SaleStarted,
    /// R24: every case against a debtor in bankruptcy review is suspended.
    #[error(
        "the debtor was transferred to bankruptcy review by {decision} of court {court}: every enforcement case \
         against it is suspended, and {} is refused until the review ends (R24)", step.refused()
    )]
    InReview {
        /// What was asked.
        step: EnforcementStep,
        /// The transfer decision.
        decision: String,
        /// Its court.
        court: String,
    },
    /// R25: once bankruptcy is accepted only releases remain.
    #[error(
        "the debtor's bankruptcy was accepted by {decision} of court {court}: its seizures are lifted and every \
         enforcement case against it is suspended for good; {} is refused (R25)", step.refused()
    )]
    Bankrupt {
        /// What was asked.
        step: EnforcementStep,
        /// The acceptance.
        decision: String,
        /// Its court.
        court: String,
    },
    /// R24: one review at a time.
    #[error("the debtor is already in bankruptcy review by {decision} (R24)")]
    AlreadyInReview {
        /// The review's decision.
        decision: String,
    },
    /// R25: bankruptcy is accepted once.
    #[error("the debtor's bankruptcy was already accepted by {decision} (R25)")]
    AlreadyBankrupt {
        /// The acceptance.
        decision: String,
    },
    /// R26: a refused transfer is not started again on the same grounds.
    #[error(
        "a transfer to bankruptcy review on these grounds was refused by {decision}; it is not started again (R26)"
    )]
    RefusedBefore {
        /// The refusal.
        decision: String,
    },
    /// R26: a refusal ends a review under way.
    #[error("the debtor is not in bankruptcy review: there is nothing to refuse (R26)")]
    NoReview,
    /// R23: a series designation found nothing to move.
    #[error(
        "no active enforcement case against the debtor is held by a court other than {to_court}: nothing to designate (R23)"
    )]
    NoSeriesCases {
        /// The receiving court.
        to_court: String,
    },
    /// R23 with R11, R12: all or nothing; every blocking measure listed.
    #[error(
        "the series cannot move, so none of its cases moves: {} (R23; renew what ends within 30 days first, R11)",
        blocking.join("; ")
    )]
    SeriesBlocked {
        /// Each case's blocking measure or designation.
        blocking: Vec<String>,
    },
    /// R30: a case is terminated once.
    #[error("{case} is already terminated for now; resume it (ResumeCase) to execute it again (R30)")]
    AlreadyTerminated {
        /// The case.
        case: String,
    },
    /// R30: only an active case is terminated.
    #[error("{case} is {state}, not active: only a case being executed is terminated for now (R30)")]
    NotActive {
        /// The case.
        case: String,
        /// Where it stands.
        state: &'static str,
    },
    /// R30: only a terminated case is resumed.
    #[error("{case} is not terminated for now: there is nothing to resume (R30)")]
    NotTerminated {
        /// The case.
        case: String,
    },
    /// R26: a dismissal ends an accepted bankruptcy.
    #[error("the debtor's bankruptcy was not accepted: there is nothing to dismiss (R26)")]
    NotBankrupt,
    /// R29: each step against a distribution plan has its period.
    #[error("the period for {step} ended at {ended} (Beijing; R29)")]
    PeriodOver {
        /// The step: an objection, an opposition, a suit.
        step: &'static str,
        /// When its period ended, in Beijing time.
        ended: String,
    },
    /// R28: an enterprise's creditors are paid by seizure rank; nobody applies to participate.
    #[error(
        "the debtor is an enterprise legal person: its proceeds are paid by seizure rank, and participation \
         (参与分配) is for creditors of a natural person or another organisation (R28)"
    )]
    ParticipationByRank,
    /// R28: participation ends when the proceeds are paid out.
    #[error(
        "the proceeds were paid out by distribution {distribution} on {day}: an application comes before the payout (R28)"
    )]
    PaidOut {
        /// The plan that paid them.
        distribution: String,
        /// The Beijing day.
        day: String,
    },
    /// R28: every creditor's claim is known before a plan is drafted.
    #[error(
        "{case} has no claim registered: its court registers it (DebtorService.RegisterCase) before the distribution is drafted (R28)"
    )]
    NoClaim {
        /// The case.
        case: String,
    },
    /// R28: proceeds are distributed once.
    #[error(
        "proceeds {proceeds} are already in distribution {distribution} ({state}); draft with the others, or wait for it"
    )]
    InDistribution {
        /// The proceeds.
        proceeds: String,
        /// The plan.
        distribution: String,
        /// Where it stands.
        state: String,
    },
    /// R28: a sale's proceeds follow the sale.
    #[error(
        "seizure {seizure} has not sold its asset: record the sale (RecordDisposal SOLD or PARTLY_SOLD) first (R8, R28)"
    )]
    NotSold {
        /// The seizure.
        seizure: String,
    },
    /// R23, R28: a series plan is drafted by the court the debtor's cases were designated to.
    #[error(
        "no case against this debtor was designated to {court}: only the receiving court of a series designation drafts across the debtor's cases (R23)"
    )]
    NoSeries {
        /// The calling court.
        court: String,
    },
    /// R28: a plan distributes something.
    #[error("there are no undistributed proceeds to draft a distribution of: record them first (RecordProceeds)")]
    NothingToDistribute,
    /// R28: a whole sale's proceeds are recorded once.
    #[error("the proceeds of the sale under seizure {seizure} are already recorded as {proceeds}")]
    ProceedsRecorded {
        /// The seizure.
        seizure: String,
        /// The proceeds.
        proceeds: String,
    },
    /// R29: each step follows the one before.
    #[error("distribution {distribution} is {state}: {step} needs it {needs} (R29)")]
    PlanState {
        /// The plan.
        distribution: String,
        /// Where it stands.
        state: String,
        /// The step tried.
        step: &'static str,
        /// The state the step needs.
        needs: &'static str,
    },
    /// R29: who takes each step.
    #[error("{case} cannot take {step} on distribution {distribution}: {why} (R29)")]
    NotAParty {
        /// The case.
        case: String,
        /// The step.
        step: &'static str,
        /// The plan.
        distribution: String,
        /// Why not.
        why: &'static str,
    },
    /// R29: a plan is paid when its periods have run.
    #[error("distribution {distribution} is paid out after {ends} (Beijing), when its period has run (R29)")]
    NotYetDue {
        /// The plan.
        distribution: String,
        /// When its period ends.
        ends: String,
    },
    /// R29: an opposition answers an objection, a suit an opposition.
    #[error("there is no {missing} to answer: {step} follows it (R29)")]
    OutOfTurn {
        /// The step tried.
        step: &'static str,
        /// What it must follow.
        missing: &'static str,
    },
}
