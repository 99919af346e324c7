//! Cart's storage port. One trait, one SQL implementation generic over the backend
//! (`store::sql`), instantiated for SQLite (embedded) and PostgreSQL (production).
//!
//! Every write to a cart starts by updating the cart's row (its activity time), which takes the
//! row lock on PostgreSQL and the database write lock on SQLite: the rest of the transaction reads
//! the lines, applies a domain rule and writes, with no other writer of that cart in between.

pub mod sql;

/// The store on `db`, whichever backend it is: how every caller gets one.
pub fn open(db: &platform::db::Db) -> std::sync::Arc<dyn CartStore> {
    use platform::db::{Db, StorePool};
    use std::sync::Arc;
    match db {
        Db::Sqlite(pool) => Arc::new(sql::SqlStore::new(StorePool::sqlite(pool.clone()))),
        Db::Postgres(pool) => Arc::new(sql::SqlStore::new(StorePool::postgres(pool.clone()))),
    }
}

use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{CartId, Limits, Line, LineRefused, Owner, Sku, Snapshot, TokenHash};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cart vanished (expired, merged) between being found and being written.
    #[error("no such cart")]
    CartGone,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A cart with its lines (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCart {
    pub id: CartId,
    /// `None` for a guest cart.
    pub user_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    /// Last activity.
    pub touched_at: OffsetDateTime,
    pub version: i64,
    pub lines: Vec<Line>,
}

/// Adding units to a line.
#[derive(Debug, Clone)]
pub struct AddItem {
    pub cart: CartId,
    pub sku: Sku,
    pub quantity: i64,
    pub snapshot: Snapshot,
    /// Inventory's figure, read just before.
    pub available: i64,
    pub limits: Limits,
    pub now: OffsetDateTime,
}

/// Setting a line's quantity (≥ 1).
#[derive(Debug, Clone)]
pub struct SetItem {
    pub cart: CartId,
    pub sku: Sku,
    pub quantity: i64,
    pub snapshot: Snapshot,
    pub available: i64,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// Written; the line's quantity now.
    Written(i64),
    /// Refused by a domain rule; nothing written.
    Refused(LineRefused),
    /// `SetItem` on a SKU the cart does not hold; nothing written.
    NoSuchLine,
}

/// Merging a guest cart into a user's.
#[derive(Debug, Clone)]
pub struct Merge {
    pub token: TokenHash,
    pub user: Uuid,
    pub limits: Limits,
    pub now: OffsetDateTime,
    /// Guest carts touched before this are expired (not merged).
    pub guest_cutoff: OffsetDateTime,
    /// A user cart touched before this is expired: replaced by an empty one first.
    pub user_cutoff: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged and the guest cart deleted; `dropped` guest lines did not fit the line limit.
    Merged { lines: usize, dropped: Vec<Sku> },
    /// This user merged this token before: nothing to do.
    AlreadyMerged,
    /// No live guest cart has this token (never existed, expired, or merged by someone else).
    NoSuchCart,
}

#[async_trait::async_trait]
pub trait CartStore: Send + Sync + 'static {
    /// The cart of `owner` with its lines, expired or not.
    async fn find(&self, owner: &Owner) -> StoreResult<Option<StoredCart>>;
    async fn create_guest(&self, id: CartId, token: &TokenHash, now: OffsetDateTime) -> StoreResult<StoredCart>;
    /// The user's cart, created when missing, replaced by an empty one when it was touched before
    /// `cutoff`; `true` when an expired cart was replaced.
    async fn user_cart(
        &self,
        user: Uuid,
        now: OffsetDateTime,
        cutoff: OffsetDateTime,
    ) -> StoreResult<(StoredCart, bool)>;
    /// Records activity on a read, only when the last one is older than `if_before` (so reads
    /// rarely write).
    async fn touch(&self, cart: CartId, now: OffsetDateTime, if_before: OffsetDateTime) -> StoreResult<()>;

    async fn add_item(&self, add: &AddItem) -> StoreResult<LineOutcome>;
    async fn set_item(&self, set: &SetItem) -> StoreResult<LineOutcome>;
    /// `false` when the cart had no such line.
    async fn remove_item(&self, cart: CartId, sku: &Sku, now: OffsetDateTime) -> StoreResult<bool>;
    /// Removes every line.
    async fn clear(&self, cart: CartId, now: OffsetDateTime) -> StoreResult<()>;
    /// Deletes an expired guest cart (found expired on access).
    async fn delete_cart(&self, cart: CartId) -> StoreResult<bool>;

    /// In one transaction: sums the guest cart into the user's (creating it), deletes the guest
    /// cart and remembers the token as merged.
    async fn merge(&self, merge: &Merge) -> StoreResult<MergeOutcome>;

    /// Takes what an order placed at `placed_at` (a whole second, as stored) bought out of
    /// `user`'s cart: lines last changed before that second are removed; lines changed in that
    /// very second (before or after the order: times cannot tell) lose the `ordered` quantity of
    /// their SKU, and go when nothing is left; lines changed later stay. Returns the lines removed.
    async fn clear_ordered(&self, user: Uuid, placed_at: OffsetDateTime, ordered: &[(String, u32)])
    -> StoreResult<u64>;

    /// Deletes up to `limit` expired carts (guest ones touched before `guest_cutoff`, user ones
    /// before `user_cutoff`) and merge records older than `guest_cutoff`. Returns carts deleted.
    async fn delete_expired(
        &self,
        guest_cutoff: OffsetDateTime,
        user_cutoff: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64>;
    /// Carts stored (guest, user).
    async fn counts(&self) -> StoreResult<(i64, i64)>;
}
