//! The rules as a court reads them (issue: rules as a court reads them):
//! R14 moves one seizure, R4 counts only what is live now, an emptied freeze
//! waits without a term, and every legal date is a calendar date in Beijing.
//! Each test is the exact sequence a court would run, with the injected clock.

use assetgw::core::proto::{
    AnswerDisposalTransferRequest, AssetKind, DeductFundsRequest, ListTransfersRequest, Money,
    RecordDesignationRequest, RenewSeizureRequest, RequestDisposalTransferRequest, SeizureState, TransferCaseRequest,
    seizure_service_client::SeizureServiceClient,
};
use chrono::{DateTime, Duration, Utc};
use tonic::Code;

use crate::{harness::*, integrity::cny_accounts, ledger::*};

/// A fourth court's case: the priority creditor of R14.
const D: &str = "（2024）浙0102执4号";

type Client = SeizureServiceClient<Courts>;

/// Moves the stack's clock to `at` (which must lie ahead).
fn set_clock(stack: &Stack, at: &str) {
    let target = DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc);
    let now = assetgw::core::clock::Clock::now(&*stack.clock);
    assert!(target > now, "the test clock only moves forward");
    stack.clock.advance(target - now);
}

async fn ask_disposal(
    s: &mut Client,
    id: &str,
    case: &str,
    a: &assetgw::core::proto::MergedAsset,
) -> Result<String, tonic::Status> {
    let request = RequestDisposalTransferRequest {
        request_id: id.into(),
        case_number: case.into(),
        asset_kind: a.kind,
        asset_id: a.asset_id.clone(),
    };
    let r = s.request_disposal_transfer(as_court(case, request)).await?;
    Ok(r.into_inner().disposal_transfer.unwrap().disposal_transfer_id)
}

async fn approve(s: &mut Client, id: &str, case: &str, transfer: &str) {
    let request = AnswerDisposalTransferRequest {
        request_id: id.into(),
        case_number: case.into(),
        disposal_transfer_id: transfer.into(),
        approve: true,
    };
    s.answer_disposal_transfer(as_court(case, request)).await.unwrap();
}

async fn r14_an_approval_moves_the_first_seizure_only(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    place(&mut s, "h1", A, &flat, 0).await;
    place(&mut s, "h2", D, &flat, 0).await;
    stack.clock.advance(Duration::days(61));
    let asked = ask_disposal(&mut s, "h3", D, &flat).await.unwrap();
    approve(&mut s, "h4", A, &asked).await;
    place(&mut s, "h5", B, &flat, 0).await;
    stack.clock.advance(Duration::days(1));
    let asked = ask_disposal(&mut s, "h6", B, &flat).await.unwrap();
    approve(&mut s, "h7", D, &asked).await;
    let holders: Vec<String> = queue(&mut s, &flat).await.seizures.iter().map(|x| x.case_number.clone()).collect();
    assert_eq!(holders, [B, D, B], "R14 moves the first seizure; D's own waiting seizure stays D's");
}

/// Freezes 30,000 on account `first`, then 400 days later 50,000 on account `second`, under a claim of 60,000.
async fn freeze_after_a_lapse(db: Db, first: usize, second: usize) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let accounts = cny_accounts(&stack).await;
    let claim = Some(Money { currency: "CNY".into(), minor_units: 60_000 });
    let mut earlier = place_req("c1", B, &accounts[first].0, 30_000);
    earlier.claim = claim.clone();
    s.place_seizure(as_court(B, earlier)).await.unwrap();
    // A deposit freeze lasts a year (R5); 400 days on it has lapsed, though no sweeper has written it.
    stack.clock.advance(Duration::days(400));
    let mut later = place_req("c2", B, &accounts[second].0, 50_000);
    later.claim = claim;
    let placed = s.place_seizure(as_court(B, later)).await.unwrap().into_inner().result.unwrap();
    assert_eq!(placed.seizure.unwrap().requested, 50_000);
    let lapsed = events(&mut s, B, 0).await;
    assert!(lapsed.iter().any(|e| e.kind == "lapsed"), "the lapse the check relied on is recorded: {lapsed:?}");
}

async fn r4_the_claim_cap_counts_freezes_as_of_now(db: Db) {
    freeze_after_a_lapse(db, 1, 0).await;
}

/// Issue 25, item 9: the lapse is written before the new freeze whatever order the accounts' keys
/// sort in; SQLite's invariant triggers check each row as it is written.
async fn item9_the_lapse_a_step_relies_on_is_written_before_what_it_checks(db: Db) {
    freeze_after_a_lapse(db, 0, 1).await;
}

async fn r2_r9_an_emptied_freeze_waits_without_a_term(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let (account, total) = cny_accounts(&stack).await.remove(0);
    let freeze = place(&mut s, "e1", A, &account, total + 80_000).await;
    let id = freeze.seizure.as_ref().unwrap().seizure_id.clone();
    assert_eq!(freeze.seizure.as_ref().unwrap().state, SeizureState::PartlyEffective as i32);
    let old_end = freeze.seizure.as_ref().unwrap().end_time.unwrap();
    let deduct = DeductFundsRequest {
        request_id: "e2".into(),
        case_number: A.into(),
        seizure_id: id.clone(),
        amount: total,
        ..Default::default()
    };
    let emptied = s.deduct_funds(as_court(A, deduct)).await.unwrap().into_inner().result.unwrap();
    let seizure = emptied.seizure.unwrap();
    assert_eq!(seizure.state, SeizureState::Waiting as i32);
    assert_eq!((seizure.start_time, seizure.end_time), (None, None), "a waiting seizure has no term (R2)");
    // Ten days after the term it had would have ended: nothing lapsed, and there is nothing to renew.
    let after = assetgw::core::proto::time_of(&old_end) + Duration::days(10);
    stack.clock.advance(after - assetgw::core::clock::Clock::now(&*stack.clock));
    let renew = RenewSeizureRequest {
        request_id: "e3".into(),
        case_number: A.into(),
        seizure_id: id.clone(),
        months: 0,
        emergency_approval: String::new(),
    };
    let err = s.renew_seizure(as_court(A, renew)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("waiting") && err.message().contains("R2"), "{}", err.message());
    let q = queue(&mut s, &account).await;
    let still = q.seizures.iter().find(|x| x.seizure_id == id).expect("still on the queue, waiting");
    assert_eq!(still.state, SeizureState::Waiting as i32);
    assert!(events(&mut s, A, 0).await.iter().all(|e| e.kind != "lapsed"), "nothing with no term lapses");
}

async fn r5_r6_terms_end_on_the_beijing_date(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    // 07:30 on 11 January in Beijing, still the 10th in UTC.
    set_clock(&stack, "2027-01-10T23:30:00Z");
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let placed = place(&mut s, "t1", A, &flat, 0).await;
    assert!(placed.message.ends_with("effective until 2030-01-11"), "{}", placed.message);
    let end = assetgw::core::proto::time_of(placed.seizure.unwrap().end_time.as_ref().unwrap());
    assert_eq!(end.to_rfc3339(), "2030-01-10T23:30:00+00:00", "36 months to the same Beijing time of day");
}

async fn r14_sixty_days_are_counted_in_beijing_calendar_days(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    // The first seizure on 10 January in Beijing (02:00Z); more than 60 days have passed from 12 March.
    set_clock(&stack, "2027-01-10T02:00:00Z");
    let flat = asset(&stack, AssetKind::RealEstate).await;
    // The registry stays silent, so the first seizure's date is the ledger's own (a mock's
    // acknowledgement would carry the wall clock's date, not the test clock's).
    stack.mock(&flat.sources[0].registry).set_down(true);
    place(&mut s, "s1", A, &flat, 0).await;
    place(&mut s, "s2", D, &flat, 0).await;
    // 23:30 on 11 March in Beijing: refused, and the refusal names the Beijing date it opens.
    set_clock(&stack, "2027-03-11T15:30:00Z");
    let err = ask_disposal(&mut s, "s3", D, &flat).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("took effect on 2027-01-10") && err.message().contains("from 2027-03-12"),
        "{}",
        err.message()
    );
    // 06:30 on 12 March in Beijing (still the 11th in UTC): allowed.
    set_clock(&stack, "2027-03-11T22:30:00Z");
    ask_disposal(&mut s, "s4", D, &flat).await.unwrap();
}

async fn r3_r4_messages_say_what_a_seizure_waits_for(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let (account, total) = cny_accounts(&stack).await.remove(0);
    let alone = place(&mut s, "m1", A, &account, total + 1_000).await;
    assert!(alone.message.contains("rank 1; the rest waits for funds to arrive"), "{}", alone.message);
    assert!(!alone.message.contains("behind"), "{}", alone.message);
    let second = place(&mut s, "m2", B, &account, 1_000).await;
    assert!(second.message.contains(&format!("rank 2; it waits behind {A}")), "{}", second.message);
}

async fn r12_a_designation_stops_the_court_on_receipt(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let (account, _) = cny_accounts(&stack).await.remove(0);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let freeze = place(&mut s, "g1", A, &account, 1_000).await.seizure.unwrap().seizure_id;
    let seized = place(&mut s, "g2", A, &flat, 0).await.seizure.unwrap().seizure_id;
    // The deposit freeze (one year) now ends within 30 days; the flat's (three years) does not.
    stack.clock.advance(Duration::days(340));
    let designation = |id: &str, to: &str| RecordDesignationRequest {
        request_id: id.into(),
        case_number: A.into(),
        to_court_code: to.into(),
        decision_reference: "（2025）京01执监7号".into(),
        decided_at: None,
    };
    let received = s.record_designation(as_court(A, designation("g3", "粤0304"))).await.unwrap().into_inner();
    assert!(received.message.contains("stops executing") && received.message.contains(&freeze), "{}", received.message);
    let pending =
        s.list_transfers(as_court(A, ListTransfersRequest { overdue_only: false })).await.unwrap().into_inner();
    assert_eq!(pending.designations.len(), 1, "the designation is listed until the handover (R13)");

    // From receipt the court stops: no new seizure, no deduction (R12).
    let err = s.place_seizure(as_court(A, place_req("g4", A, &account, 1))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    assert!(err.message().contains("R12"), "{}", err.message());
    let deduct = DeductFundsRequest {
        request_id: "g5".into(),
        case_number: A.into(),
        seizure_id: freeze.clone(),
        amount: 1,
        ..Default::default()
    };
    assert_eq!(s.deduct_funds(as_court(A, deduct)).await.unwrap_err().code(), Code::PermissionDenied);
    // Another designation of the same case is not a handover of this one.
    let other = s.record_designation(as_court(A, designation("g6", "沪0101"))).await.unwrap_err();
    assert_eq!(other.code(), Code::FailedPrecondition, "{}", other.message());

    // R11: it still renews what ends within 30 days, and only that without approval.
    let transfer = TransferCaseRequest {
        request_id: "g7".into(),
        case_number: A.into(),
        to_court_code: "粤0304".into(),
        decision_reference: "（2025）京01执监7号".into(),
        decided_at: None,
    };
    let err = s.transfer_case(as_court(A, transfer.clone())).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("R11") && err.message().contains(&freeze), "{}", err.message());
    let renew = |id: &str, seizure: &str, approval: &str| RenewSeizureRequest {
        request_id: id.into(),
        case_number: A.into(),
        seizure_id: seizure.into(),
        months: 0,
        emergency_approval: approval.into(),
    };
    s.renew_seizure(as_court(A, renew("g8", &freeze, ""))).await.unwrap();
    let err = s.renew_seizure(as_court(A, renew("g9", &seized, ""))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    s.renew_seizure(as_court(A, renew("g10", &seized, "（2025）京01执监7号之一"))).await.unwrap();

    // The handover follows the designation it received.
    let handed =
        s.transfer_case(as_court(A, TransferCaseRequest { request_id: "g11".into(), ..transfer })).await.unwrap();
    let handed = handed.into_inner().transfer.unwrap();
    assert_eq!(handed.decided_at, received.designation.unwrap().decided_at);
    let after = s.list_transfers(as_court(A, ListTransfersRequest { overdue_only: false })).await.unwrap().into_inner();
    assert!(after.designations.is_empty() && after.transfers.len() == 1, "{after:?}");
}

async fn r13_a_handover_not_made_within_seven_days_is_overdue(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    // Decided at 23:30 on 1 February in Beijing: due by the end of the 8th there.
    set_clock(&stack, "2027-02-01T15:30:00Z");
    let designation = RecordDesignationRequest {
        request_id: "o1".into(),
        case_number: A.into(),
        to_court_code: "粤0304".into(),
        decision_reference: "（2027）京01执监3号".into(),
        decided_at: None,
    };
    let received = s.record_designation(as_court(A, designation)).await.unwrap().into_inner();
    assert!(received.message.contains("by 2027-02-08"), "{}", received.message);
    let overdue = |s: &mut Client| {
        let mut s = s.clone();
        async move {
            s.list_transfers(as_court(A, ListTransfersRequest { overdue_only: true }))
                .await
                .unwrap()
                .into_inner()
                .designations
        }
    };
    set_clock(&stack, "2027-02-08T15:59:00Z");
    assert!(overdue(&mut s).await.is_empty(), "23:59 on the 8th in Beijing is in time");
    set_clock(&stack, "2027-02-08T16:00:00Z");
    assert_eq!(overdue(&mut s).await.len(), 1, "from midnight in Beijing the handover is overdue (R13)");
}

crate::on_both_backends!(
    r12_a_designation_stops_the_court_on_receipt,
    r13_a_handover_not_made_within_seven_days_is_overdue,
    r14_an_approval_moves_the_first_seizure_only,
    r4_the_claim_cap_counts_freezes_as_of_now,
    item9_the_lapse_a_step_relies_on_is_written_before_what_it_checks,
    r2_r9_an_emptied_freeze_waits_without_a_term,
    r5_r6_terms_end_on_the_beijing_date,
    r14_sixty_days_are_counted_in_beijing_calendar_days,
    r3_r4_messages_say_what_a_seizure_waits_for,
);
