//! The rules over a case and its court rather than one asset's queue: the
//! claim cap across a case's freezes (R4), handing a case over and receiving
//! it (R10, R11), stopping on designation (R12), the transfer timers (R13),
//! the disposal-transfer answer window (R14), and who may act on a case
//! (R15). Each is given the facts the store or the gate loaded.

use super::{Denial, Invalid, Refusal, RuleError, Time, days_end};
use crate::core::{identifiers::CaseNumber, proto::AssetKind};

// Every count of days is of calendar days in Beijing (see `days_end`).

/// Days before a measure's end within which a transfer is refused (R11).
pub const RENEW_BEFORE_TRANSFER_DAYS: i64 = 30;
/// Days to hand a file over after the decision, and to file after receipt (R13).
pub const TRANSFER_DAYS: u64 = 7;
/// Days after the first seizure before disposal may move to a priority creditor (R14).
pub const DISPOSAL_WAIT_DAYS: u64 = 60;
/// Days the first-seizing court has to answer a disposal-transfer request (R14).
pub const DISPOSAL_ANSWER_DAYS: u64 = 15;

/// What a request does with a case (R15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Looks at assets or seizures.
    Query,
    /// Changes seizures.
    Control,
}

/// A case whose court was designated away from it (R10, R12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Designation {
    /// The court the case was designated to.
    pub to_court: String,
    /// The designation decision's reference.
    pub decision: String,
    /// When the decision was made.
    pub decided_at: Time,
}

/// R12: the original court records a designation on receipt, once; a
/// handover names the designation it received, if it recorded one.
pub fn designation_receipt(
    case: &CaseNumber,
    to_court: &str,
    decision: &str,
    recorded: Option<&Designation>,
) -> Result<(), RuleError> {
    if to_court == case.court_code {
        return Err(Invalid::DesignatedToItself.into());
    }
    match recorded {
        Some(d) if d.to_court == to_court && d.decision == decision => Ok(()),
        Some(d) => Err(Refusal::OtherDesignation {
            case: case.to_string(),
            to_court: d.to_court.clone(),
            decision: d.decision.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

/// R13: the original court hands the case over by the end of the 7th day after the decision.
pub fn handover_due(decided: Time) -> Time {
    days_end(decided, TRANSFER_DAYS)
}

/// R11 with R12: a designated case's court renews, without approval, only
/// what ends within [`RENEW_BEFORE_TRANSFER_DAYS`] (so that nothing lapses
/// in transit); anything else is an emergency measure.
pub fn renewal_on_designation(
    case: &str,
    designation: Option<&Designation>,
    ends_soon: bool,
    emergency: &str,
) -> Result<bool, RuleError> {
    if ends_soon {
        return Ok(false);
    }
    stop_on_designation(case, designation, emergency)
}

/// R15 with R10 and R12: may a court act on `case`? `designated_to` is the
/// court the case was designated to, if any.
pub fn authority(
    caller_court: &str,
    case: &CaseNumber,
    designated_to: Option<&str>,
    action: Action,
) -> Result<(), RuleError> {
    if case.court_code == caller_court {
        return match (designated_to, action) {
            (Some(to), Action::Query) => {
                Err(Denial::SearchDesignatedAway { case: case.to_string(), to_court: to.into() }.into())
            }
            // Control steps are judged by R12 in the ledger: an emergency measure may be approved.
            _ => Ok(()),
        };
    }
    match (designated_to, action) {
        (Some(to), Action::Query) if to == caller_court => Ok(()),
        (Some(to), Action::Control) if to == caller_court => {
            Err(Denial::DesignatedHere { case: case.to_string() }.into())
        }
        _ => Err(Denial::NotItsCase {
            case: case.to_string(),
            case_court: case.court_code.clone(),
            caller: caller_court.into(),
        }
        .into()),
    }
}

/// R12: a case designated away may not be acted on by its court, unless a
/// superior court approved an emergency measure. `Ok(true)` when the
/// approval is what lets the step through (it is logged).
pub fn stop_on_designation(case: &str, designation: Option<&Designation>, emergency: &str) -> Result<bool, RuleError> {
    let Some(d) = designation else { return Ok(false) };
    if emergency.trim().is_empty() {
        return Err(
            Denial::Stopped { case: case.into(), to_court: d.to_court.clone(), decision: d.decision.clone() }.into()
        );
    }
    Ok(true)
}

/// R4: a deposit freeze names its claim, in the account's currency, and the
/// case's live freezes in that currency (`others`, this account's excluded)
/// plus this one may not exceed it.
pub fn claim_cap(
    kind: AssetKind,
    unit: &str,
    amount: i64,
    claim: Option<&(String, i64)>,
    others: i64,
) -> Result<(), RuleError> {
    if kind != AssetKind::Deposit {
        return Ok(());
    }
    let (currency, claimed) = claim.ok_or(Invalid::NoClaim)?;
    if currency != unit {
        return Err(Invalid::ClaimCurrency { currency: currency.clone(), unit: unit.into() }.into());
    }
    if amount.saturating_add(others) > *claimed {
        return Err(Refusal::OverClaim { amount, others, claimed: *claimed, currency: currency.clone() }.into());
    }
    Ok(())
}

/// R10, R11: may `case` be handed over (to the court [`designation_receipt`]
/// accepted)? `handed_to` is the court it already went to, if any; `ending`
/// the case's measures that end
/// within [`RENEW_BEFORE_TRANSFER_DAYS`], described.
pub fn handover(case: &CaseNumber, handed_to: Option<&str>, ending: &[String]) -> Result<(), RuleError> {
    if let Some(court) = handed_to {
        return Err(Refusal::HandedOver { case: case.to_string(), court: court.into() }.into());
    }
    if !ending.is_empty() {
        return Err(Refusal::RenewFirst { ending: ending.to_vec(), within_days: RENEW_BEFORE_TRANSFER_DAYS }.into());
    }
    Ok(())
}

/// R10: the receiving court files a first-enforcement case of its own, once.
pub fn acceptance(
    transfer_id: &str,
    to_court: &str,
    filed_as: Option<&str>,
    new_case: &CaseNumber,
) -> Result<(), RuleError> {
    if new_case.court_code != to_court {
        return Err(Denial::TransferElsewhere {
            transfer: transfer_id.into(),
            to_court: to_court.into(),
            case: new_case.to_string(),
            case_court: new_case.court_code.clone(),
        }
        .into());
    }
    if let Some(filed) = filed_as {
        return Err(Refusal::AlreadyFiled { transfer: transfer_id.into(), filed: filed.into() }.into());
    }
    if new_case.case_type != "执" {
        return Err(Invalid::NotFirstEnforcement { case_type: new_case.case_type.clone() }.into());
    }
    Ok(())
}

/// Where a case transfer stands against its timers (R13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferTimers {
    /// When the receiving court must have filed its case.
    pub filing_due: Time,
    /// The file was handed over more than [`TRANSFER_DAYS`] after the decision.
    pub handover_late: bool,
    /// The receiving court has not filed and the filing is due.
    pub filing_overdue: bool,
}

/// R13: the transfer's timers as of `now`.
pub fn transfer_timers(decided: Time, handed_over: Time, filed: Option<Time>, now: Time) -> TransferTimers {
    let filing_due = days_end(handed_over, TRANSFER_DAYS);
    TransferTimers {
        filing_due,
        handover_late: handed_over >= handover_due(decided),
        filing_overdue: filed.is_none() && now >= filing_due,
    }
}

/// R14: when a disposal-transfer request must be answered, and whether an unanswered one is overdue.
pub fn disposal_answer_due(requested: Time, answered: bool, now: Time) -> (Time, bool) {
    let due = days_end(requested, DISPOSAL_ANSWER_DAYS);
    (due, !answered && now >= due)
}

/// R14: one pending request per requesting case and asset.
pub fn disposal_request(case: &str, asset: &str, pending: bool) -> Result<(), RuleError> {
    if pending {
        return Err(Refusal::DisposalPending { case: case.into(), asset: asset.into() }.into());
    }
    Ok(())
}

/// R14: only the case holding the first seizure answers, once.
pub fn disposal_answer(id: &str, case: &str, addressed_to: &str, answered: bool) -> Result<(), RuleError> {
    if addressed_to != case {
        return Err(Denial::NotAddressed { id: id.into(), addressed_to: addressed_to.into() }.into());
    }
    if answered {
        return Err(Refusal::AlreadyAnswered { id: id.into() }.into());
    }
    Ok(())
}
