//! Payments' domain rules as plain types and functions: no I/O, unit-tested here.
//!
//! Card numbers only ever live in a [`CardNumber`] on their way to the provider: its `Debug`
//! shows the last four digits, it has no `Display` and no `Serialize`, so it cannot end up in a
//! log line, an event or a stored row by accident.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest amount one payment may carry, in minor units (1 000 000.00 in a 2-decimal currency).
pub const MAX_AMOUNT: i64 = 100_000_000;
pub use contracts::kernel::MAX_IDEMPOTENCY_KEY_CHARS;
pub const MAX_REASON_CHARS: usize = 500;
pub const MAX_HOLDER_NAME_CHARS: usize = 100;
/// Cards expiring further out than this many years are refused as implausible.
pub const MAX_EXPIRY_YEARS_AHEAD: i32 = 20;

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

/// Payment and refund ids are the kernel's: ordering keeps them with the order.
pub use contracts::kernel::{PaymentId, RefundId};

/// A saved payment method's id; shown to clients as `pm_<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MethodId(pub Uuid);

impl MethodId {
    pub const PREFIX: &'static str = "pm_";

    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// `pm_<uuid>` (the bare UUID is accepted too).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let text = raw.trim();
        let text = text.strip_prefix(Self::PREFIX).unwrap_or(text);
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|_| "is not a payment method id (pm_<uuid>)".to_owned())
    }
}

impl Default for MethodId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MethodId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------------------------

/// The currency is the kernel's: an ISO 4217 code, trimmed and upper-cased.
pub use contracts::kernel::Currency;

/// A positive amount in minor units, at most [`MAX_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(i64);

impl Amount {
    pub fn parse(value: i64) -> Result<Self, String> {
        if value <= 0 {
            Err("must be greater than 0 (minor units)".into())
        } else if value > MAX_AMOUNT {
            Err(format!("must be at most {MAX_AMOUNT} (minor units)"))
        } else {
            Ok(Self(value))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// The currency must be one this deployment accepts.
pub fn parse_currency(raw: &str, accepted: &[Currency]) -> Result<Currency, String> {
    let currency = Currency::parse(raw).map_err(String::from)?;
    if accepted.contains(&currency) {
        Ok(currency)
    } else {
        let list: Vec<&str> = accepted.iter().map(Currency::as_str).collect();
        Err(format!("{currency} is not accepted (accepted: {})", list.join(", ")))
    }
}

/// Parses `EUR,USD,GBP`.
pub fn parse_currency_list(raw: &str) -> Result<Vec<Currency>, String> {
    let mut list = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let c = Currency::parse(part).map_err(|m| format!("{part:?} {m}"))?;
        if !list.contains(&c) {
            list.push(c);
        }
    }
    if list.is_empty() {
        return Err("must name at least one currency".into());
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// Cards
// ---------------------------------------------------------------------------------------------

/// A card number (digits only) on its way to the provider. Never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(**** {})", self.last4())
    }
}

impl CardNumber {
    /// 12 to 19 digits (spaces and dashes ignored) passing the Luhn check.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits: String = raw.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if digits.is_empty() {
            return Err("is required".into());
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("may only contain digits".into());
        }
        if !(12..=19).contains(&digits.len()) {
            return Err("must have 12 to 19 digits".into());
        }
        if !luhn_valid(&digits) {
            return Err("is not a valid card number (checksum)".into());
        }
        Ok(Self(digits))
    }

    /// The digits, for the provider adapter only.
    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len().saturating_sub(4)..]
    }

    pub fn brand(&self) -> CardBrand {
        CardBrand::of(&self.0)
    }
}

/// The Luhn (mod 10) checksum of a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

pub use contracts::api::payments::{CardBrand, DeclineCode, PaymentStatus, RefundStatus};

/// What a card brand means for card numbers.
pub trait CardRules: Sized {
    /// The brand from the number's prefix (IIN ranges).
    fn of(digits: &str) -> Self;
    fn cvc_len(self) -> usize;
}

impl CardRules for CardBrand {
    fn of(digits: &str) -> Self {
        let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
        if digits.starts_with('4') {
            Self::Visa
        } else if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) {
            Self::Mastercard
        } else if matches!(prefix(2), 34 | 37) {
            Self::Amex
        } else if prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3)) {
            Self::Discover
        } else {
            Self::Unknown
        }
    }

    fn cvc_len(self) -> usize {
        if self == Self::Amex { 4 } else { 3 }
    }
}

/// An expiry month: valid until the end of that month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub month: u8,
    pub year: i32,
}

impl Expiry {
    /// True when the card can still be used in `(year, month)`.
    pub fn valid_in(self, year: i32, month: u8) -> bool {
        (self.year, self.month) >= (year, month)
    }
}

/// A card as entered, validated. `cvc` goes to the provider and nowhere else.
#[derive(Clone)]
pub struct CardDetails {
    pub number: CardNumber,
    pub expiry: Expiry,
    pub cvc: String,
    pub holder_name: Option<String>,
}

impl fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardDetails")
            .field("number", &self.number)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// A card as received, before validation.
pub struct RawCard<'a> {
    pub number: &'a str,
    pub exp_month: i64,
    pub exp_year: i64,
    pub cvc: &'a str,
    pub holder_name: Option<&'a str>,
}

/// Where a new payment method comes from.
pub enum CardSource<'a> {
    /// The card as typed, tokenised by Emporium's provider adapter (simulated provider).
    Typed(RawCard<'a>),
    /// A token the shopper's browser got from the provider's script (Stripe.js): Emporium never
    /// sees the card.
    ProviderToken(&'a str),
}

/// The longest provider token accepted (Stripe ids are well under 100 characters).
pub const MAX_PROVIDER_TOKEN_CHARS: usize = 255;

/// Reads a method request: exactly one of the typed card (all four fields) or `provider_token`.
/// Every missing or conflicting field is named at once.
pub fn card_source(
    req: &contracts::api::payments::CreateMethodRequest,
) -> Result<CardSource<'_>, Vec<(&'static str, String)>> {
    let typed = req.card_number.is_some() || req.exp_month.is_some() || req.exp_year.is_some() || req.cvc.is_some();
    match (&req.provider_token, typed) {
        (Some(_), true) => Err(vec![(
            "provider_token",
            "send either provider_token or the card fields, not both".to_owned(),
        )]),
        (Some(token), false) => {
            let token = token.trim();
            if token.is_empty()
                || token.len() > MAX_PROVIDER_TOKEN_CHARS
                || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(vec![(
                    "provider_token",
                    format!(
                        "must be the provider's token id (letters, digits and _, at most {MAX_PROVIDER_TOKEN_CHARS})"
                    ),
                )]);
            }
            Ok(CardSource::ProviderToken(token))
        }
        (None, _) => {
            let mut missing = Vec::new();
            let required = "is required (or send provider_token)";
            if req.card_number.is_none() {
                missing.push(("card_number", required.to_owned()));
            }
            if req.exp_month.is_none() {
                missing.push(("exp_month", required.to_owned()));
            }
            if req.exp_year.is_none() {
                missing.push(("exp_year", required.to_owned()));
            }
            if req.cvc.is_none() {
                missing.push(("cvc", required.to_owned()));
            }
            match (&req.card_number, req.exp_month, req.exp_year, &req.cvc) {
                (Some(number), Some(exp_month), Some(exp_year), Some(cvc)) => Ok(CardSource::Typed(RawCard {
                    number,
                    exp_month,
                    exp_year,
                    cvc,
                    holder_name: req.holder_name.as_deref(),
                })),
                _ => Err(missing),
            }
        }
    }
}

/// Validates every field of a card at once; `today` is `(year, month)`. Errors name the field.
pub fn validate_card(raw: &RawCard<'_>, today: (i32, u8)) -> Result<CardDetails, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let number = CardNumber::parse(raw.number)
        .map_err(|m| errors.push(("card_number", m)))
        .ok();
    let month = u8::try_from(raw.exp_month).ok().filter(|m| (1..=12).contains(m));
    if month.is_none() {
        errors.push(("exp_month", "must be between 1 and 12".to_owned()));
    }
    // Two-digit years are read as 20xx.
    let year = match raw.exp_year {
        y @ 0..=99 => Some(2000 + y as i32),
        y if (2000..=2200).contains(&y) => Some(y as i32),
        _ => None,
    };
    match year {
        None => errors.push(("exp_year", "must be a year such as 2030".to_owned())),
        Some(y) if y > today.0 + MAX_EXPIRY_YEARS_AHEAD => errors.push((
            "exp_year",
            format!("must be at most {MAX_EXPIRY_YEARS_AHEAD} years ahead"),
        )),
        Some(y) if y < today.0 => errors.push(("exp_year", "the card has expired".to_owned())),
        Some(_) => {}
    }
    let expiry = match (month, year) {
        (Some(month), Some(year)) => {
            let e = Expiry { month, year };
            if year >= today.0 && !e.valid_in(today.0, today.1) {
                errors.push(("exp_month", "the card has expired".to_owned()));
            }
            Some(e)
        }
        _ => None,
    };
    let cvc = raw.cvc.trim();
    let expected = number.as_ref().map_or(3, |n| n.brand().cvc_len());
    if !cvc.bytes().all(|b| b.is_ascii_digit()) || cvc.len() != expected {
        errors.push(("cvc", format!("must be {expected} digits")));
    }
    let holder_name = match raw.holder_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) if n.chars().count() > MAX_HOLDER_NAME_CHARS => {
            errors.push((
                "holder_name",
                format!("must be at most {MAX_HOLDER_NAME_CHARS} characters"),
            ));
            None
        }
        other => other.map(str::to_owned),
    };
    match (number, expiry, errors.is_empty()) {
        (Some(number), Some(expiry), true) => Ok(CardDetails {
            number,
            expiry,
            cvc: cvc.to_owned(),
            holder_name,
        }),
        _ => Err(errors),
    }
}

// ---------------------------------------------------------------------------------------------
// Payments and refunds
// ---------------------------------------------------------------------------------------------

/// How a payment's status is reported and read.
pub trait StatusRules {
    /// What a payment is reported as: a captured one says how much of it was refunded.
    fn reported(self, captured: i64, refunded: i64) -> Self;
    /// The provider has answered.
    fn is_settled(&self) -> bool;
}

impl StatusRules for PaymentStatus {
    fn reported(self, captured: i64, refunded: i64) -> Self {
        match self {
            Self::Captured if captured > 0 && refunded >= captured => Self::Refunded,
            Self::Captured if refunded > 0 => Self::PartiallyRefunded,
            other => other,
        }
    }

    fn is_settled(&self) -> bool {
        *self != Self::Processing
    }
}

/// Kinds of ledger entries. Captured and refunded amounts are sums over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Authorization,
    Capture,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::Capture => "capture",
            Self::Refund => "refund",
        }
    }
}

/// How much of a payment can still be refunded: captured − refunded − refunds in flight.
pub fn refundable(captured: i64, refunded_or_pending: i64) -> i64 {
    (captured - refunded_or_pending).max(0)
}

/// Checks a refund request against what remains refundable.
pub fn check_refund(amount: i64, captured: i64, refunded_or_pending: i64) -> Result<Amount, String> {
    let amount = Amount::parse(amount)?;
    let remaining = refundable(captured, refunded_or_pending);
    if amount.get() > remaining {
        Err(format!(
            "exceeds the refundable remainder of {remaining} (captured {captured}, refunded or in flight {refunded_or_pending})"
        ))
    } else {
        Ok(amount)
    }
}

/// `Idempotency-Key` (the kernel's [`IdempotencyKey`] rule), which payments require: a missing
/// key is reported with the request's other field errors.
///
/// [`IdempotencyKey`]: contracts::kernel::IdempotencyKey
pub fn parse_idempotency_key(raw: Option<&str>) -> Result<String, String> {
    let raw = raw.ok_or("is required: send a unique key per payment attempt and reuse it on retries")?;
    contracts::kernel::IdempotencyKey::parse(raw)
        .map(contracts::kernel::IdempotencyKey::into_inner)
        .map_err(String::from)
}

/// A refund's optional reason: trimmed, at most 500 characters.
pub fn parse_reason(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(r) if r.chars().count() > MAX_REASON_CHARS => {
            Err(format!("must be at most {MAX_REASON_CHARS} characters"))
        }
        Some(r) => Ok(Some(r.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_method_comes_from_the_typed_card_or_a_provider_token_never_both() {
        use contracts::api::payments::CreateMethodRequest;
        let typed = CreateMethodRequest {
            card_number: Some("4242424242424242".into()),
            exp_month: Some(12),
            exp_year: Some(2030),
            cvc: Some("123".into()),
            ..Default::default()
        };
        assert!(matches!(card_source(&typed), Ok(CardSource::Typed(c)) if c.number == "4242424242424242"));
        let token = CreateMethodRequest {
            provider_token: Some(" pm_123abc ".into()),
            ..Default::default()
        };
        assert!(matches!(
            card_source(&token),
            Ok(CardSource::ProviderToken("pm_123abc"))
        ));
        let both = CreateMethodRequest {
            provider_token: Some("pm_1".into()),
            cvc: Some("123".into()),
            ..Default::default()
        };
        let fields = |r: Result<CardSource<'_>, Vec<(&'static str, String)>>| match r {
            Err(e) => e.into_iter().map(|(f, _)| f).collect::<Vec<_>>(),
            Ok(_) => vec![],
        };
        assert_eq!(fields(card_source(&both)), ["provider_token"]);
        assert_eq!(
            fields(card_source(&CreateMethodRequest::default())),
            ["card_number", "exp_month", "exp_year", "cvc"]
        );
        let partial = CreateMethodRequest {
            card_number: Some("4242424242424242".into()),
            exp_year: Some(2030),
            ..Default::default()
        };
        assert_eq!(fields(card_source(&partial)), ["exp_month", "cvc"]);
        for bad in ["", "   ", "pm_1;drop", &"x".repeat(256), "tok_ü"] {
            let req = CreateMethodRequest {
                provider_token: Some(bad.to_owned()),
                ..Default::default()
            };
            assert_eq!(fields(card_source(&req)), ["provider_token"], "{bad:?}");
        }
    }

    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_refuses_typos() {
        for n in [
            "4242424242424242",
            "4000000000000002",
            "4000000000009995",
            "4000000000000119",
            "4000000000000259",
            "5555555555554444",
            "378282246310005",
        ] {
            assert!(luhn_valid(n), "{n}");
        }
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("1234567812345678"));
    }

    #[test]
    fn card_numbers_parse_and_never_show_in_debug() {
        let n = CardNumber::parse("4242 4242-4242 4242").expect("valid");
        assert_eq!(n.digits(), "4242424242424242");
        assert_eq!(n.last4(), "4242");
        assert_eq!(n.brand(), CardBrand::Visa);
        assert_eq!(format!("{n:?}"), "CardNumber(**** 4242)");
        assert!(CardNumber::parse("").is_err());
        assert!(CardNumber::parse("4242abcd42424242").is_err());
        assert!(CardNumber::parse("42424242").is_err());
        assert!(CardNumber::parse("4242424242424241").is_err());
    }

    #[test]
    fn brands_come_from_the_prefix() {
        assert_eq!(CardBrand::of("5555555555554444"), CardBrand::Mastercard);
        assert_eq!(CardBrand::of("2223003122003222"), CardBrand::Mastercard);
        assert_eq!(CardBrand::of("378282246310005"), CardBrand::Amex);
        assert_eq!(CardBrand::of("6011111111111117"), CardBrand::Discover);
        assert_eq!(CardBrand::of("3056930009020004"), CardBrand::Unknown);
        for b in [CardBrand::Visa, CardBrand::Amex, CardBrand::Unknown] {
            assert_eq!(b.as_str().parse::<CardBrand>(), Ok(b));
        }
    }

    fn raw<'a>(number: &'a str, month: i64, year: i64, cvc: &'a str) -> RawCard<'a> {
        RawCard {
            number,
            exp_month: month,
            exp_year: year,
            cvc,
            holder_name: None,
        }
    }

    fn fields(r: Result<CardDetails, Vec<(&'static str, String)>>) -> Vec<&'static str> {
        r.err()
            .map(|e| e.into_iter().map(|(f, _)| f).collect())
            .unwrap_or_default()
    }

    #[test]
    fn cards_are_validated_field_by_field() {
        let today = (2026, 11);
        let card = validate_card(&raw("4242424242424242", 12, 2030, "123"), today).expect("valid");
        assert_eq!(card.expiry, Expiry { month: 12, year: 2030 });
        assert!(!format!("{card:?}").contains("4242424242424242"));
        assert!(!format!("{card:?}").contains("123"));
        // This month is still valid; last month is not.
        assert!(validate_card(&raw("4242424242424242", 11, 2026, "123"), today).is_ok());
        assert_eq!(
            fields(validate_card(&raw("4242424242424242", 10, 2026, "123"), today)),
            ["exp_month"]
        );
        assert_eq!(
            fields(validate_card(&raw("4242424242424242", 1, 2025, "123"), today)),
            ["exp_year"]
        );
        assert_eq!(
            fields(validate_card(&raw("4242424242424242", 13, 2030, "123"), today)),
            ["exp_month"]
        );
        assert_eq!(
            fields(validate_card(&raw("4242424242424242", 1, 2090, "123"), today)),
            ["exp_year"]
        );
        assert!(
            validate_card(&raw("4242424242424242", 1, 30, "123"), today).is_ok(),
            "two-digit year"
        );
        assert_eq!(
            fields(validate_card(&raw("4242424242424242", 1, 2030, "12"), today)),
            ["cvc"]
        );
        assert_eq!(
            fields(validate_card(&raw("4242424242424242", 1, 2030, "12a"), today)),
            ["cvc"]
        );
        assert_eq!(
            fields(validate_card(&raw("378282246310005", 1, 2030, "123"), today)),
            ["cvc"]
        );
        assert!(validate_card(&raw("378282246310005", 1, 2030, "1234"), today).is_ok());
        assert_eq!(
            fields(validate_card(&raw("4242424242424241", 0, 1999, "x"), today)),
            ["card_number", "exp_month", "exp_year", "cvc"]
        );
        let long = "x".repeat(101);
        let mut r = raw("4242424242424242", 1, 2030, "123");
        r.holder_name = Some(&long);
        assert_eq!(fields(validate_card(&r, today)), ["holder_name"]);
    }

    #[test]
    fn amounts_and_currencies() {
        assert!(Amount::parse(0).is_err());
        assert!(Amount::parse(-5).is_err());
        assert_eq!(Amount::parse(1).map(Amount::get), Ok(1));
        assert_eq!(Amount::parse(MAX_AMOUNT).map(Amount::get), Ok(MAX_AMOUNT));
        assert!(Amount::parse(MAX_AMOUNT + 1).is_err());
        let accepted = parse_currency_list("eur, USD,GBP,EUR").expect("list");
        assert_eq!(accepted.len(), 3);
        assert_eq!(
            parse_currency("usd", &accepted).map(|c| c.to_string()),
            Ok("USD".into())
        );
        assert!(parse_currency("JPY", &accepted).is_err());
        assert!(parse_currency("EURO", &accepted).is_err());
        assert!(parse_currency_list(" , ").is_err());
        assert!(parse_currency_list("EUR,12").is_err());
    }

    #[test]
    fn refunded_payments_report_it() {
        assert_eq!(PaymentStatus::Captured.reported(1000, 0), PaymentStatus::Captured);
        assert_eq!(
            PaymentStatus::Captured.reported(1000, 1),
            PaymentStatus::PartiallyRefunded
        );
        assert_eq!(PaymentStatus::Captured.reported(1000, 1000), PaymentStatus::Refunded);
        assert_eq!(PaymentStatus::Declined.reported(0, 0), PaymentStatus::Declined);
        assert_eq!(PaymentStatus::Refunded.as_str(), "refunded");
    }

    #[test]
    fn refunds_never_exceed_what_was_captured() {
        assert_eq!(check_refund(500, 1000, 0).map(Amount::get), Ok(500));
        assert_eq!(check_refund(1000, 1000, 0).map(Amount::get), Ok(1000));
        assert!(check_refund(501, 1000, 500).is_err());
        assert_eq!(check_refund(500, 1000, 500).map(Amount::get), Ok(500));
        assert!(check_refund(1, 1000, 1000).is_err());
        assert!(check_refund(0, 1000, 0).is_err());
        assert_eq!(refundable(100, 250), 0);
    }

    #[test]
    fn method_ids_round_trip() {
        let id = MethodId::new();
        assert_eq!(MethodId::parse(&id.to_string()), Ok(id));
        assert_eq!(MethodId::parse(&id.0.to_string()), Ok(id));
        assert!(MethodId::parse("pm_nope").is_err());
    }

    #[test]
    fn idempotency_keys_and_reasons() {
        assert!(parse_idempotency_key(None).is_err());
        assert!(parse_idempotency_key(Some("  ")).is_err());
        assert!(parse_idempotency_key(Some("a b")).is_err());
        assert!(parse_idempotency_key(Some(&"k".repeat(256))).is_err());
        assert_eq!(parse_idempotency_key(Some(" order-1 ")), Ok("order-1".into()));
        assert_eq!(parse_reason(None), Ok(None));
        assert_eq!(parse_reason(Some("  ")), Ok(None));
        assert_eq!(parse_reason(Some(" damaged ")), Ok(Some("damaged".into())));
        assert!(parse_reason(Some(&"r".repeat(501))).is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            PaymentStatus::Processing,
            PaymentStatus::Authorized,
            PaymentStatus::Captured,
            PaymentStatus::Declined,
            PaymentStatus::Failed,
        ] {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(s));
            assert_eq!(s.is_settled(), s != PaymentStatus::Processing);
        }
        for r in [RefundStatus::Pending, RefundStatus::Completed, RefundStatus::Failed] {
            assert_eq!(r.as_str().parse::<RefundStatus>(), Ok(r));
        }
        for d in [DeclineCode::CardDeclined, DeclineCode::InsufficientFunds] {
            assert_eq!(d.as_str().parse::<DeclineCode>(), Ok(d));
        }
    }
}
