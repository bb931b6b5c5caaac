//! The debtor as a whole (R24–R26): which debtors bankruptcy law reaches,
//! where a debtor stands between enforcement and bankruptcy, and what each
//! court may still do on its cases meanwhile. Pure functions over what the
//! store gathered; the store applies what they decide.

use super::{Change, ChangeKind, Invalid, Ledger, Order, Outcome, Refusal, RuleError, SeizureState, Terms, Time};
use crate::core::identifiers::{CaseNumber, DebtorId};

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
}

impl BankruptcyAct {
    /// The name stored with the decision.
    pub fn as_str(self) -> &'static str {
        match self {
            BankruptcyAct::Review => "review",
            BankruptcyAct::Accept => "accepted",
            BankruptcyAct::Refuse => "refused",
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
            orders.push(Order::Release { seizure_id: s.id.clone() });
        }
        Outcome { changes, orders, message }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn prefixes() -> Vec<String> {
        vec!["91".into(), "93".into()]
    }

    fn organisation(code: &str) -> DebtorId {
        DebtorId::Organisation(code.into())
    }

    fn decision(reference: &str, grounds: &str) -> Decision {
        Decision {
            reference: reference.into(),
            court: "京0105".into(),
            case_number: "（2027）京0105执1号".into(),
            grounds: grounds.into(),
            at: Utc.with_ymd_and_hms(2027, 3, 1, 2, 0, 0).unwrap(),
        }
    }

    fn case(text: &str) -> CaseNumber {
        CaseNumber::parse(text).unwrap()
    }

    #[test]
    fn enterprises_and_cooperatives_are_legal_persons_and_individual_businesses_are_not() {
        assert_eq!(debtor_kind(&organisation("91110000600037341L"), &prefixes()), DebtorKind::EnterpriseLegalPerson);
        assert_eq!(debtor_kind(&organisation("93110000600037341L"), &prefixes()), DebtorKind::EnterpriseLegalPerson);
        assert_eq!(debtor_kind(&organisation("92110000600037341L"), &prefixes()), DebtorKind::NaturalPerson);
        assert_eq!(debtor_kind(&organisation("12110000600037341L"), &prefixes()), DebtorKind::OtherOrganisation);
        assert_eq!(
            debtor_kind(&DebtorId::Resident("360426199101010071".into()), &prefixes()),
            DebtorKind::NaturalPerson
        );
        let only_91 = vec!["91".to_string()];
        assert_eq!(
            debtor_kind(&organisation("93110000600037341L"), &only_91),
            DebtorKind::NaturalPerson,
            "configurable"
        );
    }

    #[test]
    fn r24_a_review_suspends_every_step_but_renewals_and_releases() {
        let review = Standing::InReview(decision("（2027）京0105执1号之一", "the debtor's consent"));
        for step in [
            EnforcementStep::Seize,
            EnforcementStep::Deduct,
            EnforcementStep::Dispose,
            EnforcementStep::DisposalTransfer,
        ] {
            let refused = step_allowed(&review, step, "").unwrap_err();
            assert!(matches!(refused, RuleError::Refused(Refusal::InReview { step: s, .. }) if s == step), "{step:?}");
            let said = refused.to_string();
            assert!(said.contains("（2027）京0105执1号之一") && said.contains("R24"), "{said}");
        }
        assert_eq!(step_allowed(&review, EnforcementStep::Renew, ""), Ok(()), "the seizure must not lapse in review");
        assert_eq!(step_allowed(&review, EnforcementStep::Release, ""), Ok(()));
        assert_eq!(
            step_allowed(&review, EnforcementStep::Dispose, "（2027）京01执监2号"),
            Ok(()),
            "perishable goods, approved"
        );
        assert_eq!(step_allowed(&Standing::Enforced, EnforcementStep::Seize, ""), Ok(()));
    }

    #[test]
    fn r25_after_acceptance_only_releases_remain() {
        let bankrupt = Standing::Bankrupt(decision("（2027）京0105破1号", ""));
        for step in [
            EnforcementStep::Seize,
            EnforcementStep::Renew,
            EnforcementStep::Deduct,
            EnforcementStep::Dispose,
            EnforcementStep::DisposalTransfer,
        ] {
            assert!(matches!(
                step_allowed(&bankrupt, step, "approved"),
                Err(RuleError::Refused(Refusal::Bankrupt { .. }))
            ));
        }
        assert_eq!(step_allowed(&bankrupt, EnforcementStep::Release, ""), Ok(()));
        assert!(matches!(bankruptcy_acceptance(&bankrupt), Err(RuleError::Refused(Refusal::AlreadyBankrupt { .. }))));
        let review = Standing::InReview(decision("d", "g"));
        assert_eq!(bankruptcy_acceptance(&review), Ok(()));
        assert_eq!(bankruptcy_acceptance(&Standing::Enforced), Ok(()), "a creditor's own application");
    }

    #[test]
    fn r24_r26_a_review_is_for_enterprises_once_and_never_again_on_refused_grounds() {
        let enterprise = DebtorKind::EnterpriseLegalPerson;
        assert_eq!(bankruptcy_review(enterprise, &Standing::Enforced, &[], "the debtor's consent"), Ok(()));
        assert_eq!(
            bankruptcy_review(DebtorKind::NaturalPerson, &Standing::Enforced, &[], "consent"),
            Err(Invalid::NotEnterprise.into())
        );
        assert_eq!(bankruptcy_review(enterprise, &Standing::Enforced, &[], " "), Err(Invalid::NoGrounds.into()));
        let review = Standing::InReview(decision("d1", "g"));
        assert!(matches!(
            bankruptcy_review(enterprise, &review, &[], "g2"),
            Err(RuleError::Refused(Refusal::AlreadyInReview { .. }))
        ));
        let refused = [decision("（2027）京0105破申3号", "applicant A's consent")];
        assert_eq!(
            bankruptcy_review(enterprise, &Standing::Enforced, &refused, "applicant A's consent"),
            Err(Refusal::RefusedBefore { decision: "（2027）京0105破申3号".into() }.into())
        );
        assert_eq!(bankruptcy_review(enterprise, &Standing::Enforced, &refused, "the debtor's consent"), Ok(()));
        assert_eq!(bankruptcy_refusal(&review), Ok(()));
        assert_eq!(bankruptcy_refusal(&Standing::Enforced), Err(Refusal::NoReview.into()));
    }

    #[test]
    fn r25_r26_bankruptcy_courts_decide_under_bankruptcy_cases() {
        let enterprise = DebtorKind::EnterpriseLegalPerson;
        let bankruptcy = case("（2027）京0105破1号");
        assert_eq!(bankruptcy.case_type, "破");
        assert_eq!(case("（2027）京0105破申3号").case_type, "破申");
        assert_eq!(bankruptcy_decision(enterprise, &bankruptcy), Ok(()));
        assert!(matches!(
            bankruptcy_decision(enterprise, &case("（2027）京0105执1号")),
            Err(RuleError::Invalid(Invalid::NotBankruptcyCase { .. }))
        ));
    }
}
