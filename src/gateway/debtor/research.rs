//! Terminated cases (R30): a court terminates its case for now, naming the
//! debtors the gateway is to search again every six months for five years
//! (kept sealed until then), resumes it under a 执恢 case, and lists its
//! re-searches.

use prost::Message as _;

use super::DebtorApi;
use crate::{
    core::{
        error::Error,
        identifiers::DebtorId,
        proto::{
            ListResearchesRequest, ListResearchesResponse, ResumeCaseRequest, ResumeCaseResponse, TerminateCaseRequest,
            TerminateCaseResponse, time_of,
        },
    },
    gateway::{call::Call, jobs::research::seal_place, validate::Checks},
    ledger::{
        command::{Command, RequestKey, ResearchDebtor},
        rules::Action,
    },
};

/// The most debtors a terminated case names.
const MAX_DEBTORS: usize = 50;

impl DebtorApi {
    /// R30: a court terminates its case for now; its debtors are kept, sealed, for the re-searches.
    pub(super) async fn terminate(&self, call: &Call, r: TerminateCaseRequest) -> Result<TerminateCaseResponse, Error> {
        call.note.request_id(&r.request_id);
        call.note.case(r.case_number.chars().take(64).collect::<String>());
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        let case = c.case("case_number", &r.case_number);
        if r.debtors.is_empty() || r.debtors.len() > MAX_DEBTORS {
            c.bad("debtors", format!("names {} debtors; 1 to {MAX_DEBTORS}: those to search again", r.debtors.len()));
        }
        let now = self.acting.store.now();
        let ids: Vec<DebtorId> = r.debtors.iter().filter_map(|d| self.debtor(&mut c, Some(d), now)).collect();
        if r.terminated_at.as_ref().is_some_and(|t| time_of(t) > now) {
            c.bad("terminated_at", "is in the future");
        }
        let case = c.done(case)?;
        call.note.debtors(ids.clone());
        self.acting.authorize(call, &case, Action::Control).await?;
        let number = case.to_string();
        let mut debtors = Vec::new();
        for (idx, id) in ids.iter().enumerate() {
            let sealed = self
                .researches
                .seal
                .seal(&seal_place(&number, idx), id.as_str().as_bytes())
                .ok_or_else(|| Error::Internal("sealing a terminated case's debtor failed".into()))?;
            let (key, masked) = (self.debtors.debtor(id), id.masked().to_string());
            debtors.push(ResearchDebtor { key, masked, organisation: matches!(id, DebtorId::Organisation(_)), sealed });
        }
        let request = RequestKey::of(&call.caller.court, &call.caller.officer, &r.request_id, &r.encode_to_vec());
        let at = r.terminated_at.as_ref().map_or(now, time_of);
        let done: TerminateCaseResponse =
            self.acting.execute(call, Command::Terminate { request, case, debtors, at }).await?;
        // A termination recorded late may have a re-search due already: no need to wait for the next round.
        if done.researches_due.first().is_some_and(|due| time_of(due) <= now) {
            self.researches.wake();
        }
        Ok(done)
    }

    /// R30: a court resumes its terminated case under a new 执恢 case.
    pub(super) async fn resume(&self, call: &Call, r: ResumeCaseRequest) -> Result<ResumeCaseResponse, Error> {
        call.note.request_id(&r.request_id);
        call.note.case(r.case_number.chars().take(64).collect::<String>());
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        let case = c.case("case_number", &r.case_number);
        let new_case = c.case("new_case_number", &r.new_case_number);
        let (case, new_case) = c.done(case.zip(new_case))?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let request = RequestKey::of(&call.caller.court, &call.caller.officer, &r.request_id, &r.encode_to_vec());
        self.acting.execute(call, Command::Resume { request, case, new_case }).await
    }

    /// R30: the calling court's re-searches, of one case or all.
    pub(super) async fn researches(
        &self,
        call: &Call,
        r: ListResearchesRequest,
    ) -> Result<ListResearchesResponse, Error> {
        let case = match r.case_number.as_str() {
            "" => None,
            given => {
                let mut c = Checks::default();
                let case = c.case("case_number", given);
                let case = c.done(case)?;
                self.acting.authorize(call, &case, Action::Query).await?;
                Some(case.to_string())
            }
        };
        let researches = self.acting.store.researches(&call.caller.court, case.as_deref()).await?;
        Ok(ListResearchesResponse { researches })
    }
}
