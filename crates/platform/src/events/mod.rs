//! The event bus: a transactional outbox per context, a relay that publishes what was committed,
//! and consumers that handle each event effectively once.
//!
//! * A context writes events with [`enqueue`] inside the transaction that changes its state, so an
//!   event exists if and only if the change was committed.
//! * Its relay ([`Events::start_relay`]) publishes pending outbox rows — to RabbitMQ (topic exchange
//!   `emporium.events`, persistent messages, publisher confirms) in production, to the in-process
//!   bus in embedded mode — and marks them sent only once the transport confirmed them.
//! * Consumers ([`Events::subscribe`]) get at-least-once delivery with manual acks; an inbox of
//!   handled ids makes redelivery harmless; failures retry with backoff, then land in the
//!   consuming context's dead-letter table, which admins list and replay over HTTP.

mod consumer;
mod dead_letters;
mod inprocess;
mod outbox;
mod rabbit;
pub mod topic;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Db, DbError};
use crate::health::HealthCheck;
use crate::sync::lock;

pub use consumer::RetryPolicy;
pub use dead_letters::DeadLetter;
pub use outbox::{Outbox, OutboxConnection, enqueue, enqueue_all};

/// The RabbitMQ topic exchange every context publishes to (with the default namespace).
pub const EXCHANGE: &str = "emporium.events";

/// A CloudEvents-shaped envelope, identical on every transport.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Event {
    /// UUIDv7, unique per event; consumers deduplicate on it.
    pub id: Uuid,
    /// Past-tense name, `<context>.<aggregate>.<verb>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The producing context.
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What the event is about (an id or a SKU).
    pub subject: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// W3C trace context of the request that caused the event, so traces continue across the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Event {
    /// A new event stamped with the current time and trace context.
    pub fn new(source: &str, event_type: &str, subject: impl Into<String>, data: impl Serialize) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            source: source.to_owned(),
            time: OffsetDateTime::now_utc(),
            subject: subject.into(),
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
            traceparent: current_traceparent(),
        }
    }

    /// A new event of type `E::TYPE` from the context that owns it, carrying `payload`: the
    /// only way producers build events, so none spells a type name or a payload field itself.
    pub fn of<E: contracts::events::Event>(subject: impl Into<String>, payload: &E) -> Self {
        Self::new(E::source(), E::TYPE, subject, payload)
    }

    /// Whether this is an `E` event.
    pub fn is<E: contracts::events::Event>(&self) -> bool {
        self.event_type == E::TYPE
    }

    /// The data as `E`'s payload, when this is an `E` event (`None` for any other type).
    pub fn payload<E: contracts::events::Event>(&self) -> Option<Result<E, serde_json::Error>> {
        self.is::<E>().then(|| self.data_as())
    }

    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }
}

/// The `traceparent` of the current span, when it is being traced.
pub(crate) fn current_traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let sc = span.span_context();
    sc.is_valid().then(|| crate::http::w3c_trace_header(sc))
}

/// Why a handler did not handle an event.
#[derive(Debug)]
pub struct HandlerError {
    message: String,
    permanent: bool,
}

impl HandlerError {
    /// A failure that may pass (a database hiccup): retried with backoff.
    pub fn retryable(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure no retry can fix (undecodable data): dead-lettered at once.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: true,
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        Self::retryable(e)
    }
}

#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Delivery is at least once; ids already in the inbox are skipped, but a crash between the
    /// handler's commit and the inbox record replays the event, so handlers must be idempotent.
    async fn handle(&self, event: &Event) -> Result<(), HandlerError>;

    /// Whether handling `event` could change anything. Events the handler has no use for are
    /// acknowledged without looking them up in the inbox or recording them there: two statements
    /// saved per event (the webhook queue takes every event, most of them wanted by no endpoint).
    /// Say `true` when unsure, e.g. when the answer needs a database that is unreachable.
    async fn wants(&self, _event: &Event) -> bool {
        true
    }

    /// Whether the handler's own transaction already makes a repeat of `event` change nothing (a
    /// version column it checks, a row per handled event it inserts). Such an event skips the
    /// inbox, which would only repeat that check: two statements, each its own commit, saved per
    /// event. Say `true` only when a duplicate, even one arriving after newer events, is harmless.
    fn deduplicates(&self, _event: &Event) -> bool {
        false
    }
}

/// A consumer: which events, handled how, with its inbox and dead letters in which database.
pub struct Subscription {
    /// The consuming context, e.g. `inventory`.
    pub context: &'static str,
    /// A stable name for this consumer (part of its queue name).
    pub consumer: &'static str,
    /// AMQP topic patterns: `*` is one word, `#` zero or more.
    pub patterns: Vec<&'static str>,
    pub db: Db,
    pub handler: Arc<dyn EventHandler>,
    /// Whether one replica of the context handles each event, or every replica does.
    pub delivery: Delivery,
}

/// Who among a context's replicas sees an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Work to do once: the replicas share one durable queue and one inbox, so each event is
    /// handled by one of them (and only once).
    OnePerContext,
    /// State every process keeps in memory (e.g. revoked sessions): each process gets its own
    /// queue and handles every event itself, without the shared inbox (which would make all but
    /// the first replica skip it). The handler must be idempotent.
    EveryReplica,
}

/// Bus settings shared by relays and consumers.
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// How often a relay looks at its outbox when nothing woke it.
    pub relay_interval: Duration,
    pub retry: RetryPolicy,
    /// Deliveries a consumer handles at once.
    pub prefetch: u16,
    /// Published outbox rows are deleted after this long.
    pub outbox_retention: Duration,
    /// RabbitMQ names: exchange `<namespace>.events`, queues `<namespace>.<context>.<consumer>`.
    /// Lets several environments (or test runs) share one broker without seeing each other.
    pub namespace: String,
    /// Delete a consumer's queue after it has had no consumer this long (preview environments,
    /// tests); `None` keeps queues forever, as production wants.
    pub queue_expiry: Option<Duration>,
    /// The `event_publish_delay_ms` fault flag holds each batch back before it is published.
    pub faults: crate::faults::Faults,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            relay_interval: Duration::from_millis(250),
            retry: RetryPolicy::default(),
            prefetch: 16,
            outbox_retention: Duration::from_secs(7 * 86_400),
            namespace: "emporium".into(),
            queue_expiry: None,
            faults: crate::faults::Faults::disabled(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to RabbitMQ at {url}: {message}")]
pub struct BusConnectError {
    url: String,
    message: String,
}

/// The process's bus: its transport, relays and consumers.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    settings: BusSettings,
    consumers: Mutex<Vec<Arc<consumer::Consumer>>>,
    /// Set once by [`Events::shutdown`]: relays and consumers finish what they hold and end.
    stop: tokio::sync::watch::Sender<bool>,
    /// The relays' and consumers' tasks, awaited by [`Events::shutdown`].
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Resolves once [`Events::shutdown`] was called; never, if the bus was dropped without it.
pub(super) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How long [`Events::shutdown`] waits for relays and consumers to finish their current batch.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
enum Transport {
    InProcess(inprocess::InProcessBus),
    Rabbit(rabbit::RabbitBus),
}

impl Events {
    /// Embedded mode: every context of this process on one in-process bus.
    pub fn in_process(settings: BusSettings) -> Self {
        Self::with(Transport::InProcess(inprocess::InProcessBus::default()), settings)
    }

    /// Production: RabbitMQ at `url` (checked now, so a wrong URL fails at start-up).
    pub async fn rabbitmq(url: &str, settings: BusSettings) -> Result<Self, BusConnectError> {
        let bus = rabbit::RabbitBus::connect(url, &settings)
            .await
            .map_err(|message| BusConnectError {
                url: crate::db::redact_url(url),
                message,
            })?;
        Ok(Self::with(Transport::Rabbit(bus), settings))
    }

    fn with(transport: Transport, settings: BusSettings) -> Self {
        describe_metrics();
        Self {
            inner: Arc::new(Inner {
                transport,
                settings,
                consumers: Mutex::new(Vec::new()),
                stop: tokio::sync::watch::Sender::new(false),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn transport_name(&self) -> &'static str {
        match self.inner.transport {
            Transport::InProcess(_) => "in-process",
            Transport::Rabbit(_) => "rabbitmq",
        }
    }

    /// Starts `context`'s relay from its outbox in `db`; the handle wakes it after a commit.
    pub fn start_relay(&self, context: &'static str, db: &Db) -> Outbox {
        let (outbox, task) = outbox::spawn_relay(
            context,
            db.clone(),
            self.inner.transport.clone(),
            &self.inner.settings,
            self.inner.stop.subscribe(),
        );
        lock(&self.inner.tasks).push(task);
        outbox
    }

    /// Stops every relay and consumer of this process and waits (up to 10 s) until they have
    /// finished the batch or deliveries in hand. Call before closing the database pools, so
    /// nothing touches a closed pool; events not yet published stay in the outbox for the next
    /// start, unacknowledged deliveries go back to the queue.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let tasks: Vec<_> = lock(&self.inner.tasks).drain(..).collect();
        if tokio::time::timeout(SHUTDOWN_WAIT, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::info!("event relays or consumers still busy after 10 s; stopping anyway");
        }
    }

    /// Starts consuming for `subscription` (declaring its queue and bindings on RabbitMQ).
    pub async fn subscribe(&self, subscription: Subscription) -> anyhow::Result<()> {
        let consumer = Arc::new(consumer::Consumer::new(subscription, self.inner.settings.retry.clone()));
        match &self.inner.transport {
            Transport::InProcess(bus) => bus.subscribe(consumer.clone(), self.inner.settings.prefetch),
            Transport::Rabbit(bus) => {
                let task = bus
                    .subscribe(
                        consumer.clone(),
                        self.inner.settings.prefetch,
                        self.inner.stop.subscribe(),
                    )
                    .await?;
                lock(&self.inner.tasks).push(task);
            }
        }
        lock(&self.inner.consumers).push(consumer);
        Ok(())
    }

    /// Events delivered to this process's consumers' queues and not yet taken (RabbitMQ; the
    /// in-process bus keeps an event in its outbox until every consumer is done with it, so
    /// [`pending`] says it all there).
    pub async fn queued(&self) -> Result<u64, String> {
        match &self.inner.transport {
            Transport::InProcess(_) => Ok(0),
            Transport::Rabbit(bus) => {
                let consumers = lock(&self.inner.consumers).clone();
                bus.ready_messages(&consumers).await
            }
        }
    }

    /// Readiness of the broker (RabbitMQ only).
    pub fn health_check(&self) -> Option<Arc<dyn HealthCheck>> {
        match &self.inner.transport {
            Transport::InProcess(_) => None,
            Transport::Rabbit(bus) => Some(Arc::new(bus.clone())),
        }
    }

    /// Admin endpoints over the dead letters of every consumer in this process, mounted under
    /// `/api/v1/<context>/admin/dead-letters` for each consuming context.
    pub fn dead_letter_router(&self) -> axum::Router {
        dead_letters::router(lock(&self.inner.consumers).clone())
    }

    /// The open (not yet replayed) dead letters of `context`'s consumers, oldest first.
    pub async fn dead_letters(&self, context: &str, limit: u32) -> Result<Vec<DeadLetter>, crate::Problem> {
        let consumers = self.consumers_of(context);
        let Some(first) = consumers.first() else {
            return Ok(Vec::new());
        };
        let filter = dead_letters::Filter {
            consumer: None,
            include_replayed: false,
            after: None,
        };
        dead_letters::list_in(first.db(), &filter, limit).await
    }

    /// Runs a dead letter's handler again (see the admin replay endpoint).
    pub async fn replay_dead_letter(&self, context: &str, id: Uuid) -> Result<DeadLetter, crate::Problem> {
        dead_letters::replay_in(&self.consumers_of(context), id).await
    }

    fn consumers_of(&self, context: &str) -> Vec<Arc<consumer::Consumer>> {
        lock(&self.inner.consumers)
            .iter()
            .filter(|c| c.context() == context)
            .cloned()
            .collect()
    }

    /// The contexts with consumers in this process (for the admin routes and the API document).
    pub fn consuming_contexts(&self) -> Vec<&'static str> {
        let mut contexts: Vec<_> = lock(&self.inner.consumers).iter().map(|c| c.context()).collect();
        contexts.sort_unstable();
        contexts.dedup();
        contexts
    }
}

/// Creates the bus tables (outbox, inbox, dead letters) in a context's database. They have their
/// own migrations table, so they never clash with the context's migrations.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    let err = |source| DbError::Migrate {
        context: "events".into(),
        source,
    };
    const TABLE: &str = "_emporium_events_migrations";
    match db {
        Db::Sqlite(db) => {
            let mut m = sqlx::migrate!("./migrations/events/sqlite");
            m.dangerous_set_table_name(TABLE);
            let mut conn = db.acquire().await.map_err(|e| err(e.into()))?;
            m.run(&mut *conn).await.map_err(err)
        }
        Db::Postgres(pool) => {
            let mut m = sqlx::migrate!("./migrations/events/postgres");
            m.dangerous_set_table_name(TABLE);
            m.run(pool).await.map_err(err)
        }
    }
}

/// How many committed events in `db`'s outbox the relay has not yet seen confirmed.
pub async fn pending(db: &Db) -> Result<i64, sqlx::Error> {
    let sql = "SELECT COUNT(*) FROM event_outbox WHERE published_at IS NULL";
    crate::with_pool!(db, |p| sqlx::query_scalar(sql).fetch_one(p).await)
}

/// The OpenAPI description of the dead-letter admin endpoints.
pub fn openapi() -> utoipa::openapi::OpenApi {
    dead_letters::openapi()
}

fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            "events_published_total",
            "Events the relay published and the transport confirmed."
        );
        metrics::describe_counter!(
            "events_publish_failures_total",
            "Relay publish attempts that failed (retried)."
        );
        metrics::describe_gauge!(
            "events_outbox_pending",
            "Committed events not yet confirmed by the transport."
        );
        metrics::describe_counter!(
            "events_consumed_total",
            "Deliveries by consumer and outcome (handled, ignored, duplicate, retried, dead_lettered)."
        );
        metrics::describe_histogram!(
            "events_handle_duration_seconds",
            "Time spent in an event handler, per consumer."
        );
        metrics::describe_gauge!(
            "events_queue_depth",
            "RabbitMQ: messages ready in the consumer's queue (asked of the broker every 5 s)."
        );
        metrics::describe_gauge!(
            "events_consumer_unacked",
            "RabbitMQ: deliveries this process holds and has not acknowledged yet, per consumer."
        );
        metrics::describe_counter!(
            "events_redeliveries_total",
            "RabbitMQ: deliveries the broker marked as redelivered, per consumer."
        );
        metrics::describe_gauge!(
            "events_broker_connected",
            "RabbitMQ: 1 while the consumer holds a live broker connection, else 0."
        );
        metrics::describe_gauge!(
            "events_broker_publisher_connected",
            "RabbitMQ: 1 while the outbox relay's publishing connection is up, else 0."
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_uses_cloudevents_names() {
        let e = Event::new(
            "catalog",
            "catalog.product.created",
            "p1",
            serde_json::json!({"sku": "A"}),
        );
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(json["type"], "catalog.product.created");
        assert_eq!(json["source"], "catalog");
        assert!(json["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        let back: Event = serde_json::from_value(json).expect("parse");
        assert_eq!(back, e);
        #[derive(Deserialize)]
        struct Data {
            sku: String,
        }
        assert_eq!(e.data_as::<Data>().expect("data").sku, "A");
    }

    #[test]
    fn typed_events_name_their_type_and_source() {
        use contracts::events::Event as _;
        use contracts::events::inventory::{StockChanged, StockLow};
        let levels = StockChanged {
            sku: "ABC-1".into(),
            available: 3,
            on_hand: 5,
            reserved: 2,
            previous_available: None,
        };
        let e = Event::of("ABC-1", &levels);
        assert_eq!(
            (e.event_type.as_str(), e.source.as_str()),
            (StockChanged::TYPE, "inventory")
        );
        assert_eq!(e.subject, "ABC-1");
        assert_eq!(
            e.data,
            serde_json::json!({"sku": "ABC-1", "available": 3, "on_hand": 5, "reserved": 2})
        );
        assert!(e.is::<StockChanged>() && !e.is::<StockLow>());
        assert_eq!(e.payload::<StockChanged>().map(Result::ok), Some(Some(levels)));
        assert!(e.payload::<StockLow>().is_none());
    }
}
