//! The inventory context's published request and view types: stock, the ledger, reservations
//! and adjustments, and [`InventoryApi`], what other contexts call.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ClientError;
use crate::kernel::Sku;

/// Most SKUs one [`InventoryApi::availability`] call may ask for.
pub const MAX_BATCH_SKUS: usize = 100;

/// What other contexts ask of inventory. Writes are made as a service, under an idempotency key
/// where a retry must not apply twice.
#[async_trait::async_trait]
pub trait InventoryApi: Send + Sync + 'static {
    /// `GET /api/v1/inventory`: the stock of 1 to [`MAX_BATCH_SKUS`] SKUs; unknown ones are
    /// listed in `not_found`.
    async fn availability(&self, skus: &[Sku]) -> Result<BatchAvailability, ClientError>;
    /// `POST /api/v1/inventory/reservations`: all lines or none. A 409 names the short lines in
    /// its `errors` (`items[i].qty`), a 422 the unknown ones (`items[i].sku`).
    async fn reserve(&self, key: &str, request: &CreateReservationRequest) -> Result<ReservationView, ClientError>;
    /// `POST /api/v1/inventory/reservations/{id}/release`: 409 when no longer active.
    async fn release(&self, reservation: Uuid) -> Result<ReservationView, ClientError>;
    /// `POST /api/v1/inventory/reservations/{id}/commit`: 409 when released or expired.
    async fn commit(&self, reservation: Uuid) -> Result<ReservationView, ClientError>;
    /// `POST /api/v1/inventory/{sku}/adjustments`: the stock after the adjustment (once per key).
    async fn adjust(&self, sku: &str, key: &str, request: &AdjustmentRequest) -> Result<StockView, ClientError>;
}

/// How an adjustment changes on_hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    /// Units arrived: `quantity` > 0 is added.
    Restock,
    /// Units are unsellable: `quantity` > 0 is removed.
    Damage,
    /// A stock count differed: `quantity` is a signed delta (≠ 0).
    Correction,
}

/// Every kind of ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    Restock,
    Damage,
    Correction,
    /// Units set aside for a reservation (reserved +).
    Reserve,
    /// A reservation was released (reserved −).
    Release,
    /// A reservation became a deduction (on_hand − and reserved −).
    Commit,
    /// A reservation expired (reserved −).
    Expire,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restock => "restock",
            Self::Damage => "damage",
            Self::Correction => "correction",
            Self::Reserve => "reserve",
            Self::Release => "release",
            Self::Commit => "commit",
            Self::Expire => "expire",
        }
    }
}

impl FromStr for MovementKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "restock" => Self::Restock,
            "damage" => Self::Damage,
            "correction" => Self::Correction,
            "reserve" => Self::Reserve,
            "release" => Self::Release,
            "commit" => Self::Commit,
            "expire" => Self::Expire,
            other => return Err(format!("unknown movement kind {other:?}")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Units are held until `expires_at`.
    Active,
    /// Given back before expiry (e.g. the order was abandoned).
    Released,
    /// Turned into a deduction (the order was placed): on_hand went down by the units.
    Committed,
    /// Not committed in time; the sweeper gave the units back.
    Expired,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Released => "released",
            Self::Committed => "committed",
            Self::Expired => "expired",
        }
    }
}

impl FromStr for ReservationState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "active" => Self::Active,
            "released" => Self::Released,
            "committed" => Self::Committed,
            "expired" => Self::Expired,
            other => return Err(format!("unknown reservation state {other:?}")),
        })
    }
}

/// One SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockView {
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units held by active reservations.
    pub reserved: i64,
    /// on_hand − reserved: what can still be reserved.
    pub available: i64,
    pub low_stock_threshold: i64,
    /// available ≤ low_stock_threshold.
    pub low_stock: bool,
    /// The product was deleted in the catalogue: no new reservations.
    pub discontinued: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

/// Availability of several SKUs. SKUs without a stock row are listed in `not_found` instead of
/// failing the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchAvailability {
    /// Known SKUs, in SKU order.
    pub items: Vec<StockView>,
    /// Requested SKUs (normalised to upper case) that have no stock row.
    pub not_found: Vec<String>,
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MovementView {
    pub id: Uuid,
    pub sku: String,
    pub kind: MovementKind,
    /// Units involved (a correction's signed delta).
    pub quantity: i64,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    /// The adjustment's reason, or the reservation's reference.
    pub reason: Option<String>,
    pub reservation_id: Option<Uuid>,
    /// Who made the change (absent for automatic ones such as expiry).
    pub actor_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservedItemView {
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    pub id: Uuid,
    /// The caller's reference, e.g. an order id.
    pub reference: String,
    pub state: ReservationState,
    /// In SKU order.
    pub items: Vec<ReservedItemView>,
    /// An active reservation is released automatically after this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// `restock` adds `quantity` (> 0), `damage` removes it (> 0), `correction` applies it as a
    /// signed delta (≠ 0).
    pub kind: AdjustmentKind,
    #[schema(example = 24)]
    pub quantity: i64,
    /// Why (1 to 500 characters); kept in the ledger.
    #[schema(example = "delivery 2026-11-24")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRequest {
    /// 0 to 1 000 000: the SKU is "low" when available ≤ threshold.
    pub threshold: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationLineRequest {
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    /// 1 to 10 000.
    #[schema(example = 2)]
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReservationRequest {
    /// Yours, e.g. the order id (1 to 100 characters).
    #[schema(example = "order-0192")]
    pub reference: String,
    /// 1 to 100 lines, one per SKU (a repeated SKU is refused).
    pub items: Vec<ReservationLineRequest>,
    /// 30 to 86 400; default `EMPORIUM_RESERVATION_TTL_SECS` (900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}
