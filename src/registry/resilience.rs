//! The tower stack every search call to one registry goes through: bulkhead
//! with load shedding, circuit breaker, total timeout, retries and hedging
//! within budgets, then one attempt with its own timeout. [`stack`] builds it
//! from the registry's [`CallPolicy`]; control orders do not use it (they are
//! redelivered by the outbox, not retried here).

use std::{
    collections::VecDeque,
    future::{Ready, ready},
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::time::Instant;
use tower::{
    BoxError, Service, ServiceBuilder, ServiceExt,
    layer::layer_fn,
    retry::{
        Policy, RetryLayer,
        budget::{Budget, TpsBudget},
    },
    service_fn,
    util::BoxCloneSyncService,
};

use crate::{
    core::proto::Debtor,
    ops::config::CallPolicy,
    ops::metrics::Metrics,
    registry::breaker::{Breaker, Circuit},
    registry::call::{Checked, Failure, Inquiry},
};

/// One search call: what to ask, for whom, and by when.
#[derive(Debug, Clone)]
pub struct Ask {
    /// What is asked.
    pub question: Question,
    /// The search it is part of.
    pub caller: Arc<Inquiry>,
    /// When the registry's part of the search must be over.
    pub deadline: Instant,
}

/// What a search call asks a registry.
#[derive(Debug, Clone)]
pub enum Question {
    /// A debtor's assets (`SearchAssets`).
    Search(Debtor),
    /// The answer behind a ticket it gave earlier (`GetAnswer`).
    Answer(String),
}

/// The assembled stack, cheap to clone (one clone per call).
pub type Calls = BoxCloneSyncService<Ask, Checked, Failure>;

/// How far back the retry and hedge budgets look.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Successful attempts remembered for the hedging delay.
const LATENCY_WINDOW: usize = 256;
/// Attempts seen before hedging starts; too few to know what slow is.
const LATENCY_MIN_SAMPLES: usize = 20;
/// The hedge goes after this many times a latency inside the fast mode. When
/// a slow mode holds about (1 − percentile) of the calls, the percentile
/// itself lands on the slow mode in one history (slow attempts completed and
/// were recorded) and inside the fast mode's tail in another (they were
/// hedged, cancelled and never recorded), and stays where it landed: hedging
/// fast calls too, or none. The (2·percentile − 1) point (p90 for p95) is in
/// the fast mode in both histories, and twice it is past that mode's tail, so
/// hedges go to the slow calls and the budget suffices for them.
const FAST_MODE_MULTIPLE: u32 = 2;
/// The least hedging delay: a registry that answers in well under a
/// millisecond still has its answers wait for the gateway's threads now and
/// then (a scheduler slice is a few milliseconds); hedging those would spend
/// the budget that the slow calls need.
const NOISE_FLOOR: Duration = Duration::from_millis(5);

/// Builds the stack in front of `attempt` (one call with the attempt timeout).
///
/// Outermost first, and why in this order:
/// 1. the bulkhead sheds a call at once when the registry already has
///    `concurrency` in flight. It sits outside the breaker because a call
///    refused for our own lack of room says nothing about the registry;
/// 2. the breaker refuses calls while open before they cost a timer, a
///    budget token or a socket, and judges a whole call (after retries and
///    hedges), so one slow attempt that a hedge rescued is not a failure;
/// 3. the total timeout bounds everything below, retries included;
/// 4. retries wrap hedging, so a retry follows only when the attempt and its
///    hedge have both failed;
/// 5. hedging races a second attempt against a slow first one.
///
/// A poll of a ticket (`GetAnswer`) goes through the bulkhead, the breaker and
/// the timeout only: the poller paces it (never sooner than its floor), so
/// neither a retry nor a hedge may ask again inside that floor.
pub fn stack<A>(
    name: &Arc<str>,
    policy: &CallPolicy,
    (metrics, breaker): (&Metrics, &Arc<Breaker>),
    attempt: A,
) -> Calls
where
    A: Service<Ask, Response = Checked, Error = Failure> + Clone + Send + Sync + 'static,
    A::Future: Send,
{
    let policy = *policy;
    let failure = move |e: BoxError| Failure::from_box(e, &policy);
    let changes = Changes {
        registry: name.clone(),
        metric: metrics.breaker_changes.clone(),
        open: metrics.breaker_open.with_label_values(&[&**name]),
    };
    let retries = Retries {
        retried: false,
        // At least one a second, so a registry that failed every call lately is still retried now and then.
        budget: Arc::new(TpsBudget::new(BUDGET_WINDOW, 1, policy.retry_budget)),
        counter: metrics.retries.with_label_values(&[&**name]),
    };
    let hedge = Hedge {
        latencies: Arc::new(Latencies::new(policy.hedge_percentile)),
        batch_window: policy.batch.window,
        // No minimum: hedges are pure extra load, only ever a share of the calls.
        budget: Arc::new(TpsBudget::new(BUDGET_WINDOW, 0, policy.hedge_budget)),
        counter: metrics.hedges.with_label_values(&[&**name]),
    };
    let service = ServiceBuilder::new()
        .map_err(failure)
        .load_shed()
        .concurrency_limit(policy.concurrency)
        .layer(layer_fn(|inner| guarded(inner, breaker.clone(), changes.clone())))
        .map_err(failure)
        .timeout(policy.timeout)
        .layer(RetryLayer::new(retries))
        .layer(layer_fn(|inner| hedged(inner, hedge.clone())))
        .service(attempt);
    BoxCloneSyncService::new(service)
}

impl Failure {
    /// What a tower layer's error means for the search.
    fn from_box(error: BoxError, policy: &CallPolicy) -> Failure {
        match error.downcast::<Failure>() {
            Ok(failure) => *failure,
            Err(e) if e.is::<tower::timeout::error::Elapsed>() => Failure::timeout(policy.timeout),
            Err(e) if e.is::<tower::load_shed::error::Overloaded>() => Failure::Shed(policy.concurrency),
            Err(e) => {
                tracing::error!(error = %e, "unexpected error from the registry call stack");
                Failure::Unavailable
            }
        }
    }
}

/// Where a breaker's state changes are told.
#[derive(Clone)]
struct Changes {
    registry: Arc<str>,
    metric: IntCounterVec,
    /// 1 while the breaker is not closed.
    open: IntGauge,
}

/// `inner` behind the circuit breaker: refused at once while it is open, and every call's outcome recorded.
fn guarded<S>(
    inner: S,
    breaker: Arc<Breaker>,
    changes: Changes,
) -> impl Service<Ask, Response = Checked, Error = Failure, Future: Send> + Clone
where
    S: Service<Ask, Response = Checked, Error = Failure> + Clone + Send + 'static,
    S::Future: Send,
{
    service_fn(move |ask: Ask| {
        let (inner, breaker, changes) = (inner.clone(), breaker.clone(), changes.clone());
        async move {
            breaker.admit().map_err(|open| Failure::CircuitOpen(open.retry_in))?;
            let outcome = Admitted { breaker: Some(breaker), changes };
            let result = inner.oneshot(ask).await;
            outcome.record(result.as_ref().map_or_else(|f| !f.is_unhealthy(), |_| true));
            result
        }
    })
}

/// A call the breaker let through, until its outcome is recorded. Dropped
/// unrecorded (the search gave up first) it tells the breaker so, or a
/// half-open breaker would wait for its probe for ever.
struct Admitted {
    breaker: Option<Arc<Breaker>>,
    changes: Changes,
}

impl Admitted {
    fn record(mut self, healthy: bool) {
        let Some(breaker) = self.breaker.take() else { return };
        if let Some(state) = breaker.record(healthy) {
            tracing::warn!(registry = %self.changes.registry, state = state.name(), "circuit breaker changed state");
            self.changes.metric.with_label_values(&[&*self.changes.registry, state.name()]).inc();
            self.changes.open.set(i64::from(state != Circuit::Closed));
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(breaker) = self.breaker.take() {
            breaker.abandon();
        }
    }
}

/// Retries of an attempt that failed in a way another attempt may not: at
/// most one per call (the policy is cloned per call, so `retried` is this call's).
#[derive(Clone)]
struct Retries {
    retried: bool,
    budget: Arc<TpsBudget>,
    counter: IntCounter,
}

impl Policy<Ask, Checked, Failure> for Retries {
    type Future = Ready<()>;

    fn retry(&mut self, ask: &mut Ask, result: &mut Result<Checked, Failure>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            // Searches change nothing, so asking again is safe; only when time is left and the budget allows.
            // A poll is not retried here: the poller asks again after its floor, within its backoff.
            Err(Failure::Unavailable | Failure::Timeout(_))
                if !self.retried
                    && matches!(ask.question, Question::Search(_))
                    && Instant::now() < ask.deadline
                    && self.budget.withdraw() =>
            {
                self.retried = true;
                self.counter.inc();
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, ask: &Ask) -> Option<Ask> {
        Some(ask.clone())
    }
}

/// One registry's hedging: its recent latencies, its budget and its counter.
#[derive(Clone)]
struct Hedge {
    latencies: Arc<Latencies>,
    /// How long a search may wait for its batch before it is sent: a hedge inside that
    /// would only wait with it (and spend the budget the slow calls need).
    batch_window: Duration,
    budget: Arc<TpsBudget>,
    counter: IntCounter,
}

/// `inner` with hedging: a second attempt when the first is slower than
/// this registry usually is (and the budget allows); the first success wins.
fn hedged<S>(inner: S, hedge: Hedge) -> impl Service<Ask, Response = Checked, Error = Failure, Future: Send> + Clone
where
    S: Service<Ask, Response = Checked, Error = Failure> + Clone + Send + 'static,
    S::Future: Send,
{
    service_fn(move |ask: Ask| {
        let (inner, hedge) = (inner.clone(), hedge.clone());
        async move {
            // Polls are not hedged: a ticket is asked at most once per the poller's floor.
            if matches!(ask.question, Question::Answer(_)) {
                return inner.oneshot(ask).await;
            }
            hedge.budget.deposit();
            let first = timed(inner.clone().oneshot(ask.clone()), &hedge.latencies);
            let Some(after) = hedge.latencies.hedge_after() else { return first.await };
            let after = after + hedge.batch_window;
            tokio::pin!(first);
            tokio::select! {
                biased;
                result = &mut first => return result,
                _ = tokio::time::sleep(after) => {}
            }
            if !hedge.budget.withdraw() {
                return first.await;
            }
            hedge.counter.inc();
            let second = timed(inner.oneshot(ask), &hedge.latencies);
            tokio::pin!(second);
            tokio::select! {
                result = &mut first => match result {
                    Ok(answer) => Ok(answer),
                    Err(_) => second.await,
                },
                result = &mut second => match result {
                    Ok(answer) => Ok(answer),
                    Err(_) => first.await,
                },
            }
        }
    })
}

/// An attempt that adds its latency to `latencies` when it succeeds.
async fn timed<F>(attempt: F, latencies: &Latencies) -> Result<Checked, Failure>
where
    F: Future<Output = Result<Checked, Failure>>,
{
    let started = Instant::now();
    let result = attempt.await;
    if result.is_ok() {
        latencies.add(started.elapsed());
    }
    result
}

/// Recent attempt latencies of one registry, and the hedging delay they give.
#[derive(Debug)]
struct Latencies {
    percentile: f64,
    inner: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    recent: VecDeque<Duration>,
    delay: Option<Duration>,
    since: u32,
}

impl Latencies {
    fn new(percentile: f64) -> Self {
        Self {
            percentile,
            inner: Mutex::new(Window { recent: VecDeque::with_capacity(LATENCY_WINDOW), delay: None, since: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, latency: Duration) {
        if self.percentile <= 0.0 {
            return;
        }
        let mut w = self.lock();
        if w.recent.len() == LATENCY_WINDOW {
            w.recent.pop_front();
        }
        w.recent.push_back(latency);
        w.since += 1;
    }

    /// [`FAST_MODE_MULTIPLE`] times the (2·percentile − 1) point of recent
    /// latencies, at least [`NOISE_FLOOR`] (recomputed every 16 calls); `None`
    /// until enough calls or when off.
    fn hedge_after(&self) -> Option<Duration> {
        if self.percentile <= 0.0 {
            return None;
        }
        let mut w = self.lock();
        if w.recent.len() < LATENCY_MIN_SAMPLES {
            return None;
        }
        if w.delay.is_none() || w.since >= 16 {
            let mut sorted: Vec<Duration> = w.recent.iter().copied().collect();
            sorted.sort_unstable();
            let inside = (2.0 * self.percentile - 1.0).max(0.0);
            let at = ((sorted.len() as f64 * inside) as usize).min(sorted.len() - 1);
            w.delay = Some((sorted[at] * FAST_MODE_MULTIPLE).max(NOISE_FLOOR));
            w.since = 0;
        }
        w.delay
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::ops::config::BreakerConfig;

    #[test]
    fn hedging_waits_for_enough_calls_then_goes_past_the_fast_modes_tail() {
        let l = Latencies::new(0.9);
        for ms in 1..LATENCY_MIN_SAMPLES as u64 {
            l.add(Duration::from_millis(ms));
        }
        assert_eq!(l.hedge_after(), None, "too few calls to know what slow is");
        for ms in LATENCY_MIN_SAMPLES as u64..=100 {
            l.add(Duration::from_millis(ms));
        }
        assert_eq!(l.hedge_after(), Some(Duration::from_millis(162)), "twice the p80 of 1..=100 ms");
        let quick = Latencies::new(0.9);
        for us in 100..400 {
            quick.add(Duration::from_micros(us));
        }
        assert_eq!(quick.hedge_after(), Some(NOISE_FLOOR), "a sub-millisecond registry is hedged past the noise");
        assert_eq!(Latencies::new(0.0).hedge_after(), None, "0 turns hedging off");
    }

    #[test]
    fn a_slow_mode_at_the_percentile_gives_one_delay_in_every_history() {
        // 95 % of calls take 5–30 ms, 5 % take 120 ms; hedging at p95.
        let fast = |i: u64| Duration::from_millis(5 + (i * 7) % 26);
        let recorded_slow = Latencies::new(0.95);
        let hedged_slow = Latencies::new(0.95);
        for i in 0..LATENCY_WINDOW as u64 {
            let slow = i % 20 == 0;
            recorded_slow.add(if slow { Duration::from_millis(120) } else { fast(i) });
            // In the other history the slow attempts were hedged, cancelled and never recorded.
            hedged_slow.add(fast(if slow { i + 1 } else { i }));
        }
        let (a, b) = (recorded_slow.hedge_after().unwrap(), hedged_slow.hedge_after().unwrap());
        assert!(a < Duration::from_millis(100) && b < Duration::from_millis(100), "{a:?} {b:?}");
        assert!(
            a.abs_diff(b) <= Duration::from_millis(25),
            "both histories hedge in the fast mode's tail: {a:?} {b:?}"
        );
    }

    fn ask(deadline: Duration) -> Ask {
        Ask {
            question: Question::Search(Debtor::default()),
            caller: Arc::new(Inquiry::new("（2024）京0105执1号".into(), "京0105".into())),
            deadline: Instant::now() + deadline,
        }
    }

    /// An attempt that counts its calls and behaves as `f` says for the n-th.
    fn attempts(
        f: impl Fn(u32) -> (Duration, Result<Checked, Failure>) + Clone + Send + Sync + 'static,
    ) -> (Arc<AtomicU32>, impl Service<Ask, Response = Checked, Error = Failure, Future: Send> + Clone + Send + Sync)
    {
        let count = Arc::new(AtomicU32::new(0));
        let counter = count.clone();
        let service = tower::service_fn(move |_: Ask| {
            let (delay, result) = f(counter.fetch_add(1, Ordering::SeqCst));
            async move {
                tokio::time::sleep(delay).await;
                result
            }
        });
        (count, service)
    }

    fn policy() -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(1),
            concurrency: 2,
            breaker: BreakerConfig { failures: 2, cool_down: Duration::from_secs(5) },
            retry_budget: 0.0,
            hedge_budget: 0.0,
            hedge_percentile: 0.0,
            ..CallPolicy::default()
        }
    }

    fn breaker(policy: &CallPolicy) -> Arc<Breaker> {
        Arc::new(Breaker::new(policy.breaker))
    }

    fn metrics() -> Metrics {
        Metrics::new().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_bulkhead_sheds_beyond_its_limit_without_touching_the_breaker() {
        let (count, attempt) = attempts(|_| (Duration::from_millis(100), Ok(Checked::default())));
        let calls = stack(&"r".into(), &policy(), (&metrics(), &breaker(&policy())), attempt);
        let results =
            futures::future::join_all((0..5).map(|_| calls.clone().oneshot(ask(Duration::from_secs(1))))).await;
        let shed = results.iter().filter(|r| matches!(r, Err(Failure::Shed(2)))).count();
        assert_eq!((shed, count.load(Ordering::SeqCst)), (3, 2));
        assert!(calls.clone().oneshot(ask(Duration::from_secs(1))).await.is_ok(), "room again once they finish");
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_timeout_bounds_a_hung_registry_and_counts_toward_the_breaker() {
        let (count, attempt) = attempts(|_| (Duration::from_secs(3600), Ok(Checked::default())));
        let calls = stack(&"r".into(), &policy(), (&metrics(), &breaker(&policy())), attempt);
        for _ in 0..2 {
            let started = Instant::now();
            let r = calls.clone().oneshot(ask(Duration::from_secs(1))).await;
            assert_eq!((r, started.elapsed()), (Err(Failure::Timeout(Duration::from_secs(1))), Duration::from_secs(1)));
        }
        let r = calls.clone().oneshot(ask(Duration::from_secs(1))).await;
        assert!(matches!(r, Err(Failure::CircuitOpen(_))), "{r:?}");
        assert_eq!(count.load(Ordering::SeqCst), 2, "an open breaker asks nobody");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_given_up_on_lets_the_next_call_probe() {
        // Internal errors are unhealthy but not retried, so each search is one attempt.
        let (count, attempt) = attempts(|n| match n {
            0 | 1 => (Duration::ZERO, Err(Failure::Error(tonic::Code::Internal))),
            _ => (Duration::from_secs(10), Ok(Checked::default())),
        });
        let calls = stack(&"r".into(), &policy(), (&metrics(), &breaker(&policy())), attempt);
        for _ in 0..2 {
            let _ = calls.clone().oneshot(ask(Duration::from_secs(1))).await;
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        // The probe's search gives up before the registry answers.
        let probe = tokio::time::timeout(Duration::from_millis(10), calls.clone().oneshot(ask(Duration::from_secs(1))));
        assert!(probe.await.is_err());
        let next = calls.clone().oneshot(ask(Duration::from_secs(1)));
        assert!(matches!(next.await, Err(Failure::Timeout(_))), "asked (and timed out), not refused as open");
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_is_retried_within_the_budget_and_invalid_argument_never() {
        let (count, attempt) = attempts(|_| (Duration::ZERO, Err(Failure::Unavailable)));
        let p = CallPolicy { breaker: BreakerConfig { failures: 1000, ..policy().breaker }, ..policy() };
        let calls = stack(&"r".into(), &p, (&metrics(), &breaker(&p)), attempt);
        for _ in 0..10 {
            let _ = calls.clone().oneshot(ask(Duration::from_secs(1))).await;
        }
        // One retry per call: a 0 share still allows one a second (the budget's floor, 10 s of it in reserve).
        assert_eq!(count.load(Ordering::SeqCst), 20);
        for _ in 0..10 {
            let _ = calls.clone().oneshot(ask(Duration::from_secs(1))).await;
        }
        assert_eq!(count.load(Ordering::SeqCst), 30, "the reserve is spent");
        let (count, attempt) = attempts(|_| (Duration::ZERO, Err(Failure::Error(tonic::Code::InvalidArgument))));
        let calls = stack(&"r".into(), &p, (&metrics(), &breaker(&p)), attempt);
        let _ = calls.oneshot(ask(Duration::from_secs(1))).await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_is_neither_retried_nor_hedged() {
        let poll = || Ask { question: Question::Answer("t-1".into()), ..ask(Duration::from_secs(1)) };
        let (count, attempt) = attempts(|_| (Duration::ZERO, Err(Failure::Unavailable)));
        let p =
            CallPolicy { retry_budget: 1.0, breaker: BreakerConfig { failures: 1000, ..policy().breaker }, ..policy() };
        let calls = stack(&"r".into(), &p, (&metrics(), &breaker(&p)), attempt);
        for _ in 0..10 {
            assert_eq!(calls.clone().oneshot(poll()).await, Err(Failure::Unavailable));
        }
        assert_eq!(count.load(Ordering::SeqCst), 10, "one attempt per poll: the poller's floor paces the next");
        // Every 10th attempt slow: searches warm the hedge up, and a slow poll is still asked once.
        let (count, attempt) =
            attempts(|n| (Duration::from_millis(if n % 10 == 9 { 500 } else { 10 }), Ok(Checked::default())));
        let p = CallPolicy { hedge_percentile: 0.8, hedge_budget: 1.0, ..policy() };
        let calls = stack(&"r".into(), &p, (&metrics(), &breaker(&p)), attempt);
        for _ in 0..29 {
            calls.clone().oneshot(ask(Duration::from_secs(1))).await.unwrap();
        }
        let before = count.load(Ordering::SeqCst);
        let started = Instant::now();
        calls.clone().oneshot(poll()).await.unwrap();
        assert_eq!((count.load(Ordering::SeqCst) - before, started.elapsed()), (1, Duration::from_millis(500)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_is_hedged_and_the_first_success_wins() {
        // Every 10th attempt takes 500 ms, the others 10 ms.
        let (count, attempt) =
            attempts(|n| (Duration::from_millis(if n % 10 == 9 { 500 } else { 10 }), Ok(Checked::default())));
        let p = CallPolicy { hedge_percentile: 0.8, hedge_budget: 1.0, ..policy() };
        let calls = stack(&"r".into(), &p, (&metrics(), &breaker(&p)), attempt);
        let mut after_warm_up = Duration::ZERO;
        for i in 0..100 {
            let started = Instant::now();
            calls.clone().oneshot(ask(Duration::from_secs(1))).await.unwrap();
            if i >= LATENCY_MIN_SAMPLES {
                after_warm_up = after_warm_up.max(started.elapsed());
            }
        }
        // Once 20 latencies are known the hedge goes after twice their p60 (20 ms) and the batch window
        // (a search may wait that long to be sent), and its 10 ms answer wins.
        assert_eq!(after_warm_up, Duration::from_millis(30) + p.batch.window);
        let hedges = count.load(Ordering::SeqCst) - 100;
        assert!((6..=9).contains(&hedges), "one hedge per slow attempt after the warm-up: {hedges}");
    }
}
