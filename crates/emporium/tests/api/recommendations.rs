//! "Customers who bought this also bought": confirmed orders feed catalog's co-purchase read
//! model through the bus; recommendations rank what was bought together, skip what is out of
//! stock, fill up with related products, and count each order once.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::app::TestApp;
use test_support::requests::*;
use test_support::shop::*;

on_both_backends!(
    bought_together_ranks_first_skips_out_of_stock_and_falls_back_to_related,
    recommendation_requests_are_checked,
);

const PRODUCTS: &str = "/api/v1/catalog/products";

async fn red_product(app: &TestApp, admin: &str, sku: &str, stock: i64) -> String {
    let created = create_product(
        app,
        admin,
        json!({"sku": sku, "name": format!("Red {sku}"), "price": {"amount": 1000}, "attributes": {"color": "red"},
               "status": "active"}),
    )
    .await;
    if stock > 0 {
        app.inventory
            .bulk_restock(&[(sku.to_owned(), stock)], "test stock")
            .await
            .expect("restock");
    }
    created["id"].as_str().expect("id").to_owned()
}

async fn counted_orders(app: &TestApp) -> i64 {
    let q = "SELECT COUNT(*) FROM co_purchase_orders";
    match &app.dbs[&emporium::app::Service::Catalog] {
        platform::db::Db::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await.expect("count"),
        platform::db::Db::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await.expect("count"),
    }
}

/// Waits until catalog has heard of `orders` confirmed orders and `sku` is out of stock.
async fn wait_for_history(app: &TestApp, orders: i64, sold_out: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let product = app
            .get_json(&format!("/api/v1/catalog/products/by-sku?sku={sold_out}"))
            .await;
        if counted_orders(app).await == orders && product["items"][0]["available"] == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "catalog heard of {} of {orders} orders; {sold_out}: {product}",
            counted_orders(app).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn skus_and_reasons(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["product"]["sku"].as_str().expect("sku").to_owned(),
                r["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

async fn bought_together_ranks_first_skips_out_of_stock_and_falls_back_to_related(app: TestApp) {
    let admin = app.admin().await;
    let anchor = red_product(&app, &admin.access, "REC-A", 20).await;
    let b = product(&app, &admin.access, "REC-B", 1000, 20).await;
    let c = product(&app, &admin.access, "REC-C", 1000, 20).await;
    product(&app, &admin.access, "REC-D", 1000, 1).await;
    red_product(&app, &admin.access, "REC-R1", 5).await;
    red_product(&app, &admin.access, "REC-R2", 0).await;
    let user = app.signed_up("recommend@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let baskets = [
        json!([{"sku": "REC-A", "quantity": 1}, {"sku": "REC-B", "quantity": 1}]),
        json!([{"sku": "REC-A", "quantity": 1}, {"sku": "REC-B", "quantity": 1}]),
        json!([{"sku": "REC-A", "quantity": 1}, {"sku": "REC-C", "quantity": 1}]),
        // REC-D sells out with this order: it is never recommended while out of stock.
        json!([{"sku": "REC-A", "quantity": 1}, {"sku": "REC-D", "quantity": 1}]),
    ];
    for (i, items) in baskets.into_iter().enumerate() {
        let order = json_of(
            place(&app, &user.access, &format!("rec-{i}"), &order_body(items, &pm)).await,
            201,
        )
        .await;
        assert_eq!(order["status"], "confirmed", "{order}");
    }
    wait_for_history(&app, 4, "REC-D").await;

    let list = app
        .get_json(&format!("{PRODUCTS}/{anchor}/recommendations?limit=4"))
        .await;
    assert_eq!(
        skus_and_reasons(&list),
        [
            ("REC-B".to_owned(), "bought_together".to_owned()),
            ("REC-C".to_owned(), "bought_together".to_owned()),
            ("REC-R1".to_owned(), "related".to_owned()),
        ],
        "B twice before C once; D sold out; R2 (related) has no stock; never A itself: {list}"
    );

    // A cart holding B and C: A was bought with both; neither B nor C is offered.
    let for_cart = app
        .get_json(&format!("/api/v1/catalog/recommendations?products={b},{c}&limit=1"))
        .await;
    assert_eq!(
        skus_and_reasons(&for_cart),
        [("REC-A".to_owned(), "bought_together".to_owned())]
    );

    // The pages: the product page and a cart holding B show what was bought with them.
    let slug_of = |sku: &'static str| {
        let app = &app;
        async move {
            let found = app
                .get_json(&format!("/api/v1/catalog/products/by-sku?sku={sku}"))
                .await;
            found["items"][0]["slug"].as_str().expect("slug").to_owned()
        }
    };
    let browser = crate::browser::browser();
    let (status, page) = crate::browser::get_page(&browser, &app, &format!("/p/{}", slug_of("REC-A").await)).await;
    assert_eq!(status, 200);
    let shown = page
        .split(r#"data-testid="bought-together""#)
        .nth(1)
        .expect("a bought-together section");
    assert!(shown.contains("Product REC-B") && !shown.contains("REC-R2"), "{page}");
    let (_, page) = crate::browser::get_page(&browser, &app, &format!("/p/{}", slug_of("REC-B").await)).await;
    let r = crate::browser::post_form(
        &browser,
        &app,
        "/cart/add",
        &[
            ("_csrf", &crate::browser::csrf(&page)),
            ("sku", "REC-B"),
            ("quantity", "1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, cart) = crate::browser::get_page(&browser, &app, "/cart").await;
    let shown = cart
        .split(r#"data-testid="bought-together""#)
        .nth(1)
        .expect("a bought-together section");
    assert!(shown.contains("Red REC-A"), "{cart}");

    // A confirmed order delivered again is not counted again.
    let store = catalog::store::open(&app.dbs[&emporium::app::Service::Catalog]);
    let first_order = uuid::Uuid::now_v7();
    let pair = catalog::domain::BoughtTogether::of([
        catalog::domain::ProductId(anchor.parse().expect("uuid")),
        catalog::domain::ProductId(c.parse().expect("uuid")),
    ])
    .expect("pair");
    let at = platform::clock::now();
    assert!(
        store
            .record_co_purchase(first_order, &pair, 1.0, at)
            .await
            .expect("record")
    );
    assert!(
        !store
            .record_co_purchase(first_order, &pair, 1.0, at)
            .await
            .expect("again")
    );
    assert_eq!(counted_orders(&app).await, 5);
}

async fn recommendation_requests_are_checked(app: TestApp) {
    let admin = app.admin().await;
    let id = product(&app, &admin.access, "REC-BAD", 1000, 1).await;
    let get = |path: String| {
        let app = &app;
        async move { app.client.get(app.url(&path)).send().await.expect("request") }
    };
    for limit in ["0", "51"] {
        let problem = assert_problem(get(format!("{PRODUCTS}/{id}/recommendations?limit={limit}")).await, 422).await;
        assert_eq!(problem_fields(&problem), ["limit"]);
    }
    assert_problem(
        get(format!("{PRODUCTS}/{}/recommendations", uuid::Uuid::now_v7())).await,
        404,
    )
    .await;
    for products in ["not-a-uuid", ","] {
        let problem = assert_problem(
            get(format!("/api/v1/catalog/recommendations?products={products}")).await,
            422,
        )
        .await;
        assert_eq!(problem_fields(&problem), ["products"], "{products}");
    }
    let too_many = (0..51)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let problem = assert_problem(
        get(format!("/api/v1/catalog/recommendations?products={too_many}")).await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&problem), ["products"]);
    // No history and nothing related: an empty list, not an error.
    let none = json_of(get(format!("{PRODUCTS}/{id}/recommendations")).await, 200).await;
    assert_eq!(none["items"], json!([]));
}
