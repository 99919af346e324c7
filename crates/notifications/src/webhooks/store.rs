//! Outbound webhooks' storage port, and its SQL implementation on notifications' [`SqlStore`]
//! (one text for SQLite and PostgreSQL). Messages are claimed with a lease and a claim token like
//! the mail delivery log, so replicas deliver each attempt once; results are recorded only while
//! the claim holds.

use platform::db::RowsAffected;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::domain::{EventFilter, MessageStatus};
use crate::store::sql::SqlStore;
use crate::store::{StoreError, StoreResult};

/// The store on `db`, whichever backend it is.
pub fn open(db: &platform::db::Db) -> std::sync::Arc<dyn WebhookStore> {
    use std::sync::Arc;
    match db {
        platform::db::Db::Sqlite(pool) => Arc::new(SqlStore::sqlite(pool.clone())),
        platform::db::Db::Postgres(pool) => Arc::new(SqlStore::postgres(pool.clone())),
    }
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<OffsetDateTime>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failure_streak: u32,
    pub streak_started_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Endpoint {
    /// The secrets that sign a delivery at `now`: the current one, and the previous one during
    /// its overlap window.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && until > now
        {
            secrets.push(previous);
        }
        secrets
    }

    /// Whether this endpoint takes events of `event_type`: enabled, and one of its patterns
    /// matches.
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled && EventFilter::parse(&self.event_types).is_ok_and(|f| f.matches(event_type))
    }
}

/// A message to deliver (one event for one endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: String,
    pub status: MessageStatus,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// One delivery attempt as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: Uuid,
    pub message_id: Uuid,
    pub attempted_at: OffsetDateTime,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// What a recorded attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(i64),
    GiveUp,
}

/// The endpoint's failure run after an attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    pub failures: u32,
    pub started_at: Option<OffsetDateTime>,
}

#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()>;
    async fn endpoints(&self) -> StoreResult<Vec<Endpoint>>;
    async fn endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>>;
    /// Saves url, description, event types, enabled (re-enabling clears the failure run and the
    /// reason). `false` when there is no such endpoint.
    async fn update_endpoint(&self, e: &Endpoint) -> StoreResult<bool>;
    async fn delete_endpoint(&self, id: Uuid) -> StoreResult<bool>;
    /// Replaces the secret; the old one keeps signing until `previous_until`.
    async fn rotate_secret(
        &self,
        id: Uuid,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Switches an enabled endpoint off and fails its pending messages; `true` if this call did.
    async fn disable_endpoint(&self, id: Uuid, reason: &str, now: OffsetDateTime) -> StoreResult<bool>;

    /// One message per endpoint for the event (a redelivered event adds nothing). Returns how
    /// many were new.
    async fn enqueue(&self, messages: &[Message]) -> StoreResult<u64>;
    /// When the earliest pending message is due (ms since the epoch), if any is.
    async fn next_due_ms(&self) -> StoreResult<Option<i64>>;
    /// Claims up to `limit` due messages of enabled endpoints for `lease_ms`.
    async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> StoreResult<(Uuid, Vec<Message>)>;
    /// Logs an attempt of a claimed message and moves it on; `None` when the claim was lost.
    async fn record_attempt(
        &self,
        message: &Message,
        claim: Uuid,
        attempt: &Attempt,
        next: NextStep,
    ) -> StoreResult<Option<Streak>>;
    /// An endpoint's messages, newest first (`before`: the last id of the previous page).
    async fn messages(
        &self,
        endpoint: Uuid,
        status: Option<MessageStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    async fn message(&self, endpoint: Uuid, id: Uuid) -> StoreResult<Option<Message>>;
    async fn attempts(&self, message: Uuid) -> StoreResult<Vec<Attempt>>;
    /// Sends a message again from now, with a fresh attempt budget (its log is kept).
    async fn replay(&self, endpoint: Uuid, id: Uuid, now_ms: i64, now: OffsetDateTime) -> StoreResult<bool>;
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret, previous_secret_until, \
    enabled, disabled_reason, failure_streak, streak_started_at, created_at, updated_at";
const MESSAGE_COLUMNS: &str = "id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, \
    last_status, last_error, created_at, updated_at, delivered_at";

#[derive(FromRow)]
struct EndpointRow {
    id: Uuid,
    url: String,
    description: String,
    event_types: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<OffsetDateTime>,
    enabled: bool,
    disabled_reason: Option<String>,
    failure_streak: i64,
    streak_started_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = StoreError;
    fn try_from(r: EndpointRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: r.id,
            url: r.url,
            description: r.description,
            event_types: serde_json::from_str(&r.event_types)
                .map_err(|e| StoreError::Corrupt(format!("webhook event types: {e}")))?,
            secret: r.secret,
            previous_secret: r.previous_secret,
            previous_secret_until: r.previous_secret_until,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            failure_streak: u32::try_from(r.failure_streak).unwrap_or(0),
            streak_started_at: r.streak_started_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(FromRow)]
struct MessageRow {
    id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    event_type: String,
    payload: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    delivered_at: Option<OffsetDateTime>,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: r.id,
            endpoint_id: r.endpoint_id,
            event_id: r.event_id,
            event_type: r.event_type,
            payload: r.payload,
            status: MessageStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("webhook message status {:?}", r.status)))?,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            next_attempt_ms: r.next_attempt_at,
            last_status: r.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            delivered_at: r.delivered_at,
        })
    }
}

#[derive(FromRow)]
struct AttemptRow {
    id: Uuid,
    message_id: Uuid,
    attempted_at: OffsetDateTime,
    status_code: Option<i64>,
    latency_ms: i64,
    error: Option<String>,
}

#[derive(FromRow)]
struct StreakRow {
    failure_streak: i64,
    streak_started_at: Option<OffsetDateTime>,
}

fn all<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

platform::sql_store! {
#[async_trait::async_trait]
impl WebhookStore for SqlStore<DB> {
    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret, enabled, failure_streak,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
        )
        .bind(e.id)
        .bind(e.url.as_str())
        .bind(e.description.as_str())
        .bind(serde_json::to_string(&e.event_types).unwrap_or_else(|_| "[]".into()))
        .bind(e.secret.as_str())
        .bind(e.enabled)
        .bind(e.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let rows: Vec<EndpointRow> = sqlx::query_as(sql(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id LIMIT 500"
        )))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>> {
        let row: Option<EndpointRow> = sqlx::query_as(sql(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Endpoint::try_from).transpose()
    }

    async fn update_endpoint(&self, e: &Endpoint) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, enabled = $5,
                 disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END,
                 failure_streak = CASE WHEN $5 AND NOT enabled THEN 0 ELSE failure_streak END,
                 streak_started_at = CASE WHEN $5 AND NOT enabled THEN NULL ELSE streak_started_at END,
                 updated_at = $6
             WHERE id = $1",
        )
        .bind(e.id)
        .bind(e.url.as_str())
        .bind(e.description.as_str())
        .bind(serde_json::to_string(&e.event_types).unwrap_or_else(|_| "[]".into()))
        .bind(e.enabled)
        .bind(e.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_endpoint(&self, id: Uuid) -> StoreResult<bool> {
        // Children first: SQLite enforces no cascade unless told to.
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE message_id IN (SELECT id FROM webhook_messages WHERE endpoint_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_messages WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn rotate_secret(
        &self,
        id: Uuid,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $3, secret = $2,
                 updated_at = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(secret)
        .bind(previous_until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn disable_endpoint(&self, id: Uuid, reason: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = $2, disabled_reason = $3, updated_at = $4 WHERE id = $1 AND enabled",
        )
        .bind(id)
        .bind(false)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE webhook_messages SET status = 'failed', last_error = $2, updated_at = $3, lease_until = 0,
                 claim_token = NULL
             WHERE endpoint_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind("the endpoint was disabled before this message was delivered; replay it once re-enabled")
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn enqueue(&self, messages: &[Message]) -> StoreResult<u64> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        let mut inserted = 0;
        for m in messages {
            let r = sqlx::query(
                "INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, payload, status, attempts,
                     next_attempt_at, lease_until, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, 0, $7, $7)
                 ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            )
            .bind(m.id)
            .bind(m.endpoint_id)
            .bind(m.event_id)
            .bind(m.event_type.as_str())
            .bind(m.payload.as_str())
            .bind(m.next_attempt_ms)
            .bind(m.created_at)
            .execute(&mut *tx)
            .await?;
            inserted += r.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn next_due_ms(&self) -> StoreResult<Option<i64>> {
        let due: Option<i64> =
            sqlx::query_scalar("SELECT min(next_attempt_at) FROM webhook_messages WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(due)
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> StoreResult<(Uuid, Vec<Message>)> {
        let claim = Uuid::now_v7();
        let statement = format!(
            "UPDATE webhook_messages SET claim_token = $1, lease_until = $2, updated_at = $3
             WHERE id IN (SELECT m.id FROM webhook_messages m
                          WHERE m.status = 'pending' AND m.next_attempt_at <= $4 AND m.lease_until <= $4
                            AND m.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled)
                          ORDER BY m.next_attempt_at, m.id LIMIT $5{})
             RETURNING {MESSAGE_COLUMNS}",
            self.skip_locked
        );
        let rows: Vec<MessageRow> = sqlx::query_as(sql(statement))
            .bind(claim)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok((claim, all(rows)?))
    }

    async fn record_attempt(
        &self,
        message: &Message,
        claim: Uuid,
        attempt: &Attempt,
        next: NextStep,
    ) -> StoreResult<Option<Streak>> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        let (status, next_ms, delivered_at) = match next {
            NextStep::Delivered => (
                MessageStatus::Delivered,
                message.next_attempt_ms,
                Some(attempt.attempted_at),
            ),
            NextStep::RetryAt(ms) => (MessageStatus::Pending, ms, None),
            NextStep::GiveUp => (MessageStatus::Failed, message.next_attempt_ms, None),
        };
        let updated = sqlx::query(
            "UPDATE webhook_messages SET status = $3, attempts = attempts + 1, next_attempt_at = $4, last_status = $5,
                 last_error = $6, updated_at = $7, delivered_at = COALESCE($8, delivered_at), lease_until = 0,
                 claim_token = NULL
             WHERE id = $1 AND claim_token = $2",
        )
        .bind(message.id)
        .bind(claim)
        .bind(status.as_str())
        .bind(next_ms)
        .bind(attempt.status_code.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(attempt.attempted_at)
        .bind(delivered_at)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (id, message_id, attempted_at, status_code, latency_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(attempt.id)
        .bind(message.id)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code.map(i64::from))
        .bind(attempt.latency_ms)
        .bind(attempt.error.as_deref())
        .execute(&mut *tx)
        .await?;
        if next == NextStep::Delivered {
            sqlx::query("UPDATE webhook_endpoints SET failure_streak = 0, streak_started_at = NULL WHERE id = $1")
                .bind(message.endpoint_id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "UPDATE webhook_endpoints SET failure_streak = failure_streak + 1,
                     streak_started_at = COALESCE(streak_started_at, $2)
                 WHERE id = $1",
            )
            .bind(message.endpoint_id)
            .bind(attempt.attempted_at)
            .execute(&mut *tx)
            .await?;
        }
        let streak: Option<StreakRow> =
            sqlx::query_as("SELECT failure_streak, streak_started_at FROM webhook_endpoints WHERE id = $1")
                .bind(message.endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(Some(streak.map_or(
            Streak {
                failures: 0,
                started_at: None,
            },
            |s| Streak {
                failures: u32::try_from(s.failure_streak).unwrap_or(0),
                started_at: s.streak_started_at,
            },
        )))
    }

    async fn messages(
        &self,
        endpoint: Uuid,
        status: Option<MessageStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows: Vec<MessageRow> = sqlx::query_as(sql(format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_messages
             WHERE endpoint_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(endpoint)
        .bind(status.map(MessageStatus::as_str))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn message(&self, endpoint: Uuid, id: Uuid) -> StoreResult<Option<Message>> {
        let row: Option<MessageRow> = sqlx::query_as(sql(format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE endpoint_id = $1 AND id = $2"
        )))
        .bind(endpoint)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Message::try_from).transpose()
    }

    async fn attempts(&self, message: Uuid) -> StoreResult<Vec<Attempt>> {
        let rows: Vec<AttemptRow> = sqlx::query_as(
            "SELECT id, message_id, attempted_at, status_code, latency_ms, error FROM webhook_attempts
             WHERE message_id = $1 ORDER BY id LIMIT 200",
        )
        .bind(message)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Attempt {
                id: r.id,
                message_id: r.message_id,
                attempted_at: r.attempted_at,
                status_code: r.status_code.and_then(|s| u16::try_from(s).ok()),
                latency_ms: r.latency_ms,
                error: r.error,
            })
            .collect())
    }

    async fn replay(&self, endpoint: Uuid, id: Uuid, now_ms: i64, now: OffsetDateTime) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE webhook_messages SET status = 'pending', attempts = 0, next_attempt_at = $3, lease_until = 0,
                 claim_token = NULL, updated_at = $4
             WHERE endpoint_id = $1 AND id = $2",
        )
        .bind(endpoint)
        .bind(id)
        .bind(now_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(event_types: &[&str], enabled: bool) -> Endpoint {
        Endpoint {
            id: Uuid::now_v7(),
            url: "https://hooks.example.com/in".into(),
            description: String::new(),
            event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
            secret: "s".into(),
            previous_secret: None,
            previous_secret_until: None,
            enabled,
            disabled_reason: None,
            failure_streak: 0,
            streak_started_at: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_endpoint_wants_the_types_its_patterns_match_while_enabled() {
        let orders = endpoint(&["ordering.order.*"], true);
        assert!(orders.wants("ordering.order.confirmed"));
        assert!(!orders.wants("inventory.stock.changed"));
        assert!(endpoint(&["#"], true).wants("inventory.stock.changed"));
        assert!(!endpoint(&["#"], false).wants("ordering.order.confirmed"));
    }
}
