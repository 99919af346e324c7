//! Idempotency keys.

use utoipa::ToSchema;

/// The request header that carries an [`IdempotencyKey`] (lower case, as `http` spells names).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters, surrounding whitespace
/// trimmed.
///
/// Ordering, inventory and payments all store it with the first answer and replay that answer
/// for a retry with the same key, so they must agree on which keys exist. Trimming changes nothing
/// for a header (HTTP already strips the whitespace around a field value) and lets a key passed
/// between services in a body or a form mean the same.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, example = "0b2f4a1e-checkout-1")]
pub struct IdempotencyKey(String);

/// What is wrong with an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 255 characters")]
    TooLong,
    #[error("may only contain visible ASCII characters")]
    Characters,
}

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, IdempotencyKeyError> {
        let key = raw.trim();
        if key.is_empty() {
            Err(IdempotencyKeyError::Empty)
        } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
            Err(IdempotencyKeyError::Characters)
        } else if key.len() > MAX_IDEMPOTENCY_KEY_CHARS {
            Err(IdempotencyKeyError::TooLong)
        } else {
            Ok(Self(key.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

super::string_value!(IdempotencyKey, IdempotencyKeyError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_and_trimmed() {
        assert_eq!(IdempotencyKey::parse("0b2f-key").expect("ok").as_str(), "0b2f-key");
        assert_eq!(IdempotencyKey::parse(" order-1 ").expect("ok").as_str(), "order-1");
        assert!(IdempotencyKey::parse(&"k".repeat(MAX_IDEMPOTENCY_KEY_CHARS)).is_ok());
        assert!(IdempotencyKey::parse("order-0190:authorize/1?x=~").is_ok());
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        assert_eq!(IdempotencyKey::parse(""), Err(IdempotencyKeyError::Empty));
        assert_eq!(IdempotencyKey::parse("  "), Err(IdempotencyKeyError::Empty));
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(256)),
            Err(IdempotencyKeyError::TooLong)
        );
        for bad in ["has space", "tab\tkey", "nul\0", "schlüssel"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(IdempotencyKeyError::Characters),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn deserialising_validates() {
        let key: IdempotencyKey = serde_json::from_str(r#""k-1""#).expect("valid");
        assert_eq!(key.to_string(), "k-1");
        assert!(serde_json::from_str::<IdempotencyKey>(r#""a b""#).is_err());
    }
}
