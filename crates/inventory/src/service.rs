//! Inventory's use cases. Handlers call these; these check roles, apply the domain rules and call
//! the store, then wake the outbox relay for the events the store wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use platform::auth::AuthUser;
use platform::events::Outbox;
use platform::{FieldError, Problem};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::InventoryConfig;
use crate::domain::{
    AdjustmentKind, AdjustmentRules, Line, RawLine, ReservationAction, ReservationId, ReservationState, Sku,
    Transition, parse_idempotency_key, parse_reason, parse_reference, parse_threshold, parse_ttl, transition,
    validate_lines,
};
use crate::store::{
    Adjustment, Created, Finish, IdempotencyRecord, InventoryStore, Movement, NewReservation, Reservation,
    ReservedItem, Stock, StoreError,
};
use crate::views::ReservationView;

/// Roles that may change stock levels and thresholds.
/// Role of service tokens (ordering reserves, commits and restocks for orders).
pub const SERVICE: &str = "service";
pub const STOCK_WRITERS: &[&str] = &["admin", "fulfilment", "catalog_manager", SERVICE];
/// Roles that may read the ledger and the low-stock list.
pub const STAFF: &[&str] = &["admin", "fulfilment", "catalog_manager", "support"];
/// Roles that may create and finish reservations (ordering gets a service credential later).
pub const RESERVERS: &[&str] = &["admin", "fulfilment", SERVICE];
/// Roles that may read a reservation.
pub const RESERVATION_READERS: &[&str] = &["admin", "fulfilment", "support", SERVICE];

/// Past this many SKUs the per-SKU gauge `inventory_available_units{sku}` is no longer exported
/// (one time series per SKU does not scale); `inventory_low_stock_skus` always is.
pub const PER_SKU_GAUGE_LIMIT: i64 = 500;
/// Idempotency keys are remembered this long.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Bulk restocks are written this many SKUs per transaction.
pub const RESTOCK_BATCH: usize = 200;

/// Everything that can go wrong in inventory, mapped to HTTP once (`From<InventoryError> for Problem`).
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { detail: String, errors: Vec<FieldError> },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl InventoryError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl From<StoreError> for InventoryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("no stock for this SKU".into()),
            StoreError::UnknownSku { line, sku } => {
                Self::invalid(format!("items[{line}].sku"), format!("{sku} is not a known SKU"))
            }
            StoreError::Discontinued { line, sku } => Self::Conflict {
                detail: format!("SKU {sku} is discontinued"),
                errors: vec![FieldError::new(format!("items[{line}].sku"), "is discontinued")],
            },
            StoreError::Insufficient {
                line,
                sku,
                requested,
                available,
            } => Self::Conflict {
                detail: format!("insufficient stock for SKU {sku}: requested {requested}, available {available}"),
                errors: vec![FieldError::new(
                    format!("items[{line}].qty"),
                    format!("only {available} of {sku} available"),
                )],
            },
            StoreError::Refused(refused) => Self::Conflict {
                detail: refused.to_string(),
                errors: vec![FieldError::new("quantity", refused.to_string())],
            },
            StoreError::Busy => Self::Conflict {
                detail: "the stock kept changing during this adjustment; send it again".into(),
                errors: vec![FieldError::new(
                    "quantity",
                    "the stock changed meanwhile; send it again",
                )],
            },
            // The sqlx error itself, so Problem::from_error can tell an outage (503) from a bug.
            StoreError::Db(e) => Self::Internal(e.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<Problem> for InventoryError {
    fn from(p: Problem) -> Self {
        match p.status.as_u16() {
            403 => Self::Forbidden(p.detail.unwrap_or_default()),
            _ => Self::Internal(anyhow::anyhow!(p.to_string())),
        }
    }
}

pub type InvResult<T> = Result<T, InventoryError>;

/// A reservation request as received.
#[derive(Debug, Clone)]
pub struct ReservationRequest {
    pub reference: String,
    pub items: Vec<RawLine>,
    pub ttl_seconds: Option<i64>,
}

/// The answer to a reservation request: what to send, and whether it is a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationAnswer {
    pub status: u16,
    /// JSON of a [`ReservationView`].
    pub body: String,
    pub id: Uuid,
    pub replayed: bool,
}

pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "inventory_low_stock_skus",
        "SKUs whose available units are at or below their low-stock threshold."
    );
    metrics::describe_gauge!(
        "inventory_available_units",
        "Available units per SKU (only exported while the catalogue has at most 500 SKUs)."
    );
    metrics::describe_counter!("inventory_reservations_created_total", "Reservations created.");
    metrics::describe_counter!(
        "inventory_reservations_rejected_total",
        "Reservation requests refused, by reason (insufficient, unknown_sku, discontinued, invalid)."
    );
    metrics::describe_counter!(
        "inventory_reservations_expired_total",
        "Reservations released by the expiry sweeper."
    );
}

fn reject(reason: &'static str) {
    metrics::counter!("inventory_reservations_rejected_total", "reason" => reason).increment(1);
}

/// Timestamps are stored to the whole second, so SQLite's RFC 3339 text sorts as time does.
pub use platform::clock::now_to_second as now;

/// The outcome of an adjustment: the stock now, and whether this was a replay of a key.
#[derive(Debug, Clone)]
pub struct AdjustAnswer {
    pub stock: Stock,
    pub replayed: bool,
}

pub struct InventoryService {
    store: Arc<dyn InventoryStore>,
    config: InventoryConfig,
    outbox: Outbox,
    /// Whether the per-SKU gauge is exported (catalogue small enough); set by `refresh_metrics`.
    per_sku_gauge: AtomicBool,
    faults: platform::faults::Faults,
}

impl InventoryService {
    pub fn new(store: Arc<dyn InventoryStore>, config: InventoryConfig, outbox: Outbox) -> Self {
        Self {
            store,
            config,
            outbox,
            per_sku_gauge: AtomicBool::new(true),
            faults: platform::faults::Faults::disabled(),
        }
    }

    /// The same service, obeying the `reservation_failure_percent` fault flag of `faults`.
    #[must_use]
    pub fn with_faults(mut self, faults: platform::faults::Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn config(&self) -> &InventoryConfig {
        &self.config
    }

    fn changed(&self, stock: &Stock) {
        self.outbox.notify();
        if self.per_sku_gauge.load(Ordering::Relaxed) {
            metrics::gauge!("inventory_available_units", "sku" => stock.sku.to_string()).set(stock.available() as f64);
        }
    }

    // ---- reads --------------------------------------------------------------------------------

    pub async fn stock(&self, sku: &Sku) -> InvResult<Stock> {
        self.store
            .stock(sku)
            .await?
            .ok_or_else(|| InventoryError::NotFound(format!("no stock for SKU {sku}")))
    }

    /// The known SKUs among `skus` (deduplicated), and the unknown ones.
    pub async fn availability(&self, skus: &[Sku]) -> InvResult<(Vec<Stock>, Vec<Sku>)> {
        let mut wanted: Vec<Sku> = skus.to_vec();
        wanted.sort();
        wanted.dedup();
        let found = self.store.stocks(&wanted).await?;
        let missing = wanted
            .into_iter()
            .filter(|s| !found.iter().any(|f| &f.sku == s))
            .collect();
        Ok((found, missing))
    }

    pub async fn low_stock(&self, auth: &AuthUser, after: Option<&Sku>, limit: u32) -> InvResult<Vec<Stock>> {
        auth.require_any_role(STAFF)?;
        Ok(self.store.low_stock(after.map(Sku::as_str), limit).await?)
    }

    pub async fn movements(
        &self,
        auth: &AuthUser,
        sku: &Sku,
        before: Option<Uuid>,
        limit: u32,
    ) -> InvResult<Vec<Movement>> {
        auth.require_any_role(STAFF)?;
        self.stock(sku).await?;
        Ok(self.store.movements(sku, before, limit).await?)
    }

    // ---- stock changes ------------------------------------------------------------------------

    pub async fn adjust(
        &self,
        auth: &AuthUser,
        sku: &Sku,
        kind: AdjustmentKind,
        quantity: i64,
        reason: &str,
    ) -> InvResult<Stock> {
        let answer = self.adjust_once(auth, sku, kind, quantity, reason, None).await?;
        Ok(answer.stock)
    }

    /// [`Self::adjust`] with an optional `Idempotency-Key`: a retry with the same key and request
    /// returns the first answer without adjusting again (a compensating restock from ordering
    /// must add the units once, however often it is retried).
    pub async fn adjust_once(
        &self,
        auth: &AuthUser,
        sku: &Sku,
        kind: AdjustmentKind,
        quantity: i64,
        reason: &str,
        idempotency_key: Option<&str>,
    ) -> InvResult<AdjustAnswer> {
        auth.require_any_role(STOCK_WRITERS)?;
        let mut errors = Vec::new();
        let key = match idempotency_key.map(parse_idempotency_key).transpose() {
            Ok(key) => key,
            Err(m) => {
                errors.push(FieldError::new("Idempotency-Key", m));
                None
            }
        };
        let delta = kind
            .delta(quantity)
            .map_err(|m| errors.push(FieldError::new("quantity", m)))
            .ok();
        let reason = parse_reason(reason)
            .map_err(|m| errors.push(FieldError::new("reason", m)))
            .ok();
        let (Some(delta), Some(reason), true) = (delta, reason, errors.is_empty()) else {
            return Err(InventoryError::Validation(errors));
        };
        let request_hash = {
            use sha2::Digest;
            let text = format!("adjust\n{sku}\n{}\n{quantity}\n{reason}", kind.movement().as_str());
            sha2::Sha256::digest(text.as_bytes()).to_vec()
        };
        if let Some(key) = &key
            && let Some(record) = self.store.idempotency_record(auth.id(), key).await?
        {
            return self.replay_adjustment(record, &request_hash, sku).await;
        }
        let result = self
            .store
            .adjust(&Adjustment {
                sku: sku.clone(),
                kind: kind.movement(),
                quantity,
                delta,
                reason,
                actor: Some(auth.id()),
                now: now(),
                idempotency: key.clone().map(|key| IdempotencyRecord {
                    owner: auth.id(),
                    key,
                    request_hash: request_hash.clone(),
                    status: 201,
                    body: String::new(),
                }),
            })
            .await;
        match result {
            Ok(stock) => {
                self.changed(&stock);
                Ok(AdjustAnswer { stock, replayed: false })
            }
            // A concurrent request with the same key won: answer as it did.
            Err(StoreError::KeyTaken) => {
                let record = match &key {
                    Some(key) => self.store.idempotency_record(auth.id(), key).await?,
                    None => None,
                }
                .ok_or_else(|| InventoryError::Internal(anyhow::anyhow!("an idempotency key vanished while in use")))?;
                self.replay_adjustment(record, &request_hash, sku).await
            }
            Err(StoreError::NotFound) => Err(InventoryError::NotFound(format!("no stock for SKU {sku}"))),
            Err(other) => Err(other.into()),
        }
    }

    async fn replay_adjustment(
        &self,
        record: IdempotencyRecord,
        request_hash: &[u8],
        sku: &Sku,
    ) -> InvResult<AdjustAnswer> {
        if record.request_hash != request_hash {
            return Err(InventoryError::invalid(
                "Idempotency-Key",
                "was already used with a different request body",
            ));
        }
        let stock = self
            .store
            .stocks(std::slice::from_ref(sku))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| InventoryError::NotFound(format!("no stock for SKU {sku}")))?;
        Ok(AdjustAnswer { stock, replayed: true })
    }

    pub async fn set_threshold(&self, auth: &AuthUser, sku: &Sku, threshold: i64) -> InvResult<Stock> {
        auth.require_any_role(STOCK_WRITERS)?;
        let threshold = parse_threshold(threshold).map_err(|m| InventoryError::invalid("threshold", m))?;
        let stock = self
            .store
            .set_threshold(sku, threshold, now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => InventoryError::NotFound(format!("no stock for SKU {sku}")),
                other => other.into(),
            })?;
        self.changed(&stock);
        Ok(stock)
    }

    /// Adds `qty` units to each SKU, creating missing stock rows (with the default threshold):
    /// for `emporium seed`. Written in batches of [`RESTOCK_BATCH`] SKUs, each batch one
    /// transaction with its ledger entries and events.
    pub async fn bulk_restock(&self, items: &[(String, i64)], reason: &str) -> anyhow::Result<()> {
        let reason = parse_reason(reason).map_err(|m| anyhow::anyhow!("reason {m}"))?;
        let mut parsed = Vec::with_capacity(items.len());
        for (sku, qty) in items {
            let sku = Sku::parse(sku).map_err(|m| anyhow::anyhow!("SKU {sku:?} {m}"))?;
            let qty = AdjustmentKind::Restock
                .delta(*qty)
                .map_err(|m| anyhow::anyhow!("quantity for {sku} {m}"))?;
            parsed.push((sku, qty));
        }
        for batch in parsed.chunks(RESTOCK_BATCH) {
            self.store
                .restock_batch(batch, &reason, self.config.default_low_stock_threshold, now())
                .await?;
            self.outbox.notify();
        }
        Ok(())
    }

    /// `catalog.product.created`: a stock row with 0 units (nothing if it exists already).
    pub async fn product_created(&self, sku: &Sku) -> anyhow::Result<bool> {
        let created = self
            .store
            .ensure_stock(sku, self.config.default_low_stock_threshold, now())
            .await?;
        if created {
            self.outbox.notify();
        }
        Ok(created)
    }

    /// `catalog.product.deleted`: no new reservations for the SKU.
    pub async fn product_deleted(&self, sku: &Sku) -> anyhow::Result<bool> {
        Ok(self.store.discontinue(sku, now()).await?)
    }

    // ---- reservations -------------------------------------------------------------------------

    /// Creates a reservation, all lines or none. With an `Idempotency-Key`, a repeated request
    /// gets the first successful answer again; the same key with another body is refused (422).
    /// Refused requests leave nothing behind, so retrying them re-evaluates.
    pub async fn reserve(
        &self,
        auth: &AuthUser,
        idempotency_key: Option<&str>,
        req: ReservationRequest,
    ) -> InvResult<ReservationAnswer> {
        auth.require_any_role(RESERVERS)?;
        let mut errors = Vec::new();
        let key = match idempotency_key.map(parse_idempotency_key).transpose() {
            Ok(key) => key,
            Err(m) => {
                errors.push(FieldError::new("Idempotency-Key", m));
                None
            }
        };
        let reference = parse_reference(&req.reference)
            .map_err(|m| errors.push(FieldError::new("reference", m)))
            .ok();
        let ttl = parse_ttl(req.ttl_seconds, self.config.reservation_ttl.as_secs())
            .map_err(|m| errors.push(FieldError::new("ttl_seconds", m)))
            .ok();
        let lines = validate_lines(&req.items).map_err(|e| errors.extend(e)).ok();
        let (Some(reference), Some(ttl), Some(lines), true) = (reference, ttl, lines, errors.is_empty()) else {
            reject("invalid");
            return Err(InventoryError::Validation(errors));
        };
        let request_hash = request_hash(&reference, ttl, &lines);

        if let Some(key) = &key
            && let Some(record) = self.store.idempotency_record(auth.id(), key).await?
        {
            return replay(record, &request_hash);
        }
        // Injected failure: refused like a shortage, before anything is written, so a retry
        // re-evaluates (and the caller's compensation path runs).
        if self.faults.reservation_should_fail() {
            reject("fault_injected");
            return Err(InventoryError::conflict(
                "the reservation was refused by fault injection (reservation_failure_percent); nothing was reserved",
            ));
        }

        let now = now();
        let reservation = Reservation {
            id: ReservationId::new(),
            reference,
            state: ReservationState::Active,
            items: lines
                .iter()
                .map(|l| ReservedItem {
                    sku: l.sku.clone(),
                    qty: l.qty,
                })
                .collect(),
            expires_at: now + Duration::from_secs(ttl),
            created_by: Some(auth.id()),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let body = serde_json::to_string(&ReservationView::from(&reservation)).map_err(anyhow::Error::from)?;
        let new = NewReservation {
            lines,
            idempotency: key.map(|key| IdempotencyRecord {
                owner: auth.id(),
                key,
                request_hash: request_hash.clone(),
                status: 201,
                body: body.clone(),
            }),
            reservation,
        };
        match self.store.create_reservation(&new).await {
            Ok(Created::New(r)) => {
                metrics::counter!("inventory_reservations_created_total").increment(1);
                self.outbox.notify();
                Ok(ReservationAnswer {
                    status: 201,
                    body,
                    id: r.id.0,
                    replayed: false,
                })
            }
            Ok(Created::KeyUsed(record)) => replay(record, &request_hash),
            Err(
                e @ (StoreError::UnknownSku { .. } | StoreError::Insufficient { .. } | StoreError::Discontinued { .. }),
            ) => {
                // The reservation stops at its first refused line; unknown SKUs are named first,
                // all of them (read only now: a reservation that goes through needs no such read).
                let unknown = self.unknown_skus(&new.lines).await?;
                if !unknown.is_empty() {
                    reject("unknown_sku");
                    return Err(InventoryError::Validation(unknown));
                }
                reject(match &e {
                    StoreError::Insufficient { .. } => "insufficient",
                    StoreError::UnknownSku { .. } => "unknown_sku",
                    _ => "discontinued",
                });
                Err(e.into())
            }
            Err(e) => {
                reject("error");
                Err(e.into())
            }
        }
    }

    /// A field error for each line whose SKU has no stock row.
    async fn unknown_skus(&self, lines: &[Line]) -> InvResult<Vec<FieldError>> {
        let skus: Vec<Sku> = lines.iter().map(|l| l.sku.clone()).collect();
        let known = self.store.stocks(&skus).await?;
        Ok(lines
            .iter()
            .filter(|l| !known.iter().any(|s| s.sku == l.sku))
            .map(|l| {
                FieldError::new(
                    format!("items[{}].sku", l.line),
                    format!("{} is not a known SKU", l.sku),
                )
            })
            .collect())
    }

    pub async fn reservation(&self, auth: &AuthUser, id: ReservationId) -> InvResult<Reservation> {
        auth.require_any_role(RESERVATION_READERS)?;
        self.find_reservation(id).await
    }

    async fn find_reservation(&self, id: ReservationId) -> InvResult<Reservation> {
        self.store
            .reservation(id)
            .await?
            .ok_or_else(|| InventoryError::NotFound("no reservation with this id".into()))
    }

    pub async fn release(&self, auth: &AuthUser, id: ReservationId) -> InvResult<Reservation> {
        auth.require_any_role(RESERVERS)?;
        self.finish(id, ReservationAction::Release, Some(auth.id())).await
    }

    /// Turns the reserved units into a deduction: on_hand and reserved both go down.
    pub async fn commit(&self, auth: &AuthUser, id: ReservationId) -> InvResult<Reservation> {
        auth.require_any_role(RESERVERS)?;
        self.finish(id, ReservationAction::Commit, Some(auth.id())).await
    }

    /// The store's write applies only from the state [`transition`] allows the action from (active,
    /// and on the right side of the deadline): it is tried first, and the reservation is read only
    /// when it did not apply, for the domain to tell "already done" from a refusal. That saves
    /// every commit and release two reads.
    async fn finish(
        &self,
        id: ReservationId,
        action: ReservationAction,
        actor: Option<Uuid>,
    ) -> InvResult<Reservation> {
        for _ in 0..3 {
            let finish = Finish {
                id,
                action,
                actor,
                now: now(),
            };
            if let Some(done) = self.store.finish_reservation(finish).await? {
                self.outbox.notify();
                if action == ReservationAction::Expire {
                    metrics::counter!("inventory_reservations_expired_total").increment(1);
                }
                return Ok(done);
            }
            let current = self.find_reservation(id).await?;
            match transition(current.state, action, now() >= current.expires_at) {
                Err(refused) => return Err(InventoryError::conflict(refused.to_string())),
                Ok(Transition::AlreadyDone) => return Ok(current),
                // It changed (or the clock moved) between the write and the read: try again.
                Ok(Transition::Apply(_)) => {}
            }
        }
        Err(InventoryError::conflict(
            "the reservation is changing concurrently; retry",
        ))
    }

    /// Expires active reservations whose deadline is at or before `now`; returns how many this
    /// replica expired (others may have won some: each is expired exactly once).
    pub async fn expire_due(&self, now: OffsetDateTime) -> anyhow::Result<u64> {
        let mut expired = 0;
        loop {
            let due = self.store.due_reservations(now, 100).await?;
            let batch = due.len();
            for id in due {
                let finish = Finish {
                    id,
                    action: ReservationAction::Expire,
                    actor: None,
                    now,
                };
                if self.store.finish_reservation(finish).await?.is_some() {
                    expired += 1;
                    metrics::counter!("inventory_reservations_expired_total").increment(1);
                }
            }
            if batch < 100 {
                break;
            }
        }
        if expired > 0 {
            self.outbox.notify();
        }
        Ok(expired)
    }

    /// Refreshes the gauges behind the LowInventory alert.
    pub async fn refresh_metrics(&self) -> anyhow::Result<()> {
        let (low, total) = self.store.counts().await?;
        metrics::gauge!("inventory_low_stock_skus").set(low as f64);
        let small = total <= PER_SKU_GAUGE_LIMIT;
        self.per_sku_gauge.store(small, Ordering::Relaxed);
        if small {
            for (sku, available) in self.store.availability(PER_SKU_GAUGE_LIMIT as u32).await? {
                metrics::gauge!("inventory_available_units", "sku" => sku).set(available as f64);
            }
        }
        Ok(())
    }

    pub async fn purge_idempotency_keys(&self) -> anyhow::Result<u64> {
        Ok(self.store.purge_idempotency(now() - IDEMPOTENCY_RETENTION).await?)
    }
}

fn replay(record: IdempotencyRecord, request_hash: &[u8]) -> InvResult<ReservationAnswer> {
    if record.request_hash != request_hash {
        return Err(InventoryError::invalid(
            "Idempotency-Key",
            "was already used with a different request body",
        ));
    }
    let id = serde_json::from_str::<serde_json::Value>(&record.body)
        .ok()
        .and_then(|v| v["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()))
        .unwrap_or_default();
    Ok(ReservationAnswer {
        status: record.status,
        body: record.body,
        id,
        replayed: true,
    })
}

/// A digest of what a reservation request asks for (after normalisation), to tell a retry from
/// a different request under the same key.
fn request_hash(reference: &str, ttl: u64, lines: &[Line]) -> Vec<u8> {
    let canonical = serde_json::json!({
        "reference": reference,
        "ttl_seconds": ttl,
        "items": lines.iter().map(|l| (l.sku.as_str(), l.qty)).collect::<Vec<_>>(),
    });
    Sha256::digest(canonical.to_string().as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, qty: i64, at: usize) -> Line {
        Line {
            line: at,
            sku: Sku::parse(sku).expect("sku"),
            qty,
        }
    }

    #[test]
    fn request_hash_tells_bodies_apart() {
        let a = request_hash("order-1", 900, &[line("AAA-1", 1, 0)]);
        assert_eq!(a, request_hash("order-1", 900, &[line("AAA-1", 1, 0)]));
        assert_ne!(a, request_hash("order-1", 900, &[line("AAA-1", 2, 0)]));
        assert_ne!(a, request_hash("order-2", 900, &[line("AAA-1", 1, 0)]));
        assert_ne!(a, request_hash("order-1", 60, &[line("AAA-1", 1, 0)]));
    }

    #[test]
    fn store_refusals_map_to_named_fields() {
        let p = Problem::from(InventoryError::from(StoreError::Insufficient {
            line: 2,
            sku: Sku::parse("AAA-1").expect("sku"),
            requested: 3,
            available: 1,
        }));
        assert_eq!(p.status.as_u16(), 409);
        assert!(p.detail.as_deref().unwrap_or("").contains("AAA-1"));
        assert_eq!(p.errors[0].field, "items[2].qty");
        let p = Problem::from(InventoryError::from(StoreError::UnknownSku {
            line: 1,
            sku: Sku::parse("AAA-1").expect("sku"),
        }));
        assert_eq!(p.status.as_u16(), 422);
        assert_eq!(p.errors[0].field, "items[1].sku");
    }

    #[test]
    fn replays_need_the_same_body() {
        let record = IdempotencyRecord {
            owner: Uuid::nil(),
            key: "k".into(),
            request_hash: vec![1, 2],
            status: 201,
            body: r#"{"id":"0190a8f0-0000-7000-8000-000000000000"}"#.into(),
        };
        let answer = replay(record.clone(), &[1, 2]).expect("replay");
        assert!(answer.replayed);
        assert_eq!(answer.status, 201);
        assert!(matches!(replay(record, &[9]), Err(InventoryError::Validation(_))));
    }
}
