//! The gateway over HTTP: a real gateway router on a random port in front of real upstreams (the
//! full app, or a tiny upstream that echoes what reached it), and the edge it shares with
//! embedded mode (rate limits, CORS, security headers, the token check).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use gateway::{EdgeConfig, GatewayConfig, RateLimiter, Upstream};
use platform::auth::KeySet;
use platform::config::ConfigSource;
use platform::http::HttpLimits;
use serde_json::{Value, json};

use test_support::Backend;
use test_support::app::{TestApp, spawn_app};
use test_support::requests::{access_token, assert_problem};
use test_support::services::{redis_url, service_reachable};

/// A server on a random port, stopped when dropped.
struct Served {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(router: Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = platform::http::serve(listener, router, std::future::pending(), Duration::from_secs(1)).await;
    });
    Served { addr, task }
}

/// An address nothing listens on (bound, then let go).
async fn dead_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

fn source(upstreams: &BTreeMap<Upstream, String>, extra: &[(&str, &str)]) -> ConfigSource {
    let mut pairs: Vec<(String, String)> = upstreams.iter().map(|(u, url)| (u.variable(), url.clone())).collect();
    pairs.push(("EMPORIUM_METRICS_TOKEN".into(), test_support::app::METRICS_TOKEN.into()));
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ConfigSource::from_pairs(pairs).expect("source")
}

fn every_upstream_at(url: &str) -> BTreeMap<Upstream, String> {
    Upstream::ALL.iter().map(|u| (*u, url.to_owned())).collect()
}

/// The gateway as the binary builds it, minus the web pages: proxy and aggregates, platform
/// stack, and the edge with an in-process limiter (or the given one).
async fn gateway_with(
    upstreams: &BTreeMap<Upstream, String>,
    extra: &[(&str, &str)],
    limiter: Option<RateLimiter>,
) -> Served {
    // The recorder first, as `build_gateway` does: a metric described before it would go
    // without its help text for the rest of this process.
    platform::metrics::install();
    let src = source(upstreams, extra);
    let config = GatewayConfig::from_source(&src).expect("gateway config");
    let edge = EdgeConfig::from_source(&src, "http://127.0.0.1").expect("edge config");
    let keys = KeySet::from_jwks_url(
        format!("{}/.well-known/jwks.json", config.upstream_url(Upstream::Identity)),
        Duration::from_secs(60),
    );
    let limiter = limiter.unwrap_or_else(|| RateLimiter::in_process(&edge));
    let router = gateway::proxy_router(config, emporium::api_doc::served(true));
    let router = platform::http::with_platform_stack(
        router,
        HttpLimits {
            max_body_bytes: edge.max_body_bytes,
            request_timeout: Duration::from_secs(30),
        },
        platform::http::Wiring::default(),
    );
    serve(gateway::with_edge(router, &edge, keys, limiter)).await
}

async fn gateway_before(app: &TestApp, extra: &[(&str, &str)]) -> Served {
    gateway_with(&every_upstream_at(&format!("http://{}", app.addr)), extra, None).await
}

/// An upstream that answers every request with what reached it (method, path, headers, body
/// length), counts requests, streams 2 MiB from `/api/v1/catalog/big`, and answers 503 under
/// `/api/v1/orders/` (a context in trouble). It publishes no signing keys.
#[derive(Clone, Default)]
struct Echo {
    hits: Arc<AtomicUsize>,
}

async fn echo(State(echo): State<Echo>, req: axum::extract::Request) -> axum::response::Response {
    echo.hits.fetch_add(1, Ordering::SeqCst);
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    if path.starts_with("/api/v1/orders/") {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .expect("body");
    axum::Json(json!({"method": method, "path": path, "headers": headers, "body_len": body.len()})).into_response()
}

async fn big() -> impl IntoResponse {
    let chunks = futures::stream::iter((0..32).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024]))));
    Body::from_stream(chunks)
}

/// Answers after two seconds.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(2)).await;
    "late"
}

/// Sends one piece of its answer, then goes quiet without ending it.
async fn stall() -> impl IntoResponse {
    let first = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"first piece")) });
    Body::from_stream(first.chain(futures::stream::pending()))
}

async fn echo_upstream() -> (Served, Echo) {
    let state = Echo::default();
    let router = Router::new()
        .route("/api/v1/catalog/big", get(big))
        .route("/api/v1/catalog/slow", get(slow))
        .route("/api/v1/catalog/stall", get(stall))
        .route("/health/ready", get(|| async { "ok" }))
        // The edge's key set reads this; it is not a request the tests count.
        .route(
            "/.well-known/jwks.json",
            get(|| async { axum::Json(json!({"keys": []})) }),
        )
        .fallback(echo)
        .with_state(state.clone());
    (serve(router).await, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_reads_and_writes_reach_the_context() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let gw = gateway_before(&app, &[]).await;
    let client = reqwest::Client::new();

    let direct: Value = app.get_json("/api/v1/catalog/products?limit=2").await;
    let through: Value = client
        .get(gw.url("/api/v1/catalog/products?limit=2"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(through, direct, "the query string and the answer cross unchanged");

    let r = client
        .post(gw.url("/api/v1/auth/register"))
        .json(&json!({"email": "via-gateway@example.com", "password": test_support::app::PASSWORD, "name": "Via Gateway"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 202);
    app.verify("via-gateway@example.com").await;
    let token = access_token(&client, &gw.url(""), "via-gateway@example.com").await;
    let me: Value = client
        .get(gw.url("/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(me["email"], "via-gateway@example.com");

    // The context's own problems pass through as they are.
    let r = client
        .post(gw.url("/api/v1/auth/register"))
        .json(&json!({"email": "not-an-email"}))
        .send()
        .await
        .expect("request");
    assert_problem(r, 422).await;
    let r = client.get(gw.url("/api/v1/nowhere")).send().await.expect("request");
    assert_problem(r, 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_and_forwarding_headers_reach_the_upstream() {
    let (upstream, _) = echo_upstream().await;
    let gw = gateway_with(&every_upstream_at(&upstream.url("")), &[], None).await;
    let client = reqwest::Client::new();

    // 2 MiB down, in chunks, without the gateway holding it.
    let r = client.get(gw.url("/api/v1/catalog/big")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut total = 0;
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk.expect("chunk").len();
        chunks += 1;
    }
    assert_eq!(total, 2 * 1024 * 1024);
    assert!(chunks > 1, "the answer arrives as it streams");

    // 512 KiB up, as a chunked stream of unknown length.
    let upload = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 64 * 1024]))));
    let seen: Value = client
        .post(gw.url("/api/v1/cart/items"))
        .header("x-request-id", "gateway-test-42")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .header("x-forwarded-for", "6.6.6.6")
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/api/v1/cart/items");
    assert_eq!(seen["body_len"], 512 * 1024);
    let headers = &seen["headers"];
    assert_eq!(headers["x-request-id"], "gateway-test-42");
    let traceparent = headers["traceparent"].as_str().expect("traceparent forwarded");
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "same trace: {traceparent}"
    );
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "an untrusted client's X-Forwarded-For is replaced"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");

    // A DELETE may carry a body too (deleting an account confirms the password in it).
    let seen: Value = client
        .delete(gw.url("/api/v1/users/me"))
        .json(&json!({"password": "correct horse"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (seen["method"].as_str(), seen["body_len"].as_u64()),
        (Some("DELETE"), Some(28)),
        "{seen}"
    );

    // A request without an id gets one, and the upstream sees the one the client is told.
    let r = client.get(gw.url("/api/v1/inventory")).send().await.expect("request");
    let told = r.headers()["x-request-id"].to_str().expect("id").to_owned();
    let seen: Value = r.json().await.expect("json");
    assert_eq!(seen["headers"]["x-request-id"], told.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_with_413() {
    let (upstream, echo) = echo_upstream().await;
    let gw = gateway_with(
        &every_upstream_at(&upstream.url("")),
        &[("EMPORIUM_MAX_BODY_BYTES", "4096")],
        None,
    )
    .await;
    let client = reqwest::Client::new();
    let r = client
        .post(gw.url("/api/v1/cart/items"))
        .body(vec![b'z'; 5000])
        .send()
        .await
        .expect("request");
    assert_problem(r, 413).await;
    assert_eq!(
        echo.hits.load(Ordering::SeqCst),
        0,
        "a declared length over the limit never leaves the edge"
    );

    let upload = futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'z'; 2048]))));
    let r = client
        .post(gw.url("/api/v1/cart/items"))
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .expect("request");
    assert_problem(r, 413).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_503_and_opens_the_breaker() {
    let (upstream, _) = echo_upstream().await;
    let mut upstreams = every_upstream_at(&upstream.url(""));
    let dead = dead_address().await;
    upstreams.insert(Upstream::Catalog, dead.clone());
    let gw = gateway_with(
        &upstreams,
        &[
            ("EMPORIUM_BREAKER_FAILURES", "2"),
            ("EMPORIUM_BREAKER_OPEN_MS", "60000"),
            ("EMPORIUM_UPSTREAM_RETRIES", "0"),
        ],
        None,
    )
    .await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let r = client
            .get(gw.url("/api/v1/catalog/products"))
            .send()
            .await
            .expect("request");
        assert!(r.headers().contains_key("retry-after"));
        let body = assert_problem(r, 503).await;
        assert!(body["detail"].as_str().expect("detail").contains("catalog"), "{body}");
        assert!(body.to_string().len() < 1000, "no stack trace: {body}");
    }

    // Open: the next calls fail at once without trying the address, even once something
    // listens there again.
    let listener = tokio::net::TcpListener::bind(dead.trim_start_matches("http://"))
        .await
        .expect("rebind the dead address");
    let revived = Echo::default();
    let router = Router::new().fallback(echo).with_state(revived.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let started = Instant::now();
    let r = client
        .get(gw.url("/api/v1/catalog/products"))
        .send()
        .await
        .expect("request");
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((50..=60).contains(&retry_after), "{retry_after}");
    let body = assert_problem(r, 503).await;
    assert!(
        body["detail"].as_str().expect("detail").contains("circuit breaker"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(revived.hits.load(Ordering::SeqCst), 0, "no call reached the upstream");

    // Other upstreams are unaffected.
    let r = client.get(gw.url("/api/v1/inventory")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_safe_requests_are_retried() {
    let (upstream, echo) = echo_upstream().await;
    let gw = gateway_with(
        &every_upstream_at(&upstream.url("")),
        &[("EMPORIUM_UPSTREAM_RETRIES", "2"), ("EMPORIUM_BREAKER_FAILURES", "100")],
        None,
    )
    .await;
    let client = reqwest::Client::new();
    // The upstream answers 503 under /api/v1/orders/.
    let r = client.get(gw.url("/api/v1/orders/x")).send().await.expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(echo.hits.swap(0, Ordering::SeqCst), 3, "a GET is tried three times");
    let r = client
        .post(gw.url("/api/v1/orders/x"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(echo.hits.swap(0, Ordering::SeqCst), 1, "a POST is never sent twice");
    let r = client.put(gw.url("/api/v1/orders/x")).send().await.expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(echo.hits.swap(0, Ordering::SeqCst), 1, "nor is a PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_is_a_504_and_a_stalled_answer_is_cut_off() {
    let (upstream, _) = echo_upstream().await;
    let gw = gateway_with(
        &every_upstream_at(&upstream.url("")),
        &[
            ("EMPORIUM_UPSTREAM_TIMEOUT_MS", "300"),
            ("EMPORIUM_UPSTREAM_RETRIES", "0"),
        ],
        None,
    )
    .await;
    let client = reqwest::Client::new();

    let started = Instant::now();
    let r = client
        .get(gw.url("/api/v1/catalog/slow"))
        .send()
        .await
        .expect("request");
    let body = assert_problem(r, 504).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered at the deadline, not when the upstream did"
    );
    assert!(body["detail"].as_str().expect("detail").contains("300 ms"), "{body}");

    // The head and the first piece pass; then the upstream's silence ends the answer instead of
    // holding the client's connection open.
    let started = Instant::now();
    let r = client
        .get(gw.url("/api/v1/catalog/stall"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let first = stream.next().await.expect("a first piece").expect("first piece");
    assert_eq!(&first[..], b"first piece");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stalled answer is cut off");
    assert!(!matches!(end, Some(Ok(_))), "no more data arrives: {end:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .expect("text")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let (upstream, _) = echo_upstream().await;
    let gw = gateway_with(
        &every_upstream_at(&upstream.url("")),
        &[
            ("EMPORIUM_RATE_LIMIT_PER_MINUTE", "60"),
            ("EMPORIUM_RATE_LIMIT_BURST", "2"),
        ],
        None,
    )
    .await;
    let client = reqwest::Client::new();
    let first = client.get(gw.url("/api/v1/inventory")).send().await.expect("request");
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-limit"), "2");
    assert_eq!(header(&first, "ratelimit-remaining"), "1");
    assert_eq!(header(&first, "ratelimit-policy"), "60;w=60;burst=2");
    let second = client.get(gw.url("/api/v1/inventory")).send().await.expect("request");
    assert_eq!(header(&second, "ratelimit-remaining"), "0");
    let refused = client.get(gw.url("/api/v1/inventory")).send().await.expect("request");
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    assert!(refused.headers().contains_key("x-request-id"));
    assert!(refused.headers().contains_key("content-security-policy"));
    let body = assert_problem(refused, 429).await;
    assert_eq!(body["instance"], "/api/v1/inventory");

    // Probes and scrapes are never limited.
    for path in ["/health/live", "/metrics"] {
        let r = client
            .get(gw.url(path))
            .bearer_auth(test_support::app::METRICS_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{path}");
        assert!(!r.headers().contains_key("ratelimit-limit"));
    }
    let metrics = client
        .get(gw.url("/metrics"))
        .bearer_auth(test_support::app::METRICS_TOKEN)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("gateway_rate_limited_total"));
    assert!(metrics.contains("gateway_upstream_duration_seconds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_budget_through_redis() {
    if !service_reachable("Redis", &redis_url()).await {
        return;
    }
    let (upstream, _) = echo_upstream().await;
    let upstreams = every_upstream_at(&upstream.url(""));
    let limits = [
        ("EMPORIUM_RATE_LIMIT_PER_MINUTE", "60"),
        ("EMPORIUM_RATE_LIMIT_BURST", "3"),
    ];
    let edge = EdgeConfig::from_source(&source(&upstreams, &limits), "http://127.0.0.1").expect("edge");
    let namespace = test_support::services::namespace();
    // Before the limiters describe their metrics (see `gateway_with`).
    platform::metrics::install();
    let a = RateLimiter::redis(&redis_url(), &namespace, &edge)
        .await
        .expect("redis");
    let b = RateLimiter::redis(&redis_url(), &namespace, &edge)
        .await
        .expect("redis");
    let replica_a = gateway_with(&upstreams, &limits, Some(a)).await;
    let replica_b = gateway_with(&upstreams, &limits, Some(b)).await;
    let client = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let get = |gw: &Served| client.get(gw.url("/api/v1/inventory")).send();
    assert_eq!(status(get(&replica_a).await.expect("request")), 200);
    assert_eq!(status(get(&replica_a).await.expect("request")), 200);
    let third = get(&replica_b).await.expect("request");
    assert_eq!(header(&third, "ratelimit-remaining"), "0", "B sees what A spent");
    assert_eq!(status(third), 200);
    assert_eq!(status(get(&replica_b).await.expect("request")), 429);
    assert_eq!(status(get(&replica_a).await.expect("request")), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_at_the_edge_for_listed_origins_only() {
    let (upstream, echo) = echo_upstream().await;
    let gw = gateway_with(
        &every_upstream_at(&upstream.url("")),
        &[("EMPORIUM_CORS_ORIGINS", "https://shop.example.com")],
        None,
    )
    .await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, gw.url("/api/v1/cart/items"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight("https://shop.example.com").await.expect("request");
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "access-control-allow-origin"), "https://shop.example.com");
    assert_eq!(header(&ok, "access-control-allow-credentials"), "true");
    assert!(header(&ok, "access-control-allow-methods").contains("POST"));
    assert!(header(&ok, "access-control-allow-headers").contains("authorization"));
    let evil = preflight("https://evil.example").await.expect("request");
    assert!(!evil.headers().contains_key("access-control-allow-origin"));
    assert_eq!(echo.hits.load(Ordering::SeqCst), 0, "preflights never reach a context");

    let r = client
        .get(gw.url("/api/v1/inventory"))
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(header(&r, "access-control-allow-origin"), "https://shop.example.com");
    assert!(header(&r, "access-control-expose-headers").contains("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_are_on_every_answer_and_docs_keep_their_own_policy() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let gw = gateway_before(&app, &[("EMPORIUM_HSTS", "true")]).await;
    let client = reqwest::Client::new();
    for path in [
        "/api/v1/catalog/products",
        "/api/v1/nowhere",
        "/openapi.json",
        "/nowhere",
    ] {
        let r = client.get(gw.url(path)).send().await.expect("request");
        for name in [
            "content-security-policy",
            "x-content-type-options",
            "referrer-policy",
            "x-frame-options",
            "permissions-policy",
            "strict-transport-security",
        ] {
            assert!(r.headers().contains_key(name), "{path} lacks {name}");
        }
        assert_eq!(header(&r, "x-frame-options"), "DENY");
    }
    let api = client
        .get(gw.url("/api/v1/catalog/products"))
        .send()
        .await
        .expect("request");
    assert!(header(&api, "content-security-policy").starts_with("default-src 'none'"));
    let docs = client.get(gw.url("/docs")).send().await.expect("request");
    assert!(
        header(&docs, "content-security-policy").contains("style-src 'self' 'unsafe-inline'"),
        "the docs page's own policy is kept"
    );
    let doc: Value = client
        .get(gw.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/auth/login",
        "/api/v1/catalog/products",
        "/api/v1/orders",
        "/api/v1/payments",
    ] {
        assert!(paths.contains_key(path), "the merged document lists {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_looking_tokens_are_refused_at_the_edge() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let gw = gateway_before(&app, &[]).await;
    let user = app.signed_up("edge@example.com").await;
    let client = reqwest::Client::new();

    let ok = client
        .get(gw.url("/api/v1/users/me"))
        .bearer_auth(&user.access)
        .send()
        .await
        .expect("request");
    assert_eq!(
        ok.status(),
        200,
        "a valid token passes (the edge fetched identity's JWKS)"
    );

    // The same token with the role changed: the signature no longer matches.
    let parts: Vec<&str> = user.access.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("claims");
    claims["role"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let r = client
        .get(gw.url("/api/v1/users"))
        .bearer_auth(&forged)
        .send()
        .await
        .expect("request");
    assert_eq!(header(&r, "www-authenticate"), "Bearer");
    let body = assert_problem(r, 401).await;
    assert!(
        body["detail"].as_str().expect("detail").contains("sign in again"),
        "the edge answered: {body}"
    );

    let r = client
        .get(gw.url("/api/v1/catalog/products"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .expect("request");
    assert_problem(r, 401).await;

    // Sign-in paths take no bearer: a client that sends its stale token along can still refresh.
    let r = client
        .post(gw.url("/api/v1/auth/refresh"))
        .bearer_auth(&forged)
        .json(&json!({"refresh_token": user.refresh}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    // Without a token the request is the context's to judge.
    let r = client.get(gw.url("/api/v1/users/me")).send().await.expect("request");
    let body = assert_problem(r, 401).await;
    assert!(!body["detail"].as_str().unwrap_or("").contains("sign in again"));

    let metrics = client
        .get(gw.url("/metrics"))
        .bearer_auth(test_support::app::METRICS_TOKEN)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("gateway_edge_rejected_total{reason=\"invalid\"}"),
        "counted by reason"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_lists_every_upstream_and_names_the_one_down() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let mut upstreams = every_upstream_at(&format!("http://{}", app.addr));
    let all_up = gateway_with(&upstreams, &[], None).await;
    let client = reqwest::Client::new();
    let r = client.get(all_up.url("/health/ready")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    let listed: Vec<&String> = body["upstreams"].as_object().expect("upstreams").keys().collect();
    assert_eq!(listed.len(), 7, "{body}");
    assert_eq!(body["upstreams"]["payments"]["status"], "up");

    upstreams.insert(Upstream::Payments, dead_address().await);
    let one_down = gateway_with(&upstreams, &[], None).await;
    let r = client.get(one_down.url("/health/ready")).send().await.expect("request");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["upstreams"]["payments"]["status"], "down");
    assert_eq!(body["upstreams"]["payments"]["error"], "unreachable");
    assert_eq!(body["upstreams"]["catalog"]["status"], "up");
    let live = client.get(one_down.url("/health/live")).send().await.expect("request");
    assert_eq!(live.status(), 200, "liveness does not depend on upstreams");
}

/// The gateway exactly as `emporium serve --service gateway` builds it, web pages included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_process_serves_pages_and_api_through_its_upstreams() {
    if !service_reachable("Redis", &redis_url()).await {
        return;
    }
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let base = format!("http://{}", app.addr);
    let namespace = test_support::services::namespace();
    let session_key = "ab".repeat(64);
    let mut pairs: Vec<(String, String)> = Upstream::ALL.iter().map(|u| (u.variable(), base.clone())).collect();
    pairs.extend([
        ("REDIS_URL".to_owned(), redis_url()),
        ("EMPORIUM_NAMESPACE".to_owned(), namespace),
        ("EMPORIUM_WEB_SESSION_KEY".to_owned(), session_key),
    ]);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let src = test_support::app::test_source(&pairs);
    let settings = emporium::app::Settings::load(&src, "127.0.0.1:0".parse().expect("addr")).expect("settings");
    let router = emporium::gateway_mode::build_gateway(&settings, &src)
        .await
        .expect("gateway");
    let gw = serve(router).await;
    let client = reqwest::Client::new();

    let home = client.get(gw.url("/")).send().await.expect("request");
    assert_eq!(home.status(), 200);
    assert!(header(&home, "content-type").starts_with("text/html"));
    assert!(header(&home, "content-security-policy").contains("script-src 'self'"));
    assert!(header(&home, "ratelimit-limit").parse::<u32>().is_ok());
    let products: Value = client
        .get(gw.url("/api/v1/catalog/products?limit=1"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(products["items"].is_array());
    let ready = client.get(gw.url("/health/ready")).send().await.expect("request");
    assert_eq!(ready.status(), 200);

    // Without the session key a gateway replica would not read another's cookies: refused.
    let no_key = test_support::app::test_source(&pairs[..pairs.len() - 1]);
    let err = emporium::gateway_mode::build_gateway(&settings, &no_key)
        .await
        .expect_err("the key is required");
    assert!(err.to_string().contains("EMPORIUM_WEB_SESSION_KEY"), "{err}");
}

#[tokio::test]
async fn the_gateway_binary_names_what_is_missing_and_exits_2() {
    let run = |extra: Vec<(String, String)>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EMPORIUM_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .envs(extra)
            .args(["serve", "--service", "gateway", "--listen", "127.0.0.1:0"])
            .kill_on_drop(true);
        async move { cmd.output().await.expect("run") }
    };
    let out = run(Vec::new()).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("EMPORIUM_UPSTREAM_IDENTITY"), "{stderr}");

    let upstreams: Vec<(String, String)> = Upstream::ALL
        .iter()
        .map(|u| (u.variable(), "http://127.0.0.1:9".to_owned()))
        .collect();
    let out = run(upstreams).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REDIS_URL"), "the shared limiter needs Redis: {stderr}");
}

/// A context that accepts connections and never answers (hung, not down).
async fn hung_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn pages_share_the_proxys_deadline_and_breaker_when_a_context_hangs() {
    if !service_reachable("Redis", &redis_url()).await {
        return;
    }
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let (hung, hung_task) = hung_upstream().await;
    let base = format!("http://{}", app.addr);
    let mut pairs: Vec<(String, String)> = Upstream::ALL
        .iter()
        .map(|u| {
            (
                u.variable(),
                if *u == Upstream::Catalog {
                    hung.clone()
                } else {
                    base.clone()
                },
            )
        })
        .collect();
    pairs.extend(
        [
            ("REDIS_URL", redis_url()),
            ("EMPORIUM_NAMESPACE", test_support::services::namespace()),
            ("EMPORIUM_WEB_SESSION_KEY", "ab".repeat(64)),
            ("EMPORIUM_UPSTREAM_TIMEOUT_MS", "700".into()),
            ("EMPORIUM_UPSTREAM_RETRIES", "0".into()),
            ("EMPORIUM_BREAKER_FAILURES", "2".into()),
            ("EMPORIUM_BREAKER_OPEN_MS", "60000".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let src = test_support::app::test_source(&pairs);
    let settings = emporium::app::Settings::load(&src, "127.0.0.1:0".parse().expect("addr")).expect("settings");
    let router = emporium::gateway_mode::build_gateway(&settings, &src)
        .await
        .expect("gateway");
    let gw = serve(router).await;
    let client = reqwest::Client::new();

    // Until the breaker opens, a page waits for the upstream deadline (not the pages' own 10 s),
    // and each such failure counts against the breaker the API shares.
    let mut slow_pages = 0;
    let fast = loop {
        let started = Instant::now();
        let page = client.get(gw.url("/")).send().await.expect("request");
        let took = started.elapsed();
        assert_eq!(page.status(), 503);
        assert!(header(&page, "content-type").starts_with("text/html"));
        assert!(
            took < Duration::from_secs(3),
            "the page waited {took:?}, beyond the upstream deadline"
        );
        if took < Duration::from_millis(400) {
            break took;
        }
        assert!(took >= Duration::from_millis(600), "{took:?}");
        slow_pages += 1;
        assert!(slow_pages <= 2, "two failed page loads must open the breaker");
    };
    assert!(slow_pages >= 1, "the first page load waited for the deadline");
    assert!(fast < Duration::from_millis(400));

    // The API clients' calls see the same open breaker.
    let started = Instant::now();
    let r = client
        .get(gw.url("/api/v1/catalog/products"))
        .send()
        .await
        .expect("request");
    assert!(started.elapsed() < Duration::from_millis(400));
    let body = assert_problem(r, 503).await;
    assert!(
        body["detail"].as_str().expect("detail").contains("circuit breaker"),
        "{body}"
    );

    // Pages that need no catalog still work (identity is healthy).
    let login = client.get(gw.url("/login")).send().await.expect("request");
    assert_eq!(login.status(), 200);
    hung_task.abort();
}

/// An upstream that accepts connections and never answers (a SIGSTOPped process, as far as the
/// gateway can tell). Retries must fit in the one upstream deadline: 504 at
/// EMPORIUM_UPSTREAM_TIMEOUT_MS, not one full timeout per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_is_a_504_within_the_upstream_timeout_retries_included() {
    let (addr, hung) = hung_upstream().await;
    let gw = gateway_with(
        &every_upstream_at(&addr),
        &[
            ("EMPORIUM_UPSTREAM_TIMEOUT_MS", "600"),
            ("EMPORIUM_UPSTREAM_RETRIES", "2"),
            ("EMPORIUM_BREAKER_FAILURES", "100"),
        ],
        None,
    )
    .await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let r = client
        .get(gw.url("/api/v1/inventory/SKU-1"))
        .send()
        .await
        .expect("request");
    let elapsed = started.elapsed();
    let body = assert_problem(r, 504).await;
    assert!(body["detail"].as_str().expect("detail").contains("600 ms"), "{body}");
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1100),
        "answered at the upstream deadline, not after one timeout per attempt: {elapsed:?}"
    );
    hung.abort();
}

/// Without EMPORIUM_CORS_ORIGINS a preflight is refused as browsers expect: 403 problem, no
/// CORS headers, never a 405 from the routes; plain OPTIONS requests are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_without_configured_origins_are_refused_clearly() {
    let (upstream, echo) = echo_upstream().await;
    let gw = gateway_with(&every_upstream_at(&upstream.url("")), &[], None).await;
    let client = reqwest::Client::new();
    let r = client
        .request(reqwest::Method::OPTIONS, gw.url("/api/v1/cart/items"))
        .header("origin", "https://elsewhere.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("request");
    assert!(
        !r.headers().keys().any(|k| k.as_str().starts_with("access-control-")),
        "no CORS headers: {:?}",
        r.headers()
    );
    let body = assert_problem(r, 403).await;
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("EMPORIUM_CORS_ORIGINS")
    );
    assert_eq!(echo.hits.load(Ordering::SeqCst), 0, "preflights never reach a context");
}

/// The micro-cache: a public read is answered by the gateway for up to its TTL; a reader with
/// a token, or a read asking for a fresh answer, goes to the context; a write through the
/// gateway drops what was kept of that context at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_are_kept_for_a_moment_and_a_write_through_the_gateway_drops_them() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let gw = gateway_before(&app, &[("EMPORIUM_GATEWAY_CACHE_TTL_MS", "60000")]).await;
    let client = reqwest::Client::new();
    let admin = app.admin().await;
    let id = test_support::requests::product(&app, &admin.access, "EDGE-1", 1500, 0).await;
    let path = format!("/api/v1/catalog/products/{id}");
    let read = |headers: &[(&str, &str)]| {
        let mut request = client.get(gw.url(&path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };

    let first = read(&[]).await.expect("request");
    assert_eq!(first.status(), 200);
    assert!(
        first.headers().get("cache-status").is_none(),
        "the first read went to catalog"
    );
    let first_id = first.headers()["x-request-id"].clone();
    let first: Value = first.json().await.expect("json");

    let second = read(&[]).await.expect("request");
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["cache-status"], "emporium-gateway; hit");
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.headers()["cache-control"], "public, max-age=30");
    assert_ne!(second.headers()["x-request-id"], first_id, "ids belong to this request");
    assert!(
        second.headers().contains_key("x-content-type-options"),
        "the edge's headers still apply"
    );
    assert_eq!(second.json::<Value>().await.expect("json"), first);

    for personal in [
        ("authorization", format!("Bearer {}", admin.access)),
        ("cache-control", "no-cache".into()),
    ] {
        let r = read(&[(personal.0, personal.1.as_str())]).await.expect("request");
        assert_eq!(r.status(), 200);
        assert!(
            r.headers().get("cache-status").is_none(),
            "{} goes to catalog",
            personal.0
        );
    }

    // A write through the gateway: the next read sees it, though the TTL has a minute to run.
    let etag = read(&[("cache-control", "no-cache")]).await.expect("request").headers()["etag"].clone();
    let patched = client
        .patch(gw.url(&path))
        .bearer_auth(&admin.access)
        .header("if-match", etag)
        .json(&json!({"name": "Renamed at the edge"}))
        .send()
        .await
        .expect("request");
    assert_eq!(patched.status(), 200, "{}", patched.text().await.unwrap_or_default());
    let after = read(&[]).await.expect("request");
    assert!(after.headers().get("cache-status").is_none(), "dropped by the write");
    assert_eq!(
        after.json::<Value>().await.expect("json")["name"],
        "Renamed at the edge"
    );

    // Answers with a token are never kept: a private answer is not served to the next reader.
    let mine = client
        .get(gw.url("/api/v1/users/me"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("request");
    assert_eq!(mine.status(), 200);
    let anonymous = client.get(gw.url("/api/v1/users/me")).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_micro_cache_can_be_turned_off_and_keeps_nothing_past_its_ttl() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let client = reqwest::Client::new();
    let admin = app.admin().await;
    let id = test_support::requests::product(&app, &admin.access, "EDGE-2", 900, 0).await;
    let path = format!("/api/v1/catalog/products/{id}");
    let hit = |r: &reqwest::Response| r.headers().contains_key("cache-status");

    let off = gateway_before(&app, &[("EMPORIUM_GATEWAY_CACHE_MB", "0")]).await;
    for _ in 0..2 {
        assert!(!hit(&client.get(off.url(&path)).send().await.expect("request")));
    }

    let short = gateway_before(&app, &[("EMPORIUM_GATEWAY_CACHE_TTL_MS", "300")]).await;
    assert!(!hit(&client.get(short.url(&path)).send().await.expect("request")));
    assert!(hit(&client.get(short.url(&path)).send().await.expect("request")));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        !hit(&client.get(short.url(&path)).send().await.expect("request")),
        "expired"
    );
}
