//! Property test of the debtor as a whole in the store: random interleavings
//! of seizures, releases, renewals, deductions, sales, case transfers, clock
//! jumps (across term ends and Beijing midnights) and the bankruptcy
//! decisions (R24–R26), in either lifting mode. After every step: nothing
//! was seized, deducted or sold while the debtor was in review or bankrupt;
//! nothing took effect on a bankrupt debtor's asset; an acceptance that lifts
//! leaves nothing live; a refusal changes no seizure (the cases resume with
//! what they held); and the ledger's invariants hold.

use std::sync::Arc;

use assetgw::{
    core::{
        clock::{Clock, ManualClock, SharedClock, SystemClock},
        proto::{AssetKind, DebtorStanding},
    },
    ledger::{
        LedgerError, asset_key,
        command::{Command, Reply, RequestKey},
        rules::{Asset, BankruptcyAct, DebtorKind, Decision, Ledger, Lifting, Terms},
        store::Store,
    },
};
use proptest::prelude::*;

use crate::{
    harness::*,
    ledger_props::{Op, command, op},
};

/// A step of enforcement, a jump of hours, or a decision on the company's bankruptcy (on one of two grounds).
#[derive(Debug, Clone)]
enum Step {
    Enforce(Op),
    Hours(i64),
    Decide(BankruptcyAct, usize),
}

fn step() -> impl Strategy<Value = Step> {
    let act = prop_oneof![
        Just(BankruptcyAct::Review),
        Just(BankruptcyAct::Accept),
        Just(BankruptcyAct::Refuse),
        Just(BankruptcyAct::Dismiss)
    ];
    prop_oneof![
        3 => op().prop_map(Step::Enforce),
        // Freezes, deductions and sales come often enough to meet a review.
        2 => (0usize..4, 1i64..600).prop_map(|(case, amount)| Step::Enforce(Op::Place { asset: 1, case, amount })),
        // Several cases on the flat: some wait, and must not take effect once the company is bankrupt.
        2 => (0usize..4).prop_map(|case| Step::Enforce(Op::Place { asset: 0, case, amount: 1 })),
        2 => ((0usize..64), 1i64..60).prop_map(|(i, a)| Step::Enforce(Op::Deduct(i, a))),
        1 => (0usize..64).prop_map(|i| Step::Enforce(Op::Sell(i))),
        // Releases after an acceptance must promote no one.
        2 => (0usize..64).prop_map(|i| Step::Enforce(Op::Release(i))),
        // Hours: the clock lands at every hour of Beijing's day.
        1 => (1i64..48).prop_map(Step::Hours),
        3 => (act, 0usize..2).prop_map(|(act, grounds)| Step::Decide(act, grounds)),
    ]
}

/// The company's three assets.
fn assets() -> [Asset; 3] {
    let asset = |kind, id: &str, unit: &str, total| Asset {
        kind,
        asset_id: id.into(),
        registry: "r".into(),
        debtor: "9111**********341L".into(),
        unit: unit.into(),
        total,
        sale_started: false,
        disposed: false,
        total_at: Default::default(),
    };
    [
        asset(AssetKind::RealEstate, "110105001002GB00001F00010002", "", 1),
        asset(AssetKind::Deposit, "102:6222000011113333", "CNY", 1000),
        asset(AssetKind::Securities, "B123456789:600519", "units", 800),
    ]
}

const COMPANY_KEY: &str = "company";
const BANKRUPTCY_CASE: &str = "（2027）京0105破1号";

/// Every seizure on the company's assets, as stored, lapses due applied.
async fn held(store: &Store, keys: &[String]) -> Vec<Ledger> {
    let mut ledgers = store.ledgers(keys).await.unwrap();
    for l in &mut ledgers {
        l.settle(store.now(), &store.terms());
    }
    ledgers
}

async fn run(db: Db, lifting: Lifting, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let Some(url) = ledger_url(db).await else { return Ok(()) };
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let dyn_clock: SharedClock = clock.clone();
    let store = Store::open(&url, dyn_clock, Terms::default()).await.unwrap();
    let assets = assets();
    let keys: Vec<String> = assets.iter().map(|a| asset_key(a.kind, &a.asset_id)).collect();
    let mut cases: Vec<String> = (0..4).map(|i| format!("（2024）京0105执{}号", i + 1)).collect();
    let mut standing = DebtorStanding::Enforced;
    for (n, step) in steps.into_iter().enumerate() {
        let before = held(&store, &keys).await;
        let live: Vec<(String, String)> =
            before.iter().flat_map(|l| l.queue().map(|(_, s)| (s.id.clone(), s.case_number.clone()))).collect();
        let (enforcing, command) = match step {
            Step::Enforce(op) => {
                let enforcing = op.enforces();
                (enforcing, command(&store, &clock, (&assets, COMPANY_KEY), &mut cases, (n + 1, &live), op).await)
            }
            Step::Hours(hours) => {
                clock.advance(chrono::Duration::hours(hours));
                (false, None)
            }
            Step::Decide(act, grounds) => {
                let case = if act == BankruptcyAct::Review { cases[0].clone() } else { BANKRUPTCY_CASE.into() };
                let decision = Decision {
                    reference: format!("（2027）京0105破1号之{}", n + 1),
                    court: "京0105".into(),
                    case_number: case,
                    grounds: if act == BankruptcyAct::Review { format!("consent {grounds}") } else { String::new() },
                    at: clock.now(),
                };
                let command = Command::Bankruptcy {
                    request: RequestKey::of("京0105", "officer-1", &format!("d{n}"), &[]),
                    debtor_key: COMPANY_KEY.into(),
                    debtor: "9111**********341L".into(),
                    kind: DebtorKind::EnterpriseLegalPerson,
                    act,
                    decision,
                    lifting,
                };
                (false, Some(command))
            }
        };
        let Some(command) = command else { continue };
        let deciding = matches!(command, Command::Bankruptcy { .. });
        let refusal = matches!(command, Command::Bankruptcy { act: BankruptcyAct::Refuse, .. });
        let result = store.execute(command).await;
        prop_assert!(
            !matches!(result, Err(LedgerError::Db(_) | LedgerError::Corrupt(_))),
            "step {} failed inside the database: {:?}",
            n,
            result
        );
        if enforcing && standing != DebtorStanding::Enforced {
            prop_assert!(result.is_err(), "step {n} seized, deducted or sold while {standing:?}: {result:?}");
        }
        let after = held(&store, &keys).await;
        if let Ok(Reply::Bankruptcy(outcome)) = &result {
            standing = DebtorStanding::try_from(outcome.standing).unwrap();
            if refusal {
                prop_assert_eq!(&before, &after, "the refusal at step {} changed a seizure", n);
            }
            if standing == DebtorStanding::Bankrupt && lifting == Lifting::AtOnce {
                let left: Vec<_> = after.iter().flat_map(|l| l.queue().map(|(_, s)| s.id.clone())).collect();
                prop_assert!(left.is_empty(), "the acceptance at step {n} left {left:?} live");
            }
        }
        if standing == DebtorStanding::Bankrupt && !deciding {
            // Nothing takes effect on a bankrupt debtor's asset: every live seizure holds no more than before.
            for l in &after {
                for (_, s) in l.queue() {
                    let was = before.iter().flat_map(|b| &b.seizures).find(|b| b.id == s.id).map_or(0, |b| b.effective);
                    prop_assert!(s.effective <= was, "seizure {} grew on a bankrupt's asset at step {}", s.id, n);
                }
            }
        }
        let violations = store.verify().await.unwrap();
        prop_assert!(violations.is_empty(), "after step {n}: {violations:?}");
    }
    Ok(())
}

fn lifting() -> impl Strategy<Value = Lifting> {
    prop_oneof![Just(Lifting::HoldingCourts), Just(Lifting::AtOnce)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn r24_r26_hold_over_any_interleaving_on_sqlite(lifting in lifting(), steps in prop::collection::vec(step(), 1..60)) {
        tokio::runtime::Runtime::new().unwrap().block_on(run(Db::Sqlite, lifting, steps))?;
    }

    #[test]
    fn r24_r26_hold_over_any_interleaving_on_postgres(lifting in lifting(), steps in prop::collection::vec(step(), 1..60)) {
        tokio::runtime::Runtime::new().unwrap().block_on(run(Db::Postgres, lifting, steps))?;
    }
}
