//! Payments' storage port. One trait, one SQL implementation generic over the backend
//! (`store::sql`), instantiated for SQLite (embedded) and PostgreSQL (production).
//!
//! Every change of a payment's money happens in one transaction with its ledger entries and its
//! outbox events. Captured and refunded amounts are never stored: they are sums over the ledger.

pub mod sql;

/// The store and the simulated provider's books on `db`, whichever backend it is: how every
/// caller gets them.
pub fn open(
    db: &platform::db::Db,
) -> (
    std::sync::Arc<dyn PaymentStore>,
    std::sync::Arc<dyn crate::provider::SimulatedLedger>,
) {
    use platform::db::{Db, StorePool};
    use std::sync::Arc;
    match db {
        Db::Sqlite(pool) => {
            let s = Arc::new(sql::SqlStore::new(StorePool::sqlite(pool.clone())));
            (s.clone(), s)
        }
        Db::Postgres(pool) => {
            let s = Arc::new(sql::SqlStore::new(StorePool::postgres(pool.clone())));
            (s.clone(), s)
        }
    }
}

use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{CardBrand, Currency, DeclineCode, MethodId, PaymentId, PaymentStatus, RefundId, RefundStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The order already has a payment in flight, authorized or captured.
    #[error("the order already has a live payment")]
    OrderHasLivePayment,
    #[error("the payment cannot be refunded in its state ({})", .0.as_str())]
    NotRefundable(PaymentStatus),
    #[error("the refund exceeds the refundable remainder of {remaining}")]
    RefundExceeds { remaining: i64 },
    #[error("no such record")]
    NotFound,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A saved card: never the number, only what can be shown and the provider's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    pub id: MethodId,
    pub user_id: Uuid,
    pub brand: CardBrand,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: i32,
    pub provider: String,
    pub provider_token: String,
    pub created_at: OffsetDateTime,
    /// Listed on the account for next time (the shopper asked to save it).
    pub saved: bool,
    /// Removed (by its owner, declined on first use, or used once without being saved): no
    /// longer listed nor usable for new payments.
    pub removed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub method_id: MethodId,
    pub amount: i64,
    pub currency: Currency,
    pub capture: bool,
    pub status: PaymentStatus,
    pub brand: CardBrand,
    pub last4: String,
    pub provider: String,
    pub provider_intent: Option<String>,
    pub decline_code: Option<DeclineCode>,
    pub failure_reason: Option<String>,
    pub created_by: Uuid,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
    /// Sum of the ledger's capture entries.
    pub captured_amount: i64,
    /// Sum of the ledger's refund entries (completed refunds).
    pub refunded_amount: i64,
    /// Refunds sent to the provider and not answered yet.
    pub refunds_pending: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub order_id: Uuid,
    pub amount: i64,
    pub currency: Currency,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub provider_ref: Option<String>,
    pub failure_reason: Option<String>,
    pub created_by: Uuid,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a caller's `Idempotency-Key` created (`scope` is `payment` or `refund`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub owner: Uuid,
    pub scope: &'static str,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub resource_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created<T> {
    New(T),
    /// The key was used before (possibly concurrently); nothing was written.
    KeyUsed(IdempotencyRecord),
}

/// The provider's final answer about a processing payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Authorized {
        intent_id: String,
    },
    Captured {
        intent_id: String,
        amount: i64,
    },
    Declined {
        intent_id: Option<String>,
        code: DeclineCode,
    },
    Failed {
        intent_id: Option<String>,
        reason: String,
    },
}

impl Settlement {
    pub fn status(&self) -> PaymentStatus {
        match self {
            Self::Authorized { .. } => PaymentStatus::Authorized,
            Self::Captured { .. } => PaymentStatus::Captured,
            Self::Declined { .. } => PaymentStatus::Declined,
            Self::Failed { .. } => PaymentStatus::Failed,
        }
    }
}

/// What became of a webhook event.
/// A refund the provider reports (`charge.refunded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefundReport {
    /// The provider's refund id.
    pub provider_ref: String,
    pub amount: i64,
    /// Our refund, when Emporium asked for it (from the idempotency key it was sent with).
    pub ours: Option<RefundId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookApplied {
    /// The event id was seen before: nothing done.
    Duplicate,
    /// The payment was processing and is now settled.
    Settled(Box<Payment>),
    /// The payment was already settled (by the provider's direct answer, or an earlier event).
    AlreadySettled,
}

#[async_trait::async_trait]
pub trait PaymentStore: Send + Sync + 'static {
    async fn insert_method(&self, method: &Method) -> StoreResult<()>;
    async fn method(&self, id: MethodId) -> StoreResult<Option<Method>>;
    /// A user's saved methods that were not removed, newest first.
    async fn methods_of(&self, user_id: Uuid) -> StoreResult<Vec<Method>>;
    /// Removes `user_id`'s method `id`; false when there is no such live method of theirs.
    async fn remove_method(&self, id: MethodId, user_id: Uuid, now: OffsetDateTime) -> StoreResult<bool>;

    async fn idempotency_record(&self, owner: Uuid, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>>;

    /// Records a processing payment and its idempotency key in one transaction.
    /// `Err(OrderHasLivePayment)` when the order has a payment processing, authorized or captured.
    async fn create_payment(&self, payment: &Payment, key: &IdempotencyRecord) -> StoreResult<Created<Payment>>;
    async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>>;
    async fn payments_of_order(&self, order_id: Uuid) -> StoreResult<Vec<Payment>>;
    /// Settles a processing payment (status, ledger entries, events); `None` if it was not
    /// processing any more (someone settled it first) — nothing written.
    async fn settle(&self, id: PaymentId, settlement: &Settlement, now: OffsetDateTime)
    -> StoreResult<Option<Payment>>;
    /// Marks an authorized payment captured (ledger entry, event); `None` if it was not authorized.
    async fn capture_authorized(
        &self,
        id: PaymentId,
        intent_id: &str,
        amount: i64,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Payment>>;
    /// Records a webhook event id and, unless seen before, settles the payment with it.
    async fn apply_webhook(
        &self,
        event_id: &str,
        provider: &str,
        event_type: &str,
        payment: PaymentId,
        settlement: &Settlement,
        now: OffsetDateTime,
    ) -> StoreResult<WebhookApplied>;

    /// Records a pending refund if it fits in what remains refundable (checked under the payment's
    /// lock), with its idempotency key.
    /// The payment whose provider intent is `intent_id`.
    async fn payment_by_intent(&self, intent_id: &str) -> StoreResult<Option<Payment>>;
    /// Applies a provider's refund report once per event id (`None`: seen before), in one
    /// transaction: each reported refund not yet recorded either completes our pending refund it
    /// names, or is recorded as a refund made at the provider. Returns the refunds completed now.
    async fn apply_provider_refunds(
        &self,
        event_id: &str,
        provider: &str,
        event_type: &str,
        payment: PaymentId,
        reports: &[ProviderRefundReport],
        now: OffsetDateTime,
    ) -> StoreResult<Option<Vec<Refund>>>;

    async fn create_refund(&self, refund: &Refund, key: &IdempotencyRecord) -> StoreResult<Created<Refund>>;
    async fn refund(&self, id: RefundId) -> StoreResult<Option<Refund>>;
    async fn refunds_of(&self, payment: PaymentId) -> StoreResult<Vec<Refund>>;
    /// Completes (`Ok(provider ref)`: ledger entry, event) or fails (`Err(reason)`) a pending
    /// refund; `None` if it was not pending any more.
    async fn finish_refund(
        &self,
        id: RefundId,
        outcome: Result<String, String>,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Refund>>;

    /// Payments still processing, last touched before `before` (for the reconciler).
    async fn stale_payments(&self, before: OffsetDateTime, limit: u32) -> StoreResult<Vec<PaymentId>>;
    /// Refunds still pending, last touched before `before`.
    async fn stale_refunds(&self, before: OffsetDateTime, limit: u32) -> StoreResult<Vec<RefundId>>;
    /// Forgets idempotency records created before `before`.
    async fn purge_idempotency(&self, before: OffsetDateTime) -> StoreResult<u64>;
}
