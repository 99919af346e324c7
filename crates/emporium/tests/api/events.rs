//! The event bus end to end: on SQLite with the in-process bus, on PostgreSQL with RabbitMQ.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::events::Event as _;
use contracts::events::catalog::{self as catalog_events, ProductCreated};
use emporium::app::Service;
use platform::db::{Db, SqliteSizing};
use platform::events::{BusSettings, Event, EventHandler, Events, HandlerError, Subscription};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::eventually;
use test_support::app::TestApp;
use test_support::requests::assert_problem;
use test_support::services::{amqp_url, namespace, rabbitmq_reachable};
use test_support::{Backend, TempPostgres};

/// Remembers every event it is given.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

#[async_trait::async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        self.0.lock().expect("lock").push(event.clone());
        Ok(())
    }
}

impl Recorder {
    fn count(&self, id: Uuid) -> usize {
        self.0.lock().expect("lock").iter().filter(|e| e.id == id).count()
    }
}

/// A database with the bus tables, and a bus of the backend's kind, for one test.
struct Bus {
    db: Db,
    events: Events,
    namespace: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TempPostgres>,
}

async fn bus(backend: Backend) -> Option<Bus> {
    let settings = BusSettings {
        relay_interval: Duration::from_millis(100),
        namespace: namespace(),
        queue_expiry: Some(Duration::from_secs(120)),
        ..BusSettings::default()
    };
    let namespace = settings.namespace.clone();
    let (db, dir, pg, events) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tmp");
            let db = Db::open_embedded(dir.path(), "bus", SqliteSizing::connections(4))
                .await
                .expect("sqlite");
            (db, Some(dir), None, Events::in_process(settings))
        }
        Backend::Postgres => {
            if !rabbitmq_reachable().await {
                return None;
            }
            let pg = TempPostgres::create().await?;
            let db = Db::connect(&pg.url, 4).await.expect("postgres");
            let events = Events::rabbitmq(&amqp_url(), settings).await.expect("rabbitmq");
            (db, None, Some(pg), events)
        }
    };
    platform::events::migrate(&db).await.expect("bus tables");
    Some(Bus {
        db,
        events,
        namespace,
        _dir: dir,
        _pg: pg,
    })
}

/// Subscribes `handler` as `consumer` to every `test.*` event of `bus` and starts the relay that
/// publishes them.
async fn handle_test_events(
    bus: &Bus,
    consumer: &'static str,
    handler: Arc<dyn EventHandler>,
) -> platform::events::Outbox {
    bus.events
        .subscribe(Subscription {
            context: "test",
            consumer,
            patterns: vec!["test.#"],
            db: bus.db.clone(),
            handler,
            delivery: platform::events::Delivery::OnePerContext,
        })
        .await
        .expect("subscribe");
    bus.events.start_relay("test", &bus.db)
}

/// A recorder of every `test.*` event of `bus`, and the relay that publishes them.
async fn record_test_events(bus: &Bus) -> (Arc<Recorder>, platform::events::Outbox) {
    let recorder = Arc::new(Recorder::default());
    let outbox = handle_test_events(bus, "recorder", recorder.clone()).await;
    (recorder, outbox)
}

/// Writes `event` in a transaction that commits or rolls back.
async fn write_event(db: &Db, event: &Event, commit: bool) {
    match db {
        Db::Sqlite(pool) => {
            let mut tx = pool.begin().await.expect("begin");
            platform::events::enqueue(&mut *tx, event).await.expect("enqueue");
            if commit { tx.commit().await } else { tx.rollback().await }.expect("end");
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await.expect("begin");
            platform::events::enqueue(&mut *tx, event).await.expect("enqueue");
            if commit { tx.commit().await } else { tx.rollback().await }.expect("end");
        }
    }
}

async fn rolled_back_events_are_never_published_and_redelivery_is_harmless(backend: Backend) {
    let Some(bus) = bus(backend).await else { return };
    let (recorder, outbox) = record_test_events(&bus).await;

    let rolled_back = Event::new("test", "test.thing.happened", "a", json!({"n": 1}));
    let committed = Event::new("test", "test.thing.happened", "b", json!({"n": 2}));
    write_event(&bus.db, &rolled_back, false).await;
    write_event(&bus.db, &committed, true).await;
    outbox.notify();
    eventually("the committed event arrives", async || {
        recorder.count(committed.id) == 1
    })
    .await;
    // Later events would have overtaken it by now: the rolled-back one never existed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.count(rolled_back.id), 0);
    assert_eq!(platform::events::pending(&bus.db).await.expect("pending"), 0);

    // Publish the same event again (as a relay that crashed before marking it would): the
    // inbox recognises it and the handler does not run twice.
    let sql = "UPDATE event_outbox SET published_at = NULL WHERE id = $1";
    match &bus.db {
        Db::Sqlite(p) => sqlx::query(sql).bind(committed.id).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql).bind(committed.id).execute(p).await.map(|_| ()),
    }
    .expect("reset");
    outbox.notify();
    let db = bus.db.clone();
    eventually("the event is published again", async || {
        platform::events::pending(&db).await.expect("pending") == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        recorder.count(committed.id),
        1,
        "a redelivered event ran the handler twice"
    );
}

/// The broker connection asks for 16 KiB frames (less memory per connection): an event many
/// frames long still arrives whole.
async fn an_event_many_frames_long_arrives_whole(backend: Backend) {
    let Some(bus) = bus(backend).await else { return };
    let (recorder, outbox) = record_test_events(&bus).await;
    let text: String = (0..200_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let big = Event::new("test", "test.thing.happened", "big", json!({"text": text}));
    write_event(&bus.db, &big, true).await;
    outbox.notify();
    eventually("the 200 KB event arrives", async || recorder.count(big.id) == 1).await;
    let received = recorder
        .0
        .lock()
        .expect("lock")
        .iter()
        .find(|e| e.id == big.id)
        .cloned();
    assert_eq!(received.expect("received").data, big.data);
}

/// Two replicas of one context (two buses on one broker, one database): an `EveryReplica`
/// consumer runs in both (revocations kept in memory), a `OnePerContext` consumer in one only.
async fn every_replica_hears_its_events_and_shared_work_is_done_once() {
    let Some(first) = bus(Backend::Postgres).await else {
        return;
    };
    let settings = BusSettings {
        relay_interval: Duration::from_millis(100),
        // The same namespace: the same exchange and shared queues as the first replica.
        namespace: first.namespace.clone(),
        queue_expiry: Some(Duration::from_secs(120)),
        ..BusSettings::default()
    };
    let second = Events::rabbitmq(&amqp_url(), settings).await.expect("rabbitmq");
    let replicas = [&first.events, &second];
    let heard: Vec<Arc<Recorder>> = (0..2).map(|_| Arc::new(Recorder::default())).collect();
    let worked: Vec<Arc<Recorder>> = (0..2).map(|_| Arc::new(Recorder::default())).collect();
    for (i, events) in replicas.iter().enumerate() {
        events
            .subscribe(Subscription {
                context: "test",
                consumer: "in-memory",
                patterns: vec!["test.#"],
                db: first.db.clone(),
                handler: heard[i].clone(),
                delivery: platform::events::Delivery::EveryReplica,
            })
            .await
            .expect("subscribe");
        events
            .subscribe(Subscription {
                context: "test",
                consumer: "work",
                patterns: vec!["test.#"],
                db: first.db.clone(),
                handler: worked[i].clone(),
                delivery: platform::events::Delivery::OnePerContext,
            })
            .await
            .expect("subscribe");
    }
    let outbox = first.events.start_relay("test", &first.db);
    let mut ids = Vec::new();
    for n in 0..6 {
        let event = Event::new("test", "test.thing.happened", "r", json!({"n": n}));
        write_event(&first.db, &event, true).await;
        ids.push(event.id);
    }
    outbox.notify();
    eventually("both replicas heard every event", async || {
        ids.iter()
            .all(|id| heard[0].count(*id) == 1 && heard[1].count(*id) == 1)
    })
    .await;
    eventually("the shared work was done", async || {
        ids.iter().all(|id| worked[0].count(*id) + worked[1].count(*id) == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        assert_eq!(worked[0].count(*id) + worked[1].count(*id), 1, "shared work done twice");
        assert_eq!((heard[0].count(*id), heard[1].count(*id)), (1, 1));
    }
}

/// Wants only the events about subject `wanted`, and remembers what it was asked.
#[derive(Default)]
struct Picky {
    asked: Recorder,
    handled: Recorder,
}

#[async_trait::async_trait]
impl EventHandler for Picky {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        self.handled.handle(event).await
    }

    async fn wants(&self, event: &Event) -> bool {
        let _ = self.asked.handle(event).await;
        event.subject == "wanted"
    }
}

/// An event the handler does not want is acknowledged once, never handled and never recorded in
/// the inbox; a wanted one is handled and recorded as before.
async fn unwanted_events_are_acknowledged_without_the_inbox(backend: Backend) {
    let Some(bus) = bus(backend).await else { return };
    let picky = Arc::new(Picky::default());
    let outbox = handle_test_events(&bus, "picky", picky.clone()).await;
    let unwanted = Event::new("test", "test.thing.happened", "unwanted", json!({}));
    let wanted = Event::new("test", "test.thing.happened", "wanted", json!({}));
    write_event(&bus.db, &unwanted, true).await;
    write_event(&bus.db, &wanted, true).await;
    outbox.notify();
    eventually("the wanted event is handled", async || {
        picky.handled.count(wanted.id) == 1
    })
    .await;
    // A delivery left unacknowledged would come back within this wait and be asked about again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(picky.asked.count(unwanted.id), 1, "asked about once, then acknowledged");
    assert_eq!(picky.handled.count(unwanted.id), 0);
    let sql = "SELECT event_id FROM event_inbox WHERE consumer = 'picky'";
    let recorded: Vec<Uuid> = match &bus.db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
    }
    .expect("inbox");
    assert_eq!(recorded, vec![wanted.id], "only the wanted event is in the inbox");
}

/// Says it deduplicates in its own transaction, so the consumer leaves the inbox alone.
#[derive(Default)]
struct SelfDeduplicating(Recorder);

#[async_trait::async_trait]
impl EventHandler for SelfDeduplicating {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        self.0.handle(event).await
    }

    fn deduplicates(&self, _event: &Event) -> bool {
        true
    }
}

/// A handler that deduplicates by itself is neither looked up in the inbox nor recorded there:
/// a redelivery reaches it again (where its own check makes the repeat harmless).
async fn a_self_deduplicating_handler_skips_the_inbox(backend: Backend) {
    let Some(bus) = bus(backend).await else { return };
    let handler = Arc::new(SelfDeduplicating::default());
    let outbox = handle_test_events(&bus, "self-dedup", handler.clone()).await;
    let event = Event::new("test", "test.thing.happened", "d", json!({}));
    write_event(&bus.db, &event, true).await;
    outbox.notify();
    eventually("the event is handled", async || handler.0.count(event.id) == 1).await;
    let inbox = "SELECT COUNT(*) FROM event_inbox WHERE consumer = 'self-dedup'";
    let reset = "UPDATE event_outbox SET published_at = NULL WHERE id = $1";
    let recorded: i64 = match &bus.db {
        Db::Sqlite(p) => sqlx::query_scalar(inbox).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(inbox).fetch_one(p).await,
    }
    .expect("inbox");
    assert_eq!(recorded, 0, "nothing recorded in the inbox");
    match &bus.db {
        Db::Sqlite(p) => sqlx::query(reset).bind(event.id).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(reset).bind(event.id).execute(p).await.map(|_| ()),
    }
    .expect("reset");
    outbox.notify();
    eventually("the redelivery reaches the handler", async || {
        handler.0.count(event.id) == 2
    })
    .await;
}

/// Fails while `failing` is set.
struct Flaky {
    failing: std::sync::atomic::AtomicBool,
    handled: Recorder,
}

#[async_trait::async_trait]
impl EventHandler for Flaky {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(HandlerError::retryable("downstream unavailable"));
        }
        self.handled.handle(event).await
    }
}

async fn failing_handlers_retry_then_dead_letter_and_replay_succeeds_later(backend: Backend) {
    let Some(bus) = bus(backend).await else { return };
    let flaky = Arc::new(Flaky {
        failing: true.into(),
        handled: Recorder::default(),
    });
    let outbox = handle_test_events(&bus, "flaky", flaky.clone()).await;
    let event = Event::new("test", "test.thing.happened", "c", json!({}));
    write_event(&bus.db, &event, true).await;
    outbox.notify();
    let db = bus.db.clone();
    eventually("the event is dead-lettered", async || {
        !bus.events.dead_letters("test", 10).await.expect("list").is_empty()
    })
    .await;
    let letters = bus.events.dead_letters("test", 10).await.expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, Some(event.id));
    assert_eq!(letters[0].attempts, 5, "retried up to the policy's limit");
    assert!(letters[0].error.contains("downstream unavailable"));
    assert_eq!(
        platform::events::pending(&db).await.expect("pending"),
        0,
        "dead-lettering acks"
    );

    // Still failing: replay refuses and keeps the letter.
    assert!(bus.events.replay_dead_letter("test", letters[0].id).await.is_err());
    flaky.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let replayed = bus
        .events
        .replay_dead_letter("test", letters[0].id)
        .await
        .expect("replay");
    assert!(replayed.replayed_at.is_some());
    assert_eq!(flaky.handled.count(event.id), 1);
    assert!(bus.events.dead_letters("test", 10).await.expect("list").is_empty());
}

/// A poison message (a product event without a SKU) reaches inventory through the app's own
/// relay: it is dead-lettered at once, the next event still gets through, and an admin can list,
/// retry and discard it.
async fn poison_messages_are_dead_lettered_without_blocking_the_queue(app: TestApp) {
    let catalog_db = &app.dbs[&Service::Catalog];
    let poison = Event::new("catalog", ProductCreated::TYPE, "x", json!({"name": "no sku here"}));
    let good = Event::of(
        "y",
        &ProductCreated(catalog_events::Product {
            sku: "GOOD-0001".into(),
            id: Uuid::now_v7(),
            name: "Good".into(),
            status: "active".into(),
            price: catalog_events::Price {
                amount: 1000,
                currency: "EUR".into(),
            },
            version: Some(1),
        }),
    );
    write_event(catalog_db, &poison, true).await;
    write_event(catalog_db, &good, true).await;
    eventually("the good event is handled", async || {
        app.client
            .get(app.url("/api/v1/inventory/GOOD-0001"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    let admin = app.admin().await;
    let customer = app.signed_up("shopper@example.com").await;
    let path = "/api/v1/inventory/admin/dead-letters";
    assert_problem(app.get_auth(path, &customer.access).await, 403).await;
    let list: Value = app.get_auth(path, &admin.access).await.json().await.expect("json");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["event_id"], poison.id.to_string());
    assert_eq!(items[0]["consumer"], "stock-from-products");
    assert_eq!(items[0]["attempts"], 1, "a permanent failure is not retried");
    let id = items[0]["id"].as_str().expect("id");

    let replay = app
        .client
        .post(app.url(&format!("{path}/{id}/replay")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("replay");
    let problem = assert_problem(replay, 409).await;
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("sku")),
        "{problem}"
    );
    let discard = app
        .client
        .delete(app.url(&format!("{path}/{id}")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("discard");
    assert_eq!(discard.status(), 204);
    let list: Value = app.get_auth(path, &admin.access).await.json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    let missing = format!("{path}/{}/replay", Uuid::now_v7());
    let r = app
        .client
        .post(app.url(&missing))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("replay");
    assert_problem(r, 404).await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolled_back_events_are_never_published_and_redelivery_is_harmless() {
        super::rolled_back_events_are_never_published_and_redelivery_is_harmless(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_handlers_retry_then_dead_letter_and_replay_succeeds_later() {
        super::failing_handlers_retry_then_dead_letter_and_replay_succeeds_later(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unwanted_events_are_acknowledged_without_the_inbox() {
        super::unwanted_events_are_acknowledged_without_the_inbox(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_self_deduplicating_handler_skips_the_inbox() {
        super::a_self_deduplicating_handler_skips_the_inbox(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolled_back_events_are_never_published_and_redelivery_is_harmless() {
        super::rolled_back_events_are_never_published_and_redelivery_is_harmless(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_handlers_retry_then_dead_letter_and_replay_succeeds_later() {
        super::failing_handlers_retry_then_dead_letter_and_replay_succeeds_later(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unwanted_events_are_acknowledged_without_the_inbox() {
        super::unwanted_events_are_acknowledged_without_the_inbox(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_self_deduplicating_handler_skips_the_inbox() {
        super::a_self_deduplicating_handler_skips_the_inbox(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_many_frames_long_arrives_whole() {
        super::an_event_many_frames_long_arrives_whole(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_replica_hears_its_events_and_shared_work_is_done_once() {
        super::every_replica_hears_its_events_and_shared_work_is_done_once().await;
    }
}

mod app {
    crate::on_both_backends!(poison_messages_are_dead_lettered_without_blocking_the_queue);
    use super::poison_messages_are_dead_lettered_without_blocking_the_queue;
}
