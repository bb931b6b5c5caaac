//! State the gateway replicas share, in Redis (`[shared] redis`): per-court
//! rate limits (GCRA, one Lua script), the registries' rates that scheduled
//! searches keep (a sliding window), daily counters, and the second tier of
//! the answer cache with its cross-replica leases. The connection is made
//! lazily and remade after a failure; every operation is bounded by
//! `shared.timeout` and fails fast with [`SharedError`], so that callers fall
//! back to their own replica's state instead of failing a court's call. After
//! a failure Redis rests for a second (every operation fails at once), so a
//! Redis that hangs costs a search nothing but the first timeout.
//! Keys are prefixed `assetgw:`; the URL (it may carry a password) is never logged.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use redis::{AsyncCommands, Client, Script, aio::ConnectionManager, aio::ConnectionManagerConfig};

/// Why the shared state could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Redis is down, slow, or answered something unexpected.
    #[error("shared state (Redis) unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    /// An operation failed a moment ago; Redis is left alone until [`REST`] has passed.
    #[error("shared state (Redis) not asked for a moment after a failure")]
    Resting,
    /// The durable count a shared counter starts from could not be read.
    #[error("the count a shared counter starts from is unreadable: {0}")]
    Seed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SharedError {
    /// A counter's seed failed with `cause`.
    pub fn seed(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        SharedError::Seed(Box::new(cause))
    }
}

/// GCRA over Redis' own clock, so replicas' clocks need not agree.
/// KEYS[1] the court's theoretical arrival time (µs); ARGV: interval µs, burst.
/// Returns 0 when allowed, else the µs to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
if tat - now > tolerance then return tat - now - tolerance end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil((tolerance + interval) / 1000) + 1)
return 0
";

/// A counter with a limit, seeded once from the durable record.
/// KEYS[1] the counter; ARGV: limit, time to live (ms), seed ('' when unknown).
/// Returns -1 when the counter is missing and no seed was given, 1 when
/// counted within the limit, 0 when the limit is reached (nothing counted).
const COUNT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[3] == '' then return -1 end
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2], 'NX')
end
if tonumber(redis.call('GET', KEYS[1])) >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
";

/// A sliding window over Redis' own clock: at most a limit of uses within a span, by every replica.
/// KEYS[1] the window's log; ARGV: limit, span (µs), a member unique to this use.
/// Returns 0 when the use is let through (and logged), else the µs until one may be.
const WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local span = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(span / 1000) + 1)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + span - now)
";

/// The replicas' shared state.
#[derive(Clone)]
pub struct Shared {
    conn: ConnectionManager,
    gcra: Script,
    count: Script,
    window: Script,
    /// Until when Redis is not asked, after an operation failed.
    resting: Arc<Mutex<Option<Instant>>>,
}

/// After an operation fails, how long the replica goes on alone before asking Redis again: a Redis
/// that hangs then costs one `shared.timeout` per rest, not one per operation of every search.
const REST: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(redis)")
    }
}

impl Shared {
    /// A lazily made connection to `url`; each operation waits at most `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SharedError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        let (gcra, count, window) = (Script::new(GCRA), Script::new(COUNT), Script::new(WINDOW));
        Ok(Self { conn, gcra, count, window, resting: Arc::default() })
    }

    /// Runs `op` unless Redis is resting after a failure; a failure starts a rest.
    async fn ask<T>(&self, op: impl Future<Output = Result<T, redis::RedisError>>) -> Result<T, SharedError> {
        let resting = *self.resting.lock().unwrap_or_else(PoisonError::into_inner);
        if resting.is_some_and(|until| Instant::now() < until) {
            return Err(SharedError::Resting);
        }
        let result = op.await;
        if result.is_err() {
            *self.resting.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REST);
        }
        Ok(result?)
    }

    /// One request of a court's rate (`per_second`, `burst`): `Ok(None)` when
    /// allowed, `Ok(Some(wait))` when over it, shared by every replica.
    pub async fn admit(&self, court: &str, per_second: u32, burst: u32) -> Result<Option<Duration>, SharedError> {
        let interval = 1_000_000 / u64::from(per_second.max(1));
        let mut conn = self.conn.clone();
        let mut script = self.gcra.key(format!("assetgw:rate:{court}"));
        let wait: u64 = self.ask(script.arg(interval.max(1)).arg(burst.max(1)).invoke_async(&mut conn)).await?;
        Ok((wait > 0).then(|| Duration::from_micros(wait)))
    }

    /// One use of `key`'s window, at most `limit` uses within `span` by every replica: `Ok(None)`
    /// when let through, `Ok(Some(wait))` when the window is full.
    pub async fn within(&self, key: &str, limit: u32, span: Duration) -> Result<Option<Duration>, SharedError> {
        let mut conn = self.conn.clone();
        let mut script = self.window.key(format!("assetgw:window:{key}"));
        let span = u64::try_from(span.as_micros()).unwrap_or(u64::MAX);
        let member = uuid::Uuid::new_v4().to_string();
        let wait: u64 = self.ask(script.arg(limit).arg(span).arg(member).invoke_async(&mut conn)).await?;
        Ok((wait > 0).then(|| Duration::from_micros(wait)))
    }

    /// Counts one use of `key` within `limit`; `seed` gives the durable count
    /// when Redis has none (first use, or after Redis lost it). `Ok(false)`
    /// when the limit is reached.
    pub async fn count<F>(&self, key: &str, limit: u64, keep: Duration, seed: F) -> Result<bool, SharedError>
    where
        F: AsyncFnOnce() -> Result<u64, SharedError>,
    {
        let key = format!("assetgw:count:{key}");
        let ttl = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        let run = async |seed: String| -> Result<i64, SharedError> {
            let mut conn = self.conn.clone();
            self.ask(self.count.key(&key).arg(limit).arg(ttl).arg(seed).invoke_async(&mut conn)).await
        };
        let mut counted = run(String::new()).await?;
        if counted == -1 {
            counted = run(seed().await?.to_string()).await?;
        }
        Ok(counted == 1)
    }

    /// The values stored under `keys`, in one round trip (a lease held reads as `Some`).
    pub async fn get_all(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, SharedError> {
        let keys: Vec<String> = keys.iter().map(|k| format!("assetgw:{k}")).collect();
        self.ask(redis::cmd("MGET").arg(keys).query_async(&mut self.conn.clone())).await
    }

    /// Removes `keys` (values or leases).
    pub async fn delete(&self, keys: &[&str]) -> Result<(), SharedError> {
        let keys: Vec<String> = keys.iter().map(|k| format!("assetgw:{k}")).collect();
        let _: i64 = self.ask(self.conn.clone().del(keys)).await?;
        Ok(())
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.ask(self.conn.clone().pset_ex(format!("assetgw:{key}"), value, ms)).await
    }

    /// Takes the lease `key` for `ttl` if nobody holds it: true when taken. Given back with [`Shared::delete`].
    pub async fn lease(&self, key: &str, ttl: Duration) -> Result<bool, SharedError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let mut set = redis::cmd("SET");
        set.arg(format!("assetgw:{key}")).arg(1).arg("NX").arg("PX").arg(ms);
        let taken: Option<String> = self.ask(set.query_async(&mut conn)).await?;
        Ok(taken.is_some())
    }
}
