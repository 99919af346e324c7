//! Inventory's storage port. One trait, one SQL implementation generic over the backend
//! (`store::sql`), instantiated for SQLite (embedded) and PostgreSQL (production).
//!
//! Every write that changes stock happens in one transaction together with its ledger entries
//! and its outbox events; the no-oversell guarantee lives in conditional `UPDATE`s
//! (`... WHERE on_hand - reserved >= $qty`), never in a read-then-write.

pub mod sql;

/// The store on `db`, whichever backend it is: how every caller gets one.
pub fn open(db: &platform::db::Db) -> std::sync::Arc<dyn InventoryStore> {
    use platform::db::{Db, StorePool};
    use std::sync::Arc;
    match db {
        Db::Sqlite(pool) => Arc::new(sql::SqlStore::new(StorePool::sqlite(pool.clone()))),
        Db::Postgres(pool) => Arc::new(sql::SqlStore::new(StorePool::postgres(pool.clone()))),
    }
}

use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    AdjustmentRefused, Line, MovementKind, ReservationAction, ReservationId, ReservationState, Sku, available,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such record")]
    NotFound,
    #[error("unknown SKU {sku}")]
    UnknownSku { line: usize, sku: Sku },
    #[error("SKU {sku} is discontinued")]
    Discontinued { line: usize, sku: Sku },
    #[error("insufficient stock for SKU {sku}: requested {requested}, available {available}")]
    Insufficient {
        line: usize,
        sku: Sku,
        requested: i64,
        available: i64,
    },
    #[error(transparent)]
    Refused(#[from] AdjustmentRefused),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The idempotency key is already recorded (by a committed or a concurrent request).
    #[error("the idempotency key is already used")]
    KeyTaken,
    /// The row kept changing under a guarded update; the caller may try again.
    #[error("the stock changed during the update")]
    Busy,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    pub sku: Sku,
    pub on_hand: i64,
    pub reserved: i64,
    pub low_stock_threshold: i64,
    pub discontinued: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl Stock {
    pub fn available(&self) -> i64 {
        available(self.on_hand, self.reserved)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub id: Uuid,
    pub sku: Sku,
    pub kind: MovementKind,
    /// Units involved (always positive, except a negative correction).
    pub quantity: i64,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub reason: Option<String>,
    pub reservation_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub occurred_at: OffsetDateTime,
}

/// A manual change of on_hand.
#[derive(Debug, Clone)]
pub struct Adjustment {
    pub sku: Sku,
    pub kind: MovementKind,
    /// As requested (signed for corrections).
    pub quantity: i64,
    /// Signed change of on_hand.
    pub delta: i64,
    pub reason: String,
    pub actor: Option<Uuid>,
    pub now: OffsetDateTime,
    /// Recorded in the same transaction; its `body` is filled with the resulting stock.
    pub idempotency: Option<IdempotencyRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedItem {
    pub sku: Sku,
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub reference: String,
    pub state: ReservationState,
    pub items: Vec<ReservedItem>,
    pub expires_at: OffsetDateTime,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

/// An `Idempotency-Key` as stored: who used it, a digest of the request, and the answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub owner: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub status: u16,
    pub body: String,
}

/// A reservation to create. `reservation` is complete (state active, version 1); `lines` carry
/// the request's line numbers for error messages; `idempotency`, when present, is recorded in the
/// same transaction.
#[derive(Debug, Clone)]
pub struct NewReservation {
    pub reservation: Reservation,
    pub lines: Vec<Line>,
    pub idempotency: Option<IdempotencyRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(Reservation),
    /// The idempotency key was used before (possibly concurrently): this is what was stored.
    /// Nothing was written.
    KeyUsed(IdempotencyRecord),
}

/// Where a reservation may be finished: `action` is only applied if the reservation is still
/// active (and, for commit, not past its deadline; for expire, past it).
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    pub id: ReservationId,
    pub action: ReservationAction,
    pub actor: Option<Uuid>,
    pub now: OffsetDateTime,
}

#[async_trait::async_trait]
pub trait InventoryStore: Send + Sync + 'static {
    async fn stock(&self, sku: &Sku) -> StoreResult<Option<Stock>>;
    async fn stocks(&self, skus: &[Sku]) -> StoreResult<Vec<Stock>>;
    /// SKUs (not discontinued) with available ≤ threshold, by SKU after `after`.
    async fn low_stock(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Stock>>;
    /// How many SKUs are low, and how many there are (for the gauges).
    async fn counts(&self) -> StoreResult<(i64, i64)>;
    /// Every SKU's availability, at most `limit` rows (for the per-SKU gauge of small catalogues).
    async fn availability(&self, limit: u32) -> StoreResult<Vec<(String, i64)>>;

    /// Creates a stock row with 0 units unless one exists; `true` if it was created.
    async fn ensure_stock(&self, sku: &Sku, threshold: i64, now: OffsetDateTime) -> StoreResult<bool>;
    /// Marks a SKU discontinued (no new reservations); `false` if unknown.
    async fn discontinue(&self, sku: &Sku, now: OffsetDateTime) -> StoreResult<bool>;
    async fn adjust(&self, adjustment: &Adjustment) -> StoreResult<Stock>;
    async fn set_threshold(&self, sku: &Sku, threshold: i64, now: OffsetDateTime) -> StoreResult<Stock>;
    /// Restocks every item (creating missing rows with `threshold`) in one transaction.
    async fn restock_batch(
        &self,
        items: &[(Sku, i64)],
        reason: &str,
        threshold: i64,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Newest first, before `before`.
    async fn movements(&self, sku: &Sku, before: Option<Uuid>, limit: u32) -> StoreResult<Vec<Movement>>;

    /// All-or-nothing: every line reserved, or nothing written.
    async fn create_reservation(&self, new: &NewReservation) -> StoreResult<Created>;
    async fn reservation(&self, id: ReservationId) -> StoreResult<Option<Reservation>>;
    async fn idempotency_record(&self, owner: Uuid, key: &str) -> StoreResult<Option<IdempotencyRecord>>;
    /// Applies `finish.action` to an active reservation and moves its units; `None` when the
    /// reservation was not active any more (someone else finished it first) — nothing written.
    async fn finish_reservation(&self, finish: Finish) -> StoreResult<Option<Reservation>>;
    /// Ids of active reservations past their deadline, oldest deadline first.
    async fn due_reservations(&self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<ReservationId>>;
    /// Forgets idempotency records created before `before`.
    async fn purge_idempotency(&self, before: OffsetDateTime) -> StoreResult<u64>;
}
