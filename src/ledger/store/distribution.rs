//! Distribution plans in the store (R28–R29): drafted from the ledger alone
//! (the proceeds, the ranks they found, the secured claims on the asset, the
//! participants and every case's unpaid claim), served on every creditor's
//! court, moved through objections each in its period, and paid out on the
//! cases' funds, in one transaction per step under the debtor's lock.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AnyConnection, Row};

use super::{
    Store,
    funds::{Moved, Movement, PROCEEDS, proceeds_of},
};
use crate::{
    core::{
        clock::{Time, from_micros},
        proto::{self, ts},
    },
    ledger::{
        LedgerError,
        command::{PlanStep, Reply},
        rules::{
            self, Creditor, EnforcementStep, Holidays, Line, LineKind, Objection, Payout, Refusal, Served, Sharing,
            Step,
        },
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

/// One line as drafted, before it is written.
struct Drafted {
    proceeds: String,
    kind: LineKind,
    payee: String,
    court: String,
    rank: u32,
    claim: i64,
    amount: i64,
}

impl Store {
    /// R28: drafts the distribution of `proceeds` (or, for a series, every undistributed proceeds
    /// the calling court holds of the debtor) among their creditors; replaces the case's unserved draft.
    pub(super) async fn draft_distribution(
        &self,
        conn: &mut AnyConnection,
        (court, case): (&str, &str),
        (debtor_key, debtor): (&str, &str),
        (sharing, series): (Sharing, bool),
        asked: &[String],
        now: Time,
    ) -> Result<Reply, LedgerError> {
        self.lock_debtor(conn, debtor_key, true).await?;
        self.check_standing(conn, debtor_key, EnforcementStep::Distribute, "").await?;
        let proceeds = self.to_distribute(conn, (court, case), debtor_key, series, asked).await?;
        let ids: Vec<String> = proceeds.iter().map(|p| p.proceeds_id.clone()).collect();
        self.withdraw_open(conn, &ids, &format!("{case} drafted it again")).await?;
        let mut unpaid: BTreeMap<String, (i64, String)> = BTreeMap::new();
        let others = match series {
            true => self.series_creditors(conn, debtor_key).await?,
            false => Vec::new(),
        };
        let mut lines = Vec::new();
        for p in &proceeds {
            let creditors = self.creditors(conn, &p.proceeds_id, sharing, &others).await?;
            let mut claims = Vec::new();
            for (case, court, rank) in &creditors {
                if !unpaid.contains_key(case) {
                    let claim = self.claim_of(conn, case).await?;
                    unpaid.insert(case.clone(), claim);
                }
                let (claim, currency) = &unpaid[case];
                if *currency != p.currency {
                    let (proceeds, claim) = (p.currency.clone(), currency.clone());
                    return Err(rules::Invalid::Currency { case: case.clone(), proceeds, claim }.into());
                }
                claims.push((Creditor { case: case.clone(), rank: *rank, claim: *claim }, court.clone()));
            }
            let asset_key: String = sqlx::query_scalar("SELECT asset_key FROM proceeds WHERE proceeds_id = $1")
                .bind(&p.proceeds_id)
                .fetch_one(&mut *conn)
                .await?;
            let secured = self.secured_left(conn, &asset_key).await?;
            let ordinary: Vec<Creditor> = claims.iter().map(|(c, _)| c.clone()).collect();
            let plan = rules::draft((p.amount, p.costs), &secured, &ordinary, sharing)?;
            let line = |kind, payee: &str, amount| Drafted {
                proceeds: p.proceeds_id.clone(),
                kind,
                payee: payee.into(),
                court: String::new(),
                rank: 0,
                claim: 0,
                amount,
            };
            if plan.costs > 0 {
                lines.push(Drafted { claim: p.costs, ..line(LineKind::Costs, "execution costs", plan.costs) });
            }
            for (holder, amount) in &plan.secured {
                let owed = secured.iter().filter(|s| s.holder == *holder).map(|s| s.amount).sum();
                lines.push(Drafted { claim: owed, ..line(LineKind::Secured, holder, *amount) });
            }
            for (payee, amount) in &plan.ordinary {
                let (creditor, court) = claims.iter().find(|(c, _)| c.case == *payee).ok_or_else(|| {
                    LedgerError::Corrupt(format!("the plan pays {payee}, who is not among its creditors"))
                })?;
                lines.push(Drafted {
                    court: court.clone(),
                    rank: creditor.rank.unwrap_or(0),
                    claim: creditor.claim,
                    ..line(LineKind::Ordinary, payee, *amount)
                });
                if let Some(left) = unpaid.get_mut(payee) {
                    left.0 -= amount;
                }
            }
            if plan.surplus > 0 {
                lines.push(line(LineKind::Surplus, debtor, plan.surplus));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (sharing_name, bonus) = match sharing {
            Sharing::ByRank => ("by_rank", 0),
            Sharing::ProRata { bonus_percent } => ("pro_rata", bonus_percent),
        };
        let paid: i64 = lines.iter().filter(|l| l.kind != LineKind::Surplus).map(|l| l.amount).sum();
        let message = format!(
            "distribution drafted: {} line(s) paying {paid} of {} received; serve it (ServeDistribution) to start the objection period (R28, R29)",
            lines.len(),
            proceeds.iter().map(|p| p.amount).sum::<i64>()
        );
        sqlx::query(
            "INSERT INTO distributions (distribution_id, court, case_number, debtor_key, debtor, state, sharing, \
             bonus_percent, series, drafted_at, message) VALUES ($1, $2, $3, $4, $5, 'drafted', $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(court)
        .bind(case)
        .bind(debtor_key)
        .bind(debtor)
        .bind(sharing_name)
        .bind(i64::from(bonus))
        .bind(i64::from(series))
        .bind(now.timestamp_micros())
        .bind(&message)
        .execute(&mut *conn)
        .await?;
        for p in &ids {
            sqlx::query("INSERT INTO distribution_proceeds (distribution_id, proceeds_id) VALUES ($1, $2)")
                .bind(&id)
                .bind(p)
                .execute(&mut *conn)
                .await?;
        }
        for (i, l) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO distribution_lines (distribution_id, line, proceeds_id, kind, payee, court, rank, claim, \
                 amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&id)
            .bind(i64::try_from(i).unwrap_or(i64::MAX))
            .bind(&l.proceeds)
            .bind(line_kind_name(l.kind))
            .bind(&l.payee)
            .bind(&l.court)
            .bind(i64::from(l.rank))
            .bind(l.claim)
            .bind(l.amount)
            .execute(&mut *conn)
            .await?;
        }
        Ok(Reply::Distribution(self.distribution_in(conn, &id).await?))
    }

    /// The proceeds a draft distributes: those asked, held by the case, of the debtor, not paid
    /// out nor in a served plan; or for a series every such proceeds of the court (R23).
    async fn to_distribute(
        &self,
        conn: &mut AnyConnection,
        (court, case): (&str, &str),
        debtor_key: &str,
        series: bool,
        asked: &[String],
    ) -> Result<Vec<proto::Proceeds>, LedgerError> {
        let mut found = Vec::new();
        if series {
            let designated: Option<String> = sqlx::query_scalar(
                "SELECT d.from_case FROM designations d JOIN case_debtors c ON c.case_number = d.from_case \
                 WHERE c.debtor_key = $1 AND d.to_court = $2 LIMIT 1",
            )
            .bind(debtor_key)
            .bind(court)
            .fetch_optional(&mut *conn)
            .await?;
            if designated.is_none() {
                return Err(Refusal::NoSeries { court: court.into() }.into());
            }
            let rows = sqlx::query(&format!(
                "{PROCEEDS} WHERE a.debtor_key = $1 AND p.court = $2 AND p.distribution_id IS NULL \
                 ORDER BY p.received_at, p.proceeds_id"
            ))
            .bind(debtor_key)
            .bind(court)
            .fetch_all(&mut *conn)
            .await?;
            found = rows.iter().map(proceeds_of).collect::<Result<_, _>>()?;
        } else {
            for id in asked {
                let row = sqlx::query(&format!(
                    "{PROCEEDS} WHERE p.proceeds_id = $1 AND p.case_number = $2 AND a.debtor_key = $3"
                ))
                .bind(id)
                .bind(case)
                .bind(debtor_key)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| LedgerError::UnknownProceeds(id.clone()))?;
                found.push(proceeds_of(&row)?);
            }
        }
        for p in &found {
            if !p.distribution_id.is_empty() {
                let day = rules::day(self.paid_at(conn, &p.distribution_id).await?);
                return Err(Refusal::PaidOut { distribution: p.distribution_id.clone(), day }.into());
            }
            let open = sqlx::query(
                "SELECT d.distribution_id, d.state FROM distribution_proceeds x JOIN distributions d \
                 ON d.distribution_id = x.distribution_id WHERE x.proceeds_id = $1 AND d.state = 'served'",
            )
            .bind(&p.proceeds_id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(r) = open {
                let (distribution, state) = (r.try_get(0)?, r.try_get(1)?);
                return Err(Refusal::InDistribution { proceeds: p.proceeds_id.clone(), distribution, state }.into());
            }
        }
        match found.is_empty() {
            true => Err(Refusal::NothingToDistribute.into()),
            false => Ok(found),
        }
    }

    /// Every case against the debtor with a claim registered, as a series plan's creditors (R23).
    async fn series_creditors(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
    ) -> Result<Vec<(String, String, Option<u32>)>, LedgerError> {
        let rows = sqlx::query(
            "SELECT DISTINCT c.case_number, c.court FROM cases c JOIN case_debtors d ON d.case_number = c.case_number \
             WHERE d.debtor_key = $1 AND c.state IN ('active', 'terminated') AND c.claim > c.paid ORDER BY c.case_number",
        )
        .bind(debtor_key)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, None))).collect()
    }

    /// A proceeds' creditors: the seizures it found by rank (a case once, at its best rank), then
    /// under pro-rata sharing the participants, then `others` not already among them.
    async fn creditors(
        &self,
        conn: &mut AnyConnection,
        proceeds_id: &str,
        sharing: Sharing,
        others: &[(String, String, Option<u32>)],
    ) -> Result<Vec<(String, String, Option<u32>)>, LedgerError> {
        let ranks =
            sqlx::query("SELECT case_number, court, rank FROM proceeds_ranks WHERE proceeds_id = $1 ORDER BY rank")
                .bind(proceeds_id)
                .fetch_all(&mut *conn)
                .await?;
        let mut out: Vec<(String, String, Option<u32>)> = Vec::new();
        for r in &ranks {
            let case: String = r.try_get(0)?;
            if !out.iter().any(|(c, _, _)| *c == case) {
                out.push((case, r.try_get(1)?, u32::try_from(r.try_get::<i64, _>(2)?).ok()));
            }
        }
        if matches!(sharing, Sharing::ProRata { .. }) {
            let rows = sqlx::query(
                "SELECT case_number, court FROM participations WHERE proceeds_id = $1 ORDER BY case_number",
            )
            .bind(proceeds_id)
            .fetch_all(&mut *conn)
            .await?;
            for r in &rows {
                let case: String = r.try_get(0)?;
                if !out.iter().any(|(c, _, _)| *c == case) {
                    out.push((case, r.try_get(1)?, None));
                }
            }
        }
        for other in others {
            if !out.iter().any(|(c, _, _)| *c == other.0) {
                out.push(other.clone());
            }
        }
        Ok(out)
    }

    /// The claims secured on an asset, less what earlier payouts paid them.
    async fn secured_left(
        &self,
        conn: &mut AnyConnection,
        asset_key: &str,
    ) -> Result<Vec<rules::Secured>, LedgerError> {
        let mut secured = self.secured_on(conn, asset_key).await?;
        let paid = sqlx::query(
            "SELECT l.payee, CAST(SUM(l.amount) AS TEXT) FROM distribution_lines l JOIN proceeds p ON p.proceeds_id = l.proceeds_id \
             JOIN distributions d ON d.distribution_id = l.distribution_id WHERE p.asset_key = $1 AND l.kind = 'secured' \
             AND l.held_back = 0 AND d.state IN ('paid', 'paid_in_part') GROUP BY l.payee",
        )
        .bind(asset_key)
        .fetch_all(&mut *conn)
        .await?;
        for r in &paid {
            let (holder, sum): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let mut left: i64 = sum.parse().map_err(|_| LedgerError::Corrupt(format!("secured paid `{sum}`")))?;
            secured.sort_by_key(|s| s.registered_at);
            for s in secured.iter_mut().filter(|s| s.holder == holder) {
                let taken = left.min(s.amount);
                s.amount -= taken;
                left -= taken;
            }
        }
        Ok(secured)
    }

    /// Withdraws the drafted or served plans holding any of `proceeds`, telling their parties why;
    /// returns the last withdrawn.
    pub(super) async fn withdraw_open(
        &self,
        conn: &mut AnyConnection,
        proceeds: &[String],
        why: &str,
    ) -> Result<Option<String>, LedgerError> {
        let mut last = None;
        for p in proceeds {
            let open: Vec<String> = sqlx::query_scalar(
                "SELECT d.distribution_id FROM distribution_proceeds x JOIN distributions d \
                 ON d.distribution_id = x.distribution_id WHERE x.proceeds_id = $1 AND d.state IN ('drafted', 'served')",
            )
            .bind(p)
            .fetch_all(&mut *conn)
            .await?;
            for id in open {
                let message = format!("distribution {id} withdrawn: {why}");
                sqlx::query("UPDATE distributions SET state = 'withdrawn', next_due = NULL, message = $1 WHERE distribution_id = $2")
                    .bind(&message)
                    .bind(&id)
                    .execute(&mut *conn)
                    .await?;
                let parties = self.parties(conn, &id).await?;
                self.queue_events(conn, "distribution_withdrawn", &id, &parties, &message).await?;
                last = Some(id);
            }
        }
        Ok(last)
    }

    /// R29: a step on a plan: serve, object, oppose, sue, or pay out (the gateway's own payout
    /// has no case).
    pub(super) async fn plan_step(
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
        let creditor = |case: &str| parties.iter().skip(1).any(|(_, c)| c == case);
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
        match (step, case) {
            (_, Some(case)) if case != plan.case && !creditor(case) => {
                return Err(LedgerError::UnknownDistribution(id.into()));
            }
            (PlanStep::Serve | PlanStep::PayOut, Some(case)) if case != plan.case => {
                return Err(party(case, step.name(), "only the drafting case serves and pays out its plan").into());
            }
            (PlanStep::Serve, _) if plan.state != "drafted" => return Err(named("drafted", step.name()).into()),
            (PlanStep::Serve, _) => {}
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
            (PlanStep::Serve, _) => {
                let end = period(now);
                sqlx::query("UPDATE distributions SET state = 'served', served_at = $1, next_due = $2 WHERE distribution_id = $3")
                    .bind(now.timestamp_micros())
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
            (PlanStep::Object(asked), Some(served)) => {
                rules::may_take(&served, Step::Object, now, holidays)?;
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
                let end = period(now);
                sqlx::query("UPDATE distributions SET objector = $1, objected_at = $2, next_due = $3 WHERE distribution_id = $4")
                    .bind(case)
                    .bind(now.timestamp_micros())
                    .bind(at(end))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let last = rules::day(end - chrono::Duration::seconds(1));
                (
                    "distribution_objected",
                    format!("{case} objects to distribution {id}: the others may oppose until the end of {last} (R29)"),
                )
            }
            (PlanStep::Oppose, Some(served)) => {
                rules::may_take(&served, Step::Oppose, now, holidays)?;
                let case = case.unwrap_or_default();
                let end = period(now);
                sqlx::query("UPDATE distributions SET opposed_by = $1, opposed_at = $2, next_due = $3 WHERE distribution_id = $4")
                    .bind(case)
                    .bind(now.timestamp_micros())
                    .bind(at(end))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let last = rules::day(end - chrono::Duration::seconds(1));
                (
                    "distribution_opposed",
                    format!(
                        "{case} opposes the objection to distribution {id}: the objector may sue until the end of {last}, or the plan is paid as served (R29)"
                    ),
                )
            }
            (PlanStep::Sue, Some(served)) => {
                rules::may_take(&served, Step::Sue, now, holidays)?;
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
            let mut moves = Vec::new();
            moves.push((
                holder_court.clone(),
                Moved {
                    case: &holder,
                    kind: Movement::PaidOut,
                    amount: *paid,
                    proceeds: &proceeds,
                    distribution: &plan.id,
                    counterparty: &payee,
                },
            ));
            moves.push((
                holder_court.clone(),
                Moved {
                    case: &holder,
                    kind: Movement::HeldBack,
                    amount: *held,
                    proceeds: &proceeds,
                    distribution: &plan.id,
                    counterparty: &payee,
                },
            ));
            let applicant = format!("the applicant of {payee}");
            if kind == "ordinary" && *paid > 0 {
                moves.push((
                    payee_court.clone(),
                    Moved {
                        case: &payee,
                        kind: Movement::Received,
                        amount: *paid,
                        proceeds: &proceeds,
                        distribution: &plan.id,
                        counterparty: &holder,
                    },
                ));
                moves.push((
                    payee_court.clone(),
                    Moved {
                        case: &payee,
                        kind: Movement::PaidOut,
                        amount: *paid,
                        proceeds: &proceeds,
                        distribution: &plan.id,
                        counterparty: &applicant,
                    },
                ));
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
    async fn parties(&self, conn: &mut AnyConnection, id: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let head = sqlx::query("SELECT court, case_number FROM distributions WHERE distribution_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
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
    pub(super) async fn paid_at(&self, conn: &mut AnyConnection, id: &str) -> Result<Time, LedgerError> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT paid_at FROM distributions WHERE distribution_id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(from_micros(at.flatten().unwrap_or_default()))
    }

    /// A plan as shown, to a court with a part in it.
    pub async fn distribution(&self, court: &str, id: &str) -> Result<proto::Distribution, LedgerError> {
        let mut tx = self.snapshot().await?;
        let parties = self.parties(&mut tx, id).await.map_err(|_| LedgerError::UnknownDistribution(id.into()))?;
        if !parties.iter().any(|(c, _)| c == court) {
            return Err(LedgerError::UnknownDistribution(id.into()));
        }
        self.distribution_in(&mut tx, id).await
    }

    /// The plans the court drafted or has a creditor's line in (only `case`'s when given), newest first.
    pub async fn distributions(&self, court: &str, case: &str) -> Result<Vec<proto::Distribution>, LedgerError> {
        let mut tx = self.snapshot().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT distribution_id FROM distributions WHERE (court = $1 AND ($2 = '' OR case_number = $2)) \
             OR distribution_id IN (SELECT distribution_id FROM distribution_lines WHERE kind = 'ordinary' AND court = $1 \
             AND ($2 = '' OR payee = $2)) ORDER BY drafted_at DESC, distribution_id",
        )
        .bind(court)
        .bind(case)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.distribution_in(&mut tx, &id).await?);
        }
        Ok(out)
    }

    /// Served plans whose period has ended by now, of debtors not in bankruptcy: the sweeper pays them out.
    pub async fn due_distributions(&self) -> Result<Vec<String>, LedgerError> {
        let mut conn = self.reader().await?;
        Ok(sqlx::query_scalar(
            "SELECT d.distribution_id FROM distributions d WHERE d.state = 'served' AND d.next_due <= $1 \
             AND NOT EXISTS (SELECT 1 FROM debtor_standing s WHERE s.debtor_key = d.debtor_key) ORDER BY d.next_due",
        )
        .bind(self.clock.micros())
        .fetch_all(&mut *conn)
        .await?)
    }

    /// A plan as shown.
    async fn distribution_in(&self, conn: &mut AnyConnection, id: &str) -> Result<proto::Distribution, LedgerError> {
        let r = sqlx::query(
            "SELECT court, case_number, debtor, state, sharing, bonus_percent, series, drafted_at, served_at, next_due, \
             objector, objected_at, opposed_by, opposed_at, sued, paid_at, fully_paid, message \
             FROM distributions WHERE distribution_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| LedgerError::UnknownDistribution(id.into()))?;
        let when = |i: usize| -> Result<Option<prost_types::Timestamp>, sqlx::Error> {
            Ok(r.try_get::<Option<i64>, _>(i)?.map(|t| ts(from_micros(t))))
        };
        let state = match r.try_get::<String, _>(3)?.as_str() {
            "drafted" => proto::DistributionState::Drafted,
            "served" => proto::DistributionState::Served,
            "paid_in_part" => proto::DistributionState::PaidInPart,
            "paid" => proto::DistributionState::Paid,
            "withdrawn" => proto::DistributionState::Withdrawn,
            other => return Err(LedgerError::Corrupt(format!("distribution state `{other}`"))),
        };
        let sharing = match r.try_get::<String, _>(4)?.as_str() {
            "by_rank" => proto::Sharing::ByRank,
            _ => proto::Sharing::ProRata,
        };
        let proceeds = sqlx::query(&format!(
            "{PROCEEDS} WHERE p.proceeds_id IN (SELECT proceeds_id FROM distribution_proceeds WHERE distribution_id = $1) \
             ORDER BY p.received_at, p.proceeds_id"
        ))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(proceeds_of)
        .collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT proceeds_id, kind, payee, court, rank, claim, amount, corrected, held_back FROM distribution_lines \
             WHERE distribution_id = $1 ORDER BY line",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        let mut lines = Vec::with_capacity(rows.len());
        let mut corrections = Vec::new();
        let mut held_back = 0;
        for (i, l) in rows.iter().enumerate() {
            let corrected: Option<i64> = l.try_get(7)?;
            let held = l.try_get::<i64, _>(8)? == 1;
            let amount: i64 = l.try_get(6)?;
            if let Some(fixed) = corrected {
                corrections.push(proto::LineCorrection { line: u32::try_from(i).unwrap_or(u32::MAX), amount: fixed });
            }
            if held {
                held_back += amount;
            }
            lines.push(proto::DistributionLine {
                proceeds_id: l.try_get(0)?,
                kind: line_kind_proto(line_kind(&l.try_get::<String, _>(1)?)?) as i32,
                payee: l.try_get(2)?,
                court_code: l.try_get(3)?,
                rank: u32::try_from(l.try_get::<i64, _>(4)?).unwrap_or(0),
                claim: l.try_get(5)?,
                amount,
                corrected_amount: corrected,
                held_back: held,
            });
        }
        let objector: String = r.try_get(10)?;
        let objection = (!objector.is_empty()).then(|| -> Result<proto::DistributionObjection, sqlx::Error> {
            Ok(proto::DistributionObjection {
                case_number: objector.clone(),
                objected_at: when(11)?,
                corrections,
                opposed_by: r.try_get(12)?,
                opposed_at: when(13)?,
                sued: r.try_get::<i64, _>(14)? == 1,
            })
        });
        let fully_paid: String = r.try_get(16)?;
        Ok(proto::Distribution {
            distribution_id: id.into(),
            court_code: r.try_get(0)?,
            case_number: r.try_get(1)?,
            debtor: r.try_get(2)?,
            state: state as i32,
            sharing: sharing as i32,
            bonus_percent: u32::try_from(r.try_get::<i64, _>(5)?).unwrap_or(0),
            series: r.try_get::<i64, _>(6)? == 1,
            proceeds,
            lines,
            drafted_at: when(7)?,
            served_at: when(8)?,
            objection: objection.transpose()?,
            next_due: when(9)?,
            paid_at: when(15)?,
            held_back,
            fully_paid_cases: fully_paid.lines().map(String::from).collect(),
            message: r.try_get(17)?,
        })
    }
}

fn line_kind_name(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Costs => "costs",
        LineKind::Secured => "secured",
        LineKind::Ordinary => "ordinary",
        LineKind::Surplus => "surplus",
    }
}

fn line_kind(stored: &str) -> Result<LineKind, LedgerError> {
    Ok(match stored {
        "costs" => LineKind::Costs,
        "secured" => LineKind::Secured,
        "ordinary" => LineKind::Ordinary,
        "surplus" => LineKind::Surplus,
        other => return Err(LedgerError::Corrupt(format!("distribution line kind `{other}`"))),
    })
}

fn line_kind_proto(kind: LineKind) -> proto::LineKind {
    match kind {
        LineKind::Costs => proto::LineKind::Costs,
        LineKind::Secured => proto::LineKind::Secured,
        LineKind::Ordinary => proto::LineKind::Ordinary,
        LineKind::Surplus => proto::LineKind::Surplus,
    }
}
