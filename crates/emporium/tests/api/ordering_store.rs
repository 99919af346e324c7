//! The saga's write without a locking read (`OrderStore::update_known`), the order lines it
//! carries and the batched invoice numbers, run against both backends: a write from a stale copy
//! must never land, an event that lists the lines gets the placed ones whether this process
//! remembers them or not, and invoice numbers have neither gaps nor repeats however batches race.

use std::sync::{Arc, Mutex};

use ordering::domain::{Country, Currency, OrderId, OrderNumber, OrderStatus, ShippingAddress, Sku, Totals};
use ordering::store::{Emit, Mutation, NewOrder, Order, OrderLine, OrderStore, PlaceOutcome, Refusal, SagaStep};
use platform::db::Db;
use time::OffsetDateTime;
use uuid::Uuid;

use test_support::{Backend, TestDb};

store_suite!(
    a_known_order_is_written_only_at_its_version,
    events_listing_lines_get_the_placed_lines_remembered_or_read,
    invoice_numbers_follow_payment_without_gaps_or_repeats_however_batches_race,
);

type Test = fn(Db) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn run(backend: Backend, test: Test) {
    let Some(t) = TestDb::open(backend, "ordering").await else {
        return;
    };
    ordering::migrate(&t.db).await.expect("migrate");
    test(t.db.clone()).await;
    t.db.close().await;
}

/// A fresh store over `db`: it remembers nothing another instance placed.
fn store(db: &Db) -> Arc<dyn OrderStore> {
    ordering::store::open(db)
}

/// Whole seconds: what both backends store exactly.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).expect("now")
}

fn lines() -> Vec<OrderLine> {
    (1..=2)
        .map(|line| OrderLine {
            line,
            sku: Sku::from_trusted(format!("SKU-{line}")),
            product_id: Uuid::from_u128(line as u128),
            name: format!("Product {line}"),
            quantity: line,
            unit_price: 500,
            line_total: 500 * line,
        })
        .collect()
}

async fn place(store: &dyn OrderStore) -> Order {
    let at = now();
    let order = Order {
        id: OrderId::new(),
        number: OrderNumber::from_trusted(String::new()),
        user_id: Uuid::now_v7(),
        status: OrderStatus::AwaitingPayment,
        currency: Currency::parse("EUR").expect("currency"),
        totals: Totals {
            subtotal: 1500,
            discount: 0,
            shipping: 0,
            tax: 0,
            tax_rate_bp: 0,
            total: 1500,
        },
        refunded: 0,
        shipping_method: "standard".into(),
        shipping_address: ShippingAddress {
            name: "Ada Lovelace".into(),
            line1: "1 Analytical Way".into(),
            line2: None,
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: Country::parse("DE").expect("country"),
            phone: None,
        },
        coupon_code: None,
        from_cart: false,
        payment_method: "pm_card_visa".into(),
        payment_attempted: true,
        payment_id: None,
        payment_brand: None,
        payment_last4: None,
        payment_status: None,
        reservation_id: Some(Uuid::now_v7()),
        reservation_expires_at: Some(at + time::Duration::minutes(15)),
        reservation_committed: false,
        invoice_number: None,
        paid_at: None,
        carrier: None,
        tracking_number: None,
        cancel_reason: None,
        saga_step: Some(SagaStep::Capture),
        saga_lease_owner: Some(Uuid::now_v7()),
        saga_lease_until: Some(at + time::Duration::seconds(30)),
        saga_attempts: 0,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    let new = NewOrder {
        order,
        lines: lines(),
        timeline: Vec::new(),
        events: Box::new(|_, _| Vec::new()),
    };
    match store.place(new, at).await.expect("place") {
        PlaceOutcome::Placed(order) => *order,
        PlaceOutcome::CouponExhausted => panic!("no coupon was used"),
    }
}

/// Moves the order to `step`.
fn to_step(step: Option<SagaStep>) -> ordering::store::Decide {
    Box::new(move |o| {
        let mut m = Mutation::new(o.clone());
        m.order.saga_step = step;
        Ok(m)
    })
}

async fn a_known_order_is_written_only_at_its_version(db: Db) {
    let store = store(&db);
    let placed = place(store.as_ref()).await;

    let moved = store
        .update_known(&placed, now(), to_step(Some(SagaStep::Commit)))
        .await
        .expect("update_known")
        .expect("written: nobody moved the order");
    assert_eq!(moved.saga_step, Some(SagaStep::Commit));
    assert_eq!(moved.version, placed.version + 1);
    let stored = store.order(placed.id).await.expect("read").expect("order").order;
    assert_eq!(stored, moved, "what update_known answers is what is stored");

    // From the copy before that write: refused, and nothing of it lands.
    let stale = store
        .update_known(&placed, now(), to_step(Some(SagaStep::Refund)))
        .await
        .expect("update_known");
    assert_eq!(stale, None, "a stale copy must not be written");
    let stored = store.order(placed.id).await.expect("read").expect("order").order;
    assert_eq!(stored, moved, "the stale write left no trace");

    // A refusal writes nothing either: the caller decides again under the lock.
    let refused = store
        .update_known(&moved, now(), Box::new(|_| Err(Refusal::Stale)))
        .await
        .expect("update_known");
    assert_eq!(refused, None);
    let stored = store.order(placed.id).await.expect("read").expect("order").order;
    assert_eq!(stored, moved);

    // The locking update decides on the stored order and still works after all that.
    let done = store
        .update(placed.id, now(), to_step(None))
        .await
        .expect("update")
        .expect("not refused");
    assert_eq!((done.saga_step, done.version), (None, moved.version + 1));
}

/// Decides a step that emits an event listing the lines, and answers the lines it was given.
async fn lines_given(store: &dyn OrderStore, known: &Order) -> Vec<OrderLine> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let decide: ordering::store::Decide = Box::new(move |o| {
        let mut m = Mutation::new(o.clone());
        m.order.saga_step = None;
        m.events = Emit::WithLines(Box::new(move |_, lines| {
            sink.lock().expect("lock").extend_from_slice(lines);
            Vec::new()
        }));
        Ok(m)
    });
    store
        .update_known(known, now(), decide)
        .await
        .expect("update_known")
        .expect("written");
    seen.lock().expect("lock").clone()
}

async fn events_listing_lines_get_the_placed_lines_remembered_or_read(db: Db) {
    // Remembered: the store that placed the order.
    let placing = store(&db);
    let placed = place(placing.as_ref()).await;
    assert_eq!(lines_given(placing.as_ref(), &placed).await, lines());

    // Read back: another process (a fresh store) finishing an order it did not place.
    let other = place(placing.as_ref()).await;
    assert_eq!(lines_given(store(&db).as_ref(), &other).await, lines());

    // Forgotten once the saga ended: a later event reads them from the database.
    let after = store(&db).order(placed.id).await.expect("read").expect("order").order;
    assert_eq!(lines_given(placing.as_ref(), &after).await, lines());
}

/// Marks the order paid at `at`, as the saga's capture does.
async fn pay(store: &dyn OrderStore, order: &Order, at: OffsetDateTime) -> Order {
    store
        .update(
            order.id,
            at,
            Box::new(move |o| {
                let mut m = Mutation::new(o.clone());
                m.order.status = OrderStatus::Paid;
                m.order.paid_at = Some(at);
                m.order.saga_step = Some(SagaStep::Commit);
                Ok(m)
            }),
        )
        .await
        .expect("update")
        .expect("not refused")
}

fn sequence_number(invoice: &str) -> i64 {
    invoice
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("an invoice number ends in digits")
}

async fn invoice_numbers_follow_payment_without_gaps_or_repeats_however_batches_race(db: Db) {
    let store = store(&db);
    let at = now();
    let first = pay(store.as_ref(), &place(store.as_ref()).await, at).await;
    let unpaid = place(store.as_ref()).await;
    let second = pay(
        store.as_ref(),
        &place(store.as_ref()).await,
        at + time::Duration::seconds(1),
    )
    .await;

    // Asked in another order, numbered in the order they were paid; the unpaid one is skipped.
    let numbered = store
        .assign_invoices(&[second.id, unpaid.id, first.id], at, ordering::events::paid)
        .await
        .expect("assign");
    assert_eq!(
        numbered.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    let numbers: Vec<i64> = numbered
        .iter()
        .map(|o| sequence_number(o.invoice_number.as_deref().expect("numbered")))
        .collect();
    assert_eq!(numbers[1], numbers[0] + 1, "{numbers:?}");
    for o in &numbered {
        let stored = store.order(o.id).await.expect("read").expect("order").order;
        assert_eq!(&stored, o, "what assign_invoices answers is what is stored");
    }
    assert_eq!(
        numbered[0].version,
        first.version + 1,
        "a stale copy of a numbered order must not be written"
    );
    let unpaid_now = store.order(unpaid.id).await.expect("read").expect("order").order;
    assert_eq!(unpaid_now.invoice_number, None);

    // Numbered once: asking again numbers nothing.
    let again = store
        .assign_invoices(&[first.id, second.id], at, ordering::events::paid)
        .await
        .expect("assign");
    assert!(again.is_empty(), "{again:?}");

    // Batches that overlap, at the same moment: every order gets one number, and the numbers
    // continue the sequence without a gap.
    let mut orders = Vec::new();
    for _ in 0..12 {
        orders.push(pay(store.as_ref(), &place(store.as_ref()).await, at).await.id);
    }
    let mut batches = Vec::new();
    for round in 0..4 {
        let store = store.clone();
        let ids: Vec<OrderId> = orders.iter().skip(round * 2).take(6).copied().collect();
        batches.push(tokio::spawn(async move {
            store.assign_invoices(&ids, at, ordering::events::paid).await
        }));
    }
    let mut taken = Vec::new();
    for batch in batches {
        taken.extend(batch.await.expect("join").expect("assign").into_iter().map(|o| o.id));
    }
    let rest = store
        .assign_invoices(&orders, at, ordering::events::paid)
        .await
        .expect("assign");
    taken.extend(rest.into_iter().map(|o| o.id));
    taken.sort();
    let mut expected = orders.clone();
    expected.sort();
    assert_eq!(taken, expected, "each order numbered exactly once");
    let mut numbers = Vec::new();
    for id in &orders {
        let stored = store.order(*id).await.expect("read").expect("order").order;
        numbers.push(sequence_number(stored.invoice_number.as_deref().expect("numbered")));
    }
    numbers.sort_unstable();
    let last = numbers[0] + 11;
    assert_eq!(numbers, (numbers[0]..=last).collect::<Vec<_>>(), "no gap, no repeat");
    assert_eq!(
        numbers[0],
        sequence_number(numbered[1].invoice_number.as_deref().expect("n")) + 1
    );
}
