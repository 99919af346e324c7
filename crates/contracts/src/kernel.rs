//! Value types every context shares, each with one definition and one validation.
//!
//! Each type is built only through its `parse` (also behind `FromStr`, `TryFrom<&str>` and serde's
//! `Deserialize`, so a value read off the wire is checked the same way as one typed by a user).
//! A failed parse returns a small error enum whose `Display` says what is wrong in words that fit
//! after a field name ("sku must be 3 to 64 characters"): each context keeps naming the field in
//! its own problem+json answer.

mod address;
mod currency;
mod email;
mod idempotency;
mod ids;
mod money;
mod role;
mod sku;

pub use address::{AddressFieldError, Country, CountryError, PostalAddress, optional_text, required_text};
pub use currency::{Currency, CurrencyError, minor_digits};
pub use email::{EmailAddress, EmailError, MAX_EMAIL_BYTES};
pub use idempotency::{IDEMPOTENCY_KEY_HEADER, IdempotencyKey, IdempotencyKeyError, MAX_IDEMPOTENCY_KEY_CHARS};
pub use ids::{CartId, IdError, OrderId, PaymentId, ProductId, RefundId, ReservationId, UserId};
pub use money::{ExchangeRate, Money, RateError};
pub use role::{Role, RoleError, SERVICE_ROLE};
pub use sku::{Sku, SkuError};

/// The message of a parse error, for the contexts' `FieldError::new(field, message)` and their
/// `Result<_, String>` helpers.
macro_rules! error_into_string {
    ($($err:ty),+) => {$(
        impl From<$err> for String {
            fn from(e: $err) -> Self {
                e.to_string()
            }
        }
    )+};
}
error_into_string!(
    CountryError,
    CurrencyError,
    RateError,
    EmailError,
    IdempotencyKeyError,
    IdError,
    RoleError,
    SkuError
);

/// `Serialize` as the string, `Deserialize` through `parse`, plus `FromStr`, `TryFrom<&str>`,
/// `Display` and `AsRef<str>`, for a type with `parse(&str) -> Result<Self, $err>` and
/// `as_str(&self) -> &str`.
macro_rules! string_value {
    ($ty:ty, $err:ty) => {
        impl ::std::str::FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $err;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&text).map_err(|e| <D::Error as ::serde::de::Error>::custom(format_args!("{text:?} {e}")))
            }
        }
    };
}
use string_value;
