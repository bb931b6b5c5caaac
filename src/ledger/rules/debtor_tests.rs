//! The debtor-as-a-whole rules (R23–R27), each by its id.

use chrono::{TimeZone, Utc};

use super::*;
use crate::core::{
    identifiers::{CaseNumber, DebtorId},
    proto,
};

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
    assert_eq!(debtor_kind(&DebtorId::Resident("360426199101010071".into()), &prefixes()), DebtorKind::NaturalPerson);
    let only_91 = vec!["91".to_string()];
    assert_eq!(debtor_kind(&organisation("93110000600037341L"), &only_91), DebtorKind::NaturalPerson, "configurable");
}

#[test]
fn r24_a_review_suspends_every_step_but_renewals_and_releases() {
    let review = Standing::InReview(decision("（2027）京0105执1号之一", "the debtor's consent"));
    for step in
        [EnforcementStep::Seize, EnforcementStep::Deduct, EnforcementStep::Dispose, EnforcementStep::DisposalTransfer]
    {
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
        assert!(matches!(step_allowed(&bankrupt, step, "approved"), Err(RuleError::Refused(Refusal::Bankrupt { .. }))));
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

#[test]
fn r26_a_dismissal_ends_an_accepted_bankruptcy_only() {
    let bankrupt = Standing::Bankrupt(decision("（2027）京0105破1号", ""));
    assert_eq!(bankruptcy_dismissal(&bankrupt), Ok(()));
    assert_eq!(bankruptcy_dismissal(&Standing::Enforced), Err(Refusal::NotBankrupt.into()));
    assert_eq!(bankruptcy_dismissal(&Standing::InReview(decision("d", "g"))), Err(Refusal::NotBankrupt.into()));
}

#[test]
fn r25_holding_courts_lift_within_seven_beijing_days() {
    // 23:30 in Beijing on 1 March: the count starts from the Beijing date, whatever the UTC date.
    let accepted = Utc.with_ymd_and_hms(2027, 3, 1, 15, 30, 0).unwrap();
    assert_eq!(lift_due(accepted), Utc.with_ymd_and_hms(2027, 3, 8, 16, 0, 0).unwrap(), "midnight after 8 March");
}

#[test]
fn r25_nothing_is_promoted_on_a_bankrupt_debtors_asset() {
    let terms = Terms::default();
    let t0 = Utc.with_ymd_and_hms(2027, 1, 1, 2, 0, 0).unwrap();
    let asset = Asset {
        kind: proto::AssetKind::RealEstate,
        asset_id: "flat".into(),
        registry: "re".into(),
        debtor: "9111**********341L".into(),
        unit: String::new(),
        total: 1,
        sale_started: false,
        disposed: false,
        total_at: t0,
    };
    let mut l = Ledger { asset, seizures: vec![], owner_bankrupt: false };
    for (n, id) in ["s1", "s2"].iter().enumerate() {
        let case = format!("（2027）京0105执{}号", n + 1);
        l.place(id.to_string(), n as i64 + 1, "京0105", &case, 1, t0, &terms).unwrap();
    }
    l.owner_bankrupt = true;
    let released = l.release("s1", "（2027）京0105执1号", t0 + chrono::Duration::days(1), &terms).unwrap();
    assert!(released.changes.iter().all(|c| c.kind != ChangeKind::Promoted), "{:?}", released.changes);
    assert_eq!(l.seizures[1].state, SeizureState::Waiting, "the waiting seizure is lifted by its court, not promoted");
    // Nor does a lapse promote anyone.
    let mut lapsing = l.clone();
    lapsing.seizures[1] = Seizure { state: SeizureState::Effective, effective: 1, ..l.seizures[0].clone() };
    assert!(lapsing.settle(t0 + chrono::Duration::days(2000), &terms).iter().all(|c| c.kind != ChangeKind::Promoted));
}

#[test]
fn r24_r25_a_case_shows_suspended_while_its_debtor_is_in_review_or_bankrupt() {
    let enforcement = case("（2027）京0105执1号");
    let bankruptcy = case("（2027）京01破1号");
    let review = Standing::InReview(decision("d", "g"));
    assert_eq!(shown_state(CaseState::Active, &enforcement, &review), proto::CaseState::Suspended);
    assert_eq!(shown_state(CaseState::Active, &enforcement, &Standing::Enforced), proto::CaseState::Active);
    assert_eq!(shown_state(CaseState::Active, &bankruptcy, &review), proto::CaseState::Active, "bankruptcy goes on");
    assert_eq!(shown_state(CaseState::Terminated, &enforcement, &review), proto::CaseState::Terminated);
    assert_eq!(CaseState::parse("transferred"), Some(CaseState::Transferred));
}

#[test]
fn r27_who_reads_the_picture_and_who_searches_under_a_bankruptcy_case() {
    let enforcement = case("（2027）京0105执1号");
    let bankruptcy = case("（2027）京01破申1号");
    assert!(may_read_picture(&enforcement, Some(CaseState::Active)));
    assert!(!may_read_picture(&enforcement, Some(CaseState::Closed)), "a closed case reads nothing");
    assert!(!may_read_picture(&enforcement, None), "no case against the debtor");
    assert!(may_read_picture(&bankruptcy, Some(CaseState::Closed)), "a bankruptcy case in any state");
    assert!(may_search(&bankruptcy, DebtorKind::EnterpriseLegalPerson));
    assert!(!may_search(&bankruptcy, DebtorKind::NaturalPerson));
    assert!(!may_search(&bankruptcy, DebtorKind::OtherOrganisation));
    assert!(may_search(&enforcement, DebtorKind::NaturalPerson));
}

fn series_case(text: &str, ending: &[&str]) -> SeriesCase {
    SeriesCase { case: case(text), ending: ending.iter().map(|e| e.to_string()).collect(), designated: None }
}

#[test]
fn r23_a_series_is_designated_by_a_superior_court_all_or_nothing() {
    let cases = [series_case("（2027）粤0304执1号", &[]), series_case("（2027）粤0305执2号", &[])];
    assert_eq!(series_designation("粤03", "粤0306", "（2027）粤03执监1号", &cases), Ok(()));
    assert!(is_superior("粤", "粤0304") && !is_superior("粤0304", "粤0304") && !is_superior("京01", "粤0304"));
    assert_eq!(
        series_designation("粤0304", "粤0306", "d", &cases),
        Err(Denial::NotSuperior { caller: "粤0304".into(), court: "粤0306".into() }.into()),
        "a basic court is nobody's superior"
    );
    assert!(matches!(
        series_designation("粤03", "京0105", "d", &cases),
        Err(RuleError::Denied(Denial::NotSuperior { .. }))
    ));
    let blocked = [
        series_case("（2027）粤0304执1号", &["seizure s1 on flat ends 2027-03-20"]),
        series_case("（2027）粤0305执2号", &["seizure s2 on car ends 2027-03-21", "seizure s3 ends 2027-03-22"]),
    ];
    let Err(RuleError::Refused(Refusal::SeriesBlocked { blocking })) =
        series_designation("粤03", "粤0306", "d", &blocked)
    else {
        panic!("blocked")
    };
    assert_eq!(blocking.len(), 3, "every blocking measure of every case: {blocking:?}");
    assert!(blocking[1].starts_with("（2027）粤0305执2号"), "{blocking:?}");
    let elsewhere = SeriesCase {
        designated: Some(Designation {
            to_court: "粤0307".into(),
            decision: "other".into(),
            decided_at: Time::default(),
        }),
        ..series_case("（2027）粤0304执1号", &[])
    };
    assert!(matches!(
        series_designation("粤03", "粤0306", "d", &[elsewhere]),
        Err(RuleError::Refused(Refusal::SeriesBlocked { .. }))
    ));
    assert!(matches!(
        series_designation("粤03", "粤0306", "d", &[]),
        Err(RuleError::Refused(Refusal::NoSeriesCases { .. }))
    ));
}

#[test]
fn r30_ten_re_searches_six_months_apart_on_beijing_dates() {
    // 23:30 in Beijing on 31 January: the Beijing date counts, and month ends clamp.
    let terminated = Utc.with_ymd_and_hms(2027, 1, 31, 15, 30, 0).unwrap();
    let days = research_days(terminated);
    assert_eq!(days.len(), 10);
    assert_eq!(days[0], Utc.with_ymd_and_hms(2027, 7, 30, 16, 0, 0).unwrap(), "midnight starting 31 July, Beijing");
    assert_eq!(days[9], Utc.with_ymd_and_hms(2032, 1, 30, 16, 0, 0).unwrap(), "five years on, then no more");
    let leap = research_days(Utc.with_ymd_and_hms(2027, 8, 31, 2, 0, 0).unwrap());
    assert_eq!(leap[0], Utc.with_ymd_and_hms(2028, 2, 28, 16, 0, 0).unwrap(), "31 August + 6 months: 29 February");
    assert!(days.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn r30_terminate_an_active_case_and_resume_it_under_its_own_court() {
    let old = case("（2024）京0105执1号");
    assert_eq!(termination(&old, Some(CaseState::Active)), Ok(()));
    assert_eq!(termination(&old, None), Ok(()), "registered by the termination");
    assert!(matches!(
        termination(&old, Some(CaseState::Terminated)),
        Err(RuleError::Refused(Refusal::AlreadyTerminated { .. }))
    ));
    assert!(matches!(termination(&old, Some(CaseState::Closed)), Err(RuleError::Refused(Refusal::NotActive { .. }))));
    let resumed = case("（2027）京0105执恢3号");
    assert_eq!(resumption(&old, Some(CaseState::Terminated), &resumed), Ok(()));
    assert!(matches!(
        resumption(&old, Some(CaseState::Active), &resumed),
        Err(RuleError::Refused(Refusal::NotTerminated { .. }))
    ));
    assert!(matches!(
        resumption(&old, Some(CaseState::Terminated), &case("（2027）京0105执3号")),
        Err(RuleError::Invalid(Invalid::NotResumption { .. }))
    ));
    assert!(matches!(
        resumption(&old, Some(CaseState::Terminated), &case("（2027）京0108执恢3号")),
        Err(RuleError::Invalid(Invalid::ResumedElsewhere { .. }))
    ));
}

#[test]
fn r30_the_days_re_searches_are_spread_over_the_hours_and_all_started_by_their_end() {
    let night: crate::core::clock::BeijingHours = "22:00-06:00".parse().unwrap();
    let minute = std::time::Duration::from_secs(60);
    // 21:00 in Beijing: outside the night, none; at any hour when none are set, all.
    let evening = Utc.with_ymd_and_hms(2027, 3, 1, 13, 0, 0).unwrap();
    assert_eq!(research_quota(960, evening, Some(night), minute), 0);
    assert_eq!(research_quota(960, evening, None, minute), 960);
    // 22:00: 480 rounds of a minute left, two each.
    let start = Utc.with_ymd_and_hms(2027, 3, 1, 14, 0, 0).unwrap();
    assert_eq!(research_quota(960, start, Some(night), minute), 2);
    // Past midnight, 05:59:30: the last round starts what is left.
    let last = Utc.with_ymd_and_hms(2027, 3, 1, 21, 59, 30).unwrap();
    assert_eq!(research_quota(37, last, Some(night), minute), 37);
    // Spread evenly, the night's rounds start every one of them and none is left for the day.
    let mut left = 1000u64;
    for round in 0..480 {
        let q = research_quota(left, start + chrono::Duration::minutes(round), Some(night), minute);
        assert!(q <= 3, "an even share, not a burst: {q}");
        left -= q;
    }
    assert_eq!(left, 0, "all started by 06:00");
}
