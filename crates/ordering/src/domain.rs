//! Ordering's domain rules as plain types and functions: no I/O, unit-tested here.
//!
//! Money is integer minor units plus an ISO 4217 currency; every sum is overflow-checked. The order
//! state machine is [`transition`]; totals are [`compute_totals`]; coupons are [`Coupon::check`].

use std::fmt;

use contracts::api::ordering::OrderAction;
use contracts::kernel::PostalAddress;
use platform::FieldError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub const MAX_LINES: usize = 50;
pub const MAX_QUANTITY: i64 = 99;
pub const MAX_REASON_CHARS: usize = 500;
pub use contracts::kernel::MAX_IDEMPOTENCY_KEY_CHARS;

/// The order id, the SKU, the currency and money are the kernel's: cart, inventory and
/// payments name the same things with them.
pub use contracts::kernel::{Currency, Money, OrderId, Sku};

/// The human order number, `EMP-000042`, from a per-database counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderNumber(String);

impl OrderNumber {
    pub fn from_sequence(n: i64) -> Self {
        Self(format!("EMP-{n:06}"))
    }

    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The gapless invoice number of a paid order: `INV-2026-000001` (one sequence per year).
pub fn invoice_number(year: i32, n: i64) -> String {
    format!("INV-{year}-{n:06}")
}

/// Units of one order line: 1 to 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(n: i64) -> Result<Self, String> {
        if (1..=MAX_QUANTITY).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be between 1 and {MAX_QUANTITY}"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// An ISO 3166-1 alpha-2 country code (the kernel's, shared with identity's address book).
pub use contracts::kernel::Country;

/// What an erased customer's address becomes once the shop may forget it: no name, street, city,
/// postal code or phone; the country stays (tax reports need it, and it identifies no one).
pub const FORMER_CUSTOMER: &str = "Former customer";
const ERASED: &str = "(erased)";

impl ShippingAddress {
    pub fn pseudonymised(&self) -> Self {
        Self {
            name: FORMER_CUSTOMER.to_owned(),
            line1: ERASED.to_owned(),
            line2: None,
            city: ERASED.to_owned(),
            postal_code: ERASED.to_owned(),
            country: self.country.clone(),
            phone: None,
        }
    }
}

/// Where an order goes. Built only through [`ShippingAddress::parse`]; an order view shows it as
/// the published `contracts::api::ordering::ShippingAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2; must be one of the supported destinations (`EMPORIUM_TAX_RATES`).
    pub country: Country,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// An address as the client sent it (published with the checkout request it travels in).
pub use contracts::api::ordering::RawAddress;

/// Only the destination country was given (a quote before the address is typed): every other
/// field is absent or blank.
pub fn is_country_only(raw: &RawAddress) -> bool {
    let blank = |v: &str| v.trim().is_empty();
    blank(&raw.name)
        && blank(&raw.line1)
        && blank(&raw.city)
        && blank(&raw.postal_code)
        && raw.line2.as_deref().is_none_or(blank)
        && raw.phone.as_deref().is_none_or(blank)
}

fn not_shipped_to(c: &Country) -> String {
    format!("we do not ship to {c}")
}

/// A destination country (reported as `<prefix>.country`); `supported` says whether we ship there.
pub fn parse_destination(raw: &str, prefix: &str, supported: impl Fn(&Country) -> bool) -> Result<Country, FieldError> {
    match Country::parse(raw) {
        Ok(c) if supported(&c) => Ok(c),
        Ok(c) => Err(FieldError::new(format!("{prefix}.country"), not_shipped_to(&c))),
        Err(m) => Err(FieldError::new(format!("{prefix}.country"), m)),
    }
}

impl ShippingAddress {
    /// Checks every field (reported as `<prefix>.<field>`) by the kernel's address rules;
    /// `supported` says whether the country is a destination we ship to.
    pub fn parse(
        raw: &RawAddress,
        prefix: &str,
        supported: impl Fn(&Country) -> bool,
    ) -> Result<Self, Vec<FieldError>> {
        let checked = PostalAddress::parse(raw, |c| if supported(c) { Ok(()) } else { Err(not_shipped_to(c)) })
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| FieldError::new(format!("{prefix}.{}", e.field), e.message))
                    .collect::<Vec<_>>()
            })?;
        Ok(Self {
            name: checked.name,
            line1: checked.line1,
            line2: checked.line2,
            city: checked.city,
            postal_code: checked.postal_code,
            country: checked.country,
            phone: checked.phone,
        })
    }
}

/// Where an order is in its life: the published enum; its rules are [`StatusRules`].
pub use contracts::api::ordering::OrderStatus;

/// Ordering's rules about a status (the enum itself is published in the contracts).
pub trait StatusRules: Copy {
    /// States an order should not stay in for long (the `orders_stuck` gauge).
    const IN_FLIGHT: [OrderStatus; 3] = [OrderStatus::Pending, OrderStatus::AwaitingPayment, OrderStatus::Paid];

    /// No transition leaves these.
    fn is_terminal(self) -> bool;

    /// Whether moving from `self` to `to` ends the order without a sale (cancelled, or the
    /// payment failed), which gives its coupon use back: a coupon limited to N uses counts
    /// the orders that went through, not the attempts.
    fn releases_coupon(self, to: OrderStatus) -> bool;
}

impl StatusRules for OrderStatus {
    fn is_terminal(self) -> bool {
        matches!(self, Self::Cancelled | Self::PaymentFailed | Self::Refunded)
    }

    fn releases_coupon(self, to: OrderStatus) -> bool {
        let unsold = |s: OrderStatus| matches!(s, Self::Cancelled | Self::PaymentFailed);
        unsold(to) && !unsold(self)
    }
}

/// What happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEvent {
    /// Inventory reserved every line.
    StockReserved,
    PaymentCaptured,
    /// Declined, insufficient funds.
    PaymentFailed,
    /// Inventory let the reservation expire before the payment was captured.
    ReservationExpired,
    /// The reservation was turned into a deduction.
    ReservationCommitted,
    /// Cancelled by the customer or an admin (or by the saga compensating a failed commit).
    Cancel,
    Ship,
    Deliver,
    /// A refund that leaves something of the total unrefunded.
    PartialRefund,
    /// A refund that brings the refunded amount up to the total.
    FullRefund,
}

impl OrderEvent {
    pub const ALL: [OrderEvent; 10] = [
        Self::StockReserved,
        Self::PaymentCaptured,
        Self::PaymentFailed,
        Self::ReservationExpired,
        Self::ReservationCommitted,
        Self::Cancel,
        Self::Ship,
        Self::Deliver,
        Self::PartialRefund,
        Self::FullRefund,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot {event:?}")]
pub struct TransitionError {
    pub from: OrderStatus,
    pub event: OrderEvent,
}

/// The order state machine. Every pair not listed is forbidden.
pub fn transition(from: OrderStatus, event: OrderEvent) -> Result<OrderStatus, TransitionError> {
    use OrderEvent as E;
    use OrderStatus as S;
    let to = match (from, event) {
        (S::Pending, E::StockReserved) => S::AwaitingPayment,
        (S::Pending, E::Cancel) => S::Cancelled,
        (S::AwaitingPayment, E::PaymentCaptured) => S::Paid,
        (S::AwaitingPayment, E::PaymentFailed) => S::PaymentFailed,
        (S::AwaitingPayment, E::Cancel | E::ReservationExpired) => S::Cancelled,
        (S::Paid, E::ReservationCommitted) => S::Confirmed,
        (S::Paid, E::Cancel) => S::Cancelled,
        (S::Confirmed, E::Ship) => S::Shipped,
        (S::Confirmed, E::Cancel) => S::Cancelled,
        (S::Confirmed | S::Shipped | S::Delivered | S::PartiallyRefunded, E::PartialRefund) => S::PartiallyRefunded,
        (S::Confirmed | S::Shipped | S::Delivered | S::PartiallyRefunded, E::FullRefund) => S::Refunded,
        (S::Shipped, E::Deliver) => S::Delivered,
        _ => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

/// Whether a customer (or admin) may cancel an order in this state: before it ships.
pub fn cancellable(status: OrderStatus) -> bool {
    transition(status, OrderEvent::Cancel).is_ok()
}

/// Who looks at an order, as far as what they may do with it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Viewer {
    /// The customer who placed it.
    pub owner: bool,
    /// Admin or fulfilment: ships, delivers and cancels any order.
    pub staff: bool,
    /// Refunds.
    pub admin: bool,
}

/// What the actions on an order depend on besides who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionFacts {
    pub status: OrderStatus,
    /// An invoice number was assigned (at payment).
    pub invoiced: bool,
    /// Captured and not yet refunded, in minor units.
    pub refundable: i64,
}

/// What `viewer` may do with an order now, in [`OrderAction::ALL`] order: the one place that
/// decides which actions an order offers (its views carry the answer, pages show only those).
/// Each request is still checked when it arrives: the order may have moved meanwhile, and a
/// return must also fall within the return window.
pub fn allowed_actions(facts: ActionFacts, viewer: Viewer) -> Vec<OrderAction> {
    use OrderStatus as S;
    let status = facts.status;
    let can = |event| transition(status, event).is_ok();
    let offered = |action| match action {
        OrderAction::Cancel => (viewer.owner || viewer.staff) && cancellable(status),
        // Before it ships, cancelling refunds in full; once delivered, the goods come back
        // through a return: a refund request is for an order on its way.
        OrderAction::RequestRefund => viewer.owner && status == S::Shipped,
        OrderAction::RequestReturn => viewer.owner && matches!(status, S::Delivered | S::PartiallyRefunded),
        // Not while the order is still being confirmed, nor once it was cancelled.
        OrderAction::DownloadInvoice => {
            facts.invoiced
                && matches!(
                    status,
                    S::Confirmed | S::Shipped | S::Delivered | S::Refunded | S::PartiallyRefunded
                )
        }
        OrderAction::Ship => viewer.staff && can(OrderEvent::Ship),
        OrderAction::Deliver => viewer.staff && can(OrderEvent::Deliver),
        OrderAction::Refund => viewer.admin && facts.refundable > 0 && can(OrderEvent::PartialRefund),
    };
    OrderAction::ALL.into_iter().filter(|a| offered(*a)).collect()
}

/// Who did something to an order, as recorded in its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Customer(Uuid),
    Admin(Uuid),
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Customer(id) => write!(f, "customer:{id}"),
            Self::Admin(id) => write!(f, "admin:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

/// One recorded transition (or note: `from == to` for refund requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub at: OffsetDateTime,
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub actor: String,
    pub reason: String,
}

/// A shipping method from `EMPORIUM_SHIPPING_METHODS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ShippingMethod {
    #[schema(example = "standard")]
    pub id: String,
    #[schema(example = "Standard (3-5 days)")]
    pub name: String,
    /// Minor units of the order currency.
    #[schema(example = 499)]
    pub price: i64,
    /// Shipping is free when the subtotal after discount reaches this.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 5000)]
    pub free_over: Option<i64>,
}

impl ShippingMethod {
    /// The shipping price for goods worth `goods` (subtotal − discount).
    pub fn price_for(&self, goods: i64) -> i64 {
        match self.free_over {
            Some(threshold) if goods >= threshold => 0,
            _ => self.price,
        }
    }
}

/// A coupon code: `[A-Z0-9-]{3,32}`, case-insensitive (stored upper-cased).
pub fn parse_coupon_code(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_ascii_uppercase();
    if !(3..=32).contains(&code.len()) {
        return Err("must be 3 to 32 characters".into());
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may only contain A-Z, 0-9 and '-'".into());
    }
    Ok(code)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponKind {
    /// Basis points of the subtotal: 100 (1 %) to 10 000 (100 %).
    Percentage(u32),
    /// A fixed amount off, in minor units of `currency`.
    Fixed { amount: i64, currency: Currency },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub code: String,
    pub kind: CouponKind,
    pub valid_from: Option<OffsetDateTime>,
    pub valid_until: Option<OffsetDateTime>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub min_subtotal: Option<i64>,
    pub active: bool,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouponRefused {
    #[error("is not active")]
    Inactive,
    #[error("is not valid yet")]
    NotYetValid,
    #[error("has expired")]
    Expired,
    #[error("has been used up")]
    Exhausted,
    #[error("needs a subtotal of at least {0} minor units")]
    BelowMinimum(i64),
    #[error("is in {0}, the order in {1}")]
    WrongCurrency(Currency, Currency),
}

impl Coupon {
    /// Whether the coupon applies to a subtotal of `subtotal` in `currency` at `now`.
    pub fn check(&self, subtotal: i64, currency: &Currency, now: OffsetDateTime) -> Result<(), CouponRefused> {
        if !self.active {
            return Err(CouponRefused::Inactive);
        }
        if self.valid_from.is_some_and(|from| now < from) {
            return Err(CouponRefused::NotYetValid);
        }
        if self.valid_until.is_some_and(|until| now >= until) {
            return Err(CouponRefused::Expired);
        }
        if self.max_uses.is_some_and(|max| self.uses >= max) {
            return Err(CouponRefused::Exhausted);
        }
        if let Some(min) = self.min_subtotal
            && subtotal < min
        {
            return Err(CouponRefused::BelowMinimum(min));
        }
        if let CouponKind::Fixed { currency: c, .. } = &self.kind
            && c != currency
        {
            return Err(CouponRefused::WrongCurrency(*c, *currency));
        }
        Ok(())
    }

    /// The discount on `subtotal`: never more than the subtotal. Percentages round half up.
    pub fn discount(&self, subtotal: i64) -> Result<i64, Overflow> {
        let raw = match &self.kind {
            CouponKind::Percentage(bp) => basis_points(subtotal, *bp)?,
            CouponKind::Fixed { amount, .. } => *amount,
        };
        Ok(raw.clamp(0, subtotal.max(0)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the amounts are too large")]
pub struct Overflow;

/// `round_half_up(amount × bp / 10 000)` for a non-negative amount.
pub fn basis_points(amount: i64, bp: u32) -> Result<i64, Overflow> {
    let product = i128::from(amount) * i128::from(bp);
    let rounded = (product + 5_000).div_euclid(10_000);
    i64::try_from(rounded).map_err(|_| Overflow)
}

/// A line's price inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePrice {
    pub unit_price: i64,
    pub quantity: i64,
}

impl LinePrice {
    pub fn total(self) -> Result<i64, Overflow> {
        self.unit_price.checked_mul(self.quantity).ok_or(Overflow)
    }
}

/// An order's totals, in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub subtotal: i64,
    pub discount: i64,
    pub shipping: i64,
    pub tax: i64,
    pub tax_rate_bp: u32,
    pub total: i64,
}

/// subtotal = Σ unit × qty; discount from the coupon (≤ subtotal); shipping by the method's rules
/// on the discounted goods; tax = round_half_up((subtotal − discount + shipping) × rate / 10 000);
/// total = subtotal − discount + shipping + tax. The coupon must already have passed
/// [`Coupon::check`].
pub fn compute_totals(
    lines: &[LinePrice],
    coupon: Option<&Coupon>,
    method: &ShippingMethod,
    tax_rate_bp: u32,
) -> Result<Totals, Overflow> {
    let mut subtotal: i64 = 0;
    for line in lines {
        subtotal = subtotal.checked_add(line.total()?).ok_or(Overflow)?;
    }
    let discount = match coupon {
        Some(c) => c.discount(subtotal)?,
        None => 0,
    };
    let goods = subtotal.checked_sub(discount).ok_or(Overflow)?;
    let shipping = method.price_for(goods);
    let taxable = goods.checked_add(shipping).ok_or(Overflow)?;
    let tax = basis_points(taxable, tax_rate_bp)?;
    let total = taxable.checked_add(tax).ok_or(Overflow)?;
    Ok(Totals {
        subtotal,
        discount,
        shipping,
        tax,
        tax_rate_bp,
        total,
    })
}

/// The status after refunding `amount` more of an order whose total is `total` and of which
/// `refunded` was already refunded; `Err` with a message for the `amount` field.
pub fn refund_outcome(total: i64, refunded: i64, amount: i64) -> Result<(OrderEvent, i64), String> {
    let remaining = total - refunded;
    if amount <= 0 {
        return Err("must be greater than 0".into());
    }
    if amount > remaining {
        return Err(format!(
            "must be at most {remaining} (the total minus what was already refunded)"
        ));
    }
    let after = refunded + amount;
    let event = if after == total {
        OrderEvent::FullRefund
    } else {
        OrderEvent::PartialRefund
    };
    Ok((event, after))
}

/// A free-text reason: trimmed, 1 to 500 characters, no control characters except newlines.
pub fn parse_reason(raw: &str) -> Result<String, String> {
    let r = raw.trim();
    if r.is_empty() {
        return Err("is required".into());
    }
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(format!("must be at most {MAX_REASON_CHARS} characters"));
    }
    if r.chars().any(|c| c.is_control() && c != '\n') {
        return Err("may not contain control characters".into());
    }
    Ok(r.to_owned())
}

/// A carrier name (1 to 50 characters) and tracking number (`[A-Za-z0-9-]{4,64}`).
pub fn parse_tracking(carrier: &str, tracking: &str) -> Result<(String, String), Vec<FieldError>> {
    let mut errors = Vec::new();
    let carrier = carrier.trim();
    if carrier.is_empty() || carrier.chars().count() > 50 || carrier.chars().any(char::is_control) {
        errors.push(FieldError::new("carrier", "must be 1 to 50 printable characters"));
    }
    let tracking = tracking.trim();
    if !(4..=64).contains(&tracking.len()) || !tracking.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        errors.push(FieldError::new(
            "tracking_number",
            "must be 4 to 64 letters, digits or '-'",
        ));
    }
    if errors.is_empty() {
        // Kept as staff typed it: some carriers' numbers are case-sensitive.
        Ok((carrier.to_owned(), tracking.to_owned()))
    } else {
        Err(errors)
    }
}

/// A payment method id as payments issues them: `pm_` followed by 1 to 64 of `[A-Za-z0-9_-]`.
pub fn parse_payment_method(raw: &str) -> Result<String, String> {
    let rest = raw
        .strip_prefix("pm_")
        .ok_or_else(|| "must be a payment method id (pm_...)".to_owned())?;
    if rest.is_empty()
        || rest.len() > 64
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("must be a payment method id (pm_...)".into());
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    #[test]
    fn only_an_order_ending_without_a_sale_gives_its_coupon_back() {
        for from in [S::Pending, S::AwaitingPayment, S::Paid, S::Confirmed] {
            assert!(from.releases_coupon(S::Cancelled), "{from}");
            assert!(from.releases_coupon(S::PaymentFailed), "{from}");
        }
        // Once only, and never for an order that was delivered and refunded.
        assert!(!S::Cancelled.releases_coupon(S::Cancelled));
        assert!(!S::PaymentFailed.releases_coupon(S::Cancelled));
        for to in [
            S::Paid,
            S::Confirmed,
            S::Shipped,
            S::Delivered,
            S::Refunded,
            S::PartiallyRefunded,
        ] {
            for from in S::ALL {
                assert!(!from.releases_coupon(to), "{from} -> {to}");
            }
        }
    }

    /// Every allowed pair; everything else must be refused.
    const ALLOWED: &[(OrderStatus, OrderEvent, OrderStatus)] = &[
        (S::Pending, E::StockReserved, S::AwaitingPayment),
        (S::Pending, E::Cancel, S::Cancelled),
        (S::AwaitingPayment, E::PaymentCaptured, S::Paid),
        (S::AwaitingPayment, E::PaymentFailed, S::PaymentFailed),
        (S::AwaitingPayment, E::Cancel, S::Cancelled),
        (S::AwaitingPayment, E::ReservationExpired, S::Cancelled),
        (S::Paid, E::ReservationCommitted, S::Confirmed),
        (S::Paid, E::Cancel, S::Cancelled),
        (S::Confirmed, E::Ship, S::Shipped),
        (S::Confirmed, E::Cancel, S::Cancelled),
        (S::Confirmed, E::PartialRefund, S::PartiallyRefunded),
        (S::Confirmed, E::FullRefund, S::Refunded),
        (S::Shipped, E::Deliver, S::Delivered),
        (S::Shipped, E::PartialRefund, S::PartiallyRefunded),
        (S::Shipped, E::FullRefund, S::Refunded),
        (S::Delivered, E::PartialRefund, S::PartiallyRefunded),
        (S::Delivered, E::FullRefund, S::Refunded),
        (S::PartiallyRefunded, E::PartialRefund, S::PartiallyRefunded),
        (S::PartiallyRefunded, E::FullRefund, S::Refunded),
    ];

    #[test]
    fn every_state_and_event_pair_is_allowed_or_refused_as_specified() {
        let mut checked = 0;
        for from in S::ALL {
            for event in E::ALL {
                let expected = ALLOWED
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (transition(from, event), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from} + {event:?}"),
                    (Err(err), None) => {
                        assert_eq!(err, TransitionError { from, event });
                    }
                    (got, want) => panic!("{from} + {event:?}: got {got:?}, expected {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 100);
    }

    #[test]
    fn terminal_states_allow_nothing() {
        for from in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in E::ALL {
                assert!(transition(from, event).is_err(), "{from} + {event:?}");
            }
        }
    }

    #[test]
    fn customers_may_cancel_until_shipping() {
        let cancellable_states: Vec<OrderStatus> = S::ALL.into_iter().filter(|s| cancellable(*s)).collect();
        assert_eq!(
            cancellable_states,
            [S::Pending, S::AwaitingPayment, S::Paid, S::Confirmed]
        );
    }

    #[test]
    fn each_viewer_is_offered_what_the_order_allows_now() {
        use OrderAction as A;
        let customer = Viewer {
            owner: true,
            ..Viewer::default()
        };
        let fulfilment = Viewer {
            staff: true,
            ..Viewer::default()
        };
        let admin = Viewer {
            staff: true,
            admin: true,
            ..Viewer::default()
        };
        let paid = |status| ActionFacts {
            status,
            invoiced: true,
            refundable: 1000,
        };
        let actions = |status, viewer| allowed_actions(paid(status), viewer);
        let unpaid = |status| ActionFacts {
            status,
            invoiced: false,
            refundable: 0,
        };
        assert_eq!(allowed_actions(unpaid(S::Pending), customer), [A::Cancel]);
        assert_eq!(allowed_actions(unpaid(S::AwaitingPayment), customer), [A::Cancel]);
        assert_eq!(actions(S::Paid, customer), [A::Cancel]);
        assert_eq!(actions(S::Confirmed, customer), [A::Cancel, A::DownloadInvoice]);
        assert_eq!(actions(S::Shipped, customer), [A::RequestRefund, A::DownloadInvoice]);
        assert_eq!(actions(S::Delivered, customer), [A::RequestReturn, A::DownloadInvoice]);
        assert_eq!(
            actions(S::PartiallyRefunded, customer),
            [A::RequestReturn, A::DownloadInvoice]
        );
        assert_eq!(actions(S::Refunded, customer), [A::DownloadInvoice]);
        assert_eq!(actions(S::Cancelled, customer), []);
        assert_eq!(allowed_actions(unpaid(S::PaymentFailed), customer), []);

        assert_eq!(actions(S::Paid, fulfilment), [A::Cancel]);
        assert_eq!(
            actions(S::Confirmed, fulfilment),
            [A::Cancel, A::DownloadInvoice, A::Ship]
        );
        assert_eq!(actions(S::Shipped, fulfilment), [A::DownloadInvoice, A::Deliver]);
        assert_eq!(actions(S::Delivered, fulfilment), [A::DownloadInvoice]);
        assert_eq!(
            actions(S::Confirmed, admin),
            [A::Cancel, A::DownloadInvoice, A::Ship, A::Refund]
        );
        assert_eq!(actions(S::Delivered, admin), [A::DownloadInvoice, A::Refund]);
        assert_eq!(actions(S::PartiallyRefunded, admin), [A::DownloadInvoice, A::Refund]);
        // Refunded in full, or never paid: nothing left to refund.
        assert_eq!(actions(S::Refunded, admin), [A::DownloadInvoice]);
        let spent = ActionFacts {
            refundable: 0,
            ..paid(S::Delivered)
        };
        assert_eq!(allowed_actions(spent, admin), [A::DownloadInvoice]);
        // Someone else's order: neither the customer's actions nor staff's.
        assert_eq!(actions(S::Confirmed, Viewer::default()), [A::DownloadInvoice]);
        // An admin who ordered sees both sides.
        let own = Viewer { owner: true, ..admin };
        assert_eq!(
            actions(S::Delivered, own),
            [A::RequestReturn, A::DownloadInvoice, A::Refund]
        );
        // Every action offered is a move the state machine (or the returns rules) accepts.
        for status in S::ALL {
            let all = actions(status, own);
            assert_eq!(all.contains(&A::Cancel), cancellable(status), "{status}");
            assert_eq!(all.contains(&A::Ship), transition(status, E::Ship).is_ok(), "{status}");
            assert_eq!(
                all.contains(&A::Deliver),
                transition(status, E::Deliver).is_ok(),
                "{status}"
            );
        }
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).expect("json"), s.as_str());
        }
        assert!("shipping".parse::<OrderStatus>().is_err());
    }

    fn method(price: i64, free_over: Option<i64>) -> ShippingMethod {
        ShippingMethod {
            id: "standard".into(),
            name: "Standard".into(),
            price,
            free_over,
        }
    }

    fn coupon(kind: CouponKind) -> Coupon {
        Coupon {
            code: "SAVE10".into(),
            kind,
            valid_from: None,
            valid_until: None,
            max_uses: None,
            uses: 0,
            min_subtotal: None,
            active: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn eur() -> Currency {
        Currency::parse("EUR").expect("eur")
    }

    #[test]
    fn totals_worked_example_with_tax_and_shipping() {
        // 2 × 12.99 + 1 × 5.00 = 30.98; standard shipping 4.99 (below 50.00);
        // tax 19 % of 35.97 = 6.8343 → 6.83; total 42.80.
        let lines = [
            LinePrice {
                unit_price: 1299,
                quantity: 2,
            },
            LinePrice {
                unit_price: 500,
                quantity: 1,
            },
        ];
        let t = compute_totals(&lines, None, &method(499, Some(5000)), 1900).expect("totals");
        assert_eq!(
            t,
            Totals {
                subtotal: 3098,
                discount: 0,
                shipping: 499,
                tax: 683,
                tax_rate_bp: 1900,
                total: 4280
            }
        );
    }

    #[test]
    fn totals_free_shipping_and_percentage_coupon() {
        // 3 × 20.00 = 60.00; 10 % off = 6.00; goods 54.00 ≥ 50.00 → free shipping;
        // tax 20 % of 54.00 = 10.80; total 64.80.
        let lines = [LinePrice {
            unit_price: 2000,
            quantity: 3,
        }];
        let c = coupon(CouponKind::Percentage(1000));
        let t = compute_totals(&lines, Some(&c), &method(499, Some(5000)), 2000).expect("totals");
        assert_eq!(
            (t.subtotal, t.discount, t.shipping, t.tax, t.total),
            (6000, 600, 0, 1080, 6480)
        );
        // The discount can push the goods below the threshold: 52.00 − 10 % = 46.80 → shipping due.
        let lines = [LinePrice {
            unit_price: 5200,
            quantity: 1,
        }];
        let t = compute_totals(&lines, Some(&c), &method(499, Some(5000)), 0).expect("totals");
        assert_eq!((t.discount, t.shipping, t.total), (520, 499, 5179));
    }

    #[test]
    fn tax_rounds_half_up() {
        // 0.25 × 10 % = 0.025 → 0.03; 0.24 × 10 % = 0.024 → 0.02; 0.15 × 10 % = 0.015 → 0.02.
        assert_eq!(basis_points(25, 1000), Ok(3));
        assert_eq!(basis_points(24, 1000), Ok(2));
        assert_eq!(basis_points(15, 1000), Ok(2));
        assert_eq!(basis_points(0, 1900), Ok(0));
        assert_eq!(basis_points(12345, 0), Ok(0));
    }

    #[test]
    fn fixed_coupon_never_exceeds_the_subtotal() {
        let c = coupon(CouponKind::Fixed {
            amount: 5000,
            currency: eur(),
        });
        let lines = [LinePrice {
            unit_price: 1000,
            quantity: 2,
        }];
        let t = compute_totals(&lines, Some(&c), &method(499, None), 1900).expect("totals");
        // 20.00 − 20.00 (capped) + 4.99 shipping; tax 19 % of 4.99 = 0.9481 → 0.95.
        assert_eq!((t.discount, t.shipping, t.tax, t.total), (2000, 499, 95, 594));
        let full = coupon(CouponKind::Percentage(10_000));
        assert_eq!(full.discount(1234), Ok(1234));
    }

    #[test]
    fn totals_overflow_is_an_error_not_a_wrap() {
        let lines = [LinePrice {
            unit_price: i64::MAX / 2,
            quantity: 3,
        }];
        assert_eq!(compute_totals(&lines, None, &method(0, None), 0), Err(Overflow));
        let lines = [
            LinePrice {
                unit_price: i64::MAX / 2,
                quantity: 1,
            },
            LinePrice {
                unit_price: i64::MAX / 2,
                quantity: 1,
            },
        ];
        assert_eq!(compute_totals(&lines, None, &method(10, None), 0), Err(Overflow));
    }

    #[test]
    fn coupon_checks() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(100);
        let mut c = coupon(CouponKind::Percentage(500));
        assert_eq!(c.check(100, &eur(), now), Ok(()));
        c.active = false;
        assert_eq!(c.check(100, &eur(), now), Err(CouponRefused::Inactive));
        c.active = true;
        c.valid_from = Some(now + time::Duration::days(1));
        assert_eq!(c.check(100, &eur(), now), Err(CouponRefused::NotYetValid));
        c.valid_from = Some(now - time::Duration::days(1));
        c.valid_until = Some(now);
        assert_eq!(c.check(100, &eur(), now), Err(CouponRefused::Expired));
        c.valid_until = Some(now + time::Duration::seconds(1));
        assert_eq!(c.check(100, &eur(), now), Ok(()));
        c.max_uses = Some(3);
        c.uses = 3;
        assert_eq!(c.check(100, &eur(), now), Err(CouponRefused::Exhausted));
        c.uses = 2;
        c.min_subtotal = Some(1000);
        assert_eq!(c.check(999, &eur(), now), Err(CouponRefused::BelowMinimum(1000)));
        assert_eq!(c.check(1000, &eur(), now), Ok(()));
        let usd = coupon(CouponKind::Fixed {
            amount: 100,
            currency: Currency::parse("usd").expect("usd"),
        });
        assert!(matches!(
            usd.check(100, &eur(), now),
            Err(CouponRefused::WrongCurrency(..))
        ));
    }

    #[test]
    fn coupon_codes_are_case_insensitive_and_restricted() {
        assert_eq!(parse_coupon_code(" save-10 "), Ok("SAVE-10".into()));
        assert!(parse_coupon_code("AB").is_err());
        assert!(parse_coupon_code(&"A".repeat(33)).is_err());
        assert!(parse_coupon_code("SAVE 10").is_err());
        assert!(parse_coupon_code("ÄBC").is_err());
    }

    #[test]
    fn value_types_validate() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(100).is_err());
        assert_eq!(Quantity::parse(99).map(Quantity::get), Ok(99));
        assert_eq!(Country::parse("de").map(|c| c.to_string()), Ok("DE".into()));
        assert!(Country::parse("DEU").is_err());
        assert!(Country::parse("D1").is_err());
        assert!(Currency::parse("EU").is_err());
        assert_eq!(Sku::parse("tee-red-m").map(|s| s.to_string()), Ok("TEE-RED-M".into()));
        assert!(Sku::parse("a b").is_err());
        assert_eq!(OrderNumber::from_sequence(42).as_str(), "EMP-000042");
        assert_eq!(invoice_number(2026, 1), "INV-2026-000001");
        assert_eq!(Actor::System.to_string(), "system");
        assert!(Actor::Customer(Uuid::nil()).to_string().starts_with("customer:"));
        assert!(Actor::Admin(Uuid::nil()).to_string().starts_with("admin:"));
        assert!(parse_payment_method("pm_0192abc").is_ok());
        assert!(parse_payment_method("card_1").is_err());
        assert!(parse_payment_method("pm_").is_err());
        assert!(parse_payment_method("pm_a b").is_err());
        use contracts::kernel::IdempotencyKey;
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(parse_reason("  ").is_err());
        assert_eq!(parse_reason(" changed my mind "), Ok("changed my mind".into()));
    }

    #[test]
    fn a_pseudonymised_address_keeps_only_the_country() {
        let a = ShippingAddress::parse(&raw_address(), "shipping_address", |c: &Country| c.as_str() == "DE")
            .expect("valid");
        let p = a.pseudonymised();
        assert_eq!(p.country.as_str(), "DE");
        assert_eq!(p.name, FORMER_CUSTOMER);
        let text = serde_json::to_string(&p).expect("json");
        for personal in ["Ada", "Lovelace", "Hauptstraße", "Berlin", "10115", "4567"] {
            assert!(!text.contains(personal), "{personal} kept in {text}");
        }
        assert_eq!(p.pseudonymised(), p, "pseudonymising twice changes nothing");
    }

    fn raw_address() -> RawAddress {
        RawAddress {
            name: "Ada Lovelace".into(),
            line1: "Hauptstraße 1".into(),
            line2: Some("  ".into()),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "de".into(),
            phone: Some("+49 (30) 123-4567".into()),
        }
    }

    #[test]
    fn addresses_validate_each_field() {
        let supported = |c: &Country| c.as_str() == "DE";
        let a = ShippingAddress::parse(&raw_address(), "shipping_address", supported).expect("valid");
        assert_eq!(a.country.as_str(), "DE");
        assert_eq!(a.line2, None);
        let mut raw = raw_address();
        raw.name = " ".into();
        raw.postal_code = "10115!".into();
        raw.country = "FR".into();
        raw.phone = Some("call me".into());
        raw.city = "x".repeat(101);
        let errors = ShippingAddress::parse(&raw, "shipping_address", supported).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "shipping_address.name",
                "shipping_address.city",
                "shipping_address.postal_code",
                "shipping_address.country",
                "shipping_address.phone"
            ]
        );
        let mut raw = raw_address();
        raw.country = "Germany".into();
        let errors = ShippingAddress::parse(&raw, "shipping_address", supported).expect_err("invalid");
        assert_eq!(errors[0].field, "shipping_address.country");
    }

    #[test]
    fn refunds_never_exceed_the_remaining_total() {
        assert_eq!(refund_outcome(1000, 0, 400), Ok((E::PartialRefund, 400)));
        assert_eq!(refund_outcome(1000, 400, 600), Ok((E::FullRefund, 1000)));
        assert!(refund_outcome(1000, 400, 601).is_err());
        assert!(refund_outcome(1000, 0, 0).is_err());
        assert!(refund_outcome(1000, 0, -5).is_err());
    }

    #[test]
    fn tracking_is_validated() {
        assert_eq!(
            parse_tracking(" DHL ", "jd0146-0000"),
            Ok(("DHL".into(), "jd0146-0000".into()))
        );
        let errors = parse_tracking("", "a b").expect_err("bad");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[1].field, "tracking_number");
    }

    #[test]
    fn free_shipping_threshold() {
        let m = method(499, Some(5000));
        assert_eq!(m.price_for(4999), 499);
        assert_eq!(m.price_for(5000), 0);
        assert_eq!(method(1499, None).price_for(1_000_000), 1499);
    }
}
