//! The court-facing search service. A request reads top-down, after the
//! spine ([`crate::gateway::spine`]) has named the court and will record the
//! call: validate ([`SearchApi::plan`]) → authorize (R15, before the cache is
//! consulted) → count against the daily quota → fan out to the registries
//! through the cache ([`Network::fan_out`]) → merge ([`merge`]) → annotate
//! with live seizures → respond. `Search`, `SearchStream` and `SubmitSearch`
//! share every step ([`SearchApi::begin`], [`SearchApi::answer`]); they differ
//! only in how results leave: in one reply, one registry at a time, or into a
//! search job read later.

mod kept;
mod reply;

use reply::{Part, audit_detail, registry_answer, respond, result};

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use serde_json::json;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, metadata::MetadataMap};
use tracing::{Instrument, Span, info_span};

use crate::{
    core::{
        clock::{SharedClock, beijing_date},
        error::Error,
        identifiers::{CaseNumber, DebtorId},
        method::Method,
        proto::{
            AssetKind, Debtor, GetSearchRequest, GetSearchResponse, ListSearchesRequest, ListSearchesResponse,
            SearchQuery, SearchRequest, SearchResponse, SearchStreamRequest, SearchStreamResponse, SubmitSearchRequest,
            SubmitSearchResponse, WatchSearchRequest, WatchSearchResponse,
            asset_search_service_server::AssetSearchService, search_stream_response::Event,
        },
    },
    gateway::{
        audit::{STREAM_RESULT, Trail},
        auth::Authority,
        call::{Call, Note, reply},
        jobs::Jobs,
        limits::Limits,
        validate::{Checks, violation},
    },
    ledger::{
        model::Model,
        rules::{self, Action},
    },
    ops::{config::SearchConfig, telemetry::spans},
    registry::{
        call::Inquiry,
        fanout::{Leg, Plan},
        network::Network,
    },
};

/// The search service: the registries of the network, who may search what,
/// the daily quota, the ledger whose seizures annotate results, the jobs
/// that keep late answers and the trail a stream's outcome is recorded in.
#[derive(Clone)]
pub struct SearchApi {
    network: Arc<Network>,
    limits: SearchConfig,
    authority: Authority,
    quota: Arc<Limits>,
    model: Arc<Model>,
    clock: SharedClock,
    jobs: Jobs,
    trail: Trail,
    enterprise_prefixes: Vec<String>,
}

/// What the search service works with.
pub struct SearchParts {
    /// The registries.
    pub network: Arc<Network>,
    /// Who may search what.
    pub authority: Authority,
    /// The daily search quota.
    pub quota: Arc<Limits>,
    /// The ledger in memory, whose seizures annotate results.
    pub model: Arc<Model>,
    /// The jobs that keep late answers.
    pub jobs: Jobs,
    /// Where a stream's outcome is recorded.
    pub trail: Trail,
    /// Credit-code prefixes of enterprise legal persons, whom bankruptcy courts search (R27).
    pub enterprise_prefixes: Vec<String>,
}

/// Where a search's registry answers go as each registry finishes, besides the summary.
enum Out<'a> {
    /// Nowhere: the summary is the reply.
    Reply,
    /// To the court's stream, one registry at a time.
    Stream(&'a mpsc::Sender<Result<SearchStreamResponse, Status>>),
}

/// Why a search ended without its summary.
enum Unfinished {
    /// It failed (or passed its deadline, kept as a job).
    Failed(Error),
    /// The court hung up on its stream.
    HungUp,
}

/// A search under way: its plan, its deadline and its span.
struct Search {
    plan: Arc<Plan>,
    deadline: Instant,
    budget: Duration,
    span: Span,
}

impl SearchApi {
    /// The service, its limits `limits`, its clock `clock`.
    pub fn new(parts: SearchParts, limits: SearchConfig, clock: SharedClock) -> Self {
        let SearchParts { network, authority, quota, model, jobs, trail, enterprise_prefixes } = parts;
        Self { network, limits, authority, quota, model, clock, jobs, trail, enterprise_prefixes }
    }

    /// Validates, authorizes and counts a search, noting for the audit what it asks.
    async fn begin(
        &self,
        rpc: Method,
        call: &Call,
        metadata: &MetadataMap,
        query: Option<SearchQuery>,
    ) -> Result<Search, Error> {
        let (caller, note) = (&call.caller, &call.note);
        let budget = budget(self.limits.deadline, metadata);
        let deadline = deadline(budget);
        if let Some(q) = &query {
            note.case(q.case_number.chars().take(64).collect::<String>());
        }
        let (case, plan) = self.plan(query, &caller.court)?;
        note.case(case.to_string());
        note.debtors(plan.debtors.iter().map(|(id, _)| id.clone()));
        note.detail(json!({ "asked": plan.registries.iter().map(|r| &*r.name).collect::<Vec<_>>() }));
        self.authority.authorize(caller, &case, Action::Query).await?;
        self.quota.count_search(caller).await?;
        let span = info_span!(
            spans::SEARCH,
            rpc = rpc.name(),
            court = %caller.court,
            officer = %caller.officer,
            request_id = %plan.caller.request_id,
            case = %plan.caller.case_number,
            debtors = plan.debtors.len(),
            registries = plan.registries.len(),
        );
        Ok(Search { plan: Arc::new(plan), deadline, budget, span })
    }

    /// Validates a query, reporting every bad field at once, and chooses the registries.
    fn plan(&self, query: Option<SearchQuery>, court: &str) -> Result<(CaseNumber, Plan), Error> {
        let query = query.ok_or_else(|| violation("query", "is required"))?;
        let mut c = Checks::default();
        let case = c.reading_case("query.case_number", &query.case_number);
        let debtors = self.debtors(&query.debtors, &mut c);
        if let Some(case) = &case {
            for (i, (id, _)) in debtors.iter().enumerate() {
                if !rules::may_search(case, rules::debtor_kind(id, &self.enterprise_prefixes)) {
                    let why = "is not an enterprise legal person: a bankruptcy case (破, 破申) searches only the \
                               enterprise it is against (R27)";
                    c.bad(format!("query.debtors[{i}]"), why);
                }
            }
        }
        let mut kinds = Vec::new();
        for (i, &k) in query.asset_kinds.iter().enumerate() {
            match AssetKind::try_from(k) {
                Ok(kind) if kind != AssetKind::Unspecified => kinds.push(kind),
                _ => c.bad(
                    format!("query.asset_kinds[{i}]"),
                    format!("{k} is not an asset kind; leave the list empty for all kinds"),
                ),
            }
        }
        let max_age = match query.max_age.map(Duration::try_from) {
            None => None,
            Some(Ok(age)) => Some(age),
            Some(Err(_)) => {
                c.bad("query.max_age", "must not be negative");
                None
            }
        };
        let case = c.done(case)?;
        let registries = self.network.serving(&kinds);
        if registries.is_empty() {
            let names: Vec<_> = kinds.iter().map(|k| k.short_name()).collect();
            return Err(Error::FailedPrecondition(format!(
                "no registry of this gateway reports {}; ask for other asset kinds",
                names.join(" or ")
            )));
        }
        // Registries may answer later: their answers go to the search's job.
        let caller = Arc::new(Inquiry { accept_deferred: true, ..Inquiry::new(case.to_string(), court.to_string()) });
        Ok((case, Plan { debtors, registries, kinds, caller, max_age }))
    }

    fn debtors(&self, debtors: &[Debtor], c: &mut Checks) -> Vec<(DebtorId, Debtor)> {
        let max = self.limits.max_debtors;
        if debtors.is_empty() {
            c.bad("query.debtors", "is empty; name at least one debtor");
        } else if debtors.len() > max {
            c.bad(
                "query.debtors",
                format!("names {} debtors; at most {max} per search, split the search", debtors.len()),
            );
        }
        let mut out: Vec<(DebtorId, Debtor)> = Vec::new();
        let today = beijing_date(self.clock.now());
        for (i, d) in debtors.iter().enumerate() {
            let field = format!("query.debtors[{i}]");
            let Some((id, debtor)) = c.debtor(&field, d, today) else { continue };
            match out.iter().position(|(seen, _)| *seen == id) {
                Some(j) => c.bad(field, format!("repeats debtors[{j}]; name each debtor once")),
                None => out.push((id, debtor)),
            }
        }
        out
    }

    fn legs(&self, search: &Search) -> impl futures::Stream<Item = Leg> + Send + 'static {
        self.network.fan_out(&search.plan)
    }

    /// Asks every registry of `search` and hands each answer to `out` as it
    /// comes, until the last or the deadline; then the summary, the search
    /// kept as a job while a registry still owes an answer. Past the deadline
    /// the search is kept as a job whatever happens, and DEADLINE_EXCEEDED
    /// names it.
    async fn answer(&self, search: &Search, call: &Call, out: Out<'_>) -> Result<SearchResponse, Unfinished> {
        let court = &call.caller.court;
        let mut pending = Box::pin(self.legs(search));
        let mut done = Vec::new();
        loop {
            let leg = match tokio::time::timeout_at(search.deadline, pending.next()).await {
                Ok(Some(leg)) => leg,
                Ok(None) => break,
                Err(_) => return Err(Unfinished::Failed(self.past_deadline(search, court, &done, pending).await)),
            };
            if let Out::Stream(tx) = out {
                let answer =
                    registry_answer(&self.model, &search.plan.caller.case_number, Part::of(&leg, &search.plan.kinds));
                let answer = SearchStreamResponse { event: Some(Event::RegistryAnswer(answer)) };
                if tx.send(Ok(answer)).await.is_err() {
                    // The cache still gets what is in flight, the trail what the court saw.
                    return Err(Unfinished::HungUp);
                }
            }
            done.push(leg);
        }
        let mut response = result(&self.model, &search.plan, &done, self.clock.now(), &self.limits);
        response.search_id = self.keep(&search.plan, court, &done).await.map_err(Unfinished::Failed)?;
        call.note.detail(audit_detail(&response));
        Ok(response)
    }
}

/// The search's time budget: the configured deadline, or the caller's shorter `grpc-timeout`.
fn budget(configured: Duration, metadata: &MetadataMap) -> Duration {
    client_timeout(metadata).map_or(configured, |t| t.min(configured))
}

/// When to give up. tonic (server and client) answers CANCELLED the instant
/// the caller's timeout runs out, counted from when the caller sent; our
/// DEADLINE_EXCEEDED leaves early enough to keep the search as a job (one
/// commit) and cover the trip to the caller.
fn deadline(budget: Duration) -> Instant {
    const MARGIN: Duration = Duration::from_millis(100);
    Instant::now() + budget.saturating_sub(MARGIN.min(budget / 10))
}

/// The caller's `grpc-timeout`, if it sent one (`<digits><H|M|S|m|u|n>`).
fn client_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl AssetSearchService for SearchApi {
    async fn search(&self, request: Request<SearchRequest>) -> Result<Response<SearchResponse>, Status> {
        let (call, metadata, request) = Call::of(request)?;
        reply(
            async {
                let search = self.begin(Method::Search, &call, &metadata, request.query).await?;
                let answered = self.answer(&search, &call, Out::Reply).instrument(search.span.clone()).await;
                answered.map_err(|unfinished| match unfinished {
                    Unfinished::Failed(e) => e,
                    Unfinished::HungUp => Error::Internal("a unary search has no stream to hang up".into()),
                })
            }
            .await,
        )
    }

    type SearchStreamStream = ReceiverStream<Result<SearchStreamResponse, Status>>;

    /// Registry answers go out as they arrive, so the call is recorded twice:
    /// when it is allowed (before anything is sent, by the spine) and with
    /// its outcome (before the summary is sent).
    async fn search_stream(
        &self,
        request: Request<SearchStreamRequest>,
    ) -> Result<Response<Self::SearchStreamStream>, Status> {
        let (call, metadata, request) = Call::of(request)?;
        let search = match self.begin(Method::SearchStream, &call, &metadata, request.query).await {
            Ok(search) => search,
            Err(e) => return reply(Err(e)),
        };
        let (tx, rx) = mpsc::channel(16);
        // The outcome's own record, of the same court, case and debtors.
        let outcome = Call { caller: call.caller.clone(), note: Note::of(&call.caller) };
        outcome.note.case(search.plan.caller.case_number.clone());
        outcome.note.debtors(search.plan.debtors.iter().map(|(id, _)| id.clone()));
        let api = self.clone();
        let span = search.span.clone();
        tokio::spawn(
            async move {
                let answered = api.answer(&search, &outcome, Out::Stream(&tx)).await;
                let (code, message) = match &answered {
                    Ok(_) => (tonic::Code::Ok, String::new()),
                    Err(Unfinished::Failed(e)) => (e.code(), e.to_string()),
                    Err(Unfinished::HungUp) => (tonic::Code::Cancelled, "the court hung up before the summary".into()),
                };
                let (record, _) = outcome.note.record(STREAM_RESULT, code, &message);
                let last = match (api.trail.record(record).await, answered) {
                    (_, Err(Unfinished::HungUp)) => return,
                    (Err(e), _) => Err(Error::from(e).into()),
                    (Ok(()), Err(Unfinished::Failed(e))) => Err(e.into()),
                    (Ok(()), Ok(summary)) => Ok(SearchStreamResponse { event: Some(Event::Summary(summary)) }),
                };
                let _ = tx.send(last).await;
            }
            .instrument(span),
        );
        reply(Ok(ReceiverStream::new(rx)))
    }

    async fn submit_search(
        &self,
        request: Request<SubmitSearchRequest>,
    ) -> Result<Response<SubmitSearchResponse>, Status> {
        let (call, metadata, request) = Call::of(request)?;
        reply(self.submit(&call, &metadata, request).await)
    }

    async fn get_search(&self, request: Request<GetSearchRequest>) -> Result<Response<GetSearchResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.get(&call, &request.search_id).await)
    }

    type WatchSearchStream = ReceiverStream<Result<WatchSearchResponse, Status>>;

    async fn watch_search(
        &self,
        request: Request<WatchSearchRequest>,
    ) -> Result<Response<Self::WatchSearchStream>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.watch(call, request).await)
    }

    async fn list_searches(
        &self,
        request: Request<ListSearchesRequest>,
    ) -> Result<Response<ListSearchesResponse>, Status> {
        let (call, _, request) = Call::of(request)?;
        reply(self.list(&call, request).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_units() {
        let mut m = MetadataMap::new();
        for (v, d) in
            [("5S", Duration::from_secs(5)), ("250m", Duration::from_millis(250)), ("2M", Duration::from_secs(120))]
        {
            m.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(client_timeout(&m), Some(d));
        }
        m.insert("grpc-timeout", "soon".parse().unwrap());
        assert_eq!(client_timeout(&m), None);
    }

    #[test]
    fn the_shorter_of_configured_deadline_and_grpc_timeout_wins() {
        let configured = Duration::from_secs(10);
        let mut m = MetadataMap::new();
        assert_eq!(budget(configured, &m), configured);
        m.insert("grpc-timeout", "2S".parse().unwrap());
        assert_eq!(budget(configured, &m), Duration::from_secs(2));
        m.insert("grpc-timeout", "1M".parse().unwrap());
        assert_eq!(budget(configured, &m), configured);
    }
}
