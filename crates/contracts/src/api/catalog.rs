//! The catalog context's published request and view types: products, categories, reviews and
//! the SKU lookup other contexts price carts and orders with, and [`CatalogApi`], what they call.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ClientError;
use super::money::MoneyView;
use crate::kernel::Sku;

/// Most SKUs one [`CatalogApi::products_by_sku`] call may ask for.
pub const MAX_SKU_LOOKUP: usize = 100;

/// What other contexts ask of catalog.
#[async_trait::async_trait]
pub trait CatalogApi: Send + Sync + 'static {
    /// `GET /api/v1/catalog/products/by-sku`: the active products among `skus` (1 to
    /// [`MAX_SKU_LOOKUP`]); the others are listed in `missing`. Never cached: prices must be
    /// current at checkout.
    async fn products_by_sku(&self, skus: &[Sku]) -> Result<SkuLookup, ClientError>;
}

/// The answer to a SKU lookup: found products, in no particular order, and the SKUs that have no
/// active product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkuLookup {
    pub items: Vec<ProductView>,
    /// Requested SKUs with no active product (unknown, draft, archived or deleted).
    pub missing: Vec<String>,
}

/// Money as JSON: `{"amount": 1999, "currency": "EUR"}` (amount in minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyJson {
    /// Minor units (cents), 1..=10_000_000_000.
    #[schema(example = 1999)]
    pub amount: i64,
    /// ISO 4217; the catalog's default currency when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "EUR")]
    pub currency: Option<String>,
}

impl From<crate::kernel::Money> for MoneyJson {
    fn from(m: crate::kernel::Money) -> Self {
        Self {
            amount: m.amount,
            currency: Some(m.currency.to_string()),
        }
    }
}

/// A product's lifecycle: only `active` products are shown to shoppers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Draft,
    Active,
    Archived,
}

impl ProductStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }
}

impl std::str::FromStr for ProductStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "draft" => Ok(Self::Draft),
            "active" => Ok(Self::Active),
            "archived" => Ok(Self::Archived),
            other => Err(format!("unknown product status {other:?}")),
        }
    }
}

/// Review visibility: hidden reviews are moderated away and excluded from the aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Visible,
    Hidden,
}

impl ReviewStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Visible => "visible",
            Self::Hidden => "hidden",
        }
    }
}

impl std::str::FromStr for ReviewStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "visible" => Ok(Self::Visible),
            "hidden" => Ok(Self::Hidden),
            other => Err(format!("unknown review status {other:?}")),
        }
    }
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent (PATCH semantics).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
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

/// A page of products, its total and the cursor of the next page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductView>,
    /// Products matching the filters (all pages).
    pub total: i64,
    /// Pass as `cursor` (with the same filters and sort) for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
    /// Search only: when the words as typed found fewer than 3 products, the query with each
    /// misspelled word corrected to the closest catalog word. Its results follow the exact
    /// matches on this page (search it for more).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(example = "cotton shirt")]
    pub did_you_mean: Option<String>,
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
    pub min: MoneyView,
    /// Exclusive upper bound; absent for the last bucket.
    pub max: Option<MoneyView>,
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ProductStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<MoneyJson>,
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MoneyJson>)]
    pub compare_at_price: Option<Option<MoneyJson>>,
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub brand: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub category_id: Option<Option<Uuid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
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
    /// The author erased their account: show the review as by "a former customer" (`user_id`
    /// is then a random id, linked to no one).
    #[serde(default)]
    pub former_customer: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// 1 to 5 stars.
    pub rating: i64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Moderation: hide a review (excluded from aggregates) or show it again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerationInput {
    pub status: ReviewStatus,
}

/// Why a product is recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationReason {
    /// Customers who bought the product(s) asked about also bought this one.
    BoughtTogether,
    /// Too little order history: a product of the same category or with shared attributes.
    Related,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub reason: RecommendationReason,
    pub product: ProductView,
}

/// Active, in-stock products: bought together first (recency-weighted), then related ones.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecommendationList {
    pub items: Vec<Recommendation>,
}

/// An exchange rate as an admin sets it. The rate is a decimal string ("1.0856"), never a JSON
/// number: a float could not carry it exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    /// Units of this currency per unit of the shop's currency, at most 6 decimals.
    #[schema(example = "1.0856")]
    pub rate: Option<String>,
    /// The day the rate is for (`YYYY-MM-DD`), not in the future.
    #[schema(example = "2026-12-03")]
    pub as_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateView {
    #[schema(example = "USD")]
    pub currency: String,
    /// Units of `currency` per unit of the shop's currency (`base`).
    #[schema(example = "1.0856")]
    pub rate: String,
    #[schema(example = "2026-12-03")]
    pub as_of: String,
}

/// The display currencies: prices are in `base`; each rate converts them for display. Amounts
/// are converted in integer minor units, rounded half away from zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RatesView {
    #[schema(example = "EUR")]
    pub base: String,
    pub rates: Vec<RateView>,
}
