//! The notifications context: turns events into e-mails and delivers them.

pub mod transport;

use axum::{Extension, Router};
use platform::auth::KeySet;
use platform::config::{ConfigError, ConfigSource};
use platform::context::ContextDeps;
use platform::db::{Db, DbError};

pub use crate::transport::{MailTransport, SmtpSettings};

pub const CONTEXT: &str = "notifications";

/// Notifications' settings; every one is listed with its default in the README.
#[derive(Debug, Clone, Default)]
pub struct NotificationsConfig {}

impl NotificationsConfig {
    pub fn from_source(_src: &ConfigSource) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

/// Applies notifications' migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    platform::events::migrate(db).await
}

/// A running notifications context.
pub struct Notifications {
    keys: KeySet,
    _transport: MailTransport,
}

impl Notifications {
    pub async fn start(
        db: &Db,
        _config: NotificationsConfig,
        deps: ContextDeps,
        migrate_first: bool,
        transport: MailTransport,
    ) -> anyhow::Result<Self> {
        if migrate_first {
            migrate(db).await?;
        }
        Ok(Self {
            keys: deps.keys,
            _transport: transport,
        })
    }

    pub fn router(&self) -> Router {
        platform::http::tag_routes(Router::new(), CONTEXT).layer(Extension(self.keys.clone()))
    }
}

/// Notifications' OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApiBuilder::new().build()
}
