//! Searches that outlive the call: the court-facing side of search jobs
//! ([`crate::gateway::jobs`]). A search keeps its registries' late answers
//! under a search id: `Search` and `SearchStream` open a job when a registry
//! answers later; `SubmitSearch` opens one at once and asks in the background;
//! `GetSearch`, `WatchSearch` and `ListSearches` read them, for the court that
//! made them only and only while the case is the court's (R12, R15).

use std::time::Duration;

use futures::{Stream, StreamExt};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::{Instrument, Span, warn};

use super::{Part, Search, SearchApi, respond};
use crate::{
    core::method::Method,
    core::{
        clock::Time,
        error::Error,
        identifiers::CaseNumber,
        proto::{
            AssetKind, GetSearchResponse, ListSearchesRequest, ListSearchesResponse, SearchSummary,
            SubmitSearchRequest, SubmitSearchResponse, WatchSearchRequest, WatchSearchResponse, ts,
        },
    },
    gateway::{
        call::{Call, Caller, Note},
        jobs::{Head, LegRow, NewJob, Opened, research},
        validate::violation,
    },
    ledger::rules::Action,
    registry::{
        call::Failure,
        fanout::{Leg, Plan},
    },
};

/// How often a watch reads again for answers another replica recorded (this replica's wake it at once).
const WATCH_POLL: Duration = Duration::from_secs(1);
/// Most searches one ListSearches returns.
const LIST_MAX: u32 = 100;
/// Margin past a registry's timeout before another replica may ask in place of a submitter that died.
const ASKING_MARGIN: Duration = Duration::from_secs(5);

impl SearchApi {
    /// Keeps a search whose legs include a ticket as a job, so its late
    /// answers are not lost; returns the job's id ('' when every registry answered).
    pub(super) async fn keep(&self, plan: &Plan, court: &str, legs: &[Leg]) -> Result<String, Error> {
        if !legs.iter().any(|l| matches!(l.result, Err(Failure::Deferred(_)))) {
            return Ok(String::new());
        }
        let now = self.clock.now();
        let rows = legs.iter().map(|l| LegRow::of(l, now)).collect();
        let job = self.job(plan, court, String::new(), String::new(), rows);
        match self.jobs.open(&job).await? {
            Opened::New(id) | Opened::Replayed(id) => Ok(id),
        }
    }

    fn job(&self, plan: &Plan, court: &str, request_id: String, digest: String, legs: Vec<LegRow>) -> NewJob {
        NewJob {
            // The registries see the search id as the request id of every call for it.
            search_id: plan.caller.request_id.clone(),
            court: court.to_string(),
            request_id,
            digest,
            case_number: plan.caller.case_number.clone(),
            kinds: plan.kinds.clone(),
            debtors: plan.debtors.clone(),
            legs,
            now: self.clock.now(),
            research_round: None,
        }
    }

    /// Opens a job with every leg being asked, answers its id, and asks in the background.
    pub(super) async fn submit(
        &self,
        call: &Call,
        metadata: &tonic::metadata::MetadataMap,
        r: SubmitSearchRequest,
    ) -> Result<SubmitSearchResponse, Error> {
        let (caller, note) = (&call.caller, &call.note);
        if r.request_id.is_empty() || r.request_id.len() > 64 || !r.request_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(violation(
                "request_id",
                "must be 1 to 64 printable ASCII characters chosen by the court; a retry with the same id is safe",
            ));
        }
        let digest = hex::encode(Sha256::digest(r.query.as_ref().map(Message::encode_to_vec).unwrap_or_default()));
        let search = self.begin(Method::SubmitSearch, call, metadata, r.query).await?;
        let plan = search.plan.clone();
        let now = self.clock.now();
        let job = self.job(&plan, &caller.court, r.request_id, digest, asking(&plan, &[], now));
        let id = match self.jobs.open(&job).await? {
            Opened::Replayed(id) => {
                note.detail(serde_json::json!({ "search_id": id, "replayed": true }));
                return Ok(SubmitSearchResponse { search_id: id, registries: 0, replayed: true });
            }
            Opened::New(id) => id,
        };
        note.detail(serde_json::json!({ "search_id": id, "asked": plan.registries.iter().map(|r| &*r.name).collect::<Vec<_>>() }));
        self.record_as_they_come(id.clone(), Box::pin(self.legs(&search)), &search.span);
        let registries = u32::try_from(plan.registries.len()).unwrap_or(u32::MAX);
        Ok(SubmitSearchResponse { search_id: id, registries, replayed: false })
    }

    /// At the court's deadline: keeps the search as a job (the legs `done`,
    /// and those still being asked, whose answers are recorded as they come
    /// from `rest`), and says so in the DEADLINE_EXCEEDED it returns.
    pub(super) async fn past_deadline(
        &self,
        search: &Search,
        court: &str,
        done: &[Leg],
        rest: impl Stream<Item = Leg> + Send + Unpin + 'static,
    ) -> Error {
        let now = self.clock.now();
        let mut rows: Vec<LegRow> = done.iter().map(|l| LegRow::of(l, now)).collect();
        rows.extend(asking(&search.plan, done, now));
        let job = self.job(&search.plan, court, String::new(), String::new(), rows);
        match self.jobs.open(&job).await {
            Ok(Opened::New(id) | Opened::Replayed(id)) => {
                self.record_as_they_come(id.clone(), rest, &search.span);
                Error::DeadlineExceeded(search.budget, Some(id))
            }
            Err(e) => {
                warn!(error = %e, "a search past its deadline could not be kept; its late answers only fill the cache");
                Error::DeadlineExceeded(search.budget, None)
            }
        }
    }

    /// Records each leg of `legs` in search `id` as it finishes.
    fn record_as_they_come(&self, id: String, mut legs: impl Stream<Item = Leg> + Send + Unpin + 'static, span: &Span) {
        let (jobs, clock) = (self.jobs.clone(), self.clock.clone());
        tokio::spawn(
            async move {
                while let Some(leg) = legs.next().await {
                    let row = LegRow::of(&leg, clock.now());
                    if let Err(e) = jobs.record(&id, &[row], 0).await {
                        // The leg stays 'asking'; when its lease ends the poller asks again.
                        warn!(error = %e, registry = %leg.registry.name, "leg of a kept search not recorded");
                    }
                }
            }
            .instrument(span.clone()),
        );
    }

    /// The job `search_id` if it is `caller`'s and its case still is (R12, R15).
    async fn own(&self, caller: &Caller, search_id: &str, note: &Note) -> Result<Head, Error> {
        let head = self.jobs.head(search_id).await?.filter(|h| h.court == caller.court).ok_or_else(|| {
            Error::NotFound(format!(
                "no search {} of this court; ListSearches shows the court's searches",
                search_id.chars().take(64).collect::<String>()
            ))
        })?;
        note.case(head.case_number.clone());
        let case = CaseNumber::parse(&head.case_number)
            .map_err(|e| Error::Internal(format!("stored case number of search {search_id}: {e}")))?;
        self.authority.authorize(caller, &case, Action::Query).await?;
        Ok(head)
    }

    /// A job as it stands: the merged result so far and every registry's state.
    pub(super) async fn get(&self, call: &Call, search_id: &str) -> Result<GetSearchResponse, Error> {
        let head = self.own(&call.caller, search_id, &call.note).await?;
        // Purged between the two reads: as unknown as before.
        let view = self.jobs.view(search_id).await?.ok_or_else(|| Error::NotFound(format!("no search {search_id}")))?;
        let parts = view.legs.iter().map(|l| part(l, &head.kinds)).collect();
        let model = (&*self.model, head.case_number.as_str());
        let mut result = respond(model, &view.debtors, parts, self.clock.now(), &self.limits);
        result.search_id = view.search_id.clone();
        for asset in result.debtors.iter_mut().flat_map(|d| &mut d.assets) {
            asset.new_to_case = view.new_to_case.contains(&research::identity(i64::from(asset.kind), &asset.asset_id));
        }
        Ok(GetSearchResponse {
            result: Some(result),
            submitted_at: Some(ts(view.submitted_at)),
            settled_at: view.settled_at.map(ts),
        })
    }

    /// Streams each leg as it settles, from `after_sequence` on, until the last.
    pub(super) async fn watch(
        &self,
        call: Call,
        r: WatchSearchRequest,
    ) -> Result<ReceiverStream<Result<WatchSearchResponse, Status>>, Error> {
        let caller = call.caller;
        let head = self.own(&caller, &r.search_id, &call.note).await?;
        let (search_id, total) = (r.search_id, head.legs);
        if !(0..=total).contains(&r.after_sequence) {
            return Err(violation(
                "after_sequence",
                &format!("is {}; it must be 0 or a sequence already seen (this search has {total})", r.after_sequence),
            ));
        }
        let (tx, rx) = mpsc::channel(64);
        let api = self.clone();
        let mut last = r.after_sequence;
        tokio::spawn(async move {
            // Subscribed before the first read, so a leg settled in between is not missed.
            let mut changes = api.jobs.changes();
            while last < total {
                let rows = match api.jobs.settled_after(&search_id, last).await.map_err(Error::from) {
                    Ok(rows) => rows,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if !rows.is_empty() {
                    // A case designated away mid-search stops the stream (R12).
                    if let Err(e) = api.own(&caller, &search_id, &Note::default()).await {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
                for row in rows {
                    last = row.seq.unwrap_or(last + 1);
                    let answer = super::registry_answer(&api.model, &head.case_number, part(&row, &head.kinds));
                    let update = WatchSearchResponse { sequence: last, answer: Some(answer), settled: last == total };
                    if tx.send(Ok(update)).await.is_err() {
                        return;
                    }
                }
                let mine = async {
                    loop {
                        match changes.recv().await {
                            Ok(id) if *id == *search_id => return,
                            Ok(_) => {}
                            // Fell behind: read again, as for a change of its own.
                            Err(broadcast::error::RecvError::Lagged(_)) => return,
                            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                        }
                    }
                };
                tokio::select! {
                    _ = mine => {}
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    /// The court's searches, newest first.
    pub(super) async fn list(&self, call: &Call, r: ListSearchesRequest) -> Result<ListSearchesResponse, Error> {
        let limit = if r.limit == 0 { LIST_MAX } else { r.limit.min(LIST_MAX) };
        let found = self.jobs.list(&call.caller.court, r.open_only, limit as usize).await?;
        let searches = found
            .into_iter()
            .map(|s| SearchSummary {
                search_id: s.search_id,
                case_number: s.case_number,
                debtors: s.debtors,
                submitted_at: Some(ts(s.submitted_at)),
                settled_at: s.settled_at.map(ts),
                pending: s.pending,
                settled: s.settled,
            })
            .collect();
        Ok(ListSearchesResponse { searches })
    }
}

/// A leg being asked for every (debtor, registry) of `plan` not in `done`, its lease the registry's timeout.
fn asking(plan: &Plan, done: &[Leg], now: Time) -> Vec<LegRow> {
    let mut rows = Vec::new();
    for i in 0..plan.debtors.len() {
        for registry in &plan.registries {
            if !done.iter().any(|l| l.debtor_index == i && l.registry.name == registry.name) {
                let until = now + chrono::Duration::from_std(registry.timeout + ASKING_MARGIN).unwrap_or_default();
                rows.push(LegRow::asking(i, &registry.name, registry.kind as i32, until));
            }
        }
    }
    rows
}

fn part(row: &LegRow, kinds: &[AssetKind]) -> Part {
    let (outcome, answer) = row.outcome(kinds);
    Part { debtor_index: row.debtor_index, outcome, answer }
}
