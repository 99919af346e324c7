//! The ordering context's published request and view types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Something the caller may do with an order now. An order view lists these
/// (`allowed_actions`) so that pages offer exactly what ordering would accept, without knowing
/// its state machine. Ordering still checks each request when it arrives (the order may have
/// moved meanwhile, the return window may have closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    /// `POST /api/v1/orders/{id}/cancel`: before it ships (its owner or staff).
    Cancel,
    /// `POST /api/v1/orders/{id}/refund-requests`: on its way to the customer (its owner).
    RequestRefund,
    /// `POST /api/v1/orders/{id}/returns`: delivered (its owner).
    RequestReturn,
    /// `GET /api/v1/orders/{id}/invoice.pdf`: paid and past checkout.
    DownloadInvoice,
    /// `POST /api/v1/orders/{id}/ship`: confirmed (admin or fulfilment).
    Ship,
    /// `POST /api/v1/orders/{id}/deliver`: shipped (admin or fulfilment).
    Deliver,
    /// `POST /api/v1/orders/{id}/refunds`: paid and not yet refunded in full (admin).
    Refund,
}

impl OrderAction {
    pub const ALL: [OrderAction; 7] = [
        Self::Cancel,
        Self::RequestRefund,
        Self::RequestReturn,
        Self::DownloadInvoice,
        Self::Ship,
        Self::Deliver,
        Self::Refund,
    ];

    /// The wire name (`request_return`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::RequestRefund => "request_refund",
            Self::RequestReturn => "request_return",
            Self::DownloadInvoice => "download_invoice",
            Self::Ship => "ship",
            Self::Deliver => "deliver",
            Self::Refund => "refund",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_travel_by_their_snake_case_names() {
        for action in OrderAction::ALL {
            let wire = serde_json::to_value(action).expect("serialise");
            assert_eq!(wire, serde_json::json!(action.as_str()));
            assert_eq!(serde_json::from_value::<OrderAction>(wire).expect("read back"), action);
        }
    }
}
