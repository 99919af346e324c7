//! Notifications' rules, free of I/O: the kinds of mail, the delivery states, the retry schedule,
//! addresses, money formatting and the preference rules.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use platform::FieldError;

/// The longest wait between two delivery attempts, however many attempts are configured.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What a message is about; one text and one HTML template each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    EmailVerification,
    PasswordReset,
    OrderPlaced,
    OrderConfirmed,
    OrderShipped,
    OrderCancelled,
    RefundCompleted,
    LowStockAlert,
    PaymentFailed,
    OrderDelivered,
    /// Someone tried to sign up with an address that already has an account.
    RegistrationAttempted,
    ReturnRequested,
    ReturnApproved,
    ReturnRejected,
    ReturnReceived,
    ReturnRefunded,
    /// An outbound webhook endpoint was switched off after a run of failures (to the alert list).
    WebhookDisabled,
    /// A data export the user asked for is ready to download.
    ExportReady,
}

impl Kind {
    pub const ALL: [Kind; 18] = [
        Kind::EmailVerification,
        Kind::PasswordReset,
        Kind::OrderPlaced,
        Kind::OrderConfirmed,
        Kind::OrderShipped,
        Kind::OrderCancelled,
        Kind::RefundCompleted,
        Kind::LowStockAlert,
        Kind::PaymentFailed,
        Kind::OrderDelivered,
        Kind::RegistrationAttempted,
        Kind::ReturnRequested,
        Kind::ReturnApproved,
        Kind::ReturnRejected,
        Kind::ReturnReceived,
        Kind::ReturnRefunded,
        Kind::WebhookDisabled,
        Kind::ExportReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EmailVerification => "email_verification",
            Kind::PasswordReset => "password_reset",
            Kind::OrderPlaced => "order_placed",
            Kind::OrderConfirmed => "order_confirmed",
            Kind::OrderShipped => "order_shipped",
            Kind::OrderCancelled => "order_cancelled",
            Kind::RefundCompleted => "refund_completed",
            Kind::LowStockAlert => "low_stock_alert",
            Kind::PaymentFailed => "payment_failed",
            Kind::OrderDelivered => "order_delivered",
            Kind::RegistrationAttempted => "registration_attempted",
            Kind::ReturnRequested => "return_requested",
            Kind::ReturnApproved => "return_approved",
            Kind::ReturnRejected => "return_rejected",
            Kind::ReturnReceived => "return_received",
            Kind::ReturnRefunded => "return_refunded",
            Kind::WebhookDisabled => "webhook_disabled",
            Kind::ExportReady => "export_ready",
        }
    }

    /// Messages that carry a secret (a one-time token): their bodies are erased once sent.
    pub fn carries_secret(self) -> bool {
        matches!(self, Kind::EmailVerification | Kind::PasswordReset)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("must be one of {}", names(Kind::ALL.iter().map(|k| k.as_str()))))
    }
}

/// Where a delivery stands. `Failed` means "failed, will be retried"; `Dead` means "given up".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    Sent,
    Failed,
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sent,
        DeliveryStatus::Failed,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
        }
    }

    /// Whether the worker still has to send it.
    pub fn is_due_state(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Failed)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "must be one of {}",
                    names(DeliveryStatus::ALL.iter().map(|k| k.as_str()))
                )
            })
    }
}

fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// Whether an admin may send a delivery again: only dead ones go back to pending.
pub fn can_retry(status: DeliveryStatus) -> Result<(), String> {
    match status {
        DeliveryStatus::Dead => Ok(()),
        other => Err(format!("only dead deliveries can be retried; this one is {other}")),
    }
}

/// The wait after failed attempt `attempt` (1-based): `base`, doubling, capped at [`MAX_BACKOFF`].
pub fn backoff(attempt: u32, base: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// What becomes of a delivery whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at `next_attempt_ms` (milliseconds since the Unix epoch).
    Retry { next_attempt_ms: i64 },
    /// Out of attempts, or the server refused the message for good.
    Dead,
}

/// Decides the fate of a delivery after its `attempts`-th attempt failed at `now_ms`.
pub fn after_failure(attempts: u32, max_attempts: u32, base: Duration, permanent: bool, now_ms: i64) -> AfterFailure {
    if permanent || attempts >= max_attempts {
        return AfterFailure::Dead;
    }
    let wait = i64::try_from(backoff(attempts, base).as_millis()).unwrap_or(i64::MAX);
    AfterFailure::Retry {
        next_attempt_ms: now_ms.saturating_add(wait),
    }
}

/// A mailbox address: the kernel's, so notifications send to exactly what identity accepts
/// (lower-cased, plain `local@domain.tld`, nothing a mail header could be smuggled through).
pub use contracts::kernel::EmailAddress;

/// `EMPORIUM_ALERT_EMAILS`: comma-separated addresses, duplicates removed; empty means nobody.
pub fn parse_address_list(raw: &str) -> Result<Vec<EmailAddress>, String> {
    let mut out: Vec<EmailAddress> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let address = EmailAddress::parse(part).map_err(|m| format!("{part:?} {m}"))?;
        if !out.iter().any(|a| a.as_str().eq_ignore_ascii_case(address.as_str())) {
            out.push(address);
        }
    }
    Ok(out)
}

/// Digits after the decimal point of an ISO 4217 currency (the kernel's table).
pub use contracts::kernel::minor_digits as minor_unit_digits;

/// `1234, "EUR"` → `"12.34 EUR"`; `-50, "USD"` → `"-0.50 USD"`; `500, "JPY"` → `"500 JPY"`.
pub fn format_money(amount: i64, currency: &str) -> String {
    let digits = minor_unit_digits(currency);
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let scale = 10u64.pow(digits);
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / scale,
        abs % scale,
        width = digits as usize
    )
}

/// A user's notification preferences. Transactional mail (account security and order updates)
/// is not a preference: it is always sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preferences {
    /// Newsletters and offers (opt-in).
    pub marketing: bool,
    /// Low-stock alerts, for staff whose address is in `EMPORIUM_ALERT_EMAILS`.
    pub low_stock_alerts: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            marketing: false,
            low_stock_alerts: true,
        }
    }
}

/// A change of preferences as sent by a user; fields left out keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreferencesChange {
    pub order_updates: Option<bool>,
    pub email_verification: Option<bool>,
    pub password_reset: Option<bool>,
    pub marketing: Option<bool>,
    pub low_stock_alerts: Option<bool>,
}

/// Applies `change` to `current`. Switching off a transactional kind is refused, naming the field.
pub fn apply_preferences(current: Preferences, change: &PreferencesChange) -> Result<Preferences, Vec<FieldError>> {
    let mut errors = Vec::new();
    for (field, value) in [
        ("order_updates", change.order_updates),
        ("email_verification", change.email_verification),
        ("password_reset", change.password_reset),
    ] {
        if value == Some(false) {
            errors.push(FieldError::new(
                field,
                "is transactional mail and cannot be switched off",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Preferences {
        marketing: change.marketing.unwrap_or(current.marketing),
        low_stock_alerts: change.low_stock_alerts.unwrap_or(current.low_stock_alerts),
    })
}

/// Whole units of `seconds`, rounded to the nearest (at least 1): "expires in N hours".
pub fn rounded_units(seconds: i64, unit: i64) -> i64 {
    ((seconds + unit / 2) / unit).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_round_trip_through_text() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
        }
        assert!("order".parse::<Kind>().expect_err("refused").contains("order_placed"));
        assert!(
            "sending"
                .parse::<DeliveryStatus>()
                .expect_err("refused")
                .contains("dead")
        );
    }

    #[test]
    fn only_token_mails_are_scrubbed() {
        let secret: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.carries_secret()).collect();
        assert_eq!(secret, vec![Kind::EmailVerification, Kind::PasswordReset]);
    }

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(1, base), Duration::from_secs(1));
        assert_eq!(backoff(2, base), Duration::from_secs(2));
        assert_eq!(backoff(5, base), Duration::from_secs(16));
        assert_eq!(backoff(13, base), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, base), MAX_BACKOFF);
        assert_eq!(backoff(3, Duration::from_millis(100)), Duration::from_millis(400));
    }

    #[test]
    fn failures_retry_until_the_last_attempt_then_die() {
        let base = Duration::from_secs(1);
        assert_eq!(
            after_failure(1, 6, base, false, 10_000),
            AfterFailure::Retry {
                next_attempt_ms: 11_000
            }
        );
        assert_eq!(
            after_failure(5, 6, base, false, 10_000),
            AfterFailure::Retry {
                next_attempt_ms: 26_000
            }
        );
        assert_eq!(after_failure(6, 6, base, false, 10_000), AfterFailure::Dead);
        assert_eq!(after_failure(7, 6, base, false, 10_000), AfterFailure::Dead);
        // A permanent refusal (SMTP 5xx) is not retried.
        assert_eq!(after_failure(1, 6, base, true, 10_000), AfterFailure::Dead);
    }

    #[test]
    fn only_dead_deliveries_can_be_retried() {
        assert!(can_retry(DeliveryStatus::Dead).is_ok());
        for s in [DeliveryStatus::Pending, DeliveryStatus::Sent, DeliveryStatus::Failed] {
            assert!(can_retry(s).expect_err("refused").contains(s.as_str()));
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(
            EmailAddress::parse(" a@b.example ").expect("ok").as_str(),
            "a@b.example"
        );
        assert_eq!(EmailAddress::parse("a@b.example").expect("ok").domain(), "b.example");
        for bad in [
            "",
            "ab",
            "@b",
            "a@",
            "a@@b",
            "a b@c",
            "a@b..c",
            "a@.b",
            "x<y>@z",
            "a@b\r\nBcc: c@d",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(EmailAddress::parse(&format!("{}@b.c", "a".repeat(260))).is_err());
    }

    #[test]
    fn alert_lists_are_split_deduplicated_and_checked() {
        assert_eq!(parse_address_list("").expect("ok"), vec![]);
        assert_eq!(parse_address_list(" , ").expect("ok"), vec![]);
        let list = parse_address_list("ops@x.io, Ops@X.io ,stock@x.io").expect("ok");
        let list: Vec<&str> = list.iter().map(EmailAddress::as_str).collect();
        assert_eq!(list, vec!["ops@x.io", "stock@x.io"]);
        let err = parse_address_list("ops@x.io, nobody").expect_err("refused");
        assert!(err.contains("\"nobody\""), "{err}");
    }

    #[test]
    fn money_is_shown_in_major_units() {
        assert_eq!(format_money(1234, "EUR"), "12.34 EUR");
        assert_eq!(format_money(5, "USD"), "0.05 USD");
        assert_eq!(format_money(-50, "USD"), "-0.50 USD");
        assert_eq!(format_money(500, "JPY"), "500 JPY");
        assert_eq!(format_money(1_234_567, "KWD"), "1234.567 KWD");
        assert_eq!(format_money(i64::MIN, "EUR"), "-92233720368547758.08 EUR");
    }

    #[test]
    fn transactional_mail_cannot_be_switched_off() {
        let current = Preferences::default();
        let change = PreferencesChange {
            order_updates: Some(false),
            password_reset: Some(false),
            marketing: Some(true),
            ..Default::default()
        };
        let errors = apply_preferences(current, &change).expect_err("refused");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["order_updates", "password_reset"]);
        // Saying "yes" to transactional mail is allowed (and changes nothing).
        let change = PreferencesChange {
            order_updates: Some(true),
            email_verification: Some(true),
            marketing: Some(true),
            ..Default::default()
        };
        let p = apply_preferences(current, &change).expect("ok");
        assert!(p.marketing);
        assert!(p.low_stock_alerts, "left out: unchanged");
        let p = apply_preferences(
            p,
            &PreferencesChange {
                low_stock_alerts: Some(false),
                ..Default::default()
            },
        )
        .expect("ok");
        assert_eq!(
            p,
            Preferences {
                marketing: true,
                low_stock_alerts: false
            }
        );
    }

    #[test]
    fn expiry_is_rounded_to_whole_units() {
        assert_eq!(rounded_units(86_400, 3600), 24);
        assert_eq!(rounded_units(86_399, 3600), 24);
        assert_eq!(rounded_units(1_800, 60), 30);
        assert_eq!(rounded_units(10, 3600), 1);
        assert_eq!(rounded_units(-10, 3600), 1);
    }
}
