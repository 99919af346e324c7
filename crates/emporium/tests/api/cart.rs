//! Cart over HTTP on both backends: guest and user carts, merge at login, validation, stock limit,
//! prices and availability read from catalog and inventory at read time, expiry by the sweeper,
//! concurrent adds, and a clear 503 when a peer is unreachable.

use std::time::{Duration, Instant};

use emporium::app::Service;
use platform::db::Db;
use serde_json::{Value, json};

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::{assert_problem, problem_fields, product};

on_both_backends!(
    guest_cart_flow,
    user_cart_flow,
    guest_cart_merges_into_the_user_cart_at_login,
    bad_input_is_refused_naming_the_field,
    quantities_beyond_stock_are_a_conflict,
    prices_are_read_when_the_cart_is_read,
    inactive_products_stay_flagged_unavailable,
    concurrent_adds_of_one_sku_all_count,
);

const CART: &str = "/api/v1/cart";
const ITEMS: &str = "/api/v1/cart/items";

/// How a request names its cart.
#[derive(Clone, Copy)]
enum Who<'a> {
    Guest(&'a str),
    User(&'a str),
    Both { user: &'a str, token: &'a str },
    Nobody,
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    who: Who<'_>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    req = match who {
        Who::Guest(token) => req.header("X-Cart-Token", token),
        Who::User(bearer) => req.bearer_auth(bearer),
        Who::Both { user, token } => req.bearer_auth(user).header("X-Cart-Token", token),
        Who::Nobody => req,
    };
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request")
}

async fn ok_json(r: reqwest::Response) -> Value {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

async fn get_cart(app: &TestApp, who: Who<'_>) -> reqwest::Response {
    send(app, reqwest::Method::GET, CART, who, None).await
}

async fn add(app: &TestApp, who: Who<'_>, sku: &str, quantity: i64) -> reqwest::Response {
    send(
        app,
        reqwest::Method::POST,
        ITEMS,
        who,
        Some(json!({"sku": sku, "quantity": quantity})),
    )
    .await
}

async fn new_guest_cart(app: &TestApp) -> String {
    let r = app
        .client
        .post(app.url("/api/v1/cart/guest"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201);
    let header = r.headers()["x-cart-token"].to_str().expect("header").to_owned();
    let body: Value = r.json().await.expect("json");
    let token = body["cart_token"].as_str().expect("cart_token").to_owned();
    assert_eq!(header, token);
    assert_eq!(token.len(), 43);
    assert_eq!(body["cart"]["kind"], "guest");
    assert_eq!(body["cart"]["items"], json!([]));
    token
}

async fn patch_product(app: &TestApp, admin: &str, id: &str, patch: Value) {
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/catalog/products/{id}")))
        .bearer_auth(admin)
        .json(&patch)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

fn lines(cart: &Value) -> Vec<(String, i64)> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().expect("sku").to_owned(),
                i["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect()
}

fn line<'a>(cart: &'a Value, sku: &str) -> &'a Value {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["sku"] == sku)
        .expect("line")
}

async fn guest_cart_flow(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-TEE-1", 1999, 20).await;
    product(&app, &admin.access, "CART-MUG-1", 850, 20).await;
    let token = new_guest_cart(&app).await;
    let me = Who::Guest(&token);

    let cart = ok_json(add(&app, me, "cart-tee-1", 2).await).await;
    assert_eq!(lines(&cart), [("CART-TEE-1".to_owned(), 2)]);
    let tee = line(&cart, "CART-TEE-1");
    assert_eq!(tee["unit_price"], json!({"amount": 1999, "currency": "EUR"}));
    assert_eq!(tee["line_total"]["amount"], 3998);
    assert_eq!(tee["name"], "Product CART-TEE-1");
    assert_eq!(tee["slug"].as_str().map(|s| !s.is_empty()), Some(true));
    assert_eq!(tee["image"], "https://img.example.com/CART-TEE-1.jpg");
    assert_eq!(tee["available"], true);
    assert_eq!(tee["problems"], json!([]));

    // Adding again adds to the line.
    ok_json(add(&app, me, "CART-TEE-1", 1).await).await;
    let cart = ok_json(add(&app, me, "CART-MUG-1", 1).await).await;
    assert_eq!(
        lines(&cart),
        [("CART-TEE-1".to_owned(), 3), ("CART-MUG-1".to_owned(), 1)]
    );
    assert_eq!(cart["subtotal"]["amount"], 3 * 1999 + 850);
    assert_eq!(cart["currency"], "EUR");
    assert_eq!(cart["item_count"], 4);
    assert!(cart["expires_at"].as_str() > cart["updated_at"].as_str());

    let cart = ok_json(get_cart(&app, me).await).await;
    assert_eq!(cart["subtotal"]["amount"], 3 * 1999 + 850);

    let cart = ok_json(
        send(
            &app,
            reqwest::Method::PUT,
            &format!("{ITEMS}/CART-TEE-1"),
            me,
            Some(json!({"quantity": 1})),
        )
        .await,
    )
    .await;
    assert_eq!(line(&cart, "CART-TEE-1")["quantity"], 1);
    let cart = ok_json(send(&app, reqwest::Method::DELETE, &format!("{ITEMS}/CART-MUG-1"), me, None).await).await;
    assert_eq!(lines(&cart), [("CART-TEE-1".to_owned(), 1)]);
    let cart = ok_json(
        send(
            &app,
            reqwest::Method::PUT,
            &format!("{ITEMS}/CART-TEE-1"),
            me,
            Some(json!({"quantity": 0})),
        )
        .await,
    )
    .await;
    assert_eq!(cart["items"], json!([]));
    assert_eq!(cart["currency"], Value::Null);

    ok_json(add(&app, me, "CART-MUG-1", 2).await).await;
    let cart = ok_json(send(&app, reqwest::Method::DELETE, CART, me, None).await).await;
    assert_eq!(cart["items"], json!([]));
    assert_eq!(cart["subtotal"], Value::Null, "nothing for sale, no subtotal");

    // No cart named: 401. A token that names no cart: 404. Both are problems.
    assert_problem(get_cart(&app, Who::Nobody).await, 401).await;
    assert_problem(add(&app, Who::Nobody, "CART-MUG-1", 1).await, 401).await;
    assert_problem(get_cart(&app, Who::Guest("not-a-token")).await, 404).await;
    let unknown = "A".repeat(43);
    assert_problem(get_cart(&app, Who::Guest(&unknown)).await, 404).await;
    // Lines the cart does not hold.
    assert_problem(
        send(&app, reqwest::Method::DELETE, &format!("{ITEMS}/CART-TEE-1"), me, None).await,
        404,
    )
    .await;
}

async fn user_cart_flow(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-BAG-1", 4500, 10).await;
    let alice = app.signed_up("alice@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let cart = ok_json(add(&app, Who::User(&alice.access), "CART-BAG-1", 2).await).await;
    assert_eq!(cart["kind"], "user");
    let id = cart["id"].clone();
    // One cart per user, the same on every call.
    let again = ok_json(get_cart(&app, Who::User(&alice.access)).await).await;
    assert_eq!(again["id"], id);
    assert_eq!(lines(&again), [("CART-BAG-1".to_owned(), 2)]);
    // Another user's cart is another cart.
    let bobs = ok_json(get_cart(&app, Who::User(&bob.access)).await).await;
    assert_ne!(bobs["id"], id);
    assert_eq!(bobs["items"], json!([]));
    // A bad bearer token is refused, not treated as a guest.
    assert_problem(get_cart(&app, Who::User("not.a.jwt")).await, 401).await;
    // Metrics are exported.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(test_support::app::METRICS_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("cart_items_added_total"),
        "metrics lack the cart counters"
    );
}

async fn guest_cart_merges_into_the_user_cart_at_login(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-CAP-1", 1200, 50).await;
    product(&app, &admin.access, "CART-SOX-1", 300, 50).await;
    let user = app.signed_up("shopper@example.com").await;
    ok_json(add(&app, Who::User(&user.access), "CART-CAP-1", 9).await).await;

    let token = new_guest_cart(&app).await;
    ok_json(add(&app, Who::Guest(&token), "CART-CAP-1", 3).await).await;
    ok_json(add(&app, Who::Guest(&token), "CART-SOX-1", 2).await).await;

    // The first request after login carries both: the guest cart is merged (9 + 3 capped at 10).
    let both = Who::Both {
        user: &user.access,
        token: &token,
    };
    let cart = ok_json(get_cart(&app, both).await).await;
    assert_eq!(cart["kind"], "user");
    assert_eq!(
        lines(&cart),
        [("CART-CAP-1".to_owned(), 10), ("CART-SOX-1".to_owned(), 2)]
    );
    // Again: a no-op.
    let cart = ok_json(get_cart(&app, both).await).await;
    assert_eq!(
        lines(&cart),
        [("CART-CAP-1".to_owned(), 10), ("CART-SOX-1".to_owned(), 2)]
    );
    // The guest cart is gone.
    assert_problem(get_cart(&app, Who::Guest(&token)).await, 404).await;
    // The explicit merge of the same token is a no-op too.
    let cart = ok_json(
        send(
            &app,
            reqwest::Method::POST,
            "/api/v1/cart/merge",
            Who::User(&user.access),
            Some(json!({"cart_token": token})),
        )
        .await,
    )
    .await;
    assert_eq!(line(&cart, "CART-SOX-1")["quantity"], 2);

    // Explicit merge of a new guest cart.
    let token2 = new_guest_cart(&app).await;
    ok_json(add(&app, Who::Guest(&token2), "CART-SOX-1", 1).await).await;
    let merge = |token: String| {
        let app = &app;
        let access = user.access.clone();
        async move {
            send(
                app,
                reqwest::Method::POST,
                "/api/v1/cart/merge",
                Who::User(&access),
                Some(json!({"cart_token": token})),
            )
            .await
        }
    };
    let cart = ok_json(merge(token2.clone()).await).await;
    assert_eq!(line(&cart, "CART-SOX-1")["quantity"], 3);
    let cart = ok_json(merge(token2.clone()).await).await;
    assert_eq!(line(&cart, "CART-SOX-1")["quantity"], 3, "merging twice adds once");
    // Someone else cannot merge it; unknown and malformed tokens are refused.
    let other = app.signed_up("other@example.com").await;
    assert_problem(
        send(
            &app,
            reqwest::Method::POST,
            "/api/v1/cart/merge",
            Who::User(&other.access),
            Some(json!({"cart_token": token2})),
        )
        .await,
        404,
    )
    .await;
    assert_problem(merge("A".repeat(43)).await, 404).await;
    let body = assert_problem(merge("short".into()).await, 422).await;
    assert_eq!(problem_fields(&body), ["cart_token"]);
    // Merging needs a signed-in user.
    assert_problem(
        send(
            &app,
            reqwest::Method::POST,
            "/api/v1/cart/merge",
            Who::Guest(&token2),
            Some(json!({"cart_token": token2})),
        )
        .await,
        401,
    )
    .await;
}

async fn bad_input_is_refused_naming_the_field(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-OK-1", 500, 50).await;
    let r = app
        .client
        .post(app.url("/api/v1/catalog/products"))
        .bearer_auth(&admin.access)
        .json(&json!({"sku": "CART-DRAFT-1", "name": "Draft", "price": {"amount": 100}, "status": "draft"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201);
    app.inventory
        .bulk_restock(&[("CART-DRAFT-1".to_owned(), 5)], "test")
        .await
        .expect("restock");
    let token = new_guest_cart(&app).await;
    let me = Who::Guest(&token);

    for (sku, quantity, field) in [
        ("NO-SUCH-SKU", 1, "sku"),
        ("CART-DRAFT-1", 1, "sku"),
        ("x", 1, "sku"),
        ("CART-OK-1", 0, "quantity"),
        ("CART-OK-1", -2, "quantity"),
        ("CART-OK-1", 11, "quantity"),
    ] {
        let body = assert_problem(add(&app, me, sku, quantity).await, 422).await;
        assert_eq!(problem_fields(&body), [field], "{sku} × {quantity}: {body}");
    }
    // The line limit counts what the cart already holds.
    ok_json(add(&app, me, "CART-OK-1", 8).await).await;
    let body = assert_problem(add(&app, me, "CART-OK-1", 3).await, 422).await;
    assert_eq!(problem_fields(&body), ["quantity"]);
    let body = assert_problem(
        send(
            &app,
            reqwest::Method::PUT,
            &format!("{ITEMS}/CART-OK-1"),
            me,
            Some(json!({"quantity": 11})),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&body), ["quantity"]);
    // Missing and unknown fields.
    let body = assert_problem(
        send(
            &app,
            reqwest::Method::POST,
            ITEMS,
            me,
            Some(json!({"sku": "CART-OK-1"})),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&body), ["quantity"]);
    let body = assert_problem(
        send(
            &app,
            reqwest::Method::POST,
            ITEMS,
            me,
            Some(json!({"sku": "CART-OK-1", "quantity": 1, "price": 1})),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&body), ["price"]);
    // Nothing was written by the refusals.
    let cart = ok_json(get_cart(&app, me).await).await;
    assert_eq!(lines(&cart), [("CART-OK-1".to_owned(), 8)]);
}

async fn quantities_beyond_stock_are_a_conflict(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-LOW-1", 700, 3).await;
    let token = new_guest_cart(&app).await;
    let me = Who::Guest(&token);
    ok_json(add(&app, me, "CART-LOW-1", 2).await).await;
    let body = assert_problem(add(&app, me, "CART-LOW-1", 2).await, 409).await;
    assert_eq!(problem_fields(&body), ["quantity"]);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("3 available")),
        "{body}"
    );
    let body = assert_problem(
        send(
            &app,
            reqwest::Method::PUT,
            &format!("{ITEMS}/CART-LOW-1"),
            me,
            Some(json!({"quantity": 4})),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(problem_fields(&body), ["quantity"]);
    let cart = ok_json(get_cart(&app, me).await).await;
    assert_eq!(lines(&cart), [("CART-LOW-1".to_owned(), 2)]);
    assert_eq!(line(&cart, "CART-LOW-1")["available_quantity"], 3);

    // Stock sold elsewhere after the add: the view flags the line.
    let r = app
        .client
        .post(app.url("/api/v1/inventory/reservations"))
        .bearer_auth(&admin.access)
        .json(&json!({"reference": "elsewhere", "items": [{"sku": "CART-LOW-1", "qty": 2}]}))
        .send()
        .await
        .expect("reserve");
    assert_eq!(r.status(), 201);
    let cart = ok_json(get_cart(&app, me).await).await;
    let low = line(&cart, "CART-LOW-1");
    assert_eq!(low["problems"], json!(["insufficient_stock"]));
    assert_eq!(low["available"], false);
    assert_eq!(low["available_quantity"], 1);
}

async fn prices_are_read_when_the_cart_is_read(app: TestApp) {
    let admin = app.admin().await;
    let id = product(&app, &admin.access, "CART-LAMP-1", 2500, 10).await;
    let token = new_guest_cart(&app).await;
    let me = Who::Guest(&token);
    ok_json(add(&app, me, "CART-LAMP-1", 2).await).await;
    patch_product(
        &app,
        &admin.access,
        &id,
        json!({"price": {"amount": 2750, "currency": "EUR"}}),
    )
    .await;
    let cart = ok_json(get_cart(&app, me).await).await;
    let lamp = line(&cart, "CART-LAMP-1");
    assert_eq!(lamp["unit_price"]["amount"], 2750);
    assert_eq!(lamp["added_price"]["amount"], 2500);
    assert_eq!(lamp["line_total"]["amount"], 5500);
    assert_eq!(lamp["problems"], json!(["price_changed"]));
    assert_eq!(cart["subtotal"]["amount"], 5500);
    // Changing the line acknowledges the new price.
    let cart = ok_json(
        send(
            &app,
            reqwest::Method::PUT,
            &format!("{ITEMS}/CART-LAMP-1"),
            me,
            Some(json!({"quantity": 3})),
        )
        .await,
    )
    .await;
    let lamp = line(&cart, "CART-LAMP-1");
    assert_eq!(lamp["added_price"]["amount"], 2750);
    assert_eq!(lamp["problems"], json!([]));
    assert_eq!(cart["subtotal"]["amount"], 3 * 2750);
}

async fn inactive_products_stay_flagged_unavailable(app: TestApp) {
    let admin = app.admin().await;
    let gone = product(&app, &admin.access, "CART-GONE-1", 900, 10).await;
    product(&app, &admin.access, "CART-STAY-1", 100, 10).await;
    let user = app.signed_up("flag@example.com").await;
    let me = Who::User(&user.access);
    ok_json(add(&app, me, "CART-GONE-1", 1).await).await;
    ok_json(add(&app, me, "CART-STAY-1", 2).await).await;
    patch_product(&app, &admin.access, &gone, json!({"status": "archived"})).await;
    let cart = ok_json(get_cart(&app, me).await).await;
    assert_eq!(
        lines(&cart),
        [("CART-GONE-1".to_owned(), 1), ("CART-STAY-1".to_owned(), 2)]
    );
    let line_gone = line(&cart, "CART-GONE-1");
    assert_eq!(line_gone["problems"], json!(["unavailable"]));
    assert_eq!(line_gone["available"], false);
    assert_eq!(line_gone["name"], "Product CART-GONE-1");
    assert_eq!(line_gone["unit_price"]["amount"], 900);
    assert_eq!(cart["subtotal"]["amount"], 200, "unavailable lines are left out");
    assert_eq!(cart["item_count"], 3);
    // It cannot be added again, but it can be removed.
    let body = assert_problem(add(&app, me, "CART-GONE-1", 1).await, 422).await;
    assert_eq!(problem_fields(&body), ["sku"]);
    let cart = ok_json(send(&app, reqwest::Method::DELETE, &format!("{ITEMS}/CART-GONE-1"), me, None).await).await;
    assert_eq!(lines(&cart), [("CART-STAY-1".to_owned(), 2)]);
}

async fn concurrent_adds_of_one_sku_all_count(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-RUSH-1", 100, 500).await;
    let token = new_guest_cart(&app).await;
    let user = app.signed_up("rush@example.com").await;
    for who in [Who::Guest(&token), Who::User(&user.access)] {
        let adds = (0..10).map(|_| add(&app, who, "CART-RUSH-1", 1));
        for r in futures::future::join_all(adds).await {
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        }
        let cart = ok_json(get_cart(&app, who).await).await;
        assert_eq!(lines(&cart), [("CART-RUSH-1".to_owned(), 10)]);
    }
}

/// A guest cart untouched longer than its TTL (here ~2 s) is deleted by the background sweeper;
/// its token then answers 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_guest_carts_are_swept_sqlite() {
    expired_guest_carts_are_swept(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_guest_carts_are_swept_postgres() {
    expired_guest_carts_are_swept(Backend::Postgres).await;
}

async fn expired_guest_carts_are_swept(backend: Backend) {
    let config = [
        ("EMPORIUM_CART_GUEST_TTL_HOURS", "0.0006"),
        ("EMPORIUM_CART_SWEEP_SECS", "1"),
        ("EMPORIUM_CART_MAX_LINES", "1"),
    ];
    let Some(app) = spawn_app_with(backend, &config, true).await else {
        return;
    };
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-OLD-1", 100, 5).await;
    product(&app, &admin.access, "CART-OLD-2", 100, 5).await;
    let token = new_guest_cart(&app).await;
    ok_json(add(&app, Who::Guest(&token), "CART-OLD-1", 1).await).await;
    // EMPORIUM_CART_MAX_LINES applies.
    let body = assert_problem(add(&app, Who::Guest(&token), "CART-OLD-2", 1).await, 422).await;
    assert_eq!(problem_fields(&body), ["sku"]);
    // Wait without touching the cart (reads count as activity): the sweeper must delete it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        const SQL: &str = "SELECT COUNT(*) FROM carts WHERE user_id IS NULL";
        let guests: i64 = match &app.dbs[&Service::Cart] {
            Db::Sqlite(p) => sqlx::query_scalar(SQL).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_scalar(SQL).fetch_one(p).await,
        }
        .expect("count carts");
        if guests == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the sweeper never deleted the guest cart");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_problem(get_cart(&app, Who::Guest(&token)).await, 404).await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(test_support::app::METRICS_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("carts_expired_total"), "no expiry counter");
}

/// Catalog unreachable: the cart answers a 503 problem that names it, not a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_catalog_is_a_clear_503() {
    let Some(app) = spawn_app_with(
        Backend::Sqlite,
        &[
            ("EMPORIUM_CATALOG_URL", "http://127.0.0.1:9"),
            ("EMPORIUM_SERVICE_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
        true,
    )
    .await
    else {
        return;
    };
    let token = new_guest_cart(&app).await;
    let body = assert_problem(add(&app, Who::Guest(&token), "CART-ANY-1", 1).await, 503).await;
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("catalog")), "{body}");
}
