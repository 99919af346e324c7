//! The SQL implementation of [`NotificationStore`], written once for SQLite and PostgreSQL.
//! Every statement is parameterised; the only per-backend text is PostgreSQL's `FOR UPDATE SKIP
//! LOCKED` in the claim.
//!
//! Concurrency: a worker claims due rows with one `UPDATE ... WHERE id IN (SELECT ... )` that sets
//! a lease and a claim token. On PostgreSQL the inner `SELECT ... FOR UPDATE SKIP LOCKED` makes
//! replicas claim disjoint rows without waiting on each other; on SQLite the statement holds the
//! database's write lock. Results are recorded only while the claim token still matches, so a
//! worker whose lease ran out cannot overwrite the outcome of the one that took over.

use platform::db::RowsAffected;
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Postgres, Sqlite, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Delivery, DeliveryFilter, Failure, NewDelivery, NotificationStore, Recipient, RetryRefused, Sent, StoreError,
    StoreResult,
};
use crate::domain::{DeliveryStatus, Preferences};

pub struct SqlStore<DB: platform::db::Backend> {
    pub(crate) pool: DB::Pool,
    /// Appended to the claim's inner `SELECT` (PostgreSQL).
    pub(crate) skip_locked: &'static str,
}

impl SqlStore<Sqlite> {
    pub fn sqlite(pool: platform::db::SqliteDb) -> Self {
        Self { pool, skip_locked: "" }
    }
}

impl SqlStore<Postgres> {
    pub fn postgres(pool: Pool<Postgres>) -> Self {
        Self {
            pool,
            skip_locked: " FOR UPDATE SKIP LOCKED",
        }
    }
}

const COLUMNS: &str = "id, event_id, event_type, kind, recipient, user_id, subject, text_body, html_body, status, \
                       attempts, last_error, next_attempt_at, message_id, created_at, updated_at, sent_at";

#[derive(FromRow)]
struct DeliveryRow {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    kind: String,
    recipient: String,
    user_id: Option<Uuid>,
    subject: String,
    text_body: String,
    html_body: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    next_attempt_at: i64,
    message_id: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    sent_at: Option<OffsetDateTime>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, Self::Error> {
        Ok(Delivery {
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            kind: r.kind.parse().map_err(StoreError::Corrupt)?,
            recipient: r.recipient,
            user_id: r.user_id,
            subject: r.subject,
            text_body: r.text_body,
            html_body: r.html_body,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            attempts: u32::try_from(r.attempts).map_err(|_| StoreError::Corrupt("negative attempts".into()))?,
            last_error: r.last_error,
            next_attempt_ms: r.next_attempt_at,
            message_id: r.message_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            sent_at: r.sent_at,
        })
    }
}

fn deliveries(rows: Vec<DeliveryRow>) -> StoreResult<Vec<Delivery>> {
    rows.into_iter().map(Delivery::try_from).collect()
}

#[derive(FromRow)]
struct PreferencesRow {
    marketing: bool,
    low_stock_alerts: bool,
}

impl From<PreferencesRow> for Preferences {
    fn from(r: PreferencesRow) -> Self {
        Preferences {
            marketing: r.marketing,
            low_stock_alerts: r.low_stock_alerts,
        }
    }
}

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

#[async_trait::async_trait]
impl<DB> NotificationStore for SqlStore<DB>
where
    DB: platform::db::Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c DB::Pool: Executor<'c, Database = DB>,
    for<'q> DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> OffsetDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<OffsetDateTime>: Decode<'q, DB>,
    for<'q> &'q str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
{
    async fn upsert_recipient(&self, r: &Recipient, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_recipients (user_id, email, name, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name,
                                                 updated_at = excluded.updated_at",
        )
        .bind(r.user_id)
        .bind(r.email.as_str())
        .bind(r.name.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recipient(&self, user_id: Uuid) -> StoreResult<Option<Recipient>> {
        let row: Option<(Uuid, String, String)> =
            sqlx::query_as("SELECT user_id, email, name FROM notification_recipients WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(user_id, email, name)| Recipient { user_id, email, name }))
    }

    async fn preferences_by_email(&self, email: &str) -> StoreResult<Option<Preferences>> {
        let row: Option<PreferencesRow> = sqlx::query_as(
            "SELECT p.marketing, p.low_stock_alerts FROM notification_recipients r
             JOIN notification_preferences p ON p.user_id = r.user_id
             WHERE lower(r.email) = lower($1) ORDER BY p.updated_at DESC LIMIT 1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Preferences::from))
    }

    async fn preferences(&self, user_id: Uuid) -> StoreResult<Option<Preferences>> {
        let row: Option<PreferencesRow> =
            sqlx::query_as("SELECT marketing, low_stock_alerts FROM notification_preferences WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(Preferences::from))
    }

    async fn save_preferences(&self, user_id: Uuid, p: Preferences, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_preferences (user_id, marketing, low_stock_alerts, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE SET marketing = excluded.marketing,
                 low_stock_alerts = excluded.low_stock_alerts, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(p.marketing)
        .bind(p.low_stock_alerts)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_deliveries(&self, rows: &[NewDelivery]) -> StoreResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        // One statement, so no transaction: all of an event's mails or none. A mail already
        // logged (a redelivered event, another replica's race) is skipped by whichever unique
        // key it repeats: per address, or per user (migration 0004).
        let text = format!(
            "INSERT INTO notification_deliveries (id, event_id, event_type, kind, recipient, user_id, subject,
                 text_body, html_body, status, attempts, next_attempt_at, lease_until, message_id, created_at,
                 updated_at)
             VALUES {} ON CONFLICT DO NOTHING",
            platform::db::values_rows(rows.len(), 16)
        );
        let mut query = sqlx::query(sql(text));
        for d in rows {
            query = query
                .bind(d.id)
                .bind(d.event_id)
                .bind(d.event_type.as_str())
                .bind(d.kind.as_str())
                .bind(d.recipient.as_str())
                .bind(d.user_id)
                .bind(d.subject.as_str())
                .bind(d.text_body.as_str())
                .bind(d.html_body.as_str())
                .bind(DeliveryStatus::Pending.as_str())
                .bind(0_i64)
                .bind(d.due_ms)
                .bind(0_i64)
                .bind(d.message_id.as_str())
                .bind(d.created_at)
                .bind(d.created_at);
        }
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> StoreResult<(Uuid, Vec<Delivery>)> {
        let claim = Uuid::now_v7();
        let statement = format!(
            "UPDATE notification_deliveries SET claim_token = $1, lease_until = $2, updated_at = $3
             WHERE id IN (SELECT id FROM notification_deliveries
                          WHERE status IN ('pending', 'failed') AND next_attempt_at <= $4 AND lease_until <= $4
                          ORDER BY next_attempt_at, id LIMIT $5{})
             RETURNING {COLUMNS}",
            self.skip_locked
        );
        let rows: Vec<DeliveryRow> = sqlx::query_as(sql(statement))
            .bind(claim)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok((claim, deliveries(rows)?))
    }

    async fn mark_sent(&self, sent: &[Sent], claim: Uuid, now: OffsetDateTime) -> StoreResult<Vec<Uuid>> {
        let mut recorded = Vec::with_capacity(sent.len());
        // One statement for the rows whose bodies stay, one for those that carried a secret.
        for scrub in [false, true] {
            let ids: Vec<Uuid> = sent.iter().filter(|s| s.scrub == scrub).map(|s| s.id).collect();
            if ids.is_empty() {
                continue;
            }
            // `attempts + 1`: a claimed row's count is the one read when it was claimed.
            let statement = format!(
                "UPDATE notification_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $2,
                     updated_at = $2, last_error = NULL, lease_until = 0, claim_token = NULL{}
                 WHERE claim_token = $1 AND id IN ({}) RETURNING id",
                if scrub { ", text_body = '', html_body = ''" } else { "" },
                platform::db::placeholder_list_from(3, ids.len())
            );
            let mut query = sqlx::query_as::<_, (Uuid,)>(sql(statement)).bind(claim).bind(now);
            for id in ids {
                query = query.bind(id);
            }
            recorded.extend(query.fetch_all(&self.pool).await?.into_iter().map(|(id,)| id));
        }
        Ok(recorded)
    }

    async fn mark_failed(&self, id: Uuid, claim: Uuid, f: &Failure<'_>) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE notification_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6,
                 updated_at = $7, lease_until = 0, claim_token = NULL
             WHERE id = $1 AND claim_token = $2",
        )
        .bind(id)
        .bind(claim)
        .bind(f.status.as_str())
        .bind(i64::from(f.attempts))
        .bind(f.next_attempt_ms)
        .bind(f.error)
        .bind(f.now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn delivery(&self, id: Uuid) -> StoreResult<Option<Delivery>> {
        let row: Option<DeliveryRow> = sqlx::query_as(sql(format!(
            "SELECT {COLUMNS} FROM notification_deliveries WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Delivery::try_from).transpose()
    }

    async fn list(&self, f: &DeliveryFilter, limit: u32) -> StoreResult<Vec<Delivery>> {
        let statement = format!(
            "SELECT {COLUMNS} FROM notification_deliveries
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR lower(recipient) = lower($2))
               AND ($3 IS NULL OR event_id = $3) AND ($4 IS NULL OR kind = $4) AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6"
        );
        let rows: Vec<DeliveryRow> = sqlx::query_as(sql(statement))
            .bind(f.status.map(|s| s.as_str()))
            .bind(f.to.as_deref())
            .bind(f.event_id)
            .bind(f.kind.map(|k| k.as_str()))
            .bind(f.before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        deliveries(rows)
    }

    async fn requeue_dead(&self, id: Uuid, now: OffsetDateTime, now_ms: i64) -> Result<Delivery, RetryRefused> {
        let statement = format!(
            "UPDATE notification_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2,
                 lease_until = 0, claim_token = NULL, updated_at = $3
             WHERE id = $1 AND status = 'dead'
             RETURNING {COLUMNS}"
        );
        let row: Option<DeliveryRow> = sqlx::query_as(sql(statement))
            .bind(id)
            .bind(now_ms)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| RetryRefused::Store(e.into()))?;
        match row {
            Some(row) => Delivery::try_from(row).map_err(RetryRefused::Store),
            None => match self.delivery(id).await.map_err(RetryRefused::Store)? {
                Some(d) => Err(RetryRefused::NotDead(d.status)),
                None => Err(RetryRefused::NotFound),
            },
        }
    }

    async fn unsent_count(&self) -> StoreResult<i64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM notification_deliveries WHERE status IN ('pending', 'failed')")
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }
}
