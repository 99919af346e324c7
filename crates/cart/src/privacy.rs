//! What cart holds about a person (their cart and the guest carts merged into it) and how it
//! lets go of it: an erased user's cart is deleted outright, nothing in it must be kept.

use std::sync::Arc;

use platform::db::{Db, RowsAffected, StorePool};
use platform::privacy::PersonalData;
use serde::Serialize;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// Opens cart's [`PersonalData`] on `db`.
pub fn open(db: &Db) -> Arc<dyn PersonalData> {
    match db {
        Db::Sqlite(pool) => Arc::new(CartPersonalData {
            db: StorePool::sqlite(pool.clone()),
        }),
        Db::Postgres(pool) => Arc::new(CartPersonalData {
            db: StorePool::postgres(pool.clone()),
        }),
    }
}

struct CartPersonalData<DB: platform::db::Backend> {
    db: StorePool<DB>,
}

#[derive(FromRow, Serialize)]
struct CartExport {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    touched_at: OffsetDateTime,
}

#[derive(FromRow, Serialize)]
struct LineExport {
    sku: String,
    name: String,
    quantity: i64,
    /// Minor units of `added_currency`, the price when the line was added.
    added_price: i64,
    added_currency: String,
    #[serde(with = "time::serde::rfc3339")]
    added_at: OffsetDateTime,
}

#[derive(Serialize)]
struct CartDocument {
    #[serde(flatten)]
    cart: CartExport,
    lines: Vec<LineExport>,
}

platform::sql_store! {
#[async_trait::async_trait]
impl PersonalData for CartPersonalData<DB> {
    async fn erase(&self, user: Uuid, _at: OffsetDateTime) -> anyhow::Result<String> {
        let mut tx = self.db.write().await?;
        sqlx::query("DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE user_id = $1)")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        let carts = sqlx::query("DELETE FROM carts WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM cart_merges WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(format!("{carts} cart(s) deleted"))
    }

    async fn export(&self, user: Uuid) -> anyhow::Result<serde_json::Value> {
        let cart = sqlx::query_as::<_, CartExport>("SELECT id, created_at, touched_at FROM carts WHERE user_id = $1")
            .bind(user)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(cart) = cart else {
            return Ok(serde_json::json!({ "cart": null }));
        };
        let lines = sqlx::query_as::<_, LineExport>(
            "SELECT sku, name, quantity, added_price, added_currency, added_at FROM cart_items
             WHERE cart_id = $1 ORDER BY position",
        )
        .bind(cart.id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(serde_json::json!({ "cart": CartDocument { cart, lines } }))
    }
}
}
