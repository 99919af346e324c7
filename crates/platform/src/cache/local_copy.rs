//! A production process's own copy of the values it read from Redis, so a repeated read costs no
//! round trip, kept fresh by Redis itself (server-assisted client-side caching, broadcast mode).
//!
//! One RESP3 connection of its own asks Redis to push the name of every key under the copy's
//! prefix that anyone changes, deletes or lets expire (`CLIENT TRACKING ON BCAST PREFIX`); each
//! push drops that key here. Reads still go through the cache's ordinary connection, so the
//! answer to a read and an invalidation pushed after it travel on different connections and may
//! arrive in either order. The copy is correct for both:
//!
//! - each read takes a [`Ticket`] before it is sent: the change count of the key's stripe;
//! - its answer is kept only if that count has not moved, checked and stored under the stripe's
//!   lock, which every invalidation takes to count itself and drop the key;
//!
//! so an invalidation handled before the answer refuses it, and one handled after removes it.
//! Keeping an answer counts as a change too: two reads in flight at once may carry answers from
//! either side of a write whose invalidation is still on its way, and the older one, arriving
//! last, must not replace the newer one a caller has already seen. The later answer is refused,
//! and takes the held value with it when the two differ (which is newer cannot be told).
//! While the tracking connection is down (or not yet up) nothing is kept and nothing is served,
//! and losing it empties the copy: an invalidation missed then cannot leave a stale value.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};

use crate::sync::lock;

/// Keys are spread over this many stripes, each with its own lock, entries and change count:
/// more stripes, less contention and fewer reads refused because another key changed.
const STRIPES: usize = 64;
/// What an entry costs its stripe's budget beyond its key and value (map slot, `Bytes`, clock).
const ENTRY_OVERHEAD: usize = 120;
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
    stripes: Box<[Mutex<Stripe>]>,
    /// Each stripe's share of the copy's byte budget.
    stripe_budget: usize,
    hasher: std::hash::RandomState,
    /// Redis is tracking for this copy: reads may be served and kept.
    live: AtomicBool,
    hits: AtomicU64,
    metrics: Metrics,
}

/// `cache_local_hits_total` and `cache_local_copy_tracking` of the copy's namespace.
struct Metrics {
    hits: metrics::Counter,
    tracking: metrics::Gauge,
}

impl Metrics {
    fn for_namespace(namespace: &str) -> Self {
        Self {
            hits: metrics::counter!("cache_local_hits_total", "namespace" => namespace.to_owned()),
            tracking: metrics::gauge!("cache_local_copy_tracking", "namespace" => namespace.to_owned()),
        }
    }
}

#[derive(Default)]
struct Stripe {
    /// Invalidations and kept answers counted so far (see the module's documentation).
    changes: u64,
    entries: HashMap<String, LocalEntry>,
    /// Keys, values and [`ENTRY_OVERHEAD`] of the entries held.
    bytes: usize,
}

struct LocalEntry {
    /// `None`: Redis answered that the key does not exist. Absence is kept too: a page key that
    /// embeds a generation nobody has bumped yet would otherwise cost a round trip per read, and
    /// the key's creation is pushed as an invalidation like any other change.
    value: Option<Bytes>,
    kept_at: Instant,
}

impl Stripe {
    fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= weight(key, &entry.value);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Makes room for `needed` bytes within `budget`: expired entries go first, then any (the
    /// map's order is random, and a hot key read again comes back at the price of one read).
    fn make_room(&mut self, needed: usize, budget: usize) {
        if self.bytes + needed <= budget {
            return;
        }
        self.entries.retain(|_, entry| entry.kept_at.elapsed() < LOCAL_TTL);
        let mut bytes = self.entries.iter().map(|(k, e)| weight(k, &e.value)).sum::<usize>();
        self.entries.retain(|key, entry| {
            if bytes + needed <= budget {
                return true;
            }
            bytes -= weight(key, &entry.value);
            false
        });
        self.bytes = bytes;
    }
}

fn weight(key: &str, value: &Option<Bytes>) -> usize {
    key.len() + value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

/// What the copy answers for a key.
pub(super) enum Lookup {
    /// What Redis last answered: the value, or `None` for a key that does not exist.
    Hit(Option<Bytes>),
    /// Not held: read it from Redis, then offer the answer to [`LocalCopy::keep`] with this ticket.
    Miss(Ticket),
    /// Redis is not tracking for this copy: read from Redis and keep nothing.
    Dark,
}

/// What a read saw of its key's stripe before it was sent.
pub(super) struct Ticket {
    stripe: usize,
    changes: u64,
}

impl LocalCopy {
    /// A copy of the keys under `prefix`, at most `max_bytes` of keys and values, tracked over a
    /// connection of its own to `client`'s server (opened, and reopened, in the background).
    /// `namespace`: the label of its metrics.
    pub(super) fn start(client: redis::Client, prefix: String, max_bytes: u64, namespace: &str) -> Arc<Self> {
        let copy = Arc::new(Self::new(prefix, max_bytes, namespace));
        tokio::spawn(track(Arc::downgrade(&copy), client));
        copy
    }

    fn new(prefix: String, max_bytes: u64, namespace: &str) -> Self {
        Self {
            prefix,
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            stripe_budget: usize::try_from(max_bytes / STRIPES as u64).unwrap_or(usize::MAX),
            hasher: std::hash::RandomState::new(),
            live: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            metrics: Metrics::for_namespace(namespace),
        }
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

    /// The copy's value for `key`, or the ticket a read from Redis takes before it is sent. One
    /// lock of the key's stripe either way: this is every cached read's path.
    pub(super) fn lookup(&self, key: &str) -> Lookup {
        if !self.is_live() {
            return Lookup::Dark;
        }
        let index = self.stripe(key.as_bytes());
        let mut stripe = lock(&self.stripes[index]);
        let ticket = Ticket {
            stripe: index,
            changes: stripe.changes,
        };
        match stripe
            .entries
            .get(key)
            .map(|entry| (entry.kept_at.elapsed() < LOCAL_TTL).then(|| entry.value.clone()))
        {
            Some(Some(value)) => {
                drop(stripe);
                // Counted as the cache's hits are: a value found, not a key known to be absent.
                if value.is_some() {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    self.metrics.hits.increment(1);
                }
                Lookup::Hit(value)
            }
            Some(None) => {
                stripe.remove(key);
                Lookup::Miss(ticket)
            }
            None => Lookup::Miss(ticket),
        }
    }

    /// Keeps what a read answered (`None`: no such key), unless its key's stripe changed since
    /// its ticket (an invalidation, or another answer kept).
    pub(super) fn keep(&self, key: &str, value: Option<Bytes>, ticket: Ticket) {
        let needed = weight(key, &value);
        let mut stripe = lock(&self.stripes[ticket.stripe]);
        if stripe.changes != ticket.changes || !self.is_live() {
            // This answer may be newer than the one held, or older: a held value that differs
            // goes, and the reads still in flight with it.
            if stripe.entries.get(key).is_some_and(|held| held.value != value) {
                stripe.changes += 1;
                stripe.remove(key);
            }
            return;
        }
        if needed > self.stripe_budget {
            return;
        }
        // Reads sent before this answer arrived may carry older values: refused from now on.
        stripe.changes += 1;
        stripe.remove(key);
        stripe.make_room(needed, self.stripe_budget);
        stripe.bytes += needed;
        let entry = LocalEntry {
            value,
            kept_at: Instant::now(),
        };
        stripe.entries.insert(key.to_owned(), entry);
    }

    /// Drops `key`, and refuses the answers of reads of its stripe already in flight.
    pub(super) fn invalidate(&self, key: &[u8]) {
        let mut stripe = lock(&self.stripes[self.stripe(key)]);
        stripe.changes += 1;
        if let Ok(key) = std::str::from_utf8(key) {
            stripe.remove(key);
        }
    }

    fn invalidate_all(&self) {
        for stripe in &*self.stripes {
            let mut stripe = lock(stripe);
            stripe.changes += 1;
            stripe.clear();
        }
    }

    /// Redis no longer tracks for this copy: serve and keep nothing, and forget what is held.
    fn go_dark(&self) {
        self.live.store(false, Ordering::Release);
        self.metrics.tracking.set(0.0);
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
                    Some(copy) => {
                        copy.live.store(true, Ordering::Release);
                        copy.metrics.tracking.set(1.0);
                    }
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
        let copy = LocalCopy::new("p:".into(), 1 << 20, "p");
        copy.live.store(true, Ordering::Release);
        copy
    }

    fn get(copy: &LocalCopy, key: &str) -> Option<Bytes> {
        match copy.lookup(key) {
            Lookup::Hit(value) => value,
            Lookup::Miss(_) | Lookup::Dark => None,
        }
    }

    fn ticket_for(copy: &LocalCopy, key: &str) -> Option<Ticket> {
        match copy.lookup(key) {
            Lookup::Miss(ticket) => Some(ticket),
            Lookup::Hit(_) => panic!("{key} is held already"),
            Lookup::Dark => None,
        }
    }

    #[test]
    fn an_answer_is_refused_after_an_invalidation_and_removed_by_a_later_one() {
        let copy = copy();
        let ticket = ticket_for(&copy, "p:k").expect("live");
        copy.invalidate(b"p:k");
        copy.keep("p:k", Some(Bytes::from_static(b"old")), ticket);
        assert_eq!(get(&copy, "p:k"), None, "invalidated while the read was in flight");

        let ticket = ticket_for(&copy, "p:k").expect("live");
        copy.keep("p:k", Some(Bytes::from_static(b"new")), ticket);
        assert_eq!(get(&copy, "p:k").as_deref(), Some(&b"new"[..]));
        copy.on_invalidate(&[Value::Array(vec![Value::BulkString(b"p:k".to_vec())])]);
        assert_eq!(get(&copy, "p:k"), None, "invalidated after it was kept");
        assert_eq!(copy.hits(), 1);
    }

    /// Two reads in flight across a write whose invalidation has not arrived yet: whichever
    /// answer comes back last, the copy never holds the older one after the newer was kept.
    #[test]
    fn an_older_answer_arriving_last_never_replaces_a_newer_one() {
        for newer_first in [true, false] {
            let copy = copy();
            let (older_read, newer_read, third_read) = (
                ticket_for(&copy, "p:k").expect("live"),
                ticket_for(&copy, "p:k").expect("live"),
                ticket_for(&copy, "p:k").expect("live"),
            );
            let (older, newer) = (Bytes::from_static(b"89"), Bytes::from_static(b"90"));
            if newer_first {
                copy.keep("p:k", Some(newer.clone()), newer_read);
                assert_eq!(get(&copy, "p:k").as_deref(), Some(&b"90"[..]));
                copy.keep("p:k", Some(older.clone()), older_read);
            } else {
                copy.keep("p:k", Some(older.clone()), older_read);
                copy.keep("p:k", Some(newer.clone()), newer_read);
            }
            assert_eq!(get(&copy, "p:k"), None, "the two answers differ: neither is kept");
            copy.keep("p:k", Some(older), third_read);
            assert_eq!(
                get(&copy, "p:k"),
                None,
                "a third read of the same moment is refused too"
            );
            let fresh = ticket_for(&copy, "p:k").expect("live");
            copy.keep("p:k", Some(newer), fresh);
            assert_eq!(
                get(&copy, "p:k").as_deref(),
                Some(&b"90"[..]),
                "a read sent afterwards is kept"
            );
        }
    }

    #[test]
    fn a_flush_or_a_lost_connection_empties_the_copy_and_refuses_reads_in_flight() {
        let copy = copy();
        let ticket = ticket_for(&copy, "p:a").expect("live");
        copy.keep("p:a", Some(Bytes::from_static(b"1")), ticket);
        let in_flight = ticket_for(&copy, "p:b").expect("live");
        copy.on_invalidate(&[Value::Nil]);
        copy.keep("p:b", Some(Bytes::from_static(b"2")), in_flight);
        assert_eq!((get(&copy, "p:a"), get(&copy, "p:b")), (None, None));

        let ticket = ticket_for(&copy, "p:a").expect("live");
        copy.keep("p:a", Some(Bytes::from_static(b"1")), ticket);
        let in_flight = ticket_for(&copy, "p:b").expect("live");
        copy.go_dark();
        assert!(ticket_for(&copy, "p:c").is_none(), "no reads kept while not tracked");
        copy.live.store(true, Ordering::Release);
        copy.keep("p:b", Some(Bytes::from_static(b"2")), in_flight);
        assert_eq!((get(&copy, "p:a"), get(&copy, "p:b")), (None, None));
    }

    /// Redis answered "no such key": the next read is answered here without a round trip (and is
    /// not counted as a hit), until the key's creation is pushed.
    #[test]
    fn an_absent_key_is_kept_until_it_is_created() {
        let copy = copy();
        let ticket = ticket_for(&copy, "p:generation").expect("live");
        copy.keep("p:generation", None, ticket);
        assert!(
            matches!(copy.lookup("p:generation"), Lookup::Hit(None)),
            "known to be absent"
        );
        assert_eq!(copy.hits(), 0, "absence is not a hit");

        copy.invalidate(b"p:generation");
        let ticket = ticket_for(&copy, "p:generation").expect("created elsewhere: read again");
        copy.keep("p:generation", Some(Bytes::from_static(b"1")), ticket);
        assert_eq!(get(&copy, "p:generation").as_deref(), Some(&b"1"[..]));

        let in_flight = ticket_for(&copy, "p:other").expect("live");
        copy.invalidate(b"p:other");
        copy.keep("p:other", None, in_flight);
        assert!(
            ticket_for(&copy, "p:other").is_some(),
            "an absence answered across a creation is refused"
        );
    }

    #[test]
    fn each_stripe_keeps_to_its_share_of_the_budget() {
        let copy = LocalCopy::new("p:".into(), 64 * 1024, "p");
        copy.live.store(true, Ordering::Release);
        let value = Bytes::from(vec![b'x'; 200]);
        for i in 0..2_000 {
            let key = format!("p:{i}");
            let ticket = ticket_for(&copy, &key).expect("live");
            copy.keep(&key, Some(value.clone()), ticket);
        }
        for stripe in &*copy.stripes {
            let stripe = lock(stripe);
            let held: usize = stripe.entries.iter().map(|(k, e)| weight(k, &e.value)).sum();
            assert_eq!(held, stripe.bytes);
            assert!(
                stripe.bytes <= copy.stripe_budget,
                "{} > {}",
                stripe.bytes,
                copy.stripe_budget
            );
        }
        let held: usize = copy.stripes.iter().map(|s| lock(s).entries.len()).sum();
        assert!(held > 64, "the copy still holds values ({held})");
        let too_big = Bytes::from(vec![b'x'; 2_000]);
        let ticket = ticket_for(&copy, "p:big").expect("live");
        copy.keep("p:big", Some(too_big), ticket);
        assert_eq!(get(&copy, "p:big"), None, "larger than a stripe's share: not kept");
    }
}
