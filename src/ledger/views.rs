//! The ledger as the court API shows it: seizures with their rank, an
//! asset's queue, step replies, designations, case and disposal transfers
//! with their timers (R13, R14), and the seizure summary a search result carries.

use crate::{
    core::{
        clock::Time,
        proto::{
            self, AssetKind, AssetQueue, AssetRef, ControlResult, DisposalTransferState, SeizureSummary, TransferState,
            ts,
        },
    },
    ledger::rules::{self, Ledger, Seizure, SeizureState},
};

/// A case transfer as stored.
#[derive(Debug, Clone)]
pub struct TransferRecord {
    /// Its id.
    pub id: String,
    /// The designated case.
    pub from_case: String,
    /// Its court.
    pub from_court: String,
    /// The receiving court.
    pub to_court: String,
    /// The case the receiving court filed, once filed.
    pub to_case: Option<String>,
    /// The designation decision.
    pub decision: String,
    /// When decided.
    pub decided_at: Time,
    /// When handed over.
    pub handed_over_at: Time,
    /// When the receiving court filed.
    pub filed_at: Option<Time>,
    /// Seizures handed over.
    pub seizure_count: i64,
}

/// A disposal-transfer request as stored.
#[derive(Debug, Clone)]
pub struct DisposalRecord {
    /// Its id.
    pub id: String,
    /// The asset.
    pub asset: AssetRef,
    /// The case holding the first seizure.
    pub from_case: String,
    /// The priority creditor's case.
    pub to_case: String,
    /// When requested.
    pub requested_at: Time,
    /// When answered.
    pub answered_at: Option<Time>,
    /// Requested, approved or refused.
    pub state: DisposalTransferState,
}

/// A case transfer with its timers as of `now` (R13).
pub fn transfer(t: &TransferRecord, now: Time) -> proto::Transfer {
    let timers = rules::transfer_timers(t.decided_at, t.handed_over_at, t.filed_at, now);
    proto::Transfer {
        transfer_id: t.id.clone(),
        from_case: t.from_case.clone(),
        from_court: t.from_court.clone(),
        to_court: t.to_court.clone(),
        to_case: t.to_case.clone().unwrap_or_default(),
        decision_reference: t.decision.clone(),
        decided_at: Some(ts(t.decided_at)),
        handed_over_at: Some(ts(t.handed_over_at)),
        handover_late: timers.handover_late,
        filing_due: Some(ts(timers.filing_due)),
        filed_at: t.filed_at.map(ts),
        filing_overdue: timers.filing_overdue,
        state: if t.filed_at.is_some() { TransferState::Filed } else { TransferState::HandedOver } as i32,
        seizure_count: u32::try_from(t.seizure_count).unwrap_or(0),
    }
}

/// A designation as received, with its handover timer as of `now` (R12, R13).
pub fn designation(
    case: &str,
    d: &rules::Designation,
    received: Time,
    handed_over: bool,
    now: Time,
) -> proto::Designation {
    let due = rules::handover_due(d.decided_at);
    proto::Designation {
        case_number: case.into(),
        to_court_code: d.to_court.clone(),
        decision_reference: d.decision.clone(),
        decided_at: Some(ts(d.decided_at)),
        received_at: Some(ts(received)),
        handover_due: Some(ts(due)),
        handover_overdue: !handed_over && now >= due,
    }
}

/// A disposal-transfer request with its answer window as of `now` (R14).
pub fn disposal(d: &DisposalRecord, now: Time) -> proto::DisposalTransfer {
    let answered = d.state != DisposalTransferState::Requested;
    let (due, overdue) = rules::disposal_answer_due(d.requested_at, answered, now);
    proto::DisposalTransfer {
        disposal_transfer_id: d.id.clone(),
        asset: Some(d.asset.clone()),
        from_case: d.from_case.clone(),
        to_case: d.to_case.clone(),
        requested_at: Some(ts(d.requested_at)),
        answer_due: Some(ts(due)),
        answered_at: d.answered_at.map(ts),
        overdue,
        state: d.state as i32,
    }
}

fn state(s: SeizureState) -> proto::SeizureState {
    match s {
        SeizureState::Waiting => proto::SeizureState::Waiting,
        SeizureState::Effective => proto::SeizureState::Effective,
        SeizureState::PartlyEffective => proto::SeizureState::PartlyEffective,
        SeizureState::Released => proto::SeizureState::Released,
        SeizureState::Lapsed => proto::SeizureState::Lapsed,
        SeizureState::Disposed => proto::SeizureState::Disposed,
        SeizureState::Satisfied => proto::SeizureState::Satisfied,
    }
}

/// The asset a ledger is about, as a reference.
pub fn asset_ref(l: &Ledger) -> AssetRef {
    AssetRef { kind: l.asset.kind as i32, asset_id: l.asset.asset_id.clone(), registry: l.asset.registry.clone() }
}

/// A seizure as the API shows it.
pub fn seizure(l: &Ledger, s: &Seizure) -> proto::Seizure {
    let rank = l.queue().find(|(_, q)| q.id == s.id).map_or(0, |(r, _)| r);
    proto::Seizure {
        seizure_id: s.id.clone(),
        rank: u32::try_from(rank).unwrap_or(u32::MAX),
        court_code: s.court.clone(),
        case_number: s.case_number.clone(),
        state: state(s.state) as i32,
        requested: s.requested,
        effective: s.effective,
        placed_at: Some(ts(s.placed_at)),
        start_time: s.start.map(ts),
        end_time: s.end.map(ts),
        ended_at: s.ended_at.map(ts),
        registry_reference: s.registry_ref.clone().unwrap_or_default(),
        renewals: u32::try_from(s.renewals).unwrap_or(0),
        asset: Some(asset_ref(l)),
    }
}

/// An asset's live queue as the API shows it.
pub fn queue(l: &Ledger) -> AssetQueue {
    AssetQueue {
        asset: Some(asset_ref(l)),
        unit: if l.asset.kind == AssetKind::Securities { "units".into() } else { l.asset.unit.clone() },
        total: l.asset.total,
        sale_started: l.asset.sale_started,
        disposed: l.asset.disposed,
        seizures: l.queue().map(|(_, s)| seizure(l, s)).collect(),
    }
}

/// A step's reply: the seizure it concerned and the asset's queue after it.
pub fn control_result(l: &Ledger, seizure_id: &str, message: String) -> ControlResult {
    ControlResult {
        message,
        seizure: l.seizures.iter().find(|s| s.id == seizure_id).map(|s| seizure(l, s)),
        queue: Some(queue(l)),
    }
}

/// What a search result says of an asset's live seizures, for the calling case.
pub fn summary(l: &Ledger, case: &str) -> SeizureSummary {
    let first = l.first();
    let mine = l.live_of_case(case);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    SeizureSummary {
        live_count: count(l.queue().count()),
        first_case_number: first.map(|s| s.case_number.clone()).unwrap_or_default(),
        first_court_code: first.map(|s| s.court.clone()).unwrap_or_default(),
        waiting_count: count(l.queue().filter(|(_, s)| s.effective == 0).count()),
        caller_rank: mine.map_or(0, |(r, _)| count(r)),
        caller_seizure_id: mine.map(|(_, s)| s.id.clone()).unwrap_or_default(),
    }
}
