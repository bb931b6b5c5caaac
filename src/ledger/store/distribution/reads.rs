//! Plans as the courts read them, the served ones the sweeper pays out, a case's funds, and what
//! `ledger verify` checks of the money.

use sqlx::{AnyConnection, Row};

use super::super::{
    Store,
    funds::{Movement, PROCEEDS, proceeds_of},
};
use super::line_kind;
use crate::{
    core::{
        clock::from_micros,
        proto::{self, ts},
    },
    ledger::{LedgerError, rules::LineKind},
};

impl Store {
    /// A plan as shown, to a court with a part in it.
    pub async fn distribution(&self, court: &str, id: &str) -> Result<proto::Distribution, LedgerError> {
        let mut tx = self.snapshot().await?;
        let parties = self.parties(&mut tx, id).await?;
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
    pub(super) async fn distribution_in(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<proto::Distribution, LedgerError> {
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

    /// A case's funds: totals and every movement.
    pub async fn case_funds(&self, case: &str) -> Result<proto::GetCaseFundsResponse, LedgerError> {
        let mut tx = self.snapshot().await?;
        let row = sqlx::query("SELECT currency, claim, paid FROM cases WHERE case_number = $1")
            .bind(case)
            .fetch_optional(&mut *tx)
            .await?;
        let (currency, claim, claim_paid) = match row {
            Some(r) => (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?),
            None => ("CNY".to_string(), 0, 0),
        };
        let rows = sqlx::query(
            "SELECT kind, amount, proceeds_id, distribution_id, counterparty, at FROM fund_movements \
             WHERE case_number = $1 ORDER BY id",
        )
        .bind(case)
        .fetch_all(&mut *tx)
        .await?;
        let mut funds =
            proto::GetCaseFundsResponse { case_number: case.into(), currency, claim, claim_paid, ..Default::default() };
        for r in rows {
            let kind = Movement::parse(&r.try_get::<String, _>(0)?)?;
            let amount: i64 = r.try_get(1)?;
            match kind {
                proto::FundMovementKind::Received => funds.received += amount,
                proto::FundMovementKind::HeldBack => funds.held_back += amount,
                _ => funds.paid_out += amount,
            }
            funds.movements.push(proto::FundMovement {
                kind: kind as i32,
                amount,
                proceeds_id: r.try_get(2)?,
                distribution_id: r.try_get(3)?,
                counterparty: r.try_get(4)?,
                at: Some(ts(from_micros(r.try_get(5)?))),
            });
        }
        funds.balance = funds.received - funds.paid_out;
        Ok(funds)
    }

    /// R28: what `ledger verify` checks of the money: no proceeds paid out beyond their amount, no
    /// case's funds below nothing or holding back more than they hold, every claim paid as its
    /// receipts from distributions say.
    pub(in crate::ledger::store) async fn verify_funds(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Vec<String>, LedgerError> {
        let mut out = Vec::new();
        // The holding case's net outflow from each proceeds: what it paid out or holds back, less
        // its own share that came back to it from the plan (and went on to its applicant).
        let over = sqlx::query(
            "SELECT p.proceeds_id, p.amount, CAST(SUM(CASE WHEN m.kind = 'received' THEN -m.amount ELSE m.amount END) AS TEXT) \
             FROM proceeds p JOIN fund_movements m ON m.proceeds_id = p.proceeds_id AND m.case_number = p.case_number \
             AND m.distribution_id <> '' GROUP BY p.proceeds_id, p.amount \
             HAVING SUM(CASE WHEN m.kind = 'received' THEN -m.amount ELSE m.amount END) > p.amount",
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in over {
            let (id, amount, paid): (String, i64, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            out.push(format!("proceeds {id}: {paid} paid out or held back of {amount} (R28)"));
        }
        let negative = sqlx::query(
            "SELECT case_number, CAST(SUM(CASE kind WHEN 'received' THEN amount ELSE -amount END) AS TEXT) \
             FROM fund_movements GROUP BY case_number HAVING SUM(CASE kind WHEN 'received' THEN amount ELSE -amount END) < 0",
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in negative {
            let (case, balance): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            out.push(format!("case {case}: funds {balance} after what it paid out and holds back: below nothing"));
        }
        let unbalanced = sqlx::query(
            "SELECT c.case_number, c.paid, CAST(COALESCE(SUM(m.amount), 0) AS TEXT) FROM cases c LEFT JOIN fund_movements m \
             ON m.case_number = c.case_number AND m.kind = 'received' AND m.distribution_id <> '' \
             GROUP BY c.case_number, c.paid HAVING c.paid <> COALESCE(SUM(m.amount), 0)",
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in unbalanced {
            let (case, paid, received): (String, i64, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            out.push(format!(
                "case {case}: {paid} recorded paid toward its claim, {received} received from distributions"
            ));
        }
        Ok(out)
    }
}

fn line_kind_proto(kind: LineKind) -> proto::LineKind {
    match kind {
        LineKind::Costs => proto::LineKind::Costs,
        LineKind::Secured => proto::LineKind::Secured,
        LineKind::Ordinary => proto::LineKind::Ordinary,
        LineKind::Surplus => proto::LineKind::Surplus,
    }
}
