//! The events inventory publishes (through its outbox), built from their contracts payloads.

use contracts::events::inventory::{Reservation as ReservationData, ReservedItem, StockChanged, StockLow};
use platform::events::Event;

use crate::domain::became_low;
use crate::store::{Reservation, Stock};

pub fn stock_changed(previous_available: i64, s: &Stock) -> Event {
    Event::of(
        s.sku.as_str(),
        &StockChanged {
            sku: s.sku.to_string(),
            available: s.available(),
            on_hand: s.on_hand,
            reserved: s.reserved,
            previous_available: Some(previous_available),
        },
    )
}

/// The events caused by a change that left the stock row as `after`, given the availability and
/// threshold before it: `stock.changed` when availability moved (a commit takes reserved units
/// away and leaves it as it was: catalog, which shows availability, has nothing to hear), plus
/// `stock.low` on a crossing.
pub fn for_stock_change(before_available: i64, before_threshold: i64, after: &Stock) -> Vec<Event> {
    let mut events = Vec::with_capacity(2);
    if before_available != after.available() {
        events.push(stock_changed(before_available, after));
    }
    if !after.discontinued
        && became_low(
            before_available,
            before_threshold,
            after.available(),
            after.low_stock_threshold,
        )
    {
        events.push(Event::of(
            after.sku.as_str(),
            &StockLow {
                sku: after.sku.to_string(),
                available: after.available(),
                threshold: after.low_stock_threshold,
            },
        ));
    }
    events
}

/// An `inventory.reservation.*` event (`E`: created, released, committed or expired) about `r`.
pub fn reservation<E: contracts::events::Event + From<ReservationData>>(r: &Reservation) -> Event {
    let payload = E::from(ReservationData {
        id: r.id.0,
        reference: r.reference.clone(),
        items: r
            .items
            .iter()
            .map(|i| ReservedItem {
                sku: i.sku.to_string(),
                qty: i.qty,
            })
            .collect(),
    });
    Event::of(r.id.to_string(), &payload)
}

#[cfg(test)]
mod tests {
    use contracts::events::Event as _;

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
    fn stock_changed_data_has_the_levels_and_the_availability_before() {
        let e = stock_changed(11, &stock(12, 2, 10));
        assert_eq!(e.event_type, StockChanged::TYPE);
        assert_eq!(e.subject, "ABC-1");
        assert_eq!(
            e.data,
            serde_json::json!({"sku": "ABC-1", "available": 10, "on_hand": 12, "reserved": 2, "previous_available": 11})
        );
    }

    #[test]
    fn a_crossing_adds_a_low_event() {
        let after = stock(12, 2, 10);
        let kinds = |events: Vec<Event>| events.into_iter().map(|e| e.event_type).collect::<Vec<_>>();
        assert_eq!(
            kinds(for_stock_change(11, 10, &after)),
            [StockChanged::TYPE, StockLow::TYPE]
        );
        assert_eq!(kinds(for_stock_change(9, 10, &after)), [StockChanged::TYPE]);
        // The threshold raised over an unchanged availability: the alert alone.
        assert_eq!(kinds(for_stock_change(10, 9, &after)), [StockLow::TYPE]);
        // Units moved without changing availability (a commit), no crossing: nothing.
        assert!(for_stock_change(10, 10, &after).is_empty());
        let low = for_stock_change(11, 10, &after).pop().expect("low");
        assert_eq!(
            low.data,
            serde_json::json!({"sku": "ABC-1", "available": 10, "threshold": 10})
        );
    }
}
