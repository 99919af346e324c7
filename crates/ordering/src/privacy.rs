//! What ordering holds about a person (orders with their shipping address, returns with their
//! notes) and how it lets go of it. Orders are invoices, which a shop may have to keep: they stay,
//! with their amounts, and lose the name, address, phone and return notes once
//! `EMPORIUM_ORDER_RETENTION_DAYS` passed since the order (at once with the default 0). Orders
//! still inside that period are pseudonymised later by the recovery worker.

use std::sync::Arc;
use std::time::Duration;

use platform::db::{Db, StorePool};
use platform::privacy::PersonalData;
use serde::Serialize;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::ShippingAddress;

/// Ordering's personal data, with the sweep that pseudonymises orders whose retention ended.
#[async_trait::async_trait]
pub trait OrderingPersonalData: PersonalData {
    /// Pseudonymises the orders of erased customers whose retention ended by `now`; answers how
    /// many orders changed.
    async fn pseudonymise_due(&self, now: OffsetDateTime) -> anyhow::Result<u64>;
}

/// Opens ordering's [`OrderingPersonalData`] on `db`.
pub fn open(db: &Db, retention: Duration) -> Arc<dyn OrderingPersonalData> {
    match db {
        Db::Sqlite(pool) => Arc::new(Store {
            db: StorePool::sqlite(pool.clone()),
            retention,
        }),
        Db::Postgres(pool) => Arc::new(Store {
            db: StorePool::postgres(pool.clone()),
            retention,
        }),
    }
}

struct Store<DB: platform::db::Backend> {
    db: StorePool<DB>,
    retention: Duration,
}

#[derive(FromRow, Serialize)]
struct OrderExport {
    id: Uuid,
    number: String,
    status: String,
    currency: String,
    subtotal: i64,
    discount: i64,
    shipping: i64,
    tax: i64,
    total: i64,
    refunded: i64,
    shipping_method: String,
    #[serde(skip)]
    shipping_address: String,
    coupon_code: Option<String>,
    payment_brand: Option<String>,
    payment_last4: Option<String>,
    invoice_number: Option<String>,
    carrier: Option<String>,
    tracking_number: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(FromRow, Serialize)]
struct LineExport {
    #[serde(skip)]
    order_id: Uuid,
    sku: String,
    name: String,
    quantity: i64,
    unit_price: i64,
    line_total: i64,
}

#[derive(FromRow, Serialize)]
struct ReturnExport {
    id: Uuid,
    order_id: Uuid,
    status: String,
    reason: String,
    note: Option<String>,
    refund_amount: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Serialize)]
struct OrderDocument {
    #[serde(flatten)]
    order: OrderExport,
    shipping_address: serde_json::Value,
    lines: Vec<LineExport>,
}

#[derive(FromRow)]
struct AddressRow {
    id: Uuid,
    shipping_address: String,
    created_at: OffsetDateTime,
}

platform::sql_store! {
impl Store<DB> {
    /// Pseudonymises `user`'s orders placed before `cutoff` (and their return notes); answers
    /// how many orders changed and how many keep personal data for now.
    async fn pseudonymise(&self, user: Uuid, cutoff: OffsetDateTime, now: OffsetDateTime) -> anyhow::Result<(u64, u64)> {
        let mut tx = self.db.write().await?;
        // The erasure row first: the write that takes the lock.
        sqlx::query(
            "INSERT INTO privacy_erasures (user_id, requested_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Checkout's idempotency claims: their keys are chosen by the client and may say anything.
        sqlx::query("DELETE FROM order_claims WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        // Compared here, not in SQL: SQLite keeps times as text, which orders only in one format.
        let orders = sqlx::query_as::<_, AddressRow>(
            "SELECT id, shipping_address, created_at FROM orders WHERE user_id = $1",
        )
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        let (due, kept): (Vec<_>, Vec<_>) = orders.into_iter().partition(|o| o.created_at <= cutoff);
        let kept = kept.len();
        let mut changed = 0;
        for row in due {
            let address: ShippingAddress = serde_json::from_str(&row.shipping_address)?;
            let pseudonym = address.pseudonymised();
            if pseudonym == address {
                continue;
            }
            sqlx::query("UPDATE orders SET shipping_address = $2 WHERE id = $1")
                .bind(row.id)
                .bind(serde_json::to_string(&pseudonym)?)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE order_returns SET note = NULL WHERE order_id = $1")
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            changed += 1;
        }
        if kept == 0 {
            sqlx::query("UPDATE privacy_erasures SET completed_at = $2 WHERE user_id = $1 AND completed_at IS NULL")
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((changed, kept as u64))
    }
}
}

platform::sql_store! {
#[async_trait::async_trait]
impl PersonalData for Store<DB> {
    async fn erase(&self, user: Uuid, at: OffsetDateTime) -> anyhow::Result<String> {
        let now = platform::clock::now();
        let cutoff = now - self.retention;
        let (changed, kept) = self.pseudonymise(user, cutoff, at.min(now)).await?;
        let mut summary = format!("{changed} order(s) pseudonymised, amounts and invoices kept");
        if kept > 0 {
            let days = self.retention.as_secs() / 86_400;
            summary.push_str(&format!(
                "; {kept} order(s) keep name and address until {days} days after they were placed (invoice retention)"
            ));
        }
        Ok(summary)
    }

    async fn export(&self, user: Uuid) -> anyhow::Result<serde_json::Value> {
        let orders = sqlx::query_as::<_, OrderExport>(
            "SELECT id, number, status, currency, subtotal, discount, shipping, tax, total, refunded,
                    shipping_method, shipping_address, coupon_code, payment_brand, payment_last4,
                    invoice_number, carrier, tracking_number, created_at
             FROM orders WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        let lines = sqlx::query_as::<_, LineExport>(
            "SELECT l.order_id, l.sku, l.name, l.quantity, l.unit_price, l.line_total
             FROM order_lines l JOIN orders o ON o.id = l.order_id
             WHERE o.user_id = $1 ORDER BY l.order_id, l.line",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        let mut by_order: std::collections::HashMap<Uuid, Vec<LineExport>> = std::collections::HashMap::new();
        for line in lines {
            by_order.entry(line.order_id).or_default().push(line);
        }
        let orders = orders
            .into_iter()
            .map(|order| {
                let shipping_address = serde_json::from_str(&order.shipping_address)?;
                let lines = by_order.remove(&order.id).unwrap_or_default();
                Ok(OrderDocument { order, shipping_address, lines })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let returns = sqlx::query_as::<_, ReturnExport>(
            "SELECT id, order_id, status, reason, note, refund_amount, created_at
             FROM order_returns WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        Ok(serde_json::json!({ "orders": orders, "returns": returns }))
    }
}
}

platform::sql_store! {
#[async_trait::async_trait]
impl OrderingPersonalData for Store<DB> {
    async fn pseudonymise_due(&self, now: OffsetDateTime) -> anyhow::Result<u64> {
        let open: Vec<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM privacy_erasures WHERE completed_at IS NULL ORDER BY requested_at LIMIT 100",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut changed = 0;
        for user in open {
            changed += self.pseudonymise(user, now - self.retention, now).await?.0;
        }
        Ok(changed)
    }
}
}
