//! What the API answers with.

use contracts::api::ordering::OrderAction;
use platform::money::MoneyView;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{
    ActionFacts, Coupon, CouponKind, Currency, OrderStatus, ShippingAddress, TimelineEntry, Totals, Viewer,
    allowed_actions,
};
use crate::store::{Order, OrderDetail, OrderLine};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineView {
    pub sku: String,
    pub product_id: Uuid,
    pub name: String,
    pub quantity: i64,
    /// From the catalogue at the time of the order.
    pub unit_price: MoneyView,
    pub line_total: MoneyView,
}

impl LineView {
    pub fn new(l: &OrderLine, currency: &Currency) -> Self {
        Self {
            sku: l.sku.to_string(),
            product_id: l.product_id,
            name: l.name.clone(),
            quantity: l.quantity,
            unit_price: MoneyView::new(l.unit_price, currency.to_string()),
            line_total: MoneyView::new(l.line_total, currency.to_string()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotalsView {
    /// ISO 4217 currency of every amount of the order.
    #[schema(example = "EUR")]
    pub currency: String,
    pub subtotal: MoneyView,
    pub discount: MoneyView,
    pub shipping: MoneyView,
    pub tax: MoneyView,
    /// Basis points of the destination's rate (1900 = 19 %).
    pub tax_rate_bp: u32,
    /// What is charged: subtotal − discount + shipping + tax.
    pub total: MoneyView,
}

impl TotalsView {
    pub fn new(t: &Totals, currency: &Currency) -> Self {
        let money = |amount| MoneyView::new(amount, currency.to_string());
        Self {
            currency: currency.to_string(),
            subtotal: money(t.subtotal),
            discount: money(t.discount),
            shipping: money(t.shipping),
            tax: money(t.tax),
            tax_rate_bp: t.tax_rate_bp,
            total: money(t.total),
        }
    }
}

/// Totals and current prices, without writing anything (`POST /api/v1/orders/quote`, and the body
/// of a price-changed 409).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuoteView {
    pub lines: Vec<LineView>,
    #[serde(flatten)]
    pub totals: TotalsView,
    pub shipping_method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentSummary {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
    pub refunded: MoneyView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrackingView {
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    /// `customer:<uuid>`, `admin:<uuid>` or `system`.
    pub actor: String,
    pub reason: String,
}

impl From<&TimelineEntry> for TimelineView {
    fn from(e: &TimelineEntry) -> Self {
        Self {
            at: e.at,
            from: e.from,
            to: e.to,
            actor: e.actor.clone(),
            reason: e.reason.clone(),
        }
    }
}

/// An order with everything a customer or admin sees.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// Human number, `EMP-000042`.
    pub number: String,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<LineView>,
    #[serde(flatten)]
    pub totals: TotalsView,
    pub refunded: MoneyView,
    pub shipping_method: String,
    pub shipping_address: ShippingAddress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    pub from_cart: bool,
    pub payment: PaymentSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking: Option<TrackingView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// The saga step still to run (`capture`, `commit`, `refund`, `release`, `restock`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_step: Option<String>,
    pub timeline: Vec<TimelineView>,
    /// Still being placed or paid (`pending`, `awaiting_payment`, `paid`): the outcome follows
    /// within seconds, so a page may refresh until it settles.
    pub in_progress: bool,
    /// What the caller may do with the order now (the endpoints' own checks still apply).
    pub allowed_actions: Vec<OrderAction>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What `viewer` may do with `o` now.
pub fn actions_on(o: &Order, viewer: Viewer) -> Vec<OrderAction> {
    let facts = ActionFacts {
        status: o.status,
        invoiced: o.invoice_number.is_some(),
        refundable: if o.payment_id.is_some() {
            o.totals.total - o.refunded
        } else {
            0
        },
    };
    allowed_actions(facts, viewer)
}

pub fn totals_view(o: &Order) -> TotalsView {
    TotalsView::new(&o.totals, &o.currency)
}

impl OrderView {
    /// The order as `viewer` sees it (their allowed actions).
    pub fn new(d: &OrderDetail, viewer: Viewer) -> Self {
        let o = &d.order;
        Self {
            id: o.id.0,
            number: o.number.to_string(),
            user_id: o.user_id,
            status: o.status,
            lines: d.lines.iter().map(|l| LineView::new(l, &o.currency)).collect(),
            totals: totals_view(o),
            refunded: MoneyView::new(o.refunded, o.currency.to_string()),
            shipping_method: o.shipping_method.clone(),
            shipping_address: o.shipping_address.clone(),
            coupon: o.coupon_code.clone(),
            from_cart: o.from_cart,
            payment: PaymentSummary {
                method: o.payment_method.clone(),
                payment_id: o.payment_id.clone(),
                status: o.payment_status.clone(),
                brand: o.payment_brand.clone(),
                last4: o.payment_last4.clone(),
                refunded: MoneyView::new(o.refunded, o.currency.to_string()),
            },
            invoice_number: o.invoice_number.clone(),
            tracking: match (&o.carrier, &o.tracking_number) {
                (Some(carrier), Some(tracking_number)) => Some(TrackingView {
                    carrier: carrier.clone(),
                    tracking_number: tracking_number.clone(),
                }),
                _ => None,
            },
            cancel_reason: o.cancel_reason.clone(),
            pending_step: o.saga_step.map(|s| s.as_str().to_owned()),
            timeline: d.timeline.iter().map(TimelineView::from).collect(),
            in_progress: OrderStatus::IN_FLIGHT.contains(&o.status),
            allowed_actions: actions_on(o, viewer),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// One row of an order list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderSummary {
    pub id: Uuid,
    pub number: String,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub currency: String,
    pub total: MoneyView,
    pub refunded: MoneyView,
    /// What the caller may do with the order now (the endpoints' own checks still apply).
    pub allowed_actions: Vec<OrderAction>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl OrderSummary {
    /// One row as `viewer` sees it (their allowed actions).
    pub fn new(o: &Order, viewer: Viewer) -> Self {
        Self {
            id: o.id.0,
            number: o.number.to_string(),
            user_id: o.user_id,
            status: o.status,
            currency: o.currency.to_string(),
            total: MoneyView::new(o.totals.total, o.currency.to_string()),
            refunded: MoneyView::new(o.refunded, o.currency.to_string()),
            allowed_actions: actions_on(o, viewer),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CouponView {
    pub code: String,
    /// `percentage` or `fixed`.
    pub kind: String,
    /// Percentage coupons: whole percent (1 to 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Fixed coupons: the amount off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<MoneyView>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<i64>,
    pub uses: i64,
    /// The least subtotal the coupon applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_subtotal: Option<MoneyView>,
    pub active: bool,
}

impl CouponView {
    /// `currency`: the shop's (orders') currency, that of `min_subtotal`.
    pub fn new(c: &Coupon, currency: &Currency) -> Self {
        let (kind, percent, amount) = match &c.kind {
            CouponKind::Percentage(bp) => ("percentage", Some(bp / 100), None),
            CouponKind::Fixed { amount, currency } => {
                ("fixed", None, Some(MoneyView::new(*amount, currency.to_string())))
            }
        };
        Self {
            code: c.code.clone(),
            kind: kind.into(),
            percent,
            amount,
            valid_from: c.valid_from,
            valid_until: c.valid_until,
            max_uses: c.max_uses,
            uses: c.uses,
            min_subtotal: c.min_subtotal.map(|m| MoneyView::new(m, currency.to_string())),
            active: c.active,
        }
    }
}
