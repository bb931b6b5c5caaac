//! Registry clients: one per configured registry, calling the registry
//! contract over gRPC and checking every answer against it. A call never
//! fails the search; it ends in a [`Failure`] that becomes the registry's status.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};
use tower::ServiceExt;

use crate::{
    core::clock::{SharedClock, from_micros},
    core::proto::{
        AssetKind, Debtor, DeductRequest, Deferred, DescribeRequest, GetAnswerRequest, RegistryKind, ReleaseRequest,
        RenewRequest, SearchAssetsRequest, SearchAssetsResponse, SeizeRequest, get_answer_response::State,
        registry_service_client::RegistryServiceClient, time_of,
    },
    core::{
        answer::{self, Broken},
        merge,
    },
    ops::config::{Config, RegistryConfig},
    ops::{metrics::Metrics, pki::TlsFiles, shared::Shared},
    registry::batch::{Batcher, Connect, Refused},
    registry::breaker::Breaker,
    registry::call::{Checked, Failure, Inquiry, Ticket, carry_trace, current_trace},
    registry::pace::{Pace, SPAN},
    registry::pool::{Dial, Pool},
    registry::resilience::{self, Ask, Calls, Question},
};

/// Why a registry client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Its endpoint is not a valid URI.
    #[error("registry `{registry}`: bad endpoint: {source}")]
    Endpoint {
        /// The registry's name.
        registry: String,
        /// The parse error.
        source: tonic::transport::Error,
    },
    /// The gateway's certificate for calling it is missing or bad.
    #[error("registry TLS: {0}")]
    Tls(#[from] crate::ops::pki::PkiError),
    /// The registry directory has problems.
    #[error("{0}")]
    Directory(#[from] crate::ops::config::Problems),
}

/// A control order as the registry contract carries it.
#[derive(Debug, Clone)]
pub enum Control {
    /// Seize or freeze.
    Seize(SeizeRequest),
    /// Extend a term.
    Renew(RenewRequest),
    /// Lift a seizure.
    Release(ReleaseRequest),
    /// Transfer frozen funds.
    Deduct(DeductRequest),
}

/// What a registry answered to a control order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    /// Its reference of the seizure.
    pub reference: String,
    /// Term start by its calendar (seize, renew).
    pub start: Option<prost_types::Timestamp>,
    /// Term end by its calendar (seize, renew).
    pub end: Option<prost_types::Timestamp>,
}

/// Why a control order was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No answer within the registry's timeout.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// It answered with an error status.
    #[error("answered {:?}: {}", .0.code(), .0.message())]
    Refused(tonic::Status),
}

/// One registry of the network and how to reach it.
#[derive(Debug)]
pub struct Registry {
    /// Unique name.
    pub name: Arc<str>,
    /// Kind of institution.
    pub kind: RegistryKind,
    /// Asset kinds it may report.
    pub asset_kinds: Arc<[AssetKind]>,
    /// Time for its whole part of a search.
    pub timeout: Duration,
    /// Lifetime of its cached answers.
    pub cache_ttl: Duration,
    /// The gateway's metrics.
    pub metrics: Metrics,
    attempt: Attempt,
    calls: Calls,
    breaker: Arc<Breaker>,
    /// The searches that went to it lately, for its scheduled ones.
    pace: Pace,
    /// The searches per second it takes when it declares none (the directory's word).
    directory_rate: u32,
    /// Where the replicas' scheduled searches keep its rate together.
    shared: Option<Shared>,
}

/// One attempt at a search: the call, checked against the contract. The
/// innermost service of [`resilience::stack`].
#[derive(Debug, Clone)]
struct Attempt {
    dial: Arc<Dial>,
    pool: Pool,
    /// Its searches' batches.
    batcher: Arc<Batcher>,
    asset_kinds: Arc<[AssetKind]>,
    timeout: Duration,
    max_answer_bytes: usize,
    described: Arc<Described>,
}

impl tower::Service<Ask> for Attempt {
    type Response = Checked;
    type Error = Failure;
    type Future = futures::future::BoxFuture<'static, Result<Checked, Failure>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Failure>> {
        // The channel queues internally; readiness is the stack's business (its bulkhead).
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, ask: Ask) -> Self::Future {
        Box::pin(self.clone().ask(ask))
    }
}

impl Registry {
    /// A client for `cfg`. Connects lazily, so a registry that is down at
    /// start-up is reported per search instead of stopping the gateway.
    pub fn new(
        cfg: &RegistryConfig,
        config: &Config,
        pool: &Pool,
        metrics: Metrics,
        (clock, shared): (SharedClock, Option<Shared>),
    ) -> Result<Self, SetupError> {
        let policy = config.policy(cfg);
        // The pool makes the TLS connection itself (one configuration for every registry), so the
        // channel is told plain HTTP/2.
        let address =
            cfg.endpoint.strip_prefix("https://").map_or_else(|| cfg.endpoint.clone(), |a| format!("http://{a}"));
        let endpoint = Endpoint::from_shared(address)
            .map_err(|source| SetupError::Endpoint { registry: cfg.name.clone(), source })?
            .connect_timeout(policy.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.server.keepalive)
            .keep_alive_timeout(config.server.keepalive / 3);
        let files = |ca: &std::path::Path| TlsFiles { ca: ca.to_path_buf(), ..config.tls.files() };
        let tls =
            cfg.ca.as_deref().filter(|_| !config.tls.plaintext).map(|ca| Pool::tls(config, &files(ca))).transpose()?;
        let name: Arc<str> = cfg.name.as_str().into();
        let dial = Arc::new(Dial { name: name.clone(), endpoint, tls });
        let connect: Connect = {
            let (pool, dial, max) = (pool.clone(), dial.clone(), policy.max_answer_bytes);
            // A batch's answer holds many searches' answers.
            let max = max.saturating_mul(policy.batch.max_items);
            Arc::new(move || RegistryServiceClient::new(pool.channel(&dial)).max_decoding_message_size(max))
        };
        let attempt = Attempt {
            dial,
            pool: pool.clone(),
            batcher: Arc::new(Batcher::new((policy.batch, policy.max_answer_bytes), connect)),
            max_answer_bytes: policy.max_answer_bytes,
            asset_kinds: cfg.asset_kinds().into(),
            timeout: policy.attempt_timeout,
            described: Arc::new(Described {
                max_window: config.search.max_answer_window,
                declaration: tokio::sync::OnceCell::new(),
                clock,
            }),
        };
        let breaker = Arc::new(Breaker::new(policy.breaker));
        Ok(Self {
            calls: resilience::stack(&name, &policy, (&metrics, &breaker), attempt.clone()),
            breaker,
            pace: Pace::default(),
            shared,
            directory_rate: cfg.search_rate.unwrap_or(config.network.search_rate),
            name,
            kind: cfg.kind,
            asset_kinds: attempt.asset_kinds.clone(),
            timeout: policy.timeout,
            cache_ttl: cfg.cache_ttl(&config.cache),
            metrics,
            attempt,
        })
    }

    /// Whether it reports any of `kinds` (all kinds when empty).
    pub fn serves(&self, kinds: &[AssetKind]) -> bool {
        kinds.is_empty() || kinds.iter().any(|k| self.asset_kinds.contains(k))
    }

    /// Asks for a debtor's assets through the registry's call stack (breaker, retries, hedging; see
    /// [`resilience::stack`]); the answer is checked against the contract.
    ///
    /// Its deadline is the registry's timeout, not the court's: a call is shared by every search
    /// that wants the same answer (single flight) and fills the cache after its first caller has gone.
    /// A search that accepts a ticket may end in [`Failure::Deferred`]: the answer comes by [`Registry::answer`].
    pub async fn search(&self, debtor: Debtor, caller: Arc<Inquiry>) -> Result<Checked, Failure> {
        self.call(Question::Search(debtor), caller).await
    }

    /// The answer behind `ticket`, through the same stack as a search: ready (the checked assets),
    /// [`Failure::Deferred`] with the next time to ask while pending, or `Error(NotFound)` for a
    /// ticket the registry no longer knows.
    pub async fn answer(&self, ticket: String, caller: Arc<Inquiry>) -> Result<Checked, Failure> {
        self.call(Question::Answer(ticket), caller).await
    }

    /// The searches per second it takes: as it declares (`Describe`, once asked), else as the directory says.
    pub fn rate(&self) -> u32 {
        self.attempt.described.declaration.get().and_then(|d| d.rate).unwrap_or(self.directory_rate)
    }

    /// Asks what it declares, unless known: a scheduler learns its rate before pacing it.
    pub async fn learn(&self) {
        self.attempt.declaration(self.timeout).await;
    }

    /// How many scheduled searches may go to it now: what the courts' and the scheduled searches
    /// left of its rate; `None` while its breaker refuses calls: it is paused.
    pub fn room(&self) -> Option<u32> {
        match self.breaker.refusing() {
            Some(_) => None,
            None => Some(self.pace.left(self.attempt.described.clock.now(), self.rate())),
        }
    }

    /// A search is counted against the registry's rate: a court's always goes, a scheduled one only
    /// within what is left of it and never while the breaker refuses. The replicas' scheduled
    /// searches keep the rate together in the shared state; while it cannot be asked, this
    /// replica's own count decides alone.
    async fn paced(&self, question: &Question, caller: &Inquiry) -> Result<(), Failure> {
        if !matches!(question, Question::Search(_)) {
            return Ok(());
        }
        let (now, rate) = (self.attempt.described.clock.now(), self.rate());
        if !caller.scheduled {
            self.pace.court(now, rate);
            return Ok(());
        }
        if let Some(wait) = self.breaker.refusing() {
            return Err(Failure::CircuitOpen(wait));
        }
        self.pace.take(now, rate).map_err(Failure::Paced)?;
        let Some(shared) = &self.shared else { return Ok(()) };
        match shared.within(&format!("pace:{}", self.name), rate, SPAN).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(Failure::Paced(wait)),
            Err(e) => {
                tracing::debug!(error = %e, "scheduled searches paced by this replica alone");
                self.metrics.shared_fallbacks.with_label_values(&["pace"]).inc();
                Ok(())
            }
        }
    }

    async fn call(&self, question: Question, caller: Arc<Inquiry>) -> Result<Checked, Failure> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let result = match self.paced(&question, &caller).await {
            Ok(()) => self.calls.clone().oneshot(Ask { question, caller, deadline }).await,
            Err(refused) => Err(refused),
        };
        let outcome = result.as_ref().map_or_else(Failure::name, |_| "ok");
        let name = &*self.name;
        self.metrics.registry_calls.with_label_values(&[name, outcome]).inc();
        if !matches!(result, Err(Failure::CircuitOpen(_) | Failure::Shed(_) | Failure::Paced(_))) {
            self.metrics.registry_seconds.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// One plain attempt within the registry's timeout: no breaker, retry or
    /// hedge. The load generator's baseline of what a search costs.
    pub async fn search_once(&self, debtor: Debtor, caller: Arc<Inquiry>) -> Result<Checked, Failure> {
        let deadline = Instant::now() + self.timeout;
        self.attempt.clone().ask(Ask { question: Question::Search(debtor), caller, deadline }).await
    }

    /// Sends one control order; its idempotency key makes a redelivery harmless.
    pub async fn control(&self, order: Control) -> Result<Receipt, ControlError> {
        let call = async {
            let mut client = self.attempt.client();
            Ok::<_, tonic::Status>(match order {
                Control::Seize(r) => {
                    let r = client.seize(r).await?.into_inner();
                    Receipt { reference: r.registry_reference, start: r.start_time, end: r.end_time }
                }
                Control::Renew(r) => {
                    let r = client.renew(r).await?.into_inner();
                    Receipt { reference: r.registry_reference, start: r.start_time, end: r.end_time }
                }
                Control::Release(r) => Receipt {
                    reference: client.release(r).await?.into_inner().registry_reference,
                    ..Receipt::default()
                },
                Control::Deduct(r) => {
                    Receipt { reference: client.deduct(r).await?.into_inner().registry_reference, ..Receipt::default() }
                }
            })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(ControlError::Timeout(self.timeout)),
            Ok(result) => result.map_err(ControlError::Refused),
        }
    }
}

impl Attempt {
    /// A client on the registry's connection, opened if none is.
    fn client(&self) -> RegistryServiceClient<Channel> {
        RegistryServiceClient::new(self.pool.channel(&self.dial)).max_decoding_message_size(self.max_answer_bytes)
    }

    async fn ask(self, ask: Ask) -> Result<Checked, Failure> {
        let left = ask.deadline.saturating_duration_since(Instant::now()).min(self.timeout);
        let caller = &ask.caller;
        let answer = match ask.question {
            Question::Search(debtor) => {
                let request = SearchAssetsRequest {
                    debtor: Some(debtor),
                    case_number: caller.case_number.clone(),
                    court_code: caller.court_code.clone(),
                    request_id: caller.request_id.clone(),
                    accept_deferred: caller.accept_deferred,
                };
                let answer = match self.batcher.takes() {
                    true => self.batched(request, left).await?,
                    false => self.within(left, request, |mut c, r| async move { c.search_assets(r).await }).await?,
                };
                match answer.deferred {
                    Some(ticket) if caller.accept_deferred => {
                        let ticket = ticket_of(ticket)?;
                        return Err(Failure::Deferred(self.capped(ticket, left).await));
                    }
                    Some(_) => {
                        return Err(Failure::InvalidResponse(
                            "it answered with a ticket (a deferred answer), which this search did not accept".into(),
                        ));
                    }
                    None => answer,
                }
            }
            Question::Answer(ticket) => {
                let request = GetAnswerRequest { ticket };
                let answer = self.within(left, request, |mut c, r| async move { c.get_answer(r).await }).await?;
                match answer.state {
                    Some(State::Answer(answer)) if answer.deferred.is_none() => answer,
                    Some(State::Answer(_)) => {
                        return Err(Failure::InvalidResponse("the answer to a ticket carried another ticket".into()));
                    }
                    Some(State::Pending(ticket)) => return Err(Failure::Deferred(ticket_of(ticket)?)),
                    None => return Err(Failure::InvalidResponse("GetAnswer set neither pending nor answer".into())),
                }
            }
        };
        self.check(answer.assets)
    }

    /// What the registry declares (`Describe`), asked once within `left`: a registry that answers
    /// with an error (`UNIMPLEMENTED`, say) declares nothing; one that could not be asked just now
    /// is asked again next time.
    async fn declaration(&self, left: Duration) -> Declaration {
        let describe = async {
            let asked = self.within(left, DescribeRequest {}, |mut c, r| async move { c.describe(r).await }).await;
            match asked {
                Ok(answer) => Ok(Declaration {
                    window: answer.answer_window.and_then(|w| Duration::try_from(w).ok()).filter(|w| !w.is_zero()),
                    rate: Some(answer.search_rate).filter(|r| *r > 0),
                }),
                Err(failure) if failure.is_transient() => Err(failure),
                Err(_) => Ok(Declaration::default()),
            }
        };
        self.described.declaration.get_or_try_init(|| describe).await.ok().copied().unwrap_or_default()
    }

    /// `t` with its window cut to the registry's declared window and the gateway's maximum,
    /// counted from now; a registry that declares none is held to the maximum.
    async fn capped(&self, mut t: Ticket, left: Duration) -> Ticket {
        let declared = self.declaration(left).await.window;
        let window = declared.map_or(self.described.max_window, |d| d.min(self.described.max_window));
        let end = self.described.clock.now() + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        if t.answer_by > end {
            tracing::warn!(
                stated = %t.answer_by,
                kept = %end,
                "a ticket's answer window is longer than the registry declares or the gateway allows; cut"
            );
            t.answer_by = end;
        }
        t
    }

    /// A search sent in the registry's next batch, within `left`.
    async fn batched(&self, request: SearchAssetsRequest, left: Duration) -> Result<SearchAssetsResponse, Failure> {
        match tokio::time::timeout(left, self.batcher.ask(request, Instant::now() + left)).await {
            Err(_) => Err(Failure::timeout(left)),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(Refused::Status(status))) => Err(self.failure(&status, left)),
            Ok(Err(Refused::Invalid(why))) => Err(Failure::InvalidResponse(why)),
        }
    }

    /// One call of `method` with `left` to go: the registry learns it through grpc-timeout,
    /// and we enforce it ourselves too, because a registry that ignores the header must not
    /// hold the search.
    async fn within<Q, R, F>(
        &self,
        left: Duration,
        message: Q,
        method: impl FnOnce(RegistryServiceClient<Channel>, tonic::Request<Q>) -> F,
    ) -> Result<R, Failure>
    where
        F: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut request = tonic::Request::new(message);
        request.set_timeout(left);
        carry_trace(&mut request, &current_trace());
        match tokio::time::timeout(left, method(self.client(), request)).await {
            Err(_) => Err(Failure::timeout(left)),
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.failure(&status, left)),
        }
    }

    /// What a registry's error status for a search (or its batch) means for the search.
    fn failure(&self, status: &tonic::Status, left: Duration) -> Failure {
        tracing::warn!(code = ?status.code(), message = status.message(), "registry answered with an error");
        match status.code() {
            // tonic's own refusal of an answer over the limit (the registry did answer): the contract
            // gives a registry no OUT_OF_RANGE of its own, so the code alone says it.
            Code::OutOfRange => Failure::InvalidResponse(format!(
                "its answer is larger than the {} KiB this gateway takes from it (calls.max_answer_bytes)",
                self.max_answer_bytes / 1024
            )),
            Code::Unavailable => Failure::Unavailable,
            // tonic servers answer CANCELLED when the grpc-timeout we sent expires.
            Code::DeadlineExceeded | Code::Cancelled => Failure::timeout(left),
            code => Failure::Error(code),
        }
    }

    /// Keeps the records that keep the field rules ([`answer::check`]) and
    /// are of a kind the registry declares; says how many it dropped.
    fn check(&self, assets: Vec<crate::core::proto::Asset>) -> Result<Checked, Failure> {
        let total = assets.len();
        let mut kept = Vec::with_capacity(total);
        let mut broken: Vec<Broken> = Vec::new();
        for asset in assets {
            let reported = answer::check(&asset).and_then(|()| merge::identify(asset)).and_then(|r| {
                match self.asset_kinds.contains(&r.kind) {
                    true => Ok(r),
                    false => Err(Broken::Undeclared(r.kind)),
                }
            });
            match reported {
                Ok(r) => kept.push(r),
                Err(why) => broken.push(why),
            }
        }
        let dropped = broken.first().map(|first| {
            tracing::warn!(dropped = broken.len(), total, first = %first, "registry records broke the field rules");
            format!(
                "{} of {total} record(s) dropped for breaking the registry contract; the first: {first}",
                broken.len()
            )
        });
        Ok(Checked { assets: merge::distinguish(kept), dropped })
    }
}

/// A ticket as the contract requires it: else the answer is broken. Its window is as the registry
/// states it; an `ask_after` past `answer_by` only means the leg expires at `answer_by`.
fn ticket_of(d: Deferred) -> Result<Ticket, Failure> {
    let printable = (1..=128).contains(&d.ticket.len()) && d.ticket.bytes().all(|b| b.is_ascii_graphic());
    // Kept to the microsecond, as the database keeps times: a repeated `answer_by` compares equal.
    let time = |t: &prost_types::Timestamp| from_micros(time_of(t).timestamp_micros());
    match (printable, d.ask_after.as_ref().map(time), d.answer_by.as_ref().map(time)) {
        (true, Some(ask_after), Some(answer_by)) => {
            Ok(Ticket { ticket: d.ticket, ask_after, answer_by, stated_by: answer_by })
        }
        _ => Err(Failure::InvalidResponse(
            "its ticket broke the contract (1 to 128 printable characters, with ask_after and answer_by)".into(),
        )),
    }
}

/// What a registry declares of itself (`Describe`): how long its tickets may run and the
/// searches per second it takes; asked when first needed.
#[derive(Debug, Clone, Copy, Default)]
struct Declaration {
    window: Option<Duration>,
    rate: Option<u32>,
}

/// A registry's declaration once asked, the gateway's longest ticket window
/// (`search.max_answer_window`, the shorter of it and the declared one holds) and its clock.
struct Described {
    max_window: Duration,
    declaration: tokio::sync::OnceCell<Declaration>,
    clock: SharedClock,
}

impl std::fmt::Debug for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let declaration = self.declaration.get();
        f.debug_struct("Described").field("max_window", &self.max_window).field("declaration", &declaration).finish()
    }
}
