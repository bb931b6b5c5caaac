//! Searches that travel in batches (`SearchAssetsBatch`), the way banks take
//! queries: while a registry's last batch is out, the searches of concurrent
//! court searches bound for it wait until it is answered, at most the
//! configured window (or until theirs is full, by items or bytes), and go in
//! one call; with none out, a search is sent at once; each item's answer goes back to its own
//! search, which keeps its own deadline, retries, hedges and breaker count
//! above this layer. A registry that answers `UNIMPLEMENTED` is asked one
//! search a call from then on (its batch's searches are sent singly at once).

use std::{
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::FutureExt;
use prost::Message;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tonic::{Code, Status, transport::Channel};

use crate::{
    core::proto::{
        SearchAssetsBatchRequest, SearchAssetsRequest, SearchAssetsResponse,
        registry_service_client::RegistryServiceClient, search_assets_batch_item::Outcome,
    },
    ops::config::BatchConfig,
    registry::call::{carry_trace, current_trace},
};

/// A registry client, on the registry's pooled connection.
pub type Connect = Arc<dyn Fn() -> RegistryServiceClient<Channel> + Send + Sync>;

/// Why one search of a batch has no answer.
#[derive(Debug)]
pub enum Refused {
    /// The registry's status for it (for the item alone, or for its whole batch).
    Status(Status),
    /// The registry answered the batch against the contract.
    Invalid(String),
}

/// One registry's batching: a collector task, started on first use.
pub struct Batcher {
    policy: BatchConfig,
    /// The largest answer to one search it takes.
    max_answer: usize,
    connect: Connect,
    queue: OnceLock<mpsc::Sender<Item>>,
    /// Cleared for good when the registry answers a batch `UNIMPLEMENTED`.
    takes_batches: Arc<AtomicBool>,
}

impl fmt::Debug for Batcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher").field("policy", &self.policy).field("takes_batches", &self.takes()).finish()
    }
}

/// One search waiting for its batch.
struct Item {
    request: SearchAssetsRequest,
    deadline: Instant,
    /// The search's trace: a batch continues its first item's.
    trace: opentelemetry::Context,
    reply: oneshot::Sender<Result<SearchAssetsResponse, Refused>>,
}

impl Batcher {
    /// Batches by `policy`, taking answers to one search up to `max_answer` bytes, over the
    /// connections `connect` makes.
    pub fn new((policy, max_answer): (BatchConfig, usize), connect: Connect) -> Self {
        let takes_batches = Arc::new(AtomicBool::new(true));
        Self { policy, max_answer, connect, queue: OnceLock::new(), takes_batches }
    }

    /// Whether searches go in batches: configured, and the registry has not said it takes none.
    pub fn takes(&self) -> bool {
        !self.policy.window.is_zero() && self.takes_batches.load(Ordering::Relaxed)
    }

    /// `request`'s answer, sent in the next batch; the registry is told the batch's latest deadline,
    /// the caller keeps its own.
    pub async fn ask(&self, request: SearchAssetsRequest, deadline: Instant) -> Result<SearchAssetsResponse, Refused> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.policy.max_items * 4);
            let to =
                To { connect: self.connect.clone(), takes: self.takes_batches.clone(), max_answer: self.max_answer };
            tokio::spawn(collect(rx, self.policy, to));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let stopped = || Refused::Status(Status::unavailable("the gateway's batching of this registry stopped"));
        queue.send(Item { request, deadline, trace: current_trace(), reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Where a registry's batches go: its connections, whether it takes batches, its answers' limit.
#[derive(Clone)]
struct To {
    connect: Connect,
    takes: Arc<AtomicBool>,
    max_answer: usize,
}

impl To {
    /// An answer to one search, unless it is over the limit (said as tonic says a single call's).
    fn within_limit(&self, answer: SearchAssetsResponse) -> Result<SearchAssetsResponse, Refused> {
        match answer.encoded_len() > self.max_answer {
            true => Err(Refused::Status(Status::out_of_range("the answer to one search is over the limit"))),
            false => Ok(answer),
        }
    }
}

/// Takes the searches as they come, each batch with whatever is already queued. While the last
/// batch is out, the next waits for more until that one is answered, the window has passed or it is
/// full; when none is out, it goes at once (waiting would only add its latency). So batches form
/// where searches come faster than the registry answers, and a quiet registry waits for none.
/// Each batch is sent on its own task, so the next one gathers meanwhile.
async fn collect(mut queue: mpsc::Receiver<Item>, policy: BatchConfig, to: To) {
    // Fires when the last batch sent has been answered.
    let mut out: Option<oneshot::Receiver<()>> = None;
    while let Some(first) = queue.recv().await {
        let closes = Instant::now() + policy.window;
        let mut bytes = first.request.encoded_len();
        let mut batch = vec![first];
        while batch.len() < policy.max_items && bytes < policy.max_bytes {
            let next = match (queue.try_recv(), out.as_mut()) {
                (Ok(item), _) => Some(item),
                (Err(_), None) => None,
                (Err(_), Some(answered)) => tokio::select! {
                    item = queue.recv() => item,
                    _ = answered => None,
                    _ = tokio::time::sleep_until(closes) => None,
                },
            };
            let Some(item) = next else { break };
            bytes += item.request.encoded_len();
            batch.push(item);
        }
        let (answered, fires) = oneshot::channel();
        out = Some(fires);
        tokio::spawn(send(batch, to.clone()).map(move |()| answered.send(())));
    }
}

/// One batch call; each item answered from it, or, when the registry takes no batches, by a call
/// of its own (as is a batch of one).
async fn send(mut batch: Vec<Item>, to: To) {
    // A batch of one saves nothing: it goes as a plain call.
    if batch.len() == 1 {
        if let Some(item) = batch.pop() {
            single(item, to).await;
        }
        return;
    }
    let latest = batch.iter().map(|i| i.deadline).max().unwrap_or_else(Instant::now);
    let items: Vec<SearchAssetsRequest> = batch.iter().map(|i| i.request.clone()).collect();
    let mut request = tonic::Request::new(SearchAssetsBatchRequest { items });
    request.set_timeout(latest.saturating_duration_since(Instant::now()));
    if let Some(first) = batch.first() {
        carry_trace(&mut request, &first.trace);
    }
    match (to.connect)().search_assets_batch(request).await {
        Ok(answer) => {
            let answers = answer.into_inner().items;
            if answers.len() != batch.len() {
                let why = format!("its batch answer has {} items for the {} asked", answers.len(), batch.len());
                for item in batch {
                    let _ = item.reply.send(Err(Refused::Invalid(why.clone())));
                }
                return;
            }
            for (item, answer) in batch.into_iter().zip(answers) {
                let _ = item.reply.send(match answer.outcome {
                    Some(Outcome::Answer(answer)) => to.within_limit(answer),
                    Some(Outcome::Error(e)) if e.code != 0 => {
                        Err(Refused::Status(Status::new(Code::from_i32(e.code), e.message)))
                    }
                    _ => Err(Refused::Invalid("a batch item carried neither an answer nor an error".into())),
                });
            }
        }
        Err(status) if status.code() == Code::Unimplemented => {
            tracing::info!("the registry takes no batches (SearchAssetsBatch UNIMPLEMENTED): one search a call");
            to.takes.store(false, Ordering::Relaxed);
            for item in batch {
                tokio::spawn(single(item, to.clone()));
            }
        }
        Err(status) => {
            for item in batch {
                let _ = item.reply.send(Err(Refused::Status(status.clone())));
            }
        }
    }
}

/// One search sent alone, within its own deadline.
async fn single(item: Item, to: To) {
    let mut request = tonic::Request::new(item.request);
    request.set_timeout(item.deadline.saturating_duration_since(Instant::now()));
    carry_trace(&mut request, &item.trace);
    let answer = match (to.connect)().search_assets(request).await {
        Ok(answer) => to.within_limit(answer.into_inner()),
        Err(status) => Err(Refused::Status(status)),
    };
    let _ = item.reply.send(answer);
}
