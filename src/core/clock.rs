//! Where "now" comes from. Every decision that depends on the time of day or
//! the calendar (terms, lapses, quota days, outbox schedules, audit times)
//! takes it from one injected [`Clock`], so tests jump years ahead in
//! microseconds. This is the only module allowed to read the wall clock
//! (`clippy.toml` bans the readers elsewhere).

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Utc};

/// An instant on the gateway's clock.
pub type Time = DateTime<Utc>;

/// Where "now" comes from; tests jump years ahead with [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Time;

    /// The current instant in Unix microseconds, as the databases store it.
    fn micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
}

/// The clock the gateway runs on, shared by every part that needs "now".
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one reader of the wall clock
    fn now(&self) -> Time {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: Time) -> Self {
        Self(AtomicI64::new(t.timestamp_micros()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_microseconds().unwrap_or(0), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// An instant from stored Unix microseconds.
pub fn from_micros(us: i64) -> Time {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}
