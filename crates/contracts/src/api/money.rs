//! The one JSON shape of an amount of money in every API answer: `{"amount": 1999, "currency": "EUR"}`.
//!
//! Contexts keep their own money rules (with their own validation); this is only the wire shape,
//! so that a client reads a price, a subtotal, a shipping fee or a refund the same way.

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

/// Money in a request body: `{"amount": 1999, "currency": "EUR"}` (`currency` may be left out where
/// the context has one currency). A bare integer of minor units is still accepted where v1 took one
/// before the shapes were unified, so older clients keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MoneyInput {
    Object {
        /// Minor units (cents).
        amount: i64,
        /// ISO 4217 code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
    },
    /// Minor units (cents), in the context's currency (deprecated form).
    Minor(i64),
}

impl MoneyInput {
    pub fn amount(&self) -> i64 {
        match self {
            Self::Object { amount, .. } | Self::Minor(amount) => *amount,
        }
    }

    /// The currency the client named, if any.
    pub fn currency(&self) -> Option<&str> {
        match self {
            Self::Object { currency, .. } => currency.as_deref(),
            Self::Minor(_) => None,
        }
    }
}

impl From<MoneyView> for MoneyInput {
    fn from(m: MoneyView) -> Self {
        Self::Object {
            amount: m.amount,
            currency: Some(m.currency),
        }
    }
}

/// `deserialize_with` for a peer's answer: the minor units of a money field, whether the peer sends
/// the object or (an older build) a bare integer.
pub fn amount_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    MoneyInput::deserialize(d).map(|m| m.amount())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_may_send_the_object_or_a_bare_integer() {
        let object: MoneyInput = serde_json::from_str(r#"{"amount": 500, "currency": "EUR"}"#).expect("object");
        assert_eq!((object.amount(), object.currency()), (500, Some("EUR")));
        let bare: MoneyInput = serde_json::from_str("500").expect("bare");
        assert_eq!((bare.amount(), bare.currency()), (500, None));
        assert!(serde_json::from_str::<MoneyInput>(r#""5.00""#).is_err());
    }

    #[test]
    fn serializes_as_amount_and_currency() {
        let json = serde_json::to_value(MoneyView::new(1999, "EUR")).expect("json");
        assert_eq!(json, serde_json::json!({"amount": 1999, "currency": "EUR"}));
    }
}
