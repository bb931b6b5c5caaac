//! Terminated cases in the store (R30): a termination schedules the case's
//! ten re-searches and keeps its debtors sealed for them; a resumption moves
//! the case's seizures to its 执恢 case with their rank and drops what was
//! still to come of the schedule.

use std::time::Duration;

use sqlx::{AnyConnection, Row};

use super::{
    Backend, Store,
    cases::stored_state,
    micros,
    rows::{self, Bind, RESEARCH_DEBTORS, RESEARCHES},
};
use crate::{
    core::{
        clock::{Time, beijing_date, beijing_midnight, from_micros},
        identifiers::CaseNumber,
        proto::{self, ResumeCaseResponse, TerminateCaseResponse, ts},
    },
    ledger::{
        LedgerError,
        command::{Reply, ResearchDebtor},
        rules::{self, CaseState, ChangeKind},
    },
};

impl Store {
    /// The state `case` is registered in, if it is.
    async fn case_state(&self, conn: &mut AnyConnection, case: &str) -> Result<Option<CaseState>, LedgerError> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM cases WHERE case_number = $1")
            .bind(case)
            .fetch_optional(&mut *conn)
            .await?;
        state.as_deref().map(stored_state).transpose()
    }

    /// R30: terminates `case` for now at `at`, registering its debtors and scheduling its re-searches.
    pub(super) async fn terminate(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        debtors: &[ResearchDebtor],
        at: Time,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let number = case.to_string();
        rules::termination(case, self.case_state(conn, &number).await?)?;
        for d in debtors {
            self.register_case(conn, case, (&d.key, &d.masked), now).await?;
        }
        sqlx::query("UPDATE cases SET state = 'terminated', terminated_at = $1 WHERE case_number = $2")
            .bind(micros(at))
            .bind(&number)
            .execute(&mut *conn)
            .await?;
        let sealed = debtors.iter().enumerate().map(|(idx, d)| {
            vec![
                Bind::Text(number.clone()),
                Bind::Int(i64::try_from(idx).unwrap_or(i64::MAX)),
                Bind::Text(d.key.clone()),
                Bind::Text(d.masked.clone()),
                Bind::Int(i64::from(d.organisation)),
                Bind::Text(hex::encode(&d.sealed)),
            ]
        });
        rows::insert_many(conn, RESEARCH_DEBTORS, &sealed.collect::<Vec<_>>()).await?;
        let days = rules::research_days(at);
        let due = (1..).zip(&days).map(|(round, due)| {
            vec![
                Bind::Text(number.clone()),
                Bind::Int(round),
                Bind::Text(case.court_code.clone()),
                Bind::Int(micros(*due)),
            ]
        });
        rows::insert_many(conn, RESEARCHES, &due.collect::<Vec<_>>()).await?;
        let message = format!(
            "{number} terminated for now on {}: its seizures stay in force (renew them as usual); its debtors are \
             searched again every six months, from {} to {} (R30)",
            rules::day(at),
            days.first().map(|d| rules::day(*d)).unwrap_or_default(),
            days.last().map(|d| rules::day(*d)).unwrap_or_default(),
        );
        Ok(Reply::Terminated(TerminateCaseResponse {
            case: Some(self.case_record(conn, &number).await?),
            researches_due: days.into_iter().map(ts).collect(),
            message,
        }))
    }

    /// R30: resumes the terminated `case` under `new_case`: its seizures move with their rank, the
    /// re-searches still to come are dropped, and the terminated case is closed.
    pub(super) async fn resume(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        new_case: &CaseNumber,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let (number, new_number) = (case.to_string(), new_case.to_string());
        rules::resumption(case, self.case_state(conn, &number).await?, new_case)?;
        let mut w = self.open_case(conn, &number, now).await?;
        let why = format!("resumption of {number}");
        for (l, changes) in w.ledgers.iter_mut().zip(&mut w.changes) {
            changes.extend(l.change_holder(&number, &new_case.court_code, &new_number, now, &why));
        }
        let moved: usize =
            w.changes.iter().map(|c| c.iter().filter(|c| c.kind == ChangeKind::HolderChanged).count()).sum();
        self.commit_ledgers(conn, w).await?;
        Self::register_successor(conn, &number, new_case, now).await?;
        sqlx::query("UPDATE cases SET state = 'closed' WHERE case_number = $1")
            .bind(&number)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM researches WHERE case_number = $1 AND done_at IS NULL")
            .bind(&number)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM research_debtors WHERE case_number = $1").bind(&number).execute(&mut *conn).await?;
        let message = format!(
            "{number} resumed as {new_number}: {moved} seizure(s) now held by it, rank, references and dates \
             unchanged; no more re-searches of {number} (R30)"
        );
        Ok(Reply::Resumed(ResumeCaseResponse {
            case: Some(self.case_record(conn, &new_number).await?),
            seizures_moved: u32::try_from(moved).unwrap_or(u32::MAX),
            message,
        }))
    }

    /// The re-searches of `court`'s terminated cases (of `case` only, when given), by due date.
    pub async fn researches(&self, court: &str, case: Option<&str>) -> Result<Vec<proto::Research>, LedgerError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT case_number, round, due_at, done_at, search_id, found, new_assets FROM researches \
             WHERE court = $1 AND ($2 = '' OR case_number = $2) ORDER BY due_at, case_number, round",
        )
        .bind(court)
        .bind(case.unwrap_or_default())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(proto::Research {
                    case_number: r.try_get(0)?,
                    round: u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0),
                    due: Some(ts(from_micros(r.try_get(2)?))),
                    done_at: r.try_get::<Option<i64>, _>(3)?.map(|t| ts(from_micros(t))),
                    search_id: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                    found: count(r.try_get(5)?),
                    new_assets: count(r.try_get(6)?),
                })
            })
            .collect()
    }
}

/// A re-search that is due, claimed by this replica for a while (R30).
#[derive(Debug, Clone)]
pub struct DueResearch {
    /// The terminated case.
    pub case_number: String,
    /// Which of the ten.
    pub round: i64,
    /// The court it belongs to.
    pub court: String,
    /// Its debtors, sealed for their places.
    pub debtors: Vec<ResearchDebtor>,
}

/// How a replica claims the re-searches due.
#[derive(Debug, Clone, Copy)]
pub struct ResearchClaim {
    /// At most this many due ones (those of the same debtors come along).
    pub limit: usize,
    /// Held this long.
    pub lease: Duration,
    /// Re-searches of the same debtors due within this are brought forward.
    pub window: Duration,
    /// Re-searches a court starts per Beijing day, apart from its search quota (R30).
    pub allowance: u32,
}

impl Store {
    /// Claims re-searches due by now that no replica holds and whose court has allowance left
    /// today, with every re-search of the same debtors due within the window (brought forward: one
    /// question serves them); the rest wait for the next day.
    pub async fn claim_researches(&self, claim: ResearchClaim) -> Result<Vec<DueResearch>, LedgerError> {
        let ResearchClaim { limit, lease, window, allowance } = claim;
        let today = micros(beijing_midnight(beijing_date(self.clock.now())));
        let now = self.clock.micros();
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let ahead = now.saturating_add(i64::try_from(window.as_micros()).unwrap_or(i64::MAX));
        // SQLite: the write lock up front; a deferred transaction that read first could not upgrade.
        let begin = if self.backend == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
        let mut tx = self.pool.begin_with(begin).await?;
        let skip = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        // `court || ''` and the unary `+` below keep SQLite's planner on the index that narrows (those
        // done today; the cases asked) instead of one that orders: that read every re-search per claim.
        let due = sqlx::query(&format!(
            "SELECT case_number, round, court FROM researches WHERE done_at IS NULL AND due_at <= $1 \
             AND lease_until < $1 AND court NOT IN (SELECT court || '' AS c FROM researches WHERE done_at >= $3 \
             GROUP BY c HAVING COUNT(*) >= $4) ORDER BY due_at, case_number, round LIMIT $2{skip}"
        ))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(today)
        .bind(i64::from(allowance))
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed: Vec<(String, i64, String)> = due
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        if !claimed.is_empty() {
            // The next re-search of each case whose debtors are among those being asked, due within the window.
            let cases = (0..claimed.len()).map(|i| format!("${}", i + 3)).collect::<Vec<_>>().join(", ");
            // Locked as the due ones are (PostgreSQL): another replica's claim skips them, never asks them twice.
            let sql = format!(
                "SELECT r.case_number, r.round, r.court FROM researches r \
                 WHERE +r.done_at IS NULL AND +r.due_at <= $1 AND r.lease_until < $2 AND r.case_number IN \
                 (SELECT d.case_number FROM research_debtors d WHERE d.debtor_key IN \
                 (SELECT debtor_key FROM research_debtors WHERE case_number IN ({cases}))) \
                 ORDER BY r.case_number, r.round{skip}"
            );
            let mut q = sqlx::query(&sql).bind(ahead).bind(now);
            for (case, _, _) in &claimed {
                q = q.bind(case.clone());
            }
            for r in q.fetch_all(&mut *tx).await? {
                let (case, round, court): (String, i64, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                // A case's earliest round only: the next comes six months later.
                if !claimed.iter().any(|(c, _, _)| *c == case) {
                    claimed.push((case, round, court));
                }
            }
        }
        // Within this claim too, no court beyond what it has left today.
        let courts: Vec<(String, i64)> =
            sqlx::query_as("SELECT court || '' AS c, COUNT(*) FROM researches WHERE done_at >= $1 GROUP BY c")
                .bind(today)
                .fetch_all(&mut *tx)
                .await?;
        let mut started: std::collections::HashMap<String, u64> =
            courts.into_iter().map(|(c, n)| (c, u64::try_from(n).unwrap_or(u64::MAX))).collect();
        claimed.retain(|(_, _, court)| {
            let n = started.entry(court.clone()).or_default();
            let keep = rules::within_allowance(*n, allowance);
            *n += u64::from(keep);
            keep
        });
        let mut out = Vec::new();
        for (case_number, round, court) in claimed {
            sqlx::query("UPDATE researches SET lease_until = $1 WHERE case_number = $2 AND round = $3")
                .bind(until)
                .bind(&case_number)
                .bind(round)
                .execute(&mut *tx)
                .await?;
            let debtors = sqlx::query(
                "SELECT debtor_key, masked, organisation, sealed FROM research_debtors WHERE case_number = $1 \
                 ORDER BY idx",
            )
            .bind(&case_number)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|d| {
                let sealed = hex::decode(d.try_get::<String, _>(3)?)
                    .map_err(|_| LedgerError::Corrupt(format!("sealed debtor of {case_number} is not hex")))?;
                Ok(ResearchDebtor {
                    key: d.try_get(0)?,
                    masked: d.try_get(1)?,
                    organisation: d.try_get::<i64, _>(2)? != 0,
                    sealed,
                })
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
            out.push(DueResearch { case_number, round, court, debtors });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records that each re-search `(case, round)` was carried out by its search: one transaction.
    pub async fn researches_done(&self, done: &[(String, i64, String)]) -> Result<(), LedgerError> {
        let now = self.clock.micros();
        let mut tx = self.pool.begin().await?;
        for (case_number, round, search_id) in done {
            sqlx::query("UPDATE researches SET search_id = $1, done_at = $2 WHERE case_number = $3 AND round = $4")
                .bind(search_id)
                .bind(now)
                .bind(case_number)
                .bind(round)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The re-searches due by now and not yet started, and when the oldest of them fell due.
    pub async fn researches_waiting(&self) -> Result<(u64, Option<Time>), LedgerError> {
        let mut conn = self.reader().await?;
        let (n, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(due_at) FROM researches WHERE done_at IS NULL AND due_at <= $1")
                .bind(self.clock.micros())
                .fetch_one(&mut *conn)
                .await?;
        Ok((u64::try_from(n).unwrap_or(0), oldest.map(from_micros)))
    }
}

/// A stored count, 0 while unknown.
fn count(n: Option<i64>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}
