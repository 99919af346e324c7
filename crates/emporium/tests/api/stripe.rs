//! Payments in Stripe mode (`EMPORIUM_PAYMENTS_PROVIDER=stripe`) against localstripe, a stateful
//! Stripe-compatible server the test starts (tests/localstripe_server.py), on both backends: the
//! whole checkout journey with a card tokenised the way Stripe.js does it, the declined card, a
//! partial refund, localstripe's own signed webhooks, and a refund made in "the dashboard"
//! reaching the ledger through `charge.refunded`.

use std::time::Duration;

use serde_json::{Value, json};

use emporium::app::Service;
use platform::db::Db;

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::{assert_problem, json_of, post_auth, problem_fields, product};
use test_support::shop::{order_body, place};
use test_support::stripe::{LocalStripe, WEBHOOK_SECRET};

const METHODS: &str = "/api/v1/payments/methods";
const WEBHOOK: &str = "/api/v1/payments/webhooks/stripe";
/// Declines when charged (Stripe's and localstripe's documented test card).
const DECLINED_ON_CHARGE: &str = "4000000000000341";

test_support::on_both_backends!(
    super::spawn =>
    checkout_refunds_and_webhooks_go_through_stripe,
    a_card_declined_by_stripe_fails_the_order_and_is_not_kept,
);

/// The app on `backend` with payments on a fresh localstripe, which posts its events back to it.
async fn spawn(backend: Backend) -> Option<(TestApp, LocalStripe)> {
    let stripe = LocalStripe::start().await?;
    let env = stripe.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(backend, &env, true).await?;
    stripe.send_webhooks_to(&app.url(WEBHOOK)).await;
    Some((app, stripe))
}

async fn rows(app: &TestApp, sql: &str, bind: &str) -> Vec<(String,)> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match &app.dbs[&Service::Payments] {
        Db::Sqlite(p) => sqlx::query_as(sql).bind(bind).fetch_all(p).await,
        Db::Postgres(p) => sqlx::query_as(sql).bind(bind).fetch_all(p).await,
    }
    .expect("query payments")
}

/// Waits (10 s) until payments has recorded a webhook of `event_type` about anything.
async fn wait_for_webhook(app: &TestApp, event_type: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rows(app, "SELECT id FROM webhook_events WHERE event_type = $1", event_type)
        .await
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "localstripe's {event_type} webhook never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves the card behind a Stripe token for the shopper, as checkout does.
async fn saved_card(app: &TestApp, shopper: &str, token: &str) -> Value {
    json_of(
        post_auth(app, METHODS, shopper, json!({"provider_token": token, "save": true})).await,
        201,
    )
    .await
}

/// Posts `event` to the webhook signed as Stripe signs (`Stripe-Signature`) with `secret`.
async fn deliver(app: &TestApp, event: &Value, secret: &str) -> reqwest::Response {
    let body = serde_json::to_vec(event).expect("event json");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    app.client
        .post(app.url(WEBHOOK))
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            payments::provider::signature_header(secret.as_bytes(), now, &body),
        )
        .body(body)
        .send()
        .await
        .expect("webhook request")
}

async fn checkout_refunds_and_webhooks_go_through_stripe((app, stripe): (TestApp, LocalStripe)) {
    let admin = app.admin().await;
    product(&app, &admin.access, "STRIPE-1", 2599, 5).await;
    let shopper = app.signed_up("stripe1@example.com").await;

    // Card numbers never reach Emporium in Stripe mode.
    let r = post_auth(
        &app,
        METHODS,
        &shopper.access,
        json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}),
    )
    .await;
    let problem = assert_problem(r, 422).await;
    assert_eq!(problem_fields(&problem), ["card_number"]);
    assert!(problem.to_string().contains("provider_token"), "{problem}");
    // A token Stripe does not know, and one that is not a Stripe id.
    for (token, status) in [("pm_doesnotexist", 422), ("card; DROP", 422), ("src_123", 422)] {
        let r = post_auth(&app, METHODS, &shopper.access, json!({"provider_token": token})).await;
        let problem = assert_problem(r, status).await;
        assert_eq!(problem_fields(&problem), ["provider_token"], "{token}");
    }

    // The card as Stripe.js tokenises it in the browser.
    let pm = stripe.payment_method("4242424242424242").await;
    let method = saved_card(&app, &shopper.access, &pm).await;
    assert_eq!(
        (method["brand"].as_str(), method["last4"].as_str()),
        (Some("visa"), Some("4242"))
    );
    assert_eq!(
        (method["exp_month"].as_i64(), method["exp_year"].as_i64()),
        (Some(12), Some(2031))
    );
    let method_id = method["id"].as_str().expect("method id");

    // Checkout: the order is confirmed and Stripe holds the captured intent.
    let body = order_body(json!([{"sku": "STRIPE-1", "quantity": 2}]), method_id);
    let order = json_of(place(&app, &shopper.access, "stripe-order-1", &body).await, 201).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    let total = order["total"]["amount"].as_i64().expect("total");
    let order_id = order["id"].as_str().expect("order id");
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={order_id}"), &admin.access)
            .await,
        200,
    )
    .await;
    let payment = &payments["items"][0];
    assert_eq!(payment["status"], "captured", "{payment}");
    let payment_id = payment["id"].as_str().expect("payment id");
    // The test's database holds this one payment.
    let intents = rows(
        &app,
        "SELECT provider_intent FROM payments WHERE status = $1",
        "captured",
    )
    .await;
    assert_eq!(intents.len(), 1);
    let intent_id = intents[0].0.clone();
    assert!(intent_id.starts_with("pi_"), "{intent_id}");
    let intent = stripe.get(&format!("/v1/payment_intents/{intent_id}")).await;
    assert_eq!(intent["status"], "succeeded", "{intent}");
    assert_eq!(intent["amount"].as_i64(), Some(total));
    assert_eq!(intent["currency"], "eur");
    // Captured in the same call as the authorization: one round trip to Stripe.
    assert_eq!(intent["capture_method"], "automatic");
    assert_eq!(intent["metadata"]["emporium_key"], format!("{payment_id}:authorize"));
    assert_eq!(intent["payment_method"], pm.as_str());

    // localstripe posts payment_intent.succeeded, signed; payments verifies and records it (the
    // payment had settled already, so it changes nothing).
    wait_for_webhook(&app, "payment_intent.succeeded").await;

    // A partial refund through Emporium reaches Stripe with its key.
    let refunds_path = format!("/api/v1/payments/{payment_id}/refunds");
    let r = app
        .client
        .post(app.url(&refunds_path))
        .bearer_auth(&admin.access)
        .header("Idempotency-Key", "stripe-refund-1")
        .json(&json!({"amount": 500, "reason": "damaged box"}))
        .send()
        .await
        .expect("refund");
    let refund = json_of(r, 201).await;
    assert_eq!(refund["status"], "completed", "{refund}");
    let at_stripe = stripe.get(&format!("/v1/refunds?payment_intent={intent_id}")).await;
    let listed = at_stripe["data"].as_array().expect("refunds");
    assert_eq!(listed.len(), 1, "{at_stripe}");
    assert_eq!(listed[0]["amount"], 500);
    assert_eq!(
        listed[0]["metadata"]["emporium_key"],
        format!("{}:refund", refund["id"].as_str().expect("refund id"))
    );

    // A refund made at Stripe (the dashboard) reaches the ledger through charge.refunded, once.
    let dashboard = stripe
        .post(
            "/v1/refunds",
            &[("payment_intent", intent_id.as_str()), ("amount", "300")],
        )
        .await;
    assert_eq!(dashboard["status"], "succeeded", "{dashboard}");
    let charge_id = dashboard["charge"].as_str().expect("charge id");
    let charge = stripe.get(&format!("/v1/charges/{charge_id}")).await;
    let event = json!({"id": "evt_dashboard_refund", "object": "event", "type": "charge.refunded",
        "created": time::OffsetDateTime::now_utc().unix_timestamp(), "data": {"object": charge}});
    let ack = json_of(deliver(&app, &event, WEBHOOK_SECRET).await, 200).await;
    assert_eq!(ack["result"], "applied", "{ack}");
    let ack = json_of(deliver(&app, &event, WEBHOOK_SECRET).await, 200).await;
    assert_eq!(ack["result"], "duplicate", "the same event twice");
    let mut again = event.clone();
    again["id"] = json!("evt_dashboard_refund_resent");
    let ack = json_of(deliver(&app, &again, WEBHOOK_SECRET).await, 200).await;
    assert_eq!(ack["result"], "already_settled", "every refund in it is known");

    let view = json_of(
        app.get_auth(&format!("/api/v1/payments/{payment_id}"), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(view["refunded_amount"]["amount"], 800, "{view}");
    assert_eq!(view["refundable_amount"]["amount"].as_i64(), Some(total - 800));
    let refunds = json_of(app.get_auth(&refunds_path, &admin.access).await, 200).await;
    let reasons: Vec<(&str, i64)> = refunds["items"]
        .as_array()
        .expect("refunds")
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap_or_default(),
                r["amount"]["amount"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(reasons, [("damaged box", 500), ("refunded at stripe", 300)]);

    // Forged, stale and foreign events are refused; event types we do not act on are acknowledged.
    let r = deliver(&app, &again, "whsec_someone_else_entirely").await;
    assert_problem(r, 400).await;
    let r = app
        .client
        .post(app.url(WEBHOOK))
        .header("stripe-signature", "t=1,v1=00")
        .body(event.to_string())
        .send()
        .await
        .expect("stale");
    assert_problem(r, 400).await;
    let other = json!({"id": "evt_other", "type": "customer.created", "created": 1, "data": {"object": {}}});
    let ack = json_of(deliver(&app, &other, WEBHOOK_SECRET).await, 200).await;
    assert_eq!(ack["result"], "ignored");
    let r = deliver(&app, &event, WEBHOOK_SECRET).await;
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .post(app.url("/api/v1/payments/webhooks/simulated"))
        .body("{}")
        .send()
        .await
        .expect("other provider");
    assert_problem(r, 404).await;
}

async fn a_card_declined_by_stripe_fails_the_order_and_is_not_kept((app, stripe): (TestApp, LocalStripe)) {
    let admin = app.admin().await;
    product(&app, &admin.access, "STRIPE-2", 1000, 5).await;
    let shopper = app.signed_up("stripe2@example.com").await;
    // Tokenised the other way Stripe.js offers (`createToken`): the token's card is charged.
    let token = stripe.card_token(DECLINED_ON_CHARGE).await;
    assert!(token.starts_with("tok_"), "{token}");
    let method = saved_card(&app, &shopper.access, &token).await;
    assert_eq!(method["last4"], "0341");
    let method_id = method["id"].as_str().expect("method id");

    let body = order_body(json!([{"sku": "STRIPE-2", "quantity": 1}]), method_id);
    let order = json_of(place(&app, &shopper.access, "stripe-declined", &body).await, 201).await;
    assert_eq!(order["status"], "payment_failed", "{order}");
    let order_id = order["id"].as_str().expect("order id");
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={order_id}"), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(payments["items"][0]["status"], "declined", "{payments}");
    assert_eq!(payments["items"][0]["decline_code"], "card_declined");
    // Stock is back and the declined card is not kept.
    let stock = app.get_json("/api/v1/inventory/STRIPE-2").await;
    assert_eq!(stock["available"], 5, "{stock}");
    let saved = json_of(app.get_auth(METHODS, &shopper.access).await, 200).await;
    assert_eq!(saved["items"], json!([]));
    // localstripe reports the failure too; payments records it without changing the outcome.
    wait_for_webhook(&app, "payment_intent.payment_failed").await;
    let payment_id = payments["items"][0]["id"].as_str().expect("payment id");
    let view = json_of(
        app.get_auth(&format!("/api/v1/payments/{payment_id}"), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(view["status"], "declined");
}
