//! The admin console over HTTP, as a browser without JavaScript uses it (cookies, CSRF tokens,
//! redirects). The browser tests run the journeys; these pin the rules: staff only, forms keep
//! what was typed, stock moves once per submitted form, the status page sees every context.

use std::time::Duration;

use serde_json::Value;

use crate::browser::*;
use test_support::Backend;
use test_support::app::{PASSWORD, TestApp, spawn_app};

/// Every admin page a browser can GET, as the admin area lists them.
const ADMIN_PAGES: &[&str] = web::admin::PAGES;

/// A browser signed in through the login form.
async fn signed_in(app: &TestApp, email: &str) -> reqwest::Client {
    let browser = browser();
    let (status, location, body) = submit(
        &browser,
        app,
        "/login",
        "/login",
        &[("email", email), ("password", PASSWORD), ("next", "/admin")],
    )
    .await;
    assert_eq!(status, 303, "login failed: {body}");
    assert_eq!(location, "/admin");
    browser
}

async fn app() -> TestApp {
    spawn_app(Backend::Sqlite).await.expect("sqlite app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_staff_open_admin_pages() {
    let app = app().await;
    app.signed_up("shopper@example.com").await;
    let customer = signed_in(&app, "shopper@example.com").await;
    let anonymous = browser();
    for path in ADMIN_PAGES {
        let (status, html) = get_page(&customer, &app, path).await;
        assert_eq!(status, 403, "{path} let a customer in");
        assert!(html.contains(r#"data-status="403""#), "{path}: {html}");
        assert!(!html.contains("admin-nav"), "{path} shows admin markup to a customer");
        let r = anonymous.get(app.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 303, "{path} for an anonymous visitor");
        let location = r.headers()["location"].to_str().expect("location").to_owned();
        assert!(location.starts_with("/login?next="), "{path} → {location}");
    }
    // An admin action posted with the customer's own valid token is refused as well.
    let (status, _, _) = submit(
        &customer,
        &app,
        "/",
        "/admin/products",
        &[("name", "Sneaky"), ("sku", "SNEAKY-1"), ("price", "1.00")],
    )
    .await;
    assert_eq!(status, 403);

    // Every page renders for an admin (no template error hides behind a 403).
    app.admin().await;
    let admin = signed_in(&app, "root@example.com").await;
    for path in ADMIN_PAGES {
        let (status, html) = get_page(&admin, &app, path).await;
        assert_eq!(status, 200, "{path}: {html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_is_created_after_a_bad_price_and_then_restocked_once_per_form() {
    let app = app().await;
    app.admin().await;
    let admin = signed_in(&app, "root@example.com").await;

    let typed = [
        ("name", "Storm <lantern>"),
        ("sku", "WEB-LANTERN-1"),
        ("brand", "Test Works"),
        ("status", "active"),
        ("currency", "EUR"),
        ("price", "twelve euros"),
        ("attributes", "color: green\nmaterial: steel"),
    ];
    let (status, _, html) = submit(&admin, &app, "/admin/products/new", "/admin/products", &typed).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains(r#"data-testid="error-price""#), "{html}");
    assert!(
        html.contains(r#"aria-describedby="price-hint error-price" aria-invalid="true""#),
        "{html}"
    );
    // What was typed comes back, escaped.
    assert!(html.contains(r#"value="Storm &lt;lantern&gt;""#), "{html}");
    assert!(html.contains(r#"value="WEB-LANTERN-1""#));
    assert!(html.contains(r#"value="twelve euros""#));
    assert!(html.contains("material: steel"));
    assert!(html.contains(r#"<option value="active" selected>"#));
    assert!(!html.contains("<lantern>"), "the name is not escaped");

    // catalog's own rules come back at the field too (here: the SKU's alphabet).
    let mut bad_sku = typed;
    bad_sku[1] = ("sku", "no spaces allowed");
    bad_sku[5] = ("price", "12.50");
    let (status, _, html) = submit(&admin, &app, "/admin/products/new", "/admin/products", &bad_sku).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains(r#"data-testid="error-sku""#), "{html}");

    let mut good = typed;
    good[5] = ("price", "12.50");
    let (status, location, body) = submit(&admin, &app, "/admin/products/new", "/admin/products", &good).await;
    assert_eq!(status, 303, "{body}");
    assert!(location.starts_with("/admin/products/"), "{location}");
    let (_, html) = get_page(&admin, &app, &location).await;
    assert!(html.contains("created"), "no flash: {html}");
    let (_, html) = get_page(&admin, &app, "/admin/products?q=lantern").await;
    assert!(html.contains(r#"data-sku="WEB-LANTERN-1""#), "not listed: {html}");
    assert!(html.contains("€12.50"), "{html}");

    // Inventory learns of the product through the event bus.
    let stock_page = "/admin/inventory/WEB-LANTERN-1";
    let mut html = String::new();
    for _ in 0..50 {
        html = get_page(&admin, &app, stock_page).await.1;
        if !html.contains(r#"data-testid="no-stock""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(html.contains(r#"data-testid="on-hand">0<"#), "{html}");

    // A bad quantity re-renders with the message and the typed reason.
    let (status, _, html) = submit(
        &admin,
        &app,
        stock_page,
        "/admin/inventory/WEB-LANTERN-1/adjust",
        &[("kind", "restock"), ("quantity", "-4"), ("reason", "first delivery")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains(r#"data-testid="error-quantity""#), "{html}");
    assert!(html.contains(r#"value="first delivery""#));

    // The same rendered form submitted twice (a double click, a retry) moves the stock once.
    let (_, form_html) = get_page(&admin, &app, stock_page).await;
    let csrf = input_value(&form_html, "_csrf").expect("csrf");
    let key = input_value(&form_html, "idempotency_key").expect("the form carries an idempotency key");
    for _ in 0..2 {
        let r = admin
            .post(app.url("/admin/inventory/WEB-LANTERN-1/adjust"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[
                ("_csrf", &csrf),
                ("idempotency_key", &key),
                ("kind", "restock"),
                ("quantity", "25"),
                ("reason", "first delivery"),
            ]))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 303);
    }
    let (_, html) = get_page(&admin, &app, stock_page).await;
    assert!(html.contains(r#"data-testid="on-hand">25<"#), "{html}");
    let stock: Value = app.get_json("/api/v1/inventory/WEB-LANTERN-1").await;
    assert_eq!(stock["on_hand"], 25);
    let (_, html) = get_page(&admin, &app, "/admin/inventory?q=lantern").await;
    assert!(
        html.contains(r#"<td class="num" data-testid="on-hand">25</td>"#),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_json_lists_every_context_ready_with_rates_on_the_second_scrape() {
    let app = app().await;
    app.admin().await;
    let admin = signed_in(&app, "root@example.com").await;
    let status = |admin: reqwest::Client| {
        let url = app.url("/admin/status.json");
        async move {
            let r = admin.get(url).send().await.expect("request");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    let first = status(admin.clone()).await;
    let contexts = first["contexts"].as_array().expect("contexts");
    let names: Vec<&str> = contexts.iter().filter_map(|c| c["context"].as_str()).collect();
    assert_eq!(
        names,
        [
            "identity",
            "catalog",
            "inventory",
            "cart",
            "ordering",
            "payments",
            "notifications"
        ]
    );
    for c in contexts {
        assert_eq!(c["state"], "ready", "{c}");
        // The health report was read: its checks are listed in its words, and no error.
        assert_eq!(c["error"], Value::Null, "{c}");
        let checks = c["checks"].as_array().expect("checks");
        assert!(!checks.is_empty(), "{c}");
        assert!(checks.iter().all(|check| check["status"] == "up"), "{c}");
    }
    assert_eq!(
        first["shared_process"], true,
        "embedded mode serves every context from one process"
    );
    assert_eq!(first["orders_today"], 0);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = status(admin).await;
    let identity = &second["contexts"][0];
    assert!(identity["requests_per_second"].as_f64().is_some(), "{identity}");
    assert!(
        identity["requests_total"].as_u64().unwrap_or_default() >= 1,
        "{identity}"
    );
}

/// Today's orders are counted from ordering's order list pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_counts_todays_orders() {
    use test_support::requests::{json_of, product};
    use test_support::shop::{SUCCESS_CARD, card, order_body, place};
    let app = app().await;
    let root = app.admin().await;
    product(&app, &root.access, "TODAY-1", 1_000, 10).await;
    let user = app.signed_up("today@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(serde_json::json!([{"sku": "TODAY-1", "quantity": 1}]), &pm);
    json_of(place(&app, &user.access, "today-1", &body).await, 201).await;
    let admin = signed_in(&app, "root@example.com").await;
    let status: Value = admin
        .get(app.url("/admin/status.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(status["orders_today"], 1, "{status}");
    let (_, html) = get_page(&admin, &app, "/admin/status").await;
    assert!(html.contains(r#"data-testid="orders-today">1</strong>"#), "{html}");
}

/// A dead letter stored by inventory's consumer is listed in inventory's section, its payload
/// cut short, and can be deleted from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letters_page_lists_a_context_s_letters_and_deletes_them() {
    use emporium::app::Service;
    use platform::db::Db;
    let app = app().await;
    app.admin().await;
    let id = uuid::Uuid::now_v7();
    let payload = format!("not an event {}", "x".repeat(500));
    let sql = "INSERT INTO event_dead_letters (id, consumer, event_id, event_type, payload, error, attempts, failed_at)
               VALUES ($1, 'inventory.test', NULL, NULL, $2, 'undecodable payload', 3, $3)";
    let now = time::OffsetDateTime::now_utc();
    let stored = match &app.dbs[&Service::Inventory] {
        Db::Sqlite(pool) => sqlx::query(sql)
            .bind(id)
            .bind(&payload)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()),
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(id)
            .bind(&payload)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()),
    };
    stored.expect("store a dead letter");
    let admin = signed_in(&app, "root@example.com").await;

    let (status, html) = get_page(&admin, &app, "/admin/dead-letters").await;
    assert_eq!(status, 200, "{html}");
    let section = html
        .split(r#"data-testid="dead-letters-inventory""#)
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("inventory's section");
    assert!(section.contains(&format!(r#"data-id="{id}""#)), "{section}");
    assert!(
        section.contains("<code>inventory.test</code><br>(not an event)"),
        "{section}"
    );
    assert!(section.contains("undecodable payload"), "{section}");
    assert!(section.contains("3 attempts"), "{section}");
    assert!(section.contains("not an event xxx"), "{section}");
    assert!(section.contains("x…</pre>"), "the payload is cut: {section}");
    assert!(!section.contains(&payload), "{section}");
    assert_eq!(html.matches(r#"data-testid="dead-letter-row""#).count(), 1, "{html}");

    let action = format!("/admin/dead-letters/inventory/{id}/delete");
    let (status, location, _) = submit(&admin, &app, "/admin/dead-letters", &action, &[]).await;
    assert_eq!((status, location.as_str()), (303, "/admin/dead-letters"));
    let (_, html) = get_page(&admin, &app, "/admin/dead-letters").await;
    assert!(!html.contains(r#"data-testid="dead-letter-row""#), "{html}");
    assert!(html.contains("Dead letter deleted."), "{html}");
}

/// The delivery log shows notifications' deliveries as served, filters them, and names a filter
/// notifications refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifications_page_lists_deliveries_and_names_a_bad_filter() {
    let app = app().await;
    app.admin().await;
    app.signed_up("mailed@example.com").await;
    let admin = signed_in(&app, "root@example.com").await;
    let path = "/admin/notifications?to=mailed%40example.com";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let html = loop {
        let (status, html) = get_page(&admin, &app, path).await;
        assert_eq!(status, 200, "{html}");
        if html.contains(r#"data-testid="delivery-row""#) || std::time::Instant::now() > deadline {
            break html;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(html.matches(r#"data-testid="delivery-row""#).count(), 1, "{html}");
    assert!(html.contains("<code>email_verification</code>"), "{html}");
    assert!(html.contains("<td>mailed@example.com</td>"), "{html}");
    assert!(
        ["pending", "sent"]
            .iter()
            .any(|status| html.contains(&format!(r#"data-testid="delivery-row" data-status="{status}""#))),
        "{html}"
    );

    let (status, html) = get_page(&admin, &app, "/admin/notifications?kind=no_such_kind").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-testid="error-_form""#), "{html}");
    assert!(!html.contains(r#"data-testid="delivery-row""#), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_list_names_customers_and_filters_them_by_e_mail() {
    use test_support::requests::{json_of, product};
    use test_support::shop::{SUCCESS_CARD, card, order_body, place};
    let app = app().await;
    let root = app.admin().await;
    product(&app, &root.access, "NAMED-1", 1_000, 10).await;
    let mut ids = Vec::new();
    for (i, email) in ["ada@example.com", "bob@example.com"].into_iter().enumerate() {
        let user = app.signed_up(email).await;
        let pm = card(&app, &user.access, SUCCESS_CARD).await;
        let body = order_body(serde_json::json!([{"sku": "NAMED-1", "quantity": 1}]), &pm);
        json_of(place(&app, &user.access, &format!("named-{i}"), &body).await, 201).await;
        ids.push(user.id);
    }
    let admin = signed_in(&app, "root@example.com").await;
    let rows = |html: &str| html.matches(r#"data-testid="order-row""#).count();

    let (status, html) = get_page(&admin, &app, "/admin/orders").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(rows(&html), 2);
    for (email, id) in ["ada@example.com", "bob@example.com"].iter().zip(&ids) {
        assert!(html.contains(email), "{email} is shown");
        assert!(
            !html.contains(&format!("<code>{}</code>", &id[..8])),
            "no truncated id for {email}"
        );
    }
    assert!(html.contains("Test User"), "names are shown");
    assert!(
        html.contains(r#"href="/admin/orders?email=ada%40example.com""#),
        "{html}"
    );

    // The filter takes the address as typed (any case) and shows that customer's orders only.
    let (status, html) = get_page(&admin, &app, "/admin/orders?email=ADA%40example.com").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(rows(&html), 1);
    assert!(html.contains("ada@example.com") && !html.contains("bob@example.com"));

    let (status, html) = get_page(&admin, &app, "/admin/orders?email=nobody%40example.com").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 0);
    assert!(
        html.contains("No customer has the address nobody@example.com"),
        "{html}"
    );

    let (status, html) = get_page(&admin, &app, "/admin/orders?email=ada").await;
    assert_eq!(status, 422);
    assert!(html.contains(r#"id="error-email""#), "{html}");
}

/// The order page offers the actions ordering lists for the signed-in member of staff: a
/// confirmed order can be shipped, refunded (admins only) or cancelled; once shipped, only
/// delivered or refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_page_offers_what_ordering_allows_the_member_of_staff() {
    use test_support::requests::{json_of, product};
    use test_support::shop::{SUCCESS_CARD, card, order_body, place};
    let app = app().await;
    let root = app.admin().await;
    product(&app, &root.access, "OFFER-1", 1_000, 10).await;
    let picker = app.signed_up("picker@example.com").await;
    let r = app
        .put_json(
            &app.url(&format!("/api/v1/users/{}/role", picker.id)),
            &root.access,
            serde_json::json!({"role": "fulfilment"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let user = app.signed_up("offered@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let body = order_body(serde_json::json!([{"sku": "OFFER-1", "quantity": 1}]), &pm);
    let order = json_of(place(&app, &user.access, "offer-1", &body).await, 201).await;
    let page = format!("/admin/orders/{}", order["id"].as_str().expect("id"));
    let offered = |html: &str| -> Vec<&'static str> {
        ["/ship\"", "/deliver\"", "/refund\"", "/cancel\""]
            .into_iter()
            .filter(|action| html.contains(&format!("action=\"{page}{action}")))
            .map(|action| action.trim_matches(|c| c == '/' || c == '"'))
            .collect()
    };
    let admin = signed_in(&app, "root@example.com").await;
    let fulfilment = signed_in(&app, "picker@example.com").await;

    let (status, html) = get_page(&admin, &app, &page).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(offered(&html), ["ship", "refund", "cancel"]);
    let (_, html) = get_page(&fulfilment, &app, &page).await;
    assert_eq!(offered(&html), ["ship", "cancel"]);

    let (status, location, body) = submit(
        &fulfilment,
        &app,
        &page,
        &format!("{page}/ship"),
        &[("carrier", "DHL"), ("tracking_number", "JD0146000062")],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, page.as_str()), "{body}");
    let (_, html) = get_page(&admin, &app, &page).await;
    assert_eq!(offered(&html), ["deliver", "refund"]);
    let (_, html) = get_page(&fulfilment, &app, &page).await;
    assert_eq!(offered(&html), ["deliver"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_are_a_tree_edited_on_their_own_page_and_deleted_after_confirmation() {
    use test_support::requests::{json_of, post_auth};
    let app = app().await;
    let root = app.admin().await;
    let kitchen = json_of(
        post_auth(
            &app,
            "/api/v1/catalog/categories",
            &root.access,
            serde_json::json!({"name": "Kitchen"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mugs = json_of(
        post_auth(
            &app,
            "/api/v1/catalog/categories",
            &root.access,
            serde_json::json!({"name": "Mugs", "parent_id": kitchen}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let admin = signed_in(&app, "root@example.com").await;

    // The list is a tree of links: no rename boxes, no delete buttons.
    let (status, html) = get_page(&admin, &app, "/admin/categories").await;
    assert_eq!(status, 200, "{html}");
    let kitchen_at = html
        .find(&format!(r#"href="/admin/categories/{kitchen}""#))
        .expect("kitchen link");
    let mugs_at = html
        .find(&format!(r#"href="/admin/categories/{mugs}""#))
        .expect("mugs link");
    assert!(kitchen_at < mugs_at, "a child follows its parent");
    assert!(
        html[kitchen_at..mugs_at].contains("<ul>"),
        "the child is nested under its parent"
    );
    assert!(!html.contains("/delete"), "no delete on the list page");
    assert!(!html.contains("rename-"), "no rename boxes on the list page");

    // The edit page: a parent can be any category but itself.
    let page = format!("/admin/categories/{mugs}");
    let (status, html) = get_page(&admin, &app, &page).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"name="name" value="Mugs""#), "{html}");
    assert!(
        html.contains(&format!(r#"<option value="{kitchen}" selected>"#)),
        "{html}"
    );
    assert!(
        !html.contains(&format!(r#"<option value="{mugs}""#)),
        "not its own parent"
    );
    let (status, location, _) = submit(&admin, &app, &page, &page, &[("name", "Cups"), ("parent_id", "")]).await;
    assert_eq!((status, location.as_str()), (303, "/admin/categories"));
    let saved = app.get_json(&format!("/api/v1/catalog/categories/{mugs}")).await;
    assert_eq!(saved["name"], "Cups", "{saved}");
    assert!(saved["parent_id"].is_null(), "moved to the top level: {saved}");
    let (status, _, html) = submit(&admin, &app, &page, &page, &[("name", " ")]).await;
    assert_eq!(status, 422);
    assert!(html.contains(r#"id="error-name""#), "{html}");

    // Deleting takes a confirmation page; a post without it only leads there.
    let delete = format!("/admin/categories/{mugs}/delete");
    let (status, location, _) = submit(&admin, &app, &page, &delete, &[]).await;
    assert_eq!((status, location.as_str()), (303, delete.as_str()));
    let r = app
        .client
        .get(app.url(&format!("/api/v1/catalog/categories/{mugs}")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "still there");
    let (status, html) = get_page(&admin, &app, &delete).await;
    assert_eq!(status, 200);
    assert!(html.contains("Delete the category Cups?"), "{html}");
    let (status, location, _) = submit(&admin, &app, &delete, &delete, &[("confirmed", "yes")]).await;
    assert_eq!((status, location.as_str()), (303, "/admin/categories"));
    let r = app
        .client
        .get(app.url(&format!("/api/v1/catalog/categories/{mugs}")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_a_role_and_blocks_an_account_from_the_users_page() {
    let app = app().await;
    let shopper = app.signed_up("shopper@example.com").await;
    let root = app.admin().await;
    let admin = signed_in(&app, "root@example.com").await;
    let list = "/admin/users?email=shopper";
    let (status, html) = get_page(&admin, &app, list).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-email="shopper@example.com""#), "{html}");
    assert!(
        !html.contains(r#"data-email="root@example.com""#),
        "the e-mail filter is applied: {html}"
    );
    assert!(html.contains("audit?email=shopper%40example.com"), "{html}");

    let role_action = format!("/admin/users/{}/role", shopper.id);
    let (status, location, _) = submit(&admin, &app, list, &role_action, &[("role", "support"), ("back", list)]).await;
    assert_eq!((status, location.as_str()), (303, list));
    let (_, html) = get_page(&admin, &app, list).await;
    assert!(
        html.contains("shopper@example.com is now support; their sessions were ended."),
        "{html}"
    );
    let user: Value = app
        .get_auth(&format!("/api/v1/users/{}", shopper.id), &root.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(user["role"], "support");

    // A role identity does not know never reaches it.
    let (status, _, _) = submit(&admin, &app, list, &role_action, &[("role", "root"), ("back", list)]).await;
    assert_eq!(status, 303);
    let (_, html) = get_page(&admin, &app, list).await;
    assert!(html.contains("Choose one of the listed roles."), "{html}");

    let status_action = format!("/admin/users/{}/status", shopper.id);
    let (status, _, _) = submit(
        &admin,
        &app,
        list,
        &status_action,
        &[("status", "disabled"), ("back", list)],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = get_page(&admin, &app, list).await;
    assert!(
        html.contains("shopper@example.com is blocked; their sessions were ended."),
        "{html}"
    );
    assert!(html.contains(r#"data-testid="user-status">disabled<"#), "{html}");
    assert_eq!(app.login("shopper@example.com", PASSWORD).await.status(), 403);

    // Deleting is the owner's act, not a status an admin sets here.
    let (status, _, _) = submit(
        &admin,
        &app,
        list,
        &status_action,
        &[("status", "deleted"), ("back", list)],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = get_page(&admin, &app, list).await;
    assert!(
        html.contains("An account can only be blocked or unblocked here."),
        "{html}"
    );

    // The audit page reads identity's log: the role change and the block are there.
    let (status, html) = get_page(&admin, &app, "/admin/audit?email=shopper%40example.com").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("role.changed"), "{html}");
    assert!(html.contains("user.disabled"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_currency_rates_are_set_checked_and_removed_from_the_console() {
    let app = app().await;
    app.admin().await;
    let admin = signed_in(&app, "root@example.com").await;
    let (status, page) = get_page(&admin, &app, "/admin/rates").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No rates: shoppers see EUR only."), "{page}");

    let set = |currency: &'static str, rate: &'static str, as_of: &'static str, csrf: String| {
        let (admin, app) = (&admin, &app);
        async move {
            post_form(
                admin,
                app,
                "/admin/rates",
                &[
                    ("_csrf", &csrf),
                    ("currency", currency),
                    ("rate", rate),
                    ("as_of", as_of),
                ],
            )
            .await
        }
    };
    let r = set("USD", "1,08", "2999-01-01", csrf(&page)).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("body");
    assert!(
        html.contains(r#"data-testid="error-rate""#) && html.contains(r#"data-testid="error-as_of""#),
        "{html}"
    );
    assert!(html.contains(r#"value="1,08""#), "what was typed is kept: {html}");
    let r = set("XYZ", "2", "2026-12-03", csrf(&html)).await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains(r#"data-testid="error-currency""#)
    );

    let r = set("usd", "1.0856", "2026-12-03", csrf(&html)).await;
    assert_eq!(r.status(), 303);
    let (_, page) = get_page(&admin, &app, "/admin/rates").await;
    assert!(page.contains(r#"data-testid="rate-row" data-currency="USD""#), "{page}");
    assert!(page.contains("1.0856") && page.contains("2026-12-03"), "{page}");

    let r = post_form(&admin, &app, "/admin/rates/USD/remove", &[("_csrf", &csrf(&page))]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = get_page(&admin, &app, "/admin/rates").await;
    assert!(!page.contains(r#"data-currency="USD""#), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_are_registered_with_the_secret_shown_once_and_edited_from_the_console() {
    let app = app().await;
    app.admin().await;
    let admin = signed_in(&app, "root@example.com").await;
    let (status, page) = get_page(&admin, &app, "/admin/webhooks").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No endpoints yet."), "{page}");

    // An internal target and a malformed filter are named next to their fields; typing is kept.
    let r = post_form(
        &admin,
        &app,
        "/admin/webhooks",
        &[
            ("_csrf", &csrf(&page)),
            ("url", "http://169.254.169.254/latest"),
            ("event_types", "Orders!"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("body");
    assert!(
        html.contains(r#"data-testid="error-url""#) && html.contains(r#"data-testid="error-event_types""#),
        "{html}"
    );
    assert!(html.contains("169.254.169.254"), "what was typed is kept");

    let r = post_form(
        &admin,
        &app,
        "/admin/webhooks",
        &[
            ("_csrf", &csrf(&html)),
            ("url", "https://erp.example.com/hooks"),
            ("description", "ERP"),
            ("event_types", "ordering.order.confirmed\npayments.#"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let created = r.text().await.expect("body");
    assert!(created.contains(r#"data-testid="webhook-secret""#), "{created}");
    let secret = created
        .split("<code>")
        .find_map(|part| part.split("</code>").next().filter(|s| s.starts_with("whsec_")))
        .expect("the secret is on the page")
        .to_owned();
    let (_, list) = get_page(&admin, &app, "/admin/webhooks").await;
    assert!(
        list.contains("erp.example.com") && list.contains("ordering.order.confirmed, payments.#"),
        "{list}"
    );
    let id = list
        .split(r#"href="/admin/webhooks/"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("endpoint link")
        .to_owned();
    let (status, detail) = get_page(&admin, &app, &format!("/admin/webhooks/{id}")).await;
    assert_eq!(status, 200);
    assert!(!detail.contains(&secret), "the secret is shown once only");
    assert!(detail.contains("Nothing delivered yet."), "{detail}");

    // Switched off from its page; then a new secret, shown once.
    let r = post_form(
        &admin,
        &app,
        &format!("/admin/webhooks/{id}"),
        &[
            ("_csrf", &csrf(&detail)),
            ("url", "https://erp.example.com/hooks"),
            ("description", "ERP"),
            ("event_types", "ordering.order.*"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, detail) = get_page(&admin, &app, &format!("/admin/webhooks/{id}")).await;
    assert!(detail.contains("<strong>Disabled</strong>"), "{detail}");
    let r = post_form(
        &admin,
        &app,
        &format!("/admin/webhooks/{id}/rotate"),
        &[("_csrf", &csrf(&detail))],
    )
    .await;
    assert_eq!(r.status(), 200);
    let rotated = r.text().await.expect("body");
    assert!(rotated.contains("whsec_") && !rotated.contains(&secret), "a new secret");
    assert!(rotated.contains("The previous secret keeps signing"), "{rotated}");

    let r = post_form(
        &admin,
        &app,
        &format!("/admin/webhooks/{id}/delete"),
        &[("_csrf", &csrf(&rotated))],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, list) = get_page(&admin, &app, "/admin/webhooks").await;
    assert!(list.contains("No endpoints yet."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_exports_and_erases_an_account_on_request_and_sees_every_step() {
    let app = app().await;
    let shopper = app.signed_up("leaving@example.com").await;
    app.admin().await;
    let admin = signed_in(&app, "root@example.com").await;
    let (_, html) = get_page(&admin, &app, "/admin/users?email=leaving").await;
    let page = format!("/admin/users/{}/privacy", shopper.id);
    assert!(html.contains(&page), "the users list links the page: {html}");
    let (status, html) = get_page(&admin, &app, &page).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("No exports.") && html.contains("Erase this account"),
        "{html}"
    );

    let (status, location, _) = submit(&admin, &app, &page, &format!("/admin/users/{}/export", shopper.id), &[]).await;
    assert_eq!((status, location.as_str()), (303, page.as_str()));
    let mails = app.wait_for_mail(&shopper.email, 2).await;
    assert!(
        mails.iter().any(|m| m.subject == "Your data export is ready"),
        "the customer is mailed"
    );
    let (_, html) = get_page(&admin, &app, &page).await;
    assert!(html.contains(r#"data-status="ready""#), "{html}");

    let (status, _, _) = submit(&admin, &app, &page, &format!("/admin/users/{}/erase", shopper.id), &[]).await;
    assert_eq!(status, 303);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let html = loop {
        let (_, html) = get_page(&admin, &app, &page).await;
        if html.contains("Erased everywhere on") {
            break html;
        }
        assert!(std::time::Instant::now() < deadline, "never complete: {html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for context in ["identity", "cart", "catalog", "ordering", "payments", "notifications"] {
        assert!(
            html.contains(&format!(r#"<th scope="row">{context}</th>"#)),
            "{context}: {html}"
        );
    }
    assert!(
        !html.contains("leaving@example.com"),
        "the page no longer knows the address: {html}"
    );
    // Once erased, neither action is offered, and a second erasure is refused with a reason.
    assert!(
        !html.contains("Erase this account") && !html.contains("Export the data"),
        "{html}"
    );
    let (status, _, _) = submit(&admin, &app, &page, &format!("/admin/users/{}/erase", shopper.id), &[]).await;
    assert_eq!(status, 303);
    let (_, html) = get_page(&admin, &app, &page).await;
    assert!(html.contains("already erased"), "{html}");
}
