//! Loading and saving one step's ledgers, and mapping rows to the rules' types.
//! A step opens the ledgers it needs ([`Store::open_ledgers`], locked), lets
//! the rules change them, and commits them ([`Store::commit_ledgers`]): what
//! changed is saved, then the events (queued for numbering) and orders are written.

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{Store, micros};
use crate::{
    core::{
        clock::{Time, from_micros},
        proto::AssetKind,
    },
    ledger::{
        LedgerError, asset_key,
        rules::{self, Asset, Change, Ledger, Order, Seizure, SeizureState, Terms},
    },
};

/// The order in which a step's rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Shrink,
    Asset,
    Grow,
}

/// The ledgers one step works on, as loaded and as changed, with the events
/// and orders each has made so far.
pub(super) struct Work {
    /// The ledgers, in key order; the step changes them.
    pub ledgers: Vec<Ledger>,
    before: Vec<Ledger>,
    /// Events per ledger.
    pub changes: Vec<Vec<Change>>,
    /// Orders per ledger.
    pub orders: Vec<Vec<Order>>,
}

impl Work {
    /// Applies the lapses due by `now` to every ledger (R6).
    pub fn settle(&mut self, now: Time, terms: &Terms) {
        for (l, changes) in self.ledgers.iter_mut().zip(&mut self.changes) {
            changes.extend(l.settle(now, terms));
        }
    }

    /// The ledger of `key`, which the step opened.
    pub fn of(&mut self, key: &str) -> Result<(&mut Ledger, &mut Vec<Change>, &mut Vec<Order>), LedgerError> {
        let i = self
            .ledgers
            .iter()
            .position(|l| asset_key(l.asset.kind, &l.asset.asset_id) == key)
            .ok_or_else(|| LedgerError::NeverSeized(key.to_string()))?;
        Ok((&mut self.ledgers[i], &mut self.changes[i], &mut self.orders[i]))
    }

    /// The one ledger of a single-asset step.
    pub fn one(&mut self) -> (&mut Ledger, &mut Vec<Change>, &mut Vec<Order>) {
        // open_one guarantees exactly one.
        (&mut self.ledgers[0], &mut self.changes[0], &mut self.orders[0])
    }
}

impl Store {
    /// Loads the ledgers of `keys` that exist, locked for this transaction.
    pub(super) async fn open_ledgers(&self, conn: &mut AnyConnection, keys: &[String]) -> Result<Work, LedgerError> {
        let ledgers = self.load(conn, keys, true).await?;
        let n = ledgers.len();
        Ok(Work { before: ledgers.clone(), ledgers, changes: vec![Vec::new(); n], orders: vec![Vec::new(); n] })
    }

    /// Loads one asset's ledger, locked; NOT_FOUND if nothing was ever placed on it.
    pub(super) async fn open_one(&self, conn: &mut AnyConnection, key: &str) -> Result<Work, LedgerError> {
        let w = self.open_ledgers(conn, &[key.to_string()]).await?;
        if w.ledgers.is_empty() {
            return Err(LedgerError::NeverSeized(key.to_string()));
        }
        Ok(w)
    }

    /// Saves what the step changed, then writes its events and orders
    /// (with an order for each promotion, R3).
    pub(super) async fn commit_ledgers(
        &self,
        conn: &mut AnyConnection,
        mut w: Work,
    ) -> Result<Vec<Ledger>, LedgerError> {
        for ((l, changes), orders) in w.ledgers.iter().zip(&w.changes).zip(&mut w.orders) {
            orders.extend(rules::promotion_orders(l, changes));
        }
        // Across every ledger of the step, what shrinks is written first, then the assets, then what
        // grows: SQLite checks the invariants row by row, and a freeze lapsed on one account must
        // be written before a new freeze on another that counts on it (R4).
        for phase in [Phase::Shrink, Phase::Asset, Phase::Grow] {
            let mut rows = Vec::new();
            for (l, b) in w.ledgers.iter().zip(&w.before) {
                self.save(conn, l, b, phase, &mut rows).await?;
            }
            insert_many(conn, SEIZURES, &rows).await?;
        }
        self.record(conn, &w).await?;
        Ok(w.ledgers)
    }

    /// Loads the ledgers of `keys` (those that exist), in key order.
    pub(super) async fn load(
        &self,
        conn: &mut AnyConnection,
        keys: &[String],
        lock: bool,
    ) -> Result<Vec<Ledger>, LedgerError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let list = (1..=keys.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT asset_key, kind, asset_id, registry, debtor, unit, total, sale_started, disposed, total_at, \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM debtor_standing d WHERE d.debtor_key = assets.debtor_key \
             AND d.standing = 'bankrupt') THEN 1 ELSE 0 END AS BIGINT) FROM assets WHERE asset_key IN ({list}) ORDER BY asset_key{}",
            self.lock_suffix(lock)
        );
        let mut q = sqlx::query(&sql);
        for k in &keys {
            q = q.bind(k.clone());
        }
        let mut ledgers: Vec<(String, Ledger)> = Vec::new();
        for row in q.fetch_all(&mut *conn).await? {
            let asset = Asset {
                kind: kind_of(row.try_get(1)?)?,
                asset_id: row.try_get(2)?,
                registry: row.try_get(3)?,
                debtor: row.try_get(4)?,
                unit: row.try_get(5)?,
                total: row.try_get(6)?,
                sale_started: row.try_get::<i64, _>(7)? != 0,
                disposed: row.try_get::<i64, _>(8)? != 0,
                total_at: from_micros(row.try_get(9)?),
            };
            let owner_bankrupt = row.try_get::<i64, _>(10)? != 0;
            ledgers.push((row.try_get(0)?, Ledger { asset, seizures: Vec::new(), owner_bankrupt }));
        }
        // Seizures belong to known assets: none known, none to read (a search's usual case).
        if ledgers.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT asset_key, seizure_id, seq, court, case_number, requested, effective, state, placed_at, start_at, \
             end_at, ended_at, registry_ref, renewals, claim FROM seizures WHERE asset_key IN ({list}) ORDER BY asset_key, seq"
        );
        let mut q = sqlx::query(&sql);
        for k in &keys {
            q = q.bind(k.clone());
        }
        let at: std::collections::HashMap<String, usize> =
            ledgers.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
        for row in q.fetch_all(&mut *conn).await? {
            let key: String = row.try_get(0)?;
            if let Some(&i) = at.get(&key) {
                ledgers[i].1.seizures.push(seizure(&row)?);
            }
        }
        Ok(ledgers.into_iter().map(|(_, l)| l).collect())
    }

    /// Writes one `phase` of what changed in `l` since `before` (the ledger as loaded): the
    /// seizures that shrink (existed, and hold and ask no more than they did), the asset, or those
    /// that grow (a new one always does: it adds to its case's claim, R4); a phase's seizures go
    /// into `rows`, written together. Written in that order, a database checking each row as it is
    /// written (SQLite's invariant triggers) never sees more in effect than the balance, nor a case
    /// over its claim.
    async fn save(
        &self,
        conn: &mut AnyConnection,
        l: &Ledger,
        before: &Ledger,
        phase: Phase,
        rows: &mut Vec<Vec<Bind>>,
    ) -> Result<(), LedgerError> {
        let key = asset_key(l.asset.kind, &l.asset.asset_id);
        let shrinks = |s: &Seizure| {
            before
                .seizures
                .iter()
                .find(|b| b.id == s.id)
                .is_some_and(|b| s.effective <= b.effective && s.requested <= b.requested)
        };
        let changed = l.seizures.iter().filter(|s| !before.seizures.contains(s));
        match phase {
            Phase::Shrink | Phase::Grow => {
                rows.extend(changed.filter(|s| shrinks(s) == (phase == Phase::Shrink)).map(|s| seizure_row(&key, s)));
            }
            Phase::Asset if l.asset != before.asset => {
                let sql = "UPDATE assets SET total = $1, sale_started = $2, disposed = $3, total_at = $4 \
                           WHERE asset_key = $5";
                sqlx::query(sql)
                    .bind(l.asset.total)
                    .bind(i64::from(l.asset.sale_started))
                    .bind(i64::from(l.asset.disposed))
                    .bind(micros(l.asset.total_at))
                    .bind(&key)
                    .execute(&mut *conn)
                    .await?;
            }
            Phase::Asset => {}
        }
        Ok(())
    }

    /// Writes the step's events to the numbering queue and its outbox orders,
    /// under ids taken now: per asset, in the order of its steps.
    async fn record(&self, conn: &mut AnyConnection, w: &Work) -> Result<(), LedgerError> {
        let work: Vec<_> = w.ledgers.iter().zip(&w.changes).zip(&w.orders).map(|((l, c), o)| (l, c, o)).collect();
        let n: usize = work.iter().map(|(_, c, o)| c.len() + o.len()).sum();
        if n == 0 {
            return Ok(());
        }
        let mut ids = self.next_ids(conn, n).await?.into_iter();
        let now = micros(self.clock.now());
        let (mut events, mut outbox) = (Vec::new(), Vec::new());
        for (l, changes, orders) in work {
            let key = asset_key(l.asset.kind, &l.asset.asset_id);
            let holder = |id: &str| {
                l.seizures
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| (s.court.clone(), s.case_number.clone()))
                    .unwrap_or_default()
            };
            for (c, id) in changes.iter().zip(ids.by_ref()) {
                let (court, case) = holder(&c.seizure_id);
                events.push(vec![
                    Bind::Int(id),
                    Bind::Int(micros(c.at)),
                    Bind::Text(c.kind.as_str().into()),
                    Bind::Text(c.seizure_id.clone()),
                    Bind::Text(key.clone()),
                    Bind::Text(court),
                    Bind::Text(case),
                    Bind::Text(c.message.clone()),
                ]);
            }
            for (o, id) in orders.iter().zip(ids.by_ref()) {
                let (court, case) = holder(o.seizure_id());
                outbox.push(vec![
                    Bind::Int(id),
                    Bind::Text(key.clone()),
                    Bind::Text(o.seizure_id().into()),
                    Bind::Text(l.asset.registry.clone()),
                    Bind::Text(o.kind().as_str().into()),
                    Bind::Int(o.amount()),
                    Bind::MaybeInt(o.end().map(micros)),
                    Bind::Text(court),
                    Bind::Text(case),
                    Bind::Int(0),
                    Bind::Int(now),
                    Bind::Int(0),
                    Bind::Int(now),
                    Bind::Text(o.reason().into()),
                ]);
            }
        }
        insert_many(conn, EVENTS, &events).await?;
        insert_many(conn, OUTBOX, &outbox).await
    }
}

/// A value of a row written with others in one statement.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// Text or NULL.
    MaybeText(Option<String>),
    /// An integer or NULL.
    MaybeInt(Option<i64>),
}

/// Where a multi-row write goes: the statement before `VALUES`, after the rows, and the row width.
pub(super) struct Table {
    head: &'static str,
    tail: &'static str,
    width: usize,
}

/// A terminated case's debtors, sealed for its re-searches (R30).
pub(super) const RESEARCH_DEBTORS: Table = Table {
    head: "INSERT INTO research_debtors (case_number, idx, debtor_key, masked, organisation, sealed)",
    tail: "",
    width: 6,
};

/// A terminated case's re-searches (R30).
pub(super) const RESEARCHES: Table =
    Table { head: "INSERT INTO researches (case_number, round, court, due_at)", tail: "", width: 4 };

/// The seizures on an asset, by rank, when proceeds came in (R28).
pub(super) const PROCEEDS_RANKS: Table = Table {
    head: "INSERT INTO proceeds_ranks (proceeds_id, rank, seizure_id, case_number, court)",
    tail: "",
    width: 5,
};

/// Movements of cases' funds (R28).
pub(super) const FUND_MOVEMENTS: Table = Table {
    head: "INSERT INTO fund_movements (id, case_number, kind, amount, proceeds_id, distribution_id, counterparty, at)",
    tail: "",
    width: 8,
};

/// Seizures, new or changed.
const SEIZURES: Table = Table {
    head: "INSERT INTO seizures (seizure_id, asset_key, seq, court, case_number, requested, effective, state, \
           placed_at, start_at, end_at, ended_at, registry_ref, renewals, claim)",
    tail: "ON CONFLICT (seizure_id) DO UPDATE SET court = excluded.court, case_number = excluded.case_number, \
           requested = excluded.requested, effective = excluded.effective, state = excluded.state, \
           start_at = excluded.start_at, end_at = excluded.end_at, ended_at = excluded.ended_at, \
           registry_ref = excluded.registry_ref, renewals = excluded.renewals",
    width: 15,
};

/// The numbering queue of events.
pub(super) const EVENTS: Table = Table {
    head: "INSERT INTO event_queue (id, at, kind, seizure_id, asset_key, court, case_number, message)",
    tail: "",
    width: 8,
};

/// Orders for the registries.
const OUTBOX: Table = Table {
    head: "INSERT INTO outbox (id, asset_key, seizure_id, registry, kind, amount, end_at, court, case_number, \
           attempts, next_attempt_at, lease_until, created_at, reason)",
    tail: "",
    width: 14,
};

/// Bound values per statement. Far under the databases' limits: binding costs more than linearly
/// in sqlx's Any driver (5,000 lifts took 12.8 s at 30,000 binds, 1.45 s at 500; debug build).
const BINDS_PER_STATEMENT: usize = 500;

/// Writes `rows` into `table`, a few hundred values per statement, in order (a
/// database checking each row sees them one by one, as if written apart).
pub(super) async fn insert_many(conn: &mut AnyConnection, table: Table, rows: &[Vec<Bind>]) -> Result<(), LedgerError> {
    for chunk in rows.chunks(BINDS_PER_STATEMENT / table.width) {
        let values = (0..chunk.len())
            .map(|r| {
                let row = (1..=table.width).map(|c| format!("${}", r * table.width + c)).collect::<Vec<_>>();
                format!("({})", row.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("{} VALUES {values} {}", table.head, table.tail);
        let mut q = sqlx::query(&sql);
        for value in chunk.iter().flatten() {
            q = match value {
                Bind::Text(v) => q.bind(v.clone()),
                Bind::Int(v) => q.bind(*v),
                Bind::MaybeText(v) => q.bind(v.clone()),
                Bind::MaybeInt(v) => q.bind(*v),
            };
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A seizure as a row of [`SEIZURES`].
fn seizure_row(key: &str, s: &Seizure) -> Vec<Bind> {
    vec![
        Bind::Text(s.id.clone()),
        Bind::Text(key.into()),
        Bind::Int(s.seq),
        Bind::Text(s.court.clone()),
        Bind::Text(s.case_number.clone()),
        Bind::Int(s.requested),
        Bind::Int(s.effective),
        Bind::Text(s.state.as_str().into()),
        Bind::Int(micros(s.placed_at)),
        Bind::MaybeInt(s.start.map(micros)),
        Bind::MaybeInt(s.end.map(micros)),
        Bind::MaybeInt(s.ended_at.map(micros)),
        Bind::MaybeText(s.registry_ref.clone()),
        Bind::Int(s.renewals),
        Bind::MaybeInt(s.claim),
    ]
}

/// The asset kind a row stores.
pub(super) fn kind_of(stored: i64) -> Result<AssetKind, LedgerError> {
    i32::try_from(stored)
        .ok()
        .and_then(|k| AssetKind::try_from(k).ok())
        .ok_or_else(|| LedgerError::Corrupt(format!("unknown stored asset kind {stored}")))
}

pub(super) fn seizure(row: &AnyRow) -> Result<Seizure, LedgerError> {
    let state: String = row.try_get(7)?;
    Ok(Seizure {
        id: row.try_get(1)?,
        seq: row.try_get(2)?,
        court: row.try_get(3)?,
        case_number: row.try_get(4)?,
        requested: row.try_get(5)?,
        effective: row.try_get(6)?,
        state: SeizureState::parse(&state)
            .ok_or_else(|| LedgerError::Corrupt(format!("unknown stored seizure state {state}")))?,
        placed_at: from_micros(row.try_get(8)?),
        start: row.try_get::<Option<i64>, _>(9)?.map(from_micros),
        end: row.try_get::<Option<i64>, _>(10)?.map(from_micros),
        ended_at: row.try_get::<Option<i64>, _>(11)?.map(from_micros),
        registry_ref: row.try_get(12)?,
        renewals: row.try_get(13)?,
        claim: row.try_get(14)?,
    })
}
