//! The registry side: the directory of the network's registries, a client per
//! registry with its connection opened on demand, the tower stack
//! every search call goes through (bulkhead, breaker, timeouts, retries,
//! hedging), the batches concurrent searches travel in, the pace of scheduled searches within a registry's declared
//! rate, the fan-out of a search over registries, and the answer cache
//! with single flight and its tier shared by replicas. It knows nothing of the ledger or of courts; it may
//! use [`crate::ops`] and [`crate::core`].

pub mod batch;
pub mod breaker;
pub mod cache;
pub mod call;
pub mod client;
pub mod fanout;
pub mod network;
pub mod pace;
pub mod pool;
pub mod resilience;
pub mod tier;
