//! Ordering's settings (`OrderingConfig::from_source`): shipping methods, tax rates per destination
//! country, the order currency, and the saga's timings. Every variable is listed in
//! docs/configuration.md.

use std::collections::BTreeMap;
use std::time::Duration;

use platform::config::{ConfigError, ConfigSource};

use crate::domain::{Country, Currency, ShippingMethod};

pub const DEFAULT_SHIPPING_METHODS: &str =
    "standard:Standard (3-5 days):499:free_over=5000,express:Express (1 day):1499";
pub const DEFAULT_TAX_RATES: &str = "DE:1900,FR:2000,NL:2100,GB:2000,US:0,AT:2000,BE:2100,ES:2100,IT:2200,PL:2300";
pub const DEFAULT_SELLER: &str = "Emporium GmbH|Example Street 1|10115 Berlin|Germany|VAT DE000000000";

/// Ordering's settings; every one is listed with its default in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct OrderingConfig {
    /// `EMPORIUM_SHIPPING_METHODS`: `id:Name:price[:free_over=N]`, comma-separated, prices in
    /// minor units of the order currency.
    pub shipping_methods: Vec<ShippingMethod>,
    /// `EMPORIUM_TAX_RATES`: `CC:basis_points`, comma-separated. The supported destination
    /// countries are exactly these keys.
    pub tax_rates: BTreeMap<Country, u32>,
    /// `EMPORIUM_ORDER_CURRENCY` (EUR): orders are only taken in this currency.
    pub currency: Currency,
    /// `EMPORIUM_ORDER_STUCK_MINUTES` (15): a pending/awaiting_payment/paid order untouched this
    /// long counts in the `orders_stuck` gauge.
    pub stuck_after: Duration,
    /// `EMPORIUM_PAYMENT_TIMEOUT_MS` (2000): how long a capture call may take before the saga
    /// leaves it to the recovery loop.
    pub payment_timeout: Duration,
    /// `EMPORIUM_SAGA_RECOVERY_SECS` (5): how often unfinished sagas are resumed.
    pub recovery_interval: Duration,
    /// `EMPORIUM_SAGA_LEASE_SECS` (30): how long a saga runner holds an order (or a return) it
    /// works on. Recovery takes over an order only once this lapsed, so after a crash its saga
    /// waits this long; a runner still calling the provider must never be overtaken, hence at
    /// least twice the payment timeout.
    pub saga_lease: Duration,
    /// `EMPORIUM_INVOICE_SELLER`: the seller block printed on invoices, lines separated by `|`.
    pub seller: Vec<String>,
    /// `EMPORIUM_RETURN_WINDOW_DAYS` (30): how long after delivery a customer may request a return.
    pub return_window_days: u32,
    /// `EMPORIUM_ORDER_RETENTION_DAYS` (0): how long an erased customer's orders keep their name
    /// and address (invoices a law requires the shop to keep); pseudonymised once this passed.
    pub personal_data_retention: Duration,
}

impl Default for OrderingConfig {
    fn default() -> Self {
        Self::from_source(&ConfigSource::default()).unwrap_or_else(|_| unreachable!("the defaults parse"))
    }
}

impl OrderingConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let currency_text: String = src.get("EMPORIUM_ORDER_CURRENCY", "EUR".to_owned())?;
        let currency = Currency::parse(&currency_text).map_err(|m| ConfigError::new("EMPORIUM_ORDER_CURRENCY", m))?;
        let methods = src.raw("EMPORIUM_SHIPPING_METHODS").unwrap_or(DEFAULT_SHIPPING_METHODS);
        let shipping_methods =
            parse_shipping_methods(methods).map_err(|m| ConfigError::new("EMPORIUM_SHIPPING_METHODS", m))?;
        let rates = src.raw("EMPORIUM_TAX_RATES").unwrap_or(DEFAULT_TAX_RATES);
        let tax_rates = parse_tax_rates(rates).map_err(|m| ConfigError::new("EMPORIUM_TAX_RATES", m))?;
        let seller: Vec<String> = src
            .raw("EMPORIUM_INVOICE_SELLER")
            .unwrap_or(DEFAULT_SELLER)
            .split('|')
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        if seller.is_empty() || seller.iter().any(|l| l.chars().count() > 200) {
            return Err(ConfigError::new(
                "EMPORIUM_INVOICE_SELLER",
                "must be 1 or more lines of at most 200 characters, separated by |",
            ));
        }
        let payment_timeout =
            Duration::from_millis(src.number_in("EMPORIUM_PAYMENT_TIMEOUT_MS", 2000, 100..=60_000)?);
        let saga_lease = src.seconds("EMPORIUM_SAGA_LEASE_SECS", 30, 2..=3600)?;
        if saga_lease < 2 * payment_timeout {
            return Err(ConfigError::new(
                "EMPORIUM_SAGA_LEASE_SECS",
                format!(
                    "must be at least twice EMPORIUM_PAYMENT_TIMEOUT_MS ({} ms), so that recovery never takes over a \
                     saga still waiting for the provider",
                    payment_timeout.as_millis()
                ),
            ));
        }
        Ok(Self {
            shipping_methods,
            tax_rates,
            currency,
            stuck_after: Duration::from_secs(60 * src.number_in("EMPORIUM_ORDER_STUCK_MINUTES", 15, 1..=10_080)?),
            payment_timeout,
            recovery_interval: src.seconds("EMPORIUM_SAGA_RECOVERY_SECS", 5, 1..=3600)?,
            saga_lease,
            seller,
            return_window_days: u32::try_from(src.number_in("EMPORIUM_RETURN_WINDOW_DAYS", 30, 1..=365)?).unwrap_or(30),
            personal_data_retention: Duration::from_secs(
                86_400 * src.number_in("EMPORIUM_ORDER_RETENTION_DAYS", 0, 0..=7_300)?,
            ),
        })
    }

    pub fn shipping_method(&self, id: &str) -> Option<&ShippingMethod> {
        self.shipping_methods.iter().find(|m| m.id == id)
    }

    pub fn tax_rate(&self, country: &Country) -> Option<u32> {
        self.tax_rates.get(country).copied()
    }
}

/// `standard:Standard (3-5 days):499:free_over=5000,express:Express (1 day):1499`.
pub fn parse_shipping_methods(text: &str) -> Result<Vec<ShippingMethod>, String> {
    let mut methods: Vec<ShippingMethod> = Vec::new();
    for (i, entry) in text.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
        let bad = |why: &str| format!("method {} ({entry:?}): {why}", i + 1);
        if !(3..=4).contains(&parts.len()) {
            return Err(bad("expected id:Name:price[:free_over=N]"));
        }
        let id = parts[0];
        if id.is_empty()
            || id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(bad("the id must be 1 to 32 of a-z, 0-9, '-', '_'"));
        }
        if parts[1].is_empty() || parts[1].chars().count() > 100 {
            return Err(bad("the name must be 1 to 100 characters"));
        }
        let price: i64 = parts[2]
            .parse()
            .ok()
            .filter(|p| (0..=10_000_000).contains(p))
            .ok_or_else(|| bad("the price must be 0 to 10000000 minor units"))?;
        let free_over = match parts.get(3) {
            None => None,
            Some(option) => Some(
                option
                    .strip_prefix("free_over=")
                    .and_then(|n| n.parse::<i64>().ok())
                    .filter(|n| (0..=1_000_000_000).contains(n))
                    .ok_or_else(|| bad("the option must be free_over=<minor units>"))?,
            ),
        };
        if methods.iter().any(|m| m.id == id) {
            return Err(bad("the id is used twice"));
        }
        methods.push(ShippingMethod {
            id: id.to_owned(),
            name: parts[1].to_owned(),
            price,
            free_over,
        });
    }
    if methods.is_empty() {
        return Err("at least one shipping method is required".into());
    }
    Ok(methods)
}

/// `DE:1900,FR:2000`: basis points (0 to 10000) per ISO 3166 alpha-2 country.
pub fn parse_tax_rates(text: &str) -> Result<BTreeMap<Country, u32>, String> {
    let mut rates = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (code, rate) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?}: expected CC:basis_points"))?;
        let country = Country::parse(code).map_err(|m| format!("{entry:?}: the country {m}"))?;
        let rate: u32 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r| *r <= 10_000)
            .ok_or_else(|| format!("{entry:?}: the rate must be 0 to 10000 basis points"))?;
        if rates.insert(country, rate).is_some() {
            return Err(format!("{entry:?}: the country is listed twice"));
        }
    }
    if rates.is_empty() {
        return Err("at least one country is required".into());
    }
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pairs: &[(&str, &str)]) -> ConfigSource {
        ConfigSource::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).expect("src")
    }

    #[test]
    fn defaults() {
        let c = OrderingConfig::from_source(&src(&[])).expect("defaults");
        assert_eq!(c.currency.as_str(), "EUR");
        assert_eq!(c.shipping_methods.len(), 2);
        let standard = c.shipping_method("standard").expect("standard");
        assert_eq!((standard.price, standard.free_over), (499, Some(5000)));
        assert_eq!(standard.name, "Standard (3-5 days)");
        let express = c.shipping_method("express").expect("express");
        assert_eq!((express.price, express.free_over), (1499, None));
        assert_eq!(c.tax_rates.len(), 10);
        assert_eq!(c.tax_rate(&Country::parse("de").expect("de")), Some(1900));
        assert_eq!(c.tax_rate(&Country::parse("US").expect("us")), Some(0));
        assert_eq!(c.tax_rate(&Country::parse("CH").expect("ch")), None);
        assert_eq!(c.stuck_after, Duration::from_secs(900));
        assert_eq!(c.payment_timeout, Duration::from_millis(2000));
        assert_eq!(c.recovery_interval, Duration::from_secs(5));
        assert_eq!(c.saga_lease, Duration::from_secs(30));
        assert_eq!(c.seller[0], "Emporium GmbH");
        assert_eq!(c.return_window_days, 30);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("EMPORIUM_SHIPPING_METHODS", "standard:Standard"),
            ("EMPORIUM_SHIPPING_METHODS", "standard:S:-1"),
            ("EMPORIUM_SHIPPING_METHODS", "a:A:1,a:B:2"),
            ("EMPORIUM_SHIPPING_METHODS", "a:A:1:cheap"),
            ("EMPORIUM_TAX_RATES", "DE:19000"),
            ("EMPORIUM_TAX_RATES", "Germany:1900"),
            ("EMPORIUM_TAX_RATES", "DE"),
            ("EMPORIUM_ORDER_CURRENCY", "euro"),
            ("EMPORIUM_ORDER_STUCK_MINUTES", "0"),
            ("EMPORIUM_PAYMENT_TIMEOUT_MS", "abc"),
            ("EMPORIUM_SAGA_RECOVERY_SECS", "0"),
            ("EMPORIUM_SAGA_LEASE_SECS", "1"),
            ("EMPORIUM_SAGA_LEASE_SECS", "3601"),
            // Less than twice the default payment timeout (2 s).
            ("EMPORIUM_SAGA_LEASE_SECS", "3"),
            ("EMPORIUM_RETURN_WINDOW_DAYS", "0"),
            ("EMPORIUM_RETURN_WINDOW_DAYS", "366"),
        ] {
            let err = OrderingConfig::from_source(&src(&[(var, value)])).expect_err(value);
            assert_eq!(err.var, var, "{value}");
        }
    }

    #[test]
    fn custom_values() {
        let c = OrderingConfig::from_source(&src(&[
            ("EMPORIUM_SHIPPING_METHODS", "pickup:Pick-up:0"),
            ("EMPORIUM_TAX_RATES", "CH:810"),
            ("EMPORIUM_ORDER_CURRENCY", "chf"),
            ("EMPORIUM_PAYMENT_TIMEOUT_MS", "300"),
            ("EMPORIUM_RETURN_WINDOW_DAYS", "14"),
        ]))
        .expect("ok");
        assert_eq!(c.currency.as_str(), "CHF");
        assert_eq!(c.shipping_methods[0].free_over, None);
        assert_eq!(c.tax_rate(&Country::parse("CH").expect("ch")), Some(810));
        assert_eq!(c.payment_timeout, Duration::from_millis(300));
        assert_eq!(c.return_window_days, 14);
    }

    #[test]
    fn the_saga_lease_outlasts_two_payment_timeouts() {
        let lease = |pairs: &[(&str, &str)]| OrderingConfig::from_source(&src(pairs)).map(|c| c.saga_lease);
        assert_eq!(lease(&[("EMPORIUM_SAGA_LEASE_SECS", "4")]), Ok(Duration::from_secs(4)));
        assert_eq!(
            lease(&[
                ("EMPORIUM_SAGA_LEASE_SECS", "2"),
                ("EMPORIUM_PAYMENT_TIMEOUT_MS", "1000")
            ]),
            Ok(Duration::from_secs(2))
        );
        let err = lease(&[
            ("EMPORIUM_SAGA_LEASE_SECS", "30"),
            ("EMPORIUM_PAYMENT_TIMEOUT_MS", "20000"),
        ])
        .expect_err("a lease shorter than two provider calls");
        assert_eq!(err.var, "EMPORIUM_SAGA_LEASE_SECS");
        assert!(
            err.message.contains("EMPORIUM_PAYMENT_TIMEOUT_MS (20000 ms)"),
            "{}",
            err.message
        );
    }
}
