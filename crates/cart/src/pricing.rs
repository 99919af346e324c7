//! What the cart asks other contexts: current products (catalog) and sellable units
//! (inventory). The service sees only the [`Pricing`] trait; [`PeerPricing`] is its one
//! implementation, over the two contexts' published APIs (`contracts::api`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use contracts::api::ClientError;
use contracts::api::catalog::{CatalogApi, ProductStatus, ProductView};
use contracts::api::inventory::InventoryApi;
use platform::client::Peers;

use crate::CONTEXT;
use crate::domain::{Currency, MAX_BATCH_SKUS, Money, Product, Sku};

/// A peer could not answer: the cart cannot be priced now (503 to the shopper).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} is unavailable: {message}")]
pub struct PricingError {
    pub service: &'static str,
    pub message: String,
}

#[async_trait::async_trait]
pub trait Pricing: Send + Sync + 'static {
    /// The active products among `skus`, by SKU (unknown, draft and archived ones are absent).
    async fn products(&self, skus: &[Sku]) -> Result<BTreeMap<Sku, Product>, PricingError>;
    /// Units inventory can sell now, by SKU (SKUs without stock rows are absent).
    async fn availability(&self, skus: &[Sku]) -> Result<BTreeMap<Sku, i64>, PricingError>;
}

/// [`Pricing`] over catalog's SKU lookup and inventory's batch availability, one call per 100
/// SKUs (a cart never holds more than 100 lines).
pub struct PeerPricing {
    catalog: Arc<dyn CatalogApi>,
    inventory: Arc<dyn InventoryApi>,
}

impl PeerPricing {
    /// Directly when catalog and inventory run in this process and offer their APIs, else over
    /// HTTP; each call within `timeout` either way.
    pub fn new(peers: &Peers, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self::over(
            clients::catalog(peers, CONTEXT, timeout)?,
            clients::inventory(peers, CONTEXT, timeout)?,
        ))
    }

    /// Over any implementation of the two published APIs.
    pub fn over(catalog: Arc<dyn CatalogApi>, inventory: Arc<dyn InventoryApi>) -> Self {
        Self { catalog, inventory }
    }
}

/// Why the peer gave no usable answer, in the words the shopper's 503 and the logs have always
/// used (`answered 503 Service Unavailable: ...` for an error reply).
fn failure(e: ClientError) -> PricingError {
    let service = e.peer();
    let message = match e {
        ClientError::Unreachable { detail, .. } | ClientError::Malformed { detail, .. } => detail,
        ClientError::Status { status, detail, .. } => {
            let status = StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string());
            format!("answered {status}: {detail}")
        }
    };
    PricingError { service, message }
}

/// The product, or `None` when it is not active (catalog lists only active ones; a draft that
/// slipped through is still not for sale).
fn to_product(p: ProductView) -> Result<Option<Product>, String> {
    if p.status != ProductStatus::Active {
        return Ok(None);
    }
    let currency = p.price.currency.as_deref().ok_or("product price without a currency")?;
    Ok(Some(Product {
        id: p.id,
        sku: Sku::parse(&p.sku).map_err(|m| format!("product SKU {:?} {m}", p.sku))?,
        name: p.name,
        slug: p.slug,
        image: p.images.into_iter().next(),
        price: Money::new(p.price.amount, Currency::parse(currency).map_err(|e| e.to_string())?),
    }))
}

#[async_trait::async_trait]
impl Pricing for PeerPricing {
    async fn products(&self, skus: &[Sku]) -> Result<BTreeMap<Sku, Product>, PricingError> {
        let mut found = BTreeMap::new();
        for chunk in skus.chunks(MAX_BATCH_SKUS) {
            let reply = self.catalog.products_by_sku(chunk).await.map_err(failure)?;
            for item in reply.items {
                let product = to_product(item).map_err(|message| PricingError {
                    service: "catalog",
                    message,
                })?;
                if let Some(product) = product {
                    found.insert(product.sku.clone(), product);
                }
            }
        }
        Ok(found)
    }

    async fn availability(&self, skus: &[Sku]) -> Result<BTreeMap<Sku, i64>, PricingError> {
        let mut found = BTreeMap::new();
        for chunk in skus.chunks(MAX_BATCH_SKUS) {
            let reply = self.inventory.availability(chunk).await.map_err(failure)?;
            for item in reply.items {
                let sku = Sku::parse(&item.sku).map_err(|m| PricingError {
                    service: "inventory",
                    message: format!("stock SKU {:?} {m}", item.sku),
                })?;
                found.insert(sku, item.available);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(status: &str) -> ProductView {
        serde_json::from_value(serde_json::json!({
            "id": "0192b1c0-0000-7000-8000-000000000001", "sku": "TEE-RED-M", "name": "Tee",
            "slug": "tee", "description": "", "status": status,
            "price": {"amount": 1999, "currency": "EUR"}, "compare_at_price": null, "brand": null,
            "category_id": null, "attributes": {}, "images": ["/a.jpg", "/b.jpg"],
            "rating": {"average": 0.0, "count": 0, "histogram": {}},
            "available": 3, "in_stock": true, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "version": 1
        }))
        .expect("product view")
    }

    #[test]
    fn catalog_products_are_read_with_their_first_image() {
        let p = to_product(product("active")).expect("valid").expect("active");
        assert_eq!(p.image.as_deref(), Some("/a.jpg"));
        assert_eq!(p.price.amount, 1999);
        assert_eq!(to_product(product("draft")), Ok(None));
    }

    #[test]
    fn failures_name_the_peer_and_what_it_answered() {
        let e = failure(ClientError::Status {
            peer: "inventory",
            status: 503,
            detail: "down".into(),
            errors: Vec::new(),
        });
        assert_eq!(
            e.to_string(),
            "inventory is unavailable: answered 503 Service Unavailable: down"
        );
        let e = failure(ClientError::Unreachable {
            peer: "catalog",
            detail: "the call timed out".into(),
        });
        assert_eq!(e.to_string(), "catalog is unavailable: the call timed out");
    }
}
