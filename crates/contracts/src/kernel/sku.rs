//! Stock-keeping units.

use utoipa::ToSchema;

/// A stock-keeping unit: 3 to 64 characters of `A-Z`, `0-9` and `-`.
///
/// Surrounding whitespace is trimmed and lower case is upper-cased first, so `" tee-red-m "` is
/// `TEE-RED-M` wherever it is typed (catalog, cart, inventory and ordering all spell a SKU this
/// way, and a SKU names the same product in each of them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, example = "TEE-RED-M", pattern = "^[A-Z0-9-]{3,64}$")]
pub struct Sku(String);

/// What is wrong with a SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    #[error("must be 3 to 64 characters")]
    Length,
    #[error("may only contain A-Z, 0-9 and '-'")]
    Characters,
}

impl Sku {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, SkuError> {
        let sku = raw.trim().to_ascii_uppercase();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&sku.len()) {
            return Err(SkuError::Length);
        }
        if !sku
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(SkuError::Characters);
        }
        Ok(Self(sku))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    /// For values read back from a store, which only ever holds parsed SKUs.
    pub fn from_trusted(sku: String) -> Self {
        Self(sku)
    }
}

super::string_value!(Sku, SkuError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_trimmed_and_upper_cased() {
        assert_eq!(Sku::parse(" tee-red-m ").map(|s| s.to_string()), Ok("TEE-RED-M".into()));
        assert_eq!(Sku::parse("ABC-123").expect("ok").as_str(), "ABC-123");
    }

    #[test]
    fn skus_are_bounded_and_plain() {
        assert_eq!(Sku::parse("AB"), Err(SkuError::Length));
        assert_eq!(Sku::parse("  AB  "), Err(SkuError::Length));
        assert_eq!(Sku::parse(&"A".repeat(65)), Err(SkuError::Length));
        assert!(Sku::parse(&"A".repeat(64)).is_ok());
        assert!(Sku::parse("ABC").is_ok());
        for bad in ["A B C", "ABC_1", "ÄBC", "AB/C", "ABC\n1"] {
            assert_eq!(Sku::parse(bad), Err(SkuError::Characters), "{bad:?}");
        }
    }

    #[test]
    fn deserialising_validates() {
        let sku: Sku = serde_json::from_str(r#""abc-1""#).expect("valid");
        assert_eq!(sku.as_str(), "ABC-1");
        assert_eq!(serde_json::to_string(&sku).expect("json"), r#""ABC-1""#);
        let err = serde_json::from_str::<Sku>(r#""a b""#).expect_err("invalid");
        assert!(err.to_string().contains("may only contain"), "{err}");
        assert!(serde_json::from_str::<Sku>(r#""ab""#).is_err());
    }
}
