//! Ordering's storage port. One trait, one SQL implementation generic over the backend
//! (`store::sql`), instantiated for SQLite (embedded) and PostgreSQL (production).
//!
//! Every change of an order goes through [`OrderStore::update`]: the row is locked (PostgreSQL
//! `FOR UPDATE`; SQLite's write lock), the caller's `decide` closure sees the current order and
//! returns the new one with its timeline entries and events, and everything is written in that one
//! transaction. Conditions (expected status, saga step, lease owner) therefore never race.

pub mod sql;

/// The store on `db`, whichever backend it is: how every caller gets one.
pub fn open(db: &platform::db::Db) -> std::sync::Arc<dyn OrderStore> {
    use platform::db::{Db, StorePool};
    use std::sync::Arc;
    match db {
        Db::Sqlite(pool) => Arc::new(sql::SqlStore::new(StorePool::sqlite(pool.clone()))),
        Db::Postgres(pool) => Arc::new(sql::SqlStore::new(StorePool::postgres(pool.clone()))),
    }
}

use platform::events::Event;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Coupon, Currency, OrderId, OrderNumber, OrderStatus, ShippingAddress, Sku, TimelineEntry, Totals};
use crate::returns::{Return, ReturnStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such record")]
    NotFound,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The saga step an order is in (persisted before the step acts, so a crash resumes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStep {
    /// Charge the payment (payments de-duplicates on the key: a retry never charges twice).
    Capture,
    /// Number the paid order's invoice (if not yet), then turn the reservation into a deduction.
    Commit,
    /// Compensation: refund whatever was captured.
    Refund,
    /// Compensation: give the reserved units back.
    Release,
    /// Compensation: put committed units back on hand.
    Restock,
}

impl SagaStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Commit => "commit",
            Self::Refund => "refund",
            Self::Release => "release",
            Self::Restock => "restock",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "capture" => Ok(Self::Capture),
            "commit" => Ok(Self::Commit),
            "refund" => Ok(Self::Refund),
            "release" => Ok(Self::Release),
            "restock" => Ok(Self::Restock),
            other => Err(format!("unknown saga step {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub number: OrderNumber,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub currency: Currency,
    pub totals: Totals,
    pub refunded: i64,
    pub shipping_method: String,
    pub shipping_address: ShippingAddress,
    pub coupon_code: Option<String>,
    pub from_cart: bool,
    pub payment_method: String,
    /// Set before the first call to payments: from then on a payment may exist.
    pub payment_attempted: bool,
    pub payment_id: Option<String>,
    pub payment_brand: Option<String>,
    pub payment_last4: Option<String>,
    pub payment_status: Option<String>,
    pub reservation_id: Option<Uuid>,
    pub reservation_expires_at: Option<OffsetDateTime>,
    pub reservation_committed: bool,
    pub invoice_number: Option<String>,
    pub paid_at: Option<OffsetDateTime>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
    pub saga_step: Option<SagaStep>,
    pub saga_lease_owner: Option<Uuid>,
    pub saga_lease_until: Option<OffsetDateTime>,
    pub saga_attempts: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl Order {
    /// Whether a saga runner holds the order right now.
    pub fn leased_at(&self, now: OffsetDateTime) -> bool {
        self.saga_lease_owner.is_some() && self.saga_lease_until.is_some_and(|until| until > now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub line: i64,
    pub sku: Sku,
    pub product_id: Uuid,
    pub name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub line_total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDetail {
    pub order: Order,
    pub lines: Vec<OrderLine>,
    pub timeline: Vec<TimelineEntry>,
}

/// A checkout's claim on its Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub user_id: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub order_id: OrderId,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This request owns the key.
    New,
    /// Someone used the key first (possibly concurrently): their claim.
    Existing(Claim),
}

/// Builds the events of a change once the final order (with its invoice number) is known.
pub type EventsFn = Box<dyn FnOnce(&Order, &[OrderLine]) -> Vec<Event> + Send>;
/// Builds the events of a change that name the order only.
pub type OrderEventsFn = Box<dyn FnOnce(&Order) -> Vec<Event> + Send>;

/// A new order, written in one transaction with its lines, timeline, coupon use and events.
/// `order.number` is ignored: the store assigns the next number.
pub struct NewOrder {
    pub order: Order,
    pub lines: Vec<OrderLine>,
    pub timeline: Vec<TimelineEntry>,
    pub events: EventsFn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Placed(Box<Order>),
    /// The coupon was used up between the check and the write: nothing was written.
    CouponExhausted,
}

/// The events a change publishes, built once the final order is known. Most name the order
/// only; the store reads the order's lines just for those that list them.
pub enum Emit {
    Nothing,
    Order(OrderEventsFn),
    WithLines(EventsFn),
}

/// What `decide` wants written.
pub struct Mutation {
    /// The new order; every mutable column is written from it.
    pub order: Order,
    pub timeline: Vec<TimelineEntry>,
    /// Mark a pending admin refund row completed with the payments refund id.
    pub complete_refund: Option<(Uuid, String)>,
    pub events: Emit,
}

impl Mutation {
    pub fn new(order: Order) -> Self {
        Self {
            order,
            timeline: Vec::new(),
            complete_refund: None,
            events: Emit::Nothing,
        }
    }
}

/// Why `decide` wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The order is in a state that forbids the change (409 naming the status).
    Conflict(String),
    /// The request's field is invalid for this order (422).
    Invalid { field: String, message: String },
    /// A condition the saga relied on no longer holds (someone else moved the order): skip.
    Stale,
    /// Several fields refused at once: a 409 when `conflict` says why, else a 422.
    Fields {
        conflict: Option<String>,
        errors: Vec<platform::FieldError>,
    },
}

pub type Decide = Box<dyn FnOnce(&Order) -> Result<Mutation, Refusal> + Send>;

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub user_id: Option<Uuid>,
    pub status: Option<OrderStatus>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Orders with an id below this (the cursor).
    pub before: Option<Uuid>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: Uuid,
    pub order_id: OrderId,
    pub key: String,
    pub amount: i64,
    pub reason: String,
    pub actor: String,
    pub completed: bool,
    pub refund_id: Option<String>,
}

/// What a return's `decide` wants written, all in one transaction with the order row locked.
pub struct ReturnMutation {
    /// The order's new state (a refund moves its status and `refunded`); `None` leaves it alone.
    pub order: Option<Order>,
    pub timeline: Vec<TimelineEntry>,
    /// Returns to insert or update (with their lines).
    pub save: Vec<Return>,
    pub events: Vec<Event>,
}

/// Sees the locked order (with lines and timeline) and its returns; chooses the change.
pub type ReturnDecide = Box<dyn FnOnce(&OrderDetail, &[Return]) -> Result<ReturnMutation, Refusal> + Send>;

#[derive(Debug, Clone, Default)]
pub struct ReturnFilter {
    pub status: Option<ReturnStatus>,
    pub user_id: Option<Uuid>,
    /// Returns with an id below this (the cursor).
    pub before: Option<Uuid>,
    pub limit: u32,
}

#[async_trait::async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Records the claim unless the key is taken.
    async fn claim(&self, claim: &Claim) -> StoreResult<Claimed>;
    async fn find_claim(&self, user_id: Uuid, key: &str) -> StoreResult<Option<Claim>>;
    /// Deletes a claim whose request failed before writing its order.
    async fn delete_claim(&self, user_id: Uuid, key: &str) -> StoreResult<()>;
    /// Deletes claims older than `before` whose order never appeared (their request crashed).
    async fn purge_orphan_claims(&self, before: OffsetDateTime) -> StoreResult<u64>;

    async fn place(&self, new: NewOrder, now: OffsetDateTime) -> StoreResult<PlaceOutcome>;
    async fn order(&self, id: OrderId) -> StoreResult<Option<OrderDetail>>;
    /// The order's timeline, oldest first (empty for an unknown order).
    async fn timeline(&self, id: OrderId) -> StoreResult<Vec<TimelineEntry>>;
    async fn list(&self, filter: &OrderFilter) -> StoreResult<Vec<Order>>;
    /// Locks the order, lets `decide` choose the change and writes it; `Ok(Err(..))` when
    /// `decide` refused (nothing written); `Err(NotFound)` when there is no such order.
    async fn update(&self, id: OrderId, now: OffsetDateTime, decide: Decide) -> StoreResult<Result<Order, Refusal>>;
    /// `update` without its locking read, for a caller that holds the order as it last wrote it
    /// (the saga, under its lease): `decide` sees `known`, and the change is written only if the
    /// stored order is still at `known.version`. `None` when nothing was written — the order moved
    /// on or `decide` refused: the caller then decides again with `update`.
    async fn update_known(&self, known: &Order, now: OffsetDateTime, decide: Decide) -> StoreResult<Option<Order>>;
    /// Gives each of `ids` that is paid and has no invoice number yet the next gapless invoice
    /// number of `now`'s year, in the order they were paid, with the event `paid` builds for it:
    /// one transaction that locks those orders, then the year's counter once for all of them.
    /// Answers the orders it numbered (the others were unpaid, already numbered or unknown).
    async fn assign_invoices(
        &self,
        ids: &[OrderId],
        now: OffsetDateTime,
        paid: for<'o> fn(&'o Order) -> Event,
    ) -> StoreResult<Vec<Order>>;
    /// Orders with a saga step whose lease has passed (the recovery loop's candidates).
    async fn due_sagas(&self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<OrderId>>;
    /// Orders in `statuses` not updated since `before`, counted per status.
    async fn stuck(&self, statuses: &[OrderStatus], before: OffsetDateTime) -> StoreResult<Vec<(String, i64)>>;
    /// Adds a note (e.g. a refund request) to the timeline without changing the order.
    async fn add_note(&self, id: OrderId, entry: &TimelineEntry) -> StoreResult<()>;

    async fn refund_record(&self, order: OrderId, key: &str) -> StoreResult<Option<RefundRecord>>;
    /// Inserts a pending refund row; `Some(existing)` if the key was used for this order.
    async fn insert_refund(&self, record: &RefundRecord, now: OffsetDateTime) -> StoreResult<Option<RefundRecord>>;

    /// The order's returns, oldest first, with their lines.
    async fn returns_of(&self, order: OrderId) -> StoreResult<Vec<Return>>;
    async fn return_by_id(&self, id: Uuid) -> StoreResult<Option<Return>>;
    /// Returns newest first (the staff queue).
    async fn list_returns(&self, filter: &ReturnFilter) -> StoreResult<Vec<Return>>;
    /// Locks the order, lets `decide` choose the change to it and its returns, writes it all.
    async fn change_returns(
        &self,
        order: OrderId,
        now: OffsetDateTime,
        decide: ReturnDecide,
    ) -> StoreResult<Result<Option<Order>, Refusal>>;
    /// Returns with a step to run whose lease has passed (the recovery loop's candidates).
    async fn due_returns(&self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<(OrderId, Uuid)>>;

    /// `false` when the code exists.
    async fn create_coupon(&self, coupon: &Coupon) -> StoreResult<bool>;
    async fn coupon(&self, code: &str) -> StoreResult<Option<Coupon>>;
    async fn coupons(&self) -> StoreResult<Vec<Coupon>>;
    /// `None` if unknown.
    async fn deactivate_coupon(&self, code: &str) -> StoreResult<Option<Coupon>>;
}
