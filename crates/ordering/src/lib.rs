//! The ordering context: checkout with server-side totals (catalog prices, shipping rules, tax per
//! destination, coupons), the order saga (reserve stock → capture payment → commit the reservation,
//! with compensation), fulfilment, refunds and invoices.
//!
//! Served under `/api/v1/orders/*`. Publishes `ordering.order.*` through its outbox; consumes
//! `inventory.reservation.expired`.

pub mod api;
pub mod config;
pub mod domain;
pub mod invoice;
pub mod peers;
pub mod service;
pub mod store;

use std::sync::Arc;

use axum::{Extension, Router};
use platform::auth::KeySet;
use platform::context::ContextDeps;
use platform::db::{Db, DbError};

pub use crate::config::OrderingConfig;
pub use crate::service::OrderingService;

pub const CONTEXT: &str = "ordering";

/// Applies ordering's migrations (forward-only) and the event bus tables to its database.
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

/// A running ordering context.
pub struct Ordering {
    service: Arc<OrderingService>,
    keys: KeySet,
}

impl Ordering {
    /// Opens the store on `db` (migrating when `migrate_first`), starts the outbox relay, the
    /// reservation-expiry consumer and the saga recovery loop.
    pub async fn start(
        db: &Db,
        config: OrderingConfig,
        deps: ContextDeps,
        migrate_first: bool,
    ) -> anyhow::Result<Self> {
        if migrate_first {
            migrate(db).await?;
        }
        let service = Arc::new(OrderingService::new(config));
        Ok(Self {
            service,
            keys: deps.keys,
        })
    }

    /// The ordering use cases (for tests and the CLI).
    pub fn service(&self) -> Arc<OrderingService> {
        self.service.clone()
    }

    /// Ordering's routes, tagged for metrics and able to verify access tokens.
    pub fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT).layer(Extension(self.keys.clone()))
    }
}

/// Ordering's OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::routes().split_for_parts().1
}
