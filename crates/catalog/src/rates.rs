//! Exchange rates for display currencies: the rules for a rate an admin types, and reading the
//! European Central Bank's daily reference-rate file (`eurofxref-daily.xml`) for
//! `emporium rates import`. No I/O here.

use contracts::kernel::{Currency, ExchangeRate};
use platform::FieldError;
use quick_xml::XmlVersion;
use quick_xml::events::Event as Xml;
use time::Date;
use time::macros::format_description;

/// One stored rate: `rate` units of `currency` per unit of the shop's currency, for `as_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub currency: Currency,
    pub rate: ExchangeRate,
    pub as_of: Date,
}

/// `YYYY-MM-DD`, the form the API, the ECB file and the table use.
pub fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text.trim(), format_description!("[year]-[month]-[day]"))
        .map_err(|_| "must be a date such as 2026-12-03".to_owned())
}

pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|_| date.to_string())
}

/// A rate as an admin sends it, checked field by field: `currency` (ISO 4217, not the shop's
/// own), `rate` (positive, at most 6 decimals), `as_of` (a date, not after `today`).
pub fn check_rate(
    currency: &str,
    rate: Option<&str>,
    as_of: Option<&str>,
    base: Currency,
    today: Date,
) -> Result<Rate, Vec<FieldError>> {
    let mut errors = Vec::new();
    let currency = match Currency::parse(currency) {
        Ok(c) if c == base => {
            errors.push(FieldError::new(
                "currency",
                format!("is the shop's own currency ({base})"),
            ));
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(FieldError::new("currency", e.to_string()));
            None
        }
    };
    let rate = match rate.map(ExchangeRate::parse) {
        None => {
            errors.push(FieldError::new("rate", "is required"));
            None
        }
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            errors.push(FieldError::new("rate", e.to_string()));
            None
        }
    };
    let as_of = match as_of.map(parse_date) {
        None => {
            errors.push(FieldError::new("as_of", "is required"));
            None
        }
        Some(Ok(d)) if d > today => {
            errors.push(FieldError::new("as_of", "may not be in the future"));
            None
        }
        Some(Ok(d)) => Some(d),
        Some(Err(m)) => {
            errors.push(FieldError::new("as_of", m));
            None
        }
    };
    match (currency, rate, as_of) {
        (Some(currency), Some(rate), Some(as_of)) if errors.is_empty() => Ok(Rate { currency, rate, as_of }),
        _ => Err(errors),
    }
}

/// What an ECB reference-rate file holds: euro rates for one day, and the entries it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcbRates {
    pub as_of: Date,
    /// Units of each currency per euro.
    pub per_euro: Vec<(Currency, ExchangeRate)>,
    /// `CODE: why`, for entries that are not an ISO 4217 code or not a usable rate.
    pub skipped: Vec<String>,
}

/// Reads the ECB's daily file: `<Cube time='2026-12-03'>` holding one
/// `<Cube currency='USD' rate='1.0856'/>` per currency. Files with several days (the 90-day
/// history) give the newest day, which the ECB lists first.
pub fn parse_ecb(xml: &str) -> Result<EcbRates, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut as_of: Option<Date> = None;
    let mut per_euro = Vec::new();
    let mut skipped = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not an XML file (at byte {}): {e}", reader.buffer_position()))?;
        let cube = match &event {
            Xml::Start(e) | Xml::Empty(e) if e.local_name().as_ref() == "Cube" => e,
            Xml::Eof => break,
            _ => continue,
        };
        let attribute = |name: &str| -> Result<Option<String>, String> {
            match cube.try_get_attribute(name) {
                Ok(Some(a)) => a
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map(|v| Some(v.into_owned()))
                    .map_err(|e| format!("unreadable {name} attribute: {e}")),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("unreadable attributes: {e}")),
            }
        };
        if let Some(time) = attribute("time")? {
            if as_of.is_some() {
                break; // an older day of a history file
            }
            as_of = Some(parse_date(&time).map_err(|m| format!("the time {time:?} {m}"))?);
        } else if let (Some(code), Some(rate)) = (attribute("currency")?, attribute("rate")?) {
            if as_of.is_none() {
                return Err("a rate comes before its <Cube time='…'> date".into());
            }
            match (Currency::parse(&code), ExchangeRate::parse(&rate)) {
                (Ok(c), Ok(r)) => per_euro.push((c, r)),
                (Err(e), _) => skipped.push(format!("{code}: {e}")),
                (_, Err(e)) => skipped.push(format!("{code}: the rate {rate:?} {e}")),
            }
        }
    }
    let as_of = as_of.ok_or("no <Cube time='…'> element: is this the ECB's eurofxref file?")?;
    if per_euro.is_empty() {
        return Err("the file lists no usable rate".into());
    }
    Ok(EcbRates {
        as_of,
        per_euro,
        skipped,
    })
}

impl EcbRates {
    /// The rates per unit of `base`: the euro's rates divided by the euro's rate of `base`
    /// (rounded half up to millionths), plus the euro itself. Fails when the file has no rate
    /// for `base`.
    pub fn rebased(&self, base: Currency) -> Result<Vec<Rate>, String> {
        let rate = |currency, rate| Rate {
            currency,
            rate,
            as_of: self.as_of,
        };
        if base == Currency::EUR {
            return Ok(self.per_euro.iter().map(|(c, r)| rate(*c, *r)).collect());
        }
        let divisor = self
            .per_euro
            .iter()
            .find(|(c, _)| *c == base)
            .map(|(_, r)| u128::from(r.micros()))
            .ok_or_else(|| format!("the file has no rate for the shop's currency {base}"))?;
        let scale = 1_000_000u128;
        let divide = |micros: u128| -> Option<ExchangeRate> {
            let quotient = (micros * scale + divisor / 2) / divisor;
            ExchangeRate::from_micros(u64::try_from(quotient).ok()?).ok()
        };
        let euro = std::iter::once((Currency::EUR, scale));
        let others = self
            .per_euro
            .iter()
            .filter(|(c, _)| *c != base)
            .map(|(c, r)| (*c, u128::from(r.micros())));
        Ok(euro
            .chain(others)
            .filter_map(|(c, micros)| divide(micros).map(|r| rate(c, r)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECB: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <Cube>
    <Cube time='2026-12-03'>
      <Cube currency='USD' rate='1.0856'/>
      <Cube currency='JPY' rate='162.35'/>
      <Cube currency="GBP" rate="0.8523"/>
      <Cube currency='XYZ' rate='2.5'/>
      <Cube currency='KWD' rate='-1'/>
    </Cube>
    <Cube time='2026-12-02'>
      <Cube currency='USD' rate='1.0000'/>
    </Cube>
  </Cube>
</gesmes:Envelope>"#;

    fn today() -> Date {
        time::macros::date!(2026 - 12 - 04)
    }

    #[test]
    fn the_newest_day_of_an_ecb_file_is_read_and_bad_entries_are_named() {
        let file = parse_ecb(ECB).expect("parse");
        assert_eq!(format_date(file.as_of), "2026-12-03");
        let codes: Vec<_> = file
            .per_euro
            .iter()
            .map(|(c, r)| (c.as_str().to_owned(), r.to_decimal()))
            .collect();
        assert_eq!(
            codes,
            [
                ("USD".into(), "1.0856".into()),
                ("JPY".into(), "162.35".into()),
                ("GBP".into(), "0.8523".into())
            ]
        );
        assert_eq!(file.skipped.len(), 2, "{:?}", file.skipped);
        assert!(file.skipped[0].starts_with("XYZ:"));
    }

    #[test]
    fn files_that_are_not_ecb_rates_are_refused_with_a_reason() {
        assert!(parse_ecb("not xml <<<").is_err());
        assert!(
            parse_ecb("<html><body>Maintenance</body></html>")
                .expect_err("no time")
                .contains("eurofxref")
        );
        assert!(parse_ecb("<Cube><Cube currency='USD' rate='1.1'/></Cube>").is_err());
        assert!(parse_ecb("<Cube time='2026-12-03'><Cube currency='XYZ' rate='1'/></Cube>").is_err());
    }

    #[test]
    fn rates_are_rebased_onto_the_shops_currency() {
        let file = parse_ecb(ECB).expect("parse");
        let in_usd = file.rebased(Currency::USD).expect("rebase");
        let find = |code: &str| {
            in_usd
                .iter()
                .find(|r| r.currency.as_str() == code)
                .map(|r| r.rate.to_decimal())
        };
        // 1 / 1.0856 = 0.9211496… → 0.921150; 162.35 / 1.0856 = 149.5486366… → 149.548637.
        assert_eq!(find("EUR").as_deref(), Some("0.92115"));
        assert_eq!(find("JPY").as_deref(), Some("149.548637"));
        assert_eq!(find("USD"), None, "never the base itself");
        assert!(file.rebased(Currency::parse("CHF").expect("chf")).is_err());
        assert_eq!(file.rebased(Currency::EUR).expect("eur").len(), 3);
    }

    #[test]
    fn typed_rates_name_each_bad_field() {
        let fields = |currency: &str, rate: Option<&str>, as_of: Option<&str>| {
            check_rate(currency, rate, as_of, Currency::EUR, today())
                .expect_err("invalid")
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields("XYZ", Some("0"), Some("2026-13-01")),
            ["currency", "rate", "as_of"]
        );
        assert_eq!(fields("EUR", Some("1"), Some("2026-12-01")), ["currency"]);
        assert_eq!(fields("USD", None, None), ["rate", "as_of"]);
        assert_eq!(fields("USD", Some("-1.5"), Some("2026-12-05")), ["rate", "as_of"]);
        let ok = check_rate("usd", Some("1.0856"), Some("2026-12-03"), Currency::EUR, today()).expect("valid");
        assert_eq!((ok.currency, ok.rate.micros()), (Currency::USD, 1_085_600));
    }
}
