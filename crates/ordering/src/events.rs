//! The events ordering publishes (through its outbox) and the one it consumes.
//!
//! Every `ordering.order.*` event's data has `order_id`, `number`, `user_id` and `currency`;
//! amounts are integers in minor units of `currency`. The subject is the order id.

use platform::events::Event;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::CONTEXT;
use crate::returns::Return;
use crate::store::{Order, OrderLine};

pub const ORDER_PLACED: &str = "ordering.order.placed";
pub const ORDER_PAYMENT_PENDING: &str = "ordering.order.payment_pending";
pub const ORDER_PAID: &str = "ordering.order.paid";
pub const ORDER_CONFIRMED: &str = "ordering.order.confirmed";
pub const ORDER_PAYMENT_FAILED: &str = "ordering.order.payment_failed";
pub const ORDER_CANCELLED: &str = "ordering.order.cancelled";
pub const ORDER_SHIPPED: &str = "ordering.order.shipped";
pub const ORDER_DELIVERED: &str = "ordering.order.delivered";
pub const ORDER_REFUNDED: &str = "ordering.order.refunded";

pub const RETURN_REQUESTED: &str = "ordering.return.requested";
pub const RETURN_APPROVED: &str = "ordering.return.approved";
pub const RETURN_REJECTED: &str = "ordering.return.rejected";
pub const RETURN_RECEIVED: &str = "ordering.return.received";
pub const RETURN_REFUNDED: &str = "ordering.return.refunded";

pub const RESERVATION_EXPIRED: &str = "inventory.reservation.expired";

/// What ordering reads of `inventory.reservation.expired`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReservationExpired {
    pub id: uuid::Uuid,
    pub reference: String,
}

fn event(event_type: &str, o: &Order, extra: Value) -> Event {
    let mut data = Map::new();
    data.insert("order_id".into(), json!(o.id.0));
    data.insert("number".into(), json!(o.number.as_str()));
    data.insert("user_id".into(), json!(o.user_id));
    data.insert("currency".into(), json!(o.currency.as_str()));
    if let Value::Object(fields) = extra {
        data.extend(fields);
    }
    Event::new(CONTEXT, event_type, o.id.to_string(), Value::Object(data))
}

fn lines_json(lines: &[OrderLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                json!({
                    "sku": l.sku.as_str(),
                    "product_id": l.product_id,
                    "name": l.name,
                    "quantity": l.quantity,
                    "unit_price": l.unit_price,
                    "line_total": l.line_total,
                })
            })
            .collect(),
    )
}

pub fn placed(o: &Order, lines: &[OrderLine]) -> Event {
    event(ORDER_PLACED, o, placed_data(o, lines))
}

/// The payment did not settle within the checkout request (the provider is still processing, or
/// payments is unreachable): published once, with the same data as `placed`.
pub fn payment_pending(o: &Order, lines: &[OrderLine]) -> Event {
    event(ORDER_PAYMENT_PENDING, o, placed_data(o, lines))
}

fn placed_data(o: &Order, lines: &[OrderLine]) -> Value {
    json!({
            "status": o.status.as_str(),
            "subtotal": o.totals.subtotal,
            "shipping": o.totals.shipping,
            "tax": o.totals.tax,
            "discount": o.totals.discount,
            "total": o.totals.total,
            "from_cart": o.from_cart,
            "lines": lines_json(lines),
            "shipping_address": o.shipping_address,
    })
}

pub fn paid(o: &Order) -> Event {
    event(
        ORDER_PAID,
        o,
        json!({"total": o.totals.total, "payment_id": o.payment_id, "invoice_number": o.invoice_number}),
    )
}

pub fn confirmed(o: &Order, lines: &[OrderLine]) -> Event {
    event(
        ORDER_CONFIRMED,
        o,
        json!({"total": o.totals.total, "lines": lines_json(lines)}),
    )
}

pub fn payment_failed(o: &Order, reason: &str) -> Event {
    event(ORDER_PAYMENT_FAILED, o, json!({"reason": reason}))
}

pub fn cancelled(o: &Order) -> Event {
    event(
        ORDER_CANCELLED,
        o,
        json!({"reason": o.cancel_reason.as_deref().unwrap_or("cancelled"), "refunded_amount": o.refunded}),
    )
}

pub fn shipped(o: &Order) -> Event {
    event(
        ORDER_SHIPPED,
        o,
        json!({"carrier": o.carrier, "tracking_number": o.tracking_number}),
    )
}

pub fn delivered(o: &Order, lines: &[OrderLine]) -> Event {
    // The full lines: catalog reads `sku`/`product_id` (verified purchases), the mail the rest.
    event(ORDER_DELIVERED, o, json!({"lines": lines_json(lines)}))
}

pub fn refunded(o: &Order, amount: i64) -> Event {
    event(
        ORDER_REFUNDED,
        o,
        json!({"amount": amount, "total_refunded": o.refunded, "full": o.refunded == o.totals.total}),
    )
}

/// `ordering.return.*`: the order's fields plus `return_id`, `status`, `reason`, the staff `note`,
/// the lines (`sku`, `name`, `quantity`, `unit_price`, `restock` once received) and, once fixed,
/// `refund_amount`. The subject is the order id, so a consumer sees an order's events in order.
pub fn return_event(event_type: &str, o: &Order, r: &Return) -> Event {
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| {
            json!({
                "sku": l.sku.as_str(),
                "name": l.name,
                "quantity": l.quantity,
                "unit_price": l.unit_price,
                "line_total": l.unit_price * l.quantity,
                "restock": l.restock,
            })
        })
        .collect();
    event(
        event_type,
        o,
        json!({
            "return_id": r.id,
            "reference": crate::return_service::return_ref(r.id),
            "status": r.status.as_str(),
            "reason": r.reason,
            "note": r.note,
            "lines": lines,
            "refund_amount": r.refund_amount,
        }),
    )
}

/// `ordering.order.refunded` for a return's refund: like an admin refund's, plus `return_id` (so
/// the mailer sends the return's mail instead of a second one).
pub fn refunded_by_return(o: &Order, amount: i64, return_id: uuid::Uuid) -> Event {
    let mut e = refunded(o, amount);
    if let Value::Object(map) = &mut e.data {
        map.insert("return_id".into(), json!(return_id));
    }
    e
}
