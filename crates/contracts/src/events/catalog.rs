//! The events catalog publishes. Inventory keeps a stock row per product from them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Event, shared_shape};

/// A price as events carry it: minor units of `currency` (ISO 4217 code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub amount: i64,
    pub currency: String,
}

/// A product, as the product events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    // First: data missing several fields is refused naming the SKU, the field consumers key on.
    pub sku: String,
    pub id: Uuid,
    pub name: String,
    /// `draft`, `active` or `archived`.
    pub status: String,
    pub price: Price,
    /// The product's version after the change; absent from the events of seeded products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

shared_shape! {
    /// A new product (created over the API or seeded).
    ProductCreated(Product) = "catalog.product.created"
}

shared_shape! {
    /// A product changed (any field); the data is the product after the change.
    ProductUpdated(Product) = "catalog.product.updated"
}

/// A product was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDeleted {
    pub id: Uuid,
    pub sku: String,
}

impl Event for ProductDeleted {
    const TYPE: &'static str = "catalog.product.deleted";
}

/// A product's price changed (sent beside its `catalog.product.updated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChanged {
    pub id: Uuid,
    pub sku: String,
    pub old_price: Price,
    pub new_price: Price,
}

impl Event for PriceChanged {
    const TYPE: &'static str = "catalog.price.changed";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::tests::wire_form;

    const ID: &str = "0192b1c0-0000-7000-8000-000000000003";

    #[test]
    fn product_events() {
        let sample = json!({"id": ID, "sku": "TEE-RED-M", "name": "Red tee", "status": "active",
            "price": {"amount": 1999, "currency": "EUR"}, "version": 2});
        let created: ProductCreated = wire_form(sample.clone());
        assert_eq!(created.version, Some(2));
        let updated: ProductUpdated = wire_form(sample);
        assert_eq!(updated.price.amount, 1999);
        // Seeded products' events carry no version.
        let seeded: ProductCreated = wire_form(json!({"id": ID, "sku": "TEE-RED-M", "name": "Red tee",
            "status": "draft", "price": {"amount": 1999, "currency": "EUR"}}));
        assert_eq!(seeded.version, None);
        let deleted: ProductDeleted = wire_form(json!({"id": ID, "sku": "TEE-RED-M"}));
        assert_eq!(deleted.sku, "TEE-RED-M");
    }

    #[test]
    fn price_changed() {
        let changed: PriceChanged = wire_form(json!({"id": ID, "sku": "TEE-RED-M",
            "old_price": {"amount": 1999, "currency": "EUR"}, "new_price": {"amount": 1499, "currency": "EUR"}}));
        assert_eq!(changed.new_price.amount, 1499);
    }
}
