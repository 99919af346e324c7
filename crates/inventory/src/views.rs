//! What the API answers with (also stored verbatim as idempotent replies).

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{MovementKind, ReservationState, is_low};
use crate::store::{Movement, Reservation, Stock};

/// One SKU's stock.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<&Stock> for StockView {
    fn from(s: &Stock) -> Self {
        Self {
            sku: s.sku.to_string(),
            on_hand: s.on_hand,
            reserved: s.reserved,
            available: s.available(),
            low_stock_threshold: s.low_stock_threshold,
            low_stock: is_low(s.available(), s.low_stock_threshold),
            discontinued: s.discontinued,
            updated_at: s.updated_at,
            version: s.version,
        }
    }
}

/// Availability of several SKUs. SKUs without a stock row are listed in `not_found` instead of
/// failing the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAvailability {
    /// Known SKUs, in SKU order.
    pub items: Vec<StockView>,
    /// Requested SKUs (normalised to upper case) that have no stock row.
    pub not_found: Vec<String>,
}

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<Movement> for MovementView {
    fn from(m: Movement) -> Self {
        Self {
            id: m.id,
            sku: m.sku.to_string(),
            kind: m.kind,
            quantity: m.quantity,
            on_hand_delta: m.on_hand_delta,
            reserved_delta: m.reserved_delta,
            on_hand_after: m.on_hand_after,
            reserved_after: m.reserved_after,
            reason: m.reason,
            reservation_id: m.reservation_id,
            actor_id: m.actor_id,
            occurred_at: m.occurred_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservedItemView {
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Serialize, ToSchema)]
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

impl From<&Reservation> for ReservationView {
    fn from(r: &Reservation) -> Self {
        Self {
            id: r.id.0,
            reference: r.reference.clone(),
            state: r.state,
            items: r
                .items
                .iter()
                .map(|i| ReservedItemView {
                    sku: i.sku.to_string(),
                    qty: i.qty,
                })
                .collect(),
            expires_at: r.expires_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
