//! Shop fixtures shared by the order-flow tests: products with stock, payment methods, order
//! bodies, placing orders and waiting for sagas.

use std::time::Duration;

use serde_json::{Value, json};

use crate::app::TestApp;
use crate::requests::{json_of, post_auth};

pub const ORDERS: &str = "/api/v1/orders";
pub const SUCCESS_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";
pub const SLOW_CARD: &str = "4000000000000259";

pub async fn card(app: &TestApp, token: &str, number: &str) -> String {
    let r = post_auth(
        app,
        "/api/v1/payments/methods",
        token,
        json!({"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123", "holder_name": "Ada", "save": true}),
    )
    .await;
    json_of(r, 201).await["id"].as_str().expect("pm id").to_owned()
}

pub fn address(country: &str) -> Value {
    json!({"name": "Ada Lovelace", "line1": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": country})
}

pub fn order_body(items: Value, pm: &str) -> Value {
    json!({"items": items, "shipping_address": address("DE"), "shipping_method": "standard", "payment_method": pm})
}

pub async fn place(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(ORDERS))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request")
}

pub async fn stock(app: &TestApp, sku: &str) -> Value {
    app.get_json(&format!("/api/v1/inventory/{sku}")).await
}

pub async fn order_of(app: &TestApp, token: &str, id: &str) -> Value {
    json_of(app.get_auth(&format!("{ORDERS}/{id}"), token).await, 200).await
}

/// Waits until the order reaches `status` (sagas finishing in the background).
pub async fn wait_for_status(app: &TestApp, token: &str, id: &str, status: &str, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let order = order_of(app, token, id).await;
        if order["status"] == status && order.get("pending_step").is_none() {
            return order;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "order never became {status}: {order}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
