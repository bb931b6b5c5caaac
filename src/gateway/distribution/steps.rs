//! The distribution steps and reads: each validates its request (every bad
//! field at once), authorizes the acting case, and makes one ledger step or
//! one read.

use prost::Message as _;
use serde_json::json;

use super::DistributionApi;
use crate::{
    core::{
        clock::beijing_date,
        error::Error,
        identifiers::CaseNumber,
        proto::{
            ApplyToParticipateRequest, ApplyToParticipateResponse, Debtor, Distribution, DraftDistributionRequest,
            EncumbranceKind, GetCaseFundsRequest, GetCaseFundsResponse, GetDistributionRequest,
            ListDistributionsRequest, ListDistributionsResponse, ObjectToDistributionRequest, ObjectionStep,
            PayOutDistributionRequest, Proceeds, RecordProceedsRequest, RecordSecuredClaimRequest, SecuredClaim,
            ServeDistributionRequest, time_of,
        },
    },
    gateway::{
        call::Call,
        validate::{Checks, violation},
    },
    ledger::{
        asset_key,
        command::{Command, PlanStep, RequestKey},
        rules::{self, Action, MAX_AMOUNT, Secured},
    },
};

/// The most proceeds one plan distributes, and the most corrections one objection asks.
const MAX_LISTED: usize = 100;

impl DistributionApi {
    /// R28: the selling case records a sale's proceeds and costs.
    pub(super) async fn proceeds(&self, call: &Call, r: RecordProceedsRequest) -> Result<Proceeds, Error> {
        call.note.detail(json!({ "seizure_id": r.seizure_id, "amount": r.amount, "costs": r.costs }));
        let mut c = Checks::default();
        let case = acting(&mut c, call, &r.request_id, &r.case_number);
        c.present("seizure_id", &r.seizure_id);
        c.amount("amount", r.amount, "the proceeds of the sale");
        if !(0..=MAX_AMOUNT).contains(&r.costs) {
            c.bad("costs", format!("the execution costs: 0 to {MAX_AMOUNT} minor units, not {}", r.costs));
        }
        currency(&mut c, &r.currency);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let command = Command::RecordProceeds {
            request: key(call, &r.request_id, &r.encode_to_vec()),
            case: case.to_string(),
            seizure_id: r.seizure_id,
            amounts: (r.amount, r.costs),
            currency: r.currency,
        };
        self.acting.execute(call, command).await
    }

    /// R28: a court records a claim secured on an asset its case seized, with its evidence.
    pub(super) async fn secured(&self, call: &Call, r: RecordSecuredClaimRequest) -> Result<SecuredClaim, Error> {
        call.note.detail(json!({ "holder": r.holder, "amount": r.amount, "evidence": r.evidence_reference }));
        let mut c = Checks::default();
        let case = acting(&mut c, call, &r.request_id, &r.case_number);
        let asset = match &r.asset {
            Some(a) => {
                c.present("asset.asset_id", &a.asset_id);
                Some(asset_key(c.kind("asset.kind", a.kind), &a.asset_id))
            }
            None => {
                c.bad("asset", "is required: the asset the claim is secured on");
                None
            }
        };
        let kind = match EncumbranceKind::try_from(r.kind) {
            Ok(k) if k != EncumbranceKind::Unspecified => k,
            _ => {
                c.bad("kind", format!("{} is not MORTGAGE or PLEDGE", r.kind));
                EncumbranceKind::Unspecified
            }
        };
        c.present("holder", &r.holder);
        c.present("evidence_reference", &r.evidence_reference);
        c.amount("amount", r.amount, "the secured amount");
        let now = self.acting.store.now();
        let registered_at = match r.registered_at.as_ref().map(time_of) {
            Some(at) if at <= now => Some(at),
            Some(_) => {
                c.bad("registered_at", "is in the future");
                None
            }
            None => {
                c.bad("registered_at", "is required: the earlier registration is paid first (R28)");
                None
            }
        };
        let (case, (asset_key, registered_at)) = c.done(case.zip(asset.zip(registered_at)))?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let command = Command::RecordSecured {
            request: key(call, &r.request_id, &r.encode_to_vec()),
            case: case.to_string(),
            asset_key,
            kind,
            secured: Secured { holder: r.holder.trim().into(), registered_at, amount: r.amount },
            evidence: r.evidence_reference.trim().into(),
        };
        self.acting.execute(call, command).await
    }

    /// R28: a case applies to share in a natural person's or another organisation's proceeds.
    pub(super) async fn participate(
        &self,
        call: &Call,
        r: ApplyToParticipateRequest,
    ) -> Result<ApplyToParticipateResponse, Error> {
        call.note.detail(json!({ "proceeds_id": r.proceeds_id }));
        let mut c = Checks::default();
        let case = acting(&mut c, call, &r.request_id, &r.case_number);
        c.present("proceeds_id", &r.proceeds_id);
        let debtor = self.debtor(&mut c, call, r.debtor.as_ref());
        let (case, (key_of_debtor, kind)) = c.done(case.zip(debtor).map(|(c, d)| (c, (d.0, d.2))))?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let command = Command::Participate {
            request: key(call, &r.request_id, &r.encode_to_vec()),
            case: case.to_string(),
            proceeds_id: r.proceeds_id,
            debtor: (key_of_debtor, kind),
        };
        self.acting.execute(call, command).await
    }

    /// R28: drafts the distribution of the case's proceeds, or a series' across the debtor's cases (R23).
    pub(super) async fn draft(&self, call: &Call, r: DraftDistributionRequest) -> Result<Distribution, Error> {
        call.note.detail(json!({ "proceeds_ids": r.proceeds_ids, "series": r.series }));
        let mut c = Checks::default();
        let case = acting(&mut c, call, &r.request_id, &r.case_number);
        match (r.series, r.proceeds_ids.len()) {
            (true, 0) => {}
            (true, _) => c.bad("proceeds_ids", "a series plan takes every undistributed proceeds: list none"),
            (false, 0) => c.bad("proceeds_ids", "name the proceeds to distribute, or set series"),
            (false, n) if n > MAX_LISTED => c.bad("proceeds_ids", format!("names {n}; at most {MAX_LISTED}")),
            (false, _) => {}
        }
        for (i, id) in r.proceeds_ids.iter().enumerate() {
            if r.proceeds_ids[..i].contains(id) {
                c.bad(format!("proceeds_ids[{i}]"), "is listed twice");
            }
        }
        let debtor = self.debtor(&mut c, call, r.debtor.as_ref());
        let (case, (debtor_key, masked, kind)) = c.done(case.zip(debtor))?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let command = Command::Draft {
            request: key(call, &r.request_id, &r.encode_to_vec()),
            case: case.to_string(),
            debtor: (debtor_key, masked),
            sharing: (rules::sharing(kind, self.bonus_percent), r.series),
            proceeds: r.proceeds_ids,
        };
        self.acting.execute(call, command).await
    }

    /// R29: the drafting case serves its plan.
    pub(super) async fn serve(&self, call: &Call, r: ServeDistributionRequest) -> Result<Distribution, Error> {
        let bytes = r.encode_to_vec();
        let now = self.acting.store.now();
        let at = r.served_at.as_ref().map_or(now, time_of);
        if at > now {
            return Err(violation("served_at", "is in the future; unset: now"));
        }
        self.plan_step(call, (&r.request_id, &r.case_number, &r.distribution_id), PlanStep::Serve(at), &bytes).await
    }

    /// R29: a creditor objects, another opposes, the objector sues.
    pub(super) async fn object(&self, call: &Call, r: ObjectToDistributionRequest) -> Result<Distribution, Error> {
        let bytes = r.encode_to_vec();
        let asked: Vec<(usize, i64)> =
            r.corrections.iter().map(|x| (usize::try_from(x.line).unwrap_or(usize::MAX), x.amount)).collect();
        let step = match (ObjectionStep::try_from(r.step), asked.len()) {
            (Ok(ObjectionStep::Object), 1..=MAX_LISTED) => PlanStep::Object(asked),
            (Ok(ObjectionStep::Object), n) => {
                let why = format!("an objection asks 1 to {MAX_LISTED} lines corrected, not {n}");
                return Err(violation("corrections", &why));
            }
            (Ok(ObjectionStep::Oppose | ObjectionStep::Sue), n) if n > 0 => {
                return Err(violation("corrections", "only an objection asks corrections"));
            }
            (Ok(ObjectionStep::Oppose), _) => PlanStep::Oppose,
            (Ok(ObjectionStep::Sue), _) => PlanStep::Sue,
            _ => return Err(violation("step", "is OBJECT, OPPOSE or SUE")),
        };
        self.plan_step(call, (&r.request_id, &r.case_number, &r.distribution_id), step, &bytes).await
    }

    /// R29: the drafting case pays out a plan whose periods have run.
    pub(super) async fn pay_out(&self, call: &Call, r: PayOutDistributionRequest) -> Result<Distribution, Error> {
        let bytes = r.encode_to_vec();
        self.plan_step(call, (&r.request_id, &r.case_number, &r.distribution_id), PlanStep::PayOut, &bytes).await
    }

    async fn plan_step(
        &self,
        call: &Call,
        (request_id, case, id): (&str, &str, &str),
        step: PlanStep,
        bytes: &[u8],
    ) -> Result<Distribution, Error> {
        call.note.detail(json!({ "distribution_id": id, "step": step.name() }));
        let mut c = Checks::default();
        let case = acting(&mut c, call, request_id, case);
        c.present("distribution_id", id);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Control).await?;
        let command = Command::Plan {
            by: Some((key(call, request_id, bytes), case.to_string())),
            distribution_id: id.into(),
            step,
            holidays: self.holidays.clone(),
        };
        self.acting.execute(call, command).await
    }

    /// One plan, to a court with a part in it.
    pub(super) async fn get(&self, call: &Call, r: GetDistributionRequest) -> Result<Distribution, Error> {
        let mut c = Checks::default();
        c.present("distribution_id", &r.distribution_id);
        c.done(Some(()))?;
        Ok(self.acting.store.distribution(&call.caller.court, &r.distribution_id).await?)
    }

    /// The plans the court drafted or has a creditor's line in.
    pub(super) async fn list(
        &self,
        call: &Call,
        r: ListDistributionsRequest,
    ) -> Result<ListDistributionsResponse, Error> {
        if !r.case_number.is_empty() {
            let mut c = Checks::default();
            let case = c.reading_case("case_number", &r.case_number);
            let case = c.done(case)?;
            self.acting.authorize(call, &case, Action::Query).await?;
        }
        let distributions = self.acting.store.distributions(&call.caller.court, r.case_number.trim()).await?;
        Ok(ListDistributionsResponse { distributions })
    }

    /// A case's funds.
    pub(super) async fn funds(&self, call: &Call, r: GetCaseFundsRequest) -> Result<GetCaseFundsResponse, Error> {
        let mut c = Checks::default();
        let case = c.reading_case("case_number", &r.case_number);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Query).await?;
        Ok(self.acting.store.case_funds(&case.to_string()).await?)
    }

    /// The debtor, keyed, masked and of its kind; noted for the audit.
    fn debtor(&self, c: &mut Checks, call: &Call, d: Option<&Debtor>) -> Option<(String, String, rules::DebtorKind)> {
        let today = beijing_date(self.acting.store.now());
        let Some(d) = d else {
            c.bad("debtor", "is required: the debtor whose asset it was");
            return None;
        };
        let (id, _) = c.debtor("debtor", d, today)?;
        call.note.debtors([id.clone()]);
        let kind = rules::debtor_kind(&id, &self.enterprise_prefixes);
        Some((self.debtors.debtor(&id), id.masked().to_string(), kind))
    }
}

/// A mutating request's id and case, noted for the audit.
fn acting(c: &mut Checks, call: &Call, request_id: &str, case: &str) -> Option<CaseNumber> {
    call.note.request_id(request_id);
    call.note.case(case.chars().take(64).collect::<String>());
    c.present("request_id", request_id);
    c.case("case_number", case)
}

/// An ISO 4217 code, or empty for the case's.
fn currency(c: &mut Checks, code: &str) {
    if !code.is_empty() && (code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase())) {
        c.bad("currency", format!("`{code}` is not an ISO 4217 code such as CNY; leave it empty for the case's"));
    }
}

/// The key that makes a retry safe: court, officer, id and the whole request.
fn key(call: &Call, request_id: &str, bytes: &[u8]) -> RequestKey {
    RequestKey::of(&call.caller.court, &call.caller.officer, request_id, bytes)
}
