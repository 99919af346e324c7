//! The transactional outbox and its relay.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{BusSettings, Event, Transport};
use crate::db::Db;

/// A connection that can hold outbox rows: implemented for both backends, so generic stores can
/// write events inside their own transactions.
pub trait OutboxConnection: Send {
    /// Inserts the rows in one statement.
    fn insert_outbox<'a>(&'a mut self, rows: Vec<OutboxRow<'a>>) -> BoxFuture<'a, Result<(), sqlx::Error>>;
    /// Deletes published outbox rows and dead letters whose text matches the `LIKE` pattern;
    /// answers how many rows went (see [`crate::privacy::forget_events_about_in`]).
    fn delete_stored_events_like<'a>(&'a mut self, pattern: &'a str) -> BoxFuture<'a, Result<u64, sqlx::Error>>;
}

/// One outbox row, ready to insert.
pub struct OutboxRow<'a> {
    id: Uuid,
    event_type: &'a str,
    envelope: String,
    created_at: OffsetDateTime,
}

const INSERT: &str = "INSERT INTO event_outbox (id, event_type, envelope, created_at) VALUES ";
const DELETE_PUBLISHED_LIKE: &str = "DELETE FROM event_outbox WHERE published_at IS NOT NULL AND envelope LIKE $1";
const DELETE_DEAD_LETTERS_LIKE: &str = "DELETE FROM event_dead_letters WHERE payload LIKE $1";

macro_rules! outbox_connection {
    ($($conn:ty),*) => {$(
        impl OutboxConnection for $conn {
            fn insert_outbox<'a>(&'a mut self, rows: Vec<OutboxRow<'a>>) -> BoxFuture<'a, Result<(), sqlx::Error>> {
                Box::pin(async move {
                    if rows.is_empty() {
                        return Ok(());
                    }
                    let text = format!("{INSERT}{}", crate::db::values_rows(rows.len(), 4));
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
                    for row in rows {
                        query = query.bind(row.id).bind(row.event_type).bind(row.envelope).bind(row.created_at);
                    }
                    query.execute(self).await.map(|_| ())
                })
            }

            fn delete_stored_events_like<'a>(&'a mut self, pattern: &'a str) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
                Box::pin(async move {
                    let published = sqlx::query(DELETE_PUBLISHED_LIKE).bind(pattern).execute(&mut *self).await?;
                    let dead = sqlx::query(DELETE_DEAD_LETTERS_LIKE).bind(pattern).execute(&mut *self).await?;
                    Ok(published.rows_affected() + dead.rows_affected())
                })
            }
        }
    )*};
}

outbox_connection!(sqlx::SqliteConnection, sqlx::PgConnection);

/// Writes `event` to the outbox on `conn` — call it inside the transaction that makes the change,
/// so a rollback takes the event with it.
pub async fn enqueue<C: OutboxConnection + ?Sized>(conn: &mut C, event: &Event) -> Result<(), sqlx::Error> {
    enqueue_all(conn, std::slice::from_ref(event)).await
}

/// Writes `events` to the outbox on `conn` in one statement (one round trip inside the
/// transaction however many there are), like [`enqueue`].
pub async fn enqueue_all<C: OutboxConnection + ?Sized>(conn: &mut C, events: &[Event]) -> Result<(), sqlx::Error> {
    let rows = events
        .iter()
        .map(|event| {
            Ok(OutboxRow {
                id: event.id,
                event_type: &event.event_type,
                envelope: serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
                created_at: event.time,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    conn.insert_outbox(rows).await
}

/// A handle to a context's relay.
#[derive(Clone)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    /// A handle with no relay behind it, for short-lived commands (the admin CLI): what they
    /// write stays in the outbox until the serving process's relay publishes it.
    pub fn detached() -> Self {
        Self {
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the relay now instead of at its next poll; call after committing events.
    pub fn notify(&self) {
        self.wake.notify_one();
    }
}

const BATCH: i64 = 200;
const MAX_BACKOFF: Duration = Duration::from_secs(15);
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often at most the relay counts its pending rows for `events_outbox_pending`. Counting after
/// every pass cost a statement per pass (about six per checkout on SQLite); a gauge scraped every
/// 15 s needs no more than this.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// Starts the relay; it ends once `stop` turns true (after the batch in hand, never mid-batch).
pub(super) fn spawn_relay(
    context: &'static str,
    db: Db,
    transport: Transport,
    settings: &BusSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Outbox, tokio::task::JoinHandle<()>) {
    let wake = Arc::new(Notify::new());
    let handle = Outbox { wake: wake.clone() };
    let interval = settings.relay_interval;
    let retention = settings.outbox_retention;
    let faults = settings.faults.clone();
    let task = tokio::spawn(async move {
        let mut backoff = Duration::ZERO;
        let mut last_prune = tokio::time::Instant::now();
        let mut last_gauge: Option<tokio::time::Instant> = None;
        loop {
            let pause = if backoff.is_zero() { interval } else { backoff };
            tokio::select! {
                () = super::stopped(&mut stop) => break,
                _ = wake.notified(), if backoff.is_zero() => {}
                () = tokio::time::sleep(pause) => {}
            }
            if *stop.borrow() {
                break;
            }
            match relay_pending(context, &db, &transport, &faults).await {
                Ok(()) => backoff = Duration::ZERO,
                Err(error) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(200), MAX_BACKOFF);
                    metrics::counter!("events_publish_failures_total", "context" => context).increment(1);
                    tracing::warn!(context, %error, retry_in_ms = backoff.as_millis() as u64,
                        "publishing outbox events failed; they stay in the outbox and will be retried");
                }
            }
            // After failed passes too: a backlog behind an unreachable broker is what the gauge
            // (and the OutboxBacklog alert on it) is for.
            if last_gauge.is_none_or(|at| at.elapsed() >= GAUGE_EVERY) {
                last_gauge = Some(tokio::time::Instant::now());
                update_pending_gauge(context, &db).await;
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = tokio::time::Instant::now();
                prune(&db, retention).await;
            }
        }
    });
    (handle, task)
}

/// Publishes pending events in order until the outbox is drained or the transport fails.
async fn relay_pending(
    context: &'static str,
    db: &Db,
    transport: &Transport,
    faults: &crate::faults::Faults,
) -> Result<(), String> {
    loop {
        let published = match db {
            Db::Sqlite(pool) => {
                // One relay per SQLite file (embedded mode is one process): no row locking needed.
                let rows: Vec<(Uuid, String)> = sqlx::query_as(
                    "SELECT id, envelope FROM event_outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
                )
                .bind(BATCH)
                .fetch_all(pool)
                .await
                .map_err(|e| e.to_string())?;
                let count = rows.len();
                injected_delay(faults, count).await;
                publish_and_mark(context, rows, transport, |ids, now, error| async move {
                    mark_sqlite(pool, ids, now, error).await
                })
                .await?;
                count
            }
            Db::Postgres(pool) => {
                // Replicas share the outbox: each batch is locked by one relay, others skip it.
                // Taken and marked published in one statement; the mark is undone below if the
                // broker refuses the batch, and nobody sees it before the commit anyway.
                let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
                let mut rows: Vec<(Uuid, String)> = sqlx::query_as(
                    "WITH batch AS MATERIALIZED (
                         SELECT id FROM event_outbox WHERE published_at IS NULL ORDER BY id LIMIT $1
                         FOR UPDATE SKIP LOCKED)
                     UPDATE event_outbox o SET published_at = $2 FROM batch WHERE o.id = batch.id
                     RETURNING o.id, o.envelope",
                )
                .bind(BATCH)
                .bind(OffsetDateTime::now_utc())
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
                if rows.is_empty() {
                    // Woken by a transaction that wrote no event, or by one whose events an earlier
                    // pass took: nothing to publish.
                    tx.rollback().await.map_err(|e| e.to_string())?;
                    return Ok(());
                }
                // RETURNING keeps no order: events go out in the order they were written.
                rows.sort_unstable_by_key(|(id, _)| *id);
                let count = rows.len();
                injected_delay(faults, count).await;
                let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
                let outcome = publish_batch(context, rows, transport).await;
                if let Err(error) = &outcome {
                    sqlx::query(
                        "UPDATE event_outbox SET published_at = NULL, attempts = attempts + 1, last_error = $2
                         WHERE id = ANY($1)",
                    )
                    .bind(&ids)
                    .bind(error)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                }
                tx.commit().await.map_err(|e| e.to_string())?;
                outcome?;
                count
            }
        };
        if published < BATCH as usize {
            return Ok(());
        }
    }
}

/// The `event_publish_delay_ms` fault flag: a batch in hand waits before it is published, as behind
/// a slow broker, so every event reaches its consumers at least that long after it was written.
async fn injected_delay(faults: &crate::faults::Faults, rows: usize) {
    if rows > 0
        && let Some(delay) = faults.event_publish_delay()
    {
        tokio::time::sleep(delay).await;
    }
}

async fn publish_and_mark<F, Fut>(
    context: &'static str,
    rows: Vec<(Uuid, String)>,
    transport: &Transport,
    mark: F,
) -> Result<(), String>
where
    F: FnOnce(Vec<Uuid>, OffsetDateTime, Option<String>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let outcome = publish_batch(context, rows, transport).await;
    mark(ids, OffsetDateTime::now_utc(), outcome.as_ref().err().cloned()).await?;
    outcome
}

/// Marks a published (or failed) batch in one statement: one round trip to SQLite's connection
/// thread instead of one per event.
async fn mark_sqlite(
    pool: &crate::db::SqliteDb,
    ids: Vec<Uuid>,
    now: OffsetDateTime,
    error: Option<String>,
) -> Result<(), String> {
    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("UPDATE event_outbox SET ");
    match error {
        None => q.push("published_at = ").push_bind(now),
        Some(e) => q.push("attempts = attempts + 1, last_error = ").push_bind(e),
    };
    q.push(" WHERE id IN (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    q.push(")");
    // Up to BATCH + 1 parameters, a different text for each batch size: not worth caching.
    q.build()
        .persistent(false)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Publishes a batch and waits for the transport to confirm every event.
async fn publish_batch(context: &'static str, rows: Vec<(Uuid, String)>, transport: &Transport) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut events = Vec::with_capacity(rows.len());
    for (id, envelope) in rows {
        match serde_json::from_str::<Event>(&envelope) {
            Ok(event) => events.push((event, envelope)),
            // Written by `enqueue` from an `Event`: unreadable only if edited by hand. Publishing
            // the raw text lets consumers dead-letter it visibly instead of blocking the outbox.
            Err(e) => {
                tracing::error!(context, %id, error = %e, "outbox row is not an event envelope; publishing it as is");
                events.push((
                    Event {
                        id,
                        event_type: "unknown".into(),
                        source: context.into(),
                        time: OffsetDateTime::now_utc(),
                        subject: String::new(),
                        data: serde_json::Value::Null,
                        traceparent: None,
                    },
                    envelope,
                ));
            }
        }
    }
    let count = events.len() as u64;
    match transport {
        Transport::InProcess(bus) => bus.publish_batch(&events).await?,
        Transport::Rabbit(bus) => bus.publish_batch(&events).await?,
    }
    metrics::counter!("events_published_total", "context" => context).increment(count);
    Ok(())
}

async fn update_pending_gauge(context: &'static str, db: &Db) {
    if let Ok(n) = super::pending(db).await {
        metrics::gauge!("events_outbox_pending", "context" => context).set(n as f64);
    }
}

async fn prune(db: &Db, retention: Duration) {
    let cutoff = OffsetDateTime::now_utc() - retention;
    // A person's exported data (`*.privacy.exported`) is not kept once identity has it.
    let sql = "DELETE FROM event_outbox WHERE published_at IS NOT NULL
               AND (published_at < $1 OR event_type LIKE '%.privacy.exported')";
    let result = crate::with_pool!(db, |pool| sqlx::query(sql).bind(cutoff).execute(pool).await.map(|_| ()));
    if let Err(error) = result {
        tracing::warn!(%error, "pruning published outbox rows failed");
    }
}
