//! The answer cache's second tier, shared by the gateway replicas through
//! Redis ([`crate::ops::shared`]): a replica that misses locally takes the
//! answer another replica fetched, and of the replicas that miss at once only
//! the one holding the key's lease asks the registry; the others wait for its
//! answer (at most the lease) and then ask themselves. Redis never holds
//! anything readable: keys are keyed hashes of (registry, debtor), values are
//! sealed with ChaCha20-Poly1305 bound to their key. Whenever Redis cannot be
//! asked the replica goes on with the registry itself.

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

/// How often a replica waiting on another's lease looks for its answer.
const POLL: Duration = Duration::from_millis(25);

/// The shared tier.
pub struct Tier {
    shared: Shared,
    seal: Sealer,
    names: [u8; 32],
    lease: Duration,
    fallbacks: IntCounterVec,
}

/// An answer and when it was fetched (by whichever replica fetched it).
pub type Fetched = (Checked, SystemTime);

impl Tier {
    /// A tier over `shared`, sealing with `seal_key` and naming keys with
    /// `name_key`; a replica waits at most `lease` for another's fetch.
    pub fn new(
        shared: Shared,
        seal_key: [u8; 32],
        name_key: [u8; 32],
        lease: Duration,
        fallbacks: IntCounterVec,
    ) -> Self {
        Self { shared, seal: Sealer::new(seal_key), names: name_key, lease, fallbacks }
    }

    /// `registry`'s answer for `debtor` no older than `limit`: from the tier,
    /// else from `fetch` (stored in the tier for `ttl`), with one replica
    /// fetching at a time; and whether it came from the tier.
    pub async fn through<F>(
        &self,
        (registry, debtor): (&str, &str),
        ttl: Duration,
        limit: Duration,
        now: SystemTime,
        fetch: F,
    ) -> Result<(Fetched, bool), Failure>
    where
        F: Future<Output = Result<Checked, Failure>>,
    {
        let name = self.name(registry, debtor);
        if let Some(found) = self.look(&name, limit, now).await {
            return Ok((found, true));
        }
        let leased = self.shared.lease(&name, self.lease).await.map_err(|e| self.alone(&e));
        if leased == Ok(false) {
            // Another replica is asking the registry: take its answer when it comes.
            let until = tokio::time::Instant::now() + self.lease;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(POLL).await;
                if let Some(found) = self.look(&name, limit, now).await {
                    return Ok((found, true));
                }
            }
        }
        let checked = fetch.await?;
        self.store(&name, &checked, now, ttl).await;
        Ok(((checked, now), false))
    }

    /// Redis' key for (registry, debtor): a keyed hash, so it says nothing about the debtor.
    fn name(&self, registry: &str, debtor: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.names).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(registry.as_bytes());
        mac.update(b"\n");
        mac.update(debtor.as_bytes());
        format!("cache:{}", hex::encode(mac.finalize().into_bytes()))
    }

    async fn look(&self, name: &str, limit: Duration, now: SystemTime) -> Option<Fetched> {
        let sealed = self.shared.get(name).await.map_err(|e| self.alone(&e)).ok()??;
        let Some(plain) = self.seal.open(name.as_bytes(), &sealed) else {
            tracing::warn!("a shared cache entry failed its seal (another key, or altered); ignored");
            return None;
        };
        let (checked, fetched_at) = call::decode(&plain)?;
        (now.duration_since(fetched_at).unwrap_or_default() <= limit).then_some((checked, fetched_at))
    }

    async fn store(&self, name: &str, checked: &Checked, now: SystemTime, ttl: Duration) {
        let plain = call::encode(&checked.assets, checked.dropped.as_deref(), now);
        let Some(sealed) = self.seal.seal(name.as_bytes(), &plain) else { return };
        if let Err(e) = self.shared.put(name, &sealed, ttl).await {
            self.alone(&e);
        }
    }

    fn alone(&self, e: &SharedError) {
        tracing::warn!(error = %e, "shared answer cache unreachable; asking the registry");
        self.fallbacks.with_label_values(&["cache"]).inc();
    }
}
