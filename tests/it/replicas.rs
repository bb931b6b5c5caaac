//! Replicas that share Redis: one daily search quota and one rate per court
//! across all of them, one registry call per debtor for all of them (with
//! nothing readable in Redis), and searches that go on when Redis is gone.

use assetgw::core::proto::{SearchRequest, asset_search_service_client::AssetSearchServiceClient};
use tonic::Code;

use crate::harness::*;

/// Two gateway processes over one PostgreSQL ledger sharing `redis`, with `limits` (TOML).
async fn replicas(stack: &Stack, redis: &Redis, limits: &str) -> Option<[Process; 2]> {
    let url = ledger_url(Db::Postgres).await?;
    // Redis is asked with room to spare: on a loaded machine a 200 ms operation was a replica going
    // alone (the fallback), where these tests look at what the replicas share.
    let extra = format!("[shared]\nredis = \"{}\"\ntimeout = \"1s\"\n{limits}", redis.url);
    Some([
        Process::serve_with(&stack.registries, &url, &extra).await,
        Process::serve_with(&stack.registries, &url, &extra).await,
    ])
}

/// `n` concurrent searches of `debtor` for 京0105, alternating between the replicas: the codes answered.
async fn searches(replicas: &[Process; 2], n: usize, debtor: &str) -> Vec<Code> {
    let calls = (0..n).map(|i| {
        let mut client = AssetSearchServiceClient::new(replicas[i % 2].channel());
        async move {
            let request = as_court(CASE, SearchRequest { query: Some(query(&[debtor])) });
            client.search(request).await.map_or_else(|s| s.code(), |_| Code::Ok)
        }
    });
    futures::future::join_all(calls).await
}

/// `n` searches at once over two fresh replicas with `limits`: how many were answered, and every code.
async fn answered(limits: &str, n: usize) -> Option<(usize, Vec<Code>)> {
    let stack = Stack::start(standard()).await;
    let redis = Redis::start().await?;
    let replicas = replicas(&stack, &redis, limits).await?;
    let codes = searches(&replicas, n, RICH).await;
    Some((codes.iter().filter(|c| **c == Code::Ok).count(), codes))
}

#[tokio::test]
async fn the_daily_search_quota_is_exact_across_replicas() {
    let limits = "[limits]\nrate = 100000\nburst = 100000\ndaily_searches = 10\n";
    let Some((allowed, codes)) = answered(limits, 40).await else { return };
    assert_eq!(allowed, 10, "{codes:?}");
    assert!(codes.iter().all(|c| matches!(c, Code::Ok | Code::ResourceExhausted)), "{codes:?}");
}

#[tokio::test]
async fn a_courts_rate_is_one_rate_across_replicas() {
    // Five at once, then one a second: the test's burst takes far less than that.
    let Some((allowed, codes)) = answered("[limits]\nrate = 1\nburst = 5\n", 20).await else { return };
    assert!((5..=6).contains(&allowed), "the burst of 5 is shared, at most one more refills: {codes:?}");
}

#[tokio::test]
async fn searches_go_on_when_redis_is_gone() {
    let stack = Stack::start(standard()).await;
    let Some(mut redis) = Redis::start().await else { return };
    let limits = "[limits]\nrate = 100000\nburst = 100000\ndaily_searches = 1000\n";
    let Some(replicas) = replicas(&stack, &redis, limits).await else { return };
    assert!(searches(&replicas, 10, RICH).await.iter().all(|c| *c == Code::Ok));
    redis.stop();
    // A debtor nobody has asked about: the shared cache is gone too, so the registries are asked.
    let codes = searches(&replicas, 20, NOBODY).await;
    assert!(codes.iter().all(|c| *c == Code::Ok), "each replica goes on alone while Redis is gone: {codes:?}");
    assert!(stack.calls("bank-a") >= 2, "each replica asked the registry itself");
}

#[tokio::test]
async fn replicas_ask_each_registry_once_per_debtor_and_redis_holds_nothing_readable() {
    let stack = Stack::start(standard()).await;
    let Some(redis) = Redis::start().await else { return };
    let Some(replicas) = replicas(&stack, &redis, "").await else { return };
    let codes = searches(&replicas, 100, RICH).await;
    assert!(codes.iter().all(|c| *c == Code::Ok), "{codes:?}");
    for r in &stack.registries {
        assert_eq!(stack.calls(&r.name), 1, "{}: 100 searches on two replicas, one registry call", r.name);
    }

    let mut client = AssetSearchServiceClient::new(replicas[0].channel());
    let request = as_court(CASE, SearchRequest { query: Some(query(&[RICH])) });
    let assets = client.search(request).await.unwrap().into_inner().debtors.remove(0).assets;
    let mut redis_conn =
        redis::Client::open(redis.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut redis_conn).await.unwrap();
    assert!(keys.iter().any(|k| k.starts_with("assetgw:cache:")), "{keys:?}");
    let mut everything = keys.join("\n").into_bytes();
    for key in keys.iter().filter(|k| k.starts_with("assetgw:cache:")) {
        let value: Vec<u8> = redis::cmd("GET").arg(key).query_async(&mut redis_conn).await.unwrap();
        everything.extend(value);
    }
    let text = String::from_utf8_lossy(&everything);
    assert!(!text.contains(RICH) && !text.contains(&RICH[..6]), "no debtor number in Redis");
    for a in &assets {
        let shown = a.asset_id.split(['#', ':']).next_back().unwrap();
        assert!(!text.contains(shown), "asset {} is readable in Redis", a.asset_id);
    }
}

#[tokio::test]
async fn a_designation_recorded_on_one_replica_stops_searches_on_the_other() {
    use assetgw::core::proto::{RecordDesignationRequest, seizure_service_client::SeizureServiceClient};
    let stack = Stack::start(standard()).await;
    let Some(url) = ledger_url(Db::Postgres).await else { return };
    let (one, two) = (Process::serve(&stack.registries, &url).await, Process::serve(&stack.registries, &url).await);
    let search = |p: &Process| {
        let mut client = AssetSearchServiceClient::new(p.channel());
        async move {
            let request = as_court(CASE, SearchRequest { query: Some(query(&[RICH])) });
            client.search(request).await.map(|_| ())
        }
    };
    search(&two).await.expect("the case's own court searches it");
    let designation = RecordDesignationRequest {
        request_id: "d-1".into(),
        case_number: CASE.into(),
        to_court_code: "粤0305".into(),
        decision_reference: "（2025）粤03执监12号".into(),
        decided_at: None,
    };
    SeizureServiceClient::new(one.channel()).record_designation(as_court(CASE, designation)).await.unwrap();
    let recorded = tokio::time::Instant::now();
    // The replica that recorded it refuses the next search at once; the other within its read model's bound.
    assert_eq!(search(&one).await.unwrap_err().code(), Code::PermissionDenied);
    let refused = loop {
        match search(&two).await {
            Err(e) if e.code() == Code::PermissionDenied => break recorded.elapsed(),
            other => assert!(other.is_ok(), "{other:?}"),
        }
        assert!(recorded.elapsed() < std::time::Duration::from_secs(2), "the other replica never heard of it");
    };
    eprintln!("the other replica refused the designated-away court {refused:?} after the designation");
}

#[tokio::test]
async fn a_hung_redis_costs_one_timeout_then_rests_for_a_second() {
    use assetgw::ops::shared::Shared;
    use std::time::Duration;
    use tokio::time::Instant;
    let Some(redis) = Redis::start().await else { return };
    let timeout = Duration::from_millis(200);
    let shared = Shared::new(&redis.url, timeout).unwrap();
    shared.get_all(&["probe"]).await.expect("Redis answers while it runs");
    redis.pause();
    let began = Instant::now();
    assert!(shared.get_all(&["probe"]).await.is_err());
    assert!(began.elapsed() >= timeout, "the first operation waits for its timeout");
    let began = Instant::now();
    for _ in 0..100 {
        assert!(shared.lease("lease:probe", timeout).await.is_err());
    }
    assert!(began.elapsed() < timeout, "a hundred operations while resting wait for nothing: {:?}", began.elapsed());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let began = Instant::now();
    assert!(shared.get_all(&["probe"]).await.is_err());
    assert!(began.elapsed() >= timeout, "after its rest Redis is asked again");
}
