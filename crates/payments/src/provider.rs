//! The payment provider port, shaped like Stripe's payment intents so a real adapter fits without
//! changing callers, and the built-in [`SimulatedProvider`].
//!
//! * `tokenize_card` turns a card into a provider token (the only thing payments keeps besides
//!   brand, last four digits and expiry).
//! * `authorize` creates an intent that holds the funds; `capture` takes them; `refund` gives
//!   some back. Each takes an idempotency key: calling again with the same key returns the first
//!   answer and never moves money twice, even when the first answer was lost (timeout, crash).
//! * `verify_webhook` checks the `Emporium-Signature: t=<unix>,v1=<hex>` header (HMAC-SHA256 of
//!   `<t>.<body>` with the webhook secret, at most five minutes old, compared in constant time)
//!   and decodes the event.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::{CardBrand, CardDetails, DeclineCode};

pub const SIGNATURE_HEADER: &str = "emporium-signature";
/// Signed webhooks older (or further in the future) than this are refused.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// A card as the provider keeps it for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMethod {
    pub token: String,
    pub brand: CardBrand,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub amount: i64,
    pub currency: String,
    pub method_token: String,
    pub idempotency_key: String,
    /// Capture in the same call (one round trip to the provider instead of two). The answer is
    /// then `Captured`, unless the key was first used without it: a retry answers what the
    /// first call did, and the caller captures an `Authorized` intent as before.
    pub capture: bool,
}

/// The provider's answer about a payment intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// Funds held; capture them with `intent_id`.
    Authorized { intent_id: String },
    /// Funds taken.
    Captured { intent_id: String, amount: i64 },
    /// The card was refused.
    Declined {
        intent_id: Option<String>,
        code: DeclineCode,
    },
    /// The provider could not process the payment; `retryable` when a new attempt may succeed.
    Failed {
        intent_id: Option<String>,
        reason: String,
        retryable: bool,
    },
}

/// A completed provider refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub refund_id: String,
    pub amount: i64,
}

/// A provider call that did not produce an answer about the money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Network trouble, timeouts, the provider down: the outcome is unknown; retry with the same
    /// idempotency key.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (unknown token, bad amount): retrying will not help.
    #[error("payment provider refused the request: {0}")]
    Rejected(String),
}

/// What a verified webhook says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderEventKind {
    /// `payment_intent.amount_capturable_updated`: funds held.
    #[serde(rename = "payment_intent.amount_capturable_updated")]
    Authorized,
    /// `payment_intent.succeeded`: funds taken.
    #[serde(rename = "payment_intent.succeeded")]
    Succeeded,
    /// `payment_intent.payment_failed`: declined or failed.
    #[serde(rename = "payment_intent.payment_failed")]
    PaymentFailed,
    /// `charge.refunded`: money went back, through Emporium or at the provider (its dashboard).
    #[serde(rename = "charge.refunded")]
    Refunded,
}

impl ProviderEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "payment_intent.amount_capturable_updated",
            Self::Succeeded => "payment_intent.succeeded",
            Self::PaymentFailed => "payment_intent.payment_failed",
            Self::Refunded => "charge.refunded",
        }
    }
}

/// One refund as the provider reports it in a `charge.refunded` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    pub refund_id: String,
    pub amount: i64,
    /// The idempotency key Emporium created it with (`<refund id>:refund`); absent for refunds
    /// made at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The `data` of a webhook event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentData {
    pub intent_id: String,
    /// The idempotency key the intent was created with (ours: `<payment id>:authorize`); events
    /// about charges may lack it, and the payment is then found by `intent_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub amount: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<DeclineCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// `charge.refunded`: every refund of the charge so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<RefundRecord>,
}

/// A webhook event (the JSON body the provider posts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEvent {
    /// Unique per event; replays carry the same id.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ProviderEventKind,
    /// Unix seconds.
    pub created: i64,
    pub data: IntentData,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("the signature header is malformed (expected t=<unix seconds>,v1=<hex>)")]
    MalformedSignature,
    #[error("the signature timestamp is outside the {WEBHOOK_TOLERANCE_SECS} s tolerance")]
    Expired,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the event body is not a known event: {0}")]
    MalformedBody(String),
    /// Signed and well-formed, but of a type Emporium does not act on (acknowledged, ignored).
    #[error("event type {0} is not acted on")]
    Unhandled(String),
}

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// The provider's name, as in the webhook path (`/api/v1/payments/webhooks/<name>`).
    fn name(&self) -> &'static str;
    /// Whether card numbers may reach Emporium at all. `false`: the browser tokenises the card
    /// with the provider's script and Emporium only ever sees the token ([`Self::adopt_method`]).
    fn takes_card_data(&self) -> bool;
    async fn tokenize_card(&self, card: &CardDetails) -> Result<ProviderMethod, ProviderError>;
    /// Reads a method the shopper's browser tokenised with the provider (brand, last four,
    /// expiry) and returns the token to charge it with.
    async fn adopt_method(&self, client_token: &str) -> Result<ProviderMethod, ProviderError>;
    async fn authorize(&self, request: &AuthorizeRequest) -> Result<ProviderOutcome, ProviderError>;
    async fn capture(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderOutcome, ProviderError>;
    async fn refund(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError>;
    /// Every refund of the intent as the provider knows it now, for a `charge.refunded` event
    /// (`reported`: what the event itself listed, which is all the simulated provider has).
    async fn refunds_of(
        &self,
        _intent_id: &str,
        reported: &[RefundRecord],
    ) -> Result<Vec<RefundRecord>, ProviderError> {
        Ok(reported.to_vec())
    }
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderEvent, WebhookError>;
}

// ---------------------------------------------------------------------------------------------
// Webhook signatures
// ---------------------------------------------------------------------------------------------

type HmacSha256 = Hmac<Sha256>;

/// The `v1` signature of `body` sent at `timestamp` (hex HMAC-SHA256 of `<timestamp>.<body>`).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The whole header value for `body` signed at `timestamp`.
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// Checks a signature header against `body` at `now` (unix seconds). Several `v1` entries are
/// allowed (secret rotation): one matching is enough. The comparison is constant-time.
pub fn verify_signature(secret: &[u8], header: Option<&str>, body: &[u8], now: i64) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(WebhookError::MalformedSignature)?;
        match key {
            "t" => timestamp = Some(value.parse::<i64>().map_err(|_| WebhookError::MalformedSignature)?),
            "v1" => signatures.push(hex::decode(value).map_err(|_| WebhookError::MalformedSignature)?),
            _ => {} // other schemes are ignored, as Stripe does
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedSignature)?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedSignature);
    }
    if (now - timestamp).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(WebhookError::Expired);
    }
    let matches = signatures.iter().any(|sig| {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(sig).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// Verifies and decodes a webhook request.
pub fn verify_and_decode(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<ProviderEvent, WebhookError> {
    verify_header(secret, headers, SIGNATURE_HEADER, body, now)?;
    serde_json::from_slice(body).map_err(|e| WebhookError::MalformedBody(e.to_string()))
}

/// Checks the signature in header `name` (Emporium's and Stripe's schemes are the same:
/// `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`).
pub fn verify_header(
    secret: &[u8],
    headers: &HeaderMap,
    name: &str,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    let header = match headers.get(name) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| WebhookError::MalformedSignature)?),
    };
    verify_signature(secret, header, body, now)
}

// ---------------------------------------------------------------------------------------------
// The simulated provider
// ---------------------------------------------------------------------------------------------

/// How a simulated card behaves, decided from its number at tokenization and kept in the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Succeed,
    Decline(DeclineCode),
    ProcessingError,
    /// Succeeds, but answers only after the configured delay.
    Slow,
}

impl Behaviour {
    /// The documented test cards; every other valid card succeeds.
    pub fn of_card(digits: &str) -> Self {
        match digits {
            "4000000000000002" => Self::Decline(DeclineCode::CardDeclined),
            "4000000000009995" => Self::Decline(DeclineCode::InsufficientFunds),
            "4000000000000119" => Self::ProcessingError,
            "4000000000000259" => Self::Slow,
            _ => Self::Succeed,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Succeed => "ok",
            Self::Decline(DeclineCode::CardDeclined) => "declined",
            Self::Decline(DeclineCode::InsufficientFunds) => "nofunds",
            Self::ProcessingError => "error",
            Self::Slow => "slow",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "ok" => Self::Succeed,
            "declined" => Self::Decline(DeclineCode::CardDeclined),
            "nofunds" => Self::Decline(DeclineCode::InsufficientFunds),
            "error" => Self::ProcessingError,
            "slow" => Self::Slow,
            _ => return None,
        })
    }

    /// `tok_sim_<behaviour>_<random>`: the behaviour travels with the token, the number does not.
    pub fn token(self) -> String {
        format!("tok_sim_{}_{}", self.tag(), Uuid::new_v4().simple())
    }

    pub fn of_token(token: &str) -> Option<Self> {
        let rest = token.strip_prefix("tok_sim_")?;
        let (tag, _) = rest.split_once('_')?;
        Self::from_tag(tag)
    }
}

/// Intent states of the simulated provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimStatus {
    RequiresCapture,
    Succeeded,
    Declined,
    Failed,
}

impl SimStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Declined => "declined",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requires_capture" => Self::RequiresCapture,
            "succeeded" => Self::Succeeded,
            "declined" => Self::Declined,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One intent in the simulated provider's own table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIntent {
    pub id: String,
    pub idempotency_key: String,
    pub amount: i64,
    pub currency: String,
    pub status: SimStatus,
    pub decline_code: Option<DeclineCode>,
    pub captured: i64,
    pub refunded: i64,
}

/// Where the simulated provider keeps its intents (tables `sim_intents`, `sim_operations` in
/// payments' database, standing in for the provider's own storage). Every operation is keyed by
/// its idempotency key and atomic, so a retry — even after a crash — never moves money twice.
#[async_trait::async_trait]
pub trait SimulatedLedger: Send + Sync + 'static {
    /// Records `intent` unless its idempotency key is known; returns what is stored for the key.
    async fn sim_authorize(&self, intent: &SimIntent) -> anyhow::Result<SimIntent>;
    /// Captures `amount` of an intent requiring capture, once per key. `Err(message)` = refused.
    async fn sim_capture(&self, key: &str, intent_id: &str, amount: i64) -> anyhow::Result<Result<SimIntent, String>>;
    /// Refunds `amount` of a captured intent, once per key; returns the provider refund id.
    async fn sim_refund(&self, key: &str, intent_id: &str, amount: i64) -> anyhow::Result<Result<String, String>>;
}

/// The built-in provider: behaviour by test card, its own idempotent intent table, and webhook
/// signing with the configured secret.
pub struct SimulatedProvider {
    ledger: Arc<dyn SimulatedLedger>,
    delay: Duration,
    webhook_secret: Vec<u8>,
}

impl SimulatedProvider {
    pub fn new(ledger: Arc<dyn SimulatedLedger>, delay: Duration, webhook_secret: Vec<u8>) -> Self {
        Self {
            ledger,
            delay,
            webhook_secret,
        }
    }

    fn unavailable(e: anyhow::Error) -> ProviderError {
        ProviderError::Unavailable(format!("{e:#}"))
    }
}

#[async_trait::async_trait]
impl PaymentProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn takes_card_data(&self) -> bool {
        true
    }

    async fn adopt_method(&self, _client_token: &str) -> Result<ProviderMethod, ProviderError> {
        Err(ProviderError::Rejected(
            "the simulated provider has no browser tokenisation: send the card fields".into(),
        ))
    }

    async fn tokenize_card(&self, card: &CardDetails) -> Result<ProviderMethod, ProviderError> {
        let behaviour = Behaviour::of_card(card.number.digits());
        Ok(ProviderMethod {
            token: behaviour.token(),
            brand: card.number.brand(),
            last4: card.number.last4().to_owned(),
            exp_month: card.expiry.month,
            exp_year: card.expiry.year,
        })
    }

    async fn authorize(&self, request: &AuthorizeRequest) -> Result<ProviderOutcome, ProviderError> {
        let behaviour = Behaviour::of_token(&request.method_token)
            .ok_or_else(|| ProviderError::Rejected("unknown payment method token".into()))?;
        let (status, decline_code) = match behaviour {
            Behaviour::Succeed | Behaviour::Slow if request.capture => (SimStatus::Succeeded, None),
            Behaviour::Succeed | Behaviour::Slow => (SimStatus::RequiresCapture, None),
            Behaviour::Decline(code) => (SimStatus::Declined, Some(code)),
            Behaviour::ProcessingError => (SimStatus::Failed, None),
        };
        let candidate = SimIntent {
            id: format!("pi_{}", Uuid::now_v7().simple()),
            idempotency_key: request.idempotency_key.clone(),
            amount: request.amount,
            currency: request.currency.clone(),
            status,
            decline_code,
            captured: if status == SimStatus::Succeeded {
                request.amount
            } else {
                0
            },
            refunded: 0,
        };
        // The intent is recorded first: a slow answer still means the provider has acted.
        let intent = self.ledger.sim_authorize(&candidate).await.map_err(Self::unavailable)?;
        if intent.amount != request.amount || intent.currency != request.currency {
            return Err(ProviderError::Rejected(
                "idempotency key reused with different parameters".into(),
            ));
        }
        let replay = intent.id != candidate.id;
        if behaviour == Behaviour::Slow && !replay {
            tokio::time::sleep(self.delay).await;
        }
        Ok(match intent.status {
            SimStatus::RequiresCapture => ProviderOutcome::Authorized { intent_id: intent.id },
            SimStatus::Succeeded => ProviderOutcome::Captured {
                intent_id: intent.id,
                amount: intent.captured,
            },
            SimStatus::Declined => ProviderOutcome::Declined {
                intent_id: Some(intent.id),
                code: intent.decline_code.unwrap_or(DeclineCode::CardDeclined),
            },
            SimStatus::Failed => ProviderOutcome::Failed {
                intent_id: Some(intent.id),
                reason: "processing_error".into(),
                retryable: true,
            },
        })
    }

    async fn capture(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderOutcome, ProviderError> {
        match self
            .ledger
            .sim_capture(idempotency_key, intent_id, amount)
            .await
            .map_err(Self::unavailable)?
        {
            Ok(intent) => Ok(ProviderOutcome::Captured {
                intent_id: intent.id,
                amount: intent.captured,
            }),
            Err(message) => Err(ProviderError::Rejected(message)),
        }
    }

    async fn refund(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        match self
            .ledger
            .sim_refund(idempotency_key, intent_id, amount)
            .await
            .map_err(Self::unavailable)?
        {
            Ok(refund_id) => Ok(ProviderRefund { refund_id, amount }),
            Err(message) => Err(ProviderError::Rejected(message)),
        }
    }

    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderEvent, WebhookError> {
        verify_and_decode(
            &self.webhook_secret,
            headers,
            body,
            platform::clock::now().unix_timestamp(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------

/// Wraps the real provider with the `payment_latency_ms` and `payment_failure_percent` fault
/// flags: every call waits the latency first, and that share of authorizations comes back as an
/// ordinary card decline (no intent, nothing held), so the saga's decline path runs: the order
/// ends `payment_failed`, its stock is released and nothing is charged.
pub struct FaultInjectingProvider {
    inner: Arc<dyn PaymentProvider>,
    faults: platform::faults::Faults,
}

impl FaultInjectingProvider {
    pub fn wrap(inner: Arc<dyn PaymentProvider>, faults: platform::faults::Faults) -> Arc<dyn PaymentProvider> {
        if !faults.is_enabled() {
            return inner;
        }
        Arc::new(Self { inner, faults })
    }

    async fn delay(&self) {
        if let Some(latency) = self.faults.payment_latency() {
            tokio::time::sleep(latency).await;
        }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for FaultInjectingProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn takes_card_data(&self) -> bool {
        self.inner.takes_card_data()
    }

    async fn adopt_method(&self, client_token: &str) -> Result<ProviderMethod, ProviderError> {
        self.delay().await;
        self.inner.adopt_method(client_token).await
    }

    async fn tokenize_card(&self, card: &CardDetails) -> Result<ProviderMethod, ProviderError> {
        self.delay().await;
        self.inner.tokenize_card(card).await
    }

    async fn authorize(&self, request: &AuthorizeRequest) -> Result<ProviderOutcome, ProviderError> {
        self.delay().await;
        if self.faults.payment_should_fail() {
            tracing::info!(
                idempotency_key = %request.idempotency_key,
                "payment declined by fault injection (payment_failure_percent)"
            );
            return Ok(ProviderOutcome::Declined {
                intent_id: None,
                code: DeclineCode::CardDeclined,
            });
        }
        self.inner.authorize(request).await
    }

    async fn capture(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderOutcome, ProviderError> {
        self.delay().await;
        self.inner.capture(intent_id, amount, idempotency_key).await
    }

    async fn refund(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        self.delay().await;
        self.inner.refund(intent_id, amount, idempotency_key).await
    }

    async fn refunds_of(&self, intent_id: &str, reported: &[RefundRecord]) -> Result<Vec<RefundRecord>, ProviderError> {
        self.inner.refunds_of(intent_id, reported).await
    }

    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderEvent, WebhookError> {
        self.inner.verify_webhook(headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let secret = b"whsec_test";
        let body = br#"{"id":"evt_1"}"#;
        let header = signature_header(secret, 1_000, body);
        assert_eq!(verify_signature(secret, Some(&header), body, 1_000), Ok(()));
        assert_eq!(verify_signature(secret, Some(&header), body, 1_000 + 300), Ok(()));
        assert_eq!(
            verify_signature(secret, Some(&header), body, 1_000 + 301),
            Err(WebhookError::Expired)
        );
        assert_eq!(
            verify_signature(secret, Some(&header), br#"{"id":"evt_2"}"#, 1_000),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(b"other", Some(&header), body, 1_000),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(secret, None, body, 1_000),
            Err(WebhookError::MissingSignature)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1000", "t=1000,v1=zz", "garbage"] {
            assert_eq!(
                verify_signature(secret, Some(bad), body, 1_000),
                Err(WebhookError::MalformedSignature),
                "{bad}"
            );
        }
        // A rotated secret: one of several v1 entries matching is enough.
        let rotated = format!("t=1000,v1={},v1={}", "00".repeat(32), signature(secret, 1_000, body));
        assert_eq!(verify_signature(secret, Some(&rotated), body, 1_000), Ok(()));
    }

    #[test]
    fn test_cards_map_to_behaviours_that_travel_in_tokens() {
        let cases = [
            ("4242424242424242", Behaviour::Succeed),
            ("4000000000000002", Behaviour::Decline(DeclineCode::CardDeclined)),
            ("4000000000009995", Behaviour::Decline(DeclineCode::InsufficientFunds)),
            ("4000000000000119", Behaviour::ProcessingError),
            ("4000000000000259", Behaviour::Slow),
            ("5555555555554444", Behaviour::Succeed),
        ];
        for (card, behaviour) in cases {
            assert_eq!(Behaviour::of_card(card), behaviour, "{card}");
            let token = behaviour.token();
            assert!(!token.contains(card));
            assert_eq!(Behaviour::of_token(&token), Some(behaviour));
        }
        assert_eq!(Behaviour::of_token("tok_other"), None);
        assert_eq!(Behaviour::of_token("tok_sim_weird_x"), None);
    }

    #[test]
    fn webhook_bodies_decode() {
        let event = ProviderEvent {
            id: "evt_1".into(),
            kind: ProviderEventKind::PaymentFailed,
            created: 5,
            data: IntentData {
                intent_id: "pi_1".into(),
                idempotency_key: Some("k".into()),
                amount: 100,
                currency: "EUR".into(),
                decline_code: Some(DeclineCode::InsufficientFunds),
                failure_reason: None,
                refunds: vec![],
            },
        };
        let body = serde_json::to_vec(&event).expect("json");
        let text = String::from_utf8(body.clone()).expect("utf8");
        assert!(text.contains(r#""type":"payment_intent.payment_failed""#), "{text}");
        assert!(text.contains(r#""decline_code":"insufficient_funds""#), "{text}");
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            signature_header(b"s", 10, &body).parse().expect("header"),
        );
        assert_eq!(verify_and_decode(b"s", &headers, &body, 10), Ok(event));
        let junk = b"{}";
        headers.insert(
            SIGNATURE_HEADER,
            signature_header(b"s", 10, junk).parse().expect("header"),
        );
        assert!(matches!(
            verify_and_decode(b"s", &headers, junk, 10),
            Err(WebhookError::MalformedBody(_))
        ));
    }
}
