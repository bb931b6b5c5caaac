//! A circuit breaker per registry. After `failures` consecutive unhealthy
//! outcomes it opens: calls fail at once instead of waiting out timeouts on a
//! registry that is down. After `cool_down` one probe call is let through
//! (half-open); its success closes the breaker, its failure opens it again.
//! Only failures that say the registry is unhealthy count (see
//! [`crate::registry::Failure::is_unhealthy`]); a registry that rejects one
//! request is not down.

use std::{sync::Mutex, time::Duration};

use serde::Deserialize;
use tokio::time::Instant;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BreakerConfig {
    /// Consecutive unhealthy outcomes that open the breaker.
    pub failures: u32,
    /// How long it stays open before one probe call is let through.
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failures: 5, cool_down: Duration::from_secs(2) }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the instant given.
    Open(Instant),
    /// One probe is out; other calls fail at once.
    HalfOpen,
}

impl State {
    /// The name in metrics: `closed`, `open` or `half_open`.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open(_) => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive: u32,
}

/// One registry's breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// A call the breaker refused: it is open (or a probe is already out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// When the next probe may go.
    pub retry_in: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self { config, inner: Mutex::new(Inner { state: State::Closed, consecutive: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// May a call go now? An open breaker whose cool-down has passed lets this one through as the probe.
    pub fn admit(&self) -> Result<(), Open> {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Ok(()),
            State::Open(until) if Instant::now() >= until => {
                inner.state = State::HalfOpen;
                Ok(())
            }
            State::Open(until) => Err(Open { retry_in: until - Instant::now() }),
            State::HalfOpen => Err(Open { retry_in: self.config.cool_down }),
        }
    }

    /// An admitted call ended without an outcome (its caller gave up). If it
    /// was the half-open probe, the next call probes instead.
    pub fn abandon(&self) {
        let mut inner = self.lock();
        if inner.state == State::HalfOpen {
            inner.state = State::Open(Instant::now());
        }
    }

    /// Records an admitted call's outcome; returns the new state when it changed.
    pub fn record(&self, healthy: bool) -> Option<State> {
        let mut inner = self.lock();
        let before = inner.state;
        if healthy {
            inner.consecutive = 0;
            inner.state = State::Closed;
        } else {
            inner.consecutive = inner.consecutive.saturating_add(1);
            if inner.state == State::HalfOpen || inner.consecutive >= self.config.failures {
                inner.state = State::Open(Instant::now() + self.config.cool_down);
            }
        }
        let changed =
            !matches!((before, inner.state), (State::Closed, State::Closed) | (State::Open(_), State::Open(_)));
        changed.then_some(inner.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig { failures: 3, cool_down: Duration::from_secs(2) })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let b = breaker();
        for _ in 0..2 {
            b.admit().unwrap();
            assert_eq!(b.record(false), None);
        }
        b.admit().unwrap();
        assert_eq!(b.record(true), None, "a success resets the count");
        for _ in 0..2 {
            b.record(false);
        }
        assert_eq!(b.state(), State::Closed);
        assert!(matches!(b.record(false), Some(State::Open(_))));
        let refused = b.admit().unwrap_err();
        assert_eq!(refused.retry_in, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let b = breaker();
        for _ in 0..3 {
            b.record(false);
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        b.admit().expect("the probe");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.admit().is_err(), "one probe at a time");
        assert!(matches!(b.record(false), Some(State::Open(_))), "a failed probe reopens");
        assert!(b.admit().is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        b.admit().expect("the next probe");
        assert_eq!(b.record(true), Some(State::Closed));
        b.admit().expect("closed again");
    }
}
