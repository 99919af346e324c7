//! The shared cache on Redis, below the HTTP layer: what the in-process cache's unit tests
//! prove, proven against the real server.

use std::time::Duration;

use platform::cache::Cache;

/// Deletes what the tests below leave in Redis under `namespace`.
async fn forget_test_keys(url: &str, namespace: &str) {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let _: () = redis::cmd("DEL")
        .arg(format!("{namespace}:k"))
        .arg(format!("{namespace}:generation:pages"))
        .query_async(&mut conn)
        .await
        .expect("del");
}

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
    let cache = Cache::redis(&url, &namespace, 1000).await.expect("redis");
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

    forget_test_keys(&url, &namespace).await;
}

/// Reads `key` until `want` comes back, for at most 2 s: another replica's write reaches this
/// process's local copy as Redis's invalidation push, a moment after the writer's answer.
async fn read_until(cache: &Cache, key: &str, want: Option<i32>) -> Option<i32> {
    let mut seen = None;
    for _ in 0..200 {
        seen = cache.get_json::<i32>(key).await;
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

/// A replica keeps what it read from Redis in memory: repeated reads cost no round trip, yet
/// another replica's write or delete, and its generation bump, are seen (Redis pushes an
/// invalidation), and the replica's own write is read back at once.
#[tokio::test]
async fn a_local_copy_in_front_of_redis_serves_repeats_and_follows_every_write() {
    let url = test_support::services::redis_url();
    if !test_support::services::service_reachable("Redis", &url).await {
        return;
    }
    let namespace = test_support::services::namespace();
    let replica = Cache::redis(&url, &namespace, 1000).await.expect("redis");
    let other = Cache::redis(&url, &namespace, 0).await.expect("redis");
    assert!(other.local_copy_statistics().is_none(), "0 keys: no local copy");
    let ttl = Duration::from_secs(60);

    other.set_json("k", &1, ttl).await;
    assert_eq!(replica.get_json::<i32>("k").await, Some(1));
    let before = replica.local_copy_statistics().expect("a local copy").hit;
    for _ in 0..50 {
        assert_eq!(replica.get_json::<i32>("k").await, Some(1));
    }
    let hits = replica.local_copy_statistics().expect("a local copy").hit - before;
    assert!(hits >= 50, "repeated reads served from memory: {hits} of 50");

    other.set_json("k", &2, ttl).await;
    assert_eq!(
        read_until(&replica, "k", Some(2)).await,
        Some(2),
        "another replica's write"
    );
    other.delete("k").await;
    assert_eq!(read_until(&replica, "k", None).await, None, "another replica's delete");

    replica.set_json("k", &3, ttl).await;
    assert_eq!(replica.get_json::<i32>("k").await, Some(3), "its own write, at once");
    replica.delete("k").await;
    assert_eq!(replica.get_json::<i32>("k").await, None, "its own delete, at once");

    let generation = replica.generation("pages").await;
    assert_eq!(replica.generation("pages").await, generation);
    other.bump_generation("pages").await;
    let mut seen = generation;
    for _ in 0..200 {
        seen = replica.generation("pages").await;
        if seen != generation {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, generation + 1, "another replica's bump");

    forget_test_keys(&url, &namespace).await;
}
