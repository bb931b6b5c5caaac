//! Logging set-up and the names of spans, in one place so dashboards and
//! tests agree on them.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogConfig, LogFormat};

/// Span names.
pub mod spans {
    /// One court request (Search or SearchStream).
    pub const SEARCH: &str = "search";
    /// One registry's part of a search for one debtor.
    pub const REGISTRY_LEG: &str = "registry_leg";
}

/// Installs the global subscriber: `RUST_LOG` when set, else the configured filter.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests, or `dev` after `check`) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()))
            .try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init(),
    };
}
