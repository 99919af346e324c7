//! Notifications over HTTP with the whole app: mail delivered to a REAL SMTP server
//! (tests/smtp_sink.py, started per test on a random port) through identity's events, the bus and
//! the delivery worker; the delivery log; preferences. Outages, dead letters, redelivery and
//! replicas are covered at the service level in crates/notifications/tests/delivery.rs.

use std::time::Duration;

use serde_json::{Value, json};

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::{assert_problem, problem_fields};
use test_support::smtp::SmtpSink;

const LOG: &str = "/api/v1/notifications/admin/deliveries";
const PREFS: &str = "/api/v1/notifications/preferences";

test_support::on_both_backends!(
    super::app_with_smtp =>
    verification_and_reset_mail_go_over_smtp_and_are_logged,
    preferences_refuse_switching_off_transactional_mail,
    the_delivery_log_filters_and_guards_retries,
);

/// The app with `EMPORIUM_SMTP_URL` pointing at a fresh SMTP sink (embedded mode too).
async fn app_with_smtp(backend: Backend) -> Option<(TestApp, SmtpSink)> {
    let sink = SmtpSink::start().await?;
    let url = sink.url();
    let app = spawn_app_with(backend, &[("EMPORIUM_SMTP_URL", url.as_str())], true).await?;
    Some((app, sink))
}

/// Waits (20 s) for a message to `to` whose subject starts with `subject`.
async fn wait_for_message(sink: &SmtpSink, to: &str, subject: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = sink
            .messages_to(to)
            .into_iter()
            .rev()
            .find(|m| m["subject"].as_str().is_some_and(|s| s.starts_with(subject)))
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {subject:?} message to {to} reached the SMTP server: {:#?}",
            sink.messages()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn token_line(message: &Value) -> String {
    message["text"]
        .as_str()
        .expect("text part")
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 43 && !l.contains(' '))
        .expect("token line")
        .to_owned()
}

/// Registers `email`, verifies it with the token mailed over SMTP, logs in: (user id, access token).
async fn sign_up(app: &TestApp, sink: &SmtpSink, email: &str) -> (String, String) {
    let r = app.register(email).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let mail = wait_for_message(sink, email, "Confirm your e-mail address").await;
    let r = app
        .post("/api/v1/auth/verify-email", json!({"token": token_line(&mail)}))
        .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    let access = app.access_token(email).await;
    let me: Value = app
        .get_auth("/api/v1/users/me", &access)
        .await
        .json()
        .await
        .expect("json");
    let id = me["id"].as_str().expect("id").to_owned();
    (id, access)
}

/// Polls the log (as `token`) until `check` holds for the page at `query`.
async fn wait_for_log(app: &TestApp, token: &str, query: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get_auth(&format!("{LOG}?{query}"), token).await;
        assert_eq!(r.status(), 200);
        let items = r.json::<Value>().await.expect("json")["items"]
            .as_array()
            .expect("items")
            .clone();
        if check(&items) {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log never matched for {query}: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn verification_and_reset_mail_go_over_smtp_and_are_logged((app, sink): (TestApp, SmtpSink)) {
    let email = "ann.smtp@example.com";
    let (user_id, _) = sign_up(&app, &sink, email).await;
    let verify = wait_for_message(&sink, email, "Confirm your e-mail address").await;
    assert_eq!(verify["from"], "Emporium <no-reply@emporium.local>");
    assert!(
        verify["html"]
            .as_str()
            .is_some_and(|h| h.contains(&token_line(&verify)))
    );
    assert!(
        app.mailbox.list(Some(email)).is_empty(),
        "with SMTP configured, nothing goes to the dev mailbox"
    );

    let r = app.post("/api/v1/auth/forgot-password", json!({"email": email})).await;
    assert!(r.status().is_success(), "{}", r.status());
    let reset = wait_for_message(&sink, email, "Reset your password").await;
    let r = app
        .post(
            "/api/v1/auth/reset-password",
            json!({"token": token_line(&reset), "new_password": "a whole new passphrase 42"}),
        )
        .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());

    let admin = app.admin().await;
    let log = wait_for_log(&app, &admin.access, &format!("to={email}"), |items| {
        items.len() == 2 && items.iter().all(|d| d["status"] == "sent")
    })
    .await;
    let mut kinds: Vec<&str> = log.iter().map(|d| d["kind"].as_str().expect("kind")).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, vec!["email_verification", "password_reset"]);
    for d in &log {
        assert_eq!(d["user_id"], user_id.as_str());
        assert_eq!(d["attempts"], 1);
        assert!(d.get("text_body").is_none() && d.get("html_body").is_none());
        let ids: Vec<Value> = sink
            .messages_to(email)
            .iter()
            .map(|m| m["message_id"].clone())
            .collect();
        assert!(
            ids.contains(&d["message_id"]),
            "the log's Message-ID is the one the server got"
        );
    }
    let r = app
        .get_auth(&format!("{LOG}?to={email}&kind=password_reset"), &admin.access)
        .await;
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["items"].as_array().expect("items").len(), 1);
    assert_eq!(sink.messages_to(email).len(), 2, "each message exactly once");
}

async fn preferences_refuse_switching_off_transactional_mail((app, sink): (TestApp, SmtpSink)) {
    let (_, access) = sign_up(&app, &sink, "prefs@example.com").await;
    let r = app.client.get(app.url(PREFS)).send().await.expect("request");
    assert_problem(r, 401).await;
    let r = app.get_auth(PREFS, &access).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        (body["order_updates"].clone(), body["marketing"].clone()),
        (json!(true), json!(false))
    );

    let r = app
        .put_json(
            &app.url(PREFS),
            &access,
            json!({"order_updates": false, "marketing": true}),
        )
        .await;
    let problem = assert_problem(r, 422).await;
    assert_eq!(problem_fields(&problem), vec!["order_updates"]);
    let r = app
        .put_json(&app.url(PREFS), &access, json!({"password_reset": false}))
        .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), vec!["password_reset"]);
    let r = app.put_json(&app.url(PREFS), &access, json!({"sms": true})).await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), vec!["sms"]);

    let r = app.put_json(&app.url(PREFS), &access, json!({"marketing": true})).await;
    assert_eq!(r.status(), 200);
    let body: Value = app.get_auth(PREFS, &access).await.json().await.expect("json");
    assert_eq!(body["marketing"], true);
    assert_eq!(body["order_updates"], true);
}

async fn the_delivery_log_filters_and_guards_retries((app, sink): (TestApp, SmtpSink)) {
    let (_, customer) = sign_up(&app, &sink, "log.customer@example.com").await;
    sign_up(&app, &sink, "log.other@example.com").await;
    let admin = app.admin().await;

    let r = app.get_auth(LOG, &customer).await;
    assert_problem(r, 403).await;
    let sent = wait_for_log(&app, &admin.access, "status=sent&kind=email_verification", |items| {
        items.len() >= 2
    })
    .await;
    assert!(
        sent.iter()
            .all(|d| d["status"] == "sent" && d["kind"] == "email_verification")
    );
    let one = wait_for_log(&app, &admin.access, "to=LOG.OTHER@example.com", |items| {
        items.len() == 1
    })
    .await;
    let event_id = one[0]["event_id"].as_str().expect("event id").to_owned();
    let by_event = wait_for_log(&app, &admin.access, &format!("event_id={event_id}"), |items| {
        items.len() == 1
    })
    .await;
    assert_eq!(by_event[0]["id"], one[0]["id"]);
    let none = wait_for_log(&app, &admin.access, "status=dead", |_| true).await;
    assert!(none.is_empty());
    let r = app.get_auth(&format!("{LOG}?limit=1"), &admin.access).await;
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["items"].as_array().expect("items").len(), 1);
    assert!(body["next"].is_string());

    let r = app
        .get_auth(&format!("{LOG}?status=bounced&kind=sms&event_id=7"), &admin.access)
        .await;
    let problem = assert_problem(r, 422).await;
    assert_eq!(problem_fields(&problem), vec!["status", "kind", "event_id"]);

    let id = one[0]["id"].as_str().expect("id");
    let r = app
        .client
        .post(app.url(&format!("{LOG}/{id}/retry")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("request");
    assert_problem(r, 409).await;
    let r = app
        .client
        .post(app.url(&format!("{LOG}/{}/retry", uuid::Uuid::now_v7())))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("request");
    assert_problem(r, 404).await;
    let r = app
        .client
        .post(app.url(&format!("{LOG}/{id}/retry")))
        .bearer_auth(&customer)
        .send()
        .await
        .expect("request");
    assert_problem(r, 403).await;
}
