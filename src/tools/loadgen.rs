//! `assetgw loadgen`: drives a gateway (or the registries directly) and
//! reports like ghz: count, total, rate, fastest/average/slowest, percentiles
//! from an HDR histogram, and the distribution of status codes.
//!
//! Closed loop (`concurrency` callers, each sending when its last call
//! returned) finds the peak rate; open loop (`rate` calls per second on a fixed
//! schedule, whatever the answers do) measures latency at a given load. The
//! schedule never waits for answers, so a server's queueing shows in full in
//! each call's time from when it was sent; how late the generator itself sent
//! (its threads share a CPU) is reported apart, as `late_p99_ms`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::join_all;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;
use tonic::{Code, transport::Channel};

use crate::{
    core::identifiers,
    core::proto::{
        AssetKind, Debtor, PlaceSeizureRequest, SearchQuery, SearchRequest, SearchStreamRequest,
        asset_search_service_client::AssetSearchServiceClient, debtor, seizure_service_client::SeizureServiceClient,
    },
    registry::{call::Inquiry, client::Registry},
    tools::client::{ClientError, GatewayConnection},
};

/// What each call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// A search of a new random valid debtor each time: every registry is asked.
    Miss,
    /// A search of the same debtor each time, answered from the cache after warm-up.
    Hit,
    /// A streaming search of a new random debtor.
    Stream,
    /// Placing a waiting seizure on one real-estate unit, each call for a new case.
    Seizure,
    /// No gateway: the load generator asks every configured registry itself, as the gateway would.
    Direct,
    /// The gateway's `grpc.health.v1` check: the same server and TLS with no work, the ceiling.
    Echo,
}

/// How to drive the load.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The scenario.
    pub scenario: Scenario,
    /// Closed loop: this many callers. Ignored when `rate` is set.
    pub concurrency: usize,
    /// Open loop: calls per second.
    pub rate: Option<f64>,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time first (connections, caches, JIT-free but still warm-up).
    pub warmup: Duration,
    /// HTTP/2 connections to spread calls over.
    pub connections: usize,
    /// Deadline of each call.
    pub timeout: Duration,
    /// `miss`: draw each call's debtor from this many fixed debtors (the same
    /// in every process, so replicas driven apart search the same people)
    /// instead of a new one per call.
    pub debtors: Option<usize>,
}

/// A finished run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The scenario.
    pub scenario: Scenario,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Calls measured.
    pub count: u64,
    /// Measured seconds.
    pub total_s: f64,
    /// Calls per second (all answers).
    pub rps: f64,
    /// Successful calls per second.
    pub ok_rps: f64,
    /// Latency in milliseconds: fastest, average, slowest, p50, p90, p99, p99.9.
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Answers by gRPC code.
    pub status: BTreeMap<String, u64>,
    /// p99 latency of the calls refused with RESOURCE_EXHAUSTED (ms), if any were.
    pub refused_p99_ms: Option<f64>,
    /// Open loop: p99 of how late calls were sent after they were due (ms); the generator's own lag.
    pub late_p99_ms: Option<f64>,
    /// The load generator's own CPU time over the measured window (ms; Linux): with `direct`,
    /// what asking the registries costs without a gateway.
    pub cpu_ms: Option<f64>,
}

/// This process's CPU time so far, user and system, in milliseconds (Linux: `/proc/self/stat`).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name: utime and stime are the 12th and 13th, in ticks of 1/100 s.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

impl LoadReport {
    /// The report for people.
    pub fn text(&self) -> String {
        let l = |k: &str| self.latency_ms.get(k).copied().unwrap_or(0.0);
        let mut out = format!(
            "Summary ({:?}, {} loop):\n  Count:\t{}\n  Total:\t{:.2} s\n  Requests/sec:\t{:.1} ({:.1} OK)\n  \
             Fastest:\t{:.2} ms\n  Average:\t{:.2} ms\n  Slowest:\t{:.2} ms\n\nLatency distribution:\n",
            self.scenario,
            self.mode,
            self.count,
            self.total_s,
            self.rps,
            self.ok_rps,
            l("fastest"),
            l("average"),
            l("slowest")
        );
        for p in ["p50", "p90", "p99", "p99.9"] {
            out += &format!("  {p:<6}\t{:.2} ms\n", l(p));
        }
        out += "\nStatus code distribution:\n";
        for (code, n) in &self.status {
            out += &format!("  [{code}]\t{n} responses\n");
        }
        out
    }
}

/// A random valid resident ID: a Beijing district, a real birth date, the right check character.
pub fn random_resident_id(rng: &mut impl Rng) -> String {
    let body = format!(
        "1101{:02}{}{:02}{:02}{:03}",
        rng.random_range(1..20),
        rng.random_range(1950..2005),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..1000)
    );
    let check = identifiers::resident_id_check(body.as_bytes()) as char;
    format!("{body}{check}")
}

fn person(id: String) -> Debtor {
    Debtor { id: Some(debtor::Id::ResidentId(id)), ..Default::default() }
}

const CASE: &str = "（2024）京0105执1号";
/// The demo debtor with many assets, searched by the cache-hit and seizure scenarios.
const KNOWN: &str = "110105199001011232";

/// What one call needs, shared by every caller.
struct Target {
    connection: GatewayConnection,
    channels: Vec<Channel>,
    registries: Vec<Arc<Registry>>,
    flat: String,
    serial: std::sync::atomic::AtomicU64,
    /// The fixed debtors `miss` draws from; empty for a new one per call.
    pool: Vec<String>,
}

impl Target {
    /// `message` as court 京0105's, with the call's deadline.
    fn request<T>(&self, message: T, timeout: Duration) -> Result<tonic::Request<T>, tonic::Status> {
        let mut request =
            self.connection.request("京0105", message).map_err(|e| tonic::Status::internal(e.to_string()))?;
        request.set_timeout(timeout);
        Ok(request)
    }

    async fn call(&self, scenario: Scenario, n: usize, timeout: Duration) -> Code {
        // Direct calls have no gateway channels; every other scenario has at least one.
        let channel = || self.channels[n % self.channels.len()].clone();
        let outcome = match scenario {
            Scenario::Miss | Scenario::Hit => {
                let id = match scenario {
                    Scenario::Hit => KNOWN.to_string(),
                    _ if self.pool.is_empty() => random_resident_id(&mut rand::rng()),
                    _ => self.pool[rand::rng().random_range(0..self.pool.len())].clone(),
                };
                let query = SearchQuery { case_number: CASE.into(), debtors: vec![person(id)], ..Default::default() };
                match self.request(SearchRequest { query: Some(query) }, timeout) {
                    Ok(request) => AssetSearchServiceClient::new(channel()).search(request).await.map(|_| ()),
                    Err(status) => Err(status),
                }
            }
            Scenario::Stream => {
                let query = SearchQuery {
                    case_number: CASE.into(),
                    debtors: vec![person(random_resident_id(&mut rand::rng()))],
                    ..Default::default()
                };
                match self.request(SearchStreamRequest { query: Some(query) }, timeout) {
                    Ok(request) => match AssetSearchServiceClient::new(channel()).search_stream(request).await {
                        Ok(stream) => drain(stream.into_inner()).await,
                        Err(status) => Err(status),
                    },
                    Err(status) => Err(status),
                }
            }
            Scenario::Seizure => {
                let k = self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let place = PlaceSeizureRequest {
                    request_id: format!("loadgen-{}-{k}", std::process::id()),
                    case_number: format!("（2024）京0105执{}号", 100_000 + k),
                    debtor: Some(person(KNOWN.into())),
                    asset_kind: AssetKind::RealEstate as i32,
                    asset_id: self.flat.clone(),
                    ..Default::default()
                };
                match self.request(place, timeout) {
                    Ok(request) => SeizureServiceClient::new(channel()).place_seizure(request).await.map(|_| ()),
                    Err(status) => Err(status),
                }
            }
            Scenario::Echo => {
                let check = tonic_health::pb::HealthCheckRequest { service: String::new() };
                tonic_health::pb::health_client::HealthClient::new(channel()).check(check).await.map(|_| ())
            }
            Scenario::Direct => {
                let caller = Arc::new(Inquiry::new(CASE.into(), "京0105".into()));
                let debtor = person(random_resident_id(&mut rand::rng()));
                let legs = self.registries.iter().map(|r| r.search_once(debtor.clone(), caller.clone()));
                let failed = join_all(legs).await.into_iter().any(|r| r.is_err());
                if failed { Err(tonic::Status::unavailable("a registry failed")) } else { Ok(()) }
            }
        };
        outcome.map_or_else(|s| s.code(), |()| Code::Ok)
    }
}

async fn drain(mut stream: tonic::Streaming<crate::core::proto::SearchStreamResponse>) -> Result<(), tonic::Status> {
    while stream.message().await?.is_some() {}
    Ok(())
}

/// Measurements of the calls that finished inside the measured window.
#[derive(Default)]
struct Tally {
    histogram: Option<Histogram<u64>>,
    refused: Option<Histogram<u64>>,
    late: Option<Histogram<u64>>,
    status: BTreeMap<String, u64>,
    ok: u64,
}

impl Tally {
    fn add(&mut self, code: Code, took: Duration, late: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Some(h) = &mut self.late {
            let _ = h.record(u64::try_from(late.as_micros()).unwrap_or(u64::MAX).max(1));
        }
        if let Some(h) = &mut self.histogram {
            let _ = h.record(us);
        }
        if let (Code::ResourceExhausted, Some(h)) = (code, &mut self.refused) {
            let _ = h.record(us);
        }
        *self.status.entry(format!("{code:?}")).or_default() += 1;
        self.ok += u64::from(code == Code::Ok);
    }
}

/// Runs `plan` against the gateway of `connection` (or, for [`Scenario::Direct`], against `registries`).
pub async fn run(
    plan: &LoadPlan,
    connection: GatewayConnection,
    registries: Vec<Arc<Registry>>,
) -> Result<LoadReport, ClientError> {
    let mut channels = Vec::new();
    if plan.scenario != Scenario::Direct {
        for _ in 0..plan.connections.max(1) {
            channels.push(connection.channel(Some(CASE)).await?.0);
        }
    }
    let flat =
        if plan.scenario == Scenario::Seizure { first_flat(&connection, &channels[0]).await? } else { String::new() };
    let mut seeded = rand_chacha::ChaCha8Rng::seed_from_u64(15);
    let pool = (0..plan.debtors.unwrap_or(0)).map(|_| random_resident_id(&mut seeded)).collect();
    let serial = std::sync::atomic::AtomicU64::new(0);
    let target = Arc::new(Target { connection, channels, registries, flat, serial, pool });
    let histogram = Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| ClientError::Usage(e.to_string()))?;
    let tally = Arc::new(Mutex::new(Tally {
        refused: Some(histogram.clone()),
        late: Some(histogram.clone()),
        histogram: Some(histogram),
        ..Tally::default()
    }));
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let cpu_from = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        cpu_ms()
    });
    let record = {
        let tally = tally.clone();
        // A call counts when it was due inside the measured window, however late it answers: an overloaded
        // gateway's slow answers are part of the result, not cut off at the window's end.
        move |due: Instant, sent: Instant, code: Code| {
            let now = Instant::now();
            if due >= measure_from && due < end {
                if let Ok(mut t) = tally.lock() {
                    t.add(code, now - sent, sent - due);
                }
            }
        }
    };
    match plan.rate {
        None => {
            let callers = (0..plan.concurrency.max(1)).map(|n| {
                let (target, record) = (target.clone(), record.clone());
                let (scenario, timeout) = (plan.scenario, plan.timeout);
                tokio::spawn(async move {
                    while Instant::now() < end {
                        let due = Instant::now();
                        let code = target.call(scenario, n, timeout).await;
                        record(due, due, code);
                    }
                })
            });
            join_all(callers).await;
        }
        Some(rate) => {
            // The schedule runs on a thread of its own, sleeping to each call's due time: tokio's timer
            // rounds to the millisecond and shares its thread with the answers.
            let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let runtime = tokio::runtime::Handle::current();
            let (scenario, timeout) = (plan.scenario, plan.timeout);
            let schedule = tokio::task::spawn_blocking(move || {
                let mut calls = Vec::new();
                let (mut due, mut n) = (start, 0);
                while due < end {
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let (target, record) = (target.clone(), record.clone());
                    calls.push(runtime.spawn(async move {
                        let sent = Instant::now();
                        let code = target.call(scenario, n, timeout).await;
                        record(due, sent, code);
                    }));
                    (due, n) = (due + every, n + 1);
                }
                calls
            });
            let calls = schedule.await.map_err(|e| ClientError::Usage(format!("the schedule stopped: {e}")))?;
            join_all(calls).await;
        }
    }
    let cpu = cpu_ms().zip(cpu_from.await.ok().flatten()).map(|(to, from)| to - from);
    let tally = tally.lock().map_err(|_| ClientError::Usage("tally lock poisoned".into()))?;
    let h = tally.histogram.as_ref().ok_or_else(|| ClientError::Usage("no histogram".into()))?;
    let ms = |us: u64| us as f64 / 1e3;
    let total_s = plan.duration.as_secs_f64();
    let latency_ms = BTreeMap::from([
        ("fastest", ms(h.min())),
        ("average", h.mean() / 1e3),
        ("slowest", ms(h.max())),
        ("p50", ms(h.value_at_quantile(0.5))),
        ("p90", ms(h.value_at_quantile(0.9))),
        ("p99", ms(h.value_at_quantile(0.99))),
        ("p99.9", ms(h.value_at_quantile(0.999))),
    ]);
    Ok(LoadReport {
        scenario: plan.scenario,
        mode: if plan.rate.is_some() { "open" } else { "closed" },
        count: h.len(),
        total_s,
        rps: h.len() as f64 / total_s,
        ok_rps: tally.ok as f64 / total_s,
        latency_ms,
        status: tally.status.clone(),
        refused_p99_ms: tally.refused.as_ref().filter(|r| !r.is_empty()).map(|r| ms(r.value_at_quantile(0.99))),
        late_p99_ms: plan.rate.and(tally.late.as_ref()).map(|l| ms(l.value_at_quantile(0.99))),
        cpu_ms: cpu,
    })
}

/// The known debtor's first real-estate unit, which the seizure scenario seizes again and again.
async fn first_flat(connection: &GatewayConnection, channel: &Channel) -> Result<String, ClientError> {
    let query = SearchQuery { case_number: CASE.into(), debtors: vec![person(KNOWN.into())], ..Default::default() };
    let request = connection.request("京0105", SearchRequest { query: Some(query) })?;
    let response = AssetSearchServiceClient::new(channel.clone()).search(request).await?.into_inner();
    response
        .debtors
        .first()
        .and_then(|d| d.assets.iter().find(|a| a.kind == AssetKind::RealEstate as i32))
        .map(|a| a.asset_id.clone())
        .ok_or_else(|| ClientError::Usage("the demo debtor has no real estate at this gateway's registries".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_debtors_are_valid() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let id = random_resident_id(&mut rng);
            identifiers::parse_resident_id(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }
}
