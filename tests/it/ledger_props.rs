//! Property test of the ledger as stored: random sequences of placements,
//! releases, renewals, deductions, lapses (clock jumps), disposals and
//! transfers go through the real store, and after every step `verify` finds no
//! violation, ranks keep their order and nothing acknowledged disappears.

use std::sync::Arc;

use assetgw::{
    core::{
        clock::{Clock, ManualClock, SharedClock, SystemClock},
        identifiers::CaseNumber,
        proto::AssetKind,
    },
    ledger::{
        LedgerError, asset_key,
        command::{Command, Reply, RequestKey},
        model::Model,
        rules::{Asset, Disposal, SeizureState, Terms},
        store::Store,
        views,
    },
};
use proptest::prelude::*;

use crate::harness::*;

/// One step of enforcement on the ledger, as the property tests draw them.
#[derive(Debug, Clone)]
pub enum Op {
    Place { asset: usize, case: usize, amount: i64 },
    Release(usize),
    Renew(usize),
    Deduct(usize, i64),
    Sell(usize),
    Jump(i64),
    Transfer(usize),
}

/// Steps of enforcement, placements the likeliest.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..3, 0usize..4, 1i64..600).prop_map(|(asset, case, amount)| Op::Place { asset, case, amount }),
        2 => (0usize..64).prop_map(Op::Release),
        1 => (0usize..64).prop_map(Op::Renew),
        1 => ((0usize..64), 1i64..400).prop_map(|(i, a)| Op::Deduct(i, a)),
        1 => (0usize..64).prop_map(Op::Sell),
        2 => (1i64..500).prop_map(Op::Jump),
        1 => (0usize..4).prop_map(Op::Transfer),
    ]
}

impl Op {
    /// Whether it seizes, deducts or sells: what a suspended debtor's cases may not do (R24, R25).
    pub fn enforces(&self) -> bool {
        matches!(self, Op::Place { .. } | Op::Deduct(..) | Op::Sell(_))
    }
}

/// The command `op` makes at step `n` on `assets` (owned by `debtor_key`), given the live
/// seizures `live` (id, case); a clock jump or a case transfer is done here and makes none.
pub async fn command(
    store: &Store,
    clock: &ManualClock,
    (assets, debtor_key): (&[Asset], &str),
    cases: &mut [String],
    (n, live): (usize, &[(String, String)]),
    op: Op,
) -> Option<Command> {
    let pick = |i: usize| live.get(i % live.len().max(1)).cloned();
    let request = RequestKey::of("京0105", "officer-1", &format!("r{n}"), &[]);
    match op {
        Op::Place { asset, case, amount } => Some(Command::Place {
            debtor_key: debtor_key.into(),
            request,
            asset: assets[asset].clone(),
            case: CaseNumber::parse(&cases[case]).unwrap(),
            amount,
            claim: Some(("CNY".into(), 1_000_000)),
            emergency: String::new(),
            secured: Vec::new(),
        }),
        Op::Release(i) => {
            pick(i).map(|(seizure_id, case)| Command::Release { request, case, seizure_id, emergency: String::new() })
        }
        Op::Renew(i) => pick(i).map(|(seizure_id, case)| Command::Renew {
            request,
            case,
            seizure_id,
            months: None,
            emergency: String::new(),
        }),
        Op::Deduct(i, amount) => pick(i).map(|(seizure_id, case)| Command::Deduct {
            request,
            case,
            seizure_id,
            amount,
            emergency: String::new(),
        }),
        Op::Sell(i) => {
            pick(i).map(|(seizure_id, case)| Command::Dispose { request, case, seizure_id, disposal: Disposal::Sold })
        }
        Op::Jump(days) => {
            clock.advance(chrono::Duration::days(days));
            None
        }
        Op::Transfer(c) => {
            let case = CaseNumber::parse(&cases[c]).unwrap();
            let reply = store
                .execute(Command::Transfer {
                    request: request.clone(),
                    case,
                    to_court: "粤0304".into(),
                    decision: "（2025）京01执监1号".into(),
                    decided_at: clock.now(),
                    handover: true,
                })
                .await;
            if let Ok(Reply::Transfer(t)) = reply {
                let new_case = format!("（2025）粤0304执{n}号");
                let accept = Command::Accept {
                    request: RequestKey::of("粤0304", "officer-1", &format!("r{n}-accept"), &[]),
                    transfer_id: t.transfer.unwrap().transfer_id,
                    new_case: CaseNumber::parse(&new_case).unwrap(),
                };
                store.execute(accept).await.unwrap();
                cases[c] = new_case;
            }
            None
        }
    }
}

fn assets() -> [Asset; 3] {
    let asset = |kind, id: &str, unit: &str, total| Asset {
        kind,
        asset_id: id.into(),
        registry: "r".into(),
        debtor: "110105********1232".into(),
        unit: unit.into(),
        total,
        sale_started: false,
        disposed: false,
        total_at: Default::default(),
    };
    [
        asset(AssetKind::RealEstate, "110105001002GB00001F00010001", "", 1),
        asset(AssetKind::Deposit, "102:6222000011112222", "CNY", 1000),
        asset(AssetKind::Securities, "A123456789:600519", "units", 800),
    ]
}

async fn run(db: Db, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let Some(url) = ledger_url(db).await else { return Ok(()) };
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let dyn_clock: SharedClock = clock.clone();
    let store = Store::open(&url, dyn_clock, Terms::default()).await.unwrap();
    let model = Model::load(store.clone()).await.unwrap();
    let assets = assets();
    let keys: Vec<String> = assets.iter().map(|a| asset_key(a.kind, &a.asset_id)).collect();
    let mut cases: Vec<String> = (0..4).map(|i| format!("（2024）京0105执{}号", i + 1)).collect();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut n = 0;
    for op in ops {
        n += 1;
        let ledgers = store.ledgers(&keys).await.unwrap();
        let live: Vec<(String, String)> =
            ledgers.iter().flat_map(|l| l.queue().map(|(_, s)| (s.id.clone(), s.case_number.clone()))).collect();
        let command = command(&store, &clock, (&assets, ""), &mut cases, (n, &live), op).await;
        if let Some(command) = command {
            let result = store.execute(command).await;
            // A rule may refuse a step; the database's own invariant checks never may (they would be INTERNAL).
            prop_assert!(
                !matches!(result, Err(LedgerError::Db(_) | LedgerError::Corrupt(_))),
                "step {} failed inside the database: {:?}",
                n,
                result
            );
            if let Ok(Reply::Control(r)) = result {
                if let Some(s) = r.seizure {
                    acknowledged.push(s.seizure_id);
                }
            }
        }
        let violations = store.verify().await.unwrap();
        prop_assert!(violations.is_empty(), "after step {n}: {violations:?}");
        let after = store.ledgers(&keys).await.unwrap();
        for (before, now) in ledgers.iter().zip(&after) {
            let survivors: Vec<&String> =
                before.queue().map(|(_, s)| &s.id).filter(|id| now.queue().any(|(_, q)| &q.id == *id)).collect();
            let kept: Vec<&String> = now.queue().map(|(_, s)| &s.id).filter(|id| survivors.contains(id)).collect();
            prop_assert_eq!(survivors, kept, "ranks reordered at step {}", n);
        }
        for id in &acknowledged {
            prop_assert!(after.iter().any(|l| l.seizures.iter().any(|s| &s.id == id)), "seizure {} disappeared", id);
        }
        // What searches show (the read model) is what the store holds, lapses due applied, for every case;
        // and the model keeps only the assets with a live seizure.
        model.refresh().await.unwrap();
        let shown = model.ledgers(&keys);
        for (key, shown) in keys.iter().zip(&shown) {
            let mut stored = after.iter().find(|l| &asset_key(l.asset.kind, &l.asset.asset_id) == key).cloned();
            if let Some(l) = &mut stored {
                l.settle(store.now(), &store.terms());
            }
            for case in &cases {
                let summary = |l: &Option<_>| l.as_ref().map(|l| views::summary(l, case)).unwrap_or_default();
                prop_assert_eq!(summary(&stored), summary(shown), "the model differs at step {}", n);
            }
        }
        // Every asset with a live seizure is held; one whose seizures a step ended is not (one whose term ran
        // out stays until the sweep records the lapse, as nothing else tells the model).
        let live = after.iter().filter(|l| l.queue().next().is_some()).count();
        let live_or_lapsed = after
            .iter()
            .filter(|l| l.seizures.iter().any(|s| s.state.is_live() || s.state == SeizureState::Lapsed))
            .count();
        prop_assert!((live..=live_or_lapsed).contains(&model.assets_held()), "{} held", model.assets_held());
    }
    // A gateway starting now loads what the one that followed every step holds.
    let started = Model::load(store.clone()).await.unwrap();
    let summaries = |m: &Model| -> Vec<_> {
        let shown = m.ledgers(&keys);
        cases.iter().flat_map(|c| shown.iter().map(|l| l.as_ref().map(|l| views::summary(l, c)))).collect()
    };
    prop_assert_eq!(summaries(&started), summaries(&model));
    prop_assert_eq!(started.assets_held(), model.assets_held());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn stored_ledger_keeps_its_invariants_on_sqlite(ops in prop::collection::vec(op(), 1..30)) {
        tokio::runtime::Runtime::new().unwrap().block_on(run(Db::Sqlite, ops))?;
    }

    #[test]
    fn stored_ledger_keeps_its_invariants_on_postgres(ops in prop::collection::vec(op(), 1..30)) {
        tokio::runtime::Runtime::new().unwrap().block_on(run(Db::Postgres, ops))?;
    }
}
