//! Outbound webhooks through the whole app, on both backends, delivered to a receiver the test
//! runs on 127.0.0.1 (so these apps allow private targets): Standard Webhooks signatures checked
//! with the endpoint's secret, a receiver that is down and comes back, one that answers too
//! slowly, a redirect not followed, the delivery log with status codes and latency, replay,
//! secret rotation with both signatures during the overlap, and an endpoint disabled after a run
//! of failures with a mail to the alert list. The refusals (SSRF, schemes, filters) run on apps
//! with the default policy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::{assert_problem, json_of, post_auth, problem_fields, product};

use notifications::webhooks::domain::signature;

const ENDPOINTS: &str = "/api/v1/notifications/webhooks/endpoints";
const ALERTS: &str = "ops@example.com";

test_support::on_both_backends!(
    super::spawn =>
    deliveries_are_signed_retried_logged_replayed_and_rotated,
);

/// Quick retries; an endpoint is switched off only after `disable_after` failures in a row.
async fn spawn_with(backend: Backend, disable_after: &str) -> Option<TestApp> {
    spawn_app_with(
        backend,
        &[
            ("EMPORIUM_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("EMPORIUM_WEBHOOK_RETRY_SCHEDULE", "0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3"),
            ("EMPORIUM_WEBHOOK_TIMEOUT_MS", "1500"),
            ("EMPORIUM_WEBHOOK_DISABLE_AFTER_FAILURES", disable_after),
            ("EMPORIUM_WEBHOOK_DISABLE_AFTER_SECS", "0"),
            ("EMPORIUM_ALERT_EMAILS", ALERTS),
        ],
        true,
    )
    .await
}

/// Outages in this test must not switch the endpoint off.
async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, "1000").await
}

mod disabling {
    use super::*;

    test_support::on_both_backends!(
        super::spawn_strict =>
        a_failing_endpoint_is_disabled_and_the_alert_list_is_told,
    );

    async fn spawn_strict(backend: Backend) -> Option<TestApp> {
        spawn_with(backend, "3").await
    }
}

/// What the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Behaviour {
    status: u16,
    delay: Duration,
    redirect_to: Option<String>,
    got: Vec<Received>,
}

/// A webhook receiver on 127.0.0.1: answers `status` after `delay`, records every request, and
/// can be stopped (connections refused) and started again on the same port.
struct Receiver {
    port: u16,
    state: Arc<Mutex<Behaviour>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Self {
        let mut r = Self {
            port: 0,
            state: Arc::new(Mutex::new(Behaviour {
                status: 200,
                ..Behaviour::default()
            })),
            task: None,
        };
        r.listen().await;
        r
    }

    async fn listen(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind receiver");
        self.port = listener.local_addr().expect("addr").port();
        let state = self.state.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let (status, delay, redirect) = {
                    let s = state.lock().expect("lock");
                    (s.status, s.delay, s.redirect_to.clone())
                };
                tokio::time::sleep(delay).await;
                state.lock().expect("lock").got.push(Received { headers, body });
                let status = StatusCode::from_u16(status).expect("status");
                // No keep-alive: a stopped receiver must refuse, not answer on an old connection.
                let mut response = (status, [("connection", "close")]).into_response();
                if let Some(to) = redirect {
                    response.headers_mut().insert("location", to.parse().expect("location"));
                }
                response
            }
        });
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.lock().expect("lock"));
    }

    fn got(&self) -> Vec<Received> {
        self.state.lock().expect("lock").got.clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} deliveries, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Verifies a delivery as a receiver would, with `secret`: one of the `v1,` signatures matches.
fn signed_with(r: &Received, secret: &str) -> bool {
    let id = header(r, "webhook-id");
    let timestamp: i64 = header(r, "webhook-timestamp").parse().expect("timestamp");
    let expected = signature(secret, id, timestamp, &r.body);
    header(r, "webhook-signature").split(' ').any(|s| s == expected)
}

async fn register(app: &TestApp, admin: &str, url: &str, types: Value) -> Value {
    json_of(
        post_auth(
            app,
            ENDPOINTS,
            admin,
            json!({"url": url, "event_types": types, "description": "ERP"}),
        )
        .await,
        201,
    )
    .await
}

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    json_of(app.get_auth(path, token).await, 200).await
}

/// Waits until the endpoint's message about product `sku` satisfies `done`, returning it with
/// its attempts (the event reaches the queue asynchronously, so it is looked up by its payload).
async fn wait_for_message(
    app: &TestApp,
    admin: &str,
    endpoint: &str,
    sku: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let list = get(app, &format!("{ENDPOINTS}/{endpoint}/messages"), admin).await;
        for item in list["items"].as_array().into_iter().flatten() {
            let path = format!("{ENDPOINTS}/{endpoint}/messages/{}", item["id"].as_str().expect("id"));
            let detail = get(app, &path, admin).await;
            if detail["payload"]["data"]["sku"] == sku && done(&detail) {
                return detail;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message about {sku} never got there: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliveries_are_signed_retried_logged_replayed_and_rotated(app: TestApp) {
    let admin = app.admin().await;
    let mut receiver = Receiver::start().await;
    let endpoint = register(&app, &admin.access, &receiver.url(), json!(["catalog.product.created"])).await;
    let id = endpoint["id"].as_str().expect("id").to_owned();
    let secret = endpoint["secret"].as_str().expect("secret shown once").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let listed = get(&app, ENDPOINTS, &admin.access).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert!(
        listed["items"][0].get("secret").is_none(),
        "the secret is never shown again"
    );

    // Delivered, signed, in the Standard Webhooks shape; events it did not ask for are not sent.
    product(&app, &admin.access, "HOOK-1", 1000, 0).await;
    let got = receiver.wait_for(1).await;
    let first = &got[0];
    assert!(header(first, "webhook-id").starts_with("msg_"));
    let sent_at: i64 = header(first, "webhook-timestamp").parse().expect("timestamp");
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - sent_at).abs() < 30);
    assert!(
        signed_with(first, &secret),
        "signature: {}",
        header(first, "webhook-signature")
    );
    assert!(!signed_with(first, "whsec_b3RoZXIgc2VjcmV0IG90aGVyIHNlY3JldA=="));
    let body: Value = serde_json::from_slice(&first.body).expect("json body");
    assert_eq!(body["type"], "catalog.product.created");
    assert_eq!(body["data"]["sku"], "HOOK-1", "{body}");
    let delivered = wait_for_message(&app, &admin.access, &id, "HOOK-1", |m| m["status"] == "delivered").await;
    assert_eq!(delivered["last_status"], 200);
    assert_eq!(delivered["webhook_id"], header(first, "webhook-id"));
    let log = delivered["attempt_log"].as_array().expect("attempts");
    let last = log.last().expect("an attempt");
    assert_eq!(last["status_code"].as_u64(), Some(200));
    assert!(last["latency_ms"].as_i64().is_some_and(|ms| ms >= 0));
    let first_message = delivered["id"].as_str().expect("id").to_owned();

    // Down, then back: the retries bring it.
    receiver.stop();
    product(&app, &admin.access, "HOOK-2", 1000, 0).await;
    let failing = wait_for_message(&app, &admin.access, &id, "HOOK-2", |m| {
        m["attempts"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(failing["status"], "pending", "{failing}");
    let refused = &failing["attempt_log"][0];
    assert!(refused.get("status_code").is_none(), "{refused}");
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("no connection")),
        "{refused}"
    );
    receiver.listen().await;
    let back = wait_for_message(&app, &admin.access, &id, "HOOK-2", |m| m["status"] == "delivered").await;
    assert!(back["attempts"].as_u64() >= Some(3), "{back}");
    let ids: std::collections::BTreeSet<String> = receiver
        .got()
        .iter()
        .map(|r| header(r, "webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "one message per event, however many attempts");

    // Too slow: the attempt times out and is retried.
    receiver.set(|b| b.delay = Duration::from_millis(4000));
    product(&app, &admin.access, "HOOK-3", 1000, 0).await;
    let slow = wait_for_message(&app, &admin.access, &id, "HOOK-3", |m| {
        m["attempts"].as_u64() >= Some(1)
    })
    .await;
    assert!(
        slow["attempt_log"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer within 1500 ms")),
        "{slow}"
    );
    receiver.set(|b| b.delay = Duration::ZERO);
    wait_for_message(&app, &admin.access, &id, "HOOK-3", |m| m["status"] == "delivered").await;

    // A redirect is not followed (it could point anywhere, a private address included).
    receiver.set(|b| {
        b.status = 302;
        b.redirect_to = Some("http://10.0.0.1/steal".into());
    });
    let before = receiver.got().len();
    product(&app, &admin.access, "HOOK-4", 1000, 0).await;
    let redirected = wait_for_message(&app, &admin.access, &id, "HOOK-4", |m| {
        m["attempts"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(redirected["attempt_log"][0]["status_code"], 302, "{redirected}");
    assert!(
        redirected["attempt_log"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirects are not followed"))
    );
    receiver.set(|b| {
        b.status = 200;
        b.redirect_to = None;
    });
    wait_for_message(&app, &admin.access, &id, "HOOK-4", |m| m["status"] == "delivered").await;
    assert!(receiver.got().len() > before);

    // Replay: the same message again, with the same webhook-id (counted before asking: the
    // worker is woken at once and may deliver before the answer is read).
    let count = receiver.got().len();
    let replayed = json_of(
        post_auth(
            &app,
            &format!("{ENDPOINTS}/{id}/messages/{first_message}/replay"),
            &admin.access,
            json!({}),
        )
        .await,
        202,
    )
    .await;
    assert!(
        matches!(replayed["status"].as_str(), Some("pending" | "delivered")),
        "{replayed}"
    );
    let got = receiver.wait_for(count + 1).await;
    assert_eq!(
        header(got.last().expect("replayed"), "webhook-id"),
        header(first, "webhook-id")
    );

    // Rotation: a new secret shown once, both signing during the overlap.
    let rotated = json_of(
        post_auth(
            &app,
            &format!("{ENDPOINTS}/{id}/rotate-secret"),
            &admin.access,
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_valid_until"].is_string(), "{rotated}");
    let count = receiver.got().len();
    product(&app, &admin.access, "HOOK-5", 1000, 0).await;
    let got = receiver.wait_for(count + 1).await;
    let last = got.last().expect("delivery");
    assert!(
        signed_with(last, &new_secret) && signed_with(last, &secret),
        "{}",
        header(last, "webhook-signature")
    );
    assert_eq!(header(last, "webhook-signature").split(' ').count(), 2);

    // The log pages and filters; customers see none of it.
    let page = get(
        &app,
        &format!("{ENDPOINTS}/{id}/messages?status=delivered&limit=2"),
        &admin.access,
    )
    .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert!(page["next_before"].is_string());
    let shopper = app.signed_up("hooks-shopper@example.com").await;
    assert_problem(app.get_auth(ENDPOINTS, &shopper.access).await, 403).await;
    let r = app
        .get_auth(&format!("{ENDPOINTS}/{id}/messages?status=lost"), &admin.access)
        .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["status"]);
    let r = app
        .get_auth(&format!("{ENDPOINTS}/{}", uuid::Uuid::now_v7()), &admin.access)
        .await;
    assert_problem(r, 404).await;
}

async fn a_failing_endpoint_is_disabled_and_the_alert_list_is_told(app: TestApp) {
    let admin = app.admin().await;
    let receiver = Receiver::start().await;
    receiver.set(|b| b.status = 503);
    let endpoint = register(&app, &admin.access, &receiver.url(), json!(["catalog.#"])).await;
    let id = endpoint["id"].as_str().expect("id").to_owned();
    product(&app, &admin.access, "DOWN-1", 1000, 0).await;

    // Three failed attempts in a row switch it off; the waiting message is marked failed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let disabled = loop {
        let e = get(&app, &format!("{ENDPOINTS}/{id}"), &admin.access).await;
        if e["enabled"] == false {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "never disabled: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("3 failed attempts")),
        "{disabled}"
    );
    let failed = wait_for_message(&app, &admin.access, &id, "DOWN-1", |m| m["status"] == "failed").await;
    assert_eq!(failed["last_status"], 503);
    let mails = app.wait_for_mail(ALERTS, 1).await;
    assert!(
        mails[0].subject.starts_with("Webhook endpoint disabled"),
        "{}",
        mails[0].subject
    );
    assert!(mails[0].text.contains(&receiver.url()), "{}", mails[0].text);
    assert!(mails[0].text.contains("HTTP 503"), "{}", mails[0].text);

    // Disabled: new events are not queued for it, and replay waits for it to be enabled.
    let attempts_so_far = receiver.got().len();
    product(&app, &admin.access, "DOWN-2", 1000, 0).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let list = get(&app, &format!("{ENDPOINTS}/{id}/messages"), &admin.access).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let message = failed["id"].as_str().expect("id");
    let replay = format!("{ENDPOINTS}/{id}/messages/{message}/replay");
    assert_problem(post_auth(&app, &replay, &admin.access, json!({})).await, 409).await;

    // Fixed and switched back on: the replay delivers what it missed.
    receiver.set(|b| b.status = 204);
    let r = app
        .client
        .patch(app.url(&format!("{ENDPOINTS}/{id}")))
        .bearer_auth(&admin.access)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .expect("patch");
    let enabled = json_of(r, 200).await;
    assert_eq!(
        (enabled["enabled"].as_bool(), enabled["failure_streak"].as_u64()),
        (Some(true), Some(0))
    );
    assert!(enabled.get("disabled_reason").is_none());
    json_of(post_auth(&app, &replay, &admin.access, json!({})).await, 202).await;
    receiver.wait_for(attempts_so_far + 1).await;
    wait_for_message(&app, &admin.access, &id, "DOWN-1", |m| {
        m["status"] == "delivered" && m["last_status"] == 204
    })
    .await;
}

mod refusals {
    use super::*;

    test_support::on_both_backends!(
        super::spawn_default =>
        endpoints_refuse_internal_targets_bad_schemes_and_oversized_filters,
    );

    async fn spawn_default(backend: Backend) -> Option<TestApp> {
        spawn_app_with(backend, &[], true).await
    }

    async fn endpoints_refuse_internal_targets_bad_schemes_and_oversized_filters(app: TestApp) {
        let admin = app.admin().await;
        let ok_types = json!(["ordering.order.confirmed"]);
        for url in [
            "ftp://erp.example.com/hooks",
            "erp.example.com/hooks",
            "http://10.0.0.1/hooks",
            "http://127.0.0.1:8080/hooks",
            "https://169.254.169.254/latest/meta-data",
            "http://localhost/hooks",
            "https://[::1]/hooks",
            "https://user:secret@erp.example.com/hooks",
            "https://2130706433/hooks",
            "",
        ] {
            let r = post_auth(
                &app,
                ENDPOINTS,
                &admin.access,
                json!({"url": url, "event_types": ok_types}),
            )
            .await;
            let problem = assert_problem(r, 422).await;
            assert_eq!(problem_fields(&problem), ["url"], "{url}: {problem}");
        }
        let url = "https://erp.example.com/hooks";
        let many: Vec<String> = (0..51).map(|i| format!("catalog.event{i}.created")).collect();
        for types in [json!([]), json!(many), json!(["Not A Type"]), json!(["a".repeat(101)])] {
            let r = post_auth(
                &app,
                ENDPOINTS,
                &admin.access,
                json!({"url": url, "event_types": types}),
            )
            .await;
            assert_eq!(problem_fields(&assert_problem(r, 422).await), ["event_types"]);
        }
        let r = post_auth(&app, ENDPOINTS, &admin.access, json!({"url": url})).await;
        assert_eq!(problem_fields(&assert_problem(r, 422).await), ["event_types"]);
        let r = post_auth(
            &app,
            ENDPOINTS,
            &admin.access,
            json!({"url": url, "event_types": ok_types, "description": "x".repeat(201)}),
        )
        .await;
        assert_eq!(problem_fields(&assert_problem(r, 422).await), ["description"]);
        let r = post_auth(
            &app,
            ENDPOINTS,
            &admin.access,
            json!({"url": url, "event_types": ok_types, "secret": "mine"}),
        )
        .await;
        assert_problem(r, 422).await;
        let shopper = app.signed_up("hooks-refusals@example.com").await;
        let r = post_auth(
            &app,
            ENDPOINTS,
            &shopper.access,
            json!({"url": url, "event_types": ok_types}),
        )
        .await;
        assert_problem(r, 403).await;
        // A public https target is accepted (nothing is sent until an event matches).
        let created = json_of(
            post_auth(
                &app,
                ENDPOINTS,
                &admin.access,
                json!({"url": url, "event_types": ok_types}),
            )
            .await,
            201,
        )
        .await;
        let id = created["id"].as_str().expect("id");
        let r = app
            .client
            .patch(app.url(&format!("{ENDPOINTS}/{id}")))
            .bearer_auth(&admin.access)
            .json(&json!({"url": "http://192.168.1.10/"}))
            .send()
            .await
            .expect("patch");
        assert_eq!(problem_fields(&assert_problem(r, 422).await), ["url"]);
        let r = app
            .client
            .delete(app.url(&format!("{ENDPOINTS}/{id}")))
            .bearer_auth(&admin.access)
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 204);
    }
}
