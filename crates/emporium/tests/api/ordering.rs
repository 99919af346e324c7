//! Ordering over HTTP on both backends: checkout from items and from the cart, totals with tax,
//! shipping and coupons, every refused input, idempotent replays (50 concurrent retries → one
//! order, one charge), declined cards, cancellation with refund and restock, fulfilment, refunds,
//! invoices, my-orders paging, the actions each order offers its caller, and a saga left at
//! "capture" finishing on its own.

use std::time::Duration;

use serde_json::{Value, json};

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::*;
use test_support::shop::*;

on_both_backends!(
    order_from_items_is_confirmed_with_server_side_totals,
    order_from_the_cart_uses_the_cart_lines,
    bad_input_is_refused_naming_the_field_and_writes_nothing,
    price_change_is_a_409_with_the_current_quote,
    replays_return_the_first_order_and_another_body_is_a_422,
    fifty_concurrent_retries_make_one_order_and_one_charge,
    declined_card_fails_the_order_and_releases_the_stock,
    cancel_after_payment_refunds_and_restocks,
    fulfilment_refunds_and_forbidden_transitions,
    coupons_discount_and_are_validated,
    a_cancelled_or_failed_order_gives_its_coupon_use_back,
    invoices_exist_once_paid,
    my_orders_filter_and_paginate,
    allowed_actions_follow_the_order_through_its_life,
);

async fn order_from_items_is_confirmed_with_server_side_totals(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "TEE-1", 1299, 10).await;
    product(&app, &admin.access, "MUG-1", 500, 10).await;
    let user = app.signed_up("buyer@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(
        json!([{"sku": "TEE-1", "quantity": 2, "unit_price": 1299}, {"sku": "mug-1", "quantity": 1}]),
        &pm,
    );
    let order = json_of(place(&app, &user.access, "k-1", &body).await, 201).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    // 2 × 12.99 + 5.00 = 30.98; shipping 4.99; tax 19 % of 35.97 = 6.83; total 42.80.
    assert_eq!(order["subtotal"]["amount"], 3098);
    assert_eq!(order["shipping"]["amount"], 499);
    assert_eq!(order["tax"]["amount"], 683);
    assert_eq!(order["total"]["amount"], 4280);
    assert_eq!(order["currency"], "EUR");
    assert!(order["number"].as_str().expect("number").starts_with("EMP-"));
    assert!(order["invoice_number"].as_str().expect("invoice").starts_with("INV-"));
    assert_eq!(order["payment"]["last4"], "4242");
    let statuses: Vec<&str> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["to"].as_str().expect("to"))
        .collect();
    assert_eq!(statuses, ["pending", "awaiting_payment", "paid", "confirmed"]);
    let tee = stock(&app, "TEE-1").await;
    assert_eq!(
        (tee["on_hand"].as_i64(), tee["reserved"].as_i64()),
        (Some(8), Some(0)),
        "{tee}"
    );
    // Another user cannot see it.
    let other = app.signed_up("other@example.com").await;
    let id = order["id"].as_str().expect("id");
    assert_problem(app.get_auth(&format!("{ORDERS}/{id}"), &other.access).await, 404).await;
}

async fn order_from_the_cart_uses_the_cart_lines(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CART-1", 2000, 5).await;
    let user = app.signed_up("cart@example.com").await;
    let r = post_auth(
        &app,
        "/api/v1/cart/items",
        &user.access,
        json!({"sku": "CART-1", "quantity": 3}),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = json!({"from_cart": true, "shipping_address": address("FR"), "shipping_method": "express",
                      "payment_method": pm});
    let order = json_of(place(&app, &user.access, "cart-1", &body).await, 201).await;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["from_cart"], true);
    assert_eq!(order["lines"][0]["quantity"], 3);
    // 60.00 + express 14.99 = 74.99; 20 % tax = 15.00 (14.998); total 89.99.
    assert_eq!(
        (order["shipping"]["amount"].as_i64(), order["tax"]["amount"].as_i64()),
        (Some(1499), Some(1500))
    );
    assert_eq!(order["total"]["amount"], 8999);
}

async fn bad_input_is_refused_naming_the_field_and_writes_nothing(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "BAD-1", 1000, 2).await;
    let user = app.signed_up("bad@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let good = order_body(json!([{"sku": "BAD-1", "quantity": 1}]), &pm);

    let r = app
        .client
        .post(app.url(ORDERS))
        .bearer_auth(&user.access)
        .json(&good)
        .send()
        .await
        .expect("request");
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["Idempotency-Key"]);
    let r = app
        .client
        .post(app.url(ORDERS))
        .header("Idempotency-Key", "x")
        .json(&good)
        .send()
        .await
        .expect("r");
    assert_problem(r, 401).await;

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            order_body(json!([{"sku": "NOPE-1", "quantity": 1}]), &pm),
            422,
            "items[0].sku",
        ),
        (
            order_body(json!([{"sku": "BAD-1", "quantity": 0}]), &pm),
            422,
            "items[0].quantity",
        ),
        (
            order_body(json!([{"sku": "BAD-1", "quantity": 3}]), &pm),
            409,
            "items[0].quantity",
        ),
        (
            json!({"items": [{"sku": "BAD-1", "quantity": 1}], "shipping_address": address("CH"),
                   "shipping_method": "standard", "payment_method": pm}),
            422,
            "shipping_address.country",
        ),
        (
            json!({"items": [{"sku": "BAD-1", "quantity": 1}], "shipping_address": address("DE"),
                   "shipping_method": "teleport", "payment_method": pm}),
            422,
            "shipping_method",
        ),
        (
            json!({"items": [{"sku": "BAD-1", "quantity": 1}], "shipping_address": address("DE"),
                   "shipping_method": "standard", "payment_method": pm, "coupon": "NOSUCH"}),
            422,
            "coupon",
        ),
        (
            order_body(json!([{"sku": "BAD-1", "quantity": 1}]), "pm_unknown"),
            422,
            "payment_method",
        ),
        (
            order_body(json!([{"sku": "BAD-1", "quantity": 1}]), "card_1"),
            422,
            "payment_method",
        ),
        (
            json!({"shipping_address": address("DE"), "shipping_method": "standard", "payment_method": pm}),
            422,
            "items",
        ),
    ];
    for (i, (body, status, field)) in cases.into_iter().enumerate() {
        let r = place(&app, &user.access, &format!("bad-{i}"), &body).await;
        let problem = assert_problem(r, status).await;
        assert!(
            problem_fields(&problem).contains(&field.to_owned()),
            "{field}: {problem}"
        );
    }
    let list = json_of(app.get_auth(ORDERS, &user.access).await, 200).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    assert_eq!(stock(&app, "BAD-1").await["reserved"], 0);
    // A refused key may be used again once the input is fixed.
    let order = json_of(place(&app, &user.access, "bad-0", &good).await, 201).await;
    assert_eq!(order["status"], "confirmed");
}

async fn price_change_is_a_409_with_the_current_quote(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "PRICE-1", 1500, 5).await;
    let user = app.signed_up("price@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(json!([{"sku": "PRICE-1", "quantity": 1, "unit_price": 1400}]), &pm);
    let problem = assert_problem(place(&app, &user.access, "p-1", &body).await, 409).await;
    assert!(
        problem["type"].as_str().expect("type").ends_with("price-changed"),
        "{problem}"
    );
    assert_eq!(problem_fields(&problem), ["items[0].unit_price"]);
    assert_eq!(problem["quote"]["lines"][0]["unit_price"]["amount"], 1500);
    let total = problem["quote"]["total"]["amount"].as_i64().expect("total");
    let mut body = order_body(json!([{"sku": "PRICE-1", "quantity": 1}]), &pm);
    body["expected_total"] = json!(total - 1);
    let problem = assert_problem(place(&app, &user.access, "p-2", &body).await, 409).await;
    assert_eq!(problem_fields(&problem), ["expected_total"]);
    // The quote endpoint agrees and writes nothing.
    let quote = json_of(
        post_auth(&app, &format!("{ORDERS}/quote"), &user.access, body.clone()).await,
        409,
    )
    .await;
    assert_eq!(quote["quote"]["total"]["amount"], total);
    body["expected_total"] = json!(total);
    let quote = json_of(
        post_auth(&app, &format!("{ORDERS}/quote"), &user.access, body.clone()).await,
        200,
    )
    .await;
    assert_eq!(quote["total"]["amount"], total);
    assert_eq!(stock(&app, "PRICE-1").await["reserved"], 0);
    let order = json_of(place(&app, &user.access, "p-3", &body).await, 201).await;
    assert_eq!(order["total"]["amount"], total);
}

async fn replays_return_the_first_order_and_another_body_is_a_422(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "REPLAY-1", 1000, 5).await;
    let user = app.signed_up("replay@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(json!([{"sku": "REPLAY-1", "quantity": 1}]), &pm);
    let first = json_of(place(&app, &user.access, "same", &body).await, 201).await;
    let r = place(&app, &user.access, "same", &body).await;
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let again = json_of(r, 200).await;
    assert_eq!(again["id"], first["id"]);
    let other = order_body(json!([{"sku": "REPLAY-1", "quantity": 2}]), &pm);
    let problem = assert_problem(place(&app, &user.access, "same", &other).await, 422).await;
    assert_eq!(problem_fields(&problem), ["Idempotency-Key"]);
    assert_eq!(stock(&app, "REPLAY-1").await["on_hand"], 4);
}

async fn fifty_concurrent_retries_make_one_order_and_one_charge(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "RACE-1", 1000, 100).await;
    let user = app.signed_up("race@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(json!([{"sku": "RACE-1", "quantity": 1}]), &pm);
    let answers = futures::future::join_all((0..50).map(|_| {
        let app = &app;
        let body = &body;
        let token = user.access.clone();
        async move {
            let r = place(app, &token, "one-checkout", body).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    }))
    .await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert!(matches!(status, 200 | 201), "{status} {body}");
            body["id"].as_str().expect("id").to_owned()
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1);
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={}", ids[0]), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(1), "{payments}");
    assert_eq!(stock(&app, "RACE-1").await["on_hand"], 99);
    let list = json_of(app.get_auth(ORDERS, &user.access).await, 200).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

async fn declined_card_fails_the_order_and_releases_the_stock(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "DECL-1", 1000, 3).await;
    let user = app.signed_up("declined@example.com").await;
    let pm = card(&app, &user.access, DECLINED_CARD).await;
    let body = order_body(json!([{"sku": "DECL-1", "quantity": 2}]), &pm);
    let order = json_of(place(&app, &user.access, "d-1", &body).await, 201).await;
    assert_eq!(order["status"], "payment_failed", "{order}");
    assert!(order.get("invoice_number").is_none());
    let id = order["id"].as_str().expect("id");
    wait_for_status(&app, &user.access, id, "payment_failed", 10).await;
    let s = stock(&app, "DECL-1").await;
    assert_eq!(
        (s["on_hand"].as_i64(), s["reserved"].as_i64()),
        (Some(3), Some(0)),
        "{s}"
    );
    assert_problem(app.get_auth(&format!("{ORDERS}/{id}/invoice"), &user.access).await, 409).await;
}

async fn cancel_after_payment_refunds_and_restocks(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "CANCEL-1", 2500, 4).await;
    let user = app.signed_up("cancel@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(json!([{"sku": "CANCEL-1", "quantity": 2}]), &pm);
    let order = json_of(place(&app, &user.access, "c-1", &body).await, 201).await;
    let id = order["id"].as_str().expect("id").to_owned();
    assert_eq!(stock(&app, "CANCEL-1").await["on_hand"], 2);
    let cancelled = json_of(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/cancel"),
            &user.access,
            json!({"reason": "changed my mind"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    let done = wait_for_status(&app, &user.access, &id, "cancelled", 10).await;
    assert_eq!(done["refunded"], done["total"]);
    assert_eq!(stock(&app, "CANCEL-1").await["on_hand"], 4);
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={id}"), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(payments["items"][0]["refunded_amount"], done["total"], "{payments}");
    // Cancelling again is a state conflict.
    let problem = assert_problem(
        post_auth(&app, &format!("{ORDERS}/{id}/cancel"), &user.access, json!({})).await,
        409,
    )
    .await;
    assert!(
        problem["detail"].as_str().expect("detail").contains("cancelled"),
        "{problem}"
    );
}

async fn fulfilment_refunds_and_forbidden_transitions(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "SHIP-1", 1000, 5).await;
    let user = app.signed_up("ship@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(json!([{"sku": "SHIP-1", "quantity": 1}]), &pm);
    let order = json_of(place(&app, &user.access, "s-1", &body).await, 201).await;
    let id = order["id"].as_str().expect("id").to_owned();
    let total = order["total"]["amount"].as_i64().expect("total");

    // Customers cannot ship; delivering before shipping is a 409; tracking is validated.
    assert_problem(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/ship"),
            &user.access,
            json!({"carrier": "DHL", "tracking_number": "JD01"}),
        )
        .await,
        403,
    )
    .await;
    let p = assert_problem(
        post_auth(&app, &format!("{ORDERS}/{id}/deliver"), &admin.access, json!({})).await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().expect("detail").contains("confirmed"), "{p}");
    let p = assert_problem(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/ship"),
            &admin.access,
            json!({"carrier": "", "tracking_number": "a b"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["carrier", "tracking_number"]);
    let shipped = json_of(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/ship"),
            &admin.access,
            json!({"carrier": "DHL", "tracking_number": "JD0146000062"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(shipped["tracking"]["tracking_number"], "JD0146000062");
    // Shipped orders cannot be cancelled.
    assert_problem(
        post_auth(&app, &format!("{ORDERS}/{id}/cancel"), &user.access, json!({})).await,
        409,
    )
    .await;
    let delivered = json_of(
        post_auth(&app, &format!("{ORDERS}/{id}/deliver"), &admin.access, json!({})).await,
        200,
    )
    .await;
    assert_eq!(delivered["status"], "delivered");

    // Refund request by the customer is a timeline note.
    let noted = json_of(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/refund-requests"),
            &user.access,
            json!({"reason": "broken"}),
        )
        .await,
        201,
    )
    .await;
    assert!(
        noted["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["reason"].as_str().is_some_and(|r| r.contains("broken")))
    );

    let refund = |key: &'static str, body: Value| {
        let app = &app;
        let token = admin.access.clone();
        let id = id.clone();
        async move {
            app.client
                .post(app.url(&format!("{ORDERS}/{id}/refunds")))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .expect("request")
        }
    };
    let p = assert_problem(
        refund("r-0", json!({"amount": total + 1, "reason": "too much"})).await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["amount"]);
    let partial = json_of(refund("r-1", json!({"amount": 300, "reason": "scratch"})).await, 201).await;
    assert_eq!(
        (partial["status"].as_str(), partial["refunded"]["amount"].as_i64()),
        (Some("partially_refunded"), Some(300))
    );
    let replay = refund("r-1", json!({"amount": 300, "reason": "scratch"})).await;
    assert_eq!(replay.status(), 200);
    let full = json_of(refund("r-2", json!({"reason": "the rest"})).await, 201).await;
    assert_eq!(
        (full["status"].as_str(), full["refunded"]["amount"].as_i64()),
        (Some("refunded"), Some(total))
    );
    // Nothing is left: a state conflict, not a bad amount.
    let p = assert_problem(refund("r-3", json!({"amount": 1, "reason": "more"})).await, 409).await;
    assert!(
        p["detail"].as_str().expect("detail").contains("already refunded"),
        "{p}"
    );
    // Without Idempotency-Key.
    let r = post_auth(
        &app,
        &format!("{ORDERS}/{id}/refunds"),
        &admin.access,
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["Idempotency-Key"]);
    // The admin list sees it; customers may not use it.
    let all = json_of(
        app.get_auth(&format!("{ORDERS}/admin/orders?status=refunded"), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(all["items"][0]["id"], id.as_str());
    assert_problem(app.get_auth(&format!("{ORDERS}/admin/orders"), &user.access).await, 403).await;
}

async fn coupons_discount_and_are_validated(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "COUP-1", 2000, 10).await;
    let r = create_coupon(
        &app,
        &admin.access,
        json!({"code": "save10", "kind": "percentage", "percent": 10, "max_uses": 1}),
    )
    .await;
    json_of(r, 201).await;
    let r = create_coupon(
        &app,
        &admin.access,
        json!({"code": "SAVE10", "kind": "percentage", "percent": 10}),
    )
    .await;
    assert_problem(r, 409).await;
    let r = create_coupon(
        &app,
        &admin.access,
        json!({"code": "x", "kind": "percentage", "percent": 101}),
    )
    .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["code", "percent"]);
    let user = app.signed_up("coupon@example.com").await;
    assert_problem(
        create_coupon(
            &app,
            &user.access,
            json!({"code": "MINE", "kind": "fixed", "amount": 100}),
        )
        .await,
        403,
    )
    .await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let mut body = order_body(json!([{"sku": "COUP-1", "quantity": 3}]), &pm);
    body["coupon"] = json!("Save10");
    let order = json_of(place(&app, &user.access, "cp-1", &body).await, 201).await;
    // 60.00 − 6.00 = 54.00 ≥ 50.00: free shipping; 19 % tax = 10.26; total 64.26.
    assert_eq!(
        (
            order["discount"]["amount"].as_i64(),
            order["shipping"]["amount"].as_i64(),
            order["tax"]["amount"].as_i64()
        ),
        (Some(600), Some(0), Some(1026))
    );
    assert_eq!(order["total"]["amount"], 6426);
    // Used up now.
    let p = assert_problem(place(&app, &user.access, "cp-2", &body).await, 422).await;
    assert_eq!(problem_fields(&p), ["coupon"]);
    let list = json_of(
        app.get_auth(&format!("{ORDERS}/admin/coupons"), &admin.access).await,
        200,
    )
    .await;
    assert_eq!(list[0]["uses"], 1);
    let r = app
        .client
        .delete(app.url(&format!("{ORDERS}/admin/coupons/SAVE10")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("r");
    assert_eq!(json_of(r, 200).await["active"], false);
    let methods = app.get_json(&format!("{ORDERS}/shipping-methods?country=de")).await;
    assert_eq!(methods["tax_rate_bp"], 1900);
    assert_eq!(methods["methods"][0]["free_over"]["amount"], 5000);
}

async fn a_cancelled_or_failed_order_gives_its_coupon_use_back(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "ONCE-1", 2000, 10).await;
    let r = create_coupon(
        &app,
        &admin.access,
        json!({"code": "ONCE", "kind": "fixed", "amount": 500, "max_uses": 1}),
    )
    .await;
    json_of(r, 201).await;
    let uses = async || {
        let list = json_of(
            app.get_auth(&format!("{ORDERS}/admin/coupons"), &admin.access).await,
            200,
        )
        .await;
        list[0]["uses"].as_i64().expect("uses")
    };
    let user = app.signed_up("once@example.com").await;
    let declined = card(&app, &user.access, DECLINED_CARD).await;
    let good = card(&app, &user.access, SUCCESS_CARD).await;
    let with_coupon = |pm: &str| {
        let mut body = order_body(json!([{"sku": "ONCE-1", "quantity": 1}]), pm);
        body["coupon"] = json!("ONCE");
        body
    };

    // A declined card: the order failed, the single use is free again.
    let failed = json_of(place(&app, &user.access, "once-1", &with_coupon(&declined)).await, 201).await;
    assert_eq!(failed["status"], "payment_failed", "{failed}");
    wait_for_status(
        &app,
        &user.access,
        failed["id"].as_str().expect("id"),
        "payment_failed",
        10,
    )
    .await;
    assert_eq!(uses().await, 0);

    // Paid, then cancelled: free again.
    let paid = json_of(place(&app, &user.access, "once-2", &with_coupon(&good)).await, 201).await;
    assert_eq!(paid["discount"]["amount"], 500, "{paid}");
    assert_eq!(uses().await, 1);
    let id = paid["id"].as_str().expect("id").to_owned();
    let r = post_auth(&app, &format!("{ORDERS}/{id}/cancel"), &user.access, json!({})).await;
    assert_eq!(json_of(r, 200).await["status"], "cancelled");
    assert_eq!(uses().await, 0);
    // Refusing a second cancel gives nothing back twice.
    assert_problem(
        post_auth(&app, &format!("{ORDERS}/{id}/cancel"), &user.access, json!({})).await,
        409,
    )
    .await;
    assert_eq!(uses().await, 0);

    // The one use goes to the order that goes through, and then it is used up.
    let kept = json_of(place(&app, &user.access, "once-3", &with_coupon(&good)).await, 201).await;
    assert_eq!(kept["status"], "confirmed", "{kept}");
    assert_eq!(uses().await, 1);
    let p = assert_problem(place(&app, &user.access, "once-4", &with_coupon(&good)).await, 422).await;
    assert_eq!(problem_fields(&p), ["coupon"]);
}

async fn create_coupon(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    post_auth(app, &format!("{ORDERS}/admin/coupons"), token, body).await
}

async fn invoices_exist_once_paid(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "INV-1", 1234, 5).await;
    let user = app.signed_up("invoice@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let first = json_of(
        place(
            &app,
            &user.access,
            "i-1",
            &order_body(json!([{"sku": "INV-1", "quantity": 1}]), &pm),
        )
        .await,
        201,
    )
    .await;
    let second = json_of(
        place(
            &app,
            &user.access,
            "i-2",
            &order_body(json!([{"sku": "INV-1", "quantity": 1}]), &pm),
        )
        .await,
        201,
    )
    .await;
    let n1 = first["invoice_number"].as_str().expect("n1");
    let n2 = second["invoice_number"].as_str().expect("n2");
    let seq = |n: &str| n.rsplit('-').next().and_then(|s| s.parse::<i64>().ok()).expect("seq");
    assert_eq!(seq(n2), seq(n1) + 1, "{n1} {n2}");
    // Order numbers (a sequence on PostgreSQL, a counter on SQLite) increase too.
    let (o1, o2) = (
        first["number"].as_str().expect("o1"),
        second["number"].as_str().expect("o2"),
    );
    assert!(seq(o2) > seq(o1), "{o1} {o2}");
    let id = first["id"].as_str().expect("id");
    let r = app.get_auth(&format!("{ORDERS}/{id}/invoice"), &user.access).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    let html = r.text().await.expect("html");
    assert!(html.contains(n1) && html.contains("Product INV-1"), "{html}");
    let r = app.get_auth(&format!("{ORDERS}/{id}/invoice.pdf"), &admin.access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(
        r.headers()["content-disposition"].to_str().expect("cd"),
        format!("attachment; filename=\"invoice-{n1}.pdf\"")
    );
    let pdf = r.bytes().await.expect("pdf");
    assert!(pdf.starts_with(b"%PDF-"));
    let other = app.signed_up("snoop@example.com").await;
    assert_problem(
        app.get_auth(&format!("{ORDERS}/{id}/invoice.pdf"), &other.access).await,
        404,
    )
    .await;
}

async fn my_orders_filter_and_paginate(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "PAGE-1", 1000, 20).await;
    let user = app.signed_up("pages@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let declined = card(&app, &user.access, DECLINED_CARD).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let o = json_of(
            place(
                &app,
                &user.access,
                &format!("pg-{i}"),
                &order_body(json!([{"sku": "PAGE-1", "quantity": 1}]), &pm),
            )
            .await,
            201,
        )
        .await;
        ids.push(o["id"].as_str().expect("id").to_owned());
    }
    json_of(
        place(
            &app,
            &user.access,
            "pg-d",
            &order_body(json!([{"sku": "PAGE-1", "quantity": 1}]), &declined),
        )
        .await,
        201,
    )
    .await;
    let page1 = json_of(
        app.get_auth(&format!("{ORDERS}?status=confirmed&limit=2"), &user.access)
            .await,
        200,
    )
    .await;
    let got: Vec<&str> = page1["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["id"].as_str().expect("id"))
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);
    let next = page1["next"].as_str().expect("next");
    let page2 = json_of(
        app.get_auth(
            &format!("{ORDERS}?status=confirmed&limit=2&cursor={next}"),
            &user.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page2["items"][0]["id"], ids[0].as_str());
    assert!(page2.get("next").is_none());
    let failed = json_of(
        app.get_auth(&format!("{ORDERS}?status=payment_failed"), &user.access)
            .await,
        200,
    )
    .await;
    assert_eq!(failed["items"].as_array().map(Vec::len), Some(1));
    let future = json_of(
        app.get_auth(&format!("{ORDERS}?since=2999-01-01T00:00:00Z"), &user.access)
            .await,
        200,
    )
    .await;
    assert_eq!(future["items"].as_array().map(Vec::len), Some(0));
    for bad in ["status=lost", "since=yesterday", "limit=0", "cursor=zzz", "user_id=x"] {
        let p = assert_problem(app.get_auth(&format!("{ORDERS}?{bad}"), &user.access).await, 422).await;
        assert_eq!(problem_fields(&p).len(), 1, "{bad}: {p}");
    }
}

/// A slow card outlives the payment timeout: the order is answered 202 awaiting_payment, stays at
/// saga step "capture", and the recovery loop finishes it with the same payment key.
async fn slow_payment_is_finished_by_the_recovery_loop(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[
            ("EMPORIUM_PAYMENT_TIMEOUT_MS", "200"),
            ("EMPORIUM_SAGA_RECOVERY_SECS", "1"),
            ("EMPORIUM_PAYMENTS_SIMULATED_DELAY_MS", "1500"),
        ],
        true,
    )
    .await
    else {
        return;
    };
    let admin = app.admin().await;
    product(&app, &admin.access, "SLOW-1", 1000, 5).await;
    let user = app.signed_up("slow@example.com").await;
    let pm = card(&app, &user.access, SLOW_CARD).await;
    let r = place(
        &app,
        &user.access,
        "slow-1",
        &order_body(json!([{"sku": "SLOW-1", "quantity": 1}]), &pm),
    )
    .await;
    let order = json_of(r, 202).await;
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["pending_step"], "capture");
    let id = order["id"].as_str().expect("id");
    let done = wait_for_status(&app, &user.access, id, "confirmed", 30).await;
    assert!(done["invoice_number"].is_string());
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={id}"), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(1), "{payments}");
    assert_eq!(stock(&app, "SLOW-1").await["on_hand"], 4);
    // A payment that did not settle within the request: "received, waiting for the payment"
    // first, then "confirmed" once it did; each once.
    let number = order["number"].as_str().expect("number");
    let mails = app.wait_for_mail(&user.email, 3).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    let received = format!("Order {number} received");
    let confirmed = format!("Order {number} confirmed");
    assert_eq!(subjects.iter().filter(|s| **s == received).count(), 1, "{subjects:?}");
    assert_eq!(subjects.iter().filter(|s| **s == confirmed).count(), 1, "{subjects:?}");
    let pos = |s: &str| subjects.iter().position(|x| *x == s).expect("mail");
    assert!(pos(&confirmed) < pos(&received), "newest first: {subjects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_payment_is_finished_by_the_recovery_loop_sqlite() {
    slow_payment_is_finished_by_the_recovery_loop(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_payment_is_finished_by_the_recovery_loop_postgres() {
    slow_payment_is_finished_by_the_recovery_loop(Backend::Postgres).await;
}

/// A client that gives up mid-checkout does not stop the saga: the order completes at once (not
/// after the step's lease runs out), and a retry with the same key returns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_mid_checkout_does_not_stall_the_order() {
    let Some(app) = spawn_app_with(
        Backend::Sqlite,
        &[
            ("EMPORIUM_PAYMENT_TIMEOUT_MS", "10000"),
            ("EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS", "5000"),
            ("EMPORIUM_PAYMENTS_SIMULATED_DELAY_MS", "1500"),
        ],
        true,
    )
    .await
    else {
        return;
    };
    let admin = app.admin().await;
    product(&app, &admin.access, "HANGUP-1", 1000, 5).await;
    let user = app.signed_up("hangup@example.com").await;
    let pm = card(&app, &user.access, SLOW_CARD).await;
    let body = order_body(json!([{"sku": "HANGUP-1", "quantity": 1}]), &pm);
    let gave_up = app
        .client
        .post(app.url(ORDERS))
        .bearer_auth(&user.access)
        .header("Idempotency-Key", "hangup-1")
        .json(&body)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client gave up while the payment was in flight");
    // Well inside the 30 s saga lease: only a checkout that kept running can be confirmed by now.
    let started = std::time::Instant::now();
    let order = json_of(place(&app, &user.access, "hangup-1", &body).await, 200).await;
    let id = order["id"].as_str().expect("id");
    wait_for_status(&app, &user.access, id, "confirmed", 8).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(stock(&app, "HANGUP-1").await["on_hand"], 4);
}

/// The actions an order offers (`allowed_actions`) follow its life and the caller: what ordering
/// would accept now, so pages need no rules of their own.
async fn allowed_actions_follow_the_order_through_its_life(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "ACT-1", 1000, 5).await;
    let picker = app.signed_up("picker@example.com").await;
    let r = app
        .put_json(
            &app.url(&format!("/api/v1/users/{}/role", picker.id)),
            &admin.access,
            json!({"role": "fulfilment"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let picker = app.access_token("picker@example.com").await;
    let user = app.signed_up("actions@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(json!([{"sku": "ACT-1", "quantity": 1}]), &pm);
    let order = json_of(place(&app, &user.access, "act-1", &body).await, 201).await;
    let id = order["id"].as_str().expect("id").to_owned();
    let actions = |view: &Value| -> Vec<String> {
        view["allowed_actions"]
            .as_array()
            .expect("allowed_actions")
            .iter()
            .map(|a| a.as_str().expect("name").to_owned())
            .collect()
    };
    let seen_by = |token: String| {
        let (app, id) = (&app, id.clone());
        async move { order_of(app, &token, &id).await }
    };

    // Confirmed (paid): the customer may cancel; staff may also ship, and an admin refund.
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["in_progress"], false);
    assert_eq!(actions(&order), ["cancel", "download_invoice"]);
    assert_eq!(
        actions(&seen_by(admin.access.clone()).await),
        ["cancel", "download_invoice", "ship", "refund"]
    );
    assert_eq!(
        actions(&seen_by(picker.clone()).await),
        ["cancel", "download_invoice", "ship"]
    );
    // The lists carry them too, for their caller.
    let mine = json_of(app.get_auth(ORDERS, &user.access).await, 200).await;
    assert_eq!(actions(&mine["items"][0]), ["cancel", "download_invoice"]);
    let all = json_of(
        app.get_auth(&format!("{ORDERS}/admin/orders"), &admin.access).await,
        200,
    )
    .await;
    let row = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|o| o["id"] == id.as_str())
        .expect("the order in the admin list");
    assert_eq!(actions(row), ["cancel", "download_invoice", "ship", "refund"]);

    // Shipped: no cancelling any more; the customer may ask for a refund, staff deliver.
    let shipped = json_of(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/ship"),
            &picker,
            json!({"carrier": "DHL", "tracking_number": "JD0146000062"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(actions(&shipped), ["download_invoice", "deliver"]);
    assert_eq!(
        actions(&seen_by(user.access.clone()).await),
        ["request_refund", "download_invoice"]
    );
    assert_eq!(
        actions(&seen_by(admin.access.clone()).await),
        ["download_invoice", "deliver", "refund"]
    );

    // Delivered: the customer may send items back; staff have nothing left but refunds.
    json_of(
        post_auth(&app, &format!("{ORDERS}/{id}/deliver"), &picker, json!({})).await,
        200,
    )
    .await;
    assert_eq!(
        actions(&seen_by(user.access.clone()).await),
        ["request_return", "download_invoice"]
    );
    assert_eq!(actions(&seen_by(picker.clone()).await), ["download_invoice"]);
    assert_eq!(
        actions(&seen_by(admin.access.clone()).await),
        ["download_invoice", "refund"]
    );

    // Refunded in full: only the invoice.
    let refunded = app
        .client
        .post(app.url(&format!("{ORDERS}/{id}/refunds")))
        .bearer_auth(&admin.access)
        .header("Idempotency-Key", "act-refund")
        .json(&json!({"reason": "goodwill"}))
        .send()
        .await
        .expect("request");
    let refunded = json_of(refunded, 201).await;
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(actions(&refunded), ["download_invoice"]);
    assert_eq!(actions(&seen_by(user.access.clone()).await), ["download_invoice"]);

    // Cancelled, or never paid: nothing to do.
    let other = json_of(place(&app, &user.access, "act-2", &body).await, 201).await;
    let other_id = other["id"].as_str().expect("id");
    let cancelled = json_of(
        post_auth(&app, &format!("{ORDERS}/{other_id}/cancel"), &user.access, json!({})).await,
        200,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(actions(&cancelled).is_empty(), "{cancelled}");
    let declined = card(&app, &user.access, DECLINED_CARD).await;
    let failed = place(
        &app,
        &user.access,
        "act-3",
        &order_body(json!([{"sku": "ACT-1", "quantity": 1}]), &declined),
    )
    .await;
    let failed = json_of(failed, 201).await;
    assert_eq!(failed["status"], "payment_failed", "{failed}");
    assert!(actions(&failed).is_empty(), "{failed}");
}
