//! The one JSON shape of an amount of money in every API answer: `{"amount": 1999, "currency": "EUR"}`.
//!
//! Contexts keep their own `Money` domain types (with their own validation); this is only the wire
//! shape, so that a client reads a price, a subtotal, a shipping fee or a refund the same way.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount in integer minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MoneyView {
    /// Minor units (cents).
    #[schema(example = 1999)]
    pub amount: i64,
    /// ISO 4217 code, upper case.
    #[schema(example = "EUR")]
    pub currency: String,
}

impl MoneyView {
    pub fn new(amount: i64, currency: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_amount_and_currency() {
        let json = serde_json::to_value(MoneyView::new(1999, "EUR")).expect("json");
        assert_eq!(json, serde_json::json!({"amount": 1999, "currency": "EUR"}));
    }
}
