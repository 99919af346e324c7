//! The catalog below HTTP, on SQLite and (when reachable) PostgreSQL: seeding with its outbox
//! events, the stock-level consumer (directly and through the in-process bus), and search and
//! listing over a seeded catalog.

use std::sync::Arc;
use std::time::Duration;

use catalog::domain::{ListCursor, ProductSort, SearchTerms};
use catalog::store::{CatalogStore, ProductFilter, ProductQuery};
use catalog::{Catalog, CatalogConfig};
use contracts::events::Event as _;
use contracts::events::catalog::ProductCreated;
use contracts::events::inventory::StockChanged;
use platform::context::ContextDeps;
use platform::db::Db;
use platform::events::{BusSettings, Event, EventHandler, Events};
use serde_json::json;
use test_support::TestDb;

/// SQLite, and PostgreSQL when reachable (skipped otherwise, outside CI).
async fn databases() -> Vec<(&'static str, TestDb)> {
    let sqlite = TestDb::sqlite("catalog").await;
    if std::env::var("CATALOG_LOAD_KEEP").is_ok()
        && let Some(dir) = sqlite.dir()
    {
        eprintln!("keeping {}", dir.display());
    }
    let mut out = vec![("sqlite", sqlite)];
    if let Some(postgres) = TestDb::postgres().await {
        out.push(("postgres", postgres));
    }
    out
}

async fn start(db: &Db) -> Catalog {
    let deps = ContextDeps {
        events: Events::in_process(BusSettings::default()),
        cache: platform::cache::Cache::in_process(16 << 20),
        keys: platform::auth::KeySet::new(),
        peers: platform::client::Peers::none(),
        faults: platform::faults::Faults::disabled(),
    };
    platform::context::Launcher::new(deps, true)
        .launch::<Catalog>(db, CatalogConfig::default())
        .await
        .expect("start")
}

async fn outbox_count(db: &Db, event_type: &str) -> i64 {
    let q = "SELECT COUNT(*) FROM event_outbox WHERE event_type = $1";
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(q)
            .bind(event_type)
            .fetch_one(p)
            .await
            .expect("count"),
        Db::Postgres(p) => sqlx::query_scalar(q)
            .bind(event_type)
            .fetch_one(p)
            .await
            .expect("count"),
    }
}

fn active() -> ProductFilter {
    ProductFilter {
        statuses: vec![catalog::domain::ProductStatus::Active],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_search_listing_and_stock_levels_on_both_backends() {
    for (backend, t) in databases().await {
        let db = &t.db;
        let catalog = start(db).await;
        let store: Arc<dyn CatalogStore> = catalog.service().store().clone();

        // Seeding is deterministic, batched, and writes one created event per product.
        let calls = std::sync::Mutex::new(Vec::new());
        let report = catalog::seed::seed_products(&catalog, 2_500, 7, &|done, total| {
            calls.lock().expect("lock").push((done, total))
        })
        .await
        .expect("seed");
        assert_eq!(report.products, 2_500);
        assert!(report.categories > 60, "{backend}: {report:?}");
        assert!(report.reviews > 2_500, "{backend}: {report:?}");
        assert_eq!(calls.lock().expect("lock").last(), Some(&(2_500, 2_500)));
        assert_eq!(store.product_count().await.expect("count"), 2_500);
        assert_eq!(outbox_count(db, ProductCreated::TYPE).await, 2_500, "{backend}");
        assert!(
            catalog::seed::seed_demo_if_empty(&catalog)
                .await
                .expect("demo")
                .is_none(),
            "not empty"
        );

        // Aggregates written by the seeder agree with the reviews.
        let page = store
            .list_products(&ProductQuery {
                filter: active(),
                sort: ProductSort::Rating,
                after: None,
                limit: 5,
            })
            .await
            .expect("list");
        assert!(page[0].rating.count() > 0 && page[0].rating.average() >= page[4].rating.average());

        // Full-text search over the seeded names, brands and attributes.
        let terms = SearchTerms::parse("q", "acme cotton").expect("terms");
        let filter = ProductFilter {
            search: Some(terms.clone()),
            ..active()
        };
        let hits = store
            .list_products(&ProductQuery {
                filter: filter.clone(),
                sort: ProductSort::Relevance,
                after: None,
                limit: 10,
            })
            .await
            .expect("search");
        assert!(!hits.is_empty(), "{backend}");
        for p in &hits {
            let text = format!("{} {} {:?}", p.name, p.description, p.attributes).to_lowercase();
            assert!(
                text.contains("acme") && text.contains("cotton"),
                "{backend}: {}",
                p.name
            );
        }
        assert!(store.count_products(&filter).await.expect("count") >= hits.len() as i64);
        let suggestions = store
            .suggest(&SearchTerms::parse("q", "acme ess").expect("terms"), 10)
            .await
            .expect("suggest");
        assert!(
            suggestions.iter().all(|s| s.name.starts_with("Acme Essential")),
            "{backend}: {suggestions:?}"
        );
        let facets = store.facets(&active()).await.expect("facets");
        assert_eq!(
            facets.price_buckets.iter().sum::<i64>(),
            store.count_products(&active()).await.expect("count")
        );

        // Stock: applied by SKU, idempotent, older events ignored, unknown SKUs skipped.
        let product = hits[0].clone();
        let handler = catalog::stock::StockLevels::new(catalog.service());
        let older = Event::new(
            "inventory",
            StockChanged::TYPE,
            &product.sku,
            json!({"sku": product.sku, "available": 1, "on_hand": 1, "reserved": 0}),
        );
        let newer = Event::new(
            "inventory",
            StockChanged::TYPE,
            &product.sku,
            json!({"sku": product.sku.to_lowercase(), "available": 7, "on_hand": 9, "reserved": 2}),
        );
        handler.handle(&newer).await.expect("handle");
        handler.handle(&newer).await.expect("replay");
        handler.handle(&older).await.expect("late");
        let now = store.product(product.id).await.expect("get").expect("some");
        assert_eq!(now.available, 7, "{backend}");
        assert_eq!(
            now.version, product.version,
            "{backend}: stock is not an editorial change"
        );
        let unknown = Event::new(
            "inventory",
            StockChanged::TYPE,
            "X",
            json!({"sku": "NOPE-1", "available": 3, "on_hand": 3, "reserved": 0}),
        );
        handler.handle(&unknown).await.expect("unknown sku is ignored");
        let garbage = Event::new("inventory", StockChanged::TYPE, "X", json!({"nope": true}));
        assert!(handler.handle(&garbage).await.expect_err("bad data").is_permanent());
        let in_stock = ProductFilter {
            in_stock: true,
            ..active()
        };
        assert_eq!(store.count_products(&in_stock).await.expect("count"), 1, "{backend}");

        // The search index follows edits of the searched fields, and a stock change leaves the
        // product findable by them.
        assert!(
            search_ids(&*store, "acme cotton").await.contains(&product.id),
            "{backend}"
        );
        let mut renamed = store.product(product.id).await.expect("get").expect("some");
        renamed.name = "Quokkaline Throw".into();
        renamed.brand = Some("Wombatex".into());
        renamed.description = "Loomed from zephyrwool.".into();
        let renamed = store.update_product(&renamed, None, &[]).await.expect("rename");
        for words in ["quokkaline", "wombatex", "zephyrwool"] {
            assert_eq!(search_ids(&*store, words).await, vec![product.id], "{backend}: {words}");
        }
        assert!(
            !search_ids(&*store, "acme cotton").await.contains(&product.id),
            "{backend}: the old words stay found"
        );
        let restocked = Event::new(
            "inventory",
            StockChanged::TYPE,
            &renamed.sku,
            json!({"sku": renamed.sku, "available": 5, "on_hand": 5, "reserved": 0}),
        );
        handler.handle(&restocked).await.expect("restock");
        assert_eq!(
            store.product(product.id).await.expect("get").expect("some").available,
            5
        );
        assert_eq!(
            search_ids(&*store, "quokkaline").await,
            vec![product.id],
            "{backend}: after a stock change"
        );

        // Through the bus: an event in the outbox reaches the stock-levels consumer.
        let second = hits.get(1).unwrap_or(&hits[0]).clone();
        let via_bus = Event::new(
            "inventory",
            StockChanged::TYPE,
            &second.sku,
            json!({"sku": second.sku, "available": 42, "on_hand": 42, "reserved": 0}),
        );
        match db {
            Db::Sqlite(p) => {
                let mut conn = p.acquire().await.expect("conn");
                platform::events::enqueue(&mut *conn, &via_bus).await.expect("enqueue");
            }
            Db::Postgres(p) => {
                let mut conn = p.acquire().await.expect("conn");
                platform::events::enqueue(&mut *conn, &via_bus).await.expect("enqueue");
            }
        }
        let mut delivered = false;
        for _ in 0..100 {
            if store.product(second.id).await.expect("get").expect("some").available == 42 {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(delivered, "{backend}: the stock event was not consumed");

        // Lookups by SKU find live products; purchases are recorded once per user and product.
        let found = store
            .products_by_skus(&[second.sku.clone(), "NO-SUCH-SKU".into()])
            .await
            .expect("by sku");
        assert_eq!(found.len(), 1, "{backend}");
        let buyer = uuid::Uuid::now_v7();
        let skus = [second.sku.clone()];
        assert_eq!(
            store.record_purchases(buyer, &skus).await.expect("record"),
            1,
            "{backend}"
        );
        assert_eq!(
            store.record_purchases(buyer, &skus).await.expect("again"),
            0,
            "{backend}"
        );
        // A review is verified when its author bought the product, whoever wrote first.
        let now = platform::clock::now();
        assert!(
            store
                .insert_review(&review(buyer, second.id), now)
                .await
                .expect("review"),
            "{backend}: the buyer's review"
        );
        assert!(
            !store
                .insert_review(&review(uuid::Uuid::now_v7(), second.id), now)
                .await
                .expect("review"),
            "{backend}: a stranger's review"
        );
        // A purchase recorded while the buyer's review is being written is never missed: each
        // transaction locks the product, so the later one sees the earlier.
        for round in 0..20 {
            let buyer = uuid::Uuid::now_v7();
            let written = review(buyer, second.id);
            let (purchase, inserted) =
                tokio::join!(store.record_purchases(buyer, &skus), store.insert_review(&written, now));
            purchase.expect("record");
            inserted.expect("review");
            let stored = store.review(written.id).await.expect("read").expect("stored");
            assert!(
                stored.verified_purchase,
                "{backend}, round {round}: a review written as the purchase was recorded stayed unverified"
            );
        }
        db.close().await;
    }
}

fn review(author: uuid::Uuid, product: catalog::domain::ProductId) -> catalog::store::Review {
    let now = platform::clock::now();
    catalog::store::Review {
        id: catalog::domain::ReviewId::new(),
        product_id: product,
        user_id: author,
        rating: 4,
        title: "Does the job".into(),
        body: String::new(),
        status: catalog::domain::ReviewStatus::Visible,
        verified_purchase: false,
        author_erased: false,
        created_at: now,
        updated_at: now,
    }
}

/// The live products a relevance search for `words` finds (up to 100).
async fn search_ids(store: &dyn CatalogStore, words: &str) -> Vec<catalog::domain::ProductId> {
    let filter = ProductFilter {
        search: Some(SearchTerms::parse("q", words).expect("terms")),
        ..active()
    };
    let query = ProductQuery {
        filter,
        sort: ProductSort::Relevance,
        after: None,
        limit: 100,
    };
    store
        .list_products(&query)
        .await
        .expect("search")
        .iter()
        .map(|p| p.id)
        .collect()
}

/// Every page of `query` as `product_page` gives it (ids in order), and the total of the first.
async fn pages(store: &dyn CatalogStore, query: &ProductQuery) -> (Vec<uuid::Uuid>, i64) {
    let mut ids = Vec::new();
    let mut first_total = None;
    let mut after = None;
    loop {
        let page = ProductQuery { after, ..query.clone() };
        let (mut rows, total) = store.product_page(&page).await.expect("page");
        first_total.get_or_insert(total);
        let more = rows.len() > query.limit as usize;
        rows.truncate(query.limit as usize);
        ids.extend(rows.iter().map(|p| p.id.0));
        if !more {
            return (ids, first_total.unwrap_or(0));
        }
        after = Some(ListCursor {
            sort: ProductSort::Relevance,
            key: after.map_or(0, |a: ListCursor| a.key) + i64::from(query.limit),
            id: ids.last().copied().unwrap_or_default(),
        });
    }
}

/// Relevance search takes shortcuts: SQLite ranks only the full-text index's best matches before
/// reading product rows, PostgreSQL counts in the ranking pass. Both must give exactly what the
/// plain query gives (its ranking and `count_products`), also when the best-ranked matches are
/// hidden and the shortcut has to give up. A `min_rating_score` of 0 filters nothing out but
/// takes the plain path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relevance_shortcuts_page_exactly_like_the_plain_query_on_both_backends() {
    for (backend, t) in databases().await {
        let db = &t.db;
        let catalog = start(db).await;
        let store: Arc<dyn CatalogStore> = catalog.service().store().clone();
        catalog::seed::seed_products(&catalog, 5_000, 7, &|_, _| {})
            .await
            .expect("seed");
        // The broadest of a few seeded words: more matches than the shortcut's 256 candidates.
        let mut broadest = (0, String::new());
        for word in ["steel", "cotton", "wool", "oak", "linen", "leather", "ceramic", "glass"] {
            let filter = ProductFilter {
                search: Some(SearchTerms::parse("q", word).expect("terms")),
                ..active()
            };
            let n = store.count_products(&filter).await.expect("count");
            if n > broadest.0 {
                broadest = (n, word.to_owned());
            }
        }
        assert!(broadest.0 > 400, "{backend}: {broadest:?}");
        let query = ProductQuery {
            filter: ProductFilter {
                search: Some(SearchTerms::parse("q", &broadest.1).expect("terms")),
                ..active()
            },
            sort: ProductSort::Relevance,
            after: None,
            limit: 40,
        };
        let plain = ProductQuery {
            filter: ProductFilter {
                min_rating_score: Some(0),
                ..query.filter.clone()
            },
            ..query.clone()
        };

        for round in ["all visible", "the best 300 archived"] {
            let (ids, total) = pages(store.as_ref(), &query).await;
            let everything = ProductQuery {
                limit: 10_000,
                ..plain.clone()
            };
            let reference: Vec<uuid::Uuid> = (store.list_products(&everything).await.expect("plain").iter())
                .map(|p| p.id.0)
                .collect();
            assert_eq!(
                ids, reference,
                "{backend}, {round}: pages differ from the plain ranking"
            );
            assert_eq!(
                total,
                store.count_products(&plain.filter).await.expect("count"),
                "{backend}, {round}"
            );
            assert_eq!(total as usize, ids.len(), "{backend}, {round}");
            let unique: std::collections::HashSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "{backend}, {round}: a product twice");
            if round == "all visible" {
                // Hide the best-ranked matches: the shortcut's candidates are then mostly hidden.
                let hide: Vec<uuid::Uuid> = ids.iter().take(300).copied().collect();
                for id in hide {
                    let q = "UPDATE products SET status = 'archived' WHERE id = $1";
                    match db {
                        Db::Sqlite(p) => sqlx::query(q).bind(id).execute(p).await.map(|_| ()),
                        Db::Postgres(p) => sqlx::query(q).bind(id).execute(p).await.map(|_| ()),
                    }
                    .expect("archive");
                }
            }
        }
        db.close().await;
    }
}

/// `cargo test -p catalog --release --test store_suite -- --ignored --nocapture`: 100k products.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run explicitly, preferably with --release"]
async fn hundred_thousand_products_load_and_query_fast() {
    let only = std::env::var("CATALOG_LOAD_BACKEND").ok();
    for (backend, t) in databases().await {
        let db = &t.db;
        if only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        let catalog = start(db).await;
        let store = catalog.service().store().clone();
        let n: usize = std::env::var("CATALOG_LOAD_PRODUCTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let report = catalog::seed::seed_products(&catalog, n, 1, &|_, _| {})
            .await
            .expect("seed");
        eprintln!(
            "{backend}: seeded {} products, {} reviews, {} categories in {:?}",
            report.products, report.reviews, report.categories, report.elapsed
        );
        for (label, filter, sort) in [
            ("list newest", active(), ProductSort::Newest),
            ("list price", active(), ProductSort::PriceAsc),
            (
                "search",
                ProductFilter {
                    search: Some(SearchTerms::parse("q", "wool sweater").expect("terms")),
                    ..active()
                },
                ProductSort::Relevance,
            ),
            (
                "attr + brand",
                ProductFilter {
                    brands: vec!["Acme".into()],
                    attributes: vec![("color".into(), "red".into())],
                    ..active()
                },
                ProductSort::PriceDesc,
            ),
        ] {
            let t = std::time::Instant::now();
            let rows = store
                .list_products(&ProductQuery {
                    filter: filter.clone(),
                    sort,
                    after: None,
                    limit: 20,
                })
                .await
                .expect("list");
            let list_time = t.elapsed();
            let t = std::time::Instant::now();
            let total = store.count_products(&filter).await.expect("count");
            let count_time = t.elapsed();
            let t = std::time::Instant::now();
            let facets = store.facets(&filter).await.expect("facets");
            eprintln!(
                "{backend}: {label}: {} rows of {total}, {} brands; list {list_time:?}, count {count_time:?}, facets {:?}",
                rows.len(),
                facets.brands.len(),
                t.elapsed()
            );
        }
        let started = std::time::Instant::now();
        let s = store
            .suggest(&SearchTerms::parse("q", "nor").expect("terms"), 10)
            .await
            .expect("suggest");
        eprintln!("{backend}: suggest: {} in {:?}", s.len(), started.elapsed());
        db.close().await;
        if std::env::var("CATALOG_LOAD_KEEP").is_ok() {
            std::mem::forget(t);
        }
    }
}

/// Deterministic xorshift, so every run buys the same baskets.
struct Baskets(u64);

impl Baskets {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// 2 to 5 products, skewed towards the first ones (a few best sellers, a long tail).
    fn basket(&mut self, products: &[catalog::domain::ProductId]) -> Vec<catalog::domain::ProductId> {
        let size = 2 + (self.next() % 4) as usize;
        (0..size)
            .map(|_| {
                let r = (self.next() % 1_000_000) as f64 / 1_000_000.0;
                products[((r * r * r) * products.len() as f64) as usize]
            })
            .collect()
    }
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    format!("p50 {:?}, p99 {:?}, max {:?}", at(0.5), at(0.99), at(1.0))
}

/// The co-purchase read model at 100k confirmed orders (`bench/recommendations.sh` runs it):
/// the cost of counting one order and of reading recommendations for a product and for a cart.
/// `CATALOG_LOAD_ORDERS` (100000), `CATALOG_LOAD_PRODUCTS` (10000), `CATALOG_LOAD_BACKEND`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run explicitly, preferably with --release"]
async fn co_purchases_at_a_hundred_thousand_orders() {
    use catalog::domain::{BoughtTogether, ProductId, co_purchase_weight};
    let only = std::env::var("CATALOG_LOAD_BACKEND").ok();
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (orders, products) = (
        env("CATALOG_LOAD_ORDERS", 100_000),
        env("CATALOG_LOAD_PRODUCTS", 10_000),
    );
    for (backend, t) in databases().await {
        let db = &t.db;
        if only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        let catalog = start(db).await;
        let store = catalog.service().store().clone();
        catalog::seed::seed_products(&catalog, products, 1, &|_, _| {})
            .await
            .expect("seed");
        let q = "UPDATE products SET available = 10";
        let ids: Vec<uuid::Uuid> = match db {
            Db::Sqlite(p) => {
                sqlx::query(q).execute(p).await.expect("stock");
                sqlx::query_scalar("SELECT id FROM products ORDER BY id")
                    .fetch_all(p)
                    .await
                    .expect("ids")
            }
            Db::Postgres(p) => {
                sqlx::query(q).execute(p).await.expect("stock");
                sqlx::query_scalar("SELECT id FROM products ORDER BY id")
                    .fetch_all(p)
                    .await
                    .expect("ids")
            }
        };
        let ids: Vec<ProductId> = ids.into_iter().map(ProductId).collect();
        let mut rng = Baskets(0x9E37_79B9_7F4A_7C15);
        let start_at = time::macros::datetime!(2026-01-01 00:00 UTC);
        let mut writes = Vec::with_capacity(orders);
        let started = std::time::Instant::now();
        for i in 0..orders {
            let Some(together) = BoughtTogether::of(rng.basket(&ids)) else {
                continue;
            };
            let at = start_at + time::Duration::minutes(i as i64);
            let t = std::time::Instant::now();
            store
                .record_co_purchase(uuid::Uuid::now_v7(), &together, co_purchase_weight(at), at)
                .await
                .expect("record");
            writes.push(t.elapsed());
            if (i + 1) % 10_000 == 0 {
                eprintln!(
                    "{backend}: {} of {orders} orders counted ({:?})",
                    i + 1,
                    started.elapsed()
                );
            }
        }
        let elapsed = started.elapsed();
        let pairs: i64 = match db {
            Db::Sqlite(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM co_purchases")
                    .fetch_one(p)
                    .await
            }
            Db::Postgres(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM co_purchases")
                    .fetch_one(p)
                    .await
            }
        }
        .expect("pairs");
        eprintln!(
            "{backend}: counted {} orders in {elapsed:?} ({:.0} orders/s), {pairs} pairs; per order {}",
            writes.len(),
            writes.len() as f64 / elapsed.as_secs_f64(),
            percentiles(writes)
        );
        for (label, size) in [("product", 1), ("cart of 3", 3)] {
            let mut reads = Vec::with_capacity(1000);
            let mut found = 0;
            for _ in 0..1000 {
                let asked: Vec<ProductId> = rng.basket(&ids).into_iter().take(size).collect();
                let t = std::time::Instant::now();
                found += store.bought_with(&asked, 8).await.expect("read").len();
                reads.push(t.elapsed());
            }
            eprintln!(
                "{backend}: recommendations for a {label}: {:.1} found on average; {}",
                found as f64 / 1000.0,
                percentiles(reads)
            );
        }
        db.close().await;
    }
}
