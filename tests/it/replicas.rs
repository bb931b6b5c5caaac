//! Replicas that share Redis: one daily search quota and one rate per court
//! across all of them, and searches that go on when Redis is gone.

use assetgw::core::proto::{SearchRequest, asset_search_service_client::AssetSearchServiceClient};
use tonic::Code;

use crate::harness::*;

/// Two gateway processes over one PostgreSQL ledger sharing `redis`, with `limits` (TOML).
async fn replicas(stack: &Stack, redis: &Redis, limits: &str) -> Option<[Process; 2]> {
    let url = ledger_url(Db::Postgres).await?;
    let extra = format!("[shared]\nredis = \"{}\"\ntimeout = \"200ms\"\n{limits}", redis.url);
    Some([
        Process::serve_with(&stack.registries, &url, &extra).await,
        Process::serve_with(&stack.registries, &url, &extra).await,
    ])
}

/// `n` concurrent searches for 京0105, alternating between the replicas: the codes answered.
async fn searches(replicas: &[Process; 2], n: usize) -> Vec<Code> {
    let calls = (0..n).map(|i| {
        let mut client = AssetSearchServiceClient::new(replicas[i % 2].channel());
        async move {
            let request = as_court(CASE, SearchRequest { query: Some(query(&[RICH])) });
            client.search(request).await.map_or_else(|s| s.code(), |_| Code::Ok)
        }
    });
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn the_daily_search_quota_is_exact_across_replicas() {
    let stack = Stack::start(standard()).await;
    let Some(redis) = Redis::start().await else { return };
    let limits = "[limits]\nrate = 100000\nburst = 100000\ndaily_searches = 10\n";
    let Some(replicas) = replicas(&stack, &redis, limits).await else { return };
    let codes = searches(&replicas, 40).await;
    let allowed = codes.iter().filter(|c| **c == Code::Ok).count();
    assert_eq!(allowed, 10, "{codes:?}");
    assert!(codes.iter().all(|c| matches!(c, Code::Ok | Code::ResourceExhausted)), "{codes:?}");
}

#[tokio::test]
async fn a_courts_rate_is_one_rate_across_replicas() {
    let stack = Stack::start(standard()).await;
    let Some(redis) = Redis::start().await else { return };
    // Five at once, then one every ten seconds: the test's burst takes far less than that.
    let limits = "[limits]\nrate = 1\nburst = 5\n";
    let Some(replicas) = replicas(&stack, &redis, limits).await else { return };
    let codes = searches(&replicas, 20).await;
    let allowed = codes.iter().filter(|c| **c == Code::Ok).count();
    assert!((5..=6).contains(&allowed), "the burst of 5 is shared, at most one more refills: {codes:?}");
}

#[tokio::test]
async fn searches_go_on_when_redis_is_gone() {
    let stack = Stack::start(standard()).await;
    let Some(mut redis) = Redis::start().await else { return };
    let limits = "[limits]\nrate = 100000\nburst = 100000\ndaily_searches = 1000\n";
    let Some(replicas) = replicas(&stack, &redis, limits).await else { return };
    assert!(searches(&replicas, 10).await.iter().all(|c| *c == Code::Ok));
    redis.stop();
    let codes = searches(&replicas, 20).await;
    assert!(codes.iter().all(|c| *c == Code::Ok), "each replica counts on its own while Redis is gone: {codes:?}");
}
