//! For every event on the bus, its type name and its payload (the envelope's `data`).
//!
//! A producer builds the payload struct and hands it to the bus (`platform::events::Event::of`),
//! a consumer matches on [`Event::TYPE`] and deserialises the same struct, so both sides agree on
//! the name and the shape at compile time. One module per producing context.
//!
//! The wire form is JSON and evolves additively: a new field is added with `#[serde(default)]`
//! (an event written by an older producer, still in an outbox or a dead-letter table, lacks it),
//! and no field is renamed or removed while a consumer may read it. Unknown fields are ignored,
//! so a newer producer never breaks an older consumer. Fields marked `#[serde(default)]` below
//! are the ones some producer did not always send.

pub mod catalog;
pub mod identity;
pub mod inventory;
pub mod ordering;
pub mod payments;
pub mod privacy;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The payload of one event type.
pub trait Event: Serialize + DeserializeOwned {
    /// Past-tense name, `<context>.<aggregate>.<verb>`: the envelope's `type` and the routing key.
    const TYPE: &'static str;

    /// The producing context: the type's first word (the envelope's `source`).
    fn source() -> &'static str {
        Self::TYPE.split_once('.').map_or(Self::TYPE, |(context, _)| context)
    }
}

/// Every event type on the bus, for checks that none is left undocumented or unrouted.
pub const ALL: &[&str] = &[
    identity::UserRegistered::TYPE,
    identity::RegistrationAttempted::TYPE,
    identity::EmailVerificationRequested::TYPE,
    identity::PasswordResetRequested::TYPE,
    identity::SessionRevoked::TYPE,
    identity::UserSessionsRevoked::TYPE,
    identity::UserUpdated::TYPE,
    identity::UserErased::TYPE,
    identity::ExportRequested::TYPE,
    identity::ExportReady::TYPE,
    privacy::CartErased::TYPE,
    privacy::CartExported::TYPE,
    privacy::CatalogErased::TYPE,
    privacy::CatalogExported::TYPE,
    privacy::OrderingErased::TYPE,
    privacy::OrderingExported::TYPE,
    privacy::PaymentsErased::TYPE,
    privacy::PaymentsExported::TYPE,
    privacy::NotificationsErased::TYPE,
    privacy::NotificationsExported::TYPE,
    catalog::ProductCreated::TYPE,
    catalog::ProductUpdated::TYPE,
    catalog::ProductDeleted::TYPE,
    catalog::PriceChanged::TYPE,
    inventory::StockChanged::TYPE,
    inventory::StockLow::TYPE,
    inventory::ReservationCreated::TYPE,
    inventory::ReservationReleased::TYPE,
    inventory::ReservationCommitted::TYPE,
    inventory::ReservationExpired::TYPE,
    payments::PaymentCaptured::TYPE,
    payments::PaymentFailed::TYPE,
    payments::RefundCompleted::TYPE,
    ordering::OrderPlaced::TYPE,
    ordering::OrderPaymentPending::TYPE,
    ordering::OrderPaid::TYPE,
    ordering::OrderConfirmed::TYPE,
    ordering::OrderPaymentFailed::TYPE,
    ordering::OrderCancelled::TYPE,
    ordering::OrderShipped::TYPE,
    ordering::OrderDelivered::TYPE,
    ordering::OrderRefunded::TYPE,
    ordering::ReturnRequested::TYPE,
    ordering::ReturnApproved::TYPE,
    ordering::ReturnRejected::TYPE,
    ordering::ReturnReceived::TYPE,
    ordering::ReturnRefunded::TYPE,
];

/// Whether events of this type must never leave the shop (outbound webhooks skip them): they
/// carry single-use tokens, or a person's exported data, or exist only to coordinate an erasure
/// or an export between contexts.
pub fn is_private(event_type: &str) -> bool {
    matches!(
        event_type,
        "identity.email.verification_requested" | "identity.password.reset_requested"
    ) || event_type.starts_with("identity.export.")
        || event_type.split('.').nth(1) == Some("privacy")
}

/// Declares an event type whose data has the same shape as its siblings' (`$data`): a
/// transparent newtype, so the wire form is exactly `$data`'s, that derefs to it.
macro_rules! shared_shape {
    ($(#[$attr:meta])* $name:ident($data:ty) = $type:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $data);

        impl $crate::events::Event for $name {
            const TYPE: &'static str = $type;
        }

        impl ::std::ops::Deref for $name {
            type Target = $data;
            fn deref(&self) -> &$data {
                &self.0
            }
        }

        impl From<$data> for $name {
            fn from(data: $data) -> Self {
                Self(data)
            }
        }
    };
}
use shared_shape;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `sample` (today's wire form) deserialises as `E`, and `E` serialises back to exactly it.
    pub(crate) fn wire_form<E: Event + std::fmt::Debug + PartialEq>(sample: serde_json::Value) -> E {
        let parsed: E = serde_json::from_value(sample.clone()).unwrap_or_else(|e| panic!("{}: {e}", E::TYPE));
        assert_eq!(serde_json::to_value(&parsed).expect("serialise"), sample, "{}", E::TYPE);
        let again: E = serde_json::from_value(serde_json::to_value(&parsed).expect("serialise")).expect("parse");
        assert_eq!(again, parsed, "{} round trip", E::TYPE);
        parsed
    }

    #[test]
    fn types_are_unique_and_named_after_their_producer() {
        let mut seen = std::collections::BTreeSet::new();
        for t in ALL {
            assert!(seen.insert(t), "{t} twice");
            assert_eq!(t.split('.').count(), 3, "{t}");
            assert!(
                [
                    "identity",
                    "catalog",
                    "inventory",
                    "payments",
                    "ordering",
                    "cart",
                    "notifications"
                ]
                .contains(&t.split('.').next().unwrap_or("")),
                "{t}"
            );
        }
        assert_eq!(identity::SessionRevoked::source(), "identity");
        assert_eq!(ordering::ReturnRefunded::source(), "ordering");
    }

    #[test]
    fn private_types() {
        for t in [
            identity::PasswordResetRequested::TYPE,
            identity::EmailVerificationRequested::TYPE,
            identity::ExportReady::TYPE,
            identity::ExportRequested::TYPE,
            privacy::OrderingExported::TYPE,
            privacy::CartErased::TYPE,
        ] {
            assert!(is_private(t), "{t}");
        }
        for t in [
            identity::UserRegistered::TYPE,
            identity::UserErased::TYPE,
            ordering::OrderPlaced::TYPE,
        ] {
            assert!(!is_private(t), "{t}");
        }
    }

    /// The event table of the API documentation names every type (and the catalogue stays one).
    #[test]
    fn every_type_is_documented() {
        let docs = include_str!("../../../../docs/api.md");
        for t in ALL {
            let (prefix, verb) = t.rsplit_once('.').unwrap_or((t, ""));
            // Sibling types share a row: `ordering.return.requested` / `.approved` / ….
            let listed = docs.contains(&format!("`{t}`"))
                || (docs.contains(&format!("`{prefix}.")) && docs.contains(&format!("`{verb}`")))
                || docs.contains(&format!("`.{verb}`"));
            assert!(listed, "{t} is not in docs/api.md's event table");
        }
    }
}
