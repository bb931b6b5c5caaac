//! A circuit breaker per registry. After `failures` consecutive unhealthy
//! outcomes it opens: calls fail at once instead of waiting out timeouts on a
//! registry that is down. After `cool_down` one probe call is let through
//! (half-open); its success closes the breaker, its failure opens it again.
//! Only failures that say the registry is unhealthy count (see
//! [`crate::registry::call::Failure::is_unhealthy`]); a registry that rejects one
//! request is not down.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

use crate::ops::config::BreakerConfig;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the instant given.
    Open(Instant),
    /// One probe is out; other calls fail at once.
    HalfOpen,
}

impl Circuit {
    /// The name in metrics: `closed`, `open` or `half_open`.
    pub fn name(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open(_) => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: Circuit,
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
        Self { config, inner: Mutex::new(Inner { state: Circuit::Closed, consecutive: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current state.
    pub fn state(&self) -> Circuit {
        self.lock().state
    }

    /// How long calls are refused from now, without taking the probe: `None` when one may go.
    pub fn refusing(&self) -> Option<Duration> {
        match self.lock().state {
            Circuit::Closed => None,
            Circuit::Open(until) => until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()),
            Circuit::HalfOpen => Some(self.config.cool_down),
        }
    }

    /// May a call go now? An open breaker whose cool-down has passed lets this one through as the probe.
    pub fn admit(&self) -> Result<(), Open> {
        let mut inner = self.lock();
        match inner.state {
            Circuit::Closed => Ok(()),
            Circuit::Open(until) if Instant::now() >= until => {
                inner.state = Circuit::HalfOpen;
                Ok(())
            }
            Circuit::Open(until) => Err(Open { retry_in: until - Instant::now() }),
            Circuit::HalfOpen => Err(Open { retry_in: self.config.cool_down }),
        }
    }

    /// An admitted call ended without an outcome (its caller gave up). If it
    /// was the half-open probe, the next call probes instead.
    pub fn abandon(&self) {
        let mut inner = self.lock();
        if inner.state == Circuit::HalfOpen {
            inner.state = Circuit::Open(Instant::now());
        }
    }

    /// Records an admitted call's outcome; returns the new state when it changed.
    pub fn record(&self, healthy: bool) -> Option<Circuit> {
        let mut inner = self.lock();
        let before = inner.state;
        if healthy {
            inner.consecutive = 0;
            inner.state = Circuit::Closed;
        } else {
            inner.consecutive = inner.consecutive.saturating_add(1);
            if inner.state == Circuit::HalfOpen || inner.consecutive >= self.config.failures {
                inner.state = Circuit::Open(Instant::now() + self.config.cool_down);
            }
        }
        let changed =
            !matches!((before, inner.state), (Circuit::Closed, Circuit::Closed) | (Circuit::Open(_), Circuit::Open(_)));
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
        assert_eq!(b.state(), Circuit::Closed);
        assert!(matches!(b.record(false), Some(Circuit::Open(_))));
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
        assert_eq!(b.state(), Circuit::HalfOpen);
        assert!(b.admit().is_err(), "one probe at a time");
        assert!(matches!(b.record(false), Some(Circuit::Open(_))), "a failed probe reopens");
        assert!(b.admit().is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        b.admit().expect("the next probe");
        assert_eq!(b.record(true), Some(Circuit::Closed));
        b.admit().expect("closed again");
    }
}
