//! Mock registries' faults changed at run time through their admin RPC, as
//! load tests and fault drills do, and what the gateway reports for each.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use assetgw::{
    core::proto::{
        RegistryKind, RegistryStatus, SearchQuery, SearchRequest, SearchResponse,
        asset_search_service_client::AssetSearchServiceClient,
        mock::{Faults, GetFaultsRequest, SetFaultsRequest, mock_admin_service_client::MockAdminServiceClient},
    },
    ops::config::BreakerConfig,
    ops::config::{CallsConfig, RegistryConfig},
};
use tonic::{Code, transport::Channel};

use crate::harness::*;

fn admin(stack: &Stack, name: &str) -> MockAdminServiceClient<Channel> {
    let endpoint = stack.registries.iter().find(|r| r.name == name).unwrap().endpoint.clone();
    MockAdminServiceClient::new(registry_channel(&endpoint, name))
}

async fn set(stack: &Stack, name: &str, faults: Faults) {
    admin(stack, name).set_faults(SetFaultsRequest { faults: Some(faults), reset: false }).await.unwrap();
}

/// A search that asks every registry afresh.
async fn fresh_search(stack: &Stack) -> SearchResponse {
    let q = SearchQuery { max_age: Some(prost_types::Duration::default()), ..query(&[RICH]) };
    stack.search(q).await.unwrap()
}

async fn fresh_status(stack: &Stack, name: &str) -> RegistryStatus {
    status(outcome(&fresh_search(stack).await, 0, name))
}

#[tokio::test]
async fn down_hang_spike_and_errors_switch_on_and_off_at_run_time() {
    let regs =
        vec![Reg::new("bank-a", RegistryKind::Bank).timeout(300), Reg::new("realestate", RegistryKind::RealEstate)];
    let stack = Stack::start(regs).await;
    assert_eq!(fresh_status(&stack, "bank-a").await, RegistryStatus::Ok);

    set(&stack, "bank-a", Faults { down: true, ..Default::default() }).await;
    assert_eq!(fresh_status(&stack, "bank-a").await, RegistryStatus::Unavailable);

    set(&stack, "bank-a", Faults { hang: true, ..Default::default() }).await;
    assert_eq!(fresh_status(&stack, "bank-a").await, RegistryStatus::Timeout);

    let spike = Some(prost_types::Duration::try_from(Duration::from_secs(2)).unwrap());
    set(&stack, "bank-a", Faults { spike_rate: 1.0, spike, ..Default::default() }).await;
    assert_eq!(fresh_status(&stack, "bank-a").await, RegistryStatus::Timeout);

    set(&stack, "bank-a", Faults { error_rate: 1.0, error_code: "internal".into(), ..Default::default() }).await;
    assert_eq!(fresh_status(&stack, "bank-a").await, RegistryStatus::Error);

    set(&stack, "bank-a", Faults { latency: "uniform:1ms..3ms".into(), ..Default::default() }).await;
    assert_eq!(fresh_status(&stack, "bank-a").await, RegistryStatus::Ok);
    let now = admin(&stack, "bank-a").get_faults(GetFaultsRequest {}).await.unwrap().into_inner().faults.unwrap();
    assert_eq!((now.latency.as_str(), now.error_code.as_str(), now.down), ("uniform:1ms..3ms", "unavailable", false));
    assert_eq!(fresh_status(&stack, "realestate").await, RegistryStatus::Ok, "other registries untouched");
}

#[tokio::test]
async fn bad_faults_are_refused_naming_each_field() {
    let stack = Stack::start(standard()).await;
    let bad =
        Faults { latency: "gauss:1ms".into(), error_rate: 2.0, error_code: "teapot".into(), ..Default::default() };
    let err =
        admin(&stack, "bank-a").set_faults(SetFaultsRequest { faults: Some(bad), reset: false }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for field in ["latency:", "error_rate:", "error_code:"] {
        assert!(err.message().contains(field), "{}", err.message());
    }
}

#[tokio::test]
async fn the_mock_faults_command_changes_only_what_it_names_and_resets_to_the_configuration() {
    let mut regs = standard();
    regs.retain(|r| r.name != "ip");
    regs.push(Reg::new("ip", RegistryKind::Ip).latency("fixed:5ms"));
    let stack = Stack::start(regs).await;
    let endpoint = stack.registries.iter().find(|r| r.name == "ip").unwrap().endpoint.clone();
    let faults = |args: &[&str]| {
        let args: Vec<String> =
            ["mock-faults", "--target", &endpoint, "--name", "ip"].iter().chain(args).map(|a| a.to_string()).collect();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_assetgw"))
                    .args(args)
                    .env("ASSETGW_PKI", test_pki())
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let down = faults(&["--down"]).await;
    assert!(down.contains("latency fixed:5ms") && down.contains("down true"), "readable, the rest kept: {down}");
    assert!(!down.contains("MockConfig") && !down.contains('{'), "no debug struct: {down}");
    assert_eq!(fresh_status(&stack, "ip").await, RegistryStatus::Unavailable);
    let up = faults(&["--down", "false"]).await;
    assert!(up.contains("latency fixed:5ms") && up.contains("down false"), "{up}");
    assert_eq!(fresh_status(&stack, "ip").await, RegistryStatus::Ok);
    let slow = faults(&["--latency", "fixed:50ms", "--error-rate", "0.5"]).await;
    assert!(slow.contains("latency fixed:50ms") && slow.contains("error_rate 0.5"), "{slow}");
    let reset = faults(&["--reset"]).await;
    assert!(
        reset.contains("latency fixed:5ms") && reset.contains("error_rate 0 "),
        "back to its configuration: {reset}"
    );
}

#[tokio::test]
async fn a_failing_registry_trips_its_breaker_then_is_used_again_when_it_returns() {
    let cool_down = Duration::from_secs(1);
    let stack = Stack::with(standard(), |c| c.calls.breaker = Some(BreakerConfig { failures: 3, cool_down })).await;
    stack.mock("bank-a").set_down(true);
    let (started, mut open) = (tokio::time::Instant::now(), 0);
    for _ in 0..12 {
        let o = outcome(&fresh_search(&stack).await, 0, "bank-a").clone();
        assert_eq!(status(&o), RegistryStatus::Unavailable, "every search still answers, bank-a unavailable");
        open += u64::from(o.message.contains("circuit open"));
    }
    // Three failed searches open it (each may retry once, within the retry budget);
    // after that only one probe per cool-down reaches bank-a.
    let probes = started.elapsed().as_millis() as u64 / cool_down.as_millis() as u64;
    let asking = 12 - open;
    assert!((3..=3 + probes).contains(&asking), "{asking} searches asked bank-a in {:?}", started.elapsed());
    let calls = stack.calls("bank-a");
    assert!((asking..=2 * asking).contains(&calls), "{calls} calls for {asking} searches");

    stack.mock("bank-a").set_down(false);
    let back = tokio::time::Instant::now();
    while status(outcome(&fresh_search(&stack).await, 0, "bank-a")) != RegistryStatus::Ok {
        assert!(back.elapsed() < Duration::from_secs(3), "bank-a is used again within the cool-down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(outcome(&fresh_search(&stack).await, 0, "bank-a")), RegistryStatus::Ok);
}

#[tokio::test]
async fn a_registry_refusing_one_request_does_not_trip_its_breaker() {
    let stack = Stack::with(standard(), |c| {
        c.calls.breaker = Some(BreakerConfig { failures: 2, cool_down: Duration::from_secs(60) })
    })
    .await;
    let refuse = Faults { error_rate: 1.0, error_code: "invalid_argument".into(), ..Faults::default() };
    set(&stack, "bank-a", refuse).await;
    for _ in 0..5 {
        fresh_search(&stack).await;
    }
    assert_eq!(stack.calls("bank-a"), 5, "INVALID_ARGUMENT is about the request, not the registry's health");
}

#[tokio::test]
async fn an_unreachable_registry_is_asked_again_within_the_retry_budget() {
    let stack =
        Stack::with(standard(), |c| c.calls.breaker = Some(BreakerConfig { failures: 100, ..Default::default() }))
            .await;
    // Half the calls fail UNAVAILABLE, as a flapping registry does.
    set(&stack, "bank-a", Faults { error_rate: 0.5, error_code: "unavailable".into(), ..Faults::default() }).await;
    let mut ok = 0;
    for _ in 0..40 {
        ok += usize::from(status(outcome(&fresh_search(&stack).await, 0, "bank-a")) == RegistryStatus::Ok);
    }
    let calls = stack.calls("bank-a");
    // Some failures were asked again, within the budget: 10% of calls plus a reserve of one a second over 10 s.
    assert!(calls > 40, "{calls} calls for 40 searches");
    assert!(calls <= 40 + 4 + 10 + 2, "{calls} calls: beyond the retry budget");
    assert!(ok >= 10, "{ok} of 40 searches found bank-a");
}

#[tokio::test]
async fn a_slow_attempt_is_hedged_within_the_hedge_budget() {
    let stack = Stack::with(standard(), |c| {
        (c.calls.hedge_budget, c.calls.hedge_percentile) = (Some(0.5), Some(0.5));
    })
    .await;
    // bank-a answers in 5 ms, but a fifth of its answers take 400 ms longer.
    let spike = Some(prost_types::Duration { seconds: 0, nanos: 400_000_000 });
    let slow = Faults { latency: "fixed:5ms".into(), spike_rate: 0.2, spike, ..Faults::default() };
    set(&stack, "bank-a", slow).await;
    for _ in 0..60 {
        assert_eq!(status(outcome(&fresh_search(&stack).await, 0, "bank-a")), RegistryStatus::Ok);
    }
    let calls = stack.calls("bank-a");
    assert!(calls > 60, "slow first attempts got a second one: {calls} calls for 60 searches");
    assert!(calls <= 60 + 30, "never beyond the hedge budget: {calls}");
}

/// What searches saw of one registry while they ran.
#[derive(Default)]
struct Seen {
    /// (when the search started, when it ended, the registry's status, its message)
    outcomes: Vec<(tokio::time::Instant, tokio::time::Instant, RegistryStatus, String)>,
    /// Searches that failed as a whole.
    failed: Vec<tonic::Status>,
}

/// `workers` courts searching back to back until `stop`, each for its own debtor and asking every registry afresh.
fn load(
    url: String,
    registry: &'static str,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Seen>> {
    (0..workers)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            // Distinct debtors, so no two workers' registry calls are shared (single flight).
            let debtor = assetgw::tools::loadgen::random_resident_id(&mut rand::rng());
            tokio::spawn(async move {
                let mut client = AssetSearchServiceClient::new(Courts::new(&url));
                let mut seen = Seen::default();
                while !stop.load(Ordering::SeqCst) {
                    let q = SearchQuery { max_age: Some(prost_types::Duration::default()), ..query(&[&debtor]) };
                    let started = tokio::time::Instant::now();
                    match client.search(as_court(&q.case_number.clone(), SearchRequest { query: Some(q) })).await {
                        Ok(r) => {
                            let o = outcome(r.get_ref(), 0, registry);
                            seen.outcomes.push((started, tokio::time::Instant::now(), status(o), o.message.clone()));
                        }
                        Err(e) => seen.failed.push(e),
                    }
                }
                seen
            })
        })
        .collect()
}

async fn gather(workers: Vec<tokio::task::JoinHandle<Seen>>) -> Seen {
    let mut all = Seen::default();
    for w in workers {
        let seen = w.await.unwrap();
        all.outcomes.extend(seen.outcomes);
        all.failed.extend(seen.failed);
    }
    all.outcomes.sort_by_key(|o| o.1);
    all
}

#[tokio::test]
async fn a_registry_killed_under_load_is_reported_unavailable_then_used_again() {
    let port = free_port().await;
    let mut bank = Process::mock_registry("bank-a", RegistryKind::Bank, port).await;
    let regs = standard().into_iter().filter(|r| r.name != "bank-a").collect();
    let cool_down = Duration::from_millis(500);
    let stack = Stack::with(regs, |c| {
        c.registries.push(RegistryConfig {
            calls: CallsConfig { breaker: Some(BreakerConfig { failures: 3, cool_down }), ..CallsConfig::default() },
            ..RegistryConfig::new("bank-a", RegistryKind::Bank, bank.url.clone())
        })
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(stack.url.clone(), "bank-a", 6, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    bank.kill();
    let killed = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarting = tokio::time::Instant::now();
    let mut bank = Process::mock_registry("bank-a", RegistryKind::Bank, port).await;
    let back = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = gather(workers).await;
    bank.kill();

    assert!(seen.failed.is_empty(), "every search answers: {:?}", seen.failed);
    assert!(
        seen.outcomes.iter().filter(|o| o.1 < killed).all(|o| o.2 == RegistryStatus::Ok),
        "bank-a answered while up"
    );
    // Searches made entirely while bank-a was dead.
    let dead: Vec<_> = seen.outcomes.iter().filter(|o| o.0 > killed && o.1 < restarting).collect();
    assert!(dead.len() >= 10, "searches went on while bank-a was dead: {}", dead.len());
    assert!(dead.iter().all(|o| o.2 == RegistryStatus::Unavailable), "killed bank-a is UNAVAILABLE");
    assert!(dead.iter().any(|o| o.3.contains("circuit open")), "its breaker opened");
    let recovered = seen.outcomes.iter().find(|o| o.0 > back && o.2 == RegistryStatus::Ok).map(|o| o.1 - back);
    assert!(recovered.is_some_and(|d| d < Duration::from_secs(2)), "used again within the cool-down: {recovered:?}");
    assert_eq!(seen.outcomes.last().unwrap().2, RegistryStatus::Ok);
}

#[tokio::test]
async fn a_hung_registry_holds_no_search_and_no_memory() {
    let stack = Stack::start(standard()).await;
    set(&stack, "bank-a", Faults { hang: true, ..Faults::default() }).await;
    // The breaker never opens here, so every search meets the hung registry: its
    // calls time out, and beyond 4 in flight they are not even made.
    let calls = "[search]\ndeadline = \"2s\"\n[calls]\ntimeout = \"200ms\"\nconcurrency = 4\nbreaker = { failures = 1000000 }\n";
    let ledger = format!("sqlite://{}", scratch().join("gateway.db").display());
    let gateway = Process::serve_with(&stack.registries, &ledger, calls).await;
    let mut rss = Vec::new();
    let mut seen = Seen::default();
    for _ in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(gateway.url.clone(), "bank-a", 16, stop.clone());
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::SeqCst);
        let round = gather(workers).await;
        seen.outcomes.extend(round.outcomes);
        seen.failed.extend(round.failed);
        rss.push(rss_kib(gateway.id()));
    }
    assert!(seen.failed.is_empty(), "no search waits for the hung registry past its deadline: {:?}", seen.failed);
    let timeouts = seen.outcomes.iter().filter(|o| o.2 == RegistryStatus::Timeout).count();
    let shed = seen.outcomes.iter().filter(|o| o.3.contains("4 searches already in flight")).count();
    assert_eq!(timeouts + shed, seen.outcomes.len(), "each search either timed out on bank-a or did not wait for it");
    assert!(timeouts > 0 && shed > 0, "{timeouts} timed out, {shed} shed");
    // Memory after the first round is the working set; the next rounds, with as many failures again, add nothing to speak of.
    let growth = rss[2].saturating_sub(rss[0]);
    assert!(growth < 4096, "RSS grew {growth} KiB over {} searches (per round: {rss:?} KiB)", seen.outcomes.len());
    eprintln!("hung registry: {} searches, RSS per round {rss:?} KiB", seen.outcomes.len());
}

/// Issue 31, item 7: a mock keeps its tickets, answers and reference counter in its data directory,
/// as a real registry would: after a restart its tickets are still known and its references go on.
#[tokio::test]
async fn a_mock_remembers_its_tickets_and_references_across_a_restart() {
    use assetgw::{
        core::proto::{
            ControlOrder, GetAnswerRequest, SearchAssetsRequest, SeizeRequest,
            registry_service_client::RegistryServiceClient,
        },
        ops::pki::Role,
        tools::mock::{self, MockConfig, MockRegistry},
    };
    let dir = scratch().join("mocks");
    let settings = MockConfig { deferred: Some("1h..2h".parse().unwrap()), ..MockConfig::default() };
    let start = || async {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let registry = MockRegistry::new("bank-a", RegistryKind::Bank, settings.clone()).unwrap().kept_in(&dir);
        let tls = tls_of(Role::Registry("bank-a".into()));
        let (addr, task) = mock::spawn(registry, "127.0.0.1:0".parse().unwrap(), Some(tls), async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        (RegistryServiceClient::new(registry_channel(&format!("https://{addr}"), "bank-a")), stop, task)
    };
    let seize = |key: &str| SeizeRequest {
        order: Some(ControlOrder { idempotency_key: key.into(), asset_id: "102:1".into(), ..Default::default() }),
        amount: 1,
        ..Default::default()
    };
    let (mut client, stop, task) = start().await;
    let search = SearchAssetsRequest { debtor: Some(debtor(RICH)), accept_deferred: true, ..Default::default() };
    let ticket = client.search_assets(search).await.unwrap().into_inner().deferred.unwrap().ticket;
    let first = client.seize(seize("k-1")).await.unwrap().into_inner().registry_reference;
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    let (mut client, _stop, _task) = start().await;
    let asked = client.get_answer(GetAnswerRequest { ticket: ticket.clone() }).await;
    assert!(asked.is_ok(), "the ticket is known after the restart: {asked:?}");
    let again = client.seize(seize("k-1")).await.unwrap().into_inner().registry_reference;
    assert_eq!(again, first, "a repeated order gets its first answer after the restart");
    let next = client.seize(seize("k-2")).await.unwrap().into_inner().registry_reference;
    assert_ne!(next, first, "a new seizure gets a new reference: the counter was kept");
}
