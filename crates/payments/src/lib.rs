//! The payments context (work in progress).

pub mod api;

use std::sync::Arc;

use axum::{Extension, Router};
use platform::auth::KeySet;
use platform::config::{ConfigError, ConfigSource};
use platform::context::ContextDeps;
use platform::db::{Db, DbError};

pub const CONTEXT: &str = "payments";

#[derive(Debug, Clone, Default)]
pub struct PaymentsConfig {}

impl PaymentsConfig {
    pub fn from_source(_src: &ConfigSource) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

pub async fn migrate(db: &Db) -> Result<(), DbError> {
    let err = |source| DbError::Migrate {
        context: CONTEXT.into(),
        source,
    };
    match db {
        Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await.map_err(err)?,
        Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await.map_err(err)?,
    }
    platform::events::migrate(db).await
}

pub struct Payments {
    state: Arc<()>,
    keys: KeySet,
}

impl Payments {
    pub async fn start(db: &Db, _config: PaymentsConfig, deps: ContextDeps, migrate_first: bool) -> anyhow::Result<Self> {
        if migrate_first {
            migrate(db).await?;
        }
        Ok(Self {
            state: Arc::new(()),
            keys: deps.keys,
        })
    }

    pub fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.state.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT).layer(Extension(self.keys.clone()))
    }
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    api::routes().split_for_parts().1
}
