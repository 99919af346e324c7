//! What the API answers with.

use platform::money::MoneyView;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{CardBrand, DeclineCode, PaymentStatus, RefundStatus};
use crate::store::{Method, Payment, Refund};

/// A saved card: brand, last four digits and expiry only.
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodView {
    #[schema(example = "pm_0192f0c4-7d1e-7c3a-9f51-3c2b1a0e9d88")]
    pub id: String,
    pub brand: CardBrand,
    #[schema(example = "4242")]
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

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

#[derive(Debug, Serialize, ToSchema)]
pub struct MethodList {
    pub items: Vec<MethodView>,
}

/// A payment. `captured_amount` and `refunded_amount` are sums over the payment's ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: PaymentStatus,
    pub amount: MoneyView,
    /// ISO 4217 currency of every amount of the payment.
    #[schema(example = "EUR")]
    pub currency: String,
    pub capture: bool,
    pub captured_amount: MoneyView,
    pub refunded_amount: MoneyView,
    /// captured − refunded − refunds still in flight.
    pub refundable_amount: MoneyView,
    pub payment_method: String,
    pub brand: CardBrand,
    pub last4: String,
    /// Present when `status` is `declined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<DeclineCode>,
    /// Present when `status` is `failed` (e.g. `processing_error`: a new attempt may succeed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// True for `failed` payments: retry with a new Idempotency-Key.
    pub retryable: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub items: Vec<PaymentView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub status: RefundStatus,
    pub amount: MoneyView,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundList {
    pub items: Vec<RefundView>,
}

/// The answer to a webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// `applied`, `duplicate` (event seen before), `already_settled` or `ignored`.
    pub result: String,
}
