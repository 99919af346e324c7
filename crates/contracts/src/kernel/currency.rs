//! ISO 4217 currency codes.

use utoipa::ToSchema;

/// Active ISO 4217 codes (funds and precious metals left out: nobody pays for a T-shirt in XAU).
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN \
BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD \
HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA \
MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF \
SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES \
VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

/// An active ISO 4217 currency code, always upper case.
///
/// Surrounding whitespace is trimmed and lower case is upper-cased (`"eur"` is `EUR`), as catalog,
/// ordering and payments always accepted; a three-letter code that ISO 4217 does not list
/// (`"XYZ"`) is refused everywhere, so no context can hold a price, an order or a payment in a
/// currency another context would reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, example = "EUR", pattern = "^[A-Z]{3}$")]
pub struct Currency([u8; 3]);

/// What is wrong with a currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("must be a three-letter ISO 4217 code such as EUR")]
    Format,
    #[error("is not an ISO 4217 currency code")]
    Unknown,
}

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");
    pub const USD: Currency = Currency(*b"USD");
    pub const GBP: Currency = Currency(*b"GBP");

    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        let code = raw.trim().to_ascii_uppercase();
        let &[a, b, c] = code.as_bytes() else {
            return Err(CurrencyError::Format);
        };
        if !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CurrencyError::Format);
        }
        if !ISO_4217.split_whitespace().any(|known| known == code) {
            return Err(CurrencyError::Unknown);
        }
        Ok(Self([a, b, c]))
    }

    pub fn as_str(&self) -> &str {
        // Only `parse` and the constants build a `Currency`: always three ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits of the minor unit (ISO 4217): 0 for the yen, 3 for the Kuwaiti dinar, 2 for most.
    pub fn minor_digits(self) -> u32 {
        minor_digits(self.as_str())
    }
}

/// Digits of a currency code's minor unit (ISO 4217), for code that holds the code as text:
/// 2 unless listed. The one table every formatter and converter uses.
pub fn minor_digits(code: &str) -> u32 {
    match code.trim().to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV"
        | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

super::string_value!(Currency, CurrencyError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_trimmed_and_upper_cased() {
        assert_eq!(Currency::parse("EUR"), Ok(Currency::EUR));
        assert_eq!(Currency::parse(" eur "), Ok(Currency::EUR));
        assert_eq!(Currency::parse("uSd").map(|c| c.to_string()), Ok("USD".into()));
        assert_eq!(Currency::parse("JPY").expect("yen").as_str(), "JPY");
    }

    #[test]
    fn only_iso_4217_codes_are_accepted() {
        for bad in ["", "EU", "EURO", "E1R", "€UR", "E R"] {
            assert_eq!(Currency::parse(bad), Err(CurrencyError::Format), "{bad:?}");
        }
        for unknown in ["XYZ", "ABC", "DEM"] {
            assert_eq!(Currency::parse(unknown), Err(CurrencyError::Unknown), "{unknown:?}");
        }
    }

    #[test]
    fn every_listed_code_parses_to_itself() {
        for code in ISO_4217.split_whitespace() {
            assert_eq!(Currency::parse(code).map(|c| c.to_string()).as_deref(), Ok(code));
        }
    }

    #[test]
    fn deserialising_validates() {
        let c: Currency = serde_json::from_str(r#""gbp""#).expect("valid");
        assert_eq!(c, Currency::GBP);
        assert_eq!(serde_json::to_string(&c).expect("json"), r#""GBP""#);
        assert!(serde_json::from_str::<Currency>(r#""XYZ""#).is_err());
        assert!(serde_json::from_str::<Currency>("12").is_err());
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        let digits = |c: &str| Currency::parse(c).expect("code").minor_digits();
        assert_eq!(
            (digits("JPY"), digits("KWD"), digits("EUR"), digits("isk")),
            (0, 3, 2, 0)
        );
        assert_eq!(minor_digits(" kwd "), 3);
    }
}
