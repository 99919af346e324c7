//! What the API answers with, `contracts::api::inventory`'s views (also stored verbatim as
//! idempotent replies), built from the store's records here.

use crate::domain::is_low;
use crate::store::{Movement, Reservation, Stock};

pub use contracts::api::inventory::{BatchAvailability, MovementView, ReservationView, ReservedItemView, StockView};

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
