//! Contexts of one process call each other directly (ADR 0013: the rest of the suite runs that
//! way); `EMPORIUM_PEER_CALLS=http` sends the same calls through the process's router, with
//! service tokens, JSON and problem+json, as between processes. A checkout, a refusal and the
//! cart read the other way round prove that path still holds in one process.

use serde_json::json;

use test_support::Backend;
use test_support::app::spawn_app_with;
use test_support::requests::{assert_problem, json_of, post_auth, problem_fields, product};
use test_support::shop::{SUCCESS_CARD, address, card, order_body, place, stock};

async fn a_checkout_through_the_router_behaves_as_a_direct_one(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("EMPORIUM_PEER_CALLS", "http")], true).await else {
        return;
    };
    let admin = app.admin().await;
    product(&app, &admin.access, "HTTP-MUG", 1200, 3).await;
    let user = app.signed_up("router-calls@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;

    // A refusal keeps its status and names the line, as inventory's problem+json said it.
    let too_many = order_body(json!([{"sku": "HTTP-MUG", "quantity": 4}]), &pm);
    let problem = assert_problem(place(&app, &user.access, "router-1", &too_many).await, 409).await;
    assert_eq!(problem_fields(&problem), ["items[0].quantity"], "{problem}");

    // From the cart (ordering reads it with the shopper's token), priced by catalog, reserved
    // and committed by inventory, charged by payments: every call over HTTP.
    let added = post_auth(
        &app,
        "/api/v1/cart/items",
        &user.access,
        json!({"sku": "HTTP-MUG", "quantity": 2}),
    )
    .await;
    assert!(
        added.status().is_success(),
        "{}",
        added.text().await.unwrap_or_default()
    );
    let from_cart = json!({"from_cart": true, "shipping_address": address("DE"),
                           "shipping_method": "standard", "payment_method": pm});
    let order = json_of(place(&app, &user.access, "router-2", &from_cart).await, 201).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["lines"][0]["quantity"], 2, "{order}");
    let left = stock(&app, "HTTP-MUG").await;
    assert_eq!(
        (left["on_hand"].as_i64(), left["reserved"].as_i64()),
        (Some(1), Some(0)),
        "{left}"
    );
}

test_support::on_both_backends!(a_checkout_through_the_router_behaves_as_a_direct_one);
