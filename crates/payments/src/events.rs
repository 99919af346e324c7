//! The events payments publishes through its outbox (it consumes none).

use platform::events::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CONTEXT;
use crate::store::{Payment, Refund};

pub const PAYMENT_CAPTURED: &str = "payments.payment.captured";
pub const PAYMENT_FAILED: &str = "payments.payment.failed";
pub const REFUND_COMPLETED: &str = "payments.refund.completed";

/// `payments.payment.captured` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCaptured {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
}

/// `payments.payment.failed` data: the card was declined or the provider failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    /// The decline code (`card_declined`, `insufficient_funds`) or failure reason (`processing_error`).
    pub reason: String,
    /// `declined` or `failed`.
    pub status: String,
}

/// `payments.refund.completed` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundCompleted {
    pub payment_id: Uuid,
    pub refund_id: Uuid,
    pub order_id: Uuid,
    pub amount: i64,
    pub currency: String,
}

pub fn payment_captured(p: &Payment) -> Event {
    Event::new(
        CONTEXT,
        PAYMENT_CAPTURED,
        p.id.to_string(),
        PaymentCaptured {
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
    Event::new(
        CONTEXT,
        PAYMENT_FAILED,
        p.id.to_string(),
        PaymentFailed {
            payment_id: p.id.0,
            order_id: p.order_id,
            reason,
            status: p.status.as_str().to_owned(),
        },
    )
}

pub fn refund_completed(r: &Refund) -> Event {
    Event::new(
        CONTEXT,
        REFUND_COMPLETED,
        r.payment_id.to_string(),
        RefundCompleted {
            payment_id: r.payment_id.0,
            refund_id: r.id.0,
            order_id: r.order_id,
            amount: r.amount,
            currency: r.currency.to_string(),
        },
    )
}
