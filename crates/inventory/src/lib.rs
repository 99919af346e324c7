//! The inventory context: stock per SKU (on hand, reserved, available), a ledger of every
//! movement, low-stock thresholds and alerts, and reservations that never oversell.
//!
//! Served under `/api/v1/inventory/*`. Stock rows appear when catalog publishes
//! `catalog.product.created`; inventory publishes `inventory.stock.*` and
//! `inventory.reservation.*` through its outbox.

pub mod api;
pub mod direct;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use contracts::api::inventory::InventoryApi;
use contracts::events::Event as _;
use contracts::events::catalog::{ProductCreated, ProductDeleted};
use platform::client::Peers;
use platform::config::{ConfigError, ConfigSource};
use platform::context::{Consumer, Context, ContextDeps, Migrations, Worker};
use platform::db::{Db, DbError};
use platform::events::{Event, EventHandler, HandlerError};

use crate::domain::Sku;
pub use crate::service::InventoryService;

pub const CONTEXT: &str = "inventory";

/// Inventory's settings; every one is listed with its default in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    /// Threshold given to new stock rows (`EMPORIUM_LOW_STOCK_THRESHOLD`, 10).
    pub default_low_stock_threshold: i64,
    /// Lifetime of a reservation that names no `ttl_seconds` (`EMPORIUM_RESERVATION_TTL_SECS`, 900).
    pub reservation_ttl: Duration,
    /// How often expired reservations are released and gauges refreshed
    /// (`EMPORIUM_RESERVATION_SWEEP_SECS`, 15).
    pub sweep_interval: Duration,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            default_low_stock_threshold: 10,
            reservation_ttl: Duration::from_secs(900),
            sweep_interval: Duration::from_secs(15),
        }
    }
}

impl InventoryConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        Ok(Self {
            default_low_stock_threshold: src.number_in(
                "EMPORIUM_LOW_STOCK_THRESHOLD",
                10,
                0..=domain::MAX_THRESHOLD as u64,
            )? as i64,
            reservation_ttl: src.seconds(
                "EMPORIUM_RESERVATION_TTL_SECS",
                900,
                domain::MIN_TTL_SECS..=domain::MAX_TTL_SECS,
            )?,
            sweep_interval: src.seconds("EMPORIUM_RESERVATION_SWEEP_SECS", 15, 1..=3600)?,
        })
    }
}

/// Inventory's schema, per backend.
pub static MIGRATIONS: platform::context::Migrations = platform::migrations!();

/// Applies inventory's migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    MIGRATIONS.run(CONTEXT, db).await
}

/// A running inventory context.
pub struct Inventory {
    service: Arc<InventoryService>,
}

impl Inventory {
    /// The inventory use cases (for `emporium seed`'s `bulk_restock`, and for tests).
    pub fn service(&self) -> Arc<InventoryService> {
        self.service.clone()
    }
}

#[async_trait::async_trait]
impl Context for Inventory {
    const NAME: &'static str = CONTEXT;
    type Config = InventoryConfig;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// Opens the store and starts the outbox relay.
    async fn start(db: &Db, config: InventoryConfig, deps: &ContextDeps) -> anyhow::Result<Self> {
        let store = store::open(db);
        service::describe_metrics();
        let outbox = deps.events.start_relay(CONTEXT, db);
        let service = Arc::new(InventoryService::new(store, config, outbox).with_faults(deps.faults.clone()));
        Ok(Self { service })
    }

    fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT)
    }

    fn offer_api(&self, peers: &Peers) {
        let service = self.service.clone();
        peers.offer::<dyn InventoryApi>(CONTEXT, move |caller| {
            Arc::new(direct::DirectApi::new(service.clone(), caller))
        });
    }

    /// Catalog's product events, for the stock rows.
    fn consumers(&self) -> Vec<Consumer> {
        vec![Consumer::once(
            "stock-from-products",
            vec![ProductCreated::TYPE, ProductDeleted::TYPE],
            Arc::new(StockFromProducts(self.service.clone())),
        )]
    }

    /// Every sweep interval: expires due reservations and refreshes the gauges; safe with several
    /// replicas (each reservation is expired by exactly one of them: a conditional update). And
    /// the purge of idempotency keys older than a day.
    fn workers(&self) -> Vec<Worker> {
        let every = self.service.config().sweep_interval;
        vec![
            Worker::every("sweeper", every, &self.service, |service| async move {
                if let Err(e) = service.expire_due(service::now()).await {
                    tracing::warn!(error = %format!("{e:#}"), "expiring reservations failed; retrying next tick");
                }
                if let Err(e) = service.refresh_metrics().await {
                    tracing::warn!(error = %format!("{e:#}"), "refreshing inventory gauges failed");
                }
            }),
            Worker::every("idempotency-purge", PURGE_EVERY, &self.service, |service| async move {
                if let Err(e) = service.purge_idempotency_keys().await {
                    tracing::warn!(error = %format!("{e:#}"), "purging idempotency keys failed");
                }
            }),
        ]
    }
}

/// How often idempotency keys older than a day are forgotten.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Inventory's OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::routes().split_for_parts().1
}

/// Creates a stock row (0 units) for every new product, and stops reservations of deleted ones.
/// Idempotent: an existing row is left alone.
struct StockFromProducts(Arc<InventoryService>);

#[async_trait::async_trait]
impl EventHandler for StockFromProducts {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        if let Some(data) = event.payload::<ProductCreated>() {
            let data = data.map_err(|e| HandlerError::permanent(format!("undecodable product data: {e}")))?;
            let sku = Sku::parse(&data.sku)
                .map_err(|m| HandlerError::permanent(format!("product SKU {:?} {m}", data.sku)))?;
            self.0
                .product_created(&sku)
                .await
                .map_err(|e| HandlerError::retryable(format!("{e:#}")))?;
        } else if let Some(data) = event.payload::<ProductDeleted>() {
            // Optional: only when the event names a SKU we can read.
            if let Some(sku) = data.ok().and_then(|d| Sku::parse(&d.sku).ok()) {
                self.0
                    .product_deleted(&sku)
                    .await
                    .map_err(|e| HandlerError::retryable(format!("{e:#}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bounds() {
        let src = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let c = InventoryConfig::from_source(&src).expect("defaults");
        assert_eq!(c.default_low_stock_threshold, 10);
        assert_eq!(c.reservation_ttl, Duration::from_secs(900));
        assert_eq!(c.sweep_interval, Duration::from_secs(15));
        let src = ConfigSource::from_pairs([("EMPORIUM_RESERVATION_TTL_SECS", "5")]).expect("src");
        let err = InventoryConfig::from_source(&src).expect_err("too short");
        assert!(err.to_string().contains("EMPORIUM_RESERVATION_TTL_SECS"), "{err}");
        let src = ConfigSource::from_pairs([("EMPORIUM_RESERVATION_SWEEP_SECS", "1")]).expect("src");
        assert_eq!(
            InventoryConfig::from_source(&src).expect("ok").sweep_interval,
            Duration::from_secs(1)
        );
    }
}
