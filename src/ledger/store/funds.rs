//! Money for distribution in the store (R28): proceeds of a sale recorded by
//! the selling case, a deduction's funds received by the deducting case (each
//! with the seizures on the asset in rank order as it came in), claims secured
//! on assets (from the registry at seizure, or a court's record), applications
//! to participate, and every movement of a case's funds.

use sqlx::{AnyConnection, Row};

use super::{
    LIVE, Store,
    journal::Note,
    rows::{Bind, FUND_MOVEMENTS, PROCEEDS_RANKS, insert_many},
};
use crate::{
    core::{
        clock::{Time, from_micros},
        proto::{self, ApplyToParticipateResponse, AssetRef, EncumbranceKind, ts},
    },
    ledger::{
        LedgerError,
        command::Reply,
        rules::{self, DebtorKind, EnforcementStep, Refusal, Secured},
    },
};

/// What moved a case's funds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Movement {
    /// Money came in.
    Received,
    /// Held back while a suit runs.
    HeldBack,
    /// Paid out.
    PaidOut,
}

impl Movement {
    fn stored(self) -> &'static str {
        match self {
            Movement::Received => "received",
            Movement::HeldBack => "held_back",
            Movement::PaidOut => "paid_out",
        }
    }

    fn event(self) -> &'static str {
        match self {
            Movement::Received => "funds_received",
            Movement::HeldBack => "funds_held_back",
            Movement::PaidOut => "funds_paid_out",
        }
    }

    pub(super) fn parse(stored: &str) -> Result<proto::FundMovementKind, LedgerError> {
        Ok(match stored {
            "received" => proto::FundMovementKind::Received,
            "held_back" => proto::FundMovementKind::HeldBack,
            "paid_out" => proto::FundMovementKind::PaidOut,
            other => return Err(LedgerError::Corrupt(format!("fund movement `{other}`"))),
        })
    }
}

/// One movement of a case's funds, about to be written.
pub(super) struct Moved<'a> {
    /// The case whose funds moved.
    pub case: &'a str,
    /// Which way.
    pub kind: Movement,
    /// Minor units, positive.
    pub amount: i64,
    /// The proceeds concerned.
    pub proceeds: &'a str,
    /// The plan that moved it, or ''.
    pub distribution: &'a str,
    /// Who was paid, or whom it came from.
    pub counterparty: &'a str,
}

impl<'a> Moved<'a> {
    /// A movement of `case`'s funds (its court's, for the event): `kind`, `amount`, with whom, and
    /// the proceeds and plan it concerns.
    pub(super) fn of(
        (court, case): (&str, &'a str),
        (kind, amount, counterparty): (Movement, i64, &'a str),
        (proceeds, distribution): (&'a str, &'a str),
    ) -> (String, Moved<'a>) {
        (court.to_string(), Moved { case, kind, amount, proceeds, distribution, counterparty })
    }
}

/// The columns [`proceeds_of`] reads.
pub(super) const PROCEEDS: &str = "SELECT p.proceeds_id, p.kind, a.kind, a.asset_id, a.registry, p.seizure_id, p.court, \
     p.case_number, p.amount, p.costs, p.currency, p.received_at, p.distribution_id, p.asset_key \
     FROM proceeds p JOIN assets a ON a.asset_key = p.asset_key";

/// Proceeds as shown.
pub(super) fn proceeds_of(r: &sqlx::any::AnyRow) -> Result<proto::Proceeds, LedgerError> {
    let kind = match r.try_get::<String, _>(1)?.as_str() {
        "sale" => proto::ProceedsKind::Sale,
        "deduction" => proto::ProceedsKind::Deduction,
        other => return Err(LedgerError::Corrupt(format!("proceeds kind `{other}`"))),
    };
    Ok(proto::Proceeds {
        proceeds_id: r.try_get(0)?,
        kind: kind as i32,
        asset: Some(AssetRef {
            kind: super::rows::kind_of(r.try_get(2)?)? as i32,
            asset_id: r.try_get(3)?,
            registry: r.try_get(4)?,
        }),
        seizure_id: r.try_get(5)?,
        court_code: r.try_get(6)?,
        case_number: r.try_get(7)?,
        amount: r.try_get(8)?,
        costs: r.try_get(9)?,
        currency: r.try_get(10)?,
        received_at: Some(ts(from_micros(r.try_get(11)?))),
        distribution_id: r.try_get::<Option<String>, _>(12)?.unwrap_or_default(),
    })
}

impl Store {
    /// R28: the selling case records a sale's proceeds and costs under the seizure the sale ended
    /// (sold whole: once) or was made under (a part sold: each part).
    pub(super) async fn record_proceeds(
        &self,
        conn: &mut AnyConnection,
        (case, seizure_id): (&str, &str),
        (amount, costs, currency): (i64, i64, &str),
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let row = sqlx::query(
            "SELECT s.asset_key, s.court, s.state, s.ended_at, a.disposed, a.unit, a.kind FROM seizures s \
             JOIN assets a ON a.asset_key = s.asset_key WHERE s.seizure_id = $1 AND s.case_number = $2",
        )
        .bind(seizure_id)
        .bind(case)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| LedgerError::UnknownSeizure(format!("{seizure_id} of {case}")))?;
        let (asset_key, court, state): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let (ended_at, disposed): (Option<i64>, i64) = (row.try_get(3)?, row.try_get(4)?);
        let divisible = rules::is_divisible(super::rows::kind_of(row.try_get(6)?)?);
        let sold_whole = state == "disposed" && disposed == 1;
        if sold_whole {
            let recorded: Option<String> =
                sqlx::query_scalar("SELECT proceeds_id FROM proceeds WHERE seizure_id = $1 AND kind = 'sale'")
                    .bind(seizure_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some(proceeds) = recorded {
                return Err(Refusal::ProceedsRecorded { seizure: seizure_id.into(), proceeds }.into());
            }
        } else if !(divisible && self.sold_in_part(conn, seizure_id).await?) {
            return Err(Refusal::NotSold { seizure: seizure_id.into() }.into());
        }
        let currency = match currency {
            "" => self.case_currency(conn, case).await?,
            given => given.to_string(),
        };
        // The ranks the sale found: every seizure it ended at once, or those live on a part sold.
        let ranks = match (sold_whole, ended_at) {
            (true, Some(at)) => sqlx::query(
                "SELECT seizure_id, case_number, court FROM seizures WHERE asset_key = $1 AND ended_at = $2 \
                 AND state IN ('disposed', 'lapsed') ORDER BY seq",
            )
            .bind(&asset_key)
            .bind(at)
            .fetch_all(&mut *conn)
            .await?,
            _ => sqlx::query(&format!(
                "SELECT seizure_id, case_number, court FROM seizures WHERE asset_key = $1 AND state IN {LIVE} ORDER BY seq"
            ))
            .bind(&asset_key)
            .fetch_all(&mut *conn)
            .await?,
        };
        let ranks = ranks
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<(String, String, String)>, sqlx::Error>>()?;
        let id = uuid::Uuid::new_v4().to_string();
        self.take_in(
            conn,
            (&id, "sale", &asset_key, seizure_id),
            (&court, case),
            (amount, costs, &currency),
            &ranks,
            now,
        )
        .await?;
        Ok(Reply::Proceeds(self.proceeds(conn, &id).await?))
    }

    /// Whether a part of the asset was sold under `seizure_id` (R8).
    async fn sold_in_part(&self, conn: &mut AnyConnection, seizure_id: &str) -> Result<bool, LedgerError> {
        // Numbered or still queued for numbering (PostgreSQL numbers after the commit).
        let sold: Option<String> = sqlx::query_scalar(
            "SELECT seizure_id FROM events WHERE seizure_id = $1 AND kind = 'disposed' UNION ALL \
             SELECT seizure_id FROM event_queue WHERE seizure_id = $1 AND kind = 'disposed' LIMIT 1",
        )
        .bind(seizure_id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(sold.is_some())
    }

    /// A case's claim currency.
    async fn case_currency(&self, conn: &mut AnyConnection, case: &str) -> Result<String, LedgerError> {
        let currency: Option<String> = sqlx::query_scalar("SELECT currency FROM cases WHERE case_number = $1")
            .bind(case)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(currency.unwrap_or_else(|| "CNY".into()))
    }

    /// R9, R28: a deduction's money is received by the deducting case, ranked behind the seizures
    /// live on the account as it was deducted.
    pub(super) async fn deduction_received(
        &self,
        conn: &mut AnyConnection,
        (case, seizure_id): (&str, &str),
        amount: i64,
        now: Time,
    ) -> Result<(), LedgerError> {
        let row = sqlx::query(
            "SELECT s.asset_key, s.court, a.unit FROM seizures s JOIN assets a ON a.asset_key = s.asset_key \
             WHERE s.seizure_id = $1",
        )
        .bind(seizure_id)
        .fetch_one(&mut *conn)
        .await?;
        let (asset_key, court, unit): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let ranks = sqlx::query(&format!(
            "SELECT seizure_id, case_number, court FROM seizures WHERE asset_key = $1 \
             AND (state IN {LIVE} OR seizure_id = $2) ORDER BY seq"
        ))
        .bind(&asset_key)
        .bind(seizure_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<Vec<(String, String, String)>, sqlx::Error>>()?;
        let id = uuid::Uuid::new_v4().to_string();
        self.take_in(conn, (&id, "deduction", &asset_key, seizure_id), (&court, case), (amount, 0, &unit), &ranks, now)
            .await
    }

    /// Writes proceeds, their ranks, and the receipt on the case's funds.
    async fn take_in(
        &self,
        conn: &mut AnyConnection,
        (id, kind, asset_key, seizure_id): (&str, &str, &str, &str),
        (court, case): (&str, &str),
        (amount, costs, currency): (i64, i64, &str),
        ranks: &[(String, String, String)],
        now: Time,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO proceeds (proceeds_id, kind, asset_key, seizure_id, court, case_number, amount, costs, \
             currency, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(kind)
        .bind(asset_key)
        .bind(seizure_id)
        .bind(court)
        .bind(case)
        .bind(amount)
        .bind(costs)
        .bind(currency)
        .bind(now.timestamp_micros())
        .execute(&mut *conn)
        .await?;
        let rows: Vec<Vec<Bind>> = (1..)
            .zip(ranks)
            .map(|(rank, (seizure, case, court))| {
                vec![
                    Bind::Text(id.into()),
                    Bind::Int(rank),
                    Bind::Text(seizure.clone()),
                    Bind::Text(case.clone()),
                    Bind::Text(court.clone()),
                ]
            })
            .collect();
        insert_many(conn, PROCEEDS_RANKS, &rows).await?;
        self.move_funds(conn, &[Moved::of((court, case), (Movement::Received, amount, seizure_id), (id, ""))]).await
    }

    /// Writes movements of cases' funds, each an event to the case's court.
    pub(super) async fn move_funds(
        &self,
        conn: &mut AnyConnection,
        moves: &[(String, Moved<'_>)],
    ) -> Result<(), LedgerError> {
        let moves: Vec<&(String, Moved<'_>)> = moves.iter().filter(|(_, m)| m.amount > 0).collect();
        let ids = self.next_ids(conn, moves.len()).await?;
        let at = self.clock.micros();
        let rows: Vec<Vec<Bind>> = moves
            .iter()
            .zip(ids)
            .map(|((_, m), id)| {
                vec![
                    Bind::Int(id),
                    Bind::Text(m.case.into()),
                    Bind::Text(m.kind.stored().into()),
                    Bind::Int(m.amount),
                    Bind::Text(m.proceeds.into()),
                    Bind::Text(m.distribution.into()),
                    Bind::Text(m.counterparty.into()),
                    Bind::Int(at),
                ]
            })
            .collect();
        insert_many(conn, FUND_MOVEMENTS, &rows).await?;
        let messages: Vec<String> = moves
            .iter()
            .map(|(_, m)| match m.kind {
                Movement::Received => format!("{} received {} minor units from {}", m.case, m.amount, m.counterparty),
                Movement::HeldBack => {
                    format!("{} holds back {} minor units while a suit on the plan runs (R29)", m.case, m.amount)
                }
                Movement::PaidOut => format!("{} paid out {} minor units to {}", m.case, m.amount, m.counterparty),
            })
            .collect();
        let notes: Vec<Note<'_>> = moves
            .iter()
            .zip(&messages)
            .map(|((court, m), message)| Note {
                kind: m.kind.event(),
                subject: m.proceeds,
                court,
                case: m.case,
                message,
            })
            .collect();
        self.queue_notes(conn, &notes).await
    }

    /// Proceeds by id.
    pub(super) async fn proceeds(&self, conn: &mut AnyConnection, id: &str) -> Result<proto::Proceeds, LedgerError> {
        let row = sqlx::query(&format!("{PROCEEDS} WHERE p.proceeds_id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| LedgerError::UnknownProceeds(id.into()))?;
        proceeds_of(&row)
    }

    /// The claims the registry reported on an asset as it was seized; an earlier record stands.
    pub(super) async fn registry_secured(
        &self,
        conn: &mut AnyConnection,
        asset_key: &str,
        (court, case): (&str, &str),
        secured: &[(EncumbranceKind, Secured)],
        now: Time,
    ) -> Result<(), LedgerError> {
        for (kind, s) in secured {
            self.write_secured(conn, asset_key, (*kind, s), ("registry", ""), (court, case), now, false).await?;
        }
        Ok(())
    }

    /// A court records a claim secured on an asset its case has seized, with its evidence; it
    /// replaces an earlier record of the same holder and registration.
    pub(super) async fn record_secured(
        &self,
        conn: &mut AnyConnection,
        (court, case): (&str, &str),
        asset_key: &str,
        (kind, secured, evidence): (EncumbranceKind, &Secured, &str),
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let seized: Option<String> =
            sqlx::query_scalar("SELECT seizure_id FROM seizures WHERE asset_key = $1 AND case_number = $2 LIMIT 1")
                .bind(asset_key)
                .bind(case)
                .fetch_optional(&mut *conn)
                .await?;
        if seized.is_none() {
            return Err(LedgerError::NotSeizedBy { asset: asset_key.into(), case: case.into() });
        }
        self.write_secured(conn, asset_key, (kind, secured), ("court", evidence), (court, case), now, true).await?;
        let row = sqlx::query(&format!("{SECURED} WHERE s.asset_key = $1 AND s.holder = $2 AND s.registered_at = $3"))
            .bind(asset_key)
            .bind(&secured.holder)
            .bind(secured.registered_at.timestamp_micros())
            .fetch_one(&mut *conn)
            .await?;
        Ok(Reply::Secured(secured_of(&row)?))
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_secured(
        &self,
        conn: &mut AnyConnection,
        asset_key: &str,
        (kind, s): (EncumbranceKind, &Secured),
        (source, evidence): (&str, &str),
        (court, case): (&str, &str),
        now: Time,
        replace: bool,
    ) -> Result<(), LedgerError> {
        let tail = match replace {
            true => {
                "ON CONFLICT (asset_key, holder, registered_at) DO UPDATE SET kind = excluded.kind, \
                 amount = excluded.amount, source = excluded.source, evidence = excluded.evidence, \
                 court = excluded.court, case_number = excluded.case_number, recorded_at = excluded.recorded_at"
            }
            false => "ON CONFLICT (asset_key, holder, registered_at) DO NOTHING",
        };
        sqlx::query(&format!(
            "INSERT INTO secured_claims (asset_key, holder, registered_at, kind, amount, source, evidence, court, \
             case_number, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) {tail}"
        ))
        .bind(asset_key)
        .bind(&s.holder)
        .bind(s.registered_at.timestamp_micros())
        .bind(kind as i64)
        .bind(s.amount)
        .bind(source)
        .bind(evidence)
        .bind(court)
        .bind(case)
        .bind(now.timestamp_micros())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The claims secured on an asset.
    pub(super) async fn secured_on(
        &self,
        conn: &mut AnyConnection,
        asset_key: &str,
    ) -> Result<Vec<Secured>, LedgerError> {
        let rows = sqlx::query("SELECT holder, registered_at, amount FROM secured_claims WHERE asset_key = $1")
            .bind(asset_key)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Secured { holder: r.try_get(0)?, registered_at: from_micros(r.try_get(1)?), amount: r.try_get(2)? })
            })
            .collect()
    }

    /// R28: a case applies to share in proceeds from the asset of a natural person or another
    /// organisation, before they are paid out; a plan drafted or served without it is withdrawn.
    pub(super) async fn participate(
        &self,
        conn: &mut AnyConnection,
        (court, case): (&str, &str),
        proceeds_id: &str,
        (debtor_key, kind): (&str, DebtorKind),
        now: Time,
    ) -> Result<Reply, LedgerError> {
        self.lock_debtor(conn, debtor_key, true).await?;
        let proceeds = self.proceeds(conn, proceeds_id).await?;
        let owner: String = sqlx::query_scalar(
            "SELECT a.debtor_key FROM proceeds p JOIN assets a ON a.asset_key = p.asset_key WHERE p.proceeds_id = $1",
        )
        .bind(proceeds_id)
        .fetch_one(&mut *conn)
        .await?;
        if owner != debtor_key {
            return Err(LedgerError::UnknownProceeds(proceeds_id.into()));
        }
        self.check_standing(conn, debtor_key, EnforcementStep::Distribute, "").await?;
        let paid = match proceeds.distribution_id.as_str() {
            "" => None,
            id => Some((id, self.paid_at(conn, id).await?)),
        };
        rules::participation(kind, paid)?;
        self.claim_of(conn, case).await?;
        sqlx::query(
            "INSERT INTO participations (proceeds_id, case_number, court, applied_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (proceeds_id, case_number) DO NOTHING",
        )
        .bind(proceeds_id)
        .bind(case)
        .bind(court)
        .bind(now.timestamp_micros())
        .execute(&mut *conn)
        .await?;
        let withdrawn =
            self.withdraw_open(conn, &[proceeds_id.to_string()], &format!("{case} applied to participate")).await?;
        let mut message = format!("{case} participates in proceeds {proceeds_id} (R28)");
        if let Some(plan) = withdrawn {
            message.push_str(&format!("; distribution {plan}, drafted without it, is withdrawn: draft it again"));
        }
        Ok(Reply::Participation(ApplyToParticipateResponse { message }))
    }

    /// A case's unpaid claim and its currency; refused when none is registered (R28).
    pub(super) async fn claim_of(&self, conn: &mut AnyConnection, case: &str) -> Result<(i64, String), LedgerError> {
        let row = sqlx::query("SELECT claim, paid, currency FROM cases WHERE case_number = $1")
            .bind(case)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(r) if r.try_get::<i64, _>(0)? > 0 => {
                Ok((r.try_get::<i64, _>(0)? - r.try_get::<i64, _>(1)?, r.try_get(2)?))
            }
            _ => Err(Refusal::NoClaim { case: case.into() }.into()),
        }
    }
}

/// The columns [`secured_of`] reads.
const SECURED: &str = "SELECT a.kind, a.asset_id, a.registry, s.kind, s.holder, s.amount, s.registered_at, s.source, \
     s.evidence, s.court, s.case_number FROM secured_claims s JOIN assets a ON a.asset_key = s.asset_key";

fn secured_of(r: &sqlx::any::AnyRow) -> Result<proto::SecuredClaim, LedgerError> {
    let source = match r.try_get::<String, _>(7)?.as_str() {
        "registry" => proto::SecuredClaimSource::Registry,
        _ => proto::SecuredClaimSource::Court,
    };
    Ok(proto::SecuredClaim {
        asset: Some(AssetRef {
            kind: super::rows::kind_of(r.try_get(0)?)? as i32,
            asset_id: r.try_get(1)?,
            registry: r.try_get(2)?,
        }),
        kind: i32::try_from(r.try_get::<i64, _>(3)?).unwrap_or_default(),
        holder: r.try_get(4)?,
        amount: r.try_get(5)?,
        registered_at: Some(ts(from_micros(r.try_get(6)?))),
        source: source as i32,
        evidence_reference: r.try_get(8)?,
        court_code: r.try_get(9)?,
        case_number: r.try_get(10)?,
    })
}
