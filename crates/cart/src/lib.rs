//! The cart context: guest carts (an opaque token) and user carts (one per user), priced and
//! checked against catalog and inventory at read time, merged at login, expired after inactivity.
//!
//! Served under `/api/v1/cart/*`. Consumes `ordering.order.placed` to empty a cart an order was
//! placed from; publishes nothing.

pub mod api;
pub mod direct;
pub mod domain;
pub mod pricing;
pub mod privacy;
pub mod service;
pub mod store;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use contracts::api::cart::CartApi;
use contracts::events::Event as _;
use contracts::events::ordering::OrderPlaced;
use contracts::events::privacy::{CartErased, CartExported};
use platform::auth::KeySet;
use platform::client::Peers;
use platform::config::{ConfigError, ConfigSource};
use platform::context::{Consumer, Context, ContextDeps, Migrations, Worker};
use platform::db::{Db, DbError};
use platform::events::{Event, EventHandler, HandlerError};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use crate::pricing::PeerPricing;
pub use crate::service::CartService;

pub const CONTEXT: &str = "cart";

/// Cart's settings; every one is listed with its default in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct CartConfig {
    /// Most units of one SKU in a cart (`EMPORIUM_CART_MAX_LINE_QUANTITY`, 10).
    pub max_line_quantity: i64,
    /// Most lines (distinct SKUs) in a cart (`EMPORIUM_CART_MAX_LINES`, 50).
    pub max_lines: usize,
    /// A guest cart untouched this long is deleted (`EMPORIUM_CART_GUEST_TTL_HOURS`, 720).
    pub guest_ttl: Duration,
    /// A user cart untouched this long is deleted (`EMPORIUM_CART_USER_TTL_HOURS`, 2160).
    pub user_ttl: Duration,
    /// How often expired carts are deleted (`EMPORIUM_CART_SWEEP_SECS`, 300).
    pub sweep_interval: Duration,
}

impl Default for CartConfig {
    fn default() -> Self {
        Self {
            max_line_quantity: 10,
            max_lines: 50,
            guest_ttl: Duration::from_secs(720 * 3600),
            user_ttl: Duration::from_secs(2160 * 3600),
            sweep_interval: Duration::from_secs(300),
        }
    }
}

/// Longest TTL accepted: ten years.
const MAX_TTL_HOURS: f64 = 87_600.0;

/// A TTL in hours; decimals allowed (`0.5` is 30 minutes) so tests and demos can use short ones.
fn hours(src: &ConfigSource, var: &str, default: f64) -> Result<Duration, ConfigError> {
    let value: f64 = src.get(var, default)?;
    if !(value.is_finite() && value > 0.0 && value <= MAX_TTL_HOURS) {
        return Err(ConfigError::new(
            var,
            format!("must be a number of hours above 0 and at most {MAX_TTL_HOURS}"),
        ));
    }
    Ok(Duration::from_secs_f64(value * 3600.0).max(Duration::from_secs(1)))
}

impl CartConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        Ok(Self {
            max_line_quantity: src.number_in("EMPORIUM_CART_MAX_LINE_QUANTITY", 10, 1..=10_000)? as i64,
            max_lines: src.number_in("EMPORIUM_CART_MAX_LINES", 50, 1..=100)? as usize,
            guest_ttl: hours(src, "EMPORIUM_CART_GUEST_TTL_HOURS", 720.0)?,
            user_ttl: hours(src, "EMPORIUM_CART_USER_TTL_HOURS", 2160.0)?,
            sweep_interval: src.seconds("EMPORIUM_CART_SWEEP_SECS", 300, 1..=86_400)?,
        })
    }
}

/// Cart's schema, per backend.
pub static MIGRATIONS: platform::context::Migrations = platform::migrations!();

/// Applies cart's migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    MIGRATIONS.run(CONTEXT, db).await
}

/// How long the cart waits for catalog or inventory before answering 503.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// A running cart context.
pub struct Cart {
    service: Arc<CartService>,
    keys: KeySet,
    db: Db,
    outbox: platform::events::Outbox,
}

impl Cart {
    /// The cart use cases (for tests and tools).
    pub fn service(&self) -> Arc<CartService> {
        self.service.clone()
    }
}

#[async_trait::async_trait]
impl Context for Cart {
    const NAME: &'static str = CONTEXT;
    type Config = CartConfig;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// Opens the store and connects to catalog and inventory.
    async fn start(db: &Db, config: CartConfig, deps: &ContextDeps) -> anyhow::Result<Self> {
        let store = store::open(db);
        let pricing = PeerPricing::new(&deps.peers, PEER_TIMEOUT)?;
        service::describe_metrics();
        let service = Arc::new(CartService::new(store, Arc::new(pricing), config));
        // Cart publishes only its answers to erasures and exports.
        let outbox = deps.events.start_relay(CONTEXT, db);
        Ok(Self {
            service,
            keys: deps.keys.clone(),
            db: db.clone(),
            outbox,
        })
    }

    fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT)
    }

    fn offer_api(&self, peers: &Peers) {
        let (service, keys) = (self.service.clone(), self.keys.clone());
        peers.offer::<dyn CartApi>(CONTEXT, move |_caller| {
            Arc::new(direct::DirectApi {
                service: service.clone(),
                keys: keys.clone(),
            })
        });
    }

    /// Orders placed, to empty the cart they were placed from; erasures and exports.
    fn consumers(&self) -> Vec<Consumer> {
        vec![
            Consumer::once(
                "clear-ordered",
                vec![OrderPlaced::TYPE],
                Arc::new(ClearOrdered(self.service.clone())),
            ),
            platform::privacy::answers::<CartErased, CartExported>(
                CONTEXT,
                &self.db,
                self.outbox.clone(),
                privacy::open(&self.db),
            ),
        ]
    }

    /// Every sweep interval: deletes expired carts and refreshes the gauges. Safe with several
    /// replicas (each cart is deleted by one of them).
    fn workers(&self) -> Vec<Worker> {
        let every = self.service.config().sweep_interval;
        vec![Worker::every("sweeper", every, &self.service, |service| async move {
            if let Err(e) = service.expire_due(service::now()).await {
                tracing::warn!(error = %format!("{e:#}"), "deleting expired carts failed; retrying next tick");
            }
            if let Err(e) = service.refresh_metrics().await {
                tracing::warn!(error = %format!("{e:#}"), "refreshing cart gauges failed");
            }
        })]
    }
}

/// Cart's OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::routes().split_for_parts().1;
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "cart_token",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Cart-Token",
            "A guest cart's token, from `POST /api/v1/cart/guest`",
        ))),
    );
    doc
}

/// Empties a user's cart once an order was placed from it (lines changed after the order stay).
/// Idempotent: a replay finds nothing left to remove.
struct ClearOrdered(Arc<CartService>);

#[async_trait::async_trait]
impl EventHandler for ClearOrdered {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let Some(placed) = event.payload::<OrderPlaced>() else {
            return Ok(());
        };
        let placed = placed.map_err(|e| HandlerError::permanent(format!("undecodable order data: {e}")))?;
        if placed.from_cart {
            // What was ordered: lines changed in the very second the order was placed cannot be
            // told apart by time, so cart takes these quantities off them.
            let ordered = placed
                .lines
                .iter()
                .map(|l| u32::try_from(l.quantity).map(|q| (l.sku.clone(), q)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| HandlerError::permanent(format!("order line quantity: {e}")))?;
            let user = placed.order.user_id;
            let removed = self
                .0
                .order_placed(user, event.time, &ordered)
                .await
                .map_err(|e| HandlerError::retryable(format!("{e:#}")))?;
            tracing::debug!(%user, removed, "emptied the cart an order was placed from");
        }
        Ok(())
    }

    /// Orders placed from explicit items (API clients) leave every cart alone.
    async fn wants(&self, event: &Event) -> bool {
        !matches!(event.payload::<OrderPlaced>(), Some(Ok(placed)) if !placed.from_cart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bounds() {
        let src = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let c = CartConfig::from_source(&src).expect("defaults");
        assert_eq!(c.max_line_quantity, 10);
        assert_eq!(c.max_lines, 50);
        assert_eq!(c.guest_ttl, Duration::from_secs(720 * 3600));
        assert_eq!(c.user_ttl, Duration::from_secs(2160 * 3600));
        assert_eq!(c.sweep_interval, Duration::from_secs(300));
        let src = ConfigSource::from_pairs([("EMPORIUM_CART_GUEST_TTL_HOURS", "0.5")]).expect("src");
        assert_eq!(
            CartConfig::from_source(&src).expect("ok").guest_ttl,
            Duration::from_secs(1800)
        );
        for (var, bad) in [
            ("EMPORIUM_CART_GUEST_TTL_HOURS", "0"),
            ("EMPORIUM_CART_USER_TTL_HOURS", "-1"),
            ("EMPORIUM_CART_USER_TTL_HOURS", "soon"),
            ("EMPORIUM_CART_MAX_LINE_QUANTITY", "0"),
            ("EMPORIUM_CART_MAX_LINES", "101"),
            ("EMPORIUM_CART_SWEEP_SECS", "0"),
        ] {
            let src = ConfigSource::from_pairs([(var, bad)]).expect("src");
            let err = CartConfig::from_source(&src).expect_err(bad);
            assert_eq!(err.var, var);
        }
    }

    #[test]
    fn openapi_lists_every_route_and_the_cart_token_scheme() {
        let doc = serde_json::to_value(openapi()).expect("json");
        for path in [
            "/api/v1/cart",
            "/api/v1/cart/guest",
            "/api/v1/cart/items",
            "/api/v1/cart/items/{sku}",
            "/api/v1/cart/merge",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["cart_token"]["name"],
            "X-Cart-Token"
        );
    }
}
