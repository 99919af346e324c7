//! Per-client rate limits at the edge: a token bucket in its GCRA form (one timestamp per client,
//! the bucket's "theoretical arrival time"), kept in this process or in Redis so that every
//! gateway replica spends from the same budget.
//!
//! The arithmetic lives in [`gcra_take`] and [`Decision::from_bucket`], pure functions shared by
//! both stores: the Redis script does the same step atomically on Redis's clock.
//!
//! A replica that serves a busy client takes its tokens from Redis in leases (one Redis call for
//! several requests, see [`Leases`]): every token handed out was taken from the shared bucket,
//! less than [`LEASE_TTL`] before.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::edge::EdgeConfig;

/// How many requests one client may make: `per_minute` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// Microseconds for one token to come back at the sustained rate.
    pub fn interval_us(self) -> u64 {
        (60_000_000 / u64::from(self.per_minute.max(1))).max(1)
    }

    /// How far ahead of now a bucket's arrival time may run: `burst` tokens' worth.
    pub fn capacity_us(self) -> u64 {
        self.interval_us() * u64::from(self.burst.max(1))
    }
}

/// The outcome of one request against its bucket, with what the `RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The bucket's size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that could be made right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// When refused: until one more request would be let through (`Retry-After`).
    pub retry_after: Duration,
}

impl Decision {
    /// The decision for a bucket whose arrival time is `ahead_us` past now: after taking the
    /// token when `allowed`, or unchanged when refused. Both stores report just these two facts.
    pub fn from_bucket(quota: Quota, allowed: bool, ahead_us: u64) -> Self {
        let capacity = quota.capacity_us();
        let interval = quota.interval_us();
        let remaining = capacity.saturating_sub(ahead_us) / interval;
        let retry_after = if allowed {
            0
        } else {
            // The next request fits once `ahead + interval - elapsed <= capacity`.
            (ahead_us + interval).saturating_sub(capacity)
        };
        Self {
            allowed,
            limit: quota.burst,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(ahead_us),
            retry_after: Duration::from_micros(retry_after),
        }
    }

    /// The decision for a client that also holds `held` leased tokens in this replica: they count
    /// as remaining, up to the bucket's size.
    fn with_held(mut self, held: u32) -> Self {
        self.remaining = self.remaining.saturating_add(held).min(self.limit);
        self
    }

    /// Whole seconds for a header, rounded up (a client that waits this long is let through).
    pub fn seconds(d: Duration) -> u64 {
        d.as_micros().div_ceil(1_000_000) as u64
    }
}

/// One GCRA step for a bucket whose stored arrival time is `tat_us` (`None`: never used, or
/// full) at `now_us`. Returns the decision and, when the request is let through, the arrival
/// time to store (a refused request leaves the bucket as it was).
pub fn gcra(quota: Quota, tat_us: Option<u64>, now_us: u64) -> (Decision, Option<u64>) {
    let (taken, store) = gcra_take(quota, tat_us, now_us, 1);
    (Decision::from_bucket(quota, taken.granted > 0, taken.ahead_us), store)
}

/// What one step took from a bucket: `granted` tokens (0: refused) and the bucket's arrival time
/// then, `ahead_us` past now (after taking them, or unchanged when refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub granted: u32,
    pub ahead_us: u64,
}

/// The GCRA step for up to `wanted` tokens at once: as many as fit (at least one, else none),
/// each one interval further ahead. Returns what was taken and the arrival time to store.
pub fn gcra_take(quota: Quota, tat_us: Option<u64>, now_us: u64, wanted: u32) -> (Taken, Option<u64>) {
    let start = tat_us.unwrap_or(now_us).max(now_us);
    let lead = start - now_us;
    let interval = quota.interval_us();
    let fits = quota.capacity_us().saturating_sub(lead) / interval;
    let granted = fits.min(u64::from(wanted.max(1)));
    if granted == 0 {
        return (
            Taken {
                granted: 0,
                ahead_us: lead,
            },
            None,
        );
    }
    let next = start + granted * interval;
    let granted = u32::try_from(granted).unwrap_or(u32::MAX);
    (
        Taken {
            granted,
            ahead_us: next - now_us,
        },
        Some(next),
    )
}

/// The same step as [`gcra_take`], atomically in Redis and on Redis's clock (replicas' clocks
/// may differ; Redis's is the one they share). `ARGV`: interval, capacity, tokens wanted.
/// Returns `{granted, ahead_us}`. Arrival times are stored as integers (Lua would print large
/// numbers in exponent form) and expire once the bucket is full again, so idle clients cost no
/// memory.
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local granted = math.floor((capacity - (tat - now)) / interval)
if granted < 1 then
  return {0, tat - now}
end
if granted > wanted then granted = wanted end
local next = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1)
return {granted, next - now}
";

/// How long tokens leased from Redis may wait here before they lapse: what bounds how far the
/// replicas' use of the shared bucket can lag behind its spending.
const LEASE_TTL: Duration = Duration::from_secs(1);
/// How long a client's lease size is remembered after its last lease.
const LEASE_MEMORY: Duration = Duration::from_secs(10);
/// The largest lease: at most this many tokens, and a twentieth of the burst, so tokens one
/// replica holds unused (lost to the client when they lapse) stay a small part of its budget.
const MAX_LEASE: u32 = 32;

/// The largest lease for `quota` (1: every request asks Redis, as with small bursts).
fn lease_cap(quota: Quota) -> u32 {
    (quota.burst / 20).clamp(1, MAX_LEASE)
}

/// Budget for one Redis round trip; past it the request goes through unlimited.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// How often a Redis outage is logged (every failure is counted).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
const SHARDS: usize = 16;

/// Per-client token buckets. Cheap to clone (shared state).
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    quota: Option<Quota>,
    store: Store,
}

enum Store {
    InProcess(Buckets),
    Redis {
        connection: ConnectionManager,
        prefix: String,
        script: redis::Script,
        last_error_log: Mutex<Option<Instant>>,
        /// Clients Redis refused, until their next token is due. Tokens only come back with
        /// time, so no other replica's spending can make that earlier: refusing them here
        /// until then is exact, and a client that floods while refused costs no Redis call.
        refused: Refusals,
        /// Tokens taken ahead for busy clients.
        leases: Leases,
    },
}

/// A per-client table, sharded to keep lock contention low.
struct Sharded<V> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, V>>>,
}

impl<V> Sharded<V> {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn retain(&self, keep: impl Fn(&V) -> bool) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, v| keep(v));
        }
    }
}

/// When each refused client's bucket is full again, as an instant on this process's clock.
struct Refusals(Sharded<Instant>);

impl Refusals {
    fn new() -> Self {
        Self(Sharded::new())
    }

    /// The refusal still standing for `key` at `now`, if any (a stale one is dropped).
    fn standing(&self, quota: Quota, key: &str, now: Instant) -> Option<Decision> {
        let mut shard = self.0.shard(key);
        let full_at = *shard.get(key)?;
        let ahead = u64::try_from(full_at.saturating_duration_since(now).as_micros()).unwrap_or(u64::MAX);
        let decision = Decision::from_bucket(quota, false, ahead);
        if decision.retry_after.is_zero() {
            shard.remove(key);
            return None;
        }
        Some(decision)
    }

    fn record(&self, key: &str, full_at: Instant) {
        self.0.shard(key).insert(key.to_owned(), full_at);
    }

    /// Drops refusals whose wait is over.
    fn forget_past(&self, quota: Quota, now: Instant) {
        let wait = Duration::from_micros(quota.capacity_us().saturating_sub(quota.interval_us()));
        self.0.retain(|full_at| full_at.saturating_duration_since(now) > wait);
    }
}

/// Tokens a replica took from Redis for one client and has not handed out yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    /// Tokens still to hand out here.
    left: u32,
    /// How many the last lease asked for.
    size: u32,
    /// The bucket's lead in Redis just after the lease was taken, and when it was taken.
    ahead_us: u64,
    taken_at: Instant,
}

/// Leases per client. A client's first request asks Redis for one token; each time a lease is
/// used up within a quarter of [`LEASE_TTL`] the next asks for twice as many (up to
/// [`lease_cap`]), and a lease that lapsed with tokens left halves the next. A client making a
/// request now and then thus spends exactly as without leases, and one making hundreds a second
/// asks Redis once per lease.
struct Leases(Sharded<Lease>);

impl Leases {
    fn new() -> Self {
        Self(Sharded::new())
    }

    /// A token from `key`'s fresh lease, with the headers the shared bucket would give (the
    /// tokens left here count as remaining); else how many tokens to ask Redis for.
    fn take(&self, quota: Quota, key: &str, now: Instant) -> Result<Decision, u32> {
        let cap = lease_cap(quota);
        let mut shard = self.0.shard(key);
        let Some(lease) = shard.get_mut(key) else {
            return Err(1);
        };
        let elapsed = now.saturating_duration_since(lease.taken_at);
        if elapsed >= LEASE_TTL {
            // Lapsed: what is left is not handed out.
            let size = if lease.left > 0 { lease.size / 2 } else { lease.size };
            return Err(size.clamp(1, cap));
        }
        if lease.left == 0 {
            // Used up quickly: the next lease, twice as large, is still used up well within its
            // TTL at this client's pace. Used up slowly: the same size again, so a client making
            // a few requests a second near a low quota does not lose tokens to lapsed leases.
            let size = if elapsed < LEASE_TTL / 4 {
                lease.size.saturating_mul(2)
            } else {
                lease.size
            };
            return Err(size.clamp(1, cap));
        }
        lease.left -= 1;
        let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        Ok(Decision::from_bucket(quota, true, lease.ahead_us.saturating_sub(elapsed_us)).with_held(lease.left))
    }

    /// Keeps the `left` tokens of a lease of `size` that Redis granted at `taken_at`, with the
    /// bucket then `ahead_us` ahead. Tokens still left from a fresh lease are kept too (two
    /// requests may have asked at once).
    fn record(&self, key: &str, left: u32, size: u32, ahead_us: u64, taken_at: Instant) {
        let mut shard = self.0.shard(key);
        let lease = Lease {
            left,
            size,
            ahead_us,
            taken_at,
        };
        match shard.get_mut(key) {
            Some(old) => {
                let fresh = taken_at.saturating_duration_since(old.taken_at) < LEASE_TTL;
                let kept = if fresh { old.left } else { 0 };
                *old = Lease {
                    left: lease.left.saturating_add(kept),
                    size: if fresh { lease.size.max(old.size) } else { lease.size },
                    ..lease
                };
            }
            None => {
                shard.insert(key.to_owned(), lease);
            }
        }
    }

    /// Drops the leases of clients not seen for [`LEASE_MEMORY`].
    fn forget_idle(&self, now: Instant) {
        self.0
            .retain(|lease| now.saturating_duration_since(lease.taken_at) < LEASE_MEMORY);
    }
}

/// In-process buckets: arrival times in microseconds since `origin`.
struct Buckets {
    origin: Instant,
    table: Sharded<u64>,
}

impl Buckets {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            table: Sharded::new(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn take(&self, quota: Quota, key: &str) -> Decision {
        let mut buckets = self.table.shard(key);
        let now = self.now_us();
        let (decision, store) = gcra(quota, buckets.get(key).copied(), now);
        if let Some(tat) = store {
            buckets.insert(key.to_owned(), tat);
        }
        decision
    }

    /// Drops buckets that have filled up again: they are the same as no bucket.
    fn forget_full(&self) {
        let now = self.now_us();
        self.table.retain(|tat| *tat > now);
    }
}

/// Why the shared limiter could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url} for the shared rate limiter: {source}")]
pub struct LimiterConnectError {
    url: String,
    source: redis::RedisError,
}

impl RateLimiter {
    /// Buckets in this process (embedded mode; a single gateway).
    pub fn in_process(config: &EdgeConfig) -> Self {
        describe_metrics();
        let buckets = Buckets::new();
        let limiter = Self {
            inner: Arc::new(Inner {
                quota: config.rate_limit,
                store: Store::InProcess(buckets),
            }),
        };
        limiter.sweep_every(Duration::from_secs(60));
        limiter
    }

    /// Buckets in Redis at `url`, under `namespace:gateway:ratelimit:`, shared by every gateway
    /// replica with the same namespace. Fails only when Redis cannot be reached at start; later
    /// outages let requests through (logged and counted), since refusing every request because
    /// the limiter is down would turn a Redis outage into a site outage.
    pub async fn redis(url: &str, namespace: &str, config: &EdgeConfig) -> Result<Self, LimiterConnectError> {
        describe_metrics();
        let err = |source| LimiterConnectError {
            url: platform::db::redact_url(url),
            source,
        };
        let connection = platform::cache::redis_connection(url, REDIS_TIMEOUT, 1)
            .await
            .map_err(err)?;
        let limiter = Self {
            inner: Arc::new(Inner {
                quota: config.rate_limit,
                store: Store::Redis {
                    connection,
                    prefix: format!("{namespace}:gateway:ratelimit:"),
                    script: redis::Script::new(GCRA_SCRIPT),
                    last_error_log: Mutex::new(None),
                    refused: Refusals::new(),
                    leases: Leases::new(),
                },
            }),
        };
        limiter.sweep_every(Duration::from_secs(10));
        Ok(limiter)
    }

    /// Forgets what no longer matters (full buckets, refusals whose wait is over) now and then,
    /// so the tables do not grow with every client seen. Stops with the limiter.
    fn sweep_every(&self, period: Duration) {
        let weak = Arc::downgrade(&self.inner);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    match (&inner.store, inner.quota) {
                        (Store::InProcess(buckets), _) => buckets.forget_full(),
                        (Store::Redis { refused, leases, .. }, Some(quota)) => {
                            let now = Instant::now();
                            refused.forget_past(quota, now);
                            leases.forget_idle(now);
                        }
                        (Store::Redis { .. }, None) => {}
                    }
                }
            });
        }
    }

    /// The configured quota (`None`: limits are off).
    pub fn quota(&self) -> Option<Quota> {
        self.inner.quota
    }

    pub fn backend_name(&self) -> &'static str {
        match self.inner.store {
            Store::InProcess(_) => "in-process",
            Store::Redis { .. } => "redis",
        }
    }

    /// Takes one token from `client`'s bucket. `None` when limits are off, or when the shared
    /// store failed (the request goes through).
    pub async fn check(&self, client: &str) -> Option<Decision> {
        let quota = self.inner.quota?;
        match &self.inner.store {
            Store::InProcess(buckets) => Some(buckets.take(quota, client)),
            Store::Redis {
                connection,
                prefix,
                script,
                last_error_log,
                refused,
                leases,
            } => {
                let now = Instant::now();
                if let Some(standing) = refused.standing(quota, client, now) {
                    return Some(standing);
                }
                let leasing = lease_cap(quota) > 1;
                let wanted = if leasing {
                    match leases.take(quota, client, now) {
                        Ok(leased) => return Some(leased),
                        Err(wanted) => wanted,
                    }
                } else {
                    1
                };
                let mut connection = connection.clone();
                let mut invocation = script.key(format!("{prefix}{client}"));
                invocation.arg(quota.interval_us()).arg(quota.capacity_us()).arg(wanted);
                let reply =
                    tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<(i64, i64)>(&mut connection)).await;
                match reply {
                    Ok(Ok((granted, ahead))) => {
                        let ahead = u64::try_from(ahead).unwrap_or(0);
                        let granted = u32::try_from(granted).unwrap_or(0).min(wanted);
                        if granted == 0 {
                            refused.record(client, Instant::now() + Duration::from_micros(ahead));
                            return Some(Decision::from_bucket(quota, false, ahead));
                        }
                        if leasing {
                            leases.record(client, granted - 1, wanted, ahead, now);
                        }
                        Some(Decision::from_bucket(quota, true, ahead).with_held(granted - 1))
                    }
                    failure => {
                        metrics::counter!("gateway_rate_limiter_errors_total").increment(1);
                        let error = match failure {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()),
                        };
                        let mut last = last_error_log.lock().unwrap_or_else(|p| p.into_inner());
                        if last.is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL) {
                            *last = Some(Instant::now());
                            tracing::warn!(%error, "the shared rate limiter (Redis) failed: letting requests through unlimited");
                        }
                        None
                    }
                }
            }
        }
    }
}

fn describe_metrics() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(
            "gateway_rate_limited_total",
            "Requests refused with 429 by the edge's per-client rate limit."
        );
        metrics::describe_counter!(
            "gateway_rate_limiter_errors_total",
            "Rate-limit checks that failed in Redis and let the request through unlimited."
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        per_minute: 60,
        burst: 3,
    };
    const SEC: u64 = 1_000_000;

    #[test]
    fn the_interval_is_a_minute_shared_by_the_requests() {
        assert_eq!(Q.interval_us(), SEC);
        assert_eq!(Q.capacity_us(), 3 * SEC);
        let fast = Quota {
            per_minute: 6000,
            burst: 600,
        };
        assert_eq!(fast.interval_us(), 10_000);
    }

    #[test]
    fn a_fresh_bucket_allows_a_burst_then_refuses() {
        let now = 100 * SEC;
        let (d1, tat) = gcra(Q, None, now);
        assert!(d1.allowed);
        assert_eq!(d1.remaining, 2);
        assert_eq!(d1.reset, Duration::from_secs(1));
        let (d2, tat) = gcra(Q, tat, now);
        assert_eq!((d2.allowed, d2.remaining), (true, 1));
        let (d3, tat) = gcra(Q, tat, now);
        assert_eq!((d3.allowed, d3.remaining), (true, 0));
        assert_eq!(d3.reset, Duration::from_secs(3), "three tokens to refill");
        let (d4, stored) = gcra(Q, tat, now);
        assert!(!d4.allowed);
        assert_eq!(stored, None, "a refusal leaves the bucket as it was");
        assert_eq!(d4.remaining, 0);
        assert_eq!(
            d4.retry_after,
            Duration::from_secs(1),
            "one token comes back in a second"
        );
    }

    #[test]
    fn tokens_come_back_at_the_sustained_rate() {
        let now = 100 * SEC;
        let mut tat = None;
        for _ in 0..3 {
            tat = gcra(Q, tat, now).1;
        }
        // Half a token later: still refused, and told to wait the other half.
        let (d, _) = gcra(Q, tat, now + SEC / 2);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_micros(SEC / 2));
        // A full token later: exactly one request fits.
        let (d, tat) = gcra(Q, tat, now + SEC);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!gcra(Q, tat, now + SEC).0.allowed);
    }

    #[test]
    fn an_idle_bucket_fills_up_but_not_beyond_the_burst() {
        let now = 100 * SEC;
        let (_, tat) = gcra(Q, None, now);
        let (d, _) = gcra(Q, tat, now + 3600 * SEC);
        assert_eq!(d.remaining, 2, "an hour idle still only allows a burst of 3");
        // An arrival time in the past is the same as a full bucket.
        assert_eq!(gcra(Q, Some(now - 50 * SEC), now), gcra(Q, None, now));
    }

    #[test]
    fn header_seconds_round_up() {
        assert_eq!(Decision::seconds(Duration::from_millis(1)), 1);
        assert_eq!(Decision::seconds(Duration::from_millis(1000)), 1);
        assert_eq!(Decision::seconds(Duration::from_millis(1001)), 2);
        assert_eq!(Decision::seconds(Duration::ZERO), 0);
    }

    #[test]
    fn a_refusal_stands_until_the_next_token_is_due() {
        let refusals = Refusals::new();
        let now = Instant::now();
        assert_eq!(refusals.standing(Q, "ip:10.0.0.1", now), None);
        // Refused with a full bucket: three tokens' worth ahead, the next one due in a second.
        refusals.record("ip:10.0.0.1", now + Duration::from_secs(3));
        let standing = refusals.standing(Q, "ip:10.0.0.1", now).expect("refused");
        assert!(!standing.allowed);
        assert_eq!(standing.retry_after, Duration::from_secs(1));
        assert_eq!(standing.reset, Duration::from_secs(3));
        let later = refusals
            .standing(Q, "ip:10.0.0.1", now + Duration::from_millis(400))
            .expect("still refused");
        assert_eq!(later.retry_after, Duration::from_millis(600));
        assert_eq!(refusals.standing(Q, "ip:10.0.0.2", now), None, "per client");
        assert_eq!(refusals.standing(Q, "ip:10.0.0.1", now + Duration::from_secs(1)), None);
        assert_eq!(
            refusals.0.shard("ip:10.0.0.1").len(),
            0,
            "a refusal past its wait is dropped"
        );

        refusals.record("ip:10.0.0.3", now + Duration::from_secs(3));
        refusals.forget_past(Q, now + Duration::from_millis(500));
        assert!(
            refusals
                .standing(Q, "ip:10.0.0.3", now + Duration::from_millis(500))
                .is_some()
        );
        refusals.forget_past(Q, now + Duration::from_secs(2));
        assert_eq!(refusals.0.shard("ip:10.0.0.3").len(), 0, "swept once its wait is over");
    }

    #[test]
    fn taking_several_tokens_is_taking_them_one_by_one() {
        let now = 100 * SEC;
        let (taken, tat) = gcra_take(Q, None, now, 2);
        assert_eq!(
            taken,
            Taken {
                granted: 2,
                ahead_us: 2 * SEC
            }
        );
        // Only one more fits: granted what fits, not refused.
        let (taken, tat) = gcra_take(Q, tat, now, 5);
        assert_eq!(
            taken,
            Taken {
                granted: 1,
                ahead_us: 3 * SEC
            }
        );
        let (taken, stored) = gcra_take(Q, tat, now, 5);
        assert_eq!(
            taken,
            Taken {
                granted: 0,
                ahead_us: 3 * SEC
            }
        );
        assert_eq!(stored, None);
        // Three single steps end where one step of three does.
        let mut single = None;
        for _ in 0..3 {
            single = gcra(Q, single, now).1;
        }
        assert_eq!(single, gcra_take(Q, None, now, 3).1);
        assert_eq!(gcra_take(Q, None, now, 0).0.granted, 1, "asking for none asks for one");
    }

    const BUSY: Quota = Quota {
        per_minute: 6000,
        burst: 600,
    };

    #[test]
    fn leases_grow_while_used_up_and_are_capped() {
        assert_eq!(lease_cap(BUSY), 30);
        assert_eq!(lease_cap(Q), 1, "small bursts ask Redis every time");
        assert_eq!(
            lease_cap(Quota {
                per_minute: 60,
                burst: 100_000
            }),
            MAX_LEASE
        );
        let leases = Leases::new();
        let now = Instant::now();
        assert_eq!(
            leases.take(BUSY, "user:a", now),
            Err(1),
            "a new client asks for one token"
        );
        let mut sizes = Vec::new();
        let mut wanted = 1;
        for _ in 0..7 {
            leases.record("user:a", wanted - 1, wanted, 0, now);
            for _ in 1..wanted {
                assert!(leases.take(BUSY, "user:a", now).is_ok());
            }
            wanted = leases.take(BUSY, "user:a", now).expect_err("used up");
            sizes.push(wanted);
        }
        assert_eq!(sizes, [2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_lease_used_up_slowly_is_not_grown() {
        let leases = Leases::new();
        let now = Instant::now();
        // Two requests a second: each lease of one is used up half a second after it was taken.
        leases.record("user:steady", 0, 1, 0, now);
        assert_eq!(
            leases.take(BUSY, "user:steady", now + Duration::from_millis(500)),
            Err(1)
        );
        leases.record("user:steady", 3, 4, 0, now);
        for _ in 0..3 {
            assert!(
                leases
                    .take(BUSY, "user:steady", now + Duration::from_millis(100))
                    .is_ok()
            );
        }
        assert_eq!(
            leases.take(BUSY, "user:steady", now + Duration::from_millis(300)),
            Err(4),
            "four used up in 300 ms: four again"
        );
    }

    #[test]
    fn a_leased_token_answers_as_the_shared_bucket_would() {
        let leases = Leases::new();
        let now = Instant::now();
        // Ten tokens taken, the bucket then 100 ms ahead (10 intervals of 10 ms): nine left here.
        leases.record("ip:10.0.0.1", 9, 10, 100_000, now);
        let d = leases.take(BUSY, "ip:10.0.0.1", now).expect("a leased token");
        assert!(d.allowed);
        assert_eq!(d.reset, Duration::from_millis(100));
        // 600 tokens less the 10 taken from Redis, plus the 8 still held here.
        assert_eq!(d.remaining, 590 + 8);
        let d = leases
            .take(BUSY, "ip:10.0.0.1", now + Duration::from_millis(40))
            .expect("a leased token");
        assert_eq!(d.reset, Duration::from_millis(60), "the lead, less the time since");
        assert_eq!(d.remaining, 600, "594 + 7, but never more than the burst");
        assert_eq!(leases.take(BUSY, "ip:10.0.0.2", now), Err(1), "per client");
    }

    #[test]
    fn a_lapsed_lease_hands_nothing_out_and_shrinks() {
        let leases = Leases::new();
        let now = Instant::now();
        leases.record("ip:10.0.0.1", 7, 16, 0, now);
        let later = now + LEASE_TTL;
        assert_eq!(
            leases.take(BUSY, "ip:10.0.0.1", later),
            Err(8),
            "tokens left over: half as many"
        );
        leases.record("ip:10.0.0.1", 7, 8, 0, later);
        assert!(
            leases.take(BUSY, "ip:10.0.0.1", later).is_ok(),
            "the new lease replaces the old"
        );
        // Used up, but over more than the TTL: the same size again.
        leases.record("ip:10.0.0.3", 0, 16, 0, now);
        assert_eq!(leases.take(BUSY, "ip:10.0.0.3", later), Err(16));
        leases.forget_idle(later + LEASE_MEMORY);
        assert_eq!(
            leases.0.shard("ip:10.0.0.1").len() + leases.0.shard("ip:10.0.0.3").len(),
            0
        );
    }

    #[test]
    fn two_leases_at_once_keep_both_tokens() {
        let leases = Leases::new();
        let now = Instant::now();
        leases.record("user:b", 3, 4, 0, now);
        leases.record("user:b", 3, 4, 0, now + Duration::from_millis(1));
        let handed = (0..10)
            .filter(|_| leases.take(BUSY, "user:b", now + Duration::from_millis(2)).is_ok())
            .count();
        assert_eq!(handed, 6);
    }

    #[test]
    fn in_process_buckets_are_per_client() {
        let buckets = Buckets::new();
        let q = Quota {
            per_minute: 1,
            burst: 2,
        };
        assert!(buckets.take(q, "ip:10.0.0.1").allowed);
        assert!(buckets.take(q, "ip:10.0.0.1").allowed);
        let refused = buckets.take(q, "ip:10.0.0.1");
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(50));
        assert!(
            buckets.take(q, "ip:10.0.0.2").allowed,
            "another client has its own bucket"
        );
        buckets.forget_full();
        assert!(
            !buckets.take(q, "ip:10.0.0.1").allowed,
            "a spent bucket is not forgotten"
        );
    }
}
