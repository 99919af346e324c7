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

/// How many units of one currency buy one unit of another: a positive decimal with at most six
/// fractional digits ("1.0856"), held as integer millionths so conversions never touch floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeRate(u64);

/// What is wrong with a rate as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("is required")]
    Empty,
    #[error("must be a decimal number such as 1.0856")]
    Format,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("may have at most 6 decimal places")]
    TooPrecise,
    #[error("must be at most 1000000")]
    TooLarge,
}

impl ExchangeRate {
    const SCALE: u64 = 1_000_000;
    const MAX_MICROS: u64 = 1_000_000 * Self::SCALE;

    pub fn parse(text: &str) -> Result<Self, RateError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RateError::Empty);
        }
        if text.starts_with('-') {
            return Err(RateError::NotPositive);
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return Err(RateError::Format);
        }
        if fraction.len() > 6 {
            return Err(RateError::TooPrecise);
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| RateError::TooLarge)?
        };
        let fraction: u64 = format!("{fraction:0<6}").parse().map_err(|_| RateError::Format)?;
        let micros = whole
            .checked_mul(Self::SCALE)
            .and_then(|w| w.checked_add(fraction))
            .ok_or(RateError::TooLarge)?;
        Self::from_micros(micros)
    }

    /// A rate of `micros` millionths (how it is stored).
    pub fn from_micros(micros: u64) -> Result<Self, RateError> {
        match micros {
            0 => Err(RateError::NotPositive),
            m if m > Self::MAX_MICROS => Err(RateError::TooLarge),
            m => Ok(Self(m)),
        }
    }

    pub fn micros(self) -> u64 {
        self.0
    }

    /// The rate as a decimal without trailing zeros: `1.0856`, `160`.
    pub fn to_decimal(self) -> String {
        let (whole, fraction) = (self.0 / Self::SCALE, self.0 % Self::SCALE);
        if fraction == 0 {
            return whole.to_string();
        }
        let fraction = format!("{fraction:06}");
        format!("{whole}.{}", fraction.trim_end_matches('0'))
    }

    /// `amount` converted at this rate into `to`: amount × rate, rescaled between the two
    /// currencies' minor units, rounded half away from zero (ISO 4217 digits: 0 for JPY, 3 for
    /// KWD). Integer arithmetic throughout; `None` only when the result leaves `i64`.
    pub fn convert(self, amount: Money, to: Currency) -> Option<Money> {
        let numerator = i128::from(amount.amount) * i128::from(self.0) * 10i128.pow(to.minor_digits());
        let denominator = i128::from(Self::SCALE) * 10i128.pow(amount.currency.minor_digits());
        let (quotient, remainder) = (numerator / denominator, numerator % denominator);
        let rounded = if 2 * remainder.abs() >= denominator {
            quotient + numerator.signum()
        } else {
            quotient
        };
        Some(Money::new(i64::try_from(rounded).ok()?, to))
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

    fn rate(text: &str) -> ExchangeRate {
        ExchangeRate::parse(text).expect("rate")
    }

    #[test]
    fn rates_are_positive_decimals_of_at_most_six_places() {
        assert_eq!(rate("1.0856").micros(), 1_085_600);
        assert_eq!(rate(" 160 ").to_decimal(), "160");
        assert_eq!(rate(".5").to_decimal(), "0.5");
        assert_eq!(rate("0.000001").micros(), 1);
        for (bad, why) in [
            ("", RateError::Empty),
            ("0", RateError::NotPositive),
            ("0.000000", RateError::NotPositive),
            ("-1.2", RateError::NotPositive),
            ("1,08", RateError::Format),
            ("1e3", RateError::Format),
            (".", RateError::Format),
            ("1.0000001", RateError::TooPrecise),
            ("1000000.01", RateError::TooLarge),
            ("99999999999999999999", RateError::TooLarge),
        ] {
            assert_eq!(ExchangeRate::parse(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn conversion_rescales_minor_units_and_rounds_half_away_from_zero() {
        let eur = |amount| Money::new(amount, Currency::EUR);
        let code = |c: &str| Currency::parse(c).expect("code");
        // €19.99 at 1.0856 = $21.701144 → $21.70.
        assert_eq!(
            rate("1.0856").convert(eur(1999), Currency::USD),
            Some(Money::new(2170, Currency::USD))
        );
        // €19.99 at 162.35 = ¥3245.3765 → ¥3245 (no minor unit).
        assert_eq!(
            rate("162.35").convert(eur(1999), code("JPY")),
            Some(Money::new(3245, code("JPY")))
        );
        // €19.99 at 0.3321 = 6.638679 KWD → 6.639 (three decimals).
        assert_eq!(
            rate("0.3321").convert(eur(1999), code("KWD")),
            Some(Money::new(6639, code("KWD")))
        );
        // Halves go away from zero, for refunds too: €0.01 at 1.5 = $0.015 → $0.02, -$0.02.
        assert_eq!(rate("1.5").convert(eur(1), Currency::USD).map(|m| m.amount), Some(2));
        assert_eq!(rate("1.5").convert(eur(-1), Currency::USD).map(|m| m.amount), Some(-2));
        // ¥1 at 0.006159 back into euros: €0.006159 → €0.01.
        let yen = Money::new(1, code("JPY"));
        assert_eq!(rate("0.006159").convert(yen, Currency::EUR).map(|m| m.amount), Some(1));
        assert_eq!(rate("1000000").convert(eur(i64::MAX), Currency::USD), None);
    }
}
