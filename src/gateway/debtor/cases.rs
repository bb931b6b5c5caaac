//! The cases against a debtor: registered by their courts (or on a first
//! seizure), read together as the debtor's picture by a court with an
//! active or bankruptcy case against it (R27), concentrated in one court by
//! a superior court's series designation (R23), and the seizures a holding
//! court must lift once the debtor's bankruptcy is accepted (R25).

use prost::Message as _;
use serde_json::json;

use super::DebtorApi;
use crate::{
    core::{
        error::Error,
        proto::{
            Case, DesignateSeriesRequest, DesignateSeriesResponse, GetDebtorPictureRequest, GetDebtorPictureResponse,
            ListBankruptcyLiftsRequest, ListBankruptcyLiftsResponse, RegisterCaseRequest, time_of,
        },
    },
    gateway::{
        call::Call,
        validate::{Checks, violation},
    },
    ledger::{
        LedgerError,
        command::{Command, RequestKey},
        rules::{Action, Designation, MAX_AMOUNT},
        store::PicturePage,
    },
};

/// A picture page when the court names no size, and the most it may ask for.
const PAGE: (u32, u32) = (100, 1000);

/// The most debtors one case is registered against in one call.
const MAX_DEBTORS: usize = 50;

impl DebtorApi {
    /// A court registers its case against its debtors, with the applicant and the claim.
    pub(super) async fn register(&self, call: &Call, r: RegisterCaseRequest) -> Result<Case, Error> {
        call.note.request_id(&r.request_id);
        call.note.case(r.case_number.chars().take(64).collect::<String>());
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        c.present("applicant", &r.applicant);
        let case = c.reading_case("case_number", &r.case_number);
        if !(0..=MAX_AMOUNT).contains(&r.claim_amount) {
            c.bad("claim_amount", format!("0 to {MAX_AMOUNT} minor units, not {}", r.claim_amount));
        }
        let currency = if r.currency.is_empty() { "CNY".to_string() } else { r.currency.clone() };
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            c.bad("currency", format!("`{}` is not an ISO 4217 code such as CNY", r.currency));
        }
        if r.debtors.is_empty() || r.debtors.len() > MAX_DEBTORS {
            c.bad("debtors", format!("names {} debtors; 1 to {MAX_DEBTORS}", r.debtors.len()));
        }
        let now = self.acting.store.now();
        let ids: Vec<_> = r.debtors.iter().filter_map(|d| self.debtor(&mut c, Some(d), now)).collect();
        let case = c.done(case)?;
        call.note.debtors(ids.clone());
        self.acting.authorize(call, &case, Action::Control).await?;
        let debtors = ids.iter().map(|id| (self.debtors.debtor(id), id.masked().to_string())).collect();
        let request = RequestKey::of(&call.caller.court, &call.caller.officer, &r.request_id, &r.encode_to_vec());
        let claim = (currency, r.claim_amount);
        let command = Command::RegisterCase { request, case, debtors, applicant: r.applicant.trim().into(), claim };
        self.acting.execute(call, command).await
    }

    /// R27: the debtor's picture, a page at a time, for a court holding an active or bankruptcy
    /// case against it; any other court is answered NOT_FOUND, as for another court's search.
    pub(super) async fn picture(
        &self,
        call: &Call,
        r: GetDebtorPictureRequest,
    ) -> Result<GetDebtorPictureResponse, Error> {
        call.note.case(r.case_number.chars().take(64).collect::<String>());
        let mut c = Checks::default();
        let case = c.reading_case("case_number", &r.case_number);
        let now = self.acting.store.now();
        let debtor = self.debtor(&mut c, r.debtor.as_ref(), now);
        if r.page_size > PAGE.1 {
            c.bad("page_size", format!("is {}; at most {}", r.page_size, PAGE.1));
        }
        let size = usize::try_from(if r.page_size == 0 { PAGE.0 } else { r.page_size }).unwrap_or(usize::MAX);
        let page = match r.page_token.as_str() {
            "" => Some(PicturePage::first(size)),
            token => PicturePage::from_token(token, size),
        };
        if page.is_none() {
            c.bad("page_token", "is not a token this call returned; leave it empty for the first page");
        }
        let (case, debtor, page) = c.done(case.zip(debtor).zip(page).map(|((c, d), p)| (c, d, p)))?;
        call.note.debtors([debtor.clone()]);
        self.acting.authorize(call, &case, Action::Query).await?;
        let key = self.debtors.debtor(&debtor);
        if !self.acting.store.may_read_picture(&case, &key).await? {
            return Err(LedgerError::NoCaseAgainst(case.to_string()).into());
        }
        let (mut picture, next) = self.acting.store.picture(&key, &page).await?;
        picture.next_page_token = next.map(|p| p.token()).unwrap_or_default();
        call.note.detail(json!({ "cases": picture.cases.len(), "seizures": picture.seizures.len() }));
        Ok(picture)
    }

    /// R25: the calling court's seizures on bankrupt debtors' assets, to lift by their due dates.
    pub(super) async fn lifts(
        &self,
        call: &Call,
        r: ListBankruptcyLiftsRequest,
    ) -> Result<ListBankruptcyLiftsResponse, Error> {
        let now = self.acting.store.now();
        let as_of = r.as_of.as_ref().map_or(now, time_of);
        if as_of < now {
            return Err(violation("as_of", "is in the past; leave it unset for now, or name a later time"));
        }
        let mut lifts = self.acting.store.bankruptcy_lifts(Some(&call.caller.court), as_of).await?;
        lifts.retain(|l| l.overdue || !r.overdue_only);
        Ok(ListBankruptcyLiftsResponse { lifts })
    }

    /// R23: a superior court designates one court for the debtor's cases, all or nothing.
    pub(super) async fn series(
        &self,
        call: &Call,
        r: DesignateSeriesRequest,
    ) -> Result<DesignateSeriesResponse, Error> {
        call.note.request_id(&r.request_id);
        call.note.detail(json!({ "to_court": r.to_court_code, "decision_reference": r.decision_reference }));
        let mut c = Checks::default();
        c.present("request_id", &r.request_id);
        c.present("decision_reference", &r.decision_reference);
        let to_court = c.court("to_court_code", &r.to_court_code);
        let now = self.acting.store.now();
        let debtor = self.debtor(&mut c, r.debtor.as_ref(), now);
        if r.decided_at.as_ref().is_some_and(|t| time_of(t) > now) {
            c.bad("decided_at", "is in the future");
        }
        let mut cases = Vec::new();
        for (i, number) in r.case_numbers.iter().enumerate() {
            let field = format!("case_numbers[{i}]");
            match c.case(&field, number).map(|case| case.to_string()) {
                Some(case) if cases.contains(&case) => c.bad(field, "is listed twice"),
                Some(case) => cases.push(case),
                None => {}
            }
        }
        let (to_court, debtor) = c.done(to_court.zip(debtor))?;
        call.note.debtors([debtor.clone()]);
        let request = RequestKey::of(&call.caller.court, &call.caller.officer, &r.request_id, &r.encode_to_vec());
        let designation = Designation {
            to_court,
            decision: r.decision_reference.trim().into(),
            decided_at: r.decided_at.as_ref().map_or(now, time_of),
        };
        let command = Command::DesignateSeries {
            request,
            debtor_key: self.debtors.debtor(&debtor),
            designation,
            cases,
            with_preservation: self.series_with_preservation,
        };
        self.acting.execute(call, command).await
    }
}
