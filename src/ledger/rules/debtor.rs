//! The debtor as a whole (R23–R27): which debtors bankruptcy law reaches,
//! where a debtor stands between enforcement and bankruptcy, what each court
//! may still do on its cases meanwhile, who reads the debtor's picture, and
//! when a superior court may concentrate its cases in one court. Pure
//! functions over what the store gathered; the store applies what they decide.

use super::{
    Change, ChangeKind, Denial, Designation, Invalid, Ledger, Order, Outcome, Refusal, RuleError, SeizureState, Terms,
    Time,
};
use crate::core::{
    identifiers::{CaseNumber, DebtorId},
    proto,
};

/// Bankruptcy case types: an application (破申) and an accepted case (破) (R25, R26).
pub const BANKRUPTCY_TYPES: [&str; 2] = ["破申", "破"];

/// What kind of debtor the law sees (R24–R28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebtorKind {
    /// A company or cooperative: bankruptcy law applies (R24–R27), rank decides payment (R28).
    EnterpriseLegalPerson,
    /// A person, or an individual business (个体工商户), which bankruptcy law does not reach.
    NaturalPerson,
    /// Any other organisation (credit codes not beginning with 9).
    OtherOrganisation,
}

/// The kind of `debtor`: an organisation whose credit code begins with one of `enterprise_prefixes`
/// (by default `91`, an enterprise, and `93`, a farmers' cooperative) is an enterprise legal person;
/// other codes beginning with 9 (`92`, an individual business) follow the rules for persons.
pub fn debtor_kind(debtor: &DebtorId, enterprise_prefixes: &[String]) -> DebtorKind {
    match debtor {
        DebtorId::Resident(_) => DebtorKind::NaturalPerson,
        DebtorId::Organisation(code) if enterprise_prefixes.iter().any(|p| code.starts_with(p.as_str())) => {
            DebtorKind::EnterpriseLegalPerson
        }
        DebtorId::Organisation(code) if code.starts_with('9') => DebtorKind::NaturalPerson,
        DebtorId::Organisation(_) => DebtorKind::OtherOrganisation,
    }
}

/// Where a case stands, as stored. Suspension is not stored: it follows from the debtor's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseState {
    /// Being executed (or suspended, while its debtor is in review or bankrupt).
    Active,
    /// Terminated for now (终本).
    Terminated,
    /// Handed over; the receiving court filed its own case (R10).
    Transferred,
    /// Closed.
    Closed,
}

impl CaseState {
    const ALL: [CaseState; 4] = [CaseState::Active, CaseState::Terminated, CaseState::Transferred, CaseState::Closed];

    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Active => "active",
            CaseState::Terminated => "terminated",
            CaseState::Transferred => "transferred",
            CaseState::Closed => "closed",
        }
    }

    /// The inverse of [`CaseState::as_str`].
    pub fn parse(s: &str) -> Option<CaseState> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// R24, R25: how a case is shown: an active enforcement case against a debtor in review or
/// bankrupt is suspended; a bankruptcy case goes on.
pub fn shown_state(stored: CaseState, case: &CaseNumber, standing: &Standing) -> proto::CaseState {
    let bankruptcy = BANKRUPTCY_TYPES.contains(&case.case_type.as_str());
    match (stored, standing) {
        (CaseState::Active, Standing::InReview(_) | Standing::Bankrupt(_)) if !bankruptcy => {
            proto::CaseState::Suspended
        }
        (CaseState::Active, _) => proto::CaseState::Active,
        (CaseState::Terminated, _) => proto::CaseState::Terminated,
        (CaseState::Transferred, _) => proto::CaseState::Transferred,
        (CaseState::Closed, _) => proto::CaseState::Closed,
    }
}

/// R27: a court reads a debtor's picture under its case registered against the debtor (`state`,
/// `None` if not registered): an active case, or a bankruptcy case in any state.
pub fn may_read_picture(case: &CaseNumber, state: Option<CaseState>) -> bool {
    match state {
        Some(CaseState::Active) => true,
        Some(_) => BANKRUPTCY_TYPES.contains(&case.case_type.as_str()),
        None => false,
    }
}

/// R27: may a debtor of `kind` be searched under `case`? Under a bankruptcy case (破, 破申) only
/// an enterprise legal person; under an enforcement case anyone.
pub fn may_search(case: &CaseNumber, kind: DebtorKind) -> bool {
    !BANKRUPTCY_TYPES.contains(&case.case_type.as_str()) || kind == DebtorKind::EnterpriseLegalPerson
}

/// Whether `superior`'s court code makes it a superior court of `court` (`京01` of `京0105`,
/// `京` of both).
pub fn is_superior(superior: &str, court: &str) -> bool {
    court.len() > superior.len() && court.starts_with(superior)
}

/// One case a series designation would move, as the store found it (R23).
#[derive(Debug, Clone)]
pub struct SeriesCase {
    /// The case.
    pub case: CaseNumber,
    /// Its live measures ending within 30 days, described (R11).
    pub ending: Vec<String>,
    /// A designation it received already, if any.
    pub designated: Option<Designation>,
}

/// R23: a superior court of every court involved designates `to_court` for the debtor's cases,
/// all or nothing: refused with every measure of every case that must be renewed first (R11),
/// and with every case designated elsewhere already (R12).
pub fn series_designation(caller: &str, to_court: &str, decision: &str, cases: &[SeriesCase]) -> Result<(), RuleError> {
    if cases.is_empty() {
        return Err(Refusal::NoSeriesCases { to_court: to_court.into() }.into());
    }
    let courts = std::iter::once(to_court).chain(cases.iter().map(|c| c.case.court_code.as_str()));
    if let Some(court) = courts.into_iter().find(|court| !is_superior(caller, court)) {
        return Err(Denial::NotSuperior { caller: caller.into(), court: court.into() }.into());
    }
    let mut blocking = Vec::new();
    for c in cases {
        if let Err(e) = super::designation_receipt(&c.case, to_court, decision, c.designated.as_ref()) {
            blocking.push(format!("{}: {e}", c.case));
        }
        blocking.extend(c.ending.iter().map(|m| format!("{}: {m}", c.case)));
    }
    match blocking.is_empty() {
        true => Ok(()),
        false => Err(Refusal::SeriesBlocked { blocking }.into()),
    }
}

/// A decision on a debtor's bankruptcy, as the court that took it recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The decision's reference, e.g. `（2027）京0105执1号之一` or `（2027）京01破申3号`.
    pub reference: String,
    /// The court that took it.
    pub court: String,
    /// The case it was taken under (an enforcement case for a review, a bankruptcy case after).
    pub case_number: String,
    /// The grounds of a transfer to review (whose consent): a refused transfer is not started again on them.
    pub grounds: String,
    /// When it was decided.
    pub at: Time,
}

/// Where a debtor stands between enforcement and bankruptcy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Standing {
    /// Enforcement goes on.
    #[default]
    Enforced,
    /// R24: transferred to bankruptcy review; every case against it is suspended.
    InReview(Decision),
    /// R25: bankruptcy accepted; every seizure is lifted and every case suspended for good.
    Bankrupt(Decision),
}

/// A decision on a debtor's bankruptcy (R24–R26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankruptcyAct {
    /// An execution court transfers the debtor to review (R24).
    Review,
    /// The bankruptcy court accepts (R25).
    Accept,
    /// The bankruptcy court refuses, during review (R26).
    Refuse,
    /// The bankruptcy court dismisses the application after accepting it (R26).
    Dismiss,
}

impl BankruptcyAct {
    /// The name stored with the decision.
    pub fn as_str(self) -> &'static str {
        match self {
            BankruptcyAct::Review => "review",
            BankruptcyAct::Accept => "accepted",
            BankruptcyAct::Refuse => "refused",
            BankruptcyAct::Dismiss => "dismissed",
        }
    }

    /// Every decision.
    const ALL: [BankruptcyAct; 4] =
        [BankruptcyAct::Review, BankruptcyAct::Accept, BankruptcyAct::Refuse, BankruptcyAct::Dismiss];

    /// The decision an event's kind names, if it names one.
    pub fn from_event(kind: &str) -> Option<BankruptcyAct> {
        Self::ALL.into_iter().find(|a| a.event() == kind)
    }

    /// The kind of the event every court with a case against the debtor is sent.
    pub fn event(self) -> &'static str {
        match self {
            BankruptcyAct::Review => "bankruptcy_review",
            BankruptcyAct::Accept => "bankruptcy_accepted",
            BankruptcyAct::Refuse => "bankruptcy_refused",
            BankruptcyAct::Dismiss => "bankruptcy_dismissed",
        }
    }
}

/// A step of enforcement, as R24–R26 judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnforcementStep {
    /// A new seizure.
    Seize,
    /// A renewal of a seizure's term (R6).
    Renew,
    /// A release.
    Release,
    /// A deduction of frozen funds (R9).
    Deduct,
    /// A disposal step: an auction notice or a sale (R8).
    Dispose,
    /// A request or an approval of disposal by a priority creditor (R14).
    DisposalTransfer,
    /// Drafting, serving or paying out a distribution, or applying to participate (R28).
    Distribute,
}

impl EnforcementStep {
    /// The step as a refusal names it.
    pub fn refused(self) -> &'static str {
        match self {
            EnforcementStep::Seize => "a new seizure",
            EnforcementStep::Renew => "a renewal",
            EnforcementStep::Release => "a release",
            EnforcementStep::Deduct => "a deduction",
            EnforcementStep::Dispose => "a disposal",
            EnforcementStep::DisposalTransfer => "a disposal transfer (R14)",
            EnforcementStep::Distribute => "a distribution (R28)",
        }
    }
}

/// R24–R26: may `step` be taken on a case against a debtor standing so? While in review, new
/// seizures, deductions, disposals and R14 transfers are refused (a disposal of perishable goods
/// with the superior court's `emergency` approval excepted); renewals and releases go on. After
/// acceptance only releases remain (there is nothing left to keep).
pub fn step_allowed(standing: &Standing, step: EnforcementStep, emergency: &str) -> Result<(), RuleError> {
    match (standing, step) {
        (Standing::Enforced, _) => Ok(()),
        (Standing::InReview(_), EnforcementStep::Renew | EnforcementStep::Release) => Ok(()),
        (Standing::InReview(_), EnforcementStep::Dispose) if !emergency.trim().is_empty() => Ok(()),
        (Standing::InReview(d), _) => {
            Err(Refusal::InReview { step, decision: d.reference.clone(), court: d.court.clone() }.into())
        }
        (Standing::Bankrupt(_), EnforcementStep::Release) => Ok(()),
        (Standing::Bankrupt(d), _) => {
            Err(Refusal::Bankrupt { step, decision: d.reference.clone(), court: d.court.clone() }.into())
        }
    }
}

/// R24: a transfer to bankruptcy review, by an execution court on one of its enforcement cases
/// against the debtor. Only an enterprise legal person; not while a review or a bankruptcy is under
/// way; not again on the grounds of a review that was refused (R26).
pub fn bankruptcy_review(
    kind: DebtorKind,
    standing: &Standing,
    refused: &[Decision],
    grounds: &str,
) -> Result<(), RuleError> {
    if kind != DebtorKind::EnterpriseLegalPerson {
        return Err(Invalid::NotEnterprise.into());
    }
    match standing {
        Standing::InReview(d) => return Err(Refusal::AlreadyInReview { decision: d.reference.clone() }.into()),
        Standing::Bankrupt(d) => return Err(Refusal::AlreadyBankrupt { decision: d.reference.clone() }.into()),
        Standing::Enforced => {}
    }
    if grounds.trim().is_empty() {
        return Err(Invalid::NoGrounds.into());
    }
    match refused.iter().find(|d| d.grounds.trim() == grounds.trim()) {
        Some(d) => Err(Refusal::RefusedBefore { decision: d.reference.clone() }.into()),
        None => Ok(()),
    }
}

/// R25, R26: a bankruptcy court's decision on the debtor is taken under one of its bankruptcy cases
/// (破申 for a refusal during review, 破 or 破申 for an acceptance) against an enterprise legal person.
pub fn bankruptcy_decision(kind: DebtorKind, case: &CaseNumber) -> Result<(), RuleError> {
    if kind != DebtorKind::EnterpriseLegalPerson {
        return Err(Invalid::NotEnterprise.into());
    }
    if !BANKRUPTCY_TYPES.contains(&case.case_type.as_str()) {
        return Err(Invalid::NotBankruptcyCase { case: case.to_string() }.into());
    }
    Ok(())
}

/// R26: a refusal ends a review (nothing else: a refusal with no review under way is refused).
pub fn bankruptcy_refusal(standing: &Standing) -> Result<(), RuleError> {
    match standing {
        Standing::InReview(_) => Ok(()),
        Standing::Bankrupt(d) => Err(Refusal::AlreadyBankrupt { decision: d.reference.clone() }.into()),
        Standing::Enforced => Err(Refusal::NoReview.into()),
    }
}

/// R26: a dismissal after acceptance ends the suspension (the seizures lifted stay lifted).
pub fn bankruptcy_dismissal(standing: &Standing) -> Result<(), RuleError> {
    match standing {
        Standing::Bankrupt(_) => Ok(()),
        Standing::InReview(_) | Standing::Enforced => Err(Refusal::NotBankrupt.into()),
    }
}

/// R25: the holding courts lift their seizures within 7 days of the acceptance (Beijing days).
pub fn lift_due(accepted: Time) -> Time {
    super::days_end(accepted, 7)
}

/// R25: an acceptance, during a review or without one (a creditor's or the debtor's own
/// application); never twice.
pub fn bankruptcy_acceptance(standing: &Standing) -> Result<(), RuleError> {
    match standing {
        Standing::Bankrupt(d) => Err(Refusal::AlreadyBankrupt { decision: d.reference.clone() }.into()),
        Standing::Enforced | Standing::InReview(_) => Ok(()),
    }
}

impl Ledger {
    /// R25: the debtor's bankruptcy was accepted by `decision`: every live seizure on the asset,
    /// first and waiting, is lifted at once and none is promoted (everything behind is lifted
    /// too); the registry is ordered to release each. A sale completed before stays.
    pub fn lift_for_bankruptcy(&mut self, decision: &Decision, now: Time, terms: &Terms) -> Outcome {
        let mut changes = self.settle(now, terms);
        let mut orders = Vec::new();
        let message = format!(
            "lifted: the debtor's bankruptcy was accepted by {} of court {} (R25)",
            decision.reference, decision.court
        );
        for s in self.seizures.iter_mut().filter(|s| s.state.is_live()) {
            s.state = SeizureState::Released;
            s.effective = 0;
            s.ended_at = Some(now);
            changes.push(Change {
                seizure_id: s.id.clone(),
                kind: ChangeKind::Released,
                at: now,
                message: message.clone(),
            });
            orders.push(Order::Release { seizure_id: s.id.clone(), reason: message.clone() });
        }
        Outcome { changes, orders, message }
    }
}
