//! `assetgw ledger bench`: ledger placements per second against a database,
//! with one writer or many, beside the disk's own fsync rate measured in the
//! same run (the ceiling for a durable commit per step without batching).

use std::{
    io::Write,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::{
    core::clock::{Clock, SystemClock, Time},
    core::{identifiers::CaseNumber, proto::AssetKind},
    ledger::{
        command::{Command, RequestKey},
        rules::{Asset, Terms},
        store::Store,
    },
    tools::ToolError,
};

/// A synthetic placement of one unit on an indivisible asset of `registry`, as the benchmarks make them.
pub fn placement(request_id: &str, asset_id: String, registry: &str, case: CaseNumber, at: Time) -> Command {
    Command::Place {
        debtor_key: String::new(),
        request: RequestKey::of("京0105", "bench", request_id, &[]),
        asset: Asset {
            kind: AssetKind::RealEstate,
            asset_id,
            registry: registry.into(),
            debtor: "bench".into(),
            unit: String::new(),
            total: 1,
            sale_started: false,
            disposed: false,
            total_at: at,
        },
        case,
        amount: 1,
        claim: None,
        emergency: String::new(),
        secured: Vec::new(),
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Concurrent writers.
    pub concurrency: usize,
    /// Placements made.
    pub ops: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency percentiles (p50, p99) in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
}

impl BenchReport {
    /// Placements per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Places `ops` seizures from `concurrency` writers on 256 synthetic assets.
pub async fn placements(url: &str, concurrency: usize, ops: u64) -> Result<BenchReport, ToolError> {
    let store = Store::open(url, Arc::new(SystemClock), Terms::default()).await?;
    // Fresh assets and request ids per run, so runs on one database do not meet.
    let run = SystemClock.micros();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (store, next) = (store.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).map_err(|e| ToolError::Failed(format!("histogram: {e}")))?;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= ops {
                    return Ok::<_, ToolError>(hist);
                }
                let case = CaseNumber::parse(&format!("（2024）京0105执{}号", n + 1)).map_err(ToolError::Failed)?;
                let asset_id = format!("BENCH{run}-{}", n % 256);
                let t = Instant::now();
                store.execute(placement(&format!("bench-{run}-{n}"), asset_id, "bench", case, store.now())).await?;
                let _ = hist.record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
        }));
    }
    let mut all = Histogram::<u64>::new(3).map_err(|e| ToolError::Failed(format!("histogram: {e}")))?;
    for w in workers {
        let h = w.await.map_err(|e| ToolError::Failed(format!("a bench worker stopped: {e}")))??;
        let _ = all.add(h);
    }
    Ok(BenchReport {
        concurrency,
        ops,
        elapsed: started.elapsed(),
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
    })
}

/// Durable 4 KiB writes per second (write + fdatasync) in `dir`, for `duration`.
pub fn fsync_rate(dir: &Path, duration: Duration) -> std::io::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(rate)
}
