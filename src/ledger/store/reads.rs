//! The ledger's queries: assets and case seizures as of now (lapses applied
//! in memory, R6, whether or not the sweeper has written them), lapsing
//! seizures, transfers, the event stream, due lapses and orders for the
//! workers, and the invariant check.

use std::time::Duration;

use sqlx::{AnyConnection, Row};

use super::{
    Backend, LIVE, Store, micros,
    rows::kind_of,
    transfers::{disposal_record, disposals_sql, transfer_record, transfers_sql},
};
use crate::{
    core::{
        clock::{Time, from_micros},
        proto::{self, AssetKind, AssetRef, WatchEventsResponse, ts},
    },
    ledger::{
        LedgerError,
        command::PendingOrder,
        rules::{BankruptcyAct, Designation, Ledger, OrderKind},
        views,
    },
};

impl Store {
    /// The court a case was designated to, if its court was designated away from it (R12).
    pub async fn designated_to(&self, case: &str) -> Result<Option<String>, LedgerError> {
        let mut conn = self.reader().await?;
        Ok(self.designation(&mut conn, case).await?.map(|d| d.to_court))
    }

    /// Every asset with a live seizure as stored (lapses due not yet recorded included).
    pub async fn live_asset_keys(&self) -> Result<Vec<String>, LedgerError> {
        let mut conn = self.reader().await?;
        let sql = format!("SELECT DISTINCT asset_key FROM seizures WHERE state IN {LIVE} ORDER BY asset_key");
        let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    /// How many designations there are: they are only ever added, so a new
    /// count is the sign of a new one.
    pub async fn designation_count(&self) -> Result<i64, LedgerError> {
        let mut conn = self.reader().await?;
        Ok(sqlx::query("SELECT COUNT(*) FROM designations").fetch_one(&mut *conn).await?.try_get(0)?)
    }

    /// Every designated case, with the court it was designated to (R10).
    pub async fn designations(&self) -> Result<std::collections::HashMap<String, String>, LedgerError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query("SELECT from_case, to_court FROM designations").fetch_all(&mut *conn).await?;
        Ok(rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?)
    }

    /// The ledgers of `keys` as of now (lapses applied in memory, R6), from one snapshot.
    pub async fn ledgers(&self, keys: &[String]) -> Result<Vec<Ledger>, LedgerError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.snapshot().await?;
        self.settled(&mut tx, keys).await
    }

    /// Every seizure of a case as of now, by asset then rank.
    pub async fn case_seizures(&self, case: &str) -> Result<Vec<proto::Seizure>, LedgerError> {
        let mut tx = self.snapshot().await?;
        let keys =
            keys(&mut tx, "SELECT DISTINCT asset_key FROM seizures WHERE case_number = $1", case.to_string()).await?;
        let ledgers = self.settled(&mut tx, &keys).await?;
        Ok(ledgers
            .iter()
            .flat_map(|l| l.seizures.iter().filter(|s| s.case_number == case).map(move |s| views::seizure(l, s)))
            .collect())
    }

    /// Effective seizures ending within `days`, soonest first; optionally one court's.
    pub async fn lapsing(&self, days: u32, court: &str) -> Result<Vec<proto::Seizure>, LedgerError> {
        let now = self.clock.now();
        let horizon = now + chrono::Duration::days(i64::from(days));
        let mut tx = self.snapshot().await?;
        let sql = format!("SELECT DISTINCT asset_key FROM seizures WHERE state IN {LIVE} AND end_at < $1");
        let keys = keys(&mut tx, &sql, micros(horizon)).await?;
        let ledgers = self.settled(&mut tx, &keys).await?;
        let mut out: Vec<(Time, proto::Seizure)> = ledgers
            .iter()
            .flat_map(|l| {
                l.queue()
                    .filter(|(_, s)| s.end.is_some_and(|e| e < horizon) && (court.is_empty() || s.court == court))
                    .map(move |(_, s)| (s.end.unwrap_or(now), views::seizure(l, s)))
            })
            .collect();
        out.sort_by_key(|(end, _)| *end);
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// The ledgers of `keys` read on `conn`, lapses applied as of now.
    pub(super) async fn settled(&self, conn: &mut AnyConnection, keys: &[String]) -> Result<Vec<Ledger>, LedgerError> {
        let now = self.clock.now();
        let mut ledgers = self.load(conn, keys, false).await?;
        for l in &mut ledgers {
            l.settle(now, &self.terms);
        }
        Ok(ledgers)
    }

    /// Case transfers and disposal transfers, newest first.
    pub async fn transfers(&self, overdue_only: bool) -> Result<proto::ListTransfersResponse, LedgerError> {
        let mut conn = self.snapshot().await?;
        let all = self.transfers_in(&mut conn, self.clock.now()).await?;
        Ok(match overdue_only {
            true => proto::ListTransfersResponse {
                transfers: all.transfers.into_iter().filter(|t| t.filing_overdue || t.handover_late).collect(),
                disposal_transfers: all.disposal_transfers.into_iter().filter(|d| d.overdue).collect(),
                designations: all.designations.into_iter().filter(|d| d.handover_overdue).collect(),
            },
            false => all,
        })
    }

    /// Every transfer, disposal transfer and designation not handed over, as of `now`.
    pub(super) async fn transfers_in(
        &self,
        conn: &mut AnyConnection,
        now: Time,
    ) -> Result<proto::ListTransfersResponse, LedgerError> {
        let rows = sqlx::query(&transfers_sql("ORDER BY handed_over_at DESC")).fetch_all(&mut *conn).await?;
        let transfers =
            rows.iter().map(|r| transfer_record(r).map(|t| views::transfer(&t, now))).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(&disposals_sql("ORDER BY d.requested_at DESC")).fetch_all(&mut *conn).await?;
        let disposals =
            rows.iter().map(|r| disposal_record(r).map(|d| views::disposal(&d, now))).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT from_case, to_court, decision_reference, decided_at, received_at FROM designations d \
             WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.from_case = d.from_case) ORDER BY received_at DESC",
        )
        .fetch_all(&mut *conn)
        .await?;
        let designations = rows
            .iter()
            .map(|r| {
                let d = Designation {
                    to_court: r.try_get(1)?,
                    decision: r.try_get(2)?,
                    decided_at: from_micros(r.try_get(3)?),
                };
                let case: String = r.try_get(0)?;
                Ok(views::designation(&case, &d, from_micros(r.try_get(4)?), false, now))
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        Ok(proto::ListTransfersResponse { transfers, disposal_transfers: disposals, designations })
    }

    /// The number of the last event numbered.
    pub async fn last_event(&self) -> Result<i64, LedgerError> {
        let mut conn = self.reader().await?;
        Ok(sqlx::query("SELECT value FROM counters WHERE name = 'events'").fetch_one(&mut *conn).await?.try_get(0)?)
    }

    /// Events after `seq`, in order, at most `limit`.
    pub async fn events_after(&self, seq: i64, limit: i64) -> Result<Vec<WatchEventsResponse>, LedgerError> {
        let mut conn = self.reader().await?;
        // An event of no asset (a search settled) has no row in `assets`.
        let rows = sqlx::query(
            "SELECT e.seq, e.at, e.kind, e.seizure_id, e.court, e.case_number, e.message, a.kind, a.asset_id, a.registry \
             FROM events e LEFT JOIN assets a ON a.asset_key = e.asset_key WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let asset = match r.try_get::<Option<i64>, _>(7)? {
                    Some(kind) => {
                        Some(AssetRef { kind: kind_of(kind)? as i32, asset_id: r.try_get(8)?, registry: r.try_get(9)? })
                    }
                    None => None,
                };
                // An event of no asset keeps its subject where a seizure's id would be: a search's id, a
                // bankruptcy decision's reference, a distribution's id, or the proceeds whose funds moved.
                let (subject, kind): (String, String) = (r.try_get(3)?, r.try_get(2)?);
                let mut event = WatchEventsResponse::default();
                let field = match (&asset, kind.as_str()) {
                    (Some(_), _) => &mut event.seizure_id,
                    (None, k) if BankruptcyAct::from_event(k).is_some() => &mut event.decision_reference,
                    (None, k) if k.starts_with("distribution_") || k == "case_fully_paid" => &mut event.distribution_id,
                    (None, k) if k.starts_with("funds_") => &mut event.proceeds_id,
                    (None, _) => &mut event.search_id,
                };
                *field = subject;
                Ok(WatchEventsResponse {
                    sequence: r.try_get(0)?,
                    at: Some(ts(from_micros(r.try_get(1)?))),
                    kind,
                    court_code: r.try_get(4)?,
                    case_number: r.try_get(5)?,
                    message: r.try_get(6)?,
                    asset,
                    ..event
                })
            })
            .collect()
    }

    /// Assets with an effective seizure whose term has ended, for the sweeper.
    pub async fn due_lapses(&self) -> Result<Vec<String>, LedgerError> {
        let now = self.clock.micros();
        let mut conn = self.reader().await?;
        keys(&mut conn, &format!("SELECT DISTINCT asset_key FROM seizures WHERE state IN {LIVE} AND end_at <= $1"), now)
            .await
    }

    /// Leases up to `limit` of `registry`'s deliverable orders in one write:
    /// its oldest due ones, each the earliest undelivered order of its asset
    /// (so a registry sees an asset's orders in ledger order, R1, and no two
    /// claimed orders share an asset). Replicas skip rows another is claiming
    /// rather than wait for them.
    pub async fn claim_orders(
        &self,
        lease: Duration,
        registry: &str,
        limit: usize,
    ) -> Result<Vec<PendingOrder>, LedgerError> {
        let now = self.clock.micros();
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let pick = "SELECT o.id FROM outbox o WHERE o.registry = $3 AND o.delivered_at IS NULL \
            AND o.next_attempt_at <= $2 AND o.lease_until < $2 \
            AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.asset_key = o.asset_key AND p.id < o.id AND p.delivered_at IS NULL) \
            ORDER BY o.id LIMIT $4";
        let lease = "UPDATE outbox SET lease_until = $1 WHERE lease_until < $2 AND delivered_at IS NULL";
        let mut conn = self.reader().await?;
        let claimed: Vec<i64> = if self.backend == Backend::Postgres {
            // One statement; replicas skip rows another is claiming rather than wait for them.
            sqlx::query_scalar(&format!("{lease} AND id IN ({pick} FOR UPDATE SKIP LOCKED) RETURNING id"))
                .bind(until)
                .bind(now)
                .bind(registry)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
        } else {
            // Look first: an idle lane's poll is a read, not a write that would queue behind the ledger's writer.
            let candidates: Vec<i64> =
                sqlx::query_scalar(pick).bind(until).bind(now).bind(registry).bind(limit).fetch_all(&mut *conn).await?;
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            let ids = candidates.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            sqlx::query_scalar(&format!("{lease} AND id IN ({ids}) RETURNING id"))
                .bind(until)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?
        };
        let mut orders = Vec::with_capacity(claimed.len());
        for id in claimed {
            let row = sqlx::query(
                "SELECT o.id, o.kind, o.registry, o.seizure_id, a.kind, a.asset_id, o.amount, o.end_at, o.court, \
                 o.case_number, s.registry_ref, o.attempts, o.reason FROM outbox o JOIN assets a ON a.asset_key = o.asset_key \
                 JOIN seizures s ON s.seizure_id = o.seizure_id WHERE o.id = $1",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            orders.push(PendingOrder {
                id: row.try_get(0)?,
                kind: {
                    let kind: String = row.try_get(1)?;
                    OrderKind::parse(&kind)
                        .ok_or_else(|| LedgerError::Corrupt(format!("unknown stored order kind {kind}")))?
                },
                registry: row.try_get(2)?,
                seizure_id: row.try_get(3)?,
                asset_kind: kind_of(row.try_get(4)?)?,
                asset_id: row.try_get(5)?,
                amount: row.try_get(6)?,
                end: row.try_get::<Option<i64>, _>(7)?.map(from_micros),
                court: row.try_get(8)?,
                case_number: row.try_get(9)?,
                registry_ref: row.try_get(10)?,
                attempts: row.try_get(11)?,
                reason: row.try_get(12)?,
            });
        }
        Ok(orders)
    }

    /// The registries with an order due now that no replica holds.
    pub async fn due_registries(&self) -> Result<Vec<String>, LedgerError> {
        let now = self.clock.micros();
        let mut conn = self.reader().await?;
        let due = "SELECT DISTINCT registry FROM outbox \
            WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND lease_until < $1";
        Ok(sqlx::query_scalar(due).bind(now).fetch_all(&mut *conn).await?)
    }

    /// Every registry's undelivered orders: how many, and when the oldest was made.
    pub async fn backlogs(&self) -> Result<Vec<(String, i64, Option<Time>)>, LedgerError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT registry, COUNT(*), MIN(created_at) FROM outbox WHERE delivered_at IS NULL GROUP BY registry",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<Option<i64>, _>(2)?.map(from_micros))))
            .collect()
    }

    /// Checks the ledger's invariants on the live database; returns every violation.
    pub async fn verify(&self) -> Result<Vec<String>, LedgerError> {
        let mut out = Vec::new();
        let mut conn = self.reader().await?;
        let keys: Vec<String> = sqlx::query("SELECT asset_key FROM assets ORDER BY asset_key")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        drop(conn);
        for chunk in keys.chunks(200) {
            let mut conn = self.reader().await?;
            let stored = self.load(&mut conn, chunk, false).await?;
            for mut l in stored {
                out.extend(l.violations().into_iter().map(|v| format!("stored {v}")));
                l.settle(self.clock.now(), &self.terms);
                out.extend(l.violations().into_iter().map(|v| format!("as of now {v}")));
            }
        }
        // The counts and the counter from one snapshot, so a commit in between is no gap.
        let mut conn = self.snapshot().await?;
        let (count, max): (i64, Option<i64>) = {
            let row = sqlx::query("SELECT COUNT(*), MAX(seq) FROM events").fetch_one(&mut *conn).await?;
            (row.try_get(0)?, row.try_get(1)?)
        };
        let counter: i64 =
            sqlx::query("SELECT value FROM counters WHERE name = 'events'").fetch_one(&mut *conn).await?.try_get(0)?;
        if count != counter || max.unwrap_or(0) != counter {
            out.push(format!(
                "event numbers have gaps: {count} events numbered up to {}, counter at {counter}",
                max.unwrap_or(0)
            ));
        }
        let orphans: i64 = sqlx::query(
            "SELECT COUNT(*) FROM seizures s WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seizure_id = s.seizure_id AND o.kind = 'seize')",
        )
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        if orphans > 0 {
            out.push(format!("{orphans} seizure(s) without a seize order for their registry"));
        }
        // R4: a case's live freezes in one currency stay within the largest claim its freezes stated.
        let over = sqlx::query(&format!(
            "SELECT s.case_number, a.unit, CAST(SUM(s.requested) AS TEXT), MAX(s.claim) FROM seizures s \
             JOIN assets a ON a.asset_key = s.asset_key WHERE a.kind = $1 AND s.state IN {LIVE} \
             GROUP BY s.case_number, a.unit HAVING SUM(s.requested) > MAX(s.claim)"
        ))
        .bind(AssetKind::Deposit as i64)
        .fetch_all(&mut *conn)
        .await?;
        for r in over {
            let (case, unit, frozen, claim): (String, String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            out.push(format!("case {case}: {frozen} {unit} minor units frozen over its claim of {claim} (R4)"));
        }
        out.extend(self.verify_funds(&mut conn).await?);
        Ok(out)
    }
}

/// The asset keys a one-parameter query returns.
async fn keys<T>(conn: &mut AnyConnection, sql: &str, arg: T) -> Result<Vec<String>, LedgerError>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
{
    let rows = sqlx::query(sql).bind(arg).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| r.try_get(0).map_err(LedgerError::from)).collect()
}
