//! The catalog context: products, categories, full-text search and suggestions, facets, related
//! products, reviews with rating aggregates, and stock levels fed by inventory's events.
//!
//! Served under `/api/v1/catalog/*`.

pub mod api;
pub mod direct;
pub mod domain;
pub mod params;
pub mod privacy;
pub mod purchases;
pub mod rates;
pub mod recommendations;
pub mod rendered;
pub mod seed;
pub mod service;
pub mod stock;
pub mod store;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use contracts::api::catalog::CatalogApi;
use contracts::events::Event as _;
use contracts::events::inventory::StockChanged;
use contracts::events::ordering::{OrderConfirmed, OrderDelivered};
use contracts::events::privacy::{CatalogErased, CatalogExported};
use platform::client::Peers;
use platform::config::{ConfigError, ConfigSource};
use platform::context::{Consumer, Context, ContextDeps, Migrations};
use platform::db::{Db, DbError};

use crate::domain::Currency;
pub use crate::service::CatalogService;

pub const CONTEXT: &str = "catalog";

/// Catalog's settings; every one is listed with its default in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Currency of prices that do not name one (`EMPORIUM_CATALOG_CURRENCY`).
    pub default_currency: Currency,
    /// How long product pages and lists stay cached (`EMPORIUM_CATALOG_CACHE_TTL_SECS`; 0 disables).
    pub cache_ttl: Duration,
    /// Load ~40 demo products into an empty catalog on first start (`EMPORIUM_SEED_DEMO`); the
    /// wiring decides when to call [`seed::seed_demo_if_empty`].
    pub seed_demo: bool,
    /// How long cached pages may show a product's previous `available` count after its stock
    /// moved without coming into or going out of stock (`EMPORIUM_CATALOG_PAGE_STOCK_LAG_MS`;
    /// zero refreshes every page on every stock change).
    pub page_stock_lag: Duration,
}

impl CatalogConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let currency = src.raw("EMPORIUM_CATALOG_CURRENCY").unwrap_or("EUR");
        Ok(Self {
            default_currency: Currency::parse(currency)
                .map_err(|m| ConfigError::new("EMPORIUM_CATALOG_CURRENCY", m))?,
            cache_ttl: src.seconds("EMPORIUM_CATALOG_CACHE_TTL_SECS", 60, 0..=86_400)?,
            seed_demo: src.flag("EMPORIUM_SEED_DEMO", true)?,
            page_stock_lag: Duration::from_millis(src.number_in(
                "EMPORIUM_CATALOG_PAGE_STOCK_LAG_MS",
                1_000,
                0..=60_000,
            )?),
        })
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            default_currency: Currency::EUR,
            cache_ttl: Duration::from_secs(60),
            seed_demo: true,
            page_stock_lag: Duration::from_secs(1),
        }
    }
}

/// Catalog's schema, per backend.
pub static MIGRATIONS: platform::context::Migrations = platform::migrations!();

/// Applies catalog's migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    MIGRATIONS.run(CONTEXT, db).await
}

/// A running catalog context.
pub struct Catalog {
    service: Arc<CatalogService>,
    db: Db,
    outbox: platform::events::Outbox,
}

impl Catalog {
    pub fn service(&self) -> Arc<CatalogService> {
        self.service.clone()
    }
}

#[async_trait::async_trait]
impl Context for Catalog {
    const NAME: &'static str = CONTEXT;
    type Config = CatalogConfig;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// Opens the store and starts the outbox relay.
    async fn start(db: &Db, config: CatalogConfig, deps: &ContextDeps) -> anyhow::Result<Self> {
        let store = store::open(db);
        service::describe_metrics();
        let outbox = deps.events.start_relay(CONTEXT, db);
        let cache = deps.cache.namespace(CONTEXT);
        let service =
            Arc::new(CatalogService::new(store, cache, Some(outbox.clone()), config).with_faults(deps.faults.clone()));
        Ok(Self {
            service,
            db: db.clone(),
            outbox,
        })
    }

    fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT)
    }

    fn offer_api(&self, peers: &Peers) {
        let service = self.service.clone();
        peers.offer::<dyn CatalogApi>(CONTEXT, move |_caller| Arc::new(direct::DirectApi(service.clone())));
    }

    /// Stock changes from inventory; confirmed orders, for recommendations; delivered orders, for
    /// verified-purchase reviews.
    fn consumers(&self) -> Vec<Consumer> {
        vec![
            platform::privacy::answers::<CatalogErased, CatalogExported>(
                CONTEXT,
                &self.db,
                self.outbox.clone(),
                privacy::open(&self.db),
            ),
            Consumer::once(
                "stock-levels",
                vec![StockChanged::TYPE],
                Arc::new(stock::StockLevels::new(self.service.clone())),
            ),
            Consumer::once(
                "co-purchases",
                vec![OrderConfirmed::TYPE],
                Arc::new(recommendations::CoPurchases::new(self.service.clone())),
            ),
            Consumer::once(
                "verified-purchases",
                vec![OrderDelivered::TYPE],
                Arc::new(purchases::VerifiedPurchases::new(self.service.clone())),
            ),
        ]
    }
}

/// Catalog's OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::routes().split_for_parts().1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bad_currency() {
        let src = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let c = CatalogConfig::from_source(&src).expect("defaults");
        assert_eq!(c.default_currency.as_str(), "EUR");
        assert_eq!(c.cache_ttl, Duration::from_secs(60));
        assert!(c.seed_demo);
        let bad = ConfigSource::from_pairs([("EMPORIUM_CATALOG_CURRENCY", "EURO")]).expect("src");
        assert!(CatalogConfig::from_source(&bad).is_err());
    }
}
