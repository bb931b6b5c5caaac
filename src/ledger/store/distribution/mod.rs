//! Distribution plans in the store (R28–R29): drafted from the ledger alone
//! (the proceeds, the ranks they found, the secured claims on the asset, the
//! participants and every case's unpaid claim), served on every creditor's
//! court, moved through objections each in its period, and paid out on the
//! cases' funds, in one transaction per step under the debtor's lock.
//!
//! Drafting is here; [`steps`] serves, objects and pays out; [`reads`] shows plans.

mod reads;
mod steps;

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::{
    Store,
    funds::{PROCEEDS, proceeds_of},
};
use crate::{
    core::{clock::Time, proto},
    ledger::{
        LedgerError,
        command::Reply,
        rules::{self, Creditor, EnforcementStep, LineKind, Refusal, Sharing},
    },
};

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
    pub(in crate::ledger::store) async fn draft_distribution(
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
            // A creditor paid in full by an earlier section is none of this one's.
            claims.retain(|(c, _)| c.claim > 0);
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
            let mut owed = secured.clone();
            rules::by_registration(&mut owed);
            for ((holder, amount), claim) in plan.secured.iter().zip(&owed) {
                lines.push(Drafted { claim: claim.amount, ..line(LineKind::Secured, holder, *amount) });
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
    pub(in crate::ledger::store) async fn withdraw_open(
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
