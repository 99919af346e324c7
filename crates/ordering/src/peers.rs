//! Ordering's view of the other contexts: small traits that say what ordering needs of each (so
//! the service reads as the saga, not as HTTP), implemented over the contexts' published APIs
//! (`contracts::api`). What a refusal means to ordering (short stock, an unknown card, an order
//! already paid) is decided here; the shapes of the calls are the callees'.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use contracts::api::ClientError;
use contracts::api::FieldError;
use contracts::api::cart::{CartApi, CartItemView};
use contracts::api::catalog::{CatalogApi, SkuLookup};
use contracts::api::inventory::{
    AdjustmentKind, AdjustmentRequest, CreateReservationRequest, InventoryApi, ReservationLineRequest,
};
use contracts::api::money::MoneyInput;
use contracts::api::payments::{CreatePaymentRequest, CreateRefundRequest, PaymentView, PaymentsApi};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{OrderId, Sku};

/// A call that produced no usable answer. `Unavailable` is worth retrying (timeout, 5xx,
/// unreachable); `Unexpected` is a reply we do not understand (a 4xx we did not expect).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("{peer} is unavailable: {detail}")]
    Unavailable { peer: &'static str, detail: String },
    #[error("{peer} answered {status}: {detail}")]
    Unexpected {
        peer: &'static str,
        status: u16,
        detail: String,
    },
}

impl From<ClientError> for PeerError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unreachable { peer, detail } => Self::Unavailable { peer, detail },
            ClientError::Status {
                peer, status, detail, ..
            } if status >= 500 => Self::Unavailable {
                peer,
                detail: match StatusCode::from_u16(status) {
                    Ok(status) => format!("{status}: {detail}"),
                    Err(_) => format!("{status}: {detail}"),
                },
            },
            ClientError::Status {
                peer, status, detail, ..
            }
            | ClientError::Malformed { peer, status, detail } => Self::Unexpected { peer, status, detail },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Active products among `skus` (≤ 100); the others are missing.
    async fn products(&self, skus: &[Sku]) -> Result<SkuLookup, PeerError>;
}

pub struct CatalogPeer(pub Arc<dyn CatalogApi>);

#[async_trait]
impl Catalog for CatalogPeer {
    async fn products(&self, skus: &[Sku]) -> Result<SkuLookup, PeerError> {
        Ok(self.0.products_by_sku(skus).await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Cart

#[async_trait]
pub trait Cart: Send + Sync + 'static {
    /// The caller's cart lines, read with their own token.
    async fn lines(&self, bearer: &str) -> Result<Vec<CartItemView>, PeerError>;
}

pub struct CartPeer(pub Arc<dyn CartApi>);

#[async_trait]
impl Cart for CartPeer {
    async fn lines(&self, bearer: &str) -> Result<Vec<CartItemView>, PeerError> {
        match self.0.cart(bearer).await {
            Ok(cart) => Ok(cart.items),
            // No cart yet: nothing in it.
            Err(ClientError::Status { status: 404, .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inventory

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Reserved {
        id: Uuid,
        expires_at: OffsetDateTime,
    },
    /// 409: not enough units; `(line index, available message)` per line inventory named.
    Insufficient(Vec<(usize, String)>),
    /// 422: unknown SKUs (by line index).
    Unknown(Vec<(usize, String)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Done,
    /// 409: the reservation was in a state that forbids it (expired, released, committed).
    Conflict,
    /// 404: inventory does not know it.
    Missing,
}

#[async_trait]
pub trait Stock: Send + Sync + 'static {
    async fn reserve(&self, order: OrderId, items: &[(Sku, i64)]) -> Result<Reserved, PeerError>;
    async fn release(&self, reservation: Uuid) -> Result<Finished, PeerError>;
    async fn commit(&self, reservation: Uuid) -> Result<Finished, PeerError>;
    /// Puts `qty` units of `sku` back on hand (idempotent per order and SKU).
    async fn restock(&self, order: OrderId, sku: &Sku, qty: i64) -> Result<(), PeerError>;
    /// Puts a received return line's units back on hand (idempotent per return line).
    async fn restock_return(&self, return_id: Uuid, line: i64, sku: &Sku, qty: i64) -> Result<(), PeerError>;
}

pub struct InventoryPeer(pub Arc<dyn InventoryApi>);

/// `items[3].qty` → 3.
fn line_of(field: &str) -> Option<usize> {
    field.strip_prefix("items[")?.split(']').next()?.parse().ok()
}

/// The lines a refusal names, by index.
fn lines(errors: &[FieldError]) -> Vec<(usize, String)> {
    errors
        .iter()
        .filter_map(|e| Some((line_of(&e.field)?, e.message.clone())))
        .collect()
}

fn finished(result: Result<impl Sized, ClientError>) -> Result<Finished, PeerError> {
    match result {
        Ok(_) => Ok(Finished::Done),
        Err(ClientError::Status { status: 409, .. }) => Ok(Finished::Conflict),
        Err(ClientError::Status { status: 404, .. }) => Ok(Finished::Missing),
        Err(e) => Err(e.into()),
    }
}

impl InventoryPeer {
    /// A `restock` adjustment under `key` (inventory de-duplicates on it).
    async fn restock_under(&self, key: &str, sku: &Sku, qty: i64, reason: String) -> Result<(), PeerError> {
        let request = AdjustmentRequest {
            kind: AdjustmentKind::Restock,
            quantity: qty,
            reason,
        };
        self.0.adjust(sku.as_str(), key, &request).await?;
        Ok(())
    }
}

#[async_trait]
impl Stock for InventoryPeer {
    async fn reserve(&self, order: OrderId, items: &[(Sku, i64)]) -> Result<Reserved, PeerError> {
        let request = CreateReservationRequest {
            reference: order.to_string(),
            items: items
                .iter()
                .map(|(sku, qty)| ReservationLineRequest {
                    sku: sku.as_str().to_owned(),
                    qty: *qty,
                })
                .collect(),
            ttl_seconds: None,
        };
        match self.0.reserve(&format!("order-{order}"), &request).await {
            Ok(reservation) => Ok(Reserved::Reserved {
                id: reservation.id,
                expires_at: reservation.expires_at,
            }),
            Err(ClientError::Status {
                status: 409, errors, ..
            }) => Ok(Reserved::Insufficient(lines(&errors))),
            Err(ClientError::Status {
                status: 422, errors, ..
            }) if !lines(&errors).is_empty() => Ok(Reserved::Unknown(lines(&errors))),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(&self, reservation: Uuid) -> Result<Finished, PeerError> {
        finished(self.0.release(reservation).await)
    }

    async fn commit(&self, reservation: Uuid) -> Result<Finished, PeerError> {
        finished(self.0.commit(reservation).await)
    }

    async fn restock(&self, order: OrderId, sku: &Sku, qty: i64) -> Result<(), PeerError> {
        let key = format!("order-{order}-restock-{sku}");
        self.restock_under(&key, sku, qty, format!("order {order} cancelled"))
            .await
    }

    async fn restock_return(&self, return_id: Uuid, line: i64, sku: &Sku, qty: i64) -> Result<(), PeerError> {
        let key = format!("return-{return_id}-line-{line}");
        self.restock_under(&key, sku, qty, format!("return {return_id} received"))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Payments

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charged {
    /// Payments answered with a payment (any status). Boxed: the other answers are small.
    Payment(Box<PaymentView>),
    /// 422 naming a field (`payment_method`, `amount`, `currency`): the request itself is refused.
    Refused { field: String, message: String },
    /// 409: the order already has a captured payment (under another key).
    AlreadyPaid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodCheck {
    Known,
    Unknown(String),
}

#[async_trait]
pub trait Payments: Send + Sync + 'static {
    /// Whether `method` is one of the caller's saved payment methods (listed with their token).
    async fn check_method(&self, bearer: &str, method: &str) -> Result<MethodCheck, PeerError>;
    /// Creates (or, with the same key, re-reads) the order's payment, within the payment
    /// budget the client was built with.
    async fn charge(&self, request: &CreatePaymentRequest, key: &str) -> Result<Charged, PeerError>;
    /// Refunds `amount` of `payment_id`; `Ok(refund id)`.
    async fn refund(&self, payment_id: &str, amount: i64, reason: &str, key: &str) -> Result<String, PeerError>;
}

pub struct PaymentsPeer(pub Arc<dyn PaymentsApi>);

#[async_trait]
impl Payments for PaymentsPeer {
    async fn check_method(&self, bearer: &str, method: &str) -> Result<MethodCheck, PeerError> {
        // Asked by id, as the customer: a card used once without saving it is not in their list.
        if !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Ok(MethodCheck::Unknown("not a payment method id".into()));
        }
        match self.0.method(bearer, method).await {
            Ok(_) => Ok(MethodCheck::Known),
            Err(ClientError::Status { status: 404, .. }) => {
                Ok(MethodCheck::Unknown("no card of yours with this id".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn charge(&self, request: &CreatePaymentRequest, key: &str) -> Result<Charged, PeerError> {
        match self.0.create_payment(key, request).await {
            Ok(payment) => Ok(Charged::Payment(Box::new(payment))),
            Err(ClientError::Status {
                status: 409, detail, ..
            }) => Ok(Charged::AlreadyPaid(detail)),
            Err(ClientError::Status {
                status: 422,
                detail,
                errors,
                ..
            }) => {
                let (field, message) = errors
                    .into_iter()
                    .next()
                    .map_or_else(|| ("payment_method".into(), detail), |e| (e.field, e.message));
                Ok(Charged::Refused { field, message })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn refund(&self, payment_id: &str, amount: i64, reason: &str, key: &str) -> Result<String, PeerError> {
        let request = CreateRefundRequest {
            amount: MoneyInput::Minor(amount),
            reason: Some(reason.to_owned()),
        };
        Ok(self.0.refund(payment_id, key, &request).await?.id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_come_from_item_fields() {
        assert_eq!(line_of("items[3].qty"), Some(3));
        assert_eq!(line_of("items[0].sku"), Some(0));
        assert_eq!(line_of("reference"), None);
    }

    #[test]
    fn server_errors_are_worth_retrying_and_refusals_are_not() {
        let status = |status| ClientError::Status {
            peer: "inventory",
            status,
            detail: "why".into(),
            errors: Vec::new(),
        };
        assert_eq!(
            PeerError::from(status(503)).to_string(),
            "inventory is unavailable: 503 Service Unavailable: why"
        );
        assert_eq!(PeerError::from(status(403)).to_string(), "inventory answered 403: why");
    }
}
