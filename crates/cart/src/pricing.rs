//! What the cart asks other contexts: current products (catalog) and sellable units
//! (inventory). The service sees only the [`Pricing`] trait; [`PeerPricing`] is its one
//! implementation over `platform::client`, and keeps the HTTP shape of those calls in one place.

use std::collections::BTreeMap;
use std::time::Duration;

use platform::client::{CallError, Reply, ServiceClient};
use serde::Deserialize;
use uuid::Uuid;

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

/// [`Pricing`] over catalog's `GET /api/v1/catalog/products/by-sku` and inventory's
/// `GET /api/v1/inventory`, one call per 100 SKUs (a cart never holds more than 100 lines).
pub struct PeerPricing {
    catalog: ServiceClient,
    inventory: ServiceClient,
    timeout: Duration,
}

impl PeerPricing {
    pub fn new(catalog: ServiceClient, inventory: ServiceClient, timeout: Duration) -> Self {
        Self {
            catalog,
            inventory,
            timeout,
        }
    }
}

#[derive(Deserialize)]
struct ProductsReply {
    items: Vec<ProductJson>,
}

#[derive(Deserialize)]
struct ProductJson {
    id: Uuid,
    sku: String,
    name: String,
    slug: String,
    #[serde(default)]
    status: Option<String>,
    price: PriceJson,
    #[serde(default)]
    images: Vec<String>,
}

#[derive(Deserialize)]
struct PriceJson {
    amount: i64,
    currency: String,
}

#[derive(Deserialize)]
struct AvailabilityReply {
    items: Vec<StockJson>,
}

#[derive(Deserialize)]
struct StockJson {
    sku: String,
    available: i64,
}

/// `sku=A&sku=B`: SKUs are `[A-Z0-9-]`, so nothing needs escaping.
fn sku_query(path: &str, skus: &[Sku]) -> String {
    let params: Vec<String> = skus.iter().map(|s| format!("sku={}", s.as_str())).collect();
    format!("{path}?{}", params.join("&"))
}

fn failure(service: &'static str, e: CallError) -> PricingError {
    PricingError {
        service,
        message: e.to_string(),
    }
}

/// A non-2xx reply to a read that cannot fail for the shopper's input (the SKUs were parsed).
fn check(service: &'static str, reply: Reply) -> Result<Reply, PricingError> {
    if reply.is_success() {
        Ok(reply)
    } else {
        Err(PricingError {
            service,
            message: format!("answered {}: {}", reply.status, reply.problem_detail()),
        })
    }
}

/// The product, or `None` when it is not active (catalog lists only active ones; a draft that
/// slipped through is still not for sale).
fn to_product(p: ProductJson) -> Result<Option<Product>, String> {
    if p.status.as_deref().is_some_and(|s| s != "active") {
        return Ok(None);
    }
    Ok(Some(Product {
        id: p.id,
        sku: Sku::parse(&p.sku).map_err(|m| format!("product SKU {:?} {m}", p.sku))?,
        name: p.name,
        slug: p.slug,
        image: p.images.into_iter().next(),
        price: Money::new(p.price.amount, Currency::parse(&p.price.currency)?),
    }))
}

#[async_trait::async_trait]
impl Pricing for PeerPricing {
    async fn products(&self, skus: &[Sku]) -> Result<BTreeMap<Sku, Product>, PricingError> {
        const SERVICE: &str = "catalog";
        let mut found = BTreeMap::new();
        for chunk in skus.chunks(MAX_BATCH_SKUS) {
            let reply = self
                .catalog
                .get(&sku_query("/api/v1/catalog/products/by-sku", chunk))
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| failure(SERVICE, e))?;
            let reply: ProductsReply = check(SERVICE, reply)?.json().map_err(|e| failure(SERVICE, e))?;
            for item in reply.items {
                let product = to_product(item).map_err(|message| PricingError {
                    service: SERVICE,
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
        const SERVICE: &str = "inventory";
        let mut found = BTreeMap::new();
        for chunk in skus.chunks(MAX_BATCH_SKUS) {
            let reply = self
                .inventory
                .get(&sku_query("/api/v1/inventory", chunk))
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| failure(SERVICE, e))?;
            let reply: AvailabilityReply = check(SERVICE, reply)?.json().map_err(|e| failure(SERVICE, e))?;
            for item in reply.items {
                let sku = Sku::parse(&item.sku).map_err(|m| PricingError {
                    service: SERVICE,
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

    #[test]
    fn queries_repeat_the_sku_parameter() {
        let skus = [Sku::parse("AAA-1").expect("sku"), Sku::parse("BBB-2").expect("sku")];
        assert_eq!(sku_query("/x", &skus), "/x?sku=AAA-1&sku=BBB-2");
    }

    #[test]
    fn catalog_products_are_read_with_their_first_image() {
        let json = serde_json::json!({
            "id": "0192b1c0-0000-7000-8000-000000000001", "sku": "TEE-RED-M", "name": "Tee",
            "slug": "tee", "status": "active", "price": {"amount": 1999, "currency": "EUR"},
            "images": ["/a.jpg", "/b.jpg"], "available": 3, "in_stock": true
        });
        let p = to_product(serde_json::from_value(json).expect("json"))
            .expect("valid")
            .expect("active");
        assert_eq!(p.image.as_deref(), Some("/a.jpg"));
        assert_eq!(p.price.amount, 1999);
        let draft = serde_json::json!({
            "id": "0192b1c0-0000-7000-8000-000000000001", "sku": "TEE-RED-M", "name": "Tee",
            "slug": "tee", "status": "draft", "price": {"amount": 1999, "currency": "EUR"}
        });
        assert_eq!(to_product(serde_json::from_value(draft).expect("json")), Ok(None));
    }
}
