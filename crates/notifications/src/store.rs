//! Notifications' storage port: the recipients projection, preferences and the delivery log.
//! One trait, one SQL implementation generic over the backend (`store::sql`).

pub mod sql;

/// The store on `db`, whichever backend it is: how every caller gets one.
pub fn open(db: &platform::db::Db) -> std::sync::Arc<dyn NotificationStore> {
    use std::sync::Arc;
    match db {
        platform::db::Db::Sqlite(pool) => Arc::new(sql::SqlStore::sqlite(pool.clone())),
        platform::db::Db::Postgres(pool) => Arc::new(sql::SqlStore::postgres(pool.clone())),
    }
}

use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{DeliveryStatus, Kind, Preferences};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A user's address, as identity last announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
}

/// A rendered message to insert into the log (status pending, due now).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub kind: Kind,
    pub recipient: String,
    pub user_id: Option<Uuid>,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub message_id: String,
    pub created_at: OffsetDateTime,
    pub due_ms: i64,
}

/// One row of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub kind: Kind,
    pub recipient: String,
    pub user_id: Option<Uuid>,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub next_attempt_ms: i64,
    pub message_id: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
}

/// The admin log's filters; `before` is the id of the last row of the previous page.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub to: Option<String>,
    pub event_id: Option<Uuid>,
    pub kind: Option<Kind>,
    pub before: Option<Uuid>,
}

/// A claimed row whose mail went out, to record.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub id: Uuid,
    /// The mail carried a secret (a reset or verification link): its bodies are erased.
    pub scrub: bool,
}

/// The outcome of a failed attempt, to record.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub attempts: u32,
    /// `Failed` (will retry at `next_attempt_ms`) or `Dead`.
    pub status: DeliveryStatus,
    pub next_attempt_ms: i64,
    pub error: &'a str,
    pub now: OffsetDateTime,
}

/// Why an admin retry did not happen.
#[derive(Debug)]
pub enum RetryRefused {
    NotFound,
    NotDead(DeliveryStatus),
    Store(StoreError),
}

#[async_trait::async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Remembers (or updates) a user's address and name.
    async fn upsert_recipient(&self, r: &Recipient, now: OffsetDateTime) -> StoreResult<()>;
    async fn recipient(&self, user_id: Uuid) -> StoreResult<Option<Recipient>>;
    /// The preferences of the user with this address, if one is known and has chosen any.
    async fn preferences_by_email(&self, email: &str) -> StoreResult<Option<Preferences>>;
    async fn preferences(&self, user_id: Uuid) -> StoreResult<Option<Preferences>>;
    async fn save_preferences(&self, user_id: Uuid, p: Preferences, now: OffsetDateTime) -> StoreResult<()>;

    /// Inserts the rows in one transaction, skipping any whose (event, kind, recipient) is already
    /// logged. Returns how many were new.
    async fn insert_deliveries(&self, rows: &[NewDelivery]) -> StoreResult<u64>;
    /// Claims up to `limit` due rows (pending or failed, due by `now_ms`, lease expired) for
    /// `lease_ms`: no other worker claims them meanwhile. Returns the claim token and the rows.
    async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> StoreResult<(Uuid, Vec<Delivery>)>;
    /// Marks claimed rows sent, those `claim` still holds, and answers their ids; a row's
    /// `scrub` erases its bodies. Its attempts go up by one.
    async fn mark_sent(&self, sent: &[Sent], claim: Uuid, now: OffsetDateTime) -> StoreResult<Vec<Uuid>>;
    /// Records a failed attempt of a claimed row (only while `claim` still holds it).
    async fn mark_failed(&self, id: Uuid, claim: Uuid, failure: &Failure<'_>) -> StoreResult<bool>;

    async fn delivery(&self, id: Uuid) -> StoreResult<Option<Delivery>>;
    /// Newest first.
    async fn list(&self, filter: &DeliveryFilter, limit: u32) -> StoreResult<Vec<Delivery>>;
    /// A dead row back to pending, due now, with a fresh attempt budget.
    async fn requeue_dead(&self, id: Uuid, now: OffsetDateTime, now_ms: i64) -> Result<Delivery, RetryRefused>;
    /// Rows still to send (pending or failed).
    async fn unsent_count(&self) -> StoreResult<i64>;
}
