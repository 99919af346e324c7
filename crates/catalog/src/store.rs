//! Catalog's storage port: one trait, one SQL implementation generic over the backend
//! (`store::sql`), with the full-text dialect (FTS5 or tsvector) chosen per backend.

pub mod sql;

/// The store on `db`, whichever backend it is: how every caller gets one.
pub fn open(db: &platform::db::Db) -> std::sync::Arc<dyn CatalogStore> {
    use std::sync::Arc;
    match db {
        platform::db::Db::Sqlite(pool) => {
            Arc::new(sql::SqlStore::<sqlx::Sqlite>::new(pool.clone(), sql::Dialect::Sqlite))
        }
        platform::db::Db::Postgres(pool) => Arc::new(sql::SqlStore::<sqlx::Postgres>::new(
            pool.clone(),
            sql::Dialect::Postgres,
        )),
    }
}

use std::collections::{BTreeMap, HashMap};

use platform::events::Event;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    BoughtTogether, CategoryId, Currency, ListCursor, Money, ProductId, ProductSort, ProductStatus, RatingSummary,
    ReviewId, ReviewStatus, SearchTerms,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a live product already has this SKU")]
    DuplicateSku,
    #[error("this slug is taken")]
    DuplicateSlug,
    #[error("this user has already reviewed this product")]
    DuplicateReview,
    #[error("the record was changed by someone else")]
    VersionMismatch,
    #[error("no such record")]
    NotFound,
    #[error("the category does not exist")]
    UnknownCategory,
    #[error("the category still has {products} product(s) and {children} subcategorie(s)")]
    CategoryNotEmpty { products: i64, children: i64 },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub id: CategoryId,
    pub parent_id: Option<CategoryId>,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub status: ProductStatus,
    pub price: Money,
    /// Same currency as `price`, greater than it.
    pub compare_at: Option<i64>,
    pub brand: Option<String>,
    pub category_id: Option<CategoryId>,
    pub attributes: BTreeMap<String, String>,
    pub images: Vec<String>,
    pub rating: RatingSummary,
    /// Units available to sell, from inventory's stock events.
    pub available: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub id: ReviewId,
    pub product_id: ProductId,
    pub user_id: Uuid,
    pub rating: i64,
    pub title: String,
    pub body: String,
    pub status: ReviewStatus,
    pub verified_purchase: bool,
    /// The author erased their account: the review is no longer linked to them.
    pub author_erased: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Which products a list, count or facet query covers.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Empty means every status.
    pub statuses: Vec<ProductStatus>,
    /// A category and its descendants, resolved by the caller.
    pub category_ids: Option<Vec<CategoryId>>,
    pub brands: Vec<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// `(key, lower-case value)`; values of one key are alternatives, keys must all match.
    pub attributes: Vec<(String, String)>,
    /// Minimum average rating times 100.
    pub min_rating_score: Option<i64>,
    pub in_stock: bool,
    pub search: Option<SearchTerms>,
}

#[derive(Debug, Clone)]
pub struct ProductQuery {
    pub filter: ProductFilter,
    pub sort: ProductSort,
    pub after: Option<ListCursor>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    pub categories: Vec<(Option<CategoryId>, i64)>,
    pub brands: Vec<(Option<String>, i64)>,
    /// One count per [`crate::domain::PRICE_BUCKETS`] entry.
    pub price_buckets: Vec<i64>,
}

/// A name offered while typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub id: ProductId,
    pub name: String,
    pub slug: String,
}

/// Product rows, their attributes, reviews and events to insert in one transaction (seeding).
#[derive(Debug, Default)]
pub struct SeedBatch {
    pub products: Vec<Product>,
    pub reviews: Vec<Review>,
    pub events: Vec<Event>,
}

/// What a stock update changed, so the caller can invalidate caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockChange {
    pub id: ProductId,
    pub slug: String,
}

#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    // ---- categories
    async fn categories(&self) -> StoreResult<Vec<Category>>;
    async fn category(&self, id: CategoryId) -> StoreResult<Option<Category>>;
    /// Live, active products per category (directly in it).
    async fn category_product_counts(&self) -> StoreResult<HashMap<CategoryId, i64>>;
    async fn insert_category(&self, category: &Category) -> StoreResult<()>;
    /// Writes name, slug, description and parent; with `expected_version`, only if it matches.
    async fn update_category(&self, category: &Category, expected_version: Option<i64>) -> StoreResult<Category>;
    /// Deletes an empty category, or with `reassign_to` first moves its live products and
    /// subcategories there. Returns the ids of the products moved.
    async fn delete_category(
        &self,
        id: CategoryId,
        reassign_to: Option<CategoryId>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(ProductId, String)>>;

    // ---- products
    async fn insert_product(&self, product: &Product, events: &[Event]) -> StoreResult<()>;
    /// A live (not deleted) product.
    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>>;
    async fn product_by_slug(&self, slug: &str) -> StoreResult<Option<Product>>;
    /// Writes every editable field of `product`, bumping its version, and enqueues `events`.
    async fn update_product(
        &self,
        product: &Product,
        expected_version: Option<i64>,
        events: &[Event],
    ) -> StoreResult<Product>;
    /// Soft delete; enqueues `events`.
    async fn delete_product(
        &self,
        id: ProductId,
        expected_version: Option<i64>,
        now: OffsetDateTime,
        events: &[Event],
    ) -> StoreResult<Product>;
    /// `limit + 1` rows at most, so the caller can tell whether another page exists.
    async fn list_products(&self, query: &ProductQuery) -> StoreResult<Vec<Product>>;
    async fn count_products(&self, filter: &ProductFilter) -> StoreResult<i64>;
    /// One page as [`Self::list_products`] gives it, with [`Self::count_products`] of its filter;
    /// a backend may find both in one pass.
    async fn product_page(&self, query: &ProductQuery) -> StoreResult<(Vec<Product>, i64)>;
    async fn facets(&self, filter: &ProductFilter) -> StoreResult<Facets>;
    async fn suggest(&self, terms: &SearchTerms, limit: u32) -> StoreResult<Vec<Suggestion>>;
    /// Every word of product names and brands, with how many products use each (the words a
    /// misspelled one is corrected to; the caller keeps them in memory).
    async fn vocabulary(&self) -> StoreResult<Vec<(String, i64)>>;
    /// Active products in the same category, then ones sharing attribute values.
    async fn related(&self, product: &Product, limit: u32) -> StoreResult<Vec<Product>>;
    /// Live products of every status.
    async fn product_count(&self) -> StoreResult<i64>;
    /// Sets `available` (not the editorial version) for the live product with `sku` unless an event at least as new was
    /// applied already (idempotent, order-tolerant). `None` when nothing changed.
    async fn set_available(&self, sku: &str, available: i64, event_id: Uuid) -> StoreResult<Option<StockChange>>;

    /// Live products with any of `skus` (every status).
    async fn products_by_skus(&self, skus: &[String]) -> StoreResult<Vec<Product>>;

    // ---- purchases (from ordering's delivered orders)
    /// Records that `user` bought the live products with `skus` and marks their existing
    /// reviews as verified, in one transaction. Idempotent. Returns the products recorded.
    /// A review inserted at the same moment is never missed: both lock the product's row.
    async fn record_purchases(&self, user: Uuid, skus: &[String]) -> StoreResult<u64>;

    // ---- co-purchases (from ordering's confirmed orders)
    /// Adds `weight` to every pair of `products` for order `order`, once per order: `false`
    /// when the order was counted already (events arrive at least once).
    async fn record_co_purchase(
        &self,
        order: Uuid,
        products: &BoughtTogether,
        weight: f64,
        at: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Active, in-stock, live products bought together with any of `products` (not those
    /// themselves), most weight first, at most `limit`.
    async fn bought_with(&self, products: &[ProductId], limit: u32) -> StoreResult<Vec<Product>>;

    // ---- exchange rates (display currencies)
    /// Every stored rate, by currency code.
    async fn rates(&self) -> StoreResult<Vec<crate::rates::Rate>>;
    /// Inserts or replaces each rate, all in one transaction.
    async fn put_rates(&self, rates: &[crate::rates::Rate], source: &str, now: OffsetDateTime) -> StoreResult<()>;
    /// `false` when there was no rate for `currency`.
    async fn delete_rate(&self, currency: Currency) -> StoreResult<bool>;

    // ---- reviews (each write recomputes the product's aggregates in the same transaction)
    /// Inserts `review` and answers whether it is a verified purchase. The store decides that,
    /// not `review.verified_purchase`: from the purchases recorded, after taking the product's
    /// lock, so a purchase recorded at the same moment is not missed.
    async fn insert_review(&self, review: &Review, now: OffsetDateTime) -> StoreResult<bool>;
    async fn review(&self, id: ReviewId) -> StoreResult<Option<Review>>;
    async fn update_review(&self, review: &Review, now: OffsetDateTime) -> StoreResult<()>;
    async fn delete_review(&self, review: &Review, now: OffsetDateTime) -> StoreResult<()>;
    /// In id order after `after`; hidden reviews only when `include_hidden`.
    async fn list_reviews(
        &self,
        product: ProductId,
        include_hidden: bool,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Review>>;

    // ---- seeding
    async fn insert_seed_batch(&self, batch: &SeedBatch) -> StoreResult<()>;
    /// After a bulk load whose events have all been handled: compacts the full-text index and
    /// refreshes the statistics, so the first searches do not pay for it.
    async fn settle_after_bulk_load(&self) -> StoreResult<()>;
    /// Refreshes the planner's statistics (after bulk loads, so facets use covering indexes).
    async fn analyze(&self) -> StoreResult<()>;
}
