//! The events inventory publishes. Catalog shows the stock levels, notifications mails the
//! low-stock alert, ordering cancels unpaid orders whose reservation expired.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Event, shared_shape};

/// A SKU's stock levels after its availability changed (absolute levels, not deltas). Not sent
/// when a reservation is committed: the reserved units leave, availability stays the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChanged {
    pub sku: String,
    pub available: i64,
    #[serde(default)]
    pub on_hand: i64,
    #[serde(default)]
    pub reserved: i64,
    /// Availability before this change, when the sender knew it: a reader can tell a SKU that
    /// came into or went out of stock from one whose count merely moved. Absent from older
    /// senders' events; read its absence as "may have crossed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_available: Option<i64>,
}

impl StockChanged {
    /// Whether the SKU came into stock or went out of it (`true` when the event does not say).
    pub fn crossed_in_stock(&self) -> bool {
        self.previous_available
            .is_none_or(|before| (before > 0) != (self.available > 0))
    }
}

impl Event for StockChanged {
    const TYPE: &'static str = "inventory.stock.changed";
}

/// Sent once when a SKU's availability crosses into low stock (down to its threshold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLow {
    pub sku: String,
    pub available: i64,
    pub threshold: i64,
}

impl Event for StockLow {
    const TYPE: &'static str = "inventory.stock.low";
}

/// A reservation, as the reservation events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: Uuid,
    /// The caller's reference (ordering: the order id).
    pub reference: String,
    #[serde(default)]
    pub items: Vec<ReservedItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedItem {
    pub sku: String,
    pub qty: i64,
}

shared_shape! {
    /// Units were set aside for a checkout.
    ReservationCreated(Reservation) = "inventory.reservation.created"
}

shared_shape! {
    /// A reservation was given back (the checkout failed or was abandoned).
    ReservationReleased(Reservation) = "inventory.reservation.released"
}

shared_shape! {
    /// A reservation's units left stock (the order was paid).
    ReservationCommitted(Reservation) = "inventory.reservation.committed"
}

shared_shape! {
    /// A reservation outlived its time to live and was released.
    ReservationExpired(Reservation) = "inventory.reservation.expired"
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::tests::wire_form;

    #[test]
    fn stock_events() {
        let changed: StockChanged = wire_form(json!({"sku": "ABC-1", "available": 10, "on_hand": 12, "reserved": 2}));
        assert_eq!(changed.reserved, 2);
        assert!(changed.crossed_in_stock(), "an older sender's event may have crossed");
        let levels_only: StockChanged = serde_json::from_value(json!({"sku": "ABC-1", "available": 3})).expect("parse");
        assert_eq!((levels_only.on_hand, levels_only.reserved), (0, 0));
        let moved: StockChanged =
            wire_form(json!({"sku": "ABC-1", "available": 9, "on_hand": 12, "reserved": 3, "previous_available": 10}));
        assert!(!moved.crossed_in_stock());
        let sold_out = StockChanged {
            available: 0,
            previous_available: Some(1),
            ..moved.clone()
        };
        let back = StockChanged {
            available: 4,
            previous_available: Some(0),
            ..moved
        };
        assert!(sold_out.crossed_in_stock() && back.crossed_in_stock());
        let low: StockLow = wire_form(json!({"sku": "ABC-1", "available": 10, "threshold": 10}));
        assert_eq!(low.threshold, 10);
    }

    #[test]
    fn reservation_events() {
        let sample = json!({"id": "0192b1c0-0000-7000-8000-000000000004", "reference": "order-1",
            "items": [{"sku": "ABC-1", "qty": 2}]});
        let created: ReservationCreated = wire_form(sample.clone());
        assert_eq!(created.items[0].qty, 2);
        let _: ReservationReleased = wire_form(sample.clone());
        let _: ReservationCommitted = wire_form(sample.clone());
        let expired: ReservationExpired = wire_form(sample);
        assert_eq!(expired.reference, "order-1");
        let bare: ReservationExpired =
            serde_json::from_value(json!({"id": "0192b1c0-0000-7000-8000-000000000004", "reference": "r"}))
                .expect("parse");
        assert!(bare.items.is_empty());
    }
}
