//! Payments over HTTP (its own router, real access tokens, no other context), on SQLite and, when
//! reachable, PostgreSQL: every test card, tokenization checks, idempotency, 50 concurrent
//! creates, refunds, webhooks, the slow card, the reconciler after a crash, and the card number
//! never reaching the database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use contracts::events::Event as _;
use contracts::events::payments::{PaymentCaptured, PaymentFailed, RefundCompleted};
use http_body_util::BodyExt;
use payments::domain::{CardBrand, Currency, MethodId, PaymentId, PaymentStatus};
use payments::provider::{AuthorizeRequest, PaymentProvider, SIGNATURE_HEADER, SimulatedProvider, signature_header};
use payments::service::authorize_key;
use payments::store::{IdempotencyRecord, Method, Payment};
use payments::{PaymentsConfig, PaymentsService};
use platform::db::Db;
use platform::events::{BusSettings, Events};
use serde_json::{Value, json};
use test_support::{Backend, TestDb, TestTokens};
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: &str = "whsec_test_0123456789abcdef";
const SUCCESS: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";
const PROCESSING_ERROR: &str = "4000000000000119";
const SLOW: &str = "4000000000000259";

struct TestApp {
    router: axum::Router,
    svc: Arc<PaymentsService>,
    provider: Arc<SimulatedProvider>,
    db: Db,
    tokens: TestTokens,
    admin: String,
    /// Where `db` lives; dropped with the app.
    test_db: TestDb,
}

async fn spawn(backend: Backend, delay_ms: u64, wait_ms: u64) -> Option<TestApp> {
    let test_db = TestDb::open(backend, "payments").await?;
    let db = test_db.db.clone();
    payments::migrate(&db).await.expect("migrate");
    let config = PaymentsConfig {
        webhook_secret: SECRET.as_bytes().to_vec(),
        simulated_delay: Duration::from_millis(delay_ms),
        provider_wait: Duration::from_millis(wait_ms),
        reconcile_after: Duration::from_secs(1),
        ..PaymentsConfig::default()
    };
    let (store, ledger) = payments::store::open(&db);
    let provider = Arc::new(SimulatedProvider::new(
        ledger,
        config.simulated_delay,
        config.webhook_secret.clone(),
    ));
    let outbox = Events::in_process(BusSettings::default()).start_relay("payments", &db);
    let svc = Arc::new(PaymentsService::new(store, provider.clone(), config, outbox));

    let tokens = TestTokens::new();
    let (router, _) = payments::api::routes().with_state(svc.clone()).split_for_parts();
    let router = router.layer(Extension(tokens.keys()));
    let mut app = TestApp {
        router,
        svc,
        provider,
        db,
        tokens,
        admin: String::new(),
        test_db,
    };
    app.admin = app.tokens.sign(Uuid::now_v7(), "admin");
    Some(app)
}

struct Reply {
    status: StatusCode,
    replayed: bool,
    body: Value,
}

impl TestApp {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.expect("response");
        let status = response.status();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, replayed, body }
    }

    /// A customer with a saved card: (customer id, their token, method id).
    async fn customer_with_card(&self, card: &str) -> (Uuid, String, String) {
        let id = Uuid::now_v7();
        let token = self.tokens.sign(id, "customer");
        let r = self
            .call(
                "POST",
                "/api/v1/payments/methods",
                Some(&token),
                None,
                Some(
                    json!({"card_number": card, "exp_month": 12, "exp_year": 2035, "cvc": "123", "holder_name": "Ada", "save": true}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (id, token, r.body["id"].as_str().expect("id").to_owned())
    }

    async fn pay(&self, key: &str, customer: Uuid, method: &str, amount: i64) -> Reply {
        self.pay_with(
            key,
            json!({"order_id": Uuid::now_v7(), "customer_id": customer, "amount": amount,
                                  "currency": "EUR", "payment_method": method}),
        )
        .await
    }

    async fn pay_with(&self, key: &str, body: Value) -> Reply {
        self.call("POST", "/api/v1/payments", Some(&self.admin), Some(key), Some(body))
            .await
    }

    async fn count(&self, table: &str, filter: &str) -> i64 {
        let q = format!("SELECT COUNT(*) FROM {table} {filter}");
        let (n,): (i64,) = match &self.db {
            Db::Sqlite(p) => sqlx::query_as(sqlx::AssertSqlSafe(q)).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_as(sqlx::AssertSqlSafe(q)).fetch_one(p).await,
        }
        .expect("count");
        n
    }

    async fn events(&self, event_type: &str) -> Vec<Value> {
        const SQL: &str = "SELECT envelope FROM event_outbox WHERE event_type = $1 ORDER BY id";
        let rows: Vec<(String,)> = match &self.db {
            Db::Sqlite(p) => sqlx::query_as(SQL).bind(event_type).fetch_all(p).await,
            Db::Postgres(p) => sqlx::query_as(SQL).bind(event_type).fetch_all(p).await,
        }
        .expect("outbox");
        rows.into_iter()
            .map(|(e,)| serde_json::from_str::<Value>(&e).expect("envelope")["data"].clone())
            .collect()
    }

    /// GETs a payment until its status is no longer `processing` (at most 10 s).
    async fn settled(&self, id: &str) -> Value {
        for _ in 0..200 {
            let r = self
                .call("GET", &format!("/api/v1/payments/{id}"), Some(&self.admin), None, None)
                .await;
            assert_eq!(r.status, StatusCode::OK);
            if r.body["status"] != "processing" {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("payment {id} never settled");
    }
}

fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|f| f["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

test_support::on_both_backends!(
    every_test_card_has_its_outcome,
    tokenization_checks_luhn_expiry_and_cvc,
    payments_validate_input_roles_and_ownership,
    idempotency_replays_and_refuses_other_bodies,
    fifty_concurrent_creates_charge_once,
    refunds_partial_full_and_over,
    authorize_then_capture,
    webhooks_verify_signatures_and_ignore_replays,
    slow_card_answers_202_then_settles,
    reconciler_settles_after_a_crash_without_charging_twice,
    idempotency_keys_are_forgotten_after_their_retention,
    reads_are_for_staff_and_the_owning_customer,
    card_numbers_never_reach_the_database,
);

async fn every_test_card_has_its_outcome(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let cases = [
        (SUCCESS, "captured", None, None),
        (DECLINED, "declined", Some("card_declined"), None),
        (NO_FUNDS, "declined", Some("insufficient_funds"), None),
        (PROCESSING_ERROR, "failed", None, Some("processing_error")),
    ];
    for (card, status, decline, failure) in cases {
        let (customer, _, method) = app.customer_with_card(card).await;
        let r = app.pay(&format!("key-{card}"), customer, &method, 2599).await;
        assert_eq!(r.status, StatusCode::CREATED, "{card}: {}", r.body);
        assert_eq!(r.body["status"], status, "{card}");
        assert_eq!(r.body["decline_code"].as_str(), decline, "{card}");
        assert_eq!(r.body["failure_reason"].as_str(), failure, "{card}");
        assert_eq!(r.body["retryable"], status == "failed");
        assert_eq!(r.body["brand"], "visa");
        assert_eq!(r.body["last4"], &card[12..]);
        let captured = if status == "captured" { 2599 } else { 0 };
        assert_eq!(r.body["captured_amount"]["amount"], captured, "{card}");
        assert_eq!(r.body["refunded_amount"]["amount"], 0);
    }
    let captured = app.events(PaymentCaptured::TYPE).await;
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0]["amount"], 2599);
    assert_eq!(captured[0]["currency"], "EUR");
    let failed = app.events(PaymentFailed::TYPE).await;
    let reasons: Vec<&str> = failed.iter().filter_map(|d| d["reason"].as_str()).collect();
    assert_eq!(reasons, ["card_declined", "insufficient_funds", "processing_error"]);
    // The ledger: one authorization and one capture for the captured payment only.
    assert_eq!(app.count("payment_ledger", "WHERE kind = 'capture'").await, 1);
    assert_eq!(app.count("payment_ledger", "WHERE kind = 'authorization'").await, 1);
}

async fn tokenization_checks_luhn_expiry_and_cvc(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let token = app.tokens.sign(Uuid::now_v7(), "customer");
    let add = |body: Value| app.call("POST", "/api/v1/payments/methods", Some(&token), None, Some(body));
    let year = time::OffsetDateTime::now_utc().year();
    let cases = [
        (
            json!({"card_number": "4242424242424241", "exp_month": 12, "exp_year": 2035, "cvc": "123"}),
            "card_number",
        ),
        (
            json!({"card_number": "4242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}),
            "card_number",
        ),
        (
            json!({"card_number": SUCCESS, "exp_month": 13, "exp_year": 2035, "cvc": "123"}),
            "exp_month",
        ),
        (
            json!({"card_number": SUCCESS, "exp_month": 1, "exp_year": year - 1, "cvc": "123"}),
            "exp_year",
        ),
        (
            json!({"card_number": SUCCESS, "exp_month": 12, "exp_year": 2035, "cvc": "12"}),
            "cvc",
        ),
        (
            json!({"card_number": "378282246310005", "exp_month": 12, "exp_year": 2035, "cvc": "123"}),
            "cvc",
        ),
    ];
    for (body, field) in cases {
        let r = add(body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(fields(&r.body), [field], "{body}");
        assert!(!r.body.to_string().contains("4242424242424241"), "never echoed");
    }
    let r =
        add(json!({"card_number": "5555 5555 5555 4444", "exp_month": 1, "exp_year": 35, "cvc": "999", "save": true}))
            .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["brand"], "mastercard");
    assert_eq!(r.body["last4"], "4444");
    assert_eq!(r.body["exp_year"], 2035);
    assert!(r.body["id"].as_str().expect("id").starts_with("pm_"));
    let r = app
        .call("GET", "/api/v1/payments/methods", Some(&token), None, None)
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
    let r = app
        .call(
            "POST",
            "/api/v1/payments/methods",
            None,
            None,
            Some(json!({"card_number": SUCCESS})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn payments_validate_input_roles_and_ownership(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let (customer, customer_token, method) = app.customer_with_card(SUCCESS).await;
    let (_, _, someone_elses) = app.customer_with_card(SUCCESS).await;
    let order = Uuid::now_v7();
    let body = |amount: i64, currency: &str, method: &str| json!({"order_id": order, "customer_id": customer, "amount": amount, "currency": currency, "payment_method": method});
    let r = app
        .call(
            "POST",
            "/api/v1/payments",
            Some(&app.admin),
            None,
            Some(body(100, "EUR", &method)),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&r.body), ["Idempotency-Key"]);
    for (b, field) in [
        (body(0, "EUR", &method), "amount"),
        (body(100_000_001, "EUR", &method), "amount"),
        (body(100, "JPY", &method), "currency"),
        (body(100, "EURO", &method), "currency"),
        (body(100, "EUR", "pm_nope"), "payment_method"),
        (body(100, "EUR", &MethodId::new().to_string()), "payment_method"),
        (body(100, "EUR", &someone_elses), "payment_method"),
    ] {
        let r = app.pay_with(&format!("k-{}", Uuid::now_v7()), b.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {}", r.body);
        assert_eq!(fields(&r.body), [field], "{b}");
    }
    let r = app
        .call(
            "POST",
            "/api/v1/payments",
            Some(&customer_token),
            Some("k-customer"),
            Some(body(100, "EUR", &method)),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let service = app.tokens.sign(Uuid::now_v7(), "service");
    let r = app
        .call(
            "POST",
            "/api/v1/payments",
            Some(&service),
            Some("k-service"),
            Some(body(100, "EUR", &method)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "captured");
    // A second payment for the paid order is refused, whatever the key.
    let r = app.pay_with("k-second", body(100, "EUR", &method)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(app.count("payments", "").await, 1, "nothing half-written");
}

async fn idempotency_replays_and_refuses_other_bodies(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SUCCESS).await;
    let body = json!({"order_id": Uuid::now_v7(), "customer_id": customer, "amount": 1500, "currency": "usd", "payment_method": method});
    let first = app.pay_with("order-1-attempt-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.replayed);
    let again = app.pay_with("order-1-attempt-1", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(again.replayed);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["status"], "captured");
    let mut other = body.clone();
    other["amount"] = json!(1600);
    let r = app.pay_with("order-1-attempt-1", other).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&r.body), ["Idempotency-Key"]);
    assert_eq!(app.count("sim_intents", "").await, 1, "one provider charge");
    // A declined attempt replays as declined; a card declined on its first use is not kept, so a
    // new attempt with it is refused (the shopper enters another card).
    let (customer, _, declined) = app.customer_with_card(DECLINED).await;
    let body = json!({"order_id": Uuid::now_v7(), "customer_id": customer, "amount": 900, "currency": "EUR", "payment_method": declined});
    let d1 = app.pay_with("d-1", body.clone()).await;
    let d2 = app.pay_with("d-1", body.clone()).await;
    assert_eq!(
        (d1.body["status"].clone(), d2.body["id"].clone()),
        (json!("declined"), d1.body["id"].clone())
    );
    let d3 = app.pay_with("d-2", body).await;
    assert_eq!(d3.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", d3.body);
    assert_eq!(fields(&d3.body), ["payment_method"]);
}

async fn fifty_concurrent_creates_charge_once(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 5000).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SUCCESS).await;
    let body = json!({"order_id": Uuid::now_v7(), "customer_id": customer, "amount": 4200, "currency": "EUR", "payment_method": method});
    let replies = futures::future::join_all((0..50).map(|_| app.pay_with("checkout-42", body.clone()))).await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            assert_eq!(r.body["status"], "captured");
            r.body["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one payment");
    assert_eq!(replies.iter().filter(|r| !r.replayed).count(), 1);
    assert_eq!(app.count("payments", "").await, 1);
    assert_eq!(app.count("sim_intents", "").await, 1, "one provider charge");
    assert_eq!(app.count("payment_ledger", "WHERE kind = 'capture'").await, 1);
    assert_eq!(app.events(PaymentCaptured::TYPE).await.len(), 1);
}

async fn refunds_partial_full_and_over(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SUCCESS).await;
    let paid = app.pay("r-pay", customer, &method, 1000).await;
    let id = paid.body["id"].as_str().expect("id").to_owned();
    let refunds = format!("/api/v1/payments/{id}/refunds");
    let refund = |key: &'static str, amount: i64| {
        app.call(
            "POST",
            &refunds,
            Some(&app.admin),
            Some(key),
            Some(json!({"amount": amount, "reason": "damaged"})),
        )
    };
    let r = app
        .call("POST", &refunds, Some(&app.admin), None, Some(json!({"amount": 1})))
        .await;
    assert_eq!(fields(&r.body), ["Idempotency-Key"]);
    let r = refund("rf-1", 300).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "completed");
    let partly = app
        .call("GET", &format!("/api/v1/payments/{id}"), Some(&app.admin), None, None)
        .await;
    assert_eq!(partly.body["status"], "partially_refunded");
    assert_eq!(r.body["amount"], json!({"amount": 300, "currency": "EUR"}));
    let again = refund("rf-1", 300).await;
    assert!(again.replayed);
    assert_eq!(again.body["id"], r.body["id"]);
    let r = refund("rf-1", 301).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&r.body), ["Idempotency-Key"]);
    let over = refund("rf-2", 701).await;
    assert_eq!(over.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", over.body);
    assert_eq!(fields(&over.body), ["amount"]);
    let zero = refund("rf-0", 0).await;
    assert_eq!(fields(&zero.body), ["amount"]);
    let rest = refund("rf-3", 700).await;
    assert_eq!(rest.status, StatusCode::CREATED);
    let p = app
        .call("GET", &format!("/api/v1/payments/{id}"), Some(&app.admin), None, None)
        .await;
    assert_eq!(
        (
            p.body["captured_amount"]["amount"].clone(),
            p.body["refunded_amount"]["amount"].clone()
        ),
        (json!(1000), json!(1000))
    );
    assert_eq!(p.body["refundable_amount"]["amount"], 0);
    assert_eq!(p.body["status"], "refunded", "reported from the ledger");
    // Nothing left: a state conflict, not a bad amount.
    let done = refund("rf-4", 1).await;
    assert_eq!(done.status, StatusCode::CONFLICT, "{}", done.body);
    assert!(
        done.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already refunded")),
        "{}",
        done.body
    );
    let list = app.call("GET", &refunds, Some(&app.admin), None, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
    let events = app.events(RefundCompleted::TYPE).await;
    assert_eq!(
        events.iter().map(|e| e["amount"].as_i64().unwrap_or(0)).sum::<i64>(),
        1000
    );
    assert_eq!(events[0]["order_id"], paid.body["order_id"]);
    assert_eq!(app.count("payment_ledger", "WHERE kind = 'refund'").await, 2);
    // The provider's books agree.
    assert_eq!(app.count("sim_intents", "WHERE refunded = 1000").await, 1);
    // Declined payments cannot be refunded.
    let (customer, _, declined) = app.customer_with_card(DECLINED).await;
    let d = app.pay("r-declined", customer, &declined, 500).await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/payments/{}/refunds", d.body["id"].as_str().expect("id")),
            Some(&app.admin),
            Some("rf-d"),
            Some(json!({"amount": 100})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

async fn authorize_then_capture(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SUCCESS).await;
    let body = json!({"order_id": Uuid::now_v7(), "customer_id": customer, "amount": 800, "currency": "GBP",
                      "payment_method": method, "capture": false});
    let r = app.pay_with("auth-only", body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["status"], "authorized");
    assert_eq!(r.body["captured_amount"]["amount"], 0);
    let id = r.body["id"].as_str().expect("id");
    let capture = format!("/api/v1/payments/{id}/capture");
    let c = app.call("POST", &capture, Some(&app.admin), None, None).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    assert_eq!(
        (c.body["status"].clone(), c.body["captured_amount"]["amount"].clone()),
        (json!("captured"), json!(800))
    );
    let again = app.call("POST", &capture, Some(&app.admin), None, None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["captured_amount"]["amount"], 800);
    assert_eq!(app.events(PaymentCaptured::TYPE).await.len(), 1);
    assert_eq!(app.count("payment_ledger", "WHERE kind = 'capture'").await, 1);
}

fn signed_event(event_id: &str, kind: &str, intent: &str, payment: &str, amount: i64, at: i64) -> (String, String) {
    let body = json!({"id": event_id, "type": kind, "created": at,
        "data": {"intent_id": intent, "idempotency_key": format!("{payment}:authorize"), "amount": amount, "currency": "EUR"}})
    .to_string();
    let header = signature_header(SECRET.as_bytes(), at, body.as_bytes());
    (body, header)
}

async fn webhooks_verify_signatures_and_ignore_replays(backend: Backend) {
    // The slow card's answer comes after 4 s, so the webhook settles the payment first.
    let Some(app) = spawn(backend, 4000, 200).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SLOW).await;
    let r = app.pay("wh-1", customer, &method, 1234).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["status"], "processing");
    let id = r.body["id"].as_str().expect("id").to_owned();
    let key = authorize_key(PaymentId(Uuid::parse_str(&id).expect("uuid")));
    let (intent,): (String,) = match &app.db {
        Db::Sqlite(p) => {
            sqlx::query_as("SELECT id FROM sim_intents WHERE idem_key = $1")
                .bind(&key)
                .fetch_one(p)
                .await
        }
        Db::Postgres(p) => {
            sqlx::query_as("SELECT id FROM sim_intents WHERE idem_key = $1")
                .bind(&key)
                .fetch_one(p)
                .await
        }
    }
    .expect("intent");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let post = |body: String, header: Option<String>| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/v1/payments/webhooks/simulated")
            .header("content-type", "application/json");
        if let Some(h) = header {
            req = req.header(SIGNATURE_HEADER, h);
        }
        app.send(req.body(Body::from(body)).expect("request"))
    };
    let (body, header) = signed_event("evt_1", "payment_intent.succeeded", &intent, &id, 1234, now);
    // Bad signatures: missing, wrong secret, tampered body, too old.
    assert_eq!(post(body.clone(), None).await.status, StatusCode::BAD_REQUEST);
    let wrong = signature_header(b"another-secret-entirely", now, body.as_bytes());
    assert_eq!(post(body.clone(), Some(wrong)).await.status, StatusCode::BAD_REQUEST);
    let tampered = body.replace("1234", "1");
    assert_eq!(
        post(tampered, Some(header.clone())).await.status,
        StatusCode::BAD_REQUEST
    );
    let (old_body, old_header) = signed_event("evt_1", "payment_intent.succeeded", &intent, &id, 1234, now - 301);
    let old = post(old_body, Some(old_header)).await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST);
    assert!(
        old.body["detail"].as_str().unwrap_or("").contains("tolerance"),
        "{}",
        old.body
    );
    assert_eq!(
        app.settled_now(&id).await,
        "processing",
        "nothing applied by refused webhooks"
    );

    let ok = post(body.clone(), Some(header.clone())).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["result"], "applied");
    assert_eq!(app.settled_now(&id).await, "captured");
    let replay = post(body, Some(header)).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body["result"], "duplicate");
    // Once the slow answer arrives it changes nothing: still one capture, one event.
    tokio::time::sleep(Duration::from_millis(4300)).await;
    assert_eq!(app.count("payment_ledger", "WHERE kind = 'capture'").await, 1);
    assert_eq!(app.events(PaymentCaptured::TYPE).await.len(), 1);
    // A failure event for a settled payment is acknowledged and ignored.
    let (body, header) = signed_event("evt_2", "payment_intent.payment_failed", &intent, &id, 1234, now);
    let r = post(body, Some(header)).await;
    assert_eq!(r.body["result"], "already_settled");
    assert_eq!(app.settled_now(&id).await, "captured");
}

impl TestApp {
    async fn settled_now(&self, id: &str) -> String {
        let r = self
            .call("GET", &format!("/api/v1/payments/{id}"), Some(&self.admin), None, None)
            .await;
        r.body["status"].as_str().unwrap_or("").to_owned()
    }
}

async fn slow_card_answers_202_then_settles(backend: Backend) {
    let Some(app) = spawn(backend, 1000, 200).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SLOW).await;
    let body = json!({"order_id": Uuid::now_v7(), "customer_id": customer, "amount": 777, "currency": "EUR", "payment_method": method});
    let r = app.pay_with("slow-1", body.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["status"], "processing");
    // A retry while the provider is still busy is still processing, and charges nothing more.
    let retry = app.pay_with("slow-1", body.clone()).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    assert!(retry.replayed);
    let id = r.body["id"].as_str().expect("id");
    let settled = app.settled(id).await;
    assert_eq!(settled["status"], "captured");
    let later = app.pay_with("slow-1", body).await;
    assert_eq!(later.status, StatusCode::CREATED);
    assert_eq!(later.body["status"], "captured");
    assert_eq!(app.count("sim_intents", "").await, 1);
}

async fn reconciler_settles_after_a_crash_without_charging_twice(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SUCCESS).await;
    let (store, _) = payments::store::open(&app.db);
    let method = store
        .method(MethodId::parse(&method).expect("id"))
        .await
        .expect("read")
        .expect("method");
    // Three payments a crashed process left processing: one never reached the provider; one
    // was charged there in one call but the answer was lost; one was only authorized, as a
    // release that authorized and captured in two calls left it.
    let mut left = Vec::new();
    for (n, charged_before_crash) in [None, Some(true), Some(false)].into_iter().enumerate() {
        let p = processing_payment(customer, &method);
        let record = IdempotencyRecord {
            owner: Uuid::now_v7(),
            scope: "payment",
            key: format!("crash-{n}"),
            request_hash: vec![1],
            resource_id: p.id.0,
        };
        store.create_payment(&p, &record).await.expect("create");
        if let Some(capture) = charged_before_crash {
            let answer = app
                .provider
                .authorize(&AuthorizeRequest {
                    amount: p.amount,
                    currency: "EUR".into(),
                    method_token: method.provider_token.clone(),
                    idempotency_key: authorize_key(p.id),
                    capture,
                })
                .await
                .expect("authorized");
            if capture {
                assert!(
                    matches!(answer, payments::provider::ProviderOutcome::Captured { amount, .. } if amount == p.amount),
                    "{answer:?}"
                );
            } else {
                assert!(matches!(answer, payments::provider::ProviderOutcome::Authorized { .. }));
            }
        }
        left.push(p.id);
    }
    assert_eq!(app.count("sim_intents", "").await, 2);
    assert_eq!(app.svc.reconcile().await.expect("reconcile"), 0, "not stale yet");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.svc.reconcile().await.expect("reconcile"), 3);
    for id in left {
        let p = store.payment(id).await.expect("read").expect("payment");
        assert_eq!(p.status, PaymentStatus::Captured);
        assert_eq!(p.captured_amount, p.amount);
    }
    assert_eq!(
        app.count("sim_intents", "").await,
        3,
        "each payment charged exactly once"
    );
    assert_eq!(
        app.count("sim_intents", "WHERE status = 'succeeded' AND captured = amount")
            .await,
        3
    );
    assert_eq!(app.svc.reconcile().await.expect("reconcile"), 0);
    assert_eq!(app.events(PaymentCaptured::TYPE).await.len(), 3);
}

/// The purge forgets exactly the keys first used before its cut-off, on either backend.
async fn idempotency_keys_are_forgotten_after_their_retention(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let (customer, _, method) = app.customer_with_card(SUCCESS).await;
    let r = app.pay("purged-later", customer, &method, 1500).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let keys = app.count("idempotency_keys", "").await;
    assert!(keys >= 1, "the payment's key is recorded");
    let (store, _) = payments::store::open(&app.db);
    let now = payments::service::now();
    let purged = store
        .purge_idempotency(now - time::Duration::hours(1))
        .await
        .expect("purge");
    assert_eq!(purged, 0, "keys younger than the cut-off stay");
    assert_eq!(app.count("idempotency_keys", "").await, keys);
    let purged = store
        .purge_idempotency(now + time::Duration::seconds(1))
        .await
        .expect("purge");
    assert_eq!(purged, u64::try_from(keys).expect("count"));
    assert_eq!(app.count("idempotency_keys", "").await, 0);
}

fn processing_payment(customer: Uuid, method: &Method) -> Payment {
    let now = payments::service::now();
    Payment {
        id: PaymentId::new(),
        order_id: Uuid::now_v7(),
        customer_id: customer,
        method_id: method.id,
        amount: 5000,
        currency: Currency::parse("EUR").expect("eur"),
        capture: true,
        status: PaymentStatus::Processing,
        brand: CardBrand::Visa,
        last4: method.last4.clone(),
        provider: "simulated".into(),
        provider_intent: None,
        decline_code: None,
        failure_reason: None,
        created_by: customer,
        created_at: now,
        updated_at: now,
        version: 1,
        captured_amount: 0,
        refunded_amount: 0,
        refunds_pending: 0,
    }
}

async fn reads_are_for_staff_and_the_owning_customer(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    let (customer, customer_token, method) = app.customer_with_card(SUCCESS).await;
    let order = Uuid::now_v7();
    let r = app
        .pay_with(
            "reads-1",
            json!({"order_id": order, "customer_id": customer, "amount": 100, "currency": "EUR", "payment_method": method}),
        )
        .await;
    let path = format!("/api/v1/payments/{}", r.body["id"].as_str().expect("id"));
    let stranger = app.tokens.sign(Uuid::now_v7(), "customer");
    let support = app.tokens.sign(Uuid::now_v7(), "support");
    assert_eq!(
        app.call("GET", &path, Some(&customer_token), None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", &path, Some(&support), None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", &path, Some(&stranger), None, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("GET", &path, None, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let list = format!("/api/v1/payments?order_id={order}");
    let mine = app.call("GET", &list, Some(&customer_token), None, None).await;
    assert_eq!(mine.body["items"].as_array().map(Vec::len), Some(1));
    let theirs = app.call("GET", &list, Some(&stranger), None, None).await;
    assert_eq!(theirs.body["items"].as_array().map(Vec::len), Some(0));
    let bad = app
        .call("GET", "/api/v1/payments?order_id=nope", Some(&support), None, None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&bad.body), ["order_id"]);
    // Support may read but not write.
    let capture = app
        .call("POST", &format!("{path}/capture"), Some(&support), None, None)
        .await;
    assert_eq!(capture.status, StatusCode::FORBIDDEN);
}

async fn card_numbers_never_reach_the_database(backend: Backend) {
    let Some(app) = spawn(backend, 3000, 2000).await else {
        return;
    };
    for (i, card) in [SUCCESS, DECLINED].into_iter().enumerate() {
        let (customer, _, method) = app.customer_with_card(card).await;
        let r = app.pay(&format!("pan-{i}"), customer, &method, 1000).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert!(!r.body.to_string().contains(card));
    }
    let pans = [SUCCESS, DECLINED];
    match &app.db {
        Db::Sqlite(_) => {
            // Every byte SQLite wrote: the database file and its write-ahead log.
            let dir: PathBuf = app.test_db.dir().expect("dir").to_path_buf();
            let mut scanned = 0;
            for entry in std::fs::read_dir(&dir).expect("dir") {
                let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
                scanned += bytes.len();
                for pan in pans {
                    assert!(
                        !bytes.windows(pan.len()).any(|w| w == pan.as_bytes()),
                        "the card number {pan} is in the database files"
                    );
                }
            }
            assert!(scanned > 0);
        }
        Db::Postgres(pool) => {
            let (tables,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
                    .fetch_one(pool)
                    .await
                    .expect("tables");
            assert!(tables >= 8);
        }
    }
    // And row by row, every column of every table (the scan the erasure test uses too).
    for pan in pans {
        let hits = test_support::db::tables_containing(&app.db, pan).await;
        assert!(hits.is_empty(), "the card number {pan} is stored in {hits:?}");
    }
    // The check itself can fail: the same scan finds a number once one is written.
    assert!(app.count("payment_methods", "").await >= 2);
}
