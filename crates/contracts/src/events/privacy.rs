//! The answers every context holding personal data gives to identity's `identity.user.erased`
//! and `identity.export.requested`: one step of an erasure, one part of an export. Identity
//! collects them, so it can say when an erasure finished everywhere and hand out one archive.
//!
//! These events stay inside the shop: webhooks never carry them (see [`super::is_private`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::shared_shape;

/// One context finished erasing a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureStep {
    pub user_id: Uuid,
    /// The context that did it.
    pub context: String,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
    /// What was done, for the erasure report ("2 carts deleted", "3 orders pseudonymised").
    #[serde(default)]
    pub summary: String,
}

/// One context's part of an export: its data about the user, as a JSON document whose shape is
/// documented in docs/privacy.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPart {
    pub export_id: Uuid,
    pub user_id: Uuid,
    pub context: String,
    pub data: serde_json::Value,
}

macro_rules! privacy_events {
    ($($erased:ident = $erased_type:literal, $exported:ident = $exported_type:literal;)*) => {$(
        shared_shape! {
            #[doc = concat!("`", $erased_type, "`: this context erased the user.")]
            $erased(ErasureStep) = $erased_type
        }
        shared_shape! {
            #[doc = concat!("`", $exported_type, "`: this context's part of an export.")]
            $exported(ExportPart) = $exported_type
        }
    )*};
}

privacy_events! {
    CartErased = "cart.privacy.erased", CartExported = "cart.privacy.exported";
    CatalogErased = "catalog.privacy.erased", CatalogExported = "catalog.privacy.exported";
    OrderingErased = "ordering.privacy.erased", OrderingExported = "ordering.privacy.exported";
    PaymentsErased = "payments.privacy.erased", PaymentsExported = "payments.privacy.exported";
    NotificationsErased = "notifications.privacy.erased", NotificationsExported = "notifications.privacy.exported";
}

/// The contexts besides identity that hold personal data: an erasure is complete, and an export
/// ready, once each has answered.
pub const CONTEXTS_WITH_PERSONAL_DATA: &[&str] = &["cart", "catalog", "ordering", "payments", "notifications"];

/// Routing patterns for every erasure step and every export part.
pub const ERASED_PATTERN: &str = "*.privacy.erased";
pub const EXPORTED_PATTERN: &str = "*.privacy.exported";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::Event;
    use crate::events::tests::wire_form;

    #[test]
    fn steps_and_parts() {
        let step: CartErased = wire_form(json!({"user_id": "0192b1c0-0000-7000-8000-000000000001",
            "context": "cart", "completed_at": "2026-12-04T10:00:00Z", "summary": "1 cart deleted"}));
        assert_eq!(step.summary, "1 cart deleted");
        assert_eq!(CartErased::source(), "cart");
        let part: OrderingExported = wire_form(json!({"export_id": "0192b1c0-0000-7000-8000-000000000002",
            "user_id": "0192b1c0-0000-7000-8000-000000000001", "context": "ordering", "data": {"orders": []}}));
        assert_eq!(part.data, json!({"orders": []}));
        for context in CONTEXTS_WITH_PERSONAL_DATA {
            assert!(
                crate::events::ALL.contains(&format!("{context}.privacy.erased").as_str())
                    && crate::events::ALL.contains(&format!("{context}.privacy.exported").as_str()),
                "{context} has no privacy events"
            );
        }
    }
}
