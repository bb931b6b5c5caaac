//! Terminated cases and their re-searches (R30): when a case terminated for
//! now (终本) is searched again, who may terminate and resume a case, and how
//! a resumption takes over the terminated case's seizures.

use super::{CaseState, Invalid, Refusal, RuleError, Time, add_months};
use std::time::Duration;

use crate::core::{
    clock::{BeijingHours, beijing_date, beijing_midnight},
    identifiers::CaseNumber,
};

/// Re-searches after a termination: every six months for five years.
pub const RESEARCH_ROUNDS: u32 = 10;

/// Months between re-searches.
pub const RESEARCH_MONTHS: u32 = 6;

/// The case type of a resumed case.
pub const RESUMED_TYPE: &str = "执恢";

/// R30: the days of a terminated case's re-searches, each at the Beijing midnight that starts it:
/// 6, 12, … 60 calendar months after the termination's Beijing date (a month's end clamps).
pub fn research_days(terminated: Time) -> Vec<Time> {
    (1..=RESEARCH_ROUNDS)
        .map(|round| beijing_midnight(beijing_date(add_months(terminated, round * RESEARCH_MONTHS))))
        .collect()
}

/// R30: a court that started `started_today` re-searches today (Beijing day) may start another
/// within its daily `allowance` (apart from its search quota); the rest wait for the next day.
pub fn within_allowance(started_today: u64, allowance: u32) -> bool {
    started_today < u64::from(allowance)
}

/// R30: a court terminates an active enforcement case (`state` as registered; `None` if the case is
/// not registered yet: the termination registers it).
pub fn termination(case: &CaseNumber, state: Option<CaseState>) -> Result<(), RuleError> {
    match state {
        None | Some(CaseState::Active) => Ok(()),
        Some(CaseState::Terminated) => Err(Refusal::AlreadyTerminated { case: case.to_string() }.into()),
        Some(other) => Err(Refusal::NotActive { case: case.to_string(), state: other.as_str() }.into()),
    }
}

/// R30, spread over the day: of the `due` re-searches waiting at `now`, how many a round starts
/// when the next comes `every` later. Without `hours`, all of them (the registries' rates still
/// pace them); outside the hours, none; within them an even share of the rounds left, so that the
/// last round of the hours starts what is left.
pub fn research_quota(due: u64, now: Time, hours: Option<BeijingHours>, every: Duration) -> u64 {
    let Some(hours) = hours else { return due };
    let Some(left) = hours.left(now) else { return 0 };
    let every = u64::try_from(every.as_micros()).unwrap_or(u64::MAX).max(1);
    let rounds = u64::try_from(left.num_microseconds().unwrap_or(i64::MAX)).unwrap_or(0).div_ceil(every).max(1);
    due.div_ceil(rounds)
}

/// R30: a terminated case is resumed under a new 执恢 case of the same court.
pub fn resumption(old: &CaseNumber, state: Option<CaseState>, new: &CaseNumber) -> Result<(), RuleError> {
    if new.case_type != RESUMED_TYPE {
        return Err(Invalid::NotResumption { case: new.to_string() }.into());
    }
    if new.court_code != old.court_code || new == old {
        return Err(Invalid::ResumedElsewhere { old: old.to_string(), new: new.to_string() }.into());
    }
    match state {
        Some(CaseState::Terminated) => Ok(()),
        _ => Err(Refusal::NotTerminated { case: old.to_string() }.into()),
    }
}
