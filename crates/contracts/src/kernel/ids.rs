//! Ids that cross a context's boundary.
//!
//! Every id is a UUIDv7, so ids sort by creation time. The newtypes keep a payment id from being
//! passed where an order id is meant; on the wire each is the bare UUID string.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An id that is not a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not a UUID")]
pub struct IdError;

macro_rules! uuid_id {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse(raw: &str) -> Result<Self, IdError> {
                Uuid::parse_str(raw.trim()).map(Self).map_err(|_| IdError)
            }

            pub const fn get(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    )+};
}

uuid_id! {
    /// A user account (identity).
    UserId;
    /// A product (catalog).
    ProductId;
    /// A cart (cart).
    CartId;
    /// A stock reservation (inventory).
    ReservationId;
    /// An order (ordering).
    OrderId;
    /// A payment (payments).
    PaymentId;
    /// A refund of a payment (payments).
    RefundId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_on_the_wire() {
        let id = OrderId::new();
        assert_eq!(id.0.get_version_num(), 7);
        let json = serde_json::to_value(id).expect("json");
        assert_eq!(json, serde_json::Value::String(id.to_string()));
        assert_eq!(serde_json::from_value::<OrderId>(json).expect("back"), id);
        assert!(serde_json::from_str::<OrderId>(r#""order-1""#).is_err());
    }

    #[test]
    fn parsing_names_what_is_wrong() {
        let id = Uuid::now_v7();
        assert_eq!(PaymentId::parse(&format!(" {id} ")), Ok(PaymentId(id)));
        assert_eq!(UserId::parse("42"), Err(IdError));
        assert_eq!("".parse::<ProductId>(), Err(IdError));
        assert_eq!(Uuid::from(ReservationId::from(id)), id);
    }

    #[test]
    fn newer_ids_sort_after_older_ones() {
        let first = CartId::new();
        let second = CartId::new();
        assert!(first < second);
    }
}
