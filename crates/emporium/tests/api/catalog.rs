//! Catalog over HTTP on both backends: products (ETags, conditional requests, cache
//! invalidation), validation, listing filters and cursors, facets, search and suggest, categories,
//! reviews and related products.

use serde_json::{Value, json};

use crate::eventually;
use test_support::app::TestApp;
use test_support::requests::{assert_problem, create_product, json_of, problem_fields};

on_both_backends!(
    product_lifecycle_with_etags_conditional_requests_and_cache_invalidation,
    bad_product_input_is_refused_naming_the_field_and_writes_nothing,
    only_staff_write_and_only_staff_see_unpublished_products,
    listing_filters_sorts_and_pages_with_opaque_cursors,
    facets_count_the_current_filter,
    search_ranks_name_matches_first_and_survives_hostile_queries,
    suggest_completes_names_by_prefix,
    categories_tree_breadcrumbs_cycles_and_deletion,
    reviews_keep_aggregates_current_and_can_be_moderated,
    related_products_share_category_or_attributes,
    writes_enqueue_events_in_the_outbox,
    stock_from_inventory_reaches_products_and_the_in_stock_filter,
);

const PRODUCTS: &str = "/api/v1/catalog/products";
const CATEGORIES: &str = "/api/v1/catalog/categories";

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("request")
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    send(app, reqwest::Method::POST, path, Some(token), Some(body)).await
}

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    send(app, reqwest::Method::PATCH, path, Some(token), Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    send(app, reqwest::Method::GET, path, None, None).await
}

async fn category(app: &TestApp, token: &str, name: &str, parent: Option<&str>) -> String {
    let r = post(app, CATEGORIES, token, json!({"name": name, "parent_id": parent})).await;
    json_of(r, 201).await["id"].as_str().expect("id").to_owned()
}

fn active(sku: &str, name: &str, amount: i64) -> Value {
    json!({"sku": sku, "name": name, "price": {"amount": amount}, "status": "active"})
}

fn etag_of(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().expect("etag").to_owned()
}

/// Percent-encodes a query-string value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["sku"].as_str().expect("sku").to_owned())
        .collect()
}

async fn list(app: &TestApp, query: &str) -> Value {
    json_of(get(app, &format!("{PRODUCTS}?{query}")).await, 200).await
}

async fn product_lifecycle_with_etags_conditional_requests_and_cache_invalidation(app: TestApp) {
    let admin = app.admin().await;
    let created = post(
        &app,
        PRODUCTS,
        &admin.access,
        json!({
            "sku": "tee-red-m", "name": "Organic Cotton Tee", "description": "Soft and light.",
            "price": {"amount": 1999}, "compare_at_price": {"amount": 2499, "currency": "EUR"},
            "brand": "Acme", "attributes": {"color": "red", "size": "M"},
            "images": ["https://img.example.com/tee.png"], "status": "active"
        }),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert!(etag_of(&created).starts_with("\"v1-"), "{}", etag_of(&created));
    let p: Value = created.json().await.expect("json");
    assert_eq!(p["sku"], "TEE-RED-M");
    assert_eq!(p["slug"], "organic-cotton-tee");
    assert_eq!(p["price"], json!({"amount": 1999, "currency": "EUR"}));
    assert_eq!(p["in_stock"], false);
    assert_eq!(p["rating"]["count"], 0);
    let id = p["id"].as_str().expect("id").to_owned();
    let url = format!("{PRODUCTS}/{id}");

    let r = get(&app, &url).await;
    assert_eq!(r.status(), 200);
    let v1 = etag_of(&r);
    assert!(v1.starts_with("\"v1-"), "{v1}");
    assert!(r.headers()["cache-control"].to_str().expect("cc").contains("max-age"));
    let r = app
        .client
        .get(app.url(&url))
        .header("if-none-match", &v1)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 304);
    assert_eq!(etag_of(&r), v1);
    let by_slug = json_of(get(&app, &format!("{PRODUCTS}/by-slug/organic-cotton-tee")).await, 200).await;
    assert_eq!(by_slug["id"], id.as_str());

    // A stale If-Match is refused and changes nothing.
    let stale = app
        .client
        .put(app.url(&url))
        .bearer_auth(&admin.access)
        .header("if-match", "\"v7\"")
        .json(&json!({"sku": "TEE-RED-M", "name": "Changed", "price": {"amount": 100}}))
        .send()
        .await
        .expect("request");
    assert_problem(stale, 412).await;

    let updated = app
        .client
        .patch(app.url(&url))
        .bearer_auth(&admin.access)
        .header("if-match", &v1)
        .json(&json!({"name": "Organic Cotton Tee II", "price": {"amount": 1799}}))
        .send()
        .await
        .expect("request");
    assert_eq!(updated.status(), 200);
    assert!(etag_of(&updated).starts_with("\"v2-"));
    // The cached copy was dropped: the next read shows the change.
    let fresh = json_of(get(&app, &url).await, 200).await;
    assert_eq!(fresh["name"], "Organic Cotton Tee II");
    assert_eq!(fresh["price"]["amount"], 1799);
    assert_eq!(fresh["compare_at_price"]["amount"], 2499);
    let page = list(&app, "").await;
    assert_eq!(page["items"][0]["name"], "Organic Cotton Tee II");
    // The old ETag no longer matches.
    let r = app
        .client
        .get(app.url(&url))
        .header("if-none-match", &v1)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    // PUT replaces: fields left out are cleared.
    let replaced = app
        .put_json(
            &app.url(&url),
            &admin.access,
            json!({"sku": "TEE-RED-M", "name": "Tee", "price": {"amount": 1500}, "status": "active"}),
        )
        .await;
    let replaced = json_of(replaced, 200).await;
    assert_eq!(replaced["brand"], Value::Null);
    assert_eq!(replaced["attributes"], json!({}));
    assert_eq!(replaced["version"], 3);

    let stale_delete = app
        .client
        .delete(app.url(&url))
        .bearer_auth(&admin.access)
        .header("if-match", "\"v1\"")
        .send()
        .await
        .expect("request");
    assert_problem(stale_delete, 412).await;
    let deleted = send(&app, reqwest::Method::DELETE, &url, Some(&admin.access), None).await;
    assert_eq!(deleted.status(), 204);
    assert_problem(get(&app, &url).await, 404).await;
    assert_eq!(list(&app, "").await["total"], 0);
    // The SKU is free again after the soft delete.
    create_product(&app, &admin.access, active("TEE-RED-M", "Tee again", 1000)).await;
}

async fn bad_product_input_is_refused_naming_the_field_and_writes_nothing(app: TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    create_product(&app, t, active("SKU-1", "First", 1000)).await;
    let unknown_category = uuid::Uuid::now_v7().to_string();
    for (body, field) in [
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100}, "category_id": unknown_category}),
            "category_id",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 0}}),
            "price.amount",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": -5}}),
            "price.amount",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 10_000_000_001_i64}}),
            "price.amount",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100, "currency": "XYZ"}}),
            "price.currency",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100, "currency": "euros"}}),
            "price.currency",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100}, "compare_at_price": {"amount": 50}}),
            "compare_at_price.amount",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100}, "compare_at_price": {"amount": 500, "currency": "USD"}}),
            "compare_at_price.currency",
        ),
        (json!({"sku": "a b", "name": "x", "price": {"amount": 100}}), "sku"),
        (json!({"sku": "S-2", "name": "  ", "price": {"amount": 100}}), "name"),
        (
            json!({"sku": "S-2", "name": "x", "slug": "Not A Slug", "price": {"amount": 100}}),
            "slug",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100}, "images": ["javascript:alert(1)"]}),
            "images[0]",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100}, "status": "live"}),
            "status",
        ),
        (
            json!({"sku": "S-2", "name": "x", "price": {"amount": 100}, "colour": "red"}),
            "colour",
        ),
        (json!({"sku": "S-2", "name": "x"}), "price"),
    ] {
        let r = post(&app, PRODUCTS, t, body.clone()).await;
        let problem = assert_problem(r, 422).await;
        assert!(
            problem_fields(&problem).contains(&field.to_owned()),
            "{body} -> {problem}"
        );
    }
    let dup = assert_problem(post(&app, PRODUCTS, t, active("sku-1", "Other", 100)).await, 409).await;
    assert_eq!(problem_fields(&dup), ["sku"]);
    let dup_slug = json!({"sku": "SKU-3", "name": "Other", "slug": "first", "price": {"amount": 100}});
    let dup = assert_problem(post(&app, PRODUCTS, t, dup_slug).await, 409).await;
    assert_eq!(problem_fields(&dup), ["slug"]);
    // A generated slug that collides is made unique with the SKU instead of failing.
    let second = create_product(&app, t, active("SKU-4", "First", 100)).await;
    assert_eq!(second["slug"], "first-sku-4");

    let all = json_of(app.get_auth(&format!("{PRODUCTS}?status=all"), t).await, 200).await;
    assert_eq!(all["total"], 2, "nothing half-written");
    let r = send(
        &app,
        reqwest::Method::PATCH,
        &format!("{PRODUCTS}/{}", second["id"].as_str().expect("id")),
        Some(t),
        Some(json!({"price": {"amount": 0}})),
    )
    .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["price.amount"]);
    assert_problem(get(&app, &format!("{PRODUCTS}/not-a-uuid")).await, 404).await;
}

async fn only_staff_write_and_only_staff_see_unpublished_products(app: TestApp) {
    let admin = app.admin().await;
    let shopper = app.signed_up("shopper@example.com").await;
    let body = json!({"sku": "DRAFT-1", "name": "Secret", "price": {"amount": 100}});
    assert_problem(post(&app, PRODUCTS, &shopper.access, body.clone()).await, 403).await;
    assert_problem(
        send(&app, reqwest::Method::POST, PRODUCTS, None, Some(body.clone())).await,
        401,
    )
    .await;
    assert_problem(post(&app, CATEGORIES, &shopper.access, json!({"name": "X"})).await, 403).await;

    // A catalog manager may write.
    let manager = app.signed_up("manager@example.com").await;
    let r = app
        .put_json(
            &app.url(&format!("/api/v1/users/{}/role", manager.id)),
            &admin.access,
            json!({"role": "catalog_manager"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = app.access_token(&manager.email).await;
    let draft = create_product(&app, &token, body).await;
    assert_eq!(draft["status"], "draft");
    let url = format!("{PRODUCTS}/{}", draft["id"].as_str().expect("id"));
    assert_problem(get(&app, &url).await, 404).await;
    assert_problem(app.get_auth(&url, &shopper.access).await, 404).await;
    let staff_read = app.get_auth(&url, &token).await;
    assert_eq!(staff_read.status(), 200);
    assert_eq!(staff_read.headers()["cache-control"], "private, no-cache");
    // The staff read left the draft in the cache, kept as sent: it is still nobody else's to see.
    assert_problem(get(&app, &url).await, 404).await;
    assert_eq!(list(&app, "").await["total"], 0);
    let drafts = json_of(app.get_auth(&format!("{PRODUCTS}?status=draft"), &token).await, 200).await;
    assert_eq!(drafts["total"], 1);
    assert_problem(
        app.get_auth(&format!("{PRODUCTS}?status=draft"), &shopper.access).await,
        403,
    )
    .await;
    // Publishing makes it visible.
    let r = patch(&app, &url, &token, json!({"status": "active"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(get(&app, &url).await.status(), 200);
    assert_problem(send(&app, reqwest::Method::GET, &url, Some("garbage"), None).await, 401).await;
}

/// Two departments, a nested category, brands, attributes and prices to filter on.
async fn small_catalog(app: &TestApp, token: &str) -> (String, String, String) {
    let clothing = category(app, token, "Clothing", None).await;
    let shirts = category(app, token, "Shirts", Some(&clothing)).await;
    let home = category(app, token, "Home", None).await;
    for (sku, name, amount, brand, cat, color) in [
        ("C-1", "Red Shirt", 1500, "Acme", &shirts, "red"),
        ("C-2", "Blue Shirt", 2500, "Acme", &shirts, "blue"),
        ("C-3", "Green Jacket", 9900, "Zed", &clothing, "green"),
        ("H-1", "Red Lamp", 4500, "Lumen", &home, "red"),
        ("H-2", "Oak Table", 45000, "Zed", &home, "brown"),
    ] {
        create_product(
            app,
            token,
            json!({"sku": sku, "name": name, "price": {"amount": amount}, "brand": brand, "category_id": cat,
                   "attributes": {"color": color}, "status": "active"}),
        )
        .await;
    }
    (clothing, shirts, home)
}

async fn listing_filters_sorts_and_pages_with_opaque_cursors(app: TestApp) {
    let admin = app.admin().await;
    let (clothing, shirts, home) = small_catalog(&app, &admin.access).await;

    assert_eq!(ids(&list(&app, "").await), ["H-2", "H-1", "C-3", "C-2", "C-1"]);
    assert_eq!(list(&app, "").await["total"], 5);
    let mut in_clothing = ids(&list(&app, &format!("category={clothing}")).await);
    in_clothing.sort();
    assert_eq!(in_clothing, ["C-1", "C-2", "C-3"], "descendants included");
    assert_eq!(
        ids(&list(&app, &format!("category={shirts}&sort=price_asc")).await),
        ["C-1", "C-2"]
    );
    assert_eq!(
        ids(&list(&app, "brand=Zed&brand=Lumen&sort=price_asc").await),
        ["H-1", "C-3", "H-2"]
    );
    assert_eq!(
        ids(&list(&app, "min_price=2000&max_price=10000&sort=price_asc").await),
        ["C-2", "H-1", "C-3"]
    );
    assert_eq!(ids(&list(&app, "attr=color:red&sort=price_asc").await), ["C-1", "H-1"]);
    assert_eq!(
        ids(&list(&app, "attr.color=red&attr.color=blue&sort=price_asc").await),
        ["C-1", "C-2", "H-1"]
    );
    assert_eq!(
        ids(&list(&app, &format!("attr=color:red&category={home}")).await),
        ["H-1"]
    );
    assert_eq!(list(&app, "in_stock=true").await["total"], 0);
    assert_eq!(ids(&list(&app, "sort=price_desc&limit=2").await), ["H-2", "C-3"]);

    // Walk every sort order two at a time: each product exactly once, in order.
    for (sort, expected) in [
        ("newest", vec!["H-2", "H-1", "C-3", "C-2", "C-1"]),
        ("price_asc", vec!["C-1", "C-2", "H-1", "C-3", "H-2"]),
        ("price_desc", vec!["H-2", "C-3", "H-1", "C-2", "C-1"]),
        ("rating", vec!["H-2", "H-1", "C-3", "C-2", "C-1"]),
    ] {
        let mut seen = Vec::new();
        let mut query = format!("sort={sort}&limit=2");
        loop {
            let page = list(&app, &query).await;
            assert_eq!(page["total"], 5);
            seen.extend(ids(&page));
            match page["next"].as_str() {
                Some(next) => query = format!("sort={sort}&limit=2&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{sort}");
    }

    let page = list(&app, "sort=price_asc&limit=2").await;
    let cursor = page["next"].as_str().expect("next").to_owned();
    for query in [
        "cursor=garbage".to_owned(),
        "cursor=AAAA".to_owned(),
        format!("sort=price_desc&cursor={cursor}"),
    ] {
        let p = assert_problem(get(&app, &format!("{PRODUCTS}?{query}")).await, 422).await;
        assert_eq!(problem_fields(&p), ["cursor"], "{query}");
    }
    for (query, field) in [
        ("sort=relevance", "sort"),
        ("min_price=-1", "min_price"),
        ("category=nope", "category"),
        ("limit=500", "limit"),
        ("attr=color", "attr"),
        ("min_rating=9", "min_rating"),
        ("bogus=1", "bogus"),
    ] {
        let p = assert_problem(get(&app, &format!("{PRODUCTS}?{query}")).await, 422).await;
        assert_eq!(problem_fields(&p), [field], "{query}");
    }
    // List pages carry ETags too.
    let r = get(&app, PRODUCTS).await;
    let etag = r.headers()["etag"].to_str().expect("etag").to_owned();
    let r = app
        .client
        .get(app.url(PRODUCTS))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 304);
}

async fn facets_count_the_current_filter(app: TestApp) {
    let admin = app.admin().await;
    let (clothing, _, home) = small_catalog(&app, &admin.access).await;
    let f = json_of(get(&app, &format!("{PRODUCTS}/facets")).await, 200).await;
    assert_eq!(f["total"], 5);
    let brand = |f: &Value, name: &str| {
        f["brands"]
            .as_array()
            .expect("brands")
            .iter()
            .find(|b| b["brand"] == name)
            .map(|b| b["count"].clone())
    };
    assert_eq!(brand(&f, "Acme"), Some(json!(2)));
    assert_eq!(brand(&f, "Zed"), Some(json!(2)));
    let cat_count = |f: &Value, id: &str| {
        f["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .find(|c| c["category_id"] == id)
            .map(|c| c["count"].clone())
    };
    assert_eq!(cat_count(&f, &home), Some(json!(2)));
    assert_eq!(cat_count(&f, &clothing), Some(json!(1)));
    let buckets: i64 = f["price_buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(buckets, 5);
    assert_eq!(
        f["price_buckets"][0],
        json!({"min": {"amount": 0, "currency": "EUR"}, "max": {"amount": 2500, "currency": "EUR"}, "count": 1})
    );

    let zed = json_of(get(&app, &format!("{PRODUCTS}/facets?brand=Zed")).await, 200).await;
    assert_eq!(zed["total"], 2);
    assert_eq!(brand(&zed, "Acme"), None);
}

async fn search_ranks_name_matches_first_and_survives_hostile_queries(app: TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    create_product(
        &app,
        t,
        json!({"sku": "D-1", "name": "Garden Hose", "description": "Pairs well with a wireless speaker.",
               "price": {"amount": 100}, "status": "active"}),
    )
    .await;
    create_product(
        &app,
        t,
        json!({"sku": "N-1", "name": "Wireless Speaker", "description": "Loud.", "brand": "Acme",
               "price": {"amount": 200}, "status": "active"}),
    )
    .await;
    create_product(
        &app,
        t,
        json!({"sku": "A-1", "name": "Desk Lamp", "attributes": {"connectivity": "wireless"},
               "price": {"amount": 300}, "status": "active"}),
    )
    .await;
    create_product(
        &app,
        t,
        json!({"sku": "X-1", "name": "Wireless Draft", "price": {"amount": 300}}),
    )
    .await;

    let page = json_of(get(&app, "/api/v1/catalog/search?q=wireless").await, 200).await;
    let found = ids(&page);
    assert_eq!(found.len(), 3, "drafts are not found: {found:?}");
    assert_eq!(found[0], "N-1", "a name match ranks first");
    assert_eq!(page["total"], 3);
    // Words are ANDed; the last one is a prefix.
    assert_eq!(
        ids(&json_of(get(&app, "/api/v1/catalog/search?q=wireless%20spea").await, 200).await)[0],
        "N-1"
    );
    assert_eq!(
        ids(&json_of(get(&app, "/api/v1/catalog/search?q=acme").await, 200).await),
        ["N-1"]
    );
    // Search takes the list's filters, and relevance pages with a cursor.
    let cheap = json_of(get(&app, "/api/v1/catalog/search?q=wireless&max_price=150").await, 200).await;
    assert_eq!(ids(&cheap), ["D-1"]);
    let first = json_of(get(&app, "/api/v1/catalog/search?q=wireless&limit=2").await, 200).await;
    let next = first["next"].as_str().expect("next");
    let second = json_of(
        get(
            &app,
            &format!("/api/v1/catalog/search?q=wireless&limit=2&cursor={next}"),
        )
        .await,
        200,
    )
    .await;
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    assert_eq!(all, ["A-1", "D-1", "N-1"]);
    assert_eq!(ids(&list(&app, "q=speaker&sort=price_asc").await), ["D-1", "N-1"]);

    // Operators, quotes and SQL are reduced to words: never a 500.
    for q in [
        "wireless\" OR 1=1 --",
        "'; DROP TABLE products; --",
        "NEAR(wireless speaker)",
        "wireless AND NOT lamp",
        "name:wireless*",
        "wire* ^speaker",
        "(((",
        "%27%20OR%20%271%27%3D%271",
        "ü ß 日本",
    ] {
        let r = get(&app, &format!("/api/v1/catalog/search?q={}", encode(q))).await;
        assert!(matches!(r.status().as_u16(), 200 | 422), "{q}: {}", r.status());
    }
    for q in ["\"*()", "   ", &"a".repeat(201)] {
        let r = get(&app, &format!("/api/v1/catalog/search?q={}", encode(q))).await;
        assert_eq!(problem_fields(&assert_problem(r, 422).await), ["q"], "{q}");
    }
    assert_eq!(
        problem_fields(&assert_problem(get(&app, "/api/v1/catalog/search").await, 422).await),
        ["q"]
    );
    // Products still there after all that.
    assert_eq!(list(&app, "").await["total"], 3);
}

async fn suggest_completes_names_by_prefix(app: TestApp) {
    let admin = app.admin().await;
    for (sku, name) in [
        ("S-1", "Wireless Speaker"),
        ("S-2", "Wired Headphones"),
        ("S-3", "Garden Hose"),
    ] {
        create_product(&app, &admin.access, active(sku, name, 100)).await;
    }
    let s = json_of(get(&app, "/api/v1/catalog/suggest?q=wir").await, 200).await;
    let mut names: Vec<&str> = s["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    names.sort();
    assert_eq!(names, ["Wired Headphones", "Wireless Speaker"]);
    let s = json_of(get(&app, "/api/v1/catalog/suggest?q=garden%20h").await, 200).await;
    assert_eq!(s["items"][0]["name"], "Garden Hose");
    assert_eq!(s["items"][0]["slug"], "garden-hose");
    let none = json_of(get(&app, "/api/v1/catalog/suggest?q=zzz").await, 200).await;
    assert_eq!(none["items"], json!([]));
    assert_eq!(
        problem_fields(&assert_problem(get(&app, "/api/v1/catalog/suggest?q=%22*").await, 422).await),
        ["q"]
    );
    assert_problem(get(&app, "/api/v1/catalog/suggest?q=a&limit=50").await, 422).await;
}

async fn categories_tree_breadcrumbs_cycles_and_deletion(app: TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    let root = category(&app, t, "Electronics", None).await;
    let audio = category(&app, t, "Audio", Some(&root)).await;
    let headphones = category(&app, t, "Headphones", Some(&audio)).await;
    let other = category(&app, t, "Garden", None).await;
    create_product(&app,
        t,
        json!({"sku": "HP-1", "name": "Headphones One", "price": {"amount": 100}, "category_id": headphones, "status": "active"}),
    )
    .await;

    let tree = json_of(get(&app, CATEGORIES).await, 200).await;
    let roots = tree["roots"].as_array().expect("roots");
    assert_eq!(roots.len(), 2);
    let electronics = roots.iter().find(|r| r["name"] == "Electronics").expect("electronics");
    assert_eq!(electronics["children"][0]["children"][0]["name"], "Headphones");
    assert_eq!(electronics["total_product_count"], 1);
    assert_eq!(electronics["product_count"], 0);

    let r = get(&app, &format!("{CATEGORIES}/{headphones}")).await;
    assert_eq!(etag_of(&r), "\"v1\"");
    let detail = json_of(r, 200).await;
    let stale = app
        .client
        .patch(app.url(&format!("{CATEGORIES}/{headphones}")))
        .bearer_auth(t)
        .header("if-match", "\"v9\"")
        .json(&json!({"name": "Phones"}))
        .send()
        .await
        .expect("request");
    assert_problem(stale, 412).await;
    let crumbs: Vec<&str> = detail["breadcrumbs"]
        .as_array()
        .expect("crumbs")
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert_eq!(crumbs, ["Electronics", "Audio", "Headphones"]);
    assert_eq!(detail["product_count"], 1);

    // Cycles are refused.
    for parent in [&headphones, &root] {
        let r = patch(&app, &format!("{CATEGORIES}/{root}"), t, json!({"parent_id": parent})).await;
        assert_eq!(problem_fields(&assert_problem(r, 409).await), ["parent_id"]);
    }
    let r = patch(
        &app,
        &format!("{CATEGORIES}/{root}"),
        t,
        json!({"parent_id": uuid::Uuid::now_v7()}),
    )
    .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["parent_id"]);
    let r = post(&app, CATEGORIES, t, json!({"name": "Audio Two", "slug": "audio"})).await;
    assert_problem(r, 409).await;
    // Moving is fine otherwise; breadcrumbs follow.
    let moved = json_of(
        patch(&app, &format!("{CATEGORIES}/{audio}"), t, json!({"parent_id": other})).await,
        200,
    )
    .await;
    assert_eq!(moved["breadcrumbs"][0]["name"], "Garden");
    let moved = json_of(
        patch(&app, &format!("{CATEGORIES}/{audio}"), t, json!({"parent_id": null})).await,
        200,
    )
    .await;
    assert_eq!(moved["breadcrumbs"].as_array().expect("crumbs").len(), 1);

    // Non-empty categories are not deleted unless their contents go somewhere.
    let del = |id: &str, q: &str| format!("{CATEGORIES}/{id}{q}");
    assert_problem(
        send(&app, reqwest::Method::DELETE, &del(&headphones, ""), Some(t), None).await,
        409,
    )
    .await;
    assert_problem(
        send(&app, reqwest::Method::DELETE, &del(&audio, ""), Some(t), None).await,
        409,
    )
    .await;
    let r = send(
        &app,
        reqwest::Method::DELETE,
        &del(&headphones, &format!("?reassign_to={headphones}")),
        Some(t),
        None,
    )
    .await;
    assert_eq!(problem_fields(&assert_problem(r, 422).await), ["reassign_to"]);
    let r = send(
        &app,
        reqwest::Method::DELETE,
        &del(&headphones, &format!("?reassign_to={other}")),
        Some(t),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let moved = list(&app, &format!("category={other}")).await;
    assert_eq!(ids(&moved), ["HP-1"]);
    assert_eq!(moved["items"][0]["category_id"], other.as_str());
    let r = send(&app, reqwest::Method::DELETE, &del(&audio, ""), Some(t), None).await;
    assert_eq!(r.status(), 204);
    assert_problem(get(&app, &format!("{CATEGORIES}/{audio}")).await, 404).await;
}

async fn reviews_keep_aggregates_current_and_can_be_moderated(app: TestApp) {
    let admin = app.admin().await;
    let p = create_product(&app, &admin.access, active("R-1", "Reviewed Thing", 1000)).await;
    let id = p["id"].as_str().expect("id").to_owned();
    let reviews = format!("{PRODUCTS}/{id}/reviews");
    let ann = app.signed_up("ann@example.com").await;
    let bob = app.signed_up("bob@example.com").await;

    let r = post(
        &app,
        &reviews,
        &ann.access,
        json!({"rating": 5, "title": "Great", "body": "Love it"}),
    )
    .await;
    let ann_review = json_of(r, 201).await;
    assert_eq!(ann_review["verified_purchase"], false);
    let r = post(&app, &reviews, &ann.access, json!({"rating": 4, "title": "Again"})).await;
    assert_problem(r, 409).await;
    for (body, field) in [
        (json!({"rating": 6, "title": "x"}), "rating"),
        (json!({"rating": 0, "title": "x"}), "rating"),
        (json!({"rating": 3, "title": ""}), "title"),
    ] {
        let r = post(&app, &reviews, &bob.access, body).await;
        assert_eq!(problem_fields(&assert_problem(r, 422).await), [field]);
    }
    let r = post(&app, &reviews, &bob.access, json!({"rating": 2, "title": "Meh"})).await;
    let bob_review = json_of(r, 201).await;

    let product_now = json_of(get(&app, &format!("{PRODUCTS}/{id}")).await, 200).await;
    assert_eq!(product_now["rating"]["count"], 2);
    assert_eq!(product_now["rating"]["average"], 3.5);
    assert_eq!(
        product_now["rating"]["histogram"],
        json!({"1": 0, "2": 1, "3": 0, "4": 0, "5": 1})
    );
    assert_eq!(list(&app, "min_rating=3.5").await["total"], 1);
    assert_eq!(list(&app, "min_rating=4").await["total"], 0);

    let bob_url = format!("{reviews}/{}", bob_review["id"].as_str().expect("id"));
    assert_problem(patch(&app, &bob_url, &ann.access, json!({"rating": 1})).await, 403).await;
    let edited = json_of(patch(&app, &bob_url, &bob.access, json!({"rating": 4})).await, 200).await;
    assert_eq!(edited["rating"], 4);
    let product_now = json_of(get(&app, &format!("{PRODUCTS}/{id}")).await, 200).await;
    assert_eq!(product_now["rating"]["average"], 4.5);

    // Moderation hides a review from the public and from the aggregates.
    let moderation = format!("{bob_url}/moderation");
    assert_problem(
        send(
            &app,
            reqwest::Method::PUT,
            &moderation,
            Some(&ann.access),
            Some(json!({"status": "hidden"})),
        )
        .await,
        403,
    )
    .await;
    let hidden = send(
        &app,
        reqwest::Method::PUT,
        &moderation,
        Some(&admin.access),
        Some(json!({"status": "hidden"})),
    )
    .await;
    assert_eq!(json_of(hidden, 200).await["status"], "hidden");
    let public = json_of(get(&app, &reviews).await, 200).await;
    assert_eq!(public["items"].as_array().expect("items").len(), 1);
    let product_now = json_of(get(&app, &format!("{PRODUCTS}/{id}")).await, 200).await;
    assert_eq!(product_now["rating"]["count"], 1);
    assert_eq!(product_now["rating"]["average"], 5.0);
    let all = json_of(app.get_auth(&reviews, &admin.access).await, 200).await;
    assert_eq!(all["items"].as_array().expect("items").len(), 2);

    let ann_url = format!("{reviews}/{}", ann_review["id"].as_str().expect("id"));
    assert_problem(
        send(&app, reqwest::Method::DELETE, &ann_url, Some(&bob.access), None).await,
        403,
    )
    .await;
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &ann_url, Some(&ann.access), None)
            .await
            .status(),
        204
    );
    let product_now = json_of(get(&app, &format!("{PRODUCTS}/{id}")).await, 200).await;
    assert_eq!(product_now["rating"]["count"], 0);
    assert_eq!(product_now["rating"]["average"], 0.0);
    // Ann may review again once her review is gone.
    let r = post(
        &app,
        &reviews,
        &ann.access,
        json!({"rating": 3, "title": "Second thoughts"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = post(
        &app,
        &format!("{PRODUCTS}/{}/reviews", uuid::Uuid::now_v7()),
        &ann.access,
        json!({"rating": 3, "title": "x"}),
    )
    .await;
    assert_problem(r, 404).await;
}

async fn related_products_share_category_or_attributes(app: TestApp) {
    let admin = app.admin().await;
    let (_, shirts, _) = small_catalog(&app, &admin.access).await;
    let all = list(&app, "sort=price_asc").await;
    let red_shirt = all["items"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(all["items"][0]["sku"], "C-1");
    let related = json_of(get(&app, &format!("{PRODUCTS}/{red_shirt}/related")).await, 200).await;
    let skus = ids(&related);
    assert_eq!(skus[0], "C-2", "same category first: {skus:?}");
    assert!(skus.contains(&"H-1".to_owned()), "shares color=red: {skus:?}");
    assert!(!skus.contains(&"C-1".to_owned()), "never itself");
    let _ = shirts;
    let one = json_of(get(&app, &format!("{PRODUCTS}/{red_shirt}/related?limit=1")).await, 200).await;
    assert_eq!(ids(&one), ["C-2"]);
}

async fn outbox_types(app: &TestApp) -> Vec<String> {
    let q = "SELECT event_type FROM event_outbox ORDER BY id";
    match &app.dbs[&emporium::app::Service::Catalog] {
        platform::db::Db::Sqlite(p) => sqlx::query_scalar(q).fetch_all(p).await.expect("outbox"),
        platform::db::Db::Postgres(p) => sqlx::query_scalar(q).fetch_all(p).await.expect("outbox"),
    }
}

async fn writes_enqueue_events_in_the_outbox(app: TestApp) {
    let admin = app.admin().await;
    let p = create_product(&app, &admin.access, active("EV-1", "Evented", 1000)).await;
    let url = format!("{PRODUCTS}/{}", p["id"].as_str().expect("id"));
    json_of(patch(&app, &url, &admin.access, json!({"name": "Renamed"})).await, 200).await;
    json_of(
        patch(&app, &url, &admin.access, json!({"price": {"amount": 900}})).await,
        200,
    )
    .await;
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &url, Some(&admin.access), None)
            .await
            .status(),
        204
    );
    // A refused write enqueues nothing.
    assert_problem(
        post(&app, PRODUCTS, &admin.access, active("EV-1", "Again", 0)).await,
        422,
    )
    .await;
    let types = outbox_types(&app).await;
    assert_eq!(
        types,
        [
            "catalog.product.created",
            "catalog.product.updated",
            "catalog.product.updated",
            "catalog.price.changed",
            "catalog.product.deleted",
        ]
    );
}

async fn stock_from_inventory_reaches_products_and_the_in_stock_filter(app: TestApp) {
    let admin = app.admin().await;
    let p = create_product(&app, &admin.access, active("STOCK-1", "Stocked", 1000)).await;
    create_product(&app, &admin.access, active("STOCK-2", "Not stocked", 1000)).await;
    let url = format!("{PRODUCTS}/{}", p["id"].as_str().expect("id"));
    // Inventory creates its stock row from catalog.product.created; then a restock flows back.
    let mut adjusted = false;
    for _ in 0..300 {
        if adjust(&app, &admin.access, "STOCK-1", "restock", 5).await.status() == 201 {
            adjusted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(adjusted, "inventory never saw the product");
    let mut seen = Value::Null;
    for _ in 0..300 {
        seen = json_of(get(&app, &url).await, 200).await;
        if seen["available"] == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen["available"], 5, "{seen}");
    assert_eq!(seen["in_stock"], true);
    assert_eq!(seen["version"], 1, "stock is not an editorial change");
    let page = list(&app, "in_stock=true").await;
    assert_eq!(ids(&page), ["STOCK-1"]);
    assert_eq!(page["items"][0]["available"], 5);

    // A move within stock reaches the cached page too, within the page lag (a second here).
    assert_eq!(adjust(&app, &admin.access, "STOCK-1", "damage", 1).await.status(), 201);
    eventually("the page shows the new count", async || {
        list(&app, "in_stock=true").await["items"][0]["available"] == 4
    })
    .await;
}

async fn adjust(app: &TestApp, token: &str, sku: &str, kind: &str, quantity: i64) -> reqwest::Response {
    let path = format!("/api/v1/inventory/{sku}/adjustments");
    post(
        app,
        &path,
        token,
        json!({"kind": kind, "quantity": quantity, "reason": "count"}),
    )
    .await
}

/// With a minute of `EMPORIUM_CATALOG_PAGE_STOCK_LAG_MS`, a move within stock shows on the
/// product at once and leaves cached pages as they are; running out shows everywhere at once.
mod page_stock_lag {
    use super::{TestApp, a_stock_move_within_stock_keeps_pages_cached_and_running_out_does_not};
    use test_support::Backend;

    test_support::on_both_backends!(super::spawn_with_a_minute_of_lag => a_stock_move_within_stock_keeps_pages_cached_and_running_out_does_not);

    async fn spawn_with_a_minute_of_lag(backend: Backend) -> Option<TestApp> {
        test_support::app::spawn_app_with(backend, &[("EMPORIUM_CATALOG_PAGE_STOCK_LAG_MS", "60000")], true).await
    }
}

async fn a_stock_move_within_stock_keeps_pages_cached_and_running_out_does_not(app: TestApp) {
    let admin = app.admin().await;
    let p = create_product(&app, &admin.access, active("LAG-1", "Lagging", 1000)).await;
    let url = format!("{PRODUCTS}/{}", p["id"].as_str().expect("id"));
    eventually("inventory sees the product", async || {
        adjust(&app, &admin.access, "LAG-1", "restock", 5).await.status() == 201
    })
    .await;
    let product_shows = async |n: i64| json_of(get(&app, &url).await, 200).await["available"] == n;
    eventually("the restock reaches the product", async || product_shows(5).await).await;
    let page = list(&app, "in_stock=true").await;
    assert_eq!(
        (ids(&page), page["items"][0]["available"].clone()),
        (vec!["LAG-1".to_owned()], json!(5))
    );

    assert_eq!(adjust(&app, &admin.access, "LAG-1", "damage", 2).await.status(), 201);
    eventually("the product's own page follows at once", async || {
        product_shows(3).await
    })
    .await;
    let page = list(&app, "in_stock=true").await;
    assert_eq!(
        page["items"][0]["available"], 5,
        "the cached page keeps its count within the lag: {page}"
    );

    assert_eq!(adjust(&app, &admin.access, "LAG-1", "damage", 3).await.status(), 201);
    eventually("a product that ran out leaves the in-stock pages at once", async || {
        ids(&list(&app, "in_stock=true").await).is_empty()
    })
    .await;
    eventually("the product shows it ran out", async || product_shows(0).await).await;
    let all = list(&app, "limit=100").await;
    let listed = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["sku"] == "LAG-1")
        .cloned();
    assert_eq!(
        listed.map(|p| (p["available"].clone(), p["in_stock"].clone())),
        Some((json!(0), json!(false)))
    );
}
