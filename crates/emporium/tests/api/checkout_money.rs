//! Money shown before it is taken, over HTTP on both backends: one JSON shape for every
//! amount, quotes that need only the country, `expected_total` refusing a total that was not
//! shown, cards saved only when asked (a declined one never kept) and removable by their owner,
//! and one status for adding to any cart.

use serde_json::{Value, json};

use test_support::app::TestApp;
use test_support::requests::*;
use test_support::shop::*;

on_both_backends!(
    every_amount_is_amount_and_currency,
    requests_take_the_money_object_and_still_a_bare_integer,
    a_quote_needs_only_the_country,
    a_total_other_than_the_one_shown_is_refused,
    a_card_is_kept_only_when_saved,
    a_declined_card_is_not_kept,
    an_owner_removes_a_card,
    adding_to_any_cart_answers_200,
);

fn is_money(v: &Value, amount: i64) -> bool {
    *v == json!({"amount": amount, "currency": "EUR"})
}

async fn method(app: &TestApp, token: &str, number: &str, save: Option<bool>) -> String {
    let mut body = json!({"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"});
    if let Some(save) = save {
        body["save"] = json!(save);
    }
    let r = post_auth(app, "/api/v1/payments/methods", token, body).await;
    json_of(r, 201).await["id"].as_str().expect("pm id").to_owned()
}

async fn listed(app: &TestApp, token: &str) -> Vec<String> {
    let list = json_of(app.get_auth("/api/v1/payments/methods", token).await, 200).await;
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn every_amount_is_amount_and_currency(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-1", 1299, 10).await;
    let user = app.signed_up("money@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;

    // Cart: line totals and subtotal.
    let r = post_auth(
        &app,
        "/api/v1/cart/items",
        &user.access,
        json!({"sku": "MONEY-1", "quantity": 2}),
    )
    .await;
    let cart = json_of(r, 200).await;
    assert!(is_money(&cart["subtotal"], 2598), "{cart}");
    assert!(is_money(&cart["items"][0]["line_total"], 2598), "{cart}");

    // Shipping methods.
    let methods = app.get_json("/api/v1/orders/shipping-methods").await;
    let standard = &methods["methods"][0];
    assert_eq!(standard["price"]["currency"], "EUR", "{methods}");
    assert!(standard["price"]["amount"].is_i64(), "{methods}");

    // An order, its lines and every total; the order list too.
    let body = order_body(json!([{"sku": "MONEY-1", "quantity": 1}]), &pm);
    let order = json_of(place(&app, &user.access, "money-1", &body).await, 201).await;
    // 12.99 + 4.99 shipping = 17.98; 19 % tax = 3.42; total 21.40.
    for (field, amount) in [
        ("subtotal", 1299),
        ("discount", 0),
        ("shipping", 499),
        ("tax", 342),
        ("total", 2140),
        ("refunded", 0),
    ] {
        assert!(is_money(&order[field], amount), "{field}: {order}");
    }
    assert!(is_money(&order["lines"][0]["unit_price"], 1299), "{order}");
    assert!(is_money(&order["lines"][0]["line_total"], 1299), "{order}");
    assert!(is_money(&order["payment"]["refunded"], 0), "{order}");
    let mine = json_of(app.get_auth(ORDERS, &user.access).await, 200).await;
    assert!(is_money(&mine["items"][0]["total"], 2140), "{mine}");

    // Payments and refunds.
    let id = order["id"].as_str().expect("id");
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={id}"), &admin.access)
            .await,
        200,
    )
    .await;
    let p = &payments["items"][0];
    for field in ["amount", "captured_amount"] {
        assert!(is_money(&p[field], 2140), "{field}: {p}");
    }
    assert!(is_money(&p["refunded_amount"], 0), "{p}");
    assert!(is_money(&p["refundable_amount"], 2140), "{p}");
    let r = app
        .client
        .post(app.url(&format!("/api/v1/payments/{}/refunds", p["id"].as_str().expect("id"))))
        .bearer_auth(&admin.access)
        .header("Idempotency-Key", "money-refund-1")
        .json(&json!({"amount": {"amount": 100, "currency": "EUR"}, "reason": "scratch"}))
        .send()
        .await
        .expect("request");
    let refund = json_of(r, 201).await;
    assert!(is_money(&refund["amount"], 100), "{refund}");

    // Coupons.
    let r = post_auth(
        &app,
        "/api/v1/orders/admin/coupons",
        &admin.access,
        json!({"code": "MONEY-5", "kind": "fixed", "amount": {"amount": 500, "currency": "EUR"},
               "min_subtotal": {"amount": 1000, "currency": "EUR"}}),
    )
    .await;
    let coupon = json_of(r, 201).await;
    assert!(is_money(&coupon["amount"], 500), "{coupon}");
    assert!(is_money(&coupon["min_subtotal"], 1000), "{coupon}");

    // Catalog's price facets.
    let facets = app.get_json("/api/v1/catalog/products/facets").await;
    let bucket = &facets["price_buckets"][0];
    assert_eq!(bucket["min"]["currency"], "EUR", "{facets}");
    assert!(bucket["min"]["amount"].is_i64(), "{facets}");
}

async fn requests_take_the_money_object_and_still_a_bare_integer(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-2", 1500, 10).await;
    let user = app.signed_up("money2@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let quote_of = |body: Value| post_auth(&app, "/api/v1/orders/quote", &user.access, body);

    let mut body = order_body(
        json!([{"sku": "MONEY-2", "quantity": 1, "unit_price": {"amount": 1500, "currency": "EUR"}}]),
        &pm,
    );
    let quote = json_of(quote_of(body.clone()).await, 200).await;
    let total = quote["total"]["amount"].as_i64().expect("total");
    body["expected_total"] = json!({"amount": total, "currency": "EUR"});
    json_of(quote_of(body.clone()).await, 200).await;
    // The integer of before still works.
    body["expected_total"] = json!(total);
    body["items"][0]["unit_price"] = json!(1500);
    json_of(quote_of(body.clone()).await, 200).await;
    // Another currency is named as such, not taken for euros.
    body["expected_total"] = json!({"amount": total, "currency": "USD"});
    let problem = assert_problem(quote_of(body.clone()).await, 422).await;
    assert_eq!(problem_fields(&problem), ["expected_total.currency"]);
    body["expected_total"] = json!("12.00");
    assert_problem(quote_of(body).await, 422).await;
}

async fn a_quote_needs_only_the_country(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-3", 10000, 10).await;
    let user = app.signed_up("money3@example.com").await;
    let r = post_auth(
        &app,
        "/api/v1/cart/items",
        &user.access,
        json!({"sku": "MONEY-3", "quantity": 1}),
    )
    .await;
    json_of(r, 200).await;
    let quote = |country: &str| {
        post_auth(
            &app,
            "/api/v1/orders/quote",
            &user.access,
            json!({"from_cart": true, "shipping_address": {"country": country}, "shipping_method": "standard"}),
        )
    };
    let de = json_of(quote("DE").await, 200).await;
    let nl = json_of(quote("NL").await, 200).await;
    assert_eq!(de["tax_rate_bp"], 1900, "{de}");
    assert_eq!(nl["tax_rate_bp"], 2100, "{nl}");
    assert!(is_money(&de["subtotal"], 10000), "{de}");
    assert_ne!(de["total"], nl["total"]);
    let problem = assert_problem(quote("ZZ").await, 422).await;
    assert_eq!(problem_fields(&problem), ["shipping_address.country"]);

    // Placing still needs the whole address.
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = json!({"from_cart": true, "shipping_address": {"country": "DE"}, "shipping_method": "standard",
                      "payment_method": pm});
    let problem = assert_problem(place(&app, &user.access, "money-3", &body).await, 422).await;
    let fields = problem_fields(&problem);
    for field in ["name", "line1", "city", "postal_code"] {
        assert!(fields.contains(&format!("shipping_address.{field}")), "{fields:?}");
    }
}

async fn a_total_other_than_the_one_shown_is_refused(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-4", 2000, 10).await;
    let user = app.signed_up("money4@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let mut body = order_body(json!([{"sku": "MONEY-4", "quantity": 1}]), &pm);
    let quote = json_of(
        post_auth(&app, "/api/v1/orders/quote", &user.access, body.clone()).await,
        200,
    )
    .await;
    let total = quote["total"]["amount"].as_i64().expect("total");

    // The total shown before VAT (the subtotal) is not what would be charged: 409, nothing placed.
    body["expected_total"] = json!({"amount": 2000, "currency": "EUR"});
    let problem = assert_problem(place(&app, &user.access, "money-4a", &body).await, 409).await;
    assert_eq!(problem_fields(&problem), ["expected_total"]);
    assert!(is_money(&problem["quote"]["total"], total), "{problem}");
    let mine = json_of(app.get_auth(ORDERS, &user.access).await, 200).await;
    assert_eq!(mine["items"], json!([]), "nothing placed");
    assert_eq!(stock(&app, "MONEY-4").await["reserved"], 0);

    body["expected_total"] = json!({"amount": total, "currency": "EUR"});
    let order = json_of(place(&app, &user.access, "money-4b", &body).await, 201).await;
    assert!(is_money(&order["total"], total), "{order}");
}

async fn a_card_is_kept_only_when_saved(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-5", 1000, 10).await;
    let user = app.signed_up("money5@example.com").await;
    let saved = method(&app, &user.access, SUCCESS_CARD, Some(true)).await;
    let once = method(&app, &user.access, SUCCESS_CARD, None).await;
    assert_eq!(listed(&app, &user.access).await, std::slice::from_ref(&saved));

    // A card not saved pays for this checkout, and is then forgotten.
    let body = order_body(json!([{"sku": "MONEY-5", "quantity": 1}]), &once);
    let order = json_of(place(&app, &user.access, "money-5a", &body).await, 201).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    let r = app
        .get_auth(&format!("/api/v1/payments/methods/{once}"), &user.access)
        .await;
    assert_eq!(r.status(), 404);
    let body = order_body(json!([{"sku": "MONEY-5", "quantity": 1}]), &once);
    let problem = assert_problem(place(&app, &user.access, "money-5b", &body).await, 422).await;
    assert_eq!(problem_fields(&problem), ["payment_method"]);

    // A saved card serves again.
    for key in ["money-5c", "money-5d"] {
        let body = order_body(json!([{"sku": "MONEY-5", "quantity": 1}]), &saved);
        let order = json_of(place(&app, &user.access, key, &body).await, 201).await;
        assert_eq!(order["status"], "confirmed", "{order}");
    }
    assert_eq!(listed(&app, &user.access).await, [saved]);
}

async fn a_declined_card_is_not_kept(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-6", 1000, 10).await;
    let user = app.signed_up("money6@example.com").await;
    let declined = method(&app, &user.access, DECLINED_CARD, Some(true)).await;
    assert_eq!(listed(&app, &user.access).await, std::slice::from_ref(&declined));
    let body = order_body(json!([{"sku": "MONEY-6", "quantity": 1}]), &declined);
    let order = json_of(place(&app, &user.access, "money-6", &body).await, 201).await;
    assert_eq!(order["status"], "payment_failed", "{order}");
    assert_eq!(
        listed(&app, &user.access).await,
        Vec::<String>::new(),
        "a declined card is not kept"
    );
    let r = app
        .get_auth(&format!("/api/v1/payments/methods/{declined}"), &user.access)
        .await;
    assert_eq!(r.status(), 404);

    // A card that has paid before stays when it is declined later (e.g. insufficient funds).
    let good = method(&app, &user.access, SUCCESS_CARD, Some(true)).await;
    let body = order_body(json!([{"sku": "MONEY-6", "quantity": 1}]), &good);
    json_of(place(&app, &user.access, "money-6b", &body).await, 201).await;
    assert_eq!(listed(&app, &user.access).await, [good]);
}

async fn an_owner_removes_a_card(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-7", 1000, 10).await;
    let user = app.signed_up("money7@example.com").await;
    let other = app.signed_up("money7-other@example.com").await;
    let pm = method(&app, &user.access, SUCCESS_CARD, Some(true)).await;
    let keep = method(&app, &user.access, SUCCESS_CARD, Some(true)).await;
    let delete = |token: String, id: String| {
        let app = &app;
        async move {
            app.client
                .delete(app.url(&format!("/api/v1/payments/methods/{id}")))
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
        }
    };
    // Someone else's card, an admin's, or no card: 404, as if it did not exist.
    assert_problem(delete(other.access.clone(), pm.clone()).await, 404).await;
    assert_problem(delete(admin.access.clone(), pm.clone()).await, 404).await;
    assert_problem(delete(user.access.clone(), "pm_nope".into()).await, 404).await;
    assert_eq!(listed(&app, &user.access).await.len(), 2);

    let r = delete(user.access.clone(), pm.clone()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(listed(&app, &user.access).await, [keep]);
    assert_problem(delete(user.access.clone(), pm.clone()).await, 404).await;
    // A removed card pays for nothing.
    let body = order_body(json!([{"sku": "MONEY-7", "quantity": 1}]), &pm);
    let problem = assert_problem(place(&app, &user.access, "money-7", &body).await, 422).await;
    assert_eq!(problem_fields(&problem), ["payment_method"]);
}

async fn adding_to_any_cart_answers_200(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "MONEY-8", 700, 10).await;
    let r = app.post("/api/v1/cart/guest", json!({})).await;
    let guest = json_of(r, 201).await["cart_token"].as_str().expect("token").to_owned();
    let user = app.signed_up("money8@example.com").await;
    for round in ["a new line", "an existing line"] {
        let r = app
            .client
            .post(app.url("/api/v1/cart/items"))
            .header("X-Cart-Token", &guest)
            .json(&json!({"sku": "MONEY-8", "quantity": 1}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "guest, {round}");
        let r = post_auth(
            &app,
            "/api/v1/cart/items",
            &user.access,
            json!({"sku": "MONEY-8", "quantity": 1}),
        )
        .await;
        assert_eq!(r.status(), 200, "user, {round}");
    }
}
