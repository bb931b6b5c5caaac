//! The steps across courts: handing a designated case over and filing it at
//! the receiving court (R10–R13), and moving disposal to a priority creditor
//! (R14). The rules decide; this loads their facts and saves the result.

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{
    LIVE, Store, micros,
    rows::{Work, kind_of},
};
use crate::{
    core::{
        clock::{Time, from_micros},
        identifiers::CaseNumber,
        proto::{
            AnswerDisposalTransferResponse, AssetRef, DisposalTransferState, RecordDesignationResponse,
            TransferCaseResponse, time_of,
        },
    },
    ledger::{
        LedgerError, asset_key,
        command::Reply,
        rules::{self, ChangeKind, Designation, EnforcementStep, RENEW_BEFORE_TRANSFER_DAYS},
        views::{self, DisposalRecord, TransferRecord},
    },
};

const TRANSFER_COLUMNS: &str = "transfer_id, from_case, from_court, to_court, to_case, decision_reference, decided_at, \
                                handed_over_at, filed_at, seizure_count";
const DISPOSAL_COLUMNS: &str = "d.id, d.from_case, d.to_case, d.requested_at, d.answered_at, d.state, a.kind, \
                                a.asset_id, a.registry";

/// A `transfers` row.
pub(super) fn transfer_record(r: &AnyRow) -> Result<TransferRecord, LedgerError> {
    Ok(TransferRecord {
        id: r.try_get(0)?,
        from_case: r.try_get(1)?,
        from_court: r.try_get(2)?,
        to_court: r.try_get(3)?,
        to_case: r.try_get(4)?,
        decision: r.try_get(5)?,
        decided_at: from_micros(r.try_get(6)?),
        handed_over_at: from_micros(r.try_get(7)?),
        filed_at: r.try_get::<Option<i64>, _>(8)?.map(from_micros),
        seizure_count: r.try_get(9)?,
    })
}

/// A `disposal_transfers` row joined with its asset.
pub(super) fn disposal_record(r: &AnyRow) -> Result<DisposalRecord, LedgerError> {
    let state: String = r.try_get(5)?;
    let state = match state.as_str() {
        "requested" => DisposalTransferState::Requested,
        "approved" => DisposalTransferState::Approved,
        "refused" => DisposalTransferState::Refused,
        other => return Err(LedgerError::Corrupt(format!("unknown stored disposal-transfer state {other}"))),
    };
    Ok(DisposalRecord {
        id: r.try_get(0)?,
        from_case: r.try_get(1)?,
        to_case: r.try_get(2)?,
        requested_at: from_micros(r.try_get(3)?),
        answered_at: r.try_get::<Option<i64>, _>(4)?.map(from_micros),
        state,
        asset: AssetRef { kind: kind_of(r.try_get(6)?)? as i32, asset_id: r.try_get(7)?, registry: r.try_get(8)? },
    })
}

/// The SQL that lists case transfers.
pub(super) fn transfers_sql(filter: &str) -> String {
    format!("SELECT {TRANSFER_COLUMNS} FROM transfers {filter}")
}

/// The SQL that lists disposal-transfer requests.
pub(super) fn disposals_sql(filter: &str) -> String {
    format!("SELECT {DISPOSAL_COLUMNS} FROM disposal_transfers d JOIN assets a ON a.asset_key = d.asset_key {filter}")
}

impl Store {
    async fn live_keys_of_case(&self, conn: &mut AnyConnection, case: &str) -> Result<Vec<String>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT asset_key FROM seizures WHERE case_number = $1 AND state IN {LIVE} ORDER BY asset_key"
        ))
        .bind(case)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(|r| r.try_get(0).map_err(LedgerError::from)).collect()
    }

    /// The case's live ledgers, locked and settled as of `now`.
    pub(super) async fn open_case(
        &self,
        conn: &mut AnyConnection,
        case_number: &str,
        now: Time,
    ) -> Result<Work, LedgerError> {
        let keys = self.live_keys_of_case(conn, case_number).await?;
        let mut w = self.open_ledgers(conn, &keys).await?;
        w.settle(now, &self.terms);
        Ok(w)
    }

    /// R11: the case's live measures that end within 30 days, described.
    pub(super) fn ending_measures(w: &Work, case_number: &str, now: Time) -> Vec<String> {
        w.ledgers
            .iter()
            .flat_map(|l| {
                let key = asset_key(l.asset.kind, &l.asset.asset_id);
                l.ending_within(case_number, now, RENEW_BEFORE_TRANSFER_DAYS).into_iter().map(move |s| {
                    format!("seizure {} on {key} ends {}", s.id, s.end.map(rules::day).unwrap_or_default())
                })
            })
            .collect()
    }

    /// The court the case was handed over to, if it was.
    async fn handed_to(&self, conn: &mut AnyConnection, case: &str) -> Result<Option<String>, LedgerError> {
        let row = sqlx::query("SELECT to_court FROM transfers WHERE from_case = $1")
            .bind(case)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Records a designation as received now, unless it already was; returns when it was received.
    pub(super) async fn receive(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        d: &Designation,
        now: Time,
    ) -> Result<(Designation, Time), LedgerError> {
        let case_number = case.to_string();
        let recorded = self.designation(conn, &case_number).await?;
        rules::designation_receipt(case, &d.to_court, &d.decision, recorded.as_ref())?;
        if let Some(recorded) = recorded {
            let received: i64 = sqlx::query("SELECT received_at FROM designations WHERE from_case = $1")
                .bind(&case_number)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            return Ok((recorded, from_micros(received)));
        }
        sqlx::query(
            "INSERT INTO designations (from_case, from_court, to_court, decision_reference, decided_at, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&case_number)
        .bind(&case.court_code)
        .bind(&d.to_court)
        .bind(&d.decision)
        .bind(micros(d.decided_at))
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
        Ok((d.clone(), now))
    }

    /// R12: the original court records the designation it received; from
    /// now it stops executing the case.
    pub(super) async fn designate(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        d: Designation,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let case_number = case.to_string();
        let (d, received) = self.receive(conn, case, &d, now).await?;
        let w = self.open_case(conn, &case_number, now).await?;
        let ending = Self::ending_measures(&w, &case_number, now);
        self.commit_ledgers(conn, w).await?;
        let handed_over = self.handed_to(conn, &case_number).await?.is_some();
        let designation = views::designation(&case_number, &d, received, handed_over, now);
        let renew = match ending.is_empty() {
            true => String::new(),
            false => {
                format!(" First renew what ends within {RENEW_BEFORE_TRANSFER_DAYS} days (R11): {}.", ending.join("; "))
            }
        };
        let message = format!(
            "case {case_number} is designated to court {} by {}, received {}: this court stops executing it (R12); \
             renewals of measures ending within {RENEW_BEFORE_TRANSFER_DAYS} days are still its duty (R11). Hand the \
             case over by {} (TransferCase, R13).{renew}",
            d.to_court,
            d.decision,
            rules::day(received),
            rules::day(rules::handover_due(d.decided_at) - chrono::Duration::microseconds(1)),
        );
        Ok(Reply::Designation(RecordDesignationResponse { designation: Some(designation), message }))
    }

    /// R10–R13: the original court hands the designated case over.
    pub(super) async fn transfer(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        d: Designation,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let case_number = case.to_string();
        let handed_to = self.handed_to(conn, &case_number).await?;
        let w = self.open_case(conn, &case_number, now).await?;
        let ending = Self::ending_measures(&w, &case_number, now);
        rules::handover(case, handed_to.as_deref(), &ending)?;
        let (d, _) = self.receive(conn, case, &d, now).await?;
        let count: usize =
            w.ledgers.iter().map(|l| l.queue().filter(|(_, s)| s.case_number == case_number).count()).sum();
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO transfers (transfer_id, from_case, from_court, to_court, to_case, decision_reference, decided_at, \
             handed_over_at, filed_at, seizure_count) VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, NULL, $8)",
        )
        .bind(&id)
        .bind(&case_number)
        .bind(&case.court_code)
        .bind(&d.to_court)
        .bind(&d.decision)
        .bind(micros(d.decided_at))
        .bind(micros(now))
        .bind(count as i64)
        .execute(&mut *conn)
        .await?;
        self.commit_ledgers(conn, w).await?;
        let transfer = views::transfer(&self.transfer_row(conn, &id).await?, now);
        let late =
            if transfer.handover_late { " The handover is more than 7 days after the decision (R13)." } else { "" };
        let message = format!(
            "case {case_number} handed over to court {} under {}; its {count} seizure(s) pass with their rank \
             when that court files its case, due {} (R10, R13). This court may no longer act on the case (R12).{late}",
            d.to_court,
            d.decision,
            transfer.filing_due.as_ref().map(|t| rules::day(time_of(t))).unwrap_or_default()
        );
        Ok(Reply::Transfer(TransferCaseResponse { transfer: Some(transfer), message }))
    }

    pub(super) async fn accept(
        &self,
        conn: &mut AnyConnection,
        transfer_id: &str,
        new_case: &CaseNumber,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let t = self.transfer_row(conn, transfer_id).await?;
        let filed_as = t.filed_at.map(|_| t.to_case.clone().unwrap_or_default());
        rules::acceptance(transfer_id, &t.to_court, filed_as.as_deref(), new_case)?;
        let to_case = new_case.to_string();
        let mut w = self.open_case(conn, &t.from_case, now).await?;
        let why = format!("designation {}", t.decision);
        for (l, changes) in w.ledgers.iter_mut().zip(&mut w.changes) {
            changes.extend(l.change_holder(&t.from_case, &t.to_court, &to_case, now, &why));
        }
        let moved: usize =
            w.changes.iter().map(|c| c.iter().filter(|c| c.kind == ChangeKind::HolderChanged).count()).sum();
        // The original case is transferred: its seizures are the new case's now (R10).
        sqlx::query("UPDATE cases SET state = 'transferred' WHERE case_number = $1")
            .bind(&t.from_case)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE transfers SET to_case = $1, filed_at = $2 WHERE transfer_id = $3")
            .bind(&to_case)
            .bind(micros(now))
            .bind(transfer_id)
            .execute(&mut *conn)
            .await?;
        self.commit_ledgers(conn, w).await?;
        Self::register_successor(conn, &t.from_case, new_case, now).await?;
        let transfer = views::transfer(&self.transfer_row(conn, transfer_id).await?, now);
        let message = format!(
            "{moved} seizure(s) of {} now held by {to_case}, rank, references and dates unchanged (R10)",
            t.from_case
        );
        Ok(Reply::Transfer(TransferCaseResponse { transfer: Some(transfer), message }))
    }

    pub(super) async fn request_disposal(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        key: &str,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let case_number = case.to_string();
        let owner = self.owner_of(conn, key).await?;
        self.check_standing(conn, &owner, EnforcementStep::DisposalTransfer, "").await?;
        let mut w = self.open_one(conn, key).await?;
        w.settle(now, &self.terms);
        let from_case = w.ledgers[0].check_disposal_transfer(&case_number, now)?;
        let pending = sqlx::query(
            "SELECT id FROM disposal_transfers WHERE asset_key = $1 AND to_case = $2 AND state = 'requested'",
        )
        .bind(key)
        .bind(&case_number)
        .fetch_optional(&mut *conn)
        .await?;
        rules::disposal_request(&case_number, key, pending.is_some())?;
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO disposal_transfers (id, asset_key, from_case, to_case, requested_at, answered_at, state) \
             VALUES ($1, $2, $3, $4, $5, NULL, 'requested')",
        )
        .bind(&id)
        .bind(key)
        .bind(&from_case)
        .bind(&case_number)
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
        self.commit_ledgers(conn, w).await?;
        let d = views::disposal(&self.disposal_row(conn, &id).await?, now);
        let message = format!(
            "disposal-transfer requested from {from_case}; the first-seizing court must answer by {} (R14)",
            d.answer_due.as_ref().map(|t| rules::day(time_of(t))).unwrap_or_default()
        );
        Ok(Reply::Disposal(AnswerDisposalTransferResponse { disposal_transfer: Some(d), message }))
    }

    pub(super) async fn answer_disposal(
        &self,
        conn: &mut AnyConnection,
        case: &str,
        id: &str,
        approve: bool,
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let d = self.disposal_row(conn, id).await?;
        rules::disposal_answer(id, case, &d.from_case, d.state != DisposalTransferState::Requested)?;
        let kind = kind_of(i64::from(d.asset.kind))?;
        let key = asset_key(kind, &d.asset.asset_id);
        if approve {
            let owner = self.owner_of(conn, &key).await?;
            self.check_standing(conn, &owner, EnforcementStep::DisposalTransfer, "").await?;
        }
        let mut w = self.open_one(conn, &key).await?;
        w.settle(now, &self.terms);
        let message = if approve {
            let (l, changes, _) = w.one();
            let to = CaseNumber::parse(&d.to_case)
                .map_err(|e| LedgerError::Corrupt(format!("disposal-transfer {id} names case {}: {e}", d.to_case)))?;
            changes.push(l.approve_disposal(case, &to.court_code, &d.to_case, now)?);
            format!("approved: the first seizure on {key} is now held by {}, keeping its rank (R14)", d.to_case)
        } else {
            format!("refused: {case} keeps disposal of {key}")
        };
        sqlx::query("UPDATE disposal_transfers SET state = $1, answered_at = $2 WHERE id = $3")
            .bind(if approve { "approved" } else { "refused" })
            .bind(micros(now))
            .bind(id)
            .execute(&mut *conn)
            .await?;
        self.commit_ledgers(conn, w).await?;
        let d = views::disposal(&self.disposal_row(conn, id).await?, now);
        Ok(Reply::Disposal(AnswerDisposalTransferResponse { disposal_transfer: Some(d), message }))
    }

    async fn transfer_row(&self, conn: &mut AnyConnection, id: &str) -> Result<TransferRecord, LedgerError> {
        let row = sqlx::query(&transfers_sql("WHERE transfer_id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| LedgerError::UnknownTransfer(id.to_string()))?;
        transfer_record(&row)
    }

    async fn disposal_row(&self, conn: &mut AnyConnection, id: &str) -> Result<DisposalRecord, LedgerError> {
        let row = sqlx::query(&disposals_sql("WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| LedgerError::UnknownDisposalTransfer(id.to_string()))?;
        disposal_record(&row)
    }
}
