//! End-to-end journeys over HTTP only, on both backends (PostgreSQL mode with RabbitMQ, Redis and
//! a real SMTP server): register → verify through the mailbox → guest cart merged at login →
//! order from the cart → confirmed → shipped → delivered → invoice; and the declined card that
//! gives the stock back without charging anything.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use test_support::app::TestApp;
use test_support::requests::{create_product, json_of, post_auth};
use test_support::shop::{DECLINED_CARD, ORDERS, SUCCESS_CARD, address, card, place};

on_both_backends!(
    the_whole_journey_from_sign_up_to_a_verified_review,
    a_declined_card_gives_the_stock_back_and_charges_nothing,
);

/// Polls `check` every 100 ms until it returns `Some`, failing with `what` after `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < deadline, "{what}; last seen: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An active product created through the admin API, stocked through an inventory adjustment
/// (the stock row appears once inventory consumed `catalog.product.created`). Returns its id.
async fn product_over_http(app: &TestApp, admin: &str, sku: &str, price: i64, units: i64) -> String {
    let created = create_product(
        app,
        admin,
        json!({"sku": sku, "name": format!("Journey {sku}"), "price": {"amount": price, "currency": "EUR"},
               "status": "active"}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let stocked = eventually(20, &format!("{sku} could not be restocked"), || async {
        let r = app
            .client
            .post(app.url(&format!("/api/v1/inventory/{sku}/adjustments")))
            .bearer_auth(admin)
            .header("Idempotency-Key", format!("stock-{sku}"))
            .json(&json!({"kind": "restock", "quantity": units, "reason": "journey stock"}))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status == 201 {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
    let stocked: Value = serde_json::from_str(&stocked).expect("stock json");
    assert_eq!(stocked["on_hand"], units, "{stocked}");
    id
}

async fn stock(app: &TestApp, sku: &str) -> (i64, i64, i64) {
    let s = app.get_json(&format!("/api/v1/inventory/{sku}")).await;
    (
        s["on_hand"].as_i64().expect("on_hand"),
        s["reserved"].as_i64().expect("reserved"),
        s["available"].as_i64().expect("available"),
    )
}

/// Waits until the order is `status` with no saga step left.
async fn settled(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    eventually(20, &format!("order {id} never settled as {status}"), || async {
        let order = json_of(app.get_auth(&format!("{ORDERS}/{id}"), token).await, 200).await;
        if order["status"] == status && order.get("pending_step").is_none_or(Value::is_null) {
            Ok(order)
        } else {
            Err(order.to_string())
        }
    })
    .await
}

fn cart_lines(cart: &Value) -> Vec<(String, i64)> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().expect("sku").to_owned(),
                i["quantity"].as_i64().expect("qty"),
            )
        })
        .collect()
}

async fn the_whole_journey_from_sign_up_to_a_verified_review(app: TestApp) {
    let admin = app.admin().await;
    let kettle_id = product_over_http(&app, &admin.access, "JRN-KETTLE", 3450, 10).await;
    product_over_http(&app, &admin.access, "JRN-TEA", 899, 20).await;

    // Register, verify with the token that arrived by mail, log in.
    let email = "journey@example.com";
    let r = app.register(email).await;
    json_of(r, 202).await;
    let token = app.mailed_token(email).await;
    let r = app.post("/api/v1/auth/verify-email", json!({"token": token})).await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    let first_login = app.access_token(email).await;
    let me = json_of(app.get_auth("/api/v1/users/me", &first_login).await, 200).await;
    assert_eq!(me["email"], email, "{me}");

    // Shopping as a guest (logged out): a guest cart with two lines.
    let r = app
        .client
        .post(app.url("/api/v1/cart/guest"))
        .send()
        .await
        .expect("request");
    let guest: Value = json_of(r, 201).await;
    let cart_token = guest["cart_token"].as_str().expect("cart_token").to_owned();
    for (sku, qty) in [("JRN-KETTLE", 2), ("jrn-tea", 3)] {
        let r = app
            .client
            .post(app.url("/api/v1/cart/items"))
            .header("X-Cart-Token", &cart_token)
            .json(&json!({"sku": sku, "quantity": qty}))
            .send()
            .await
            .expect("request");
        json_of(r, 200).await;
    }

    // Logging in again: the first request carrying both merges the guest cart into the user's.
    let access = app.access_token(email).await;
    let r = app
        .client
        .get(app.url("/api/v1/cart"))
        .bearer_auth(&access)
        .header("X-Cart-Token", &cart_token)
        .send()
        .await
        .expect("request");
    let cart = json_of(r, 200).await;
    assert_eq!(cart["kind"], "user", "{cart}");
    assert_eq!(
        cart_lines(&cart),
        [("JRN-KETTLE".to_owned(), 2), ("JRN-TEA".to_owned(), 3)]
    );
    assert_eq!(cart["subtotal"]["amount"], 2 * 3450 + 3 * 899);
    let r = app
        .client
        .get(app.url("/api/v1/cart"))
        .header("X-Cart-Token", &cart_token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404, "the guest cart is gone once merged");

    // Order from the cart with the success card.
    let pm = card(&app, &access, SUCCESS_CARD).await;
    let body = json!({"from_cart": true, "shipping_address": address("DE"), "shipping_method": "standard",
                      "payment_method": pm});
    let order = json_of(place(&app, &access, "journey-1", &body).await, 201).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["from_cart"], true);
    let id = order["id"].as_str().expect("id").to_owned();
    let number = order["number"].as_str().expect("number").to_owned();
    let invoice_number = order["invoice_number"].as_str().expect("invoice number").to_owned();
    // 69.00 + 26.97 = 95.97 ≥ 50.00: free standard shipping; 19 % German tax = 18.23 (18.2343).
    assert_eq!(order["subtotal"]["amount"], 9597, "{order}");
    assert_eq!(
        (
            order["shipping"]["amount"].as_i64(),
            order["tax"]["amount"].as_i64(),
            order["total"]["amount"].as_i64()
        ),
        (Some(0), Some(1823), Some(11420)),
        "{order}"
    );
    settled(&app, &access, &id, "confirmed").await;
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={id}"), &access).await,
        200,
    )
    .await;
    let charges = payments["items"].as_array().expect("payments");
    assert_eq!(charges.len(), 1, "{payments}");
    assert_eq!(
        (
            charges[0]["status"].as_str(),
            charges[0]["captured_amount"]["amount"].as_i64()
        ),
        (Some("captured"), Some(11420)),
        "{payments}"
    );

    // Stock went down by the quantities, nothing left reserved.
    assert_eq!(stock(&app, "JRN-KETTLE").await, (8, 0, 8));
    assert_eq!(stock(&app, "JRN-TEA").await, (17, 0, 17));

    // The cart empties itself (cart consumes ordering.order.placed with from_cart).
    eventually(20, "the cart was not emptied after ordering from it", || async {
        let cart = json_of(app.get_auth("/api/v1/cart", &access).await, 200).await;
        if cart_lines(&cart).is_empty() {
            Ok(())
        } else {
            Err(cart.to_string())
        }
    })
    .await;

    // The warehouse ships it, then it is delivered.
    let shipped = json_of(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/ship"),
            &admin.access,
            json!({"carrier": "DHL", "tracking_number": "JD014600006281"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(shipped["status"], "shipped", "{shipped}");
    let seen = json_of(app.get_auth(&format!("{ORDERS}/{id}"), &access).await, 200).await;
    assert_eq!(seen["tracking"]["carrier"], "DHL", "{seen}");
    assert_eq!(seen["tracking"]["tracking_number"], "JD014600006281", "{seen}");
    let delivered = json_of(
        post_auth(&app, &format!("{ORDERS}/{id}/deliver"), &admin.access, json!({})).await,
        200,
    )
    .await;
    assert_eq!(delivered["status"], "delivered", "{delivered}");
    let statuses: Vec<&str> = delivered["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["to"].as_str())
        .collect();
    assert_eq!(
        statuses,
        [
            "pending",
            "awaiting_payment",
            "paid",
            "confirmed",
            "shipped",
            "delivered"
        ]
    );

    // The invoice, as a page and as a PDF.
    let r = app.get_auth(&format!("{ORDERS}/{id}/invoice"), &access).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html"),
        "{:?}",
        r.headers()
    );
    let html = r.text().await.expect("html");
    assert!(
        html.contains(&invoice_number) && html.contains("Journey JRN-KETTLE") && html.contains("Journey JRN-TEA"),
        "{html}"
    );
    let r = app.get_auth(&format!("{ORDERS}/{id}/invoice.pdf"), &access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.expect("pdf");
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF: {:?}", &pdf[..pdf.len().min(16)]);
    assert!(pdf.len() > 500, "a suspiciously small PDF ({} bytes)", pdf.len());

    // The customer was told at every step (subjects from crates/notifications), once: the payment
    // settled within the request, so there is no "received, waiting for the payment" mail.
    let wanted = [
        format!("Order {number} confirmed"),
        format!("Order {number} has shipped"),
        format!("Order {number} has been delivered"),
    ];
    eventually(20, "order mails missing", || async {
        let subjects: Vec<String> = app.mails(email).into_iter().map(|m| m.subject).collect();
        if wanted.iter().all(|w| subjects.contains(w)) {
            Ok(())
        } else {
            Err(format!("{subjects:?}"))
        }
    })
    .await;
    let subjects: Vec<String> = app.mails(email).into_iter().map(|m| m.subject).collect();
    for w in &wanted {
        assert_eq!(
            subjects.iter().filter(|s| *s == w).count(),
            1,
            "{w} sent more than once: {subjects:?}"
        );
    }
    assert!(
        !subjects.contains(&format!("Order {number} received")),
        "a payment settled at once gets one mail: {subjects:?}"
    );
    let confirmed = app
        .mails(email)
        .into_iter()
        .find(|m| m.subject == wanted[0])
        .expect("confirmed mail");
    assert!(confirmed.text.contains(&number), "{}", confirmed.text);
    // Links go to the storefront's page of the order, not to the JSON API.
    assert!(
        confirmed.text.contains(&format!("/orders/{id}\n")) && !confirmed.text.contains("/api/v1/orders"),
        "{}",
        confirmed.text
    );

    // The customer reviews the kettle: a verified purchase (catalog consumed order.delivered).
    let reviews = format!("/api/v1/catalog/products/{kettle_id}/reviews");
    let review = json_of(
        post_auth(
            &app,
            &reviews,
            &access,
            json!({"rating": 5, "title": "Boils fast", "body": "Exactly as described"}),
        )
        .await,
        201,
    )
    .await;
    let review_id = review["id"].as_str().expect("review id").to_owned();
    eventually(20, "the review never became a verified purchase", || async {
        let list = app.get_json(&reviews).await;
        let mine = list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|r| r["id"] == review_id.as_str()).cloned());
        match mine {
            Some(r) if r["verified_purchase"] == true => Ok(()),
            _ => Err(list.to_string()),
        }
    })
    .await;
    // Someone who bought nothing is not verified.
    let stranger = app.signed_up("stranger@example.com").await;
    let theirs = json_of(
        post_auth(
            &app,
            &reviews,
            &stranger.access,
            json!({"rating": 1, "title": "Never had one"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(theirs["verified_purchase"], false, "{theirs}");
}

async fn a_declined_card_gives_the_stock_back_and_charges_nothing(app: TestApp) {
    let admin = app.admin().await;
    product_over_http(&app, &admin.access, "JRN-LAMP", 4900, 3).await;
    let user = app.signed_up("declined-journey@example.com").await;
    let pm = card(&app, &user.access, DECLINED_CARD).await;
    let body = json!({"items": [{"sku": "JRN-LAMP", "quantity": 2}], "shipping_address": address("DE"),
                      "shipping_method": "standard", "payment_method": pm});
    let order = json_of(place(&app, &user.access, "declined-1", &body).await, 201).await;
    assert_eq!(order["status"], "payment_failed", "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    let done = settled(&app, &user.access, &id, "payment_failed").await;
    assert!(done.get("invoice_number").is_none_or(Value::is_null), "{done}");

    // The two units are available again.
    assert_eq!(stock(&app, "JRN-LAMP").await, (3, 0, 3));

    // The customer is told, once, that nothing was charged, with a link back to the cart.
    let number = order["number"].as_str().expect("number").to_owned();
    let failed = eventually(20, "no payment-failed mail", || async {
        let mails = app.mails(&user.email);
        match mails
            .iter()
            .find(|m| m.subject == format!("Payment for order {number} failed"))
        {
            Some(m) => Ok(m.clone()),
            None => Err(format!("{:?}", mails.iter().map(|m| &m.subject).collect::<Vec<_>>())),
        }
    })
    .await;
    assert!(failed.text.contains("Nothing was charged"), "{}", failed.text);
    assert!(failed.text.contains("/cart\n"), "{}", failed.text);

    // One declined attempt, nothing captured.
    let payments = json_of(
        app.get_auth(&format!("/api/v1/payments?order_id={id}"), &admin.access)
            .await,
        200,
    )
    .await;
    let attempts = payments["items"].as_array().expect("payments");
    assert_eq!(attempts.len(), 1, "{payments}");
    assert_eq!(attempts[0]["status"], "declined", "{payments}");
    assert_eq!(attempts[0]["decline_code"], "card_declined", "{payments}");
    assert_eq!(attempts[0]["captured_amount"]["amount"], 0, "{payments}");

    // The released units can really be bought: all three by someone with a good card.
    let good = card(&app, &user.access, SUCCESS_CARD).await;
    let body = json!({"items": [{"sku": "JRN-LAMP", "quantity": 3}], "shipping_address": address("DE"),
                      "shipping_method": "standard", "payment_method": good});
    let order = json_of(place(&app, &user.access, "declined-2", &body).await, 201).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(stock(&app, "JRN-LAMP").await, (0, 0, 0));
}
