//! The ordering context: checkout with server-side totals (catalog prices, shipping rules, tax per
//! destination, coupons), the order saga (reserve stock → capture payment → commit the reservation,
//! with compensation), fulfilment, refunds and invoices.
//!
//! Served under `/api/v1/orders/*`. Publishes `ordering.order.*` through its outbox; consumes
//! `inventory.reservation.expired`.

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod invoice;
pub mod peers;
pub mod privacy;
pub mod return_service;
pub mod returns;
pub mod returns_api;
pub mod service;
pub mod store;
pub mod views;

use std::sync::Arc;

use axum::Router;
use contracts::events::Event as _;
use contracts::events::inventory::ReservationExpired;
use contracts::events::privacy::{OrderingErased, OrderingExported};
use platform::context::{Consumer, Context, ContextDeps, Migrations, Worker};
use platform::db::{Db, DbError};
use platform::events::{Event, EventHandler, HandlerError};

use crate::domain::OrderId;
use crate::peers::{CartPeer, CatalogPeer, InventoryPeer, PaymentsPeer};
use crate::service::PeerSet;

pub use crate::config::OrderingConfig;
pub use crate::service::OrderingService;

pub const CONTEXT: &str = "ordering";

/// Ordering's schema, per backend.
pub static MIGRATIONS: platform::context::Migrations = platform::migrations!();

/// Applies ordering's migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    MIGRATIONS.run(CONTEXT, db).await
}

/// A running ordering context.
pub struct Ordering {
    service: Arc<OrderingService>,
    db: Db,
    outbox: platform::events::Outbox,
    personal_data: Arc<PersonalDataOf>,
}

/// Ordering's personal data, as a worker's state.
struct PersonalDataOf(Arc<dyn privacy::OrderingPersonalData>);

impl Ordering {
    /// The ordering use cases (for tests and the CLI).
    pub fn service(&self) -> Arc<OrderingService> {
        self.service.clone()
    }
}

#[async_trait::async_trait]
impl Context for Ordering {
    const NAME: &'static str = CONTEXT;
    type Config = OrderingConfig;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// Opens the store, connects to its peers and starts the outbox relay.
    async fn start(db: &Db, config: OrderingConfig, deps: &ContextDeps) -> anyhow::Result<Self> {
        let store = store::open(db);
        service::describe_metrics();
        // The other contexts' published APIs: called directly when they run in this process,
        // else over HTTP.
        let budget = platform::client::DEFAULT_BUDGET;
        let peers = PeerSet {
            catalog: Arc::new(CatalogPeer(clients::catalog(&deps.peers, CONTEXT, budget)?)),
            stock: Arc::new(InventoryPeer(clients::inventory(&deps.peers, CONTEXT, budget)?)),
            payments: Arc::new(PaymentsPeer(clients::payments(
                &deps.peers,
                CONTEXT,
                config.payment_timeout,
            )?)),
            cart: Arc::new(CartPeer(clients::cart(&deps.peers, CONTEXT, budget)?)),
        };
        let outbox = deps.events.start_relay(CONTEXT, db);
        let personal_data = Arc::new(PersonalDataOf(privacy::open(db, config.personal_data_retention)));
        let service = Arc::new(OrderingService::new(config, store, outbox.clone(), peers));
        Ok(Self {
            service,
            db: db.clone(),
            outbox,
            personal_data,
        })
    }

    fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT)
    }

    /// Reservations that expired, to cancel orders still awaiting their payment; erasures and
    /// exports.
    fn consumers(&self) -> Vec<Consumer> {
        vec![
            Consumer::once(
                "cancel-on-reservation-expiry",
                vec![ReservationExpired::TYPE],
                Arc::new(ReservationExpiry(self.service.clone())),
            ),
            platform::privacy::answers::<OrderingErased, OrderingExported>(
                CONTEXT,
                &self.db,
                self.outbox.clone(),
                self.personal_data.0.clone(),
            ),
        ]
    }

    /// At start and every recovery interval: resumes unfinished sagas whose lease has passed,
    /// refreshes the stuck-orders gauge and forgets orphaned claims.
    fn workers(&self) -> Vec<Worker> {
        let every = self.service.config().recovery_interval;
        // Erased customers' orders whose invoice retention ended lose their name and address.
        let retention = Worker::every(
            "privacy-retention",
            std::time::Duration::from_secs(3600),
            &self.personal_data,
            |data| async move {
                match data.0.pseudonymise_due(platform::clock::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(orders = n, "pseudonymised orders whose retention ended"),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "pseudonymising orders failed; retrying next hour")
                    }
                }
            },
        );
        let recovery = Worker::every("recovery", every, &self.service, |service| async move {
            if let Err(e) = service.recover().await {
                tracing::warn!(error = %e, "resuming order sagas failed; retrying next tick");
            }
            if let Err(e) = service.recover_returns().await {
                tracing::warn!(error = %e, "resuming received returns failed; retrying next tick");
            }
            if let Err(e) = service.housekeeping().await {
                tracing::warn!(error = %e, "refreshing order gauges failed");
            }
        });
        vec![recovery, retention]
    }
}

/// Ordering's OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::routes().split_for_parts().1
}

/// `inventory.reservation.expired` (reference = order id): an order still awaiting its payment is
/// cancelled and its saga refunds whatever was captured meanwhile. Idempotent.
struct ReservationExpiry(Arc<OrderingService>);

#[async_trait::async_trait]
impl EventHandler for ReservationExpiry {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let Some(data) = event.payload::<ReservationExpired>() else {
            return Ok(());
        };
        let data = data.map_err(|e| HandlerError::permanent(format!("reservation data: {e}")))?;
        // Reservations made by others have references that are not order ids: not ours.
        let Ok(order) = uuid::Uuid::parse_str(&data.reference) else {
            return Ok(());
        };
        self.0
            .reservation_expired(OrderId(order), data.id)
            .await
            .map_err(|e| HandlerError::retryable(e.to_string()))
    }
}
