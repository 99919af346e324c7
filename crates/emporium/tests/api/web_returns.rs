//! The return pages over HTTP, as a browser without JavaScript uses them (SQLite only: the pages
//! call the same API on either backend): the customer asks for a return on the order page (a bad
//! quantity re-renders with the message), staff approve it and receive it in the returns queue,
//! choosing that the item does not go back to stock; the customer then sees it refunded.

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::shop::*;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
                b' ' => "+".to_owned(),
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn csrf(html: &str) -> String {
    let marker = r#"name="_csrf" value=""#;
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().expect("csrf").to_owned()
}

async fn get_page(browser: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let r = browser.get(app.url(path)).send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// Posts `fields` (plus the CSRF token of `page`) to `action`: (status, location, body).
async fn post(
    browser: &reqwest::Client,
    app: &TestApp,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let (status, html) = get_page(browser, app, page).await;
    assert_eq!(status, 200, "{page}: {html}");
    let token = csrf(&html);
    let mut form = vec![("_csrf", token.as_str())];
    form.extend_from_slice(fields);
    let r = browser
        .post(app.url(action))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&form))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, r.text().await.expect("body"))
}

async fn signed_in(app: &TestApp, email: &str) -> reqwest::Client {
    let b = browser();
    let (status, _, body) = post(
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
    let (status, _, html) = post(
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
    let (status, _, html) = post(
        &customer,
        &app,
        &page,
        &format!("{page}/returns"),
        &[("qty:WEB-RMA", "1"), ("reason", " ")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("Tell us why"), "{html}");
    let (status, location, _) = post(
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
    let (status, location, _) = post(
        &staff,
        &app,
        "/admin/returns",
        &format!("/admin/returns/{rid}/approve"),
        &[("note", "send it back"), ("back", "requested")],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/admin/returns?status=requested"));
    // Approving again: back to the queue with the reason, nothing changes.
    let (status, _, _) = post(
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
    let (status, _, _) = post(
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
