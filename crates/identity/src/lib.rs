//! The identity context: accounts, e-mail verification, login with short-lived EdDSA access tokens
//! and rotating refresh tokens, password reset, sessions, roles and the security audit log.
//!
//! Served under `/api/v1/auth/*`, `/api/v1/users/*` and `/.well-known/jwks.json`.

pub mod api;
pub mod domain;
pub mod faults_api;
pub mod keys;
pub mod passwords;
pub mod privacy;
pub mod service;
pub mod store;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use platform::auth::KeySet;
use platform::config::{ConfigError, ConfigSource};
use platform::context::{Context, ContextDeps, Migrations, Worker};
use platform::db::{Db, DbError};

use crate::domain::TokenLifetimes;
use crate::keys::KeyRing;
use crate::passwords::{Argon2Settings, PasswordHasher};
pub use crate::service::IdentityService;

pub const CONTEXT: &str = "identity";

/// Identity's settings; every one is listed with its default in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub lifetimes: TokenLifetimes,
    pub argon2: Argon2Settings,
    pub login_max_failures: u32,
    pub login_max_failures_per_ip: u32,
    pub login_window: Duration,
    /// How long a rotated-in signing key is published before it signs.
    pub signing_key_lead: Duration,
    pub require_verified_email: bool,
    /// Per-address budget for sign-up, verification, password-reset and refresh requests.
    pub auth_requests_per_minute: std::num::NonZeroU32,
    /// Base URL quoted in e-mails.
    pub public_url: String,
    /// The shared secret other contexts exchange for service tokens (`EMPORIUM_SERVICE_SECRET`,
    /// read and defaulted by the binary); `None` refuses every service-token request.
    pub service_secret: Option<String>,
    /// How long a ready data export can be downloaded (`EMPORIUM_EXPORT_TTL_HOURS`, 168).
    pub export_ttl: time::Duration,
}

impl IdentityConfig {
    pub fn from_source(src: &ConfigSource, public_url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            lifetimes: TokenLifetimes {
                access: src.seconds("EMPORIUM_ACCESS_TOKEN_TTL_SECS", 900, 30..=3600)?,
                refresh: src.seconds("EMPORIUM_REFRESH_TOKEN_TTL_SECS", 30 * 86_400, 300..=90 * 86_400)?,
                email_verification: src.seconds("EMPORIUM_VERIFICATION_TOKEN_TTL_SECS", 86_400, 300..=7 * 86_400)?,
                password_reset: src.seconds("EMPORIUM_PASSWORD_RESET_TTL_SECS", 3600, 300..=86_400)?,
            },
            argon2: Argon2Settings {
                memory_kib: src.number_in("EMPORIUM_ARGON2_MEMORY_KIB", 19_456, 8_192..=1_048_576)? as u32,
                iterations: src.number_in("EMPORIUM_ARGON2_ITERATIONS", 2, 1..=10)? as u32,
                parallelism: src.number_in("EMPORIUM_ARGON2_PARALLELISM", 1, 1..=16)? as u32,
            },
            login_max_failures: src.number_in("EMPORIUM_LOGIN_MAX_FAILURES", 5, 1..=100)? as u32,
            login_max_failures_per_ip: src.number_in("EMPORIUM_LOGIN_MAX_FAILURES_PER_IP", 20, 1..=10_000)? as u32,
            login_window: src.seconds("EMPORIUM_LOGIN_WINDOW_SECS", 900, 10..=86_400)?,
            signing_key_lead: src.seconds("EMPORIUM_SIGNING_KEY_LEAD_SECS", 120, 0..=3600)?,
            require_verified_email: src.flag("EMPORIUM_REQUIRE_VERIFIED_EMAIL", true)?,
            auth_requests_per_minute: std::num::NonZeroU32::new(src.number_in(
                "EMPORIUM_AUTH_RATE_PER_MINUTE",
                30,
                1..=100_000,
            )? as u32)
            .unwrap_or(std::num::NonZeroU32::MIN),
            public_url: public_url.to_owned(),
            service_secret: None,
            export_ttl: time::Duration::hours(src.number_in("EMPORIUM_EXPORT_TTL_HOURS", 168, 1..=720)? as i64),
        })
    }
}

/// Identity's schema, per backend.
pub static MIGRATIONS: platform::context::Migrations = platform::migrations!();

/// Applies identity's migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    MIGRATIONS.run(CONTEXT, db).await
}

/// A running identity context.
pub struct Identity {
    service: Arc<IdentityService>,
    keys: KeySet,
    faults: platform::faults::Faults,
}

impl Identity {
    /// Identity without a bus, for the admin CLI: its mail waits in the outbox for the serving
    /// process's relay.
    pub async fn detached(db: &Db, config: IdentityConfig) -> anyhow::Result<Self> {
        Self::open(
            db,
            config,
            platform::events::Outbox::detached(),
            platform::faults::Faults::disabled(),
        )
        .await
    }

    /// Opens the store and loads the signing keys.
    async fn open(
        db: &Db,
        config: IdentityConfig,
        outbox: platform::events::Outbox,
        faults: platform::faults::Faults,
    ) -> anyhow::Result<Self> {
        let store = store::open(db);
        service::describe_metrics();
        let ring = KeyRing::load(store.clone(), config.lifetimes.access, config.signing_key_lead).await?;
        let keys = ring.key_set();
        let hasher = PasswordHasher::new(config.argon2)?;
        let privacy = privacy::store::open(db);
        let service = Arc::new(IdentityService::new(store, privacy, ring, hasher, outbox, config));
        Ok(Self { service, keys, faults })
    }

    pub fn service(&self) -> Arc<IdentityService> {
        self.service.clone()
    }

    /// The verifier for access tokens, for every context in this process.
    pub fn key_set(&self) -> KeySet {
        self.keys.clone()
    }
}

#[async_trait::async_trait]
impl Context for Identity {
    const NAME: &'static str = CONTEXT;
    type Config = IdentityConfig;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// Opens the store, loads the signing keys and starts the outbox relay that carries
    /// identity's events (mail requests) to the bus. Identity verifies tokens with its own keys,
    /// not `deps.keys`.
    async fn start(db: &Db, config: IdentityConfig, deps: &ContextDeps) -> anyhow::Result<Self> {
        // Mail (verification, password reset) leaves as events for notifications, through the
        // outbox, so a token is mailed if and only if it was stored.
        let outbox = deps.events.start_relay(CONTEXT, db);
        Self::open(db, config, outbox, deps.faults.clone()).await
    }

    /// Identity's routes and the fault-injection admin API (identity records the changes in its
    /// audit log).
    fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        let state = faults_api::FaultsState {
            service: self.service.clone(),
            faults: self.faults.clone(),
        };
        let (faults, _) = faults_api::routes().with_state(state).split_for_parts();
        platform::http::tag_routes(router.merge(faults), CONTEXT)
    }

    /// Every context's erasure steps and export parts.
    fn consumers(&self) -> Vec<platform::context::Consumer> {
        vec![platform::context::Consumer::once(
            "privacy-answers",
            privacy::PATTERNS.to_vec(),
            Arc::new(privacy::Answers(self.service.clone())),
        )]
    }

    /// Reloads the signing keys every minute, so a rotation on another replica is picked up;
    /// deletes expired export archives every hour.
    fn workers(&self) -> Vec<Worker> {
        let purge = Worker::every(
            "export-purge",
            Duration::from_secs(3600),
            &self.service,
            |service| async move {
                match service.purge_exports().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(exports = n, "deleted expired data exports"),
                    Err(e) => tracing::warn!(error = %e, "deleting expired data exports failed; retrying next hour"),
                }
            },
        );
        vec![
            purge,
            Worker::every_after(
                "key-refresh",
                Duration::from_secs(60),
                self.service.keys(),
                |ring| async move {
                    if let Err(e) = ring.reload().await {
                        tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones");
                    }
                },
            ),
        ]
    }
}

/// Identity's OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::routes().split_for_parts().1;
    doc.merge(faults_api::routes().split_for_parts().1);
    doc
}
