//! A cache that never fails a request: Redis in production (shared by every replica, so a write on
//! one invalidates for all), an in-process moka cache in embedded mode. Any cache error or timeout
//! is counted and logged and reads as a miss, so callers fall back to the database.
//!
//! Values are JSON. Pages derived from many rows (lists, searches) are keyed by a *generation*
//! that writers bump, which invalidates every such page at once without scanning keys.
//!
//! In production a namespace also keeps what it read from Redis in the process's memory, which
//! Redis keeps fresh ([`local_copy`]): a hot product or page costs no round trip.

mod local_copy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::health::HealthCheck;
use crate::sync::lock;

/// Budget for one cache round trip; beyond it the database is faster anyway.
const REDIS_TIMEOUT: Duration = Duration::from_millis(150);
/// How often a Redis outage is logged (every error is still counted).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Cache {
    backend: Arc<Backend>,
    prefix: Arc<str>,
    reads: ReadCounters,
    /// Production: the process's copy of what this namespace read from Redis (see [`local_copy`]).
    local: Option<Arc<local_copy::LocalCopy>>,
    /// The `cache_outage` flag makes this cache act unreachable.
    faults: crate::faults::Faults,
}

/// A cache's metric label: its prefix's last part (`emporium:catalog:` counts as `catalog`).
fn namespace_label(prefix: &str) -> String {
    let ns = prefix.trim_end_matches(':');
    ns.rsplit(':').next().unwrap_or(ns).to_owned()
}

/// A namespace's `cache_requests_total` series, registered with its prefix: a read then costs an
/// atomic add instead of a label allocation and a registry lookup.
#[derive(Clone)]
struct ReadCounters {
    hit: metrics::Counter,
    miss: metrics::Counter,
}

impl ReadCounters {
    fn for_prefix(prefix: &str) -> Self {
        let ns = namespace_label(prefix);
        Self {
            hit: metrics::counter!("cache_requests_total", "namespace" => ns.clone(), "outcome" => "hit"),
            miss: metrics::counter!("cache_requests_total", "namespace" => ns, "outcome" => "miss"),
        }
    }
}

enum Backend {
    InProcess {
        entries: moka::future::Cache<String, Arc<Entry>>,
        generations: Mutex<HashMap<String, u64>>,
    },
    Redis {
        connection: ConnectionManager,
        last_error_log: Mutex<Option<Instant>>,
        /// `None`: every read goes to Redis.
        local: Option<LocalCopySettings>,
    },
}

/// The local copy a Redis cache gives the first namespace made from it (in production a process
/// runs one context, and so has one namespace that reads).
struct LocalCopySettings {
    client: redis::Client,
    max_bytes: u64,
    copy: OnceLock<Arc<local_copy::LocalCopy>>,
}

struct Entry {
    /// Shared, so a hit hands out the value without copying it.
    bytes: Bytes,
    ttl: Duration,
}

impl Entry {
    /// What the entry costs the cache's byte budget: its key and value plus bookkeeping (moka's
    /// node, the `Arc`, the key's `String`), so many tiny entries are bounded too.
    fn weight(key: &str, entry: &Entry) -> u32 {
        const OVERHEAD: usize = 160;
        u32::try_from(key.len() + entry.bytes.len() + OVERHEAD).unwrap_or(u32::MAX)
    }
}

/// Each entry expires after its own TTL, so expired pages are evicted by moka's housekeeping
/// whether or not anyone reads them again (a global TTL would keep them for an hour).
struct EntryTtl;

impl moka::Expiry<String, Arc<Entry>> for EntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url}: {source}")]
pub struct CacheConnectError {
    url: String,
    source: redis::RedisError,
}

/// A Redis connection as every Redis user here opens it (cache, fault flags, the gateway's rate
/// limiter): TLS for `rediss://`, at most 2 s to connect, `response_timeout` for each answer and
/// `retries` retries at most 2 s apart; the manager reconnects by itself after an outage. Fails
/// only when the URL is invalid or Redis cannot be reached now.
pub async fn redis_connection(
    url: &str,
    response_timeout: Duration,
    retries: usize,
) -> Result<ConnectionManager, redis::RedisError> {
    crate::install_tls_provider();
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(retries)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config).await
}

impl Cache {
    /// An in-process cache holding at most `max_bytes` of keys and values (least recently and
    /// least frequently used entries are evicted first). A byte budget, unlike an entry count,
    /// bounds memory whatever the size of the pages cached.
    pub fn in_process(max_bytes: u64) -> Self {
        describe_metrics();
        Self::with_backend(Backend::InProcess {
            entries: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, entry: &Arc<Entry>| Entry::weight(key, entry))
                .expire_after(EntryTtl)
                .build(),
            generations: Mutex::new(HashMap::new()),
        })
    }

    /// Connects to Redis at `url`. The connection manager reconnects by itself after an outage;
    /// until then every operation reads as a miss.
    /// Keys are prefixed with `root:` so environments (or test runs) can share one Redis.
    /// `local_max_bytes`: the budget of the local copy of the first [namespace](Self::namespace)
    /// made from this cache (0: none, every read goes to Redis).
    pub async fn redis(url: &str, root: &str, local_max_bytes: u64) -> Result<Self, CacheConnectError> {
        describe_metrics();
        let err = |source| CacheConnectError {
            url: crate::db::redact_url(url),
            source,
        };
        let connection = redis_connection(url, REDIS_TIMEOUT, 2).await.map_err(err)?;
        let local = match local_max_bytes {
            0 => None,
            max_bytes => Some(LocalCopySettings {
                client: resp3_client(url).map_err(err)?,
                max_bytes,
                copy: OnceLock::new(),
            }),
        };
        let cache = Self::with_backend(Backend::Redis {
            connection,
            last_error_log: Mutex::new(None),
            local,
        });
        Ok(cache.with_prefix(format!("{root}:")))
    }

    fn with_backend(backend: Backend) -> Self {
        let prefix = "emporium:";
        Self {
            backend: Arc::new(backend),
            prefix: Arc::from(prefix),
            reads: ReadCounters::for_prefix(prefix),
            local: None,
            faults: crate::faults::Faults::disabled(),
        }
    }

    fn with_prefix(mut self, prefix: String) -> Self {
        self.reads = ReadCounters::for_prefix(&prefix);
        self.prefix = Arc::from(prefix);
        self
    }

    /// The same cache, obeying the `cache_outage` fault flag of `faults`: reads miss and writes
    /// are dropped, while deletes and generation bumps still apply, so nothing stale is served
    /// once the flag is cleared.
    pub fn with_faults(mut self, faults: crate::faults::Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Under the `cache_outage` fault flag: counted as an error, as a real outage is.
    fn injected_outage(&self) -> bool {
        if !self.faults.cache_outage() {
            return false;
        }
        self.record::<()>(Err("fault injection: cache_outage".into()));
        true
    }

    /// The same cache with keys under `ns:` (one namespace per context). On Redis with a local
    /// copy, the first namespace made gets it, and so do namespaces made from that one.
    pub fn namespace(&self, ns: &str) -> Self {
        let mut cache = self.clone().with_prefix(format!("{}{ns}:", self.prefix));
        if let Backend::Redis {
            local: Some(settings), ..
        } = &*self.backend
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let copy = settings.copy.get_or_init(|| {
                let prefix = cache.prefix.to_string();
                local_copy::LocalCopy::start(
                    settings.client.clone(),
                    prefix,
                    settings.max_bytes,
                    &namespace_label(&cache.prefix),
                )
            });
            cache.local = copy.covers(&cache.prefix).then(|| copy.clone());
        }
        cache
    }

    /// Reads this cache served from its local copy of Redis so far; `None` without one.
    pub fn local_copy_hits(&self) -> Option<u64> {
        self.local.as_ref().map(|copy| copy.hits())
    }

    /// Whether this cache's local copy is serving reads (Redis tracks its keys for it).
    pub fn local_copy_live(&self) -> bool {
        self.local.as_ref().is_some_and(|copy| copy.is_live())
    }

    /// After a write of `key` by this process: the local copy drops the old value at once, not
    /// when Redis's invalidation arrives, so the process reads its own writes.
    fn forget_locally(&self, key: &str) {
        if let Some(copy) = &self.local {
            copy.invalidate(key.as_bytes());
        }
    }

    /// `GET key` on Redis, through the local copy when this cache has one.
    async fn redis_get(&self, connection: &ConnectionManager, key: &str) -> Option<Bytes> {
        let ticket = match self.local.as_deref().map(|copy| copy.lookup(key)) {
            Some(local_copy::Lookup::Hit(value)) => return value,
            Some(local_copy::Lookup::Miss(ticket)) => Some(ticket),
            Some(local_copy::Lookup::Dark) | None => None,
        };
        let mut conn = connection.clone();
        let result = redis_call(conn.get::<_, Option<Vec<u8>>>(key)).await;
        // An error keeps nothing; an answer, even "no such key", is kept.
        let value = self.record(result)?.map(Bytes::from);
        if let (Some(copy), Some(ticket)) = (&self.local, ticket) {
            copy.keep(key, value.clone(), ticket);
        }
        value
    }

    fn key(&self, key: &str) -> String {
        self.prefixed(&[key])
    }

    /// The prefix followed by `parts`. Built by hand: `format!` costs more than the copy itself,
    /// once per cached read.
    fn prefixed(&self, parts: &[&str]) -> String {
        let mut full = String::with_capacity(self.prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>());
        full.push_str(&self.prefix);
        for part in parts {
            full.push_str(part);
        }
        full
    }

    pub fn backend_name(&self) -> &'static str {
        match *self.backend {
            Backend::InProcess { .. } => "in-process",
            Backend::Redis { .. } => "redis",
        }
    }

    /// The cached value under `key`, or `None` on a miss, an undecodable value or a cache error.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.get_as(key, |b| serde_json::from_slice(&b).ok()).await
    }

    /// The value under `key` as `read` makes it out of the stored bytes (`None`: a miss), for
    /// values kept in a form of their own (e.g. a rendered answer, sent as it is).
    pub async fn get_as<T>(&self, key: &str, read: impl FnOnce(Bytes) -> Option<T>) -> Option<T> {
        let bytes = self.get_bytes(&self.key(key)).await;
        let value = bytes.and_then(read);
        let counter = if value.is_some() {
            &self.reads.hit
        } else {
            &self.reads.miss
        };
        counter.increment(1);
        value
    }

    pub async fn set_json<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let Ok(bytes) = serde_json::to_vec(value) else { return };
        self.set_bytes(key, Bytes::from(bytes), ttl).await;
    }

    /// Keeps `bytes` under `key` for `ttl`.
    pub async fn set_bytes(&self, key: &str, bytes: Bytes, ttl: Duration) {
        if self.injected_outage() {
            return;
        }
        let key = self.key(key);
        match &*self.backend {
            Backend::InProcess { entries, .. } => {
                let entry = Entry { bytes, ttl };
                entries.insert(key, Arc::new(entry)).await;
            }
            Backend::Redis { connection, .. } => {
                let mut conn = connection.clone();
                let secs = ttl.as_secs().max(1);
                let result = redis_call(conn.set_ex::<_, _, ()>(&key, bytes.as_ref(), secs)).await;
                self.forget_locally(&key);
                self.record(result);
            }
        }
    }

    /// Keeps `bytes` under `key` for `ttl` unless generation `name` has moved on from
    /// `generation`, read before the value was loaded; says whether it was kept. A value loaded
    /// before a write must not be stored after that write invalidated it, or it is served until
    /// its TTL. Writers [bump](Self::bump_generation) first and delete their keys after, and here
    /// the check and the store act as one step: either the store comes before the writer's
    /// delete (which removes it) or it sees the bump (and stores nothing).
    pub async fn set_bytes_at_generation(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Duration,
        name: &str,
        generation: u64,
    ) -> bool {
        if self.injected_outage() {
            return false;
        }
        match &*self.backend {
            Backend::InProcess { .. } => {
                if self.generation(name).await != generation {
                    return false;
                }
                self.set_bytes(key, bytes, ttl).await;
                // A bump between the check and the store may have had its delete run before the
                // store: looking again after it closes that gap.
                if self.generation(name).await != generation {
                    self.delete(key).await;
                    return false;
                }
                true
            }
            Backend::Redis { connection, .. } => {
                static SET_AT_GENERATION: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
                    redis::Script::new(
                        "if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
                         redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
                         return 1",
                    )
                });
                let mut conn = connection.clone();
                let key = self.key(key);
                let mut call = SET_AT_GENERATION.key(&key);
                call.key(self.generation_key(name))
                    .arg(generation)
                    .arg(bytes.as_ref())
                    .arg(ttl.as_secs().max(1));
                let result = redis_call(call.invoke_async::<i64>(&mut conn)).await;
                self.forget_locally(&key);
                self.record(result) == Some(1)
            }
        }
    }

    pub async fn delete(&self, key: &str) {
        let key = self.key(key);
        match &*self.backend {
            Backend::InProcess { entries, .. } => entries.invalidate(&key).await,
            Backend::Redis { connection, .. } => {
                let mut conn = connection.clone();
                let result = redis_call(conn.del::<_, ()>(&key)).await;
                self.forget_locally(&key);
                self.record(result);
            }
        }
    }

    fn generation_key(&self, name: &str) -> String {
        self.prefixed(&["generation:", name])
    }

    /// The current generation of `name`; embed it in keys of pages that any write may change.
    pub async fn generation(&self, name: &str) -> u64 {
        let key = self.generation_key(name);
        match &*self.backend {
            Backend::InProcess { generations, .. } => lock(generations).get(&key).copied().unwrap_or(0),
            Backend::Redis { connection, .. } => {
                let value = self.redis_get(connection, &key).await;
                value
                    .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
                    .unwrap_or(0)
            }
        }
    }

    /// Moves `name` to a new generation: every page keyed by the old one is no longer read.
    pub async fn bump_generation(&self, name: &str) {
        let key = self.generation_key(name);
        match &*self.backend {
            Backend::InProcess { generations, .. } => *lock(generations).entry(key).or_insert(0) += 1,
            Backend::Redis { connection, .. } => {
                let mut conn = connection.clone();
                let result = redis_call(conn.incr::<_, _, u64>(&key, 1)).await;
                self.forget_locally(&key);
                self.record(result);
            }
        }
    }

    async fn get_bytes(&self, key: &str) -> Option<Bytes> {
        if self.injected_outage() {
            return None;
        }
        match &*self.backend {
            Backend::InProcess { entries, .. } => {
                let entry = entries.get(key).await?;
                Some(entry.bytes.clone())
            }
            Backend::Redis { connection, .. } => self.redis_get(connection, key).await,
        }
    }

    /// Counts and (at most every few seconds) logs a cache error, turning it into `None`.
    fn record<T>(&self, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(error) => {
                metrics::counter!("cache_errors_total", "namespace" => namespace_label(&self.prefix)).increment(1);
                if let Backend::Redis { last_error_log, .. } = &*self.backend {
                    let mut last = lock(last_error_log);
                    if last.is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL) {
                        *last = Some(Instant::now());
                        tracing::warn!(%error, "cache unavailable; serving from the database");
                    }
                }
                None
            }
        }
    }

    /// A readiness check that reports Redis without failing readiness: the app works without it.
    pub fn health_check(&self) -> Option<Arc<dyn HealthCheck>> {
        match &*self.backend {
            Backend::InProcess { .. } => None,
            Backend::Redis { connection, .. } => Some(Arc::new(RedisHealth(connection.clone()))),
        }
    }
}

/// A client for `url` speaking RESP3, which Redis needs to push invalidations on the connection
/// that asked for them.
fn resp3_client(url: &str) -> Result<redis::Client, redis::RedisError> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
}

async fn redis_call<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", REDIS_TIMEOUT.as_millis())),
    }
}

struct RedisHealth(ConnectionManager);

#[async_trait::async_trait]
impl HealthCheck for RedisHealth {
    fn name(&self) -> String {
        "cache.redis".into()
    }
    fn required(&self) -> bool {
        false
    }
    async fn check(&self) -> Result<(), String> {
        let mut conn = self.0.clone();
        redis_call(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }
}

fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            "cache_requests_total",
            "Cache reads by namespace and outcome (hit or miss; errors read as misses)."
        );
        metrics::describe_counter!(
            "cache_errors_total",
            "Cache operations that failed or timed out (served from the database instead)."
        );
        metrics::describe_counter!(
            "cache_local_hits_total",
            "Cache hits served from the process's local copy of Redis, without a round trip (part of the hits)."
        );
        metrics::describe_gauge!(
            "cache_local_copy_tracking",
            "1 while Redis tracks the keys of the process's local copy for it (the copy serves reads), 0 while it is off."
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_values_expire_and_namespaces_do_not_collide() {
        let cache = Cache::in_process(1 << 20);
        let a = cache.namespace("a");
        let b = cache.namespace("b");
        a.set_json("k", &1, Duration::from_millis(50)).await;
        assert_eq!(a.get_json::<i32>("k").await, Some(1));
        assert_eq!(b.get_json::<i32>("k").await, None);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(a.get_json::<i32>("k").await, None);
    }

    #[tokio::test]
    async fn in_process_cache_is_bounded_by_bytes_and_drops_expired_entries_unread() {
        let budget = 256 * 1024;
        let cache = Cache::in_process(budget);
        let Backend::InProcess { entries, .. } = &*cache.backend else {
            unreachable!()
        };
        let page = "x".repeat(4 * 1024);
        for i in 0..1_000 {
            cache
                .set_json(&format!("page:{i}"), &page, Duration::from_secs(60))
                .await;
        }
        entries.run_pending_tasks().await;
        assert!(
            entries.weighted_size() <= budget,
            "{} bytes cached, budget {budget}",
            entries.weighted_size()
        );
        assert!(entries.entry_count() < 100, "{} entries kept", entries.entry_count());

        for i in 0..10 {
            cache
                .set_json(&format!("short:{i}"), &i, Duration::from_millis(30))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        entries.run_pending_tasks().await;
        for i in 0..10 {
            assert!(
                !entries.contains_key(&cache.key(&format!("short:{i}"))),
                "expired entry {i} still held"
            );
        }
    }

    #[tokio::test]
    async fn reads_are_counted_per_namespace_and_outcome() {
        crate::metrics::install();
        let cache = Cache::in_process(1 << 20).namespace("counted");
        cache.set_json("k", &1, Duration::from_secs(60)).await;
        assert_eq!(cache.get_json::<i32>("k").await, Some(1));
        assert_eq!(cache.get_json::<i32>("k").await, Some(1));
        assert_eq!(cache.get_json::<i32>("absent").await, None);
        let text = crate::metrics::render_text();
        let count = |outcome: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("cache_requests_total{")
                        && l.contains(r#"namespace="counted""#)
                        && l.contains(&format!(r#"outcome="{outcome}""#))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(count("hit").as_deref(), Some("2"), "{text}");
        assert_eq!(count("miss").as_deref(), Some("1"), "{text}");
    }

    #[tokio::test]
    async fn a_value_loaded_before_a_bump_is_not_stored_after_it() {
        let cache = Cache::in_process(1 << 20).namespace("g");
        let ttl = Duration::from_secs(60);
        let loaded_at = cache.generation("lists").await;
        assert!(
            cache
                .set_bytes_at_generation("k", Bytes::from_static(b"1"), ttl, "lists", loaded_at)
                .await
        );
        assert_eq!(cache.get_json::<i32>("k").await, Some(1));
        cache.bump_generation("lists").await;
        cache.delete("k").await;
        assert!(
            !cache
                .set_bytes_at_generation("k", Bytes::from_static(b"2"), ttl, "lists", loaded_at)
                .await
        );
        assert_eq!(cache.get_json::<i32>("k").await, None, "a value from before the bump");
    }

    #[tokio::test]
    async fn bumping_a_generation_changes_it() {
        let cache = Cache::in_process(1 << 20).namespace("c");
        let before = cache.generation("lists").await;
        cache.bump_generation("lists").await;
        assert_eq!(cache.generation("lists").await, before + 1);
    }
}
