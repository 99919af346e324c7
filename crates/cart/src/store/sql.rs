//! The SQL implementation of [`CartStore`], written once and instantiated for SQLite and
//! PostgreSQL. Every statement is parameterised and portable between the two (`$n` placeholders,
//! `RETURNING`, `ON CONFLICT`, timestamps passed in from Rust).
//!
//! Concurrency: a write transaction first updates the cart's row (`touched_at`, `version`). On
//! PostgreSQL that row lock queues every other writer of the same cart until commit, and under READ
//! COMMITTED the statements that follow see what the previous writer committed; on SQLite the
//! transaction is `BEGIN IMMEDIATE` and, inside this process, writers queue on a mutex. So "read
//! the line, apply the rule, write the sum" never loses a concurrent add. Merges lock the user's
//! cart before the guest's; every other write locks one cart, so they cannot deadlock.

use platform::db::{RowsAffected, StorePool, is_unique_violation};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AddItem, CartStore, LineOutcome, Merge, MergeOutcome, SetItem, StoreError, StoreResult, StoredCart};
use crate::domain::{CartId, Currency, Line, Money, Owner, Sku, Snapshot, TokenHash, plan_add, plan_merge, plan_set};

pub struct SqlStore<DB: platform::db::Backend> {
    db: StorePool<DB>,
}

impl<DB: platform::db::Backend> SqlStore<DB> {
    pub fn new(db: StorePool<DB>) -> Self {
        Self { db }
    }
}

#[derive(FromRow)]
struct CartRow {
    id: Uuid,
    user_id: Option<Uuid>,
    created_at: OffsetDateTime,
    touched_at: OffsetDateTime,
    version: i64,
}

const CART_COLUMNS: &str = "id, user_id, created_at, touched_at, version";

impl CartRow {
    fn with_lines(self, lines: Vec<Line>) -> StoredCart {
        StoredCart {
            id: CartId(self.id),
            user_id: self.user_id,
            created_at: self.created_at,
            touched_at: self.touched_at,
            version: self.version,
            lines,
        }
    }
}

#[derive(FromRow)]
struct ItemRow {
    sku: String,
    quantity: i64,
    product_id: Uuid,
    name: String,
    added_price: i64,
    added_currency: String,
    added_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const ITEM_COLUMNS: &str = "sku, quantity, product_id, name, added_price, added_currency, added_at, updated_at";

impl TryFrom<ItemRow> for Line {
    type Error = StoreError;
    fn try_from(r: ItemRow) -> Result<Self, Self::Error> {
        Ok(Line {
            sku: Sku::from_trusted(r.sku),
            quantity: r.quantity,
            snapshot: Snapshot {
                product_id: r.product_id,
                name: r.name,
                price: Money::new(
                    r.added_price,
                    Currency::parse(&r.added_currency).map_err(|e| StoreError::Corrupt(e.into()))?,
                ),
            },
            added_at: r.added_at,
            updated_at: r.updated_at,
        })
    }
}

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

platform::sql_store! {
    impl SqlStore<DB> {
        async fn lines_in(conn: &mut DB::Connection, cart: Uuid) -> StoreResult<Vec<Line>> {
            sqlx::query_as::<_, ItemRow>(sql(format!(
                "SELECT {ITEM_COLUMNS} FROM cart_items WHERE cart_id = $1 ORDER BY position"
            )))
            .bind(cart)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(Line::try_from)
            .collect()
        }

        /// Records activity and takes the cart's write lock; `CartGone` when it no longer exists.
        async fn lock_cart(conn: &mut DB::Connection, cart: Uuid, now: OffsetDateTime) -> StoreResult<()> {
            let done = sqlx::query("UPDATE carts SET touched_at = $2, version = version + 1 WHERE id = $1")
                .bind(cart)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::CartGone) }
        }

        async fn upsert_line(conn: &mut DB::Connection, cart: Uuid, line: &Line) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO cart_items (cart_id, sku, position, quantity, product_id, name, added_price, added_currency,
                                     added_at, updated_at)
             VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 1 FROM cart_items WHERE cart_id = $1),
                     $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (cart_id, sku) DO UPDATE SET
                 quantity = excluded.quantity, product_id = excluded.product_id, name = excluded.name,
                 added_price = excluded.added_price, added_currency = excluded.added_currency,
                 updated_at = excluded.updated_at",
            )
            .bind(cart)
            .bind(line.sku.as_str())
            .bind(line.quantity)
            .bind(line.snapshot.product_id)
            .bind(line.snapshot.name.as_str())
            .bind(line.snapshot.price.amount)
            .bind(line.snapshot.price.currency.as_str())
            .bind(line.added_at)
            .bind(line.updated_at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn line_quantity(conn: &mut DB::Connection, cart: Uuid, sku: &Sku) -> StoreResult<Option<i64>> {
            Ok(sqlx::query_scalar::<_, i64>("SELECT quantity FROM cart_items WHERE cart_id = $1 AND sku = $2")
                .bind(cart)
                .bind(sku.as_str())
                .fetch_optional(&mut *conn)
                .await?)
        }

        async fn cart_by_user(conn: &mut DB::Connection, user: Uuid, lock: &str) -> StoreResult<Option<CartRow>> {
            Ok(sqlx::query_as::<_, CartRow>(sql(format!("SELECT {CART_COLUMNS} FROM carts WHERE user_id = $1{lock}")))
                .bind(user)
                .fetch_optional(&mut *conn)
                .await?)
        }

        /// Inside a write transaction: the user's live cart, replacing an expired one; `true` when
        /// one was replaced.
        async fn ensure_user_cart(
            conn: &mut DB::Connection,
            user: Uuid,
            now: OffsetDateTime,
            cutoff: OffsetDateTime,
        ) -> StoreResult<(CartRow, bool)> {
            let expired = sqlx::query("DELETE FROM carts WHERE user_id = $1 AND touched_at < $2")
                .bind(user)
                .bind(cutoff)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                > 0;
            sqlx::query(
                "INSERT INTO carts (id, user_id, token_hash, created_at, touched_at, version)
             VALUES ($1, $2, NULL, $3, $3, 1)
             ON CONFLICT (user_id) DO NOTHING",
            )
            .bind(CartId::new().0)
            .bind(user)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            let row = Self::cart_by_user(&mut *conn, user, "")
                .await?
                .ok_or_else(|| StoreError::Corrupt("a user cart vanished while being created".into()))?;
            Ok((row, expired))
        }
    }
}

platform::sql_store! {
    #[async_trait::async_trait]
    impl CartStore for SqlStore<DB> {
        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "find_cart"))]
        async fn find(&self, owner: &Owner) -> StoreResult<Option<StoredCart>> {
            let mut conn = self.db.acquire().await?;
            let row = match owner {
                Owner::User(user) => Self::cart_by_user(&mut conn, *user, "").await?,
                Owner::Guest(hash) => {
                    sqlx::query_as::<_, CartRow>(sql(format!("SELECT {CART_COLUMNS} FROM carts WHERE token_hash = $1")))
                        .bind(hash.0.as_slice())
                        .fetch_optional(&mut *conn)
                        .await?
                }
            };
            let Some(row) = row else { return Ok(None) };
            let lines = Self::lines_in(&mut conn, row.id).await?;
            Ok(Some(row.with_lines(lines)))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "create_guest_cart"))]
        async fn create_guest(&self, id: CartId, token: &TokenHash, now: OffsetDateTime) -> StoreResult<StoredCart> {
            let mut tx = self.db.write().await?;
            let row = sqlx::query_as::<_, CartRow>(sql(format!(
                "INSERT INTO carts (id, user_id, token_hash, created_at, touched_at, version)
             VALUES ($1, NULL, $2, $3, $3, 1) RETURNING {CART_COLUMNS}"
            )))
            .bind(id.0)
            .bind(token.0.as_slice())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e, "token_hash") {
                    StoreError::Corrupt("a random cart token collided".into())
                } else {
                    e.into()
                }
            })?;
            tx.commit().await?;
            Ok(row.with_lines(Vec::new()))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "user_cart"))]
        async fn user_cart(
            &self,
            user: Uuid,
            now: OffsetDateTime,
            cutoff: OffsetDateTime,
        ) -> StoreResult<(StoredCart, bool)> {
            // The common case reads only.
            if let Some(cart) = self.find(&Owner::User(user)).await?
                && cart.touched_at >= cutoff
            {
                return Ok((cart, false));
            }
            let mut tx = self.db.write().await?;
            let (row, expired) = Self::ensure_user_cart(&mut *tx, user, now, cutoff).await?;
            let lines = Self::lines_in(&mut *tx, row.id).await?;
            tx.commit().await?;
            Ok((row.with_lines(lines), expired))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "touch_cart"))]
        async fn touch(&self, cart: CartId, now: OffsetDateTime, if_before: OffsetDateTime) -> StoreResult<()> {
            let mut tx = self.db.write().await?;
            sqlx::query("UPDATE carts SET touched_at = $2 WHERE id = $1 AND touched_at < $3")
                .bind(cart.0)
                .bind(now)
                .bind(if_before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "add_item"))]
        async fn add_item(&self, add: &AddItem) -> StoreResult<LineOutcome> {
            let mut tx = self.db.write().await?;
            Self::lock_cart(&mut *tx, add.cart.0, add.now).await?;
            let current = Self::line_quantity(&mut *tx, add.cart.0, &add.sku).await?;
            let lines: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cart_items WHERE cart_id = $1")
                .bind(add.cart.0)
                .fetch_one(&mut *tx)
                .await?;
            let lines = usize::try_from(lines).unwrap_or(usize::MAX);
            let quantity = match plan_add(current, lines, add.quantity, add.available, add.limits) {
                Ok(q) => q,
                Err(refused) => {
                    tx.rollback().await?;
                    return Ok(LineOutcome::Refused(refused));
                }
            };
            let line = Line {
                sku: add.sku.clone(),
                quantity,
                snapshot: add.snapshot.clone(),
                added_at: add.now,
                updated_at: add.now,
            };
            Self::upsert_line(&mut *tx, add.cart.0, &line).await?;
            tx.commit().await?;
            Ok(LineOutcome::Written(quantity))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "set_item"))]
        async fn set_item(&self, set: &SetItem) -> StoreResult<LineOutcome> {
            let mut tx = self.db.write().await?;
            Self::lock_cart(&mut *tx, set.cart.0, set.now).await?;
            if Self::line_quantity(&mut *tx, set.cart.0, &set.sku).await?.is_none() {
                tx.rollback().await?;
                return Ok(LineOutcome::NoSuchLine);
            }
            let quantity = match plan_set(set.quantity, set.available) {
                Ok(q) => q,
                Err(refused) => {
                    tx.rollback().await?;
                    return Ok(LineOutcome::Refused(refused));
                }
            };
            let line = Line {
                sku: set.sku.clone(),
                quantity,
                snapshot: set.snapshot.clone(),
                added_at: set.now,
                updated_at: set.now,
            };
            Self::upsert_line(&mut *tx, set.cart.0, &line).await?;
            tx.commit().await?;
            Ok(LineOutcome::Written(quantity))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "remove_item"))]
        async fn remove_item(&self, cart: CartId, sku: &Sku, now: OffsetDateTime) -> StoreResult<bool> {
            let mut tx = self.db.write().await?;
            Self::lock_cart(&mut *tx, cart.0, now).await?;
            let done = sqlx::query("DELETE FROM cart_items WHERE cart_id = $1 AND sku = $2")
                .bind(cart.0)
                .bind(sku.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "clear_cart"))]
        async fn clear(&self, cart: CartId, now: OffsetDateTime) -> StoreResult<()> {
            let mut tx = self.db.write().await?;
            Self::lock_cart(&mut *tx, cart.0, now).await?;
            sqlx::query("DELETE FROM cart_items WHERE cart_id = $1")
                .bind(cart.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "delete_cart"))]
        async fn delete_cart(&self, cart: CartId) -> StoreResult<bool> {
            let mut tx = self.db.write().await?;
            let done = sqlx::query("DELETE FROM carts WHERE id = $1")
                .bind(cart.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "merge_carts"))]
        async fn merge(&self, m: &Merge) -> StoreResult<MergeOutcome> {
            let mut tx = self.db.write().await?;
            // The user's cart first: its lock queues concurrent merges into this user.
            let (user_row, _) = Self::ensure_user_cart(&mut *tx, m.user, m.now, m.user_cutoff).await?;
            Self::lock_cart(&mut *tx, user_row.id, m.now).await?;
            let merged_by: Option<Uuid> = sqlx::query_scalar("SELECT user_id FROM cart_merges WHERE token_hash = $1")
                .bind(m.token.0.as_slice())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(by) = merged_by {
                tx.rollback().await?;
                return Ok(if by == m.user {
                    MergeOutcome::AlreadyMerged
                } else {
                    MergeOutcome::NoSuchCart
                });
            }
            let guest = sqlx::query_as::<_, CartRow>(sql(format!(
                "SELECT {CART_COLUMNS} FROM carts WHERE token_hash = $1{}",
                self.db.for_update()
            )))
            .bind(m.token.0.as_slice())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(guest) = guest.filter(|g| g.touched_at >= m.guest_cutoff) else {
                tx.rollback().await?;
                return Ok(MergeOutcome::NoSuchCart);
            };
            let user_lines = Self::lines_in(&mut *tx, user_row.id).await?;
            let guest_lines = Self::lines_in(&mut *tx, guest.id).await?;
            let plan = plan_merge(&user_lines, &guest_lines, m.limits, m.now);
            for line in &plan.upserts {
                Self::upsert_line(&mut *tx, user_row.id, line).await?;
            }
            sqlx::query("DELETE FROM carts WHERE id = $1")
                .bind(guest.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO cart_merges (token_hash, user_id, merged_at) VALUES ($1, $2, $3)")
                .bind(m.token.0.as_slice())
                .bind(m.user)
                .bind(m.now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(MergeOutcome::Merged {
                lines: plan.upserts.len(),
                dropped: plan.dropped,
            })
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "clear_ordered"))]
        async fn clear_ordered(
            &self,
            user: Uuid,
            placed_at: OffsetDateTime,
            ordered: &[(String, u32)],
        ) -> StoreResult<u64> {
            let mut tx = self.db.write().await?;
            let Some(cart) = Self::cart_by_user(&mut *tx, user, self.db.for_update()).await? else {
                tx.rollback().await?;
                return Ok(0);
            };
            let mut removed = sqlx::query("DELETE FROM cart_items WHERE cart_id = $1 AND updated_at < $2")
                .bind(cart.id)
                .bind(placed_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for (sku, quantity) in ordered {
                let quantity = i64::from(*quantity);
                removed += sqlx::query(
                    "DELETE FROM cart_items WHERE cart_id = $1 AND sku = $2 AND updated_at = $3 AND quantity <= $4",
                )
                .bind(cart.id)
                .bind(sku)
                .bind(placed_at)
                .bind(quantity)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE cart_items SET quantity = quantity - $4 WHERE cart_id = $1 AND sku = $2 AND updated_at = $3",
                )
                .bind(cart.id)
                .bind(sku)
                .bind(placed_at)
                .bind(quantity)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(removed)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "delete_expired_carts"))]
        async fn delete_expired(
            &self,
            guest_cutoff: OffsetDateTime,
            user_cutoff: OffsetDateTime,
            limit: u32,
        ) -> StoreResult<u64> {
            let mut tx = self.db.write().await?;
            let done = sqlx::query(
                "DELETE FROM carts WHERE id IN (
                 SELECT id FROM carts
                 WHERE (user_id IS NULL AND touched_at < $1) OR (user_id IS NOT NULL AND touched_at < $2)
                 LIMIT $3)",
            )
            .bind(guest_cutoff)
            .bind(user_cutoff)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM cart_merges WHERE merged_at < $1")
                .bind(guest_cutoff)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "cart_counts"))]
        async fn counts(&self) -> StoreResult<(i64, i64)> {
            Ok(sqlx::query_as::<_, (i64, i64)>(
                "SELECT COALESCE(SUM(CASE WHEN user_id IS NULL THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN user_id IS NULL THEN 0 ELSE 1 END), 0)
             FROM carts",
            )
            .fetch_one(self.db.pool())
            .await?)
        }
    }
}
