//! The gateway's metrics, one registry per gateway, served as Prometheus text
//! on `server.metrics_listen` (`GET /metrics`). Names are defined here only.

use std::{net::SocketAddr, time::Duration};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::ops::net::{BindError, bind};

/// Latency buckets in seconds: a cached search is about a millisecond, a slow registry seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric of one gateway.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Court calls by method and gRPC code answered.
    pub requests: IntCounterVec,
    /// Court call latency by method.
    pub request_seconds: HistogramVec,
    /// Registry calls by registry and outcome (`ok`, `timeout`, `unavailable`, `error`, `invalid_response`, `circuit_open`, `shed`).
    pub registry_calls: IntCounterVec,
    /// Registry call latency by registry (calls made, not refused by the breaker).
    pub registry_seconds: HistogramVec,
    /// Answer-cache lookups by result (`hit`, `miss`, `coalesced`).
    pub cache_lookups: IntCounterVec,
    /// Circuit-breaker state changes by registry and new state (`open`, `half_open`, `closed`).
    pub breaker_changes: IntCounterVec,
    /// Searches asked again of an unreachable registry, by registry (within the retry budget).
    pub retries: IntCounterVec,
    /// Second attempts started because the first was slow, by registry (within the hedge budget).
    pub hedges: IntCounterVec,
    /// Calls refused at the door because too many were in flight.
    pub shed: IntCounter,
    /// Sockets closed before they were served, by reason (`limit`, `handshake`, `preface`).
    pub connections_refused: IntCounterVec,
    /// Times Redis could not be asked and this replica went on alone, by use (`rate`, `daily_searches`, `cache`).
    pub shared_fallbacks: IntCounterVec,
    /// Control orders delivered to registries, by registry and result (`acknowledged`, `failed`).
    pub orders: IntCounterVec,
    /// Control orders not yet acknowledged, by registry.
    pub outbox_backlog: IntGaugeVec,
    /// Age of the oldest unacknowledged control order, by registry (0 when none).
    pub outbox_oldest_seconds: GaugeVec,
    /// Connections to registries open now (opened on demand, closed when idle).
    pub registry_connections: IntGauge,
    /// Registries in the directory now (enabled ones, configured and from the directory file).
    pub directory_registries: IntGauge,
    /// Reloads of the registry directory file, by result (`applied`, `refused`).
    pub directory_reloads: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new_custom(Some("assetgw".into()), None)?;
        let shed = IntCounter::new("shed_total", "Calls refused at once because too many were in flight")?;
        r.register(Box::new(shed.clone()))?;
        Ok(Self {
            requests: counter(&r, "requests_total", "Court calls by method and gRPC code", &["method", "code"])?,
            request_seconds: histogram(&r, "request_seconds", "Court call latency", &["method"])?,
            registry_calls: counter(&r, "registry_calls_total", "Registry calls by outcome", &["registry", "outcome"])?,
            registry_seconds: histogram(&r, "registry_seconds", "Registry call latency", &["registry"])?,
            cache_lookups: counter(&r, "cache_lookups_total", "Answer-cache lookups by result", &["result"])?,
            breaker_changes: counter(&r, "breaker_changes_total", "Breaker state changes", &["registry", "state"])?,
            retries: counter(&r, "retries_total", "Searches retried, by registry", &["registry"])?,
            hedges: counter(&r, "hedges_total", "Hedged second attempts, by registry", &["registry"])?,
            orders: counter(&r, "orders_total", "Control orders delivered, by result", &["registry", "result"])?,
            connections_refused: counter(&r, "connections_refused_total", "Sockets closed unserved", &["reason"])?,
            shared_fallbacks: counter(&r, "shared_fallbacks_total", "Redis unreachable: went on alone", &["use"])?,
            outbox_backlog: {
                let g = IntGaugeVec::new(
                    Opts::new("outbox_backlog", "Control orders not yet acknowledged"),
                    &["registry"],
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            outbox_oldest_seconds: {
                let opts = Opts::new("outbox_oldest_seconds", "Age of the oldest unacknowledged control order");
                let g = GaugeVec::new(opts, &["registry"])?;
                r.register(Box::new(g.clone()))?;
                g
            },
            registry_connections: gauge(&r, "registry_connections", "Connections to registries open now")?,
            directory_registries: gauge(&r, "directory_registries", "Registries in the directory now")?,
            directory_reloads: counter(&r, "directory_reloads_total", "Directory file reloads", &["result"])?,
            shed,
            registry: r,
        })
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
