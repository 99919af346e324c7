//! What the API answers with: `contracts::api::payments`'s views, built from the store's
//! records here.

use platform::money::MoneyView;

use crate::domain::{PaymentStatus, StatusRules};
use crate::store::{Method, Payment, Refund};

pub use contracts::api::payments::{
    MethodList, MethodView, PaymentList, PaymentView, RefundList, RefundView, WebhookAck,
};

impl From<&Method> for MethodView {
    fn from(m: &Method) -> Self {
        Self {
            id: m.id.to_string(),
            brand: m.brand,
            last4: m.last4.clone(),
            exp_month: m.exp_month,
            exp_year: m.exp_year,
            created_at: m.created_at,
        }
    }
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        let money = |amount| MoneyView::new(amount, p.currency.to_string());
        Self {
            id: p.id.0,
            order_id: p.order_id,
            customer_id: p.customer_id,
            status: p.status.reported(p.captured_amount, p.refunded_amount),
            amount: money(p.amount),
            currency: p.currency.to_string(),
            capture: p.capture,
            captured_amount: money(p.captured_amount),
            refunded_amount: money(p.refunded_amount),
            refundable_amount: money(crate::domain::refundable(
                p.captured_amount,
                p.refunded_amount + p.refunds_pending,
            )),
            payment_method: p.method_id.to_string(),
            brand: p.brand,
            last4: p.last4.clone(),
            decline_code: p.decline_code,
            failure_reason: p.failure_reason.clone(),
            retryable: p.status == PaymentStatus::Failed,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        Self {
            id: r.id.0,
            payment_id: r.payment_id.0,
            order_id: r.order_id,
            status: r.status,
            amount: MoneyView::new(r.amount, r.currency.to_string()),
            currency: r.currency.to_string(),
            reason: r.reason.clone(),
            failure_reason: r.failure_reason.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
