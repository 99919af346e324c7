//! Cart's use cases against the real store on SQLite and, when reachable, PostgreSQL, with an
//! in-memory catalog/inventory behind the `Pricing` trait: concurrency of adds and merges, merge
//! rules, expiry, clearing after an order, and peers being down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cart::domain::{Currency, LineProblem, Money, Product, Sku};
use cart::pricing::{Pricing, PricingError};
use cart::service::{Caller, CartError};
use cart::{CartConfig, CartService};
use platform::db::Db;
use test_support::{Backend, TestDb};
use uuid::Uuid;

/// Catalog and inventory as plain maps; `down` makes every call fail as an unreachable peer would.
#[derive(Default)]
struct FakePeers {
    products: Mutex<BTreeMap<Sku, Product>>,
    stock: Mutex<BTreeMap<Sku, i64>>,
    down: Mutex<bool>,
    calls: Mutex<usize>,
}

impl FakePeers {
    fn sell(&self, sku: &str, price: i64, units: i64) {
        let sku = Sku::parse(sku).expect("sku");
        let product = Product {
            id: Uuid::now_v7(),
            sku: sku.clone(),
            name: format!("Product {sku}"),
            slug: sku.as_str().to_ascii_lowercase(),
            image: None,
            price: Money::new(price, Currency::parse("EUR").expect("eur")),
        };
        self.products.lock().expect("lock").insert(sku.clone(), product);
        self.stock.lock().expect("lock").insert(sku, units);
    }

    fn reprice(&self, sku: &str, price: i64) {
        let sku = Sku::parse(sku).expect("sku");
        if let Some(p) = self.products.lock().expect("lock").get_mut(&sku) {
            p.price.amount = price;
        }
    }

    fn withdraw(&self, sku: &str) {
        self.products
            .lock()
            .expect("lock")
            .remove(&Sku::parse(sku).expect("sku"));
    }

    fn check(&self, service: &'static str) -> Result<(), PricingError> {
        *self.calls.lock().expect("lock") += 1;
        if *self.down.lock().expect("lock") {
            Err(PricingError {
                service,
                message: "connection refused".into(),
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Pricing for FakePeers {
    async fn products(&self, skus: &[Sku]) -> Result<BTreeMap<Sku, Product>, PricingError> {
        self.check("catalog")?;
        let all = self.products.lock().expect("lock");
        Ok(skus
            .iter()
            .filter_map(|s| all.get(s).map(|p| (s.clone(), p.clone())))
            .collect())
    }

    async fn availability(&self, skus: &[Sku]) -> Result<BTreeMap<Sku, i64>, PricingError> {
        self.check("inventory")?;
        let all = self.stock.lock().expect("lock");
        Ok(skus
            .iter()
            .filter_map(|s| all.get(s).map(|u| (s.clone(), *u)))
            .collect())
    }
}

struct Harness {
    svc: Arc<CartService>,
    peers: Arc<FakePeers>,
}

async fn harness(db: &Db, config: CartConfig) -> Harness {
    cart::migrate(db).await.expect("migrate");
    let store = cart::store::open(db);
    let peers = Arc::new(FakePeers::default());
    Harness {
        svc: Arc::new(CartService::new(store, peers.clone(), config)),
        peers,
    }
}

fn user(id: Uuid) -> Caller {
    Caller {
        user: Some(id),
        token: None,
    }
}

fn guest(token: &cart::domain::CartToken) -> Caller {
    Caller {
        user: None,
        token: Some(Some(token.clone())),
    }
}

fn quantities(snapshot: &cart::service::CartSnapshot) -> Vec<(String, i64)> {
    snapshot
        .priced
        .lines
        .iter()
        .map(|l| (l.line.sku.to_string(), l.line.quantity))
        .collect()
}

async fn concurrent_adds_all_count(t: TestDb) {
    let db = &t.db;
    let config = CartConfig {
        max_line_quantity: 1000,
        ..CartConfig::default()
    };
    let h = harness(db, config).await;
    h.peers.sell("HOT-1", 500, 10_000);
    let (token, _) = h.svc.create_guest().await.expect("cart");
    let caller = guest(&token);
    let adds = (0..40).map(|_| {
        let svc = h.svc.clone();
        let caller = caller.clone();
        tokio::spawn(async move { svc.add_item(&caller, "HOT-1", 1).await })
    });
    for outcome in futures::future::join_all(adds).await {
        outcome.expect("task").expect("every add succeeds");
    }
    let cart = h.svc.view(&caller).await.expect("view");
    assert_eq!(quantities(&cart), [("HOT-1".to_owned(), 40)]);
    assert_eq!(cart.priced.subtotal, 40 * 500);
    db.close().await;
}

async fn adds_respect_limits_and_stock(t: TestDb) {
    let db = &t.db;
    let config = CartConfig {
        max_line_quantity: 5,
        max_lines: 2,
        ..CartConfig::default()
    };
    let h = harness(db, config).await;
    h.peers.sell("AAA-1", 100, 3);
    h.peers.sell("BBB-1", 100, 50);
    h.peers.sell("CCC-1", 100, 50);
    let me = user(Uuid::now_v7());
    h.svc.add_item(&me, "aaa-1", 2).await.expect("add");
    match h.svc.add_item(&me, "AAA-1", 2).await {
        Err(CartError::Conflict { detail, errors }) => {
            assert!(detail.contains("3 available"), "{detail}");
            assert_eq!(errors[0].field, "quantity");
        }
        other => panic!("expected 409, got {other:?}"),
    }
    h.svc.add_item(&me, "BBB-1", 5).await.expect("add");
    match h.svc.add_item(&me, "BBB-1", 1).await {
        Err(CartError::Validation(errors)) => assert_eq!(errors[0].field, "quantity"),
        other => panic!("expected 422 line limit, got {other:?}"),
    }
    match h.svc.add_item(&me, "CCC-1", 1).await {
        Err(CartError::Validation(errors)) => assert_eq!(errors[0].field, "sku"),
        other => panic!("expected 422 line count, got {other:?}"),
    }
    match h.svc.add_item(&me, "NOPE-1", 1).await {
        Err(CartError::Validation(errors)) => assert_eq!(errors[0].field, "sku"),
        other => panic!("expected 422 unknown sku, got {other:?}"),
    }
    match h.svc.add_item(&me, "x", 0).await {
        Err(CartError::Validation(errors)) => {
            let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["sku", "quantity"]);
        }
        other => panic!("expected 422 on both fields, got {other:?}"),
    }
    let cart = h.svc.view(&me).await.expect("view");
    assert_eq!(quantities(&cart), [("AAA-1".to_owned(), 2), ("BBB-1".to_owned(), 5)]);
    // Set, then 0 removes.
    let cart = h.svc.set_item(&me, "AAA-1", 3).await.expect("set");
    assert_eq!(quantities(&cart)[0], ("AAA-1".to_owned(), 3));
    assert!(matches!(
        h.svc.set_item(&me, "AAA-1", 4).await,
        Err(CartError::Conflict { .. })
    ));
    assert!(matches!(
        h.svc.set_item(&me, "CCC-1", 1).await,
        Err(CartError::NotFound(_))
    ));
    let cart = h.svc.set_item(&me, "AAA-1", 0).await.expect("remove");
    assert_eq!(quantities(&cart), [("BBB-1".to_owned(), 5)]);
    assert!(matches!(
        h.svc.remove_item(&me, "AAA-1").await,
        Err(CartError::NotFound(_))
    ));
    let cart = h.svc.clear(&me).await.expect("clear");
    assert!(cart.priced.lines.is_empty());
    db.close().await;
}

async fn merges_sum_cap_and_happen_once(t: TestDb) {
    let db = &t.db;
    let config = CartConfig {
        max_line_quantity: 10,
        ..CartConfig::default()
    };
    let h = harness(db, config).await;
    h.peers.sell("AAA-1", 100, 100);
    h.peers.sell("BBB-1", 200, 100);
    let me = Uuid::now_v7();
    h.svc.add_item(&user(me), "AAA-1", 7).await.expect("add");
    let (token, _) = h.svc.create_guest().await.expect("guest");
    h.svc.add_item(&guest(&token), "AAA-1", 6).await.expect("add");
    h.svc.add_item(&guest(&token), "BBB-1", 1).await.expect("add");
    // Ten concurrent logins carrying the same guest token: one merge, nine no-ops.
    let merges = (0..10).map(|_| {
        let svc = h.svc.clone();
        let token = token.clone();
        tokio::spawn(async move { svc.merge(me, token.as_str()).await })
    });
    for outcome in futures::future::join_all(merges).await {
        outcome.expect("task").expect("merge or no-op");
    }
    let cart = h.svc.view(&user(me)).await.expect("view");
    assert_eq!(quantities(&cart), [("AAA-1".to_owned(), 10), ("BBB-1".to_owned(), 1)]);
    assert!(matches!(h.svc.view(&guest(&token)).await, Err(CartError::NotFound(_))));
    // Another user cannot merge a token someone else merged.
    assert!(matches!(
        h.svc.merge(Uuid::now_v7(), token.as_str()).await,
        Err(CartError::NotFound(_))
    ));
    // A request carrying both credentials merges implicitly.
    let (token2, _) = h.svc.create_guest().await.expect("guest");
    h.svc.add_item(&guest(&token2), "BBB-1", 2).await.expect("add");
    let both = Caller {
        user: Some(me),
        token: Some(Some(token2.clone())),
    };
    let cart = h.svc.view(&both).await.expect("view");
    assert_eq!(quantities(&cart), [("AAA-1".to_owned(), 10), ("BBB-1".to_owned(), 3)]);
    let cart = h.svc.view(&both).await.expect("view again");
    assert_eq!(
        quantities(&cart)[1],
        ("BBB-1".to_owned(), 3),
        "a second merge is a no-op"
    );
    assert!(matches!(
        h.svc.merge(me, "not-a-token").await,
        Err(CartError::Validation(_))
    ));
    db.close().await;
}

async fn prices_are_read_at_read_time(t: TestDb) {
    let db = &t.db;
    let h = harness(db, CartConfig::default()).await;
    h.peers.sell("AAA-1", 100, 5);
    h.peers.sell("BBB-1", 300, 5);
    let me = user(Uuid::now_v7());
    h.svc.add_item(&me, "AAA-1", 2).await.expect("add");
    h.svc.add_item(&me, "BBB-1", 1).await.expect("add");
    h.peers.reprice("AAA-1", 150);
    h.peers.withdraw("BBB-1");
    let calls_before = *h.peers.calls.lock().expect("lock");
    let cart = h.svc.view(&me).await.expect("view");
    assert_eq!(
        *h.peers.calls.lock().expect("lock") - calls_before,
        2,
        "one catalog and one inventory call, whatever the number of lines"
    );
    let a = &cart.priced.lines[0];
    assert_eq!((a.unit_price.amount, a.line_total), (150, 300));
    assert_eq!(a.problems, [LineProblem::PriceChanged]);
    let b = &cart.priced.lines[1];
    assert_eq!(b.problems, [LineProblem::Unavailable]);
    assert_eq!(cart.priced.subtotal, 300);
    // Changing the line takes the new price.
    let cart = h.svc.set_item(&me, "AAA-1", 1).await.expect("set");
    assert!(cart.priced.lines[0].problems.is_empty());
    // Peers down: a clear error, not a crash.
    *h.peers.down.lock().expect("lock") = true;
    match h.svc.view(&me).await {
        Err(CartError::Unavailable(m)) => assert!(m.contains("catalog") || m.contains("inventory"), "{m}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    db.close().await;
}

async fn expired_carts_are_swept(t: TestDb) {
    let db = &t.db;
    let config = CartConfig {
        guest_ttl: Duration::from_secs(2),
        user_ttl: Duration::from_secs(3600),
        ..CartConfig::default()
    };
    let h = harness(db, config).await;
    h.peers.sell("AAA-1", 100, 5);
    let (token, _) = h.svc.create_guest().await.expect("guest");
    h.svc.add_item(&guest(&token), "AAA-1", 1).await.expect("add");
    let me = user(Uuid::now_v7());
    h.svc.add_item(&me, "AAA-1", 1).await.expect("add");
    assert_eq!(h.svc.expire_due(cart::service::now()).await.expect("sweep"), 0);
    let later = cart::service::now() + Duration::from_secs(3);
    assert_eq!(h.svc.expire_due(later).await.expect("sweep"), 1, "only the guest cart");
    assert!(matches!(h.svc.view(&guest(&token)).await, Err(CartError::NotFound(_))));
    assert_eq!(quantities(&h.svc.view(&me).await.expect("view")).len(), 1);
    db.close().await;
}

async fn orders_placed_from_the_cart_empty_it(t: TestDb) {
    let db = &t.db;
    let h = harness(db, CartConfig::default()).await;
    h.peers.sell("AAA-1", 100, 5);
    let id = Uuid::now_v7();
    h.svc.add_item(&user(id), "AAA-1", 2).await.expect("add");
    let placed = platform::clock::now();
    let ordered = [("AAA-1".to_owned(), 2)];
    assert_eq!(h.svc.order_placed(id, placed, &ordered).await.expect("clear"), 1);
    assert_eq!(h.svc.order_placed(id, placed, &ordered).await.expect("replay"), 0);
    assert!(h.svc.view(&user(id)).await.expect("view").priced.lines.is_empty());
    // A user without a cart: nothing to do.
    assert_eq!(
        h.svc
            .order_placed(Uuid::now_v7(), placed, &ordered)
            .await
            .expect("none"),
        0
    );
    db.close().await;
}

/// A shopper who orders and at once (the same second, before the order's event reaches cart)
/// adds to the cart again keeps what was added: only the ordered quantity is taken off.
async fn what_is_added_right_after_an_order_stays(t: TestDb) {
    let db = &t.db;
    let h = harness(db, CartConfig::default()).await;
    h.peers.sell("AAA-1", 100, 5);
    h.peers.sell("BBB-1", 100, 5);
    let id = Uuid::now_v7();
    let placed = cart::service::now();
    h.svc.add_item(&user(id), "AAA-1", 2).await.expect("add");
    // Ordered: AAA-1 × 2. Then, quickly: one more AAA-1 and a BBB-1.
    h.svc.add_item(&user(id), "AAA-1", 1).await.expect("add again");
    h.svc.add_item(&user(id), "BBB-1", 1).await.expect("add another");
    if cart::service::now() != placed {
        // The second turned over mid-test: the lines are newer than the order, all stay.
        assert_eq!(
            h.svc
                .order_placed(id, placed, &[("AAA-1".to_owned(), 2)])
                .await
                .expect("clear"),
            0
        );
        db.close().await;
        return;
    }
    assert_eq!(
        h.svc
            .order_placed(id, placed, &[("AAA-1".to_owned(), 2)])
            .await
            .expect("clear"),
        0
    );
    let left = quantities(&h.svc.view(&user(id)).await.expect("view"));
    assert_eq!(left, [("AAA-1".to_owned(), 1), ("BBB-1".to_owned(), 1)], "{left:?}");
    // An order of a line changed in its second and bought whole: the line goes.
    assert_eq!(
        h.svc
            .order_placed(id, placed, &[("BBB-1".to_owned(), 1)])
            .await
            .expect("clear"),
        1
    );
    let left = quantities(&h.svc.view(&user(id)).await.expect("view"));
    assert_eq!(left, [("AAA-1".to_owned(), 1)], "{left:?}");
    db.close().await;
}

async fn no_cart_named_is_unauthenticated(t: TestDb) {
    let db = &t.db;
    let h = harness(db, CartConfig::default()).await;
    assert!(matches!(
        h.svc.view(&Caller::default()).await,
        Err(CartError::Unauthenticated(_))
    ));
    let bogus = Caller {
        user: None,
        token: Some(None),
    };
    assert!(matches!(h.svc.view(&bogus).await, Err(CartError::NotFound(_))));
    db.close().await;
}

/// Cart's database on `backend` for one test (`None`: PostgreSQL skipped).
async fn db(backend: Backend) -> Option<TestDb> {
    TestDb::open(backend, "cart").await
}

test_support::on_both_backends!(
    super::db =>
    concurrent_adds_all_count,
    adds_respect_limits_and_stock,
    merges_sum_cap_and_happen_once,
    prices_are_read_at_read_time,
    expired_carts_are_swept,
    orders_placed_from_the_cart_empty_it,
    what_is_added_right_after_an_order_stays,
    no_cart_named_is_unauthenticated,
);
