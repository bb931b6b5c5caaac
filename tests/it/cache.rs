//! The answer cache seen from outside: hits, misses, coalescing, expiry,
//! bypass, failures never cached, and fetches that outlive their caller.

use std::time::Duration;

use assetgw::core::proto::{RegistryKind, RegistryStatus, SearchQuery, SearchRequest};

use crate::harness::*;

fn fresh(max_age: Duration) -> SearchQuery {
    SearchQuery { max_age: Some(max_age.try_into().unwrap()), ..query(&[RICH]) }
}

#[tokio::test]
async fn a_repeated_search_is_answered_from_the_cache() {
    let stack = Stack::start(standard()).await;
    let first = stack.search(query(&[RICH])).await.unwrap();
    let second = stack.search(query(&[RICH])).await.unwrap();
    for name in ["bank-a", "realestate", "securities"] {
        assert_eq!(stack.calls(name), 1, "{name}");
        let (a, b) = (outcome(&first, 0, name), outcome(&second, 0, name));
        assert!(!a.from_cache && b.from_cache);
        assert_eq!(a.fetched_at, b.fetched_at, "a cached answer keeps its fetch time");
    }
    assert_eq!(first.debtors[0].assets, second.debtors[0].assets);
}

#[tokio::test]
async fn a_hundred_identical_cold_searches_make_one_call_per_registry() {
    let regs: Vec<Reg> = standard().into_iter().map(|r| r.latency("fixed:200ms")).collect();
    let stack = Stack::start(regs).await;
    let channel = stack.channel();
    let searches = (0..100).map(|_| {
        let mut client =
            assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(channel.clone());
        async move { client.search(SearchRequest { query: Some(query(&[RICH])) }).await.unwrap().into_inner() }
    });
    let results = futures::future::join_all(searches).await;
    for name in ["bank-a", "bank-b", "realestate", "ip", "aviation", "securities"] {
        assert_eq!(stack.calls(name), 1, "{name}");
    }
    assert!(results.iter().all(|r| r.debtors[0].assets == results[0].debtors[0].assets));
}

#[tokio::test]
async fn answers_expire_after_their_registrys_ttl() {
    let regs = vec![Reg::new("bank-a", RegistryKind::Bank).ttl(300), Reg::new("realestate", RegistryKind::RealEstate)];
    let stack = Stack::start(regs).await;
    stack.search(query(&[RICH])).await.unwrap();
    stack.clock.advance(chrono::Duration::milliseconds(250));
    let r = stack.search(query(&[RICH])).await.unwrap();
    assert!(outcome(&r, 0, "bank-a").from_cache, "within its TTL by the gateway's clock");
    stack.clock.advance(chrono::Duration::milliseconds(100));
    let r = stack.search(query(&[RICH])).await.unwrap();
    assert!(!outcome(&r, 0, "bank-a").from_cache, "bank answer expired");
    assert!(outcome(&r, 0, "realestate").from_cache, "real-estate answer lives an hour");
    assert_eq!((stack.calls("bank-a"), stack.calls("realestate")), (2, 1));
}

#[tokio::test]
async fn max_age_zero_bypasses_the_cache_and_refreshes_it() {
    let stack = Stack::start(standard()).await;
    stack.search(query(&[RICH])).await.unwrap();
    let r = stack.search(fresh(Duration::ZERO)).await.unwrap();
    assert!(r.debtors[0].registries.iter().all(|o| !o.from_cache));
    assert_eq!(stack.calls("bank-a"), 2);
    let r = stack.search(fresh(Duration::from_secs(3600))).await.unwrap();
    assert!(r.debtors[0].registries.iter().all(|o| o.from_cache));
    assert_eq!(stack.calls("bank-a"), 2);
}

#[tokio::test]
async fn failures_and_timeouts_are_never_cached() {
    let regs = vec![
        Reg::new("down", RegistryKind::Bank).down(),
        Reg::new("slow", RegistryKind::RealEstate).latency("fixed:2s").timeout(100),
    ];
    let stack = Stack::start(regs).await;
    for _ in 0..2 {
        let r = stack.search(query(&[RICH])).await.unwrap();
        assert_eq!(status(outcome(&r, 0, "down")), RegistryStatus::Unavailable);
        assert_eq!(status(outcome(&r, 0, "slow")), RegistryStatus::Timeout);
        assert!(!outcome(&r, 0, "down").from_cache);
    }
    // Each search asked afresh; an unreachable registry may be asked once more within the retry budget.
    assert!((2..=4).contains(&stack.calls("down")), "{}", stack.calls("down"));
    assert_eq!(stack.calls("slow"), 2, "a timeout is not retried: the time is spent");
}

#[tokio::test]
async fn a_fetch_completes_and_is_cached_after_its_caller_hangs_up() {
    let stack = Stack::start(vec![Reg::new("bank-a", RegistryKind::Bank).latency("fixed:300ms")]).await;
    let mut client = stack.client().await;
    let mut request = tonic::Request::new(SearchRequest { query: Some(query(&[RICH])) });
    request.set_timeout(Duration::from_millis(50));
    assert!(client.search(request).await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = stack.search(query(&[RICH])).await.unwrap();
    assert!(outcome(&r, 0, "bank-a").from_cache);
    assert_eq!(stack.calls("bank-a"), 1);
}
