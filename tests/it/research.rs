//! Terminated cases and their re-searches (R30) through the court API:
//! the schedule on Beijing dates, the re-search run as the court's own
//! search, one question per debtor, the court's daily allowance, a damaged
//! seal, and replicas claiming one schedule.

use assetgw::core::clock::Clock;
use assetgw::core::proto::{AssetKind, debtor_service_client::DebtorServiceClient};
use sqlx::Connection;
use tonic::Code;

use crate::{harness::*, ledger::*};

pub type Debtors = DebtorServiceClient<Courts>;

/// A stack on `db` whose re-search worker looks every 100 ms.
pub async fn researching(db: Db) -> Option<Stack> {
    let url = ledger_url(db).await?;
    Some(
        Stack::with(standard(), |c| {
            c.ledger.url = url;
            c.ledger.sweep_interval = std::time::Duration::from_millis(100);
        })
        .await,
    )
}

/// The termination of `case` against the rich debtor, at `at` (unset: now).
pub fn termination(
    id: &str,
    case: &str,
    at: Option<prost_types::Timestamp>,
) -> assetgw::core::proto::TerminateCaseRequest {
    assetgw::core::proto::TerminateCaseRequest {
        request_id: id.into(),
        case_number: case.into(),
        debtors: vec![debtor(RICH)],
        terminated_at: at,
    }
}

async fn r30_a_terminated_case_is_scheduled_and_resumed_with_its_seizures(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let first = place(&mut s, "t1", A, &flat, 0).await;
    place(&mut s, "t2", B, &flat, 0).await;
    let terminate = |id: &str| termination(id, A, None);
    let done = d.terminate_case(as_court(A, terminate("t3"))).await.unwrap().into_inner();
    assert_eq!(done.case.unwrap().state, assetgw::core::proto::CaseState::Terminated as i32, "{}", done.message);
    assert_eq!(done.researches_due.len(), 10);
    let again = d.terminate_case(as_court(A, terminate("t4"))).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{}", again.message());
    let listed = d.list_researches(as_court(A, assetgw::core::proto::ListResearchesRequest::default())).await;
    let listed = listed.unwrap().into_inner().researches;
    assert_eq!(listed.iter().map(|r| r.round).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert!(listed.iter().all(|r| r.case_number == A && r.done_at.is_none()));
    assert!(
        d.list_researches(as_court(B, Default::default())).await.unwrap().into_inner().researches.is_empty(),
        "another court's schedule is its own"
    );
    // The seizure stays in force after termination: still first.
    assert_eq!(queue(&mut s, &flat).await.seizures[0].case_number, A);
    // The identifier is kept only sealed.
    let mut conn = sqlx::AnyConnection::connect(&stack.ledger_url).await.unwrap();
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT masked || sealed FROM research_debtors").fetch_all(&mut conn).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(!kept[0].contains(RICH), "never the clear number");

    let resume = |id: &str, new: &str| assetgw::core::proto::ResumeCaseRequest {
        request_id: id.into(),
        case_number: A.into(),
        new_case_number: new.into(),
    };
    let elsewhere = d.resume_case(as_court(A, resume("t5", "（2027）京0105执3号"))).await.unwrap_err();
    assert_eq!(elsewhere.code(), Code::InvalidArgument, "{}", elsewhere.message());
    let resumed = d.resume_case(as_court(A, resume("t6", "（2027）京0105执恢3号"))).await.unwrap().into_inner();
    assert_eq!(resumed.seizures_moved, 1, "{}", resumed.message);
    let q = queue(&mut s, &flat).await;
    assert_eq!(
        (q.seizures[0].seizure_id.as_str(), q.seizures[0].case_number.as_str()),
        (sid(&first).as_str(), "（2027）京0105执恢3号"),
        "rank kept"
    );
    let listed = d.list_researches(as_court(A, Default::default())).await.unwrap().into_inner().researches;
    assert!(listed.is_empty(), "no more re-searches: {listed:?}");
    let twice = d.resume_case(as_court(A, resume("t7", "（2027）京0105执恢4号"))).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{}", twice.message());
}

crate::on_both_backends!(r30_a_terminated_case_is_scheduled_and_resumed_with_its_seizures);

/// R30's schedule carried out: six months (Beijing calendar) after the termination, the gateway
/// opens the re-search as the court's own search job; every registry is asked for the debtor, the
/// court reads the result as any of its searches, and the re-search is recorded done, once.
async fn r30_the_six_month_re_search_runs_as_the_courts_search(db: Db) {
    let Some(stack) = researching(db).await else { return };
    let mut d = DebtorServiceClient::new(stack.channel());
    let due = d.terminate_case(as_court(A, termination("rs1", A, None))).await.unwrap().into_inner().researches_due;
    let listed = async |d: &mut Debtors| d.list_researches(as_court(A, Default::default())).await.unwrap().into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(listed(&mut d).await.researches.iter().all(|r| r.done_at.is_none()), "nothing due yet");
    // The day before the first is due, nothing; on its day, the first and only the first.
    let first = assetgw::core::proto::time_of(&due[0]);
    stack.clock.advance(first - stack.clock.now() - chrono::Duration::hours(1));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(listed(&mut d).await.researches.iter().all(|r| r.done_at.is_none()), "not before its day");
    stack.clock.advance(chrono::Duration::hours(2));
    let mut started = None;
    for _ in 0..100 {
        let researches = listed(&mut d).await.researches;
        if let Some(r) = researches.iter().find(|r| r.done_at.is_some()) {
            assert_eq!(r.round, 1);
            assert_eq!(researches.iter().filter(|r| r.done_at.is_some()).count(), 1, "only the first is due");
            started = Some(r.search_id.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let search_id = started.expect("the re-search started on its day");
    let mut client = stack.client().await;
    let mut found = None;
    for _ in 0..100 {
        let get = as_court(A, assetgw::core::proto::GetSearchRequest { search_id: search_id.clone() });
        let r = client.get_search(get).await.unwrap().into_inner();
        if r.settled_at.is_some() {
            found = r.result;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let found = found.expect("every registry answered the re-search");
    assert_eq!(found.debtors.len(), 1);
    assert!(!found.debtors[0].assets.is_empty(), "the rich debtor's assets were found again");
    assert!(found.debtors[0].assets.iter().all(|a| a.new_to_case), "all new to the case, and marked so in the result");
    // Another court cannot read it; it is 京0105's search.
    let other = client.get_search(as_court(B, assetgw::core::proto::GetSearchRequest { search_id })).await;
    assert_eq!(other.unwrap_err().code(), Code::NotFound);
    // Everything it found is new to the case (nothing was seized or kept for it before): the court hears
    // so, counts only, and the case is eligible for resumption.
    let first_round = listed(&mut d).await.researches.into_iter().find(|r| r.round == 1).unwrap();
    let total = found.debtors[0].assets.len() as u32;
    assert_eq!((first_round.found, first_round.new_assets), (total, total));
    let mut s = seizures(&stack);
    let heard: Vec<_> = events(&mut s, A, 0).await.into_iter().filter(|e| e.kind == "research_found").collect();
    assert_eq!(heard.len(), 1);
    assert!(heard[0].message.contains(&format!("{total} not seen before")), "{}", heard[0].message);
    assert!(!heard[0].message.contains(RICH), "counts, never the debtor");

    // Six months on, the same assets: nothing new, and the court is told that too.
    stack.clock.advance(assetgw::core::proto::time_of(&due[1]) - stack.clock.now() + chrono::Duration::hours(1));
    let mut second = None;
    for _ in 0..100 {
        second =
            listed(&mut d).await.researches.into_iter().find(|r| r.round == 2 && r.found > 0 && r.done_at.is_some());
        if second.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let second = second.expect("the second re-search settled");
    assert_eq!((second.found, second.new_assets), (total, 0));
    let get = as_court(A, assetgw::core::proto::GetSearchRequest { search_id: second.search_id.clone() });
    let again = client.get_search(get).await.unwrap().into_inner().result.unwrap();
    assert!(again.debtors[0].assets.iter().all(|a| !a.new_to_case), "nothing new the second time");
    let heard: Vec<_> = events(&mut s, A, 0).await.into_iter().filter(|e| e.kind == "research_found").collect();
    assert_eq!(heard.len(), 2);
    assert!(heard[1].message.contains("none not seen before"), "{}", heard[1].message);
}

crate::on_both_backends!(r30_the_six_month_re_search_runs_as_the_courts_search);

/// R30, one question per debtor: two courts' terminated cases against one debtor, due three days
/// apart, are re-searched together: every registry is asked once for both, and each case still gets
/// its own job, result and comparison.
async fn r30_re_searches_of_one_debtor_share_one_question(db: Db) {
    let Some(stack) = researching(db).await else { return };
    let mut d = DebtorServiceClient::new(stack.channel());
    let terminate = |id: &str, case: &str| termination(id, case, None);
    let due = d.terminate_case(as_court(A, terminate("sh1", A))).await.unwrap().into_inner().researches_due;
    stack.clock.advance(chrono::Duration::days(3));
    d.terminate_case(as_court(B, terminate("sh2", B))).await.unwrap();
    let registries = ["bank-a", "bank-b", "realestate", "ip", "aviation", "securities"];
    let calls = || registries.iter().map(|r| stack.calls(r)).sum::<u64>();
    let before = calls();
    stack.clock.advance(assetgw::core::proto::time_of(&due[0]) - stack.clock.now() + chrono::Duration::hours(1));
    let done = async |d: &mut Debtors, case: &str| {
        let listed = d.list_researches(as_court(case, Default::default())).await.unwrap().into_inner();
        listed.researches.into_iter().find(|r| r.round == 1 && r.found > 0 && r.done_at.is_some())
    };
    let (mut a, mut b) = (None, None);
    for _ in 0..100 {
        (a, b) = (done(&mut d, A).await, done(&mut d, B).await);
        if a.is_some() && b.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (a, b) = (a.expect("A's re-search settled"), b.expect("B's, three days early, with it"));
    assert_ne!(a.search_id, b.search_id, "each case its own job");
    assert_eq!(a.found, b.found);
    assert_eq!(calls() - before, registries.len() as u64, "every registry asked once for both cases");
    let mut client = stack.client().await;
    let theirs =
        client.get_search(as_court(B, assetgw::core::proto::GetSearchRequest { search_id: b.search_id })).await;
    assert_eq!(theirs.unwrap().into_inner().result.unwrap().debtors[0].assets.len() as u32, b.found);
}

crate::on_both_backends!(r30_re_searches_of_one_debtor_share_one_question);

/// A termination recorded late (dated more than six months ago) has its first re-search due at
/// once: it starts without waiting for the worker's next round (a minute here). A date to come is
/// refused.
async fn r30_a_termination_recorded_late_is_re_searched_at_once(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut d = DebtorServiceClient::new(stack.channel());
    let at = |days: i64| Some(assetgw::core::proto::ts(stack.clock.now() - chrono::Duration::days(days)));
    let terminate = |id: &str, days: i64| termination(id, A, at(days));
    let future = d.terminate_case(as_court(A, terminate("late0", -1))).await.unwrap_err();
    assert_eq!(future.code(), Code::InvalidArgument, "{}", future.message());
    d.terminate_case(as_court(A, terminate("late1", 190))).await.unwrap();
    let mut started = false;
    for _ in 0..50 {
        let listed = d.list_researches(as_court(A, Default::default())).await.unwrap().into_inner().researches;
        if listed.iter().any(|r| r.round == 1 && r.done_at.is_some()) {
            assert!(listed.iter().filter(|r| r.done_at.is_some()).all(|r| r.round == 1), "only the one due");
            started = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(started, "the re-search due at once started within 5 s, not at the next round");
}

crate::on_both_backends!(r30_a_termination_recorded_late_is_re_searched_at_once);

/// R30 across replicas: two gateways' stores over one PostgreSQL database claim the due
/// re-searches at once; none is claimed by both, and every one is claimed.
#[tokio::test]
async fn r30_two_replicas_never_claim_one_re_search_twice() {
    use assetgw::ledger::command::{Command, RequestKey, ResearchDebtor};
    let Some(url) = ledger_url(Db::Postgres).await else { return };
    let clock = std::sync::Arc::new(assetgw::core::clock::ManualClock::new(assetgw::core::clock::SystemClock.now()));
    let open = || async { assetgw::ledger::store::Store::open(&url, clock.clone(), Default::default()).await.unwrap() };
    let (one, two) = (open().await, open().await);
    for n in 0..40 {
        let case = assetgw::core::identifiers::CaseNumber::parse(&format!("（2024）京0105执{}号", 500 + n)).unwrap();
        // Each case its own debtor, so that no re-search comes along with another's.
        let debtors = vec![ResearchDebtor {
            key: format!("debtor-{n}"),
            masked: "110105********1232".into(),
            organisation: false,
            sealed: vec![1, 2, 3],
        }];
        let request = RequestKey::of("京0105", "officer-1", &format!("rep{n}"), &[]);
        let at = clock.now() - chrono::Duration::days(200);
        one.execute(Command::Terminate { request, case, debtors, at }).await.unwrap();
    }
    let claim = |limit| assetgw::ledger::store::ResearchClaim {
        limit,
        lease: std::time::Duration::from_secs(60),
        window: std::time::Duration::ZERO,
        allowance: 1000,
    };
    let (a, b) = tokio::join!(one.claim_researches(claim(25)), two.claim_researches(claim(25)));
    let (a, b) = (a.unwrap(), b.unwrap());
    let key = |r: &assetgw::ledger::store::DueResearch| (r.case_number.clone(), r.round);
    let mut all: Vec<_> = a.iter().chain(&b).map(key).collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), claimed, "a re-search claimed by both replicas");
    assert!(a.iter().chain(&b).all(|r| r.round == 1), "only the first rounds are due");
    let rest = one.claim_researches(claim(100)).await.unwrap();
    assert_eq!(claimed + rest.len(), 40, "every due re-search claimed once: {claimed} + {}", rest.len());
    assert!(two.claim_researches(claim(100)).await.unwrap().is_empty(), "none left while leased");
}

/// R30's own allowance: a court starts at most `research_allowance` re-searches a Beijing day,
/// apart from its search quota; the rest start after the next midnight in Beijing.
async fn r30_a_courts_re_searches_keep_to_its_daily_allowance(db: Db) {
    let Some(url) = ledger_url(db).await else { return };
    let stack = Stack::with(standard(), |c| {
        c.ledger.url = url;
        c.ledger.sweep_interval = std::time::Duration::from_millis(100);
        c.ledger.research_allowance = 1;
    })
    .await;
    let mut d = DebtorServiceClient::new(stack.channel());
    let long_ago = Some(assetgw::core::proto::ts(stack.clock.now() - chrono::Duration::days(200)));
    for (id, case, who) in [("al1", A, RICH), ("al2", "（2024）京0105执2号", NOBODY)] {
        let request = assetgw::core::proto::TerminateCaseRequest {
            debtors: vec![debtor(who)],
            ..termination(id, case, long_ago)
        };
        d.terminate_case(as_court(case, request)).await.unwrap();
    }
    let started = async |d: &mut Debtors| {
        let listed = d.list_researches(as_court(A, Default::default())).await.unwrap().into_inner().researches;
        listed.iter().filter(|r| r.done_at.is_some()).count()
    };
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(started(&mut d).await, 1, "one a day");
    // Past the next midnight in Beijing, the other.
    let now = stack.clock.now();
    let midnight =
        assetgw::core::clock::beijing_midnight(assetgw::core::clock::beijing_date(now) + chrono::Days::new(1));
    stack.clock.advance(midnight - now + chrono::Duration::minutes(1));
    let mut both = 0;
    for _ in 0..50 {
        both = started(&mut d).await;
        if both == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(both, 2, "the next day's allowance");
}

crate::on_both_backends!(r30_a_courts_re_searches_keep_to_its_daily_allowance);

/// One re-search whose debtor no longer unseals (its sealed value damaged, or sealed under another
/// audit key) is skipped with a warning; the others due with it still run.
async fn r30_a_re_search_that_does_not_unseal_holds_back_no_other(db: Db) {
    let Some(stack) = researching(db).await else { return };
    let mut d = DebtorServiceClient::new(stack.channel());
    let broken = "（2024）京0105执2号";
    for (id, case, who) in [("ub1", broken, NOBODY), ("ub2", A, RICH)] {
        let request =
            assetgw::core::proto::TerminateCaseRequest { debtors: vec![debtor(who)], ..termination(id, case, None) };
        d.terminate_case(as_court(case, request)).await.unwrap();
    }
    let mut conn = sqlx::AnyConnection::connect(&stack.ledger_url).await.unwrap();
    sqlx::query("UPDATE research_debtors SET sealed = '00' WHERE case_number = $1")
        .bind(broken)
        .execute(&mut conn)
        .await
        .unwrap();
    // Both first rounds fall due together.
    let due = d.list_researches(as_court(A, Default::default())).await.unwrap().into_inner().researches;
    let first = due.iter().filter(|r| r.round == 1).map(|r| assetgw::core::proto::time_of(r.due.as_ref().unwrap()));
    let first = first.max().unwrap();
    stack.clock.advance(first - stack.clock.now() + chrono::Duration::hours(1));
    let mut done = Vec::new();
    for _ in 0..50 {
        let listed = d.list_researches(as_court(A, Default::default())).await.unwrap().into_inner().researches;
        done = listed.into_iter().filter(|r| r.done_at.is_some()).map(|r| r.case_number).collect();
        if !done.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done, [A.to_string()], "the sound re-search ran; the damaged one waits, alone");
}

crate::on_both_backends!(r30_a_re_search_that_does_not_unseal_holds_back_no_other);
