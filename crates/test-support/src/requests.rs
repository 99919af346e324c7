//! Typed request helpers: a status check that returns the JSON body, authorised posts, problem
//! bodies, and products created through the API.

use serde_json::{Value, json};

use crate::app::{PASSWORD, TestApp};

/// Asserts `status` (showing the body when it differs) and returns the body as JSON (`null` when
/// it is not JSON).
pub async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Logs `email` in with the test [`PASSWORD`] at `base` (the origin of an app, binary or gateway
/// started for the test, e.g. `http://127.0.0.1:8080`) and returns the access token.
pub async fn access_token(client: &reqwest::Client, base: &str, email: &str) -> String {
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    json_of(r, 200).await["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// `POST path` with a bearer token and a JSON body.
pub async fn post_auth(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// Creates the product `body` describes (expecting 201); returns it.
pub async fn create_product(app: &TestApp, admin: &str, body: Value) -> Value {
    json_of(post_auth(app, "/api/v1/catalog/products", admin, body).await, 201).await
}

/// An active product `sku` at `price` cents (EUR) with an image and `stock` units; returns its id.
pub async fn product(app: &TestApp, admin: &str, sku: &str, price: i64, stock: i64) -> String {
    let created = create_product(
        app,
        admin,
        json!({"sku": sku, "name": format!("Product {sku}"), "price": {"amount": price, "currency": "EUR"},
               "status": "active", "images": [format!("https://img.example.com/{sku}.jpg")]}),
    )
    .await;
    if stock > 0 {
        app.inventory
            .bulk_restock(&[(sku.to_owned(), stock)], "test stock")
            .await
            .expect("restock");
    }
    created["id"].as_str().expect("product id").to_owned()
}

/// Asserts an RFC 9457 answer with `status`, returning its body.
pub async fn assert_problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = r.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string(), "{body}");
    body
}

/// The `field` names of a validation problem.
pub fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
