//! The court-facing search service. A request reads top-down: identify the
//! court and audit the call ([`Gate::handle`]) → validate ([`Gateway::plan`])
//! → authorize (R15, before the cache is consulted) → fan out to the
//! registries through the cache ([`fanout`]) → merge ([`merge`]) → annotate
//! with live seizures → respond. The unary and streaming calls share every
//! step; they differ only in when they send.

use std::{pin::pin, sync::Arc, time::Duration};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, metadata::MetadataMap};
use tracing::{Instrument, Span, info, info_span, warn};

use crate::{
    auth::{self, Action, Gate, Note},
    cache::{Cache, Lookup},
    config::{Config, SearchConfig},
    error::{Error, StartError, Violation},
    fanout::{self, Leg, Plan},
    identifiers::{self, CaseNumber, DebtorId},
    ledger::store::{self, Store},
    merge::{self, Answer},
    proto::{
        AssetKind, Debtor, DebtorResult, MergedAsset, RegistryAnswer, RegistryOutcome, RegistryStatus, SearchQuery,
        SearchRequest, SearchResponse, SearchStreamRequest, SearchStreamResponse, SeizureSummary,
        asset_search_service_server::AssetSearchService, debtor, search_stream_response::Event,
    },
    registry::{Caller, Registry},
    telemetry::spans,
};

/// The search service: the configured registries, the answer cache, the
/// gate every call passes and the ledger whose seizures annotate results.
pub struct Gateway {
    registries: Vec<Arc<Registry>>,
    cache: Cache,
    limits: SearchConfig,
    gate: Arc<Gate>,
    ledger: Store,
}

/// An asset found for a control order, and the registry that reported it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The asset.
    pub asset: merge::Reported,
    /// The registry to send orders to.
    pub registry: Arc<str>,
}

/// A search under way: its plan, its deadline and its span.
struct Search {
    plan: Arc<Plan>,
    deadline: Instant,
    budget: Duration,
    span: Span,
}

impl Gateway {
    /// A gateway over the configured registries.
    pub fn new(config: &Config, gate: Arc<Gate>, ledger: Store) -> Result<Self, StartError> {
        let metrics = gate.metrics();
        let registries = config
            .registries
            .iter()
            .map(|r| Registry::new(r, config, metrics.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            registries,
            cache: Cache::new(config.cache.max_entries),
            limits: config.search.clone(),
            gate,
            ledger,
        })
    }

    /// The gate every court-facing call passes.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The configured registries.
    pub fn registries(&self) -> &[Arc<Registry>] {
        &self.registries
    }

    /// Validates, authorizes and counts a search, noting for the audit what it asks.
    async fn begin(
        &self,
        rpc: &'static str,
        caller: &auth::Caller,
        metadata: &MetadataMap,
        query: Option<SearchQuery>,
        note: &Note,
    ) -> Result<Search, Error> {
        let budget = budget(self.limits.deadline, metadata);
        let deadline = deadline(budget);
        if let Some(q) = &query {
            note.case(q.case_number.chars().take(64).collect::<String>());
        }
        let (case, plan) = self.plan(query, &caller.court)?;
        note.case(case.to_string());
        note.debtors(plan.debtors.iter().map(|(id, _)| id.clone()));
        note.detail(json!({ "asked": plan.registries.iter().map(|r| &*r.name).collect::<Vec<_>>() }));
        self.gate.authorize(caller, &case, Action::Query).await?;
        self.gate.count_search(caller).await?;
        let span = info_span!(
            spans::SEARCH,
            rpc,
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
        let mut bad = Vec::new();
        let case = CaseNumber::parse_acting(&query.case_number)
            .map_err(|e| bad.push(Violation { field: "query.case_number".into(), description: e }))
            .ok();
        let debtors = self.debtors(&query.debtors, &mut bad);
        let mut kinds = Vec::new();
        for (i, &k) in query.asset_kinds.iter().enumerate() {
            match AssetKind::try_from(k) {
                Ok(kind) if kind != AssetKind::Unspecified => kinds.push(kind),
                _ => bad.push(Violation {
                    field: format!("query.asset_kinds[{i}]"),
                    description: format!("{k} is not an asset kind; leave the list empty for all kinds"),
                }),
            }
        }
        let max_age = match query.max_age.map(Duration::try_from) {
            None => None,
            Some(Ok(age)) => Some(age),
            Some(Err(_)) => {
                bad.push(Violation { field: "query.max_age".into(), description: "must not be negative".into() });
                None
            }
        };
        let (Some(case), true) = (case, bad.is_empty()) else {
            return Err(Error::InvalidArgument(bad));
        };
        let registries: Vec<_> = self.registries.iter().filter(|r| r.serves(&kinds)).cloned().collect();
        if registries.is_empty() {
            let names: Vec<_> = kinds.iter().map(|k| k.short_name()).collect();
            return Err(Error::FailedPrecondition(format!(
                "no registry of this gateway reports {}; ask for other asset kinds",
                names.join(" or ")
            )));
        }
        let caller = Arc::new(Caller::new(case.to_string(), court.to_string()));
        Ok((case, Plan { debtors, registries, kinds, caller, max_age }))
    }

    fn debtors(&self, debtors: &[Debtor], bad: &mut Vec<Violation>) -> Vec<(DebtorId, Debtor)> {
        let max = self.limits.max_debtors;
        if debtors.is_empty() {
            bad.push(Violation {
                field: "query.debtors".into(),
                description: "is empty; name at least one debtor".into(),
            });
        } else if debtors.len() > max {
            bad.push(Violation {
                field: "query.debtors".into(),
                description: format!("names {} debtors; at most {max} per search, split the search", debtors.len()),
            });
        }
        let mut out: Vec<(DebtorId, Debtor)> = Vec::new();
        for (i, d) in debtors.iter().enumerate() {
            match self.check_debtor(&format!("query.debtors[{i}]"), d) {
                Err(v) => bad.push(v),
                Ok((id, debtor)) => match out.iter().position(|(seen, _)| *seen == id) {
                    Some(j) => bad.push(Violation {
                        field: format!("query.debtors[{i}]"),
                        description: format!("repeats debtors[{j}]; name each debtor once"),
                    }),
                    None => out.push((id, debtor)),
                },
            }
        }
        out
    }

    /// Validates one debtor (R21, R22) and returns it with its identifier normalised.
    pub fn check_debtor(&self, field: &str, d: &Debtor) -> Result<(DebtorId, Debtor), Violation> {
        let (name, parsed) = match &d.id {
            Some(debtor::Id::ResidentId(id)) => ("resident_id", identifiers::parse_resident_id(id)),
            Some(debtor::Id::CreditCode(code)) => ("credit_code", credit_code(code, d.accept_unchecked_credit_code)),
            None => ("id", Err("is missing; set resident_id or credit_code".into())),
        };
        let id = parsed.map_err(|e| Violation { field: format!("{field}.{name}"), description: e })?;
        let id_field = match &id {
            DebtorId::Resident(s) => debtor::Id::ResidentId(s.clone()),
            DebtorId::Organisation(s) => debtor::Id::CreditCode(s.clone()),
        };
        Ok((id.clone(), Debtor { id: Some(id_field), ..d.clone() }))
    }

    /// Finds one asset of a debtor at the registries that report its kind
    /// (through the cache), for a control order: what is seized must be what a
    /// registry reports. Prefers the registry of the asset's own kind (the
    /// depository over a bank for fund units).
    pub async fn find_asset(
        &self,
        case: &CaseNumber,
        debtor: &(DebtorId, Debtor),
        kind: AssetKind,
        asset_id: &str,
        registry: &str,
    ) -> Result<Found, Error> {
        let registries: Vec<_> = self
            .registries
            .iter()
            .filter(|r| r.serves(&[kind]) && (registry.is_empty() || &*r.name == registry))
            .cloned()
            .collect();
        if registries.is_empty() {
            return Err(Error::NotFound(format!(
                "no registry {registry} of this gateway reports {} assets",
                kind.short_name()
            )));
        }
        let plan = Arc::new(Plan {
            debtors: vec![debtor.clone()],
            registries,
            kinds: vec![kind],
            caller: Arc::new(Caller::new(case.to_string(), case.court_code.clone())),
            max_age: None,
        });
        let mut legs: Vec<Leg> =
            tokio::time::timeout(self.limits.deadline, fanout::fan_out(&self.cache, &plan).collect())
                .await
                .map_err(|_| Error::DeadlineExceeded(self.limits.deadline))?;
        let home = |r: &Registry| r.kind.default_asset_kinds().first().is_none_or(|k| *k != kind);
        legs.sort_by(|a, b| (home(&a.registry), &a.registry.name).cmp(&(home(&b.registry), &b.registry.name)));
        let wanted = merge::normalise(asset_id);
        for leg in &legs {
            if let Ok(entry) = &leg.result {
                if let Some(asset) = entry.assets.iter().find(|a| a.kind == kind && a.id == wanted) {
                    return Ok(Found { asset: asset.clone(), registry: leg.registry.name.clone() });
                }
            }
        }
        let unreachable: Vec<_> =
            legs.iter().filter(|l| l.result.is_err()).map(|l| l.registry.name.to_string()).collect();
        if unreachable.is_empty() {
            Err(Error::NotFound(format!(
                "no registry reports {} asset {wanted} for this debtor; search the debtor again for current assets",
                kind.short_name()
            )))
        } else {
            Err(Error::Unavailable(format!(
                "{} could not be asked about {} asset {wanted}; retry shortly",
                unreachable.join(", "),
                kind.short_name()
            )))
        }
    }

    fn legs(&self, search: &Search) -> impl futures::Stream<Item = Leg> + Send + 'static {
        fanout::fan_out(&self.cache, &search.plan)
    }
}

/// A credit code, with the R22 checksum override logged when it is what let the code through.
fn credit_code(code: &str, accept_unchecked: bool) -> Result<DebtorId, String> {
    let strict = identifiers::parse_credit_code(code, false);
    match strict {
        Err(_) if accept_unchecked => {
            let relaxed = identifiers::parse_credit_code(code, true)?;
            warn!(debtor = %relaxed.masked(), "credit code fails its checksum; searched on the caller's override (R22)");
            Ok(relaxed)
        }
        other => other,
    }
}

fn violation(field: &str, description: &str) -> Error {
    Error::InvalidArgument(vec![Violation { field: field.into(), description: description.into() }])
}

/// The search's time budget: the configured deadline, or the caller's shorter `grpc-timeout`.
fn budget(configured: Duration, metadata: &MetadataMap) -> Duration {
    client_timeout(metadata).map_or(configured, |t| t.min(configured))
}

/// When to give up. tonic (server and client) answers CANCELLED the instant
/// the caller's timeout runs out, counted from when the caller sent; our
/// DEADLINE_EXCEEDED leaves early enough to cover the trip to the caller.
fn deadline(budget: Duration) -> Instant {
    const MARGIN: Duration = Duration::from_millis(20);
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

fn outcome(leg: &Leg, answer: Option<&Answer>) -> RegistryOutcome {
    let (status, message) = match &leg.result {
        Ok(_) => (RegistryStatus::Ok, String::new()),
        Err(failure) => (failure.status(), failure.to_string()),
    };
    RegistryOutcome {
        registry: leg.registry.name.to_string(),
        kind: leg.registry.kind as i32,
        status: status as i32,
        message,
        latency: prost_types::Duration::try_from(leg.latency).ok(),
        asset_count: answer.map_or(0, |a| u32::try_from(a.assets.len()).unwrap_or(u32::MAX)),
        from_cache: leg.lookup == Lookup::Hit,
        fetched_at: answer.map(|a| a.fetched_at.into()),
    }
}

/// A leg's answer, narrowed to the asked kinds (the cache holds every kind a registry reports).
fn answer(leg: &Leg, kinds: &[AssetKind]) -> Option<Answer> {
    let entry = leg.result.as_ref().ok()?;
    let assets = if kinds.is_empty() {
        entry.assets.clone()
    } else {
        entry.assets.iter().filter(|r| kinds.contains(&r.kind)).cloned().collect()
    };
    Some(Answer { registry: leg.registry.name.clone(), fetched_at: entry.fetched_at, assets })
}

fn registry_answer(plan: &Plan, leg: &Leg) -> SearchStreamResponse {
    let answer = answer(leg, &plan.kinds);
    let (assets, _) = merge::merge(answer.as_slice());
    SearchStreamResponse {
        event: Some(Event::RegistryAnswer(RegistryAnswer {
            debtor_index: u32::try_from(leg.debtor_index).unwrap_or(u32::MAX),
            outcome: Some(outcome(leg, answer.as_ref())),
            assets,
        })),
    }
}

/// Adds each asset's live seizures, read from the ledger now (never cached).
/// If the ledger cannot be read the summaries stay unset, which says "unknown".
async fn annotate<'a>(ledger: &Store, case: &str, assets: impl Iterator<Item = &'a mut MergedAsset>) {
    let mut assets: Vec<&mut MergedAsset> = assets.collect();
    let key = |a: &MergedAsset| store::asset_key(AssetKind::try_from(a.kind).unwrap_or_default(), &a.asset_id);
    let keys: Vec<String> = assets.iter().map(|a| key(a)).collect();
    let ledgers = match ledger.ledgers(&keys).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "seizure summaries unavailable for this search");
            return;
        }
    };
    for asset in &mut assets {
        let k = key(asset);
        let summary = match ledgers.iter().find(|l| store::asset_key(l.asset.kind, &l.asset.asset_id) == k) {
            Some(l) => {
                let first = l.first();
                let mine = l.live_of_case(case);
                SeizureSummary {
                    live_count: u32::try_from(l.queue().count()).unwrap_or(u32::MAX),
                    first_case_number: first.map(|s| s.case_number.clone()).unwrap_or_default(),
                    first_court_code: first.map(|s| s.court.clone()).unwrap_or_default(),
                    waiting_count: u32::try_from(l.queue().filter(|(_, s)| s.effective == 0).count())
                        .unwrap_or(u32::MAX),
                    caller_rank: mine.map_or(0, |(r, _)| u32::try_from(r).unwrap_or(u32::MAX)),
                    caller_seizure_id: mine.map(|(_, s)| s.id.clone()).unwrap_or_default(),
                }
            }
            None => SeizureSummary::default(),
        };
        asset.seizures = Some(summary);
    }
}

/// What the audit trail keeps of a search's answer: each registry's outcome and counts.
fn audit_detail(response: &SearchResponse) -> Value {
    let debtors: Vec<Value> = response
        .debtors
        .iter()
        .map(|d| {
            let registries: Vec<Value> = d
                .registries
                .iter()
                .map(|o| {
                    let status = RegistryStatus::try_from(o.status).unwrap_or_default();
                    json!({ "registry": o.registry, "status": status.as_str_name(), "assets": o.asset_count, "cached": o.from_cache })
                })
                .collect();
            json!({ "assets": d.assets.len(), "registries": registries })
        })
        .collect();
    json!({ "debtors": debtors })
}

/// Groups finished legs per debtor and merges each debtor's answers.
fn respond(plan: &Plan, legs: &[Leg]) -> SearchResponse {
    let debtors = plan
        .debtors
        .iter()
        .enumerate()
        .map(|(i, (_, debtor))| {
            let mut mine: Vec<&Leg> = legs.iter().filter(|l| l.debtor_index == i).collect();
            mine.sort_by(|a, b| a.registry.name.cmp(&b.registry.name));
            let answers: Vec<Option<Answer>> = mine.iter().map(|l| answer(l, &plan.kinds)).collect();
            let registries = mine.iter().zip(&answers).map(|(l, a)| outcome(l, a.as_ref())).collect();
            let answers: Vec<Answer> = answers.into_iter().flatten().collect();
            let (assets, totals) = merge::merge(&answers);
            DebtorResult { debtor: Some(debtor.clone()), assets, registries, totals: Some(totals) }
        })
        .collect();
    let ok = legs.iter().filter(|l| l.result.is_ok()).count();
    info!(legs = legs.len(), ok, failed = legs.len() - ok, "search complete");
    SearchResponse {
        case_number: plan.caller.case_number.clone(),
        debtors,
        completed_at: Some(std::time::SystemTime::now().into()),
    }
}

#[tonic::async_trait]
impl AssetSearchService for Gateway {
    async fn search(&self, request: Request<SearchRequest>) -> Result<Response<SearchResponse>, Status> {
        let gate = self.gate.clone();
        gate.handle("Search", request, |caller, metadata, request, note| async move {
            let search = self.begin("Search", &caller, &metadata, request.query, &note).await?;
            let legs = self.legs(&search);
            async {
                let legs: Vec<Leg> = tokio::time::timeout_at(search.deadline, legs.collect())
                    .await
                    .map_err(|_| Error::DeadlineExceeded(search.budget))?;
                let mut response = respond(&search.plan, &legs);
                let case = &search.plan.caller.case_number;
                annotate(&self.ledger, case, response.debtors.iter_mut().flat_map(|d| d.assets.iter_mut())).await;
                note.detail(audit_detail(&response));
                Ok(response)
            }
            .instrument(search.span.clone())
            .await
        })
        .await
    }

    type SearchStreamStream = ReceiverStream<Result<SearchStreamResponse, Status>>;

    /// Registry answers go out as they arrive, so the call is recorded twice:
    /// when it is allowed (before anything is sent) and with its outcome
    /// (before the summary is sent).
    async fn search_stream(
        &self,
        request: Request<SearchStreamRequest>,
    ) -> Result<Response<Self::SearchStreamStream>, Status> {
        let gate = self.gate.clone();
        gate.handle("SearchStream", request, |caller, metadata, request, note| async move {
            let search = self.begin("SearchStream", &caller, &metadata, request.query, &note).await?;
            let legs = self.legs(&search);
            let (tx, rx) = mpsc::channel(16);
            let span = search.span.clone();
            let ledger = self.ledger.clone();
            let gate = self.gate.clone();
            let result_note = Note::default();
            result_note.case(search.plan.caller.case_number.clone());
            result_note.debtors(search.plan.debtors.iter().map(|(id, _)| id.clone()));
            tokio::spawn(
                async move {
                    let mut legs = pin!(legs);
                    let mut done = Vec::new();
                    let case = search.plan.caller.case_number.clone();
                    let finished = loop {
                        let next = match tokio::time::timeout_at(search.deadline, legs.next()).await {
                            Err(_) => break Err(Error::DeadlineExceeded(search.budget)),
                            Ok(next) => next,
                        };
                        let Some(leg) = next else {
                            let mut summary = respond(&search.plan, &done);
                            let assets = summary.debtors.iter_mut().flat_map(|d| d.assets.iter_mut());
                            annotate(&ledger, &case, assets).await;
                            result_note.detail(audit_detail(&summary));
                            break Ok(summary);
                        };
                        let mut answer = registry_answer(&search.plan, &leg);
                        if let Some(Event::RegistryAnswer(a)) = &mut answer.event {
                            annotate(&ledger, &case, a.assets.iter_mut()).await;
                        }
                        if tx.send(Ok(answer)).await.is_err() {
                            // The court hung up; the cache still gets what is in flight, the trail what it saw.
                            let mut record = result_note.record(&caller, "SearchStreamResult", Ok(()));
                            record.code = Some(tonic::Code::Cancelled);
                            record.message = "the court hung up before the summary".into();
                            let _ = gate.trail().record(record).await;
                            return;
                        }
                        done.push(leg);
                    };
                    let record = result_note.record(&caller, "SearchStreamResult", finished.as_ref().map(|_| ()));
                    let last = match (gate.trail().record(record).await, finished) {
                        (Err(e), _) | (Ok(()), Err(e)) => Err(e.into()),
                        (Ok(()), Ok(summary)) => Ok(SearchStreamResponse { event: Some(Event::Summary(summary)) }),
                    };
                    let _ = tx.send(last).await;
                }
                .instrument(span),
            );
            Ok(ReceiverStream::new(rx))
        })
        .await
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
