//! What the API returns, built from the domain: the types are the published ones in
//! `contracts::api::notifications`. Delivery views never include message bodies (they carry tokens).

use contracts::api::notifications::{DeliveryView, PreferencesRequest, PreferencesView};

use crate::domain::{Preferences, PreferencesChange};
use crate::store::Delivery;

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
