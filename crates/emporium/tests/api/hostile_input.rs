//! What an attacker sends that no form would: control characters in filters and texts, invalid
//! UTF-8 in paths. Each is a 4xx problem naming what was wrong, on both backends (PostgreSQL
//! refuses U+0000 in `text`; it used to surface as a 500).

use serde_json::{Value, json};

use test_support::app::TestApp;
use test_support::requests::{assert_problem, post_auth, problem_fields};

on_both_backends!(
    control_characters_in_filters_are_422_naming_the_parameter,
    control_characters_in_texts_are_422_naming_the_field,
    a_database_that_went_away_is_a_503_with_retry_after,
);

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("request")
}

async fn control_characters_in_filters_are_422_naming_the_parameter(app: TestApp) {
    let admin = app.admin().await;
    for (path, field, staff) in [
        ("/api/v1/catalog/products?brand=%00", "brand", false),
        ("/api/v1/catalog/products?attr=color:a%00b", "attr", false),
        ("/api/v1/catalog/products?attr.color=%00", "attr.color", false),
        ("/api/v1/catalog/search?q=x&brand=%00", "brand", false),
        ("/api/v1/catalog/products/facets?brand=%00", "brand", false),
        ("/api/v1/catalog/products?q=%1B%5B31m", "q", false),
        ("/api/v1/users?email=%00", "email", true),
        ("/api/v1/auth/audit-events?kind=%00", "kind", true),
        ("/api/v1/auth/audit-events?email=%00", "email", true),
        ("/api/v1/auth/audit-events?ip=%00", "ip", true),
        ("/api/v1/notifications/admin/deliveries?to=%00", "to", true),
    ] {
        let token = staff.then_some(admin.access.as_str());
        let body = assert_problem(get(&app, path, token).await, 422).await;
        assert_eq!(problem_fields(&body), [field], "{path}: {body}");
    }
    // A NUL in a path segment is refused before any handler looks it up.
    let body = assert_problem(get(&app, "/api/v1/catalog/products/by-slug/a%00b", None).await, 422).await;
    assert_eq!(problem_fields(&body), ["path"]);
    // Ordinary escapes still work.
    let r = get(&app, "/api/v1/catalog/products?q=caf%C3%A9%20au%20lait", None).await;
    assert_eq!(r.status(), 200);
}

async fn control_characters_in_texts_are_422_naming_the_field(app: TestApp) {
    let admin = app.admin().await;
    let r = post_auth(
        &app,
        "/api/v1/catalog/products",
        &admin.access,
        json!({"sku": "NUL-1", "name": "Fine name", "price": {"amount": 1000}, "status": "active"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let product: Value = r.json().await.expect("json");
    let id = product["id"].as_str().expect("id");
    let customer = app.signed_up("nul@example.com").await;

    let cases = [
        (
            format!("/api/v1/catalog/products/{id}/reviews"),
            customer.access.as_str(),
            json!({"rating": 4, "title": "a\u{0}b", "body": "fine"}),
            "title",
        ),
        (
            format!("/api/v1/catalog/products/{id}/reviews"),
            customer.access.as_str(),
            json!({"rating": 4, "title": "fine", "body": "a\u{0}b"}),
            "body",
        ),
        (
            "/api/v1/catalog/products".to_owned(),
            admin.access.as_str(),
            json!({"sku": "NUL-2", "name": "a\u{0}b", "price": {"amount": 1000}}),
            "name",
        ),
        (
            "/api/v1/catalog/categories".to_owned(),
            admin.access.as_str(),
            json!({"name": "a\u{0}b"}),
            "name",
        ),
        (
            "/api/v1/inventory/NUL-1/adjustments".to_owned(),
            admin.access.as_str(),
            json!({"kind": "restock", "quantity": 1, "reason": "a\u{0}b"}),
            "reason",
        ),
    ];
    for (path, token, body, field) in cases {
        let problem = assert_problem(post_auth(&app, &path, token, body).await, 422).await;
        assert_eq!(problem_fields(&problem), [field], "{path}: {problem}");
    }
    // Nothing was half-written: the product has no review yet.
    let reviews: Value = get(&app, &format!("/api/v1/catalog/products/{id}/reviews"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(reviews["items"].as_array().map(Vec::len), Some(0), "{reviews}");
    // Line breaks in a review are text, not control characters to refuse.
    let r = post_auth(
        &app,
        &format!("/api/v1/catalog/products/{id}/reviews"),
        &customer.access,
        json!({"rating": 4, "title": "Two lines", "body": "first\nsecond"}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// Invalid percent-encoded UTF-8 in a path parameter is a 400 problem naming the parameter, not
/// axum's `text/plain` answer (no storage involved: SQLite only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_path_parameters_is_a_problem() {
    let Some(app) = test_support::app::spawn_app(test_support::Backend::Sqlite).await else {
        return;
    };
    let admin = app.admin().await;
    for path in [
        "/api/v1/orders/%FF%FE",
        "/api/v1/users/%FF",
        "/api/v1/catalog/products/%FF",
        "/api/v1/catalog/products/by-slug/%FF",
        "/api/v1/catalog/categories/%FF",
        "/api/v1/inventory/%FF",
        "/api/v1/payments/%FF",
        "/api/v1/payments/methods/%FF",
        "/api/v1/notifications/admin/deliveries/%FF",
        "/p/%FF",
        "/c/%FF",
        "/static/%FF",
    ] {
        let body = assert_problem(get(&app, path, Some(&admin.access)).await, 400).await;
        assert!(
            body["detail"].as_str().expect("detail").contains("UTF-8"),
            "{path}: {body}"
        );
    }
    for (path, body) in [
        ("/api/v1/cart/items/%FF", json!({"quantity": 1})),
        ("/api/v1/users/%FF/role", json!({"role": "support"})),
    ] {
        let r = app
            .client
            .put(app.url(path))
            .bearer_auth(&admin.access)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_problem(r, 400).await;
    }
}

/// A dependency outage is a 503 problem with Retry-After, never a 500 (a PostgreSQL restarted
/// under load once answered a checkout with a 500). A closed pool stands in for it.
async fn a_database_that_went_away_is_a_503_with_retry_after(app: TestApp) {
    use emporium::app::Service;
    let admin = app.admin().await;
    let customer = app.signed_up("outage@example.com").await;
    app.dbs[&Service::Catalog].close().await;
    app.dbs[&Service::Ordering].close().await;
    let r = post_auth(
        &app,
        "/api/v1/catalog/categories",
        &admin.access,
        json!({"name": "Outage"}),
    )
    .await;
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    assert_problem(r, 503).await;
    let r = get(&app, "/api/v1/orders", Some(&customer.access)).await;
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    assert_problem(r, 503).await;
}
