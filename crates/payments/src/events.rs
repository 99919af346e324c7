//! The events payments publishes through its outbox (it consumes none), built from their
//! contracts payloads.

use contracts::events::payments::{PaymentCaptured, PaymentFailed, RefundCompleted};
use platform::events::Event;

use crate::store::{Payment, Refund};

pub fn payment_captured(p: &Payment) -> Event {
    Event::of(
        p.id.to_string(),
        &PaymentCaptured {
            payment_id: p.id.0,
            order_id: p.order_id,
            amount: p.captured_amount,
            currency: p.currency.to_string(),
        },
    )
}

pub fn payment_failed(p: &Payment) -> Event {
    let reason = p
        .decline_code
        .map(|c| c.as_str().to_owned())
        .or_else(|| p.failure_reason.clone())
        .unwrap_or_else(|| "unknown".into());
    Event::of(
        p.id.to_string(),
        &PaymentFailed {
            payment_id: p.id.0,
            order_id: p.order_id,
            reason,
            status: p.status.as_str().to_owned(),
        },
    )
}

pub fn refund_completed(r: &Refund) -> Event {
    Event::of(
        r.payment_id.to_string(),
        &RefundCompleted {
            payment_id: r.payment_id.0,
            refund_id: r.id.0,
            order_id: r.order_id,
            amount: r.amount,
            currency: r.currency.to_string(),
        },
    )
}
