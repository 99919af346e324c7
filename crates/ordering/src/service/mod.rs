//! Ordering's use cases: quote, checkout with its saga, reads, cancellation, fulfilment,
//! refunds and coupons. Handlers call these; these apply the domain rules, call the store and the
//! other contexts (through `peers`), then wake the outbox relay.
//!
//! One `OrderingService`, its use cases grouped by responsibility: `checkout` (quote, price,
//! place), `saga` (driving payment and confirmation, compensation, recovery), `fulfilment`
//! (cancel, ship, deliver), `refunds` and `coupons`; returns live in `crate::return_service`.
//! This module holds the service itself, its errors, and what they all share (the caller,
//! timeline entries, reads).
//!
//! The saga: every step is persisted (`saga_step`) before it acts, and the runner holds a lease
//! (`saga_lease_owner`/`saga_lease_until`) while it calls out. A step that cannot finish now
//! (payment processing, a peer down) releases the lease with a retry time; the recovery loop claims
//! orders whose lease has passed — through the store's locked `update`, so two replicas never run
//! one order — and resumes them.

mod checkout;
mod coupons;
mod error;
mod fulfilment;
mod invoicing;
mod refunds;
mod saga;

use std::sync::Arc;
use std::time::Duration;

use platform::events::Outbox;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::OrderingConfig;
use crate::domain::{Actor, OrderEvent, OrderId, OrderStatus, TimelineEntry, Viewer, transition};
use crate::peers::{Cart, Catalog, Payments, Stock};
use crate::store::{Mutation, Order, OrderDetail, OrderFilter, OrderStore, Refusal};
use crate::views::{OrderView, order_view, totals_view};

pub use checkout::{CheckoutRequest, ItemRequest, Placed};
pub use coupons::NewCoupon;
pub use error::OrderError;

type Result<T, E = OrderError> = std::result::Result<T, E>;

/// How long a replayed checkout waits for the first request's order.
pub const REPLAY_WAIT: Duration = Duration::from_secs(10);
/// Claims whose order never appeared are forgotten after this long.
pub const ORPHAN_CLAIM_AGE: time::Duration = time::Duration::minutes(10);
/// Roles that run fulfilment.
pub const FULFILMENT: &[&str] = &["admin", "fulfilment"];

pub(crate) fn describe_metrics() {
    metrics::describe_counter!("orders_placed_total", "Orders placed (stock reserved, order written).");
    metrics::describe_counter!("orders_paid_total", "Orders whose payment was captured.");
    metrics::describe_counter!(
        "orders_failed_total",
        "Orders whose payment failed, by reason (card_declined, insufficient_funds, ...)."
    );
    metrics::describe_counter!(
        "orders_cancelled_total",
        "Orders cancelled (by customers, admins or the saga)."
    );
    metrics::describe_histogram!(
        "order_value_minor_units",
        "Totals of placed orders in minor units, labelled by currency."
    );
    metrics::describe_histogram!(
        "order_invoice_batch_size",
        "Paid orders given invoice numbers by one transaction (the counter locked once for all)."
    );
    metrics::describe_histogram!(
        "order_saga_step_duration_seconds",
        "Duration of one saga step (capture, commit, refund, release, restock) by outcome."
    );
    metrics::describe_gauge!(
        "orders_stuck",
        "Orders in pending/awaiting_payment/paid not updated for EMPORIUM_ORDER_STUCK_MINUTES, by status."
    );
}

/// Timestamps are stored to the whole second, so SQLite's RFC 3339 text sorts as time does.
pub use platform::clock::now_to_second as now;

/// Who asks: the user and whether they act as staff.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub id: Uuid,
    pub staff: bool,
    pub admin: bool,
}

impl Caller {
    /// The caller as a viewer of an order placed by `owner`.
    pub fn viewer(&self, owner: Uuid) -> Viewer {
        Viewer {
            owner: self.id == owner,
            staff: self.staff,
            admin: self.admin,
        }
    }

    /// The caller's view of an order.
    pub(crate) fn view(&self, detail: &OrderDetail) -> OrderView {
        order_view(detail, self.viewer(detail.order.user_id))
    }

    pub(crate) fn actor(&self) -> Actor {
        if self.staff {
            Actor::Admin(self.id)
        } else {
            Actor::Customer(self.id)
        }
    }
}

pub struct OrderingService {
    pub(crate) config: OrderingConfig,
    pub(crate) store: Arc<dyn OrderStore>,
    pub(crate) outbox: Outbox,
    catalog: Arc<dyn Catalog>,
    pub(crate) stock: Arc<dyn Stock>,
    pub(crate) payments: Arc<dyn Payments>,
    cart: Arc<dyn Cart>,
    invoicer: invoicing::Invoicer,
}

/// The other contexts ordering calls.
pub struct PeerSet {
    pub catalog: Arc<dyn Catalog>,
    pub stock: Arc<dyn Stock>,
    pub payments: Arc<dyn Payments>,
    pub cart: Arc<dyn Cart>,
}

pub(crate) fn entry(
    at: OffsetDateTime,
    from: Option<OrderStatus>,
    to: OrderStatus,
    actor: Actor,
    reason: &str,
) -> TimelineEntry {
    TimelineEntry {
        at,
        from,
        to,
        actor: actor.to_string(),
        reason: reason.to_owned(),
    }
}

/// Applies `event` to `order` (status + timeline entry), or refuses naming the current status.
pub(crate) fn apply(
    m: &mut Mutation,
    event: OrderEvent,
    at: OffsetDateTime,
    actor: Actor,
    reason: &str,
) -> Result<(), Refusal> {
    let from = m.order.status;
    let to = transition(from, event)
        .map_err(|_| Refusal::Conflict(format!("the order is {from}: it cannot be {}", event_verb(event))))?;
    m.order.status = to;
    m.timeline.push(entry(at, Some(from), to, actor, reason));
    Ok(())
}

fn event_verb(event: OrderEvent) -> &'static str {
    match event {
        OrderEvent::StockReserved => "reserved",
        OrderEvent::PaymentCaptured => "paid",
        OrderEvent::PaymentFailed => "marked payment_failed",
        OrderEvent::ReservationExpired | OrderEvent::Cancel => "cancelled",
        OrderEvent::ReservationCommitted => "confirmed",
        OrderEvent::Ship => "shipped",
        OrderEvent::Deliver => "delivered",
        OrderEvent::PartialRefund | OrderEvent::FullRefund => "refunded",
    }
}

impl OrderingService {
    pub fn new(config: OrderingConfig, store: Arc<dyn OrderStore>, outbox: Outbox, peers: PeerSet) -> Self {
        Self {
            config,
            invoicer: invoicing::Invoicer::new(store.clone()),
            store,
            outbox,
            catalog: peers.catalog,
            stock: peers.stock,
            payments: peers.payments,
            cart: peers.cart,
        }
    }

    pub fn config(&self) -> &OrderingConfig {
        &self.config
    }

    pub(crate) async fn visible(&self, caller: &Caller, id: OrderId) -> Result<OrderDetail> {
        let detail = self.store.order(id).await?;
        match detail {
            Some(d) if caller.staff || d.order.user_id == caller.id => Ok(d),
            _ => Err(OrderError::NotFound("no such order".into())),
        }
    }

    pub async fn order(&self, caller: &Caller, id: OrderId) -> Result<OrderView> {
        Ok(caller.view(&self.visible(caller, id).await?))
    }

    pub async fn detail(&self, caller: &Caller, id: OrderId) -> Result<OrderDetail> {
        self.visible(caller, id).await
    }

    pub async fn list(&self, filter: &OrderFilter) -> Result<Vec<Order>> {
        Ok(self.store.list(filter).await?)
    }

    pub(crate) fn staff_only(caller: &Caller) -> Result<()> {
        if caller.staff {
            Ok(())
        } else {
            Err(OrderError::Forbidden("requires role admin or fulfilment".into()))
        }
    }

    /// The order's totals as the invoice shows them.
    pub fn totals_of(order: &Order) -> crate::views::TotalsView {
        totals_view(order)
    }
}
