//! The SQL implementation of [`OrderStore`], written once and instantiated for SQLite and
//! PostgreSQL. Every statement is parameterised and portable between the two (`$n` placeholders,
//! `RETURNING`, `ON CONFLICT`, timestamps passed in from Rust).
//!
//! Concurrency: `update` reads the order `FOR UPDATE` (PostgreSQL) or inside `BEGIN IMMEDIATE`
//! behind a process-wide writer mutex (SQLite), so its decide-then-write is atomic. The saga's
//! `update_known` skips that read: it decides on the order as the saga last wrote it and writes
//! the row first, only at that version, so a copy someone else moved on writes nothing. Counters are
//! incremented with `UPDATE ... RETURNING` inside the transaction that uses the value: a rollback
//! leaves no gap (invoice numbers; order numbers too on SQLite, while PostgreSQL takes them from a
//! sequence so that checkouts do not queue on one row). The invoice counter's row stays locked
//! until its transaction commits, so `assign_invoices` numbers a batch of orders per lock. The
//! coupon's use is a conditional increment (`uses < max_uses`), given back in the transaction that
//! cancels the order or records its failed payment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use platform::db::{RowsAffected, StorePool, is_unique_violation};
use platform::events::{Event, enqueue_all};
use platform::sync::lock;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Claim, Claimed, Decide, Emit, Mutation, NewOrder, Order, OrderDetail, OrderFilter, OrderLine, OrderStore,
    PlaceOutcome, RefundRecord, Refusal, ReturnDecide, ReturnFilter, SagaStep, StoreError, StoreResult,
};
use crate::domain::{
    Coupon, CouponKind, Currency, OrderId, OrderNumber, OrderStatus, ShippingAddress, Sku, StatusRules, TimelineEntry,
    Totals, invoice_number,
};
use crate::returns::{Return, ReturnLine, ReturnStatus, ReturnStep};

pub struct SqlStore<DB: platform::db::Backend> {
    db: StorePool<DB>,
    /// The lines of orders placed by this process whose saga has not ended yet. An order's lines
    /// never change once written, so the saga's last step builds its event (`order.confirmed`
    /// lists them) from these instead of reading them back; an order another process placed, or
    /// one forgotten here, is read as before.
    saga_lines: Mutex<HashMap<OrderId, Arc<[OrderLine]>>>,
}

/// At most this many orders' lines are kept.
const SAGA_LINES_KEPT: usize = 4096;

impl<DB: platform::db::Backend> SqlStore<DB> {
    pub fn new(db: StorePool<DB>) -> Self {
        Self {
            db,
            saga_lines: Mutex::new(HashMap::new()),
        }
    }

    fn remember_lines(&self, id: OrderId, lines: Vec<OrderLine>) {
        let mut kept = lock(&self.saga_lines);
        if kept.len() >= SAGA_LINES_KEPT {
            // Sagas finished by another process leave their entry behind: start afresh, these
            // are only a shortcut.
            kept.clear();
        }
        kept.insert(id, lines.into());
    }

    fn known_lines(&self, id: OrderId) -> Option<Arc<[OrderLine]>> {
        lock(&self.saga_lines).get(&id).cloned()
    }

    /// The order's lines when `events` need them and they are known here.
    fn lines_if(&self, events: &Emit, id: OrderId) -> Option<Arc<[OrderLine]>> {
        match events {
            Emit::WithLines(_) => self.known_lines(id),
            Emit::Nothing | Emit::Order(_) => None,
        }
    }

    fn forget_lines(&self, id: OrderId) {
        lock(&self.saga_lines).remove(&id);
    }
}

const ORDER_COLUMNS: &str =
    "id, number, user_id, status, currency, subtotal, discount, shipping, tax, tax_rate_bp, total,
    refunded, shipping_method, shipping_address, coupon_code, from_cart, payment_method, payment_attempted, payment_id,
    payment_brand, payment_last4, payment_status, reservation_id, reservation_expires_at, reservation_committed,
    invoice_number, paid_at, carrier, tracking_number, cancel_reason, saga_step, saga_lease_owner, saga_lease_until,
    saga_attempts, created_at, updated_at, version";

#[derive(FromRow)]
struct OrderRow {
    id: Uuid,
    number: String,
    user_id: Uuid,
    status: String,
    currency: String,
    subtotal: i64,
    discount: i64,
    shipping: i64,
    tax: i64,
    tax_rate_bp: i64,
    total: i64,
    refunded: i64,
    shipping_method: String,
    shipping_address: String,
    coupon_code: Option<String>,
    from_cart: bool,
    payment_method: String,
    payment_attempted: bool,
    payment_id: Option<String>,
    payment_brand: Option<String>,
    payment_last4: Option<String>,
    payment_status: Option<String>,
    reservation_id: Option<Uuid>,
    reservation_expires_at: Option<OffsetDateTime>,
    reservation_committed: bool,
    invoice_number: Option<String>,
    paid_at: Option<OffsetDateTime>,
    carrier: Option<String>,
    tracking_number: Option<String>,
    cancel_reason: Option<String>,
    saga_step: Option<String>,
    saga_lease_owner: Option<Uuid>,
    saga_lease_until: Option<OffsetDateTime>,
    saga_attempts: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

impl TryFrom<OrderRow> for Order {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, Self::Error> {
        let address: ShippingAddress = serde_json::from_str(&r.shipping_address)
            .map_err(|e| StoreError::Corrupt(format!("order {} address: {e}", r.id)))?;
        Ok(Order {
            id: OrderId(r.id),
            number: OrderNumber::from_trusted(r.number),
            user_id: r.user_id,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            currency: Currency::parse(&r.currency)
                .map_err(|e| StoreError::Corrupt(format!("order {} currency: {e}", r.id)))?,
            totals: Totals {
                subtotal: r.subtotal,
                discount: r.discount,
                shipping: r.shipping,
                tax: r.tax,
                tax_rate_bp: u32::try_from(r.tax_rate_bp).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                total: r.total,
            },
            refunded: r.refunded,
            shipping_method: r.shipping_method,
            shipping_address: address,
            coupon_code: r.coupon_code,
            from_cart: r.from_cart,
            payment_method: r.payment_method,
            payment_attempted: r.payment_attempted,
            payment_id: r.payment_id,
            payment_brand: r.payment_brand,
            payment_last4: r.payment_last4,
            payment_status: r.payment_status,
            reservation_id: r.reservation_id,
            reservation_expires_at: r.reservation_expires_at,
            reservation_committed: r.reservation_committed,
            invoice_number: r.invoice_number,
            paid_at: r.paid_at,
            carrier: r.carrier,
            tracking_number: r.tracking_number,
            cancel_reason: r.cancel_reason,
            saga_step: r
                .saga_step
                .as_deref()
                .map(SagaStep::parse)
                .transpose()
                .map_err(StoreError::Corrupt)?,
            saga_lease_owner: r.saga_lease_owner,
            saga_lease_until: r.saga_lease_until,
            saga_attempts: r.saga_attempts,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
    }
}

#[derive(FromRow)]
struct LineRow {
    line: i64,
    sku: String,
    product_id: Uuid,
    name: String,
    quantity: i64,
    unit_price: i64,
    line_total: i64,
}

impl From<LineRow> for OrderLine {
    fn from(r: LineRow) -> Self {
        OrderLine {
            line: r.line,
            sku: Sku::from_trusted(r.sku),
            product_id: r.product_id,
            name: r.name,
            quantity: r.quantity,
            unit_price: r.unit_price,
            line_total: r.line_total,
        }
    }
}

#[derive(FromRow)]
struct TimelineRow {
    at: OffsetDateTime,
    from_status: Option<String>,
    to_status: String,
    actor: String,
    reason: String,
}

impl TryFrom<TimelineRow> for TimelineEntry {
    type Error = StoreError;
    fn try_from(r: TimelineRow) -> Result<Self, Self::Error> {
        Ok(TimelineEntry {
            at: r.at,
            from: r
                .from_status
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(StoreError::Corrupt)?,
            to: r.to_status.parse().map_err(StoreError::Corrupt)?,
            actor: r.actor,
            reason: r.reason,
        })
    }
}

#[derive(FromRow)]
struct ClaimRow {
    user_id: Uuid,
    idem_key: String,
    request_hash: Vec<u8>,
    order_id: Uuid,
    created_at: OffsetDateTime,
}

impl From<ClaimRow> for Claim {
    fn from(r: ClaimRow) -> Self {
        Claim {
            user_id: r.user_id,
            key: r.idem_key,
            request_hash: r.request_hash,
            order_id: OrderId(r.order_id),
            created_at: r.created_at,
        }
    }
}

const COUPON_COLUMNS: &str =
    "code, kind, value, currency, valid_from, valid_until, max_uses, uses, min_subtotal, active, created_at";

#[derive(FromRow)]
struct CouponRow {
    code: String,
    kind: String,
    value: i64,
    currency: Option<String>,
    valid_from: Option<OffsetDateTime>,
    valid_until: Option<OffsetDateTime>,
    max_uses: Option<i64>,
    uses: i64,
    min_subtotal: Option<i64>,
    active: bool,
    created_at: OffsetDateTime,
}

impl TryFrom<CouponRow> for Coupon {
    type Error = StoreError;
    fn try_from(r: CouponRow) -> Result<Self, Self::Error> {
        let kind = match (r.kind.as_str(), r.currency) {
            ("percentage", _) => {
                CouponKind::Percentage(u32::try_from(r.value).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            }
            ("fixed", Some(currency)) => CouponKind::Fixed {
                amount: r.value,
                currency: Currency::parse(&currency)
                    .map_err(|e| StoreError::Corrupt(format!("coupon {} currency: {e}", r.code)))?,
            },
            (kind, _) => return Err(StoreError::Corrupt(format!("coupon {} has kind {kind}", r.code))),
        };
        Ok(Coupon {
            code: r.code,
            kind,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            max_uses: r.max_uses,
            uses: r.uses,
            min_subtotal: r.min_subtotal,
            active: r.active,
            created_at: r.created_at,
        })
    }
}

#[derive(FromRow)]
struct RefundRow {
    id: Uuid,
    order_id: Uuid,
    idem_key: String,
    amount: i64,
    reason: String,
    actor: String,
    state: String,
    refund_id: Option<String>,
}

impl From<RefundRow> for RefundRecord {
    fn from(r: RefundRow) -> Self {
        RefundRecord {
            id: r.id,
            order_id: OrderId(r.order_id),
            key: r.idem_key,
            amount: r.amount,
            reason: r.reason,
            actor: r.actor,
            completed: r.state == "completed",
            refund_id: r.refund_id,
        }
    }
}

const RETURN_COLUMNS: &str = "r.id, r.order_id, o.number AS order_number, o.currency, r.user_id, r.status, r.reason,
    r.note, r.refund_amount, r.refund_id, r.step, r.lease_owner, r.lease_until, r.created_at, r.updated_at";

#[derive(FromRow)]
struct ReturnRow {
    id: Uuid,
    order_id: Uuid,
    order_number: String,
    currency: String,
    user_id: Uuid,
    status: String,
    reason: String,
    note: Option<String>,
    refund_amount: Option<i64>,
    refund_id: Option<String>,
    step: Option<String>,
    lease_owner: Option<Uuid>,
    lease_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl ReturnRow {
    fn into_return(self, lines: Vec<ReturnLine>) -> StoreResult<Return> {
        Ok(Return {
            id: self.id,
            order_id: OrderId(self.order_id),
            order_number: self.order_number,
            currency: self.currency,
            user_id: self.user_id,
            status: self.status.parse::<ReturnStatus>().map_err(StoreError::Corrupt)?,
            reason: self.reason,
            note: self.note,
            refund_amount: self.refund_amount,
            refund_id: self.refund_id,
            step: self
                .step
                .as_deref()
                .map(ReturnStep::parse)
                .transpose()
                .map_err(StoreError::Corrupt)?,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
            created_at: self.created_at,
            updated_at: self.updated_at,
            lines,
        })
    }
}

#[derive(FromRow)]
struct ReturnLineRow {
    return_id: Uuid,
    line: i64,
    sku: String,
    name: String,
    quantity: i64,
    unit_price: i64,
    restock: Option<bool>,
}

impl From<ReturnLineRow> for ReturnLine {
    fn from(r: ReturnLineRow) -> Self {
        ReturnLine {
            line: r.line,
            sku: Sku::from_trusted(r.sku),
            name: r.name,
            quantity: r.quantity,
            unit_price: r.unit_price,
            restock: r.restock,
        }
    }
}

/// Pairs each return row with its lines (both sorted by return id).
fn assemble(rows: Vec<ReturnRow>, lines: Vec<ReturnLineRow>) -> StoreResult<Vec<Return>> {
    let mut by_return: std::collections::HashMap<Uuid, Vec<ReturnLine>> = std::collections::HashMap::new();
    for l in lines {
        by_return.entry(l.return_id).or_default().push(ReturnLine::from(l));
    }
    rows.into_iter()
        .map(|row| {
            let lines = by_return.remove(&row.id).unwrap_or_default();
            row.into_return(lines)
        })
        .collect()
}

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

fn address_json(a: &ShippingAddress) -> StoreResult<String> {
    serde_json::to_string(a).map_err(|e| StoreError::Corrupt(e.to_string()))
}

platform::sql_store! {
    impl SqlStore<DB> {
        /// The counter's next value (starting at 1), in the caller's transaction.
        async fn next_counter(conn: &mut DB::Connection, name: &str) -> StoreResult<i64> {
            Self::take_from_counter(conn, name, 1).await
        }

        /// Advances the counter by `n` (from 0) in the caller's transaction: the caller owns the
        /// `n` values up to the one answered.
        async fn take_from_counter(conn: &mut DB::Connection, name: &str, n: i64) -> StoreResult<i64> {
            let (value,) = sqlx::query_as::<_, (i64,)>(
                "INSERT INTO counters (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + $2
             RETURNING value",
            )
            .bind(name)
            .bind(n)
            .fetch_one(&mut *conn)
            .await?;
            Ok(value)
        }

        async fn insert_timeline(conn: &mut DB::Connection, id: OrderId, entries: &[TimelineEntry]) -> StoreResult<()> {
            if entries.is_empty() {
                return Ok(());
            }
            let text = format!(
                "INSERT INTO order_timeline (id, order_id, at, from_status, to_status, actor, reason) VALUES {}",
                platform::db::values_rows(entries.len(), 7)
            );
            let mut query = sqlx::query(sql(text));
            for e in entries {
                query = query
                    .bind(Uuid::now_v7())
                    .bind(id.0)
                    .bind(e.at)
                    .bind(e.from.map(OrderStatus::as_str))
                    .bind(e.to.as_str())
                    .bind(e.actor.as_str())
                    .bind(e.reason.as_str());
            }
            query.execute(&mut *conn).await?;
            Ok(())
        }

        /// The next order number. PostgreSQL takes it from a sequence, which holds no lock: the
        /// counters row it replaces was locked by each checkout from its number to its commit, and
        /// concurrent checkouts queued on it. SQLite keeps the counter, in this transaction (its
        /// writers take turns anyway), so there a failed placement leaves no gap.
        async fn next_order_number(conn: &mut DB::Connection) -> StoreResult<i64> {
            if DB::NAME == <sqlx::Postgres as sqlx::Database>::NAME {
                let (value,) = sqlx::query_as::<_, (i64,)>("SELECT nextval('order_numbers')")
                    .fetch_one(&mut *conn)
                    .await?;
                return Ok(value);
            }
            Self::next_counter(conn, "order_number").await
        }

        async fn lines_of(conn: &mut DB::Connection, id: OrderId) -> StoreResult<Vec<OrderLine>> {
            Ok(sqlx::query_as::<_, LineRow>(
                "SELECT line, sku, product_id, name, quantity, unit_price, line_total FROM order_lines
             WHERE order_id = $1 ORDER BY line",
            )
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(OrderLine::from)
            .collect())
        }

        async fn order_in(conn: &mut DB::Connection, id: OrderId, lock: &str) -> StoreResult<Option<Order>> {
            sqlx::query_as::<_, OrderRow>(sql(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1{lock}")))
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await?
                .map(Order::try_from)
                .transpose()
        }

        /// Writes every mutable column of `o`; with `only_at`, only if the row is at that version.
        /// Whether a row was written.
        async fn write_order(conn: &mut DB::Connection, o: &Order, only_at: Option<i64>) -> StoreResult<bool> {
            const SET: &str = "UPDATE orders SET status = $2, refunded = $3, payment_attempted = $4, payment_id = $5,
                payment_brand = $6, payment_last4 = $7, payment_status = $8, reservation_id = $9,
                reservation_expires_at = $10, reservation_committed = $11, invoice_number = $12, paid_at = $13,
                carrier = $14, tracking_number = $15, cancel_reason = $16, saga_step = $17, saga_lease_owner = $18,
                saga_lease_until = $19, saga_attempts = $20, updated_at = $21, version = version + 1";
            let statement = match only_at {
                None => format!("{SET} WHERE id = $1"),
                Some(_) => format!("{SET} WHERE id = $1 AND version = $22"),
            };
            let mut query = sqlx::query(sql(statement))
            .bind(o.id.0)
            .bind(o.status.as_str())
            .bind(o.refunded)
            .bind(o.payment_attempted)
            .bind(o.payment_id.as_deref())
            .bind(o.payment_brand.as_deref())
            .bind(o.payment_last4.as_deref())
            .bind(o.payment_status.as_deref())
            .bind(o.reservation_id)
            .bind(o.reservation_expires_at)
            .bind(o.reservation_committed)
            .bind(o.invoice_number.as_deref())
            .bind(o.paid_at)
            .bind(o.carrier.as_deref())
            .bind(o.tracking_number.as_deref())
            .bind(o.cancel_reason.as_deref())
            .bind(o.saga_step.map(SagaStep::as_str))
            .bind(o.saga_lease_owner)
            .bind(o.saga_lease_until)
            .bind(o.saga_attempts)
            .bind(o.updated_at);
            if let Some(version) = only_at {
                query = query.bind(version);
            }
            Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
        }

        /// Writes what `decide` made of `current`: the order and everything that goes with it.
        /// With `only_at`, the order row is written first and only at that version (`None`, and
        /// nothing else written, when it has moved on); the invoice counter is then not allowed,
        /// as it must be locked after the order row. `lines` are the order's if known.
        async fn write_mutation(
            conn: &mut DB::Connection,
            current: &Order,
            mutation: Mutation,
            now: OffsetDateTime,
            lines: Option<Arc<[OrderLine]>>,
            only_at: Option<i64>,
        ) -> StoreResult<Option<Order>> {
            let id = current.id;
            let mut order = mutation.order;
            order.updated_at = now;
            if only_at.is_some() && !Self::write_order(&mut *conn, &order, only_at).await? {
                return Ok(None);
            }
            if let Some(code) = order.coupon_code.as_deref()
                && current.status.releases_coupon(order.status)
            {
                sqlx::query("UPDATE coupons SET uses = uses - 1 WHERE code = $1 AND uses > 0")
                    .bind(code)
                    .execute(&mut *conn)
                    .await?;
            }
            Self::insert_timeline(&mut *conn, id, &mutation.timeline).await?;
            if let Some((row, refund_id)) = &mutation.complete_refund {
                sqlx::query("UPDATE order_refunds SET state = 'completed', refund_id = $2 WHERE id = $1")
                    .bind(*row)
                    .bind(refund_id.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            let with_lines = matches!(mutation.events, Emit::WithLines(_));
            let lines: Arc<[OrderLine]> = match lines {
                Some(lines) if with_lines => lines,
                None if with_lines => Self::lines_of(&mut *conn, id).await?.into(),
                _ => Arc::new([]),
            };
            if only_at.is_none() {
                Self::write_order(&mut *conn, &order, None).await?;
            }
            order.version += 1;
            let events = match mutation.events {
                Emit::Nothing => Vec::new(),
                Emit::Order(build) => build(&order),
                Emit::WithLines(build) => build(&order, &lines),
            };
            enqueue_all(&mut *conn, &events).await?;
            Ok(Some(order))
        }

        async fn insert_order(conn: &mut DB::Connection, o: &Order) -> StoreResult<()> {
            sqlx::query(sql(format!(
                "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
             $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35,
             $36, $37)"
            )))
            .bind(o.id.0)
            .bind(o.number.as_str())
            .bind(o.user_id)
            .bind(o.status.as_str())
            .bind(o.currency.as_str())
            .bind(o.totals.subtotal)
            .bind(o.totals.discount)
            .bind(o.totals.shipping)
            .bind(o.totals.tax)
            .bind(i64::from(o.totals.tax_rate_bp))
            .bind(o.totals.total)
            .bind(o.refunded)
            .bind(o.shipping_method.as_str())
            .bind(address_json(&o.shipping_address)?)
            .bind(o.coupon_code.as_deref())
            .bind(o.from_cart)
            .bind(o.payment_method.as_str())
            .bind(o.payment_attempted)
            .bind(o.payment_id.as_deref())
            .bind(o.payment_brand.as_deref())
            .bind(o.payment_last4.as_deref())
            .bind(o.payment_status.as_deref())
            .bind(o.reservation_id)
            .bind(o.reservation_expires_at)
            .bind(o.reservation_committed)
            .bind(o.invoice_number.as_deref())
            .bind(o.paid_at)
            .bind(o.carrier.as_deref())
            .bind(o.tracking_number.as_deref())
            .bind(o.cancel_reason.as_deref())
            .bind(o.saga_step.map(SagaStep::as_str))
            .bind(o.saga_lease_owner)
            .bind(o.saga_lease_until)
            .bind(o.saga_attempts)
            .bind(o.created_at)
            .bind(o.updated_at)
            .bind(o.version)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
    }
}

platform::sql_store! {
    impl SqlStore<DB> {
        async fn timeline_of(conn: &mut DB::Connection, id: OrderId) -> StoreResult<Vec<TimelineEntry>> {
            sqlx::query_as::<_, TimelineRow>(
                "SELECT at, from_status, to_status, actor, reason FROM order_timeline WHERE order_id = $1 ORDER BY id",
            )
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(TimelineEntry::try_from)
            .collect()
        }

        /// The returns `column` (a fixed fragment: `r.order_id` or `r.id`) selects, with their lines.
        async fn returns_where(conn: &mut DB::Connection, column: &str, value: Uuid) -> StoreResult<Vec<Return>> {
            let rows = sqlx::query_as::<_, ReturnRow>(sql(format!(
                "SELECT {RETURN_COLUMNS} FROM order_returns r JOIN orders o ON o.id = r.order_id WHERE {column} = $1
             ORDER BY r.id"
            )))
            .bind(value)
            .fetch_all(&mut *conn)
            .await?;
            let lines = sqlx::query_as::<_, ReturnLineRow>(sql(format!(
                "SELECT l.return_id, l.line, l.sku, l.name, l.quantity, l.unit_price, l.restock
             FROM order_return_lines l JOIN order_returns r ON r.id = l.return_id WHERE {column} = $1
             ORDER BY l.return_id, l.line"
            )))
            .bind(value)
            .fetch_all(&mut *conn)
            .await?;
            assemble(rows, lines)
        }

        async fn save_return(conn: &mut DB::Connection, r: &Return) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO order_returns (id, order_id, user_id, status, reason, note, refund_amount, refund_id, step,
                                        lease_owner, lease_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, note = excluded.note,
                refund_amount = excluded.refund_amount, refund_id = excluded.refund_id, step = excluded.step,
                lease_owner = excluded.lease_owner, lease_until = excluded.lease_until,
                updated_at = excluded.updated_at",
            )
            .bind(r.id)
            .bind(r.order_id.0)
            .bind(r.user_id)
            .bind(r.status.as_str())
            .bind(r.reason.as_str())
            .bind(r.note.as_deref())
            .bind(r.refund_amount)
            .bind(r.refund_id.as_deref())
            .bind(r.step.map(ReturnStep::as_str))
            .bind(r.lease_owner)
            .bind(r.lease_until)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(&mut *conn)
            .await?;
            for l in &r.lines {
                sqlx::query(
                    "INSERT INTO order_return_lines (return_id, line, sku, name, quantity, unit_price, restock)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (return_id, line) DO UPDATE SET restock = excluded.restock",
                )
                .bind(r.id)
                .bind(l.line)
                .bind(l.sku.as_str())
                .bind(l.name.as_str())
                .bind(l.quantity)
                .bind(l.unit_price)
                .bind(l.restock)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }
    }
}

platform::sql_store! {
    #[async_trait::async_trait]
    impl OrderStore for SqlStore<DB> {
        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "claim"))]
        async fn claim(&self, c: &Claim) -> StoreResult<Claimed> {
            // One statement, no transaction: the key's row either goes in or is already there.
            let inserted = sqlx::query(
                "INSERT INTO order_claims (user_id, idem_key, request_hash, order_id, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, idem_key) DO NOTHING",
            )
            .bind(c.user_id)
            .bind(c.key.as_str())
            .bind(c.request_hash.as_slice())
            .bind(c.order_id.0)
            .bind(c.created_at)
            .execute(self.db.pool())
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Claimed::New);
            }
            self.find_claim(c.user_id, &c.key)
                .await?
                .map(Claimed::Existing)
                .ok_or_else(|| StoreError::Corrupt("a claim vanished while in use".into()))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "find_claim"))]
        async fn find_claim(&self, user_id: Uuid, key: &str) -> StoreResult<Option<Claim>> {
            Ok(sqlx::query_as::<_, ClaimRow>(
                "SELECT user_id, idem_key, request_hash, order_id, created_at FROM order_claims
             WHERE user_id = $1 AND idem_key = $2",
            )
            .bind(user_id)
            .bind(key)
            .fetch_optional(self.db.pool())
            .await?
            .map(Claim::from))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "delete_claim"))]
        async fn delete_claim(&self, user_id: Uuid, key: &str) -> StoreResult<()> {
            let mut tx = self.db.write().await?;
            sqlx::query("DELETE FROM order_claims WHERE user_id = $1 AND idem_key = $2")
                .bind(user_id)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "purge_orphan_claims"))]
        async fn purge_orphan_claims(&self, before: OffsetDateTime) -> StoreResult<u64> {
            let mut tx = self.db.write().await?;
            let done = sqlx::query(
                "DELETE FROM order_claims WHERE created_at < $1
             AND NOT EXISTS (SELECT 1 FROM orders WHERE orders.id = order_claims.order_id)",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "place"))]
        async fn place(&self, new: NewOrder, _now: OffsetDateTime) -> StoreResult<PlaceOutcome> {
            let NewOrder {
                mut order,
                lines,
                timeline,
                events,
            } = new;
            let mut tx = self.db.write().await?;
            if let Some(code) = &order.coupon_code {
                let used = sqlx::query(
                    "UPDATE coupons SET uses = uses + 1
                 WHERE code = $1 AND active = TRUE AND (max_uses IS NULL OR uses < max_uses)",
                )
                .bind(code.as_str())
                .execute(&mut *tx)
                .await?;
                if used.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(PlaceOutcome::CouponExhausted);
                }
            }
            let n = Self::next_order_number(&mut *tx).await?;
            order.number = OrderNumber::from_sequence(n);
            Self::insert_order(&mut *tx, &order).await?;
            if !lines.is_empty() {
                let text = format!(
                    "INSERT INTO order_lines (order_id, line, sku, product_id, name, quantity, unit_price, line_total)
                 VALUES {}",
                    platform::db::values_rows(lines.len(), 8)
                );
                let mut query = sqlx::query(sql(text));
                for l in &lines {
                    query = query
                        .bind(order.id.0)
                        .bind(l.line)
                        .bind(l.sku.as_str())
                        .bind(l.product_id)
                        .bind(l.name.as_str())
                        .bind(l.quantity)
                        .bind(l.unit_price)
                        .bind(l.line_total);
                }
                query.execute(&mut *tx).await?;
            }
            Self::insert_timeline(&mut *tx, order.id, &timeline).await?;
            enqueue_all(&mut *tx, &events(&order, &lines)).await?;
            tx.commit().await?;
            if order.saga_step.is_some() {
                self.remember_lines(order.id, lines);
            }
            Ok(PlaceOutcome::Placed(Box::new(order)))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "order"))]
        async fn order(&self, id: OrderId) -> StoreResult<Option<OrderDetail>> {
            let mut conn = self.db.acquire().await?;
            let Some(order) = Self::order_in(&mut conn, id, "").await? else {
                return Ok(None);
            };
            let lines = Self::lines_of(&mut conn, id).await?;
            let timeline = Self::timeline_of(&mut conn, id).await?;
            Ok(Some(OrderDetail { order, lines, timeline }))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "timeline"))]
        async fn timeline(&self, id: OrderId) -> StoreResult<Vec<TimelineEntry>> {
            let mut conn = self.db.acquire().await?;
            Self::timeline_of(&mut conn, id).await
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "list"))]
        async fn list(&self, f: &OrderFilter) -> StoreResult<Vec<Order>> {
            sqlx::query_as::<_, OrderRow>(sql(format!(
                "SELECT {ORDER_COLUMNS} FROM orders
             WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR created_at >= $3)
               AND ($4 IS NULL OR created_at < $4) AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6"
            )))
            .bind(f.user_id)
            .bind(f.status.map(OrderStatus::as_str))
            .bind(f.since)
            .bind(f.until)
            .bind(f.before)
            .bind(i64::from(f.limit))
            .fetch_all(self.db.pool())
            .await?
            .into_iter()
            .map(Order::try_from)
            .collect()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "update"))]
        async fn update(&self, id: OrderId, now: OffsetDateTime, decide: Decide) -> StoreResult<Result<Order, Refusal>> {
            let mut tx = self.db.write().await?;
            let current = Self::order_in(&mut *tx, id, self.db.for_update())
                .await?
                .ok_or(StoreError::NotFound)?;
            let mutation = match decide(&current) {
                Ok(m) => m,
                Err(refusal) => {
                    tx.rollback().await?;
                    return Ok(Err(refusal));
                }
            };
            let lines = self.lines_if(&mutation.events, id);
            let order = Self::write_mutation(&mut *tx, &current, mutation, now, lines, None)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("order {id} was not written")))?;
            tx.commit().await?;
            if order.saga_step.is_none() {
                self.forget_lines(id);
            }
            Ok(Ok(order))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "update_known"))]
        async fn update_known(&self, known: &Order, now: OffsetDateTime, decide: Decide) -> StoreResult<Option<Order>> {
            let Ok(mutation) = decide(known) else {
                return Ok(None);
            };
            let id = known.id;
            let lines = self.lines_if(&mutation.events, id);
            let mut tx = self.db.write().await?;
            let Some(order) = Self::write_mutation(&mut *tx, known, mutation, now, lines, Some(known.version)).await? else {
                tx.rollback().await?;
                return Ok(None);
            };
            tx.commit().await?;
            if order.saga_step.is_none() {
                self.forget_lines(id);
            }
            Ok(Some(order))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "assign_invoices"))]
        async fn assign_invoices(
            &self,
            ids: &[OrderId],
            now: OffsetDateTime,
            paid: for<'o> fn(&'o Order) -> Event,
        ) -> StoreResult<Vec<Order>> {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut tx = self.db.write().await?;
            // Order rows first, in one order for every batch, then the counter: two batches that
            // share an order wait for each other instead of deadlocking.
            let placeholders = platform::db::placeholder_list(ids.len());
            let text = format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE id IN ({placeholders})
                 AND paid_at IS NOT NULL AND invoice_number IS NULL ORDER BY paid_at, id{}",
                self.db.for_update()
            );
            let mut query = sqlx::query_as::<_, OrderRow>(sql(text));
            for id in ids {
                query = query.bind(id.0);
            }
            let mut orders = query
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(Order::try_from)
                .collect::<StoreResult<Vec<_>>>()?;
            if orders.is_empty() {
                tx.rollback().await?;
                return Ok(orders);
            }
            let year = now.year();
            let taken = i64::try_from(orders.len()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let last = Self::take_from_counter(&mut *tx, &format!("invoice:{year}"), taken).await?;
            // One statement for the batch: `CASE id WHEN $2 THEN $3 WHEN $4 THEN $5 ...`.
            let mut cases = String::with_capacity(orders.len() * 24);
            for n in 0..orders.len() {
                cases.push_str(&format!(" WHEN ${} THEN ${}", 2 * n + 2, 2 * n + 3));
            }
            let text = format!(
                "UPDATE orders SET invoice_number = CASE id{cases} END, updated_at = $1, version = version + 1
                 WHERE id IN ({})",
                (0..orders.len()).map(|n| format!("${}", 2 * n + 2)).collect::<Vec<_>>().join(", ")
            );
            let mut update = sqlx::query(sql(text)).bind(now);
            for (n, order) in (last - taken + 1..).zip(orders.iter_mut()) {
                order.invoice_number = Some(invoice_number(year, n));
                order.updated_at = now;
                order.version += 1;
                update = update.bind(order.id.0).bind(order.invoice_number.clone());
            }
            let updated = update.execute(&mut *tx).await?.rows_affected();
            if updated != orders.len() as u64 {
                // Cannot happen with the rows locked above; rolls back rather than skip a number.
                return Err(StoreError::Corrupt(format!("numbered {updated} of {} locked orders", orders.len())));
            }
            let events: Vec<Event> = orders.iter().map(paid).collect();
            enqueue_all(&mut *tx, &events).await?;
            tx.commit().await?;
            Ok(orders)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "due_sagas"))]
        async fn due_sagas(&self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<OrderId>> {
            let due = "SELECT id FROM orders WHERE saga_step IS NOT NULL AND (saga_lease_until IS NULL OR saga_lease_until <= $1)
             ORDER BY id LIMIT $2";
            let ids = platform::db::ids_at(self.db.pool(), due, now, limit).await?;
            Ok(ids.into_iter().map(OrderId).collect())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "stuck"))]
        async fn stuck(&self, statuses: &[OrderStatus], before: OffsetDateTime) -> StoreResult<Vec<(String, i64)>> {
            let mut counts = Vec::with_capacity(statuses.len());
            for status in statuses {
                let (n,) = sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM orders WHERE status = $1 AND updated_at < $2")
                    .bind(status.as_str())
                    .bind(before)
                    .fetch_one(self.db.pool())
                    .await?;
                counts.push((status.as_str().to_owned(), n));
            }
            Ok(counts)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "add_note"))]
        async fn add_note(&self, id: OrderId, entry: &TimelineEntry) -> StoreResult<()> {
            let mut tx = self.db.write().await?;
            Self::insert_timeline(&mut *tx, id, std::slice::from_ref(entry)).await?;
            tx.commit().await?;
            Ok(())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "refund_record"))]
        async fn refund_record(&self, order: OrderId, key: &str) -> StoreResult<Option<RefundRecord>> {
            Ok(sqlx::query_as::<_, RefundRow>(
                "SELECT id, order_id, idem_key, amount, reason, actor, state, refund_id FROM order_refunds
             WHERE order_id = $1 AND idem_key = $2",
            )
            .bind(order.0)
            .bind(key)
            .fetch_optional(self.db.pool())
            .await?
            .map(RefundRecord::from))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_refund"))]
        async fn insert_refund(&self, r: &RefundRecord, now: OffsetDateTime) -> StoreResult<Option<RefundRecord>> {
            let mut tx = self.db.write().await?;
            let inserted = sqlx::query(
                "INSERT INTO order_refunds (id, order_id, idem_key, amount, reason, actor, state, refund_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', NULL, $7)",
            )
            .bind(r.id)
            .bind(r.order_id.0)
            .bind(r.key.as_str())
            .bind(r.amount)
            .bind(r.reason.as_str())
            .bind(r.actor.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    Ok(None)
                }
                Err(e) if is_unique_violation(&e, "order_refunds") || is_unique_violation(&e, "idem_key") => {
                    tx.rollback().await?;
                    self.refund_record(r.order_id, &r.key).await
                }
                Err(e) => Err(e.into()),
            }
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "create_coupon"))]
        async fn create_coupon(&self, c: &Coupon) -> StoreResult<bool> {
            let (kind, value, currency) = match &c.kind {
                CouponKind::Percentage(bp) => ("percentage", i64::from(*bp), None),
                CouponKind::Fixed { amount, currency } => ("fixed", *amount, Some(currency.as_str())),
            };
            let mut tx = self.db.write().await?;
            let done = sqlx::query(
                "INSERT INTO coupons (code, kind, value, currency, valid_from, valid_until, max_uses, uses, min_subtotal,
                                  active, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (code) DO NOTHING",
            )
            .bind(c.code.as_str())
            .bind(kind)
            .bind(value)
            .bind(currency)
            .bind(c.valid_from)
            .bind(c.valid_until)
            .bind(c.max_uses)
            .bind(c.uses)
            .bind(c.min_subtotal)
            .bind(c.active)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "coupon"))]
        async fn coupon(&self, code: &str) -> StoreResult<Option<Coupon>> {
            sqlx::query_as::<_, CouponRow>(sql(format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE code = $1")))
                .bind(code)
                .fetch_optional(self.db.pool())
                .await?
                .map(Coupon::try_from)
                .transpose()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "coupons"))]
        async fn coupons(&self) -> StoreResult<Vec<Coupon>> {
            sqlx::query_as::<_, CouponRow>(sql(format!(
                "SELECT {COUPON_COLUMNS} FROM coupons ORDER BY code LIMIT 1000"
            )))
            .fetch_all(self.db.pool())
            .await?
            .into_iter()
            .map(Coupon::try_from)
            .collect()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "deactivate_coupon"))]
        async fn deactivate_coupon(&self, code: &str) -> StoreResult<Option<Coupon>> {
            let mut tx = self.db.write().await?;
            let row = sqlx::query_as::<_, CouponRow>(sql(format!(
                "UPDATE coupons SET active = FALSE WHERE code = $1 RETURNING {COUPON_COLUMNS}"
            )))
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            row.map(Coupon::try_from).transpose()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "returns_of"))]
        async fn returns_of(&self, order: OrderId) -> StoreResult<Vec<Return>> {
            let mut conn = self.db.acquire().await?;
            Self::returns_where(&mut conn, "r.order_id", order.0).await
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "return_by_id"))]
        async fn return_by_id(&self, id: Uuid) -> StoreResult<Option<Return>> {
            let mut conn = self.db.acquire().await?;
            Ok(Self::returns_where(&mut conn, "r.id", id).await?.into_iter().next())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "list_returns"))]
        async fn list_returns(&self, f: &ReturnFilter) -> StoreResult<Vec<Return>> {
            let mut conn = self.db.acquire().await?;
            let rows = sqlx::query_as::<_, ReturnRow>(sql(format!(
                "SELECT {RETURN_COLUMNS} FROM order_returns r JOIN orders o ON o.id = r.order_id
             WHERE ($1 IS NULL OR r.status = $1) AND ($2 IS NULL OR r.user_id = $2) AND ($3 IS NULL OR r.id < $3)
             ORDER BY r.id DESC LIMIT $4"
            )))
            .bind(f.status.map(ReturnStatus::as_str))
            .bind(f.user_id)
            .bind(f.before)
            .bind(i64::from(f.limit))
            .fetch_all(&mut *conn)
            .await?;
            let mut lines = Vec::new();
            for row in &rows {
                lines.extend(
                    sqlx::query_as::<_, ReturnLineRow>(
                        "SELECT return_id, line, sku, name, quantity, unit_price, restock FROM order_return_lines
                     WHERE return_id = $1 ORDER BY line",
                    )
                    .bind(row.id)
                    .fetch_all(&mut *conn)
                    .await?,
                );
            }
            assemble(rows, lines)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "change_returns"))]
        async fn change_returns(
            &self,
            id: OrderId,
            now: OffsetDateTime,
            decide: ReturnDecide,
        ) -> StoreResult<Result<Option<Order>, Refusal>> {
            let mut tx = self.db.write().await?;
            let order = Self::order_in(&mut *tx, id, self.db.for_update())
                .await?
                .ok_or(StoreError::NotFound)?;
            let lines = Self::lines_of(&mut *tx, id).await?;
            let timeline = Self::timeline_of(&mut *tx, id).await?;
            let returns = Self::returns_where(&mut *tx, "r.order_id", id.0).await?;
            let detail = OrderDetail { order, lines, timeline };
            let mutation = match decide(&detail, &returns) {
                Ok(m) => m,
                Err(refusal) => {
                    tx.rollback().await?;
                    return Ok(Err(refusal));
                }
            };
            let written = match mutation.order {
                Some(mut order) => {
                    order.updated_at = now;
                    Self::write_order(&mut *tx, &order, None).await?;
                    order.version += 1;
                    Some(order)
                }
                None => None,
            };
            for r in &mutation.save {
                Self::save_return(&mut *tx, r).await?;
            }
            Self::insert_timeline(&mut *tx, id, &mutation.timeline).await?;
            enqueue_all(&mut *tx, &mutation.events).await?;
            tx.commit().await?;
            Ok(Ok(written))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "due_returns"))]
        async fn due_returns(&self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<(OrderId, Uuid)>> {
            Ok(sqlx::query_as::<_, (Uuid, Uuid)>(
                "SELECT order_id, id FROM order_returns WHERE step IS NOT NULL AND (lease_until IS NULL OR lease_until <= $1)
             ORDER BY id LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await?
            .into_iter()
            .map(|(order, id)| (OrderId(order), id))
            .collect())
        }
    }
}
