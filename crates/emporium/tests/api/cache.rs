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
    let cache = Cache::redis(&url, &namespace).await.expect("redis");
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
