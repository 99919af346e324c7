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
        let explicit: OrderPlaced =
            serde_json::from_value(serde_json::json!({"user_id": "0192b1c0-0000-7000-8000-000000000001"}))
                .expect("data");
        assert!(!explicit.from_cart);
    }
}
