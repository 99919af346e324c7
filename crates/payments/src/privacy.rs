//! What payments holds about a person (saved cards, payments and refunds; never a name) and how
//! it lets go of it: saved cards are removed and their provider token forgotten; payments,
//! refunds and the ledger stay, since the books must add up, and name no one but a user id.

use std::sync::Arc;

use platform::db::{Db, RowsAffected, StorePool};
use platform::privacy::PersonalData;
use serde::Serialize;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// Opens payments' [`PersonalData`] on `db`.
pub fn open(db: &Db) -> Arc<dyn PersonalData> {
    match db {
        Db::Sqlite(pool) => Arc::new(PaymentsPersonalData {
            db: StorePool::sqlite(pool.clone()),
        }),
        Db::Postgres(pool) => Arc::new(PaymentsPersonalData {
            db: StorePool::postgres(pool.clone()),
        }),
    }
}

struct PaymentsPersonalData<DB: platform::db::Backend> {
    db: StorePool<DB>,
}

#[derive(FromRow, Serialize)]
struct MethodExport {
    id: Uuid,
    brand: String,
    last4: String,
    exp_month: i64,
    exp_year: i64,
    provider: String,
    saved: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    removed_at: Option<OffsetDateTime>,
}

#[derive(FromRow, Serialize)]
struct PaymentExport {
    id: Uuid,
    order_id: Uuid,
    amount: i64,
    currency: String,
    status: String,
    brand: String,
    last4: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(FromRow, Serialize)]
struct RefundExport {
    id: Uuid,
    payment_id: Uuid,
    amount: i64,
    currency: String,
    status: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// What a removed card keeps of its provider token: nothing that can charge it again.
const FORGOTTEN_TOKEN: &str = "erased";

platform::sql_store! {
#[async_trait::async_trait]
impl PersonalData for PaymentsPersonalData<DB> {
    async fn erase(&self, user: Uuid, at: OffsetDateTime) -> anyhow::Result<String> {
        let mut tx = self.db.write().await?;
        let removed = sqlx::query(
            "UPDATE payment_methods SET saved = FALSE, removed_at = COALESCE(removed_at, $2), provider_token = $3
             WHERE user_id = $1 AND provider_token <> $3",
        )
        .bind(user)
        .bind(at)
        .bind(FORGOTTEN_TOKEN)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(format!("{removed} card(s) removed and their provider tokens forgotten; payments and ledger kept (no names)"))
    }

    async fn export(&self, user: Uuid) -> anyhow::Result<serde_json::Value> {
        let methods = sqlx::query_as::<_, MethodExport>(
            "SELECT id, brand, last4, exp_month, exp_year, provider, saved, created_at, removed_at
             FROM payment_methods WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        let payments = sqlx::query_as::<_, PaymentExport>(
            "SELECT id, order_id, amount, currency, status, brand, last4, created_at
             FROM payments WHERE customer_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        let refunds = sqlx::query_as::<_, RefundExport>(
            "SELECT r.id, r.payment_id, r.amount, r.currency, r.status, r.created_at
             FROM refunds r JOIN payments p ON p.id = r.payment_id
             WHERE p.customer_id = $1 ORDER BY r.created_at, r.id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        Ok(serde_json::json!({ "cards": methods, "payments": payments, "refunds": refunds }))
    }
}
}
