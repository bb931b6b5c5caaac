//! Faults across features (issue 25): registries that are down, hung,
//! answering later, answering later with a clock behind ours, or answering
//! more than the gateway takes, × the shared answer tier (off, on, Redis
//! down, Redis hung, a tampered value) × one or two replicas over one
//! PostgreSQL database × `Search`, `SearchStream` and `SubmitSearch`. In every
//! cell the same invariants hold: the court's call answers before its
//! deadline with every registry's state, no ticket is asked sooner than the
//! poller's floor, and the daily quota holds within its documented bound.
//!
//! CI runs every faulty registry at once in one network; with
//! `ASSETGW_FULL_MATRIX=1` each fault also runs alone.

use std::{collections::BTreeMap, time::Duration};

use assetgw::core::proto::{
    GetSearchRequest, RegistryStatus, SearchQuery, SearchRequest, SearchStreamRequest, SubmitSearchRequest,
    asset_search_service_client::AssetSearchServiceClient, search_stream_response::Event,
};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::{
    harness::*,
    spawned::{Process, Redis},
};

/// The court's deadline, each registry's timeout, and the daily quota, in every cell.
const DEADLINE: Duration = Duration::from_secs(6);
const QUOTA: usize = 3;
/// The least time between two asks of one ticket.
const FLOOR: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tier {
    Off,
    On,
    RedisDown,
    RedisHung,
    Tampered,
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Search,
    SearchStream,
    SubmitSearch,
}

/// What a faulty registry does, and the statuses a court may see for it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Down,
    Hung,
    Later,
    ClockBehind,
    Oversized,
}

impl Fault {
    const ALL: [Fault; 5] = [Fault::Down, Fault::Hung, Fault::Later, Fault::ClockBehind, Fault::Oversized];

    /// The registry of the standard network that carries this fault.
    fn registry(self) -> &'static str {
        match self {
            Fault::Down => "bank-a",
            Fault::Hung => "realestate",
            Fault::Later => "bank-b",
            Fault::ClockBehind => "ip",
            Fault::Oversized => "securities",
        }
    }

    fn apply(self, r: &mut Reg) {
        match self {
            Fault::Down => r.mock.down = true,
            Fault::Hung => r.mock.hang = true,
            Fault::Later => r.mock.deferred = Some("30s..60s".parse().unwrap()),
            Fault::ClockBehind => {
                r.mock.deferred = Some("30s..60s".parse().unwrap());
                r.mock.clock_behind = Duration::from_secs(3600);
            }
            Fault::Oversized => r.mock.answer_bytes = 5 * 1024 * 1024,
        }
    }

    /// The statuses this fault may show: a failing registry's breaker may open (then it is not asked).
    fn statuses(self) -> &'static [RegistryStatus] {
        match self {
            Fault::Down => &[RegistryStatus::Unavailable],
            Fault::Hung => &[RegistryStatus::Timeout, RegistryStatus::Unavailable],
            Fault::Later | Fault::ClockBehind => &[RegistryStatus::Pending],
            Fault::Oversized => &[RegistryStatus::InvalidResponse, RegistryStatus::Unavailable],
        }
    }
}

/// The standard network with `faults` applied.
fn network(faults: &[Fault]) -> Vec<Reg> {
    let mut regs = standard();
    for f in faults {
        f.apply(regs.iter_mut().find(|r| r.name == f.registry()).unwrap());
    }
    regs
}

/// Each registry's status for the first debtor of one result.
type Statuses = BTreeMap<String, RegistryStatus>;

fn statuses(outcomes: &[assetgw::core::proto::RegistryOutcome]) -> Statuses {
    outcomes.iter().map(|o| (o.registry.clone(), status(o))).collect()
}

/// Whether `seen` shows every registry, each faulty one in a state its fault allows and the rest OK.
fn holds(seen: &Statuses, faults: &[Fault]) -> Result<(), String> {
    for r in standard() {
        let allowed =
            faults.iter().find(|f| f.registry() == r.name).map_or(&[RegistryStatus::Ok][..], |f| f.statuses());
        match seen.get(r.name) {
            Some(s) if allowed.contains(s) => {}
            other => return Err(format!("{}: {other:?}, expected one of {allowed:?}; all: {seen:?}", r.name)),
        }
    }
    Ok(())
}

/// One search through `method` as the court of `case`: every registry's status, or the call's error.
async fn ask(p: &Process, method: Method, case: &str, n: usize, faults: &[Fault]) -> Result<Statuses, tonic::Status> {
    let mut client = AssetSearchServiceClient::new(p.channel());
    let q = Some(SearchQuery { case_number: case.into(), ..query(&[RICH]) });
    match method {
        Method::Search => {
            let reply = client.search(as_court(case, SearchRequest { query: q })).await?.into_inner();
            Ok(statuses(&reply.debtors[0].registries))
        }
        Method::SearchStream => {
            let mut stream = client.search_stream(as_court(case, SearchStreamRequest { query: q })).await?.into_inner();
            while let Some(event) = stream.next().await {
                if let Some(Event::Summary(summary)) = event?.event {
                    return Ok(statuses(&summary.debtors[0].registries));
                }
            }
            Err(tonic::Status::internal("the stream ended without its summary"))
        }
        Method::SubmitSearch => {
            let request_id = format!("matrix-{n}");
            let submitted = client.submit_search(as_court(case, SubmitSearchRequest { request_id, query: q })).await?;
            let id = submitted.into_inner().search_id;
            // The legs settle as the registries answer; the hung one after its timeout.
            let started = Instant::now();
            loop {
                let got = client.get_search(as_court(case, GetSearchRequest { search_id: id.clone() })).await?;
                let seen = statuses(&got.into_inner().result.unwrap().debtors[0].registries);
                if holds(&seen, faults).is_ok() || started.elapsed() > DEADLINE {
                    return Ok(seen);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Replaces every sealed value and call outcome in Redis with garbage.
async fn tamper(redis: &Redis) -> usize {
    let mut conn = redis::Client::open(redis.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("assetgw:*").query_async(&mut conn).await.unwrap();
    let sealed: Vec<&String> =
        keys.iter().filter(|k| k.starts_with("assetgw:cache:") || k.starts_with("assetgw:flight:")).collect();
    for key in &sealed {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(b"\x00garbage, or another debtor's value")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    sealed.len()
}

/// The most answered searches of one court a day: exact with the tier's counter or the database's,
/// per replica without Redis.
fn quota_bound(tier: Tier, replicas: usize) -> usize {
    if tier == Tier::Off { QUOTA * replicas } else { QUOTA }
}

/// One group of cells: the network with `faults`, the tier as `tier`, `replicas` gateways; each
/// method searches as a court of its own until its quota is used.
async fn cells(faults: &[Fault], tier: Tier, replicas: usize) -> Option<()> {
    // One group at a time: each starts gateway processes and a Redis, and the rest of the suite
    // (whose deadlines are real) shares the machine's two cores with them.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(network(faults)).await;
    let mut redis = match tier {
        Tier::Off => None,
        _ => Some(Redis::start().await?),
    };
    let url = ledger_url(Db::Postgres).await?;
    let mut extra = format!(
        "[search]\ndeadline = \"{}s\"\n[calls]\ntimeout = \"1s\"\nattempt_timeout = \"1s\"\n\
         [limits]\nrate = 100000\nburst = 100000\ndaily_searches = {QUOTA}\n",
        DEADLINE.as_secs()
    );
    if let Some(r) = &redis {
        extra += &format!("[shared]\nredis = \"{}\"\ntimeout = \"200ms\"\n", r.url);
    }
    let mut gateways = Vec::new();
    for _ in 0..replicas {
        gateways.push(Process::serve_with(&stack.registries, &url, &extra).await);
    }
    match (tier, redis.as_mut()) {
        (Tier::RedisDown, Some(r)) => r.stop(),
        (Tier::RedisHung, Some(r)) => r.pause(),
        (Tier::Tampered, Some(r)) => {
            ask(&gateways[0], Method::Search, "（2024）京0108执9号", 0, faults).await.unwrap();
            assert!(tamper(r).await > 0, "the priming search left sealed values to tamper with");
        }
        _ => {}
    }
    let cell = format!("faults {faults:?}, tier {tier:?}, {replicas} replica(s)");
    let (started, asked_before) = (Instant::now(), stack.calls("ip"));
    let methods = [(Method::Search, "京0101"), (Method::SearchStream, "京0102"), (Method::SubmitSearch, "京0106")];
    let mut row = Vec::new();
    for (method, court) in methods {
        let case = format!("（2024）{court}执1号");
        let (mut answered, mut slowest) = (0, Duration::ZERO);
        for n in 0..=quota_bound(tier, replicas) {
            let began = Instant::now();
            match ask(&gateways[n % replicas], method, &case, n, faults).await {
                Ok(seen) => {
                    holds(&seen, faults).unwrap_or_else(|e| panic!("{cell}, {method:?} #{n}: {e}"));
                    assert!(began.elapsed() < DEADLINE, "{cell}, {method:?} #{n}: answered after the deadline");
                    (answered, slowest) = (answered + 1, slowest.max(began.elapsed()));
                }
                Err(e) if e.code() == Code::ResourceExhausted && n >= QUOTA => break,
                Err(e) => panic!("{cell}, {method:?} #{n}: the whole call failed: {e:?}"),
            }
        }
        assert!(answered >= QUOTA, "{cell}, {method:?}: only {answered} answered within a quota of {QUOTA}");
        assert!(answered <= quota_bound(tier, replicas), "{cell}, {method:?}: {answered} answered, over the quota");
        row.push(format!("{method:?} {answered} answered, slowest {} ms", slowest.as_millis()));
    }
    if faults.contains(&Fault::ClockBehind) {
        // Each search asks the registry at most once and makes at most one ticket; each ticket is
        // asked again no sooner than the floor.
        let searches = u64::try_from(methods.len() * (quota_bound(tier, replicas) + 2)).unwrap();
        let floor_bound = searches * (2 + started.elapsed().as_millis() as u64 / FLOOR.as_millis() as u64);
        let asked = stack.calls("ip") - asked_before;
        assert!(asked <= floor_bound, "{cell}: a registry with its clock behind asked {asked} times");
        row.push(format!("clock-behind registry asked {asked} times (bound {floor_bound})"));
    }
    // The matrix's result table (shown with --nocapture).
    eprintln!("matrix | {cell} | {}", row.join(" | "));
    Some(())
}

/// The networks to run: every fault at once, and with `ASSETGW_FULL_MATRIX=1` each alone too.
fn networks() -> Vec<Vec<Fault>> {
    let mut out = vec![Fault::ALL.to_vec()];
    if std::env::var("ASSETGW_FULL_MATRIX").is_ok_and(|v| v == "1") {
        out.extend(Fault::ALL.iter().map(|f| vec![*f]));
    }
    out
}

async fn tier(tier: Tier) {
    for faults in networks() {
        for replicas in [1, 2] {
            if cells(&faults, tier, replicas).await.is_none() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn fault_matrix_shared_tier_off() {
    tier(Tier::Off).await;
}

#[tokio::test]
async fn fault_matrix_shared_tier_on() {
    tier(Tier::On).await;
}

#[tokio::test]
async fn fault_matrix_redis_down() {
    tier(Tier::RedisDown).await;
}

#[tokio::test]
async fn fault_matrix_redis_hung() {
    tier(Tier::RedisHung).await;
}

#[tokio::test]
async fn fault_matrix_a_tampered_shared_value() {
    tier(Tier::Tampered).await;
}

/// Two replicas sharing Redis over `regs`; each search of one registry times out after 1 s.
async fn pair(stack: &Stack, redis: &Redis, limits: &str) -> Option<[Process; 2]> {
    let url = ledger_url(Db::Postgres).await?;
    let extra = format!(
        "[search]\ndeadline = \"{}s\"\n[calls]\ntimeout = \"1s\"\nattempt_timeout = \"1s\"\n\
         [shared]\nredis = \"{}\"\ntimeout = \"200ms\"\n{limits}",
        DEADLINE.as_secs(),
        redis.url
    );
    Some([
        Process::serve_with(&stack.registries, &url, &extra).await,
        Process::serve_with(&stack.registries, &url, &extra).await,
    ])
}

/// One search; its statuses and how long it took.
async fn timed(p: &Process, faults: &[Fault]) -> (Statuses, Duration) {
    let began = Instant::now();
    let seen = ask(p, Method::Search, CASE, 0, faults).await.unwrap_or_else(|e| panic!("a whole search failed: {e:?}"));
    (seen, began.elapsed())
}

/// A search on each replica at once; each one's statuses and how long it took.
async fn both(replicas: &[Process; 2], faults: &[Fault]) -> [(Statuses, Duration); 2] {
    let (a, b) = tokio::join!(timed(&replicas[0], faults), timed(&replicas[1], faults));
    [a, b]
}

#[tokio::test]
async fn item1_a_registry_failing_on_one_replica_fails_no_search_on_the_other() {
    for faults in [[Fault::Down], [Fault::Hung]] {
        let stack = Stack::start(network(&faults)).await;
        let Some(redis) = Redis::start().await else { return };
        let Some(replicas) = pair(&stack, &redis, "").await else { return };
        // One after the other (the second finds the first's outcome gone with its lease), then at once.
        for p in &replicas {
            let began = Instant::now();
            let seen = ask(p, Method::Search, CASE, 0, &faults).await.expect("no whole search fails");
            holds(&seen, &faults).unwrap();
            assert!(began.elapsed() < Duration::from_secs(3), "{faults:?}: {:?}", began.elapsed());
        }
        for (seen, took) in both(&replicas, &faults).await {
            holds(&seen, &faults).unwrap();
            assert!(took < Duration::from_secs(3), "{faults:?}: a waiter waited {took:?}, past the registry's timeout");
        }
    }
}

#[tokio::test]
async fn item2_a_registry_answering_later_leaves_both_replicas_pending_at_once() {
    let faults = [Fault::Later];
    let stack = Stack::start(network(&faults)).await;
    let Some(redis) = Redis::start().await else { return };
    let Some(replicas) = pair(&stack, &redis, "").await else { return };
    for _ in 0..2 {
        for (seen, took) in both(&replicas, &faults).await {
            holds(&seen, &faults).unwrap();
            assert!(took < Duration::from_secs(2), "a replica waited {took:?} for a ticket it could have shared");
        }
    }
}

#[tokio::test]
async fn item3_a_shared_value_failing_its_seal_is_a_miss_at_once() {
    let stack = Stack::start(standard()).await;
    let Some(redis) = Redis::start().await else { return };
    let Some(replicas) = pair(&stack, &redis, "").await else { return };
    ask(&replicas[0], Method::Search, CASE, 0, &[]).await.unwrap();
    assert!(tamper(&redis).await >= 6);
    for method in [Method::Search, Method::SearchStream] {
        let began = Instant::now();
        let seen = ask(&replicas[1], method, CASE, 0, &[]).await.expect("a tampered value fails no search");
        holds(&seen, &[]).unwrap();
        assert!(began.elapsed() < Duration::from_secs(2), "{method:?} took {:?}", began.elapsed());
    }
    assert_eq!(stack.calls("bank-a"), 2, "the tampered value was asked of the registry once, then shared again");
}

#[tokio::test]
async fn item4_the_quota_while_redis_is_down_or_hung_is_counted_in_the_database() {
    let limits = format!("[limits]\nrate = 100000\nburst = 100000\ndaily_searches = {}\n", 10);
    for hung in [false, true] {
        let stack = Stack::start(standard()).await;
        let Some(mut redis) = Redis::start().await else { return };
        let Some(replicas) = pair(&stack, &redis, &limits).await else { return };
        // Five searches counted in Redis, then Redis goes.
        for n in 0..5 {
            ask(&replicas[n % 2], Method::Search, CASE, n, &[]).await.unwrap();
        }
        if hung {
            redis.pause()
        } else {
            redis.stop()
        }
        // One at a time, alternating replicas: exactly the five left.
        let mut answered = 0;
        for n in 0..10 {
            answered += usize::from(ask(&replicas[n % 2], Method::Search, CASE, n, &[]).await.is_ok());
        }
        assert_eq!(answered, 5, "hung: {hung}");
        // A court with its quota untouched, 30 at once across both replicas: exactly 10.
        let case = "（2024）京0101执5号";
        let calls = (0..30).map(|n| ask(&replicas[n % 2], Method::Search, case, n, &[]));
        let codes: Vec<Code> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| r.map_or_else(|e| e.code(), |_| Code::Ok))
            .collect();
        assert_eq!(codes.iter().filter(|c| **c == Code::Ok).count(), 10, "hung: {hung}: {codes:?}");
        assert!(codes.iter().all(|c| matches!(c, Code::Ok | Code::ResourceExhausted)), "{codes:?}");
    }
}
