//! The debtor as a whole through the court API, by rule id, on both
//! backends: the holding courts' lifts after an acceptance and their overdue
//! list (R25), the events every court with a case hears (R24–R26), the
//! dismissal (R26), the debtor's picture and who reads it (R27), searches
//! under a bankruptcy case (R27) and the series designation (R23).

use assetgw::core::clock::Clock;
use assetgw::core::proto::{
    AssetKind, BankruptcyOutcome, DebtorStanding, DeductFundsRequest, DesignateSeriesRequest, GetDebtorPictureRequest,
    GetDebtorPictureResponse, ListBankruptcyLiftsRequest, Money, RecordBankruptcyAcceptanceRequest,
    RecordBankruptcyDismissalRequest, RecordBankruptcyRefusalRequest, RegisterCaseRequest, RenewSeizureRequest,
    SeizureState, debtor_service_client::DebtorServiceClient,
};
use sqlx::Connection;
use tonic::Code;

use crate::{debtors::*, harness::*, ledger::*};

type Debtors = DebtorServiceClient<Courts>;

const ACCEPTANCE: &str = "（2027）京0105破1号";

fn accept(id: &str) -> RecordBankruptcyAcceptanceRequest {
    RecordBankruptcyAcceptanceRequest {
        request_id: id.into(),
        case_number: ACCEPTANCE.into(),
        debtor: Some(debtor(COMPANY)),
        decision_reference: ACCEPTANCE.into(),
        decided_at: None,
    }
}

async fn accepted(d: &mut Debtors, id: &str) -> BankruptcyOutcome {
    d.record_bankruptcy_acceptance(as_court(ACCEPTANCE, accept(id))).await.unwrap().into_inner().outcome.unwrap()
}

async fn lifts(d: &mut Debtors, case: &str, overdue_only: bool) -> Vec<assetgw::core::proto::BankruptcyLift> {
    let r = d.list_bankruptcy_lifts(as_court(case, ListBankruptcyLiftsRequest { overdue_only, as_of: None })).await;
    r.unwrap().into_inner().lifts
}

fn picture_req(case: &str, who: &str, page_size: u32, page_token: &str) -> GetDebtorPictureRequest {
    GetDebtorPictureRequest {
        case_number: case.into(),
        debtor: Some(debtor(who)),
        page_size,
        page_token: page_token.into(),
    }
}

async fn picture(d: &mut Debtors, case: &str) -> Result<GetDebtorPictureResponse, tonic::Status> {
    d.get_debtor_picture(as_court(case, picture_req(case, COMPANY, 0, ""))).await.map(|r| r.into_inner())
}

fn register(id: &str, case: &str, applicant: &str, claim: i64) -> RegisterCaseRequest {
    RegisterCaseRequest {
        request_id: id.into(),
        case_number: case.into(),
        debtors: vec![debtor(COMPANY)],
        applicant: applicant.into(),
        claim_amount: claim,
        currency: String::new(),
    }
}

/// The release reasons the ledger queued for the registries, in order.
async fn release_reasons(stack: &Stack) -> Vec<String> {
    let mut conn = sqlx::AnyConnection::connect(&stack.ledger_url).await.unwrap();
    sqlx::query_scalar("SELECT reason FROM outbox WHERE kind = 'release' ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

async fn r25_holding_courts_lift_within_seven_days_and_the_late_are_listed(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let first = seize_company(&mut s, "h1", A, &flats[0]).await.unwrap();
    let waiting = seize_company(&mut s, "h2", B, &flats[0]).await.unwrap();
    let other = seize_company(&mut s, "h3", C, &flats[1]).await.unwrap();

    let outcome = accepted(&mut d, "h4").await;
    assert_eq!((outcome.lifted, outcome.awaiting_lift), (0, 3), "{}", outcome.message);
    assert!(outcome.lift_due.is_some() && outcome.message.contains("R25"), "{}", outcome.message);
    assert_eq!(queue(&mut s, &flats[0]).await.seizures.len(), 2, "the holding courts lift, not the acceptance");
    let mine = lifts(&mut d, A, false).await;
    assert_eq!(mine.len(), 1, "each court lists its own: {mine:?}");
    assert_eq!((mine[0].seizure.as_ref().unwrap().seizure_id.as_str(), mine[0].overdue), (sid(&first).as_str(), false));

    // The first seizure's court lifts: the waiting one behind it is not promoted (R25).
    let lifted = release(&mut s, "h5", A, &sid(&first)).await.unwrap();
    assert!(!lifted.message.contains("now effective"), "{}", lifted.message);
    let left = queue(&mut s, &flats[0]).await;
    assert_eq!(left.seizures.len(), 1);
    assert_eq!(left.seizures[0].state, SeizureState::Waiting as i32, "nobody takes effect on a bankrupt's asset");
    release(&mut s, "h6", B, &sid(&waiting)).await.unwrap();
    assert_eq!(release_reasons(&stack).await, ["released by the holding court (R7)"; 2], "the registry reads why");

    // A court plans ahead: as things will stand in eight days, its seizure will be overdue; not the past.
    let ahead = |days: i64| ListBankruptcyLiftsRequest {
        overdue_only: true,
        as_of: Some(assetgw::core::proto::ts(stack.clock.now() + chrono::Duration::days(days))),
    };
    let planned = d.list_bankruptcy_lifts(as_court(C, ahead(8))).await.unwrap().into_inner().lifts;
    assert_eq!(planned.len(), 1);
    assert!(lifts(&mut d, C, true).await.is_empty(), "not overdue yet");
    let past = d.list_bankruptcy_lifts(as_court(C, ahead(-1))).await.unwrap_err();
    assert_eq!(past.code(), Code::InvalidArgument, "{}", past.message());
    // Eight days on, the court that did not lift is listed overdue; the others have nothing to do.
    stack.clock.advance(chrono::Duration::days(8));
    let late = lifts(&mut d, C, true).await;
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].seizure.as_ref().unwrap().seizure_id.as_str(), late[0].overdue), (sid(&other).as_str(), true));
    assert_eq!(late[0].decision_reference, ACCEPTANCE);
    assert!(lifts(&mut d, A, false).await.is_empty());
    let renew = RenewSeizureRequest {
        request_id: "h7".into(),
        case_number: C.into(),
        seizure_id: sid(&other),
        months: 0,
        emergency_approval: String::new(),
    };
    let refused = s.renew_seizure(as_court(C, renew)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("R25"), "{}", refused.message());
}

async fn r25_at_once_orders_every_release_with_the_acceptance_and_r26_dismissal_resumes(db: Db) {
    let Some(stack) = lifting_at_once(db).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let first = seize_company(&mut s, "o1", A, &flats[0]).await.unwrap();
    seize_company(&mut s, "o2", B, &flats[0]).await.unwrap();
    let outcome = accepted(&mut d, "o3").await;
    assert_eq!((outcome.lifted, outcome.awaiting_lift), (2, 0), "{}", outcome.message);
    let reasons = release_reasons(&stack).await;
    assert_eq!(reasons.len(), 2);
    assert!(reasons.iter().all(|r| r.contains(ACCEPTANCE) && r.contains("R25")), "{reasons:?}");
    assert!(lifts(&mut d, A, false).await.is_empty(), "nothing left for the courts to lift");

    let dismissal = RecordBankruptcyDismissalRequest {
        request_id: "o4".into(),
        case_number: ACCEPTANCE.into(),
        debtor: Some(debtor(COMPANY)),
        decision_reference: "（2027）京0105破1号之二".into(),
        decided_at: None,
    };
    let dismissed = d.record_bankruptcy_dismissal(as_court(ACCEPTANCE, dismissal.clone())).await.unwrap();
    let dismissed = dismissed.into_inner().outcome.unwrap();
    assert_eq!(dismissed.standing, DebtorStanding::Enforced as i32, "{}", dismissed.message);
    let again = d.record_bankruptcy_dismissal(as_court(
        ACCEPTANCE,
        RecordBankruptcyDismissalRequest { request_id: "o5".into(), ..dismissal },
    ));
    let again = again.await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{}", again.message());
    assert!(again.message().contains("R26"), "{}", again.message());
    // Courts seize anew, ranking by the new orders; the lifted seizures stay lifted.
    let anew = seize_company(&mut s, "o6", C, &flats[0]).await.expect("enforcement resumes (R26)");
    assert_eq!(anew.seizure.unwrap().rank, 1, "{}", anew.message);
    let q = queue(&mut s, &flats[0]).await;
    assert!(q.seizures.iter().all(|x| x.seizure_id != sid(&first)), "{q:?}");
}

async fn r24_r26_every_court_with_a_case_hears_of_each_decision(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    seize_company(&mut s, "e1", A, &flats[0]).await.unwrap();
    seize_company(&mut s, "e2", B, &flats[0]).await.unwrap();
    // A court with a case and no seizure hears too, once it registered the case.
    d.register_case(as_court(C, register("e3", C, "某银行", 5_000_000))).await.unwrap();
    d.transfer_to_bankruptcy_review(as_court(A, review("e4", A, COMPANY, "the debtor's consent"))).await.unwrap();
    let refusal = RecordBankruptcyRefusalRequest {
        request_id: "e5".into(),
        case_number: BANKRUPTCY.into(),
        debtor: Some(debtor(COMPANY)),
        decision_reference: BANKRUPTCY.into(),
        decided_at: None,
    };
    d.record_bankruptcy_refusal(as_court(BANKRUPTCY, refusal)).await.unwrap();
    // Each case hears, and the bankruptcy court on its own case (at 京0105, as A).
    for case in [A, B, C] {
        let heard: Vec<_> = events(&mut s, case, 0)
            .await
            .into_iter()
            .filter(|e| e.kind.starts_with("bankruptcy_") && e.case_number == case)
            .map(|e| (e.kind, e.case_number, e.decision_reference))
            .collect();
        assert_eq!(
            heard,
            [
                ("bankruptcy_review".into(), case.to_string(), "（2027）京0105执1号之一".into()),
                ("bankruptcy_refused".into(), case.to_string(), BANKRUPTCY.into()),
            ],
            "{case}"
        );
    }
}

async fn r27_the_picture_shows_every_case_and_seizure_to_its_readers_a_page_at_a_time(db: Db) {
    let Some(stack) = lifting_at_once(db).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let registered = d.register_case(as_court(A, register("p1", A, "某银行股份有限公司", 12_345_600))).await;
    let registered = registered.unwrap().into_inner().case.unwrap();
    assert_eq!((registered.applicant.as_str(), registered.claim_amount), ("某银行股份有限公司", 12_345_600));
    seize_company(&mut s, "p2", A, &flats[0]).await.unwrap();
    seize_company(&mut s, "p3", B, &flats[0]).await.unwrap();
    seize_company(&mut s, "p4", B, &flats[1]).await.unwrap();

    let seen = picture(&mut d, A).await.unwrap();
    assert_eq!(seen.standing, DebtorStanding::Enforced as i32);
    assert!(!seen.debtor.contains(COMPANY) && !seen.debtor.is_empty(), "masked: {}", seen.debtor);
    let cases: Vec<_> = seen.cases.iter().map(|c| (c.case_number.as_str(), c.claim_amount)).collect();
    assert_eq!(cases.len(), 2, "{cases:?}");
    assert!(cases.contains(&(A, 12_345_600)) && cases.contains(&(B, 0)), "{cases:?}");
    assert_eq!(seen.seizures.len(), 3);
    assert!(seen.next_page_token.is_empty());

    // A court holding no case against the debtor sees nothing, as for another court's search.
    let stranger = picture(&mut d, C).await.unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound, "{}", stranger.message());
    let bad = d.get_debtor_picture(as_court(A, picture_req(A, COMPANY, 0, "not-a-token"))).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{}", bad.message());
    let huge = d.get_debtor_picture(as_court(A, picture_req(A, COMPANY, 5000, ""))).await.unwrap_err();
    assert_eq!(huge.code(), Code::InvalidArgument);

    // One at a time, every case and every seizure exactly once.
    let (mut token, mut pages, mut cases, mut held) = (String::new(), 0, Vec::new(), Vec::new());
    loop {
        let page = d.get_debtor_picture(as_court(A, picture_req(A, COMPANY, 1, &token))).await.unwrap().into_inner();
        pages += 1;
        cases.extend(page.cases.into_iter().map(|c| c.case_number));
        held.extend(page.seizures.into_iter().map(|x| x.seizure_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    cases.sort();
    held.sort();
    held.dedup();
    assert_eq!((cases.len(), held.len()), (2, 3), "{pages} pages");

    // In review the cases show suspended; the bankruptcy court reads once it holds its case.
    d.transfer_to_bankruptcy_review(as_court(A, review("p5", A, COMPANY, "the debtor's consent"))).await.unwrap();
    let seen = picture(&mut d, B).await.unwrap();
    assert_eq!(seen.standing, DebtorStanding::InReview as i32);
    assert!(seen.cases.iter().all(|c| c.state == assetgw::core::proto::CaseState::Suspended as i32));
    assert_eq!(picture(&mut d, ACCEPTANCE).await.unwrap_err().code(), Code::NotFound, "not yet its case");
    d.register_case(as_court(ACCEPTANCE, register("p6", ACCEPTANCE, "the debtor", 0))).await.unwrap();
    let court = picture(&mut d, ACCEPTANCE).await.unwrap();
    assert_eq!((court.cases.len(), court.seizures.len()), (3, 3));
    assert_eq!(court.decisions.len(), 1);
}

async fn r25_funds_deducted_and_not_paid_out_are_listed_for_hand_over(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let accounts = company_assets(&stack, AssetKind::Deposit).await;
    let Some(account) = accounts.first() else { panic!("the company has an account") };
    let mut freeze = place_req("f1", A, account, 100);
    freeze.debtor = Some(debtor(COMPANY));
    freeze.claim = Some(Money { currency: "CNY".into(), minor_units: 1_000 });
    let frozen = s.place_seizure(as_court(A, freeze)).await.unwrap().into_inner().result.unwrap();
    let deduct = DeductFundsRequest {
        request_id: "f2".into(),
        case_number: A.into(),
        seizure_id: sid(&frozen),
        amount: 60,
        ..Default::default()
    };
    s.deduct_funds(as_court(A, deduct.clone())).await.unwrap();
    // The first deduction is distributed and paid out (R28–R29): only the second is still to hand over.
    d.register_case(as_court(A, register("f4", A, "某银行", 1_000))).await.unwrap();
    let mut p = assetgw::core::proto::distribution_service_client::DistributionServiceClient::new(stack.channel());
    let case_funds = assetgw::core::proto::GetCaseFundsRequest { case_number: A.into() };
    let proceeds =
        p.get_case_funds(as_court(A, case_funds)).await.unwrap().into_inner().movements[0].proceeds_id.clone();
    let draft = assetgw::core::proto::DraftDistributionRequest {
        request_id: "f5".into(),
        case_number: A.into(),
        debtor: Some(debtor(COMPANY)),
        proceeds_ids: vec![proceeds],
        series: false,
    };
    let plan = p.draft_distribution(as_court(A, draft)).await.unwrap().into_inner().distribution.unwrap();
    let (id, case) = (plan.distribution_id, A.to_string());
    let serve = assetgw::core::proto::ServeDistributionRequest {
        request_id: "f6".into(),
        case_number: case.clone(),
        distribution_id: id.clone(),
        served_at: None,
    };
    p.serve_distribution(as_court(A, serve)).await.unwrap();
    stack.clock.advance(chrono::Duration::days(20));
    let pay = assetgw::core::proto::PayOutDistributionRequest {
        request_id: "f7".into(),
        case_number: case,
        distribution_id: id,
    };
    p.pay_out_distribution(as_court(A, pay)).await.unwrap();
    s.deduct_funds(as_court(A, DeductFundsRequest { request_id: "f8".into(), amount: 5, ..deduct })).await.unwrap();
    accepted(&mut d, "f3").await;
    let seen = picture(&mut d, ACCEPTANCE).await.unwrap();
    let funds: Vec<_> = seen.funds_to_hand_over.iter().map(|f| (f.case_number.as_str(), f.amount)).collect();
    assert_eq!(funds, [(A, 5)]);
    assert!(seen.funds_to_hand_over[0].due.is_some());
}

crate::on_both_backends!(
    r25_holding_courts_lift_within_seven_days_and_the_late_are_listed,
    r25_at_once_orders_every_release_with_the_acceptance_and_r26_dismissal_resumes,
    r24_r26_every_court_with_a_case_hears_of_each_decision,
    r27_the_picture_shows_every_case_and_seizure_to_its_readers_a_page_at_a_time,
    r25_funds_deducted_and_not_paid_out_are_listed_for_hand_over,
    r23_a_series_moves_all_or_nothing,
);

#[tokio::test]
async fn r27_a_bankruptcy_court_searches_an_enterprise_and_seizes_nothing() {
    let stack = Stack::start(standard()).await;
    let under = |who: &str| assetgw::core::proto::SearchQuery { case_number: BANKRUPTCY.into(), ..query(&[who]) };
    let mut client = stack.client().await;
    let request = |q| as_court(BANKRUPTCY, assetgw::core::proto::SearchRequest { query: Some(q) });
    let found = client.search(request(under(COMPANY))).await.expect("an enterprise, under 破申");
    assert!(!found.into_inner().debtors[0].assets.is_empty());
    let person = client.search(request(under(RICH))).await.unwrap_err();
    assert_eq!(person.code(), Code::InvalidArgument);
    assert!(person.message().contains("R27"), "{}", person.message());
    let mut s = seizures(&stack);
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let placed = seize_company(&mut s, "k1", BANKRUPTCY, &flats[0]).await.unwrap_err();
    assert_eq!(placed.code(), Code::InvalidArgument);
    assert!(placed.message().contains("R27"), "{}", placed.message());
}

const SUPERIOR: &str = "（2027）京01执监7号";
const OTHER: &str = "（2024）京0108执5号";

fn series(id: &str, listed: &[&str]) -> DesignateSeriesRequest {
    DesignateSeriesRequest {
        request_id: id.into(),
        debtor: Some(debtor(COMPANY)),
        to_court_code: "京0102".into(),
        decision_reference: SUPERIOR.into(),
        decided_at: None,
        case_numbers: listed.iter().map(|c| c.to_string()).collect(),
    }
}

async fn r23_a_series_moves_all_or_nothing(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let a = seize_company(&mut s, "s1", A, &flats[0]).await.unwrap();
    let other = seize_company(&mut s, "s2", OTHER, &flats[1]).await.unwrap();
    // Both terms end within 30 days: neither case may move until renewed (R11), and neither does.
    stack.clock.advance(chrono::Duration::days(1096 - 20));
    let blocked = d.designate_series(as_court(SUPERIOR, series("s3", &[]))).await.unwrap_err();
    assert_eq!(blocked.code(), Code::FailedPrecondition, "{}", blocked.message());
    for named in [&sid(&a), &sid(&other), A, OTHER, "R23", "R11"] {
        assert!(blocked.message().contains(named), "{named}: {}", blocked.message());
    }
    let basic = d.designate_series(as_court(A, series("s4", &[]))).await.unwrap_err();
    assert_eq!(basic.code(), Code::PermissionDenied, "{}", basic.message());
    let unknown = d.designate_series(as_court(SUPERIOR, series("s5", &[C]))).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{}", unknown.message());
    assert!(picture(&mut d, A).await.unwrap().designations.is_empty(), "all or nothing: none moved");

    for (id, case, seizure) in [("s6", A, sid(&a)), ("s7", OTHER, sid(&other))] {
        let renew = RenewSeizureRequest {
            request_id: id.into(),
            case_number: case.into(),
            seizure_id: seizure,
            months: 0,
            emergency_approval: String::new(),
        };
        s.renew_seizure(as_court(case, renew)).await.unwrap();
    }
    let moved = d.designate_series(as_court(SUPERIOR, series("s8", &[]))).await.unwrap().into_inner();
    let designated: Vec<_> = moved.designations.iter().map(|x| x.case_number.as_str()).collect();
    assert_eq!(designated, [A, OTHER], "{}", moved.message);
    assert!(moved.designations.iter().all(|x| x.to_court_code == "京0102" && x.handover_due.is_some()));
    // R12 from receipt: the original courts stop executing.
    let stopped = seize_company(&mut s, "s9", A, &flats[1]).await.unwrap_err();
    assert_eq!(stopped.code(), Code::PermissionDenied, "{}", stopped.message());
    let away = picture(&mut d, OTHER).await.unwrap_err();
    assert!(away.code() == Code::PermissionDenied && away.message().contains("R12"), "{}", away.message());
    // Another court with a case against the debtor sees both designations open.
    d.register_case(as_court(C, register("s10", C, "某公司", 1))).await.unwrap();
    assert_eq!(picture(&mut d, C).await.unwrap().designations.len(), 2);
}

/// R25 at scale, killed: `assetgw ledger bench-bankruptcy` seeds a company's seizures across many
/// courts, then records the acceptance that lifts them all at once; SIGKILL lands while it writes.
/// After it, the acceptance is wholly recorded (every seizure released, a release order each, the
/// debtor bankrupt) or not at all (every seizure live, no order, no decision), and the ledger holds.
async fn r25_an_acceptance_killed_mid_write_is_recorded_whole_or_not_at_all(db: Db) {
    use std::io::BufRead;
    let Some(url) = ledger_url(db).await else { return };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_assetgw"))
        .args(["ledger", "bench-bankruptcy", "--url", &url, "--seizures", "3000", "--courts", "100"])
        .args(["--per-asset", "3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l == "accepting"), "the seeding finished");
    // The acceptance of 3,000 seizures takes about a second in a debug build: kill it a fifth in.
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let finished = lines.map_while(Result::ok).any(|l| l.starts_with("acceptance"));
    assert!(!finished, "the acceptance finished before the kill; nothing was tested");

    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let count = async |conn: &mut sqlx::AnyConnection, sql: &str| -> i64 {
        sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
    };
    let bankrupt = count(&mut conn, "SELECT COUNT(*) FROM debtor_standing WHERE standing = 'bankrupt'").await;
    let decisions = count(&mut conn, "SELECT COUNT(*) FROM debtor_decisions").await;
    let released = count(&mut conn, "SELECT COUNT(*) FROM seizures WHERE state = 'released'").await;
    let live = count(&mut conn, "SELECT COUNT(*) FROM seizures WHERE state <> 'released'").await;
    let orders = count(&mut conn, "SELECT COUNT(*) FROM outbox WHERE kind = 'release'").await;
    eprintln!("after the kill: bankrupt {bankrupt}, released {released}, live {live}, release orders {orders}");
    match bankrupt {
        1 => assert_eq!((decisions, released, live, orders), (1, 3000, 0, 3000), "wholly recorded"),
        _ => assert_eq!((bankrupt, decisions, released, live, orders), (0, 0, 0, 3000, 0), "not at all"),
    }
    let store = assetgw::ledger::store::Store::open(
        &url,
        std::sync::Arc::new(assetgw::core::clock::SystemClock),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(store.verify().await.unwrap(), Vec::<String>::new(), "the ledger's invariants hold");
}

crate::on_both_backends!(r25_an_acceptance_killed_mid_write_is_recorded_whole_or_not_at_all);

/// What searches show follows R25 too: once the company is bankrupt, a first seizure that lapses
/// promotes no one in the search results either (the read model reloads on the decision).
async fn r25_searches_show_no_promotion_on_a_bankrupts_asset(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    seize_company(&mut s, "m1", A, &flats[0]).await.unwrap();
    seize_company(&mut s, "m2", B, &flats[0]).await.unwrap();
    let shown = |found: Vec<assetgw::core::proto::MergedAsset>| {
        let flat = found.into_iter().find(|f| f.asset_id == flats[0].asset_id).unwrap();
        let summary = flat.seizures.unwrap_or_default();
        (summary.first_case_number, summary.waiting_count)
    };
    assert_eq!(shown(company_assets(&stack, AssetKind::RealEstate).await), (A.to_string(), 1));
    accepted(&mut d, "m3").await;
    // The first seizure's term (36 months) runs out; nobody is promoted, in the ledger or in searches.
    stack.clock.advance(chrono::Duration::days(1100));
    assert_eq!(queue(&mut s, &flats[0]).await.seizures.len(), 1, "the waiting one, still waiting");
    assert_eq!(shown(company_assets(&stack, AssetKind::RealEstate).await), (String::new(), 1));
}

crate::on_both_backends!(r25_searches_show_no_promotion_on_a_bankrupts_asset);
