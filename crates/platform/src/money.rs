//! The one JSON shape of an amount of money in every API answer: `{"amount": 1999, "currency": "EUR"}`.
//! Defined with the rest of the published language in `contracts::api::money`; here for the
//! contexts that name it through the platform.

pub use contracts::api::money::{MoneyInput, MoneyView, amount_of};
