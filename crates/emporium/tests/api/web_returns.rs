//! The return pages over HTTP, as a browser without JavaScript uses them (SQLite only: the pages
//! call the same API on either backend): the customer asks for a return on the order page (a bad
//! quantity re-renders with the message), staff approve it and receive it in the returns queue,
//! choosing that the item does not go back to stock; the customer then sees it refunded.

use serde_json::{Value, json};

use crate::browser::*;
use test_support::Backend;
use test_support::app::{PASSWORD, TestApp, spawn_app};
use test_support::requests::*;
use test_support::shop::*;

async fn signed_in(app: &TestApp, email: &str) -> reqwest::Client {
    let b = browser();
    let (status, _, body) = submit(
        &b,
        app,
        "/login",
        "/login",
        &[("email", email), ("password", PASSWORD), ("next", "/")],
    )
    .await;
    assert_eq!(status, 303, "login failed: {body}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_is_requested_and_worked_through_the_pages() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let admin = app.admin().await;
    product(&app, &admin.access, "WEB-RMA", 1000, 5).await;
    let user = app.signed_up("web-rma@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let order = json_of(
        place(
            &app,
            &user.access,
            "web-rma",
            &order_body(json!([{"sku": "WEB-RMA", "quantity": 2}]), &pm),
        )
        .await,
        201,
    )
    .await;
    let id = order["id"].as_str().expect("id").to_owned();
    let page = format!("/orders/{id}");
    let customer = signed_in(&app, &user.email).await;
    // Not delivered yet: no return form.
    let (_, html) = get_page(&customer, &app, &page).await;
    assert!(!html.contains("return-form"), "a confirmed order offers no return");
    json_of(
        post_auth(
            &app,
            &format!("{ORDERS}/{id}/ship"),
            &admin.access,
            json!({"carrier": "DHL", "tracking_number": "JD01460000"}),
        )
        .await,
        200,
    )
    .await;
    json_of(
        post_auth(&app, &format!("{ORDERS}/{id}/deliver"), &admin.access, json!({})).await,
        200,
    )
    .await;
    let (_, html) = get_page(&customer, &app, &page).await;
    assert!(html.contains(r#"name="qty:WEB-RMA""#), "{html}");
    assert!(html.contains("up to 2"), "{html}");

    // Too many: the page again with the message, nothing requested.
    let (status, _, html) = submit(
        &customer,
        &app,
        &page,
        &format!("{page}/returns"),
        &[("qty:WEB-RMA", "3"), ("reason", "too big")],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("between 1 and 2"), "{html}");
    assert!(html.contains("too big"), "the reason is kept");
    // No reason: asked for.
    let (status, _, html) = submit(
        &customer,
        &app,
        &page,
        &format!("{page}/returns"),
        &[("qty:WEB-RMA", "1"), ("reason", " ")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("Tell us why"), "{html}");
    let (status, location, _) = submit(
        &customer,
        &app,
        &page,
        &format!("{page}/returns"),
        &[("qty:WEB-RMA", "1"), ("reason", "too big")],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, page.as_str()));
    let (_, html) = get_page(&customer, &app, &page).await;
    assert!(
        html.contains(r#"data-testid="return" data-status="requested""#),
        "{html}"
    );
    assert!(html.contains("up to 1"), "one unit is left to return");

    // Staff: the queue shows it; approve, then receive without restocking.
    let staff = signed_in(&app, "root@example.com").await;
    let (status, html) = get_page(&staff, &app, "/admin/returns").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-status="requested""#), "{html}");
    let returns: Value = json_of(app.get_auth(&format!("{ORDERS}/{id}/returns"), &user.access).await, 200).await;
    let rid = returns[0]["id"].as_str().expect("return id").to_owned();
    let (status, location, _) = submit(
        &staff,
        &app,
        "/admin/returns",
        &format!("/admin/returns/{rid}/approve"),
        &[("note", "send it back"), ("back", "requested")],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/admin/returns?status=requested"));
    // Approving again: back to the queue with the reason, nothing changes.
    let (status, _, _) = submit(
        &staff,
        &app,
        "/admin/returns",
        &format!("/admin/returns/{rid}/approve"),
        &[("note", "")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = get_page(&staff, &app, "/admin/returns").await;
    assert!(html.contains("cannot be approved"), "the refusal is shown: {html}");
    let (_, html) = get_page(&staff, &app, "/admin/returns?status=approved").await;
    assert!(html.contains(r#"name="restock:WEB-RMA""#), "{html}");
    let on_hand = stock(&app, "WEB-RMA").await["on_hand"].as_i64().expect("on_hand");
    let (status, _, _) = submit(
        &staff,
        &app,
        "/admin/returns?status=approved",
        &format!("/admin/returns/{rid}/receive"),
        &[
            ("restock:WEB-RMA", "no"),
            ("refund", ""),
            ("note", "scratched"),
            ("back", "approved"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let returns: Value = json_of(app.get_auth(&format!("{ORDERS}/{id}/returns"), &user.access).await, 200).await;
    assert_eq!(returns[0]["status"], "refunded", "{returns}");
    assert_eq!(returns[0]["lines"][0]["restock"], false);
    assert_eq!(
        stock(&app, "WEB-RMA").await["on_hand"].as_i64(),
        Some(on_hand),
        "not restocked"
    );
    let (_, html) = get_page(&customer, &app, &page).await;
    assert!(html.contains(r#"data-status="refunded""#), "{html}");
    assert!(html.contains("€11.90"), "10.00 + 19 % VAT: {html}");
}
