//! Catalog's HTTP API: thin handlers that parse, call the service and shape the answer (ETags,
//! conditional GETs, cache headers).

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use platform::Problem;
use platform::auth::AuthUser;
use platform::http::Path;
use platform::http::{Json, Query};
use platform::pagination::{self, Page};
use platform::routes;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::domain::{CategoryId, ProductId, ReviewId};
use crate::params::ListParams;
use crate::rendered::{Rendered, digest};
use crate::service::{CatalogService, MODERATOR_ROLES, STAFF_ROLES, Viewer};
use crate::views::{
    CategoryDetail, CategoryInput, CategoryPatch, CategoryTree, FacetsView, ModerationInput, ProductInput, ProductList,
    ProductPage, ProductPatch, ProductView, RateInput, RateView, RatesView, RecommendationList, ReviewInput,
    ReviewPatch, ReviewView, Suggestions,
};

type Svc = State<Arc<CatalogService>>;
type ApiResult<T> = Result<T, Problem>;

// Statics, not `from_static` per answer: that checks every byte each time it runs.
static PUBLIC_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=30");
static PRIVATE_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");
static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The caller when a bearer token is sent; anonymous otherwise. A bad token is still a 401.
pub struct MaybeUser(pub Viewer);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeUser(Viewer { user: None }));
        }
        let user = AuthUser::from_request_parts(parts, state).await?;
        Ok(MaybeUser(Viewer { user: Some(user) }))
    }
}

fn product_id(text: &str) -> ApiResult<ProductId> {
    Uuid::try_parse(text)
        .map(ProductId)
        .map_err(|_| Problem::not_found("no such product"))
}

fn category_id(text: &str) -> ApiResult<CategoryId> {
    Uuid::try_parse(text)
        .map(CategoryId)
        .map_err(|_| Problem::not_found("no such category"))
}

fn review_id(text: &str) -> ApiResult<ReviewId> {
    Uuid::try_parse(text)
        .map(ReviewId)
        .map_err(|_| Problem::not_found("no such review"))
}

/// The ETag of list pages: a digest of the body.
fn body_etag(digest: u64) -> String {
    let mut tag = String::with_capacity(18);
    tag.push('"');
    platform::http::push_hex(&mut tag, &digest.to_be_bytes());
    tag.push('"');
    tag
}

/// A product's ETag: its editorial version (what `If-Match` compares) and a digest of the body
/// (which also moves with stock and ratings, so `If-None-Match` never serves a stale copy).
fn product_etag(version: i64, digest: u64) -> String {
    let mut tag = String::with_capacity(32);
    tag.push_str("\"v");
    tag.push_str(&version.to_string());
    tag.push('-');
    platform::http::push_hex(&mut tag, &(digest as u32).to_be_bytes());
    tag.push('"');
    tag
}

fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A cacheable read: `ETag`, `Cache-Control`, and `304` when the client's copy is current.
/// Built by hand rather than from a tuple of parts: that set `application/octet-stream` for the
/// body first and replaced it, and left the map to grow twice for the headers added on the way
/// out.
fn conditional(headers: &HeaderMap, etag: String, cache_control: &'static HeaderValue, body: Bytes) -> Response {
    let tag = HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    let current = none_match(headers, &etag);
    let mut response = if current {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(axum::body::Body::from(body))
    };
    let out = response.headers_mut();
    out.reserve(3 + platform::http::RESPONSE_HEADERS_ADDED);
    out.insert(header::ETAG, tag);
    out.insert(header::CACHE_CONTROL, cache_control.clone());
    if !current {
        out.insert(header::CONTENT_TYPE, JSON.clone());
    }
    response
}

fn json_bytes<T: Serialize>(value: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(Problem::internal)
}

fn cache_control(viewer: &Viewer) -> &'static HeaderValue {
    if viewer.user.is_some() {
        &PRIVATE_CACHE
    } else {
        &PUBLIC_CACHE
    }
}

fn cached_read<T: Serialize>(headers: &HeaderMap, viewer: &Viewer, value: &T) -> ApiResult<Response> {
    let bytes = json_bytes(value)?;
    Ok(conditional(
        headers,
        body_etag(digest(&bytes)),
        cache_control(viewer),
        Bytes::from(bytes),
    ))
}

/// A page kept rendered in the cache, sent as it is.
fn rendered_read(headers: &HeaderMap, viewer: &Viewer, page: Rendered) -> Response {
    conditional(headers, body_etag(page.digest), cache_control(viewer), page.body)
}

fn product_read(headers: &HeaderMap, viewer: &Viewer, p: Rendered) -> Response {
    let cc = if p.public {
        cache_control(viewer)
    } else {
        &PRIVATE_CACHE
    };
    conditional(headers, product_etag(p.version, p.digest), cc, p.body)
}

fn product_written(status: StatusCode, p: ProductView) -> Response {
    let bytes = serde_json::to_vec(&p).unwrap_or_default();
    let tag = HeaderValue::from_str(&product_etag(p.version, digest(&bytes)))
        .unwrap_or_else(|_| HeaderValue::from_static("\"v0\""));
    let mut headers = vec![(header::ETAG, tag)];
    if status == StatusCode::CREATED
        && let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/catalog/products/{}", p.id))
    {
        headers.push((header::LOCATION, loc));
    }
    let mut response = (status, Json(p)).into_response();
    for (k, v) in headers {
        response.headers_mut().insert(k, v);
    }
    response
}

/// Reads `If-Match: "v<n>-<digest>"` (or `"v<n>"`): only the version is compared. Absent or `*`
/// means "whatever version is current".
fn expected_version(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    platform::http::if_match_version(headers, |tag| tag.strip_prefix('v')?.split('-').next()?.parse().ok())
}

fn staff(user: &AuthUser) -> ApiResult<()> {
    user.require_any_role(STAFF_ROLES)
}

// ---- products ------------------------------------------------------------------------------------

/// Lists active products (staff: any status with `?status=`), filtered, sorted and paged.
/// Attribute filters: `attr=color:red` or `attr.color=red` (repeat for more; values of one key
/// are alternatives). Prices in minor units.
#[utoipa::path(get, path = "/api/v1/catalog/products", tag = "catalog",
    params(
        ("q" = Option<String>, Query, description = "Full-text query (enables sort=relevance)"),
        ("category" = Option<Uuid>, Query, description = "Category, including its descendants"),
        ("brand" = Option<Vec<String>>, Query, description = "Brand (repeatable)"),
        ("min_price" = Option<i64>, Query), ("max_price" = Option<i64>, Query),
        ("attr" = Option<Vec<String>>, Query, description = "key:value (repeatable); or attr.<key>=<value>"),
        ("min_rating" = Option<f64>, Query), ("in_stock" = Option<bool>, Query),
        ("sort" = Option<String>, Query, description = "newest | price_asc | price_desc | rating | relevance"),
        ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1..=100, default 20"),
        ("status" = Option<String>, Query, description = "Staff only: draft | active | archived | all")),
    responses((status = 200, description = "A page of products", body = ProductPage),
        (status = 304, description = "Not modified"),
        (status = 422, description = "Invalid parameter", body = Problem)))]
pub async fn list_products(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = ListParams::parse(query.as_deref())?;
    let page = svc.list(&params, &viewer, false).await?;
    Ok(rendered_read(&headers, &viewer, page))
}

/// Full-text search over name, description, brand and attribute values, best match first.
/// Takes every filter of the product list; `q` is required.
#[utoipa::path(get, path = "/api/v1/catalog/search", tag = "catalog",
    params(("q" = String, Query, description = "Words to find (operators and punctuation are ignored; at most 200 characters)"),
        ("sort" = Option<String>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "Matching products", body = ProductPage),
        (status = 422, description = "No usable search term, or an invalid parameter", body = Problem)))]
pub async fn search(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = ListParams::parse(query.as_deref())?;
    let page = svc.list(&params, &viewer, true).await?;
    Ok(rendered_read(&headers, &viewer, page))
}

/// Counts by category, brand and price bucket for the same filters as the product list.
#[utoipa::path(get, path = "/api/v1/catalog/products/facets", tag = "catalog",
    responses((status = 200, description = "Facet counts", body = FacetsView),
        (status = 422, description = "Invalid parameter", body = Problem)))]
pub async fn facets(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = ListParams::parse(query.as_deref())?;
    let facets = svc.facets(&params, &viewer).await?;
    Ok(rendered_read(&headers, &viewer, facets))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuggestQuery {
    /// What has been typed so far.
    pub q: String,
    /// 1..=10, default 10.
    pub limit: Option<u32>,
}

/// Product names matching what has been typed so far (the last word as a prefix).
#[utoipa::path(get, path = "/api/v1/catalog/suggest", tag = "catalog", params(SuggestQuery),
    responses((status = 200, description = "Up to 10 names", body = Suggestions),
        (status = 422, description = "No usable term", body = Problem)))]
pub async fn suggest(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    Query(q): Query<SuggestQuery>,
) -> ApiResult<Response> {
    let suggestions = svc.suggest(&q.q, q.limit).await?;
    cached_read(&headers, &viewer, &suggestions)
}

/// Creates a product (`draft` unless `status` says otherwise).
#[utoipa::path(post, path = "/api/v1/catalog/products", tag = "catalog", security(("bearer" = [])),
    request_body = ProductInput,
    responses((status = 201, description = "Created", body = ProductView),
        (status = 403, description = "Not admin or catalog_manager", body = Problem),
        (status = 409, description = "SKU or slug taken", body = Problem),
        (status = 422, description = "Invalid field(s)", body = Problem)))]
pub async fn create_product(State(svc): Svc, user: AuthUser, Json(input): Json<ProductInput>) -> ApiResult<Response> {
    staff(&user)?;
    Ok(product_written(StatusCode::CREATED, svc.create_product(input).await?))
}

/// One product by id, with `ETag: "v<version>"`. Non-active products are visible to staff only.
#[utoipa::path(get, path = "/api/v1/catalog/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The product", body = ProductView),
        (status = 304, description = "Not modified"), (status = 404, description = "No such product", body = Problem)))]
pub async fn get_product(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let p = svc.product(product_id(&id)?, &viewer).await?;
    Ok(product_read(&headers, &viewer, p))
}

/// Products by SKU (1 to 100; repeat `sku=`), for carts and orders: one call instead of one per
/// line. Active products only (staff also see drafts and archived ones); the other requested
/// SKUs are listed in `missing`. Not cached: prices must be current at checkout.
#[utoipa::path(get, path = "/api/v1/catalog/products/by-sku", tag = "catalog",
    params(("sku" = Vec<String>, Query, description = "Repeat for each SKU (1 to 100)")),
    responses((status = 200, description = "Found products and missing SKUs", body = crate::service::SkuLookup),
        (status = 422, description = "No SKU, more than 100, or a malformed one (`sku[i]`)", body = Problem)))]
pub async fn products_by_sku(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<crate::service::SkuLookup>> {
    let skus: Vec<String> = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "sku")
        .map(|(_, v)| v.into_owned())
        .collect();
    Ok(Json(svc.products_by_sku(&skus, &viewer).await?))
}

/// One product by slug.
#[utoipa::path(get, path = "/api/v1/catalog/products/by-slug/{slug}", tag = "catalog",
    params(("slug" = String, Path)),
    responses((status = 200, description = "The product", body = ProductView),
        (status = 304, description = "Not modified"), (status = 404, description = "No such product", body = Problem)))]
pub async fn get_product_by_slug(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> ApiResult<Response> {
    let p = svc.product_by_slug(&slug, &viewer).await?;
    Ok(product_read(&headers, &viewer, p))
}

/// Replaces a product. Send `If-Match: "v<version>"` to refuse overwriting someone else's change.
#[utoipa::path(put, path = "/api/v1/catalog/products/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ProductInput,
    responses((status = 200, description = "Updated", body = ProductView),
        (status = 404, description = "No such product", body = Problem),
        (status = 409, description = "SKU or slug taken", body = Problem),
        (status = 412, description = "If-Match does not match", body = Problem),
        (status = 422, description = "Invalid field(s)", body = Problem)))]
pub async fn replace_product(
    State(svc): Svc,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<ProductInput>,
) -> ApiResult<Response> {
    staff(&user)?;
    let expected = expected_version(&headers)?;
    let p = svc.update_product(product_id(&id)?, input.into(), expected).await?;
    Ok(product_written(StatusCode::OK, p))
}

/// Changes some fields of a product (`null` clears `compare_at_price`, `brand`, `category_id`).
#[utoipa::path(patch, path = "/api/v1/catalog/products/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ProductPatch,
    responses((status = 200, description = "Updated", body = ProductView),
        (status = 404, description = "No such product", body = Problem),
        (status = 409, description = "SKU or slug taken", body = Problem),
        (status = 412, description = "If-Match does not match", body = Problem),
        (status = 422, description = "Invalid field(s)", body = Problem)))]
pub async fn patch_product(
    State(svc): Svc,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(patch): Json<ProductPatch>,
) -> ApiResult<Response> {
    staff(&user)?;
    let expected = expected_version(&headers)?;
    let p = svc.update_product(product_id(&id)?, patch, expected).await?;
    Ok(product_written(StatusCode::OK, p))
}

/// Deletes a product (soft: it disappears from every read and frees its SKU and slug).
#[utoipa::path(delete, path = "/api/v1/catalog/products/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such product", body = Problem),
        (status = 412, description = "If-Match does not match", body = Problem)))]
pub async fn delete_product(
    State(svc): Svc,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    staff(&user)?;
    let expected = expected_version(&headers)?;
    svc.delete_product(product_id(&id)?, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub limit: Option<u32>,
}

/// "Customers who bought this also bought": active, in-stock products bought in the same orders
/// (recency-weighted), then related ones when the order history is thin; each says which.
#[utoipa::path(get, path = "/api/v1/catalog/products/{id}/recommendations", tag = "catalog",
    params(("id" = Uuid, Path), LimitQuery),
    responses((status = 200, description = "Recommended products", body = RecommendationList),
        (status = 404, description = "No such product", body = Problem),
        (status = 422, description = "`limit` outside 1 to 50", body = Problem)))]
pub async fn recommendations(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Response> {
    let list = svc.recommendations(product_id(&id)?, q.limit, &viewer).await?;
    cached_read(&headers, &viewer, &list)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsForQuery {
    /// Comma-separated product ids (a cart's), 1 to 50.
    pub products: String,
    pub limit: Option<u32>,
}

/// Recommendations for several products at once (a cart): what was bought with any of them,
/// none of them themselves.
#[utoipa::path(get, path = "/api/v1/catalog/recommendations", tag = "catalog",
    params(RecommendationsForQuery),
    responses((status = 200, description = "Recommended products", body = RecommendationList),
        (status = 422, description = "`products` or `limit` invalid", body = Problem)))]
pub async fn recommendations_for(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    Query(q): Query<RecommendationsForQuery>,
) -> ApiResult<Response> {
    let ids = q
        .products
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            Uuid::parse_str(id)
                .map(ProductId)
                .map_err(|_| Problem::invalid_field("products", "must be comma-separated product ids (UUIDs)"))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let list = svc.recommendations_for(ids, q.limit).await?;
    cached_read(&headers, &viewer, &list)
}

/// Active products in the same category, then ones sharing attribute values.
#[utoipa::path(get, path = "/api/v1/catalog/products/{id}/related", tag = "catalog",
    params(("id" = Uuid, Path), LimitQuery),
    responses((status = 200, description = "Related products", body = ProductList),
        (status = 404, description = "No such product", body = Problem)))]
pub async fn related(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Response> {
    let list = svc.related(product_id(&id)?, q.limit, &viewer).await?;
    cached_read(&headers, &viewer, &list)
}

// ---- reviews -------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Reviews of a product, oldest first (moderators also see hidden ones).
#[utoipa::path(get, path = "/api/v1/catalog/products/{id}/reviews", tag = "catalog",
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, description = "A page of reviews", body = Page<ReviewView>),
        (status = 404, description = "No such product", body = Problem)))]
pub async fn list_reviews(
    State(svc): Svc,
    MaybeUser(viewer): MaybeUser,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<ReviewView>>> {
    let limit = pagination::limit(q.limit)?;
    let after = pagination::decode_cursor(q.cursor.as_deref())?;
    let (items, next) = svc.reviews(product_id(&id)?, &viewer, after, limit).await?;
    Ok(Json(Page { items, next }))
}

/// Reviews a product: one review per user and product.
#[utoipa::path(post, path = "/api/v1/catalog/products/{id}/reviews", tag = "catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReviewInput,
    responses((status = 201, description = "Created", body = ReviewView),
        (status = 404, description = "No such product", body = Problem),
        (status = 409, description = "Already reviewed", body = Problem),
        (status = 422, description = "Invalid field(s)", body = Problem)))]
pub async fn create_review(
    State(svc): Svc,
    user: AuthUser,
    Path(id): Path<String>,
    Json(input): Json<ReviewInput>,
) -> ApiResult<(StatusCode, Json<ReviewView>)> {
    let review = svc.create_review(product_id(&id)?, &user, input).await?;
    Ok((StatusCode::CREATED, Json(review)))
}

/// Edits one's own review.
#[utoipa::path(patch, path = "/api/v1/catalog/products/{id}/reviews/{review_id}", tag = "catalog",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("review_id" = Uuid, Path)), request_body = ReviewPatch,
    responses((status = 200, description = "Updated", body = ReviewView),
        (status = 403, description = "Not the author", body = Problem),
        (status = 404, description = "No such review", body = Problem),
        (status = 422, description = "Invalid field(s)", body = Problem)))]
pub async fn update_review(
    State(svc): Svc,
    user: AuthUser,
    Path((id, review)): Path<(String, String)>,
    Json(patch): Json<ReviewPatch>,
) -> ApiResult<Json<ReviewView>> {
    Ok(Json(
        svc.update_review(product_id(&id)?, review_id(&review)?, &user, patch)
            .await?,
    ))
}

/// Deletes a review: its author, or admin/support.
#[utoipa::path(delete, path = "/api/v1/catalog/products/{id}/reviews/{review_id}", tag = "catalog",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("review_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Not the author", body = Problem),
        (status = 404, description = "No such review", body = Problem)))]
pub async fn delete_review(
    State(svc): Svc,
    user: AuthUser,
    Path((id, review)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc.delete_review(product_id(&id)?, review_id(&review)?, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moderation (admin or support): hide a review, or show it again.
#[utoipa::path(put, path = "/api/v1/catalog/products/{id}/reviews/{review_id}/moderation", tag = "catalog",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("review_id" = Uuid, Path)), request_body = ModerationInput,
    responses((status = 200, description = "Moderated", body = ReviewView),
        (status = 403, description = "Not admin or support", body = Problem),
        (status = 404, description = "No such review", body = Problem)))]
pub async fn moderate_review(
    State(svc): Svc,
    user: AuthUser,
    Path((id, review)): Path<(String, String)>,
    Json(input): Json<ModerationInput>,
) -> ApiResult<Json<ReviewView>> {
    user.require_any_role(MODERATOR_ROLES)?;
    Ok(Json(
        svc.moderate_review(product_id(&id)?, review_id(&review)?, input.status)
            .await?,
    ))
}

// ---- categories ----------------------------------------------------------------------------------

/// The category tree with product counts.
#[utoipa::path(get, path = "/api/v1/catalog/categories", tag = "catalog",
    responses((status = 200, description = "The tree", body = CategoryTree)))]
pub async fn category_tree(State(svc): Svc, MaybeUser(viewer): MaybeUser, headers: HeaderMap) -> ApiResult<Response> {
    let tree = svc.category_tree().await?;
    cached_read(&headers, &viewer, &tree)
}

/// One category with its breadcrumbs (path from the root) and children; `ETag: "v<version>"`
/// for `If-Match` on `PATCH`.
#[utoipa::path(get, path = "/api/v1/catalog/categories/{id}", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The category", body = CategoryDetail),
        (status = 404, description = "No such category", body = Problem)))]
pub async fn get_category(State(svc): Svc, Path(id): Path<String>) -> ApiResult<Response> {
    let detail = svc.category(category_id(&id)?).await?;
    let tag = HeaderValue::from_str(&format!("\"v{}\"", detail.category.version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"v0\""));
    Ok(([(header::ETAG, tag)], Json(detail)).into_response())
}

/// Creates a category.
#[utoipa::path(post, path = "/api/v1/catalog/categories", tag = "catalog", security(("bearer" = [])),
    request_body = CategoryInput,
    responses((status = 201, description = "Created", body = CategoryDetail),
        (status = 409, description = "Slug taken", body = Problem),
        (status = 422, description = "Invalid field(s)", body = Problem)))]
pub async fn create_category(
    State(svc): Svc,
    user: AuthUser,
    Json(input): Json<CategoryInput>,
) -> ApiResult<(StatusCode, Json<CategoryDetail>)> {
    staff(&user)?;
    Ok((StatusCode::CREATED, Json(svc.create_category(input).await?)))
}

/// Renames or moves a category. Moving it under itself or a descendant is a 409 naming `parent_id`.
#[utoipa::path(patch, path = "/api/v1/catalog/categories/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CategoryPatch,
    responses((status = 200, description = "Updated", body = CategoryDetail),
        (status = 404, description = "No such category", body = Problem),
        (status = 409, description = "Slug taken, or the move would create a cycle", body = Problem),
        (status = 412, description = "If-Match does not match", body = Problem),
        (status = 422, description = "Invalid field(s)", body = Problem)))]
pub async fn update_category(
    State(svc): Svc,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(patch): Json<CategoryPatch>,
) -> ApiResult<Json<CategoryDetail>> {
    staff(&user)?;
    let expected = expected_version(&headers)?;
    Ok(Json(svc.update_category(category_id(&id)?, patch, expected).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteCategoryQuery {
    /// Move the category's products and subcategories here first.
    pub reassign_to: Option<Uuid>,
}

/// Deletes a category. One with products or subcategories is a 409 unless `reassign_to` names
/// where they go.
#[utoipa::path(delete, path = "/api/v1/catalog/categories/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path), DeleteCategoryQuery),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such category", body = Problem),
        (status = 409, description = "Not empty", body = Problem),
        (status = 422, description = "Bad reassign_to", body = Problem)))]
pub async fn delete_category(
    State(svc): Svc,
    user: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<DeleteCategoryQuery>,
) -> ApiResult<StatusCode> {
    staff(&user)?;
    svc.delete_category(category_id(&id)?, q.reassign_to.map(CategoryId))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The shop's currency and the exchange rates for showing prices in others (display only:
/// orders are charged in the shop's currency).
#[utoipa::path(get, path = "/api/v1/catalog/rates", tag = "catalog",
    responses((status = 200, description = "Base currency and rates", body = RatesView)))]
pub async fn rates(State(svc): Svc) -> ApiResult<Json<RatesView>> {
    Ok(Json(svc.rates().await?))
}

/// Sets the rate of a currency (staff).
#[utoipa::path(put, path = "/api/v1/catalog/rates/{currency}", tag = "catalog", security(("bearer" = [])),
    params(("currency" = String, Path, description = "ISO 4217 code, e.g. USD")),
    request_body = RateInput,
    responses((status = 200, description = "Set", body = RateView),
        (status = 422, description = "A field is invalid (`currency`, `rate`, `as_of`)", body = Problem)))]
pub async fn set_rate(
    State(svc): Svc,
    user: AuthUser,
    Path(currency): Path<String>,
    Json(input): Json<RateInput>,
) -> ApiResult<Json<RateView>> {
    staff(&user)?;
    Ok(Json(svc.set_rate(&currency, &input).await?))
}

/// Removes the rate of a currency (staff): prices are no longer shown in it.
#[utoipa::path(delete, path = "/api/v1/catalog/rates/{currency}", tag = "catalog", security(("bearer" = [])),
    params(("currency" = String, Path, description = "ISO 4217 code, e.g. USD")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No rate for that currency", body = Problem),
        (status = 422, description = "Not an ISO 4217 code", body = Problem)))]
pub async fn delete_rate(State(svc): Svc, user: AuthUser, Path(currency): Path<String>) -> ApiResult<StatusCode> {
    staff(&user)?;
    svc.delete_rate(&currency).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every catalog route with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<CatalogService>> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(facets))
        .routes(routes!(get_product, replace_product, patch_product, delete_product))
        .routes(routes!(products_by_sku))
        .routes(routes!(get_product_by_slug))
        .routes(routes!(related))
        .routes(routes!(recommendations))
        .routes(routes!(recommendations_for))
        .routes(routes!(rates))
        .routes(routes!(set_rate, delete_rate))
        .routes(routes!(list_reviews, create_review))
        .routes(routes!(update_review, delete_review))
        .routes(routes!(moderate_review))
        .routes(routes!(search))
        .routes(routes!(suggest))
        .routes(routes!(category_tree, create_category))
        .routes(routes!(get_category, update_category, delete_category))
}

/// How each catalog error answers over HTTP: the one mapping, which every handler uses through `?`.
mod problem {
    use platform::{FieldError, Problem};

    use crate::store::StoreError;

    impl From<StoreError> for Problem {
        fn from(e: StoreError) -> Self {
            match e {
                StoreError::DuplicateSku => Problem::conflict("a product with this SKU already exists")
                    .with_errors(vec![FieldError::new("sku", "is already used by another product")]),
                StoreError::DuplicateSlug => Problem::conflict("this slug is already taken")
                    .with_errors(vec![FieldError::new("slug", "is already taken")]),
                StoreError::DuplicateReview => {
                    Problem::conflict("you have already reviewed this product; edit that review")
                }
                StoreError::VersionMismatch => {
                    Problem::precondition_failed("the resource was changed since you read it; fetch it again")
                }
                StoreError::NotFound => Problem::not_found("no such resource"),
                StoreError::UnknownCategory => Problem::invalid_field("category_id", "no such category"),
                StoreError::CategoryNotEmpty { products, children } => Problem::conflict(format!(
                    "the category still holds {products} product(s) and {children} subcategorie(s); \
                     pass ?reassign_to=<category id> to move them first"
                )),
                StoreError::Corrupt(m) => Problem::internal(m),
                StoreError::Db(e) => e.into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_spelt_as_the_formatter_would() {
        for digest in [0, 1, 0x0123_4567_89ab_cdef, u64::MAX] {
            assert_eq!(body_etag(digest), format!("\"{digest:016x}\""));
            for version in [0, 7, -3, i64::MAX] {
                assert_eq!(
                    product_etag(version, digest),
                    format!("\"v{version}-{:08x}\"", digest as u32)
                );
            }
        }
    }

    #[test]
    fn if_none_match_handles_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"v3\""));
        assert!(none_match(&h, "\"v3\""));
        assert!(!none_match(&h, "\"v4\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&h, "\"x\""));
        assert_ne!(body_etag(digest(b"a")), body_etag(digest(b"b")));
        let tag = product_etag(3, digest(b"{}"));
        assert!(tag.starts_with("\"v3-"));
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_str(&tag).expect("header"));
        assert_eq!(expected_version(&h).expect("ok"), Some(3));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"v4\""));
        assert_eq!(expected_version(&h).expect("ok"), Some(4));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert_eq!(expected_version(&h).expect_err("bad").status.as_u16(), 412);
    }

    #[test]
    fn openapi_lists_the_catalog_paths() {
        let doc = routes().split_for_parts().1;
        for path in [
            "/api/v1/catalog/products",
            "/api/v1/catalog/products/{id}",
            "/api/v1/catalog/search",
            "/api/v1/catalog/suggest",
            "/api/v1/catalog/categories/{id}",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
    }
}
