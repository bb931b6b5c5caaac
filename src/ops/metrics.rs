//! The gateway's metrics, one registry per gateway, served as Prometheus text
//! on `server.metrics_listen` (`GET /metrics`). Names are defined here only.

use std::{net::SocketAddr, time::Duration};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder, core::Collector,
};

use crate::ops::net::{BindError, bind};

/// Latency buckets in seconds: a cached search is about a millisecond, a slow registry seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Late-answer lag buckets in seconds: the poller looks every 50 ms, a registry's next round may be minutes.
const LAG_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Every metric of one gateway.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Every metric's full name, as `/metrics` shows it once it has a sample.
    names: Vec<String>,
    /// Court calls by method and gRPC code answered.
    pub requests: IntCounterVec,
    /// Court call latency by method.
    pub request_seconds: HistogramVec,
    /// Searches counted against each court's daily quota, by court.
    pub searches: IntCounterVec,
    /// Registry calls a shared re-search fan-out saved (R30): the same debtor asked once for many cases.
    pub research_calls_saved: IntCounter,
    /// Re-searches due that have not yet asked a registry (R30), by registry: those not started
    /// and their jobs' legs waiting for its rate or its breaker.
    pub research_backlog: IntGaugeVec,
    /// How long the oldest of them has waited, by registry (0 when none).
    pub research_lag_seconds: GaugeVec,
    /// Court calls refused because their audit record could not be written (R16).
    pub audit_failures: IntCounter,
    /// Registry calls by registry and outcome (`ok`, `timeout`, `unavailable`, `error`, `invalid_response`, `circuit_open`, `shed`).
    pub registry_calls: IntCounterVec,
    /// Registry call latency by registry (calls made, not refused by the breaker).
    pub registry_seconds: HistogramVec,
    /// Answer-cache lookups by result (`hit`, `miss`, `coalesced`).
    pub cache_lookups: IntCounterVec,
    /// Circuit-breaker state changes by registry and new state (`open`, `half_open`, `closed`).
    pub breaker_changes: IntCounterVec,
    /// 1 while a registry's breaker is not closed (open or probing), by registry.
    pub breaker_open: IntGaugeVec,
    /// Searches asked again of an unreachable registry, by registry (within the retry budget).
    pub retries: IntCounterVec,
    /// Second attempts started because the first was slow, by registry (within the hedge budget).
    pub hedges: IntCounterVec,
    /// Calls refused at the door because too many were in flight.
    pub shed: IntCounter,
    /// Sockets closed before they were served, by reason (`limit`, `handshake`, `preface`).
    pub connections_refused: IntCounterVec,
    /// Times Redis could not be asked and this replica went on alone, by use (`rate`, `daily_searches`, `cache`, `pace`).
    pub shared_fallbacks: IntCounterVec,
    /// Control orders delivered to registries, by registry and result (`acknowledged`, `failed`).
    pub orders: IntCounterVec,
    /// Control orders not yet acknowledged, by registry.
    pub outbox_backlog: IntGaugeVec,
    /// Age of the oldest unacknowledged control order, by registry (0 when none).
    pub outbox_oldest_seconds: GaugeVec,
    /// Late answers owed (tickets pending), by registry.
    pub tickets_pending: IntGaugeVec,
    /// Of those, the ones whose answer window ends within the hour, by registry.
    pub tickets_expiring: IntGaugeVec,
    /// From a registry's `ask_after` (its answer ready) to the answer recorded for the court's search.
    pub late_answer_lag_seconds: Histogram,
    /// Cross-court handovers, filings and disposal answers past their legal days (R13, R14).
    pub transfers_overdue: IntGauge,
    /// Seizures on bankrupt debtors' assets their courts did not lift within 7 days (R25).
    pub bankruptcy_lifts_overdue: IntGauge,
    /// When each certificate the gateway presents or trusts expires (Unix seconds), by certificate.
    pub certificate_expiry: GaugeVec,
    /// Broken invariants the ledger's last periodic verification found (0 when it holds).
    pub ledger_violations: IntGauge,
    /// Periodic ledger verifications by result (`held`, `broken`, `failed`).
    pub ledger_verifications: IntCounterVec,
    /// Connections to registries open now (opened on demand, closed when idle).
    pub registry_connections: IntGauge,
    /// Registries in the directory now (enabled ones, configured and from the directory file).
    pub directory_registries: IntGauge,
    /// Reloads of the registry directory file, by result (`applied`, `refused`).
    pub directory_reloads: IntCounterVec,
}

/// Prefix of every metric name.
const NAMESPACE: &str = "assetgw";

/// Registers metrics, noting each one's name.
struct Builder {
    registry: Registry,
    names: Vec<String>,
}

impl Builder {
    fn add<C: Collector + Clone + 'static>(&mut self, metric: C) -> Result<C, prometheus::Error> {
        self.names.extend(metric.desc().iter().map(|d| format!("{NAMESPACE}_{}", d.fq_name)));
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauges(&mut self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn histogram(&mut self, name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
        self.add(HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)?)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let mut b = Builder { registry: Registry::new_custom(Some(NAMESPACE.into()), None)?, names: Vec::new() };
        Ok(Self {
            requests: b.counter("requests_total", "Court calls by method and gRPC code", &["method", "code"])?,
            request_seconds: b.histogram("request_seconds", "Court call latency", &["method"])?,
            searches: b.counter("searches_total", "Searches counted against the daily quota", &["court"])?,
            research_calls_saved: b.add(IntCounter::new(
                "research_calls_saved_total",
                "Registry calls saved by asking a debtor once for the re-searches of several terminated cases (R30)",
            )?)?,
            research_backlog: b.gauges(
                "research_backlog",
                "Re-searches due not yet asked of a registry (R30), by registry",
                &["registry"],
            )?,
            research_lag_seconds: b.add(GaugeVec::new(
                Opts::new(
                    "research_lag_seconds",
                    "Age of the oldest re-search due not yet asked of a registry (R30), by registry",
                ),
                &["registry"],
            )?)?,
            audit_failures: b
                .add(IntCounter::new("audit_failures_total", "Calls refused: audit record not written")?)?,
            registry_calls: b.counter("registry_calls_total", "Registry calls by outcome", &["registry", "outcome"])?,
            registry_seconds: b.histogram("registry_seconds", "Registry call latency", &["registry"])?,
            cache_lookups: b.counter("cache_lookups_total", "Answer-cache lookups by result", &["result"])?,
            breaker_changes: b.counter("breaker_changes_total", "Breaker state changes", &["registry", "state"])?,
            breaker_open: b.gauges("breaker_open", "1 while a registry's breaker is not closed", &["registry"])?,
            retries: b.counter("retries_total", "Searches retried, by registry", &["registry"])?,
            hedges: b.counter("hedges_total", "Hedged second attempts, by registry", &["registry"])?,
            shed: b.add(IntCounter::new("shed_total", "Calls refused at once because too many were in flight")?)?,
            orders: b.counter("orders_total", "Control orders delivered, by result", &["registry", "result"])?,
            connections_refused: b.counter("connections_refused_total", "Sockets closed unserved", &["reason"])?,
            shared_fallbacks: b.counter("shared_fallbacks_total", "Redis unreachable: went on alone", &["use"])?,
            outbox_backlog: b.gauges("outbox_backlog", "Control orders not yet acknowledged", &["registry"])?,
            outbox_oldest_seconds: b.add(GaugeVec::new(
                Opts::new("outbox_oldest_seconds", "Age of the oldest unacknowledged control order"),
                &["registry"],
            )?)?,
            tickets_pending: b.gauges("tickets_pending", "Late answers owed, by registry", &["registry"])?,
            tickets_expiring: b.gauges(
                "tickets_expiring",
                "Late answers owed whose window ends within the hour",
                &["registry"],
            )?,
            late_answer_lag_seconds: b.add(Histogram::with_opts(
                HistogramOpts::new("late_answer_lag_seconds", "From a registry's answer ready to the court's search")
                    .buckets(LAG_BUCKETS.to_vec()),
            )?)?,
            transfers_overdue: b
                .add(IntGauge::new("transfers_overdue", "Handovers past their legal days (R13, R14)")?)?,
            bankruptcy_lifts_overdue: b.add(IntGauge::new(
                "bankruptcy_lifts_overdue",
                "Seizures on bankrupt debtors' assets not lifted by their courts within 7 days (R25)",
            )?)?,
            certificate_expiry: b.add(GaugeVec::new(
                Opts::new("certificate_expiry_timestamp_seconds", "When a certificate expires (Unix seconds)"),
                &["certificate"],
            )?)?,
            ledger_violations: b
                .add(IntGauge::new("ledger_violations", "Broken invariants at the last verification")?)?,
            ledger_verifications: b.counter(
                "ledger_verifications_total",
                "Ledger verifications by result",
                &["result"],
            )?,
            registry_connections: b
                .add(IntGauge::new("registry_connections", "Connections to registries open now")?)?,
            directory_registries: b.add(IntGauge::new("directory_registries", "Registries in the directory now")?)?,
            directory_reloads: b.counter("directory_reloads_total", "Directory file reloads", &["result"])?,
            names: b.names,
            registry: b.registry,
        })
    }

    /// Every metric's full name (`assetgw_…`), whether or not it has a sample yet.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Records one court call.
    pub fn request(&self, method: &str, code: tonic::Code, took: Duration) {
        self.requests.with_label_values(&[method, &format!("{code:?}")]).inc();
        self.request_seconds.with_label_values(&[method]).observe(took.as_secs_f64());
    }

    /// Everything, in the Prometheus text format.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics; an error leaves what was written.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Serves `GET /metrics` on `addr` until `shutdown` completes.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), BindError> {
        let listener = bind(addr).await?;
        let app = axum::Router::new().route("/metrics", axum::routing::get(move || async move { self.text() }));
        tracing::info!(%addr, "metrics (Prometheus text) listening");
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await });
        Ok(())
    }
}
