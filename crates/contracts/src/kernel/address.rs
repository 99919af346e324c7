//! Postal addresses: the one set of rules for an address, whether ordering ships to it or
//! identity keeps it in a shopper's address book.

use crate::api::ordering::RawAddress;

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(String);

/// What is wrong with a country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CountryError {
    #[error("must be an ISO 3166-1 alpha-2 code such as DE")]
    Format,
}

impl Country {
    pub fn parse(raw: &str) -> Result<Self, CountryError> {
        let c = raw.trim().to_ascii_uppercase();
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(c))
        } else {
            Err(CountryError::Format)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

super::string_value!(Country, CountryError);

/// A checked postal address: fields trimmed, required ones present, lengths bounded, no control
/// characters, a postal code of letters, digits, spaces and dashes, an optional phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostalAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: Country,
    pub phone: Option<String>,
}

/// One field of an address that failed its rule: `field` is the input's name (`city`), which
/// each context prefixes with where the address sits in its request (`shipping_address.city`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressFieldError {
    pub field: &'static str,
    pub message: String,
}

struct Checks(Vec<AddressFieldError>);

impl Checks {
    fn fail(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(AddressFieldError {
            field,
            message: message.into(),
        });
    }

    fn text(&mut self, field: &'static str, value: &str, max: usize) -> Option<String> {
        match required_text(value, max) {
            Ok(v) => Some(v),
            Err(message) => {
                self.fail(field, message);
                None
            }
        }
    }

    fn optional(&mut self, field: &'static str, value: Option<&str>, max: usize) -> Option<String> {
        match optional_text(value, max) {
            Ok(v) => v,
            Err(message) => {
                self.fail(field, message);
                None
            }
        }
    }
}

/// A required line of text: trimmed, 1 to `max` characters, no control characters.
pub fn required_text(value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        Err("is required".into())
    } else if v.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if v.chars().any(char::is_control) {
        Err("may not contain control characters".into())
    } else {
        Ok(v.to_owned())
    }
}

/// An optional line of text: absent or blank is `None`, anything else follows [`required_text`].
pub fn optional_text(value: Option<&str>, max: usize) -> Result<Option<String>, String> {
    match value.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => required_text(v, max).map(Some),
    }
}

/// Whether a phone number is plausible: 6 to 15 digits (E.164's most), a leading `+` and
/// the separators people type.
fn is_phone_number(p: &str) -> bool {
    let digits = p.chars().filter(char::is_ascii_digit).count();
    let allowed = p
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || " -()/".contains(c) || (c == '+' && i == 0));
    allowed && (6..=15).contains(&digits) && p.len() <= 32
}

impl PostalAddress {
    /// Checks every field, reporting all that fail in the order of the form. `country_rule` adds
    /// the caller's own rule for a well-formed country (ordering: "we ship there").
    pub fn parse(
        raw: &RawAddress,
        country_rule: impl Fn(&Country) -> Result<(), String>,
    ) -> Result<Self, Vec<AddressFieldError>> {
        let mut checks = Checks(Vec::new());
        let name = checks.text("name", &raw.name, 100);
        let line1 = checks.text("line1", &raw.line1, 200);
        let line2 = checks.optional("line2", raw.line2.as_deref(), 200);
        let city = checks.text("city", &raw.city, 100);
        let postal_code = checks.text("postal_code", &raw.postal_code, 16);
        if let Some(code) = &postal_code
            && !code.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        {
            checks.fail("postal_code", "may only contain letters, digits, spaces and '-'");
        }
        let country = match Country::parse(&raw.country).map_err(String::from).and_then(|c| {
            country_rule(&c)?;
            Ok(c)
        }) {
            Ok(c) => Some(c),
            Err(message) => {
                checks.fail("country", message);
                None
            }
        };
        let phone = match raw.phone.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(p) if !is_phone_number(p) => {
                checks.fail(
                    "phone",
                    "must be a phone number: 6 to 15 digits, optionally +, spaces, '-', '(', ')', '/'",
                );
                None
            }
            p => p.map(str::to_owned),
        };
        match (name, line1, city, postal_code, country) {
            (Some(name), Some(line1), Some(city), Some(postal_code), Some(country)) if checks.0.is_empty() => {
                Ok(Self {
                    name,
                    line1,
                    line2,
                    city,
                    postal_code,
                    country,
                    phone,
                })
            }
            _ => Err(checks.0),
        }
    }

    /// The address as a client sends it (to fill a form, or to check out with).
    pub fn to_raw(&self) -> RawAddress {
        RawAddress {
            name: self.name.clone(),
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            country: self.country.as_str().to_owned(),
            phone: self.phone.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawAddress {
        RawAddress {
            name: " Ada Lovelace ".into(),
            line1: "1 Analytical Way".into(),
            line2: Some("  ".into()),
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "gb".into(),
            phone: Some("+44 20 7946 0000".into()),
        }
    }

    fn fields(errors: &[AddressFieldError]) -> Vec<&'static str> {
        errors.iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_address_is_trimmed_and_normalised() {
        let a = PostalAddress::parse(&raw(), |_| Ok(())).expect("valid");
        assert_eq!(a.name, "Ada Lovelace");
        assert_eq!(a.line2, None, "a blank optional line is absent");
        assert_eq!(a.country.as_str(), "GB");
        assert_eq!(a.to_raw().country, "GB");
    }

    #[test]
    fn every_failing_field_is_reported_in_form_order() {
        let mut r = raw();
        r.name = String::new();
        r.city = "x".repeat(101);
        r.postal_code = "N1 <9>".into();
        r.country = "GBR".into();
        r.phone = Some("12".into());
        r.line1 = "one\u{7}".into();
        let errors = PostalAddress::parse(&r, |_| Ok(())).expect_err("invalid");
        assert_eq!(
            fields(&errors),
            ["name", "line1", "city", "postal_code", "country", "phone"]
        );
    }

    #[test]
    fn the_callers_country_rule_applies_to_well_formed_codes() {
        let errors = PostalAddress::parse(&raw(), |c| Err(format!("we do not ship to {c}"))).expect_err("refused");
        assert_eq!(errors[0].field, "country");
        assert_eq!(errors[0].message, "we do not ship to GB");
    }
}
