//! The answer cache's second tier, shared by the gateway replicas through
//! Redis ([`crate::ops::shared`]): a replica that misses locally takes the
//! answer another replica fetched, and of the replicas that miss at once only
//! the one holding the key's lease asks the registry; the others wait for its
//! outcome. The lease lasts at most the registry's timeout and is given back
//! when the call ends, with its outcome: the answer (kept for the TTL), or the
//! failure or ticket (kept only for the replicas waiting on that call, never
//! served to a later search). A waiter never waits longer than the
//! registry's timeout, so a search on any replica answers as fast as one on
//! the replica that asked. Redis never holds anything readable: keys are
//! keyed hashes of (registry, debtor), values are sealed with
//! ChaCha20-Poly1305 bound to their key; a value that fails its seal is
//! deleted and counts as a miss. Whenever Redis cannot be asked the replica
//! goes on with the registry itself.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use prometheus::IntCounterVec;
use sha2::Sha256;

use crate::{
    ops::{
        seal::Sealer,
        shared::{Shared, SharedError},
    },
    registry::call::{self, Checked, Failure},
};

/// How often a replica waiting on another's call looks for its outcome.
const POLL: Duration = Duration::from_millis(25);

/// The shared tier.
pub struct Tier {
    shared: Shared,
    seal: Sealer,
    names: [u8; 32],
    fallbacks: IntCounterVec,
}

/// An answer and when it was fetched (by whichever replica fetched it).
pub type Fetched = (Checked, SystemTime);

/// One (registry, debtor)'s keys in Redis: its answer, the outcome of the call under way, and its lease.
struct Names {
    answer: String,
    outcome: String,
    lease: String,
}

/// What one look at the tier found.
enum Found {
    /// A sealed answer young enough.
    Answer(Fetched),
    /// The call this replica waited on failed, or gave a ticket.
    Failure(Failure),
    /// Nothing usable, and the lease is free: this replica asks the registry.
    Ask,
    /// Another replica's call is still under way.
    Wait,
}

impl Tier {
    /// A tier over `shared`, sealing with `seal_key` and naming keys with `name_key`.
    pub fn new(shared: Shared, seal_key: [u8; 32], name_key: [u8; 32], fallbacks: IntCounterVec) -> Self {
        Self { shared, seal: Sealer::new(seal_key), names: name_key, fallbacks }
    }

    /// The shared state it works in.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// `registry`'s answer for `debtor` no older than `limit`: from the tier,
    /// else from `fetch` (stored in the tier for `ttl`), with one replica
    /// fetching at a time, for at most `timeout` (the registry's); and whether
    /// it came from the tier.
    pub async fn through<F>(
        &self,
        (registry, debtor): (&str, &str),
        (ttl, limit, timeout): (Duration, Duration, Duration),
        now: SystemTime,
        fetch: F,
    ) -> Result<(Fetched, bool), Failure>
    where
        F: Future<Output = Result<Checked, Failure>>,
    {
        let names = self.names(registry, debtor);
        if let Found::Answer(found) = self.look(&names, limit, now, false).await {
            return Ok((found, true));
        }
        match self.shared.lease(&names.lease, timeout).await {
            Ok(true) => {
                // Another replica may have stored the answer and let go between the look above and
                // this lease: look once more before asking the registry again.
                if let Found::Answer(found) = self.look(&names, limit, now, false).await {
                    self.forget(&[&names.lease]).await;
                    return Ok((found, true));
                }
                self.forget(&[&names.outcome]).await
            }
            Ok(false) => {
                // Another replica is asking the registry: take its outcome when it comes, within the
                // time the call itself may take.
                let until = tokio::time::Instant::now() + timeout;
                loop {
                    if tokio::time::Instant::now() >= until {
                        return Err(Failure::timeout(timeout));
                    }
                    tokio::time::sleep(POLL).await;
                    match self.look(&names, limit, now, true).await {
                        Found::Answer(found) => return Ok((found, true)),
                        Found::Failure(failure) => return Err(failure),
                        Found::Ask => break,
                        Found::Wait => {}
                    }
                }
            }
            Err(e) => self.alone(&e),
        }
        let result = fetch.await;
        match &result {
            Ok(checked) => {
                self.store(&names.answer, &call::encode(&checked.assets, checked.dropped.as_deref(), now), ttl).await
            }
            Err(failure) => {
                if let Some(plain) = call::encode_failure(failure) {
                    self.store(&names.outcome, &plain, timeout).await;
                }
            }
        }
        self.forget(&[&names.lease]).await;
        result.map(|checked| ((checked, now), false))
    }

    /// Redis' keys for (registry, debtor): a keyed hash, so they say nothing about the debtor.
    fn names(&self, registry: &str, debtor: &str) -> Names {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.names).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(registry.as_bytes());
        mac.update(b"\n");
        mac.update(debtor.as_bytes());
        let hash = hex::encode(mac.finalize().into_bytes());
        Names {
            answer: format!("cache:{hash}"),
            outcome: format!("flight:{hash}"),
            lease: format!("lease:cache:{hash}"),
        }
    }

    /// One round trip: the answer, and (when `waiting`) the outcome of the call waited on and
    /// whether its lease is still held. A value that fails its seal is deleted: a miss, at once.
    async fn look(&self, names: &Names, limit: Duration, now: SystemTime, waiting: bool) -> Found {
        let keys: &[&str] = if waiting { &[&names.answer, &names.outcome, &names.lease] } else { &[&names.answer] };
        let values = match self.shared.get_all(keys).await {
            Ok(values) => values,
            Err(e) => {
                self.alone(&e);
                return Found::Ask;
            }
        };
        let mut values = values.into_iter();
        let (answer, outcome, leased) = (values.next().flatten(), values.next().flatten(), values.next().flatten());
        if let Some(sealed) = answer {
            match self.seal.open(names.answer.as_bytes(), &sealed).as_deref().and_then(call::decode) {
                Some((checked, at)) if now.duration_since(at).unwrap_or_default() <= limit => {
                    return Found::Answer((checked, at));
                }
                Some(_) => {}
                None => {
                    tracing::warn!(
                        "a shared cache entry failed its seal (another key, or altered); deleted, asking the registry"
                    );
                    self.forget(&[&names.answer]).await;
                    return Found::Ask;
                }
            }
        }
        if let Some(sealed) = outcome {
            return match self.seal.open(names.outcome.as_bytes(), &sealed).as_deref().and_then(call::decode_failure) {
                Some(failure) => Found::Failure(failure),
                None => {
                    tracing::warn!(
                        "a shared call outcome failed its seal (another key, or altered); deleted, asking the registry"
                    );
                    self.forget(&[&names.outcome]).await;
                    Found::Ask
                }
            };
        }
        if waiting && leased.is_some() { Found::Wait } else { Found::Ask }
    }

    async fn store(&self, name: &str, plain: &[u8], ttl: Duration) {
        let Some(sealed) = self.seal.seal(name.as_bytes(), plain) else { return };
        if let Err(e) = self.shared.put(name, &sealed, ttl).await {
            self.alone(&e);
        }
    }

    async fn forget(&self, names: &[&str]) {
        if let Err(e) = self.shared.delete(names).await {
            self.alone(&e);
        }
    }

    fn alone(&self, e: &SharedError) {
        tracing::warn!(error = %e, "shared answer cache unreachable; asking the registry");
        self.fallbacks.with_label_values(&["cache"]).inc();
    }
}
