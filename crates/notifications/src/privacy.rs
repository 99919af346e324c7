//! What notifications holds about a person (their address and name, their preferences, the mail
//! sent to them) and how it lets go of it: all of it is deleted, and webhook messages that named
//! them keep their delivery record but not their body.

use std::sync::Arc;

use platform::db::{Db, RowsAffected, StorePool};
use platform::privacy::PersonalData;
use serde::Serialize;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// Opens notifications' [`PersonalData`] on `db`.
pub fn open(db: &Db) -> Arc<dyn PersonalData> {
    match db {
        Db::Sqlite(pool) => Arc::new(NotificationsPersonalData {
            db: StorePool::sqlite(pool.clone()),
        }),
        Db::Postgres(pool) => Arc::new(NotificationsPersonalData {
            db: StorePool::postgres(pool.clone()),
        }),
    }
}

struct NotificationsPersonalData<DB: platform::db::Backend> {
    db: StorePool<DB>,
}

#[derive(FromRow, Serialize)]
struct RecipientExport {
    email: String,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

#[derive(FromRow, Serialize)]
struct PreferencesExport {
    marketing: bool,
    low_stock_alerts: bool,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

#[derive(FromRow, Serialize)]
struct MailExport {
    kind: String,
    recipient: String,
    subject: String,
    status: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    sent_at: Option<OffsetDateTime>,
}

/// What a webhook message that named an erased person carries afterwards.
const ERASED_PAYLOAD: &str = r#"{"erased":"this message named a person who erased their account"}"#;

platform::sql_store! {
#[async_trait::async_trait]
impl PersonalData for NotificationsPersonalData<DB> {
    async fn erase(&self, user: Uuid, _at: OffsetDateTime) -> anyhow::Result<String> {
        let mut tx = self.db.write().await?;
        let email: Option<String> =
            sqlx::query_scalar("DELETE FROM notification_recipients WHERE user_id = $1 RETURNING email")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM notification_preferences WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        // Mail addressed to the account by id, or to its address before the id was known.
        let mails = sqlx::query("DELETE FROM notification_deliveries WHERE user_id = $1 OR lower(recipient) = lower($2)")
            .bind(user)
            .bind(email.clone().unwrap_or_default())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let mut hooks = 0;
        for pattern in [Some(format!("%{user}%")), email.map(|e| format!("%{e}%"))].into_iter().flatten() {
            hooks += sqlx::query(
                "UPDATE webhook_messages SET payload = $2,
                        status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END,
                        last_error = CASE WHEN status = 'pending' THEN 'not sent: the person erased their account'
                                          ELSE last_error END
                 WHERE payload LIKE $1",
            )
            .bind(pattern)
            .bind(ERASED_PAYLOAD)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(format!(
            "address, name and preferences deleted; {mails} mail(s) deleted; {hooks} webhook message body(ies) erased"
        ))
    }

    async fn export(&self, user: Uuid) -> anyhow::Result<serde_json::Value> {
        let recipient = sqlx::query_as::<_, RecipientExport>(
            "SELECT email, name, updated_at FROM notification_recipients WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(self.db.pool())
        .await?;
        let preferences = sqlx::query_as::<_, PreferencesExport>(
            "SELECT marketing, low_stock_alerts, updated_at FROM notification_preferences WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(self.db.pool())
        .await?;
        let mails = sqlx::query_as::<_, MailExport>(
            "SELECT kind, recipient, subject, status, created_at, sent_at FROM notification_deliveries
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        Ok(serde_json::json!({ "recipient": recipient, "preferences": preferences, "mails": mails }))
    }
}
}
