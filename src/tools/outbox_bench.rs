//! `assetgw ledger bench-outbox`: how fast the outbox drains a backlog of
//! control orders to six mock registries answering at once, with one or more
//! sets of lanes (replicas) on one ledger, and how long the other registries'
//! orders wait while one registry hangs.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hdrhistogram::Histogram;
use tokio::{sync::watch, time::Instant};

use crate::{
    core::{
        clock::{SharedClock, SystemClock},
        identifiers::CaseNumber,
        proto::{AssetKind, RegistryKind},
    },
    gateway::outbox,
    ledger::{asset_key, rules::Terms, store::Store},
    ops::{
        config::{Config, RegistryConfig, TlsConfig},
        metrics::Metrics,
    },
    registry::network::Network,
    tools::{
        ToolError,
        ledger_bench::placement,
        mock::{self, MockConfig, MockRegistry},
    },
};

/// The registries orders go to; the IP office is the one that hangs.
const REGISTRIES: [(&str, RegistryKind); 6] = [
    ("bank-a", RegistryKind::Bank),
    ("bank-b", RegistryKind::Bank),
    ("realestate", RegistryKind::RealEstate),
    ("ip", RegistryKind::Ip),
    ("aviation", RegistryKind::Aviation),
    ("securities", RegistryKind::Securities),
];
const HUNG: &str = "ip";

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Drain {
    /// Orders delivered (the hung registry's excluded).
    pub delivered: u64,
    /// From starting the lanes to the last of them delivered.
    pub elapsed: Duration,
    /// Delivery delay (order made → acknowledged), p50 and p99, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl Drain {
    /// Orders delivered per second.
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// Fills the outbox with `orders` orders spread over the six registries, then
/// starts `replicas` sets of lanes (each with its own connections) and waits
/// until every healthy registry's orders are delivered. With `hung`, the IP
/// office never answers and orders keep arriving at `rate`/s while the lanes
/// run, so the delay of the others' orders is measured under a live hang.
pub async fn drain(url: &str, orders: u64, replicas: usize, hung: bool) -> Result<Drain, ToolError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let (stop, stopped) = watch::channel(());
    let until = |mut rx: watch::Receiver<()>| async move {
        let _ = rx.changed().await;
    };
    let mut registries = Vec::new();
    for (name, kind) in REGISTRIES {
        let mock = MockRegistry::new(name, kind, MockConfig { hang: hung && name == HUNG, ..MockConfig::default() })?;
        let (addr, _) = mock::spawn(mock, SocketAddr::from(([127, 0, 0, 1], 0)), None, until(stopped.clone())).await?;
        registries.push(RegistryConfig::new(name, kind, format!("http://{addr}")));
    }
    let config = Config { tls: TlsConfig { plaintext: true, ..TlsConfig::default() }, registries, ..Config::default() };
    let metrics = Metrics::new()?;
    let network = Arc::new(Network::new(&config, &metrics, clock.clone(), None)?);
    let store = Store::open(url, clock.clone(), Terms::default()).await?;
    let run = store.now().timestamp_micros();
    let case = CaseNumber::parse("（2024）京0105执1号").map_err(ToolError::Usage)?;
    let place = |n: u64| {
        let registry = REGISTRIES[usize::try_from(n % 6).unwrap_or(0)].0;
        placement(&format!("outbox-{run}-{n}"), format!("OUTBOX{run}-{n}"), registry, case.clone(), store.now())
    };
    // The backlog, placed 64 at a time.
    let backlog = if hung { orders / 10 } else { orders };
    let mut n = 0;
    while n < backlog {
        let batch: Vec<_> = (n..(n + 64).min(backlog)).map(|i| store.execute(place(i))).collect();
        for placed in futures::future::join_all(batch).await {
            placed?;
        }
        n += 64;
    }
    let started = Instant::now();
    let lanes_from = store.now().timestamp_micros();
    let mut lanes = Vec::new();
    for _ in 0..replicas.max(1) {
        let replica = Store::open(url, clock.clone(), Terms::default()).await?;
        let (network, metrics) = (network.clone(), metrics.clone());
        lanes.push(tokio::spawn(outbox::run(replica, network, metrics, until(stopped.clone()))));
    }
    // Under a hang, the rest of the orders arrive while the lanes run, 200 a second.
    if hung {
        while n < orders {
            store.execute(place(n)).await?;
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    loop {
        let backlogs = store.backlogs().await?;
        let pending: i64 = backlogs.iter().filter(|(name, _, _)| !(hung && name == HUNG)).map(|(_, n, _)| n).sum();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    for lane in lanes {
        let _ = lane.await;
    }
    let delivered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL AND asset_key LIKE $1")
            .bind(format!("{}%", asset_key(AssetKind::RealEstate, &format!("OUTBOX{run}-"))))
            .fetch_one(store.pool())
            .await?;
    // The delay of orders made while the lanes ran (none without a hang: the backlog waited by design).
    let delays: Vec<i64> = sqlx::query_scalar(
        "SELECT delivered_at - created_at FROM outbox WHERE delivered_at IS NOT NULL AND registry <> $1 \
         AND asset_key LIKE $2 AND created_at >= $3",
    )
    .bind(HUNG)
    .bind(format!("{}%", asset_key(AssetKind::RealEstate, &format!("OUTBOX{run}-"))))
    .bind(lanes_from)
    .fetch_all(store.pool())
    .await?;
    let mut histogram = Histogram::<u64>::new(3).map_err(|e| ToolError::Failed(e.to_string()))?;
    for d in &delays {
        let _ = histogram.record(u64::try_from(*d).unwrap_or(0));
    }
    Ok(Drain {
        delivered: u64::try_from(delivered).unwrap_or(0),
        elapsed,
        p50_ms: histogram.value_at_quantile(0.5) as f64 / 1e3,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1e3,
    })
}
