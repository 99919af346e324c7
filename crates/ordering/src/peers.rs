//! Ordering's view of the other contexts: small traits (so the service is testable without them)
//! and their implementations over `platform::client::ServiceClient`. The HTTP shapes of catalog,
//! inventory, cart and payments live here and nowhere else.

use std::time::Duration;

use async_trait::async_trait;
use platform::client::{CallError, Reply, ServiceClient};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

fn call_failed(peer: &'static str, e: CallError) -> PeerError {
    PeerError::Unavailable {
        peer,
        detail: e.to_string(),
    }
}

fn unexpected(peer: &'static str, reply: &Reply) -> PeerError {
    if reply.status.is_server_error() {
        PeerError::Unavailable {
            peer,
            detail: format!("{}: {}", reply.status, reply.problem_detail()),
        }
    } else {
        PeerError::Unexpected {
            peer,
            status: reply.status.as_u16(),
            detail: reply.problem_detail(),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(peer: &'static str, reply: &Reply) -> Result<T, PeerError> {
    reply.json().map_err(|e| PeerError::Unexpected {
        peer,
        status: reply.status.as_u16(),
        detail: e.to_string(),
    })
}

/// The `errors[].field` names of a problem reply.
fn problem_fields(reply: &Reply) -> Vec<(String, String)> {
    reply
        .problem()
        .and_then(|p| p.get("errors").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            Some((
                e.get("field")?.as_str()?.to_owned(),
                e.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Catalog

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub amount: i64,
    pub currency: String,
}

/// What ordering needs of catalog's ProductView.
#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub price: Price,
    #[serde(default)]
    pub available: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Products {
    pub items: Vec<Product>,
    #[serde(default)]
    pub missing: Vec<String>,
}

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Active products among `skus` (≤ 100); the others are missing.
    async fn products(&self, skus: &[Sku]) -> Result<Products, PeerError>;
}

pub struct CatalogClient(pub ServiceClient);

fn sku_query(skus: &[Sku]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for sku in skus {
        q.append_pair("sku", sku.as_str());
    }
    q.finish()
}

#[async_trait]
impl Catalog for CatalogClient {
    async fn products(&self, skus: &[Sku]) -> Result<Products, PeerError> {
        let path = format!("/api/v1/catalog/products/by-sku?{}", sku_query(skus));
        let reply = self.0.get(&path).send().await.map_err(|e| call_failed("catalog", e))?;
        if reply.status.is_success() {
            decode("catalog", &reply)
        } else {
            Err(unexpected("catalog", &reply))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cart

#[derive(Debug, Clone, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub quantity: i64,
}

#[async_trait]
pub trait Cart: Send + Sync + 'static {
    /// The caller's cart lines, read with their own token.
    async fn lines(&self, bearer: &str) -> Result<Vec<CartLine>, PeerError>;
}

pub struct CartClient(pub ServiceClient);

#[async_trait]
impl Cart for CartClient {
    async fn lines(&self, bearer: &str) -> Result<Vec<CartLine>, PeerError> {
        #[derive(Deserialize)]
        struct View {
            #[serde(default)]
            items: Vec<CartLine>,
        }
        let reply = self
            .0
            .get("/api/v1/cart")
            .bearer(bearer)
            .send()
            .await
            .map_err(|e| call_failed("cart", e))?;
        match reply.status.as_u16() {
            200 => Ok(decode::<View>("cart", &reply)?.items),
            // No cart yet: nothing in it.
            404 => Ok(Vec::new()),
            _ => Err(unexpected("cart", &reply)),
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

pub struct InventoryClient(pub ServiceClient);

/// `items[3].qty` → 3.
fn line_of(field: &str) -> Option<usize> {
    field.strip_prefix("items[")?.split(']').next()?.parse().ok()
}

#[async_trait]
impl Stock for InventoryClient {
    async fn reserve(&self, order: OrderId, items: &[(Sku, i64)]) -> Result<Reserved, PeerError> {
        #[derive(Serialize)]
        struct Item<'a> {
            sku: &'a str,
            qty: i64,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            reference: String,
            items: Vec<Item<'a>>,
        }
        #[derive(Deserialize)]
        struct View {
            id: Uuid,
            #[serde(with = "time::serde::rfc3339")]
            expires_at: OffsetDateTime,
        }
        let body = Body {
            reference: order.to_string(),
            items: items
                .iter()
                .map(|(sku, qty)| Item {
                    sku: sku.as_str(),
                    qty: *qty,
                })
                .collect(),
        };
        let reply = self
            .0
            .post("/api/v1/inventory/reservations")
            .as_service()
            .idempotency_key(&format!("order-{order}"))
            .json(&body)
            .send()
            .await
            .map_err(|e| call_failed("inventory", e))?;
        let lines = |reply: &Reply| {
            problem_fields(reply)
                .into_iter()
                .filter_map(|(f, m)| Some((line_of(&f)?, m)))
                .collect::<Vec<_>>()
        };
        match reply.status.as_u16() {
            200 | 201 => {
                let v: View = decode("inventory", &reply)?;
                Ok(Reserved::Reserved {
                    id: v.id,
                    expires_at: v.expires_at,
                })
            }
            409 => Ok(Reserved::Insufficient(lines(&reply))),
            422 if !lines(&reply).is_empty() => Ok(Reserved::Unknown(lines(&reply))),
            _ => Err(unexpected("inventory", &reply)),
        }
    }

    async fn release(&self, reservation: Uuid) -> Result<Finished, PeerError> {
        finish(&self.0, reservation, "release").await
    }

    async fn commit(&self, reservation: Uuid) -> Result<Finished, PeerError> {
        finish(&self.0, reservation, "commit").await
    }

    async fn restock(&self, order: OrderId, sku: &Sku, qty: i64) -> Result<(), PeerError> {
        let reply = self
            .0
            .post(&format!("/api/v1/inventory/{sku}/adjustments"))
            .as_service()
            .idempotency_key(&format!("order-{order}-restock-{sku}"))
            .json(&serde_json::json!({
                "kind": "restock",
                "quantity": qty,
                "reason": format!("order {order} cancelled"),
            }))
            .send()
            .await
            .map_err(|e| call_failed("inventory", e))?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(unexpected("inventory", &reply))
        }
    }

    async fn restock_return(&self, return_id: Uuid, line: i64, sku: &Sku, qty: i64) -> Result<(), PeerError> {
        let key = format!("return-{return_id}-line-{line}");
        adjust_restock(&self.0, &key, sku, qty, &format!("return {return_id} received")).await
    }
}

/// An inventory `restock` adjustment under `key` (inventory de-duplicates on it).
async fn adjust_restock(client: &ServiceClient, key: &str, sku: &Sku, qty: i64, reason: &str) -> Result<(), PeerError> {
    let reply = client
        .post(&format!("/api/v1/inventory/{sku}/adjustments"))
        .as_service()
        .idempotency_key(key)
        .json(&serde_json::json!({"kind": "restock", "quantity": qty, "reason": reason}))
        .send()
        .await
        .map_err(|e| call_failed("inventory", e))?;
    if reply.status.is_success() {
        Ok(())
    } else {
        Err(unexpected("inventory", &reply))
    }
}

async fn finish(client: &ServiceClient, reservation: Uuid, action: &str) -> Result<Finished, PeerError> {
    let reply = client
        .post(&format!("/api/v1/inventory/reservations/{reservation}/{action}"))
        .as_service()
        .send()
        .await
        .map_err(|e| call_failed("inventory", e))?;
    match reply.status.as_u16() {
        200 | 201 => Ok(Finished::Done),
        409 => Ok(Finished::Conflict),
        404 => Ok(Finished::Missing),
        _ => Err(unexpected("inventory", &reply)),
    }
}

// ---------------------------------------------------------------------------------------------
// Payments

#[derive(Debug, Clone, Serialize)]
pub struct CaptureRequest {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount: platform::money::MoneyView,
    pub payment_method: String,
    pub capture: bool,
}

/// PaymentView as payments answers it (the fields ordering reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub last4: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default, deserialize_with = "platform::money::amount_of")]
    pub captured_amount: i64,
    #[serde(default, deserialize_with = "platform::money::amount_of")]
    pub refunded_amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charged {
    /// Payments answered with a payment (any status).
    Payment(Payment),
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
    /// Creates (or, with the same key, re-reads) the order's payment.
    async fn charge(&self, request: &CaptureRequest, key: &str, timeout: Duration) -> Result<Charged, PeerError>;
    /// Refunds `amount` of `payment_id`; `Ok(refund id)`.
    async fn refund(&self, payment_id: &str, amount: i64, reason: &str, key: &str) -> Result<String, PeerError>;
}

pub struct PaymentsClient(pub ServiceClient);

#[async_trait]
impl Payments for PaymentsClient {
    async fn check_method(&self, bearer: &str, method: &str) -> Result<MethodCheck, PeerError> {
        // Asked by id, as the customer: a card used once without saving it is not in their list.
        if !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Ok(MethodCheck::Unknown("not a payment method id".into()));
        }
        let reply = self
            .0
            .get(&format!("/api/v1/payments/methods/{method}"))
            .bearer(bearer)
            .send()
            .await
            .map_err(|e| call_failed("payments", e))?;
        match reply.status.as_u16() {
            200 => Ok(MethodCheck::Known),
            404 => Ok(MethodCheck::Unknown("no card of yours with this id".into())),
            _ => Err(unexpected("payments", &reply)),
        }
    }

    async fn charge(&self, request: &CaptureRequest, key: &str, timeout: Duration) -> Result<Charged, PeerError> {
        let reply = self
            .0
            .post("/api/v1/payments")
            .as_service()
            .idempotency_key(key)
            .json(request)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| call_failed("payments", e))?;
        match reply.status.as_u16() {
            200..=202 => Ok(Charged::Payment(decode("payments", &reply)?)),
            409 => Ok(Charged::AlreadyPaid(reply.problem_detail())),
            422 => {
                let (field, message) = problem_fields(&reply)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| ("payment_method".into(), reply.problem_detail()));
                Ok(Charged::Refused { field, message })
            }
            _ => Err(unexpected("payments", &reply)),
        }
    }

    async fn refund(&self, payment_id: &str, amount: i64, reason: &str, key: &str) -> Result<String, PeerError> {
        #[derive(Deserialize)]
        struct RefundView {
            id: String,
        }
        let reply = self
            .0
            .post(&format!("/api/v1/payments/{payment_id}/refunds"))
            .as_service()
            .idempotency_key(key)
            .json(&serde_json::json!({"amount": amount, "reason": reason}))
            .send()
            .await
            .map_err(|e| call_failed("payments", e))?;
        if reply.status.is_success() {
            Ok(decode::<RefundView>("payments", &reply)?.id)
        } else {
            Err(unexpected("payments", &reply))
        }
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
    fn sku_queries_repeat_the_parameter() {
        let skus = [Sku::parse("AAA-1").expect("sku"), Sku::parse("BBB-2").expect("sku")];
        assert_eq!(sku_query(&skus), "sku=AAA-1&sku=BBB-2");
    }
}
