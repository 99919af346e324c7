//! Returns (RMA) over HTTP on both backends: a customer requests a return of a delivered order,
//! staff approve or reject it, receive it choosing per line whether it goes back to stock, and the
//! refund follows through payments; every step is on the timeline and mailed. Also: refused
//! requests, the return window, a goodwill refund that does not restock, "already refunded" as a
//! 409, payments' refunded statuses, the receipt steps resumed after a crash, and shipping's state
//! check before the tracking format.

use std::time::Duration;

use emporium::app::Service;
use platform::db::Db;
use serde_json::{Value, json};
use time::OffsetDateTime;

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::*;
use test_support::shop::*;

on_both_backends!(
    a_return_goes_from_request_to_refund_and_restocks_only_what_staff_chose,
    return_requests_and_decisions_are_validated,
    the_return_window_closes,
    a_goodwill_refund_does_not_restock_and_refunding_twice_is_a_409,
    shipping_checks_the_state_first_and_keeps_the_tracking_number,
);

/// An amount in an answer, whether a bare integer or `{amount, currency}` (the API is moving to
/// the latter for every amount).
fn money(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v["amount"].as_i64())
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

fn on_hand(v: &Value) -> i64 {
    v["on_hand"].as_i64().expect("on_hand")
}

/// A delivered order of `items` for a new customer; returns (customer, order).
async fn delivered(app: &TestApp, admin: &str, email: &str, items: Value) -> (test_support::app::LoggedIn, Value) {
    let user = app.signed_up(email).await;
    let pm = card(app, &user.access, SUCCESS_CARD).await;
    let order = json_of(place(app, &user.access, email, &order_body(items, &pm)).await, 201).await;
    let id = order["id"].as_str().expect("id").to_owned();
    json_of(
        post_auth(
            app,
            &format!("{ORDERS}/{id}/ship"),
            admin,
            json!({"carrier": "DHL", "tracking_number": "JD0146000062"}),
        )
        .await,
        200,
    )
    .await;
    let order = json_of(
        post_auth(app, &format!("{ORDERS}/{id}/deliver"), admin, json!({})).await,
        200,
    )
    .await;
    assert_eq!(order["status"], "delivered");
    (user, order)
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn timeline_mentions(order: &Value, text: &str) -> bool {
    order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .any(|e| e["reason"].as_str().is_some_and(|r| r.contains(text)))
}

async fn request(app: &TestApp, token: &str, order: &str, body: Value) -> reqwest::Response {
    post_auth(app, &format!("{ORDERS}/{order}/returns"), token, body).await
}

async fn staff(app: &TestApp, token: &str, rma: &str, action: &str, body: Value) -> reqwest::Response {
    post_auth(app, &format!("{ORDERS}/admin/returns/{rma}/{action}"), token, body).await
}

async fn payment_of(app: &TestApp, admin: &str, order: &str) -> Value {
    let list = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={order}"), admin).await,
        200,
    )
    .await;
    list["items"][0].clone()
}

async fn a_return_goes_from_request_to_refund_and_restocks_only_what_staff_chose(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "RMA-MUG", 1000, 10).await;
    product(&app, &admin.access, "RMA-TEE", 2000, 10).await;
    let (user, order) = delivered(
        &app,
        &admin.access,
        "rma@example.com",
        json!([{"sku": "RMA-MUG", "quantity": 3}, {"sku": "RMA-TEE", "quantity": 1}]),
    )
    .await;
    let id = id_of(&order);
    let total = money(&order["total"]);
    assert_eq!(on_hand(&stock(&app, "RMA-MUG").await), 7);
    assert_eq!(on_hand(&stock(&app, "RMA-TEE").await), 9);

    let rma = json_of(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "too small", "lines": [{"sku": "rma-mug", "quantity": 2}, {"sku": "RMA-TEE", "quantity": 1}]}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(rma["status"], "requested");
    assert_eq!(rma["lines"][0]["quantity"], 2);
    assert_eq!(
        rma["lines"][0]["unit_price"],
        json!({"amount": 1000, "currency": "EUR"})
    );
    let rid = id_of(&rma);
    assert!(timeline_mentions(&order_of(&app, &user.access, &id).await, "requested"));
    // The customer follows it on the order; staff see it in the queue; customers cannot.
    let mine = json_of(app.get_auth(&format!("{ORDERS}/{id}/returns"), &user.access).await, 200).await;
    assert_eq!(mine[0]["id"], rid.as_str());
    let queue = json_of(
        app.get_auth(&format!("{ORDERS}/admin/returns?status=requested"), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(queue["items"][0]["id"], rid.as_str(), "{queue}");
    assert_eq!(queue["items"][0]["order_number"], order["number"]);
    assert_problem(
        app.get_auth(&format!("{ORDERS}/admin/returns"), &user.access).await,
        403,
    )
    .await;
    assert_problem(staff(&app, &user.access, &rid, "approve", json!({})).await, 403).await;

    // Approve; approving again is a state conflict.
    let approved = json_of(
        staff(&app, &admin.access, &rid, "approve", json!({"note": "use the label"})).await,
        200,
    )
    .await;
    assert_eq!(
        (approved["status"].as_str(), approved["note"].as_str()),
        (Some("approved"), Some("use the label"))
    );
    let p = assert_problem(staff(&app, &admin.access, &rid, "approve", json!({})).await, 409).await;
    assert!(p["detail"].as_str().expect("detail").contains("approved"), "{p}");

    // Received: the mugs go back to stock, the T-shirt (damaged) does not; the refund follows.
    let received = json_of(
        staff(
            &app,
            &admin.access,
            &rid,
            "receive",
            json!({"lines": [{"sku": "RMA-TEE", "restock": false}], "note": "shirt torn"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(received["status"], "refunded", "{received}");
    assert_eq!(received["processing"], false);
    // 2 × 10.00 + 20.00 = 40.00, + 19 % VAT = 47.60 (shipping is not refunded by a return).
    assert_eq!(received["refund"], json!({"amount": 4760, "currency": "EUR"}));
    assert_eq!(received["lines"][0]["restock"], true);
    assert_eq!(received["lines"][1]["restock"], false);
    assert_eq!(on_hand(&stock(&app, "RMA-MUG").await), 9);
    assert_eq!(on_hand(&stock(&app, "RMA-TEE").await), 9, "not restocked");
    let after = order_of(&app, &user.access, &id).await;
    assert_eq!(after["status"], "partially_refunded");
    assert_eq!(money(&after["refunded"]), 4760);
    assert!(money(&after["refunded"]) < total);
    assert_eq!(after["payment"]["status"], "partially_refunded");
    for step in ["approved", "received", "refunded 4760"] {
        assert!(timeline_mentions(&after, step), "{step}: {after}");
    }
    let payment = payment_of(&app, &admin.access, &id).await;
    assert_eq!(payment["status"], "partially_refunded", "{payment}");
    assert_eq!(money(&payment["refunded_amount"]), 4760);

    // The last mug can still be returned; the T-shirt not.
    let p = assert_problem(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "again", "lines": [{"sku": "RMA-TEE", "quantity": 1}]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["lines[0].quantity"]);
    json_of(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "the last one", "lines": [{"sku": "RMA-MUG", "quantity": 1}]}),
        )
        .await,
        201,
    )
    .await;

    // One mail per step: requested, approved, received, refunded (and no second refund mail).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let subjects: Vec<String> = app.mails(&user.email).into_iter().map(|m| m.subject).collect();
        let has = |s: &str| subjects.iter().any(|m| m.contains("RMA-") && m.contains(s));
        if has("for order") && has("approved") && has("We received your return") && has("refunded") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "return mails missing: {subjects:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refund_mails = app
        .mails(&user.email)
        .into_iter()
        .filter(|m| m.subject.starts_with("Refund for order"))
        .count();
    assert_eq!(refund_mails, 0, "a return's refund is mailed once, as the return's");
    let refunded = app
        .mails(&user.email)
        .into_iter()
        .find(|m| m.subject.ends_with("refunded"))
        .expect("refunded mail");
    assert!(refunded.text.contains("47.60 EUR"), "{}", refunded.text);
}

async fn return_requests_and_decisions_are_validated(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "RMV-1", 1500, 10).await;
    let (user, order) = delivered(
        &app,
        &admin.access,
        "rmv@example.com",
        json!([{"sku": "RMV-1", "quantity": 2}]),
    )
    .await;
    let id = id_of(&order);
    let ok = json!({"reason": "wrong colour", "lines": [{"sku": "RMV-1", "quantity": 2}]});

    // Not delivered yet: a state conflict.
    let other = app.signed_up("rmv-other@example.com").await;
    let pm = card(&app, &other.access, SUCCESS_CARD).await;
    let confirmed = json_of(
        place(
            &app,
            &other.access,
            "rmv-c",
            &order_body(json!([{"sku": "RMV-1", "quantity": 1}]), &pm),
        )
        .await,
        201,
    )
    .await;
    let p = assert_problem(
        request(
            &app,
            &other.access,
            &id_of(&confirmed),
            json!({"reason": "x", "lines": [{"sku": "RMV-1", "quantity": 1}]}),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().expect("detail").contains("confirmed"), "{p}");
    // Someone else's order does not exist for them.
    assert_problem(request(&app, &other.access, &id, ok.clone()).await, 404).await;
    // Fields: quantity above what was delivered, a SKU not on the order, a missing reason.
    let p = assert_problem(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "x", "lines": [{"sku": "RMV-1", "quantity": 3}, {"sku": "NOPE-1", "quantity": 1}]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["lines[0].quantity", "lines[1].sku"]);
    let p = assert_problem(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": " ", "lines": [{"sku": "RMV-1", "quantity": 1}]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["reason"]);
    let p = assert_problem(
        request(&app, &user.access, &id, json!({"reason": "x", "lines": []})).await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["lines"]);
    assert!(
        json_of(app.get_auth(&format!("{ORDERS}/{id}/returns"), &user.access).await, 200)
            .await
            .as_array()
            .expect("list")
            .is_empty(),
        "refused requests wrote nothing"
    );

    // Every unit is being returned: a second request finds nothing left.
    let rma = json_of(request(&app, &user.access, &id, ok.clone()).await, 201).await;
    let rid = id_of(&rma);
    let p = assert_problem(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "x", "lines": [{"sku": "RMV-1", "quantity": 1}]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["lines[0].quantity"]);
    // Receiving before approval is a conflict; rejecting needs a note for the customer.
    assert_problem(staff(&app, &admin.access, &rid, "receive", json!({})).await, 409).await;
    let p = assert_problem(staff(&app, &admin.access, &rid, "reject", json!({})).await, 422).await;
    assert_eq!(problem_fields(&p), ["note"]);
    let rejected = json_of(
        staff(&app, &admin.access, &rid, "reject", json!({"note": "worn items"})).await,
        200,
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    assert_problem(staff(&app, &admin.access, &rid, "approve", json!({})).await, 409).await;
    assert!(timeline_mentions(
        &order_of(&app, &user.access, &id).await,
        "rejected: worn items"
    ));
    // A rejected return gives its units back to what may be returned.
    let again = json_of(request(&app, &user.access, &id, ok).await, 201).await;
    json_of(
        staff(&app, &admin.access, &id_of(&again), "approve", json!({})).await,
        200,
    )
    .await;
    // Receipt: a line not on the return, a refund above what is left.
    let p = assert_problem(
        staff(
            &app,
            &admin.access,
            &id_of(&again),
            "receive",
            json!({"lines": [{"sku": "NOPE-1", "restock": true}]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["lines[0].sku"]);
    let p = assert_problem(
        staff(
            &app,
            &admin.access,
            &id_of(&again),
            "receive",
            json!({"refund_amount": money(&order["total"]) + 1}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&p), ["refund_amount"]);
    // A partial refund chosen by staff.
    let received = json_of(
        staff(
            &app,
            &admin.access,
            &id_of(&again),
            "receive",
            json!({"refund_amount": 1000}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(money(&received["refund"]), 1000);
    assert_eq!(received["status"], "refunded");
    assert_eq!(on_hand(&stock(&app, "RMV-1").await), 9, "2 back of 3 sold");
    // Unknown returns.
    assert_problem(
        staff(&app, &admin.access, "not-a-uuid", "approve", json!({})).await,
        404,
    )
    .await;
    let unknown = uuid::Uuid::now_v7();
    assert_problem(
        staff(&app, &admin.access, &unknown.to_string(), "approve", json!({})).await,
        404,
    )
    .await;
}

async fn the_return_window_closes(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "RMW-1", 1000, 5).await;
    let (user, order) = delivered(
        &app,
        &admin.access,
        "rmw@example.com",
        json!([{"sku": "RMW-1", "quantity": 1}]),
    )
    .await;
    let id = id_of(&order);
    // Delivered 31 days ago (the default window is 30 days).
    let past = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns") - time::Duration::days(31);
    const SQL: &str = "UPDATE order_timeline SET at = $1 WHERE to_status = 'delivered'";
    match &app.dbs[&Service::Ordering] {
        Db::Sqlite(p) => sqlx::query(SQL).bind(past).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(SQL).bind(past).execute(p).await.map(|_| ()),
    }
    .expect("backdate");
    let p = assert_problem(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "late", "lines": [{"sku": "RMW-1", "quantity": 1}]}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(problem_fields(&p), ["order"]);
    assert!(p["detail"].as_str().expect("detail").contains("30 days"), "{p}");
}

async fn a_goodwill_refund_does_not_restock_and_refunding_twice_is_a_409(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "GOOD-1", 4400, 88).await;
    let (user, order) = delivered(
        &app,
        &admin.access,
        "goodwill@example.com",
        json!([{"sku": "GOOD-1", "quantity": 2}]),
    )
    .await;
    let id = id_of(&order);
    assert_eq!(on_hand(&stock(&app, "GOOD-1").await), 86);
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
    json_of(
        refund("g-1", json!({"amount": 500, "reason": "parcel late"})).await,
        201,
    )
    .await;
    assert_eq!(
        payment_of(&app, &admin.access, &id).await["status"],
        "partially_refunded"
    );
    let full = json_of(refund("g-2", json!({"reason": "parcel lost"})).await, 201).await;
    assert_eq!(full["status"], "refunded");
    assert_eq!(full["payment"]["status"], "refunded");
    assert_eq!(payment_of(&app, &admin.access, &id).await["status"], "refunded");
    // A refund without a return gives no stock back: only received return lines do.
    assert_eq!(on_hand(&stock(&app, "GOOD-1").await), 86);
    // Refunding again: the order is already refunded (a state conflict, not a bad amount).
    for (key, body) in [
        ("g-3", json!({"reason": "again"})),
        ("g-4", json!({"amount": 1, "reason": "more"})),
    ] {
        let p = assert_problem(refund(key, body).await, 409).await;
        assert!(
            p["detail"].as_str().expect("detail").contains("already refunded"),
            "{p}"
        );
    }
    // Payments says the same when asked directly.
    let payment = payment_of(&app, &admin.access, &id).await;
    let pid = payment["id"].as_str().expect("payment id");
    let r = app
        .client
        .post(app.url(&format!("/api/v1/payments/{pid}/refunds")))
        .bearer_auth(&admin.access)
        .header("Idempotency-Key", "g-direct")
        .json(&json!({"amount": 1, "reason": "more"}))
        .send()
        .await
        .expect("request");
    let p = assert_problem(r, 409).await;
    assert!(
        p["detail"].as_str().expect("detail").contains("already refunded"),
        "{p}"
    );
    // And a fully refunded order cannot be returned any more.
    assert_problem(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "x", "lines": [{"sku": "GOOD-1", "quantity": 1}]}),
        )
        .await,
        409,
    )
    .await;
}

async fn shipping_checks_the_state_first_and_keeps_the_tracking_number(app: TestApp) {
    let admin = app.admin().await;
    product(&app, &admin.access, "TRK-1", 1000, 5).await;
    let user = app.signed_up("trk@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let order = json_of(
        place(
            &app,
            &user.access,
            "trk",
            &order_body(json!([{"sku": "TRK-1", "quantity": 1}]), &pm),
        )
        .await,
        201,
    )
    .await;
    let id = id_of(&order);
    let ship_path = format!("{ORDERS}/{id}/ship");
    let ship = |body: Value| post_auth(&app, &ship_path, &admin.access, body);
    let shipped = json_of(
        ship(json!({"carrier": "UPS", "tracking_number": "1z999aa10123456784"})).await,
        200,
    )
    .await;
    assert_eq!(
        shipped["tracking"]["tracking_number"], "1z999aa10123456784",
        "kept as typed"
    );
    json_of(
        post_auth(&app, &format!("{ORDERS}/{id}/deliver"), &admin.access, json!({})).await,
        200,
    )
    .await;
    // Shipping a delivered order with a malformed number: the state is the problem.
    let p = assert_problem(ship(json!({"carrier": "", "tracking_number": "a b"})).await, 409).await;
    assert!(p["detail"].as_str().expect("detail").contains("delivered"), "{p}");
}

/// A crash right after the receipt was written (before restock and refund ran): the recovery loop
/// restocks and refunds on its own, once.
async fn received_returns_are_finished_after_a_crash(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("EMPORIUM_SAGA_RECOVERY_SECS", "1")], true).await else {
        return;
    };
    let admin = app.admin().await;
    product(&app, &admin.access, "RMC-1", 1000, 5).await;
    let (user, order) = delivered(
        &app,
        &admin.access,
        "rmc@example.com",
        json!([{"sku": "RMC-1", "quantity": 2}]),
    )
    .await;
    let id = id_of(&order);
    let rma = json_of(
        request(
            &app,
            &user.access,
            &id,
            json!({"reason": "broken", "lines": [{"sku": "RMC-1", "quantity": 2}]}),
        )
        .await,
        201,
    )
    .await;
    let rid = uuid::Uuid::parse_str(&id_of(&rma)).expect("uuid");
    json_of(
        staff(&app, &admin.access, &rid.to_string(), "approve", json!({})).await,
        200,
    )
    .await;
    // What the receipt's transaction leaves behind when the process dies before the next step.
    let lapsed = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns") - time::Duration::seconds(60);
    const RETURN: &str = "UPDATE order_returns SET status = 'received', step = 'restock', refund_amount = 1500,
        lease_owner = $2, lease_until = $3 WHERE id = $1";
    const LINES: &str = "UPDATE order_return_lines SET restock = TRUE WHERE return_id = $1";
    let dead_runner = uuid::Uuid::now_v7();
    match &app.dbs[&Service::Ordering] {
        Db::Sqlite(p) => {
            sqlx::query(RETURN)
                .bind(rid)
                .bind(dead_runner)
                .bind(lapsed)
                .execute(p)
                .await
                .expect("return");
            sqlx::query(LINES).bind(rid).execute(p).await.expect("lines");
        }
        Db::Postgres(p) => {
            sqlx::query(RETURN)
                .bind(rid)
                .bind(dead_runner)
                .bind(lapsed)
                .execute(p)
                .await
                .expect("return");
            sqlx::query(LINES).bind(rid).execute(p).await.expect("lines");
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let done = loop {
        let list = json_of(app.get_auth(&format!("{ORDERS}/{id}/returns"), &user.access).await, 200).await;
        if list[0]["status"] == "refunded" {
            break list[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the return was never finished: {list}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(done["processing"], false);
    assert_eq!(on_hand(&stock(&app, "RMC-1").await), 5);
    let after = order_of(&app, &user.access, &id).await;
    assert_eq!(money(&after["refunded"]), 1500);
    let payment = payment_of(&app, &admin.access, &id).await;
    assert_eq!(money(&payment["refunded_amount"]), 1500, "refunded once");
    // Later recovery passes change nothing more.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(on_hand(&stock(&app, "RMC-1").await), 5);
    assert_eq!(
        money(&payment_of(&app, &admin.access, &id).await["refunded_amount"]),
        1500
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_returns_are_finished_after_a_crash_sqlite() {
    received_returns_are_finished_after_a_crash(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_returns_are_finished_after_a_crash_postgres() {
    received_returns_are_finished_after_a_crash(Backend::Postgres).await;
}
