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
