//! The SQL implementation of [`PaymentStore`] (and of the simulated provider's books), written
//! once and instantiated for SQLite and PostgreSQL. Every statement is parameterised and portable
//! (`$n` placeholders, `RETURNING`, `ON CONFLICT`, timestamps passed in from Rust).
//!
//! Concurrency:
//! - A payment leaves `processing` with `UPDATE ... WHERE status = 'processing'`: whoever answers
//!   first (the provider call, a webhook, the reconciler) settles it, the others change nothing.
//! - The partial unique index `payments_one_live_per_order` makes a second live payment for an
//!   order impossible to record.
//! - A refund locks its payment row (`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE`) and
//!   checks the remainder from the ledger inside that transaction: refunds can never exceed the
//!   captured amount, however many race.
//! - On SQLite, writers queue on an in-process mutex and open `BEGIN IMMEDIATE` (one writer at a
//!   time anyway; queueing avoids `database is locked` under bursts).

use platform::db::{RowsAffected, StorePool, is_unique_violation};
use platform::events::enqueue;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Created, IdempotencyRecord, Method, Payment, PaymentStore, ProviderRefundReport, Refund, Settlement, StoreError,
    StoreResult, WebhookApplied,
};
use crate::domain::{Currency, EntryKind, MethodId, PaymentId, PaymentStatus, RefundId, RefundStatus, refundable};
use crate::events;
use crate::provider::{SimIntent, SimStatus, SimulatedLedger};

pub struct SqlStore<DB: platform::db::Backend> {
    db: StorePool<DB>,
}

impl<DB: platform::db::Backend> SqlStore<DB> {
    pub fn new(db: StorePool<DB>) -> Self {
        Self { db }
    }
}

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

fn corrupt<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> StoreError + '_ {
    move |m| StoreError::Corrupt(format!("{what}: {m}"))
}

#[derive(FromRow)]
struct MethodRow {
    id: Uuid,
    user_id: Uuid,
    brand: String,
    last4: String,
    exp_month: i64,
    exp_year: i64,
    provider: String,
    provider_token: String,
    created_at: OffsetDateTime,
    saved: bool,
    removed_at: Option<OffsetDateTime>,
}

const METHOD_COLUMNS: &str =
    "id, user_id, brand, last4, exp_month, exp_year, provider, provider_token, created_at, saved, removed_at";

impl TryFrom<MethodRow> for Method {
    type Error = StoreError;
    fn try_from(r: MethodRow) -> Result<Self, Self::Error> {
        Ok(Method {
            id: MethodId(r.id),
            user_id: r.user_id,
            brand: r.brand.parse().map_err(corrupt("method brand"))?,
            last4: r.last4,
            exp_month: u8::try_from(r.exp_month).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            exp_year: i32::try_from(r.exp_year).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            provider: r.provider,
            provider_token: r.provider_token,
            created_at: r.created_at,
            saved: r.saved,
            removed_at: r.removed_at,
        })
    }
}

#[derive(FromRow)]
struct PaymentRow {
    id: Uuid,
    order_id: Uuid,
    customer_id: Uuid,
    method_id: Uuid,
    amount: i64,
    currency: String,
    capture: bool,
    status: String,
    brand: String,
    last4: String,
    provider: String,
    provider_intent: Option<String>,
    decline_code: Option<String>,
    failure_reason: Option<String>,
    created_by: Uuid,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
    captured_amount: i64,
    refunded_amount: i64,
    refunds_pending: i64,
}

/// A payment as its settling update returns it, with whether its card was saved.
#[derive(FromRow)]
struct SettledRow {
    #[sqlx(flatten)]
    payment: PaymentRow,
    method_saved: Option<bool>,
}

/// A payment with its amounts derived from the ledger (and the refunds in flight).
const PAYMENT_SELECT: &str = "SELECT p.id, p.order_id, p.customer_id, p.method_id, p.amount, p.currency, p.capture,
        p.status, p.brand, p.last4, p.provider, p.provider_intent, p.decline_code, p.failure_reason, p.created_by,
        p.created_at, p.updated_at, p.version,
        CAST(COALESCE((SELECT SUM(l.amount) FROM payment_ledger l WHERE l.payment_id = p.id AND l.kind = 'capture'), 0) AS BIGINT) AS captured_amount,
        CAST(COALESCE((SELECT SUM(l.amount) FROM payment_ledger l WHERE l.payment_id = p.id AND l.kind = 'refund'), 0) AS BIGINT) AS refunded_amount,
        CAST(COALESCE((SELECT SUM(r.amount) FROM refunds r WHERE r.payment_id = p.id AND r.status = 'pending'), 0) AS BIGINT) AS refunds_pending
    FROM payments p";

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;
    fn try_from(r: PaymentRow) -> Result<Self, Self::Error> {
        Ok(Payment {
            id: PaymentId(r.id),
            order_id: r.order_id,
            customer_id: r.customer_id,
            method_id: MethodId(r.method_id),
            amount: r.amount,
            currency: Currency::parse(&r.currency).map_err(corrupt("currency"))?,
            capture: r.capture,
            status: r.status.parse().map_err(corrupt("payment status"))?,
            brand: r.brand.parse().map_err(corrupt("payment brand"))?,
            last4: r.last4,
            provider: r.provider,
            provider_intent: r.provider_intent,
            decline_code: r
                .decline_code
                .map(|c| c.parse())
                .transpose()
                .map_err(corrupt("decline code"))?,
            failure_reason: r.failure_reason,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
            captured_amount: r.captured_amount,
            refunded_amount: r.refunded_amount,
            refunds_pending: r.refunds_pending,
        })
    }
}

#[derive(FromRow)]
struct RefundRow {
    id: Uuid,
    payment_id: Uuid,
    order_id: Uuid,
    amount: i64,
    currency: String,
    reason: Option<String>,
    status: String,
    provider_ref: Option<String>,
    failure_reason: Option<String>,
    created_by: Uuid,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const REFUND_SELECT: &str = "SELECT r.id, r.payment_id, p.order_id, r.amount, r.currency, r.reason, r.status,
        r.provider_ref, r.failure_reason, r.created_by, r.created_at, r.updated_at
    FROM refunds r JOIN payments p ON p.id = r.payment_id";

impl TryFrom<RefundRow> for Refund {
    type Error = StoreError;
    fn try_from(r: RefundRow) -> Result<Self, Self::Error> {
        Ok(Refund {
            id: RefundId(r.id),
            payment_id: PaymentId(r.payment_id),
            order_id: r.order_id,
            amount: r.amount,
            currency: Currency::parse(&r.currency).map_err(corrupt("currency"))?,
            reason: r.reason,
            status: r.status.parse().map_err(corrupt("refund status"))?,
            provider_ref: r.provider_ref,
            failure_reason: r.failure_reason,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(FromRow)]
struct IdempotencyRow {
    owner: Uuid,
    idem_key: String,
    request_hash: Vec<u8>,
    resource_id: Uuid,
}

#[derive(FromRow)]
struct SimIntentRow {
    id: String,
    idem_key: String,
    amount: i64,
    currency: String,
    status: String,
    decline_code: Option<String>,
    captured: i64,
    refunded: i64,
}

const SIM_COLUMNS: &str = "id, idem_key, amount, currency, status, decline_code, captured, refunded";

impl TryFrom<SimIntentRow> for SimIntent {
    type Error = StoreError;
    fn try_from(r: SimIntentRow) -> Result<Self, Self::Error> {
        Ok(SimIntent {
            status: SimStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("sim status {}", r.status)))?,
            decline_code: r
                .decline_code
                .map(|c| c.parse())
                .transpose()
                .map_err(corrupt("sim decline code"))?,
            id: r.id,
            idempotency_key: r.idem_key,
            amount: r.amount,
            currency: r.currency,
            captured: r.captured,
            refunded: r.refunded,
        })
    }
}

platform::sql_store! {
    impl SqlStore<DB> {
        async fn payment_in(conn: &mut DB::Connection, id: Uuid) -> StoreResult<Option<Payment>> {
            sqlx::query_as::<_, PaymentRow>(sql(format!("{PAYMENT_SELECT} WHERE p.id = $1")))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .map(Payment::try_from)
                .transpose()
        }

        async fn refund_in(conn: &mut DB::Connection, id: Uuid) -> StoreResult<Option<Refund>> {
            sqlx::query_as::<_, RefundRow>(sql(format!("{REFUND_SELECT} WHERE r.id = $1")))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .map(Refund::try_from)
                .transpose()
        }

        /// Moves a pending refund to its outcome; a completed one gets its ledger entry and its
        /// `refund.completed` event in the same transaction. `None` when it was not pending.
        async fn finish_refund_in(conn: &mut DB::Connection, id: RefundId, outcome: &Result<String, String>, now: OffsetDateTime) -> StoreResult<Option<Refund>> {
            let (status, provider_ref, failure) = match outcome {
                Ok(r) => (RefundStatus::Completed, Some(r.as_str()), None),
                Err(reason) => (RefundStatus::Failed, None, Some(reason.as_str())),
            };
            let updated = sqlx::query(
                "UPDATE refunds SET status = $2, provider_ref = $3, failure_reason = $4, updated_at = $5
             WHERE id = $1 AND status = 'pending'",
            )
            .bind(id.0)
            .bind(status.as_str())
            .bind(provider_ref)
            .bind(failure)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 0 {
                return Ok(None);
            }
            let refund = Self::refund_in(&mut *conn, id.0).await?.ok_or(StoreError::NotFound)?;
            if status == RefundStatus::Completed {
                Self::ledger_entry(
                    &mut *conn,
                    refund.payment_id.0,
                    EntryKind::Refund,
                    refund.amount,
                    refund.currency.as_str(),
                    Some(refund.id.0),
                    provider_ref,
                    now,
                )
                .await?;
                enqueue(&mut *conn, &events::refund_completed(&refund)).await?;
            }
            Ok(Some(refund))
        }

        /// Tries to record the idempotency key; `false` when it is taken (by a committed request, or
        /// by a concurrent one PostgreSQL waited for).
        async fn claim_key(conn: &mut DB::Connection, r: &IdempotencyRecord, now: OffsetDateTime) -> StoreResult<bool> {
            let result = sqlx::query(
                "INSERT INTO idempotency_keys (owner, scope, idem_key, request_hash, resource_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(r.owner)
            .bind(r.scope)
            .bind(r.key.as_str())
            .bind(r.request_hash.as_slice())
            .bind(r.resource_id)
            .bind(now)
            .execute(&mut *conn)
            .await;
            match result {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e, "idempotency_keys") => Ok(false),
                Err(e) => Err(e.into()),
            }
        }

        async fn key_used(&self, key: &IdempotencyRecord) -> StoreResult<IdempotencyRecord> {
            self.idempotency_lookup(key.owner, key.scope, &key.key)
                .await?
                .ok_or_else(|| StoreError::Corrupt("an idempotency key vanished while in use".into()))
        }

        async fn idempotency_lookup(&self, owner: Uuid, scope: &'static str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
            Ok(sqlx::query_as::<_, IdempotencyRow>(
                "SELECT owner, idem_key, request_hash, resource_id FROM idempotency_keys
             WHERE owner = $1 AND scope = $2 AND idem_key = $3",
            )
            .bind(owner)
            .bind(scope)
            .bind(key)
            .fetch_optional(self.db.pool())
            .await?
            .map(|r| IdempotencyRecord {
                owner: r.owner,
                scope,
                key: r.idem_key,
                request_hash: r.request_hash,
                resource_id: r.resource_id,
            }))
        }

        #[allow(clippy::too_many_arguments)]
        async fn ledger_entry(
            conn: &mut DB::Connection,
            payment: Uuid,
            kind: EntryKind,
            amount: i64,
            currency: &str,
            refund: Option<Uuid>,
            provider_ref: Option<&str>,
            now: OffsetDateTime,
        ) -> StoreResult<()> {
            Self::ledger_entries(conn, payment, &[(kind, amount)], currency, refund, provider_ref, now).await
        }

        /// Ledger entries of one payment, in one statement (a capture at once writes two).
        #[allow(clippy::too_many_arguments)]
        async fn ledger_entries(
            conn: &mut DB::Connection,
            payment: Uuid,
            entries: &[(EntryKind, i64)],
            currency: &str,
            refund: Option<Uuid>,
            provider_ref: Option<&str>,
            now: OffsetDateTime,
        ) -> StoreResult<()> {
            let text = format!(
                "INSERT INTO payment_ledger (id, payment_id, kind, amount, currency, refund_id, provider_ref, created_at)
             VALUES {}",
                platform::db::values_rows(entries.len(), 8)
            );
            let mut query = sqlx::query(sql(text));
            for (kind, amount) in entries {
                query = query
                    .bind(Uuid::now_v7())
                    .bind(payment)
                    .bind(kind.as_str())
                    .bind(*amount)
                    .bind(currency)
                    .bind(refund)
                    .bind(provider_ref)
                    .bind(now);
            }
            query.execute(&mut *conn).await?;
            Ok(())
        }

        /// A card is kept only when it works and the shopper asked to keep it: a card declined on its
        /// first use is removed, and so is a card not saved once a payment went through with it
        /// (after a `failed` payment, retryable, both stay usable).
        /// `saved`: whether the card was saved, as the settling update read it (`None`: no such
        /// card); a saved card that went through stays, with no statement spent on it.
        async fn forget_method_after(
            conn: &mut DB::Connection,
            method: Uuid,
            saved: Option<bool>,
            s: &Settlement,
            now: OffsetDateTime,
        ) -> StoreResult<()> {
            match s {
                Settlement::Declined { .. } => {
                    sqlx::query(
                        "UPDATE payment_methods SET removed_at = $2 WHERE id = $1 AND removed_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM payments p
                                       WHERE p.method_id = $1 AND p.status IN ('authorized', 'captured'))",
                    )
                    .bind(method)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                }
                Settlement::Authorized { .. } | Settlement::Captured { .. } if saved == Some(false) => {
                    sqlx::query("UPDATE payment_methods SET removed_at = $2 WHERE id = $1 AND removed_at IS NULL AND saved = $3")
                        .bind(method)
                        .bind(now)
                        .bind(false)
                        .execute(&mut *conn)
                        .await?;
                }
                Settlement::Authorized { .. } | Settlement::Captured { .. } | Settlement::Failed { .. } => {}
            }
            Ok(())
        }

        /// The settling update with its ledger entries and events, inside the caller's transaction.
        async fn settle_in(conn: &mut DB::Connection, id: PaymentId, s: &Settlement, now: OffsetDateTime) -> StoreResult<Option<Payment>> {
            let (intent, decline, failure) = match s {
                Settlement::Authorized { intent_id } | Settlement::Captured { intent_id, .. } => {
                    (Some(intent_id.as_str()), None, None)
                }
                Settlement::Declined { intent_id, code } => (intent_id.as_deref(), Some(code.as_str()), None),
                Settlement::Failed { intent_id, reason } => (intent_id.as_deref(), None, Some(reason.as_str())),
            };
            // A processing payment has no captures and no refunds yet, so its derived amounts
            // after settling are known: the update returns the row, with no re-read.
            let settled: Option<SettledRow> = sqlx::query_as(
                "UPDATE payments SET status = $2, provider_intent = COALESCE($3, provider_intent), decline_code = $4,
                    failure_reason = $5, updated_at = $6, version = version + 1
             WHERE id = $1 AND status = 'processing'
             RETURNING id, order_id, customer_id, method_id, amount, currency, capture, status, brand, last4, provider,
                 provider_intent, decline_code, failure_reason, created_by, created_at, updated_at, version,
                 CAST(0 AS BIGINT) AS captured_amount, CAST(0 AS BIGINT) AS refunded_amount,
                 CAST(0 AS BIGINT) AS refunds_pending,
                 (SELECT m.saved FROM payment_methods m WHERE m.id = payments.method_id) AS method_saved",
            )
            .bind(id.0)
            .bind(s.status().as_str())
            .bind(intent)
            .bind(decline)
            .bind(failure)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(SettledRow { payment, method_saved }) = settled else {
                return Ok(None);
            };
            let mut payment = Payment::try_from(payment)?;
            let (authorized, currency) = (payment.amount, payment.currency.as_str());
            match s {
                Settlement::Authorized { intent_id } => {
                    Self::ledger_entry(&mut *conn, id.0, EntryKind::Authorization, authorized, currency, None, Some(intent_id), now).await?;
                }
                Settlement::Captured { intent_id, amount } => {
                    let entries = [(EntryKind::Authorization, authorized), (EntryKind::Capture, *amount)];
                    Self::ledger_entries(&mut *conn, id.0, &entries, currency, None, Some(intent_id), now).await?;
                    payment.captured_amount = *amount;
                }
                Settlement::Declined { .. } | Settlement::Failed { .. } => {}
            }
            Self::forget_method_after(&mut *conn, payment.method_id.0, method_saved, s, now).await?;
            let event = match s {
                Settlement::Captured { .. } => Some(events::payment_captured(&payment)),
                Settlement::Declined { .. } | Settlement::Failed { .. } => Some(events::payment_failed(&payment)),
                Settlement::Authorized { .. } => None,
            };
            if let Some(event) = event {
                enqueue(&mut *conn, &event).await?;
            }
            Ok(Some(payment))
        }

        /// Records a provider operation under its key; `false` when the key was used before.
        async fn claim_sim_operation(
            conn: &mut DB::Connection,
            key: &str,
            intent_id: &str,
            kind: &str,
            amount: i64,
            result_id: &str,
        ) -> StoreResult<bool> {
            let done = sqlx::query(
                "INSERT INTO sim_operations (idem_key, intent_id, kind, amount, result_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idem_key) DO NOTHING",
            )
            .bind(key)
            .bind(intent_id)
            .bind(kind)
            .bind(amount)
            .bind(result_id)
            .bind(crate::service::now())
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// The operation stored under `key`, checked to be the same request.
        async fn sim_operation(conn: &mut DB::Connection, key: &str, intent_id: &str, kind: &str, amount: i64) -> StoreResult<Result<String, String>> {
            let (stored_intent, stored_kind, stored_amount, result_id) = sqlx::query_as::<_, (String, String, i64, String)>(
                "SELECT intent_id, kind, amount, result_id FROM sim_operations WHERE idem_key = $1",
            )
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
            if stored_intent == intent_id && stored_kind == kind && stored_amount == amount {
                Ok(Ok(result_id))
            } else {
                Ok(Err("idempotency key reused with different parameters".into()))
            }
        }

        async fn sim_intent(conn: &mut DB::Connection, id: &str) -> StoreResult<Option<SimIntent>> {
            sqlx::query_as::<_, SimIntentRow>(sql(format!("SELECT {SIM_COLUMNS} FROM sim_intents WHERE id = $1")))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .map(SimIntent::try_from)
                .transpose()
        }
    }
}

platform::sql_store! {
    #[async_trait::async_trait]
    impl PaymentStore for SqlStore<DB> {
        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_method"))]
        async fn insert_method(&self, m: &Method) -> StoreResult<()> {
            let mut tx = self.db.write().await?;
            // A new method is never removed: `removed_at` starts NULL.
            sqlx::query(
                "INSERT INTO payment_methods (id, user_id, brand, last4, exp_month, exp_year, provider, provider_token,
                                          created_at, saved)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(m.id.0)
            .bind(m.user_id)
            .bind(m.brand.as_str())
            .bind(m.last4.as_str())
            .bind(i64::from(m.exp_month))
            .bind(i64::from(m.exp_year))
            .bind(m.provider.as_str())
            .bind(m.provider_token.as_str())
            .bind(m.created_at)
            .bind(m.saved)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "method"))]
        async fn method(&self, id: MethodId) -> StoreResult<Option<Method>> {
            sqlx::query_as::<_, MethodRow>(sql(format!("SELECT {METHOD_COLUMNS} FROM payment_methods WHERE id = $1")))
                .bind(id.0)
                .fetch_optional(self.db.pool())
                .await?
                .map(Method::try_from)
                .transpose()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "methods_of"))]
        async fn methods_of(&self, user_id: Uuid) -> StoreResult<Vec<Method>> {
            sqlx::query_as::<_, MethodRow>(sql(format!(
                "SELECT {METHOD_COLUMNS} FROM payment_methods
             WHERE user_id = $1 AND saved = $2 AND removed_at IS NULL ORDER BY id DESC LIMIT 100"
            )))
            .bind(user_id)
            .bind(true)
            .fetch_all(self.db.pool())
            .await?
            .into_iter()
            .map(Method::try_from)
            .collect()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "remove_method"))]
        async fn remove_method(&self, id: MethodId, user_id: Uuid, now: OffsetDateTime) -> StoreResult<bool> {
            let mut tx = self.db.write().await?;
            let removed = sqlx::query(
                "UPDATE payment_methods SET removed_at = $3 WHERE id = $1 AND user_id = $2 AND removed_at IS NULL",
            )
            .bind(id.0)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(removed == 1)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "idempotency_record"))]
        async fn idempotency_record(&self, owner: Uuid, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
            let scope: &'static str = match scope {
                "payment" => "payment",
                "refund" => "refund",
                other => return Err(StoreError::Corrupt(format!("unknown idempotency scope {other}"))),
            };
            self.idempotency_lookup(owner, scope, key).await
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "create_payment"))]
        async fn create_payment(&self, p: &Payment, key: &IdempotencyRecord) -> StoreResult<Created<Payment>> {
            let mut tx = self.db.write().await?;
            if !Self::claim_key(&mut *tx, key, p.created_at).await? {
                tx.rollback().await?;
                return Ok(Created::KeyUsed(self.key_used(key).await?));
            }
            let inserted = sqlx::query(
                "INSERT INTO payments (id, order_id, customer_id, method_id, amount, currency, capture, status, brand, last4,
                                   provider, provider_intent, decline_code, failure_reason, created_by, created_at,
                                   updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, $12, $13, $14, 1)",
            )
            .bind(p.id.0)
            .bind(p.order_id)
            .bind(p.customer_id)
            .bind(p.method_id.0)
            .bind(p.amount)
            .bind(p.currency.as_str())
            .bind(p.capture)
            .bind(p.status.as_str())
            .bind(p.brand.as_str())
            .bind(p.last4.as_str())
            .bind(p.provider.as_str())
            .bind(p.created_by)
            .bind(p.created_at)
            .bind(p.updated_at)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e, "order") => {
                    tx.rollback().await?;
                    return Err(StoreError::OrderHasLivePayment);
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            // Not read back: a new payment is stored as given (timestamps to the second) and has
            // no ledger entries or refunds yet, which is all the read would add.
            Ok(Created::New(p.clone()))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "payment"))]
        async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
            let mut conn = self.db.acquire().await?;
            Self::payment_in(&mut conn, id.0).await
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "payments_of_order"))]
        async fn payments_of_order(&self, order_id: Uuid) -> StoreResult<Vec<Payment>> {
            sqlx::query_as::<_, PaymentRow>(sql(format!("{PAYMENT_SELECT} WHERE p.order_id = $1 ORDER BY p.id LIMIT 100")))
                .bind(order_id)
                .fetch_all(self.db.pool())
                .await?
                .into_iter()
                .map(Payment::try_from)
                .collect()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "settle"))]
        async fn settle(&self, id: PaymentId, settlement: &Settlement, now: OffsetDateTime) -> StoreResult<Option<Payment>> {
            let mut tx = self.db.write().await?;
            let settled = Self::settle_in(&mut *tx, id, settlement, now).await?;
            if settled.is_some() {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(settled)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "capture_authorized"))]
        async fn capture_authorized(&self, id: PaymentId, intent_id: &str, amount: i64, now: OffsetDateTime) -> StoreResult<Option<Payment>> {
            let mut tx = self.db.write().await?;
            let updated = sqlx::query(
                "UPDATE payments SET status = 'captured', provider_intent = $2, updated_at = $3, version = version + 1
             WHERE id = $1 AND status = 'authorized'",
            )
            .bind(id.0)
            .bind(intent_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let before = Self::payment_in(&mut *tx, id.0).await?.ok_or(StoreError::NotFound)?;
            Self::ledger_entry(&mut *tx, id.0, EntryKind::Capture, amount, before.currency.as_str(), None, Some(intent_id), now).await?;
            let payment = Self::payment_in(&mut *tx, id.0).await?.ok_or(StoreError::NotFound)?;
            enqueue(&mut *tx, &events::payment_captured(&payment)).await?;
            tx.commit().await?;
            Ok(Some(payment))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "apply_webhook"))]
        async fn apply_webhook(
            &self,
            event_id: &str,
            provider: &str,
            event_type: &str,
            payment: PaymentId,
            settlement: &Settlement,
            now: OffsetDateTime,
        ) -> StoreResult<WebhookApplied> {
            let mut tx = self.db.write().await?;
            let recorded = sqlx::query(
                "INSERT INTO webhook_events (id, provider, event_type, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING",
            )
            .bind(event_id)
            .bind(provider)
            .bind(event_type)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if recorded.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(WebhookApplied::Duplicate);
            }
            let outcome = match Self::settle_in(&mut *tx, payment, settlement, now).await? {
                Some(p) => WebhookApplied::Settled(Box::new(p)),
                None => WebhookApplied::AlreadySettled,
            };
            tx.commit().await?;
            Ok(outcome)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "create_refund"))]
        async fn create_refund(&self, r: &Refund, key: &IdempotencyRecord) -> StoreResult<Created<Refund>> {
            let mut tx = self.db.write().await?;
            // Lock the payment: refunds of one payment are decided one at a time.
            let locked = sqlx::query_as::<_, (String,)>(sql(format!(
                "SELECT status FROM payments WHERE id = $1{}",
                self.db.for_update()
            )))
            .bind(r.payment_id.0)
            .fetch_optional(&mut *tx)
            .await?;
            if locked.is_none() {
                tx.rollback().await?;
                return Err(StoreError::NotFound);
            }
            if !Self::claim_key(&mut *tx, key, r.created_at).await? {
                tx.rollback().await?;
                return Ok(Created::KeyUsed(self.key_used(key).await?));
            }
            let payment = Self::payment_in(&mut *tx, r.payment_id.0).await?.ok_or(StoreError::NotFound)?;
            if payment.status != PaymentStatus::Captured {
                tx.rollback().await?;
                return Err(StoreError::NotRefundable(payment.status));
            }
            let remaining = refundable(payment.captured_amount, payment.refunded_amount + payment.refunds_pending);
            if r.amount > remaining {
                tx.rollback().await?;
                return Err(StoreError::RefundExceeds { remaining });
            }
            sqlx::query(
                "INSERT INTO refunds (id, payment_id, amount, currency, reason, status, provider_ref, failure_reason,
                                  created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', NULL, NULL, $6, $7, $8)",
            )
            .bind(r.id.0)
            .bind(r.payment_id.0)
            .bind(r.amount)
            .bind(payment.currency.as_str())
            .bind(r.reason.as_deref())
            .bind(r.created_by)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(&mut *tx)
            .await?;
            let refund = Self::refund_in(&mut *tx, r.id.0).await?.ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            Ok(Created::New(refund))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "refund"))]
        async fn refund(&self, id: RefundId) -> StoreResult<Option<Refund>> {
            let mut conn = self.db.acquire().await?;
            Self::refund_in(&mut conn, id.0).await
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "refunds_of"))]
        async fn refunds_of(&self, payment: PaymentId) -> StoreResult<Vec<Refund>> {
            sqlx::query_as::<_, RefundRow>(sql(format!("{REFUND_SELECT} WHERE r.payment_id = $1 ORDER BY r.id LIMIT 200")))
                .bind(payment.0)
                .fetch_all(self.db.pool())
                .await?
                .into_iter()
                .map(Refund::try_from)
                .collect()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "finish_refund"))]
        async fn finish_refund(&self, id: RefundId, outcome: Result<String, String>, now: OffsetDateTime) -> StoreResult<Option<Refund>> {
            let mut tx = self.db.write().await?;
            let finished = Self::finish_refund_in(&mut *tx, id, &outcome, now).await?;
            if finished.is_some() {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(finished)
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "payment_by_intent"))]
        async fn payment_by_intent(&self, intent_id: &str) -> StoreResult<Option<Payment>> {
            sqlx::query_as::<_, PaymentRow>(sql(format!("{PAYMENT_SELECT} WHERE p.provider_intent = $1 ORDER BY p.id LIMIT 1")))
                .bind(intent_id)
                .fetch_optional(self.db.pool())
                .await?
                .map(Payment::try_from)
                .transpose()
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "apply_provider_refunds"))]
        async fn apply_provider_refunds(
            &self,
            event_id: &str,
            provider: &str,
            event_type: &str,
            payment: PaymentId,
            reports: &[ProviderRefundReport],
            now: OffsetDateTime,
        ) -> StoreResult<Option<Vec<Refund>>> {
            let mut tx = self.db.write().await?;
            let recorded = sqlx::query(
                "INSERT INTO webhook_events (id, provider, event_type, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING",
            )
            .bind(event_id)
            .bind(provider)
            .bind(event_type)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if recorded.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            // The payment's lock orders this against our own refunds of it; its currency is what
            // a refund made at the provider is recorded in.
            let currency: Option<String> =
                sqlx::query_scalar(sql(format!("SELECT currency FROM payments WHERE id = $1{}", self.db.for_update())))
                    .bind(payment.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut completed = Vec::new();
            for report in reports {
                let known = sqlx::query_scalar::<_, Uuid>("SELECT id FROM refunds WHERE payment_id = $1 AND provider_ref = $2")
                    .bind(payment.0)
                    .bind(report.provider_ref.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if known.is_some() {
                    continue;
                }
                if let Some(ours) = report.ours {
                    let mine = Self::refund_in(&mut *tx, ours.0).await?.filter(|r| r.payment_id == payment);
                    if let Some(mine) = mine {
                        if mine.status == RefundStatus::Pending
                            && let Some(done) = Self::finish_refund_in(&mut *tx, ours, &Ok(report.provider_ref.clone()), now).await?
                        {
                            completed.push(done);
                        }
                        continue;
                    }
                }
                // Made at the provider (its dashboard): the money has gone back, so the ledger says so.
                let id = RefundId(Uuid::now_v7());
                let currency = currency.as_deref().ok_or(StoreError::NotFound)?;
                sqlx::query(
                    "INSERT INTO refunds (id, payment_id, amount, currency, reason, status, provider_ref, failure_reason,
                                      created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', NULL, NULL, $6, $7, $7)",
                )
                .bind(id.0)
                .bind(payment.0)
                .bind(report.amount)
                .bind(currency)
                .bind(format!("refunded at {provider}"))
                .bind(Uuid::nil())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if let Some(done) = Self::finish_refund_in(&mut *tx, id, &Ok(report.provider_ref.clone()), now).await? {
                    completed.push(done);
                }
            }
            tx.commit().await?;
            Ok(Some(completed))
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "stale_payments"))]
        async fn stale_payments(&self, before: OffsetDateTime, limit: u32) -> StoreResult<Vec<PaymentId>> {
            let stale = "SELECT id FROM payments WHERE status = 'processing' AND updated_at < $1 ORDER BY updated_at LIMIT $2";
            let ids = platform::db::ids_at(self.db.pool(), stale, before, limit).await?;
            Ok(ids.into_iter().map(PaymentId).collect())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "stale_refunds"))]
        async fn stale_refunds(&self, before: OffsetDateTime, limit: u32) -> StoreResult<Vec<RefundId>> {
            let stale = "SELECT id FROM refunds WHERE status = 'pending' AND updated_at < $1 ORDER BY updated_at LIMIT $2";
            let ids = platform::db::ids_at(self.db.pool(), stale, before, limit).await?;
            Ok(ids.into_iter().map(RefundId).collect())
        }

        #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "purge_idempotency"))]
        async fn purge_idempotency(&self, before: OffsetDateTime) -> StoreResult<u64> {
            Ok(platform::idempotency::purge_expired(&self.db, before).await?)
        }
    }
}

platform::sql_store! {
    #[async_trait::async_trait]
    impl SimulatedLedger for SqlStore<DB> {
        async fn sim_authorize(&self, intent: &SimIntent) -> anyhow::Result<SimIntent> {
            // One statement for a new key; a repeated key (a retry) reads the intent it made.
            let inserted = sqlx::query_as::<_, SimIntentRow>(sql(format!(
                "INSERT INTO sim_intents ({SIM_COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)
             ON CONFLICT (idem_key) DO NOTHING RETURNING {SIM_COLUMNS}"
            )))
            .bind(intent.id.as_str())
            .bind(intent.idempotency_key.as_str())
            .bind(intent.amount)
            .bind(intent.currency.as_str())
            .bind(intent.status.as_str())
            .bind(intent.decline_code.map(|c| c.as_str()))
            .bind(intent.captured)
            .bind(crate::service::now())
            .fetch_optional(self.db.pool())
            .await?;
            let stored = match inserted {
                Some(row) => row,
                None => {
                    sqlx::query_as::<_, SimIntentRow>(sql(format!(
                        "SELECT {SIM_COLUMNS} FROM sim_intents WHERE idem_key = $1"
                    )))
                    .bind(intent.idempotency_key.as_str())
                    .fetch_one(self.db.pool())
                    .await?
                }
            };
            Ok(SimIntent::try_from(stored)?)
        }

        async fn sim_capture(&self, key: &str, intent_id: &str, amount: i64) -> anyhow::Result<Result<SimIntent, String>> {
            let mut tx = self.db.write().await?;
            if !Self::claim_sim_operation(&mut *tx, key, intent_id, "capture", amount, intent_id).await? {
                let same = Self::sim_operation(&mut *tx, key, intent_id, "capture", amount).await?;
                let intent = Self::sim_intent(&mut *tx, intent_id).await?;
                tx.rollback().await?;
                return Ok(match (same, intent) {
                    (Ok(_), Some(intent)) => Ok(intent),
                    (Ok(_), None) => Err("no such intent".into()),
                    (Err(m), _) => Err(m),
                });
            }
            let captured = sqlx::query_as::<_, SimIntentRow>(sql(format!(
                "UPDATE sim_intents SET status = 'succeeded', captured = $2
             WHERE id = $1 AND status = 'requires_capture' AND amount >= $2 RETURNING {SIM_COLUMNS}"
            )))
            .bind(intent_id)
            .bind(amount)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(captured) = captured else {
                tx.rollback().await?;
                return Ok(Err("the intent cannot be captured (unknown, not authorized, or amount too high)".into()));
            };
            tx.commit().await?;
            Ok(Ok(SimIntent::try_from(captured)?))
        }

        async fn sim_refund(&self, key: &str, intent_id: &str, amount: i64) -> anyhow::Result<Result<String, String>> {
            let mut tx = self.db.write().await?;
            let refund_id = format!("re_{}", Uuid::now_v7().simple());
            if !Self::claim_sim_operation(&mut *tx, key, intent_id, "refund", amount, &refund_id).await? {
                let same = Self::sim_operation(&mut *tx, key, intent_id, "refund", amount).await?;
                tx.rollback().await?;
                return Ok(same);
            }
            let refunded = sqlx::query(
                "UPDATE sim_intents SET refunded = refunded + $2
             WHERE id = $1 AND status = 'succeeded' AND captured - refunded >= $2",
            )
            .bind(intent_id)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
            if refunded.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(Err("the intent cannot be refunded by this amount".into()));
            }
            tx.commit().await?;
            Ok(Ok(refund_id))
        }
    }
}
