//! Outbound webhooks' use cases: endpoint administration (admins), queueing events for the
//! endpoints that want them, and the delivery worker's batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use platform::auth::AuthUser;
use platform::clock::unix_ms;
use platform::config::{ConfigError, ConfigSource};
use platform::events::Event;
use platform::{FieldError, Problem};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::client::WebhookClient;
use super::domain::{
    AttemptOutcome, DisableRule, EndpointUrl, EventFilter, MAX_DESCRIPTION_CHARS, MAX_ENDPOINTS, MessageStatus,
    RetrySchedule, TargetPolicy, message_id, new_secret, signature_header,
};
use super::store::{Attempt, Endpoint, Message, NextStep, WebhookStore};
use crate::store::StoreError;

/// Who administers webhooks.
const ADMIN: &[&str] = &["admin"];
/// Messages claimed per batch, and for how long.
const BATCH: i64 = 32;
const LEASE: Duration = Duration::from_secs(120);
/// How long queueing trusts the endpoints it read. Every event of the shop is offered to
/// webhooks (about seven per order), and most shops have few endpoints that change rarely: one
/// read a second instead of one per event. Changes made through this process are seen at once;
/// another replica's within this time.
const ENDPOINTS_FRESH_FOR: Duration = Duration::from_secs(1);

/// Webhooks' settings; every one is listed with its default in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub policy: TargetPolicy,
    /// `EMPORIUM_WEBHOOK_RETRY_SCHEDULE` (waits in seconds; Standard Webhooks' by default).
    pub schedule: RetrySchedule,
    /// `EMPORIUM_WEBHOOK_DISABLE_AFTER_FAILURES` (10) and `EMPORIUM_WEBHOOK_DISABLE_AFTER_SECS`
    /// (86400).
    pub disable: DisableRule,
    /// One attempt's deadline (`EMPORIUM_WEBHOOK_TIMEOUT_MS`, 10000).
    pub timeout: Duration,
    /// How long the old secret keeps signing after a rotation
    /// (`EMPORIUM_WEBHOOK_ROTATION_OVERLAP_SECS`, 86400).
    pub rotation_overlap: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            policy: TargetPolicy {
                allow_http: true,
                allow_private: false,
            },
            schedule: RetrySchedule::standard(),
            disable: DisableRule {
                failures: 10,
                after: Duration::from_secs(86_400),
            },
            timeout: Duration::from_secs(10),
            rotation_overlap: Duration::from_secs(86_400),
        }
    }
}

impl WebhookConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let d = Self::default();
        let schedule = match src.raw("EMPORIUM_WEBHOOK_RETRY_SCHEDULE") {
            None => d.schedule,
            Some(raw) => {
                RetrySchedule::parse(raw).map_err(|m| ConfigError::new("EMPORIUM_WEBHOOK_RETRY_SCHEDULE", m))?
            }
        };
        Ok(Self {
            policy: TargetPolicy {
                allow_http: src.flag("EMPORIUM_WEBHOOK_ALLOW_HTTP", d.policy.allow_http)?,
                allow_private: src.flag("EMPORIUM_WEBHOOK_ALLOW_PRIVATE", false)?,
            },
            schedule,
            disable: DisableRule {
                failures: src.number_in("EMPORIUM_WEBHOOK_DISABLE_AFTER_FAILURES", 10, 1..=10_000)? as u32,
                after: src.seconds("EMPORIUM_WEBHOOK_DISABLE_AFTER_SECS", 86_400, 0..=30 * 86_400)?,
            },
            timeout: Duration::from_millis(src.number_in("EMPORIUM_WEBHOOK_TIMEOUT_MS", 10_000, 100..=60_000)?),
            rotation_overlap: src.seconds("EMPORIUM_WEBHOOK_ROTATION_OVERLAP_SECS", 86_400, 0..=30 * 86_400)?,
        })
    }

    /// Production mode delivers to `https://` only: plain http cannot be switched on there.
    pub fn for_production(mut self, src: &ConfigSource) -> Result<Self, ConfigError> {
        if src.flag("EMPORIUM_WEBHOOK_ALLOW_HTTP", false)? {
            return Err(ConfigError::new(
                "EMPORIUM_WEBHOOK_ALLOW_HTTP",
                "cannot be true in production mode: webhooks carry order data and are delivered over https only",
            ));
        }
        self.policy.allow_http = false;
        Ok(self)
    }
}

/// A new or changed endpoint, as an admin sends it.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// An endpoint switched off by the worker, for the alert mail.
#[derive(Debug, Clone)]
pub struct Disabled {
    pub endpoint: Endpoint,
    pub failures: u32,
    pub since: OffsetDateTime,
    pub last_error: String,
}

impl Disabled {
    /// The (in-process) event the mailer turns into the alert mail.
    pub fn event(&self) -> Event {
        let since = self
            .since
            .format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .unwrap_or_default();
        Event::new(
            crate::CONTEXT,
            crate::events::WEBHOOK_DISABLED,
            self.endpoint.id.to_string(),
            json!({
                "endpoint_id": self.endpoint.id,
                "url": self.endpoint.url,
                "failures": self.failures,
                "since": since,
                "last_error": self.last_error,
            }),
        )
    }
}

pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    client: WebhookClient,
    config: WebhookConfig,
    /// Wakes the delivery worker when messages were queued or replayed.
    wake: tokio::sync::Notify,
    /// The endpoints as queueing last read them, and when.
    known_endpoints: Mutex<Option<(Instant, Arc<Vec<Endpoint>>)>>,
    /// Bumped by every change to the endpoints, so a read that raced with one is not kept.
    endpoints_changed: AtomicU64,
}

fn invalid(field: &str, message: impl Into<String>) -> Problem {
    Problem::validation(vec![FieldError::new(field, message)])
}

fn internal(e: StoreError) -> Problem {
    Problem::from_error(&anyhow::Error::from(e))
}

impl WebhookService {
    pub fn new(store: Arc<dyn WebhookStore>, config: WebhookConfig) -> anyhow::Result<Self> {
        Ok(Self {
            client: WebhookClient::new(config.policy, config.timeout)?,
            store,
            config,
            wake: tokio::sync::Notify::new(),
            known_endpoints: Mutex::new(None),
            endpoints_changed: AtomicU64::new(0),
        })
    }

    /// The endpoints for queueing: read again once [`ENDPOINTS_FRESH_FOR`] has passed or they
    /// changed.
    async fn endpoints_for_queueing(&self) -> Result<Arc<Vec<Endpoint>>, StoreError> {
        if let Some((read, endpoints)) = &*self.known_endpoints.lock().unwrap_or_else(PoisonError::into_inner)
            && read.elapsed() < ENDPOINTS_FRESH_FOR
        {
            return Ok(endpoints.clone());
        }
        let generation = self.endpoints_changed.load(Ordering::Acquire);
        let read = Instant::now();
        let endpoints = Arc::new(self.store.endpoints().await?);
        let mut known = self.known_endpoints.lock().unwrap_or_else(PoisonError::into_inner);
        if self.endpoints_changed.load(Ordering::Acquire) == generation {
            *known = Some((read, endpoints.clone()));
        }
        Ok(endpoints)
    }

    /// Called after every change to the endpoints: the next event reads them again.
    fn forget_endpoints(&self) {
        self.endpoints_changed.fetch_add(1, Ordering::AcqRel);
        *self.known_endpoints.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Waits until messages are queued here or the earliest pending one is due (at least
    /// `min`, at most `max`: messages queued by another replica are found within `max`).
    pub async fn wait_for_work(&self, min: Duration, max: Duration) {
        let wait = match self.store.next_due_ms().await {
            Ok(Some(due)) => {
                let ahead = u64::try_from(due - unix_ms(platform::clock::now())).unwrap_or(0);
                Duration::from_millis(ahead).clamp(min, max)
            }
            Ok(None) => max,
            Err(_) => min,
        };
        let _ = tokio::time::timeout(wait, self.wake.notified()).await;
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    // ---- administration -------------------------------------------------------------------

    /// Checks every field at once; each refusal names its field.
    fn checked(&self, change: &EndpointChange) -> Result<(Option<EndpointUrl>, Option<EventFilter>), Problem> {
        let mut errors = Vec::new();
        let url = match &change.url {
            Some(raw) => EndpointUrl::parse(raw, self.config.policy)
                .map_err(|m| errors.push(FieldError::new("url", m)))
                .ok(),
            None => None,
        };
        let filter = match &change.event_types {
            Some(types) => EventFilter::parse(types)
                .map_err(|m| errors.push(FieldError::new("event_types", m)))
                .ok(),
            None => None,
        };
        if let Some(d) = &change.description
            && (d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control))
        {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"),
            ));
        }
        if errors.is_empty() {
            Ok((url, filter))
        } else {
            Err(Problem::validation(errors))
        }
    }

    /// Registers an endpoint; the answer carries its secret, the only time it is shown.
    pub async fn create(&self, auth: &AuthUser, change: EndpointChange) -> Result<Endpoint, Problem> {
        auth.require_any_role(ADMIN)?;
        if change.url.is_none() {
            return Err(invalid("url", "is required"));
        }
        if change.event_types.is_none() {
            return Err(invalid("event_types", "is required (`[\"#\"]` for every event)"));
        }
        let (Some(url), Some(filter)) = self.checked(&change)? else {
            return Err(invalid("url", "is required"));
        };
        if self.store.endpoints().await.map_err(internal)?.len() >= MAX_ENDPOINTS {
            return Err(Problem::conflict(format!(
                "at most {MAX_ENDPOINTS} endpoints: remove one first"
            )));
        }
        let now = platform::clock::now();
        let endpoint = Endpoint {
            id: Uuid::now_v7(),
            url: url.as_str().to_owned(),
            description: change.description.unwrap_or_default().trim().to_owned(),
            event_types: filter.patterns().to_vec(),
            secret: new_secret(),
            previous_secret: None,
            previous_secret_until: None,
            enabled: change.enabled.unwrap_or(true),
            disabled_reason: None,
            failure_streak: 0,
            streak_started_at: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_endpoint(&endpoint).await.map_err(internal)?;
        self.forget_endpoints();
        tracing::info!(endpoint = %endpoint.id, url = %endpoint.url, by = %auth.id(), "webhook endpoint registered");
        Ok(endpoint)
    }

    pub async fn endpoints(&self, auth: &AuthUser) -> Result<Vec<Endpoint>, Problem> {
        auth.require_any_role(ADMIN)?;
        self.store.endpoints().await.map_err(internal)
    }

    pub async fn endpoint(&self, auth: &AuthUser, id: Uuid) -> Result<Endpoint, Problem> {
        auth.require_any_role(ADMIN)?;
        self.store
            .endpoint(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Problem::not_found("no such webhook endpoint"))
    }

    pub async fn update(&self, auth: &AuthUser, id: Uuid, change: EndpointChange) -> Result<Endpoint, Problem> {
        let mut endpoint = self.endpoint(auth, id).await?;
        let (url, filter) = self.checked(&change)?;
        if let Some(url) = url {
            endpoint.url = url.as_str().to_owned();
        }
        if let Some(filter) = filter {
            endpoint.event_types = filter.patterns().to_vec();
        }
        if let Some(d) = change.description {
            endpoint.description = d.trim().to_owned();
        }
        if let Some(enabled) = change.enabled {
            endpoint.enabled = enabled;
        }
        endpoint.updated_at = platform::clock::now();
        let updated = self.store.update_endpoint(&endpoint).await.map_err(internal)?;
        self.forget_endpoints();
        if !updated {
            return Err(Problem::not_found("no such webhook endpoint"));
        }
        self.endpoint(auth, id).await
    }

    pub async fn delete(&self, auth: &AuthUser, id: Uuid) -> Result<(), Problem> {
        auth.require_any_role(ADMIN)?;
        let deleted = self.store.delete_endpoint(id).await.map_err(internal)?;
        self.forget_endpoints();
        if deleted {
            Ok(())
        } else {
            Err(Problem::not_found("no such webhook endpoint"))
        }
    }

    /// A new secret (returned, shown once); the old one keeps signing for the overlap window.
    pub async fn rotate_secret(&self, auth: &AuthUser, id: Uuid) -> Result<Endpoint, Problem> {
        self.endpoint(auth, id).await?;
        let now = platform::clock::now();
        let until = now + self.config.rotation_overlap;
        if !self
            .store
            .rotate_secret(id, &new_secret(), until, now)
            .await
            .map_err(internal)?
        {
            return Err(Problem::not_found("no such webhook endpoint"));
        }
        tracing::info!(endpoint = %id, by = %auth.id(), "webhook secret rotated");
        self.endpoint(auth, id).await
    }

    pub async fn messages(
        &self,
        auth: &AuthUser,
        id: Uuid,
        status: Option<MessageStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>, Problem> {
        self.endpoint(auth, id).await?;
        self.store.messages(id, status, before, limit).await.map_err(internal)
    }

    pub async fn message(&self, auth: &AuthUser, id: Uuid, message: Uuid) -> Result<(Message, Vec<Attempt>), Problem> {
        self.endpoint(auth, id).await?;
        let m = self
            .store
            .message(id, message)
            .await
            .map_err(internal)?
            .ok_or_else(|| Problem::not_found("no such message for this endpoint"))?;
        let attempts = self.store.attempts(m.id).await.map_err(internal)?;
        Ok((m, attempts))
    }

    /// Sends a message again, now, with a fresh attempt budget (same `webhook-id`: receivers
    /// that already processed it can tell).
    pub async fn replay(&self, auth: &AuthUser, id: Uuid, message: Uuid) -> Result<Message, Problem> {
        let endpoint = self.endpoint(auth, id).await?;
        if !endpoint.enabled {
            return Err(Problem::conflict("the endpoint is disabled: enable it first"));
        }
        let now = platform::clock::now();
        if !self
            .store
            .replay(id, message, unix_ms(now), now)
            .await
            .map_err(internal)?
        {
            return Err(Problem::not_found("no such message for this endpoint"));
        }
        tracing::info!(endpoint = %id, message = %message, by = %auth.id(), "webhook message replayed");
        self.wake.notify_one();
        Ok(self.message(auth, id, message).await?.0)
    }

    // ---- queueing and delivery ------------------------------------------------------------

    /// Whether some enabled endpoint wants `event`. `true` when the endpoints cannot be read:
    /// [`Self::enqueue`] then fails, and the event is retried.
    pub async fn wanted(&self, event: &Event) -> bool {
        if contracts::events::is_private(&event.event_type) {
            return false;
        }
        match self.endpoints_for_queueing().await {
            Ok(endpoints) => endpoints.iter().any(|e| e.wants(&event.event_type)),
            Err(_) => true,
        }
    }

    /// Queues `event` for every enabled endpoint that wants it. Returns how many messages were new.
    pub async fn enqueue(&self, event: &Event) -> Result<u64, StoreError> {
        // Single-use tokens and people's exported data never leave the shop.
        if contracts::events::is_private(&event.event_type) {
            return Ok(0);
        }
        let endpoints = self.endpoints_for_queueing().await?;
        let now = platform::clock::now();
        let payload = json!({
            "type": event.event_type,
            "timestamp": event.time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "data": event.data,
        })
        .to_string();
        let messages: Vec<Message> = endpoints
            .iter()
            .filter(|e| e.wants(&event.event_type))
            .map(|e| Message {
                id: Uuid::now_v7(),
                endpoint_id: e.id,
                event_id: event.id,
                event_type: event.event_type.clone(),
                payload: payload.clone(),
                status: MessageStatus::Pending,
                attempts: 0,
                next_attempt_ms: unix_ms(now),
                last_status: None,
                last_error: None,
                created_at: now,
                updated_at: now,
                delivered_at: None,
            })
            .collect();
        if messages.is_empty() {
            return Ok(0);
        }
        let queued = self.store.enqueue(&messages).await.inspect_err(|_| {
            // An endpoint another replica deleted a moment ago: the retry reads them again.
            self.forget_endpoints();
        })?;
        if queued > 0 {
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// Claims one batch of due messages and delivers them concurrently. Returns how many it
    /// tried and the endpoints it switched off.
    pub async fn deliver_due(&self) -> Result<(usize, Vec<Disabled>), StoreError> {
        let now = platform::clock::now();
        let lease = i64::try_from(LEASE.as_millis()).unwrap_or(120_000);
        let (claim, due) = self.store.claim_due(unix_ms(now), lease, BATCH, now).await?;
        if due.is_empty() {
            return Ok((0, Vec::new()));
        }
        let endpoints = self.store.endpoints().await?;
        let results = futures::future::join_all(due.iter().map(|m| {
            let endpoint = endpoints.iter().find(|e| e.id == m.endpoint_id);
            self.deliver_one(claim, m, endpoint)
        }))
        .await;
        let mut disabled = Vec::new();
        for result in results {
            if let Some(d) = result? {
                disabled.push(d);
            }
        }
        Ok((due.len(), disabled))
    }

    async fn deliver_one(
        &self,
        claim: Uuid,
        message: &Message,
        endpoint: Option<&Endpoint>,
    ) -> Result<Option<Disabled>, StoreError> {
        let Some(endpoint) = endpoint else {
            return Ok(None); // deleted meanwhile: its messages went with it
        };
        let now = platform::clock::now();
        let timestamp = now.unix_timestamp();
        let id = message_id(message.id);
        let body = Bytes::from(message.payload.clone());
        let headers = [
            ("webhook-id", id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                signature_header(&endpoint.signing_secrets(now), &id, timestamp, &body),
            ),
        ];
        let sent = self.client.post(&endpoint.url, &headers, body).await;
        let made = message.attempts + 1;
        let (status_code, error, next) = match &sent.outcome {
            AttemptOutcome::Delivered { status } => (Some(*status), None, NextStep::Delivered),
            AttemptOutcome::Failed { status, error } => {
                let next = match self.config.schedule.next_wait(made) {
                    Some(wait) => NextStep::RetryAt(unix_ms(now + wait)),
                    None => NextStep::GiveUp,
                };
                (*status, Some(error.clone()), next)
            }
        };
        let label = match next {
            NextStep::Delivered => "delivered",
            NextStep::RetryAt(_) => "retrying",
            NextStep::GiveUp => "failed",
        };
        metrics::counter!("webhook_attempts_total", "outcome" => label).increment(1);
        metrics::histogram!("webhook_attempt_duration_seconds").record(sent.latency.as_secs_f64());
        let attempt = Attempt {
            id: Uuid::now_v7(),
            message_id: message.id,
            attempted_at: now,
            status_code,
            latency_ms: i64::try_from(sent.latency.as_millis()).unwrap_or(i64::MAX),
            error: error.clone(),
        };
        let Some(streak) = self.store.record_attempt(message, claim, &attempt, next).await? else {
            return Ok(None); // the lease ran out and another worker took over
        };
        if let Some(error) = &error {
            tracing::info!(endpoint = %endpoint.id, message = %id, attempt = made, %error, "webhook attempt failed");
        }
        let since = streak.started_at.unwrap_or(now);
        let age = (now - since).try_into().unwrap_or(Duration::ZERO);
        if error.is_some() && self.config.disable.should_disable(streak.failures, age) {
            let reason = format!("{} failed attempts in a row", streak.failures);
            if self.store.disable_endpoint(endpoint.id, &reason, now).await? {
                self.forget_endpoints();
                tracing::warn!(endpoint = %endpoint.id, url = %endpoint.url, failures = streak.failures, "webhook endpoint disabled after a run of failures");
                return Ok(Some(Disabled {
                    endpoint: endpoint.clone(),
                    failures: streak.failures,
                    since,
                    last_error: error.unwrap_or_default(),
                }));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_the_standard_schedule_and_production_refuses_http() {
        let src = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let c = WebhookConfig::from_source(&src).expect("defaults");
        assert_eq!(c.schedule, RetrySchedule::standard());
        assert!(c.policy.allow_http && !c.policy.allow_private);
        let production = c.for_production(&src).expect("production");
        assert!(!production.policy.allow_http);
        let asked = ConfigSource::from_pairs([("EMPORIUM_WEBHOOK_ALLOW_HTTP", "true")]).expect("src");
        let err = WebhookConfig::from_source(&asked)
            .expect("embedded may")
            .for_production(&asked)
            .expect_err("production may not");
        assert_eq!(err.var, "EMPORIUM_WEBHOOK_ALLOW_HTTP");
        for (var, value) in [
            ("EMPORIUM_WEBHOOK_RETRY_SCHEDULE", "soon"),
            ("EMPORIUM_WEBHOOK_TIMEOUT_MS", "5"),
            ("EMPORIUM_WEBHOOK_DISABLE_AFTER_FAILURES", "0"),
        ] {
            let src = ConfigSource::from_pairs([(var, value)]).expect("src");
            assert_eq!(WebhookConfig::from_source(&src).expect_err(var).var, var);
        }
    }
}
