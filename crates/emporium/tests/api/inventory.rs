//! Inventory: stock, adjustments and their ledger, low stock, reservations (idempotency, state
//! machine, expiry) and the no-oversell guarantee under contention; on both backends.

use std::time::Duration;

use serde_json::{Value, json};

use emporium::app::Service;
use platform::db::Db;

use test_support::Backend;
use test_support::app::{TestApp, spawn_app_with};
use test_support::requests::{assert_problem, post_auth, problem_fields};

on_both_backends!(
    no_oversell_when_200_clients_race_for_50_units,
    adjustments_move_on_hand_and_fill_the_ledger,
    adjustments_refuse_bad_input_and_impossible_results,
    low_stock_list_and_threshold,
    reservations_reserve_release_and_commit,
    reservation_idempotency_replays_the_first_answer,
    reservations_refuse_bad_input_and_write_nothing,
    reservations_need_a_reserving_role,
    due_reservations_expire_exactly_once,
    batch_availability_reports_unknown_skus,
    reads_refuse_malformed_skus_and_cursors,
    new_products_get_a_stock_row_from_the_catalog_event,
);

const RESERVATIONS: &str = "/api/v1/inventory/reservations";

/// A user with `role`, logged in after the change (roles apply at the next login).
async fn user_with_role(app: &TestApp, admin: &str, email: &str, role: &str) -> String {
    let user = app.signed_up(email).await;
    let r = app
        .put_json(
            &app.url(&format!("/api/v1/users/{}/role", user.id)),
            admin,
            json!({"role": role}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    app.access_token(email).await
}

/// The `data` of every event of `event_type` inventory has written to its outbox, oldest first.
async fn inventory_events(app: &TestApp, event_type: &str) -> Vec<Value> {
    const SQL: &str = "SELECT envelope FROM event_outbox WHERE event_type = $1 ORDER BY id";
    let envelopes: Vec<(String,)> = match &app.dbs[&Service::Inventory] {
        Db::Sqlite(p) => sqlx::query_as(SQL).bind(event_type).fetch_all(p).await,
        Db::Postgres(p) => sqlx::query_as(SQL).bind(event_type).fetch_all(p).await,
    }
    .expect("outbox");
    envelopes
        .into_iter()
        .map(|(e,)| serde_json::from_str::<Value>(&e).expect("envelope")["data"].clone())
        .collect()
}

async fn restock(app: &TestApp, items: &[(&str, i64)]) {
    let items: Vec<(String, i64)> = items.iter().map(|(s, q)| (s.to_string(), *q)).collect();
    app.inventory
        .bulk_restock(&items, "test stock")
        .await
        .expect("bulk restock");
}

async fn stock(app: &TestApp, sku: &str) -> Value {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/inventory/{sku}")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "{sku}");
    r.json().await.expect("json")
}

async fn reserve(app: &TestApp, token: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app.client.post(app.url(RESERVATIONS)).bearer_auth(token).json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.expect("request")
}

async fn adjust(app: &TestApp, token: &str, sku: &str, kind: &str, quantity: i64) -> reqwest::Response {
    post_auth(
        app,
        &format!("/api/v1/inventory/{sku}/adjustments"),
        token,
        json!({"kind": kind, "quantity": quantity, "reason": "cycle count"}),
    )
    .await
}

fn units(stock: &Value) -> (i64, i64, i64) {
    (
        stock["on_hand"].as_i64().expect("on_hand"),
        stock["reserved"].as_i64().expect("reserved"),
        stock["available"].as_i64().expect("available"),
    )
}

async fn no_oversell_when_200_clients_race_for_50_units(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("HOT-ITEM", 50)]).await;
    let requests = (0..200).map(|i| {
        reserve(
            &app,
            &admin.access,
            None,
            json!({"reference": format!("order-{i}"), "items": [{"sku": "HOT-ITEM", "qty": 1}]}),
        )
    });
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, refused), (50, 150), "statuses: {statuses:?}");
    assert_eq!(units(&stock(&app, "HOT-ITEM").await), (50, 50, 0));
}

async fn adjustments_move_on_hand_and_fill_the_ledger(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("TEE-RED-M", 10)]).await;
    let fulfilment = user_with_role(&app, &admin.access, "picker@example.com", "fulfilment").await;

    let r = adjust(&app, &fulfilment, "TEE-RED-M", "restock", 5).await;
    assert_eq!(r.status(), 201);
    assert_eq!(units(&r.json().await.expect("json")), (15, 0, 15));
    assert_eq!(
        adjust(&app, &admin.access, "TEE-RED-M", "damage", 3).await.status(),
        201
    );
    assert_eq!(
        adjust(&app, &admin.access, "TEE-RED-M", "correction", -2)
            .await
            .status(),
        201
    );
    // Lower-case SKUs are normalised.
    assert_eq!(
        adjust(&app, &admin.access, "tee-red-m", "correction", 1).await.status(),
        201
    );
    let s = stock(&app, "TEE-RED-M").await;
    assert_eq!(units(&s), (11, 0, 11));
    assert_eq!(s["version"], 6);

    // Newest first, with cursor pagination.
    let mut kinds = Vec::new();
    let mut url = "/api/v1/inventory/TEE-RED-M/movements?limit=2".to_owned();
    loop {
        let r = app.get_auth(&url, &admin.access).await;
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.expect("json");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        kinds.extend(items.iter().map(|m| m["kind"].as_str().expect("kind").to_owned()));
        match page["next"].as_str() {
            Some(next) => url = format!("/api/v1/inventory/TEE-RED-M/movements?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(kinds, ["correction", "correction", "damage", "restock", "restock"]);
    let page: Value = app
        .get_auth("/api/v1/inventory/TEE-RED-M/movements?limit=1", &admin.access)
        .await
        .json()
        .await
        .expect("json");
    let newest = &page["items"][0];
    assert_eq!(newest["quantity"], 1);
    assert_eq!(newest["on_hand_delta"], 1);
    assert_eq!(newest["on_hand_after"], 11);
    assert_eq!(newest["reason"], "cycle count");
    assert_eq!(newest["actor_id"], admin.id.as_str());

    // Customers can neither adjust nor read the ledger.
    let customer = app.signed_up("shopper@example.com").await;
    assert_problem(adjust(&app, &customer.access, "TEE-RED-M", "restock", 1).await, 403).await;
    assert_problem(
        app.get_auth("/api/v1/inventory/TEE-RED-M/movements", &customer.access)
            .await,
        403,
    )
    .await;
    assert_problem(
        app.client
            .post(app.url("/api/v1/inventory/TEE-RED-M/adjustments"))
            .json(&json!({"kind": "restock", "quantity": 1, "reason": "x"}))
            .send()
            .await
            .expect("request"),
        401,
    )
    .await;
}

async fn adjustments_refuse_bad_input_and_impossible_results(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("MUG-BLUE", 4)]).await;
    let r = reserve(
        &app,
        &admin.access,
        None,
        json!({"reference": "o-1", "items": [{"sku": "MUG-BLUE", "qty": 3}]}),
    )
    .await;
    assert_eq!(r.status(), 201);

    for (body, field) in [
        (json!({"kind": "restock", "quantity": 0, "reason": "x"}), "quantity"),
        (json!({"kind": "damage", "quantity": -2, "reason": "x"}), "quantity"),
        (json!({"kind": "correction", "quantity": 0, "reason": "x"}), "quantity"),
        (json!({"kind": "restock", "quantity": 1, "reason": "  "}), "reason"),
        (
            json!({"kind": "restock", "quantity": 1, "reason": "x".repeat(501)}),
            "reason",
        ),
        (json!({"kind": "stolen", "quantity": 1, "reason": "x"}), "kind"),
        (json!({"kind": "restock", "reason": "x"}), "quantity"),
    ] {
        let r = post_auth(
            &app,
            "/api/v1/inventory/MUG-BLUE/adjustments",
            &admin.access,
            body.clone(),
        )
        .await;
        let problem = assert_problem(r, 422).await;
        assert_eq!(problem_fields(&problem), [field], "{body}");
    }
    // Below reserved (3 of 4 are reserved): refused with the numbers.
    let problem = assert_problem(adjust(&app, &admin.access, "MUG-BLUE", "damage", 2).await, 409).await;
    assert!(
        problem["detail"].as_str().expect("detail").contains("reserved"),
        "{problem}"
    );
    // Below zero.
    let problem = assert_problem(adjust(&app, &admin.access, "MUG-BLUE", "correction", -5).await, 409).await;
    assert!(problem["detail"].as_str().expect("detail").contains("-1"), "{problem}");
    // Exactly down to the reserved units is fine.
    assert_eq!(adjust(&app, &admin.access, "MUG-BLUE", "damage", 1).await.status(), 201);
    assert_eq!(units(&stock(&app, "MUG-BLUE").await), (3, 3, 0));
    // Unknown SKU: 404 (stock rows come from the catalogue); malformed SKU: 422.
    assert_problem(adjust(&app, &admin.access, "NO-SUCH-SKU", "restock", 1).await, 404).await;
    let problem = assert_problem(adjust(&app, &admin.access, "a_b", "restock", 1).await, 422).await;
    assert_eq!(problem_fields(&problem), ["sku"]);
    // Nothing was written by the refusals: 1 restock + 1 reserve + 1 damage.
    let page: Value = app
        .get_auth("/api/v1/inventory/MUG-BLUE/movements", &admin.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["items"].as_array().expect("items").len(), 3);
}

async fn low_stock_list_and_threshold(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("LOW-A", 15), ("LOW-B", 5), ("LOW-C", 10)]).await;
    let low = |app: &TestApp, token: String| {
        let url = app.url("/api/v1/inventory/low-stock");
        let client = app.client.clone();
        async move {
            let r = client.get(url).bearer_auth(token).send().await.expect("request");
            assert_eq!(r.status(), 200);
            let page: Value = r.json().await.expect("json");
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|s| s["sku"].as_str().expect("sku").to_owned())
                .collect::<Vec<_>>()
        }
    };
    // The default threshold is 10: at or below is low.
    assert_eq!(low(&app, admin.access.clone()).await, ["LOW-B", "LOW-C"]);
    assert_eq!(stock(&app, "LOW-B").await["low_stock"], true);

    // Crossing the threshold puts a SKU on the list.
    assert_eq!(adjust(&app, &admin.access, "LOW-A", "damage", 5).await.status(), 201);
    assert_eq!(low(&app, admin.access.clone()).await, ["LOW-A", "LOW-B", "LOW-C"]);

    // Pagination by SKU.
    let page: Value = app
        .get_auth("/api/v1/inventory/low-stock?limit=2", &admin.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    let next = page["next"].as_str().expect("next");
    let page: Value = app
        .get_auth(
            &format!("/api/v1/inventory/low-stock?limit=2&cursor={next}"),
            &admin.access,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["items"][0]["sku"], "LOW-C");
    assert!(page["next"].is_null());

    // Thresholds are per SKU.
    let r = app
        .put_json(
            &app.url("/api/v1/inventory/LOW-C/threshold"),
            &admin.access,
            json!({"threshold": 2}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["low_stock_threshold"], 2);
    assert_eq!(body["low_stock"], false);
    assert_eq!(low(&app, admin.access.clone()).await, ["LOW-A", "LOW-B"]);
    let problem = assert_problem(
        app.put_json(
            &app.url("/api/v1/inventory/LOW-C/threshold"),
            &admin.access,
            json!({"threshold": -1}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&problem), ["threshold"]);
    assert_problem(
        app.put_json(
            &app.url("/api/v1/inventory/NOPE-1/threshold"),
            &admin.access,
            json!({"threshold": 1}),
        )
        .await,
        404,
    )
    .await;

    // Customers may not see the list.
    let customer = app.signed_up("shopper@example.com").await;
    assert_problem(app.get_auth("/api/v1/inventory/low-stock", &customer.access).await, 403).await;
    let problem = assert_problem(
        app.get_auth("/api/v1/inventory/low-stock?cursor=%21%21", &admin.access)
            .await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&problem), ["cursor"]);

    // The crossing was announced once (LOW-A: 15 → 10), LOW-B and LOW-C were never above.
    let low_events = inventory_events(&app, "inventory.stock.low").await;
    assert_eq!(low_events.len(), 1, "{low_events:?}");
    assert_eq!(low_events[0], json!({"sku": "LOW-A", "available": 10, "threshold": 10}));
    let changed = inventory_events(&app, "inventory.stock.changed").await;
    assert_eq!(
        changed.last().expect("changed"),
        &json!({"sku": "LOW-A", "available": 10, "on_hand": 10, "reserved": 0, "previous_available": 15})
    );
}

async fn reservations_reserve_release_and_commit(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("CUP-1", 10), ("CUP-2", 5)]).await;
    let r = reserve(
        &app,
        &admin.access,
        None,
        json!({"reference": "order-7", "items": [{"sku": "cup-2", "qty": 2}, {"sku": "CUP-1", "qty": 3}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().expect("location").to_owned();
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["state"], "active");
    assert_eq!(created["reference"], "order-7");
    assert_eq!(
        created["items"],
        json!([{"sku": "CUP-1", "qty": 3}, {"sku": "CUP-2", "qty": 2}])
    );
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("{RESERVATIONS}/{id}"));
    assert_eq!(units(&stock(&app, "CUP-1").await), (10, 3, 7));
    assert_eq!(units(&stock(&app, "CUP-2").await), (5, 2, 3));

    let fetched: Value = app.get_auth(&location, &admin.access).await.json().await.expect("json");
    assert_eq!(fetched, created);

    // Release gives the units back; releasing again is harmless; committing now is a conflict.
    let r = post_auth(&app, &format!("{location}/release"), &admin.access, json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["state"], "released");
    assert_eq!(units(&stock(&app, "CUP-1").await), (10, 0, 10));
    let r = post_auth(&app, &format!("{location}/release"), &admin.access, json!({})).await;
    assert_eq!(r.status(), 200);
    let problem = assert_problem(
        post_auth(&app, &format!("{location}/commit"), &admin.access, json!({})).await,
        409,
    )
    .await;
    assert!(
        problem["detail"].as_str().expect("detail").contains("released"),
        "{problem}"
    );

    // Commit turns the reservation into a deduction.
    let r = reserve(
        &app,
        &admin.access,
        None,
        json!({"reference": "order-8", "items": [{"sku": "CUP-1", "qty": 4}]}),
    )
    .await;
    let id2 = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(units(&stock(&app, "CUP-1").await), (10, 4, 6));
    let r = post_auth(&app, &format!("{RESERVATIONS}/{id2}/commit"), &admin.access, json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["state"], "committed");
    assert_eq!(units(&stock(&app, "CUP-1").await), (6, 0, 6));
    assert_eq!(
        post_auth(&app, &format!("{RESERVATIONS}/{id2}/commit"), &admin.access, json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(units(&stock(&app, "CUP-1").await), (6, 0, 6));
    let problem = assert_problem(
        post_auth(&app, &format!("{RESERVATIONS}/{id2}/release"), &admin.access, json!({})).await,
        409,
    )
    .await;
    assert!(
        problem["detail"].as_str().expect("detail").contains("committed"),
        "{problem}"
    );

    // The ledger shows the whole story for CUP-1, newest first.
    let page: Value = app
        .get_auth("/api/v1/inventory/CUP-1/movements", &admin.access)
        .await
        .json()
        .await
        .expect("json");
    let kinds: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["commit", "reserve", "release", "reserve", "restock"]);
    assert_eq!(page["items"][0]["reservation_id"], id2.as_str());

    // Unknown ids.
    assert_problem(
        app.get_auth(&format!("{RESERVATIONS}/{}", uuid::Uuid::now_v7()), &admin.access)
            .await,
        404,
    )
    .await;
    assert_problem(
        app.get_auth(&format!("{RESERVATIONS}/not-a-uuid"), &admin.access).await,
        404,
    )
    .await;
    assert_problem(
        post_auth(
            &app,
            &format!("{RESERVATIONS}/{}/release", uuid::Uuid::now_v7()),
            &admin.access,
            json!({}),
        )
        .await,
        404,
    )
    .await;

    let events = inventory_events(&app, "inventory.reservation.committed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], id2.as_str());
    assert_eq!(events[0]["items"], json!([{"sku": "CUP-1", "qty": 4}]));
    assert_eq!(inventory_events(&app, "inventory.reservation.released").await.len(), 1);
    assert_eq!(inventory_events(&app, "inventory.reservation.created").await.len(), 2);
    // Availability moved four times (restock, reserve, release, reserve); the commit, which takes
    // reserved units away without changing availability, tells catalog nothing.
    let cup_1: Vec<Value> = inventory_events(&app, "inventory.stock.changed")
        .await
        .into_iter()
        .filter(|e| e["sku"] == "CUP-1")
        .collect();
    assert_eq!(cup_1.len(), 4, "{cup_1:?}");
    assert_eq!(
        cup_1[3]["reserved"], 4,
        "the last one is the second reservation's: {cup_1:?}"
    );
}

async fn reservation_idempotency_replays_the_first_answer(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("PEN-1", 10)]).await;
    let body = json!({"reference": "order-1", "items": [{"sku": "PEN-1", "qty": 2}], "ttl_seconds": 600});
    let first = reserve(&app, &admin.access, Some("key-1"), body.clone()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");

    let again = reserve(&app, &admin.access, Some("key-1"), body.clone()).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    // Only reserved once.
    assert_eq!(units(&stock(&app, "PEN-1").await), (10, 2, 8));

    // Same key, different body.
    let other = json!({"reference": "order-1", "items": [{"sku": "PEN-1", "qty": 3}], "ttl_seconds": 600});
    let problem = assert_problem(reserve(&app, &admin.access, Some("key-1"), other).await, 422).await;
    assert_eq!(problem_fields(&problem), ["Idempotency-Key"]);
    // A malformed key.
    let problem = assert_problem(reserve(&app, &admin.access, Some("has space"), body.clone()).await, 422).await;
    assert_eq!(problem_fields(&problem), ["Idempotency-Key"]);

    // Concurrent duplicates all get the first answer, never a 500.
    let racers = (0..10).map(|_| {
        reserve(
            &app,
            &admin.access,
            Some("key-2"),
            json!({"reference": "order-2", "items": [{"sku": "PEN-1", "qty": 1}]}),
        )
    });
    let answers = futures::future::join_all(racers).await;
    let mut ids = Vec::new();
    for r in answers {
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().await.expect("json")["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(units(&stock(&app, "PEN-1").await), (10, 3, 7));

    // A refused request records nothing: the same key works once stock is there.
    let big = json!({"reference": "order-3", "items": [{"sku": "PEN-1", "qty": 9}]});
    assert_problem(reserve(&app, &admin.access, Some("key-3"), big.clone()).await, 409).await;
    restock(&app, &[("PEN-1", 5)]).await;
    assert_eq!(reserve(&app, &admin.access, Some("key-3"), big).await.status(), 201);
}

async fn reservations_refuse_bad_input_and_write_nothing(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("BAG-1", 5), ("BAG-2", 5)]).await;
    for (body, fields) in [
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 0}]}),
            vec!["items[0].qty"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": -3}]}),
            vec!["items[0].qty"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 10_001}]}),
            vec!["items[0].qty"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 1}, {"sku": "NOPE-9", "qty": 1}]}),
            vec!["items[1].sku"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 1}, {"sku": "x y", "qty": 1}]}),
            vec!["items[1].sku"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 1}, {"sku": "bag-1", "qty": 1}]}),
            vec!["items[1].sku"],
        ),
        (json!({"reference": "o", "items": []}), vec!["items"]),
        (
            json!({"reference": "", "items": [{"sku": "BAG-1", "qty": 1}]}),
            vec!["reference"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 1}], "ttl_seconds": 29}),
            vec!["ttl_seconds"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 1}], "ttl_seconds": 86_401}),
            vec!["ttl_seconds"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1"}]}),
            vec!["items[0].qty"],
        ),
        (
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 1}], "extra": 1}),
            vec!["extra"],
        ),
    ] {
        let problem = assert_problem(reserve(&app, &admin.access, None, body.clone()).await, 422).await;
        assert_eq!(problem_fields(&problem), fields, "{body}");
    }
    // Insufficient on the second line: 409 naming the SKU, and the first line is not kept.
    let problem = assert_problem(
        reserve(
            &app,
            &admin.access,
            None,
            json!({"reference": "o", "items": [{"sku": "BAG-1", "qty": 2}, {"sku": "BAG-2", "qty": 6}]}),
        )
        .await,
        409,
    )
    .await;
    assert!(
        problem["detail"].as_str().expect("detail").contains("BAG-2"),
        "{problem}"
    );
    assert_eq!(problem_fields(&problem), ["items[1].qty"]);
    assert_eq!(units(&stock(&app, "BAG-1").await), (5, 0, 5));
    assert_eq!(units(&stock(&app, "BAG-2").await), (5, 0, 5));
    assert!(inventory_events(&app, "inventory.reservation.created").await.is_empty());
}

async fn reservations_need_a_reserving_role(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("BOX-1", 5)]).await;
    let body = json!({"reference": "o", "items": [{"sku": "BOX-1", "qty": 1}]});
    let customer = app.signed_up("shopper@example.com").await;
    assert_problem(reserve(&app, &customer.access, None, body.clone()).await, 403).await;
    let manager = user_with_role(&app, &admin.access, "cm@example.com", "catalog_manager").await;
    assert_problem(reserve(&app, &manager, None, body.clone()).await, 403).await;
    let fulfilment = user_with_role(&app, &admin.access, "ff@example.com", "fulfilment").await;
    assert_eq!(reserve(&app, &fulfilment, None, body.clone()).await.status(), 201);
    let r = app
        .client
        .post(app.url(RESERVATIONS))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_problem(r, 401).await;
}

async fn due_reservations_expire_exactly_once(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("EXP-1", 5)]).await;
    let r = reserve(
        &app,
        &admin.access,
        None,
        json!({"reference": "cart-1", "items": [{"sku": "EXP-1", "qty": 2}], "ttl_seconds": 30}),
    )
    .await;
    let id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(units(&stock(&app, "EXP-1").await), (5, 2, 3));
    // Not due yet.
    let now = inventory::service::now();
    assert_eq!(app.inventory.expire_due(now).await.expect("sweep"), 0);
    // Two sweepers (replicas) racing past the deadline: exactly one expires it.
    let later = now + Duration::from_secs(31);
    let (a, b) = tokio::join!(app.inventory.expire_due(later), app.inventory.expire_due(later));
    assert_eq!(a.expect("a") + b.expect("b"), 1);
    assert_eq!(units(&stock(&app, "EXP-1").await), (5, 0, 5));
    let r: Value = app
        .get_auth(&format!("{RESERVATIONS}/{id}"), &admin.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["state"], "expired");
    let problem = assert_problem(
        post_auth(&app, &format!("{RESERVATIONS}/{id}/commit"), &admin.access, json!({})).await,
        409,
    )
    .await;
    assert!(
        problem["detail"].as_str().expect("detail").contains("expired"),
        "{problem}"
    );
    let events = inventory_events(&app, "inventory.reservation.expired").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0],
        json!({"id": id, "reference": "cart-1", "items": [{"sku": "EXP-1", "qty": 2}]})
    );
}

async fn batch_availability_reports_unknown_skus(app: TestApp) {
    restock(&app, &[("BAT-1", 3), ("BAT-2", 20)]).await;
    let r = app
        .client
        .get(app.url("/api/v1/inventory?sku=BAT-2&sku=bat-1,NOPE-1&sku=BAT-1"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    let skus: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["sku"].as_str().expect("sku"))
        .collect();
    assert_eq!(skus, ["BAT-1", "BAT-2"]);
    assert_eq!(body["items"][0]["available"], 3);
    assert_eq!(body["items"][0]["low_stock"], true);
    assert_eq!(body["not_found"], json!(["NOPE-1"]));

    let too_many = (0..101).map(|i| format!("sku=SKU-{i}")).collect::<Vec<_>>().join("&");
    for (query, field) in [
        (too_many.as_str(), "sku"),
        ("", "sku"),
        ("sku=BAT-1&sku=no_good", "sku[1]"),
        ("sku=BAT-1&limit=3", "limit"),
    ] {
        let r = app
            .client
            .get(app.url(&format!("/api/v1/inventory?{query}")))
            .send()
            .await
            .expect("request");
        let problem = assert_problem(r, 422).await;
        assert_eq!(problem_fields(&problem), [field], "{query}");
    }
}

async fn reads_refuse_malformed_skus_and_cursors(app: TestApp) {
    let admin = app.admin().await;
    restock(&app, &[("READ-1", 1)]).await;
    let r = app
        .client
        .get(app.url("/api/v1/inventory/ab"))
        .send()
        .await
        .expect("request");
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["sku"]);
    let r = app
        .client
        .get(app.url("/api/v1/inventory/NOPE-42"))
        .send()
        .await
        .expect("request");
    assert_problem(r, 404).await;
    let r = app
        .get_auth("/api/v1/inventory/READ-1/movements?cursor=zzz", &admin.access)
        .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["cursor"]);
    let r = app
        .get_auth("/api/v1/inventory/READ-1/movements?limit=0", &admin.access)
        .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["limit"]);
    let r = app.get_auth("/api/v1/inventory/NOPE-42/movements", &admin.access).await;
    assert_problem(r, 404).await;
}

/// The background sweeper (not a direct call) releases an expired reservation: ttl 30 s (the
/// shortest a client may ask), backdated in the database so the test waits for a sweep, sweep
/// every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_releases_expired_reservations_sqlite() {
    sweeper_releases_expired_reservations(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_releases_expired_reservations_postgres() {
    sweeper_releases_expired_reservations(Backend::Postgres).await;
}

async fn sweeper_releases_expired_reservations(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("EMPORIUM_RESERVATION_SWEEP_SECS", "1")], true).await else {
        return;
    };
    let admin = app.admin().await;
    restock(&app, &[("SWEEP-1", 3)]).await;
    let r = reserve(
        &app,
        &admin.access,
        None,
        json!({"reference": "cart-9", "items": [{"sku": "SWEEP-1", "qty": 3}], "ttl_seconds": 30}),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(units(&stock(&app, "SWEEP-1").await), (3, 3, 0));
    // Whole seconds, as the store writes them (SQLite compares its timestamps as text).
    let past = platform::clock::now_to_second() - time::Duration::minutes(1);
    const BACKDATE: &str = "UPDATE reservations SET expires_at = $1 WHERE reference = 'cart-9'";
    let backdated = match &app.dbs[&Service::Inventory] {
        Db::Sqlite(p) => sqlx::query(BACKDATE)
            .bind(past)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(BACKDATE)
            .bind(past)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    };
    assert_eq!(backdated.expect("backdate the reservation"), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if units(&stock(&app, "SWEEP-1").await) == (3, 0, 3) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper did not expire the reservation"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(inventory_events(&app, "inventory.reservation.expired").await.len(), 1);
}

async fn new_products_get_a_stock_row_from_the_catalog_event(app: TestApp) {
    let admin = app.admin().await;
    let r = post_auth(
        &app,
        "/api/v1/catalog/products",
        &admin.access,
        json!({"sku": "NEW-PROD-1", "name": "Fresh product", "price": {"amount": 1000}, "status": "active"}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    // Delivered through the bus (in-process, or RabbitMQ on the PostgreSQL run).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let s = loop {
        let r = app
            .client
            .get(app.url("/api/v1/inventory/NEW-PROD-1"))
            .send()
            .await
            .expect("request");
        if r.status() == 200 {
            break r.json::<Value>().await.expect("json");
        }
        assert!(std::time::Instant::now() < deadline, "no stock row appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(units(&s), (0, 0, 0));
    assert_eq!(s["low_stock_threshold"], 10);
    // Now the SKU can be restocked and reserved.
    assert_eq!(
        adjust(&app, &admin.access, "NEW-PROD-1", "restock", 2).await.status(),
        201
    );
    assert_eq!(units(&stock(&app, "NEW-PROD-1").await), (2, 0, 2));
}
