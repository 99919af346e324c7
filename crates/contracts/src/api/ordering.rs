//! The ordering context's published request and view types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::money::{MoneyInput, MoneyView};

/// Where an order is in its life. Which transitions are allowed is ordering's rule; this is the
/// name each state travels by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    AwaitingPayment,
    Paid,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
    PaymentFailed,
    Refunded,
    PartiallyRefunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 10] = [
        Self::Pending,
        Self::AwaitingPayment,
        Self::Paid,
        Self::Confirmed,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::PaymentFailed,
        Self::Refunded,
        Self::PartiallyRefunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AwaitingPayment => "awaiting_payment",
            Self::Paid => "paid",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::PaymentFailed => "payment_failed",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown order status {s:?}"))
    }
}

/// Where an order goes, as the order shows it (ordering validated it when the order was placed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShippingAddress {
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = "Hauptstraße 1")]
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[schema(example = "Berlin")]
    pub city: String,
    #[schema(example = "10115")]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2; must be one of the supported destinations (`EMPORIUM_TAX_RATES`).
    #[schema(example = "DE")]
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "+49 30 1234567")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    pub sku: String,
    pub product_id: Uuid,
    pub name: String,
    pub quantity: i64,
    /// From the catalogue at the time of the order.
    pub unit_price: MoneyView,
    pub line_total: MoneyView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// Totals and current prices, without writing anything (`POST /api/v1/orders/quote`, and the body
/// of a price-changed 409).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    pub lines: Vec<LineView>,
    #[serde(flatten)]
    pub totals: TotalsView,
    pub shipping_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSummary {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
    pub refunded: MoneyView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingView {
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    /// `customer:<uuid>`, `admin:<uuid>` or `system`.
    pub actor: String,
    pub reason: String,
}

/// An order with everything a customer or admin sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    pub from_cart: bool,
    pub payment: PaymentSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<TrackingView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// The saga step still to run (`capture`, `commit`, `refund`, `release`, `restock`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// One row of an order list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CouponView {
    pub code: String,
    /// `percentage` or `fixed`.
    pub kind: String,
    /// Percentage coupons: whole percent (1 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Fixed coupons: the amount off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<MoneyView>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_from: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_until: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<i64>,
    pub uses: i64,
    /// The least subtotal the coupon applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_subtotal: Option<MoneyView>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShippingMethods {
    /// ISO 4217 currency of every price.
    pub currency: String,
    pub methods: Vec<ShippingMethodView>,
    /// Countries we ship to.
    pub countries: Vec<String>,
    /// The tax rate (basis points) of `?country=`, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate_bp: Option<u32>,
}

/// A shipping method and its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShippingMethodView {
    #[schema(example = "standard")]
    pub id: String,
    #[schema(example = "Standard (3-5 days)")]
    pub name: String,
    pub price: MoneyView,
    /// Shipping is free when the subtotal after discount reaches this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_over: Option<MoneyView>,
}

/// A line of a checkout (or quote) that lists its items instead of ordering the cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    /// 1 to 99.
    #[schema(example = 2)]
    pub quantity: i64,
    /// The unit price the client showed (`{amount, currency}`; a bare integer of minor units is
    /// still accepted); a different current price is a 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<MoneyInput>,
}

/// An address as the client sent it. Placing an order needs `name`, `line1`, `city`,
/// `postal_code` and `country`; a quote needs only `country` (tax and shipping depend on nothing
/// else), so a shop can show the total before the address is typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAddress {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub postal_code: String,
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// A checkout (or quote) request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// Explicit lines; give these or `from_cart: true`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemRequest>>,
    /// Order the caller's cart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cart: Option<bool>,
    pub shipping_address: RawAddress,
    #[schema(example = "standard")]
    pub shipping_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    /// A payment method id from `POST /api/v1/payments/methods` (required to place, ignored by quotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "pm_0192f0c4e5a87c3b9d1e2f3a4b5c6d7e")]
    pub payment_method: Option<String>,
    /// The total the client showed (`{amount, currency}`; a bare integer of minor units is still
    /// accepted); a different current total is a 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_total: Option<MoneyInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why (1 to 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequestBody {
    /// Why (1 to 500 characters).
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    #[schema(example = "DHL")]
    pub carrier: String,
    #[schema(example = "JD014600006281234567")]
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// `{amount, currency}` (a bare integer of minor units is still accepted); default:
    /// everything not refunded yet.
    #[serde(default)]
    pub amount: Option<MoneyInput>,
    pub reason: String,
}

/// Where a return stands. `requested → approved | rejected`, `approved → received → refunded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    Requested,
    Approved,
    Rejected,
    Received,
    Refunded,
}

impl ReturnStatus {
    pub const ALL: [ReturnStatus; 5] = [
        Self::Requested,
        Self::Approved,
        Self::Rejected,
        Self::Received,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Received => "received",
            Self::Refunded => "refunded",
        }
    }
}

impl fmt::Display for ReturnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReturnStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("must be one of requested, approved, rejected, received, refunded (not {s:?})"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineRequest {
    /// A SKU of the order.
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    /// 1 to (delivered − already being returned).
    #[schema(example = 1)]
    pub quantity: i64,
}

/// A customer's return request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReturn {
    /// Why (1 to 500 characters).
    #[schema(example = "The size does not fit")]
    pub reason: String,
    pub lines: Vec<ReturnLineRequest>,
}

/// Staff's decision on a requested return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnDecision {
    /// Shown to the customer (required to reject; at most 500 characters).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveLine {
    pub sku: String,
    /// Whether the units go back to stock (false: damaged, kept out of sale).
    pub restock: bool,
}

/// Staff mark an approved return's parcel received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveReturn {
    /// Per line whether it goes back to stock; lines not listed go back to stock.
    #[serde(default)]
    pub lines: Vec<ReceiveLine>,
    /// Minor units to refund; default: the lines' value with their share of discount and tax.
    #[serde(default)]
    pub refund_amount: Option<i64>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReturnLineView {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: MoneyView,
    /// Set once received: whether the units went back to stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restock: Option<bool>,
}

/// A return (RMA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReturnView {
    pub id: Uuid,
    pub order_id: Uuid,
    #[schema(example = "EMP-000042")]
    pub order_number: String,
    pub user_id: Uuid,
    pub status: ReturnStatus,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub lines: Vec<ReturnLineView>,
    /// Fixed on receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<MoneyView>,
    /// True while the restock/refund steps after receipt are still running.
    pub processing: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Something the caller may do with an order now. An order view lists these
/// (`allowed_actions`) so that pages offer exactly what ordering would accept, without knowing
/// its state machine. Ordering still checks each request when it arrives (the order may have
/// moved meanwhile, the return window may have closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    /// `POST /api/v1/orders/{id}/cancel`: before it ships (its owner or staff).
    Cancel,
    /// `POST /api/v1/orders/{id}/refund-requests`: on its way to the customer (its owner).
    RequestRefund,
    /// `POST /api/v1/orders/{id}/returns`: delivered (its owner).
    RequestReturn,
    /// `GET /api/v1/orders/{id}/invoice.pdf`: paid and past checkout.
    DownloadInvoice,
    /// `POST /api/v1/orders/{id}/ship`: confirmed (admin or fulfilment).
    Ship,
    /// `POST /api/v1/orders/{id}/deliver`: shipped (admin or fulfilment).
    Deliver,
    /// `POST /api/v1/orders/{id}/refunds`: paid and not yet refunded in full (admin).
    Refund,
}

impl OrderAction {
    pub const ALL: [OrderAction; 7] = [
        Self::Cancel,
        Self::RequestRefund,
        Self::RequestReturn,
        Self::DownloadInvoice,
        Self::Ship,
        Self::Deliver,
        Self::Refund,
    ];

    /// The wire name (`request_return`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::RequestRefund => "request_refund",
            Self::RequestReturn => "request_return",
            Self::DownloadInvoice => "download_invoice",
            Self::Ship => "ship",
            Self::Deliver => "deliver",
            Self::Refund => "refund",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_travel_by_their_snake_case_names() {
        for action in OrderAction::ALL {
            let wire = serde_json::to_value(action).expect("serialise");
            assert_eq!(wire, serde_json::json!(action.as_str()));
            assert_eq!(serde_json::from_value::<OrderAction>(wire).expect("read back"), action);
        }
    }

    #[test]
    fn statuses_travel_by_their_snake_case_names() {
        for status in OrderStatus::ALL {
            let wire = serde_json::to_value(status).expect("serialise");
            assert_eq!(wire, serde_json::json!(status.as_str()));
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
        }
    }

    #[test]
    fn a_quote_for_a_country_sends_only_what_it_names() {
        let quote = CheckoutRequest {
            items: None,
            from_cart: Some(true),
            shipping_address: RawAddress {
                country: "DE".into(),
                ..RawAddress::default()
            },
            shipping_method: "standard".into(),
            coupon: None,
            payment_method: None,
            expected_total: None,
        };
        let wire = serde_json::to_value(&quote).expect("serialise");
        assert_eq!(
            wire,
            serde_json::json!({
                "from_cart": true,
                "shipping_address": {"name": "", "line1": "", "city": "", "postal_code": "", "country": "DE"},
                "shipping_method": "standard",
            })
        );
        assert_eq!(
            serde_json::from_value::<CheckoutRequest>(wire).expect("read back"),
            quote
        );
    }

    #[test]
    fn checkout_requests_take_older_money_and_refuse_unknown_fields() {
        let req: CheckoutRequest = serde_json::from_value(serde_json::json!({
            "items": [{"sku": "TEE-RED-M", "quantity": 2, "unit_price": 1999}],
            "shipping_address": {"country": "NL"},
            "shipping_method": "express",
            "expected_total": {"amount": 4500, "currency": "EUR"},
        }))
        .expect("valid request");
        let items = req.items.expect("items");
        assert_eq!(items[0].unit_price.as_ref().map(MoneyInput::amount), Some(1999));
        assert_eq!(req.expected_total.as_ref().and_then(MoneyInput::currency), Some("EUR"));
        let unknown = serde_json::json!({
            "shipping_address": {"country": "NL", "state": "x"},
            "shipping_method": "express",
        });
        assert!(serde_json::from_value::<CheckoutRequest>(unknown).is_err());
    }
}
