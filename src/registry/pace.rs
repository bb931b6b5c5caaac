//! A registry's declared rate, kept: the gateway's scheduled searches (the
//! six-monthly re-searches of terminated cases) go only while fewer than the
//! rate's searches, courts' and scheduled together, went to it within the last
//! [`SPAN`]; the courts' searches are counted, never held. The time is the
//! gateway's clock, so that a simulated clock paces a simulated network.

use std::{
    collections::VecDeque,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use crate::core::clock::Time;

/// The stretch a rate counts over: a second and a tenth, so that searches bunched on their way
/// still arrive within the rate by the registry's own second.
pub const SPAN: Duration = Duration::from_millis(1100);

/// The searches that went to one registry lately, the newest `rate` of them at most (older ones
/// cannot decide whether another may go).
#[derive(Debug, Default)]
pub struct Pace {
    sent: Mutex<VecDeque<Time>>,
}

impl Pace {
    fn sent(&self) -> std::sync::MutexGuard<'_, VecDeque<Time>> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A court's search went at `now`.
    pub fn court(&self, now: Time, rate: u32) {
        let mut sent = self.sent();
        sent.push_back(now);
        keep(&mut sent, rate);
    }

    /// A scheduled search may go at `now` (and is counted): fewer than `rate` went within [`SPAN`].
    /// Otherwise how long until one may.
    pub fn take(&self, now: Time, rate: u32) -> Result<(), Duration> {
        let mut sent = self.sent();
        match wait(&sent, now, rate) {
            None => {
                sent.push_back(now);
                keep(&mut sent, rate);
                Ok(())
            }
            Some(wait) => Err(wait),
        }
    }

    /// How many scheduled searches may go at `now`.
    pub fn left(&self, now: Time, rate: u32) -> u32 {
        let sent = self.sent();
        let within = sent.iter().filter(|t| **t > since(now)).count();
        rate.saturating_sub(u32::try_from(within).unwrap_or(u32::MAX))
    }
}

/// The start of the span that ends at `now` (a time after `now`, from a clock set back, counts as within).
fn since(now: Time) -> Time {
    now - chrono::Duration::from_std(SPAN).unwrap_or_default()
}

/// `None` when another search may go at `now`, else how long until one may.
fn wait(sent: &VecDeque<Time>, now: Time, rate: u32) -> Option<Duration> {
    let within: Vec<&Time> = sent.iter().filter(|t| **t > since(now)).collect();
    if within.len() < rate as usize {
        return None;
    }
    // The oldest of the last `rate` must leave the span first.
    let oldest = within[within.len() - rate as usize];
    Some((*oldest - since(now)).to_std().unwrap_or_default().max(Duration::from_millis(1)))
}

/// Keeps the newest `rate` searches: the decision never looks further back.
fn keep(sent: &mut VecDeque<Time>, rate: u32) {
    while sent.len() > (rate as usize).max(1) {
        sent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::from_micros;

    fn at(ms: i64) -> Time {
        from_micros(1_800_000_000_000_000 + ms * 1000)
    }

    #[test]
    fn scheduled_searches_stop_at_the_rate_and_go_again_as_the_span_moves() {
        let pace = Pace::default();
        for _ in 0..3 {
            assert_eq!(pace.take(at(0), 3), Ok(()));
        }
        assert_eq!(pace.take(at(500), 3), Err(Duration::from_millis(600)));
        assert_eq!(pace.left(at(1099), 3), 0);
        assert_eq!(pace.left(at(1100), 3), 3);
        assert_eq!(pace.take(at(1100), 3), Ok(()));
    }

    #[test]
    fn the_courts_searches_come_first_and_are_never_refused() {
        let pace = Pace::default();
        pace.court(at(0), 2);
        assert_eq!(pace.left(at(10), 2), 1);
        assert_eq!(pace.take(at(10), 2), Ok(()));
        // Courts go over the rate; the scheduled wait until the courts' searches leave the span.
        pace.court(at(20), 2);
        pace.court(at(30), 2);
        assert_eq!(pace.left(at(40), 2), 0);
        assert_eq!(pace.take(at(40), 2), Err(Duration::from_millis(1080)));
    }

    #[test]
    fn a_clock_set_back_holds_the_searches_sent_in_its_future() {
        let pace = Pace::default();
        assert_eq!(pace.take(at(5000), 1), Ok(()));
        assert!(pace.take(at(0), 1).is_err());
    }
}
