//! The notifications context's published request and view types: a user's preferences (the
//! account pages read and change them) and the delivery log (the admin console reads it). Which
//! kinds may be switched off stays notifications' rule.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user's notification preferences. Transactional mail (`email_verification`, `password_reset`,
/// `order_updates`) is always on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreferencesView {
    /// Order received / confirmed / payment failed / shipped / delivered / cancelled / refunded:
    /// always true.
    pub order_updates: bool,
    /// Always true.
    pub email_verification: bool,
    /// Always true.
    pub password_reset: bool,
    /// Newsletters and offers; off unless switched on.
    pub marketing: bool,
    /// Low-stock alerts (staff whose address is in `EMPORIUM_ALERT_EMAILS`); on by default.
    pub low_stock_alerts: bool,
}

/// A change of preferences. Fields left out keep their value; transactional kinds may only be
/// `true` (`false` is a 422 naming the field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_updates: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verification: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_reset: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marketing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_stock_alerts: Option<bool>,
}

/// One message in the delivery log (without its body).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    /// The event that caused the message.
    pub event_id: Uuid,
    pub event_type: String,
    /// Template: `email_verification`, `password_reset`, `order_placed` (received, waiting for
    /// the payment), `order_confirmed`, `payment_failed`, `order_shipped`, `order_delivered`,
    /// `order_cancelled`, `refund_completed`, `low_stock_alert`.
    pub kind: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    pub subject: String,
    /// `pending` | `sent` | `failed` (will be retried) | `dead` (given up).
    pub status: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (pending and failed only).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub message_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
}

/// An outbound webhook endpoint (admins). `secret` is present only in the answers that create
/// the endpoint or rotate its secret: it is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointView {
    pub id: Uuid,
    #[schema(example = "https://erp.example.com/hooks/emporium")]
    pub url: String,
    pub description: String,
    /// Event-type patterns: exact types, `*` for one word, a final `#` for the rest, `#` for all.
    #[schema(example = json!(["ordering.order.confirmed", "payments.#"]))]
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it was switched off (a run of failed deliveries), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row right now.
    pub failure_streak: u32,
    /// After a rotation: until when the previous secret still signs (alongside the new one).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub previous_secret_valid_until: Option<OffsetDateTime>,
    /// `whsec_…`: the Standard Webhooks signing secret. Only when just created or rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointList {
    pub items: Vec<WebhookEndpointView>,
}

/// Registers (`url` and `event_types` required) or changes an endpoint (fields left out keep
/// their value). `enabled: true` on a disabled endpoint switches it back on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttemptView {
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
    /// The receiver's HTTP status; absent when there was no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One event for one endpoint, in the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookMessageView {
    pub id: Uuid,
    /// The `webhook-id` header: the same on every attempt and replay.
    #[schema(example = "msg_0192f0c47d1e7c3a9f513c2b1a0e9d88")]
    pub webhook_id: String,
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending` (waiting for an attempt), `delivered`, `failed` (given up, or the endpoint was
    /// disabled; replay sends it again).
    pub status: String,
    pub attempts: u32,
    /// When the next attempt is due (pending messages).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub delivered_at: Option<OffsetDateTime>,
    /// The body as sent (one message's view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// Every attempt, oldest first (one message's view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<WebhookAttemptView>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookMessageList {
    pub items: Vec<WebhookMessageView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preferences_change_sends_only_what_changes() {
        let change = PreferencesRequest {
            marketing: Some(true),
            ..PreferencesRequest::default()
        };
        assert_eq!(
            serde_json::to_value(&change).expect("serialises"),
            serde_json::json!({ "marketing": true })
        );
        let back: PreferencesRequest = serde_json::from_str(r#"{"marketing":true}"#).expect("reads");
        assert_eq!(back, change);
        assert!(serde_json::from_str::<PreferencesRequest>(r#"{"sms":true}"#).is_err());
    }

    #[test]
    fn a_delivery_without_optional_times_reads_back() {
        let json = serde_json::json!({
            "id": "0190a0a0-0000-7000-8000-000000000001",
            "event_id": "0190a0a0-0000-7000-8000-000000000002",
            "event_type": "order.shipped",
            "kind": "order_shipped",
            "to": "ada@example.com",
            "subject": "Your order is on its way",
            "status": "sent",
            "attempts": 1,
            "message_id": "<x@emporium>",
            "created_at": "2026-01-02T03:04:05Z",
            "updated_at": "2026-01-02T03:04:06Z",
            "sent_at": "2026-01-02T03:04:06Z"
        });
        let delivery: DeliveryView = serde_json::from_value(json.clone()).expect("reads");
        assert_eq!(delivery.next_attempt_at, None);
        assert!(delivery.sent_at.is_some());
        assert_eq!(serde_json::to_value(&delivery).expect("writes"), json);
    }
}
