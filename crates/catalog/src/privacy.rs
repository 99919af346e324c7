//! What catalog holds about a person (their reviews and the products they bought, which make
//! reviews "verified") and how it lets go of it: reviews stay, for other shoppers, but are
//! unlinked from the person and shown as by "a former customer".

use std::sync::Arc;

use platform::db::{Db, RowsAffected, StorePool};
use platform::privacy::PersonalData;
use serde::Serialize;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// Opens catalog's [`PersonalData`] on `db`.
pub fn open(db: &Db) -> Arc<dyn PersonalData> {
    match db {
        Db::Sqlite(pool) => Arc::new(CatalogPersonalData {
            db: StorePool::sqlite(pool.clone()),
        }),
        Db::Postgres(pool) => Arc::new(CatalogPersonalData {
            db: StorePool::postgres(pool.clone()),
        }),
    }
}

struct CatalogPersonalData<DB: platform::db::Backend> {
    db: StorePool<DB>,
}

#[derive(FromRow, Serialize)]
struct ReviewExport {
    id: Uuid,
    product_id: Uuid,
    product_name: String,
    rating: i64,
    title: String,
    body: String,
    status: String,
    verified_purchase: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

#[derive(FromRow, Serialize)]
struct PurchaseExport {
    product_id: Uuid,
}

platform::sql_store! {
#[async_trait::async_trait]
impl PersonalData for CatalogPersonalData<DB> {
    async fn erase(&self, user: Uuid, at: OffsetDateTime) -> anyhow::Result<String> {
        let mut tx = self.db.write().await?;
        let purchases = sqlx::query("DELETE FROM verified_purchases WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let reviews: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM reviews WHERE user_id = $1")
            .bind(user)
            .fetch_all(&mut *tx)
            .await?;
        // A random id per review: the (product, user) uniqueness holds, and nothing links the
        // reviews of one former customer together.
        for id in &reviews {
            sqlx::query("UPDATE reviews SET user_id = $2, author_erased = TRUE, updated_at = $3 WHERE id = $1")
                .bind(*id)
                .bind(Uuid::new_v4())
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(format!(
            "{} review(s) unlinked (shown as by a former customer), {purchases} purchase record(s) deleted",
            reviews.len()
        ))
    }

    async fn export(&self, user: Uuid) -> anyhow::Result<serde_json::Value> {
        let reviews = sqlx::query_as::<_, ReviewExport>(
            "SELECT r.id, r.product_id, p.name AS product_name, r.rating, r.title, r.body, r.status,
                    r.verified_purchase, r.created_at, r.updated_at
             FROM reviews r JOIN products p ON p.id = r.product_id
             WHERE r.user_id = $1 ORDER BY r.created_at, r.id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        let purchases = sqlx::query_as::<_, PurchaseExport>(
            "SELECT product_id FROM verified_purchases WHERE user_id = $1 ORDER BY product_id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        Ok(serde_json::json!({ "reviews": reviews, "verified_purchases": purchases }))
    }
}
}
