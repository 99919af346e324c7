//! Ordering's use cases: quote, checkout with its saga, reads, cancellation, fulfilment,
//! refunds and coupons. Handlers call these; these apply the domain rules, call the store and the
//! other contexts (through `peers`), then wake the outbox relay.
//!
//! The saga: every step is persisted (`saga_step`) before it acts, and the runner holds a lease
//! (`saga_lease_owner`/`saga_lease_until`) while it calls out. A step that cannot finish now
//! (payment processing, a peer down) releases the lease with a retry time; the recovery loop claims
//! orders whose lease has passed — through the store's locked `update`, so two replicas never run
//! one order — and resumes them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::events::Outbox;
use platform::money::MoneyInput;
use platform::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::OrderingConfig;
use crate::domain::{
    Actor, Country, Coupon, CouponKind, Currency, LinePrice, OrderEvent, OrderId, OrderNumber, OrderStatus, RawAddress,
    ShippingAddress, Sku, TimelineEntry, Totals, compute_totals, parse_coupon_code, parse_destination,
    parse_payment_method, parse_reason, parse_tracking, refund_outcome, transition,
};
use crate::events;
use crate::peers::{
    CaptureRequest, Cart, Catalog, Charged, Finished, MethodCheck, Payment, Payments, PeerError, Reserved, Stock,
};
use crate::store::{
    Claim, Claimed, Mutation, NewOrder, Order, OrderDetail, OrderFilter, OrderLine, OrderStore, PlaceOutcome,
    RefundRecord, Refusal, SagaStep, StoreError,
};
use crate::views::{CouponView, LineView, OrderView, QuoteView, totals_view};

/// How long a saga runner may hold an order before another may take it over.
pub const LEASE: time::Duration = time::Duration::seconds(30);
/// How long a replayed checkout waits for the first request's order.
pub const REPLAY_WAIT: Duration = Duration::from_secs(10);
/// Claims whose order never appeared are forgotten after this long.
pub const ORPHAN_CLAIM_AGE: time::Duration = time::Duration::minutes(10);
/// Roles that run fulfilment.
pub const FULFILMENT: &[&str] = &["admin", "fulfilment"];

/// Everything that can go wrong in ordering, mapped to HTTP once.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { detail: String, errors: Vec<FieldError> },
    /// A client price or expected total differs from the current one: 409 with the current quote.
    #[error("prices changed since you last saw them")]
    PriceChanged {
        errors: Vec<FieldError>,
        quote: Box<QuoteView>,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl OrderError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 4xx answers: the request was refused and (for checkout) nothing was written.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Unavailable(_) | Self::Internal(_))
    }
}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("no such order".into()),
            StoreError::Db(sqlx::Error::PoolTimedOut) => {
                Self::Unavailable("the database is busy; retry shortly".into())
            }
            // The sqlx error itself, so Problem::from_error can tell an outage (503) from a bug.
            StoreError::Db(e) => Self::Internal(e.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<PeerError> for OrderError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::Unavailable { .. } => Self::Unavailable(e.to_string()),
            PeerError::Unexpected { .. } => Self::Internal(anyhow::anyhow!(e.to_string())),
        }
    }
}

impl From<Refusal> for OrderError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Conflict(detail) => Self::conflict(detail),
            Refusal::Invalid { field, message } => Self::invalid(field, message),
            Refusal::Stale => Self::conflict("the order changed meanwhile; read it again"),
            Refusal::Fields {
                conflict: Some(detail),
                errors,
            } => Self::Conflict { detail, errors },
            Refusal::Fields { conflict: None, errors } => Self::Validation(errors),
        }
    }
}

impl From<OrderError> for Problem {
    fn from(e: OrderError) -> Self {
        let message = e.to_string();
        match e {
            OrderError::Validation(errors) => Problem::validation(errors),
            OrderError::Forbidden(_) => Problem::forbidden(message),
            OrderError::NotFound(_) => Problem::not_found(message),
            OrderError::Conflict { errors, .. } => Problem::conflict(message).with_errors(errors),
            OrderError::PriceChanged { errors, .. } => Problem::new(http_conflict(), "price-changed", "Prices changed")
                .with_detail("the current prices differ from the ones sent; review the quote and confirm")
                .with_errors(errors),
            OrderError::Unavailable(_) => Problem::unavailable(message).with_retry_after(2),
            OrderError::Internal(e) => Problem::from_error(&e),
        }
    }
}

fn http_conflict() -> axum::http::StatusCode {
    axum::http::StatusCode::CONFLICT
}

type Result<T, E = OrderError> = std::result::Result<T, E>;

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
        "order_saga_step_duration_seconds",
        "Duration of one saga step (capture, commit, refund, release, restock) by outcome."
    );
    metrics::describe_gauge!(
        "orders_stuck",
        "Orders in pending/awaiting_payment/paid not updated for EMPORIUM_ORDER_STUCK_MINUTES, by status."
    );
}

/// Timestamps are stored to the whole second, so SQLite's RFC 3339 text sorts as time does.
pub fn now() -> OffsetDateTime {
    let now = platform::time::now();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Who asks: the user and whether they act as staff.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub id: Uuid,
    pub staff: bool,
    pub admin: bool,
}

impl Caller {
    pub(crate) fn actor(&self) -> Actor {
        if self.staff {
            Actor::Admin(self.id)
        } else {
            Actor::Customer(self.id)
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    /// 1 to 99.
    #[schema(example = 2)]
    pub quantity: i64,
    /// The unit price the client showed (`{amount, currency}`; a bare integer of minor units is
    /// still accepted); a different current price is a 409.
    #[serde(default)]
    pub unit_price: Option<MoneyInput>,
}

/// A checkout (or quote) request.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// Explicit lines; give these or `from_cart: true`, not both.
    #[serde(default)]
    pub items: Option<Vec<ItemRequest>>,
    /// Order the caller's cart.
    #[serde(default)]
    pub from_cart: Option<bool>,
    pub shipping_address: RawAddress,
    #[schema(example = "standard")]
    pub shipping_method: String,
    #[serde(default)]
    pub coupon: Option<String>,
    /// A payment method id from `POST /api/v1/payments/methods` (required to place, ignored by quotes).
    #[serde(default)]
    #[schema(example = "pm_0192f0c4e5a87c3b9d1e2f3a4b5c6d7e")]
    pub payment_method: Option<String>,
    /// The total the client showed (`{amount, currency}`; a bare integer of minor units is still
    /// accepted); a different current total is a 409.
    #[serde(default)]
    pub expected_total: Option<MoneyInput>,
}

/// A priced checkout: what the order will be.
struct Priced {
    lines: Vec<OrderLine>,
    totals: Totals,
    /// `None` for a quote that named only the country.
    address: Option<ShippingAddress>,
    method: String,
    coupon: Option<String>,
    from_cart: bool,
    currency: Currency,
}

impl Priced {
    fn quote(&self) -> QuoteView {
        QuoteView {
            lines: self.lines.iter().map(|l| LineView::new(l, &self.currency)).collect(),
            totals: crate::views::TotalsView::new(&self.totals, &self.currency),
            shipping_method: self.method.clone(),
            coupon: self.coupon.clone(),
        }
    }
}

/// The answer to a checkout.
pub struct Placed {
    pub order: OrderView,
    /// The key was used before: this is the first request's order.
    pub replayed: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCoupon {
    /// `[A-Z0-9-]{3,32}`, case-insensitive.
    #[schema(example = "WELCOME10")]
    pub code: String,
    /// `percentage` or `fixed`.
    pub kind: String,
    /// Percentage coupons: 1 to 100.
    #[serde(default)]
    pub percent: Option<u32>,
    /// Fixed coupons: the amount off, `{amount, currency}` (the order currency when `currency` is
    /// left out; a bare integer of minor units is still accepted).
    #[serde(default)]
    pub amount: Option<MoneyInput>,
    /// Deprecated: the currency of a bare-integer `amount`.
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    #[serde(default)]
    pub max_uses: Option<i64>,
    #[serde(default)]
    pub min_subtotal: Option<MoneyInput>,
}

/// How a saga step ended.
enum Step {
    /// The next step (or the end) was persisted: keep going.
    Continue,
    /// Try again later (payment processing, a peer down).
    Wait(String),
    /// Someone else moved the order: stop without touching it.
    Stale,
}

pub struct OrderingService {
    pub(crate) config: OrderingConfig,
    pub(crate) store: Arc<dyn OrderStore>,
    pub(crate) outbox: Outbox,
    catalog: Arc<dyn Catalog>,
    pub(crate) stock: Arc<dyn Stock>,
    pub(crate) payments: Arc<dyn Payments>,
    cart: Arc<dyn Cart>,
}

/// The other contexts ordering calls.
pub struct PeerSet {
    pub catalog: Arc<dyn Catalog>,
    pub stock: Arc<dyn Stock>,
    pub payments: Arc<dyn Payments>,
    pub cart: Arc<dyn Cart>,
}

fn request_hash(body: &serde_json::Value) -> Vec<u8> {
    // serde_json's maps are sorted, so equal documents serialise equally.
    Sha256::digest(body.to_string().as_bytes()).to_vec()
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

    // -----------------------------------------------------------------------------------------
    // Pricing

    async fn price(&self, req: &CheckoutRequest, bearer: &str, placing: bool) -> Result<Priced> {
        let mut errors = Vec::new();
        let from_cart = req.from_cart.unwrap_or(false);
        // (sku text, quantity, client unit price, field prefix)
        let raw_lines: Vec<(String, i64, Option<i64>, String)> = match (&req.items, from_cart) {
            (Some(items), false) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let price = l.unit_price.as_ref().map(MoneyInput::amount);
                    (l.sku.clone(), l.quantity, price, format!("items[{i}]"))
                })
                .collect(),
            (Some(_), true) => {
                return Err(OrderError::invalid("items", "give items or from_cart: true, not both"));
            }
            (Some(_), false) => return Err(OrderError::invalid("items", "must list at least one item")),
            (None, true) => {
                let lines = self.cart.lines(bearer).await?;
                if lines.is_empty() {
                    return Err(OrderError::invalid("from_cart", "the cart is empty"));
                }
                lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| (l.sku, l.quantity, None, format!("cart.items[{i}]")))
                    .collect()
            }
            (None, false) => {
                return Err(OrderError::invalid("items", "is required (or set from_cart: true)"));
            }
        };
        if raw_lines.len() > crate::domain::MAX_LINES {
            return Err(OrderError::invalid(
                "items",
                format!("at most {} lines per order", crate::domain::MAX_LINES),
            ));
        }
        let mut parsed: Vec<(Sku, i64, Option<i64>, String)> = Vec::new();
        let mut seen = HashSet::new();
        for (sku, qty, price, prefix) in raw_lines {
            let sku = match Sku::parse(&sku) {
                Ok(s) => s,
                Err(m) => {
                    errors.push(FieldError::new(format!("{prefix}.sku"), m));
                    continue;
                }
            };
            if !seen.insert(sku.clone()) {
                errors.push(FieldError::new(
                    format!("{prefix}.sku"),
                    "is listed twice; combine the lines",
                ));
                continue;
            }
            if let Err(m) = crate::domain::Quantity::parse(qty) {
                errors.push(FieldError::new(format!("{prefix}.quantity"), m));
            }
            if price.is_some_and(|p| p < 0) {
                errors.push(FieldError::new(format!("{prefix}.unit_price"), "must not be negative"));
            }
            parsed.push((sku, qty, price, prefix));
        }
        let config = &self.config;
        let supported = |c: &Country| config.tax_rate(c).is_some();
        // A quote may name only the country: the total does not depend on the rest.
        let (address, country) = if !placing && req.shipping_address.is_country_only() {
            match parse_destination(&req.shipping_address.country, "shipping_address", supported) {
                Ok(c) => (None, Some(c)),
                Err(e) => {
                    errors.push(e);
                    (None, None)
                }
            }
        } else {
            match ShippingAddress::parse(&req.shipping_address, "shipping_address", supported) {
                Ok(a) => {
                    let country = a.country.clone();
                    (Some(a), Some(country))
                }
                Err(mut e) => {
                    errors.append(&mut e);
                    (None, None)
                }
            }
        };
        let method = config.shipping_method(req.shipping_method.trim());
        if method.is_none() {
            let known: Vec<&str> = config.shipping_methods.iter().map(|m| m.id.as_str()).collect();
            errors.push(FieldError::new(
                "shipping_method",
                format!("must be one of {}", known.join(", ")),
            ));
        }
        let coupon_code = match req.coupon.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => match parse_coupon_code(raw) {
                Ok(c) => Some(c),
                Err(m) => {
                    errors.push(FieldError::new("coupon", m));
                    None
                }
            },
        };
        if placing {
            match req.payment_method.as_deref() {
                None => errors.push(FieldError::new("payment_method", "is required")),
                Some(pm) => {
                    if let Err(m) = parse_payment_method(pm) {
                        errors.push(FieldError::new("payment_method", m));
                    }
                }
            }
        }
        if req.expected_total.as_ref().is_some_and(|t| t.amount() < 0) {
            errors.push(FieldError::new("expected_total", "must not be negative"));
        }
        if let Some(items) = &req.items {
            for (i, item) in items.iter().enumerate() {
                if let Some(c) = item.unit_price.as_ref().and_then(MoneyInput::currency)
                    && !c.eq_ignore_ascii_case(self.config.currency.as_str())
                {
                    errors.push(FieldError::new(
                        format!("items[{i}].unit_price.currency"),
                        format!("orders are taken in {} only", self.config.currency),
                    ));
                }
            }
        }
        if let Some(c) = req.expected_total.as_ref().and_then(MoneyInput::currency)
            && !c.eq_ignore_ascii_case(self.config.currency.as_str())
        {
            errors.push(FieldError::new(
                "expected_total.currency",
                format!("orders are taken in {} only", self.config.currency),
            ));
        }
        if !errors.is_empty() {
            return Err(OrderError::Validation(errors));
        }
        let (Some(country), Some(method)) = (country, method) else {
            return Err(OrderError::Internal(anyhow::anyhow!("validated fields missing")));
        };

        // Current prices from the catalogue.
        let skus: Vec<Sku> = parsed.iter().map(|(s, ..)| s.clone()).collect();
        let products = self.catalog.products(&skus).await?;
        let mut lines = Vec::with_capacity(parsed.len());
        let mut price_errors = Vec::new();
        for (i, (sku, qty, client_price, prefix)) in parsed.iter().enumerate() {
            let Some(product) = products.items.iter().find(|p| p.sku.eq_ignore_ascii_case(sku.as_str())) else {
                errors.push(FieldError::new(
                    format!("{prefix}.sku"),
                    format!("{sku} is not a product on sale (unknown or inactive)"),
                ));
                continue;
            };
            if !product.price.currency.eq_ignore_ascii_case(config.currency.as_str()) {
                errors.push(FieldError::new(
                    format!("{prefix}.sku"),
                    format!(
                        "is priced in {}; orders are taken in {} only",
                        product.price.currency, config.currency
                    ),
                ));
                continue;
            }
            if client_price.is_some_and(|p| p != product.price.amount) {
                price_errors.push(FieldError::new(
                    format!("{prefix}.unit_price"),
                    format!("the current price is {}", product.price.amount),
                ));
            }
            let line_total = LinePrice {
                unit_price: product.price.amount,
                quantity: *qty,
            }
            .total()
            .map_err(|_| OrderError::invalid(format!("{prefix}.quantity"), "the amount is too large"))?;
            lines.push(OrderLine {
                line: i as i64,
                sku: sku.clone(),
                product_id: product.id,
                name: product.name.clone(),
                quantity: *qty,
                unit_price: product.price.amount,
                line_total,
            });
        }
        if !errors.is_empty() {
            return Err(OrderError::Validation(errors));
        }
        let coupon = match &coupon_code {
            None => None,
            Some(code) => {
                let coupon = self
                    .store
                    .coupon(code)
                    .await?
                    .ok_or_else(|| OrderError::invalid("coupon", "is not a known coupon"))?;
                Some(coupon)
            }
        };
        let prices: Vec<LinePrice> = lines
            .iter()
            .map(|l| LinePrice {
                unit_price: l.unit_price,
                quantity: l.quantity,
            })
            .collect();
        let subtotal = prices
            .iter()
            .try_fold(0i64, |acc, p| p.total().ok().and_then(|t| acc.checked_add(t)))
            .ok_or_else(|| OrderError::invalid("items", "the amounts are too large"))?;
        if let Some(c) = &coupon {
            c.check(subtotal, &config.currency, now())
                .map_err(|why| OrderError::invalid("coupon", why.to_string()))?;
        }
        let rate = config.tax_rate(&country).unwrap_or(0);
        let totals = compute_totals(&prices, coupon.as_ref(), method, rate)
            .map_err(|_| OrderError::invalid("items", "the amounts are too large"))?;
        let priced = Priced {
            lines,
            totals,
            address,
            method: method.id.clone(),
            coupon: coupon_code,
            from_cart,
            currency: config.currency.clone(),
        };
        if req.expected_total.as_ref().is_some_and(|t| t.amount() != totals.total) {
            price_errors.push(FieldError::new(
                "expected_total",
                format!("the current total is {}", totals.total),
            ));
        }
        if !price_errors.is_empty() {
            return Err(OrderError::PriceChanged {
                errors: price_errors,
                quote: Box::new(priced.quote()),
            });
        }
        Ok(priced)
    }

    /// Totals and current prices for a would-be order; writes nothing.
    pub async fn quote(&self, req: &CheckoutRequest, bearer: &str) -> Result<QuoteView> {
        Ok(self.price(req, bearer, false).await?.quote())
    }

    // -----------------------------------------------------------------------------------------
    // Checkout

    /// Places an order (idempotent per user and key) and runs its saga as far as it can now.
    pub async fn place(
        &self,
        caller: &Caller,
        bearer: &str,
        key: &str,
        body: &serde_json::Value,
        req: &CheckoutRequest,
    ) -> Result<Placed> {
        let claim = Claim {
            user_id: caller.id,
            key: key.to_owned(),
            request_hash: request_hash(body),
            order_id: OrderId::new(),
            created_at: now(),
        };
        match self.store.claim(&claim).await? {
            Claimed::Existing(first) => {
                if first.request_hash != claim.request_hash {
                    return Err(OrderError::invalid(
                        "Idempotency-Key",
                        "was already used with a different request body",
                    ));
                }
                let order = self.await_replay(first.order_id).await?;
                Ok(Placed { order, replayed: true })
            }
            Claimed::New => match self.place_claimed(caller, bearer, req, claim.order_id).await {
                Ok(order) => Ok(Placed { order, replayed: false }),
                Err(e) => {
                    // Nothing was written: let the client retry with the same key.
                    if let Err(del) = self.store.delete_claim(caller.id, key).await {
                        tracing::warn!(error = %del, "could not delete a failed checkout's claim");
                    }
                    Err(e)
                }
            },
        }
    }

    /// Waits (≤ 10 s) until the first request's order exists and no saga step is running on it.
    async fn await_replay(&self, id: OrderId) -> Result<OrderView> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(20);
        loop {
            if let Some(detail) = self.store.order(id).await?
                && !detail.order.leased_at(now())
            {
                return Ok(OrderView::from(&detail));
            }
            if started.elapsed() >= REPLAY_WAIT {
                return Err(OrderError::Conflict {
                    detail: "the first request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
                    errors: Vec::new(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    async fn place_claimed(
        &self,
        caller: &Caller,
        bearer: &str,
        req: &CheckoutRequest,
        id: OrderId,
    ) -> Result<OrderView> {
        let priced = self.price(req, bearer, true).await?;
        let address = priced
            .address
            .clone()
            .ok_or_else(|| OrderError::Internal(anyhow::anyhow!("a placed order was priced without its address")))?;
        let payment_method = req.payment_method.clone().unwrap_or_default();
        if let MethodCheck::Unknown(why) = self.payments.check_method(bearer, &payment_method).await? {
            return Err(OrderError::invalid(
                "payment_method",
                format!("is not one of your payment methods ({why})"),
            ));
        }
        let items: Vec<(Sku, i64)> = priced.lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
        let (reservation_id, expires_at) = match self.stock.reserve(id, &items).await? {
            Reserved::Reserved { id, expires_at } => (id, expires_at),
            Reserved::Insufficient(lines) => {
                return Err(OrderError::Conflict {
                    detail: "not enough stock for some lines".into(),
                    errors: lines
                        .into_iter()
                        .map(|(i, m)| FieldError::new(format!("items[{i}].quantity"), m))
                        .collect(),
                });
            }
            Reserved::Unknown(lines) => {
                return Err(OrderError::Validation(
                    lines
                        .into_iter()
                        .map(|(i, m)| FieldError::new(format!("items[{i}].sku"), m))
                        .collect(),
                ));
            }
        };
        let at = now();
        let token = Uuid::now_v7();
        let order = Order {
            id,
            number: OrderNumber::from_trusted(String::new()),
            user_id: caller.id,
            status: OrderStatus::AwaitingPayment,
            currency: priced.currency.clone(),
            totals: priced.totals,
            refunded: 0,
            shipping_method: priced.method.clone(),
            shipping_address: address,
            coupon_code: priced.coupon.clone(),
            from_cart: priced.from_cart,
            payment_method,
            payment_attempted: false,
            payment_id: None,
            payment_brand: None,
            payment_last4: None,
            payment_status: None,
            reservation_id: Some(reservation_id),
            reservation_expires_at: Some(expires_at),
            reservation_committed: false,
            invoice_number: None,
            paid_at: None,
            carrier: None,
            tracking_number: None,
            cancel_reason: None,
            saga_step: Some(SagaStep::Capture),
            saga_lease_owner: Some(token),
            saga_lease_until: Some(at + LEASE),
            saga_attempts: 0,
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let actor = Actor::Customer(caller.id);
        let new = NewOrder {
            order,
            lines: priced.lines.clone(),
            timeline: vec![
                entry(at, None, OrderStatus::Pending, actor, "order placed"),
                entry(
                    at,
                    Some(OrderStatus::Pending),
                    OrderStatus::AwaitingPayment,
                    Actor::System,
                    "stock reserved",
                ),
            ],
            events: Box::new(|o, lines| vec![events::placed(o, lines)]),
        };
        let placed = match self.store.place(new, at).await {
            Ok(PlaceOutcome::Placed(order)) => order,
            Ok(PlaceOutcome::CouponExhausted) => {
                self.release_quietly(reservation_id).await;
                return Err(OrderError::invalid("coupon", "has been used up"));
            }
            Err(e) => {
                self.release_quietly(reservation_id).await;
                return Err(e.into());
            }
        };
        self.outbox.notify();
        metrics::counter!("orders_placed_total").increment(1);
        metrics::histogram!("order_value_minor_units", "currency" => placed.currency.to_string())
            .record(placed.totals.total as f64);
        self.drive(id, token).await;
        let detail = self.store.order(id).await?.ok_or(StoreError::NotFound)?;
        Ok(OrderView::from(&detail))
    }

    async fn release_quietly(&self, reservation: Uuid) {
        if let Err(e) = self.stock.release(reservation).await {
            tracing::warn!(error = %e, %reservation, "releasing a reservation failed; it will expire");
        }
    }

    // -----------------------------------------------------------------------------------------
    // The saga

    /// Runs the order's saga steps while `token` holds its lease.
    pub async fn drive(&self, id: OrderId, token: Uuid) {
        for _ in 0..16 {
            let order = match self.store.order(id).await {
                Ok(Some(d)) => d.order,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, order = %id, "saga: cannot read the order");
                    return;
                }
            };
            let Some(step) = order.saga_step else { return };
            if order.saga_lease_owner != Some(token) {
                return;
            }
            let started = Instant::now();
            let outcome = match step {
                SagaStep::Capture => self.step_capture(&order, token).await,
                SagaStep::Commit => self.step_commit(&order, token).await,
                SagaStep::Refund => self.step_refund(&order, token).await,
                SagaStep::Release => self.step_release(&order, token).await,
                SagaStep::Restock => self.step_restock(&order, token).await,
            };
            let label = match &outcome {
                Ok(Step::Continue) => "done",
                Ok(Step::Wait(_)) => "retry",
                Ok(Step::Stale) => "stale",
                Err(_) => "error",
            };
            metrics::histogram!("order_saga_step_duration_seconds", "step" => step.as_str(), "outcome" => label)
                .record(started.elapsed().as_secs_f64());
            self.outbox.notify();
            match outcome {
                Ok(Step::Continue) => continue,
                Ok(Step::Stale) => return,
                Ok(Step::Wait(why)) => {
                    tracing::info!(order = %id, step = step.as_str(), why, "saga step will be retried");
                    self.pause(id, token, step).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(order = %id, step = step.as_str(), error = %e, "saga step failed; will retry");
                    self.pause(id, token, step).await;
                    return;
                }
            }
        }
    }

    /// Gives the lease back with a retry time, for the recovery loop. The first time the capture
    /// has to wait, the payment did not settle within the checkout request: that is when the
    /// customer hears "received, waiting for the payment" (`ordering.order.payment_pending`);
    /// a payment that settles at once gets only its outcome mailed.
    async fn pause(&self, id: OrderId, token: Uuid, step: SagaStep) {
        let retry_at =
            now() + time::Duration::try_from(self.config.recovery_interval).unwrap_or(time::Duration::SECOND);
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    if o.saga_lease_owner != Some(token) {
                        return Err(Refusal::Stale);
                    }
                    let first_wait_for_payment =
                        step == SagaStep::Capture && o.status == OrderStatus::AwaitingPayment && o.saga_attempts == 0;
                    let mut next = o.clone();
                    next.saga_lease_owner = None;
                    next.saga_lease_until = Some(retry_at);
                    next.saga_attempts += 1;
                    let mut m = Mutation::new(next);
                    if first_wait_for_payment {
                        m.events = Box::new(|o, lines| vec![events::payment_pending(o, lines)]);
                    }
                    Ok(m)
                }),
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, order = %id, "saga: cannot release the lease; it will lapse");
        }
    }

    /// Persists the change `f` makes if `token` still holds the order at `step`.
    async fn advance(
        &self,
        id: OrderId,
        token: Uuid,
        step: SagaStep,
        f: impl FnOnce(&Order, &mut Mutation, OffsetDateTime) -> Result<(), Refusal> + Send + 'static,
    ) -> Result<Step> {
        let at = now();
        let result = self
            .store
            .update(
                id,
                at,
                Box::new(move |o| {
                    if o.saga_lease_owner != Some(token) || o.saga_step != Some(step) {
                        return Err(Refusal::Stale);
                    }
                    let mut m = Mutation::new(o.clone());
                    m.order.saga_lease_until = Some(at + LEASE);
                    f(o, &mut m, at)?;
                    if m.order.saga_step.is_none() {
                        m.order.saga_lease_owner = None;
                        m.order.saga_lease_until = None;
                    }
                    Ok(m)
                }),
            )
            .await?;
        match result {
            Ok(_) => Ok(Step::Continue),
            Err(Refusal::Stale) => Ok(Step::Stale),
            Err(other) => Err(other.into()),
        }
    }

    async fn step_capture(&self, order: &Order, token: Uuid) -> Result<Step> {
        let id = order.id;
        if order.status != OrderStatus::AwaitingPayment {
            return self
                .advance(id, token, SagaStep::Capture, |_, m, _| {
                    m.order.saga_step = Some(SagaStep::Commit).filter(|_| m.order.status == OrderStatus::Paid);
                    Ok(())
                })
                .await;
        }
        let deadline_passed = order.reservation_expires_at.is_some_and(|t| now() >= t);
        if deadline_passed {
            // Give up: the stock is gone. Refund anything that was captured meanwhile.
            metrics::counter!("orders_cancelled_total").increment(1);
            return self
                .advance(id, token, SagaStep::Capture, |o, m, at| {
                    apply(
                        m,
                        OrderEvent::ReservationExpired,
                        at,
                        Actor::System,
                        "payment not confirmed before the reservation expired",
                    )?;
                    m.order.cancel_reason = Some("payment not confirmed before the reservation expired".into());
                    m.order.saga_step = Some(if o.payment_attempted {
                        SagaStep::Refund
                    } else {
                        SagaStep::Release
                    });
                    Ok(())
                })
                .await;
        }
        if !order.payment_attempted {
            // From here on a payment may exist: persisted before calling out.
            if let Step::Stale = self
                .advance(id, token, SagaStep::Capture, |_, m, _| {
                    m.order.payment_attempted = true;
                    Ok(())
                })
                .await?
            {
                return Ok(Step::Stale);
            }
        }
        let charged = self
            .payments
            .charge(
                &self.capture_request(order),
                &format!("order-{id}-payment"),
                self.config.payment_timeout,
            )
            .await;
        let charged = match charged {
            Ok(c) => c,
            Err(e) => return Ok(Step::Wait(e.to_string())),
        };
        match charged {
            Charged::Payment(p) if is_captured(&p.status) => {
                metrics::counter!("orders_paid_total").increment(1);
                self.advance(id, token, SagaStep::Capture, move |_, m, at| {
                    apply(m, OrderEvent::PaymentCaptured, at, Actor::System, "payment captured")?;
                    record_payment(&mut m.order, &p);
                    m.order.paid_at = Some(at);
                    m.assign_invoice = true;
                    m.order.saga_step = Some(SagaStep::Commit);
                    m.events = Box::new(|o, _| vec![events::paid(o)]);
                    Ok(())
                })
                .await
            }
            Charged::Payment(p) if p.status == "declined" => {
                let reason = p.decline_code.clone().unwrap_or_else(|| "card_declined".into());
                metrics::counter!("orders_failed_total", "reason" => reason.clone()).increment(1);
                self.fail_payment(id, token, Some(p), reason).await
            }
            Charged::Refused { field, message } => {
                metrics::counter!("orders_failed_total", "reason" => "refused").increment(1);
                self.fail_payment(id, token, None, format!("payment refused: {field} {message}"))
                    .await
            }
            Charged::Payment(p) => Ok(Step::Wait(format!("payment is {}", p.status))),
            Charged::AlreadyPaid(why) => Ok(Step::Wait(format!("payments says already paid: {why}"))),
        }
    }

    fn capture_request(&self, order: &Order) -> CaptureRequest {
        CaptureRequest {
            order_id: order.id.0,
            customer_id: order.user_id,
            amount: platform::money::MoneyView::new(order.totals.total, order.currency.to_string()),
            payment_method: order.payment_method.clone(),
            capture: true,
        }
    }

    async fn fail_payment(&self, id: OrderId, token: Uuid, p: Option<Payment>, reason: String) -> Result<Step> {
        self.advance(id, token, SagaStep::Capture, move |_, m, at| {
            apply(m, OrderEvent::PaymentFailed, at, Actor::System, &reason)?;
            if let Some(p) = &p {
                record_payment(&mut m.order, p);
            }
            m.order.saga_step = Some(SagaStep::Release);
            let reason = reason.clone();
            m.events = Box::new(move |o, _| vec![events::payment_failed(o, &reason)]);
            Ok(())
        })
        .await
    }

    async fn step_commit(&self, order: &Order, token: Uuid) -> Result<Step> {
        let Some(reservation) = order.reservation_id else {
            return Err(OrderError::Internal(anyhow::anyhow!(
                "order {} has no reservation",
                order.id
            )));
        };
        match self.stock.commit(reservation).await {
            Err(e) => Ok(Step::Wait(e.to_string())),
            Ok(Finished::Done) => {
                self.advance(order.id, token, SagaStep::Commit, |_, m, at| {
                    apply(
                        m,
                        OrderEvent::ReservationCommitted,
                        at,
                        Actor::System,
                        "stock committed",
                    )?;
                    m.order.reservation_committed = true;
                    m.order.saga_step = None;
                    m.events = Box::new(|o, lines| vec![events::confirmed(o, lines)]);
                    Ok(())
                })
                .await
            }
            Ok(Finished::Conflict | Finished::Missing) => {
                metrics::counter!("orders_cancelled_total").increment(1);
                self.advance(order.id, token, SagaStep::Commit, |_, m, at| {
                    let reason = "the stock reservation expired before it could be committed";
                    apply(m, OrderEvent::Cancel, at, Actor::System, reason)?;
                    m.order.cancel_reason = Some(reason.into());
                    m.order.saga_step = Some(SagaStep::Refund);
                    Ok(())
                })
                .await
            }
        }
    }

    async fn step_refund(&self, order: &Order, token: Uuid) -> Result<Step> {
        let id = order.id;
        let next = if order.reservation_committed {
            SagaStep::Restock
        } else {
            SagaStep::Release
        };
        let Some(payment_id) = order.payment_id.clone() else {
            if !order.payment_attempted {
                return self
                    .advance(id, token, SagaStep::Refund, move |_, m, _| {
                        m.order.saga_step = Some(next);
                        Ok(())
                    })
                    .await;
            }
            // A payment may exist: read it through the same key (never a second charge).
            let charged = match self
                .payments
                .charge(
                    &self.capture_request(order),
                    &format!("order-{id}-payment"),
                    self.config.payment_timeout,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => return Ok(Step::Wait(e.to_string())),
            };
            return match charged {
                Charged::Payment(p) if is_captured(&p.status) => {
                    self.advance(id, token, SagaStep::Refund, move |_, m, _| {
                        record_payment(&mut m.order, &p);
                        Ok(())
                    })
                    .await
                }
                Charged::Payment(p) if p.status == "processing" || p.status == "authorized" => {
                    Ok(Step::Wait(format!("payment is {}", p.status)))
                }
                Charged::AlreadyPaid(why) => Ok(Step::Wait(why)),
                // Declined, failed or refused: nothing was charged.
                _ => {
                    self.advance(id, token, SagaStep::Refund, move |_, m, _| {
                        m.order.saga_step = Some(next);
                        Ok(())
                    })
                    .await
                }
            };
        };
        let amount = order.totals.total - order.refunded;
        if amount > 0 {
            let reason = order.cancel_reason.clone().unwrap_or_else(|| "order cancelled".into());
            if let Err(e) = self
                .payments
                .refund(&payment_id, amount, &reason, &format!("order-{id}-refund-cancel"))
                .await
            {
                return Ok(Step::Wait(e.to_string()));
            }
        }
        self.advance(id, token, SagaStep::Refund, move |_, m, _| {
            m.order.refunded = m.order.totals.total;
            m.order.saga_step = Some(next);
            Ok(())
        })
        .await
    }

    async fn step_release(&self, order: &Order, token: Uuid) -> Result<Step> {
        if let Some(reservation) = order.reservation_id
            && let Err(e) = self.stock.release(reservation).await
        {
            return Ok(Step::Wait(e.to_string()));
        }
        self.finish_compensation(order.id, token, SagaStep::Release).await
    }

    async fn step_restock(&self, order: &Order, token: Uuid) -> Result<Step> {
        let detail = self.store.order(order.id).await?.ok_or(StoreError::NotFound)?;
        for line in &detail.lines {
            if let Err(e) = self.stock.restock(order.id, &line.sku, line.quantity).await {
                return Ok(Step::Wait(e.to_string()));
            }
        }
        self.finish_compensation(order.id, token, SagaStep::Restock).await
    }

    async fn finish_compensation(&self, id: OrderId, token: Uuid, step: SagaStep) -> Result<Step> {
        self.advance(id, token, step, |o, m, _| {
            m.order.saga_step = None;
            if o.status == OrderStatus::Cancelled {
                m.events = Box::new(|o, _| vec![events::cancelled(o)]);
            }
            Ok(())
        })
        .await
    }

    /// One pass of the recovery loop: resumes every order whose saga lease has passed.
    pub async fn recover(&self) -> Result<usize> {
        let due = self.store.due_sagas(now(), 100).await?;
        let mut resumed = 0;
        for id in due {
            let token = Uuid::now_v7();
            let at = now();
            let claimed = self
                .store
                .update(
                    id,
                    at,
                    Box::new(move |o| {
                        if o.saga_step.is_none() || o.leased_at(at) || o.saga_lease_until.is_some_and(|u| u > at) {
                            return Err(Refusal::Stale);
                        }
                        let mut next = o.clone();
                        next.saga_lease_owner = Some(token);
                        next.saga_lease_until = Some(at + LEASE);
                        Ok(Mutation::new(next))
                    }),
                )
                .await?;
            if claimed.is_ok() {
                resumed += 1;
                self.drive(id, token).await;
            }
        }
        Ok(resumed)
    }

    /// Refreshes `orders_stuck{status}` and forgets orphaned checkout claims.
    pub async fn housekeeping(&self) -> Result<()> {
        let at = now();
        let stuck_before = at - time::Duration::try_from(self.config.stuck_after).unwrap_or(time::Duration::MINUTE);
        for (status, n) in self.store.stuck(&OrderStatus::IN_FLIGHT, stuck_before).await? {
            metrics::gauge!("orders_stuck", "status" => status).set(n as f64);
        }
        self.store.purge_orphan_claims(at - ORPHAN_CLAIM_AGE).await?;
        Ok(())
    }

    /// `inventory.reservation.expired`: an order still waiting for its payment is cancelled, and
    /// its saga will refund anything captured meanwhile (it never charges again).
    pub async fn reservation_expired(&self, order: OrderId, reservation: Uuid) -> Result<()> {
        let token = Uuid::now_v7();
        let at = now();
        let result = self
            .store
            .update(
                order,
                at,
                Box::new(move |o| {
                    if o.reservation_id != Some(reservation)
                        || o.status != OrderStatus::AwaitingPayment
                        || o.payment_id.is_some()
                    {
                        return Err(Refusal::Stale);
                    }
                    let mut m = Mutation::new(o.clone());
                    apply(
                        &mut m,
                        OrderEvent::ReservationExpired,
                        at,
                        Actor::System,
                        "reservation expired",
                    )?;
                    m.order.cancel_reason = Some("reservation expired".into());
                    m.order.saga_step = Some(if o.payment_attempted {
                        SagaStep::Refund
                    } else {
                        SagaStep::Release
                    });
                    m.order.saga_lease_owner = Some(token);
                    m.order.saga_lease_until = Some(at + LEASE);
                    Ok(m)
                }),
            )
            .await;
        match result {
            Err(StoreError::NotFound) | Ok(Err(_)) => Ok(()),
            Err(e) => Err(e.into()),
            Ok(Ok(_)) => {
                metrics::counter!("orders_cancelled_total").increment(1);
                self.drive(order, token).await;
                Ok(())
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reads

    pub(crate) async fn visible(&self, caller: &Caller, id: OrderId) -> Result<OrderDetail> {
        let detail = self.store.order(id).await?;
        match detail {
            Some(d) if caller.staff || d.order.user_id == caller.id => Ok(d),
            _ => Err(OrderError::NotFound("no such order".into())),
        }
    }

    pub async fn order(&self, caller: &Caller, id: OrderId) -> Result<OrderView> {
        Ok(OrderView::from(&self.visible(caller, id).await?))
    }

    pub async fn detail(&self, caller: &Caller, id: OrderId) -> Result<OrderDetail> {
        self.visible(caller, id).await
    }

    pub async fn list(&self, filter: &OrderFilter) -> Result<Vec<Order>> {
        Ok(self.store.list(filter).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Changes by customers and staff

    pub async fn cancel(&self, caller: &Caller, id: OrderId, reason: Option<String>) -> Result<OrderView> {
        self.visible(caller, id).await?;
        let reason = match reason {
            None => "cancelled by the customer".to_owned(),
            Some(r) => parse_reason(&r).map_err(|m| OrderError::invalid("reason", m))?,
        };
        let actor = caller.actor();
        let token = Uuid::now_v7();
        let at = now();
        let result = self
            .store
            .update(
                id,
                at,
                Box::new(move |o| {
                    if o.leased_at(at) || matches!(o.saga_step, Some(SagaStep::Commit)) {
                        return Err(Refusal::Conflict(format!(
                            "the order is {} and being processed; retry in a few seconds",
                            o.status
                        )));
                    }
                    let mut m = Mutation::new(o.clone());
                    apply(&mut m, OrderEvent::Cancel, at, actor, &reason)?;
                    m.order.cancel_reason = Some(reason.clone());
                    m.order.saga_step = Some(if o.payment_attempted || o.payment_id.is_some() {
                        SagaStep::Refund
                    } else {
                        SagaStep::Release
                    });
                    m.order.saga_lease_owner = Some(token);
                    m.order.saga_lease_until = Some(at + LEASE);
                    Ok(m)
                }),
            )
            .await?;
        result?;
        metrics::counter!("orders_cancelled_total").increment(1);
        self.drive(id, token).await;
        self.order(caller, id).await
    }

    pub async fn request_refund(&self, caller: &Caller, id: OrderId, reason: &str) -> Result<OrderView> {
        let detail = self.visible(caller, id).await?;
        let reason = parse_reason(reason).map_err(|m| OrderError::invalid("reason", m))?;
        let status = detail.order.status;
        if !matches!(
            status,
            OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::PartiallyRefunded
        ) {
            return Err(OrderError::conflict(format!(
                "the order is {status}: refunds can be requested for confirmed, shipped or delivered orders"
            )));
        }
        self.store
            .add_note(
                id,
                &entry(
                    now(),
                    Some(status),
                    status,
                    caller.actor(),
                    &format!("refund requested: {reason}"),
                ),
            )
            .await?;
        self.order(caller, id).await
    }

    pub(crate) fn staff_only(caller: &Caller) -> Result<()> {
        if caller.staff {
            Ok(())
        } else {
            Err(OrderError::Forbidden("requires role admin or fulfilment".into()))
        }
    }

    pub async fn ship(&self, caller: &Caller, id: OrderId, carrier: &str, tracking: &str) -> Result<OrderView> {
        Self::staff_only(caller)?;
        // A state conflict (shipping a delivered order) is reported as such, before the format.
        let current = self.visible(caller, id).await?.order.status;
        if transition(current, OrderEvent::Ship).is_err() {
            return Err(OrderError::conflict(format!(
                "the order is {current}: it cannot be shipped"
            )));
        }
        let (carrier, tracking) = parse_tracking(carrier, tracking).map_err(OrderError::Validation)?;
        let actor = caller.actor();
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    let mut m = Mutation::new(o.clone());
                    apply(
                        &mut m,
                        OrderEvent::Ship,
                        now(),
                        actor,
                        &format!("shipped with {carrier} {tracking}"),
                    )?;
                    m.order.carrier = Some(carrier);
                    m.order.tracking_number = Some(tracking);
                    m.events = Box::new(|o, _| vec![events::shipped(o)]);
                    Ok(m)
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        self.order(caller, id).await
    }

    pub async fn deliver(&self, caller: &Caller, id: OrderId) -> Result<OrderView> {
        Self::staff_only(caller)?;
        let actor = caller.actor();
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    let mut m = Mutation::new(o.clone());
                    apply(&mut m, OrderEvent::Deliver, now(), actor, "delivered")?;
                    m.events = Box::new(|o, lines| vec![events::delivered(o, lines)]);
                    Ok(m)
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        self.order(caller, id).await
    }

    /// A full or partial refund by an admin, idempotent per order and key.
    pub async fn refund(
        &self,
        caller: &Caller,
        id: OrderId,
        key: &str,
        amount: Option<i64>,
        reason: &str,
    ) -> Result<(OrderView, bool)> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        let reason = parse_reason(reason).map_err(|m| OrderError::invalid("reason", m))?;
        let detail = self.visible(caller, id).await?;
        let order = &detail.order;
        if let Some(existing) = self.store.refund_record(id, key).await?
            && existing.completed
        {
            if amount.is_some_and(|a| a != existing.amount) || existing.reason != reason {
                return Err(OrderError::invalid(
                    "Idempotency-Key",
                    "was already used with a different request body",
                ));
            }
            return Ok((OrderView::from(&detail), true));
        }
        if order.status == OrderStatus::Refunded || (order.refunded > 0 && order.refunded >= order.totals.total) {
            return Err(OrderError::conflict("the order is already refunded"));
        }
        let amount = amount.unwrap_or(order.totals.total - order.refunded);
        let (event, _) =
            refund_outcome(order.totals.total, order.refunded, amount).map_err(|m| OrderError::invalid("amount", m))?;
        transition(order.status, event)
            .map_err(|_| OrderError::conflict(format!("the order is {}: it cannot be refunded", order.status)))?;
        if order.saga_step.is_some() {
            return Err(OrderError::conflict(
                "the order is being processed; retry in a few seconds",
            ));
        }
        let Some(payment_id) = order.payment_id.clone() else {
            return Err(OrderError::conflict("the order has no captured payment"));
        };
        let record = RefundRecord {
            id: Uuid::now_v7(),
            order_id: id,
            key: key.to_owned(),
            amount,
            reason: reason.clone(),
            actor: caller.actor().to_string(),
            completed: false,
            refund_id: None,
        };
        let record = match self.store.insert_refund(&record, now()).await? {
            None => record,
            Some(existing) if existing.amount == amount && existing.reason == reason => existing,
            Some(_) => {
                return Err(OrderError::invalid(
                    "Idempotency-Key",
                    "was already used with a different request body",
                ));
            }
        };
        let refund_id = self
            .payments
            .refund(
                &payment_id,
                amount,
                &reason,
                &format!("order-{id}-refund-{}", record.id),
            )
            .await
            .map_err(|e| match e {
                PeerError::Unexpected {
                    status: 422, detail, ..
                } => OrderError::invalid("amount", detail),
                PeerError::Unexpected {
                    status: 409, detail, ..
                } => OrderError::conflict(detail),
                other => other.into(),
            })?;
        let actor = caller.actor();
        let row = record.id;
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    let mut m = Mutation::new(o.clone());
                    let (event, after) =
                        refund_outcome(o.totals.total, o.refunded, amount).map_err(|message| Refusal::Invalid {
                            field: "amount".into(),
                            message,
                        })?;
                    apply(&mut m, event, now(), actor, &format!("refunded {amount}: {reason}"))?;
                    m.order.refunded = after;
                    m.order.payment_status =
                        Some(crate::return_service::payment_status_after(after, o.totals.total).into());
                    m.complete_refund = Some((row, refund_id));
                    m.events = Box::new(move |o, _| vec![events::refunded(o, amount)]);
                    Ok(m)
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        Ok((self.order(caller, id).await?, false))
    }

    // -----------------------------------------------------------------------------------------
    // Coupons

    pub async fn create_coupon(&self, caller: &Caller, req: NewCoupon) -> Result<CouponView> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        let mut errors = Vec::new();
        let code = parse_coupon_code(&req.code)
            .map_err(|m| errors.push(FieldError::new("code", m)))
            .ok();
        let kind = match req.kind.as_str() {
            "percentage" => match req.percent {
                Some(p) if (1..=100).contains(&p) && req.amount.is_none() => Some(CouponKind::Percentage(p * 100)),
                _ => {
                    errors.push(FieldError::new(
                        "percent",
                        "percentage coupons need percent 1 to 100 (and no amount)",
                    ));
                    None
                }
            },
            "fixed" => {
                let named = req
                    .amount
                    .as_ref()
                    .and_then(MoneyInput::currency)
                    .or(req.currency.as_deref());
                let currency = match named {
                    None => Some(self.config.currency.clone()),
                    Some(c) => Currency::parse(c)
                        .map_err(|m| errors.push(FieldError::new("currency", m)))
                        .ok(),
                };
                match (req.amount.as_ref().map(MoneyInput::amount), currency) {
                    (Some(a), Some(currency)) if a > 0 && a <= 100_000_000 && req.percent.is_none() => {
                        Some(CouponKind::Fixed { amount: a, currency })
                    }
                    (_, Some(_)) => {
                        errors.push(FieldError::new(
                            "amount",
                            "fixed coupons need amount 1 to 100000000 (and no percent)",
                        ));
                        None
                    }
                    _ => None,
                }
            }
            _ => {
                errors.push(FieldError::new("kind", "must be percentage or fixed"));
                None
            }
        };
        if let (Some(from), Some(until)) = (req.valid_from, req.valid_until)
            && until <= from
        {
            errors.push(FieldError::new("valid_until", "must be after valid_from"));
        }
        if req.max_uses.is_some_and(|m| m < 1) {
            errors.push(FieldError::new("max_uses", "must be at least 1"));
        }
        if req.min_subtotal.as_ref().is_some_and(|m| m.amount() < 0) {
            errors.push(FieldError::new("min_subtotal", "must not be negative"));
        }
        if let Some(c) = req.min_subtotal.as_ref().and_then(MoneyInput::currency)
            && !c.eq_ignore_ascii_case(self.config.currency.as_str())
        {
            errors.push(FieldError::new(
                "min_subtotal.currency",
                format!("orders are taken in {} only", self.config.currency),
            ));
        }
        let (Some(code), Some(kind), true) = (code, kind, errors.is_empty()) else {
            return Err(OrderError::Validation(errors));
        };
        let coupon = Coupon {
            code,
            kind,
            valid_from: req.valid_from,
            valid_until: req.valid_until,
            max_uses: req.max_uses,
            uses: 0,
            min_subtotal: req.min_subtotal.as_ref().map(MoneyInput::amount),
            active: true,
            created_at: now(),
        };
        if !self.store.create_coupon(&coupon).await? {
            return Err(OrderError::Conflict {
                detail: format!("coupon {} exists", coupon.code),
                errors: vec![FieldError::new("code", "is taken")],
            });
        }
        Ok(CouponView::new(&coupon, &self.config.currency))
    }

    pub async fn coupons(&self, caller: &Caller) -> Result<Vec<CouponView>> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        Ok(self
            .store
            .coupons()
            .await?
            .iter()
            .map(|c| CouponView::new(c, &self.config.currency))
            .collect())
    }

    pub async fn deactivate_coupon(&self, caller: &Caller, code: &str) -> Result<CouponView> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        let code = parse_coupon_code(code).map_err(|_| OrderError::NotFound("no such coupon".into()))?;
        self.store
            .deactivate_coupon(&code)
            .await?
            .map(|c| CouponView::new(&c, &self.config.currency))
            .ok_or_else(|| OrderError::NotFound("no such coupon".into()))
    }

    /// The order's totals as the invoice shows them.
    pub fn totals_of(order: &Order) -> crate::views::TotalsView {
        totals_view(order)
    }
}

/// Payments reports a captured payment that was later refunded as `partially_refunded` or
/// `refunded`: the money was taken all the same.
fn is_captured(status: &str) -> bool {
    matches!(status, "captured" | "partially_refunded" | "refunded")
}

fn record_payment(order: &mut Order, p: &Payment) {
    order.payment_id = Some(p.id.clone());
    order.payment_status = Some(p.status.clone());
    order.payment_brand = p.brand.clone();
    order.payment_last4 = p.last4.clone();
}
