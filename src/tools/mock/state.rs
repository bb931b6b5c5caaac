//! What a mock registry remembers across a restart, as a real registry would: the tickets it gave
//! and the answers behind them, the control orders it answered (by idempotency key), the seizures
//! it holds and the counter its references come from. Kept in one file per mock (`assetgw dev`
//! keeps them in `data/mocks/`), written whole after every change (a new file renamed over the
//! old, so a crash leaves one or the other).

use std::path::{Path, PathBuf};

use prost::Message;

/// A mock's state as kept on disk.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Saved {
    #[prost(message, repeated, tag = "1")]
    pub answers: Vec<SavedAnswer>,
    #[prost(message, repeated, tag = "2")]
    pub held: Vec<SavedHeld>,
    #[prost(uint64, tag = "3")]
    pub effects: u64,
    #[prost(message, repeated, tag = "4")]
    pub tickets: Vec<SavedTicket>,
    #[prost(uint64, tag = "5")]
    pub issued: u64,
}

/// A control order's answer, by its idempotency key.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SavedAnswer {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", tag = "2")]
    pub answer: Vec<u8>,
}

/// A seizure the mock holds.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SavedHeld {
    #[prost(string, tag = "1")]
    pub reference: String,
    #[prost(message, optional, tag = "2")]
    pub start: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "3")]
    pub end: Option<prost_types::Timestamp>,
    #[prost(int64, tag = "4")]
    pub amount: i64,
    #[prost(bool, tag = "5")]
    pub released: bool,
}

/// A ticket the mock gave, and the answer behind it once given.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SavedTicket {
    #[prost(string, tag = "1")]
    pub ticket: String,
    #[prost(string, tag = "2")]
    pub debtor: String,
    #[prost(int64, tag = "3")]
    pub ready_at_micros: i64,
    #[prost(int64, tag = "4")]
    pub answer_by_micros: i64,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub answer: Option<Vec<u8>>,
}

/// Where mock `name` keeps its state under `dir`.
pub(super) fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.state"))
}

/// The state kept at `path`; none when there is no file yet. A file that cannot be read is said
/// in the log and the mock starts empty (it is test data, not a court's record).
pub(super) fn load(path: &Path) -> Saved {
    match std::fs::read(path) {
        Ok(bytes) => Saved::decode(bytes.as_slice()).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "mock state unreadable; starting empty");
            Saved::default()
        }),
        Err(_) => Saved::default(),
    }
}

/// Keeps `saved` at `path`.
pub(super) async fn store(path: &Path, saved: Saved) {
    let next = path.with_extension("state.new");
    let written = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(&next, saved.encode_to_vec()).await?;
        tokio::fs::rename(&next, path).await
    };
    if let Err(e) = written.await {
        tracing::warn!(path = %path.display(), error = %e, "mock state not kept; a restart forgets the last change");
    }
}
