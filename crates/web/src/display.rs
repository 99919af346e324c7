//! Display currencies: which currency a visitor sees prices in (chosen in the footer, else from
//! `Accept-Language`, else the shop's own), converted with catalog's exchange rates. Display
//! only: carts, checkout and orders are charged in the shop's currency, and checkout says so.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::catalog::RatesView;
use contracts::kernel::{Currency, ExchangeRate, Money};
use serde::{Deserialize, Serialize};

use crate::forms::Form;
use crate::{PageError, Session, WebState};

/// How long pages use the rates they read: an admin's new rate shows within this (catalog
/// drops its own cached copy on every change).
const RATES_TTL: Duration = Duration::from_secs(10);

/// After a failed read, pages go without rates this long before asking again, so an
/// unreachable catalog costs one page its wait, not every page.
const FAILED_RATES_TTL: Duration = Duration::from_secs(15);

/// The rates last read from catalog (or that reading them failed), shared by every page of this
/// process.
#[derive(Default)]
pub(crate) struct RatesCache(Mutex<Option<(Instant, Option<RatesView>)>>);

/// What a page needs to show prices in the visitor's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Display {
    /// The shop's currency: every price is in it.
    pub base: String,
    /// The currency prices are shown in.
    pub currency: String,
    /// Whether prices are converted (`currency` is not `base`).
    pub converted: bool,
    /// Units of `currency` per unit of `base`, as a decimal, and the day it is for.
    pub rate: String,
    pub as_of: String,
    /// The currencies a visitor may pick: the shop's, then those with a rate.
    pub options: Vec<String>,
}

impl Display {
    /// `amount` of the shop's currency in the display currency (`None` when not converting).
    pub fn convert(&self, amount: i64, currency: &str) -> Option<Money> {
        if !self.converted {
            return None;
        }
        convert(amount, currency, &self.base, &self.currency, &self.rate)
    }
}

/// `amount` of `currency` at `rate` (units of `to` per unit of `base`, as a decimal), when
/// `currency` is `base`; `None` for any other currency or an unreadable code or rate. The money
/// filter calls it with a page's `display` as templates see it.
pub fn convert(amount: i64, currency: &str, base: &str, to: &str, rate: &str) -> Option<Money> {
    if !currency.eq_ignore_ascii_case(base) {
        return None;
    }
    let (from, to) = (Currency::parse(base).ok()?, Currency::parse(to).ok()?);
    ExchangeRate::parse(rate).ok()?.convert(Money::new(amount, from), to)
}

/// The currency a language tag's region (or language) usually pays in: `en-US` → USD.
fn currency_of_language(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().to_ascii_lowercase();
    let mut parts = tag.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    let region = parts.find(|p| p.len() == 2);
    let by_region = match region {
        Some("us") => Some("USD"),
        Some("gb") => Some("GBP"),
        Some("jp") => Some("JPY"),
        Some("ch" | "li") => Some("CHF"),
        Some("ca") => Some("CAD"),
        Some("au") => Some("AUD"),
        Some("nz") => Some("NZD"),
        Some("se") => Some("SEK"),
        Some("no") => Some("NOK"),
        Some("dk") => Some("DKK"),
        Some("pl") => Some("PLN"),
        Some("cz") => Some("CZK"),
        Some("hu") => Some("HUF"),
        Some("kw") => Some("KWD"),
        Some("in") => Some("INR"),
        Some("cn") => Some("CNY"),
        Some("kr") => Some("KRW"),
        Some("br") => Some("BRL"),
        Some("mx") => Some("MXN"),
        Some(
            "de" | "at" | "fr" | "it" | "es" | "nl" | "be" | "ie" | "pt" | "fi" | "gr" | "lu" | "sk" | "si" | "ee"
            | "lv" | "lt" | "mt" | "cy" | "hr",
        ) => Some("EUR"),
        _ => None,
    };
    by_region.or(match language {
        "ja" => Some("JPY"),
        "sv" => Some("SEK"),
        "da" => Some("DKK"),
        "nb" | "nn" => Some("NOK"),
        "pl" => Some("PLN"),
        "cs" => Some("CZK"),
        "de" | "fr" | "it" | "es" | "nl" | "pt" | "fi" | "el" => Some("EUR"),
        _ => None,
    })
}

/// The display for a visitor: their choice when the shop has a rate for it, else the first
/// language of `Accept-Language` whose currency has one, else the shop's currency. `None` when
/// the shop has no rates (nothing to choose).
pub fn choose(rates: &RatesView, chosen: Option<&str>, accept_language: Option<&str>) -> Option<Display> {
    if rates.rates.is_empty() {
        return None;
    }
    let offered = |code: &str| code.eq_ignore_ascii_case(&rates.base) || rates.rates.iter().any(|r| r.currency == code);
    let from_language = || {
        let mut tags: Vec<(&str, f32)> = accept_language
            .unwrap_or_default()
            .split(',')
            .map(|item| {
                let mut parts = item.split(';');
                let tag = parts.next().unwrap_or_default().trim();
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1.0);
                (tag, q)
            })
            .collect();
        tags.sort_by(|a, b| b.1.total_cmp(&a.1));
        tags.into_iter()
            .filter_map(|(tag, _)| currency_of_language(tag))
            .find(|c| offered(c))
            .map(str::to_owned)
    };
    let currency = chosen
        .map(str::to_ascii_uppercase)
        .filter(|c| offered(c))
        .or_else(from_language)
        .unwrap_or_else(|| rates.base.clone());
    let rate = rates.rates.iter().find(|r| r.currency == currency);
    let options = std::iter::once(rates.base.clone())
        .chain(rates.rates.iter().map(|r| r.currency.clone()))
        .collect();
    Some(Display {
        base: rates.base.clone(),
        converted: rate.is_some(),
        rate: rate.map(|r| r.rate.clone()).unwrap_or_default(),
        as_of: rate.map(|r| r.as_of.clone()).unwrap_or_default(),
        currency,
        options,
    })
}

/// Catalog's rates, read at most every 10 s by this process; `None` while catalog cannot
/// answer (pages then show the shop's currency only).
pub(crate) async fn rates(web: &WebState, session: &Session) -> Option<RatesView> {
    let cache = web.rates_cache();
    if let Some((at, rates)) = cache.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let ttl = if rates.is_some() { RATES_TTL } else { FAILED_RATES_TTL };
        if at.elapsed() < ttl {
            return rates.clone();
        }
    }
    let read = web
        .api(session)
        .anonymous()
        .get_json::<RatesView>("catalog", "/api/v1/catalog/rates")
        .await
        .map_err(|e| tracing::info!(error = %e, "pages show the shop's currency only: no exchange rates"))
        .ok();
    *cache.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), read.clone()));
    read
}

#[derive(Debug, Deserialize)]
pub struct CurrencyForm {
    #[serde(default)]
    currency: String,
    #[serde(default)]
    next: String,
}

/// `POST /currency` from the footer: remembers the choice in the session, back to the page.
pub async fn choose_currency(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<CurrencyForm>,
) -> Result<Response, PageError> {
    let offered = rates(&web, &session)
        .await
        .and_then(|r| choose(&r, Some(&form.currency), None))
        .is_some_and(|d| d.currency.eq_ignore_ascii_case(form.currency.trim()));
    if offered {
        session.set_display_currency(Some(form.currency.trim().to_ascii_uppercase()));
    } else {
        session.flash("error", "Prices cannot be shown in that currency.");
    }
    Ok(Redirect::to(crate::safe_next(&form.next)).into_response())
}

#[cfg(test)]
mod tests {
    use contracts::api::catalog::RateView;

    use super::*;

    fn rates() -> RatesView {
        let rate = |currency: &str, rate: &str| RateView {
            currency: currency.into(),
            rate: rate.into(),
            as_of: "2026-12-03".into(),
        };
        RatesView {
            base: "EUR".into(),
            rates: vec![rate("JPY", "162.35"), rate("KWD", "0.3321"), rate("USD", "1.0856")],
        }
    }

    #[test]
    fn the_choice_beats_the_browser_language_which_beats_the_shops_currency() {
        let pick =
            |chosen: Option<&str>, language: Option<&str>| choose(&rates(), chosen, language).map(|d| d.currency);
        assert_eq!(pick(Some("jpy"), Some("en-US")).as_deref(), Some("JPY"));
        assert_eq!(
            pick(Some("CHF"), Some("en-US,en;q=0.9")).as_deref(),
            Some("USD"),
            "no CHF rate"
        );
        assert_eq!(
            pick(None, Some("fr-CH;q=0.5, ja;q=0.8")).as_deref(),
            Some("JPY"),
            "by weight"
        );
        assert_eq!(pick(None, Some("de-DE")).as_deref(), Some("EUR"));
        assert_eq!(pick(None, None).as_deref(), Some("EUR"));
        assert_eq!(pick(None, Some("nonsense;;q=x,")).as_deref(), Some("EUR"));
        let none = RatesView {
            base: "EUR".into(),
            rates: vec![],
        };
        assert_eq!(choose(&none, Some("USD"), Some("en-US")), None, "no rates: no choice");
    }

    #[test]
    fn only_the_shops_currency_is_converted() {
        let usd = choose(&rates(), Some("USD"), None).expect("display");
        assert_eq!(usd.convert(1999, "EUR").map(|m| m.amount), Some(2170));
        assert_eq!(usd.convert(1999, "GBP"), None);
        let kwd = choose(&rates(), Some("KWD"), None).expect("display");
        assert_eq!(kwd.convert(1999, "eur").map(|m| m.amount), Some(6639));
        let eur = choose(&rates(), Some("EUR"), None).expect("display");
        assert!(!eur.converted);
        assert_eq!(eur.convert(1999, "EUR"), None);
        assert_eq!(eur.options, ["EUR", "JPY", "KWD", "USD"]);
    }
}
