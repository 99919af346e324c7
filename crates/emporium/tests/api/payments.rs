//! Payments through the whole app (real users and tokens from identity), on both backends: the
//! test cards, refunds, 50 concurrent creates charging once, signed webhooks and the slow card,
//! and the card number never reaching payments' database. The crate's own suite
//! (`crates/payments/tests/http.rs`) covers validation and edge cases in more depth.

use std::time::Duration;

use serde_json::{Value, json};

use emporium::app::Service;
use platform::db::Db;

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::{assert_problem, problem_fields};

const SECRET: &str = "whsec_api_test_0123456789";
const SUCCESS: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";
const PROCESSING_ERROR: &str = "4000000000000119";
const SLOW: &str = "4000000000000259";

// Like `on_both_backends!`, with payments' webhook secret and a slow card slower than the wait.
test_support::on_both_backends!(
    super::spawn =>
    test_cards_refunds_and_events,
    slow_card_is_processing_then_settled_by_a_signed_webhook,
    card_numbers_are_never_stored,
);

async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_app_with(
        backend,
        &[
            ("EMPORIUM_PAYMENTS_WEBHOOK_SECRET", SECRET),
            ("EMPORIUM_PAYMENTS_SIMULATED_DELAY_MS", "2500"),
            ("EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS", "300"),
        ],
        true,
    )
    .await
}

/// The 50 creates of one key queue behind the first one's capture. With the 300 ms wait above,
/// a loaded CI machine answered some of them 202 (still processing) before the capture had
/// finished; this test is about charging once, so it waits as long as it takes.
mod rush {
    use super::{Backend, SECRET, TestApp, fifty_concurrent_creates_make_one_payment_and_one_charge, spawn_app_with};

    test_support::on_both_backends!(super::spawn_patient => fifty_concurrent_creates_make_one_payment_and_one_charge);

    async fn spawn_patient(backend: Backend) -> Option<TestApp> {
        let settings = [
            ("EMPORIUM_PAYMENTS_WEBHOOK_SECRET", SECRET),
            ("EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS", "10000"),
        ];
        spawn_app_with(backend, &settings, true).await
    }
}

fn payments_db(app: &TestApp) -> &Db {
    &app.dbs[&Service::Payments]
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let (n,): (i64,) = match payments_db(app) {
        Db::Sqlite(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(p).await,
    }
    .expect("count");
    n
}

async fn events(app: &TestApp, event_type: &str) -> Vec<Value> {
    const SQL: &str = "SELECT envelope FROM event_outbox WHERE event_type = $1 ORDER BY id";
    let rows: Vec<(String,)> = match payments_db(app) {
        Db::Sqlite(p) => sqlx::query_as(SQL).bind(event_type).fetch_all(p).await,
        Db::Postgres(p) => sqlx::query_as(SQL).bind(event_type).fetch_all(p).await,
    }
    .expect("outbox");
    rows.into_iter()
        .map(|(e,)| serde_json::from_str::<Value>(&e).expect("envelope")["data"].clone())
        .collect()
}

async fn post(app: &TestApp, path: &str, token: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).bearer_auth(token).json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.expect("request")
}

/// A signed-up customer's saved card: (user id, access token, method id).
async fn card(app: &TestApp, email: &str, number: &str) -> (String, String, String) {
    let user = app.signed_up(email).await;
    let r = post(
        app,
        "/api/v1/payments/methods",
        &user.access,
        None,
        json!({"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123", "save": true}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let method: Value = r.json().await.expect("json");
    (user.id, user.access, method["id"].as_str().expect("id").to_owned())
}

fn payment(order: &str, customer: &str, method: &str, amount: i64) -> Value {
    json!({"order_id": order, "customer_id": customer, "amount": amount, "currency": "EUR", "payment_method": method})
}

fn new_order() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn test_cards_refunds_and_events(app: TestApp) {
    let admin = app.admin().await;
    let cases = [
        (SUCCESS, "captured", None),
        (DECLINED, "declined", Some("card_declined")),
        (NO_FUNDS, "declined", Some("insufficient_funds")),
        (PROCESSING_ERROR, "failed", None),
    ];
    let mut captured = None;
    for (i, (number, status, decline)) in cases.into_iter().enumerate() {
        let (customer, customer_token, method) = card(&app, &format!("buyer{i}@example.com"), number).await;
        let order = new_order();
        let r = post(
            &app,
            "/api/v1/payments",
            &admin.access,
            Some(&format!("pay-{i}")),
            payment(&order, &customer, &method, 4999),
        )
        .await;
        assert_eq!(r.status(), 201, "{number}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["status"], status, "{number}");
        assert_eq!(body["decline_code"].as_str(), decline, "{number}");
        if status == "failed" {
            assert_eq!(body["failure_reason"], "processing_error");
            assert_eq!(body["retryable"], true);
        }
        // The customer reads their own payment; customers cannot create payments.
        let own = app
            .get_auth(
                &format!("/api/v1/payments/{}", body["id"].as_str().expect("id")),
                &customer_token,
            )
            .await;
        assert_eq!(own.status(), 200);
        let r = post(
            &app,
            "/api/v1/payments",
            &customer_token,
            Some("mine"),
            payment(&order, &customer, &method, 1),
        )
        .await;
        assert_problem(r, 403).await;
        if status == "captured" {
            captured = Some(body);
        }
    }
    let captured = captured.expect("a captured payment");
    let refunds = format!("/api/v1/payments/{}/refunds", captured["id"].as_str().expect("id"));
    let r = post(
        &app,
        &refunds,
        &admin.access,
        Some("refund-1"),
        json!({"amount": 999, "reason": "late"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = post(&app, &refunds, &admin.access, Some("refund-2"), json!({"amount": 4001})).await;
    let problem = assert_problem(r, 422).await;
    assert_eq!(problem_fields(&problem), ["amount"]);
    let r = post(&app, &refunds, &admin.access, Some("refund-3"), json!({"amount": 4000})).await;
    assert_eq!(r.status(), 201);
    let view: Value = app
        .get_auth(
            &format!("/api/v1/payments/{}", captured["id"].as_str().expect("id")),
            &admin.access,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            view["captured_amount"]["amount"].clone(),
            view["refunded_amount"]["amount"].clone()
        ),
        (json!(4999), json!(4999))
    );
    assert_eq!(events(&app, "payments.payment.captured").await.len(), 1);
    assert_eq!(events(&app, "payments.payment.failed").await.len(), 3);
    let refunded = events(&app, "payments.refund.completed").await;
    assert_eq!(refunded.len(), 2);
    assert_eq!(refunded[0]["order_id"], captured["order_id"]);
}

async fn fifty_concurrent_creates_make_one_payment_and_one_charge(app: TestApp) {
    let admin = app.admin().await;
    let (customer, _, method) = card(&app, "rush@example.com", SUCCESS).await;
    let body = payment(&new_order(), &customer, &method, 2500);
    let replies = futures::future::join_all((0..50).map(|_| {
        post(
            &app,
            "/api/v1/payments",
            &admin.access,
            Some("checkout-1"),
            body.clone(),
        )
    }))
    .await;
    let mut ids = std::collections::HashSet::new();
    for r in replies {
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["status"], "captured");
        ids.insert(v["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM sim_intents").await,
        1,
        "one provider charge"
    );
    // Another body under the same key is refused; another key for the paid order is a conflict.
    let r = post(
        &app,
        "/api/v1/payments",
        &admin.access,
        Some("checkout-1"),
        payment(&new_order(), &customer, &method, 2500),
    )
    .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["Idempotency-Key"]);
    let r = post(&app, "/api/v1/payments", &admin.access, Some("checkout-2"), body).await;
    assert_problem(r, 409).await;
}

async fn slow_card_is_processing_then_settled_by_a_signed_webhook(app: TestApp) {
    let admin = app.admin().await;
    let (customer, _, method) = card(&app, "slow@example.com", SLOW).await;
    let r = post(
        &app,
        "/api/v1/payments",
        &admin.access,
        Some("slow-1"),
        payment(&new_order(), &customer, &method, 1234),
    )
    .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "processing");
    let id = body["id"].as_str().expect("id").to_owned();
    let (intent,): (String,) = {
        const SQL: &str = "SELECT id FROM sim_intents WHERE idem_key = $1";
        let key = format!("{id}:authorize");
        match payments_db(&app) {
            Db::Sqlite(p) => sqlx::query_as(SQL).bind(&key).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_as(SQL).bind(&key).fetch_one(p).await,
        }
        .expect("intent")
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let event = json!({"id": "evt_api_1", "type": "payment_intent.succeeded", "created": now,
        "data": {"intent_id": intent, "idempotency_key": format!("{id}:authorize"), "amount": 1234, "currency": "EUR"}})
    .to_string();
    let send = |signature: String| {
        app.client
            .post(app.url("/api/v1/payments/webhooks/simulated"))
            .header("content-type", "application/json")
            .header("Emporium-Signature", signature)
            .body(event.clone())
            .send()
    };
    let bad = payments::provider::signature_header(b"not-the-secret-at-all", now, event.as_bytes());
    assert_problem(send(bad).await.expect("request"), 400).await;
    let good = payments::provider::signature_header(SECRET.as_bytes(), now, event.as_bytes());
    let r = send(good.clone()).await.expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["result"], "applied");
    let r = send(good).await.expect("request");
    assert_eq!(r.json::<Value>().await.expect("json")["result"], "duplicate");
    let view: Value = app
        .get_auth(&format!("/api/v1/payments/{id}"), &admin.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["status"], "captured");
    // The provider's late answer changes nothing; a retry with the key returns the final state.
    tokio::time::sleep(Duration::from_millis(2800)).await;
    let r = post(
        &app,
        "/api/v1/payments",
        &admin.access,
        Some("slow-1"),
        payment(body["order_id"].as_str().expect("order"), &customer, &method, 1234),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM payment_ledger WHERE kind = 'capture'").await,
        1
    );
    assert_eq!(events(&app, "payments.payment.captured").await.len(), 1);
}

async fn card_numbers_are_never_stored(app: TestApp) {
    let admin = app.admin().await;
    let (customer, _, method) = card(&app, "pan@example.com", SUCCESS).await;
    let r = post(
        &app,
        "/api/v1/payments",
        &admin.access,
        Some("pan-1"),
        payment(&new_order(), &customer, &method, 100),
    )
    .await;
    assert_eq!(r.status(), 201);
    let hits = test_support::db::tables_containing(payments_db(&app), SUCCESS).await;
    assert!(
        hits.is_empty(),
        "the card number is stored in payments' database: {hits:?}"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM payment_methods WHERE last4 = '4242'").await,
        1
    );
}
