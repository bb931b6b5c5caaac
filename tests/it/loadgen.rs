//! The load generator against a real stack: closed and open loop, every
//! scenario, and the direct (no gateway) mode; counts and codes must add up.

use std::{sync::Arc, time::Duration};

use assetgw::{
    core::clock::SystemClock,
    ops::metrics::Metrics,
    registry::network::Network,
    tools::client::GatewayConnection,
    tools::loadgen::{self, LoadPlan, Scenario},
};

use crate::harness::*;

fn connection(stack: &Stack) -> GatewayConnection {
    GatewayConnection {
        gateway: stack.url.clone(),
        court: None,
        officer: "loadgen".into(),
        pki: test_pki().to_path_buf(),
        cert: None,
    }
}

fn plan(scenario: Scenario, rate: Option<f64>) -> LoadPlan {
    LoadPlan {
        scenario,
        concurrency: 4,
        rate,
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(200),
        connections: 2,
        timeout: Duration::from_secs(5),
        debtors: None,
    }
}

#[tokio::test]
async fn every_scenario_reports_what_it_measured() {
    let stack = Stack::start(standard()).await;
    for scenario in [Scenario::Hit, Scenario::Miss, Scenario::Stream, Scenario::Seizure] {
        let report = loadgen::run(&plan(scenario, None), connection(&stack), Vec::new()).await.unwrap();
        assert!(report.count > 0, "{scenario:?}: {}", report.text());
        assert_eq!(report.status.get("Ok"), Some(&report.count), "{scenario:?}: {}", report.text());
        assert!(report.latency_ms["fastest"] <= report.latency_ms["p50"]);
        assert!(report.latency_ms["p50"] <= report.latency_ms["p99.9"]);
        assert!(report.latency_ms["p99.9"] <= report.latency_ms["slowest"]);
        assert_eq!(report.late_p99_ms, None, "a closed loop sends when its last call returned");
    }
}

#[tokio::test]
async fn misses_drawn_from_a_pool_ask_each_registry_once_per_debtor() {
    let stack = Stack::start(standard()).await;
    let pooled = LoadPlan { debtors: Some(3), ..plan(Scenario::Miss, None) };
    let report = loadgen::run(&pooled, connection(&stack), Vec::new()).await.unwrap();
    assert!(report.count > 20, "{}", report.text());
    // Every search after the first of each debtor is answered from the cache.
    let calls = stack.calls("bank-a");
    assert!((1..=3).contains(&calls), "{calls} calls for a pool of 3 debtors");
    // The pool is the same in every process, so another driver searches the same debtors.
    loadgen::run(&pooled, connection(&stack), Vec::new()).await.unwrap();
    assert_eq!(stack.calls("bank-a"), calls);
}

#[tokio::test]
async fn the_open_loop_keeps_its_schedule() {
    let stack = Stack::start(standard()).await;
    let report = loadgen::run(&plan(Scenario::Miss, Some(50.0)), connection(&stack), Vec::new()).await.unwrap();
    // 50 calls a second for 0.8 s measured, whatever the answers do.
    assert!((35..=45).contains(&report.count), "{}", report.text());
    assert_eq!(report.mode, "open");
    // Latency counts from each send; how late the generator sent is reported apart, and it kept its
    // schedule within a few of its 20 ms intervals.
    let late = report.late_p99_ms.expect("an open loop reports its own lateness");
    assert!(late < 100.0, "sent up to {late} ms late at p99");
}

#[tokio::test]
async fn direct_mode_asks_every_registry_without_a_gateway() {
    let stack = Stack::start(standard()).await;
    let network = Network::new(&stack.config, &Metrics::new().unwrap(), Arc::new(SystemClock), None).unwrap();
    let registries = network.registries();
    let before = stack.calls("bank-a");
    let report = loadgen::run(&plan(Scenario::Direct, None), connection(&stack), registries).await.unwrap();
    assert_eq!(report.status.get("Ok"), Some(&report.count), "{}", report.text());
    for name in ["bank-a", "realestate", "securities"] {
        assert!(stack.calls(name) >= report.count, "{name} asked on every call");
    }
    assert!(stack.calls("bank-a") > before);
}
