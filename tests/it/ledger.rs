//! The seizure ledger over real gRPC, on the embedded SQLite ledger (and on
//! PostgreSQL in `postgres.rs`, which runs the same scenarios). Rules are named
//! by their rule ids (docs/RULES.md).

use std::time::Duration;

use assetgw::core::proto::{
    AcceptTransferRequest, AnswerDisposalTransferRequest, AssetKind, AssetQueue, ControlResult, DeductFundsRequest,
    GetSeizureQueueRequest, ListCaseSeizuresRequest, ListLapsingSeizuresRequest, ListTransfersRequest, MergedAsset,
    Money, PlaceSeizureRequest, RecordDisposalRequest, ReleaseSeizureRequest, RenewSeizureRequest,
    RequestDisposalTransferRequest, SeizureState, TransferCaseRequest, WatchEventsRequest, WatchEventsResponse,
    asset::Detail, seizure_service_client::SeizureServiceClient,
};
use futures::StreamExt;
use tonic::Code;

use crate::harness::*;

pub const A: &str = "（2024）京0105执1号";
pub const B: &str = "（2024）粤0304执2号";
pub const C: &str = "（2024）沪0101执3号";

pub fn seizures(stack: &Stack) -> SeizureServiceClient<Courts> {
    SeizureServiceClient::new(stack.channel())
}

/// The debtor's first asset of `kind`, as search reports it.
pub async fn asset(stack: &Stack, kind: AssetKind) -> MergedAsset {
    let r = stack.search(query(&[RICH])).await.unwrap();
    r.debtors[0].assets.iter().find(|a| a.kind == kind as i32).cloned().expect("the demo debtor has one")
}

fn balance(a: &MergedAsset) -> i64 {
    match a.asset.as_ref().and_then(|a| a.detail.as_ref()) {
        Some(Detail::Deposit(d)) => d.balance.as_ref().map_or(0, |b| b.minor_units),
        _ => 0,
    }
}

pub fn place_req(id: &str, case: &str, a: &MergedAsset, amount: i64) -> PlaceSeizureRequest {
    PlaceSeizureRequest {
        request_id: id.into(),
        case_number: case.into(),
        debtor: Some(debtor(RICH)),
        asset_kind: a.kind,
        asset_id: a.asset_id.clone(),
        amount,
        claim: Some(Money { currency: "CNY".into(), minor_units: 1_000_000_000 }),
        ..Default::default()
    }
}

pub async fn place(
    s: &mut SeizureServiceClient<Courts>,
    id: &str,
    case: &str,
    a: &MergedAsset,
    amount: i64,
) -> ControlResult {
    s.place_seizure(as_court(case, place_req(id, case, a, amount))).await.unwrap().into_inner().result.unwrap()
}

pub async fn release(
    s: &mut SeizureServiceClient<Courts>,
    id: &str,
    case: &str,
    seizure: &str,
) -> Result<ControlResult, tonic::Status> {
    let r = ReleaseSeizureRequest {
        request_id: id.into(),
        case_number: case.into(),
        seizure_id: seizure.into(),
        ..Default::default()
    };
    s.release_seizure(as_court(case, r)).await.map(|r| r.into_inner().result.unwrap())
}

/// An asset's queue as the gateway shows it now.
pub async fn queue(s: &mut SeizureServiceClient<Courts>, a: &MergedAsset) -> AssetQueue {
    let request = GetSeizureQueueRequest { asset_kind: a.kind, asset_id: a.asset_id.clone() };
    s.get_seizure_queue(request).await.unwrap().into_inner().queue.unwrap()
}

pub fn sid(r: &ControlResult) -> String {
    r.seizure.as_ref().unwrap().seizure_id.clone()
}

fn state(r: &ControlResult) -> SeizureState {
    SeizureState::try_from(r.seizure.as_ref().unwrap().state).unwrap()
}

/// Every event of `case`'s court from `after`, until none arrives for a moment.
pub async fn events(s: &mut SeizureServiceClient<Courts>, case: &str, after: i64) -> Vec<WatchEventsResponse> {
    let request = as_court(case, WatchEventsRequest { after_sequence: after });
    let mut stream = s.watch_events(request).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(400), stream.next()).await {
        out.push(e.unwrap());
    }
    out
}

async fn r1_r3_r7_place_wait_release_and_automatic_promotion(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let first = place(&mut s, "p1", A, &flat, 0).await;
    assert!(first.message.starts_with("placed as first seizure, rank 1"), "{}", first.message);
    let second = place(&mut s, "p2", B, &flat, 0).await;
    assert_eq!(
        second.message,
        format!("placed as waiting seizure, rank 2; it waits behind {A} and takes effect as those ahead end (R3)")
    );
    let third = place(&mut s, "p3", C, &flat, 0).await;
    assert_eq!(
        third.message,
        format!("placed as waiting seizure, rank 3; it waits behind {B} and takes effect as those ahead end (R3)")
    );
    assert_eq!(state(&third), SeizureState::Waiting);

    // R7: only the holder releases.
    let err = release(&mut s, "r0", B, &sid(&first)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("only the holding court") && err.message().contains("R7"), "{}", err.message());

    // R3: the release promotes the next in line at once.
    let released = release(&mut s, "r1", A, &sid(&first)).await.unwrap();
    assert!(released.message.contains(&format!("{B} now effective until")), "{}", released.message);
    let queue = released.queue.unwrap();
    let ranks: Vec<_> = queue.seizures.iter().map(|x| (x.case_number.as_str(), x.rank, x.state)).collect();
    assert_eq!(ranks, [(B, 1, SeizureState::Effective as i32), (C, 2, SeizureState::Waiting as i32)]);

    // The search shows it, live from the ledger, with the caller's own rank.
    let mut q = query(&[RICH]);
    q.case_number = C.into();
    let r = stack.search(q).await.unwrap();
    let shown = r.debtors[0].assets.iter().find(|a| a.asset_id == flat.asset_id).unwrap().seizures.clone().unwrap();
    assert_eq!((shown.first_case_number.as_str(), shown.waiting_count, shown.caller_rank), (B, 1, 2));

    // Each court watches its own seizures' events.
    let expected: [(&str, &[&str]); 3] = [(A, &["placed", "released"]), (B, &["placed", "promoted"]), (C, &["placed"])];
    for (case, want) in expected {
        let kinds: Vec<String> =
            events(&mut s, case, 0).await.into_iter().filter(|e| e.kind != "order_delivered").map(|e| e.kind).collect();
        assert_eq!(kinds, want, "{case}");
    }
}

async fn r4_r9_freezes_by_amount_over_seizure_and_deduction_limits(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let account = asset(&stack, AssetKind::Deposit).await;
    let total = balance(&account);
    assert!(total > 10, "demo account has funds");
    let a = place(&mut s, "f1", A, &account, total / 2).await;
    assert!(a.message.starts_with("frozen CNY"), "{}", a.message);
    let b = place(&mut s, "f2", B, &account, total).await;
    assert_eq!(state(&b), SeizureState::PartlyEffective);
    assert!(b.message.starts_with("partly effective"), "{}", b.message);
    assert_eq!(b.seizure.as_ref().unwrap().effective, total - total / 2);

    // R4: no freeze beyond the claim.
    let mut over = place_req("f3", C, &account, 500);
    over.claim = Some(Money { currency: "CNY".into(), minor_units: 100 });
    let err = s.place_seizure(as_court(C, over)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("over-seizure") && err.message().contains("R4"), "{}", err.message());

    // R9: deduction within the deducting court's own effective amount.
    let deduct = |id: &str, case: &str, seizure: &str, amount: i64| DeductFundsRequest {
        request_id: id.into(),
        case_number: case.into(),
        seizure_id: seizure.into(),
        amount,
        ..Default::default()
    };
    let err = s.deduct_funds(as_court(B, deduct("d1", B, &sid(&b), total))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("R9"), "{}", err.message());
    let err = s.deduct_funds(as_court(B, deduct("d2", B, &sid(&a), 1))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let done = s.deduct_funds(deduct("d3", A, &sid(&a), total / 2)).await.unwrap().into_inner().result.unwrap();
    assert_eq!(state(&done), SeizureState::Satisfied);
}

async fn r6_lapse_is_never_shown_as_effective_and_late_renewal_is_refused(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let account = asset(&stack, AssetKind::Deposit).await;
    let a = place(&mut s, "l1", A, &account, balance(&account)).await;
    let b = place(&mut s, "l2", B, &account, 1).await;
    assert_eq!(state(&b), SeizureState::Waiting);
    // Deposits: one year (R5). Jump past it; no sweeper has run (it runs every minute).
    stack.clock.advance(chrono::Duration::days(366));
    let queue = queue(&mut s, &account).await;
    assert!(queue.seizures.iter().all(|x| x.seizure_id != sid(&a)), "the lapsed freeze left the queue");
    let renew = |id: &str, case: &str, seizure: &str| RenewSeizureRequest {
        request_id: id.into(),
        case_number: case.into(),
        seizure_id: seizure.into(),
        months: 0,
        emergency_approval: String::new(),
    };
    let err = s.renew_seizure(renew("n1", A, &sid(&a))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("lapsed") && err.message().contains("R6"), "{}", err.message());
    // B's freeze took effect when A's lapsed and can be renewed before its own end.
    let renewed = s.renew_seizure(as_court(B, renew("n2", B, &sid(&b)))).await.unwrap().into_inner().result.unwrap();
    assert!(renewed.message.starts_with("renewed until"), "{}", renewed.message);
}

async fn bad_steps_get_the_right_codes(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let mut unknown = place_req("u1", A, &flat, 0);
    unknown.asset_id = "000000000000GB00000F00000000".into();
    let err = s.place_seizure(unknown).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("search the debtor again"), "{}", err.message());
    let err = release(&mut s, "u2", A, "no-such-seizure").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut bad = place_req("", "（2024）京0105民初1号", &flat, 0);
    bad.debtor = None;
    let err = s.place_seizure(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = s
        .list_lapsing_seizures(ListLapsingSeizuresRequest { within_days: 0, court_code: "XX".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = s
        .get_seizure_queue(GetSeizureQueueRequest { asset_kind: flat.kind, asset_id: flat.asset_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "nothing placed on it yet");
}

async fn a_retried_request_returns_the_first_answer_and_acts_once(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let first = place(&mut s, "same-id", A, &flat, 0).await;
    let again = place(&mut s, "same-id", A, &flat, 0).await;
    // The step's own outcome is the first one; the queue is the asset's as it stands now (stored replies are compact).
    assert_eq!((&first.message, &first.seizure), (&again.message, &again.seizure));
    assert_eq!(again.queue.as_ref().unwrap().seizures.len(), 1);
    let listed =
        s.list_case_seizures(ListCaseSeizuresRequest { case_number: A.into() }).await.unwrap().into_inner().seizures;
    assert_eq!(listed.len(), 1);
    // A request id is scoped to its method (AIP-155): a release under the same id is a release.
    let released = release(&mut s, "same-id", A, &sid(&first)).await.unwrap();
    assert!(released.message.starts_with("released"), "{}", released.message);
}

async fn r10_r13_transfer_keeps_rank_refuses_near_lapse_and_stops_the_old_court(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let account = asset(&stack, AssetKind::Deposit).await;
    place(&mut s, "t1", B, &flat, 0).await;
    let mine = place(&mut s, "t2", A, &flat, 0).await;
    let freeze = place(&mut s, "t3", A, &account, 1).await;

    // R11: the freeze ends in a year; 340 days on, it is within 30 days of its end.
    stack.clock.advance(chrono::Duration::days(340));
    let transfer = |id: &str| TransferCaseRequest {
        request_id: id.into(),
        case_number: A.into(),
        to_court_code: "粤0304".into(),
        decision_reference: "（2025）京01执监7号".into(),
        decided_at: None,
    };
    let err = s.transfer_case(transfer("x1")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("R11") && err.message().contains(&sid(&freeze)), "{}", err.message());
    s.renew_seizure(RenewSeizureRequest {
        request_id: "x2".into(),
        case_number: A.into(),
        seizure_id: sid(&freeze),
        months: 0,
        emergency_approval: String::new(),
    })
    .await
    .unwrap();
    // The new end date is the registry's (R6): it arrives with the renewal's acknowledgement.
    let renewed_end = || async {
        let listed = s.clone().list_case_seizures(ListCaseSeizuresRequest { case_number: A.into() }).await.unwrap();
        listed.into_inner().seizures.into_iter().find(|x| x.seizure_id == sid(&freeze)).and_then(|x| x.end_time)
    };
    let before = renewed_end().await;
    for _ in 0..100 {
        if renewed_end().await != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handed = s.transfer_case(transfer("x3")).await.unwrap().into_inner();
    let t = handed.transfer.unwrap();
    assert_eq!(t.seizure_count, 2);
    assert!(handed.message.contains("R12"), "{}", handed.message);

    // R12: the original court has stopped.
    let err = release(&mut s, "x4", A, &sid(&mine)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("R12"), "{}", err.message());

    // R13: a transfer not filed within 7 days is overdue.
    stack.clock.advance(chrono::Duration::days(8));
    let overdue = s.list_transfers(ListTransfersRequest { overdue_only: true }).await.unwrap().into_inner().transfers;
    assert_eq!(overdue.len(), 1);
    assert!(overdue[0].filing_overdue);

    // Only the designated court files; its case takes the seizures with their rank (R10).
    let accept = |id: &str, case: &str| AcceptTransferRequest {
        request_id: id.into(),
        transfer_id: t.transfer_id.clone(),
        new_case_number: case.into(),
    };
    let err =
        s.accept_transfer(as_court("（2025）沪0101执9号", accept("x5", "（2025）沪0101执9号"))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let filed = s
        .accept_transfer(as_court("（2025）粤0304执100号", accept("x6", "（2025）粤0304执100号")))
        .await
        .unwrap()
        .into_inner();
    assert!(filed.message.contains("R10"), "{}", filed.message);
    let queue = queue(&mut s, &flat).await;
    let moved = queue.seizures.iter().find(|x| x.seizure_id == sid(&mine)).unwrap();
    assert_eq!(
        (moved.rank, moved.case_number.as_str(), moved.court_code.as_str()),
        (2, "（2025）粤0304执100号", "粤0304")
    );
    assert_eq!(moved.placed_at, mine.seizure.unwrap().placed_at);
    // The filed case continues the old one against the same debtors.
    let debtors = crate::debtors::case_debtors(&stack, "（2025）粤0304执100号").await;
    assert!(!debtors.is_empty() && debtors == crate::debtors::case_debtors(&stack, A).await, "{debtors:?}");
}

async fn r8_r14_disposal_transfer_after_sixty_days_and_sale(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let first = place(&mut s, "d1", A, &flat, 0).await;
    place(&mut s, "d2", B, &flat, 0).await;
    let ask = |id: &str| RequestDisposalTransferRequest {
        request_id: id.into(),
        case_number: B.into(),
        asset_kind: flat.kind,
        asset_id: flat.asset_id.clone(),
    };
    let err = s.request_disposal_transfer(as_court(B, ask("q1"))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("60 days") && err.message().contains("R14"), "{}", err.message());
    stack.clock.advance(chrono::Duration::days(61));
    let asked =
        s.request_disposal_transfer(as_court(B, ask("q2"))).await.unwrap().into_inner().disposal_transfer.unwrap();
    stack.clock.advance(chrono::Duration::days(16));
    let overdue = s.list_transfers(ListTransfersRequest { overdue_only: true }).await.unwrap().into_inner();
    assert!(overdue.disposal_transfers[0].overdue, "15-day answer missed (R14)");
    let answer = |id: &str, case: &str| AnswerDisposalTransferRequest {
        request_id: id.into(),
        case_number: case.into(),
        disposal_transfer_id: asked.disposal_transfer_id.clone(),
        approve: true,
    };
    assert_eq!(
        s.answer_disposal_transfer(as_court(B, answer("q3", B))).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let approved = s.answer_disposal_transfer(answer("q4", A)).await.unwrap().into_inner();
    assert!(approved.message.contains("keeping its rank"), "{}", approved.message);

    // B now holds the first seizure (and its own waiting one) and sells: everything ends (R8).
    let sold = s
        .record_disposal(as_court(
            B,
            RecordDisposalRequest {
                request_id: "q5".into(),
                case_number: B.into(),
                seizure_id: sid(&first),
                step: assetgw::core::proto::DisposalStep::Sold as i32,
                amount: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(sold.message.contains("R8"), "{}", sold.message);
    assert!(sold.queue.unwrap().seizures.is_empty());
}

async fn orders_survive_a_registry_outage_and_are_delivered_once(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await; // warms the cache
    let registry = flat.sources[0].registry.clone();
    stack.mock(&registry).set_down(true);
    let placed = place(&mut s, "o1", A, &flat, 0).await;
    assert!(placed.seizure.as_ref().unwrap().registry_reference.is_empty(), "not yet acknowledged");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(stack.mock(&registry).effects(), 0);
    stack.mock(&registry).set_down(false);
    let mut delivered = false;
    for _ in 0..100 {
        // Redelivery is scheduled on the gateway's clock, which this test moves.
        stack.clock.advance(chrono::Duration::seconds(5));
        let q = queue(&mut s, &flat).await;
        if !q.seizures[0].registry_reference.is_empty() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "the order reached the registry after it came back");
    assert_eq!(stack.mock(&registry).effects(), 1);
}

async fn the_event_stream_resumes_without_gaps_or_duplicates(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    for (i, case) in [A, B, C].iter().enumerate() {
        place(&mut s, &format!("e{i}"), case, &flat, 0).await;
    }
    let all = events(&mut s, A, 0).await;
    let seqs: Vec<i64> = all.iter().map(|e| e.sequence).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    let cut = all[all.len() / 2].sequence;
    let rest = events(&mut s, A, cut).await;
    assert_eq!(rest.first().map(|e| e.sequence), all.iter().map(|e| e.sequence).find(|q| *q > cut));
    assert_eq!(rest.len(), all.iter().filter(|e| e.sequence > cut).count());
    let err = s.watch_events(WatchEventsRequest { after_sequence: -1 }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = s.watch_events(WatchEventsRequest { after_sequence: i64::MAX }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "a number no event has is not a place to resume from");
    assert!(err.message().contains("already seen"), "{}", err.message());
}

/// Polls the asset's queue until `done` holds for it (orders are delivered in the background).
async fn until(
    s: &mut SeizureServiceClient<Courts>,
    a: &MergedAsset,
    done: impl Fn(&AssetQueue) -> bool,
) -> AssetQueue {
    for _ in 0..100 {
        let q = queue(s, a).await;
        if done(&q) {
            return q;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the registry never acknowledged: {:?}", queue(s, a).await);
}

async fn r3_a_promotion_is_ordered_at_the_registry_which_starts_the_term(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let registry = stack.mock(&flat.sources[0].registry);
    let first = place(&mut s, "t1", A, &flat, 0).await;
    place(&mut s, "t2", B, &flat, 0).await;
    let q = until(&mut s, &flat, |q| q.seizures.iter().all(|x| !x.registry_reference.is_empty())).await;
    let waiting = q.seizures[1].registry_reference.clone();
    assert_eq!(registry.term(&waiting), Some((None, None)), "the registry holds it waiting, with no term");

    // The gateway's clock runs ten days ahead of the registry's: the term must be the registry's.
    stack.clock.advance(chrono::Duration::days(10));
    let released = release(&mut s, "t3", A, &sid(&first)).await.unwrap();
    assert!(released.message.contains(&format!("{B} now effective")), "{}", released.message);
    // The ledger keeps times to the microsecond.
    let micros = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos / 1000));
    let registry_term = || registry.term(&waiting).map(|(start, end)| (micros(start), micros(end)));
    let promoted = |q: &AssetQueue| {
        let b = &q.seizures[0];
        registry_term().is_some_and(|(start, _)| start.is_some() && micros(b.start_time) == start)
    };
    let q = until(&mut s, &flat, promoted).await;
    let shown = (micros(q.seizures[0].start_time), micros(q.seizures[0].end_time));
    assert_eq!(Some(shown), registry_term(), "the ledger keeps the registry's dates");
    let (start, end) = registry.term(&waiting).unwrap();
    assert!(end.is_some(), "the registry was told the term's end");
    let ahead = assetgw::core::clock::Clock::now(&*stack.clock).timestamp() - start.unwrap().seconds;
    assert!(ahead > 9 * 86_400, "the term started by the registry's calendar, not the gateway's");
}

crate::on_both_backends!(
    r3_a_promotion_is_ordered_at_the_registry_which_starts_the_term,
    r1_r3_r7_place_wait_release_and_automatic_promotion,
    r4_r9_freezes_by_amount_over_seizure_and_deduction_limits,
    r6_lapse_is_never_shown_as_effective_and_late_renewal_is_refused,
    bad_steps_get_the_right_codes,
    a_retried_request_returns_the_first_answer_and_acts_once,
    r10_r13_transfer_keeps_rank_refuses_near_lapse_and_stops_the_old_court,
    r8_r14_disposal_transfer_after_sixty_days_and_sale,
    orders_survive_a_registry_outage_and_are_delivered_once,
    the_event_stream_resumes_without_gaps_or_duplicates,
);
