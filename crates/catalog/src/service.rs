//! Catalog use cases: validation through the domain rules, storage, the read-through cache and
//! the events written to the outbox with each change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use contracts::events::catalog as events;
use platform::auth::AuthUser;
use platform::cache::Cache;
use platform::events::{Event, Outbox};
use platform::{FieldError, Problem};
use uuid::Uuid;

use crate::CatalogConfig;
use crate::domain::{
    self, CategoryId, Currency, ListCursor, MAX_BRAND_LEN, MAX_DESCRIPTION_LEN, MAX_NAME_LEN, MAX_REVIEW_BODY_LEN,
    MAX_REVIEW_TITLE_LEN, Money, PRICE_BUCKETS, ProductId, ProductSort, ProductStatus, ReviewId, ReviewStatus,
    SearchTerms, Vocabulary,
};
use crate::params::ListParams;
use crate::rendered::Rendered;
use crate::store::{CatalogStore, Category, Product, ProductFilter, ProductQuery, Review, StoreError};
use crate::views::{
    BrandCount, Breadcrumb, CategoryCount, CategoryDetail, CategoryInput, CategoryNode, CategoryPatch, CategoryTree,
    FacetsView, PriceBucket, ProductInput, ProductList, ProductPage, ProductPatch, ProductView, RateInput, RateView,
    RatesView, Recommendation, RecommendationList, RecommendationReason, ReviewInput, ReviewPatch, ReviewView,
    SuggestionView, Suggestions,
};

/// Roles that manage products and categories.
pub const STAFF_ROLES: &[&str] = &["admin", "catalog_manager"];
/// Roles that moderate reviews.
pub const MODERATOR_ROLES: &[&str] = &["admin", "support"];
/// The cache generation every list, search, facet and category page is keyed by.
const GENERATION: &str = "products";
pub const DEFAULT_PAGE: u32 = 20;
/// A search finding fewer products than this also tries the words corrected for typos.
const FEW_RESULTS: i64 = 3;

pub fn describe_metrics() {
    metrics::describe_counter!("catalog_products_created_total", "Products created (API and seeding)");
    metrics::describe_counter!("catalog_search_queries_total", "Search and suggest queries served");
    metrics::describe_counter!("catalog_cache_hits_total", "Catalog reads answered from the cache");
    metrics::describe_counter!(
        "catalog_co_purchase_orders_total",
        "Confirmed orders added to the co-purchase read model (each order once)"
    );
    metrics::describe_counter!(
        "catalog_search_top_ranked_total",
        "SQLite relevance searches answered from the best-ranked candidates (settled=yes) or handed to the full ranking (settled=no)"
    );
}

pub use contracts::api::catalog::{MAX_SKU_LOOKUP, SkuLookup};

/// Pages (lists, searches, facets) have no version, and each is built for its viewer.
fn page_head<T>(_: &T) -> (i64, bool) {
    (0, true)
}

/// Who is asking, as far as visibility goes.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: Option<AuthUser>,
}

impl Viewer {
    pub fn is_staff(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| STAFF_ROLES.iter().any(|r| u.has_role(r)))
    }

    pub fn is_moderator(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| MODERATOR_ROLES.iter().any(|r| u.has_role(r)))
    }
}

pub struct CatalogService {
    store: Arc<dyn CatalogStore>,
    cache: Cache,
    outbox: Option<Outbox>,
    config: CatalogConfig,
    faults: platform::faults::Faults,
    loading: Loading,
    words: Words,
    /// `catalog_cache_hits_total`, registered once rather than looked up per hit.
    cache_hits: metrics::Counter,
    /// Products whose stock moved since the last page refresh (see [`CatalogService::stock_moved`]),
    /// and whether that refresh is scheduled.
    stock_moves: Arc<StockMoves>,
}

#[derive(Default)]
struct StockMoves {
    refresh_due: std::sync::atomic::AtomicBool,
    products: std::sync::Mutex<Vec<(ProductId, String)>>,
}

/// The catalog's words for correcting typos (see [`CatalogService::corrected`]): read in full
/// once, then again in the background when a search needs them and they are over a minute old,
/// so no search waits for the read (at 100k products 60 ms on SQLite, 140 ms on PostgreSQL) but
/// the first one of this process.
#[derive(Clone, Default)]
struct Words {
    loaded: Arc<tokio::sync::Mutex<Option<LoadedWords>>>,
}

/// The word list and when it was last (re)loaded or claimed for a reload.
type LoadedWords = (std::time::Instant, Arc<Vocabulary>);

/// How old the word list may grow before a search reloads it (a word new to the catalog is
/// offered as a correction within about this long).
const WORDS_MAX_AGE: Duration = Duration::from_secs(60);

impl Words {
    async fn get(&self, store: &Arc<dyn CatalogStore>) -> Result<Arc<Vocabulary>, StoreError> {
        let mut loaded = self.loaded.lock().await;
        match &mut *loaded {
            None => {
                let words = Arc::new(Vocabulary::new(store.vocabulary().await?));
                *loaded = Some((std::time::Instant::now(), words.clone()));
                Ok(words)
            }
            Some((at, words)) => {
                if at.elapsed() > WORDS_MAX_AGE {
                    // Claimed now, so one reload runs however many searches see the list stale.
                    *at = std::time::Instant::now();
                    let (store, slot) = (store.clone(), self.loaded.clone());
                    tokio::spawn(async move {
                        match store.vocabulary().await {
                            Ok(list) => {
                                let fresh = Arc::new(Vocabulary::new(list));
                                if let Some((_, words)) = &mut *slot.lock().await {
                                    *words = fresh;
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "reloading the search words failed; retrying in a minute")
                            }
                        }
                    });
                }
                Ok(words.clone())
            }
        }
    }
}

/// Rendered reads being loaded after a miss, by cache key and generation. When a popular page's
/// entry lapses every connection misses it at once; they wait for the first load instead of each
/// running the same query (on PostgreSQL 32 concurrent list queries made p99 at half rate 23-27 ms
/// against 1.7 ms for a product read). Keyed by generation too, so a read that starts after a
/// write never waits for a load that began before it.
type Loading = Arc<Mutex<HashMap<(String, u64), Arc<tokio::sync::OnceCell<Rendered>>>>>;

/// Removes its flight from [`Loading`] when the loader is done or dropped (a client that went
/// away), so a finished load is never served from the map, only from the cache.
struct Flight {
    loading: Loading,
    key: (String, u64),
    cell: Arc<tokio::sync::OnceCell<Rendered>>,
}

impl Flight {
    /// Starts the flight for `key`, unless one is already running (`None`).
    fn lead(loading: &Loading, key: (String, u64)) -> Option<Self> {
        let cell = match loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
        {
            std::collections::hash_map::Entry::Occupied(_) => return None,
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(Arc::default()).clone(),
        };
        Some(Self {
            loading: loading.clone(),
            key,
            cell,
        })
    }

    fn join(loading: &Loading, key: (String, u64)) -> Self {
        let cell = loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        Self {
            loading: loading.clone(),
            key,
            cell,
        }
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut map = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|cell| Arc::ptr_eq(cell, &self.cell)) {
            map.remove(&self.key);
        }
    }
}

/// A price as catalog's events carry it.
pub(crate) fn event_price(m: &Money) -> events::Price {
    events::Price {
        amount: m.amount,
        currency: m.currency.to_string(),
    }
}

impl CatalogService {
    pub fn new(store: Arc<dyn CatalogStore>, cache: Cache, outbox: Option<Outbox>, config: CatalogConfig) -> Self {
        Self {
            store,
            cache,
            outbox,
            config,
            faults: platform::faults::Faults::disabled(),
            loading: Loading::default(),
            words: Words::default(),
            cache_hits: metrics::counter!("catalog_cache_hits_total"),
            stock_moves: Arc::default(),
        }
    }

    /// The same service, obeying the `catalog_latency` fault flag of `faults`.
    #[must_use]
    pub fn with_faults(mut self, faults: platform::faults::Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Injected latency: reads of the one product the `catalog_latency` flag names wait first.
    async fn injected_latency(&self, view: &ProductView) {
        let id = view.id.to_string();
        if let Some(delay) = self.faults.catalog_latency_for(&[&id, &view.slug, &view.sku]) {
            tokio::time::sleep(delay).await;
        }
    }

    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.store
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    fn ttl(&self) -> Duration {
        self.config.cache_ttl
    }

    fn notify(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.notify();
        }
    }

    /// After any write: product keys go, every list/search page with them (generation bump).
    pub async fn invalidate(&self, product: Option<ProductId>, slugs: &[&str]) {
        // Bump first: a read that loaded before the write then either stores before these
        // deletes or sees the bump and stores nothing (`Cache::set_bytes_at_generation`).
        self.cache.bump_generation(GENERATION).await;
        if let Some(id) = product {
            self.cache.delete(&product_key(id)).await;
        }
        for slug in slugs {
            self.cache.delete(&slug_key(slug)).await;
        }
    }

    /// After a product's stock level moved. A product that came into or went out of stock is
    /// invalidated like any write: the `in_stock` filter and facets depend on it. Otherwise the
    /// product's own keys go at once, and the pages showing its count within `page_stock_lag`,
    /// one generation bump for every move in that time: under steady orders, a bump per
    /// reservation would leave no list or search page cached.
    pub async fn stock_moved(&self, product: ProductId, slug: &str, crossed_in_stock: bool) {
        use std::sync::atomic::Ordering;
        let lag = self.config.page_stock_lag;
        if crossed_in_stock || lag.is_zero() {
            return self.invalidate(Some(product), &[slug]).await;
        }
        forget_product(&self.cache, product, slug).await;
        let moves = &self.stock_moves;
        moves
            .products
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((product, slug.to_owned()));
        if moves.refresh_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cache, moves) = (self.cache.clone(), moves.clone());
        tokio::spawn(async move {
            tokio::time::sleep(lag).await;
            // Cleared first: a move from here on schedules the next refresh.
            moves.refresh_due.store(false, Ordering::Release);
            let products =
                std::mem::take(&mut *moves.products.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            cache.bump_generation(GENERATION).await;
            // Again after the bump: a read that loaded a product before its move and stored it
            // after the first delete is gone now; one storing later is refused by the bump.
            for (product, slug) in products {
                forget_product(&cache, product, &slug).await;
            }
        });
    }

    async fn cached<T, F, Fut>(&self, key: String, load: F) -> Result<T, Problem>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, Problem>>,
    {
        if self.ttl().is_zero() {
            return load().await;
        }
        if let Some(hit) = self.cache.get_json::<T>(&key).await {
            self.cache_hits.increment(1);
            return Ok(hit);
        }
        let generation = self.cache.generation(GENERATION).await;
        let value = load().await?;
        if let Ok(bytes) = serde_json::to_vec(&value) {
            self.cache
                .set_bytes_at_generation(&key, bytes.into(), self.ttl(), GENERATION, generation)
                .await;
        }
        Ok(value)
    }

    /// A read the API sends as it is: cached rendered ([`Rendered`]), so a hit costs no JSON
    /// work. `head` says the value's version and whether it is public.
    async fn rendered<T, F, Fut>(&self, key: String, head: fn(&T) -> (i64, bool), load: F) -> Result<Rendered, Problem>
    where
        T: serde::Serialize,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, Problem>>,
    {
        let render = |value: &T| {
            let (version, public) = head(value);
            Rendered::of(value, version, public)
        };
        if self.ttl().is_zero() {
            return render(&load().await?);
        }
        let stale = match self.cache.get_as(&key, Rendered::from_entry).await {
            Some((hit, fresh_until_ms)) if platform::clock::unix_ms(platform::clock::now()) < fresh_until_ms => {
                self.cache_hits.increment(1);
                return Ok(hit);
            }
            stale => stale.map(|(page, _)| page),
        };
        let generation = self.cache.generation(GENERATION).await;
        // An expired page is served as it is while one reader reloads it, so a page that is slow
        // to load (a search on PostgreSQL) holds up that reader only, not every reader of it.
        let flight = match stale {
            Some(ref page) => match Flight::lead(&self.loading, (key, generation)) {
                Some(flight) => flight,
                None => {
                    self.cache_hits.increment(1);
                    return Ok(page.clone());
                }
            },
            None => Flight::join(&self.loading, (key, generation)),
        };
        // A waiter whose loader failed or went away loads itself (OnceCell hands it the init).
        let loaded = flight
            .cell
            .get_or_try_init(|| async {
                let rendered = render(&load().await?)?;
                let ttl_ms = i64::try_from(self.ttl().as_millis()).unwrap_or(i64::MAX);
                let fresh_until_ms = platform::clock::unix_ms(platform::clock::now()).saturating_add(ttl_ms);
                // Kept for another TTL after it expires, to be served while one reader reloads
                // it; a reader finding it expired and no reload running reloads it. Not kept at
                // all when a write landed while it loaded.
                let kept = self.ttl().saturating_mul(2);
                let entry = rendered.to_entry(fresh_until_ms);
                self.cache
                    .set_bytes_at_generation(&flight.key.0, entry, kept, GENERATION, generation)
                    .await;
                Ok::<_, Problem>(rendered)
            })
            .await;
        match (loaded, stale) {
            (Ok(rendered), _) => Ok(rendered.clone()),
            // The reload failed (the database is down): the expired page beats an error.
            (Err(e), Some(page)) if e.status.is_server_error() => Ok(page),
            (Err(e), _) => Err(e),
        }
    }

    async fn generation_key(&self, kind: &str, rest: &str) -> String {
        let generation = self.cache.generation(GENERATION).await.to_string();
        let mut key = String::with_capacity(kind.len() + generation.len() + rest.len() + 2);
        key.push_str(kind);
        key.push(':');
        key.push_str(&generation);
        key.push(':');
        key.push_str(rest);
        key
    }

    // ---- products: reads --------------------------------------------------------------------

    /// A product as its viewer may see it (drafts and archived ones: staff only), after the
    /// injected latency if the `catalog_latency` flag names it.
    async fn shown(&self, product: Rendered, viewer: &Viewer) -> Result<Rendered, Problem> {
        if self.faults.catalog_latency_on() {
            self.injected_latency(&product.decode()?).await;
        }
        if product.public || viewer.is_staff() {
            Ok(product)
        } else {
            Err(Problem::not_found("no such product"))
        }
    }

    /// A product's version and whether anyone may see it.
    fn product_head(view: &ProductView) -> (i64, bool) {
        (view.version, view.status == ProductStatus::Active)
    }

    /// One product, rendered (decode it for the typed view).
    pub async fn product(&self, id: ProductId, viewer: &Viewer) -> Result<Rendered, Problem> {
        let product = self
            .rendered(product_key(id), Self::product_head, || async {
                let p = self
                    .store
                    .product(id)
                    .await?
                    .ok_or_else(|| Problem::not_found("no such product"))?;
                Ok(ProductView::from(&p))
            })
            .await?;
        self.shown(product, viewer).await
    }

    /// Products by SKU for carts and orders: 1..=100 SKUs (normalised, duplicates ignored).
    /// Only active products are returned (staff also see others); the rest are `missing`.
    pub async fn products_by_sku(&self, skus: &[String], viewer: &Viewer) -> Result<SkuLookup, Problem> {
        if skus.is_empty() || skus.len() > MAX_SKU_LOOKUP {
            return Err(Problem::invalid_field(
                "sku",
                format!("give 1 to {MAX_SKU_LOOKUP} SKUs (repeat the parameter)"),
            ));
        }
        let mut wanted: Vec<String> = Vec::with_capacity(skus.len());
        for (i, raw) in skus.iter().enumerate() {
            let sku = domain::normalise_sku(raw).map_err(|m| Problem::invalid_field(format!("sku[{i}]"), m))?;
            if !wanted.contains(&sku) {
                wanted.push(sku);
            }
        }
        let found = self.store.products_by_skus(&wanted).await?;
        let items: Vec<ProductView> = found
            .iter()
            .filter(|p| p.status == ProductStatus::Active || viewer.is_staff())
            .map(ProductView::from)
            .collect();
        let missing = wanted
            .into_iter()
            .filter(|sku| !items.iter().any(|p| &p.sku == sku))
            .collect();
        Ok(SkuLookup { items, missing })
    }

    /// Records a delivered order's products as bought by `user` (verified purchase on reviews).
    pub async fn record_purchases(&self, user: uuid::Uuid, skus: &[String]) -> anyhow::Result<u64> {
        let skus: Vec<String> = skus.iter().filter_map(|s| domain::normalise_sku(s).ok()).collect();
        let recorded = self.store.record_purchases(user, &skus).await?;
        // Review lists show the flag: drop cached pages.
        self.invalidate(None, &[]).await;
        Ok(recorded)
    }

    /// One product by slug, rendered.
    pub async fn product_by_slug(&self, slug: &str, viewer: &Viewer) -> Result<Rendered, Problem> {
        if domain::validate_slug(slug).is_err() {
            return Err(Problem::not_found("no such product"));
        }
        let product = self
            .rendered(slug_key(slug), Self::product_head, || async {
                let p = self
                    .store
                    .product_by_slug(slug)
                    .await?
                    .ok_or_else(|| Problem::not_found("no such product"))?;
                Ok(ProductView::from(&p))
            })
            .await?;
        self.shown(product, viewer).await
    }

    async fn category_parents(&self) -> Result<HashMap<CategoryId, Option<CategoryId>>, Problem> {
        Ok(self
            .store
            .categories()
            .await?
            .into_iter()
            .map(|c| (c.id, c.parent_id))
            .collect())
    }

    /// Turns query parameters into a store filter, resolving the category's descendants.
    async fn filter(&self, params: &ListParams, viewer: &Viewer, search: bool) -> Result<ProductFilter, Problem> {
        let statuses = match params.status.as_deref() {
            None | Some("active") => vec![ProductStatus::Active],
            Some(_) if !viewer.is_staff() => {
                return Err(Problem::forbidden(
                    "only admin or catalog_manager may list products that are not active",
                ));
            }
            Some("all") => Vec::new(),
            Some(other) => vec![
                other
                    .parse::<ProductStatus>()
                    .map_err(|m| Problem::invalid_field("status", m))?,
            ],
        };
        let category_ids = match params.category {
            None => None,
            Some(c) => {
                let parents = self.category_parents().await?;
                if !parents.contains_key(&c) {
                    return Err(Problem::invalid_field("category", "no such category"));
                }
                Some(domain::descendants(&parents, c))
            }
        };
        let search_terms = match (&params.q, search) {
            (Some(q), _) => Some(SearchTerms::parse("q", q)?),
            (None, true) => return Err(Problem::invalid_field("q", "is required")),
            (None, false) => None,
        };
        Ok(ProductFilter {
            statuses,
            category_ids,
            brands: params.brands.clone(),
            min_price: params.min_price,
            max_price: params.max_price,
            attributes: params.attributes.clone(),
            min_rating_score: params.min_rating_score,
            in_stock: params.in_stock,
            search: search_terms,
        })
    }

    /// Lists (or, with `search`, searches) products, cached per generation; a rendered
    /// [`ProductPage`].
    pub async fn list(&self, params: &ListParams, viewer: &Viewer, search: bool) -> Result<Rendered, Problem> {
        let filter = self.filter(params, viewer, search).await?;
        let sort = match (params.sort, filter.search.is_some()) {
            (Some(ProductSort::Relevance), false) => {
                return Err(Problem::invalid_field("sort", "relevance needs a search query q"));
            }
            (Some(s), _) => s,
            (None, true) => ProductSort::Relevance,
            (None, false) => ProductSort::Newest,
        };
        let after = params
            .cursor
            .as_deref()
            .map(|c| ListCursor::decode(c, sort))
            .transpose()?;
        let limit = params.limit.unwrap_or(DEFAULT_PAGE);
        if filter.search.is_some() {
            metrics::counter!("catalog_search_queries_total", "kind" => "search").increment(1);
        }
        let mut rest = params.cache_key();
        rest.push_str(if search { "|search" } else { "|list" });
        rest.push_str(if viewer.is_staff() { "|staff" } else { "|shopper" });
        let key = self.generation_key("list", &rest).await;
        self.rendered(key, page_head, || async {
            let query = ProductQuery {
                filter,
                sort,
                after,
                limit,
            };
            let (mut rows, mut total) = self.store.product_page(&query).await?;
            // Few results for the words as typed: the closest catalog words may be meant.
            let mut did_you_mean = None;
            if let Some(terms) = query.filter.search.as_ref()
                && query.after.is_none()
                && total < FEW_RESULTS
                && let Some(fixed) = self.corrected(terms).await?
            {
                let mut corrected = query.clone();
                corrected.filter.search = Some(fixed.clone());
                let (more, more_total) = self.store.product_page(&corrected).await?;
                if more_total > 0 {
                    metrics::counter!("catalog_search_corrections_total").increment(1);
                    did_you_mean = Some(fixed.text());
                    let shown: std::collections::HashSet<_> = rows.iter().map(|p| p.id).collect();
                    let fetched = more.len();
                    let new: Vec<Product> = more.into_iter().filter(|p| !shown.contains(&p.id)).collect();
                    total += more_total - i64::try_from(fetched - new.len()).unwrap_or(0);
                    rows.extend(new);
                }
            }
            let next = if did_you_mean.is_some() {
                // One page of exact matches then corrected ones: searching the correction pages on.
                rows.truncate(limit as usize);
                None
            } else if rows.len() > limit as usize {
                rows.truncate(limit as usize);
                rows.last().map(|last| {
                    let key = match sort {
                        ProductSort::Newest => 0,
                        ProductSort::PriceAsc | ProductSort::PriceDesc => last.price.amount,
                        ProductSort::Rating => last.rating.score(),
                        ProductSort::Relevance => after.map_or(0, |a| a.key) + i64::from(limit),
                    };
                    ListCursor {
                        sort,
                        key,
                        id: last.id.0,
                    }
                    .encode()
                })
            } else {
                None
            };
            Ok(ProductPage {
                items: rows.iter().map(ProductView::from).collect(),
                total,
                next,
                did_you_mean,
            })
        })
        .await
    }

    /// Facet counts for a list's filters; a rendered [`FacetsView`].
    pub async fn facets(&self, params: &ListParams, viewer: &Viewer) -> Result<Rendered, Problem> {
        let filter = self.filter(params, viewer, false).await?;
        let mut rest = params.cache_key();
        rest.push_str(if viewer.is_staff() { "|staff" } else { "|shopper" });
        let key = self.generation_key("facets", &rest).await;
        let currency = self.config.default_currency;
        self.rendered(key, page_head, || async {
            let facets = self.store.facets(&filter).await?;
            let total = self.store.count_products(&filter).await?;
            let names: HashMap<CategoryId, String> = self
                .store
                .categories()
                .await?
                .into_iter()
                .map(|c| (c.id, c.name))
                .collect();
            Ok(FacetsView {
                total,
                categories: facets
                    .categories
                    .into_iter()
                    .map(|(id, count)| CategoryCount {
                        category_id: id.map(|c| c.0),
                        name: id.and_then(|c| names.get(&c).cloned()),
                        count,
                    })
                    .collect(),
                brands: facets
                    .brands
                    .into_iter()
                    .map(|(brand, count)| BrandCount { brand, count })
                    .collect(),
                price_buckets: PRICE_BUCKETS
                    .iter()
                    .zip(facets.price_buckets)
                    .map(|((min, max), count)| {
                        let money = |amount| platform::money::MoneyView::new(amount, currency.to_string());
                        PriceBucket {
                            min: money(*min),
                            max: max.map(money),
                            count,
                        }
                    })
                    .collect(),
            })
        })
        .await
    }

    /// The terms with each misspelled word replaced by the closest catalog word, when any is.
    async fn corrected(&self, terms: &SearchTerms) -> Result<Option<SearchTerms>, StoreError> {
        if terms.terms().iter().all(|w| domain::typo_budget(w) == 0) {
            return Ok(None);
        }
        let words = self.words.get(&self.store).await?;
        let mut fixes = HashMap::new();
        for word in terms.terms() {
            if let Some(fix) = words.closest(word) {
                fixes.insert(word.clone(), fix.to_owned());
            }
        }
        Ok(terms.corrected(|w| fixes.get(w).cloned()))
    }

    pub async fn suggest(&self, q: &str, limit: Option<u32>) -> Result<Suggestions, Problem> {
        let terms = SearchTerms::parse("q", q)?;
        let limit = limit.unwrap_or(10);
        if !(1..=10).contains(&limit) {
            return Err(Problem::invalid_field("limit", "must be between 1 and 10"));
        }
        metrics::counter!("catalog_search_queries_total", "kind" => "suggest").increment(1);
        let key = self
            .generation_key("suggest", &format!("{limit}|{}", terms.terms().join(" ")))
            .await;
        self.cached(key, || async {
            let mut rows = self.store.suggest(&terms, limit).await?;
            if rows.is_empty()
                && let Some(fixed) = self.corrected(&terms).await?
            {
                rows = self.store.suggest(&fixed, limit).await?;
            }
            Ok(Suggestions {
                items: rows
                    .into_iter()
                    .map(|s| SuggestionView {
                        id: s.id.0,
                        name: s.name,
                        slug: s.slug,
                    })
                    .collect(),
            })
        })
        .await
    }

    pub async fn related(&self, id: ProductId, limit: Option<u32>, viewer: &Viewer) -> Result<ProductList, Problem> {
        let limit = suggestion_limit(limit)?;
        self.product(id, viewer).await?;
        let key = self.generation_key("related", &format!("{id}|{limit}")).await;
        self.cached(key, || async {
            let product = self
                .store
                .product(id)
                .await?
                .ok_or_else(|| Problem::not_found("no such product"))?;
            let rows = self.store.related(&product, limit).await?;
            Ok(ProductList {
                items: rows.iter().map(ProductView::from).collect(),
            })
        })
        .await
    }

    /// "Customers who bought this also bought", filled up with related products when the order
    /// history is thin. Active, in-stock products only. Cached like the other reads (up to the
    /// cache TTL behind the newest orders).
    pub async fn recommendations(
        &self,
        id: ProductId,
        limit: Option<u32>,
        viewer: &Viewer,
    ) -> Result<RecommendationList, Problem> {
        let limit = suggestion_limit(limit)?;
        self.product(id, viewer).await?;
        let key = self.generation_key("recommend", &format!("{id}|{limit}")).await;
        self.cached(key, || self.recommend(vec![id], limit)).await
    }

    /// Recommendations for a cart: what was bought with any of `ids` (1 to 50 products), none of
    /// `ids` themselves.
    pub async fn recommendations_for(
        &self,
        ids: Vec<ProductId>,
        limit: Option<u32>,
    ) -> Result<RecommendationList, Problem> {
        let limit = suggestion_limit(limit)?;
        let mut ids = ids;
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() || ids.len() > 50 {
            return Err(Problem::invalid_field("products", "must name 1 to 50 product ids"));
        }
        let rest = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let key = self.generation_key("recommend-for", &format!("{rest}|{limit}")).await;
        self.cached(key, || self.recommend(ids, limit)).await
    }

    async fn recommend(&self, ids: Vec<ProductId>, limit: u32) -> Result<RecommendationList, Problem> {
        let wanted = limit as usize;
        let mut items: Vec<Recommendation> = self
            .store
            .bought_with(&ids, limit)
            .await?
            .iter()
            .map(|p| Recommendation {
                reason: RecommendationReason::BoughtTogether,
                product: ProductView::from(p),
            })
            .collect();
        // Thin history: related products of each asked-about product in turn, in stock only.
        for id in &ids {
            if items.len() >= wanted {
                break;
            }
            let Some(product) = self.store.product(*id).await? else {
                continue;
            };
            for p in self.store.related(&product, limit.saturating_mul(2)).await? {
                let taken = ids.contains(&p.id) || items.iter().any(|r| r.product.id == p.id.0);
                if items.len() < wanted && p.available > 0 && !taken {
                    items.push(Recommendation {
                        reason: RecommendationReason::Related,
                        product: ProductView::from(&p),
                    });
                }
            }
        }
        Ok(RecommendationList { items })
    }

    // ---- display currencies ---------------------------------------------------------------

    /// The shop's currency and every exchange rate for showing prices in others.
    pub async fn rates(&self) -> Result<RatesView, Problem> {
        let key = self.generation_key("rates", "").await;
        self.cached(key, || async {
            Ok(RatesView {
                base: self.config.default_currency.as_str().to_owned(),
                rates: self.store.rates().await?.iter().map(RateView::from).collect(),
            })
        })
        .await
    }

    /// Sets (or replaces) the rate of `currency`.
    pub async fn set_rate(&self, currency: &str, input: &RateInput) -> Result<RateView, Problem> {
        let today = platform::clock::now().date();
        let rate = crate::rates::check_rate(
            currency,
            input.rate.as_deref(),
            input.as_of.as_deref(),
            self.config.default_currency,
            today,
        )
        .map_err(Problem::validation)?;
        self.import_rates(std::slice::from_ref(&rate), "admin").await?;
        Ok(RateView::from(&rate))
    }

    /// Stores `rates` in one transaction (`source`: `admin`, or the file they came from).
    pub async fn import_rates(&self, rates: &[crate::rates::Rate], source: &str) -> Result<(), Problem> {
        self.store.put_rates(rates, source, platform::clock::now()).await?;
        self.invalidate(None, &[]).await;
        Ok(())
    }

    pub async fn delete_rate(&self, currency: &str) -> Result<(), Problem> {
        let currency = Currency::parse(currency).map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
        if !self.store.delete_rate(currency).await? {
            return Err(Problem::not_found(format!("no exchange rate for {currency}")));
        }
        self.invalidate(None, &[]).await;
        Ok(())
    }

    // ---- products: writes -------------------------------------------------------------------

    /// Applies `patch` to `base` (or to an empty product when creating) and checks every rule.
    async fn build_product(&self, base: Option<&Product>, patch: ProductPatch) -> Result<(Product, bool), Problem> {
        let mut errors = Vec::new();
        let now = platform::clock::now();
        let default_currency = self.config.default_currency;

        let sku = match (&patch.sku, base) {
            (Some(s), _) => domain::normalise_sku(s).unwrap_or_else(|m| {
                errors.push(FieldError::new("sku", m));
                String::new()
            }),
            (None, Some(b)) => b.sku.clone(),
            (None, None) => {
                errors.push(FieldError::new("sku", "is required"));
                String::new()
            }
        };
        let name = match (&patch.name, base) {
            (Some(n), _) => domain::required_text("name", n, MAX_NAME_LEN, &mut errors),
            (None, Some(b)) => b.name.clone(),
            (None, None) => {
                errors.push(FieldError::new("name", "is required"));
                String::new()
            }
        };
        let mut slug_generated = false;
        let slug = match (&patch.slug, base) {
            (Some(s), _) => domain::validate_slug(s).unwrap_or_else(|m| {
                errors.push(FieldError::new("slug", m));
                String::new()
            }),
            (None, Some(b)) => b.slug.clone(),
            (None, None) => {
                slug_generated = true;
                let s = domain::slugify(&name);
                if s.is_empty() { sku.to_ascii_lowercase() } else { s }
            }
        };
        let description = match (&patch.description, base) {
            (Some(d), _) => {
                domain::optional_text("description", Some(d), MAX_DESCRIPTION_LEN, &mut errors).unwrap_or_default()
            }
            (None, Some(b)) => b.description.clone(),
            (None, None) => String::new(),
        };
        let status = patch.status.or(base.map(|b| b.status)).unwrap_or(ProductStatus::Draft);
        let price = match (&patch.price, base) {
            (Some(p), _) => domain::parse_money("price", p, default_currency)
                .map_err(|e| errors.extend(e))
                .ok(),
            (None, Some(b)) => Some(b.price),
            (None, None) => {
                errors.push(FieldError::new("price", "is required"));
                None
            }
        };
        let compare_at_json = match (&patch.compare_at_price, base) {
            (Some(c), _) => c.clone(),
            (None, Some(b)) => b.compare_at.map(|amount| domain::MoneyJson {
                amount,
                currency: Some(b.price.currency.to_string()),
            }),
            (None, None) => None,
        };
        let mut compare_at = None;
        if let Some(c) = &compare_at_json {
            let currency = price.map_or(default_currency, |p| p.currency);
            match domain::parse_money("compare_at_price", c, currency) {
                Ok(m) => {
                    if let Some(p) = price {
                        if m.currency != p.currency {
                            errors.push(FieldError::new(
                                "compare_at_price.currency",
                                "must be the currency of price",
                            ));
                        } else if m.amount <= p.amount {
                            errors.push(FieldError::new("compare_at_price.amount", "must be greater than price"));
                        }
                    }
                    compare_at = Some(m.amount);
                }
                Err(e) => errors.extend(e),
            }
        }
        let brand = match (&patch.brand, base) {
            (Some(b), _) => domain::optional_text("brand", b.as_deref(), MAX_BRAND_LEN, &mut errors),
            (None, Some(b)) => b.brand.clone(),
            (None, None) => None,
        };
        let category_id = match (&patch.category_id, base) {
            (Some(c), _) => c.map(CategoryId),
            (None, Some(b)) => b.category_id,
            (None, None) => None,
        };
        if let Some(c) = category_id
            && patch.category_id.is_some()
            && self.store.category(c).await?.is_none()
        {
            errors.push(FieldError::new("category_id", "no such category"));
        }
        let attributes = match (&patch.attributes, base) {
            (Some(a), _) => domain::validate_attributes(a, &mut errors),
            (None, Some(b)) => b.attributes.clone(),
            (None, None) => Default::default(),
        };
        let images = match (&patch.images, base) {
            (Some(i), _) => domain::validate_images(i, &mut errors),
            (None, Some(b)) => b.images.clone(),
            (None, None) => Vec::new(),
        };
        let (Some(price), true) = (price, errors.is_empty()) else {
            return Err(Problem::validation(errors));
        };
        let product = Product {
            id: base.map_or_else(ProductId::new, |b| b.id),
            sku,
            name,
            slug,
            description,
            status,
            price,
            compare_at,
            brand,
            category_id,
            attributes,
            images,
            rating: base.map(|b| b.rating).unwrap_or_default(),
            available: base.map_or(0, |b| b.available),
            created_at: base.map_or(now, |b| b.created_at),
            updated_at: now,
            version: base.map_or(1, |b| b.version),
        };
        Ok((product, slug_generated))
    }

    /// A `catalog.product.created` or `.updated` event about `p`.
    fn product_event<E: contracts::events::Event + From<events::Product>>(p: &Product) -> Event {
        let payload = E::from(events::Product {
            id: p.id.0,
            sku: p.sku.to_string(),
            name: p.name.clone(),
            status: p.status.as_str().to_owned(),
            price: event_price(&p.price),
            version: Some(p.version),
        });
        Event::of(p.id.to_string(), &payload)
    }

    pub async fn create_product(&self, input: ProductInput) -> Result<ProductView, Problem> {
        let (mut product, slug_generated) = self.build_product(None, input.into()).await?;
        let mut result = self
            .store
            .insert_product(&product, &[Self::product_event::<events::ProductCreated>(&product)])
            .await;
        if slug_generated && matches!(result, Err(StoreError::DuplicateSlug)) {
            // A generated slug may collide with another product's name: the SKU makes it unique.
            product.slug = format!("{}-{}", product.slug, product.sku.to_ascii_lowercase());
            product.slug.truncate(domain::MAX_SLUG_LEN);
            result = self
                .store
                .insert_product(&product, &[Self::product_event::<events::ProductCreated>(&product)])
                .await;
        }
        result?;
        metrics::counter!("catalog_products_created_total").increment(1);
        self.notify();
        self.invalidate(Some(product.id), &[&product.slug]).await;
        Ok(ProductView::from(&product))
    }

    /// `PUT` (a full [`ProductInput`] turned into a patch) and `PATCH`.
    pub async fn update_product(
        &self,
        id: ProductId,
        patch: ProductPatch,
        expected_version: Option<i64>,
    ) -> Result<ProductView, Problem> {
        let current = self
            .store
            .product(id)
            .await?
            .ok_or_else(|| Problem::not_found("no such product"))?;
        if let Some(v) = expected_version
            && v != current.version
        {
            return Err(StoreError::VersionMismatch.into());
        }
        let (mut next, _) = self.build_product(Some(&current), patch).await?;
        next.version = current.version + 1;
        let mut events = vec![Self::product_event::<events::ProductUpdated>(&next)];
        if next.price != current.price {
            events.push(Event::of(
                id.to_string(),
                &events::PriceChanged {
                    id: id.0,
                    sku: next.sku.to_string(),
                    old_price: event_price(&current.price),
                    new_price: event_price(&next.price),
                },
            ));
        }
        let updated = self
            .store
            .update_product(&next, Some(expected_version.unwrap_or(current.version)), &events)
            .await?;
        self.notify();
        self.invalidate(Some(id), &[&current.slug, &updated.slug]).await;
        Ok(ProductView::from(&updated))
    }

    pub async fn delete_product(&self, id: ProductId, expected_version: Option<i64>) -> Result<(), Problem> {
        let current = self
            .store
            .product(id)
            .await?
            .ok_or_else(|| Problem::not_found("no such product"))?;
        let event = Event::of(
            id.to_string(),
            &events::ProductDeleted {
                id: id.0,
                sku: current.sku.to_string(),
            },
        );
        let now = platform::clock::now();
        self.store
            .delete_product(id, Some(expected_version.unwrap_or(current.version)), now, &[event])
            .await?;
        self.notify();
        self.invalidate(Some(id), &[&current.slug]).await;
        Ok(())
    }

    // ---- categories -------------------------------------------------------------------------

    async fn category_counts(
        &self,
        categories: &[Category],
    ) -> Result<(HashMap<CategoryId, i64>, HashMap<CategoryId, i64>), Problem> {
        let direct = self.store.category_product_counts().await?;
        let parents: HashMap<_, _> = categories.iter().map(|c| (c.id, c.parent_id)).collect();
        let mut total: HashMap<CategoryId, i64> = HashMap::new();
        for (id, n) in &direct {
            for ancestor in domain::path_from_root(&parents, *id) {
                *total.entry(ancestor).or_default() += n;
            }
        }
        Ok((direct, total))
    }

    pub async fn category_tree(&self) -> Result<CategoryTree, Problem> {
        let key = self.generation_key("categories", "tree").await;
        self.cached(key, || async {
            let categories = self.store.categories().await?;
            let (direct, total) = self.category_counts(&categories).await?;
            let mut children: HashMap<Option<CategoryId>, Vec<&Category>> = HashMap::new();
            for c in &categories {
                children.entry(c.parent_id).or_default().push(c);
            }
            fn build(
                parent: Option<CategoryId>,
                children: &HashMap<Option<CategoryId>, Vec<&Category>>,
                direct: &HashMap<CategoryId, i64>,
                total: &HashMap<CategoryId, i64>,
                depth: usize,
            ) -> Vec<CategoryNode> {
                if depth > 64 {
                    return Vec::new();
                }
                children
                    .get(&parent)
                    .map(|list| {
                        list.iter()
                            .map(|c| CategoryNode {
                                category: crate::views::category_view(
                                    c,
                                    direct.get(&c.id).copied().unwrap_or(0),
                                    total.get(&c.id).copied().unwrap_or(0),
                                ),
                                children: build(Some(c.id), children, direct, total, depth + 1),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Ok(CategoryTree {
                roots: build(None, &children, &direct, &total, 0),
            })
        })
        .await
    }

    pub async fn category(&self, id: CategoryId) -> Result<CategoryDetail, Problem> {
        let categories = self.store.categories().await?;
        let by_id: HashMap<CategoryId, &Category> = categories.iter().map(|c| (c.id, c)).collect();
        let Some(category) = by_id.get(&id) else {
            return Err(Problem::not_found("no such category"));
        };
        let (direct, total) = self.category_counts(&categories).await?;
        let parents: HashMap<_, _> = categories.iter().map(|c| (c.id, c.parent_id)).collect();
        let count = |c: &Category| {
            crate::views::category_view(
                c,
                direct.get(&c.id).copied().unwrap_or(0),
                total.get(&c.id).copied().unwrap_or(0),
            )
        };
        Ok(CategoryDetail {
            category: count(category),
            breadcrumbs: domain::path_from_root(&parents, id)
                .into_iter()
                .filter_map(|c| by_id.get(&c))
                .map(|c| Breadcrumb {
                    id: c.id.0,
                    name: c.name.clone(),
                    slug: c.slug.clone(),
                })
                .collect(),
            children: categories
                .iter()
                .filter(|c| c.parent_id == Some(id))
                .map(count)
                .collect(),
        })
    }

    pub async fn create_category(&self, input: CategoryInput) -> Result<CategoryDetail, Problem> {
        let mut errors = Vec::new();
        let name = domain::required_text("name", &input.name, MAX_NAME_LEN, &mut errors);
        let slug = match &input.slug {
            Some(s) => domain::validate_slug(s).unwrap_or_else(|m| {
                errors.push(FieldError::new("slug", m));
                String::new()
            }),
            None => {
                let s = domain::slugify(&name);
                if s.is_empty() && errors.is_empty() {
                    errors.push(FieldError::new("slug", "cannot be derived from the name; give one"));
                }
                s
            }
        };
        let description =
            domain::optional_text("description", input.description.as_deref(), 2000, &mut errors).unwrap_or_default();
        let parent_id = input.parent_id.map(CategoryId);
        if let Some(p) = parent_id
            && self.store.category(p).await?.is_none()
        {
            errors.push(FieldError::new("parent_id", "no such category"));
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        let now = platform::clock::now();
        let category = Category {
            id: CategoryId::new(),
            parent_id,
            name,
            slug,
            description,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.store.insert_category(&category).await.map_err(|e| match e {
            StoreError::UnknownCategory => Problem::invalid_field("parent_id", "no such category"),
            other => other.into(),
        })?;
        self.invalidate(None, &[]).await;
        self.category(category.id).await
    }

    pub async fn update_category(
        &self,
        id: CategoryId,
        patch: CategoryPatch,
        expected_version: Option<i64>,
    ) -> Result<CategoryDetail, Problem> {
        let categories = self.store.categories().await?;
        let Some(current) = categories.iter().find(|c| c.id == id) else {
            return Err(Problem::not_found("no such category"));
        };
        let mut errors = Vec::new();
        let mut next = current.clone();
        if let Some(n) = &patch.name {
            next.name = domain::required_text("name", n, MAX_NAME_LEN, &mut errors);
        }
        if let Some(s) = &patch.slug {
            next.slug = domain::validate_slug(s).unwrap_or_else(|m| {
                errors.push(FieldError::new("slug", m));
                String::new()
            });
        }
        if let Some(d) = &patch.description {
            next.description = domain::optional_text("description", Some(d), 2000, &mut errors).unwrap_or_default();
        }
        if let Some(parent) = patch.parent_id {
            let parent = parent.map(CategoryId);
            let parents: HashMap<_, _> = categories.iter().map(|c| (c.id, c.parent_id)).collect();
            if let Some(p) = parent
                && !parents.contains_key(&p)
            {
                errors.push(FieldError::new("parent_id", "no such category"));
            } else if domain::creates_cycle(&parents, id, parent) {
                return Err(
                    Problem::conflict("a category cannot be moved under itself or one of its descendants")
                        .with_errors(vec![FieldError::new("parent_id", "would create a cycle")]),
                );
            }
            next.parent_id = parent;
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        next.updated_at = platform::clock::now();
        self.store
            .update_category(&next, expected_version)
            .await
            .map_err(|e| match e {
                StoreError::UnknownCategory => Problem::invalid_field("parent_id", "no such category"),
                other => other.into(),
            })?;
        self.invalidate(None, &[]).await;
        self.category(id).await
    }

    pub async fn delete_category(&self, id: CategoryId, reassign_to: Option<CategoryId>) -> Result<(), Problem> {
        if let Some(target) = reassign_to {
            let parents = self.category_parents().await?;
            if !parents.contains_key(&id) {
                return Err(Problem::not_found("no such category"));
            }
            if !parents.contains_key(&target) {
                return Err(Problem::invalid_field("reassign_to", "no such category"));
            }
            if domain::descendants(&parents, id).contains(&target) {
                return Err(Problem::invalid_field(
                    "reassign_to",
                    "must not be the category itself or one of its descendants",
                ));
            }
        }
        let moved = self
            .store
            .delete_category(id, reassign_to, platform::clock::now())
            .await
            .map_err(|e| match e {
                StoreError::UnknownCategory => Problem::invalid_field("reassign_to", "no such category"),
                other => other.into(),
            })?;
        for (product, slug) in &moved {
            forget_product(&self.cache, *product, slug).await;
        }
        self.invalidate(None, &[]).await;
        Ok(())
    }

    // ---- reviews ----------------------------------------------------------------------------

    pub async fn reviews(
        &self,
        product: ProductId,
        viewer: &Viewer,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<(Vec<ReviewView>, Option<String>), Problem> {
        self.product(product, viewer).await?;
        let rows = self
            .store
            .list_reviews(product, viewer.is_moderator(), after, limit)
            .await?;
        let page = platform::pagination::page_from(rows, limit, |r| r.id.0);
        Ok((page.items.iter().map(ReviewView::from).collect(), page.next))
    }

    async fn live_product(&self, id: ProductId) -> Result<Product, Problem> {
        match self.store.product(id).await? {
            Some(p) if p.status == ProductStatus::Active => Ok(p),
            _ => Err(Problem::not_found("no such product")),
        }
    }

    fn review_text(title: &str, body: Option<&str>, errors: &mut Vec<FieldError>) -> (String, String) {
        let title = domain::required_text("title", title, MAX_REVIEW_TITLE_LEN, errors);
        let body = domain::optional_text("body", body, MAX_REVIEW_BODY_LEN, errors).unwrap_or_default();
        (title, body)
    }

    pub async fn create_review(
        &self,
        product: ProductId,
        user: &AuthUser,
        input: ReviewInput,
    ) -> Result<ReviewView, Problem> {
        let mut errors = Vec::new();
        let rating = domain::validate_rating(input.rating)
            .map_err(|e| errors.push(e))
            .unwrap_or(0);
        let (title, body) = Self::review_text(&input.title, input.body.as_deref(), &mut errors);
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        let p = self.live_product(product).await?;
        let now = platform::clock::now();
        let mut review = Review {
            id: ReviewId::new(),
            product_id: product,
            user_id: user.id(),
            rating,
            title,
            body,
            status: ReviewStatus::Visible,
            // Decided by the store as it inserts (see `CatalogStore::insert_review`).
            verified_purchase: false,
            author_erased: false,
            created_at: now,
            updated_at: now,
        };
        review.verified_purchase = self.store.insert_review(&review, now).await?;
        self.invalidate(Some(product), &[&p.slug]).await;
        Ok(ReviewView::from(&review))
    }

    async fn review_of(&self, product: ProductId, id: ReviewId) -> Result<Review, Problem> {
        match self.store.review(id).await? {
            Some(r) if r.product_id == product => Ok(r),
            _ => Err(Problem::not_found("no such review")),
        }
    }

    async fn after_review_write(&self, product: ProductId) {
        let slug = self.store.product(product).await.ok().flatten().map(|p| p.slug);
        let slugs: Vec<&str> = slug.as_deref().into_iter().collect();
        self.invalidate(Some(product), &slugs).await;
    }

    pub async fn update_review(
        &self,
        product: ProductId,
        id: ReviewId,
        user: &AuthUser,
        patch: ReviewPatch,
    ) -> Result<ReviewView, Problem> {
        let mut review = self.review_of(product, id).await?;
        if review.user_id != user.id() {
            return Err(Problem::forbidden("only the author may edit a review"));
        }
        let mut errors = Vec::new();
        if let Some(r) = patch.rating {
            review.rating = domain::validate_rating(r)
                .map_err(|e| errors.push(e))
                .unwrap_or(review.rating);
        }
        let (title, body) = Self::review_text(
            patch.title.as_deref().unwrap_or(&review.title),
            Some(patch.body.as_deref().unwrap_or(&review.body)),
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        review.title = title;
        review.body = body;
        let now = platform::clock::now();
        review.updated_at = now;
        self.store.update_review(&review, now).await?;
        self.after_review_write(product).await;
        Ok(ReviewView::from(&review))
    }

    pub async fn delete_review(&self, product: ProductId, id: ReviewId, user: &AuthUser) -> Result<(), Problem> {
        let review = self.review_of(product, id).await?;
        let moderator = MODERATOR_ROLES.iter().any(|r| user.has_role(r));
        if review.user_id != user.id() && !moderator {
            return Err(Problem::forbidden("only the author or a moderator may delete a review"));
        }
        self.store.delete_review(&review, platform::clock::now()).await?;
        self.after_review_write(product).await;
        Ok(())
    }

    pub async fn moderate_review(
        &self,
        product: ProductId,
        id: ReviewId,
        status: ReviewStatus,
    ) -> Result<ReviewView, Problem> {
        let mut review = self.review_of(product, id).await?;
        review.status = status;
        let now = platform::clock::now();
        review.updated_at = now;
        self.store.update_review(&review, now).await?;
        self.after_review_write(product).await;
        Ok(ReviewView::from(&review))
    }
}

/// Reads the catalog's default currency setting.
/// How many related or recommended products a read asks for: 1 to 50, 8 by default.
fn suggestion_limit(limit: Option<u32>) -> Result<u32, Problem> {
    let limit = limit.unwrap_or(8);
    if (1..=50).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::invalid_field("limit", "must be between 1 and 50"))
    }
}

pub fn parse_currency(text: &str) -> Result<Currency, String> {
    Currency::parse(text).map_err(String::from)
}

/// A product's own cache keys (by id and by slug) go: after a write that does not move pages.
async fn forget_product(cache: &Cache, id: ProductId, slug: &str) {
    cache.delete(&product_key(id)).await;
    cache.delete(&slug_key(slug)).await;
}

/// The cache key of the product read by `slug`.
fn slug_key(slug: &str) -> String {
    format!("slug:{slug}")
}

/// The cache key of product `id`'s rendered read: `product:<uuid>`, encoded without the
/// formatter (a cached product read builds it every time).
fn product_key(id: ProductId) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    let hyphenated = id.get().hyphenated().encode_lower(&mut buffer);
    let mut key = String::with_capacity(8 + hyphenated.len());
    key.push_str("product:");
    key.push_str(hyphenated);
    key
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_product_key_is_product_and_the_hyphenated_id() {
        let id = ProductId::new();
        assert_eq!(product_key(id), format!("product:{id}"));
    }

    async fn service() -> Arc<CatalogService> {
        service_caching_for(Duration::from_secs(60)).await
    }

    async fn service_caching_for(ttl: Duration) -> Arc<CatalogService> {
        let db = platform::db::Db::connect("sqlite::memory:", 1).await.expect("sqlite");
        let src = platform::config::ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let mut config = CatalogConfig::from_source(&src).expect("config");
        config.cache_ttl = ttl;
        Arc::new(CatalogService::new(
            crate::store::open(&db),
            Cache::in_process(1 << 20),
            None,
            config,
        ))
    }

    /// Sixteen concurrent reads of one missing page; `fail_first` makes the first load fail.
    async fn read_together(service: &Arc<CatalogService>, key: &str, fail_first: bool) -> (usize, Vec<Option<Bytes>>) {
        let loads = Arc::new(AtomicUsize::new(0));
        let reads = (0..16).map(|_| {
            let (service, loads, key) = (service.clone(), loads.clone(), key.to_owned());
            tokio::spawn(async move {
                let load = || async move {
                    let n = loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if fail_first && n == 0 {
                        return Err(Problem::internal("the first load fails"));
                    }
                    Ok(serde_json::json!({ "page": 1 }))
                };
                service
                    .rendered(key, |_: &serde_json::Value| (0, true), load)
                    .await
                    .ok()
                    .map(|r| r.body)
            })
        });
        let mut bodies = Vec::new();
        for read in reads {
            bodies.push(read.await.expect("read task"));
        }
        (loads.load(Ordering::SeqCst), bodies)
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_page_share_one_load() {
        let service = service().await;
        let (loads, bodies) = read_together(&service, "page:a", false).await;
        assert_eq!(loads, 1, "sixteen misses ran {loads} loads");
        assert!(
            bodies.iter().all(|b| b.as_deref() == Some(&br#"{"page":1}"#[..])),
            "{bodies:?}"
        );
        assert!(
            service.loading.lock().expect("lock").is_empty(),
            "a finished flight stays in the map"
        );
    }

    /// Reads `key`, loading `page` (after `gate` opens, when given) on a miss or expiry.
    async fn read_page(
        service: &CatalogService,
        key: &str,
        page: u32,
        gate: Option<Arc<tokio::sync::Notify>>,
    ) -> Result<Bytes, Problem> {
        let load = || async move {
            if let Some(gate) = gate {
                gate.notified().await;
            }
            Ok(serde_json::json!({ "page": page }))
        };
        let read = service.rendered(key.to_owned(), |_: &serde_json::Value| (0, true), load);
        read.await.map(|r| r.body)
    }

    #[tokio::test]
    async fn an_expired_page_is_served_while_one_reader_reloads_it() {
        let service = service_caching_for(Duration::from_millis(300)).await;
        let page = |n: u32| Bytes::from(format!(r#"{{"page":{n}}}"#));
        assert_eq!(read_page(&service, "page:s", 1, None).await.expect("read"), page(1));
        assert_eq!(read_page(&service, "page:s", 2, None).await.expect("fresh"), page(1));
        tokio::time::sleep(Duration::from_millis(400)).await;

        // Expired: the first reader reloads it (held until the gate opens)...
        let gate = Arc::new(tokio::sync::Notify::new());
        let reloading = tokio::spawn({
            let (service, gate) = (service.clone(), gate.clone());
            async move { read_page(&service, "page:s", 2, Some(gate)).await }
        });
        while service.loading.lock().expect("lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...while every other reader gets the expired page at once, without loading.
        let other = tokio::time::timeout(Duration::from_secs(1), read_page(&service, "page:s", 3, None)).await;
        assert_eq!(other.expect("not held up").expect("read"), page(1));
        gate.notify_one();
        assert_eq!(reloading.await.expect("task").expect("reload"), page(2));
        assert_eq!(read_page(&service, "page:s", 4, None).await.expect("read"), page(2));

        // Gone for good after a second TTL: the next reader loads and waits for it.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(read_page(&service, "page:s", 5, None).await.expect("read"), page(5));
    }

    #[tokio::test]
    async fn an_expired_page_outlives_a_failed_reload_but_not_a_refusal() {
        let service = service_caching_for(Duration::from_millis(200)).await;
        assert!(read_page(&service, "page:f", 1, None).await.is_ok());
        tokio::time::sleep(Duration::from_millis(250)).await;
        let head = |_: &serde_json::Value| (0, true);
        let down = || async { Err::<serde_json::Value, _>(Problem::internal("database unreachable")) };
        let served = service.rendered("page:f".to_owned(), head, down).await;
        assert_eq!(
            served.expect("the expired page").body,
            Bytes::from_static(br#"{"page":1}"#)
        );
        let gone = || async { Err::<serde_json::Value, _>(Problem::not_found("no such page")) };
        let refused = service.rendered("page:f".to_owned(), head, gone).await;
        assert_eq!(refused.expect_err("a refusal stands").status.as_u16(), 404);
    }

    #[tokio::test]
    async fn a_failed_load_is_not_shared_the_waiters_load_again() {
        let service = service().await;
        let (loads, bodies) = read_together(&service, "page:b", true).await;
        assert_eq!(bodies.iter().filter(|b| b.is_none()).count(), 1, "{bodies:?}");
        assert_eq!(loads, 2, "one failed load, then one shared by the fifteen waiters");
    }
}
