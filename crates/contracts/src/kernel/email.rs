//! E-mail addresses.

use utoipa::ToSchema;

/// Longest address SMTP carries (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_BYTES: usize = 64;
const MAX_LABEL_BYTES: usize = 63;

/// An e-mail address: trimmed, lower-cased, and of the plain `local@domain.tld` form.
///
/// Identity's rule is the one everybody uses: an account is found by its address whatever its
/// case, so the address is stored and compared lower-cased, and notifications send to exactly
/// what identity accepted. The local part may hold letters, digits and ``!#$%&'*+/=?^_`{|}~.-``
/// (no leading, trailing or doubled dot); the domain needs at least two labels of letters, digits
/// and inner dashes. Quoted local parts and IP-literal domains are refused: no shop customer has
/// one, and they are where header injection hides.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, example = "ada@example.com")]
pub struct EmailAddress(String);

/// What is wrong with an e-mail address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is required")]
    Empty,
    #[error("is longer than 254 characters")]
    TooLong,
    #[error("is not an e-mail address (no @)")]
    NoAt,
    #[error("is not a valid e-mail address")]
    Invalid,
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(EmailError::Empty);
        }
        if email.len() > MAX_EMAIL_BYTES {
            return Err(EmailError::TooLong);
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(EmailError::NoAt);
        };
        let local_ok = !local.is_empty()
            && local.len() <= MAX_LOCAL_BYTES
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= MAX_LABEL_BYTES
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(EmailError::Invalid)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit('@').next().unwrap_or("")
    }
}

super::string_value!(EmailAddress, EmailError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = EmailAddress::parse("  Ada@Example.COM ").expect("ok");
        assert_eq!(email.as_str(), "ada@example.com");
        assert_eq!(email.domain(), "example.com");
        assert!(EmailAddress::parse("o'brien+shop@mail.example.co.uk").is_ok());
        assert!(EmailAddress::parse("jürgen@bücher.example").is_ok());
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_reason() {
        assert_eq!(EmailAddress::parse("  "), Err(EmailError::Empty));
        assert_eq!(EmailAddress::parse("plain"), Err(EmailError::NoAt));
        for bad in [
            "a@b",
            "@example.com",
            "a@",
            "a@@b.example",
            "a@.com",
            "a@b..c",
            "a..b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a@exa mple.com",
            "a b@example.com",
            "a@-x.com",
            "a@x-.com",
            "x<y>@example.com",
            "a@b.example\r\nBcc: c@d.example",
            "\"quoted\"@example.com",
        ] {
            assert_eq!(EmailAddress::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn addresses_are_bounded() {
        assert_eq!(
            EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))),
            Err(EmailError::Invalid)
        );
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        let label = "d".repeat(63);
        let long = format!("a@{label}.{label}.{label}.{label}.example");
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn deserialising_validates() {
        let email: EmailAddress = serde_json::from_str(r#""Ann@Example.com""#).expect("valid");
        assert_eq!(serde_json::to_string(&email).expect("json"), r#""ann@example.com""#);
        assert!(serde_json::from_str::<EmailAddress>(r#""nobody""#).is_err());
    }
}
