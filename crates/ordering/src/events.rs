//! The events ordering publishes (through its outbox), built from their contracts payloads.
//!
//! Every `ordering.order.*` event's data has `order_id`, `number`, `user_id` and `currency`;
//! amounts are integers in minor units of `currency`. The subject is the order id.

use contracts::events::ordering::{
    self as payload, OrderCancelled, OrderConfirmed, OrderDelivered, OrderPaid, OrderPaymentFailed,
    OrderPaymentPending, OrderPlaced, OrderRef, OrderRefunded, OrderShipped, PlacedOrder,
};
use platform::events::Event;

use crate::returns::Return;
use crate::store::{Order, OrderLine};

fn order_ref(o: &Order) -> OrderRef {
    OrderRef {
        order_id: o.id.0,
        number: o.number.as_str().to_owned(),
        user_id: o.user_id,
        currency: o.currency.as_str().to_owned(),
    }
}

fn event(o: &Order, payload: &impl contracts::events::Event) -> Event {
    Event::of(o.id.to_string(), payload)
}

fn lines(lines: &[OrderLine]) -> Vec<payload::OrderLine> {
    lines
        .iter()
        .map(|l| payload::OrderLine {
            sku: l.sku.as_str().to_owned(),
            product_id: l.product_id,
            name: l.name.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            line_total: l.line_total,
        })
        .collect()
}

pub fn placed(o: &Order, order_lines: &[OrderLine]) -> Event {
    event(o, &OrderPlaced(placed_order(o, order_lines)))
}

/// The payment did not settle within the checkout request (the provider is still processing, or
/// payments is unreachable): published once, with the same data as `placed`.
pub fn payment_pending(o: &Order, order_lines: &[OrderLine]) -> Event {
    event(o, &OrderPaymentPending(placed_order(o, order_lines)))
}

fn placed_order(o: &Order, order_lines: &[OrderLine]) -> PlacedOrder {
    let a = &o.shipping_address;
    PlacedOrder {
        order: order_ref(o),
        status: o.status.as_str().to_owned(),
        subtotal: o.totals.subtotal,
        shipping: o.totals.shipping,
        tax: o.totals.tax,
        discount: o.totals.discount,
        total: o.totals.total,
        from_cart: o.from_cart,
        lines: lines(order_lines),
        shipping_address: payload::ShippingAddress {
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.as_str().to_owned(),
            phone: a.phone.clone(),
        },
    }
}

pub fn paid(o: &Order) -> Event {
    event(
        o,
        &OrderPaid {
            order: order_ref(o),
            total: o.totals.total,
            payment_id: o.payment_id.clone(),
            invoice_number: o.invoice_number.clone(),
        },
    )
}

pub fn confirmed(o: &Order, order_lines: &[OrderLine]) -> Event {
    event(
        o,
        &OrderConfirmed {
            order: order_ref(o),
            total: o.totals.total,
            lines: lines(order_lines),
        },
    )
}

pub fn payment_failed(o: &Order, reason: &str) -> Event {
    event(
        o,
        &OrderPaymentFailed {
            order: order_ref(o),
            reason: reason.to_owned(),
        },
    )
}

pub fn cancelled(o: &Order) -> Event {
    event(
        o,
        &OrderCancelled {
            order: order_ref(o),
            reason: o.cancel_reason.clone().unwrap_or_else(|| "cancelled".into()),
            refunded_amount: o.refunded,
        },
    )
}

pub fn shipped(o: &Order) -> Event {
    event(
        o,
        &OrderShipped {
            order: order_ref(o),
            carrier: o.carrier.clone(),
            tracking_number: o.tracking_number.clone(),
        },
    )
}

pub fn delivered(o: &Order, order_lines: &[OrderLine]) -> Event {
    // The full lines: catalog reads `sku` (verified purchases), the mail the rest.
    event(
        o,
        &OrderDelivered {
            order: order_ref(o),
            lines: lines(order_lines),
        },
    )
}

pub fn refunded(o: &Order, amount: i64) -> Event {
    event(o, &refund(o, amount, None))
}

/// `ordering.order.refunded` for a return's refund: like an admin refund's, plus `return_id` (so
/// the mailer sends the return's mail instead of a second one).
pub fn refunded_by_return(o: &Order, amount: i64, return_id: uuid::Uuid) -> Event {
    event(o, &refund(o, amount, Some(return_id)))
}

fn refund(o: &Order, amount: i64, return_id: Option<uuid::Uuid>) -> OrderRefunded {
    OrderRefunded {
        order: order_ref(o),
        amount,
        total_refunded: o.refunded,
        full: o.refunded == o.totals.total,
        return_id,
    }
}

/// Builds one kind of `ordering.return.*` event (an instance of [`return_event`]).
pub type ReturnEvent = fn(&Order, &Return) -> Event;

/// `ordering.return.*` (`E`: requested, approved, rejected, received or refunded): the order's
/// fields plus the return, its lines (`restock` once received) and, once fixed, `refund_amount`.
/// The subject is the order id, so a consumer sees an order's events in order.
pub fn return_event<E: contracts::events::Event + From<payload::Return>>(o: &Order, r: &Return) -> Event {
    let data = payload::Return {
        order: order_ref(o),
        return_id: r.id,
        reference: crate::return_service::return_ref(r.id),
        status: r.status.as_str().to_owned(),
        reason: r.reason.clone(),
        note: r.note.clone(),
        lines: r
            .lines
            .iter()
            .map(|l| payload::ReturnLine {
                sku: l.sku.as_str().to_owned(),
                name: l.name.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
                line_total: l.unit_price * l.quantity,
                restock: l.restock,
            })
            .collect(),
        refund_amount: r.refund_amount,
    };
    event(o, &E::from(data))
}
