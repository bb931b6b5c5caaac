//! Where "now" comes from. Every decision that depends on the time of day or
//! the calendar (terms, lapses, quota days, outbox schedules, audit times)
//! takes it from one injected [`Clock`], so tests jump years ahead in
//! microseconds. This is the only module allowed to read the wall clock
//! (`clippy.toml` bans the readers elsewhere).

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Utc, Weekday};

/// An instant on the gateway's clock.
pub type Time = DateTime<Utc>;

/// Where "now" comes from; tests jump years ahead with [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Time;

    /// The current instant in Unix microseconds, as the databases store it.
    fn micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
}

/// The clock the gateway runs on, shared by every part that needs "now".
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one reader of the wall clock
    fn now(&self) -> Time {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: Time) -> Self {
        Self(AtomicI64::new(t.timestamp_micros()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_microseconds().unwrap_or(0), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// An instant from stored Unix microseconds.
pub fn from_micros(us: i64) -> Time {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// China Standard Time, UTC+8 all year: every legal date and day count is a
/// calendar date there, whatever the server's zone.
pub const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// The calendar date in Beijing at `t`.
pub fn beijing_date(t: Time) -> NaiveDate {
    t.with_timezone(&BEIJING).date_naive()
}

/// The instant a Beijing calendar day begins (its midnight).
pub fn beijing_midnight(d: NaiveDate) -> Time {
    (d.and_time(NaiveTime::MIN) - chrono::Duration::hours(8)).and_utc()
}

/// Whole calendar days in Beijing from `from`'s date to `to`'s date.
pub fn beijing_days(from: Time, to: Time) -> i64 {
    (beijing_date(to) - beijing_date(from)).num_days()
}

/// A stretch of the Beijing day, such as `22:00-06:00` (it may run past midnight): when the
/// gateway's scheduled work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct BeijingHours {
    /// Its first minute.
    pub from: NaiveTime,
    /// The minute after its last.
    pub to: NaiveTime,
}

impl BeijingHours {
    /// How long from `t` until the hours end, if `t` falls within them.
    pub fn left(&self, t: Time) -> Option<chrono::Duration> {
        let now = t.with_timezone(&BEIJING).time();
        let within = match self.from < self.to {
            true => self.from <= now && now < self.to,
            false => now >= self.from || now < self.to,
        };
        let left = self.to - now;
        within.then(|| if left > chrono::Duration::zero() { left } else { left + chrono::Duration::days(1) })
    }
}

impl std::str::FromStr for BeijingHours {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| format!("`{t}` is not HH:MM"));
        let (from, to) = s.split_once('-').ok_or_else(|| format!("`{s}` is not hours like 22:00-06:00"))?;
        let hours = BeijingHours { from: time(from)?, to: time(to)? };
        match hours.from == hours.to {
            true => Err(format!("`{s}` is empty; leave it out to run at any hour")),
            false => Ok(hours),
        }
    }
}

impl TryFrom<String> for BeijingHours {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The days a period does not end on: weekends (but for the weekends worked in their place, 调休)
/// and the listed holidays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holidays {
    /// Public holidays.
    pub dates: Vec<NaiveDate>,
    /// Saturdays and Sundays worked.
    pub working_weekends: Vec<NaiveDate>,
}

impl Holidays {
    /// Whether `day` is not a working day.
    pub fn includes(&self, day: NaiveDate) -> bool {
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.working_weekends.contains(&day);
        weekend || self.dates.contains(&day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_run_past_midnight_in_beijing() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let night: BeijingHours = "22:00-06:00".parse().unwrap();
        // 23:30 in Beijing: six and a half hours left.
        assert_eq!(night.left(at("2025-03-11T15:30:00Z")), Some(chrono::Duration::minutes(390)));
        // 05:59 in Beijing: one minute left; 06:00 is outside.
        assert_eq!(night.left(at("2025-03-11T21:59:00Z")), Some(chrono::Duration::minutes(1)));
        assert_eq!(night.left(at("2025-03-11T22:00:00Z")), None);
        let day: BeijingHours = "09:00-17:00".parse().unwrap();
        assert_eq!(day.left(at("2025-03-11T08:00:00Z")), Some(chrono::Duration::minutes(60)));
        assert_eq!(day.left(at("2025-03-11T09:00:00Z")), None);
        assert!("06:00-06:00".parse::<BeijingHours>().is_err());
        assert!("6-7".parse::<BeijingHours>().is_err());
    }

    #[test]
    fn beijing_dates_turn_at_midnight_utc_plus_eight() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 06:30 on the 12th in Beijing is still the 11th in UTC.
        assert_eq!(beijing_date(at("2025-03-11T22:30:00Z")).to_string(), "2025-03-12");
        assert_eq!(beijing_date(at("2025-03-11T15:59:59Z")).to_string(), "2025-03-11");
        assert_eq!(beijing_midnight(beijing_date(at("2025-03-11T22:30:00Z"))), at("2025-03-11T16:00:00Z"));
        assert_eq!(beijing_days(at("2025-03-11T15:59:59Z"), at("2025-03-11T16:00:00Z")), 1);
        assert_eq!(beijing_days(at("2025-03-11T16:00:00Z"), at("2025-03-12T15:59:59Z")), 0);
    }
}
