//! Amounts of money.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Currency;

/// An amount in integer minor units (cents) of a currency: `{"amount": 1999, "currency": "EUR"}`.
///
/// Never a float. The amount's sign and bounds are each context's rule (a price is positive, a
/// discount or a refund may be shown as a negative line); this type only pairs the units with
/// their currency, and deserialising checks the currency like [`Currency::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Minor units (cents).
    #[schema(example = 1999)]
    pub amount: i64,
    /// ISO 4217 code, upper case.
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
}

impl Money {
    pub const fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// `self × quantity`, saturating (amounts are bounded far below `i64::MAX` in practice).
    pub const fn times(self, quantity: i64) -> Money {
        Money::new(self.amount.saturating_mul(quantity), self.currency)
    }

    /// `self + other`, or `None` when the currencies differ or the sum overflows.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Money::new(self.amount.checked_add(other.amount)?, self.currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_minor_units_and_a_currency_on_the_wire() {
        let m = Money::new(1999, Currency::EUR);
        assert_eq!(
            serde_json::to_value(m).expect("json"),
            serde_json::json!({"amount": 1999, "currency": "EUR"})
        );
        let back: Money = serde_json::from_str(r#"{"amount": 1999, "currency": "eur"}"#).expect("valid");
        assert_eq!(back, m);
    }

    #[test]
    fn deserialising_refuses_floats_and_unknown_currencies() {
        assert!(serde_json::from_str::<Money>(r#"{"amount": 19.99, "currency": "EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1999, "currency": "XYZ"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1999}"#).is_err());
    }

    #[test]
    fn arithmetic_keeps_the_currency() {
        let m = Money::new(500, Currency::USD);
        assert_eq!(m.times(3), Money::new(1500, Currency::USD));
        assert_eq!(Money::new(i64::MAX, Currency::USD).times(2).amount, i64::MAX);
        assert_eq!(m.checked_add(m), Some(Money::new(1000, Currency::USD)));
        assert_eq!(m.checked_add(Money::new(1, Currency::EUR)), None);
        assert_eq!(Money::new(i64::MAX, Currency::USD).checked_add(m), None);
    }
}
