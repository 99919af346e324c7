//! What the API returns. Delivery views never include message bodies (they carry tokens).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{Preferences, PreferencesChange};
use crate::store::Delivery;

/// A user's notification preferences. Transactional mail (`email_verification`, `password_reset`,
/// `order_updates`) is always on.
#[derive(Debug, Clone, Serialize, ToSchema)]
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

impl From<Preferences> for PreferencesView {
    fn from(p: Preferences) -> Self {
        Self {
            order_updates: true,
            email_verification: true,
            password_reset: true,
            marketing: p.marketing,
            low_stock_alerts: p.low_stock_alerts,
        }
    }
}

/// A change of preferences. Fields left out keep their value; transactional kinds may only be
/// `true` (`false` is a 422 naming the field).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesRequest {
    pub order_updates: Option<bool>,
    pub email_verification: Option<bool>,
    pub password_reset: Option<bool>,
    pub marketing: Option<bool>,
    pub low_stock_alerts: Option<bool>,
}

impl From<&PreferencesRequest> for PreferencesChange {
    fn from(r: &PreferencesRequest) -> Self {
        PreferencesChange {
            order_updates: r.order_updates,
            email_verification: r.email_verification,
            password_reset: r.password_reset,
            marketing: r.marketing,
            low_stock_alerts: r.low_stock_alerts,
        }
    }
}

/// One message in the delivery log (without its body).
#[derive(Debug, Clone, Serialize, ToSchema)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    pub subject: String,
    /// `pending` | `sent` | `failed` (will be retried) | `dead` (given up).
    pub status: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (pending and failed only).
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub message_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            kind: d.kind.to_string(),
            to: d.recipient.clone(),
            user_id: d.user_id,
            subject: d.subject.clone(),
            status: d.status.to_string(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            next_attempt_at: crate::service::next_attempt_at(d),
            message_id: d.message_id.clone(),
            created_at: d.created_at,
            updated_at: d.updated_at,
            sent_at: d.sent_at,
        }
    }
}
