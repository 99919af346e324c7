//! Platform behaviour every context shares, seen from outside: health, metrics, docs, errors,
//! request ids.

use std::process::Command;

use serde_json::Value;

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::assert_problem;

on_both_backends!(
    health_endpoints_report_liveness_and_readiness,
    readiness_names_a_failing_database,
    metrics_are_labelled_by_route_template_and_pass_promtool,
    openapi_document_is_3_1_and_covers_every_route,
    docs_page_is_served_from_the_binary,
    unknown_routes_and_methods_are_problems,
    request_ids_are_echoed_or_generated,
    pages_are_counted_under_their_route_template_and_the_web_service,
    former_summaries_are_histograms_with_buckets,
    pool_metrics_are_reported_per_context,
);

async fn scrape(app: &TestApp) -> String {
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(test_support::app::METRICS_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    r.text().await.expect("text")
}

async fn pages_are_counted_under_their_route_template_and_the_web_service(app: TestApp) {
    for path in ["/", "/p/no-such-product", "/admin/users", "/static/app.css"] {
        app.client.get(app.url(path)).send().await.expect("request");
    }
    let text = scrape(&app).await;
    for route in ["/", "/p/{slug}", "/admin/users", "/static/{name}"] {
        let series = format!(r#"http_requests_total{{service="web",method="GET",route="{route}","#);
        assert!(text.contains(&series), "no {series} in\n{text}");
    }
    assert!(
        !text.contains(r#"route="/p/no-such-product""#),
        "raw page paths must not become labels"
    );
}

/// The latency and value distributions once exported as summaries (per-replica quantiles that
/// cannot be aggregated): each must be a histogram with `_bucket` series once a checkout ran.
const FORMER_SUMMARIES: [&str; 7] = [
    "order_saga_step_duration_seconds",
    "service_client_duration_seconds",
    "payment_provider_call_duration_seconds",
    "events_handle_duration_seconds",
    "notifications_delivery_duration_seconds",
    "order_value_minor_units",
    "payment_amount",
];

async fn former_summaries_are_histograms_with_buckets(app: TestApp) {
    use test_support::requests::{json_of, product};
    use test_support::shop::{SUCCESS_CARD, card, order_body, place, wait_for_status};

    let admin = app.admin().await;
    product(&app, &admin.access, "HIST-1", 1250, 5).await;
    let user = app.signed_up("histograms@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let r = place(
        &app,
        &user.access,
        "hist-1",
        &order_body(serde_json::json!([{"sku": "HIST-1", "quantity": 2}]), &pm),
    )
    .await;
    let order = json_of(r, 201).await;
    let id = order["id"].as_str().expect("id");
    wait_for_status(&app, &user.access, id, "confirmed", 30).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = scrape(&app).await;
        let missing: Vec<&str> = FORMER_SUMMARIES
            .iter()
            .copied()
            .filter(|name| {
                !text.contains(&format!("# TYPE {name} histogram")) || !text.contains(&format!("{name}_bucket{{"))
            })
            .collect();
        if missing.is_empty() {
            assert!(!text.contains(" summary\n"), "no summaries are left:\n{text}");
            assert!(!text.contains("quantile=\""), "no quantiles are left:\n{text}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not histograms (or never recorded): {missing:?}\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn pool_metrics_are_reported_per_context(app: TestApp) {
    let contexts = [
        "identity",
        "catalog",
        "inventory",
        "cart",
        "payments",
        "ordering",
        "notifications",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(&app).await;
        let value = |metric: &str, context: &str| -> Option<f64> {
            let prefix = format!(r#"{metric}{{context="{context}"}} "#);
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.trim().parse().ok())
        };
        let mut missing = Vec::new();
        for context in contexts {
            let size = value("db_pool_connections", context);
            let idle = value("db_pool_connections_idle", context);
            let in_use = value("db_pool_connections_in_use", context);
            let max = value("db_pool_max_connections", context);
            match (size, idle, in_use, max) {
                (Some(size), Some(idle), Some(in_use), Some(max)) => {
                    assert!(max >= 1.0 && size <= max, "{context}: {size} of {max}");
                    assert_eq!(idle + in_use, size, "{context}: idle + in use = size");
                }
                _ => missing.push(format!("{context} gauges")),
            }
            let probe = format!(r#"db_pool_acquire_duration_seconds_bucket{{context="{context}",le="#);
            if !text.contains(&probe) {
                missing.push(format!("{context} acquire wait"));
            }
        }
        if missing.is_empty() {
            assert!(text.contains("# TYPE db_pool_acquire_duration_seconds histogram"));
            return;
        }
        assert!(std::time::Instant::now() < deadline, "missing {missing:?}:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Production shape (PostgreSQL, RabbitMQ): each consumer reports its connection, its queue's
/// depth and its unacknowledged deliveries; the relay reports its publishing connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_metrics_are_reported_per_consumer() {
    let Some(app) = test_support::app::spawn_app(Backend::Postgres).await else {
        return;
    };
    // Signing up publishes identity events that other contexts consume.
    app.signed_up("broker-metrics@example.com").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = scrape(&app).await;
        let connected = text
            .lines()
            .filter(|l| l.starts_with("events_broker_connected{") && l.ends_with(" 1"))
            .count();
        let ready = connected >= 3
            && text.contains("events_queue_depth{context=\"")
            && text.contains("events_consumer_unacked{context=\"")
            && text.lines().any(|l| l == "events_broker_publisher_connected 1");
        if ready {
            for line in text.lines().filter(|l| l.starts_with("events_queue_depth{")) {
                assert!(
                    line.contains(",consumer=\""),
                    "labelled by context and consumer: {line}"
                );
            }
            return;
        }
        assert!(std::time::Instant::now() < deadline, "broker metrics missing:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A source check: every `metrics::histogram!` the workspace records has buckets configured, so
/// none falls back to a summary.
#[test]
fn every_recorded_histogram_has_buckets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let configured: Vec<&str> = platform::metrics::HISTOGRAMS.iter().map(|(n, _)| *n).collect();
    for name in FORMER_SUMMARIES {
        assert!(configured.contains(&name), "{name} has no buckets");
    }
    let mut stack = vec![root.join("crates")];
    let mut found = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("target") && !path.ends_with("tests") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            for (i, _) in text.match_indices("metrics::histogram!(") {
                // Names given as a literal (`HTTP_DURATION` is a constant in the list itself).
                let Some(rest) = text[i + "metrics::histogram!(".len()..].trim_start().strip_prefix('"') else {
                    continue;
                };
                let name = rest.split('"').next().unwrap_or_default();
                found += 1;
                assert!(
                    configured.contains(&name),
                    "{name} ({}) is recorded without buckets: add it to platform::metrics::HISTOGRAMS",
                    path.display()
                );
            }
        }
    }
    assert!(found >= 9, "the scan found only {found} histograms");
}

async fn health_endpoints_report_liveness_and_readiness(app: TestApp) {
    let live = app.client.get(app.url("/health/live")).send().await.expect("request");
    assert_eq!(live.status(), 200);
    let ready: Value = app.get_json("/health/ready").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["identity.database"]["status"], "up");
}

async fn readiness_names_a_failing_database(app: TestApp) {
    app.db.close().await;
    let r = app.client.get(app.url("/health/ready")).send().await.expect("request");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["identity.database"]["status"], "down");
    assert!(body["checks"]["identity.database"]["error"].is_string());
    // Liveness does not depend on dependencies.
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
}

fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn metrics_are_labelled_by_route_template_and_pass_promtool(app: TestApp) {
    let user = app.signed_up("metrics@example.com").await;
    app.get_auth("/api/v1/users/me", &user.access).await;
    app.get_auth(&format!("/api/v1/users/{}", uuid::Uuid::now_v7()), &user.access)
        .await;
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(test_support::app::METRICS_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(text.contains("# TYPE http_requests_total counter"), "{text}");
    assert!(
        text.contains(r#"service="identity",method="GET",route="/api/v1/users/me",status="2xx""#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/users/{id}",status="4xx""#),
        "route templates, not raw ids"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("identity_logins_total"));
    assert!(text.contains("emporium_build_info"));
    assert!(text.contains("process_resident_memory_bytes"));

    if !promtool_available() {
        assert!(
            std::env::var("CI").is_err(),
            "promtool is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED promtool check: promtool not installed (apt-get install prometheus)");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, &text).expect("write");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", path.display()))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn openapi_document_is_3_1_and_covers_every_route(app: TestApp) {
    let doc: Value = app.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/resend-verification",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/forgot-password",
        "/api/v1/auth/reset-password",
        "/api/v1/auth/audit-events",
        "/api/v1/auth/signing-keys/rotate",
        "/.well-known/jwks.json",
        "/api/v1/users/me",
        "/api/v1/users/me/password",
        "/api/v1/users/me/sessions",
        "/api/v1/users/me/sessions/{id}",
        "/api/v1/users/me/addresses",
        "/api/v1/catalog/products/{id}/recommendations",
        "/api/v1/catalog/recommendations",
        "/api/v1/catalog/rates",
        "/api/v1/catalog/rates/{currency}",
        "/api/v1/users/me/addresses/{id}",
        "/api/v1/users/me/addresses/{id}/default",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/users/{id}/role",
        "/api/v1/users/{id}/status",
        "/api/v1/dev/mailbox",
        "/health/live",
        "/health/ready",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

async fn docs_page_is_served_from_the_binary(app: TestApp) {
    let r = app.client.get(app.url("/docs")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("script-src 'self'")
    );
    let page = r.text().await.expect("html");
    for src in [
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/init.js",
    ] {
        assert!(page.contains(src));
        let asset = app.client.get(app.url(src)).send().await.expect("request");
        assert_eq!(asset.status(), 200, "{src}");
        assert!(asset.bytes().await.expect("body").len() > 100);
    }
    // Swagger UI is kept gzipped: a browser gets it as it is, a client without gzip unpacked.
    let src = app.url("/docs/assets/swagger-ui-bundle.js");
    let plain = app.client.get(&src).send().await.expect("request");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.expect("body");
    let gzipped = app
        .client
        .get(&src)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .expect("request");
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["vary"], "accept-encoding");
    let gzipped = gzipped.bytes().await.expect("body");
    assert_eq!(&gzipped[..2], [0x1f, 0x8b], "a gzip stream");
    assert!(gzipped.len() * 2 < plain.len(), "{} vs {}", gzipped.len(), plain.len());
    assert!(
        !page.contains("https://"),
        "the page must not load anything from another origin"
    );
}

async fn unknown_routes_and_methods_are_problems(app: TestApp) {
    assert_problem(
        app.client.get(app.url("/no/such/thing")).send().await.expect("request"),
        404,
    )
    .await;
    assert_problem(
        app.client
            .delete(app.url("/api/v1/auth/login"))
            .send()
            .await
            .expect("request"),
        405,
    )
    .await;
}

async fn request_ids_are_echoed_or_generated(app: TestApp) {
    let r = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("request");
    assert_eq!(r.headers()["x-request-id"], "trace-me-123");
    let r = app
        .client
        .get(app.url("/health/live"))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .expect("request");
    let generated = r.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    // Problems quote the request id too.
    let problem = assert_problem(
        app.client
            .get(app.url("/nope"))
            .header("x-request-id", "abc")
            .send()
            .await
            .expect("request"),
        404,
    )
    .await;
    assert_eq!(problem["request_id"], "abc");
    assert_eq!(problem["instance"], "/nope");
}

#[tokio::test]
async fn production_mode_has_no_dev_mailbox() {
    // Without the dev mailbox, notifications needs a mail server (never contacted here).
    let Some(app) = spawn_app_with(Backend::Sqlite, &[("EMPORIUM_SMTP_URL", "smtp://127.0.0.1:9")], false).await else {
        return;
    };
    assert_problem(
        app.client
            .get(app.url("/api/v1/dev/mailbox"))
            .send()
            .await
            .expect("request"),
        404,
    )
    .await;
    let doc: Value = app.get_json("/openapi.json").await;
    assert!(doc["paths"].get("/api/v1/dev/mailbox").is_none());
}

/// The figures on /metrics (orders, payments, login outcomes) are business data: the public
/// listener serves them only for the configured scrape token, and not at all without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_only_to_the_scrape_token() {
    let Some(app) = test_support::app::spawn_app(Backend::Sqlite).await else {
        return;
    };
    let get = |auth: Option<&'static str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    assert_problem(get(None).await.expect("request"), 401).await;
    assert_problem(get(Some("Bearer guess")).await.expect("request"), 401).await;
    let ok = get(Some("Bearer test-metrics-scrape-token")).await.expect("request");
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.expect("text").contains("http_requests_total"));

    let Some(open) = spawn_app_with(Backend::Sqlite, &[("EMPORIUM_METRICS_TOKEN", "")], true).await else {
        return;
    };
    let r = open
        .client
        .get(open.url("/metrics"))
        .bearer_auth("anything")
        .send()
        .await
        .expect("request");
    let body = assert_problem(r, 403).await;
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("EMPORIUM_METRICS_TOKEN")
    );
}

/// A hostile client must not be able to grow the metric series: made-up methods fold into
/// `other`, and query strings never become labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_series_stay_bounded_whatever_clients_send() {
    let Some(app) = test_support::app::spawn_app(Backend::Sqlite).await else {
        return;
    };
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .bearer_auth(test_support::app::METRICS_TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    // Only this test invents methods, so its series are the ones labelled `other` (other tests
    // share the process-wide recorder and add series of their own meanwhile).
    let other_series = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(r#"method="other""#))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
            .collect()
    };
    let paths = ["/api/v1/catalog/products", "/search", "/no/such/path"];
    let send = |i: usize, method: String, query: String| {
        let url = app.url(&format!("{}?{query}", paths[i % paths.len()]));
        app.client
            .request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), url)
            .send()
    };
    // Warm up: every path once with an invented method and once with a query.
    for i in 0..paths.len() {
        send(i, "WARMUP".into(), "q=warm".into()).await.expect("request");
        send(i, "GET".into(), "q=warm".into()).await.expect("request");
    }
    let before = scrape().await;
    let mut tokens = Vec::new();
    for i in 0..1000 {
        let token = format!("zq{}x{i}", uuid::Uuid::now_v7().simple());
        let (method, query) = if i % 2 == 0 {
            (format!("M{}", token.to_ascii_uppercase()), "limit=1".to_owned())
        } else {
            ("GET".to_owned(), format!("q={token}&{token}={token}"))
        };
        send(i, method, query).await.expect("request");
        tokens.push(token);
    }
    let after = scrape().await;
    assert_eq!(
        other_series(&after),
        other_series(&before),
        "made-up methods created new series"
    );
    let lower = after.to_ascii_lowercase();
    for token in &tokens {
        assert!(!lower.contains(token.as_str()), "{token} became a label");
    }
}

/// The served document says what the server sends: error bodies as application/problem+json,
/// and the refusals the shared stack gives (schemathesis ST103/ST105 used to flag both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_error_responses_are_problem_json_and_list_the_standard_refusals() {
    let Some(app) = test_support::app::spawn_app(Backend::Sqlite).await else {
        return;
    };
    let doc: Value = app.get_json("/openapi.json").await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            operations += 1;
            let at = format!("{method} {path}");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let types: Vec<&String> = response["content"]
                        .as_object()
                        .map(|c| c.keys().collect())
                        .unwrap_or_default();
                    assert_eq!(types, ["application/problem+json"], "{at} {status}");
                }
            }
            let has = |status: &str| responses.contains_key(status);
            if op["requestBody"].is_object() {
                assert!(has("400") && has("415") && has("422"), "{at}");
            }
            let secured = op["security"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r.as_object().is_some_and(|o| !o.is_empty())));
            if secured {
                assert!(has("401") && has("403"), "{at}");
            }
            if path.starts_with("/api/") {
                assert!(has("429"), "{at}");
            }
        }
    }
    assert!(operations > 50, "only {operations} operations");
}

/// The real binary with JSON logs: a response names its trace (`x-trace-id`, W3C
/// `traceresponse`), the access-log line carries the same `trace_id`, and each line holds each
/// span field once, with no empty ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_name_their_trace_and_log_lines_are_lean() {
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let log_path = dir.path().join("out.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMPORIUM_DATA_DIR", dir.path().join("data"))
        .env("EMPORIUM_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("EMPORIUM_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if client.get(format!("{base}/health/live")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not start");

    // A caller's trace is continued and named back.
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = client
        .get(format!("{base}/health/live"))
        .header("traceparent", format!("00-{caller}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.headers()["x-trace-id"], caller);
    let traceresponse = r.headers()["traceresponse"].to_str().expect("ascii").to_owned();
    let parts: Vec<&str> = traceresponse.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceresponse}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", caller, "01"), "{traceresponse}");
    assert!(
        parts[2].len() == 16 && parts[2] != "00f067aa0ba902b7",
        "the server's own span id: {traceresponse}"
    );

    // Without one, a new trace is started; a page is a request like any other.
    let r = client.get(format!("{base}/")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    let trace_id = r.headers()["x-trace-id"].to_str().expect("ascii").to_owned();
    assert!(
        trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace_id}"
    );
    assert!(
        r.headers()["traceresponse"]
            .to_str()
            .expect("ascii")
            .contains(&trace_id)
    );

    let mut access = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        access = text
            .lines()
            .find(|l| l.contains(&format!(r#""trace_id":"{trace_id}""#)) && l.contains(r#""message":"GET / -> 200""#))
            .map(str::to_owned);
        if access.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.start_kill();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let access = access.unwrap_or_else(|| panic!("no access-log line with trace_id {trace_id}:\n{text}"));
    let line: Value = serde_json::from_str(&access).expect("a JSON line");
    assert_eq!(line["trace_id"], trace_id.as_str());
    assert_eq!(line["http.route"], "/");
    assert!(line["request_id"].is_string(), "{access}");
    assert!(line.get("spans").is_none(), "the span list is not repeated: {access}");
    for key in ["trace_id", "request_id", "http.route", "url.path"] {
        assert_eq!(
            access.matches(&format!("\"{key}\":")).count(),
            1,
            "{key} once: {access}"
        );
    }
    assert!(!access.contains(":\"\""), "no empty fields: {access}");
    assert!(!access.contains("\"otel."), "no exporter-only fields: {access}");
    assert!(access.len() < 450, "{} bytes: {access}", access.len());
}
