//! The notifications context: turns events into e-mails and delivers them.
//!
//! * Consumes identity's `identity.user.registered` (kept as a projection user → address, because
//!   order events carry a user id only), `identity.email.verification_requested`,
//!   `identity.password.reset_requested`, ordering's `ordering.order.{payment_pending,confirmed,
//!   payment_failed,shipped,delivered,cancelled,refunded}` and inventory's `inventory.stock.low`
//!   (to `EMPORIUM_ALERT_EMAILS`). `ordering.order.placed` is not mailed: a payment that settles
//!   within the checkout request gets one mail (confirmed or failed), not two in the same second.
//! * Handling an event renders the templates and inserts rows into the delivery log, unique per
//!   (event, kind, recipient); a redelivered event changes nothing.
//! * A delivery worker sends due rows over SMTP (lettre) or into the dev mailbox, retrying with
//!   exponential backoff, then marking them dead; admins list the log and resend dead messages.
//! * Several replicas may run: rows are claimed with a lease (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL), so each message is sent by one worker. The only duplicate risk is a crash
//!   between the SMTP server accepting a message and the row being marked sent.
//!
//! * Outbound webhooks ([`webhooks`]): every event on the bus (`#`) is queued for the admin-
//!   registered endpoints that want it and delivered, signed, by a second worker.
//!
//! Served under `/api/v1/notifications/*`.

pub mod api;
pub mod domain;
pub mod events;
pub mod privacy;
pub mod service;
pub mod store;
pub mod templates;
pub mod transport;
pub mod views;
pub mod webhooks;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use contracts::events::privacy::{NotificationsErased, NotificationsExported};
use platform::auth::KeySet;
use platform::config::{ConfigError, ConfigSource};
use platform::context::{Consumer, Context, ContextDeps, Migrations, Worker};
use platform::db::{Db, DbError};
use platform::events::{Event, EventHandler, HandlerError};

use crate::domain::EmailAddress;
pub use crate::service::NotificationService;
pub use crate::transport::{MailTransport, SmtpSettings};

pub const CONTEXT: &str = "notifications";
/// The consumer name of the one subscription (its queue is `<namespace>.notifications.mailer`).
pub const CONSUMER: &str = "mailer";

pub const DEFAULT_MAIL_FROM: &str = "Emporium <no-reply@emporium.local>";

/// Notifications' settings; every one is listed with its default in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// Base of the links in messages, no trailing slash (`EMPORIUM_PUBLIC_URL`; the wiring passes
    /// the platform's value).
    pub public_url: String,
    /// Sender of every message (`EMPORIUM_MAIL_FROM`, "Emporium <no-reply@emporium.local>").
    pub mail_from: String,
    /// Attempts before a delivery is dead (`EMPORIUM_MAIL_MAX_ATTEMPTS`, 6).
    pub max_attempts: u32,
    /// Wait after the first failed attempt, doubling after each (`EMPORIUM_MAIL_RETRY_BASE_MS`, 1000).
    pub retry_base: Duration,
    /// How often the delivery worker looks for due rows when nothing woke it (`EMPORIUM_MAIL_POLL_MS`, 500).
    pub poll_interval: Duration,
    /// Who gets low-stock alerts and disabled-webhook alerts (`EMPORIUM_ALERT_EMAILS`,
    /// comma-separated; empty: nobody).
    pub alert_emails: Vec<EmailAddress>,
    /// Outbound webhooks (`EMPORIUM_WEBHOOK_*`).
    pub webhooks: webhooks::service::WebhookConfig,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            mail_from: DEFAULT_MAIL_FROM.into(),
            max_attempts: 6,
            retry_base: Duration::from_secs(1),
            poll_interval: Duration::from_millis(500),
            alert_emails: Vec::new(),
            webhooks: webhooks::service::WebhookConfig::default(),
        }
    }
}

impl NotificationsConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let d = Self::default();
        let public_url: String = src.get("EMPORIUM_PUBLIC_URL", d.public_url)?;
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "EMPORIUM_PUBLIC_URL",
                "must start with http:// or https://",
            ));
        }
        let mail_from: String = src.get("EMPORIUM_MAIL_FROM", d.mail_from)?;
        mail_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError::new("EMPORIUM_MAIL_FROM", format!("is not a mailbox ({e})")))?;
        let alert_emails = domain::parse_address_list(src.raw("EMPORIUM_ALERT_EMAILS").unwrap_or(""))
            .map_err(|m| ConfigError::new("EMPORIUM_ALERT_EMAILS", m))?;
        Ok(Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            mail_from: mail_from.trim().to_owned(),
            max_attempts: src.number_in("EMPORIUM_MAIL_MAX_ATTEMPTS", 6, 1..=50)? as u32,
            retry_base: Duration::from_millis(src.number_in("EMPORIUM_MAIL_RETRY_BASE_MS", 1000, 10..=600_000)?),
            poll_interval: Duration::from_millis(src.number_in("EMPORIUM_MAIL_POLL_MS", 500, 10..=60_000)?),
            alert_emails,
            webhooks: webhooks::service::WebhookConfig::from_source(src)?,
        })
    }
}

/// Production mode (`serve --service notifications`) has no sensible default for the links in
/// mails: the process listens on its own port, not on the storefront's address, so a made-up
/// default would send customers to a dead link. `EMPORIUM_PUBLIC_URL` must be set there.
pub fn require_public_url(src: &ConfigSource) -> Result<(), ConfigError> {
    match src.raw("EMPORIUM_PUBLIC_URL").map(str::trim) {
        Some(url) if !url.is_empty() => Ok(()),
        _ => Err(ConfigError::new(
            "EMPORIUM_PUBLIC_URL",
            "is required with --service notifications: the storefront's address, used in the links of \
             every mail (e.g. https://shop.example)",
        )),
    }
}

/// Notifications's schema, per backend.
pub static MIGRATIONS: platform::context::Migrations = platform::migrations!();

/// Applies notifications's migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    MIGRATIONS.run(CONTEXT, db).await
}

/// A running notifications context.
pub struct Notifications {
    service: Arc<NotificationService>,
    webhooks: Arc<webhooks::service::WebhookService>,
    db: Db,
    outbox: platform::events::Outbox,
}

impl Notifications {
    /// The use cases (for tests and the wiring).
    pub fn service(&self) -> Arc<NotificationService> {
        self.service.clone()
    }
}

#[async_trait::async_trait]
impl Context for Notifications {
    const NAME: &'static str = CONTEXT;
    /// The settings, and where mail goes.
    type Config = (NotificationsConfig, MailTransport);

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// Opens the store and the mail transport.
    async fn start(db: &Db, (config, transport): Self::Config, deps: &ContextDeps) -> anyhow::Result<Self> {
        service::describe_metrics();
        tracing::info!(transport = transport.name(), smtp = ?match &transport {
            MailTransport::Smtp(s) => Some(s.redacted()),
            MailTransport::DevMailbox(_) => None,
        }, "notifications delivery transport");
        let webhooks = Arc::new(webhooks::service::WebhookService::new(
            webhooks::store::open(db),
            config.webhooks.clone(),
        )?);
        let service =
            Arc::new(NotificationService::new(store::open(db), config, &transport)?.with_faults(deps.faults.clone()));
        // Notifications publishes only its answers to erasures and exports.
        let outbox = deps.events.start_relay(CONTEXT, db);
        Ok(Self {
            service,
            webhooks,
            db: db.clone(),
            outbox,
        })
    }

    fn router(&self) -> Router {
        routes(self.service.clone(), self.webhooks.clone())
    }

    /// The mailer, which renders the events it consumes into the delivery log, and the webhook
    /// queue, which takes every event (`#`) and queues it for the endpoints that want it (never
    /// the private ones: tokens, exports, erasure steps); erasures and exports.
    fn consumers(&self) -> Vec<Consumer> {
        vec![
            Consumer::once(
                CONSUMER,
                events::CONSUMED.to_vec(),
                Arc::new(Mailer(self.service.clone())),
            ),
            Consumer::once(
                WEBHOOK_CONSUMER,
                vec!["#"],
                Arc::new(webhooks::WebhookQueue(self.webhooks.clone())),
            ),
            platform::privacy::answers::<NotificationsErased, NotificationsExported>(
                CONTEXT,
                &self.db,
                self.outbox.clone(),
                privacy::open(&self.db),
            ),
        ]
    }

    /// The mail delivery worker, and the webhook delivery worker (which mails the alert list
    /// when it switches an endpoint off).
    fn workers(&self) -> Vec<Worker> {
        vec![
            Worker::new("delivery", deliver(Arc::downgrade(&self.service))),
            Worker::new(
                "webhooks",
                webhooks::deliver(Arc::downgrade(&self.webhooks), Arc::downgrade(&self.service)),
            ),
        ]
    }
}

/// The consumer name of the webhook queue (its queue is `<namespace>.notifications.webhooks`).
pub const WEBHOOK_CONSUMER: &str = "webhooks";

/// The routes over `service` and `webhooks` on their own, verifying tokens with `keys` (outside
/// the app, whose platform stack hands every request its keys: see `platform::http::Wiring`).
pub fn router_for(
    service: Arc<NotificationService>,
    webhooks: Arc<webhooks::service::WebhookService>,
    keys: KeySet,
) -> Router {
    routes(service, webhooks).layer(axum::Extension(keys))
}

/// The routes over `service` and `webhooks` (what [`Notifications::router`] serves).
fn routes(service: Arc<NotificationService>, webhooks: Arc<webhooks::service::WebhookService>) -> Router {
    let (router, _) = api::routes().with_state(service).split_for_parts();
    let (hooks, _) = webhooks::api::routes().with_state(webhooks).split_for_parts();
    platform::http::tag_routes(router.merge(hooks), CONTEXT)
}

/// Notifications' OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::routes().split_for_parts().1;
    doc.merge(webhooks::api::routes().split_for_parts().1);
    doc
}

/// The event handler: renders and logs; never sends.
pub struct Mailer(pub Arc<NotificationService>);

#[async_trait::async_trait]
impl EventHandler for Mailer {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        self.0.handle_event(event).await
    }

    /// Mails are logged at most once per event, kind and address or user (unique keys), so
    /// only the events that update a recipient go through the inbox.
    fn deduplicates(&self, event: &Event) -> bool {
        !events::updates_recipient(&event.event_type)
    }
}

/// Spawns [`deliver`] on its own (tests; a running context has it among its workers).
pub fn spawn_worker(service: Weak<NotificationService>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(deliver(service))
}

/// Sends due deliveries until none are left, then waits for a wake-up or the poll interval.
/// Stops when the context is dropped.
async fn deliver(service: Weak<NotificationService>) {
    let mut last_gauge: Option<tokio::time::Instant> = None;
    loop {
        let Some(svc) = service.upgrade() else { break };
        let poll = svc.config().poll_interval;
        match svc.deliver_due().await {
            // A full batch: there may be more due right now.
            Ok(n) if n as i64 >= service::BATCH => continue,
            Ok(_) => {}
            // The process is stopping (its pools close after the server drained): not a failure.
            Err(store::StoreError::Db(sqlx::Error::PoolClosed)) => break,
            Err(e) => tracing::warn!(error = %e, "delivering notifications failed; retrying next tick"),
        }
        if last_gauge.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            last_gauge = Some(tokio::time::Instant::now());
            if let Err(e) = svc.refresh_metrics().await {
                tracing::warn!(error = %e, "refreshing notification gauges failed");
            }
        }
        // The strong reference is dropped after at most one poll interval, so dropping the
        // context stops the worker.
        svc.wait_for_work(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bounds() {
        let src = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let c = NotificationsConfig::from_source(&src).expect("defaults");
        assert_eq!(c.mail_from, DEFAULT_MAIL_FROM);
        assert_eq!(c.max_attempts, 6);
        assert_eq!(c.retry_base, Duration::from_secs(1));
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert!(c.alert_emails.is_empty());
        let src = ConfigSource::from_pairs([
            ("EMPORIUM_ALERT_EMAILS", "ops@x.io, stock@x.io"),
            ("EMPORIUM_PUBLIC_URL", "https://shop.example/"),
            ("EMPORIUM_MAIL_MAX_ATTEMPTS", "3"),
        ])
        .expect("src");
        let c = NotificationsConfig::from_source(&src).expect("ok");
        assert_eq!(c.alert_emails.len(), 2);
        assert_eq!(c.public_url, "https://shop.example");
        assert_eq!(c.max_attempts, 3);
        for (var, value) in [
            ("EMPORIUM_MAIL_MAX_ATTEMPTS", "0"),
            ("EMPORIUM_MAIL_RETRY_BASE_MS", "1"),
            ("EMPORIUM_MAIL_POLL_MS", "x"),
            ("EMPORIUM_ALERT_EMAILS", "ops@x.io, nobody"),
            ("EMPORIUM_MAIL_FROM", "not a mailbox"),
            ("EMPORIUM_PUBLIC_URL", "shop.example"),
        ] {
            let src = ConfigSource::from_pairs([(var, value)]).expect("src");
            let err = NotificationsConfig::from_source(&src).expect_err(var);
            assert_eq!(err.var, var);
        }
    }

    #[test]
    fn production_needs_the_public_url_spelled_out() {
        let none = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let err = require_public_url(&none).expect_err("required");
        assert_eq!(err.var, "EMPORIUM_PUBLIC_URL");
        let blank = ConfigSource::from_pairs([("EMPORIUM_PUBLIC_URL", " ")]).expect("src");
        assert!(require_public_url(&blank).is_err());
        let set = ConfigSource::from_pairs([("EMPORIUM_PUBLIC_URL", "https://shop.example")]).expect("src");
        assert!(require_public_url(&set).is_ok());
    }
}
