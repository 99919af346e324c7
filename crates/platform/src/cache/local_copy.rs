//! A production process's own copy of the values it read from Redis, so a repeated read costs no
//! round trip, kept fresh by Redis itself (server-assisted client-side caching, broadcast mode).
//!
//! One RESP3 connection of its own asks Redis to push the name of every key under the copy's
//! prefix that anyone changes, deletes or lets expire (`CLIENT TRACKING ON BCAST PREFIX`); each
//! push drops that key here. Reads still go through the cache's ordinary connection, so the
//! answer to a read and an invalidation pushed after it travel on different connections and may
//! arrive in either order. The copy is correct for both:
//!
//! - each read takes a [`Ticket`] before it is sent: the invalidation count of the key's stripe;
//! - its answer is kept only if that count has not moved, checked and stored under the stripe's
//!   lock, which every invalidation takes to count itself and drop the key;
//!
//! so an invalidation handled before the answer refuses it, and one handled after removes it.
//! While the tracking connection is down (or not yet up) nothing is kept and nothing is served,
//! and losing it empties the copy: an invalidation missed then cannot leave a stale value.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};

use crate::sync::lock;

/// Invalidation counters: more stripes, fewer reads refused because another key changed.
const STRIPES: usize = 64;
/// A value is read from Redis again after this long even without an invalidation: the bound on
/// how long a lost invalidation (were the connection to stay up without delivering it) lasts.
const LOCAL_TTL: Duration = Duration::from_secs(30);
/// How often the tracking connection is checked; a check that fails empties the copy.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Budget for one answer on the tracking connection.
const TRACKING_TIMEOUT: Duration = Duration::from_millis(500);
/// Wait between attempts to (re)open the tracking connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub(super) struct LocalCopy {
    /// The keys tracked, and so the only ones kept: those under this prefix.
    prefix: String,
    entries: moka::sync::Cache<String, Bytes>,
    /// Invalidations counted per stripe of keys (see the module's documentation).
    stripes: Box<[Mutex<u64>]>,
    hasher: std::hash::RandomState,
    /// Redis is tracking for this copy: reads may be served and kept.
    live: AtomicBool,
    hits: AtomicU64,
}

/// What a read saw of its key's stripe before it was sent.
pub(super) struct Ticket {
    stripe: usize,
    invalidations: u64,
}

impl LocalCopy {
    /// A copy of the keys under `prefix`, at most `max_bytes` of keys and values, tracked over a
    /// connection of its own to `client`'s server (opened, and reopened, in the background).
    pub(super) fn start(client: redis::Client, prefix: String, max_bytes: u64) -> Arc<Self> {
        let copy = Arc::new(Self {
            prefix,
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, value: &Bytes| u32::try_from(key.len() + value.len() + 120).unwrap_or(u32::MAX))
                .time_to_live(LOCAL_TTL)
                .build(),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: std::hash::RandomState::new(),
            live: AtomicBool::new(false),
            hits: AtomicU64::new(0),
        });
        tokio::spawn(track(Arc::downgrade(&copy), client));
        copy
    }

    /// Whether keys under `prefix` are tracked by this copy.
    pub(super) fn covers(&self, prefix: &str) -> bool {
        prefix.starts_with(&self.prefix)
    }

    pub(super) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub(super) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub(super) fn get(&self, key: &str) -> Option<Bytes> {
        if !self.is_live() {
            return None;
        }
        let value = self.entries.get(key)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(value)
    }

    /// Taken before a read of `key` is sent; `None` while Redis is not tracking.
    pub(super) fn ticket(&self, key: &str) -> Option<Ticket> {
        if !self.is_live() {
            return None;
        }
        let stripe = self.stripe(key.as_bytes());
        Some(Ticket {
            stripe,
            invalidations: *lock(&self.stripes[stripe]),
        })
    }

    /// Keeps what a read answered, unless its key's stripe saw an invalidation since `ticket`.
    pub(super) fn keep(&self, key: &str, value: Bytes, ticket: Ticket) {
        let invalidations = lock(&self.stripes[ticket.stripe]);
        if *invalidations == ticket.invalidations && self.is_live() {
            self.entries.insert(key.to_owned(), value);
        }
    }

    /// Drops `key`, and refuses the answers of reads of its stripe already in flight.
    pub(super) fn invalidate(&self, key: &[u8]) {
        let mut invalidations = lock(&self.stripes[self.stripe(key)]);
        *invalidations += 1;
        if let Ok(key) = std::str::from_utf8(key) {
            self.entries.invalidate(key);
        }
    }

    fn invalidate_all(&self) {
        for stripe in &*self.stripes {
            *lock(stripe) += 1;
        }
        self.entries.invalidate_all();
    }

    /// Redis no longer tracks for this copy: serve and keep nothing, and forget what is held.
    fn go_dark(&self) {
        self.live.store(false, Ordering::Release);
        self.invalidate_all();
    }

    fn stripe(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    /// An `invalidate` push: a list of keys, or nil after FLUSHALL / FLUSHDB.
    fn on_invalidate(&self, data: &[Value]) {
        match data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    if let Value::BulkString(key) = key {
                        self.invalidate(key);
                    }
                }
            }
            _ => self.invalidate_all(),
        }
    }
}

/// Keeps a tracking connection open for `copy` as long as the copy exists.
async fn track(copy: Weak<LocalCopy>, client: redis::Client) {
    let mut was_live = true;
    loop {
        let Some(prefix) = copy.upgrade().map(|c| c.prefix.clone()) else {
            return;
        };
        let dropped = Arc::new(tokio::sync::Notify::new());
        let push_handler = {
            let copy = copy.clone();
            let dropped = dropped.clone();
            move |push: PushInfo| {
                match push.kind {
                    PushKind::Invalidate => {
                        if let Some(copy) = copy.upgrade() {
                            copy.on_invalidate(&push.data);
                        }
                    }
                    PushKind::Disconnection => {
                        if let Some(copy) = copy.upgrade() {
                            copy.go_dark();
                        }
                        dropped.notify_one();
                    }
                    _ => {}
                }
                Ok::<(), redis::aio::SendError>(())
            }
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(TRACKING_TIMEOUT))
            .set_push_sender(push_handler);
        let tracking = async {
            let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(&prefix)
                .query_async::<()>(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(conn)
        };
        match tracking.await {
            Ok(mut conn) => {
                match copy.upgrade() {
                    Some(copy) => copy.live.store(true, Ordering::Release),
                    None => return,
                }
                if !was_live {
                    tracing::info!(%prefix, "local copy of Redis tracking again");
                }
                was_live = true;
                loop {
                    tokio::select! {
                        () = dropped.notified() => break,
                        () = tokio::time::sleep(HEARTBEAT) => {
                            if copy.strong_count() == 0 {
                                return;
                            }
                            let ping = redis::cmd("PING");
                            let answer = tokio::time::timeout(TRACKING_TIMEOUT, ping.query_async::<()>(&mut conn)).await;
                            if !matches!(answer, Ok(Ok(()))) {
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) if was_live => {
                tracing::warn!(%error, %prefix, "local copy of Redis off: cannot track invalidations; reading Redis every time");
                was_live = false;
            }
            Err(_) => {}
        }
        match copy.upgrade() {
            Some(copy) => copy.go_dark(),
            None => return,
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy() -> LocalCopy {
        LocalCopy {
            prefix: "p:".into(),
            entries: moka::sync::Cache::new(100),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: std::hash::RandomState::new(),
            live: AtomicBool::new(true),
            hits: AtomicU64::new(0),
        }
    }

    #[test]
    fn an_answer_is_refused_after_an_invalidation_and_removed_by_a_later_one() {
        let copy = copy();
        let ticket = copy.ticket("p:k").expect("live");
        copy.invalidate(b"p:k");
        copy.keep("p:k", Bytes::from_static(b"old"), ticket);
        assert_eq!(copy.get("p:k"), None, "invalidated while the read was in flight");

        let ticket = copy.ticket("p:k").expect("live");
        copy.keep("p:k", Bytes::from_static(b"new"), ticket);
        assert_eq!(copy.get("p:k").as_deref(), Some(&b"new"[..]));
        copy.on_invalidate(&[Value::Array(vec![Value::BulkString(b"p:k".to_vec())])]);
        assert_eq!(copy.get("p:k"), None, "invalidated after it was kept");
        assert_eq!(copy.hits(), 1);
    }

    #[test]
    fn a_flush_or_a_lost_connection_empties_the_copy_and_refuses_reads_in_flight() {
        let copy = copy();
        let ticket = copy.ticket("p:a").expect("live");
        copy.keep("p:a", Bytes::from_static(b"1"), ticket);
        let in_flight = copy.ticket("p:b").expect("live");
        copy.on_invalidate(&[Value::Nil]);
        copy.keep("p:b", Bytes::from_static(b"2"), in_flight);
        assert_eq!((copy.get("p:a"), copy.get("p:b")), (None, None));

        let ticket = copy.ticket("p:a").expect("live");
        copy.keep("p:a", Bytes::from_static(b"1"), ticket);
        let in_flight = copy.ticket("p:b").expect("live");
        copy.go_dark();
        assert!(copy.ticket("p:c").is_none(), "no reads kept while not tracked");
        copy.live.store(true, Ordering::Release);
        copy.keep("p:b", Bytes::from_static(b"2"), in_flight);
        assert_eq!((copy.get("p:a"), copy.get("p:b")), (None, None));
    }
}
