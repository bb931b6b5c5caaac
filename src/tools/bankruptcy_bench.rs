//! `assetgw ledger bench-bankruptcy`: how long one acceptance takes (R25) on
//! a company holding many seizures across many courts: the ledger is seeded
//! through ordinary placements, the first page of the company's picture is
//! read (R27), then the acceptance is one step, timed until it is
//! acknowledged (every seizure lifted and every release order queued when the
//! acceptance lifts them; counted for the courts otherwise).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    core::{
        clock::{Clock, SystemClock},
        identifiers::CaseNumber,
        proto::AssetKind,
    },
    ledger::{
        command::{Command, Reply, RequestKey},
        rules::{Asset, BankruptcyAct, DebtorKind, Decision, Lifting, Terms},
        store::{PicturePage, Store},
    },
    tools::ToolError,
};

/// The registry the seeded assets belong to.
const REGISTRY: &str = "bench-bankruptcy";

/// What the acceptance did and how long it took.
#[derive(Debug, Clone)]
pub struct AcceptanceReport {
    /// Seizures placed before it.
    pub seeded: u64,
    /// How long seeding took.
    pub seeding: Duration,
    /// Seizures the acceptance lifted (at once) or counted for their courts to lift.
    pub reached: u32,
    /// Release orders the acceptance queued for the registry.
    pub orders: i64,
    /// How long the acceptance took to be acknowledged.
    pub elapsed: Duration,
    /// How long the picture's first page took (100 cases and about 100 seizures), and what it held.
    pub picture: (Duration, usize, usize),
}

/// What to seed and how to accept.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Seizures on the company's assets.
    pub seizures: u64,
    /// Courts holding them, one case each.
    pub courts: u64,
    /// Seizures per asset: one first, the rest waiting.
    pub per_asset: u64,
    /// Who lifts (R25).
    pub lifting: Lifting,
}

/// Case `n` of court `court` of a benchmark: courts across the provinces, a few hundred in each.
pub fn case_of(court: u64, n: u64) -> Result<CaseNumber, ToolError> {
    const PROVINCES: [&str; 8] = ["京", "津", "沪", "渝", "冀", "晋", "辽", "吉"];
    let province = PROVINCES[usize::try_from(court % 8).unwrap_or(0)];
    CaseNumber::parse(&format!("（2024）{province}{:04}执{}号", 100 + court / 8, n + 1)).map_err(ToolError::Failed)
}

/// Seeds `scale` on `url` (printing as it goes), then times the acceptance of the company's bankruptcy.
pub async fn acceptance(url: &str, scale: Scale) -> Result<AcceptanceReport, ToolError> {
    let store = Store::open(url, Arc::new(SystemClock), Terms::default()).await?;
    let run = SystemClock.micros();
    let debtor_key = format!("bench-company-{run}");
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (store, next, debtor_key) = (store.clone(), next.clone(), debtor_key.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= scale.seizures {
                    return Ok::<_, ToolError>(());
                }
                let court = n % scale.courts.max(1);
                let case = case_of(court, court)?;
                let court = case.court_code.clone();
                let asset = Asset {
                    kind: AssetKind::RealEstate,
                    asset_id: format!("BANKRUPT{run}-{}", n / scale.per_asset.max(1)),
                    registry: REGISTRY.into(),
                    debtor: "9111**********341L".into(),
                    unit: String::new(),
                    total: 1,
                    sale_started: false,
                    disposed: false,
                    total_at: store.now(),
                };
                let request = RequestKey::of(&court, "bench", &format!("seed-{run}-{n}"), &[]);
                let (amount, claim, emergency) = (1, None, String::new());
                let debtor_key = debtor_key.clone();
                store
                    .execute(Command::Place {
                        request,
                        asset,
                        debtor_key,
                        case,
                        amount,
                        claim,
                        emergency,
                        secured: Vec::new(),
                    })
                    .await?;
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| ToolError::Failed(format!("a seeding worker stopped: {e}")))??;
    }
    let seeding = started.elapsed();
    println!(
        "seeded {} seizures on {} assets of one company, held by {} courts, in {:.1} s",
        scale.seizures,
        scale.seizures.div_ceil(scale.per_asset.max(1)),
        scale.courts.min(scale.seizures),
        seeding.as_secs_f64()
    );
    let started = Instant::now();
    let case = case_of(0, 0)?;
    if !store.may_read_picture(&case, &debtor_key).await? {
        return Err(ToolError::Failed(format!("{case} may not read the company's picture")));
    }
    let (page, _) = store.picture(&debtor_key, &PicturePage::first(100)).await?;
    let picture = (started.elapsed(), page.cases.len(), page.seizures.len());
    println!("accepting");
    let reference = "（2027）京01破1号";
    let decision = Decision {
        reference: reference.into(),
        court: "京01".into(),
        case_number: reference.into(),
        grounds: String::new(),
        at: store.now(),
    };
    let command = Command::Bankruptcy {
        request: RequestKey::of("京01", "bench", &format!("accept-{run}"), &[]),
        debtor_key,
        debtor: "9111**********341L".into(),
        kind: DebtorKind::EnterpriseLegalPerson,
        act: BankruptcyAct::Accept,
        decision,
        lifting: scale.lifting,
    };
    let queued = async || -> Result<i64, ToolError> {
        Ok(store.backlogs().await?.iter().filter(|(r, ..)| r == REGISTRY).map(|(_, n, _)| n).sum())
    };
    let before = queued().await?;
    let started = Instant::now();
    let reply = store.execute(command).await?;
    let elapsed = started.elapsed();
    let Reply::Bankruptcy(outcome) = reply else {
        return Err(ToolError::Failed(format!("the acceptance answered {reply:?}")));
    };
    let orders = queued().await? - before;
    Ok(AcceptanceReport {
        seeded: scale.seizures,
        seeding,
        reached: outcome.lifted.max(outcome.awaiting_lift),
        orders,
        elapsed,
        picture,
    })
}
