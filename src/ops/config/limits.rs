//! The court limits of the configuration (`[limits]`): each court's request
//! rate, burst, daily searches and watch streams, with per-court overrides.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How much each court may ask. Each court has its own budget, so one
/// court's burst never slows another.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Requests per second a court may sustain (every method).
    pub rate: u32,
    /// Requests a court may send at once above its rate.
    pub burst: u32,
    /// Searches a court may make per day (days in China Standard Time); 0 for no limit.
    pub daily_searches: u64,
    /// Watch streams (WatchEvents, WatchSearch) one court may hold open on one replica at once.
    pub watch_streams: usize,
    /// Per-court overrides, keyed by court code: `[limits.courts."京0105"]`.
    pub courts: BTreeMap<String, CourtLimits>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { rate: 50, burst: 100, daily_searches: 20_000, watch_streams: 16, courts: BTreeMap::new() }
    }
}

/// One court's limits; unset keys take the general value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CourtLimits {
    /// Requests per second.
    pub rate: Option<u32>,
    /// Burst above the rate.
    pub burst: Option<u32>,
    /// Searches per day.
    pub daily_searches: Option<u64>,
}

/// The limits one court works under, its overrides applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Requests per second.
    pub rate: u32,
    /// Burst above the rate.
    pub burst: u32,
    /// Searches per day (0: no quota).
    pub daily_searches: u64,
}

impl LimitsConfig {
    /// The limits of `court`.
    pub fn of(&self, court: &str) -> Allowance {
        let o = self.courts.get(court).cloned().unwrap_or_default();
        Allowance {
            rate: o.rate.unwrap_or(self.rate),
            burst: o.burst.unwrap_or(self.burst),
            daily_searches: o.daily_searches.unwrap_or(self.daily_searches),
        }
    }
}
