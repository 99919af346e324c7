//! The payments context's published request and view types: saved cards, payments, refunds,
//! and [`PaymentsApi`], what other contexts call.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ClientError;
use super::money::{MoneyInput, MoneyView};

/// What other contexts ask of payments. Charges and refunds are made as a service under an
/// idempotency key: a retry with the same key answers with the same payment, never a second one.
#[async_trait::async_trait]
pub trait PaymentsApi: Send + Sync + 'static {
    /// `GET /api/v1/payments/methods/{id}` with the customer's own token: 404 when the card is
    /// not theirs (or not saved).
    async fn method(&self, bearer: &str, id: &str) -> Result<MethodView, ClientError>;
    /// `POST /api/v1/payments`: 201 when the provider answered (a decline is an answer, with
    /// `decline_code`), 202 while it is still processing. 409 when the order is already paid,
    /// 422 naming the refused field.
    async fn create_payment(&self, key: &str, request: &CreatePaymentRequest) -> Result<PaymentView, ClientError>;
    /// `POST /api/v1/payments/{id}/refunds`.
    async fn refund(&self, payment: &str, key: &str, request: &CreateRefundRequest) -> Result<RefundView, ClientError>;
}

fn default_capture() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Unknown,
}

impl CardBrand {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Discover => "discover",
            Self::Unknown => "unknown",
        }
    }
}

impl FromStr for CardBrand {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "visa" => Self::Visa,
            "mastercard" => Self::Mastercard,
            "amex" => Self::Amex,
            "discover" => Self::Discover,
            "unknown" => Self::Unknown,
            other => return Err(format!("unknown card brand {other:?}")),
        })
    }
}

/// Where a payment stands. `processing` is the only state that changes on its own (when the
/// provider answers); `authorized` becomes `captured` on capture; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Sent to the provider, no answer yet.
    Processing,
    /// Funds held, not yet taken.
    Authorized,
    /// Funds taken.
    Captured,
    /// The card was refused (`decline_code` says why).
    Declined,
    /// The provider could not process it (`failure_reason`); a new attempt may succeed.
    Failed,
    /// Captured, then refunded in part. Reported only (see `reported` in payments): the stored
    /// state stays `captured`, so refunds keep being checked against the ledger.
    PartiallyRefunded,
    /// Captured, then refunded in full. Reported only, like `partially_refunded`.
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
        }
    }
}

impl FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "processing" => Self::Processing,
            "authorized" => Self::Authorized,
            "captured" => Self::Captured,
            "declined" => Self::Declined,
            "failed" => Self::Failed,
            other => return Err(format!("unknown payment status {other:?}")),
        })
    }
}

/// Why a card was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclineCode {
    CardDeclined,
    InsufficientFunds,
}

impl DeclineCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
        }
    }
}

impl FromStr for DeclineCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "card_declined" => Ok(Self::CardDeclined),
            "insufficient_funds" => Ok(Self::InsufficientFunds),
            other => Err(format!("unknown decline code {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Sent to the provider, no answer yet.
    Pending,
    Completed,
    /// The provider refused; the amount is refundable again.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for RefundStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown refund status {other:?}")),
        }
    }
}

/// A saved card: brand, last four digits and expiry only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MethodView {
    #[schema(example = "pm_0192f0c4-7d1e-7c3a-9f51-3c2b1a0e9d88")]
    pub id: String,
    pub brand: CardBrand,
    #[schema(example = "4242")]
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MethodList {
    pub items: Vec<MethodView>,
}

/// A payment. `captured_amount` and `refunded_amount` are sums over the payment's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: PaymentStatus,
    pub amount: MoneyView,
    /// ISO 4217 currency of every amount of the payment.
    #[schema(example = "EUR")]
    pub currency: String,
    pub capture: bool,
    pub captured_amount: MoneyView,
    pub refunded_amount: MoneyView,
    /// captured − refunded − refunds still in flight.
    pub refundable_amount: MoneyView,
    pub payment_method: String,
    pub brand: CardBrand,
    pub last4: String,
    /// Present when `status` is `declined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<DeclineCode>,
    /// Present when `status` is `failed` (e.g. `processing_error`: a new attempt may succeed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// True for `failed` payments: retry with a new Idempotency-Key.
    pub retryable: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentList {
    pub items: Vec<PaymentView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub status: RefundStatus,
    pub amount: MoneyView,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundList {
    pub items: Vec<RefundView>,
}

/// The answer to a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// `applied`, `duplicate` (event seen before), `already_settled` or `ignored`.
    pub result: String,
}

/// A card to pay with: either the card as typed (the simulated provider tokenises it on the
/// server) or `provider_token`, the token the shopper's browser got from the provider's own
/// script (Stripe mode: card data never reaches Emporium). Only brand, last four digits and expiry
/// are kept, with the provider's token.
/// No `Debug`: it holds the card number and CVC, which must never reach a log.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMethodRequest {
    /// 12 to 19 digits (spaces and dashes allowed), Luhn-valid. Simulated provider only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "4242424242424242")]
    pub card_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 12)]
    pub exp_month: Option<i64>,
    /// Four digits (two are read as 20xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 2030)]
    pub exp_year: Option<i64>,
    /// 3 digits (4 for American Express).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "123")]
    pub cvc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_name: Option<String>,
    /// Instead of the card fields, when the shop uses Stripe: the `pm_…` (PaymentMethod) or
    /// `tok_…` (card token) id Stripe.js returned in the shopper's browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "pm_1Q2w3E4r5T6y7U8i")]
    pub provider_token: Option<String>,
    /// Keep the card on the account for next time (listed by `GET /methods`). Default `false`:
    /// the card serves the payments of one checkout and is then forgotten. A card declined on its
    /// first use is never kept.
    #[serde(default)]
    pub save: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    pub order_id: Uuid,
    /// The user the payment method belongs to.
    pub customer_id: Uuid,
    /// `{amount, currency}`: minor units 1 to 100 000 000, currency one of
    /// `EMPORIUM_PAYMENTS_CURRENCIES`. A bare integer with `currency` beside it is still accepted.
    pub amount: MoneyInput,
    /// Deprecated: the currency of a bare-integer `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    /// `pm_<uuid>` of a method of `customer_id`.
    pub payment_method: String,
    /// Capture at once (default) or only authorize.
    #[serde(default = "default_capture")]
    pub capture: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefundRequest {
    /// `{amount, currency}`, at most what remains refundable (in the payment's currency). A bare
    /// integer of minor units is still accepted.
    pub amount: MoneyInput,
    /// Up to 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The payment provider of a shop (`EMPORIUM_PAYMENTS_PROVIDER`): payments charges through it,
/// and the storefront takes cards the way it needs (typed fields, or Stripe.js). Both read the
/// setting through [`ProviderKind::from_setting`], so they agree on it and refuse the same typos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Built in: test cards, no network.
    Simulated,
    /// Stripe's PaymentIntents; cards are tokenised in the shopper's browser.
    Stripe,
}

impl ProviderKind {
    pub const SETTING: &'static str = "EMPORIUM_PAYMENTS_PROVIDER";

    /// The setting's value; unset means simulated.
    pub fn from_setting(value: Option<&str>) -> Result<Self, &'static str> {
        match value.map(str::trim) {
            None | Some("simulated") => Ok(Self::Simulated),
            Some("stripe") => Ok(Self::Stripe),
            Some(_) => Err("must be simulated or stripe"),
        }
    }
}

#[cfg(test)]
mod provider_tests {
    use super::ProviderKind;

    #[test]
    fn the_provider_setting() {
        assert_eq!(ProviderKind::from_setting(None), Ok(ProviderKind::Simulated));
        assert_eq!(ProviderKind::from_setting(Some(" stripe ")), Ok(ProviderKind::Stripe));
        assert_eq!(
            ProviderKind::from_setting(Some("simulated")),
            Ok(ProviderKind::Simulated)
        );
        assert!(ProviderKind::from_setting(Some("strip")).is_err());
        assert!(ProviderKind::from_setting(Some("")).is_err());
    }
}
