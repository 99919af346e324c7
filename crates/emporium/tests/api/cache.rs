//! The shared cache on Redis, below the HTTP layer: what the in-process cache's unit tests
//! prove, proven against the real server.

use std::time::Duration;

use platform::cache::Cache;

/// A value loaded before a writer bumped the generation is refused once the writer deleted its
/// key; one loaded at the new generation is kept. On Redis the check and the store are one
/// script, so no writer's bump and delete can fall between them.
#[tokio::test]
async fn redis_refuses_a_value_loaded_before_a_bump() {
    let url = test_support::services::redis_url();
    if !test_support::services::service_reachable("Redis", &url).await {
        return;
    }
    let namespace = test_support::services::namespace();
    let cache = Cache::redis(&url, &namespace, 0).await.expect("redis");
    let ttl = Duration::from_secs(60);
    let loaded_at = cache.generation("pages").await;
    assert!(
        cache
            .set_bytes_at_generation("k", b"1".to_vec().into(), ttl, "pages", loaded_at)
            .await
    );
    assert_eq!(cache.get_json::<i32>("k").await, Some(1));

    cache.bump_generation("pages").await;
    cache.delete("k").await;
    assert!(
        !cache
            .set_bytes_at_generation("k", b"2".to_vec().into(), ttl, "pages", loaded_at)
            .await
    );
    assert_eq!(cache.get_json::<i32>("k").await, None, "a value from before the bump");

    let now = cache.generation("pages").await;
    assert_eq!(now, loaded_at + 1);
    assert!(
        cache
            .set_bytes_at_generation("k", b"3".to_vec().into(), ttl, "pages", now)
            .await
    );
    assert_eq!(cache.get_json::<i32>("k").await, Some(3));

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let _: () = redis::cmd("DEL")
        .arg(format!("{namespace}:k"))
        .arg(format!("{namespace}:generation:pages"))
        .query_async(&mut conn)
        .await
        .expect("del");
}

/// Reads until `want` comes back, for at most 2 s: another replica's write reaches this
/// process's local copy as Redis's invalidation push, a moment after the writer's answer.
async fn eventually<T: PartialEq, F: Future<Output = T>>(want: T, mut read: impl FnMut() -> F) -> T {
    let mut seen = read().await;
    for _ in 0..200 {
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        seen = read().await;
    }
    seen
}

async fn read_until(cache: &Cache, key: &str, want: Option<i32>) -> Option<i32> {
    eventually(want, || cache.get_json::<i32>(key)).await
}

/// Two replicas of one context on a fresh namespace: `local` with a local copy (tracking once
/// this returns), `other` without one.
struct Replicas {
    local: Cache,
    other: Cache,
    url: String,
    namespace: String,
}

impl Replicas {
    /// `None` when Redis is unreachable outside CI (in CI that fails the test).
    async fn start() -> Option<Self> {
        let url = test_support::services::redis_url();
        if !test_support::services::service_reachable("Redis", &url).await {
            return None;
        }
        let namespace = test_support::services::namespace();
        platform::metrics::install();
        let local = Cache::redis(&url, &namespace, 1 << 20)
            .await
            .expect("redis")
            .namespace("t");
        let other = Cache::redis(&url, &namespace, 0).await.expect("redis").namespace("t");
        assert!(other.local_copy_hits().is_none(), "0 bytes: no local copy");
        assert!(
            eventually(true, || std::future::ready(local.local_copy_live())).await,
            "the local copy never started tracking"
        );
        Some(Self {
            local,
            other,
            url,
            namespace,
        })
    }

    async fn delete_keys(self) {
        let client = redis::Client::open(self.url).expect("client");
        let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.namespace))
            .query_async(&mut conn)
            .await
            .expect("keys");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.expect("del");
        }
    }
}

/// A replica keeps what it read from Redis in memory: repeated reads cost no round trip, yet
/// another replica's write, delete and generation bump are seen (Redis pushes an invalidation),
/// and the replica's own writes are read back at once.
#[tokio::test]
async fn a_local_copy_in_front_of_redis_serves_repeats_and_follows_every_write() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let (replica, other) = (&replicas.local, &replicas.other);
    let ttl = Duration::from_secs(60);

    other.set_json("k", &1, ttl).await;
    assert_eq!(replica.get_json::<i32>("k").await, Some(1));
    let before = replica.local_copy_hits().expect("a local copy");
    for _ in 0..50 {
        assert_eq!(replica.get_json::<i32>("k").await, Some(1));
    }
    let hits = replica.local_copy_hits().expect("a local copy") - before;
    assert_eq!(hits, 50, "repeated reads served from memory");
    let metrics = platform::metrics::render_text();
    assert!(
        metrics.contains("cache_local_copy_tracking{namespace=\"t\"} 1"),
        "the copy reports that it is tracking"
    );
    let local_hits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cache_local_hits_total{namespace=\"t\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        local_hits.is_some_and(|n| n >= 50),
        "local hits counted: {local_hits:?}"
    );

    other.set_json("k", &2, ttl).await;
    assert_eq!(
        read_until(replica, "k", Some(2)).await,
        Some(2),
        "another replica's write"
    );
    other.delete("k").await;
    assert_eq!(read_until(replica, "k", None).await, None, "another replica's delete");

    replica.set_json("k", &3, ttl).await;
    assert_eq!(replica.get_json::<i32>("k").await, Some(3), "its own write, at once");
    assert_eq!(replica.get_json::<i32>("k").await, Some(3));
    replica.delete("k").await;
    assert_eq!(replica.get_json::<i32>("k").await, None, "its own delete, at once");

    // A generation nobody bumped yet: its absence is kept, and the first bump elsewhere is seen.
    assert_eq!(replica.generation("fresh").await, 0);
    assert_eq!(replica.generation("fresh").await, 0, "absence read from memory");
    other.bump_generation("fresh").await;
    assert_eq!(
        eventually(1, || replica.generation("fresh")).await,
        1,
        "another replica's first bump"
    );

    let generation = replica.generation("pages").await;
    assert_eq!(replica.generation("pages").await, generation);
    replica.bump_generation("pages").await;
    assert_eq!(
        replica.generation("pages").await,
        generation + 1,
        "its own bump, at once"
    );
    other.bump_generation("pages").await;
    assert_eq!(
        eventually(generation + 2, || replica.generation("pages")).await,
        generation + 2,
        "another replica's bump"
    );
    replicas.delete_keys().await;
}

/// Another replica writes a key in 20 bursts of 30 writes while four readers of this replica
/// read it without pause, so answers and invalidations cross on the wire: a moment after each
/// burst every read returns its last write, and goes on doing so. (The redis crate's own
/// client-side cache kept the answer of a read that crossed an invalidation until its TTL:
/// docs/benchmarks.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_crossing_reads_in_flight_leave_no_stale_copy() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let (replica, other) = (&replicas.local, &replicas.other);
    let ttl = Duration::from_secs(60);
    other.set_json("hot", &0, ttl).await;

    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let replica = replica.clone();
            let writing = writing.clone();
            tokio::spawn(async move {
                let mut reads = 0u32;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    replica.get_json::<i32>("hot").await;
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    let hits_before = replica.local_copy_hits().expect("a local copy");
    for burst in 1..=20 {
        let last = burst * 30;
        for value in last - 29..=last {
            other.set_json("hot", &value, ttl).await;
        }
        assert_eq!(
            read_until(replica, "hot", Some(last)).await,
            Some(last),
            "burst {burst}: its last write"
        );
        for _ in 0..20 {
            assert_eq!(
                replica.get_json::<i32>("hot").await,
                Some(last),
                "burst {burst}: an older value"
            );
        }
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("reader");
    }
    assert!(reads > 600, "the readers read while the writes went on ({reads} reads)");
    let hits = replica.local_copy_hits().expect("a local copy") - hits_before;
    assert!(
        hits >= 400,
        "the copy served the reads between bursts ({hits} of {reads} reads)"
    );
    replicas.delete_keys().await;
}
