//! The events ordering publishes. Every `ordering.order.*` and `ordering.return.*` event's data
//! starts with the order's [`OrderRef`] fields; amounts are integers in minor units of its
//! `currency`. The subject is the order id, so a consumer sees an order's events in order.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Event, shared_shape};

/// The fields every order and return event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    pub order_id: Uuid,
    /// The customer-facing number (`EMP-000042`); a JSON number is read too, as consumers always
    /// accepted one.
    #[serde(deserialize_with = "string_or_number")]
    pub number: String,
    pub user_id: Uuid,
    /// ISO 4217 code.
    pub currency: String,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Text(String),
        Int(i64),
    }
    Ok(match Number::deserialize(deserializer)? {
        Number::Text(s) => s,
        Number::Int(n) => n.to_string(),
    })
}

/// An order line as the order events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub product_id: Uuid,
    pub name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub line_total: i64,
}

/// Where the order goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The whole order, as `placed` and `payment_pending` carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    #[serde(flatten)]
    pub order: OrderRef,
    pub status: String,
    pub subtotal: i64,
    pub shipping: i64,
    pub tax: i64,
    pub discount: i64,
    pub total: i64,
    /// The order was placed from the user's cart (not from explicit items): cart empties it.
    #[serde(default)]
    pub from_cart: bool,
    #[serde(default)]
    pub lines: Vec<OrderLine>,
    pub shipping_address: ShippingAddress,
}

shared_shape! {
    /// An order was placed (published for every order).
    OrderPlaced(PlacedOrder) = "ordering.order.placed"
}

shared_shape! {
    /// The payment did not settle within the checkout request (the provider is still processing,
    /// or payments is unreachable): published once, with the same data as `placed`.
    OrderPaymentPending(PlacedOrder) = "ordering.order.payment_pending"
}

/// The order's payment was captured and its invoice issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    #[serde(flatten)]
    pub order: OrderRef,
    pub total: i64,
    #[serde(default)]
    pub payment_id: Option<String>,
    #[serde(default)]
    pub invoice_number: Option<String>,
}

impl Event for OrderPaid {
    const TYPE: &'static str = "ordering.order.paid";
}

/// The order is paid and its stock committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    #[serde(flatten)]
    pub order: OrderRef,
    pub total: i64,
    #[serde(default)]
    pub lines: Vec<OrderLine>,
}

impl Event for OrderConfirmed {
    const TYPE: &'static str = "ordering.order.confirmed";
}

/// The payment was declined or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaymentFailed {
    #[serde(flatten)]
    pub order: OrderRef,
    /// A decline code (`insufficient_funds`) or why the payment was refused.
    pub reason: String,
}

impl Event for OrderPaymentFailed {
    const TYPE: &'static str = "ordering.order.payment_failed";
}

/// The order was cancelled (sent after its refund and restock finished).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    #[serde(flatten)]
    pub order: OrderRef,
    pub reason: String,
    #[serde(default)]
    pub refunded_amount: i64,
}

impl Event for OrderCancelled {
    const TYPE: &'static str = "ordering.order.cancelled";
}

/// The order left the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    #[serde(flatten)]
    pub order: OrderRef,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
}

impl Event for OrderShipped {
    const TYPE: &'static str = "ordering.order.shipped";
}

/// The order reached the customer; catalog marks reviews of its products `verified_purchase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDelivered {
    #[serde(flatten)]
    pub order: OrderRef,
    pub lines: Vec<OrderLine>,
}

impl Event for OrderDelivered {
    const TYPE: &'static str = "ordering.order.delivered";
}

/// Money went back to the customer (an admin's refund or a return's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefunded {
    #[serde(flatten)]
    pub order: OrderRef,
    pub amount: i64,
    pub total_refunded: i64,
    /// The whole order is refunded now.
    pub full: bool,
    /// Set when a return's refund: the return's own mail tells the customer, not this event's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<Uuid>,
}

impl Event for OrderRefunded {
    const TYPE: &'static str = "ordering.order.refunded";
}

/// A return, as every return event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    #[serde(flatten)]
    pub order: OrderRef,
    pub return_id: Uuid,
    /// `RMA-…`.
    pub reference: String,
    pub status: String,
    pub reason: String,
    /// The staff's note on approval, rejection or receipt.
    #[serde(default)]
    pub note: Option<String>,
    pub lines: Vec<ReturnLine>,
    /// Fixed on receipt.
    #[serde(default)]
    pub refund_amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLine {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub line_total: i64,
    /// Chosen on receipt: whether the units go back to stock.
    #[serde(default)]
    pub restock: Option<bool>,
}

shared_shape! {
    /// A customer asked to return lines of a delivered order.
    ReturnRequested(Return) = "ordering.return.requested"
}

shared_shape! {
    ReturnApproved(Return) = "ordering.return.approved"
}

shared_shape! {
    ReturnRejected(Return) = "ordering.return.rejected"
}

shared_shape! {
    /// The parcel arrived; the refund amount is fixed.
    ReturnReceived(Return) = "ordering.return.received"
}

shared_shape! {
    ReturnRefunded(Return) = "ordering.return.refunded"
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::events::tests::wire_form;

    const ORDER: &str = "0192b1c0-0000-7000-8000-000000000009";
    const USER: &str = "0192b1c0-0000-7000-8000-000000000001";

    fn with_ref(extra: Value) -> Value {
        let mut data = json!({"order_id": ORDER, "number": "EMP-000042", "user_id": USER, "currency": "EUR"});
        if let (Some(map), Value::Object(extra)) = (data.as_object_mut(), extra) {
            map.extend(extra);
        }
        data
    }

    fn lines() -> Value {
        json!([{"sku": "MUG-1", "product_id": "0192b1c0-0000-7000-8000-00000000000a", "name": "Mug",
            "quantity": 2, "unit_price": 1000, "line_total": 2000}])
    }

    #[test]
    fn placed_and_payment_pending() {
        let sample = with_ref(json!({"status": "awaiting_payment", "subtotal": 2000, "shipping": 495,
            "tax": 380, "discount": 0, "total": 2875, "from_cart": true, "lines": lines(),
            "shipping_address": {"name": "Ada Lovelace", "line1": "Hauptstraße 1", "city": "Berlin",
                "postal_code": "10115", "country": "DE"}}));
        let placed: OrderPlaced = wire_form(sample.clone());
        assert!(placed.from_cart);
        assert_eq!(placed.lines[0].quantity, 2);
        assert_eq!(placed.order.number, "EMP-000042");
        let pending: OrderPaymentPending = wire_form(sample.clone());
        assert_eq!(pending.0, placed.0);
        // Without the fields added after the first release.
        let mut old = sample;
        let map = old.as_object_mut().expect("object");
        map.remove("from_cart");
        map.remove("lines");
        let old: OrderPlaced = serde_json::from_value(old).expect("parse");
        assert!(!old.from_cart && old.lines.is_empty());
    }

    #[test]
    fn order_lifecycle() {
        let paid: OrderPaid = wire_form(with_ref(
            json!({"total": 2875, "payment_id": "pay_1", "invoice_number": "INV-2026-000001"}),
        ));
        assert_eq!(paid.invoice_number.as_deref(), Some("INV-2026-000001"));
        let unpaid: OrderPaid = wire_form(with_ref(
            json!({"total": 0, "payment_id": null, "invoice_number": null}),
        ));
        assert_eq!(unpaid.payment_id, None);
        let confirmed: OrderConfirmed = wire_form(with_ref(json!({"total": 2875, "lines": lines()})));
        assert_eq!(confirmed.lines.len(), 1);
        let failed: OrderPaymentFailed = wire_form(with_ref(json!({"reason": "insufficient_funds"})));
        assert_eq!(failed.reason, "insufficient_funds");
        let cancelled: OrderCancelled = wire_form(with_ref(json!({"reason": "cancelled", "refunded_amount": 2875})));
        assert_eq!(cancelled.refunded_amount, 2875);
        let shipped: OrderShipped = wire_form(with_ref(json!({"carrier": "DHL", "tracking_number": "JD01"})));
        let numbered: OrderShipped = serde_json::from_value(json!({"order_id": ORDER, "number": 7, "user_id": USER,
            "currency": "EUR", "carrier": null, "tracking_number": null}))
        .expect("parse");
        assert_eq!(numbered.order.number, "7");
        assert_eq!(shipped.carrier.as_deref(), Some("DHL"));
        let delivered: OrderDelivered = wire_form(with_ref(json!({"lines": lines()})));
        assert_eq!(delivered.order.user_id.to_string(), USER);
    }

    #[test]
    fn refunds() {
        let admin: OrderRefunded = wire_form(with_ref(json!({"amount": 500, "total_refunded": 500, "full": false})));
        assert_eq!(admin.return_id, None);
        let by_return: OrderRefunded = wire_form(with_ref(json!({"amount": 2875, "total_refunded": 2875,
            "full": true, "return_id": "0192b1c0-0000-7000-8000-00000000000b"})));
        assert!(by_return.return_id.is_some());
    }

    #[test]
    fn return_events() {
        let sample = with_ref(json!({"return_id": "0192b1c0-0000-7000-8000-00000000000b",
            "reference": "RMA-0000000B", "status": "received", "reason": "too small", "note": null,
            "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": 1, "unit_price": 1000, "line_total": 1000,
                "restock": true}],
            "refund_amount": 1190}));
        let received: ReturnReceived = wire_form(sample.clone());
        assert_eq!(received.refund_amount, Some(1190));
        let _: ReturnRequested = wire_form(sample.clone());
        let _: ReturnApproved = wire_form(sample.clone());
        let _: ReturnRejected = wire_form(sample.clone());
        let refunded: ReturnRefunded = wire_form(sample);
        assert_eq!(refunded.lines[0].restock, Some(true));
    }
}
