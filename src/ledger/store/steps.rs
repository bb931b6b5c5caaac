//! The steps on seizures: place, release, renew, deduct, dispose, and a
//! registry's acknowledgement of an order. Each loads what the rules need,
//! asks them, and commits.

use sqlx::{AnyConnection, Row};

use super::{Backend, LIVE, Store, micros};
use crate::{
    core::{
        clock::{Time, from_micros},
        identifiers::CaseNumber,
        proto::AssetKind,
    },
    ledger::{
        LedgerError, asset_key,
        command::{Ack, Reply, Undelivered},
        rules::{self, Asset, Change, ChangeKind, Designation, EnforcementStep, Ledger, Outcome, RuleError, Terms},
        views,
    },
};

impl Store {
    /// An order not acknowledged (`why`): due again at `retry_at`.
    async fn undelivered(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        retry_at: Time,
        why: &str,
    ) -> Result<Reply, LedgerError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, lease_until = 0, last_error = $2 WHERE id = $3",
        )
        .bind(micros(retry_at))
        .bind(why)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        Ok(Reply::Done)
    }

    /// The designation that stopped `case`, if its court was designated away (R12).
    pub(super) async fn designation(
        &self,
        conn: &mut AnyConnection,
        case: &str,
    ) -> Result<Option<Designation>, LedgerError> {
        let row = sqlx::query("SELECT to_court, decision_reference, decided_at FROM designations WHERE from_case = $1")
            .bind(case)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match row {
            Some(r) => Some(Designation {
                to_court: r.try_get(0)?,
                decision: r.try_get(1)?,
                decided_at: from_micros(r.try_get(2)?),
            }),
            None => None,
        })
    }

    /// R12 for a step of `case`.
    async fn check_not_stopped(
        &self,
        conn: &mut AnyConnection,
        case: &str,
        emergency: &str,
    ) -> Result<(), LedgerError> {
        let designation = self.designation(conn, case).await?;
        if rules::stop_on_designation(case, designation.as_ref(), emergency)? {
            let to_court = designation.map(|d| d.to_court).unwrap_or_default();
            tracing::warn!(case, to_court, approval = emergency, "emergency measure on a designated case (R12)");
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn place(
        &self,
        conn: &mut AnyConnection,
        (asset, debtor_key): (&Asset, &str),
        case: &CaseNumber,
        (amount, claim): (i64, Option<&(String, i64)>),
        emergency: &str,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let case_number = case.to_string();
        if asset.kind == AssetKind::Deposit {
            self.lock_case(conn, &case_number).await?;
        }
        self.check_not_stopped(conn, &case_number, emergency).await?;
        self.check_standing(conn, debtor_key, EnforcementStep::Seize, emergency).await?;
        let key = asset_key(asset.kind, &asset.asset_id);
        sqlx::query(
            "INSERT INTO assets (asset_key, kind, asset_id, registry, debtor, unit, total, sale_started, disposed, total_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (asset_key) DO NOTHING",
        )
        .bind(&key)
        .bind(asset.kind as i64)
        .bind(&asset.asset_id)
        .bind(&asset.registry)
        .bind(&asset.debtor)
        .bind(&asset.unit)
        .bind(asset.total.clamp(0, rules::MAX_AMOUNT))
        .bind(0i64)
        .bind(0i64)
        .bind(micros(asset.total_at))
        .execute(&mut *conn)
        .await?;
        // R4 counts the case's other freezes as of now: their ledgers are locked and settled too.
        let mut keys = vec![key.clone()];
        if asset.kind == AssetKind::Deposit {
            keys.extend(self.case_freezes_elsewhere(conn, &case_number, &asset.unit, &key).await?);
        }
        let mut w = self.open_ledgers(conn, &keys).await?;
        w.settle(now, &self.terms);
        let others: i64 = w
            .ledgers
            .iter()
            .filter(|l| asset_key(l.asset.kind, &l.asset.asset_id) != key)
            .flat_map(|l| l.seizures.iter().filter(|s| s.state.is_live() && s.case_number == case_number))
            .map(|s| s.requested)
            .sum();
        let (l, changes, orders) = w.of(&key)?;
        changes.extend(l.set_total(asset.total, asset.total_at, now, &self.terms));
        rules::claim_cap(asset.kind, &asset.unit, amount, claim, others)?;
        let seq = l.seizures.last().map_or(1, |s| s.seq + 1);
        let id = uuid::Uuid::new_v4().to_string();
        let outcome = l.place(id.clone(), seq, &case.court_code, &case_number, amount, now, &self.terms)?;
        if let Some(placed) = l.seizures.last_mut().filter(|_| asset.kind == AssetKind::Deposit) {
            placed.claim = claim.map(|(_, claimed)| *claimed);
        }
        changes.extend(outcome.changes);
        orders.extend(outcome.orders);
        let ledgers = self.commit_ledgers(conn, w).await?;
        self.register_case(conn, case, (debtor_key, &asset.debtor), now).await?;
        sqlx::query("UPDATE assets SET debtor_key = $1 WHERE asset_key = $2 AND debtor_key = ''")
            .bind(debtor_key)
            .bind(&key)
            .execute(&mut *conn)
            .await?;
        let placed = ledgers
            .iter()
            .find(|l| asset_key(l.asset.kind, &l.asset.asset_id) == key)
            .ok_or_else(|| LedgerError::Corrupt(format!("asset {key} vanished from its own placement")))?;
        Ok(Reply::Control(views::control_result(placed, &id, outcome.message)))
    }

    /// Registers `case` against the debtor (`key`, `masked`) on a seizure, once: a case is
    /// registered on its first seizure, and a debtor added to it on its first seizure of theirs.
    pub(super) async fn register_case(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        (key, masked): (&str, &str),
        now: Time,
    ) -> Result<(), LedgerError> {
        let case_number = Self::insert_case(conn, case, now).await?;
        sqlx::query(
            "INSERT INTO case_debtors (case_number, debtor_key, debtor) VALUES ($1, $2, $3) \
             ON CONFLICT (case_number, debtor_key, debtor) DO NOTHING",
        )
        .bind(&case_number)
        .bind(key)
        .bind(masked)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// R10: the case a court files for a transfer is registered against the debtors of the case it continues.
    pub(super) async fn register_successor(
        conn: &mut AnyConnection,
        from_case: &str,
        case: &CaseNumber,
        now: Time,
    ) -> Result<(), LedgerError> {
        let case_number = Self::insert_case(conn, case, now).await?;
        sqlx::query(
            "INSERT INTO case_debtors (case_number, debtor_key, debtor) \
             SELECT $1, debtor_key, debtor FROM case_debtors WHERE case_number = $2 \
             ON CONFLICT (case_number, debtor_key, debtor) DO NOTHING",
        )
        .bind(&case_number)
        .bind(from_case)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The case's row, once; its case number.
    async fn insert_case(conn: &mut AnyConnection, case: &CaseNumber, now: Time) -> Result<String, LedgerError> {
        let case_number = case.to_string();
        sqlx::query(
            "INSERT INTO cases (case_number, court, state, registered_at) VALUES ($1, $2, 'active', $3) \
             ON CONFLICT (case_number) DO NOTHING",
        )
        .bind(&case_number)
        .bind(&case.court_code)
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
        Ok(case_number)
    }

    /// Serializes the steps of one case that read its other freezes (R4's claim
    /// cap): replicas take a transaction-scoped advisory lock on PostgreSQL,
    /// before any asset row, so the lock order is always case then assets. The
    /// SQLite writer already runs one step at a time.
    async fn lock_case(&self, conn: &mut AnyConnection, case: &str) -> Result<(), LedgerError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS locked")
                .bind(case)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The other accounts in `currency` on which a case has live freezes (R4).
    async fn case_freezes_elsewhere(
        &self,
        conn: &mut AnyConnection,
        case: &str,
        currency: &str,
        key: &str,
    ) -> Result<Vec<String>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT s.asset_key FROM seizures s JOIN assets a ON a.asset_key = s.asset_key \
             WHERE s.case_number = $1 AND a.kind = $2 AND a.unit = $3 AND s.asset_key <> $4 AND s.state IN {LIVE}"
        ))
        .bind(case)
        .bind(AssetKind::Deposit as i64)
        .bind(currency)
        .bind(key)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(|r| r.try_get(0).map_err(LedgerError::from)).collect()
    }

    /// Release, renew, deduct and dispose: one seizure, its holder's step.
    /// `emergency` is `None` for steps R12 does not stop.
    pub(super) async fn on_seizure(
        &self,
        conn: &mut AnyConnection,
        seizure_id: &str,
        case: &str,
        (kind, emergency): (EnforcementStep, Option<&str>),
        step: impl FnOnce(&mut Ledger, &Terms) -> Result<Outcome, RuleError>,
    ) -> Result<Reply, LedgerError> {
        let key: String = sqlx::query("SELECT asset_key FROM seizures WHERE seizure_id = $1")
            .bind(seizure_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| LedgerError::UnknownSeizure(seizure_id.to_string()))?
            .try_get(0)?;
        if let Some(emergency) = emergency {
            self.check_not_stopped(conn, case, emergency).await?;
        }
        let owner = self.owner_of(conn, &key).await?;
        self.check_standing(conn, &owner, kind, emergency.unwrap_or_default()).await?;
        let mut w = self.open_one(conn, &key).await?;
        let (l, changes, orders) = w.one();
        let outcome = step(l, &self.terms)?;
        changes.extend(outcome.changes);
        orders.extend(outcome.orders);
        let ledgers = self.commit_ledgers(conn, w).await?;
        Ok(Reply::Control(views::control_result(&ledgers[0], seizure_id, outcome.message)))
    }

    /// A registry answered an order: its reference and calendar are recorded,
    /// or the order is scheduled again.
    pub(super) async fn delivered(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        result: &Result<Ack, Undelivered>,
        retry_at: Time,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let ack = match result {
            Err(error) => return self.undelivered(conn, id, retry_at, &error.to_string()).await,
            Ok(ack) => ack,
        };
        let row = sqlx::query(
            "SELECT asset_key, seizure_id, kind, registry FROM outbox WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(Reply::Done) };
        let (key, seizure_id, kind, registry): (String, String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
        let mut w = self.open_one(conn, &key).await?;
        let (l, changes, _) = w.one();
        if let Err(lie) = rules::reference_is_its_own(l, &seizure_id, &ack.reference) {
            tracing::warn!(registry, seizure = %seizure_id, reference = %ack.reference, "{lie}");
            return self.undelivered(conn, id, retry_at, &lie.to_string()).await;
        }
        sqlx::query("UPDATE outbox SET delivered_at = $1, lease_until = 0, attempts = attempts + 1 WHERE id = $2")
            .bind(micros(now))
            .bind(id)
            .execute(&mut *conn)
            .await?;
        // A later renewal order supersedes the dates this answer carries.
        let superseded: i64 =
            sqlx::query("SELECT COUNT(*) FROM outbox WHERE seizure_id = $1 AND id > $2 AND kind = $3")
                .bind(&seizure_id)
                .bind(id)
                .bind(rules::OrderKind::Renew.as_str())
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
        if let Some(s) = l.seizures.iter_mut().find(|s| s.id == seizure_id) {
            if s.registry_ref.is_none() && !ack.reference.is_empty() {
                s.registry_ref = Some(ack.reference.clone());
            }
            // The registry's calendar is authoritative for a term it has started (R6).
            if s.state.is_live() && s.start.is_some() && superseded == 0 {
                s.start = ack.start.or(s.start);
                s.end = ack.end.or(s.end);
            }
        }
        let message = format!(
            "{registry} acknowledged the {kind} order, reference {}{}",
            ack.reference,
            ack.end.map(|e| format!(", until {}", rules::day(e))).unwrap_or_default()
        );
        changes.push(Change { seizure_id, kind: ChangeKind::OrderDelivered, at: now, message });
        self.commit_ledgers(conn, w).await?;
        Ok(Reply::Done)
    }
}
