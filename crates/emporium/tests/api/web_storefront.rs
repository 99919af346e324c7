//! Storefront pages over HTTP (SQLite only: the pages call the same APIs on either backend):
//! escaping, a refused add-to-cart re-rendered with its field error, CSRF, the login redirect at
//! checkout, and a whole checkout through the pages ending on a confirmed order.

use serde_json::{Value, json};

use crate::browser::*;
use test_support::Backend;
use test_support::app::{PASSWORD, TestApp, spawn_app};
use test_support::requests::{json_of, post_auth, product};
use test_support::shop::SUCCESS_CARD;

async fn sqlite() -> Option<TestApp> {
    spawn_app(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_names_and_reviews_render_as_text() {
    let Some(app) = sqlite().await else { return };
    let admin = app.admin().await;
    let r = post_auth(
        &app,
        "/api/v1/catalog/products",
        &admin.access,
        json!({"sku": "WEB-XSS-1", "name": "<script>alert(1)</script> Lamp", "price": {"amount": 1999},
               "description": "<img src=x onerror=alert(2)>", "status": "active"}),
    )
    .await;
    let created = json_of(r, 201).await;
    let slug = created["slug"].as_str().expect("slug");
    let (status, html) = get_page(&browser(), &app, &format!("/p/{slug}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("<script>alert(1)"), "the name was not escaped");
    assert!(!html.contains("<img src=x"), "the description was not escaped");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; Lamp"),
        "{html}"
    );
    assert!(
        html.contains(r#"data-testid="stock-status" data-stock="out""#),
        "{html}"
    );

    let (status, _) = get_page(&browser(), &app, "/p/no-such-product").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_quantity_re_renders_the_product_with_the_error_and_a_forged_post_is_refused() {
    let Some(app) = sqlite().await else { return };
    let admin = app.admin().await;
    product(&app, &admin.access, "WEB-QTY-1", 1250, 5).await;
    let browser = browser();
    let (status, html) = get_page(&browser, &app, "/p/product-web-qty-1").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Only 5 left"), "{html}");
    let csrf = csrf(&html);

    let r = post_form(
        &browser,
        &app,
        "/cart/add",
        &[
            ("_csrf", &csrf),
            ("sku", "WEB-QTY-1"),
            ("slug", "product-web-qty-1"),
            ("quantity", "abc"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-testid="error-quantity""#), "{html}");
    assert!(html.contains(r#"value="abc""#), "the typed value is kept: {html}");
    assert!(html.contains(r#"aria-describedby="error-quantity""#), "{html}");

    // More than the stock: the cart API's refusal lands on the same field.
    let r = post_form(
        &browser,
        &app,
        "/cart/add",
        &[
            ("_csrf", &csrf),
            ("sku", "WEB-QTY-1"),
            ("slug", "product-web-qty-1"),
            ("quantity", "9"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains(r#"data-testid="error-quantity""#)
    );

    // Without the token, and with a forged one: refused, nothing added.
    let r = post_form(&browser, &app, "/cart/add", &[("sku", "WEB-QTY-1"), ("quantity", "1")]).await;
    assert_eq!(r.status(), 403);
    let forged = "0".repeat(csrf.len());
    let r = post_form(
        &browser,
        &app,
        "/cart/add",
        &[("_csrf", &forged), ("sku", "WEB-QTY-1"), ("quantity", "1")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let (_, cart) = get_page(&browser, &app, "/cart").await;
    assert!(cart.contains(r#"data-testid="cart-empty""#), "{cart}");
}

/// Signs `browser` in through the login page (registering and verifying `email` first).
async fn sign_in(app: &TestApp, browser: &reqwest::Client, email: &str, next: &str) -> reqwest::Response {
    app.signed_up(email).await;
    let (_, html) = get_page(browser, app, &format!("/login?next={next}")).await;
    post_form(
        browser,
        app,
        "/login",
        &[
            ("_csrf", &csrf(&html)),
            ("email", email),
            ("password", PASSWORD),
            ("next", next),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cart_is_kept_through_login_and_checks_out_to_a_confirmed_order() {
    let Some(app) = sqlite().await else { return };
    let admin = app.admin().await;
    product(&app, &admin.access, "WEB-BUY-1", 2500, 10).await;
    let browser = browser();

    // A guest adds to the cart: the session gets a guest cart.
    let (_, html) = get_page(&browser, &app, "/p/product-web-buy-1").await;
    let r = post_form(
        &browser,
        &app,
        "/cart/add",
        &[
            ("_csrf", &csrf(&html)),
            ("sku", "WEB-BUY-1"),
            ("slug", "product-web-buy-1"),
            ("quantity", "2"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/cart");
    let (_, cart) = get_page(&browser, &app, "/cart").await;
    assert!(
        cart.contains(r#"data-testid="cart-line" data-sku="WEB-BUY-1""#),
        "{cart}"
    );
    assert!(cart.contains("€50.00"), "{cart}");

    // Checkout needs an account: to the login page, and back to checkout afterwards.
    let r = browser.get(app.url("/checkout")).send().await.expect("request");
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?next=%2Fcheckout");
    let r = sign_in(&app, &browser, "web-buyer@example.com", "/checkout").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/checkout");

    // The guest cart was merged into the user's.
    let (status, page) = get_page(&browser, &app, "/checkout").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("2 × Product WEB-BUY-1"), "{page}");
    let csrf = csrf(&page);
    let key = hidden(&page, "idempotency_key");
    // The total to pay is on the page before anything is typed: 2 × 25.00 (shipping free from
    // 50.00) + 19 % VAT (Germany, the default destination) = 59.50.
    assert!(page.contains(r#"data-figure="total">€59.50<"#), "{page}");
    assert!(
        page.contains(r#"<option value="DE" selected>Germany</option>"#),
        "{page}"
    );
    let expected = hidden(&page, "expected_total");
    assert_eq!(expected, "5950");

    // A missing city comes back on its input, the rest kept as typed, the card number not echoed.
    let mut form = vec![
        ("_csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("expected_total", expected.as_str()),
        ("expected_currency", "EUR"),
        ("action", "place"),
        ("name", "Ada Lovelace"),
        ("line1", "Hauptstraße 1"),
        ("city", ""),
        ("postal_code", "10115"),
        ("country", "DE"),
        ("shipping_method", "standard"),
        ("payment_method", "new"),
        ("card_number", SUCCESS_CARD),
        ("exp_month", "12"),
        ("exp_year", "2035"),
        ("cvc", "123"),
    ];
    let r = post_form(&browser, &app, "/checkout", &form).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-testid="error-city""#), "{html}");
    assert!(html.contains(r#"value="Hauptstraße 1""#), "{html}");
    assert!(!html.contains(SUCCESS_CARD), "the card number must not be echoed");
    assert!(html.contains("ending in 4242"), "{html}");

    // Fixed: the order is placed and the page after it shows it confirmed.
    let key = hidden(&html, "idempotency_key");
    form[1] = ("idempotency_key", key.as_str());
    form[7] = ("city", "Berlin");
    let r = post_form(&browser, &app, "/checkout", &form).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let order_page = location(&r);
    assert!(order_page.starts_with("/orders/"), "{order_page}");
    let (status, html) = get_page(&browser, &app, &order_page).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Thank you! Your order EMP-"), "{html}");
    assert!(
        html.contains(r#"data-testid="order-status" data-status="confirmed""#),
        "{html}"
    );
    assert!(html.contains(r#"data-testid="invoice-link""#), "{html}");

    // The invoice downloads as a PDF; the history lists the order.
    let r = browser
        .get(app.url(&format!("{order_page}/invoice.pdf")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert!(r.bytes().await.expect("pdf").starts_with(b"%PDF"));
    let (_, history) = get_page(&browser, &app, "/orders").await;
    assert!(
        history.contains(r#"data-testid="order-row" data-status="confirmed""#),
        "{history}"
    );

    // Someone else's order is not found for another customer.
    let other = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    sign_in(&app, &other, "web-other@example.com", "/").await;
    let (status, _) = get_page(&other, &app, &order_page).await;
    assert_eq!(status, 404);
    let stock: Value = app.get_json("/api/v1/inventory/WEB-BUY-1").await;
    assert_eq!(stock["available"], 8, "{stock}");
}

/// Signs a new customer in through the login form; their API token too (for test set-up).
async fn signed_in_with_token(app: &TestApp, browser: &reqwest::Client, email: &str) -> String {
    sign_in(app, browser, email, "/").await;
    app.access_token(email).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_shows_the_total_to_pay_and_refuses_any_other() {
    let Some(app) = sqlite().await else { return };
    let admin = app.admin().await;
    product(&app, &admin.access, "WEB-TOTAL-1", 1000, 10).await;
    let browser = browser();
    let token = signed_in_with_token(&app, &browser, "web-total@example.com").await;
    json_of(
        post_auth(
            &app,
            "/api/v1/cart/items",
            &token,
            json!({"sku": "WEB-TOTAL-1", "quantity": 1}),
        )
        .await,
        200,
    )
    .await;

    // On load: 10.00 + 4.99 shipping + 19 % VAT (Germany) = 17.84, next to "Place order".
    let (status, page) = get_page(&browser, &app, "/checkout").await;
    assert_eq!(status, 200, "{page}");
    let pay = &page[page.find(r#"data-testid="pay-total""#).expect("pay-total")..];
    let pay = &pay[..pay.find("data-place-order").expect("the button after the total")];
    assert!(pay.contains("€17.84"), "{pay}");
    assert_eq!(hidden(&page, "expected_total"), "1784");
    assert!(page.contains(r#"data-figure="tax">€2.85<"#), "{page}");
    assert!(
        page.contains(">Netherlands</option>"),
        "country names, not codes: {page}"
    );
    assert!(!page.contains(">NL</option>"), "{page}");

    // Without the script, "Update totals" for the Netherlands (21 %) re-renders with the new
    // total; the address is not needed for it.
    let csrf = csrf(&page);
    let form = |action: &'static str, country: &'static str, expected: &'static str| {
        vec![
            ("_csrf", csrf.clone()),
            ("idempotency_key", hidden(&page, "idempotency_key")),
            ("action", action.to_owned()),
            ("country", country.to_owned()),
            ("shipping_method", "standard".to_owned()),
            ("expected_total", expected.to_owned()),
            ("expected_currency", "EUR".to_owned()),
            ("name", "Ada Lovelace".to_owned()),
            ("line1", "Keizersgracht 1".to_owned()),
            ("city", "Amsterdam".to_owned()),
            ("postal_code", "1015 CJ".to_owned()),
            ("payment_method", "new".to_owned()),
            ("card_number", SUCCESS_CARD.to_owned()),
            ("exp_month", "12".to_owned()),
            ("exp_year", "2035".to_owned()),
            ("cvc", "123".to_owned()),
        ]
    };
    let as_refs = |f: &[(&'static str, String)]| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let post = |f: Vec<(&'static str, String)>| {
        let browser = browser.clone();
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(&browser, app, "/checkout", &pairs).await
        }
    };
    let r = post(as_refs(&form("quote", "NL", ""))).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-figure="total">€18.14<"#), "{html}");
    assert_eq!(hidden(&html, "expected_total"), "1814");

    // "Place order" with the total shown for Germany, the country changed to the Netherlands
    // without updating: refused with the new total, nothing charged, no card kept.
    let r = post(as_refs(&form("place", "NL", "1784"))).await;
    assert_eq!(r.status(), 409);
    let html = r.text().await.expect("body");
    assert!(
        html.contains("The total changed since it was shown: it is now €18.14"),
        "{html}"
    );
    assert_eq!(hidden(&html, "expected_total"), "1814");
    // An old page without a total is shown the total first.
    let r = post(as_refs(&form("place", "NL", ""))).await;
    assert_eq!(r.status(), 409);
    let orders = json_of(app.get_auth("/api/v1/orders", &token).await, 200).await;
    assert_eq!(orders["items"], json!([]), "nothing placed");
    let cards = json_of(app.get_auth("/api/v1/payments/methods", &token).await, 200).await;
    assert_eq!(cards["items"], json!([]), "no card kept");

    // The page's script asks for the figures as the shopper changes the country.
    let r = post_form(
        &browser,
        &app,
        "/checkout/quote",
        &[("_csrf", &csrf), ("country", "NL"), ("shipping_method", "express")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let figures: Value = r.json().await.expect("json");
    // 10.00 + 14.99 express = 24.99 + 21 % = 5.25 → 30.24.
    assert_eq!(figures["total"], "€30.24", "{figures}");
    assert_eq!(figures["expected_total"], 3024, "{figures}");
    let r = post_form(
        &browser,
        &app,
        "/checkout/quote",
        &[("_csrf", &csrf), ("country", "ZZ"), ("shipping_method", "standard")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = post_form(
        &browser,
        &app,
        "/checkout/quote",
        &[("country", "NL"), ("shipping_method", "standard")],
    )
    .await;
    assert_eq!(r.status(), 403, "CSRF as every form");

    // Placed with the total shown: confirmed, and the card (not saved) is not on the account.
    let r = post(as_refs(&form("place", "NL", "1814"))).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let orders = json_of(app.get_auth("/api/v1/orders", &token).await, 200).await;
    assert_eq!(orders["items"][0]["total"]["amount"], 1814, "{orders}");
    let cards = json_of(app.get_auth("/api/v1/payments/methods", &token).await, 200).await;
    assert_eq!(cards["items"], json!([]), "not saved without asking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_cards_are_listed_and_removed_on_the_account_page() {
    let Some(app) = sqlite().await else { return };
    let browser = browser();
    let token = signed_in_with_token(&app, &browser, "web-cards@example.com").await;
    let r = post_auth(
        &app,
        "/api/v1/payments/methods",
        &token,
        json!({"card_number": SUCCESS_CARD, "exp_month": 12, "exp_year": 2035, "cvc": "123", "save": true}),
    )
    .await;
    let id = json_of(r, 201).await["id"].as_str().expect("id").to_owned();
    let (status, page) = get_page(&browser, &app, "/account/cards").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Visa ending in 4242"), "{page}");
    let action = format!("/account/cards/{id}/remove");
    assert!(page.contains(&action), "{page}");
    // Without the form's CSRF token: refused, the card stays.
    let r = post_form(&browser, &app, &action, &[]).await;
    assert_eq!(r.status(), 403);
    let r = post_form(&browser, &app, &action, &[("_csrf", &csrf(&page))]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account/cards");
    let (_, page) = get_page(&browser, &app, "/account/cards").await;
    assert!(!page.contains("ending in 4242"), "{page}");
    assert!(page.contains("No saved cards"), "{page}");
    let cards = json_of(app.get_auth("/api/v1/payments/methods", &token).await, 200).await;
    assert_eq!(cards["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_book_page_feeds_checkout_and_checkout_saves_a_new_address() {
    let Some(app) = sqlite().await else { return };
    let admin = app.admin().await;
    product(&app, &admin.access, "WEB-ADDR-1", 2000, 5).await;
    let browser = browser();
    let token = signed_in_with_token(&app, &browser, "web-addresses@example.com").await;

    let (status, page) = get_page(&browser, &app, "/account/addresses").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No saved addresses yet"), "{page}");
    let csrf_token = csrf(&page);
    let typed = |label: &'static str, line1: &'static str, city: &'static str, default: bool| {
        let mut fields = vec![
            ("_csrf", csrf_token.clone()),
            ("label", label.to_owned()),
            ("name", "Ada Lovelace".to_owned()),
            ("line1", line1.to_owned()),
            ("city", city.to_owned()),
            ("postal_code", "10115".to_owned()),
            ("country", "DE".to_owned()),
        ];
        if default {
            fields.push(("default", "on".to_owned()));
        }
        fields
    };
    let as_pairs = |fields: &[(&'static str, String)]| -> Vec<(&'static str, String)> { fields.to_vec() };
    let post = |fields: Vec<(&'static str, String)>| {
        let (browser, app) = (&browser, &app);
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(browser, app, "/account/addresses", &pairs).await
        }
    };

    // A missing city comes back on its input with what was typed kept.
    let r = post(as_pairs(&typed("Home", "Hauptstraße 1", "", false))).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-testid="error-city""#), "{html}");
    assert!(html.contains(r#"value="Hauptstraße 1""#), "{html}");

    let r = post(as_pairs(&typed("Home", "Hauptstraße 1", "Berlin", false))).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account/addresses");
    let r = post(as_pairs(&typed("Work", "Friedrichstraße 100", "Berlin", true))).await;
    assert_eq!(r.status(), 303);
    let (_, page) = get_page(&browser, &app, "/account/addresses").await;
    assert_eq!(page.matches(r#"data-testid="address""#).count(), 2, "{page}");
    assert_eq!(page.matches(r#"data-testid="default-address""#).count(), 1, "{page}");

    // Checkout starts from the default address and offers the others.
    post_auth(
        &app,
        "/api/v1/cart/items",
        &token,
        json!({"sku": "WEB-ADDR-1", "quantity": 1}),
    )
    .await;
    let (status, page) = get_page(&browser, &app, "/checkout").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"value="Friedrichstraße 100""#), "{page}");
    assert_eq!(page.matches(r#"data-testid="saved-address""#).count(), 2, "{page}");
    let book = json_of(app.get_auth("/api/v1/users/me/addresses", &token).await, 200).await;
    let home = book["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|a| a["label"] == "Home")
        .expect("home")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, page) = get_page(&browser, &app, &format!("/checkout?address={home}")).await;
    assert!(page.contains(r#"value="Hauptstraße 1""#), "{page}");
    assert!(!page.contains(r#"value="Friedrichstraße 100""#), "{page}");

    // Placing with a new address and "Save this address" adds it to the book, once.
    let pm = test_support::shop::card(&app, &token, SUCCESS_CARD).await;
    let form = [
        ("_csrf", csrf(&page)),
        ("idempotency_key", hidden(&page, "idempotency_key")),
        ("expected_total", hidden(&page, "expected_total")),
        ("expected_currency", "EUR".to_owned()),
        ("action", "place".to_owned()),
        ("name", "Ada Lovelace".to_owned()),
        ("line1", "Unter den Linden 5".to_owned()),
        ("city", "Berlin".to_owned()),
        ("postal_code", "10117".to_owned()),
        ("country", "DE".to_owned()),
        ("shipping_method", "standard".to_owned()),
        ("payment_method", pm),
        ("save_address", "on".to_owned()),
    ];
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post_form(&browser, &app, "/checkout", &pairs).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let book = json_of(app.get_auth("/api/v1/users/me/addresses", &token).await, 200).await;
    let lines: Vec<&str> = book["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["address"]["line1"].as_str().expect("line1"))
        .collect();
    assert_eq!(
        lines,
        ["Friedrichstraße 100", "Hauptstraße 1", "Unter den Linden 5"],
        "{book}"
    );

    // Editing: the form comes filled in, a bad field comes back on its input, a good one saves.
    let edit = format!("/account/addresses/{home}/edit");
    let (status, page) = get_page(&browser, &app, &edit).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(r#"value="Hauptstraße 1""#) && page.contains(r#"value="Home""#),
        "{page}"
    );
    let fields = |city: &'static str| {
        vec![
            ("_csrf", csrf(&page)),
            ("label", "Home".to_owned()),
            ("name", "Ada Lovelace".to_owned()),
            ("line1", "Hauptstraße 1".to_owned()),
            ("city", city.to_owned()),
            ("postal_code", "14467".to_owned()),
            ("country", "DE".to_owned()),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let (browser, app, edit) = (&browser, &app, edit.clone());
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(browser, app, &edit, &pairs).await
        }
    };
    let r = send(fields("")).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("body").contains(r#"data-testid="error-city""#));
    let r = send(fields("Potsdam")).await;
    assert_eq!(r.status(), 303);
    let book = json_of(app.get_auth("/api/v1/users/me/addresses", &token).await, 200).await;
    assert!(book.to_string().contains("Potsdam"), "{book}");
    let (status, _) = get_page(
        &browser,
        &app,
        &format!("/account/addresses/{}/edit", uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(status, 404);

    // Removing and re-marking through the page.
    let (_, page) = get_page(&browser, &app, "/account/addresses").await;
    let r = post_form(
        &browser,
        &app,
        &format!("/account/addresses/{home}/default"),
        &[("_csrf", &csrf(&page))],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = post_form(
        &browser,
        &app,
        &format!("/account/addresses/{home}/remove"),
        &[("_csrf", &csrf(&page))],
    )
    .await;
    assert_eq!(r.status(), 303);
    let book = json_of(app.get_auth("/api/v1/users/me/addresses", &token).await, 200).await;
    assert_eq!(book["items"].as_array().expect("items").len(), 2, "{book}");
    assert_eq!(book["items"][0]["is_default"], true, "{book}");
    let (status, _) = get_page(&browser, &app, "/account/addresses/not-an-id/remove").await;
    assert_eq!(status, 405, "removing is a POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_show_in_the_visitors_currency_while_checkout_charges_the_shops() {
    let Some(app) = sqlite().await else { return };
    let admin = app.admin().await;
    for (currency, rate) in [("USD", "1.0856"), ("JPY", "162.35")] {
        let url = app.url(&format!("/api/v1/catalog/rates/{currency}"));
        json_of(
            app.put_json(&url, &admin.access, json!({"rate": rate, "as_of": "2026-12-03"}))
                .await,
            200,
        )
        .await;
    }
    product(&app, &admin.access, "WEB-FX-1", 1999, 5).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "accept-language",
        reqwest::header::HeaderValue::from_static("en-US,en;q=0.8"),
    );
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("client");

    // An American browser sees dollars, marked as converted, with the rate's date.
    let (status, page) = get_page(&browser, &app, "/p/product-web-fx-1").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("≈ $21.70"), "{page}");
    assert!(
        page.contains(r#"data-testid="display-note""#) && page.contains("2026-12-03"),
        "{page}"
    );

    // Picking yen in the footer sticks for the session; a currency without a rate is refused.
    let pick = |currency: &'static str, csrf: String| {
        let (browser, app) = (&browser, &app);
        async move {
            post_form(
                browser,
                app,
                "/currency",
                &[
                    ("_csrf", &csrf),
                    ("currency", currency),
                    ("next", "/p/product-web-fx-1"),
                ],
            )
            .await
        }
    };
    let r = pick("JPY", csrf(&page)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/p/product-web-fx-1");
    let (_, page) = get_page(&browser, &app, "/p/product-web-fx-1").await;
    assert!(page.contains("≈ ¥3,245"), "{page}");
    let r = pick("CHF", csrf(&page)).await;
    assert_eq!(r.status(), 303);
    let (_, page) = get_page(&browser, &app, "/p/product-web-fx-1").await;
    assert!(page.contains("Prices cannot be shown in that currency"), "{page}");
    assert!(page.contains("≈ ¥3,245"), "the earlier choice stays: {page}");

    // Checkout shows what is charged, in euros, and says so.
    let token = signed_in_with_token(&app, &browser, "web-fx@example.com").await;
    post_auth(
        &app,
        "/api/v1/cart/items",
        &token,
        json!({"sku": "WEB-FX-1", "quantity": 1}),
    )
    .await;
    let (status, checkout) = get_page(&browser, &app, "/checkout").await;
    assert_eq!(status, 200, "{checkout}");
    assert!(checkout.contains(r#"data-testid="charge-currency""#), "{checkout}");
    assert!(checkout.contains("€19.99") && !checkout.contains("≈ ¥"), "{checkout}");
    let (_, cart) = get_page(&browser, &app, "/cart").await;
    assert!(cart.contains("≈ ¥"), "the cart converts: {cart}");
}
