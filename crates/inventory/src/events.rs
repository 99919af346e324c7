//! The events inventory publishes (through its outbox) and the ones it consumes.

use platform::events::Event;
use serde::{Deserialize, Serialize};

use crate::CONTEXT;
use crate::domain::became_low;
use crate::store::{Reservation, Stock};

pub const STOCK_CHANGED: &str = "inventory.stock.changed";
pub const STOCK_LOW: &str = "inventory.stock.low";
pub const RESERVATION_CREATED: &str = "inventory.reservation.created";
pub const RESERVATION_RELEASED: &str = "inventory.reservation.released";
pub const RESERVATION_COMMITTED: &str = "inventory.reservation.committed";
pub const RESERVATION_EXPIRED: &str = "inventory.reservation.expired";

pub const PRODUCT_CREATED: &str = "catalog.product.created";
pub const PRODUCT_DELETED: &str = "catalog.product.deleted";

/// `inventory.stock.changed` data. Catalog consumes it: keep exactly these four fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChanged {
    pub sku: String,
    pub available: i64,
    pub on_hand: i64,
    pub reserved: i64,
}

/// `inventory.stock.low` data: sent once when a SKU's availability drops to its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLow {
    pub sku: String,
    pub available: i64,
    pub threshold: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationItemData {
    pub sku: String,
    pub qty: i64,
}

/// `inventory.reservation.{created,released,committed,expired}` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationData {
    pub id: uuid::Uuid,
    pub reference: String,
    pub items: Vec<ReservationItemData>,
}

/// What catalog's product events carry that inventory needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductData {
    pub sku: String,
}

pub fn stock_changed(s: &Stock) -> Event {
    Event::new(
        CONTEXT,
        STOCK_CHANGED,
        s.sku.as_str(),
        StockChanged {
            sku: s.sku.to_string(),
            available: s.available(),
            on_hand: s.on_hand,
            reserved: s.reserved,
        },
    )
}

/// The events caused by a change that left the stock row as `after`, given the availability and
/// threshold before it: `stock.changed` when the units moved, plus `stock.low` on a crossing.
pub fn for_stock_change(
    before_available: i64,
    before_threshold: i64,
    units_changed: bool,
    after: &Stock,
) -> Vec<Event> {
    let mut events = Vec::with_capacity(2);
    if units_changed {
        events.push(stock_changed(after));
    }
    if !after.discontinued
        && became_low(
            before_available,
            before_threshold,
            after.available(),
            after.low_stock_threshold,
        )
    {
        events.push(Event::new(
            CONTEXT,
            STOCK_LOW,
            after.sku.as_str(),
            StockLow {
                sku: after.sku.to_string(),
                available: after.available(),
                threshold: after.low_stock_threshold,
            },
        ));
    }
    events
}

pub fn reservation(event_type: &str, r: &Reservation) -> Event {
    Event::new(
        CONTEXT,
        event_type,
        r.id.to_string(),
        ReservationData {
            id: r.id.0,
            reference: r.reference.clone(),
            items: r
                .items
                .iter()
                .map(|i| ReservationItemData {
                    sku: i.sku.to_string(),
                    qty: i.qty,
                })
                .collect(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Sku;

    fn stock(on_hand: i64, reserved: i64, threshold: i64) -> Stock {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Stock {
            sku: Sku::from_trusted("ABC-1".into()),
            on_hand,
            reserved,
            low_stock_threshold: threshold,
            discontinued: false,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    #[test]
    fn stock_changed_data_has_exactly_the_four_fields() {
        let e = stock_changed(&stock(12, 2, 10));
        assert_eq!(e.event_type, STOCK_CHANGED);
        assert_eq!(e.subject, "ABC-1");
        assert_eq!(
            e.data,
            serde_json::json!({"sku": "ABC-1", "available": 10, "on_hand": 12, "reserved": 2})
        );
    }

    #[test]
    fn a_crossing_adds_a_low_event() {
        let after = stock(12, 2, 10);
        let kinds = |events: Vec<Event>| events.into_iter().map(|e| e.event_type).collect::<Vec<_>>();
        assert_eq!(
            kinds(for_stock_change(11, 10, true, &after)),
            [STOCK_CHANGED, STOCK_LOW]
        );
        assert_eq!(kinds(for_stock_change(9, 10, true, &after)), [STOCK_CHANGED]);
        assert_eq!(kinds(for_stock_change(11, 10, false, &after)), [STOCK_LOW]);
        let low = for_stock_change(11, 10, true, &after).pop().expect("low");
        assert_eq!(
            low.data,
            serde_json::json!({"sku": "ABC-1", "available": 10, "threshold": 10})
        );
    }
}
