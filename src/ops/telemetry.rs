//! Logging and trace export set-up, and the names of spans, in one place so
//! dashboards and tests agree on them.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, filter::LevelFilter, fmt, prelude::*};

use crate::ops::config::{LogConfig, LogFormat};

/// Span names.
pub mod spans {
    /// One court request (Search or SearchStream).
    pub const SEARCH: &str = "search";
    /// One registry's part of a search for one debtor.
    pub const REGISTRY_LEG: &str = "registry_leg";
}

/// Installs the global subscriber: `RUST_LOG` when set, else the configured
/// filter; with `log.otlp_endpoint`, spans are exported over OTLP as well.
/// Returns the exporter's provider, to flush at exit. Call inside the runtime:
/// the OTLP client is a tonic client.
pub fn init(log: &LogConfig) -> Option<SdkTracerProvider> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let provider = log.otlp_endpoint.as_ref().and_then(|endpoint| {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build();
        match exporter {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name("assetgw").build())
                    .build(),
            ),
            Err(e) => {
                eprintln!("OTLP export to {endpoint} is off: {e}");
                None
            }
        }
    });
    // Traces keep the info-level spans whatever the log filter says.
    if provider.is_some() {
        // Registry calls carry the search's trace as W3C `traceparent` (see `registry::Registry`).
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    }
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("assetgw")).with_filter(LevelFilter::INFO));
    let logs = match log.format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    // A second init (tests, or `dev` after `check`) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(otel).try_init();
    provider
}

/// Sends the spans still buffered before the process exits.
pub fn flush(traces: Option<SdkTracerProvider>) {
    if let Some(provider) = traces {
        if let Err(e) = provider.shutdown() {
            eprintln!("OTLP: spans not flushed: {e}");
        }
    }
}
