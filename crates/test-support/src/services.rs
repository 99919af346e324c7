//! Where the shared test services are, and what an unreachable one means.

use std::time::Duration;

/// True under CI (`CI=true` or `CI=1`): an unreachable service then fails the test instead of
/// skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The PostgreSQL database to create and drop test databases from (`EMPORIUM_TEST_POSTGRES_URL`).
pub fn postgres_admin_url() -> String {
    std::env::var("EMPORIUM_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The test RabbitMQ (`EMPORIUM_TEST_AMQP_URL`).
pub fn amqp_url() -> String {
    std::env::var("EMPORIUM_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The test Redis (`EMPORIUM_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("EMPORIUM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A namespace of its own for one test's exchanges, queues and keys, so that concurrent tests
/// never see each other's events or cache entries.
pub fn namespace() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Called when `what` cannot be reached (`why`: where, and what went wrong): a failure under CI,
/// naming `remedy`, else a `SKIPPED:` note.
pub fn unreachable(what: &str, why: &str, remedy: &str) {
    if in_ci() {
        panic!("{what} is unreachable {why} and CI=true: {remedy}");
    }
    eprintln!("SKIPPED: {what} unreachable {why}");
}

/// True when the host:port of `url` accepts TCP; otherwise see [`unreachable`].
pub async fn service_reachable(what: &str, url: &str) -> bool {
    let host_port = url
        .split("://")
        .nth(1)
        .map(|rest| rest.rsplit('@').next().unwrap_or(rest))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(host_port)).await,
        Ok(Ok(_))
    );
    if !ok {
        unreachable(
            what,
            &format!("at {host_port}"),
            "start it (see the README's test section)",
        );
    }
    ok
}

/// [`service_reachable`] for the test Redis.
pub async fn redis_reachable() -> bool {
    service_reachable("Redis", &redis_url()).await
}

/// [`service_reachable`] for the test RabbitMQ.
pub async fn rabbitmq_reachable() -> bool {
    service_reachable("RabbitMQ", &amqp_url()).await
}

/// True when RabbitMQ, Redis and PostgreSQL all accept connections, as a production-shaped run
/// needs; the first one missing is reported as [`service_reachable`] does.
pub async fn production_services_reachable() -> bool {
    rabbitmq_reachable().await
        && redis_reachable().await
        && service_reachable("PostgreSQL", &postgres_admin_url()).await
}
