//! The events payments publishes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Event;

/// A payment was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCaptured {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
}

impl Event for PaymentCaptured {
    const TYPE: &'static str = "payments.payment.captured";
}

/// The card was declined or the provider failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    /// The decline code (`card_declined`, `insufficient_funds`) or failure reason (`processing_error`).
    pub reason: String,
    /// `declined` or `failed`.
    pub status: String,
}

impl Event for PaymentFailed {
    const TYPE: &'static str = "payments.payment.failed";
}

/// A refund went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundCompleted {
    pub payment_id: Uuid,
    pub refund_id: Uuid,
    pub order_id: Uuid,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
}

impl Event for RefundCompleted {
    const TYPE: &'static str = "payments.refund.completed";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::tests::wire_form;

    const PAYMENT: &str = "0192b1c0-0000-7000-8000-000000000005";
    const ORDER: &str = "0192b1c0-0000-7000-8000-000000000006";

    #[test]
    fn payment_events() {
        let captured: PaymentCaptured =
            wire_form(json!({"payment_id": PAYMENT, "order_id": ORDER, "amount": 2875, "currency": "EUR"}));
        assert_eq!(captured.amount, 2875);
        let failed: PaymentFailed = wire_form(
            json!({"payment_id": PAYMENT, "order_id": ORDER, "reason": "card_declined", "status": "declined"}),
        );
        assert_eq!(failed.status, "declined");
        let refund: RefundCompleted = wire_form(json!({"payment_id": PAYMENT,
            "refund_id": "0192b1c0-0000-7000-8000-000000000007", "order_id": ORDER, "amount": 500, "currency": "EUR"}));
        assert_eq!(refund.amount, 500);
    }
}
