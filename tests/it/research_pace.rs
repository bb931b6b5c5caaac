//! R30's re-searches as the network feels them: never above a registry's
//! declared rate and after the courts' searches, paused while its breaker is
//! open and caught up after, a gateway killed mid-round losing and doubling
//! nothing, and two replicas keeping one rate between them (through Redis).

use std::time::Duration;

use assetgw::core::{
    clock::{Clock, Time},
    identifiers::resident_id_check,
    proto::{RegistryStatus, TerminateCaseRequest, debtor_service_client::DebtorServiceClient, ts},
};
use assetgw::ops::config::{BreakerConfig, Config};
use sqlx::Connection;

use crate::harness::*;

const REGISTRIES: [&str; 6] = ["bank-a", "bank-b", "realestate", "ip", "aviation", "securities"];

/// The `n`th person of a Beijing district: a valid identity number of its own.
fn person(n: u32) -> String {
    let head = format!("11010519900101{:03}", 100 + n);
    format!("{head}{}", resident_id_check(head.as_bytes()) as char)
}

/// 京0105's `n`th terminated case.
fn case(n: u32) -> String {
    format!("（2024）京0105执{}号", 700 + n)
}

/// The standard network, every registry declaring `rate` searches a second, and the gateway on `db`
/// looking for due re-searches every 100 ms.
async fn paced(db: Db, rate: u32, tweak: impl FnOnce(&mut Config)) -> Option<Stack> {
    let url = ledger_url(db).await?;
    let regs = standard().into_iter().map(|mut r| {
        r.mock.search_rate = rate;
        r
    });
    let stack = Stack::with(regs.collect(), |c| {
        c.ledger.url = url;
        c.ledger.sweep_interval = Duration::from_millis(100);
        tweak(c);
    })
    .await;
    Some(stack)
}

/// Terminates cases 0..n, each against a person of its own, 200 days before `now`: each case's
/// first re-search is due.
async fn terminate_due(channel: Courts, now: Time, n: u32) {
    let mut d = DebtorServiceClient::new(channel);
    for i in 0..n {
        let request = TerminateCaseRequest {
            request_id: format!("due{i}"),
            case_number: case(i),
            debtors: vec![debtor(&person(i))],
            terminated_at: Some(ts(now - chrono::Duration::days(200))),
        };
        d.terminate_case(as_court(&case(i), request)).await.unwrap();
    }
}

/// One number read from the ledger.
async fn count(url: &str, sql: &str) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

const STARTED: &str = "SELECT COUNT(*) FROM researches WHERE round = 1 AND done_at IS NOT NULL";

/// The first re-searches started once `want` have (within 5 s) and a worker round or two more
/// (1.5 s) has passed: what the gateway starts while the clock stands.
async fn started_at_rest(url: &str, want: i64) -> i64 {
    for _ in 0..50 {
        if count(url, STARTED).await >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    count(url, STARTED).await
}

/// Twelve re-searches fall due at once against registries that take four searches a second. With
/// the gateway's clock standing, they take what a court's search left of each registry's four, and
/// not one more; a court's search is never held, even above the rate; as the clock moves, four a
/// span (a second and a tenth) go, until all twelve have.
async fn r30_no_registry_is_asked_above_its_rate_and_the_courts_come_first(db: Db) {
    let Some(stack) = paced(db, 4, |_| {}).await else { return };
    let url = stack.ledger_url.clone();
    let calls = || REGISTRIES.map(|r| stack.calls(r));
    stack.search(query(&[RICH])).await.unwrap();
    assert_eq!(calls(), [1; 6], "the court's search");
    terminate_due(stack.channel(), stack.clock.now(), 12).await;
    assert_eq!(started_at_rest(&url, 3).await, 3, "what the court left");
    assert_eq!(calls(), [4; 6], "the rate, courts' and re-searches together");
    let r = stack.search(query(&[NOBODY])).await.unwrap();
    assert!(REGISTRIES.iter().all(|n| status(outcome(&r, 0, n)) == RegistryStatus::Ok), "courts are never held");
    assert_eq!(calls(), [5; 6]);
    stack.clock.advance(chrono::Duration::milliseconds(600));
    assert_eq!(started_at_rest(&url, 3).await, 3, "the span still holds the rate's four and more");
    stack.clock.advance(chrono::Duration::milliseconds(600));
    for want in [7, 11, 12] {
        assert_eq!(started_at_rest(&url, want).await, want);
        assert_eq!(calls(), [2 + want as u64; 6], "each registry asked once per re-search, four a span");
        stack.clock.advance(chrono::Duration::milliseconds(1200));
    }
    let settled = "SELECT COUNT(*) FROM search_jobs WHERE research_round = 1 AND settled_at IS NOT NULL";
    assert_eq!(count(&url, settled).await, 12, "every re-search answered whole");
}

crate::on_both_backends!(r30_no_registry_is_asked_above_its_rate_and_the_courts_come_first);

/// A registry whose breaker the courts' searches opened is paused: due re-searches start without
/// asking it, their legs for it wait in their jobs, and once it is back and its cool-down has
/// passed they are asked and the re-searches settle whole.
async fn r30_a_registry_whose_breaker_is_open_is_paused_and_caught_up_after(db: Db) {
    let breaker = BreakerConfig { failures: 2, cool_down: Duration::from_secs(3) };
    let Some(stack) = paced(db, 50, |c| c.calls.breaker = Some(breaker)).await else { return };
    let url = stack.ledger_url.clone();
    stack.mock("bank-a").set_down(true);
    let mut opened = false;
    for _ in 0..6 {
        let fresh =
            assetgw::core::proto::SearchQuery { max_age: Some(prost_types::Duration::default()), ..query(&[RICH]) };
        opened = outcome(&stack.search(fresh).await.unwrap(), 0, "bank-a").message.contains("circuit open");
        if opened {
            break;
        }
    }
    assert!(opened, "the courts' searches opened bank-a's breaker");
    let before = stack.calls("bank-a");
    terminate_due(stack.channel(), stack.clock.now(), 2).await;
    assert_eq!(started_at_rest(&url, 2).await, 2, "the re-searches start without the paused registry");
    assert_eq!(stack.calls("bank-a"), before, "bank-a not asked while its breaker is open");
    let waiting = "SELECT COUNT(*) FROM search_legs l JOIN search_jobs j ON j.search_id = l.search_id \
                   WHERE j.research_round = 1 AND l.registry = 'bank-a' AND l.state = 'asking'";
    assert_eq!(count(&url, waiting).await, 2, "its legs wait in their jobs");
    assert_eq!(count(&url, "SELECT COUNT(*) FROM search_jobs WHERE settled_at IS NOT NULL").await, 0);

    stack.mock("bank-a").set_down(false);
    let settled = "SELECT COUNT(*) FROM search_jobs WHERE research_round = 1 AND settled_at IS NOT NULL";
    for _ in 0..40 {
        if count(&url, settled).await == 2 {
            break;
        }
        stack.clock.advance(chrono::Duration::seconds(4));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(count(&url, settled).await, 2, "caught up: both re-searches settled");
    let answered = waiting.replace("'asking'", "'answered'");
    assert_eq!(count(&url, &answered).await, 2, "bank-a answered both once back");
}

crate::on_both_backends!(r30_a_registry_whose_breaker_is_open_is_paused_and_caught_up_after);

/// Each case's first re-search: its jobs, and the audit records naming it, as (case, job ids, audited job ids).
async fn carried_out(url: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let jobs: Vec<(String, String)> =
        sqlx::query_as("SELECT case_number, search_id FROM search_jobs WHERE research_round = 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let audited: Vec<(String, String)> =
        sqlx::query_as("SELECT case_number, detail FROM audit WHERE method = 'Research'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    (0..30)
        .map(|i| {
            let of = |rows: &[(String, String)]| {
                rows.iter().filter(|(c, _)| *c == case(i)).map(|(_, v)| v.clone()).collect::<Vec<String>>()
            };
            let audited: Vec<String> = of(&audited)
                .into_iter()
                .map(|d| serde_json::from_str::<serde_json::Value>(&d).unwrap()["search_id"].as_str().unwrap().into())
                .collect();
            (case(i), of(&jobs), audited)
        })
        .collect()
}

/// Waits (up to 60 s) until all 30 first re-searches are started and their jobs settled.
async fn all_carried_out(url: &str) {
    let settled = "SELECT COUNT(*) FROM search_jobs WHERE research_round = 1 AND settled_at IS NOT NULL";
    for _ in 0..600 {
        if count(url, STARTED).await == 30 && count(url, settled).await == 30 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} of 30 re-searches started, {} settled", count(url, STARTED).await, count(url, settled).await);
}

/// A gateway process killed (SIGKILL) in the middle of a round of re-searches: the one started
/// after it carries out every due re-search, each by one job, named by its audit record (written
/// before the job: a kill between the two leaves the record, and the job is opened on the next
/// claim under the same id).
#[tokio::test]
async fn r30_a_gateway_killed_mid_round_loses_no_re_search_and_runs_none_twice() {
    // The in-process gateway only registers the terminations (no allowance: it starts none); the
    // processes, on the system clock, carry them out.
    let Some(stack) = paced(Db::Sqlite, 5, |c| c.ledger.research_allowance = 0).await else { return };
    let url = stack.ledger_url.clone();
    terminate_due(stack.channel(), stack.clock.now(), 30).await;
    let faster = "[search]\ndeadline = \"3s\"\n";
    let mut first = Process::serve_with(&stack.registries, &url, faster).await;
    let opened = "SELECT COUNT(*) FROM search_jobs WHERE research_round = 1";
    for _ in 0..400 {
        if count(&url, opened).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    let killed_at = count(&url, STARTED).await;
    assert!(killed_at < 30, "killed before the end: {killed_at} started");
    let _second = Process::serve_with(&stack.registries, &url, faster).await;
    all_carried_out(&url).await;
    for (case, jobs, audited) in carried_out(&url).await {
        assert_eq!(jobs.len(), 1, "{case}: one job, never two: {jobs:?}");
        assert!(!audited.is_empty() && audited.len() <= 2, "{case}: on record: {audited:?}");
        assert!(audited.iter().all(|id| *id == jobs[0]), "{case}: the record names its job");
    }
    let recorded = "SELECT COUNT(*) FROM researches r JOIN search_jobs j ON j.search_id = r.search_id \
                    WHERE r.round = 1 AND j.research_round = 1";
    assert_eq!(count(&url, recorded).await, 30, "each recorded done by its own job");
}

/// Two gateway processes over one PostgreSQL ledger and one Redis share the schedule and the
/// registries' rates: every due re-search is carried out once, and no registry is asked more than
/// its rate within any second, counted at the registry.
#[tokio::test]
async fn r30_two_replicas_share_one_schedule_and_one_rate() {
    let Some(stack) = paced(Db::Postgres, 5, |c| c.ledger.research_allowance = 0).await else { return };
    let Some(redis) = Redis::start().await else { return };
    let url = stack.ledger_url.clone();
    terminate_due(stack.channel(), stack.clock.now(), 30).await;
    let shared = format!("[search]\ndeadline = \"3s\"\n[shared]\nredis = \"{}\"\n", redis.url);
    let (_one, _two) = tokio::join!(
        Process::serve_with(&stack.registries, &url, &shared),
        Process::serve_with(&stack.registries, &url, &shared)
    );
    // Each registry's count of searches, sampled, with the instant of each sample.
    let mut samples: Vec<(tokio::time::Instant, [u64; 6])> = Vec::new();
    let settled = "SELECT COUNT(*) FROM search_jobs WHERE research_round = 1 AND settled_at IS NOT NULL";
    for _ in 0..600 {
        samples.push((tokio::time::Instant::now(), REGISTRIES.map(|r| stack.calls(r))));
        if count(&url, settled).await == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    all_carried_out(&url).await;
    for (case, jobs, audited) in carried_out(&url).await {
        assert_eq!((jobs.len(), audited.len()), (1, 1), "{case}: once, by one replica");
    }
    // Searches that arrived between two samples at most a second apart came within a second.
    let mut busiest = 0;
    for (i, (at, early)) in samples.iter().enumerate() {
        for (later, late) in &samples[i + 1..] {
            if later.duration_since(*at) > Duration::from_secs(1) {
                break;
            }
            busiest = busiest.max(late.iter().zip(early).map(|(l, e)| l - e).max().unwrap_or(0));
        }
    }
    assert!(busiest <= 5, "a registry got {busiest} searches within a second; it takes 5");
    assert_eq!(REGISTRIES.map(|r| stack.calls(r)), [30; 6], "each registry asked once per re-search");
}
