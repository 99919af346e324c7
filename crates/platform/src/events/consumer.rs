//! What every transport does with a delivery: skip what the handler has no use for and
//! duplicates, run the handler with retries, record it in the inbox, or dead-letter it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

use super::{Delivery, Event, EventHandler, HandlerError, Subscription};
use crate::db::Db;

/// How often and how patiently a failing handler is retried before its event is dead-lettered.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): doubling from `first_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What the transport should do with the delivery.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Disposition {
    /// Handled, duplicate or dead-lettered: acknowledge.
    Ack,
    /// The consumer's own database is unreachable: leave the message on the queue.
    Requeue,
}

pub(super) struct Consumer {
    subscription: Subscription,
    retry: RetryPolicy,
    /// Tells this process's queue apart from other replicas' when each gets every event.
    instance: Uuid,
}

impl Consumer {
    pub fn new(subscription: Subscription, retry: RetryPolicy) -> Self {
        Self {
            subscription,
            retry,
            instance: Uuid::now_v7(),
        }
    }

    /// Whether every replica handles every event (own queue, no shared inbox).
    pub fn every_replica(&self) -> bool {
        self.subscription.delivery == Delivery::EveryReplica
    }

    pub fn instance(&self) -> Uuid {
        self.instance
    }

    pub fn context(&self) -> &'static str {
        self.subscription.context
    }

    pub fn name(&self) -> &'static str {
        self.subscription.consumer
    }

    pub fn patterns(&self) -> &[&'static str] {
        &self.subscription.patterns
    }

    pub fn db(&self) -> &Db {
        &self.subscription.db
    }

    pub fn handler(&self) -> &Arc<dyn EventHandler> {
        &self.subscription.handler
    }

    /// Handles one delivery to the end: the returned disposition says whether to ack it.
    pub async fn process(&self, payload: &[u8]) -> Disposition {
        let consumer = self.name();
        let event = match serde_json::from_slice::<Event>(payload) {
            Ok(event) => event,
            Err(e) => {
                let text = String::from_utf8_lossy(payload).into_owned();
                let error = format!("not an event envelope: {e}");
                return self.dead_letter(None, &text, &error, 0).await;
            }
        };
        if !self.handler().wants(&event).await {
            metrics::counter!("events_consumed_total", "consumer" => consumer, "outcome" => "ignored").increment(1);
            return Disposition::Ack;
        }
        match self.already_handled(&event).await {
            Ok(true) => {
                metrics::counter!("events_consumed_total", "consumer" => consumer, "outcome" => "duplicate")
                    .increment(1);
                return Disposition::Ack;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(consumer, error = %e, "inbox unreachable; leaving the event on the queue");
                return Disposition::Requeue;
            }
        }
        let mut attempt = 0;
        let error = loop {
            attempt += 1;
            match self.run_handler(&event).await {
                Ok(()) => {
                    return match self.record_handled(&event).await {
                        Ok(()) => {
                            metrics::counter!("events_consumed_total", "consumer" => consumer, "outcome" => "handled")
                                .increment(1);
                            Disposition::Ack
                        }
                        // The handler is idempotent: handling it again later is safe.
                        Err(_) => Disposition::Requeue,
                    };
                }
                Err(e) if e.is_permanent() || attempt >= self.retry.max_attempts => break e,
                Err(e) => {
                    metrics::counter!("events_consumed_total", "consumer" => consumer, "outcome" => "retried")
                        .increment(1);
                    let wait = self.retry.backoff(attempt);
                    tracing::info!(consumer, event_id = %event.id, event_type = %event.event_type, attempt,
                        error = %e, retry_in_ms = wait.as_millis() as u64, "event handler failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        let text = String::from_utf8_lossy(payload).into_owned();
        self.dead_letter(Some(&event), &text, &error.to_string(), attempt).await
    }

    /// Runs the handler in a span that continues the producer's trace.
    pub async fn run_handler(&self, event: &Event) -> Result<(), HandlerError> {
        let span = tracing::info_span!("event.handle", otel.kind = "consumer", consumer = self.name(),
            event_type = %event.event_type, event_id = %event.id);
        if let Some(tp) = &event.traceparent {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let carrier = std::collections::HashMap::from([("traceparent".to_owned(), tp.clone())]);
            let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
            let _ = span.set_parent(parent);
        }
        let started = Instant::now();
        let result = self.handler().handle(event).instrument(span).await;
        metrics::histogram!("events_handle_duration_seconds", "consumer" => self.name())
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Whether this consumer looks events up in its inbox and records them there. Not when every
    /// replica handles every event: the inbox is shared by the replicas, and the first to record
    /// an event would hide it from the others (redelivery to one process is harmless, the handler
    /// being idempotent). Not when the handler deduplicates in its own transaction either.
    fn uses_inbox(&self, event: &Event) -> bool {
        !self.every_replica() && !self.handler().deduplicates(event)
    }

    async fn already_handled(&self, event: &Event) -> Result<bool, sqlx::Error> {
        if !self.uses_inbox(event) {
            return Ok(false);
        }
        let event_id = event.id;
        let sql = "SELECT COUNT(*) FROM event_inbox WHERE consumer = $1 AND event_id = $2";
        let n: i64 = crate::with_pool!(self.db(), |p| sqlx::query_scalar(sql)
            .bind(self.name())
            .bind(event_id)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    pub async fn record_handled(&self, event: &Event) -> Result<(), sqlx::Error> {
        if !self.uses_inbox(event) {
            return Ok(());
        }
        let event_id = event.id;
        let sql = "INSERT INTO event_inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3)
                   ON CONFLICT (consumer, event_id) DO NOTHING";
        let now = OffsetDateTime::now_utc();
        crate::with_pool!(self.db(), |p| sqlx::query(sql)
            .bind(self.name())
            .bind(event_id)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    async fn dead_letter(&self, event: Option<&Event>, payload: &str, error: &str, attempts: u32) -> Disposition {
        let consumer = self.name();
        let sql =
            "INSERT INTO event_dead_letters (id, consumer, event_id, event_type, payload, error, attempts, failed_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let id = Uuid::now_v7();
        let event_id = event.map(|e| e.id);
        let event_type = event.map(|e| e.event_type.clone());
        let now = OffsetDateTime::now_utc();
        let attempts = i64::from(attempts);
        let result = crate::with_pool!(self.db(), |p| sqlx::query(sql)
            .bind(id)
            .bind(consumer)
            .bind(event_id)
            .bind(&event_type)
            .bind(payload)
            .bind(error)
            .bind(attempts)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()));
        match result {
            Ok(()) => {
                metrics::counter!("events_consumed_total", "consumer" => consumer, "outcome" => "dead_lettered")
                    .increment(1);
                tracing::error!(consumer, dead_letter_id = %id, ?event_id, %error,
                    "event dead-lettered; inspect and replay it with the admin dead-letter API");
                Disposition::Ack
            }
            Err(e) => {
                tracing::warn!(consumer, error = %e, "cannot store a dead letter; leaving the event on the queue");
                Disposition::Requeue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let p = RetryPolicy {
            max_attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
        assert_eq!(p.backoff(40), Duration::from_millis(500));
    }
}
