//! The events cart consumes. It publishes none.

use serde::Deserialize;
use uuid::Uuid;

pub const ORDER_PLACED: &str = "ordering.order.placed";

/// What cart needs of `ordering.order.placed` (the event carries much more).
#[derive(Debug, Clone, Deserialize)]
pub struct OrderPlaced {
    pub user_id: Uuid,
    /// The order was placed from the user's cart (not from explicit items).
    #[serde(default)]
    pub from_cart: bool,
    /// What was ordered: lines changed in the very second the order was placed cannot be told
    /// apart by time, so cart takes these quantities off them.
    #[serde(default)]
    pub lines: Vec<OrderedLine>,
}

/// One line of `ordering.order.placed`, as far as cart reads it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct OrderedLine {
    pub sku: String,
    pub quantity: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_it_needs_and_ignores_the_rest() {
        let data = serde_json::json!({
            "order_id": "0192b1c0-0000-7000-8000-000000000009", "number": "EMP-1",
            "user_id": "0192b1c0-0000-7000-8000-000000000001", "currency": "EUR", "from_cart": true,
            "lines": [{"sku": "TEE-RED-M", "quantity": 1}]
        });
        let placed: OrderPlaced = serde_json::from_value(data).expect("data");
        assert!(placed.from_cart);
        assert_eq!(
            placed.lines,
            [OrderedLine {
                sku: "TEE-RED-M".into(),
                quantity: 1
            }]
        );
        let explicit: OrderPlaced =
            serde_json::from_value(serde_json::json!({"user_id": "0192b1c0-0000-7000-8000-000000000001"}))
                .expect("data");
        assert!(!explicit.from_cart);
    }
}
