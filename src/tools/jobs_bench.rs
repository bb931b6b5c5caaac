//! `assetgw bench-jobs`: opens many searches whose registries answer later,
//! at a fixed rate, through a running gateway; follows every k-th with
//! `WatchSearch` and measures how long after each registry's answer was
//! ready (the `ask_after` of its ticket, as the search's reply gave it) the
//! answer reached the court's watch stream.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet, time::Instant};

use crate::{
    core::{
        clock::{Clock, SystemClock},
        proto::{
            RegistryStatus, SearchQuery, SearchRequest, SearchResponse, WatchSearchRequest,
            asset_search_service_client::AssetSearchServiceClient, debtor, time_of,
        },
    },
    tools::{
        client::{ClientError, GatewayConnection},
        loadgen::random_resident_id,
    },
};

/// The case every search is made under.
const CASE: &str = "（2024）京0105执1234号";
/// Searches being opened at once, at most.
const IN_FLIGHT: usize = 256;

/// How to drive it.
#[derive(Debug, Clone)]
pub struct JobsPlan {
    /// Searches to open.
    pub searches: usize,
    /// Searches opened per second.
    pub rate: f64,
    /// Follow every this-many-th search.
    pub watch_every: usize,
    /// How long to wait for the followed searches to settle after the last is opened.
    pub settle: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct JobsReport {
    /// Searches opened.
    pub searches: u64,
    /// Seconds taken to open them.
    pub open_s: f64,
    /// Registry answers pending in the replies (each a ticket the gateway keeps).
    pub pending: u64,
    /// Searches refused or failed.
    pub failed: u64,
    /// Pending answers of the followed searches that reached the watch stream.
    pub watched: u64,
    /// Pending answers of the followed searches that had not arrived at the end.
    pub missing: u64,
    /// Time from ready (ask_after) to the watch stream, milliseconds: p50, p90, p99, max.
    pub delay_ms: HashMap<&'static str, f64>,
    /// Seconds from the last search opened until the followed searches settled or the settle time ran out.
    pub settle_s: f64,
}

impl JobsReport {
    /// The report for people.
    pub fn text(&self) -> String {
        let d = |k: &str| self.delay_ms.get(k).copied().unwrap_or(0.0);
        format!(
            "opened {} searches in {:.1} s ({} failed), {} registry answers pending\n\
             followed: {} answers arrived, {} did not; ready → watch stream p50 {:.0} ms, p90 {:.0} ms, \
             p99 {:.0} ms, max {:.0} ms; last {:.1} s after the last search",
            self.searches,
            self.open_s,
            self.failed,
            self.pending,
            self.watched,
            self.missing,
            d("p50"),
            d("p90"),
            d("p99"),
            d("max"),
            self.settle_s
        )
    }
}

/// A run under way: where to call, and what it has counted and is following.
struct Run {
    client: AssetSearchServiceClient<tonic::transport::Channel>,
    connection: Arc<GatewayConnection>,
    court: Arc<String>,
    every: usize,
    pending: u64,
    failed: u64,
    /// Each followed answer's delay as it arrives (a search may stay open past the run).
    delays: Arc<Mutex<Vec<u64>>>,
    /// Pending answers of the followed searches.
    followed: u64,
    watching: JoinSet<()>,
}

/// Runs `plan` against the gateway of `connection`, as court 京0105.
pub async fn run(connection: &GatewayConnection, plan: &JobsPlan) -> Result<JobsReport, ClientError> {
    let (channel, court) = connection.channel(Some(CASE)).await?;
    let mut run = Run {
        client: AssetSearchServiceClient::new(channel),
        connection: Arc::new(connection.clone()),
        court: Arc::new(court),
        every: plan.watch_every.max(1),
        pending: 0,
        failed: 0,
        delays: Arc::default(),
        followed: 0,
        watching: JoinSet::new(),
    };
    let room = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut opening = JoinSet::new();
    let every = Duration::from_secs_f64(1.0 / plan.rate.max(0.001));
    let started = Instant::now();
    for n in 0..plan.searches {
        tokio::time::sleep_until(started + every.mul_f64(n as f64)).await;
        let permit = room.clone().acquire_owned().await.map_err(|_| ClientError::Usage("closed".into()))?;
        let (mut client, connection, court) = (run.client.clone(), run.connection.clone(), run.court.clone());
        opening.spawn(async move {
            let _permit = permit;
            let id = random_resident_id(&mut rand::rng());
            let person = crate::core::proto::Debtor { id: Some(debtor::Id::ResidentId(id)), ..Default::default() };
            let query = SearchQuery { case_number: CASE.into(), debtors: vec![person], ..Default::default() };
            let request = connection.request(&court, SearchRequest { query: Some(query) }).ok()?;
            client.search(request).await.ok().map(|r| (n, r.into_inner()))
        });
        while let Some(done) = opening.try_join_next() {
            run.tally(done.ok().flatten());
        }
    }
    while let Some(done) = opening.join_next().await {
        run.tally(done.ok().flatten());
    }
    let opened = started.elapsed();
    // Milliseconds, up to a day; a later answer counts as a day.
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 86_400_000, 3).map_err(|e| ClientError::Usage(e.to_string()))?;
    // Until the followed searches settle, or the settle time is up.
    let deadline = Instant::now() + plan.settle;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, run.watching.join_next()).await {}
    let delays = std::mem::take(&mut *run.delays.lock().unwrap_or_else(PoisonError::into_inner));
    let watched = delays.len() as u64;
    for d in delays {
        histogram.saturating_record(d);
    }
    let missing = run.followed.saturating_sub(watched);
    let settle_s = (started.elapsed() - opened).as_secs_f64();
    let delay_ms = ["p50", "p90", "p99"]
        .into_iter()
        .zip([50.0, 90.0, 99.0])
        .map(|(k, q)| (k, histogram.value_at_quantile(q / 100.0) as f64))
        .chain([("max", histogram.max() as f64)])
        .collect();
    Ok(JobsReport {
        searches: plan.searches as u64,
        open_s: opened.as_secs_f64(),
        pending: run.pending,
        failed: run.failed,
        watched,
        missing,
        delay_ms,
        settle_s,
    })
}

impl Run {
    /// Counts a search's reply and starts following it if it is the `every`-th.
    fn tally(&mut self, done: Option<(usize, SearchResponse)>) {
        let Some((n, reply)) = done else {
            self.failed += 1;
            return;
        };
        let ready: HashMap<String, chrono::DateTime<chrono::Utc>> = reply
            .debtors
            .iter()
            .flat_map(|d| &d.registries)
            .filter(|o| o.status == RegistryStatus::Pending as i32)
            .filter_map(|o| Some((o.registry.clone(), time_of(o.next_ask.as_ref()?))))
            .collect();
        self.pending += ready.len() as u64;
        if ready.is_empty() || n % self.every != 0 {
            return;
        }
        self.followed += ready.len() as u64;
        let (mut client, connection, court) = (self.client.clone(), self.connection.clone(), self.court.clone());
        let delays = self.delays.clone();
        self.watching.spawn(async move {
            let watch = WatchSearchRequest { search_id: reply.search_id, after_sequence: 0 };
            let Ok(request) = connection.request(&court, watch) else { return };
            let Ok(stream) = client.watch_search(request).await else { return };
            let mut stream = stream.into_inner();
            while let Some(Ok(update)) = stream.next().await {
                let registry = update.answer.and_then(|a| a.outcome).map(|o| o.registry).unwrap_or_default();
                if let Some(at) = ready.get(&registry) {
                    let delay = (SystemClock.now() - *at).num_milliseconds().max(0) as u64;
                    delays.lock().unwrap_or_else(PoisonError::into_inner).push(delay);
                }
            }
        });
    }
}
