//! The address book: saved shipping addresses with one default, bounded, checked field by field,
//! private to their owner, usable as a checkout's address, and emptied when the account goes.

use serde_json::{Value, json};
use test_support::app::TestApp;
use test_support::requests::*;
use test_support::shop::*;

on_both_backends!(
    saved_addresses_keep_one_default_and_feed_checkout,
    bad_addresses_are_refused_naming_the_field,
    addresses_are_private_to_their_owner,
    the_book_is_bounded_under_concurrent_additions,
    deleting_the_account_empties_the_address_book,
);

const BOOK: &str = "/api/v1/users/me/addresses";

fn home() -> Value {
    json!({"label": "Home", "address": address("DE")})
}

fn work() -> Value {
    json!({"label": "Work", "address": {"name": "Ada Lovelace", "line1": "Friedrichstraße 100", "line2": "3rd floor",
        "city": "Berlin", "postal_code": "10117", "country": "de", "phone": "+49 30 1234567"}, "default": true})
}

async fn book(app: &TestApp, token: &str) -> Value {
    json_of(app.get_auth(BOOK, token).await, 200).await
}

fn labels_default_first(book: &Value) -> Vec<(String, bool)> {
    book["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| (a["label"].as_str().unwrap_or("").to_owned(), a["is_default"] == true))
        .collect()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn saved_addresses_keep_one_default_and_feed_checkout(app: TestApp) {
    let user = app.signed_up("addresses@example.com").await;
    let empty = book(&app, &user.access).await;
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["limit"], 20);

    let home = json_of(post_auth(&app, BOOK, &user.access, home()).await, 201).await;
    assert_eq!(home["is_default"], true, "the first address is the default: {home}");
    let work = json_of(post_auth(&app, BOOK, &user.access, work()).await, 201).await;
    assert_eq!(work["address"]["country"], "DE", "normalised: {work}");
    assert_eq!(work["address"]["line2"], "3rd floor");
    assert_eq!(
        labels_default_first(&book(&app, &user.access).await),
        [("Work".to_owned(), true), ("Home".to_owned(), false)],
        "adding with default: true moves the mark"
    );
    let home_path = format!("{BOOK}/{}", home["id"].as_str().expect("id"));
    let made = json_of(
        post_auth(&app, &format!("{home_path}/default"), &user.access, json!({})).await,
        200,
    )
    .await;
    assert_eq!(made["is_default"], true);
    assert_eq!(
        labels_default_first(&book(&app, &user.access).await),
        [("Home".to_owned(), true), ("Work".to_owned(), false)]
    );

    // An order placed with a saved address keeps its own copy when the address changes later.
    let admin = app.admin().await;
    product(&app, &admin.access, "BOOK-1", 1500, 5).await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let saved = book(&app, &user.access).await["items"][0]["address"].clone();
    let body = json!({"items": [{"sku": "BOOK-1", "quantity": 1}], "shipping_address": saved,
        "shipping_method": "standard", "payment_method": pm});
    let order = json_of(place(&app, &user.access, "book-1", &body).await, 201).await;
    assert_eq!(order["shipping_address"]["line1"], "Hauptstraße 1", "{order}");
    let moved = json!({"label": "Home", "address": {"name": "Ada Lovelace", "line1": "Neue Straße 2",
        "city": "Hamburg", "postal_code": "20095", "country": "DE"}});
    let replaced = json_of(app.put_json(&app.url(&home_path), &user.access, moved).await, 200).await;
    assert_eq!(replaced["address"]["city"], "Hamburg");
    assert_eq!(replaced["is_default"], true, "replacing keeps the mark");
    let kept = order_of(&app, &user.access, order["id"].as_str().expect("id")).await;
    assert_eq!(kept["shipping_address"]["city"], "Berlin", "{kept}");

    // Removing the default passes the mark on; removing twice is a 404.
    assert_eq!(delete(&app, &home_path, &user.access).await.status(), 204);
    assert_eq!(
        labels_default_first(&book(&app, &user.access).await),
        [("Work".to_owned(), true)]
    );
    assert_problem(delete(&app, &home_path, &user.access).await, 404).await;
}

async fn bad_addresses_are_refused_naming_the_field(app: TestApp) {
    let user = app.signed_up("bad-addresses@example.com").await;
    let cases = [
        (
            json!({"label": "x".repeat(41), "address": address("DE")}),
            vec!["label"],
        ),
        (
            json!({"address": {"name": " ", "line1": "1 Way", "city": "Berlin", "postal_code": "10115", "country": "Narnia"}}),
            vec!["address.name", "address.country"],
        ),
        (
            json!({"address": {"name": "Ada", "line1": "1 Way", "city": "Berlin", "postal_code": "<10115>",
                "country": "DE", "phone": "call me"}}),
            vec!["address.postal_code", "address.phone"],
        ),
        (
            json!({"address": {"name": "Ada", "line1": "1 Way\u{0007}", "city": "Berlin", "postal_code": "10115",
                "country": "DE"}}),
            vec!["address.line1"],
        ),
    ];
    for (body, fields) in cases {
        let problem = assert_problem(post_auth(&app, BOOK, &user.access, body.clone()).await, 422).await;
        assert_eq!(problem_fields(&problem), fields, "{body}");
    }
    // Unknown fields and a missing address are refused before anything is checked.
    let r = post_auth(
        &app,
        BOOK,
        &user.access,
        json!({"address": address("DE"), "admin": true}),
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = post_auth(&app, BOOK, &user.access, json!({"label": "Home"})).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(book(&app, &user.access).await["items"], json!([]), "nothing written");

    let missing = format!("{BOOK}/{}", uuid::Uuid::now_v7());
    assert_problem(app.put_json(&app.url(&missing), &user.access, home()).await, 404).await;
    assert_problem(
        post_auth(&app, &format!("{missing}/default"), &user.access, json!({})).await,
        404,
    )
    .await;
    assert_problem(delete(&app, &format!("{BOOK}/not-a-uuid"), &user.access).await, 404).await;
    let r = app.client.get(app.url(BOOK)).send().await.expect("request");
    assert_problem(r, 401).await;
}

async fn addresses_are_private_to_their_owner(app: TestApp) {
    let owner = app.signed_up("owner@example.com").await;
    let other = app.signed_up("other@example.com").await;
    let saved = json_of(post_auth(&app, BOOK, &owner.access, home()).await, 201).await;
    let path = format!("{BOOK}/{}", saved["id"].as_str().expect("id"));
    assert_eq!(book(&app, &other.access).await["items"], json!([]));
    assert_problem(app.put_json(&app.url(&path), &other.access, work()).await, 404).await;
    assert_problem(
        post_auth(&app, &format!("{path}/default"), &other.access, json!({})).await,
        404,
    )
    .await;
    assert_problem(delete(&app, &path, &other.access).await, 404).await;
    assert_eq!(
        book(&app, &owner.access).await["items"][0]["address"]["line1"],
        "Hauptstraße 1",
        "untouched by the other account"
    );
}

async fn the_book_is_bounded_under_concurrent_additions(app: TestApp) {
    let user = app.signed_up("many-addresses@example.com").await;
    let additions = (0..26).map(|i| {
        let body = json!({"label": format!("Place {i}"), "address": address("DE"), "default": i % 2 == 0});
        let (app, token) = (&app, user.access.clone());
        async move { post_auth(app, BOOK, &token, body).await.status().as_u16() }
    });
    let mut statuses = futures::future::join_all(additions).await;
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 6, "{statuses:?}");
    let full = book(&app, &user.access).await;
    let defaults = labels_default_first(&full).iter().filter(|(_, d)| *d).count();
    assert_eq!(defaults, 1, "exactly one default: {full}");
    let problem = assert_problem(post_auth(&app, BOOK, &user.access, home()).await, 409).await;
    assert!(
        problem["detail"].as_str().expect("detail").contains("remove one"),
        "{problem}"
    );
}

async fn deleting_the_account_empties_the_address_book(app: TestApp) {
    let user = app.signed_up("erase-addresses@example.com").await;
    json_of(post_auth(&app, BOOK, &user.access, home()).await, 201).await;
    json_of(post_auth(&app, BOOK, &user.access, work()).await, 201).await;
    let r = app
        .client
        .delete(app.url("/api/v1/users/me"))
        .bearer_auth(&user.access)
        .json(&json!({"password": test_support::app::PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    let left: i64 = match &app.db {
        platform::db::Db::Sqlite(p) => sqlx::query_scalar("SELECT COUNT(*) FROM addresses")
            .fetch_one(p)
            .await
            .expect("count"),
        platform::db::Db::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM addresses")
            .fetch_one(p)
            .await
            .expect("count"),
    };
    assert_eq!(left, 0, "an erased account leaves no address behind");
}
