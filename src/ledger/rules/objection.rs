//! Objections to a served distribution plan (R29): the three 15-day periods
//! (to object, to oppose an objection, to sue an opponent), each ending at
//! the Beijing midnight after its last day, moved past the holidays of a
//! configurable calendar; and what is paid out once each has run.

use super::{Refusal, RuleError, Time};
pub use crate::core::clock::Holidays;
use crate::core::clock::{beijing_date, beijing_midnight};

/// Days in each period of R29.
pub const OBJECTION_DAYS: u64 = 15;

/// R29: the instant a period of `days` counted from `from` ends: midnight (Beijing) after its last
/// day, and a last day that is a holiday moves to the next working day.
pub fn period_end(from: Time, days: u64, holidays: &Holidays) -> Time {
    let mut last = beijing_date(from) + chrono::Days::new(days);
    while holidays.includes(last) {
        last = last + chrono::Days::new(1);
    }
    beijing_midnight(last + chrono::Days::new(1))
}

/// A served plan's history as recorded (R29): when it was served, and the objection to it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// When the plan was served on the creditors and the debtor.
    pub at: Time,
    /// The objection, if one was made in time.
    pub objection: Option<Objection>,
}

/// An objection, and what answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objection {
    /// When it was made: the others are told at once.
    pub at: Time,
    /// When another creditor opposed it: the objector is told at once.
    pub opposed_at: Option<Time>,
    /// Whether the objector sued the opponents in time.
    pub sued: bool,
}

/// What happens to a served plan now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payout {
    /// A period runs until this instant: nothing is paid yet.
    Wait(Time),
    /// Paid out as served: no objection, or an opposition the objector did not sue on.
    AsServed,
    /// Paid out corrected as the objection asks: nobody opposed it.
    AsCorrected,
    /// The amount in dispute held back while the suit runs; the rest paid out.
    UndisputedOnly,
}

/// R29: what the plan's history allows at `now`: each period's end moves it on by itself.
pub fn payout(plan: &Served, now: Time, holidays: &Holidays) -> Payout {
    let wait_or = |from: Time, then: Payout| {
        let end = period_end(from, OBJECTION_DAYS, holidays);
        if now < end { Payout::Wait(end) } else { then }
    };
    match &plan.objection {
        None => wait_or(plan.at, Payout::AsServed),
        Some(Objection { at, opposed_at: None, .. }) => wait_or(*at, Payout::AsCorrected),
        Some(Objection { sued: true, .. }) => Payout::UndisputedOnly,
        Some(Objection { opposed_at: Some(told), .. }) => wait_or(*told, Payout::AsServed),
    }
}

/// The steps against a plan, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A creditor or the debtor objects.
    Object,
    /// Another creditor opposes the objection.
    Oppose,
    /// The objector sues the opponents.
    Sue,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Object => "an objection",
            Step::Oppose => "an opposition",
            Step::Sue => "a suit",
        }
    }
}

/// R29: whether `step` may be taken at `now`: in its turn and within its period.
pub fn may_take(plan: &Served, step: Step, now: Time, holidays: &Holidays) -> Result<(), RuleError> {
    let out_of_turn = |missing| Err(Refusal::OutOfTurn { step: step.name(), missing }.into());
    let from = match (step, &plan.objection) {
        (Step::Object, None) => plan.at,
        (Step::Oppose, Some(o)) if o.opposed_at.is_none() => o.at,
        (Step::Sue, Some(Objection { opposed_at: Some(told), sued: false, .. })) => *told,
        (Step::Object, Some(_)) => return out_of_turn("plan without an objection"),
        (Step::Oppose, _) => return out_of_turn("objection not yet opposed"),
        (Step::Sue, _) => return out_of_turn("opposition not yet sued on"),
    };
    let end = period_end(from, OBJECTION_DAYS, holidays);
    match now < end {
        true => Ok(()),
        false => {
            Err(Refusal::PeriodOver { step: step.name(), ended: super::day(end - chrono::Duration::seconds(1)) }.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;

    /// An instant given in Beijing time.
    fn beijing(y: i32, m: u32, d: u32, h: u32) -> Time {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap() - chrono::Duration::hours(8)
    }

    #[test]
    fn r29_a_period_ends_at_midnight_after_its_last_working_day_in_beijing() {
        let weekends = Holidays::default();
        // Served Wednesday 2027-03-03 at 23:00 Beijing (15:00 UTC): day 15 is Thursday the 18th.
        assert_eq!(period_end(beijing(2027, 3, 3, 23), 15, &weekends), beijing(2027, 3, 19, 0));
        // Served Friday 2027-03-05: day 15 is Saturday the 20th, so Monday the 22nd ends it.
        assert_eq!(period_end(beijing(2027, 3, 5, 10), 15, &weekends), beijing(2027, 3, 23, 0));
        // A holiday Monday moves it on; a Saturday worked in its place ends it there.
        let calendar = Holidays {
            dates: vec![NaiveDate::from_ymd_opt(2027, 3, 22).unwrap()],
            working_weekends: vec![NaiveDate::from_ymd_opt(2027, 3, 20).unwrap()],
        };
        assert_eq!(period_end(beijing(2027, 3, 5, 10), 15, &calendar), beijing(2027, 3, 21, 0));
        let holiday = Holidays { dates: calendar.dates.clone(), working_weekends: vec![] };
        assert_eq!(period_end(beijing(2027, 3, 5, 10), 15, &holiday), beijing(2027, 3, 24, 0));
    }

    #[test]
    fn r29_each_path_of_a_served_plan() {
        let h = Holidays::default();
        let served = beijing(2027, 3, 3, 10);
        let objections_end = beijing(2027, 3, 19, 0);
        let mut plan = Served { at: served, objection: None };
        // No objection: paid as served once the period has run.
        assert_eq!(payout(&plan, served, &h), Payout::Wait(objections_end));
        assert_eq!(payout(&plan, objections_end, &h), Payout::AsServed);
        assert!(may_take(&plan, Step::Object, objections_end - chrono::Duration::seconds(1), &h).is_ok());
        let late = may_take(&plan, Step::Object, objections_end, &h).unwrap_err();
        assert_eq!(late, Refusal::PeriodOver { step: "an objection", ended: "2027-03-18".into() }.into());
        assert!(may_take(&plan, Step::Oppose, served, &h).is_err(), "nothing to oppose");
        // An objection nobody opposes: paid corrected 15 days after it.
        let objected = beijing(2027, 3, 10, 9);
        plan.objection = Some(Objection { at: objected, opposed_at: None, sued: false });
        assert_eq!(payout(&plan, objections_end, &h), Payout::Wait(beijing(2027, 3, 26, 0)));
        assert_eq!(payout(&plan, beijing(2027, 3, 26, 0), &h), Payout::AsCorrected);
        assert!(may_take(&plan, Step::Object, objected, &h).is_err(), "one objection starts the path");
        // Opposed and not sued: paid as served once the objector's period has run.
        let opposed = beijing(2027, 3, 12, 9);
        plan.objection = Some(Objection { at: objected, opposed_at: Some(opposed), sued: false });
        assert_eq!(payout(&plan, opposed, &h), Payout::Wait(beijing(2027, 3, 30, 0)), "day 15 a Saturday");
        assert_eq!(payout(&plan, beijing(2027, 3, 30, 0), &h), Payout::AsServed);
        assert!(may_take(&plan, Step::Sue, beijing(2027, 3, 29, 23), &h).is_ok());
        // Opposed and sued: the disputed amount held back, the rest paid at once.
        plan.objection = Some(Objection { at: objected, opposed_at: Some(opposed), sued: true });
        assert_eq!(payout(&plan, opposed, &h), Payout::UndisputedOnly);
        assert!(may_take(&plan, Step::Sue, opposed, &h).is_err(), "sued once");
    }
}
