//! The built-in trace and log console, in the real binary (its telemetry is process-wide, so an
//! app built inside the test process has none): a request shows up in the traces list, as a
//! waterfall and in the logs with a link to its trace; switched off, the pages say how to switch
//! it on and the internal endpoints are gone.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::browser::{signed_in, unescape};
use test_support::app::{METRICS_TOKEN, PASSWORD};
use test_support::requests::access_token;

const ADMIN: &str = "console-admin@example.com";

struct Server {
    base: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

fn emporium(dir: &std::path::Path, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMPORIUM_DATA_DIR", dir)
        .env("EMPORIUM_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env("EMPORIUM_METRICS_TOKEN", METRICS_TOKEN)
        .env("EMPORIUM_ARGON2_MEMORY_KIB", "8192")
        .env("EMPORIUM_ARGON2_ITERATIONS", "1")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// The embedded binary with an administrator, ready.
async fn start(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("tmp");
    let mut create = emporium(dir.path(), extra)
        .args(["admin", "create", "--email", ADMIN])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = create.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .expect("write");
    drop(stdin);
    assert!(create.wait().await.expect("wait").success(), "admin create failed");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let child = emporium(dir.path(), extra)
        .env("EMPORIUM_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Server {
                base,
                _child: child,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not become ready");
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser signed in as the administrator through the login form.
    async fn admin(&self) -> reqwest::Client {
        signed_in(&self.base, ADMIN, PASSWORD).await
    }
}

async fn page(browser: &reqwest::Client, url: String) -> (u16, String) {
    let r = browser.get(url).send().await.expect("request");
    (r.status().as_u16(), unescape(&r.text().await.expect("body")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_appears_in_traces_its_waterfall_and_the_logs() {
    let server = start(&[]).await;
    let shopper = reqwest::Client::new();
    let r = shopper
        .get(server.url("/api/v1/catalog/products?limit=1"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let trace_id = r.headers()["x-trace-id"].to_str().expect("trace id").to_owned();
    let admin = server.admin().await;

    let (status, html) = page(&admin, server.url("/admin/traces")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&format!(r#"href="/admin/traces/{trace_id}""#)), "{html}");
    assert!(html.contains("GET /api/v1/catalog/products"), "{html}");
    assert!(!html.contains("GET /health/ready"), "probes are left out: {html}");
    // The filters: route, status, minimum duration; a bad one is a 422 naming the field.
    let (_, html) = page(&admin, server.url("/admin/traces?route=catalog/products&status=ok")).await;
    assert!(html.contains(&trace_id), "{html}");
    let (_, html) = page(&admin, server.url("/admin/traces?status=error")).await;
    assert!(!html.contains(&trace_id), "a 200 is not an error: {html}");
    let (_, html) = page(&admin, server.url("/admin/traces?min_ms=600000")).await;
    assert!(!html.contains(&trace_id), "{html}");
    let (status, html) = page(&admin, server.url("/admin/traces?min_ms=soon")).await;
    assert_eq!(status, 422);
    assert!(html.contains(r#"id="error-min_ms""#), "{html}");

    // The waterfall: the request span first, its database spans under it, and its log line.
    let (status, html) = page(&admin, server.url(&format!("/admin/traces/{trace_id}"))).await;
    assert_eq!(status, 200, "{html}");
    let rows: Vec<&str> = html.split(r#"data-testid="span-row""#).skip(1).collect();
    assert!(rows.len() >= 2, "a request and at least one query: {html}");
    assert!(rows[0].contains(r#"data-depth="0""#) && rows[0].contains("GET /api/v1/catalog/products"));
    assert!(rows[1..].iter().all(|r| !r.contains(r#"data-depth="0""#)), "{html}");
    assert!(html.contains(r#"data-testid="span-bar""#));
    assert!(html.contains("http.route"), "attributes are listed: {html}");
    assert!(html.contains(&format!(r#"href="/admin/logs?trace_id={trace_id}""#)));
    assert!(html.contains("GET /api/v1/catalog/products -> 200"), "{html}");

    // The logs: filtered by the trace, the line links back to it.
    let (status, html) = page(&admin, server.url(&format!("/admin/logs?trace_id={trace_id}"))).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("GET /api/v1/catalog/products -> 200"), "{html}");
    assert!(html.contains(&format!(
        r#"href="/admin/traces/{trace_id}" data-testid="log-trace-link""#
    )));
    let (_, html) = page(&admin, server.url("/admin/logs?level=error")).await;
    assert!(!html.contains(&trace_id), "an INFO line is not an error: {html}");
    let (status, html) = page(&admin, server.url("/admin/logs?level=loud&trace_id=xyz")).await;
    assert_eq!(status, 422);
    assert!(
        html.contains(r#"id="error-level""#) || html.contains(r#"id="error-trace_id""#),
        "{html}"
    );
    let (status, _) = page(&admin, server.url("/admin/traces/not-a-trace-id")).await;
    assert_eq!(status, 404);

    // The status page has its charts, fed by the history.
    let (_, html) = page(&admin, server.url("/admin/status")).await;
    assert!(html.contains("data-status-charts"), "{html}");
    let history: serde_json::Value = admin
        .get(server.url("/admin/status/history.json"))
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history["enabled"], true);
    assert!(history["contexts"]["catalog"].is_array(), "{history}");

    // The internal endpoint wants the scrape token.
    let r = shopper
        .get(server.url("/internal/console/traces"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let r = shopper
        .get(server.url(&format!("/internal/console/traces/{trace_id}")))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["spans"].as_array().is_some_and(|s| s.len() >= 2), "{body}");
}

/// A request that fails is an error trace: highlighted in the list, found by `status=error`, its
/// span marked, and its ERROR line linked. The failure is a real one: the catalog-latency fault
/// makes one product slower than the request deadline, so its read is cut off with a 503. While
/// the flag is on, the admin overview and status page carry the faults banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_an_error_trace_highlighted_in_the_list() {
    let server = start(&[("EMPORIUM_REQUEST_TIMEOUT_MS", "2000")]).await;
    let shopper = reqwest::Client::new();
    let listed: serde_json::Value = shopper
        .get(server.url("/api/v1/catalog/products?limit=1"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = listed["items"][0]["id"].as_str().expect("a demo product").to_owned();
    let token = access_token(&shopper, &server.base, ADMIN).await;
    let set = |flags: serde_json::Value| {
        shopper
            .put(server.url("/api/v1/admin/faults"))
            .bearer_auth(&token)
            .json(&flags)
            .send()
    };
    let admin = server.admin().await;
    let r = set(serde_json::json!({"catalog_latency": {"product": id, "ms": 4000}}))
        .await
        .expect("faults");
    assert_eq!(r.status(), 200);
    // While a flag is on, the overview and the status page say so.
    for path in ["/admin", "/admin/status"] {
        let (_, html) = page(&admin, server.url(path)).await;
        assert!(
            html.contains(r#"data-testid="faults-banner""#) && html.contains("catalog_latency"),
            "{path} shows the faults banner: {html}"
        );
    }
    let r = shopper
        .get(server.url(&format!("/api/v1/catalog/products/{id}")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 503, "cut off at the deadline");
    let trace_id = r.headers()["x-trace-id"].to_str().expect("trace id").to_owned();
    assert_eq!(set(serde_json::json!({})).await.expect("faults").status(), 200);
    let (_, html) = page(&admin, server.url("/admin")).await;
    assert!(
        !html.contains(r#"data-testid="faults-banner""#),
        "cleared, no banner: {html}"
    );

    let (_, html) = page(&admin, server.url("/admin/traces?status=error")).await;
    let row = html
        .split(r#"data-testid="trace-row""#)
        .find(|row| row.contains(&trace_id))
        .unwrap_or_else(|| panic!("the failed request is listed as an error: {html}"));
    assert!(
        row.contains(r#"data-error="true""#) && row.contains("row-error"),
        "{row}"
    );
    assert!(row.contains("503"), "{row}");
    let (_, html) = page(&admin, server.url("/admin/traces?status=ok")).await;
    assert!(!html.contains(&trace_id), "not among the good ones: {html}");
    let (_, html) = page(&admin, server.url(&format!("/admin/traces/{trace_id}"))).await;
    assert!(html.contains(r#"data-error="true""#), "its span is marked: {html}");
    assert!(html.contains("failed with 503"), "its ERROR line is there: {html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_the_pages_explain_and_the_endpoints_are_gone() {
    let server = start(&[("EMPORIUM_CONSOLE", "off")]).await;
    let admin = server.admin().await;
    for path in [
        "/admin/traces",
        "/admin/logs",
        "/admin/traces/4bf92f3577b34da6a3ce929d0e0e4736",
    ] {
        let (status, html) = page(&admin, server.url(path)).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.contains(r#"data-testid="console-off""#), "{path}: {html}");
        assert!(html.contains("EMPORIUM_CONSOLE=on"), "{path}: {html}");
    }
    let (_, html) = page(&admin, server.url("/admin/status")).await;
    assert!(
        html.contains("EMPORIUM_CONSOLE=on") && !html.contains("data-status-charts"),
        "{html}"
    );
    let r = reqwest::Client::new()
        .get(server.url("/internal/console/traces"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
}
