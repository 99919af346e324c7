//! The Stripe adapter: [`PaymentProvider`] over Stripe's PaymentIntents API.
//!
//! * Cards never reach Emporium: the storefront tokenises them with Stripe.js and sends the
//!   token; [`StripeProvider::adopt_method`] reads brand, last four and expiry back from Stripe.
//! * `authorize` creates and confirms a PaymentIntent: with `capture_method=automatic` when the
//!   payment is to be captured at once (one call), else `manual` (funds held); `capture` captures
//!   a held one (partially, when asked for less); `refund` refunds all or part.
//! * Every POST carries an `Idempotency-Key` derived from our payment or refund id, so a retry
//!   after a lost answer gets Stripe's first answer back and never moves money twice. The key is
//!   also stored in the object's metadata (`emporium_key`), which is how webhooks find our records.
//! * Webhooks are verified with Stripe's scheme (`Stripe-Signature: t=…,v1=…`, HMAC-SHA256 of
//!   `<t>.<body>` with the endpoint's signing secret, five minutes' tolerance).
//!
//! The base URL is configurable so the test suite runs against localstripe, a Stripe-compatible
//! server; plain `http://` is accepted for loopback addresses only.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{CardBrand, CardDetails, DeclineCode};
use crate::provider::{
    AuthorizeRequest, IntentData, PaymentProvider, ProviderError, ProviderEvent, ProviderEventKind, ProviderMethod,
    ProviderOutcome, ProviderRefund, RefundRecord, WebhookError, verify_header,
};

pub const NAME: &str = "stripe";
pub const SIGNATURE_HEADER: &str = "stripe-signature";
/// The API version the adapter is written against; sent with every call so an account upgrade
/// never changes the shapes it reads.
pub const API_VERSION: &str = "2024-06-20";
/// Where Emporium's key travels in Stripe objects' metadata.
const METADATA_KEY: &str = "emporium_key";

/// The adapter's settings (`EMPORIUM_PAYMENTS_STRIPE_*`).
#[derive(Clone)]
pub struct StripeConfig {
    /// `sk_live_…`, `sk_test_…` or a restricted `rk_…` key.
    pub secret_key: String,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: Vec<u8>,
    /// `https://api.stripe.com`, or a Stripe-compatible server.
    pub api_base: String,
    /// Per-call timeout; an unanswered call leaves the payment processing for the reconciler.
    pub timeout: Duration,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Checks a base URL: `https://…`, or `http://` to a loopback host (a local test server).
pub fn check_api_base(raw: &str) -> Result<String, String> {
    let base = raw.trim().trim_end_matches('/');
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| "must be an absolute URL such as https://api.stripe.com".to_owned())?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_only = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    if host_only.is_empty() || host.contains('@') {
        return Err("must name a host (and no credentials)".into());
    }
    match scheme {
        "https" => Ok(base.to_owned()),
        "http" if matches!(host_only, "127.0.0.1" | "localhost" | "[::1]") => Ok(base.to_owned()),
        "http" => Err("must use https:// (plain http is allowed for 127.0.0.1 and localhost only)".into()),
        _ => Err("must be an https:// URL".into()),
    }
}

/// Stripe's answers are small; anything larger is not one.
const MAX_ANSWER_BYTES: usize = 1 << 20;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct StripeProvider {
    http: Client<Https, Full<Bytes>>,
    config: StripeConfig,
}

/// What a Stripe call came back with, before the operation reads it.
enum Reply {
    Ok {
        body: Value,
        replayed: bool,
    },
    /// HTTP 402: the card was refused.
    CardError(Value),
    /// 400 or 404: the request itself was refused; retrying will not help.
    Refused(String),
}

fn unavailable(what: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(what.to_string())
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn brand(name: &str) -> CardBrand {
    match name.to_ascii_lowercase().as_str() {
        "visa" => CardBrand::Visa,
        "mastercard" => CardBrand::Mastercard,
        "amex" | "american express" => CardBrand::Amex,
        "discover" => CardBrand::Discover,
        _ => CardBrand::Unknown,
    }
}

fn decline_code(error: &Value) -> DeclineCode {
    let says = |key| error.get(key).and_then(Value::as_str) == Some("insufficient_funds");
    if says("decline_code") || says("code") {
        DeclineCode::InsufficientFunds
    } else {
        DeclineCode::CardDeclined
    }
}

/// A card object (`payment_method.card`, `token.card` or a legacy card) as our method.
fn method_of(token: String, card: &Value) -> Result<ProviderMethod, ProviderError> {
    let number = |key| card.get(key).and_then(Value::as_i64);
    let (Some(last4), Some(month), Some(year)) = (text(card, "last4"), number("exp_month"), number("exp_year")) else {
        return Err(ProviderError::Rejected("the token is not a card".into()));
    };
    Ok(ProviderMethod {
        token,
        brand: brand(card.get("brand").and_then(Value::as_str).unwrap_or_default()),
        last4,
        exp_month: u8::try_from(month).map_err(|_| ProviderError::Rejected("bad expiry month".into()))?,
        exp_year: i32::try_from(year).map_err(|_| ProviderError::Rejected("bad expiry year".into()))?,
    })
}

/// Reads a PaymentIntent as the provider's answer about the payment.
pub fn outcome_of_intent(intent: &Value) -> Result<ProviderOutcome, ProviderError> {
    let id = text(intent, "id").ok_or_else(|| unavailable("Stripe answered without an intent id"))?;
    let amount = |key| intent.get(key).and_then(Value::as_i64);
    match intent.get("status").and_then(Value::as_str).unwrap_or_default() {
        "requires_capture" => Ok(ProviderOutcome::Authorized { intent_id: id }),
        "succeeded" => Ok(ProviderOutcome::Captured {
            amount: amount("amount_received")
                .filter(|a| *a > 0)
                .or(amount("amount"))
                .unwrap_or(0),
            intent_id: id,
        }),
        "requires_payment_method" => match intent.get("last_payment_error") {
            Some(error) if error.is_object() => Ok(ProviderOutcome::Declined {
                intent_id: Some(id),
                code: decline_code(error),
            }),
            _ => Err(ProviderError::Rejected("the intent has no payment method".into())),
        },
        // 3-D Secure asked for: the shopper is not there to answer it in this flow.
        "requires_action" => Ok(ProviderOutcome::Failed {
            intent_id: Some(id),
            reason: "authentication_required".into(),
            retryable: false,
        }),
        "canceled" => Ok(ProviderOutcome::Failed {
            intent_id: Some(id),
            reason: "canceled".into(),
            retryable: false,
        }),
        other => Err(unavailable(format_args!("the intent is still {other}"))),
    }
}

impl StripeProvider {
    pub fn new(config: StripeConfig) -> anyhow::Result<Self> {
        // rustls with ring and the Mozilla roots: the same TLS stack as every other client here.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Self { http, config })
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        form: Option<(String, &str)>,
    ) -> Result<Reply, ProviderError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.config.api_base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.config.secret_key))
            .header("Stripe-Version", API_VERSION)
            .header(header::USER_AGENT, concat!("emporium/", env!("CARGO_PKG_VERSION")));
        let body = match form {
            Some((body, idempotency_key)) => {
                request = request
                    .header("Idempotency-Key", idempotency_key)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| ProviderError::Rejected(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unavailable(format_args!("Stripe did not answer: {e}")))?;
            let status = response.status().as_u16();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v.as_bytes() == b"true");
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| unavailable(format_args!("reading Stripe's answer: {e}")))?
                .to_bytes();
            Ok::<_, ProviderError>((status, replayed, bytes))
        };
        let (status, replayed, bytes) = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| unavailable(format_args!("Stripe did not answer within {:?}", self.config.timeout)))??;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format_args!("Stripe's answer (HTTP {status}) is not JSON: {e}")))?;
        let error = body.get("error").cloned().unwrap_or(Value::Null);
        let message = || text(&error, "message").unwrap_or_else(|| format!("HTTP {status}"));
        match status {
            200..=299 => Ok(Reply::Ok { body, replayed }),
            402 => Ok(Reply::CardError(error)),
            400 | 404 => Ok(Reply::Refused(message())),
            401 | 403 => {
                tracing::error!(
                    status,
                    "Stripe refused the secret key: check EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY"
                );
                Err(unavailable(format_args!(
                    "Stripe refused the secret key (HTTP {status})"
                )))
            }
            // 409: the same idempotency key is in flight; 429: rate limited; 5xx: Stripe's trouble.
            _ => Err(unavailable(format_args!(
                "Stripe answered HTTP {status}: {}",
                message()
            ))),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply, ProviderError> {
        let path = if query.is_empty() {
            path.to_owned()
        } else {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish();
            format!("{path}?{query}")
        };
        self.send(Method::GET, &path, None).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], idempotency_key: &str) -> Result<Reply, ProviderError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(Method::POST, path, Some((body, idempotency_key))).await
    }

    /// The intent as it is now (after an idempotent replay or a refused repeat, the first answer
    /// may be stale).
    async fn current_intent(&self, intent_id: &str) -> Result<ProviderOutcome, ProviderError> {
        match self.get(&format!("/v1/payment_intents/{intent_id}"), &[]).await? {
            Reply::Ok { body, .. } => outcome_of_intent(&body),
            Reply::CardError(e) => Err(ProviderError::Rejected(text(&e, "message").unwrap_or_default())),
            Reply::Refused(m) => Err(ProviderError::Rejected(m)),
        }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn takes_card_data(&self) -> bool {
        false
    }

    async fn tokenize_card(&self, _card: &CardDetails) -> Result<ProviderMethod, ProviderError> {
        Err(ProviderError::Rejected(
            "card numbers are not accepted with Stripe: tokenise the card with Stripe.js".into(),
        ))
    }

    async fn adopt_method(&self, client_token: &str) -> Result<ProviderMethod, ProviderError> {
        let (path, card_of): (String, fn(&Value) -> Option<(String, &Value)>) = if client_token.starts_with("pm_") {
            (format!("/v1/payment_methods/{client_token}"), |pm| {
                Some((text(pm, "id")?, pm.get("card")?))
            })
        } else if client_token.starts_with("tok_") {
            // A card token (Stripe.js `createToken`): its card is what gets charged.
            (format!("/v1/tokens/{client_token}"), |tok| {
                let card = tok.get("card")?;
                Some((text(card, "id")?, card))
            })
        } else {
            return Err(ProviderError::Rejected("must be a Stripe pm_… or tok_… id".into()));
        };
        match self.get(&path, &[]).await? {
            Reply::Ok { body, .. } => {
                let (token, card) =
                    card_of(&body).ok_or_else(|| ProviderError::Rejected("the token is not a card".into()))?;
                method_of(token, card)
            }
            Reply::CardError(e) => Err(ProviderError::Rejected(text(&e, "message").unwrap_or_default())),
            Reply::Refused(m) => Err(ProviderError::Rejected(m)),
        }
    }

    async fn authorize(&self, request: &AuthorizeRequest) -> Result<ProviderOutcome, ProviderError> {
        let amount = request.amount.to_string();
        let currency = request.currency.to_ascii_lowercase();
        let form = [
            ("amount", amount.as_str()),
            ("currency", currency.as_str()),
            ("payment_method", request.method_token.as_str()),
            ("payment_method_types[0]", "card"),
            ("capture_method", if request.capture { "automatic" } else { "manual" }),
            ("confirm", "true"),
            ("metadata[emporium_key]", request.idempotency_key.as_str()),
        ];
        match self
            .post("/v1/payment_intents", &form, &request.idempotency_key)
            .await?
        {
            Reply::Ok { body, replayed } => {
                let outcome = outcome_of_intent(&body);
                // A replay repeats the first answer: read where the intent is now.
                match (&outcome, replayed) {
                    (Ok(_), false) => outcome,
                    _ => match text(&body, "id") {
                        Some(id) => self.current_intent(&id).await,
                        None => outcome,
                    },
                }
            }
            Reply::CardError(error) => Ok(ProviderOutcome::Declined {
                intent_id: error.get("payment_intent").and_then(|pi| text(pi, "id")),
                code: decline_code(&error),
            }),
            Reply::Refused(message) => Err(ProviderError::Rejected(message)),
        }
    }

    async fn capture(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderOutcome, ProviderError> {
        let amount = amount.to_string();
        let path = format!("/v1/payment_intents/{intent_id}/capture");
        match self
            .post(&path, &[("amount_to_capture", amount.as_str())], idempotency_key)
            .await?
        {
            Reply::Ok { body, .. } => outcome_of_intent(&body),
            Reply::CardError(error) => Ok(ProviderOutcome::Declined {
                intent_id: Some(intent_id.to_owned()),
                code: decline_code(&error),
            }),
            // Refused (for instance captured already, once the key has expired): the intent says
            // what happened.
            Reply::Refused(message) => match self.current_intent(intent_id).await? {
                captured @ ProviderOutcome::Captured { .. } => Ok(captured),
                _ => Err(ProviderError::Rejected(message)),
            },
        }
    }

    async fn refund(
        &self,
        intent_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        let amount_text = amount.to_string();
        let form = [
            ("payment_intent", intent_id),
            ("amount", amount_text.as_str()),
            ("metadata[emporium_key]", idempotency_key),
        ];
        match self.post("/v1/refunds", &form, idempotency_key).await? {
            Reply::Ok { body, .. } => {
                let refund_id = text(&body, "id").ok_or_else(|| unavailable("Stripe answered without a refund id"))?;
                match body.get("status").and_then(Value::as_str).unwrap_or_default() {
                    // Pending: Stripe has taken the refund and will not undo it; it completes on
                    // the card network's time.
                    "succeeded" | "pending" | "requires_action" => Ok(ProviderRefund { refund_id, amount }),
                    other => Err(ProviderError::Rejected(
                        text(&body, "failure_reason").unwrap_or_else(|| format!("the refund is {other}")),
                    )),
                }
            }
            Reply::CardError(e) => Err(ProviderError::Rejected(text(&e, "message").unwrap_or_default())),
            Reply::Refused(message) => Err(ProviderError::Rejected(message)),
        }
    }

    async fn refunds_of(
        &self,
        intent_id: &str,
        _reported: &[RefundRecord],
    ) -> Result<Vec<RefundRecord>, ProviderError> {
        // Newer API versions leave refunds out of the charge in the event: ask for them (also the
        // fresher truth when events arrive out of order).
        match self
            .get("/v1/refunds", &[("payment_intent", intent_id), ("limit", "100")])
            .await?
        {
            Reply::Ok { body, .. } => Ok(refund_records(&body)),
            Reply::CardError(e) => Err(ProviderError::Rejected(text(&e, "message").unwrap_or_default())),
            Reply::Refused(message) => Err(ProviderError::Rejected(message)),
        }
    }

    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderEvent, WebhookError> {
        verify_header(
            &self.config.webhook_secret,
            headers,
            SIGNATURE_HEADER,
            body,
            platform::clock::now().unix_timestamp(),
        )?;
        decode_event(body)
    }
}

/// The refunds of a list answer (`{"data": [...]}`) that took or are taking money back.
fn refund_records(list: &Value) -> Vec<RefundRecord> {
    list.get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| matches!(r.get("status").and_then(Value::as_str), Some("succeeded" | "pending")))
        .filter_map(|r| {
            Some(RefundRecord {
                refund_id: text(r, "id")?,
                amount: r.get("amount").and_then(Value::as_i64)?,
                idempotency_key: r.get("metadata").and_then(|m| text(m, METADATA_KEY)),
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: StripeEventData,
}

#[derive(Deserialize)]
struct StripeEventData {
    object: Value,
}

/// Reads a verified Stripe event body. Types Emporium does not act on are
/// [`WebhookError::Unhandled`], acknowledged without effect.
pub fn decode_event(body: &[u8]) -> Result<ProviderEvent, WebhookError> {
    let event: StripeEvent = serde_json::from_slice(body).map_err(|e| WebhookError::MalformedBody(e.to_string()))?;
    let kind = match event.kind.as_str() {
        "payment_intent.succeeded" => ProviderEventKind::Succeeded,
        "payment_intent.payment_failed" => ProviderEventKind::PaymentFailed,
        "payment_intent.amount_capturable_updated" => ProviderEventKind::Authorized,
        "charge.refunded" => ProviderEventKind::Refunded,
        other => return Err(WebhookError::Unhandled(other.to_owned())),
    };
    let object = &event.data.object;
    let missing = |what: &str| WebhookError::MalformedBody(format!("{} has no {what}", event.kind));
    let amount = object
        .get("amount")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing("amount"))?;
    let currency = text(object, "currency")
        .ok_or_else(|| missing("currency"))?
        .to_ascii_uppercase();
    let metadata_key = object.get("metadata").and_then(|m| text(m, METADATA_KEY));
    let data = if kind == ProviderEventKind::Refunded {
        IntentData {
            intent_id: text(object, "payment_intent").ok_or_else(|| missing("payment_intent"))?,
            idempotency_key: None,
            amount,
            currency,
            decline_code: None,
            failure_reason: None,
            refunds: object.get("refunds").map(refund_records).unwrap_or_default(),
        }
    } else {
        let error = object.get("last_payment_error").filter(|e| e.is_object());
        let declined = error.is_some_and(|e| {
            e.get("type").and_then(Value::as_str) == Some("card_error")
                || matches!(
                    e.get("code").and_then(Value::as_str),
                    Some("card_declined" | "insufficient_funds" | "expired_card" | "incorrect_cvc")
                )
        });
        IntentData {
            intent_id: text(object, "id").ok_or_else(|| missing("id"))?,
            idempotency_key: metadata_key,
            amount,
            currency,
            decline_code: error.filter(|_| declined).map(decline_code),
            failure_reason: error.filter(|_| !declined).and_then(|e| text(e, "code")),
            refunds: vec![],
        }
    };
    Ok(ProviderEvent {
        id: event.id,
        kind,
        created: event.created,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_base_is_https_or_loopback_http() {
        assert_eq!(
            check_api_base("https://api.stripe.com/").as_deref(),
            Ok("https://api.stripe.com")
        );
        assert_eq!(
            check_api_base("http://127.0.0.1:8420").as_deref(),
            Ok("http://127.0.0.1:8420")
        );
        assert_eq!(
            check_api_base("http://localhost:1").as_deref(),
            Ok("http://localhost:1")
        );
        for bad in [
            "http://api.stripe.com",
            "http://10.0.0.1:8420",
            "ftp://x",
            "api.stripe.com",
            "https://",
            "https://user:pw@api.stripe.com",
            "http://127.0.0.1.evil.com",
        ] {
            assert!(check_api_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn intents_read_as_outcomes() {
        let read = |v: Value| outcome_of_intent(&v);
        assert_eq!(
            read(json!({"id": "pi_1", "status": "requires_capture", "amount": 500})),
            Ok(ProviderOutcome::Authorized {
                intent_id: "pi_1".into()
            })
        );
        assert_eq!(
            read(json!({"id": "pi_1", "status": "succeeded", "amount": 500, "amount_received": 400})),
            Ok(ProviderOutcome::Captured {
                intent_id: "pi_1".into(),
                amount: 400
            })
        );
        // localstripe has no amount_received: the amount stands.
        assert_eq!(
            read(json!({"id": "pi_1", "status": "succeeded", "amount": 500})),
            Ok(ProviderOutcome::Captured {
                intent_id: "pi_1".into(),
                amount: 500
            })
        );
        assert_eq!(
            read(json!({"id": "pi_1", "status": "requires_payment_method",
                "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"}})),
            Ok(ProviderOutcome::Declined {
                intent_id: Some("pi_1".into()),
                code: DeclineCode::InsufficientFunds
            })
        );
        assert!(matches!(
            read(json!({"id": "pi_1", "status": "requires_action"})),
            Ok(ProviderOutcome::Failed { retryable: false, .. })
        ));
        assert!(matches!(
            read(json!({"id": "pi_1", "status": "processing"})),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            read(json!({"status": "succeeded"})),
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn events_decode_and_unknown_types_are_unhandled() {
        let body = json!({"id": "evt_1", "type": "payment_intent.payment_failed", "created": 5, "data": {"object": {
            "id": "pi_1", "amount": 1999, "currency": "eur", "metadata": {"emporium_key": "k:authorize"},
            "last_payment_error": {"type": "card_error", "code": "card_declined"}}}});
        let event = decode_event(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(event.kind, ProviderEventKind::PaymentFailed);
        assert_eq!(event.data.currency, "EUR");
        assert_eq!(event.data.idempotency_key.as_deref(), Some("k:authorize"));
        assert_eq!(event.data.decline_code, Some(DeclineCode::CardDeclined));

        let refunded = json!({"id": "evt_2", "type": "charge.refunded", "created": 5, "data": {"object": {
            "id": "ch_1", "payment_intent": "pi_1", "amount": 1999, "currency": "eur",
            "refunds": {"data": [
                {"id": "re_1", "amount": 500, "status": "succeeded", "metadata": {"emporium_key": "r:refund"}},
                {"id": "re_2", "amount": 100, "status": "failed", "metadata": {}}]}}}});
        let event = decode_event(refunded.to_string().as_bytes()).expect("decodes");
        assert_eq!(event.kind, ProviderEventKind::Refunded);
        assert_eq!(event.data.intent_id, "pi_1");
        assert_eq!(
            event.data.refunds,
            [RefundRecord {
                refund_id: "re_1".into(),
                amount: 500,
                idempotency_key: Some("r:refund".into())
            }]
        );

        let other = json!({"id": "evt_3", "type": "customer.created", "created": 5, "data": {"object": {"amount": 1, "currency": "eur"}}});
        assert_eq!(
            decode_event(other.to_string().as_bytes()),
            Err(WebhookError::Unhandled("customer.created".into()))
        );
        assert!(matches!(decode_event(b"{}"), Err(WebhookError::MalformedBody(_))));
    }

    #[test]
    fn the_config_never_shows_its_secrets() {
        let config = StripeConfig {
            secret_key: "sk_test_secret".into(),
            webhook_secret: b"whsec_secret".to_vec(),
            api_base: "https://api.stripe.com".into(),
            timeout: Duration::from_secs(10),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret\""), "{shown}");
        assert!(!shown.contains("sk_test"), "{shown}");
    }
}
