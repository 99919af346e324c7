//! The gateway's micro-cache: answers a context marks as shared-cacheable (`Cache-Control:
//! public, max-age=…`, as catalog's anonymous reads are) are kept for a moment, at most
//! `EMPORIUM_GATEWAY_CACHE_TTL_MS` (one second by default) whatever their `max-age` says, and the
//! same read within that time is answered here without a hop to the context.
//!
//! What keeps it correct (RFC 9111's rules for a shared cache, applied conservatively):
//! * Only `GET` requests without `Authorization` or `Cookie`, without conditional or range
//!   headers, and without a `Cache-Control`/`Pragma` asking for a fresh answer are looked up.
//! * Only `200` answers that say `public` with a positive `s-maxage`/`max-age`, and none of
//!   `private`, `no-store`, `no-cache`, with no `Set-Cookie` and no `Vary`, are stored; the
//!   answer's own per-request headers (request and trace ids, rate limits, `Date`) are not.
//! * An unsafe request (`POST`, `PUT`, `PATCH`, `DELETE`) that a context accepts drops every
//!   answer of that context kept here: a write through this proxy is seen by the next read
//!   through it. Writes it does not see (another replica's, the web console's, which call the
//!   contexts directly, or a context's own, as stock moving after an order) show within the TTL.
//! * Memory is bounded by `EMPORIUM_GATEWAY_CACHE_MB`: an answer that does not fit once expired
//!   ones are dropped is not stored.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::routes::Upstream;

/// Answers larger than this are never kept (the proxy streams them anyway).
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// Headers of an answer that belong to the request that fetched it, not to the answer.
const PER_REQUEST: [HeaderName; 10] = [
    header::DATE,
    header::AGE,
    header::RETRY_AFTER,
    platform::http::X_REQUEST_ID,
    platform::http::X_TRACE_ID,
    platform::http::TRACERESPONSE,
    HeaderName::from_static("ratelimit-limit"),
    HeaderName::from_static("ratelimit-remaining"),
    HeaderName::from_static("ratelimit-reset"),
    HeaderName::from_static("ratelimit-policy"),
];

static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
static HIT: HeaderValue = HeaderValue::from_static("emporium-gateway; hit");

/// Where a read's answer would be kept, when the request may be answered from the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    upstream: Upstream,
    path_and_query: String,
}

impl Key {
    /// The key of `method path_and_query` to `upstream` with `headers`, or `None` when the
    /// request must go to the context.
    pub fn of(upstream: Upstream, method: &Method, path_and_query: &str, headers: &HeaderMap) -> Option<Self> {
        if method != Method::GET {
            return None;
        }
        const PERSONAL_OR_CONDITIONAL: [HeaderName; 7] = [
            header::AUTHORIZATION,
            header::COOKIE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::RANGE,
        ];
        if PERSONAL_OR_CONDITIONAL.iter().any(|h| headers.contains_key(h)) {
            return None;
        }
        let wants_fresh = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .chain(headers.get_all(header::PRAGMA))
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|d| d.trim().to_ascii_lowercase())
            .any(|d| d == "no-cache" || d == "no-store" || d == "max-age=0");
        if wants_fresh {
            return None;
        }
        Some(Self {
            upstream,
            path_and_query: path_and_query.to_owned(),
        })
    }

    fn size(&self) -> usize {
        self.path_and_query.len() + 64
    }
}

/// How long an answer with `status` and `headers` may be kept here, capped at `cap`; `None`
/// when it must not be stored.
pub fn keep_for(status: StatusCode, headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    if status != StatusCode::OK || headers.contains_key(header::SET_COOKIE) || headers.contains_key(header::VARY) {
        return None;
    }
    let (mut public, mut max_age, mut shared_max_age) = (false, None, None);
    for directive in headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .flat_map(|v| v.split(','))
    {
        let directive = directive.trim().to_ascii_lowercase();
        let seconds = |name: &str| -> Option<u64> { directive.strip_prefix(name)?.trim().parse().ok() };
        match directive.as_str() {
            "public" => public = true,
            "private" | "no-store" | "no-cache" => return None,
            _ => {
                if let Some(s) = seconds("s-maxage=") {
                    shared_max_age = Some(s);
                } else if let Some(s) = seconds("max-age=") {
                    max_age = Some(s);
                }
            }
        }
    }
    let lifetime = shared_max_age.or(max_age).filter(|_| public)?;
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let fresh_for = Duration::from_secs(lifetime.checked_sub(age).filter(|s| *s > 0)?);
    Some(fresh_for.min(cap))
}

/// A lookup that found nothing, as of the cache's state then.
#[derive(Debug, Clone, Copy)]
pub struct Miss {
    generation: u64,
}

struct Entry {
    headers: HeaderMap,
    body: Bytes,
    stored_at: Instant,
    expires_at: Instant,
    size: usize,
}

/// The kept answers of one gateway process.
pub struct EdgeCache {
    ttl: Duration,
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    bytes: usize,
    /// Moves on with every write seen: an answer fetched before a write may predate it, and is
    /// not stored once the write has dropped what was kept.
    generation: u64,
    /// When expired answers were last dropped to make room.
    swept_at: Option<Instant>,
}

/// How often at most a full cache looks for expired answers to drop: when it is full of fresh
/// ones (many distinct reads within the TTL), each miss would otherwise scan every entry.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

impl EdgeCache {
    /// A cache of at most `budget` bytes keeping answers for at most `ttl`; `None` when either
    /// is zero (the cache is off).
    pub fn new(budget: usize, ttl: Duration) -> Option<Self> {
        (budget > 0 && !ttl.is_zero()).then(|| Self {
            ttl,
            budget,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept answer for `key` if still fresh, with its `Age` and a `Cache-Status` saying so;
    /// else the [`Miss`] to hand to [`Self::put`] with what the context answers. Counts the
    /// lookup.
    pub fn get(&self, key: &Key, now: Instant) -> Result<Response, Miss> {
        let found = {
            let state = self.state();
            state
                .entries
                .get(key)
                .filter(|e| e.expires_at > now)
                .map(|e| (e.headers.clone(), e.body.clone(), e.stored_at))
                .ok_or(Miss {
                    generation: state.generation,
                })
        };
        counted(found.is_ok());
        let (mut headers, body, stored_at) = found?;
        let age = now.saturating_duration_since(stored_at).as_secs();
        headers.insert(header::AGE, HeaderValue::from(age));
        headers.insert(CACHE_STATUS.clone(), HIT.clone());
        let mut response = Response::new(Body::from(body));
        *response.headers_mut() = headers;
        Ok(response)
    }

    /// Keeps the answer `headers` + `body` fetched for `key` after `miss` at `now`, if the context
    /// allows it, it fits, and no write was seen since the miss.
    pub fn put(&self, key: Key, miss: Miss, status: StatusCode, headers: &HeaderMap, body: &Bytes, now: Instant) {
        if body.len() > MAX_ENTRY_BYTES {
            return;
        }
        let Some(keep) = keep_for(status, headers, self.ttl) else {
            return;
        };
        let mut kept = headers.clone();
        for name in &PER_REQUEST {
            kept.remove(name);
        }
        let size = key.size() + body.len() + kept.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum::<usize>();
        let mut state = self.state();
        if state.generation != miss.generation {
            return;
        }
        if let Some(old) = state.entries.remove(&key) {
            state.bytes -= old.size;
        }
        if state.bytes + size > self.budget {
            if state
                .swept_at
                .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
            {
                return;
            }
            state.swept_at = Some(now);
            state.entries.retain(|_, e| e.expires_at > now);
            state.bytes = state.entries.values().map(|e| e.size).sum();
            if state.bytes + size > self.budget {
                return;
            }
        }
        state.bytes += size;
        state.entries.insert(
            key,
            Entry {
                headers: kept,
                body: body.clone(),
                stored_at: now,
                expires_at: now + keep,
                size,
            },
        );
    }

    /// Drops every answer of `upstream`: it has just accepted a write.
    pub fn forget(&self, upstream: Upstream) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.retain(|k, _| k.upstream != upstream);
        state.bytes = state.entries.values().map(|e| e.size).sum();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().entries.len()
    }
}

/// `gateway_cache_lookups_total{outcome="hit"|"miss"}`, the handles kept after first use.
fn counted(hit: bool) {
    static HITS: OnceLock<metrics::Counter> = OnceLock::new();
    static MISSES: OnceLock<metrics::Counter> = OnceLock::new();
    let (cell, outcome) = if hit { (&HITS, "hit") } else { (&MISSES, "miss") };
    if let Some(counter) = platform::metrics::kept(
        cell,
        || metrics::counter!("gateway_cache_lookups_total", "outcome" => outcome),
    ) {
        counter.increment(1);
    }
}

pub fn describe_metrics() {
    metrics::describe_counter!(
        "gateway_cache_lookups_total",
        "Cacheable reads answered from the gateway's micro-cache (hit) or fetched from the context (miss)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    const PAGE: &str = "/api/v1/catalog/products?limit=20";
    const CAP: Duration = Duration::from_secs(1);

    #[test]
    fn only_anonymous_unconditional_gets_are_looked_up() {
        let get = |h: &[(&str, &str)]| Key::of(Upstream::Catalog, &Method::GET, PAGE, &headers(h));
        assert!(get(&[("accept", "application/json")]).is_some());
        assert!(Key::of(Upstream::Catalog, &Method::HEAD, PAGE, &HeaderMap::new()).is_none());
        assert!(Key::of(Upstream::Catalog, &Method::POST, PAGE, &HeaderMap::new()).is_none());
        for personal in [
            ("authorization", "Bearer x"),
            ("cookie", "session=1"),
            ("if-none-match", "\"v1\""),
            ("if-modified-since", "Mon, 07 Dec 2026 08:00:00 GMT"),
            ("range", "bytes=0-1"),
            ("cache-control", "no-cache"),
            ("cache-control", "max-age=0"),
            ("pragma", "no-cache"),
        ] {
            assert!(get(&[personal]).is_none(), "{personal:?}");
        }
        assert_ne!(
            get(&[]),
            Key::of(
                Upstream::Catalog,
                &Method::GET,
                "/api/v1/catalog/products?limit=21",
                &HeaderMap::new()
            ),
            "the query is part of the key"
        );
    }

    #[test]
    fn only_public_answers_without_cookies_or_vary_are_kept_and_never_past_the_cap() {
        let keep = |h: &[(&str, &str)]| keep_for(StatusCode::OK, &headers(h), CAP);
        assert_eq!(keep(&[("cache-control", "public, max-age=30")]), Some(CAP));
        assert_eq!(
            keep_for(
                StatusCode::OK,
                &headers(&[("cache-control", "public, max-age=30")]),
                Duration::from_millis(200)
            ),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            keep(&[("cache-control", "public, s-maxage=0, max-age=30")]),
            None,
            "s-maxage speaks for shared caches"
        );
        assert_eq!(
            keep(&[("cache-control", "public, max-age=30"), ("age", "30")]),
            None,
            "already stale"
        );
        for refused in [
            &[("cache-control", "private, no-cache")][..],
            &[("cache-control", "max-age=30")],
            &[("cache-control", "public")],
            &[("cache-control", "public, no-store, max-age=30")],
            &[("cache-control", "public, max-age=30"), ("set-cookie", "a=b")],
            &[("cache-control", "public, max-age=30"), ("vary", "accept-language")],
            &[],
        ] {
            assert_eq!(keep(refused), None, "{refused:?}");
        }
        assert_eq!(
            keep_for(
                StatusCode::NOT_FOUND,
                &headers(&[("cache-control", "public, max-age=30")]),
                CAP
            ),
            None
        );
    }

    fn missed(cache: &EdgeCache, key: &Key) -> Miss {
        cache
            .get(key, Instant::now() + Duration::from_secs(3600))
            .expect_err("a miss")
    }

    fn key(path: &str) -> Key {
        Key::of(Upstream::Catalog, &Method::GET, path, &HeaderMap::new()).expect("cacheable")
    }

    #[tokio::test]
    async fn a_kept_answer_is_served_until_it_expires_without_its_per_request_headers() {
        let cache = EdgeCache::new(1 << 20, CAP).expect("on");
        let now = Instant::now();
        let answer = headers(&[
            ("cache-control", "public, max-age=30"),
            ("content-type", "application/json"),
            ("etag", "\"v1-abc\""),
            ("x-request-id", "first-request"),
            ("traceresponse", "00-aa-bb-01"),
            ("date", "Mon, 07 Dec 2026 08:00:00 GMT"),
        ]);
        let miss = cache.get(&key(PAGE), now).expect_err("nothing kept yet");
        cache.put(
            key(PAGE),
            miss,
            StatusCode::OK,
            &answer,
            &Bytes::from_static(b"{}"),
            now,
        );
        let hit = cache.get(&key(PAGE), now + Duration::from_millis(999)).expect("fresh");
        assert_eq!(hit.status(), StatusCode::OK);
        assert_eq!(hit.headers()["etag"], "\"v1-abc\"");
        assert_eq!(hit.headers()["age"], "0");
        assert_eq!(hit.headers()["cache-status"], "emporium-gateway; hit");
        for gone in ["x-request-id", "traceresponse", "date"] {
            assert!(!hit.headers().contains_key(gone), "{gone}");
        }
        let body = axum::body::to_bytes(hit.into_body(), 1024).await.expect("body");
        assert_eq!(&body[..], b"{}");
        assert!(cache.get(&key(PAGE), now + CAP).is_err(), "expired at the cap");
    }

    #[test]
    fn a_write_drops_its_contexts_answers_only() {
        let cache = EdgeCache::new(1 << 20, CAP).expect("on");
        let now = Instant::now();
        let public = headers(&[("cache-control", "public, max-age=30")]);
        cache.put(
            key(PAGE),
            missed(&cache, &key(PAGE)),
            StatusCode::OK,
            &public,
            &Bytes::from_static(b"[]"),
            now,
        );
        let jwks = Key::of(
            Upstream::Identity,
            &Method::GET,
            "/.well-known/jwks.json",
            &HeaderMap::new(),
        )
        .expect("key");
        cache.put(
            jwks.clone(),
            missed(&cache, &jwks),
            StatusCode::OK,
            &public,
            &Bytes::from_static(b"{}"),
            now,
        );
        // An answer fetched before the write lands after it: not kept, it may predate the write.
        let before_the_write = missed(&cache, &key("/api/v1/catalog/products/1"));
        cache.forget(Upstream::Catalog);
        assert!(cache.get(&key(PAGE), now).is_err());
        assert!(cache.get(&jwks, now).is_ok());
        cache.put(
            key("/api/v1/catalog/products/1"),
            before_the_write,
            StatusCode::OK,
            &public,
            &Bytes::from_static(b"{}"),
            now,
        );
        assert!(cache.get(&key("/api/v1/catalog/products/1"), now).is_err());
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let cache = EdgeCache::new(4096, CAP).expect("on");
        let now = Instant::now();
        let public = headers(&[("cache-control", "public, max-age=30")]);
        let body = Bytes::from(vec![b'x'; 1500]);
        for n in 0..5 {
            let k = key(&format!("/api/v1/catalog/products/{n}"));
            cache.put(k.clone(), missed(&cache, &k), StatusCode::OK, &public, &body, now);
        }
        assert_eq!(cache.len(), 2, "two answers of 1.5 kB fit in 4 kB");
        // Once they expire, new answers take their place (expired ones are looked for at most
        // every SWEEP_EVERY, the last look being at `now`).
        let later = now + CAP;
        let nine = key("/api/v1/catalog/products/9");
        cache.put(
            nine.clone(),
            missed(&cache, &nine),
            StatusCode::OK,
            &public,
            &body,
            later,
        );
        assert!(cache.get(&nine, later).is_ok());
        assert!(EdgeCache::new(0, CAP).is_none() && EdgeCache::new(1, Duration::ZERO).is_none());
        let big = Bytes::from(vec![b'x'; MAX_ENTRY_BYTES + 1]);
        let roomy = EdgeCache::new(1 << 20, CAP).expect("on");
        roomy.put(
            key(PAGE),
            missed(&roomy, &key(PAGE)),
            StatusCode::OK,
            &public,
            &big,
            now,
        );
        assert_eq!(roomy.len(), 0, "answers over 64 KiB are not kept");
    }
}
