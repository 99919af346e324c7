//! The identity context: accounts, e-mail verification, login with short-lived EdDSA access tokens
//! and rotating refresh tokens, password reset, sessions, roles and the security audit log.
//!
//! Served under `/api/v1/auth/*`, `/api/v1/users/*` and `/.well-known/jwks.json`.

pub mod api;
pub mod domain;
pub mod faults_api;
pub mod keys;
pub mod passwords;
pub mod service;
pub mod store;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use platform::auth::KeySet;
use platform::config::{ConfigError, ConfigSource};
use platform::db::{Db, DbError};

use crate::domain::TokenLifetimes;
use crate::keys::KeyRing;
use crate::passwords::{Argon2Settings, PasswordHasher};
pub use crate::service::IdentityService;
use crate::store::IdentityStore;
use crate::store::sql::SqlStore;

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
}

impl Identity {
    /// Opens the store on `db` (migrating when `migrate_first`), loads the signing keys and keeps
    /// them fresh, so a rotation on another replica is picked up within a minute. With `events`,
    /// starts the outbox relay that carries identity's events (mail requests) to the bus.
    pub async fn start(
        db: &Db,
        config: IdentityConfig,
        events: Option<&platform::events::Events>,
        migrate_first: bool,
    ) -> anyhow::Result<Self> {
        if migrate_first {
            migrate(db).await?;
        }
        let store: Arc<dyn IdentityStore> = match db {
            Db::Sqlite(pool) => Arc::new(SqlStore::new(pool.clone())),
            Db::Postgres(pool) => Arc::new(SqlStore::new(pool.clone())),
        };
        service::describe_metrics();
        let ring = KeyRing::load(store.clone(), config.lifetimes.access, config.signing_key_lead).await?;
        spawn_key_refresh(Arc::downgrade(&ring));
        let keys = ring.key_set();
        let hasher = PasswordHasher::new(config.argon2)?;
        // Mail (verification, password reset) leaves as events for notifications, through the
        // outbox, so a token is mailed if and only if it was stored.
        // Without a bus (admin CLI) the rows wait for the serving process's relay.
        let outbox = events.map_or_else(platform::events::Outbox::detached, |e| e.start_relay(CONTEXT, db));
        let service = Arc::new(IdentityService::new(store, ring, hasher, outbox, config));
        Ok(Self { service, keys })
    }

    pub fn service(&self) -> Arc<IdentityService> {
        self.service.clone()
    }

    /// The verifier for access tokens, for every context in this process.
    pub fn key_set(&self) -> KeySet {
        self.keys.clone()
    }

    /// The fault-injection admin API over `faults` (identity records the changes in its audit log).
    pub fn faults_router(&self, faults: platform::faults::Faults) -> Router {
        let state = faults_api::FaultsState {
            service: self.service.clone(),
            faults,
        };
        let (router, _) = faults_api::routes().with_state(state).split_for_parts();
        platform::http::tag_routes(router, CONTEXT).layer(Extension(self.keys.clone()))
    }

    /// Identity's routes, tagged for metrics and able to verify access tokens.
    pub fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT).layer(Extension(self.keys.clone()))
    }
}

/// Identity's OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::routes().split_for_parts().1;
    doc.merge(faults_api::routes().split_for_parts().1);
    doc
}

fn spawn_key_refresh(ring: std::sync::Weak<KeyRing>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(ring) = ring.upgrade() else { break };
            if let Err(e) = ring.reload().await {
                tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones");
            }
        }
    });
}
