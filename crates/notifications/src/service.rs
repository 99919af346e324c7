//! Notifications' use cases: turn an event into logged deliveries, send due deliveries with
//! retries, preferences, and the admin view of the log.
//!
//! Exactly-once, as far as it goes: handling an event only inserts delivery rows, unique per
//! (event, kind, recipient), so a redelivered event (RabbitMQ restart, replayed dead letter) adds
//! nothing. A row is sent by one worker at a time (claim with lease). The one window left is
//! between the SMTP server accepting a message and the row being marked sent: a crash there sends
//! it again once the lease expires (the resend carries the same `Message-ID`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use lettre::message::Mailbox;
use platform::Problem;
use platform::auth::AuthUser;
use platform::clock::unix_ms;
use platform::events::{Event, HandlerError};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::NotificationsConfig;
use crate::domain::{
    AfterFailure, DeliveryStatus, EmailAddress, Preferences, PreferencesChange, after_failure, apply_preferences,
    can_retry,
};
use crate::events::{self, To};
use crate::store::{
    Delivery, DeliveryFilter, Failure, NewDelivery, NotificationStore, Recipient, RetryRefused, Sent, StoreError,
};
use crate::templates;
use crate::transport::{MailTransport, Outgoing, Sender};

/// How long a claimed row is reserved for the worker that claimed it (several SMTP timeouts).
pub const LEASE: Duration = Duration::from_secs(60);
/// Rows claimed (and sent concurrently) at once.
pub const BATCH: i64 = 16;

/// Roles that may read the delivery log; only admins may resend.
const LOG_READERS: &[&str] = &["admin", "support"];
const LOG_WRITERS: &[&str] = &["admin"];

pub fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            "notifications_sent_total",
            "Messages handed to the mail transport, by kind."
        );
        metrics::describe_counter!(
            "notifications_failed_total",
            "Failed delivery attempts (retried or given up), by kind."
        );
        metrics::describe_counter!(
            "notifications_dead_total",
            "Deliveries given up after the last attempt or a permanent refusal."
        );
        metrics::describe_gauge!(
            "notifications_pending",
            "Deliveries not yet sent (pending or failed-retrying)."
        );
        metrics::describe_histogram!(
            "notifications_delivery_duration_seconds",
            metrics::Unit::Seconds,
            "Time to hand one message to the transport (SMTP exchange), by outcome."
        );
        metrics::describe_counter!(
            "webhook_attempts_total",
            "Outbound webhook delivery attempts, by outcome (delivered, retrying, failed)."
        );
        metrics::describe_histogram!(
            "webhook_attempt_duration_seconds",
            metrics::Unit::Seconds,
            "Time of one outbound webhook attempt, until the receiver's answer or the deadline."
        );
    });
}

fn ms_to_time(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

pub struct NotificationService {
    store: Arc<dyn NotificationStore>,
    config: NotificationsConfig,
    sender: Sender,
    from: Mailbox,
    transport_name: &'static str,
    wake: Notify,
    faults: platform::faults::Faults,
}

impl NotificationService {
    pub fn new(
        store: Arc<dyn NotificationStore>,
        config: NotificationsConfig,
        transport: &MailTransport,
    ) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("EMPORIUM_MAIL_FROM: {e}"))?;
        Ok(Self {
            store,
            sender: Sender::new(transport)?,
            from,
            transport_name: transport.name(),
            config,
            wake: Notify::new(),
            faults: platform::faults::Faults::disabled(),
        })
    }

    /// The same service, obeying the `smtp_failure` fault flag of `faults`.
    #[must_use]
    pub fn with_faults(mut self, faults: platform::faults::Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn config(&self) -> &NotificationsConfig {
        &self.config
    }

    /// Wakes the delivery worker (new rows, or a retry).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until woken or `timeout` passed.
    pub async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    /// Renders and logs what `event` asks for. Nothing is sent here: the worker does that.
    pub async fn handle_event(&self, event: &Event) -> Result<(), HandlerError> {
        let plan = events::plan(event, &self.config.public_url).map_err(HandlerError::permanent)?;
        let now = platform::clock::now();
        if let Some((user_id, email, name)) = &plan.recipient {
            let r = Recipient {
                user_id: *user_id,
                email: email.to_string(),
                name: name.clone(),
            };
            self.store
                .upsert_recipient(&r, now)
                .await
                .map_err(|e| HandlerError::retryable(format!("saving the recipient failed: {e}")))?;
        }
        let mut rows = Vec::new();
        for mail in plan.mails {
            for (email, name, user_id) in self.recipients_of(&mail.to).await? {
                let mut data = mail.data.clone();
                if let Value::Object(map) = &mut data {
                    map.insert("name".into(), Value::String(name));
                }
                let rendered = templates::render(mail.kind, &data).map_err(HandlerError::permanent)?;
                let id = Uuid::now_v7();
                rows.push(NewDelivery {
                    id,
                    event_id: event.id,
                    event_type: event.event_type.clone(),
                    kind: mail.kind,
                    recipient: email.to_string(),
                    user_id,
                    subject: rendered.subject,
                    text_body: rendered.text,
                    html_body: rendered.html,
                    message_id: format!("<{}@{}>", id.simple(), self.from.email.domain()),
                    created_at: now,
                    due_ms: unix_ms(now),
                });
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let inserted = self
            .store
            .insert_deliveries(&rows)
            .await
            .map_err(|e| HandlerError::retryable(format!("logging the deliveries failed: {e}")))?;
        if inserted > 0 {
            self.wake();
        }
        Ok(())
    }

    /// The addresses (with names and users) a planned mail goes to.
    async fn recipients_of(&self, to: &To) -> Result<Vec<(EmailAddress, String, Option<Uuid>)>, HandlerError> {
        match to {
            To::Address { email, name, user_id } => Ok(vec![(email.clone(), name.clone(), *user_id)]),
            To::User(user_id) => {
                let known = self
                    .store
                    .recipient(*user_id)
                    .await
                    .map_err(|e| HandlerError::retryable(format!("reading the recipient failed: {e}")))?;
                // Identity's registration event may still be on its way: let the bus retry.
                let r =
                    known.ok_or_else(|| HandlerError::retryable(format!("no address known yet for user {user_id}")))?;
                let email = EmailAddress::parse(&r.email)
                    .map_err(|m| HandlerError::permanent(format!("user {user_id}'s stored address {m}")))?;
                Ok(vec![(email, r.name, Some(*user_id))])
            }
            To::Alerts => {
                let mut out = Vec::new();
                for email in &self.config.alert_emails {
                    let prefs = self
                        .store
                        .preferences_by_email(email.as_str())
                        .await
                        .map_err(|e| HandlerError::retryable(format!("reading preferences failed: {e}")))?;
                    if prefs.is_none_or(|p| p.low_stock_alerts) {
                        out.push((email.clone(), String::new(), None));
                    }
                }
                Ok(out)
            }
        }
    }

    /// Claims one batch of due deliveries and sends them concurrently. Returns how many it tried.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let now = platform::clock::now();
        let lease = i64::try_from(LEASE.as_millis()).unwrap_or(60_000);
        let (claim, rows) = self.store.claim_due(unix_ms(now), lease, BATCH, now).await?;
        let mut sending: FuturesUnordered<_> = rows.iter().map(|d| self.deliver_one(claim, d)).collect();
        let mut error = None;
        // The sends that went out are recorded together: each write takes every send finished by
        // then, so a batch of quick sends costs one statement, and a slow send delays no record
        // but its own. Every send is awaited even after an error, as none is abandoned midway.
        while let Some(first) = sending.next().await {
            let mut sent = Vec::new();
            let mut finished = Some(first);
            while let Some(outcome) = finished {
                match outcome {
                    Ok(Some(mark)) => sent.push(mark),
                    Ok(None) => {}
                    Err(e) => error = Some(e),
                }
                finished = sending.next().now_or_never().flatten();
            }
            if !sent.is_empty()
                && let Err(e) = self.record_sent(claim, &rows, &sent).await
            {
                error = Some(e);
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows.len()),
        }
    }

    async fn record_sent(&self, claim: Uuid, rows: &[Delivery], sent: &[Sent]) -> Result<(), StoreError> {
        let recorded = self.store.mark_sent(sent, claim, platform::clock::now()).await?;
        for d in rows.iter().filter(|d| sent.iter().any(|s| s.id == d.id)) {
            let (kind, attempts) = (d.kind.as_str(), d.attempts.saturating_add(1));
            if recorded.contains(&d.id) {
                tracing::info!(delivery_id = %d.id, kind, attempts, transport = self.transport_name, "notification sent");
            } else {
                tracing::warn!(delivery_id = %d.id, kind, "lease lost before the send was recorded");
            }
        }
        Ok(())
    }

    /// Sends one claimed delivery. A send that went out is answered, to be recorded with the
    /// others of its batch; a failure is recorded here.
    async fn deliver_one(&self, claim: Uuid, d: &Delivery) -> Result<Option<Sent>, StoreError> {
        let kind = d.kind.as_str();
        let attempts = d.attempts.saturating_add(1);
        let outgoing = Outgoing {
            from: &self.from,
            to: &d.recipient,
            subject: &d.subject,
            text: &d.text_body,
            html: &d.html_body,
            message_id: &d.message_id,
        };
        let started = Instant::now();
        let sent = if self.faults.smtp_failure() {
            // Injected: what an unreachable mail server answers, a temporary failure (retried).
            Err(crate::transport::SendError {
                message: "SMTP: 421 service not available (fault injection: smtp_failure)".into(),
                permanent: false,
            })
        } else {
            self.sender.send(&outgoing).await
        };
        let elapsed = started.elapsed().as_secs_f64();
        let now = platform::clock::now();
        match sent {
            Ok(()) => {
                metrics::histogram!("notifications_delivery_duration_seconds", "outcome" => "sent").record(elapsed);
                metrics::counter!("notifications_sent_total", "kind" => kind).increment(1);
                return Ok(Some(Sent {
                    id: d.id,
                    scrub: d.kind.carries_secret(),
                }));
            }
            Err(e) => {
                metrics::histogram!("notifications_delivery_duration_seconds", "outcome" => "failed").record(elapsed);
                metrics::counter!("notifications_failed_total", "kind" => kind).increment(1);
                let fate = after_failure(
                    attempts,
                    self.config.max_attempts,
                    self.config.retry_base,
                    e.permanent,
                    unix_ms(now),
                );
                let (status, next) = match fate {
                    AfterFailure::Retry { next_attempt_ms } => (DeliveryStatus::Failed, next_attempt_ms),
                    AfterFailure::Dead => (DeliveryStatus::Dead, d.next_attempt_ms),
                };
                let failure = Failure {
                    attempts,
                    status,
                    next_attempt_ms: next,
                    error: &e.message,
                    now,
                };
                self.store.mark_failed(d.id, claim, &failure).await?;
                if status == DeliveryStatus::Dead {
                    metrics::counter!("notifications_dead_total").increment(1);
                    tracing::error!(delivery_id = %d.id, kind, attempts, error = %e.message,
                        "notification given up (dead); an admin can retry it");
                } else {
                    tracing::warn!(delivery_id = %d.id, kind, attempts, error = %e.message,
                        retry_at_ms = next, "notification delivery failed; will retry");
                }
            }
        }
        Ok(None)
    }

    /// Refreshes the `notifications_pending` gauge.
    pub async fn refresh_metrics(&self) -> Result<(), StoreError> {
        let n = self.store.unsent_count().await?;
        metrics::gauge!("notifications_pending").set(n as f64);
        Ok(())
    }

    pub async fn preferences(&self, auth: &AuthUser) -> Result<Preferences, Problem> {
        Ok(self.store.preferences(auth.id()).await?.unwrap_or_default())
    }

    pub async fn update_preferences(
        &self,
        auth: &AuthUser,
        change: &PreferencesChange,
    ) -> Result<Preferences, Problem> {
        let current = self.store.preferences(auth.id()).await?.unwrap_or_default();
        let next = apply_preferences(current, change).map_err(Problem::validation)?;
        self.store
            .save_preferences(auth.id(), next, platform::clock::now())
            .await?;
        Ok(next)
    }

    pub async fn deliveries(
        &self,
        auth: &AuthUser,
        filter: &DeliveryFilter,
        limit: u32,
    ) -> Result<Vec<Delivery>, Problem> {
        auth.require_any_role(LOG_READERS)?;
        Ok(self.store.list(filter, limit).await?)
    }

    pub async fn delivery(&self, auth: &AuthUser, id: Uuid) -> Result<Delivery, Problem> {
        auth.require_any_role(LOG_READERS)?;
        self.store
            .delivery(id)
            .await?
            .ok_or_else(|| Problem::not_found("no delivery with this id"))
    }

    /// Sends a dead delivery again: back to pending with a fresh attempt budget.
    pub async fn retry(&self, auth: &AuthUser, id: Uuid) -> Result<Delivery, Problem> {
        auth.require_any_role(LOG_WRITERS)?;
        let now = platform::clock::now();
        match self.store.requeue_dead(id, now, unix_ms(now)).await {
            Ok(d) => {
                tracing::info!(delivery_id = %id, actor = %auth.id(), "dead notification queued again");
                self.wake();
                Ok(d)
            }
            Err(RetryRefused::NotFound) => Err(Problem::not_found("no delivery with this id")),
            Err(RetryRefused::NotDead(status)) => Err(Problem::conflict(can_retry(status).err().unwrap_or_default())),
            Err(RetryRefused::Store(e)) => Err(e.into()),
        }
    }
}

/// When a row is next tried, for views: only while it still has to be sent.
pub fn next_attempt_at(d: &Delivery) -> Option<OffsetDateTime> {
    d.status.is_due_state().then(|| ms_to_time(d.next_attempt_ms)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        let t = time::macros::datetime!(2030-01-02 03:04:05.678 UTC);
        let ms = unix_ms(t);
        assert_eq!(ms % 1000, 678);
        assert_eq!(ms_to_time(ms), Some(t));
    }
}
