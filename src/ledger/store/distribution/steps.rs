//! The steps on a drafted or served plan (R29): serving it, an objection, an
//! opposition, a suit, and the payout on every case's funds.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AnyConnection, Row};

use super::super::{
    Store,
    funds::{Moved, Movement},
};
use super::line_kind;
use crate::{
    core::clock::{Time, from_micros},
    ledger::{
        LedgerError,
        command::{PlanStep, Reply},
        rules::{self, EnforcementStep, Holidays, Line, Objection, Payout, Refusal, Served},
    },
};

/// A plan's row as steps read it.
struct Plan {
    id: String,
    case: String,
    debtor_key: String,
    state: String,
    served: Option<Served>,
    objector: String,
}

impl Store {
    /// R29: a step on a plan: serve, object, oppose, sue, or pay out (the gateway's own payout
    /// has no case).
    pub(in crate::ledger::store) async fn plan_step(
        &self,
        conn: &mut AnyConnection,
        (case, id): (Option<&str>, &str),
        step: &PlanStep,
        holidays: &Holidays,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let debtor_key: Option<String> =
            sqlx::query_scalar("SELECT debtor_key FROM distributions WHERE distribution_id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        let debtor_key = debtor_key.ok_or_else(|| LedgerError::UnknownDistribution(id.into()))?;
        self.lock_debtor(conn, &debtor_key, true).await?;
        let plan = self.plan(conn, id).await?;
        let parties = self.parties(conn, id).await?;
        let creditors: Vec<String> =
            sqlx::query_scalar("SELECT payee FROM distribution_lines WHERE distribution_id = $1 AND kind = 'ordinary'")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
        let creditor = |case: &str| creditors.iter().any(|c| c == case);
        let named = |needs: &'static str, step: &'static str| Refusal::PlanState {
            distribution: id.into(),
            state: plan.state.clone(),
            step,
            needs,
        };
        let party = |case: &str, step: &'static str, why: &'static str| Refusal::NotAParty {
            case: case.into(),
            step,
            distribution: id.into(),
            why,
        };
        if case.is_some_and(|case| case != plan.case && !creditor(case)) {
            return Err(LedgerError::UnknownDistribution(id.into()));
        }
        // A step against a served plan is judged by its period first: once the periods have run the
        // plan is paid, and the period is the reason the step comes too late.
        if let (Some(turn), Some(served)) = (step.objection(), &plan.served) {
            rules::may_take(served, turn, now, holidays)?;
        }
        match (step, case) {
            (PlanStep::Serve(_) | PlanStep::PayOut, Some(case)) if case != plan.case => {
                return Err(party(case, step.name(), "only the drafting case serves and pays out its plan").into());
            }
            (PlanStep::Serve(_), _) if plan.state != "drafted" => return Err(named("drafted", step.name()).into()),
            (PlanStep::Serve(_), _) => {}
            // Paying a paid plan asks for what is so: it is answered as it stands (the sweeper may
            // have paid it first).
            (PlanStep::PayOut, _) if plan.state == "paid" || plan.state == "paid_in_part" => {
                return Ok(Reply::Distribution(self.distribution_in(conn, id).await?));
            }
            (_, _) if plan.state != "served" => return Err(named("served", step.name()).into()),
            (PlanStep::Object(_) | PlanStep::Oppose | PlanStep::Sue, Some(case)) if !creditor(case) => {
                return Err(party(case, step.name(), "only a creditor in the plan objects, opposes or sues").into());
            }
            (PlanStep::Oppose, Some(case)) if case == plan.objector => {
                return Err(party(case, step.name(), "the objector does not oppose its own objection").into());
            }
            (PlanStep::Sue, Some(case)) if case != plan.objector => {
                return Err(party(case, step.name(), "only the objector sues its opponents").into());
            }
            _ => {}
        }
        self.check_standing(conn, &plan.debtor_key, EnforcementStep::Distribute, "").await?;
        let served = plan.served.clone();
        let at = |end: Time| Some(end.timestamp_micros());
        let period = |from: Time| rules::period_end(from, rules::OBJECTION_DAYS, holidays);
        let (kind, message) = match (step, served) {
            (PlanStep::Serve(served_at), _) => {
                let end = period(*served_at);
                sqlx::query("UPDATE distributions SET state = 'served', served_at = $1, next_due = $2 WHERE distribution_id = $3")
                    .bind(served_at.timestamp_micros())
                    .bind(at(end))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let last = rules::day(end - chrono::Duration::seconds(1));
                (
                    "distribution_served",
                    format!("distribution {id} served: objections until the end of {last} (Beijing; R29)"),
                )
            }
            (PlanStep::PayOut, Some(served)) => return self.pay_out(conn, &plan, &served, holidays, now).await,
            (_, None) => {
                return Err(LedgerError::Corrupt(format!("served distribution {id} without its serving time")));
            }
            (PlanStep::Object(asked), Some(_)) => {
                let lines = self.lines(conn, id).await?;
                let corrected = rules::corrections(&lines, asked)?;
                for (i, fix) in corrected.iter().enumerate().filter_map(|(i, f)| f.map(|f| (i, f))) {
                    sqlx::query(
                        "UPDATE distribution_lines SET corrected = $1 WHERE distribution_id = $2 AND line = $3",
                    )
                    .bind(fix)
                    .bind(id)
                    .bind(i64::try_from(i).unwrap_or(i64::MAX))
                    .execute(&mut *conn)
                    .await?;
                }
                let case = case.unwrap_or_default();
                let last = self.turn_taken(conn, id, ("objector", "objected_at"), case, (now, period(now))).await?;
                (
                    "distribution_objected",
                    format!("{case} objects to distribution {id}: the others may oppose until the end of {last} (R29)"),
                )
            }
            (PlanStep::Oppose, Some(_)) => {
                let case = case.unwrap_or_default();
                let last = self.turn_taken(conn, id, ("opposed_by", "opposed_at"), case, (now, period(now))).await?;
                (
                    "distribution_opposed",
                    format!(
                        "{case} opposes the objection to distribution {id}: the objector may sue until the end of {last}, or the plan is paid as served (R29)"
                    ),
                )
            }
            (PlanStep::Sue, Some(_)) => {
                sqlx::query("UPDATE distributions SET sued = 1 WHERE distribution_id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let message = format!(
                    "{} sues on distribution {id}: the disputed lines are held back, the rest is paid (R29)",
                    plan.objector
                );
                self.queue_events(conn, "distribution_sued", id, &parties, &message).await?;
                let plan = self.plan(conn, id).await?;
                let served =
                    plan.served.clone().ok_or_else(|| LedgerError::Corrupt(format!("distribution {id} unserved")))?;
                return self.pay_out(conn, &plan, &served, holidays, now).await;
            }
        };
        sqlx::query("UPDATE distributions SET message = $1 WHERE distribution_id = $2")
            .bind(&message)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        self.queue_events(conn, kind, id, &parties, &message).await?;
        Ok(Reply::Distribution(self.distribution_in(conn, id).await?))
    }

    /// Records who took a step against the plan and when (`who`, `when`: its columns), and that the
    /// period it opens ends at `end`; returns that period's last day.
    async fn turn_taken(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        (who, when): (&'static str, &'static str),
        case: &str,
        (now, end): (Time, Time),
    ) -> Result<String, LedgerError> {
        sqlx::query(&format!(
            "UPDATE distributions SET {who} = $1, {when} = $2, next_due = $3 WHERE distribution_id = $4"
        ))
        .bind(case)
        .bind(now.timestamp_micros())
        .bind(end.timestamp_micros())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        Ok(rules::day(end - chrono::Duration::seconds(1)))
    }

    /// R29: pays out a served plan as its periods allow, on every case's funds; cases paid in full
    /// are listed for their courts to release their seizures.
    async fn pay_out(
        &self,
        conn: &mut AnyConnection,
        plan: &Plan,
        served: &Served,
        holidays: &Holidays,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let payout = rules::payout(served, now, holidays);
        if let Payout::Wait(end) = payout {
            let ends = rules::day(end - chrono::Duration::seconds(1));
            return Err(Refusal::NotYetDue { distribution: plan.id.clone(), ends }.into());
        }
        let lines = self.lines(conn, &plan.id).await?;
        let corrected = self.corrected(conn, &plan.id).await?;
        let payments = rules::payments(&lines, &corrected, payout);
        let held: i64 = payments.iter().map(|(_, h)| h).sum();
        let state = if held > 0 { "paid_in_part" } else { "paid" };
        let done = sqlx::query("UPDATE distributions SET state = $1, paid_at = $2, next_due = NULL WHERE distribution_id = $3 AND state = 'served'")
            .bind(state)
            .bind(now.timestamp_micros())
            .bind(&plan.id)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() != 1 {
            return Err(LedgerError::UnknownDistribution(plan.id.clone()));
        }
        let rows = sqlx::query(
            "SELECT l.line, l.kind, l.payee, l.court, p.case_number, p.court, p.proceeds_id FROM distribution_lines l \
             JOIN proceeds p ON p.proceeds_id = l.proceeds_id WHERE l.distribution_id = $1 ORDER BY l.line",
        )
        .bind(&plan.id)
        .fetch_all(&mut *conn)
        .await?;
        let mut paid_to: BTreeMap<String, i64> = BTreeMap::new();
        for (r, (paid, held)) in rows.iter().zip(&payments) {
            let (line, kind, payee, payee_court): (i64, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let (holder, holder_court, proceeds): (String, String, String) =
                (r.try_get(4)?, r.try_get(5)?, r.try_get(6)?);
            // The holding case pays the line (or holds it back); a creditor case receives its share
            // and passes it on to its applicant.
            let of = (proceeds.as_str(), plan.id.as_str());
            let holding = (holder_court.as_str(), holder.as_str());
            let mut moves = vec![
                Moved::of(holding, (Movement::PaidOut, *paid, &payee), of),
                Moved::of(holding, (Movement::HeldBack, *held, &payee), of),
            ];
            let applicant = format!("the applicant of {payee}");
            if kind == "ordinary" && *paid > 0 {
                let creditor = (payee_court.as_str(), payee.as_str());
                moves.push(Moved::of(creditor, (Movement::Received, *paid, &holder), of));
                moves.push(Moved::of(creditor, (Movement::PaidOut, *paid, &applicant), of));
                *paid_to.entry(payee.clone()).or_default() += paid;
            }
            self.move_funds(conn, &moves).await?;
            if *held > 0 {
                sqlx::query("UPDATE distribution_lines SET held_back = 1 WHERE distribution_id = $1 AND line = $2")
                    .bind(&plan.id)
                    .bind(line)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        let mut fully_paid = Vec::new();
        for (case, amount) in &paid_to {
            sqlx::query("UPDATE cases SET paid = paid + $1 WHERE case_number = $2")
                .bind(amount)
                .bind(case)
                .execute(&mut *conn)
                .await?;
            let full: Option<String> =
                sqlx::query_scalar("SELECT court FROM cases WHERE case_number = $1 AND paid >= claim AND claim > 0")
                    .bind(case)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some(court) = full {
                fully_paid.push((court, case.clone()));
            }
        }
        sqlx::query("UPDATE proceeds SET distribution_id = $1 WHERE proceeds_id IN (SELECT proceeds_id FROM distribution_proceeds WHERE distribution_id = $1)")
            .bind(&plan.id)
            .execute(&mut *conn)
            .await?;
        let how = match payout {
            Payout::AsCorrected => "as the objection corrected it",
            Payout::UndisputedOnly => "but the disputed lines, held back while the suit runs",
            _ => "as served",
        };
        let mut message = format!("distribution {} paid out {how} (R29)", plan.id);
        if !fully_paid.is_empty() {
            let cases: Vec<&str> = fully_paid.iter().map(|(_, c)| c.as_str()).collect();
            message
                .push_str(&format!("; paid in full: {}: their courts release their seizures (R7)", cases.join(", ")));
        }
        let listed: Vec<&str> = fully_paid.iter().map(|(_, c)| c.as_str()).collect();
        sqlx::query("UPDATE distributions SET message = $1, fully_paid = $2 WHERE distribution_id = $3")
            .bind(&message)
            .bind(listed.join("\n"))
            .bind(&plan.id)
            .execute(&mut *conn)
            .await?;
        let parties = self.parties(conn, &plan.id).await?;
        self.queue_events(conn, "distribution_paid", &plan.id, &parties, &message).await?;
        for (court, case) in &fully_paid {
            let note = format!("{case} is paid in full by distribution {}: release its seizures (R7)", plan.id);
            self.queue_events(conn, "case_fully_paid", &plan.id, &[(court.clone(), case.clone())], &note).await?;
        }
        Ok(Reply::Distribution(self.distribution_in(conn, &plan.id).await?))
    }

    /// A plan's row.
    async fn plan(&self, conn: &mut AnyConnection, id: &str) -> Result<Plan, LedgerError> {
        let r = sqlx::query(
            "SELECT court, case_number, debtor_key, state, served_at, objector, objected_at, opposed_at, sued \
             FROM distributions WHERE distribution_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| LedgerError::UnknownDistribution(id.into()))?;
        let served_at: Option<i64> = r.try_get(4)?;
        let objected_at: Option<i64> = r.try_get(6)?;
        let objection = objected_at.map(|at| -> Result<Objection, sqlx::Error> {
            Ok(Objection {
                at: from_micros(at),
                opposed_at: r.try_get::<Option<i64>, _>(7)?.map(from_micros),
                sued: r.try_get::<i64, _>(8)? == 1,
            })
        });
        let objection = objection.transpose()?;
        Ok(Plan {
            id: id.into(),
            case: r.try_get(1)?,
            debtor_key: r.try_get(2)?,
            state: r.try_get(3)?,
            served: served_at.map(|at| Served { at: from_micros(at), objection }),
            objector: r.try_get(5)?,
        })
    }

    /// The drafting case's court, then each creditor case's, once each.
    pub(super) async fn parties(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        let head = sqlx::query("SELECT court, case_number FROM distributions WHERE distribution_id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| LedgerError::UnknownDistribution(id.into()))?;
        let mut out = vec![(head.try_get(0)?, head.try_get(1)?)];
        let rows = sqlx::query("SELECT court, payee FROM distribution_lines WHERE distribution_id = $1 AND kind = 'ordinary' ORDER BY line")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        let mut seen = BTreeSet::new();
        for r in &rows {
            let party: (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if party != out[0] && seen.insert(party.clone()) {
                out.push(party);
            }
        }
        Ok(out)
    }

    /// A plan's lines as the rules read them.
    async fn lines(&self, conn: &mut AnyConnection, id: &str) -> Result<Vec<Line>, LedgerError> {
        let rows = sqlx::query(
            "SELECT proceeds_id, kind, claim, amount FROM distribution_lines WHERE distribution_id = $1 ORDER BY line",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Line {
                    proceeds: r.try_get(0)?,
                    kind: line_kind(&r.try_get::<String, _>(1)?)?,
                    claim: r.try_get(2)?,
                    amount: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn corrected(&self, conn: &mut AnyConnection, id: &str) -> Result<Vec<Option<i64>>, LedgerError> {
        let rows = sqlx::query("SELECT corrected FROM distribution_lines WHERE distribution_id = $1 ORDER BY line")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(|r| r.try_get(0).map_err(LedgerError::from)).collect()
    }

    /// When a plan was paid out.
    pub(in crate::ledger::store) async fn paid_at(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Time, LedgerError> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT paid_at FROM distributions WHERE distribution_id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(from_micros(at.flatten().unwrap_or_default()))
    }
}
