//! What rank is for, through the court API on both backends (R28–R29): a
//! company's flat paid out by rank after its costs and secured claims; a
//! person's shared pro rata among seizers and participants; each path of a
//! served plan through objections, oppositions and suits on the injected
//! clock; one plan across a series (R23); refusals under bankruptcy review;
//! two ledgers racing to pay one plan; the money balanced throughout.

use assetgw::core::clock::Clock;
use assetgw::core::proto::{
    ApplyToParticipateRequest, AssetKind, AssetRef, DeductFundsRequest, DisposalStep, Distribution, DistributionState,
    DraftDistributionRequest, EncumbranceKind, FundMovementKind, GetCaseFundsRequest, GetCaseFundsResponse,
    GetDistributionRequest, LineCorrection, LineKind, MergedAsset, ObjectToDistributionRequest, ObjectionStep,
    PayOutDistributionRequest, Proceeds, RecordDisposalRequest, RecordProceedsRequest, RecordSecuredClaimRequest,
    RegisterCaseRequest, ServeDistributionRequest, Sharing, debtor_service_client::DebtorServiceClient,
    distribution_service_client::DistributionServiceClient, seizure_service_client::SeizureServiceClient,
};
use assetgw::ledger::{
    command::{Command, PlanStep},
    store::Store,
};
use tonic::Code;

use crate::{debtors::*, harness::*, ledger::*};

type Plans = DistributionServiceClient<Courts>;
type Seizures = SeizureServiceClient<Courts>;

/// A stack on `db` whose sweeper pays out due plans every `sweep`.
async fn stack(db: Db, sweep: std::time::Duration) -> Option<Stack> {
    let url = ledger_url(db).await?;
    Some(
        Stack::with(standard(), |c| {
            c.ledger.url = url;
            c.ledger.sweep_interval = sweep;
        })
        .await,
    )
}

/// Sweeps too rarely to race the test's own payouts.
const NEVER: std::time::Duration = std::time::Duration::from_secs(3600);

async fn register(stack: &Stack, id: &str, case: &str, who: &str, claim: i64) {
    let r = RegisterCaseRequest {
        request_id: id.into(),
        case_number: case.into(),
        debtors: vec![debtor(who)],
        applicant: format!("applicant of {case}"),
        claim_amount: claim,
        currency: String::new(),
    };
    DebtorServiceClient::new(stack.channel()).register_case(as_court(case, r)).await.unwrap();
}

async fn sell(s: &mut Seizures, id: &str, case: &str, seizure: &str) {
    let r = RecordDisposalRequest {
        request_id: id.into(),
        case_number: case.into(),
        seizure_id: seizure.into(),
        step: DisposalStep::Sold as i32,
        amount: 0,
    };
    s.record_disposal(as_court(case, r)).await.unwrap();
}

fn proceeds_req(id: &str, case: &str, seizure: &str, amount: i64, costs: i64) -> RecordProceedsRequest {
    RecordProceedsRequest {
        request_id: id.into(),
        case_number: case.into(),
        seizure_id: seizure.into(),
        amount,
        costs,
        currency: String::new(),
    }
}

async fn proceeds(p: &mut Plans, id: &str, case: &str, seizure: &str, amount: i64, costs: i64) -> Proceeds {
    let r = p.record_proceeds(as_court(case, proceeds_req(id, case, seizure, amount, costs))).await;
    r.unwrap().into_inner().proceeds.unwrap()
}

fn draft_req(id: &str, case: &str, who: &str, proceeds: &[&str]) -> DraftDistributionRequest {
    DraftDistributionRequest {
        request_id: id.into(),
        case_number: case.into(),
        debtor: Some(debtor(who)),
        proceeds_ids: proceeds.iter().map(|p| p.to_string()).collect(),
        series: false,
    }
}

async fn draft(p: &mut Plans, id: &str, case: &str, who: &str, ids: &[&str]) -> Result<Distribution, tonic::Status> {
    let r = p.draft_distribution(as_court(case, draft_req(id, case, who, ids))).await;
    r.map(|r| r.into_inner().distribution.unwrap())
}

async fn serve(p: &mut Plans, id: &str, case: &str, plan: &str) -> Distribution {
    let r = ServeDistributionRequest {
        request_id: id.into(),
        case_number: case.into(),
        distribution_id: plan.into(),
        served_at: None,
    };
    p.serve_distribution(as_court(case, r)).await.unwrap().into_inner().distribution.unwrap()
}

async fn step(
    p: &mut Plans,
    (id, case, plan): (&str, &str, &str),
    step: ObjectionStep,
    corrections: &[(u32, i64)],
) -> Result<Distribution, tonic::Status> {
    let r = ObjectToDistributionRequest {
        request_id: id.into(),
        case_number: case.into(),
        distribution_id: plan.into(),
        step: step as i32,
        corrections: corrections.iter().map(|&(line, amount)| LineCorrection { line, amount }).collect(),
    };
    p.object_to_distribution(as_court(case, r)).await.map(|r| r.into_inner().distribution.unwrap())
}

async fn pay(p: &mut Plans, id: &str, case: &str, plan: &str) -> Result<Distribution, tonic::Status> {
    let r = PayOutDistributionRequest { request_id: id.into(), case_number: case.into(), distribution_id: plan.into() };
    p.pay_out_distribution(as_court(case, r)).await.map(|r| r.into_inner().distribution.unwrap())
}

async fn get(p: &mut Plans, case: &str, plan: &str) -> Result<Distribution, tonic::Status> {
    let r = GetDistributionRequest { distribution_id: plan.into() };
    p.get_distribution(as_court(case, r)).await.map(|r| r.into_inner().distribution.unwrap())
}

async fn funds(p: &mut Plans, case: &str) -> GetCaseFundsResponse {
    p.get_case_funds(as_court(case, GetCaseFundsRequest { case_number: case.into() })).await.unwrap().into_inner()
}

/// Each line as (kind, payee, amount).
fn lines(d: &Distribution) -> Vec<(LineKind, String, i64)> {
    d.lines.iter().map(|l| (l.kind(), l.payee.clone(), l.amount)).collect()
}

/// The ledger's invariants, money included, as `assetgw ledger verify` checks them.
async fn verified(stack: &Stack) -> Vec<String> {
    let store = Store::open(&stack.ledger_url, stack.clock.clone(), Default::default()).await.unwrap();
    store.verify().await.unwrap()
}

fn mortgaged(flats: &[MergedAsset]) -> (MergedAsset, String, i64) {
    let flat = flats.iter().find(|f| !f.asset.as_ref().unwrap().encumbrances.is_empty()).expect("a mortgaged flat");
    let m = &flat.asset.as_ref().unwrap().encumbrances[0];
    (flat.clone(), m.holder.clone(), m.amount.as_ref().unwrap().minor_units)
}

fn asset_ref(a: &MergedAsset) -> AssetRef {
    AssetRef { kind: a.kind, asset_id: a.asset_id.clone(), registry: String::new() }
}

async fn r28_a_companys_flat_pays_costs_then_secured_claims_then_three_courts_by_rank(db: Db) {
    let Some(stack) = stack(db, std::time::Duration::from_millis(100)).await else { return };
    let (mut s, mut p) = (seizures(&stack), Plans::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let (flat, bank, mortgage) = mortgaged(&flats);
    for (id, case, claim) in [("c1", A, 1_000_000), ("c2", B, 2_000_000), ("c3", C, 5_000_000)] {
        register(&stack, id, case, COMPANY, claim).await;
    }
    let first = seize_company(&mut s, "c4", A, &flat).await.unwrap();
    seize_company(&mut s, "c5", B, &flat).await.unwrap();
    seize_company(&mut s, "c6", C, &flat).await.unwrap();
    // B's court records a claim registered after the bank's mortgage, with its evidence.
    let later = RecordSecuredClaimRequest {
        request_id: "c7".into(),
        case_number: B.into(),
        asset: Some(asset_ref(&flat)),
        kind: EncumbranceKind::Mortgage as i32,
        holder: "某小额贷款公司".into(),
        amount: 100_000,
        registered_at: Some(assetgw::core::proto::ts(stack.clock.now() - chrono::Duration::days(30))),
        evidence_reference: "京(2026)朝阳区不动产证明第0012345号".into(),
    };
    let recorded = p.record_secured_claim(as_court(B, later)).await.unwrap().into_inner().secured_claim.unwrap();
    assert_eq!((recorded.amount, recorded.case_number.as_str()), (100_000, B));

    // Proceeds are recorded once the sale is: before it, refused.
    let early = p.record_proceeds(as_court(A, proceeds_req("c8", A, &sid(&first), 10, 0))).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{}", early.message());
    sell(&mut s, "c9", A, &sid(&first)).await;
    let costs = 50_000;
    let amount = costs + mortgage + 100_000 + 1_000_000 + 2_000_000 + 1_234_567;
    let sale = proceeds(&mut p, "c10", A, &sid(&first), amount, costs).await;
    let twice = p.record_proceeds(as_court(A, proceeds_req("c11", A, &sid(&first), 1, 0))).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{}", twice.message());

    // An enterprise's creditors are paid by rank: nobody applies to participate (R28).
    let apply = ApplyToParticipateRequest {
        request_id: "c12".into(),
        case_number: C.into(),
        proceeds_id: sale.proceeds_id.clone(),
        debtor: Some(debtor(COMPANY)),
    };
    let refused = p.apply_to_participate(as_court(C, apply)).await.unwrap_err();
    assert!(refused.code() == Code::FailedPrecondition && refused.message().contains("R28"), "{}", refused.message());

    let plan = draft(&mut p, "c13", A, COMPANY, &[&sale.proceeds_id]).await.unwrap();
    assert_eq!(plan.sharing(), Sharing::ByRank);
    assert_eq!(
        lines(&plan),
        [
            (LineKind::Costs, "execution costs".into(), costs),
            (LineKind::Secured, bank.clone(), mortgage),
            (LineKind::Secured, "某小额贷款公司".into(), 100_000),
            (LineKind::Ordinary, A.into(), 1_000_000),
            (LineKind::Ordinary, B.into(), 2_000_000),
            (LineKind::Ordinary, C.into(), 1_234_567),
        ],
        "costs, secured by registration, then by rank, C short"
    );
    assert_eq!(
        plan.lines.iter().filter(|l| l.kind() == LineKind::Ordinary).map(|l| l.rank).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let served = serve(&mut p, "c14", A, &plan.distribution_id).await;
    assert_eq!(served.state(), DistributionState::Served);
    assert!(served.next_due.is_some() && served.message.contains("R29"), "{}", served.message);
    let now = pay(&mut p, "c15", A, &plan.distribution_id).await.unwrap_err();
    assert!(now.code() == Code::FailedPrecondition && now.message().contains("R29"), "{}", now.message());
    // C's court reads the plan it is on; a court with no part in it does not.
    assert_eq!(get(&mut p, C, &plan.distribution_id).await.unwrap().state(), DistributionState::Served);
    let stranger = get(&mut p, "（2024）津0101执9号", &plan.distribution_id).await.unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);

    // The objection period runs out (midnight in Beijing after its 15th day); the sweeper pays.
    stack.clock.advance(chrono::Duration::days(20));
    let mut paid = get(&mut p, A, &plan.distribution_id).await.unwrap();
    for _ in 0..100 {
        if paid.state() != DistributionState::Served {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        paid = get(&mut p, A, &plan.distribution_id).await.unwrap();
    }
    assert_eq!(paid.state(), DistributionState::Paid, "{}", paid.message);
    assert_eq!(paid.fully_paid_cases, [A, B], "{}", paid.message);
    let a = funds(&mut p, A).await;
    assert_eq!(
        (a.received, a.paid_out, a.balance, a.claim_paid),
        (amount + 1_000_000, amount + 1_000_000, 0, 1_000_000)
    );
    let c = funds(&mut p, C).await;
    assert_eq!((c.received, c.claim_paid, c.claim), (1_234_567, 1_234_567, 5_000_000));
    assert!(c.movements.iter().all(|m| m.distribution_id == plan.distribution_id));
    let heard = events(&mut s, B, 0).await;
    let kinds: Vec<&str> =
        heard.iter().filter(|e| e.distribution_id == plan.distribution_id).map(|e| e.kind.as_str()).collect();
    for kind in ["distribution_served", "distribution_paid", "case_fully_paid"] {
        assert!(kinds.contains(&kind), "{kind}: {kinds:?}");
    }
    assert!(heard.iter().any(|e| e.kind == "funds_received" && e.proceeds_id == sale.proceeds_id));
    assert_eq!(verified(&stack).await, Vec::<String>::new());

    // Paid once: drafting it again is refused, naming the payout.
    let again = draft(&mut p, "c16", A, COMPANY, &[&sale.proceeds_id]).await.unwrap_err();
    assert!(again.code() == Code::FailedPrecondition && again.message().contains("paid out"), "{}", again.message());

    // Under bankruptcy review no distribution is drafted (R24).
    let second = seize_company(&mut s, "c17", A, &flats.iter().find(|f| f.asset_id != flat.asset_id).unwrap().clone())
        .await
        .unwrap();
    sell(&mut s, "c18", A, &sid(&second)).await;
    let more = proceeds(&mut p, "c19", A, &sid(&second), 500_000, 0).await;
    let mut d = DebtorServiceClient::new(stack.channel());
    d.transfer_to_bankruptcy_review(as_court(A, review("c20", A, COMPANY, "the debtor's written consent")))
        .await
        .unwrap();
    let stopped = draft(&mut p, "c21", A, COMPANY, &[&more.proceeds_id]).await.unwrap_err();
    assert!(stopped.code() == Code::FailedPrecondition && stopped.message().contains("R24"), "{}", stopped.message());
}

crate::on_both_backends!(r28_a_companys_flat_pays_costs_then_secured_claims_then_three_courts_by_rank);

async fn r28_a_persons_flat_is_shared_pro_rata_among_seizers_and_participants(db: Db) {
    let Some(stack) = stack(db, std::time::Duration::from_millis(100)).await else { return };
    let (mut s, mut p) = (seizures(&stack), Plans::new(stack.channel()));
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let mortgage: i64 =
        flat.asset.as_ref().unwrap().encumbrances.iter().map(|e| e.amount.as_ref().unwrap().minor_units).sum();
    const D: &str = "（2024）浙0102执4号";
    for (id, case, claim) in [("p1", A, 60_000), ("p2", B, 30_000), ("p3", C, 10_000), ("p4", D, 10_000)] {
        register(&stack, id, case, RICH, claim).await;
    }
    let first = place(&mut s, "p5", A, &flat, 0).await;
    place(&mut s, "p6", B, &flat, 0).await;
    sell(&mut s, "p7", A, &sid(&first)).await;
    let sale = proceeds(&mut p, "p8", A, &sid(&first), mortgage + 50_001, 0).await;

    // Without C: A and B share 50,001 two to one, exactly.
    let without = draft(&mut p, "p9", A, RICH, &[&sale.proceeds_id]).await.unwrap();
    assert_eq!(without.sharing(), Sharing::ProRata);
    let ordinary = |d: &Distribution| -> Vec<(String, i64)> {
        d.lines.iter().filter(|l| l.kind() == LineKind::Ordinary).map(|l| (l.payee.clone(), l.amount)).collect()
    };
    assert_eq!(ordinary(&without), [(A.to_string(), 33_334), (B.to_string(), 16_667)]);
    // C applies before the payout: the draft without it is withdrawn.
    let apply = |id: &str, case: &str| ApplyToParticipateRequest {
        request_id: id.into(),
        case_number: case.into(),
        proceeds_id: sale.proceeds_id.clone(),
        debtor: Some(debtor(RICH)),
    };
    let joined = p.apply_to_participate(as_court(C, apply("p10", C))).await.unwrap().into_inner();
    assert!(joined.message.contains(&without.distribution_id), "{}", joined.message);
    assert_eq!(get(&mut p, A, &without.distribution_id).await.unwrap().state(), DistributionState::Withdrawn);
    let plan = draft(&mut p, "p11", A, RICH, &[&sale.proceeds_id]).await.unwrap();
    // 50,001 over claims 6:3:1 → 30,000.6, 15,000.3, 5,000.1: the last unit by the largest remainder.
    assert_eq!(ordinary(&plan), [(A.to_string(), 30_001), (B.to_string(), 15_000), (C.to_string(), 5_000)]);
    assert_eq!(plan.lines.iter().find(|l| l.payee == C).unwrap().rank, 0, "a participant holds no seizure");

    serve(&mut p, "p12", A, &plan.distribution_id).await;
    stack.clock.advance(chrono::Duration::days(20));
    let mut paid = get(&mut p, A, &plan.distribution_id).await.unwrap();
    for _ in 0..100 {
        if paid.state() == DistributionState::Paid {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        paid = get(&mut p, A, &plan.distribution_id).await.unwrap();
    }
    assert_eq!(paid.state(), DistributionState::Paid, "{}", paid.message);
    // Too late for D: the proceeds were paid out.
    let late = p.apply_to_participate(as_court(D, apply("p13", D))).await.unwrap_err();
    assert!(
        late.code() == Code::FailedPrecondition && late.message().contains(&plan.distribution_id),
        "{}",
        late.message()
    );
    assert_eq!(funds(&mut p, C).await.claim_paid, 5_000);
    assert_eq!(verified(&stack).await, Vec::<String>::new());
}

crate::on_both_backends!(r28_a_persons_flat_is_shared_pro_rata_among_seizers_and_participants);

/// Four deductions from the debtor's account, each its own plan, each down one path of R29.
async fn r29_each_path_of_a_served_plan(db: Db) {
    let Some(stack) = stack(db, NEVER).await else { return };
    let (mut s, mut p) = (seizures(&stack), Plans::new(stack.channel()));
    let deposit = asset(&stack, AssetKind::Deposit).await;
    register(&stack, "o1", A, RICH, 1_000_000).await;
    register(&stack, "o2", B, RICH, 1_000_000).await;
    let freeze = place(&mut s, "o3", A, &deposit, 40_000).await;
    place(&mut s, "o4", B, &deposit, 40_000).await;
    for (i, amount) in [1_000, 2_000, 3_000, 4_000].into_iter().enumerate() {
        let r = DeductFundsRequest {
            request_id: format!("o5-{i}"),
            case_number: A.into(),
            seizure_id: sid(&freeze),
            amount,
            emergency_approval: String::new(),
        };
        s.deduct_funds(as_court(A, r)).await.unwrap();
    }
    // Each deduction's money is received by the deducting case.
    let received = funds(&mut p, A).await;
    assert_eq!(received.received, 10_000);
    let ids: Vec<String> = received
        .movements
        .iter()
        .filter(|m| m.kind() == FundMovementKind::Received)
        .map(|m| m.proceeds_id.clone())
        .collect();
    assert_eq!(ids.len(), 4);
    let mut plans = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let plan = draft(&mut p, &format!("o6-{i}"), A, RICH, &[id]).await.unwrap();
        plans.push(serve(&mut p, &format!("o7-{i}"), A, &plan.distribution_id).await.distribution_id);
    }
    let (none, unopposed, not_sued, sued) = (&plans[0], &plans[1], &plans[2], &plans[3]);
    // Lines: A then B, half each (equal claims).
    stack.clock.advance(chrono::Duration::days(1));
    for plan in [unopposed, not_sued, sued] {
        step(&mut p, (&format!("o8-{plan}"), B, plan), ObjectionStep::Object, &[(0, 0), (1, 9_999)]).await.unwrap_err();
        step(&mut p, (&format!("o9-{plan}"), B, plan), ObjectionStep::Object, &[(0, 0), (1, 0)]).await.unwrap_err();
    }
    let corrections_ok = |amount: i64| [(0u32, 0i64), (1u32, amount)];
    for (n, plan) in [unopposed, not_sued, sued].into_iter().enumerate() {
        let whole = get(&mut p, A, plan).await.unwrap().proceeds[0].amount;
        let objected =
            step(&mut p, (&format!("o10-{n}"), B, plan), ObjectionStep::Object, &corrections_ok(whole)).await;
        assert!(objected.unwrap().message.contains("R29"));
    }
    let twice = step(&mut p, ("o11", A, unopposed), ObjectionStep::Object, &[(0, 1)]).await.unwrap_err();
    assert!(twice.code() == Code::FailedPrecondition && twice.message().contains("R29"), "{}", twice.message());
    let out_of_turn = step(&mut p, ("o12", A, none), ObjectionStep::Oppose, &[]).await.unwrap_err();
    assert!(out_of_turn.code() == Code::FailedPrecondition && out_of_turn.message().contains("R29"));
    let own = step(&mut p, ("o13", B, not_sued), ObjectionStep::Oppose, &[]).await.unwrap_err();
    assert_eq!(own.code(), Code::FailedPrecondition, "{}", own.message());
    let stranger = step(&mut p, ("o14", C, none), ObjectionStep::Object, &[(0, 1)]).await.unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound, "{}", stranger.message());
    stack.clock.advance(chrono::Duration::days(1));
    step(&mut p, ("o15", A, not_sued), ObjectionStep::Oppose, &[]).await.unwrap();
    step(&mut p, ("o16", A, sued), ObjectionStep::Oppose, &[]).await.unwrap();
    stack.clock.advance(chrono::Duration::days(1));
    let suit = step(&mut p, ("o17", B, sued), ObjectionStep::Sue, &[]).await.unwrap();
    // Opposed and sued: the disputed lines (both) held back at once, nothing else to pay.
    assert_eq!(suit.state(), DistributionState::PaidInPart, "{}", suit.message);
    assert_eq!(suit.held_back, 4_000);
    assert!(suit.lines.iter().all(|l| l.held_back));
    let early = pay(&mut p, "o19", A, unopposed).await.unwrap_err();
    assert!(early.code() == Code::FailedPrecondition && early.message().contains("R29"), "{}", early.message());

    // Day 19 from serving (15 days, a weekend moved past): the plan nobody objected to is paid as
    // served; a late objection is refused.
    stack.clock.advance(chrono::Duration::days(16));
    let late = step(&mut p, ("o18", B, none), ObjectionStep::Object, &[(0, 0), (1, 1_000)]).await.unwrap_err();
    assert!(late.code() == Code::FailedPrecondition && late.message().contains("ended"), "{}", late.message());
    let paid = pay(&mut p, "o20", A, none).await.unwrap();
    assert_eq!((paid.state(), lines(&paid)[0].2 + lines(&paid)[1].2), (DistributionState::Paid, 1_000));
    let again = pay(&mut p, "o20", A, none).await.unwrap();
    assert_eq!(again, paid, "a retry is answered with the first reply");

    // Day 23: unopposed objection paid as corrected (all to B); opposed and not sued paid as served.
    stack.clock.advance(chrono::Duration::days(4));
    let corrected = pay(&mut p, "o21", A, unopposed).await.unwrap();
    assert_eq!(corrected.state(), DistributionState::Paid);
    let b_line = corrected.lines.iter().find(|l| l.payee == B).unwrap();
    assert_eq!((b_line.amount, b_line.corrected_amount), (1_000, Some(2_000)), "served half, corrected to all");
    let as_served = pay(&mut p, "o22", A, not_sued).await.unwrap();
    assert_eq!(as_served.state(), DistributionState::Paid);

    let a = funds(&mut p, A).await;
    let b = funds(&mut p, B).await;
    // A received 10,000 deducted; paid out: plan 1 (1,000), plan 2 (2,000), plan 3 (3,000); holds back 4,000.
    assert_eq!((a.held_back, a.claim_paid + b.claim_paid), (4_000, 6_000));
    assert_eq!(b.claim_paid, 500 + 2_000 + 1_500);
    assert_eq!(verified(&stack).await, Vec::<String>::new());
}

crate::on_both_backends!(r29_each_path_of_a_served_plan);

/// Two ledgers (two replicas, or a replica and its sweeper) pay one due plan at once: it is paid
/// once, its money moved once.
async fn r29_two_ledgers_paying_one_plan_pay_it_once(db: Db) {
    let Some(stack) = stack(db, NEVER).await else { return };
    let (mut s, mut p) = (seizures(&stack), Plans::new(stack.channel()));
    let deposit = asset(&stack, AssetKind::Deposit).await;
    register(&stack, "r1", A, RICH, 1_000_000).await;
    let freeze = place(&mut s, "r2", A, &deposit, 10_000).await;
    let r = DeductFundsRequest {
        request_id: "r3".into(),
        case_number: A.into(),
        seizure_id: sid(&freeze),
        amount: 7_000,
        emergency_approval: String::new(),
    };
    s.deduct_funds(as_court(A, r)).await.unwrap();
    let id = funds(&mut p, A).await.movements[0].proceeds_id.clone();
    let plan = draft(&mut p, "r4", A, RICH, &[&id]).await.unwrap();
    serve(&mut p, "r5", A, &plan.distribution_id).await;
    stack.clock.advance(chrono::Duration::days(20));
    let open = || Store::open(&stack.ledger_url, stack.clock.clone(), Default::default());
    let (one, two) = (open().await.unwrap(), open().await.unwrap());
    let payout = || Command::Plan {
        by: None,
        distribution_id: plan.distribution_id.clone(),
        step: PlanStep::PayOut,
        holidays: Default::default(),
    };
    let (a, b) = tokio::join!(one.execute(payout()), two.execute(payout()));
    // Both answer the plan paid; the money moved once.
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    let f = funds(&mut p, A).await;
    assert_eq!((f.received, f.paid_out, f.claim_paid), (7_000 + 7_000, 7_000 + 7_000, 7_000));
    assert_eq!(verified(&stack).await, Vec::<String>::new());
}

crate::on_both_backends!(r29_two_ledgers_paying_one_plan_pay_it_once);

/// R23: after a series designation the receiving court, holding the debtor's cases, drafts one
/// plan across its proceeds and every case against the debtor.
async fn r23_the_series_court_drafts_one_plan_across_the_debtors_cases(db: Db) {
    use assetgw::core::proto::{AcceptTransferRequest, DesignateSeriesRequest, TransferCaseRequest};
    let Some(stack) = stack(db, NEVER).await else { return };
    let (mut s, mut p) = (seizures(&stack), Plans::new(stack.channel()));
    let mut d = DebtorServiceClient::new(stack.channel());
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let plain: Vec<MergedAsset> =
        flats.iter().filter(|f| f.asset.as_ref().unwrap().encumbrances.is_empty()).take(2).cloned().collect();
    const HERE: &str = "（2024）京0102执7号";
    for (id, case, claim) in [("s1", A, 300_000), ("s2", HERE, 400_000), ("s3", C, 200_000)] {
        register(&stack, id, case, COMPANY, claim).await;
    }
    let on_first = seize_company(&mut s, "s4", A, &plain[0]).await.unwrap();
    seize_company(&mut s, "s5", C, &plain[0]).await.unwrap();
    let on_second = seize_company(&mut s, "s6", HERE, &plain[1]).await.unwrap();
    // Not designated yet: 京0102 drafts no series plan.
    let series = |id: &str, case: &str| DraftDistributionRequest { series: true, ..draft_req(id, case, COMPANY, &[]) };
    let early = p.draft_distribution(as_court(HERE, series("s7", HERE))).await.unwrap_err();
    assert!(early.code() == Code::FailedPrecondition && early.message().contains("R23"), "{}", early.message());

    let designate = DesignateSeriesRequest {
        request_id: "s8".into(),
        debtor: Some(debtor(COMPANY)),
        to_court_code: "京0102".into(),
        decision_reference: "（2027）京01执监5号".into(),
        decided_at: None,
        case_numbers: vec![A.into()],
    };
    d.designate_series(as_court("（2027）京01执监5号", designate)).await.unwrap();
    let handover = TransferCaseRequest {
        request_id: "s9".into(),
        case_number: A.into(),
        to_court_code: "京0102".into(),
        decision_reference: "（2027）京01执监5号".into(),
        decided_at: None,
    };
    let transfer = s.transfer_case(as_court(A, handover)).await.unwrap().into_inner();
    const FILED: &str = "（2027）京0102执1号";
    let accept = AcceptTransferRequest {
        request_id: "s10".into(),
        transfer_id: transfer.transfer.unwrap().transfer_id,
        new_case_number: FILED.into(),
    };
    s.accept_transfer(as_court(FILED, accept)).await.unwrap();
    register(&stack, "s11", FILED, COMPANY, 300_000).await;

    // The receiving court sells both flats: one under the case it was handed, one under its own.
    sell(&mut s, "s12", FILED, &sid(&on_first)).await;
    sell(&mut s, "s13", HERE, &sid(&on_second)).await;
    proceeds(&mut p, "s14", FILED, &sid(&on_first), 350_000, 0).await;
    stack.clock.advance(chrono::Duration::seconds(1));
    proceeds(&mut p, "s15", HERE, &sid(&on_second), 500_000, 0).await;
    let plan =
        p.draft_distribution(as_court(HERE, series("s16", HERE))).await.unwrap().into_inner().distribution.unwrap();
    assert!(plan.series && plan.proceeds.len() == 2, "{plan:?}");
    // First flat: FILED (rank 1) in full, C (rank 2) the 50,000 left, HERE (a case against the
    // debtor without a seizure on it) nothing. Second: HERE (rank 1) in full, then C's unpaid
    // 150,000 gets the 100,000 left; FILED, paid in full by the first, is no creditor of it.
    assert_eq!(
        lines(&plan).into_iter().filter(|l| l.0 == LineKind::Ordinary).map(|l| (l.1, l.2)).collect::<Vec<_>>(),
        [
            (FILED.to_string(), 300_000),
            (C.to_string(), 50_000),
            (HERE.to_string(), 0),
            (HERE.to_string(), 400_000),
            (C.to_string(), 100_000)
        ]
    );
    assert_eq!(plan.lines.iter().map(|l| l.amount).sum::<i64>(), 850_000, "every unit accounted for");
}

crate::on_both_backends!(r23_the_series_court_drafts_one_plan_across_the_debtors_cases);

/// Bad requests get the right code and say what to fix.
#[tokio::test]
async fn distribution_requests_are_refused_with_their_reasons() {
    let stack = Stack::start(standard()).await;
    let mut p = Plans::new(stack.channel());
    let neither = draft(&mut p, "v1", A, RICH, &[]).await.unwrap_err();
    assert!(neither.code() == Code::InvalidArgument && neither.message().contains("series"), "{}", neither.message());
    let negative = p.record_proceeds(as_court(A, proceeds_req("v2", A, "x", 10, -1))).await.unwrap_err();
    assert!(negative.code() == Code::InvalidArgument && negative.message().contains("costs"), "{}", negative.message());
    let unknown = draft(&mut p, "v3", A, RICH, &["no-such-proceeds"]).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{}", unknown.message());
    let no_step = step(&mut p, ("v4", A, "x"), ObjectionStep::Unspecified, &[]).await.unwrap_err();
    assert_eq!(no_step.code(), Code::InvalidArgument, "{}", no_step.message());
    let later = ServeDistributionRequest {
        request_id: "v7".into(),
        case_number: A.into(),
        distribution_id: "x".into(),
        served_at: Some(assetgw::core::proto::ts(stack.clock.now() + chrono::Duration::days(1))),
    };
    let future = p.serve_distribution(as_court(A, later)).await.unwrap_err();
    assert!(future.code() == Code::InvalidArgument && future.message().contains("served_at"), "{}", future.message());
    let missing = get(&mut p, A, "no-such-plan").await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{}", missing.message());
    // Another court's case: not the caller's to act under (R15).
    let foreign = p.draft_distribution(as_court(A, draft_req("v5", B, RICH, &["x"]))).await.unwrap_err();
    assert_eq!(foreign.code(), Code::PermissionDenied, "{}", foreign.message());
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let unseized = RecordSecuredClaimRequest {
        request_id: "v6".into(),
        case_number: A.into(),
        asset: Some(asset_ref(&flat)),
        kind: EncumbranceKind::Pledge as i32,
        holder: "某银行".into(),
        amount: 10,
        registered_at: Some(assetgw::core::proto::ts(stack.clock.now())),
        evidence_reference: "证明1号".into(),
    };
    let refused = p.record_secured_claim(as_court(A, unseized)).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{}", refused.message());
}
