use super::*;
use crate::core::identifiers::CaseNumber;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

const TERMS: Terms =
    Terms { deposit: 12, aircraft: 24, real_estate: 36, ip: 36, securities: 36, on_promotion: PromotionTerm::Fresh };

fn t0() -> Time {
    Utc.with_ymd_and_hms(2025, 1, 10, 2, 0, 0).unwrap()
}

fn ledger(kind: AssetKind, total: i64) -> Ledger {
    Ledger {
        asset: Asset {
            kind,
            asset_id: "A".into(),
            registry: "r".into(),
            debtor: "d".into(),
            unit: if kind == AssetKind::Deposit { "CNY".into() } else { String::new() },
            total,
            sale_started: false,
            disposed: false,
            total_at: Time::default(),
        },
        seizures: vec![],
        owner_bankrupt: false,
    }
}

fn case(n: i64) -> String {
    format!("（2024）京0105执{n}号")
}

fn place(l: &mut Ledger, n: i64, amount: i64, now: Time) -> Outcome {
    l.place(format!("s{n}"), n, "京0105", &case(n), amount, now, &TERMS).unwrap()
}

#[test]
fn r1_r2_first_is_effective_the_rest_wait_in_order() {
    let mut l = ledger(AssetKind::RealEstate, 1);
    assert!(
        place(&mut l, 1, 0, t0()).message.starts_with("placed as first seizure, rank 1, effective until 2028-01-10")
    );
    let o = place(&mut l, 2, 0, t0());
    assert_eq!(
        o.message,
        format!(
            "placed as waiting seizure, rank 2; it waits behind {} and takes effect as those ahead end (R3)",
            case(1)
        )
    );
    let o = place(&mut l, 3, 0, t0());
    assert_eq!(
        o.message,
        format!(
            "placed as waiting seizure, rank 3; it waits behind {} and takes effect as those ahead end (R3)",
            case(2)
        )
    );
    assert_eq!(l.seizures[2].end, None, "R2: a waiting seizure has no term");
    assert!(l.violations().is_empty());
}

#[test]
fn r3_release_promotes_the_next_at_once_with_a_fresh_term() {
    let mut l = ledger(AssetKind::RealEstate, 1);
    place(&mut l, 1, 0, t0());
    place(&mut l, 2, 0, t0());
    let later = t0() + chrono::Duration::days(100);
    let o = l.release("s1", &case(1), later, &TERMS).unwrap();
    assert!(o.message.contains(&format!("{} now effective until 2028-04-20", case(2))), "{}", o.message);
    assert_eq!(l.seizures[1].state, SeizureState::Effective);
    assert_eq!(l.seizures[1].start, Some(later));
}

#[test]
fn r3_order_end_convention_keeps_the_written_end_date() {
    let terms = Terms { on_promotion: PromotionTerm::OrderEnd, ..TERMS };
    let mut l = ledger(AssetKind::RealEstate, 1);
    l.place("s1".into(), 1, "c", &case(1), 0, t0(), &terms).unwrap();
    l.place("s2".into(), 2, "c", &case(2), 0, t0(), &terms).unwrap();
    l.release("s1", &case(1), t0() + chrono::Duration::days(100), &terms).unwrap();
    assert_eq!(l.seizures[1].end, Some(add_months(t0(), 36)));
}

#[test]
fn r4_freezes_take_what_is_left_and_inflows_go_in_rank_order() {
    let mut l = ledger(AssetKind::Deposit, 1000);
    place(&mut l, 1, 600, t0());
    let o = place(&mut l, 2, 800, t0());
    assert!(o.message.starts_with("partly effective: CNY 4.00 of CNY 8.00 frozen now"), "{}", o.message);
    place(&mut l, 3, 100, t0());
    assert_eq!((l.seizures[1].effective, l.seizures[2].effective), (400, 0));
    l.set_total(1300, t0(), t0(), &TERMS);
    assert_eq!((l.seizures[1].effective, l.seizures[2].effective), (700, 0));
    l.release("s1", &case(1), t0(), &TERMS).unwrap();
    assert_eq!((l.seizures[1].effective, l.seizures[2].effective), (800, 100));
    assert_eq!(l.seizures[2].state, SeizureState::Effective);
    assert!(l.violations().is_empty());
}

#[test]
fn r5_terms_follow_the_asset_class() {
    for (kind, end) in
        [(AssetKind::Deposit, "2026-01-10"), (AssetKind::Aircraft, "2027-01-10"), (AssetKind::Patent, "2028-01-10")]
    {
        let mut l = ledger(kind, 1);
        place(&mut l, 1, 1, t0());
        assert_eq!(l.seizures[0].end.map(day).unwrap(), end, "{kind:?}");
    }
}

#[test]
fn r6_lapse_promotes_at_the_end_date_even_when_noticed_years_later() {
    let mut l = ledger(AssetKind::Deposit, 100);
    place(&mut l, 1, 100, t0());
    place(&mut l, 2, 100, t0());
    let changes = l.settle(t0() + chrono::Duration::days(365 * 5), &TERMS);
    // s1 lapses after a year, s2 takes effect then and lapses a year later.
    let kinds: Vec<_> = changes.iter().map(|c| (c.seizure_id.as_str(), c.kind)).collect();
    assert_eq!(kinds, [("s1", ChangeKind::Lapsed), ("s2", ChangeKind::Promoted), ("s2", ChangeKind::Lapsed)]);
    assert_eq!(changes[1].at, add_months(t0(), 12));
    assert!(l.queue().next().is_none());
}

#[test]
fn r6_renewal_before_the_end_and_refusal_after() {
    let mut l = ledger(AssetKind::RealEstate, 1);
    place(&mut l, 1, 0, t0());
    place(&mut l, 2, 0, t0());
    let o = l.renew("s1", &case(1), None, t0() + chrono::Duration::days(30), &TERMS).unwrap();
    assert_eq!(o.message, "renewed until 2031-01-10 (renewal 1)");
    assert!(
        matches!(l.renew("s2", &case(2), None, t0(), &TERMS), Err(m @ RuleError::Refused(_)) if m.to_string().contains("R2"))
    );
    assert!(matches!(l.renew("s1", &case(1), Some(37), t0(), &TERMS), Err(RuleError::Invalid(_))));
    let late = add_months(t0(), 73);
    let err = l.renew("s1", &case(1), None, late, &TERMS).unwrap_err();
    assert!(
        matches!(&err, m @ RuleError::Refused(_) if m.to_string().contains("lapsed since 2031-01-10") && m.to_string().contains("R6")),
        "{err}"
    );
}

#[test]
fn r7_only_the_holder_releases_and_a_waiting_release_leaves_others_alone() {
    let mut l = ledger(AssetKind::Aircraft, 1);
    place(&mut l, 1, 0, t0());
    place(&mut l, 2, 0, t0());
    place(&mut l, 3, 0, t0());
    assert!(
        matches!(l.release("s1", &case(2), t0(), &TERMS), Err(m @ RuleError::Denied(_)) if m.to_string().contains("R7"))
    );
    let o = l.release("s2", &case(2), t0(), &TERMS).unwrap();
    assert_eq!(o.message, "released");
    assert_eq!((l.seizures[0].state, l.seizures[2].state), (SeizureState::Effective, SeizureState::Waiting));
    assert!(matches!(l.release("nope", &case(2), t0(), &TERMS), Err(RuleError::UnknownSeizure(_))));
}

#[test]
fn r8_a_sale_ends_the_first_and_lapses_the_waiting() {
    let mut l = ledger(AssetKind::RealEstate, 1);
    place(&mut l, 1, 0, t0());
    place(&mut l, 2, 0, t0());
    let o = l.dispose("s1", &case(1), Disposal::Sold, t0(), &TERMS).unwrap();
    assert!(o.message.contains("1 waiting seizure(s) lapse"));
    assert_eq!((l.seizures[0].state, l.seizures[1].state), (SeizureState::Disposed, SeizureState::Lapsed));
    assert!(
        matches!(l.place("s3".into(), 3, "c", &case(3), 0, t0(), &TERMS), Err(m @ RuleError::Refused(_)) if m.to_string().contains("R8"))
    );
    let mut d = ledger(AssetKind::Securities, 1000);
    place(&mut d, 1, 600, t0());
    place(&mut d, 2, 600, t0());
    d.dispose("s1", &case(1), Disposal::PartlySold(600), t0(), &TERMS).unwrap();
    assert_eq!((d.seizures[0].state, d.seizures[1].effective, d.asset.total), (SeizureState::Satisfied, 400, 400));
    assert!(d.dispose("s2", &case(2), Disposal::Sold, t0(), &TERMS).is_ok());
}

#[test]
fn r9_deduction_only_against_the_own_effective_amount() {
    let mut l = ledger(AssetKind::Deposit, 500);
    place(&mut l, 1, 300, t0());
    place(&mut l, 2, 300, t0());
    let err = l.deduct("s2", &case(2), 250, t0(), &TERMS).unwrap_err();
    assert!(
        matches!(&err, m @ RuleError::Refused(_) if m.to_string().contains("R9") && m.to_string().contains("CNY 2.00")),
        "{err}"
    );
    let quantity = |value| Quantity { value, kind: AssetKind::Deposit, unit: "CNY".into() };
    assert_eq!(
        err,
        RuleError::Refused(Refusal::OverDeduction { asked: quantity(250), effective: quantity(200) }),
        "the refusal carries its facts"
    );
    assert!(matches!(l.deduct("s1", &case(2), 10, t0(), &TERMS), Err(RuleError::Denied(Denial::NotHolder { .. }))));
    l.deduct("s1", &case(1), 300, t0(), &TERMS).unwrap();
    assert_eq!((l.seizures[0].state, l.asset.total, l.seizures[1].effective), (SeizureState::Satisfied, 200, 200));
    let mut re = ledger(AssetKind::RealEstate, 1);
    place(&mut re, 1, 0, t0());
    assert!(matches!(re.deduct("s1", &case(1), 1, t0(), &TERMS), Err(RuleError::Invalid(_))));
}

#[test]
fn r10_holder_change_keeps_rank_reference_and_dates() {
    let mut l = ledger(AssetKind::RealEstate, 1);
    place(&mut l, 1, 0, t0());
    place(&mut l, 2, 0, t0());
    l.seizures[1].registry_ref = Some("REF-2".into());
    let before = l.seizures[1].clone();
    l.change_holder(&case(2), "粤0304", "（2025）粤0304执9号", t0(), "designation");
    let after = &l.seizures[1];
    assert_eq!((after.seq, &after.registry_ref, after.end), (before.seq, &before.registry_ref, before.end));
    assert_eq!(after.case_number, "（2025）粤0304执9号");
    assert_eq!(l.live_of_case("（2025）粤0304执9号").unwrap().0, 2);
}

#[test]
fn r11_lists_measures_ending_within_thirty_days() {
    let mut l = ledger(AssetKind::Deposit, 100);
    place(&mut l, 1, 100, t0());
    let near = add_months(t0(), 12) - chrono::Duration::days(29);
    assert_eq!(l.ending_within(&case(1), near, 30).len(), 1);
    assert!(l.ending_within(&case(1), near - chrono::Duration::days(2), 30).is_empty());
}

#[test]
fn r14_does_not_apply_to_deposits() {
    let mut l = ledger(AssetKind::Deposit, 100);
    place(&mut l, 1, 50, t0());
    place(&mut l, 2, 50, t0());
    let later = t0() + chrono::Duration::days(90);
    assert!(
        matches!(l.check_disposal_transfer(&case(2), later), Err(m @ RuleError::Invalid(_)) if m.to_string().contains("R9"))
    );
}

#[test]
fn r14_disposal_moves_only_after_sixty_days_and_before_a_sale() {
    let mut l = ledger(AssetKind::RealEstate, 1);
    place(&mut l, 1, 0, t0());
    place(&mut l, 2, 0, t0());
    let err = l.check_disposal_transfer(&case(2), t0() + chrono::Duration::days(60)).unwrap_err();
    assert!(
        matches!(&err, m @ RuleError::Refused(_) if m.to_string().contains("60 days") && m.to_string().contains("2025-03-12")),
        "{err}"
    );
    // Calendar days in Beijing: the first seizure on the 10th of January, open from the 12th of March.
    let opens = Utc.with_ymd_and_hms(2025, 3, 11, 16, 0, 0).unwrap();
    assert!(l.check_disposal_transfer(&case(2), opens - chrono::Duration::seconds(1)).is_err());
    assert_eq!(l.check_disposal_transfer(&case(2), opens).unwrap(), case(1));
    assert_eq!(l.check_disposal_transfer(&case(2), t0() + chrono::Duration::days(61)).unwrap(), case(1));
    assert!(l.check_disposal_transfer(&case(3), t0() + chrono::Duration::days(61)).is_err());
    l.dispose("s1", &case(1), Disposal::AuctionNotice, t0(), &TERMS).unwrap();
    assert!(
        matches!(l.check_disposal_transfer(&case(2), t0() + chrono::Duration::days(90)), Err(m @ RuleError::Refused(_)) if m.to_string().contains("auction"))
    );
}

#[derive(Debug, Clone)]
enum Op {
    Place(i64),
    Release(usize),
    Renew(usize),
    Deduct(usize, i64),
    Jump(i64),
    Inflow(i64),
    PartSale(usize, i64),
    Sell(usize),
    Transfer(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..500).prop_map(Op::Place),
        2 => (0usize..8).prop_map(Op::Release),
        1 => (0usize..8).prop_map(Op::Renew),
        1 => ((0usize..8), 1i64..300).prop_map(|(i, a)| Op::Deduct(i, a)),
        2 => (1i64..800).prop_map(Op::Jump),
        1 => (0i64..400).prop_map(Op::Inflow),
        1 => ((0usize..8), 1i64..200).prop_map(|(i, a)| Op::PartSale(i, a)),
        1 => (0usize..8).prop_map(Op::Sell),
        1 => (0usize..8).prop_map(Op::Transfer),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_after_every_step(kind in prop::sample::select(vec![AssetKind::Deposit, AssetKind::RealEstate, AssetKind::Securities]),
                                        ops in prop::collection::vec(op(), 1..40)) {
        let mut l = ledger(kind, if is_divisible(kind) { 700 } else { 1 });
        let mut now = t0();
        let mut acknowledged: Vec<String> = Vec::new();
        let mut seq = 0;
        for op in ops {
            let order_before: Vec<String> = l.queue().map(|(_, s)| s.id.clone()).collect();
            let pick = |i: usize, l: &Ledger| l.seizures.get(i % l.seizures.len().max(1)).map(|s| (s.id.clone(), s.case_number.clone()));
            let result = match op {
                Op::Place(a) => { seq += 1; l.place(format!("s{seq}"), seq, "c", &case(seq), a, now, &TERMS).inspect(|_| acknowledged.push(format!("s{seq}"))) }
                Op::Release(i) => match pick(i, &l) { Some((id, c)) => l.release(&id, &c, now, &TERMS), None => continue },
                Op::Renew(i) => match pick(i, &l) { Some((id, c)) => l.renew(&id, &c, None, now, &TERMS), None => continue },
                Op::Deduct(i, a) => match pick(i, &l) { Some((id, c)) => l.deduct(&id, &c, a, now, &TERMS), None => continue },
                Op::PartSale(i, a) => match pick(i, &l) { Some((id, c)) => l.dispose(&id, &c, Disposal::PartlySold(a), now, &TERMS), None => continue },
                Op::Sell(i) => match pick(i, &l) { Some((id, c)) => l.dispose(&id, &c, Disposal::Sold, now, &TERMS), None => continue },
                Op::Transfer(i) => match pick(i, &l) { Some((_, c)) => Ok(Outcome { changes: l.change_holder(&c, "粤01", &format!("{c}-t"), now, "test"), ..Outcome::default() }), None => continue },
                Op::Jump(days) => { now += chrono::Duration::days(days); Ok(Outcome { changes: l.settle(now, &TERMS), ..Outcome::default() }) }
                Op::Inflow(a) => Ok(Outcome { changes: l.set_total(l.asset.total + a, now, now, &TERMS), ..Outcome::default() }),
            };
            let _ = result;
            l.settle(now, &TERMS);
            prop_assert!(l.violations().is_empty(), "{:?}", l.violations());
            // Ranks never reorder: the survivors keep their relative order.
            let order_after: Vec<String> = l.queue().map(|(_, s)| s.id.clone()).collect();
            let survivors: Vec<&String> = order_before.iter().filter(|id| order_after.contains(id)).collect();
            let kept: Vec<&String> = order_after.iter().filter(|id| order_before.contains(id)).collect();
            prop_assert_eq!(survivors, kept);
            // Nothing acknowledged disappears.
            for id in &acknowledged {
                prop_assert!(l.seizures.iter().any(|s| &s.id == id));
            }
        }
    }
}

fn case_number(text: &str) -> CaseNumber {
    CaseNumber::parse(text).unwrap()
}

#[test]
fn r15_a_court_acts_for_its_own_cases_and_searches_those_designated_to_it() {
    let own = case_number("（2024）京0105执1号");
    assert_eq!(authority("京0105", &own, None, Action::Control), Ok(()));
    let err = authority("粤0304", &own, None, Action::Query).unwrap_err();
    assert!(
        matches!(&err, m @ RuleError::Denied(_) if m.to_string().contains("belongs to court 京0105") && m.to_string().contains("R15")),
        "{err}"
    );
    assert_eq!(authority("粤0304", &own, Some("粤0304"), Action::Query), Ok(()), "R10: the receiving court searches");
    let err = authority("粤0304", &own, Some("粤0304"), Action::Control).unwrap_err();
    assert!(err.to_string().contains("AcceptTransfer"), "{err}");
    let err = authority("京0105", &own, Some("粤0304"), Action::Query).unwrap_err();
    assert!(err.to_string().contains("R12"), "R12: the original court stops searching: {err}");
    assert_eq!(
        authority("京0105", &own, Some("粤0304"), Action::Control),
        Ok(()),
        "R12 is the ledger's, with approvals"
    );
    assert!(authority("沪0101", &own, Some("粤0304"), Action::Query).is_err());
}

#[test]
fn r12_a_designated_case_stops_unless_an_emergency_is_approved() {
    let d = Designation { to_court: "粤0304".into(), decision: "（2025）粤03执监1号".into(), decided_at: t0() };
    assert_eq!(stop_on_designation("c", None, ""), Ok(false));
    let err = stop_on_designation("c", Some(&d), " ").unwrap_err();
    assert!(
        matches!(&err, m @ RuleError::Denied(_) if m.to_string().contains("粤0304") && m.to_string().contains("R12")),
        "{err}"
    );
    assert_eq!(stop_on_designation("c", Some(&d), "（2025）粤03执监2号"), Ok(true));
    // R11: what ends within 30 days is renewed without approval; anything else is an emergency measure.
    assert_eq!(renewal_on_designation("c", Some(&d), true, ""), Ok(false));
    assert!(matches!(renewal_on_designation("c", Some(&d), false, ""), Err(RuleError::Denied(_))));
    assert_eq!(renewal_on_designation("c", Some(&d), false, "（2025）粤03执监2号"), Ok(true));
    assert_eq!(renewal_on_designation("c", None, false, ""), Ok(false));
}

#[test]
fn r12_r13_a_designation_is_recorded_once_and_handed_over_within_seven_days() {
    let case = case_number("（2024）京0105执1号");
    let d = Designation { to_court: "粤0304".into(), decision: "（2025）粤03执监1号".into(), decided_at: t0() };
    assert_eq!(designation_receipt(&case, "粤0304", &d.decision, None), Ok(()));
    assert_eq!(designation_receipt(&case, "粤0304", &d.decision, Some(&d)), Ok(()), "the same designation");
    assert!(matches!(designation_receipt(&case, "沪0101", &d.decision, Some(&d)), Err(RuleError::Refused(_))));
    assert!(matches!(designation_receipt(&case, "京0105", &d.decision, None), Err(RuleError::Invalid(_))));
    // Decided at 10:00 on the 10th of January in Beijing: handed over by the end of the 17th.
    assert_eq!(handover_due(t0()), Utc.with_ymd_and_hms(2025, 1, 17, 16, 0, 0).unwrap());
}

#[test]
fn r4_the_claim_caps_a_case_across_its_accounts() {
    let claim = ("CNY".to_string(), 60_000);
    assert_eq!(claim_cap(AssetKind::RealEstate, "", 1, None, 0), Ok(()), "only deposits name a claim");
    assert!(matches!(claim_cap(AssetKind::Deposit, "CNY", 1, None, 0), Err(RuleError::Invalid(_))));
    assert!(
        matches!(claim_cap(AssetKind::Deposit, "USD", 1, Some(&claim), 0), Err(m @ RuleError::Invalid(_)) if m.to_string().contains("USD"))
    );
    assert_eq!(claim_cap(AssetKind::Deposit, "CNY", 30_000, Some(&claim), 30_000), Ok(()));
    let err = claim_cap(AssetKind::Deposit, "CNY", 30_001, Some(&claim), 30_000).unwrap_err();
    assert!(
        matches!(&err, m @ RuleError::Refused(_) if m.to_string().contains("freeze at most 30000") && m.to_string().contains("R4")),
        "{err}"
    );
    let err = claim_cap(AssetKind::Deposit, "CNY", i64::MAX, Some(&claim), 1).unwrap_err();
    assert!(matches!(err, RuleError::Refused(_)), "an amount that would overflow is over the claim");
}

#[test]
fn r10_r11_handover_and_acceptance() {
    let case = case_number("（2024）京0105执1号");
    assert_eq!(handover(&case, None, &[]), Ok(()));
    assert!(
        matches!(handover(&case, Some("粤0305"), &[]), Err(m @ RuleError::Refused(_)) if m.to_string().contains("粤0305"))
    );
    let ending = ["seizure s1 on re:X ends 2025-02-01".to_string()];
    let err = handover(&case, None, &ending).unwrap_err();
    assert!(
        matches!(&err, m @ RuleError::Refused(_) if m.to_string().contains("R11") && m.to_string().contains("s1")),
        "{err}"
    );

    let filed = case_number("（2025）粤0304执9号");
    assert_eq!(acceptance("t", "粤0304", None, &filed), Ok(()));
    assert!(matches!(acceptance("t", "粤0305", None, &filed), Err(RuleError::Denied(_))));
    assert!(matches!(acceptance("t", "粤0304", Some("x"), &filed), Err(RuleError::Refused(_))));
    let restored = case_number("（2025）粤0304执恢9号");
    assert!(
        matches!(acceptance("t", "粤0304", None, &restored), Err(m @ RuleError::Invalid(_)) if m.to_string().contains("R10"))
    );
}

#[test]
fn r13_r14_timers() {
    let decided = t0();
    let handed = t0() + chrono::Duration::days(8);
    let t = transfer_timers(decided, handed, None, handed + chrono::Duration::days(7));
    assert!(t.handover_late && !t.filing_overdue);
    // Received on the 18th of January in Beijing: filing is due by the end of the 25th there.
    assert_eq!(t.filing_due, Utc.with_ymd_and_hms(2025, 1, 25, 16, 0, 0).unwrap());
    assert!(transfer_timers(decided, handed, None, handed + chrono::Duration::days(8)).filing_overdue);
    assert!(!transfer_timers(decided, handed, Some(handed), handed + chrono::Duration::days(30)).filing_overdue);

    let (due, overdue) = disposal_answer_due(t0(), false, t0() + chrono::Duration::days(16));
    // Asked on the 10th of January in Beijing: the answer is due by the end of the 25th there.
    assert_eq!((due, overdue), (Utc.with_ymd_and_hms(2025, 1, 25, 16, 0, 0).unwrap(), true));
    assert!(!disposal_answer_due(t0(), false, t0() + chrono::Duration::days(15)).1, "the 25th is still in time");
    assert!(
        !disposal_answer_due(t0(), true, t0() + chrono::Duration::days(16)).1,
        "an answered request is not overdue"
    );
    assert!(disposal_request("c", "a", true).is_err() && disposal_request("c", "a", false).is_ok());
    assert!(matches!(disposal_answer("d", "c1", "c2", false), Err(RuleError::Denied(_))));
    assert!(matches!(disposal_answer("d", "c1", "c1", true), Err(RuleError::Refused(_))));
}

#[test]
fn a_reference_already_given_to_another_live_seizure_is_a_lie() {
    let mut l = ledger(AssetKind::RealEstate, 1);
    place(&mut l, 1, 1, t0());
    place(&mut l, 2, 1, t0());
    l.seizures[0].registry_ref = Some("REF-1".into());
    assert!(reference_is_its_own(&l, &l.seizures[1].id.clone(), "REF-2").is_ok());
    assert!(reference_is_its_own(&l, &l.seizures[0].id.clone(), "REF-1").is_ok(), "its own reference, repeated");
    let lie = reference_is_its_own(&l, &l.seizures[1].id.clone(), "REF-1").unwrap_err().to_string();
    assert!(lie.contains("INVALID_RESPONSE") && lie.contains("already gave seizure"), "{lie}");
    l.seizures[0].state = SeizureState::Released;
    assert!(reference_is_its_own(&l, &l.seizures[1].id.clone(), "REF-1").is_ok(), "an ended seizure's is free");
}

#[test]
fn r25_acceptance_lifts_every_seizure_and_promotes_no_one() {
    let mut l = ledger(AssetKind::Deposit, 500);
    place(&mut l, 1, 300, t0());
    place(&mut l, 2, 300, t0());
    place(&mut l, 3, 100, t0());
    l.release("s3", &case(3), t0(), &TERMS).unwrap();
    let accepted = Decision {
        reference: "（2027）京0105破1号".into(),
        court: "京0105".into(),
        case_number: "（2027）京0105破1号".into(),
        grounds: String::new(),
        at: t0(),
    };
    let later = t0() + chrono::Duration::days(1);
    let lifted = l.lift_for_bankruptcy(&accepted, later, &TERMS);
    assert!(l.seizures.iter().all(|s| !s.state.is_live() && s.effective == 0), "{:?}", l.seizures);
    let released: Vec<&str> = lifted.orders.iter().map(Order::seizure_id).collect();
    assert_eq!(
        released,
        ["s1", "s2"],
        "the first and the waiting one (partly effective) are released at the registry; the released one is not again"
    );
    assert!(lifted.orders.iter().all(|o| o.reason().contains("（2027）京0105破1号")), "the registry reads why");
    assert!(lifted.changes.iter().all(|c| c.kind == ChangeKind::Released && c.message.contains("R25")));
    assert!(lifted.changes.iter().all(|c| c.kind != ChangeKind::Promoted), "nobody behind is promoted");
    assert_eq!(l.seizures[2].ended_at, Some(t0()), "an earlier release keeps its date");
}
