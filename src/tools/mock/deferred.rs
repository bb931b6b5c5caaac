//! Deferred answers of a mock registry, as a bank that answers within hours
//! or a depository that answers in a next-day batch: when the mock is set to
//! defer and the caller accepts it, a search gets a ticket at once, and
//! `GetAnswer` gives the answer once its time has come (the same answer on
//! every later ask) until the window ends.

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use chrono::{Days, NaiveTime};
use rand::Rng;
use serde::Deserialize;
use tonic::Status;

use super::{settings::duration_range, state::SavedTicket};
use crate::core::{
    clock::{Time, beijing_date, beijing_midnight, from_micros},
    proto::{Deferred, GetAnswerResponse, SearchAssetsResponse, get_answer_response::State, ts},
};

/// When a deferred answer is ready.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum Deferral {
    /// At a time drawn uniformly from this range after the search; the window ends [`KEPT`] after
    /// the range's upper bound.
    Within(Duration, Duration),
    /// In a batch at this time of the day after the search's (China Standard Time); the window ends
    /// [`KEPT`] after the batch.
    NextDayAt(NaiveTime),
}

/// How long an answer may still be asked for after the latest it can be ready: a window ending at
/// readiness itself would lose any answer the caller was a moment late for.
const KEPT: Duration = Duration::from_secs(6 * 3600);
/// The longest range a mock takes: real windows are a day or two.
const MAX_WITHIN: Duration = Duration::from_secs(30 * 24 * 3600);

impl Deferral {
    /// When an answer to a search made at `now` is ready, and when its window ends.
    fn draw(self, now: Time, rng: &mut impl Rng) -> (Time, Time) {
        let after =
            |d: Duration| chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(now);
        match self {
            Deferral::Within(lo, hi) => (after(rng.random_range(lo..=hi)), after(hi + KEPT)),
            Deferral::NextDayAt(at) => {
                let day = beijing_date(now) + Days::new(1);
                let batch = beijing_midnight(day) + (at - NaiveTime::MIN);
                (batch, batch + chrono::Duration::from_std(KEPT).unwrap_or_default())
            }
        }
    }

    /// The longest from a search to the end of its window, as `Describe` declares it.
    pub fn window(self) -> Duration {
        match self {
            Deferral::Within(_, hi) => hi + KEPT,
            // A search just after midnight waits a whole day and then until the batch.
            Deferral::NextDayAt(at) => {
                Duration::from_secs(24 * 3600) + (at - NaiveTime::MIN).to_std().unwrap_or_default() + KEPT
            }
        }
    }
}

impl FromStr for Deferral {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(at) = s.strip_prefix("next ") {
            return NaiveTime::parse_from_str(at.trim(), "%H:%M")
                .map(Deferral::NextDayAt)
                .map_err(|_| format!("`{at}` is not a time of day like 06:00"));
        }
        if !s.contains("..") {
            return Err(format!("`{s}` is not a deferral; use a range like 30s..2h or `next 06:00`"));
        }
        match duration_range(s)? {
            (a, b) if !b.is_zero() && b <= MAX_WITHIN => Ok(Deferral::Within(a, b)),
            _ => Err(format!("`{s}`: a deferral takes more than nothing and at most 30 days")),
        }
    }
}

impl TryFrom<String> for Deferral {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Deferral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Deferral::Within(a, b) => write!(f, "{}..{}", humantime::format_duration(a), humantime::format_duration(b)),
            Deferral::NextDayAt(at) => write!(f, "next {}", at.format("%H:%M")),
        }
    }
}

/// The tickets a mock has handed out.
#[derive(Default)]
pub struct Tickets(Mutex<Book>);

#[derive(Default)]
struct Book {
    open: HashMap<String, Ticket>,
    issued: u64,
}

struct Ticket {
    debtor: String,
    ready_at: Time,
    answer_by: Time,
    /// The answer as first given: later asks get exactly it.
    answer: Option<SearchAssetsResponse>,
}

impl Tickets {
    /// The tickets as kept across a restart, and how many were issued.
    pub(super) fn saved(&self) -> (Vec<SavedTicket>, u64) {
        let book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tickets = book
            .open
            .iter()
            .map(|(ticket, t)| SavedTicket {
                ticket: ticket.clone(),
                debtor: t.debtor.clone(),
                ready_at_micros: t.ready_at.timestamp_micros(),
                answer_by_micros: t.answer_by.timestamp_micros(),
                answer: t.answer.as_ref().map(prost::Message::encode_to_vec),
            })
            .collect();
        (tickets, book.issued)
    }

    /// Tickets as [`Tickets::saved`] kept them.
    pub(super) fn restored(tickets: Vec<SavedTicket>, issued: u64) -> Tickets {
        let open = tickets
            .into_iter()
            .map(|t| {
                let answer = t.answer.and_then(|a| <SearchAssetsResponse as prost::Message>::decode(a.as_slice()).ok());
                let kept = Ticket {
                    debtor: t.debtor,
                    ready_at: from_micros(t.ready_at_micros),
                    answer_by: from_micros(t.answer_by_micros),
                    answer,
                };
                (t.ticket, kept)
            })
            .collect();
        Tickets(Mutex::new(Book { open, issued }))
    }
}

/// Tickets handed out between sweeps of the expired ones.
const SWEEP_EVERY: u64 = 1024;

impl Tickets {
    /// A ticket for `debtor`'s search at `now`, named after `registry`.
    pub fn issue(&self, registry: &str, debtor: &str, deferral: Deferral, now: Time) -> Deferred {
        let (ready_at, answer_by) = deferral.draw(now, &mut rand::rng());
        let ticket = format!("{registry}-{}", uuid::Uuid::new_v4().simple());
        let mut book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        book.issued += 1;
        if book.issued % SWEEP_EVERY == 0 {
            book.open.retain(|_, t| t.answer_by > now);
        }
        book.open.insert(ticket.clone(), Ticket { debtor: debtor.to_string(), ready_at, answer_by, answer: None });
        Deferred { ticket, ask_after: Some(ts(ready_at)), answer_by: Some(ts(answer_by)) }
    }

    /// The answer to `ticket` at `now`: pending until it is ready, then the
    /// answer `answer(debtor)` gave the first time; `NOT_FOUND` for a ticket
    /// never issued or past its window.
    pub fn ask(
        &self,
        ticket: &str,
        now: Time,
        answer: impl FnOnce(&str) -> SearchAssetsResponse,
    ) -> Result<GetAnswerResponse, Status> {
        let mut book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let unknown = || Status::not_found(format!("no open ticket {ticket}: never issued here, or its window ended"));
        let t = book.open.get_mut(ticket).ok_or_else(unknown)?;
        if now > t.answer_by {
            book.open.remove(ticket);
            return Err(unknown());
        }
        let state = if now < t.ready_at {
            State::Pending(Deferred {
                ticket: ticket.to_string(),
                ask_after: Some(ts(t.ready_at)),
                answer_by: Some(ts(t.answer_by)),
            })
        } else {
            State::Answer(t.answer.get_or_insert_with(|| answer(&t.debtor)).clone())
        };
        Ok(GetAnswerResponse { state: Some(state) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Time {
        // Beijing wall time.
        chrono::Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap() - chrono::Duration::hours(8)
    }

    #[test]
    fn deferrals_parse_and_print_back() {
        for text in ["30s..2h", "next 06:00"] {
            assert_eq!(text.parse::<Deferral>().unwrap().to_string(), text);
        }
        for bad in ["2h..30s", "soon", "next 25:00", "0s..0s", "1s..100000000years"] {
            assert!(bad.parse::<Deferral>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_next_day_batch_is_the_day_after_the_search_in_beijing() {
        let batch = Deferral::NextDayAt(NaiveTime::from_hms_opt(6, 0, 0).unwrap());
        // 23:30 and 00:30 Beijing time are different days: each waits for the batch of its next day.
        assert_eq!(batch.draw(at(2026, 3, 1, 23, 30), &mut rand::rng()).0, at(2026, 3, 2, 6, 0));
        assert_eq!(batch.draw(at(2026, 3, 2, 0, 30), &mut rand::rng()).0, at(2026, 3, 3, 6, 0));
        assert_eq!(batch.window(), Duration::from_secs((24 + 6 + 6) * 3600), "just after midnight: 30 h, then 6 h");
    }

    #[test]
    fn a_ticket_is_pending_then_final_then_forgotten() {
        let tickets = Tickets::default();
        let t0 = at(2026, 3, 1, 10, 0);
        let deferred = tickets.issue(
            "bank-x",
            "110105199001011232",
            Deferral::Within(Duration::from_secs(60), Duration::from_secs(60)),
            t0,
        );
        let answer = |n: i64| {
            move |_: &str| SearchAssetsResponse {
                as_of: Some(prost_types::Timestamp { seconds: n, nanos: 0 }),
                ..Default::default()
            }
        };
        let pending = tickets.ask(&deferred.ticket, t0, answer(1)).unwrap();
        assert!(matches!(pending.state, Some(State::Pending(d)) if d.ask_after == deferred.ask_after));
        let later = t0 + chrono::Duration::seconds(60);
        let first = tickets.ask(&deferred.ticket, later, answer(1)).unwrap();
        let late = later + chrono::Duration::seconds(1);
        let again = tickets.ask(&deferred.ticket, late, answer(2)).unwrap();
        assert_eq!(first, again, "answers are final, and kept past the moment they were ready");
        let window_end = later + chrono::Duration::from_std(KEPT).unwrap();
        assert!(tickets.ask(&deferred.ticket, window_end, answer(1)).is_ok());
        let gone = tickets.ask(&deferred.ticket, window_end + chrono::Duration::seconds(1), answer(1)).unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound);
        assert_eq!(tickets.ask("bank-x-nothing", t0, answer(1)).unwrap_err().code(), tonic::Code::NotFound);
    }
}
