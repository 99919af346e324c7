//! What the API reads and writes: request bodies and response shapes (also what the cache holds).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{MoneyJson, ProductStatus, ReviewStatus};
use crate::store::{Category, Product, Review};

/// `Some(None)` for an explicit `null`, `None` when the field is absent (PATCH semantics).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Rating aggregates over the visible reviews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingView {
    /// Mean stars, two decimals; 0 without reviews.
    pub average: f64,
    pub count: i64,
    /// Reviews per star count, keys "1" to "5".
    pub histogram: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    #[schema(example = "TSHIRT-RED-M")]
    pub sku: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub status: ProductStatus,
    pub price: MoneyJson,
    pub compare_at_price: Option<MoneyJson>,
    pub brand: Option<String>,
    pub category_id: Option<Uuid>,
    pub attributes: BTreeMap<String, String>,
    pub images: Vec<String>,
    pub rating: RatingView,
    /// Units available to sell (from inventory).
    pub available: i64,
    pub in_stock: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Increases with every editorial change. The `ETag` is `"v<version>-<digest>"`: the digest
    /// also changes with stock and ratings; `If-Match` compares the version only.
    pub version: i64,
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id.0,
            sku: p.sku.clone(),
            name: p.name.clone(),
            slug: p.slug.clone(),
            description: p.description.clone(),
            status: p.status,
            price: p.price.into(),
            compare_at_price: p.compare_at.map(|amount| MoneyJson {
                amount,
                currency: Some(p.price.currency.to_string()),
            }),
            brand: p.brand.clone(),
            category_id: p.category_id.map(|c| c.0),
            attributes: p.attributes.clone(),
            images: p.images.clone(),
            rating: RatingView {
                average: p.rating.average(),
                count: p.rating.count(),
                histogram: (1..=5)
                    .map(|stars| (stars.to_string(), p.rating.histogram[stars - 1]))
                    .collect(),
            },
            available: p.available,
            in_stock: p.available > 0,
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version,
        }
    }
}

/// A page of products, its total and the cursor of the next page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductView>,
    /// Products matching the filters (all pages).
    pub total: i64,
    /// Pass as `cursor` (with the same filters and sort) for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryCount {
    pub category_id: Option<Uuid>,
    pub name: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BrandCount {
    pub brand: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PriceBucket {
    /// Inclusive lower bound, in the catalog's default currency.
    pub min: platform::money::MoneyView,
    /// Exclusive upper bound; absent for the last bucket.
    pub max: Option<platform::money::MoneyView>,
    pub count: i64,
}

/// Counts for the current filter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FacetsView {
    pub total: i64,
    pub categories: Vec<CategoryCount>,
    pub brands: Vec<BrandCount>,
    pub price_buckets: Vec<PriceBucket>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SuggestionView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Suggestions {
    pub items: Vec<SuggestionView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductList {
    pub items: Vec<ProductView>,
}

/// Create a product, or replace one with `PUT`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Upper-cased; 3–64 of A-Z, 0-9 and -. Unique among live products.
    #[schema(example = "TSHIRT-RED-M")]
    pub sku: String,
    #[schema(example = "Organic cotton T-shirt")]
    pub name: String,
    /// Generated from the name when absent. Unique among live products.
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `draft` when absent; only `active` products are shown to shoppers.
    #[serde(default)]
    pub status: Option<ProductStatus>,
    pub price: MoneyJson,
    /// The "was" price: greater than `price`, same currency.
    #[serde(default)]
    pub compare_at_price: Option<MoneyJson>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub category_id: Option<Uuid>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// http(s) URLs, at most 10.
    #[serde(default)]
    pub images: Vec<String>,
}

/// Changes some fields of a product; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub status: Option<ProductStatus>,
    pub price: Option<MoneyJson>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<MoneyJson>)]
    pub compare_at_price: Option<Option<MoneyJson>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub brand: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub category_id: Option<Option<Uuid>>,
    pub attributes: Option<BTreeMap<String, String>>,
    pub images: Option<Vec<String>>,
}

impl From<ProductInput> for ProductPatch {
    fn from(i: ProductInput) -> Self {
        Self {
            sku: Some(i.sku),
            name: Some(i.name),
            slug: i.slug,
            description: Some(i.description.unwrap_or_default()),
            status: i.status,
            price: Some(i.price),
            compare_at_price: Some(i.compare_at_price),
            brand: Some(i.brand),
            category_id: Some(i.category_id),
            attributes: Some(i.attributes),
            images: Some(i.images),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryView {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub description: String,
    /// Active products directly in this category.
    pub product_count: i64,
    /// Active products in this category and every category below it.
    pub total_product_count: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl CategoryView {
    pub fn new(c: &Category, product_count: i64, total_product_count: i64) -> Self {
        Self {
            id: c.id.0,
            parent_id: c.parent_id.map(|p| p.0),
            name: c.name.clone(),
            slug: c.slug.clone(),
            description: c.description.clone(),
            product_count,
            total_product_count,
            created_at: c.created_at,
            updated_at: c.updated_at,
            version: c.version,
        }
    }
}

/// One node of the category tree.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryNode {
    #[serde(flatten)]
    pub category: CategoryView,
    #[schema(no_recursion)]
    pub children: Vec<CategoryNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryTree {
    pub roots: Vec<CategoryNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Breadcrumb {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
}

/// A category with the path from the root down to it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryDetail {
    #[serde(flatten)]
    pub category: CategoryView,
    pub breadcrumbs: Vec<Breadcrumb>,
    pub children: Vec<CategoryView>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    pub name: String,
    /// Generated from the name when absent. Unique.
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parent_id: Option<Uuid>,
}

/// Renames or moves a category (`parent_id: null` makes it a root).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    pub id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub rating: i64,
    pub title: String,
    pub body: String,
    pub status: ReviewStatus,
    /// Set from order history (later); false for now.
    pub verified_purchase: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Review> for ReviewView {
    fn from(r: &Review) -> Self {
        Self {
            id: r.id.0,
            product_id: r.product_id.0,
            user_id: r.user_id,
            rating: r.rating,
            title: r.title.clone(),
            body: r.body.clone(),
            status: r.status,
            verified_purchase: r.verified_purchase,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// 1 to 5 stars.
    pub rating: i64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewPatch {
    pub rating: Option<i64>,
    pub title: Option<String>,
    pub body: Option<String>,
}

/// Moderation: hide a review (excluded from aggregates) or show it again.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerationInput {
    pub status: ReviewStatus,
}
