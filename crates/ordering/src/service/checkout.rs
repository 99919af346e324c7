//! Quote and checkout: validate the request, price it from the other contexts' current data,
//! then (to place) reserve the stock, write the order idempotently and start its saga.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use platform::FieldError;
use platform::money::MoneyInput;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Caller, OrderError, OrderingService, REPLAY_WAIT, Result, entry, now};
use crate::domain::{
    Actor, Country, Coupon, Currency, LinePrice, MAX_LINES, OrderId, OrderNumber, OrderStatus, Quantity,
    ShippingAddress, ShippingMethod, Sku, Totals, compute_totals, is_country_only, parse_coupon_code,
    parse_destination, parse_payment_method,
};
use crate::events;
use crate::peers::{MethodCheck, Reserved};
use crate::store::{Claim, Claimed, NewOrder, Order, OrderDetail, OrderLine, PlaceOutcome, SagaStep, StoreError};
use crate::views::{OrderView, QuoteView, line_view, totals_of};

/// What a checkout or quote asks for, as contracts publishes it.
pub use contracts::api::ordering::{CheckoutRequest, ItemRequest};

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
            lines: self.lines.iter().map(|l| line_view(l, &self.currency)).collect(),
            totals: totals_of(&self.totals, &self.currency),
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

fn request_hash(body: &serde_json::Value) -> Vec<u8> {
    // serde_json's maps are sorted, so equal documents serialise equally.
    Sha256::digest(body.to_string().as_bytes()).to_vec()
}

/// A line as the request (or the cart) gave it, before any check.
struct RequestedLine {
    sku: String,
    quantity: i64,
    /// The unit price the client showed, in minor units.
    client_price: Option<i64>,
    /// Where the line sits in the request, for error fields (`items[0]`, `cart.items[0]`).
    field: String,
}

/// A line whose sku and quantity are well formed, not yet priced.
struct CheckedLine {
    sku: Sku,
    quantity: i64,
    client_price: Option<i64>,
    field: String,
}

/// A request whose fields are all valid: what remains is to price it.
struct Checked<'a> {
    lines: Vec<CheckedLine>,
    /// `None` for a quote that named only the country.
    address: Option<ShippingAddress>,
    country: Country,
    method: &'a ShippingMethod,
    coupon: Option<String>,
    from_cart: bool,
}

/// The lines at the catalogue's current prices.
struct CurrentLines {
    lines: Vec<OrderLine>,
    /// Unit prices the client showed that are no longer current.
    stale_prices: Vec<FieldError>,
}

impl OrderingService {
    /// Validates the request, reads the current prices and coupon, and computes the totals.
    async fn price(&self, req: &CheckoutRequest, bearer: &str, placing: bool) -> Result<Priced> {
        let requested = self.requested_lines(req, bearer).await?;
        let checked = self.check(req, requested, placing)?;
        let current = self.current_lines(&checked.lines).await?;
        let coupon = self.known_coupon(checked.coupon.as_deref()).await?;
        self.compute(req, checked, current, coupon)
    }

    /// The request's own lines, or the caller's cart (`from_cart: true`).
    async fn requested_lines(&self, req: &CheckoutRequest, bearer: &str) -> Result<Vec<RequestedLine>> {
        let lines: Vec<RequestedLine> = match (&req.items, req.from_cart.unwrap_or(false)) {
            (Some(items), false) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, l)| RequestedLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    client_price: l.unit_price.as_ref().map(MoneyInput::amount),
                    field: format!("items[{i}]"),
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
                    .map(|(i, l)| RequestedLine {
                        sku: l.sku,
                        quantity: l.quantity,
                        client_price: None,
                        field: format!("cart.items[{i}]"),
                    })
                    .collect()
            }
            (None, false) => {
                return Err(OrderError::invalid("items", "is required (or set from_cart: true)"));
            }
        };
        if lines.len() > MAX_LINES {
            return Err(OrderError::invalid(
                "items",
                format!("at most {MAX_LINES} lines per order"),
            ));
        }
        Ok(lines)
    }

    /// Checks every field, reporting all that are wrong at once.
    fn check(&self, req: &CheckoutRequest, requested: Vec<RequestedLine>, placing: bool) -> Result<Checked<'_>> {
        let mut errors = Vec::new();
        let lines = check_lines(requested, &mut errors);
        let (address, country) = self.check_destination(req, placing, &mut errors);
        let method = self.check_shipping_method(req, &mut errors);
        let coupon = check_coupon_code(req, &mut errors);
        if placing {
            check_payment_method(req, &mut errors);
        }
        self.check_client_money(req, &mut errors);
        if !errors.is_empty() {
            return Err(OrderError::Validation(errors));
        }
        let (Some(country), Some(method)) = (country, method) else {
            return Err(OrderError::Internal(anyhow::anyhow!("validated fields missing")));
        };
        Ok(Checked {
            lines,
            address,
            country,
            method,
            coupon,
            from_cart: req.from_cart.unwrap_or(false),
        })
    }

    /// The address (a quote may name only the country: the total does not depend on the rest).
    fn check_destination(
        &self,
        req: &CheckoutRequest,
        placing: bool,
        errors: &mut Vec<FieldError>,
    ) -> (Option<ShippingAddress>, Option<Country>) {
        let supported = |c: &Country| self.config.tax_rate(c).is_some();
        if !placing && is_country_only(&req.shipping_address) {
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
        }
    }

    fn check_shipping_method(&self, req: &CheckoutRequest, errors: &mut Vec<FieldError>) -> Option<&ShippingMethod> {
        let method = self.config.shipping_method(req.shipping_method.trim());
        if method.is_none() {
            let known: Vec<&str> = self.config.shipping_methods.iter().map(|m| m.id.as_str()).collect();
            errors.push(FieldError::new(
                "shipping_method",
                format!("must be one of {}", known.join(", ")),
            ));
        }
        method
    }

    /// Amounts the client showed: not negative, and in the order currency when named.
    fn check_client_money(&self, req: &CheckoutRequest, errors: &mut Vec<FieldError>) {
        let currency = &self.config.currency;
        if req.expected_total.as_ref().is_some_and(|t| t.amount() < 0) {
            errors.push(FieldError::new("expected_total", "must not be negative"));
        }
        if let Some(items) = &req.items {
            for (i, item) in items.iter().enumerate() {
                if let Some(c) = item.unit_price.as_ref().and_then(MoneyInput::currency)
                    && !c.eq_ignore_ascii_case(currency.as_str())
                {
                    errors.push(FieldError::new(
                        format!("items[{i}].unit_price.currency"),
                        format!("orders are taken in {currency} only"),
                    ));
                }
            }
        }
        if let Some(c) = req.expected_total.as_ref().and_then(MoneyInput::currency)
            && !c.eq_ignore_ascii_case(currency.as_str())
        {
            errors.push(FieldError::new(
                "expected_total.currency",
                format!("orders are taken in {currency} only"),
            ));
        }
    }

    /// Each line at the catalogue's current price; unknown, inactive or foreign-priced products
    /// are refused.
    async fn current_lines(&self, checked: &[CheckedLine]) -> Result<CurrentLines> {
        let currency = &self.config.currency;
        let skus: Vec<Sku> = checked.iter().map(|l| l.sku.clone()).collect();
        let products = self.catalog.products(&skus).await?;
        let mut errors = Vec::new();
        let mut lines = Vec::with_capacity(checked.len());
        let mut stale_prices = Vec::new();
        for (i, l) in checked.iter().enumerate() {
            let prefix = &l.field;
            let Some(product) = products
                .items
                .iter()
                .find(|p| p.sku.eq_ignore_ascii_case(l.sku.as_str()))
            else {
                errors.push(FieldError::new(
                    format!("{prefix}.sku"),
                    format!("{} is not a product on sale (unknown or inactive)", l.sku),
                ));
                continue;
            };
            // Catalog names the currency of every price it answers with.
            let price_currency = product.price.currency.as_deref().unwrap_or_default();
            if !price_currency.eq_ignore_ascii_case(currency.as_str()) {
                errors.push(FieldError::new(
                    format!("{prefix}.sku"),
                    format!("is priced in {price_currency}; orders are taken in {currency} only"),
                ));
                continue;
            }
            if l.client_price.is_some_and(|p| p != product.price.amount) {
                stale_prices.push(FieldError::new(
                    format!("{prefix}.unit_price"),
                    format!("the current price is {}", product.price.amount),
                ));
            }
            let line_total = LinePrice {
                unit_price: product.price.amount,
                quantity: l.quantity,
            }
            .total()
            .map_err(|_| OrderError::invalid(format!("{prefix}.quantity"), "the amount is too large"))?;
            lines.push(OrderLine {
                line: i as i64,
                sku: l.sku.clone(),
                product_id: product.id,
                name: product.name.clone(),
                quantity: l.quantity,
                unit_price: product.price.amount,
                line_total,
            });
        }
        if !errors.is_empty() {
            return Err(OrderError::Validation(errors));
        }
        Ok(CurrentLines { lines, stale_prices })
    }

    async fn known_coupon(&self, code: Option<&str>) -> Result<Option<Coupon>> {
        let Some(code) = code else { return Ok(None) };
        let coupon = self
            .store
            .coupon(code)
            .await?
            .ok_or_else(|| OrderError::invalid("coupon", "is not a known coupon"))?;
        Ok(Some(coupon))
    }

    /// The totals (discount, shipping, tax); a price or total the client showed that differs is a
    /// `PriceChanged` carrying the current quote.
    fn compute(
        &self,
        req: &CheckoutRequest,
        checked: Checked<'_>,
        current: CurrentLines,
        coupon: Option<Coupon>,
    ) -> Result<Priced> {
        let config = &self.config;
        let CurrentLines {
            lines,
            stale_prices: mut price_errors,
        } = current;
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
        let rate = config.tax_rate(&checked.country).unwrap_or(0);
        let totals = compute_totals(&prices, coupon.as_ref(), checked.method, rate)
            .map_err(|_| OrderError::invalid("items", "the amounts are too large"))?;
        let priced = Priced {
            lines,
            totals,
            address: checked.address,
            method: checked.method.id.clone(),
            coupon: checked.coupon,
            from_cart: checked.from_cart,
            currency: config.currency,
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
                let order = self.await_replay(caller, first.order_id).await?;
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
    async fn await_replay(&self, caller: &Caller, id: OrderId) -> Result<OrderView> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(20);
        loop {
            if let Some(detail) = self.store.order(id).await?
                && !detail.order.leased_at(now())
            {
                return Ok(caller.view(&detail));
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
        let lease = self.config.saga_lease;
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
            currency: priced.currency,
            totals: priced.totals,
            refunded: 0,
            shipping_method: priced.method.clone(),
            shipping_address: address,
            coupon_code: priced.coupon.clone(),
            from_cart: priced.from_cart,
            payment_method,
            // The saga's first step charges at once, under this lease: saying so here saves it
            // a write of its own ("a payment may exist from here on") before calling payments.
            payment_attempted: true,
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
            saga_lease_until: Some(at + lease),
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
        let detail = match self.drive(*placed, token).await {
            // The saga ended here: its last write is the order as stored, the lines are the ones
            // just written, and only the timeline its steps added is read back.
            Some(order) => OrderDetail {
                timeline: self.store.timeline(id).await?,
                lines: priced.lines,
                order,
            },
            None => self.store.order(id).await?.ok_or(StoreError::NotFound)?,
        };
        Ok(caller.view(&detail))
    }

    async fn release_quietly(&self, reservation: Uuid) {
        if let Err(e) = self.stock.release(reservation).await {
            tracing::warn!(error = %e, %reservation, "releasing a reservation failed; it will expire");
        }
    }
}

/// Each sku well formed and listed once, each quantity 1 to 99, no negative client price.
fn check_lines(requested: Vec<RequestedLine>, errors: &mut Vec<FieldError>) -> Vec<CheckedLine> {
    let mut checked = Vec::new();
    let mut seen = HashSet::new();
    for RequestedLine {
        sku,
        quantity,
        client_price,
        field: prefix,
    } in requested
    {
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
        if let Err(m) = Quantity::parse(quantity) {
            errors.push(FieldError::new(format!("{prefix}.quantity"), m));
        }
        if client_price.is_some_and(|p| p < 0) {
            errors.push(FieldError::new(format!("{prefix}.unit_price"), "must not be negative"));
        }
        checked.push(CheckedLine {
            sku,
            quantity,
            client_price,
            field: prefix,
        });
    }
    checked
}

fn check_coupon_code(req: &CheckoutRequest, errors: &mut Vec<FieldError>) -> Option<String> {
    let raw = req.coupon.as_deref().map(str::trim).filter(|c| !c.is_empty())?;
    parse_coupon_code(raw)
        .map_err(|m| errors.push(FieldError::new("coupon", m)))
        .ok()
}

fn check_payment_method(req: &CheckoutRequest, errors: &mut Vec<FieldError>) {
    match req.payment_method.as_deref() {
        None => errors.push(FieldError::new("payment_method", "is required")),
        Some(pm) => {
            if let Err(m) = parse_payment_method(pm) {
                errors.push(FieldError::new("payment_method", m));
            }
        }
    }
}
