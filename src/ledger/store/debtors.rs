//! The debtor as a whole in the store: where a debtor stands between
//! enforcement and bankruptcy, the decisions that move it (R24–R26) and the
//! events that tell every court with a case against it, and the check every
//! enforcement step makes against it. A decision on a debtor and
//! a step on one of its assets exclude each other: on PostgreSQL through a
//! per-debtor advisory lock (shared by steps, exclusive for a decision), on
//! SQLite through its one writer; so a seizure racing an acceptance is either
//! committed before it (and lifted by it) or refused.

use sqlx::{AnyConnection, Row};

use super::{Backend, LIVE, Store, micros};
use crate::{
    core::{
        clock::{Time, from_micros},
        identifiers::CaseNumber,
        proto::{self, BankruptcyOutcome, DebtorStanding, ts},
    },
    ledger::{
        LedgerError,
        command::Reply,
        rules::{self, BankruptcyAct, DebtorKind, Decision, EnforcementStep, Lifting, Standing},
    },
};

impl Store {
    /// Takes the debtor's lock for the rest of the transaction: `exclusive` for a decision on it.
    pub(super) async fn lock_debtor(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
        exclusive: bool,
    ) -> Result<(), LedgerError> {
        if self.backend != Backend::Postgres || debtor_key.is_empty() {
            return Ok(());
        }
        let lock = if exclusive { "pg_advisory_xact_lock" } else { "pg_advisory_xact_lock_shared" };
        sqlx::query(&format!("SELECT 1 FROM (SELECT {lock}(hashtextextended($1, 1))) AS locked"))
            .bind(format!("debtor:{debtor_key}"))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Where the debtor stands now (enforced when its key is unknown).
    pub(super) async fn standing(&self, conn: &mut AnyConnection, debtor_key: &str) -> Result<Standing, LedgerError> {
        if debtor_key.is_empty() {
            return Ok(Standing::Enforced);
        }
        let row = sqlx::query(
            "SELECT s.standing, d.decision_reference, d.court, d.case_number, d.grounds, d.decided_at \
             FROM debtor_standing s JOIN debtor_decisions d ON d.id = s.decision WHERE s.debtor_key = $1",
        )
        .bind(debtor_key)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(Standing::Enforced) };
        let standing: String = row.try_get(0)?;
        let decision = decision_of(&row, 1)?;
        match standing.as_str() {
            "review" => Ok(Standing::InReview(decision)),
            "bankrupt" => Ok(Standing::Bankrupt(decision)),
            other => Err(LedgerError::Corrupt(format!("debtor standing `{other}`"))),
        }
    }

    /// R24–R26: may `step` be taken on an asset of the debtor `debtor_key` now? Holds the
    /// debtor's shared lock to the end of the step, so no decision on the debtor commits meanwhile.
    pub(super) async fn check_standing(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
        step: EnforcementStep,
        approval: &str,
    ) -> Result<(), LedgerError> {
        self.lock_debtor(conn, debtor_key, false).await?;
        let standing = self.standing(conn, debtor_key).await?;
        Ok(rules::step_allowed(&standing, step, approval)?)
    }

    /// The owner's key of the asset a seizure is on.
    pub(super) async fn owner_of(&self, conn: &mut AnyConnection, asset_key: &str) -> Result<String, LedgerError> {
        let owner = sqlx::query_scalar("SELECT debtor_key FROM assets WHERE asset_key = $1")
            .bind(asset_key)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(owner.unwrap_or_default())
    }

    /// A decision on a debtor's bankruptcy: recorded, its standing moved, every court with a case
    /// against it told, and on acceptance its seizures lifted, or left to their courts (R24–R26).
    pub(super) async fn bankruptcy(
        &self,
        conn: &mut AnyConnection,
        (debtor_key, debtor, kind): (&str, &str, DebtorKind),
        (act, lifting): (BankruptcyAct, Lifting),
        decision: &Decision,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        self.lock_debtor(conn, debtor_key, true).await?;
        // The case the decision is taken under is a case against the debtor from now: its court
        // hears of what follows and reads the debtor's picture (R27).
        let case = CaseNumber::parse(&decision.case_number)
            .map_err(|e| LedgerError::Corrupt(format!("decision's case {}: {e}", decision.case_number)))?;
        self.register_case(conn, &case, (debtor_key, debtor), now).await?;
        let standing = self.standing(conn, debtor_key).await?;
        match act {
            BankruptcyAct::Review => {
                let refused = self.refused(conn, debtor_key).await?;
                rules::bankruptcy_review(kind, &standing, &refused, &decision.grounds)?;
            }
            BankruptcyAct::Accept => rules::bankruptcy_acceptance(&standing)?,
            BankruptcyAct::Refuse => rules::bankruptcy_refusal(&standing)?,
            BankruptcyAct::Dismiss => rules::bankruptcy_dismissal(&standing)?,
        }
        // A refusal keeps the grounds of the review it ends: they are not used again (R26).
        let grounds = match (&standing, act) {
            (Standing::InReview(review), BankruptcyAct::Refuse) => review.grounds.clone(),
            _ => decision.grounds.clone(),
        };
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO debtor_decisions (id, debtor_key, act, decision_reference, court, case_number, grounds, \
             decided_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(debtor_key)
        .bind(act.as_str())
        .bind(&decision.reference)
        .bind(&decision.court)
        .bind(&decision.case_number)
        .bind(&grounds)
        .bind(micros(decision.at))
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM debtor_standing WHERE debtor_key = $1").bind(debtor_key).execute(&mut *conn).await?;
        let (now_standing, stored) = match act {
            BankruptcyAct::Review => (DebtorStanding::InReview, Some("review")),
            BankruptcyAct::Accept => (DebtorStanding::Bankrupt, Some("bankrupt")),
            BankruptcyAct::Refuse | BankruptcyAct::Dismiss => (DebtorStanding::Enforced, None),
        };
        if let Some(stored) = stored {
            sqlx::query("INSERT INTO debtor_standing (debtor_key, standing, decision) VALUES ($1, $2, $3)")
                .bind(debtor_key)
                .bind(stored)
                .bind(&id)
                .execute(&mut *conn)
                .await?;
        }
        let (mut lifted, mut awaiting) = (0, 0);
        if act == BankruptcyAct::Accept {
            match lifting {
                Lifting::AtOnce => lifted = self.lift_all(conn, debtor_key, decision, now).await?,
                Lifting::HoldingCourts => awaiting = self.live_on_assets(conn, debtor_key).await?,
            }
        }
        let due = rules::lift_due(now);
        // The last day of the seven, as courts write it (`due` is the midnight after it).
        let last_day = rules::day(due - chrono::Duration::microseconds(1));
        let message = match (act, lifting) {
            (BankruptcyAct::Review, _) => format!(
                "the debtor is in bankruptcy review by {}: every enforcement case against it is suspended; \
                 renew what would lapse meanwhile (R24)",
                decision.reference
            ),
            (BankruptcyAct::Accept, Lifting::AtOnce) => format!(
                "bankruptcy accepted by {}: {lifted} seizure(s) on the debtor's assets lifted, every release ordered \
                 at its registry; funds deducted but not paid out go to the bankruptcy court by the end of {last_day} (R25)",
                decision.reference
            ),
            (BankruptcyAct::Accept, Lifting::HoldingCourts) => format!(
                "bankruptcy accepted by {}: every court holding a seizure on the debtor's assets lifts it by the end \
                 of {last_day} ({awaiting} to lift), and hands over funds deducted but not paid out by then (R25)",
                decision.reference
            ),
            (BankruptcyAct::Refuse, _) => format!(
                "bankruptcy refused by {}: every case against the debtor resumes, seizures keep their rank and \
                 dates (R26)",
                decision.reference
            ),
            (BankruptcyAct::Dismiss, _) => format!(
                "bankruptcy dismissed by {}: every case against the debtor resumes; the seizures lifted on \
                 acceptance stay lifted, courts seize anew (R26)",
                decision.reference
            ),
        };
        self.tell_courts(conn, debtor_key, act, decision, &message).await?;
        let accepted = act == BankruptcyAct::Accept;
        Ok(Reply::Bankruptcy(BankruptcyOutcome {
            standing: now_standing as i32,
            decision: Some(proto::BankruptcyDecision {
                decision_reference: decision.reference.clone(),
                court_code: decision.court.clone(),
                case_number: decision.case_number.clone(),
                grounds: decision.grounds.clone(),
                decided_at: Some(ts(decision.at)),
            }),
            lifted,
            message,
            awaiting_lift: awaiting,
            lift_due: accepted.then(|| ts(due)),
        }))
    }

    /// An event of the decision to every court with a case against the debtor, once per case
    /// (R24–R26); the decision's own case is one (the step registered it).
    async fn tell_courts(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
        act: BankruptcyAct,
        decision: &Decision,
        message: &str,
    ) -> Result<(), LedgerError> {
        let rows = sqlx::query(
            "SELECT DISTINCT c.court, c.case_number FROM cases c JOIN case_debtors d ON d.case_number = c.case_number \
             WHERE d.debtor_key = $1 ORDER BY c.court, c.case_number",
        )
        .bind(debtor_key)
        .fetch_all(&mut *conn)
        .await?;
        let told: Vec<(String, String)> =
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?;
        self.queue_events(conn, act.event(), &decision.reference, &told, message).await
    }

    /// How many live seizures are on the debtor's assets.
    async fn live_on_assets(&self, conn: &mut AnyConnection, debtor_key: &str) -> Result<u32, LedgerError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM seizures s JOIN assets a ON a.asset_key = s.asset_key \
             WHERE a.debtor_key = $1 AND s.state IN {LIVE}"
        ))
        .bind(debtor_key)
        .fetch_one(&mut *conn)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The refusals of the debtor's reviews, each with the grounds of the review it refused (R26).
    async fn refused(&self, conn: &mut AnyConnection, debtor_key: &str) -> Result<Vec<Decision>, LedgerError> {
        let rows = sqlx::query(
            "SELECT decision_reference, court, case_number, grounds, decided_at FROM debtor_decisions \
             WHERE debtor_key = $1 AND act = 'refused'",
        )
        .bind(debtor_key)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(|r| decision_of(r, 0)).collect()
    }

    /// R25: lifts every live seizure on the debtor's assets; how many. A few hundred assets at a
    /// time, all in the step's one transaction: the acceptance is recorded whole or not at all.
    async fn lift_all(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
        decision: &Decision,
        now: Time,
    ) -> Result<u32, LedgerError> {
        let keys: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT a.asset_key FROM assets a JOIN seizures s ON s.asset_key = a.asset_key \
             WHERE a.debtor_key = $1 AND s.state IN {LIVE} ORDER BY a.asset_key"
        ))
        .bind(debtor_key)
        .fetch_all(&mut *conn)
        .await?;
        let mut lifted = 0;
        for chunk in keys.chunks(LIFT_CHUNK) {
            let mut w = self.open_ledgers(conn, chunk).await?;
            for ((l, changes), orders) in w.ledgers.iter_mut().zip(&mut w.changes).zip(&mut w.orders) {
                let outcome = l.lift_for_bankruptcy(decision, now, &self.terms);
                lifted += outcome.orders.len();
                changes.extend(outcome.changes);
                orders.extend(outcome.orders);
            }
            self.commit_ledgers(conn, w).await?;
        }
        Ok(u32::try_from(lifted).unwrap_or(u32::MAX))
    }
}

/// Assets an acceptance lifts per load: well under any database's limit of bound parameters.
const LIFT_CHUNK: usize = 500;

/// A decision from columns `at..at+5` (reference, court, case, grounds, decided at).
pub(super) fn decision_of(row: &sqlx::any::AnyRow, at: usize) -> Result<Decision, LedgerError> {
    Ok(Decision {
        reference: row.try_get(at)?,
        court: row.try_get(at + 1)?,
        case_number: row.try_get(at + 2)?,
        grounds: row.try_get(at + 3)?,
        at: from_micros(row.try_get(at + 4)?),
    })
}
