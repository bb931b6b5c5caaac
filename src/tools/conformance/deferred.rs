//! The deferred-answer check: a search that does not accept a ticket never
//! gets one; a ticket is well formed; `GetAnswer` says pending (same ticket,
//! same window) until the answer is ready, then gives the answer the registry
//! would give at once, the same on every ask; an unknown ticket is
//! `NOT_FOUND`. A registry that always answers at once passes by doing so.

use std::collections::BTreeSet;

use prost::Message;
use tonic::Code;

use super::{Suite, Verdict, person, status_text};
use crate::core::{
    clock::{Clock, SystemClock, Time},
    proto::{Deferred, GetAnswerRequest, SearchAssetsResponse, get_answer_response::State},
};

/// How often a pending ticket is asked again while the suite waits for it.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);

fn time(t: &Option<prost_types::Timestamp>) -> Option<Time> {
    t.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
}

fn assets(r: &SearchAssetsResponse) -> BTreeSet<Vec<u8>> {
    r.assets.iter().map(Message::encode_to_vec).collect()
}

impl Suite {
    async fn get_answer(&self, ticket: &str) -> Result<State, tonic::Status> {
        let request = self.request(GetAnswerRequest { ticket: ticket.into() });
        let state = self.client.clone().get_answer(request).await?.into_inner().state;
        state.ok_or_else(|| tonic::Status::internal("GetAnswer set neither pending nor answer"))
    }

    pub(super) async fn deferred(&self) -> Verdict {
        let at_once = self.search_accepting(person(&self.target.debtor), false).await.map_err(|s| status_text(&s))?;
        if at_once.deferred.is_some() {
            return Err(
                "a search with accept_deferred false got a ticket; answer it at once or fail UNAVAILABLE".into()
            );
        }
        let unknown = self.get_answer(&format!("conformance-{}-no-such-ticket", self.run)).await;
        let implemented = match unknown {
            Err(s) if s.code() == Code::NotFound => true,
            Err(s) if s.code() == Code::Unimplemented => false,
            Err(s) => return Err(format!("GetAnswer of an unknown ticket: {} instead of NOT_FOUND", status_text(&s))),
            Ok(_) => return Err("GetAnswer of an unknown ticket answered; it must be NOT_FOUND".into()),
        };
        let accepted = self.search_accepting(person(&self.target.debtor), true).await.map_err(|s| status_text(&s))?;
        let Some(deferred) = accepted.deferred else {
            return Ok("answers at once, also when a ticket is accepted".into());
        };
        if !implemented {
            return Err("it returned a ticket but does not implement GetAnswer".into());
        }
        let (ask_after, answer_by) = well_formed(&deferred)?;
        let deadline = SystemClock.now() + chrono::Duration::from_std(self.target.deferred_wait).unwrap_or_default();
        let mut pending = 0;
        let answer = loop {
            match self.get_answer(&deferred.ticket).await.map_err(|s| format!("GetAnswer: {}", status_text(&s)))? {
                State::Answer(answer) => break answer,
                State::Pending(p) => {
                    if p.ticket != deferred.ticket || time(&p.answer_by) != Some(answer_by) {
                        return Err("a pending answer changed its ticket or its answer_by".into());
                    }
                    let next = time(&p.ask_after).unwrap_or(ask_after);
                    if SystemClock.now() > deadline {
                        return Err(format!(
                            "still pending after the --deferred-wait of {:?}, though it said to ask after {next}",
                            self.target.deferred_wait
                        ));
                    }
                    if next > deadline.min(answer_by) {
                        return Ok(format!(
                            "ticket well formed and pending ({pending} asks); ready after {next}, past the \
                             --deferred-wait of {:?}: readiness not checked",
                            self.target.deferred_wait
                        ));
                    }
                    pending += 1;
                    tokio::time::sleep(POLL.max((next - SystemClock.now()).to_std().unwrap_or_default())).await;
                }
            }
        };
        if answer.deferred.is_some() {
            return Err("the answer to a ticket carries another ticket".into());
        }
        if assets(&answer) != assets(&at_once) {
            return Err("the deferred answer differs from the answer given at once for the same debtor".into());
        }
        match self.get_answer(&deferred.ticket).await {
            Ok(State::Answer(again)) if again == answer => Ok(format!(
                "ticket, pending {pending} times, then {} assets, the same when asked again",
                answer.assets.len()
            )),
            Ok(_) => Err("asked again, the ticket gave a different answer; answers are final once given".into()),
            Err(s) => Err(format!("asked again: {}; a ready answer stays until answer_by", status_text(&s))),
        }
    }
}

/// The ticket's times, if the ticket keeps the field rules.
fn well_formed(d: &Deferred) -> Result<(Time, Time), String> {
    if !(1..=128).contains(&d.ticket.len()) || !d.ticket.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("ticket `{}` is not 1 to 128 printable ASCII characters", d.ticket.escape_debug()));
    }
    match (time(&d.ask_after), time(&d.answer_by)) {
        (Some(ask), Some(by)) if ask <= by => Ok((ask, by)),
        (Some(_), Some(_)) => Err("ask_after is later than answer_by".into()),
        _ => Err("a ticket needs ask_after and answer_by".into()),
    }
}
