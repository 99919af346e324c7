//! Where identity keeps erasures and exports: [`PrivacyStore`], one SQL implementation for both
//! backends.

use std::sync::Arc;

use platform::db::{Db, RowsAffected, StorePool};
use platform::events::Event;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{StoreError, StoreResult};

/// Opens identity's [`PrivacyStore`] on `db`.
pub fn open(db: &Db) -> Arc<dyn PrivacyStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqlPrivacyStore {
            db: StorePool::sqlite(pool.clone()),
        }),
        Db::Postgres(pool) => Arc::new(SqlPrivacyStore {
            db: StorePool::postgres(pool.clone()),
        }),
    }
}

/// An erasure and the steps reported so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    pub user_id: Uuid,
    pub requested_at: OffsetDateTime,
    pub requested_by: Uuid,
    pub completed_at: Option<OffsetDateTime>,
    pub steps: Vec<ErasureStepRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ErasureStepRecord {
    pub context: String,
    pub completed_at: OffsetDateTime,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ExportRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub requested_by: Uuid,
    pub requested_at: OffsetDateTime,
    pub ready_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ExportPartRecord {
    pub context: String,
    pub data: String,
    pub received_at: OffsetDateTime,
}

/// What erasing the account itself replaces its personal data with.
pub struct AccountErasure<'a> {
    pub user_id: Uuid,
    pub email: &'a str,
    pub placeholder_email: &'a str,
    pub requested_by: Uuid,
    pub at: OffsetDateTime,
}

#[async_trait::async_trait]
pub trait PrivacyStore: Send + Sync + 'static {
    /// Erases identity's copy of the account in one transaction: name, e-mail and password
    /// replaced, the address book emptied, addresses and browsers forgotten from its sessions,
    /// audit records and login attempts; records the erasure and puts `events` in the outbox.
    /// `NotFound` when the account is gone or already erased.
    async fn erase_account(&self, erasure: &AccountErasure<'_>, events: &[Event]) -> StoreResult<()>;
    /// Records one context's step (once; a repeat changes nothing). With every context of
    /// `expected` reported, the erasure is marked complete; answers whether this step completed it.
    async fn record_erasure_step(&self, user: Uuid, step: &ErasureStepRecord, expected: &[&str]) -> StoreResult<bool>;
    async fn erasure(&self, user: Uuid) -> StoreResult<Option<ErasureRecord>>;

    /// Starts an export with identity's own part, and puts `events` in the outbox.
    async fn create_export(&self, export: &ExportRecord, identity_part: &str, events: &[Event]) -> StoreResult<()>;
    /// Stores one context's part (once). With every context of `expected` present, the export
    /// becomes ready until `expires_at`, and `ready_events` go to the outbox in the same
    /// transaction; answers whether this part made it ready. `NotFound` for an unknown export.
    async fn add_export_part(
        &self,
        export: Uuid,
        part: &ExportPartRecord,
        expected: &[&str],
        expires_at: OffsetDateTime,
        ready_events: &[Event],
    ) -> StoreResult<bool>;
    async fn export(&self, id: Uuid) -> StoreResult<Option<ExportRecord>>;
    /// The user's exports, newest first.
    async fn exports_of(&self, user: Uuid, limit: u32) -> StoreResult<Vec<ExportRecord>>;
    async fn export_parts(&self, export: Uuid) -> StoreResult<Vec<ExportPartRecord>>;
    /// Deletes exports (and their parts) that expired before `now`, and exports older than
    /// `stale_before` that never became ready; answers how many.
    async fn purge_exports(&self, now: OffsetDateTime, stale_before: OffsetDateTime) -> StoreResult<u64>;
}

struct SqlPrivacyStore<DB: platform::db::Backend> {
    db: StorePool<DB>,
}

#[derive(FromRow)]
struct ErasureRow {
    user_id: Uuid,
    requested_at: OffsetDateTime,
    requested_by: Uuid,
    completed_at: Option<OffsetDateTime>,
}

const EXPORT_COLUMNS: &str = "id, user_id, requested_by, requested_at, ready_at, expires_at";

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

platform::sql_store! {
#[async_trait::async_trait]
impl PrivacyStore for SqlPrivacyStore<DB> {
    async fn erase_account(&self, e: &AccountErasure<'_>, events: &[Event]) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let done = sqlx::query(
            "UPDATE users SET status = 'deleted', email = $2, name = 'deleted user', password_hash = '!',
                    updated_at = $3, version = version + 1
             WHERE id = $1 AND status <> 'deleted'",
        )
        .bind(e.user_id)
        .bind(e.placeholder_email)
        .bind(e.at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM addresses WHERE user_id = $1")
            .bind(e.user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sessions SET ip = '', user_agent = '' WHERE user_id = $1")
            .bind(e.user_id)
            .execute(&mut *tx)
            .await?;
        // The audit trail keeps what happened and when, not who the person was.
        sqlx::query(
            "UPDATE audit_events SET subject_email = NULL, ip = NULL, user_agent = NULL,
                    detail = CASE WHEN detail LIKE $3 THEN NULL ELSE detail END
             WHERE user_id = $1 OR lower(subject_email) = lower($2)",
        )
        .bind(e.user_id)
        .bind(e.email)
        .bind(format!("%{}%", e.email))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM login_attempts WHERE lower(email) = lower($1)")
            .bind(e.email)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM login_throttle_locks WHERE lower(key) = lower($1)")
            .bind(format!("account:{}", e.email))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM privacy_export_parts WHERE export_id IN (SELECT id FROM privacy_exports WHERE user_id = $1)",
        )
        .bind(e.user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM privacy_exports WHERE user_id = $1")
            .bind(e.user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO privacy_erasures (user_id, requested_at, requested_by) VALUES ($1, $2, $3)")
            .bind(e.user_id)
            .bind(e.at)
            .bind(e.requested_by)
            .execute(&mut *tx)
            .await?;
        // Events about the account that the relay already published (its registration among
        // them) may name the person, and so may a dead letter of identity's consumers.
        platform::privacy::forget_events_about_in(&mut *tx, e.user_id).await?;
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_erasure_step(&self, user: Uuid, step: &ErasureStepRecord, expected: &[&str]) -> StoreResult<bool> {
        let mut tx = self.db.write().await?;
        // The erasure's row first: steps arriving together take turns on its lock, so the last
        // one sees every other and marks the erasure complete (under READ COMMITTED, two steps
        // committing at once would each see the other missing).
        let known = sqlx::query("UPDATE privacy_erasures SET requested_at = requested_at WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if known == 0 {
            // No erasure of this user here (a step replayed after a restore): nothing to record.
            return Ok(false);
        }
        let inserted = sqlx::query(
            "INSERT INTO privacy_erasure_steps (user_id, context, completed_at, summary) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, context) DO NOTHING",
        )
        .bind(user)
        .bind(step.context.as_str())
        .bind(step.completed_at)
        .bind(step.summary.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let done: Vec<String> = sqlx::query_scalar("SELECT context FROM privacy_erasure_steps WHERE user_id = $1")
            .bind(user)
            .fetch_all(&mut *tx)
            .await?;
        let complete = expected.iter().all(|c| done.iter().any(|d| d == c));
        let mut completed_now = false;
        if complete {
            completed_now = sqlx::query(
                "UPDATE privacy_erasures SET completed_at = $2 WHERE user_id = $1 AND completed_at IS NULL",
            )
            .bind(user)
            .bind(step.completed_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
        }
        tx.commit().await?;
        Ok(completed_now)
    }

    async fn erasure(&self, user: Uuid) -> StoreResult<Option<ErasureRecord>> {
        let Some(row) = sqlx::query_as::<_, ErasureRow>(
            "SELECT user_id, requested_at, requested_by, completed_at FROM privacy_erasures WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(self.db.pool())
        .await?
        else {
            return Ok(None);
        };
        let steps = sqlx::query_as::<_, ErasureStepRecord>(
            "SELECT context, completed_at, summary FROM privacy_erasure_steps WHERE user_id = $1
             ORDER BY completed_at, context",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        Ok(Some(ErasureRecord {
            user_id: row.user_id,
            requested_at: row.requested_at,
            requested_by: row.requested_by,
            completed_at: row.completed_at,
            steps,
        }))
    }

    async fn create_export(&self, x: &ExportRecord, identity_part: &str, events: &[Event]) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        sqlx::query(
            "INSERT INTO privacy_exports (id, user_id, requested_by, requested_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(x.id)
        .bind(x.user_id)
        .bind(x.requested_by)
        .bind(x.requested_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO privacy_export_parts (export_id, context, data, received_at) VALUES ($1, 'identity', $2, $3)",
        )
        .bind(x.id)
        .bind(identity_part)
        .bind(x.requested_at)
        .execute(&mut *tx)
        .await?;
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_export_part(
        &self,
        export: Uuid,
        part: &ExportPartRecord,
        expected: &[&str],
        expires_at: OffsetDateTime,
        ready_events: &[Event],
    ) -> StoreResult<bool> {
        let mut tx = self.db.write().await?;
        // The export's row first: the write that takes the lock, so two parts arriving together
        // take turns and exactly one of them sees the export complete.
        let exists = sqlx::query("UPDATE privacy_exports SET requested_at = requested_at WHERE id = $1")
            .bind(export)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if exists == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO privacy_export_parts (export_id, context, data, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (export_id, context) DO NOTHING",
        )
        .bind(export)
        .bind(part.context.as_str())
        .bind(part.data.as_str())
        .bind(part.received_at)
        .execute(&mut *tx)
        .await?;
        let have: Vec<String> = sqlx::query_scalar("SELECT context FROM privacy_export_parts WHERE export_id = $1")
            .bind(export)
            .fetch_all(&mut *tx)
            .await?;
        let mut ready_now = false;
        if expected.iter().all(|c| have.iter().any(|h| h == c)) {
            ready_now = sqlx::query(
                "UPDATE privacy_exports SET ready_at = $2, expires_at = $3 WHERE id = $1 AND ready_at IS NULL",
            )
            .bind(export)
            .bind(part.received_at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if ready_now {
                platform::events::enqueue_all(&mut *tx, ready_events).await?;
            }
        }
        tx.commit().await?;
        Ok(ready_now)
    }

    async fn export(&self, id: Uuid) -> StoreResult<Option<ExportRecord>> {
        Ok(sqlx::query_as::<_, ExportRecord>(sql(format!("SELECT {EXPORT_COLUMNS} FROM privacy_exports WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?)
    }

    async fn exports_of(&self, user: Uuid, limit: u32) -> StoreResult<Vec<ExportRecord>> {
        Ok(sqlx::query_as::<_, ExportRecord>(sql(format!(
            "SELECT {EXPORT_COLUMNS} FROM privacy_exports WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(user)
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await?)
    }

    async fn export_parts(&self, export: Uuid) -> StoreResult<Vec<ExportPartRecord>> {
        Ok(sqlx::query_as::<_, ExportPartRecord>(
            "SELECT context, data, received_at FROM privacy_export_parts WHERE export_id = $1 ORDER BY context",
        )
        .bind(export)
        .fetch_all(self.db.pool())
        .await?)
    }

    async fn purge_exports(&self, now: OffsetDateTime, stale_before: OffsetDateTime) -> StoreResult<u64> {
        let mut tx = self.db.write().await?;
        let gone = "SELECT id FROM privacy_exports WHERE expires_at < $1 OR (ready_at IS NULL AND requested_at < $2)";
        sqlx::query(sql(format!("DELETE FROM privacy_export_parts WHERE export_id IN ({gone})")))
            .bind(now)
            .bind(stale_before)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(sql(format!("DELETE FROM privacy_exports WHERE id IN ({gone})")))
            .bind(now)
            .bind(stale_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
}
