//! `assetgw ledger bench-research`: the re-searches of terminated cases (R30)
//! at national scale on a simulated clock, so that months pass in minutes.
//! The ledger is seeded with terminated cases through ordinary terminations
//! (their dates spread over the six months before the start, so each day
//! brings its share due; a share of the debtors with several cases, ended
//! within weeks of each other); then day after day the gateway's own round
//! plan ([`research::claimable`]), claims and records run against it, and each
//! registry's calls are counted by the gateway's own pace ([`Pace`]) at its
//! declared rate. The calls are counted, not made: the fan-out and the
//! search jobs are measured by the search benchmarks.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::time::Instant;

use crate::{
    core::clock::{BeijingHours, Clock, ManualClock, Time, beijing_date, beijing_midnight},
    gateway::jobs::research::{self, Cadence},
    ledger::{
        command::{Command, RequestKey, ResearchDebtor},
        rules::Terms,
        store::{ResearchClaim, Store},
    },
    registry::pace::Pace,
    tools::{ToolError, bankruptcy_bench::case_of},
};

/// What to seed and how to run.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Terminated cases.
    pub cases: u64,
    /// Share of the debtors with more than one case (two to four).
    pub shared: f64,
    /// Registries asked for each debtor.
    pub registries: u32,
    /// Searches per second each declares.
    pub rate: u32,
    /// Days simulated.
    pub days: u32,
    /// The Beijing hours the re-searches are spread over (`None`: any hour).
    pub hours: Option<BeijingHours>,
}

/// One simulated day.
#[derive(Debug, Clone)]
pub struct Day {
    /// Its Beijing date.
    pub date: chrono::NaiveDate,
    /// Re-searches started.
    pub started: u64,
    /// Registry calls made for them.
    pub calls: u64,
    /// Registry calls one fan-out per re-search would have made.
    pub unshared: u64,
    /// Re-searches due and not started at its end, and how long the oldest had waited.
    pub lag: (u64, Duration),
}

/// What the run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Cases seeded, distinct debtors, and how long seeding took.
    pub seeded: (u64, u64, Duration),
    /// Every simulated day.
    pub days: Vec<Day>,
    /// The most calls any registry had within the pace's span (a second and a tenth).
    pub busiest: u32,
    /// How long the simulation took.
    pub elapsed: Duration,
}

/// The debtors of the run, each with the day (before the start) its cases ended and how many it has.
fn debtors(scale: &Scale, seed: u64) -> Vec<(u64, u32)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut out, mut cases) = (Vec::new(), 0);
    while cases < scale.cases {
        let n = if rng.random_bool(scale.shared.clamp(0.0, 1.0)) { rng.random_range(2..=4) } else { 1 };
        let n = n.min(scale.cases - cases);
        out.push((rng.random_range(0..182 * 86_400), u32::try_from(n).unwrap_or(1)));
        cases += n;
    }
    out
}

/// Seeds the terminated cases on `url`, then simulates `scale.days` days from `start`.
pub async fn simulate(url: &str, scale: Scale, start: Time) -> Result<Report, ToolError> {
    let clock = Arc::new(ManualClock::new(start));
    let store = Store::open(url, clock.clone(), Terms::default()).await?;
    let run = crate::core::clock::SystemClock.micros();
    let debtors = Arc::new(debtors(&scale, 7));
    let started = Instant::now();
    let (next, made) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (store, next, made, debtors) = (store.clone(), next.clone(), made.clone(), debtors.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let d = next.fetch_add(1, Ordering::Relaxed);
                let Some((ended, cases)) = debtors.get(usize::try_from(d).unwrap_or(usize::MAX)).copied() else {
                    return Ok::<_, ToolError>(());
                };
                // Each debtor's own draws, whichever worker seeds it.
                let mut rng = StdRng::seed_from_u64(d);
                for _ in 0..cases {
                    let n = made.fetch_add(1, Ordering::Relaxed);
                    // 3,000 courts, each case at one of them.
                    let case = case_of(n % 3000, n)?;
                    // A debtor's cases end within three weeks of each other.
                    let jitter = if cases > 1 { rng.random_range(0..21 * 86_400) } else { 0 };
                    let ago = i64::try_from((ended + jitter).min(182 * 86_400)).unwrap_or(0);
                    let at = start - chrono::Duration::seconds(ago);
                    let request = RequestKey::of(&case.court_code, "bench", &format!("end-{run}-{n}"), &[]);
                    let debtors = vec![ResearchDebtor {
                        key: format!("bench-debtor-{run}-{d}"),
                        masked: "9111**********341L".into(),
                        organisation: true,
                        sealed: vec![0],
                    }];
                    store.execute(Command::Terminate { request, case, debtors, at }).await?;
                }
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| ToolError::Failed(format!("a seeding worker stopped: {e}")))??;
    }
    let seeded = (made.load(Ordering::Relaxed), debtors.len() as u64, started.elapsed());
    println!("seeded {} terminated cases of {} debtors in {:.0} s", seeded.0, seeded.1, seeded.2.as_secs_f64());

    let cadence = Cadence {
        every: Duration::from_secs(60),
        window: Duration::from_secs(7 * 86_400),
        deadline: Duration::from_secs(10),
        lease: Duration::from_secs(25),
        allowance: 2000,
        hours: scale.hours,
    };
    let registries: Vec<Pace> = (0..scale.registries).map(|_| Pace::default()).collect();
    let (mut days, mut busiest) = (Vec::new(), 0);
    let started = Instant::now();
    for _ in 0..scale.days {
        let date = beijing_date(clock.now());
        // The day's last second: what waits then is late (at midnight the next day's fall due).
        let end = beijing_midnight(date + chrono::Days::new(1)) - chrono::Duration::seconds(1);
        let mut day = Day { date, started: 0, calls: 0, unshared: 0, lag: (0, Duration::ZERO) };
        while clock.now() < end {
            let now = clock.now();
            let (due, _) = store.researches_waiting().await?;
            let rooms = registries.iter().map(|r| Some(r.left(now, scale.rate)));
            let (limit, mut next) = research::claimable(rooms, due, now, cadence);
            if limit > 0 {
                let claim = ResearchClaim {
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                    lease: cadence.lease,
                    window: cadence.window,
                    allowance: cadence.allowance,
                };
                let claimed = store.claim_researches(claim).await?;
                let asked: HashSet<&str> = claimed.iter().flat_map(|r| r.debtors.iter().map(|d| &*d.key)).collect();
                for r in &registries {
                    for _ in &asked {
                        r.take(now, scale.rate).map_err(|wait| {
                            ToolError::Failed(format!("the plan went over a registry's rate (room in {wait:?})"))
                        })?;
                    }
                    busiest = busiest.max(scale.rate - r.left(now, scale.rate));
                }
                let per = u64::from(scale.registries);
                day.started += claimed.len() as u64;
                day.calls += asked.len() as u64 * per;
                day.unshared += claimed.iter().map(|r| r.debtors.len() as u64).sum::<u64>() * per;
                let done: Vec<_> =
                    claimed.iter().map(|r| (r.case_number.clone(), r.round, format!("sim-{}", r.round))).collect();
                store.researches_done(&done).await?;
                if claimed.is_empty() {
                    next = cadence.every.min(cadence.lease);
                }
            }
            clock.advance(chrono::Duration::from_std(next).unwrap_or_default().min(end - now));
        }
        let (waiting, oldest) = store.researches_waiting().await?;
        day.lag = (waiting, oldest.map_or(Duration::ZERO, |t| (clock.now() - t).to_std().unwrap_or_default()));
        clock.advance(chrono::Duration::seconds(1));
        println!(
            "{}: {} re-searches started, {} registry calls ({} without sharing), {} waiting at 23:59:59",
            day.date, day.started, day.calls, day.unshared, day.lag.0
        );
        days.push(day);
    }
    Ok(Report { seeded, days, busiest, elapsed: started.elapsed() })
}
