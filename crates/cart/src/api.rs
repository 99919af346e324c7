//! Cart's HTTP API: thin handlers that identify the caller, call the service and shape the answer.
//!
//! Every cart call names its cart with a bearer token (the user's cart) or an `X-Cart-Token`
//! header (a guest cart); with both, the guest cart is first merged into the user's.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::Problem;
use platform::auth::AuthUser;
use platform::http::Json;
use platform::http::Path;
use platform::routes;
use utoipa_axum::router::OpenApiRouter;

use contracts::api::cart::{AddItemRequest, MergeRequest, SetQuantityRequest};

use crate::domain::CartToken;
use crate::service::{Caller, CartService};
use crate::views::{CartView, GuestCartCreated};

type Svc = State<Arc<CartService>>;
type ApiResult<T> = Result<T, Problem>;

const TAG: &str = "cart";
/// The header that carries a guest cart's token.
pub const X_CART_TOKEN: HeaderName = HeaderName::from_static("x-cart-token");

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    /// A bearer token, when sent, must be valid (401 otherwise); an `X-Cart-Token` that is not a
    /// token this API issues is kept as "present but unknown".
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = if parts.headers.contains_key(header::AUTHORIZATION) {
            Some(AuthUser::from_request_parts(parts, state).await?.id())
        } else {
            None
        };
        let token = parts
            .headers
            .get(&X_CART_TOKEN)
            .map(|v| v.to_str().ok().and_then(|t| CartToken::parse(t).ok()));
        Ok(Caller { user, token })
    }
}

fn cart(snapshot: &crate::service::CartSnapshot) -> Json<CartView> {
    Json(CartView::from(snapshot))
}

/// Starts a guest cart (no authentication). The token comes back in the body and in the
/// `X-Cart-Token` header; send it as `X-Cart-Token` on later calls. Only its hash is stored.
#[utoipa::path(post, path = "/api/v1/cart/guest", tag = TAG,
    responses(
        (status = 201, description = "A new, empty guest cart and its token", body = GuestCartCreated,
            headers(("X-Cart-Token" = String, description = "The cart's token (same as `cart_token`)"))),
        (status = 503, description = "Catalog or inventory unreachable", body = Problem)))]
pub async fn create_guest_cart(State(svc): Svc) -> ApiResult<Response> {
    let (token, snapshot) = svc.create_guest().await?;
    let body = GuestCartCreated {
        cart_token: token.as_str().to_owned(),
        cart: CartView::from(&snapshot),
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(token.as_str()) {
        response.headers_mut().insert(X_CART_TOKEN, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The caller's cart with current prices and availability (read from catalog and inventory now).
/// Lines whose product is no longer sold stay, flagged `unavailable` and left out of the subtotal.
#[utoipa::path(get, path = "/api/v1/cart", tag = TAG, security(("bearer" = []), ("cart_token" = [])),
    params(("X-Cart-Token" = Option<String>, Header, description = "A guest cart's token")),
    responses(
        (status = 200, description = "The cart", body = CartView),
        (status = 401, description = "Neither a bearer token nor a cart token, or an invalid bearer token", body = Problem),
        (status = 404, description = "The cart token names no live cart (expired, merged or unknown)", body = Problem),
        (status = 503, description = "Catalog or inventory unreachable", body = Problem)))]
pub async fn get_cart(State(svc): Svc, caller: Caller) -> ApiResult<Json<CartView>> {
    Ok(cart(&svc.view(&caller).await?))
}

/// Empties the caller's cart.
#[utoipa::path(delete, path = "/api/v1/cart", tag = TAG, security(("bearer" = []), ("cart_token" = [])),
    params(("X-Cart-Token" = Option<String>, Header, description = "A guest cart's token")),
    responses(
        (status = 200, description = "The (now empty) cart", body = CartView),
        (status = 401, description = "No cart named", body = Problem),
        (status = 404, description = "The cart token names no live cart", body = Problem)))]
pub async fn clear_cart(State(svc): Svc, caller: Caller) -> ApiResult<Json<CartView>> {
    Ok(cart(&svc.clear(&caller).await?))
}

/// Adds units of a product (to its line, if the cart has one). Concurrent adds of the same SKU
/// add up.
#[utoipa::path(post, path = "/api/v1/cart/items", tag = TAG, security(("bearer" = []), ("cart_token" = [])),
    params(("X-Cart-Token" = Option<String>, Header, description = "A guest cart's token")),
    request_body = AddItemRequest,
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 401, description = "No cart named", body = Problem),
        (status = 404, description = "The cart token names no live cart", body = Problem),
        (status = 409, description = "More than available (`quantity`; the detail says how many are)", body = Problem),
        (status = 422, description = "Unknown or inactive SKU (`sku`), quantity out of range or line limit passed (`quantity`), too many lines (`sku`)", body = Problem),
        (status = 503, description = "Catalog or inventory unreachable", body = Problem)))]
pub async fn add_item(State(svc): Svc, caller: Caller, Json(req): Json<AddItemRequest>) -> ApiResult<Json<CartView>> {
    Ok(cart(&svc.add_item(&caller, &req.sku, req.quantity).await?))
}

/// Sets the quantity of a line the cart holds (0 removes it).
#[utoipa::path(put, path = "/api/v1/cart/items/{sku}", tag = TAG, security(("bearer" = []), ("cart_token" = [])),
    params(("sku" = String, Path, description = "SKU of the line"),
        ("X-Cart-Token" = Option<String>, Header, description = "A guest cart's token")),
    request_body = SetQuantityRequest,
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 401, description = "No cart named", body = Problem),
        (status = 404, description = "No live cart, or no line for this SKU", body = Problem),
        (status = 409, description = "More than available (`quantity`)", body = Problem),
        (status = 422, description = "Quantity out of range (`quantity`), product no longer sold (`sku`)", body = Problem),
        (status = 503, description = "Catalog or inventory unreachable", body = Problem)))]
pub async fn set_item(
    State(svc): Svc,
    caller: Caller,
    Path(sku): Path<String>,
    Json(req): Json<SetQuantityRequest>,
) -> ApiResult<Json<CartView>> {
    Ok(cart(&svc.set_item(&caller, &sku, req.quantity).await?))
}

/// Removes a line.
#[utoipa::path(delete, path = "/api/v1/cart/items/{sku}", tag = TAG, security(("bearer" = []), ("cart_token" = [])),
    params(("sku" = String, Path, description = "SKU of the line"),
        ("X-Cart-Token" = Option<String>, Header, description = "A guest cart's token")),
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 401, description = "No cart named", body = Problem),
        (status = 404, description = "No live cart, or no line for this SKU", body = Problem),
        (status = 422, description = "Malformed SKU", body = Problem)))]
pub async fn remove_item(State(svc): Svc, caller: Caller, Path(sku): Path<String>) -> ApiResult<Json<CartView>> {
    Ok(cart(&svc.remove_item(&caller, &sku).await?))
}

/// Merges a guest cart into the caller's cart (quantities summed, capped at the per-line limit)
/// and deletes the guest cart, in one transaction. Merging the same token again is a no-op.
/// Sending `X-Cart-Token` together with a bearer token on any cart call does the same.
#[utoipa::path(post, path = "/api/v1/cart/merge", tag = TAG, security(("bearer" = [])),
    request_body = MergeRequest,
    responses(
        (status = 200, description = "The user's cart after the merge", body = CartView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 404, description = "The token names no live guest cart", body = Problem),
        (status = 422, description = "Malformed `cart_token`", body = Problem)))]
pub async fn merge(State(svc): Svc, auth: AuthUser, Json(req): Json<MergeRequest>) -> ApiResult<Json<CartView>> {
    Ok(cart(&svc.merge(auth.id(), &req.cart_token).await?))
}

/// Every cart route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<CartService>> {
    OpenApiRouter::new()
        .routes(routes!(create_guest_cart))
        .routes(routes!(get_cart, clear_cart))
        .routes(routes!(add_item))
        .routes(routes!(set_item, remove_item))
        .routes(routes!(merge))
}

/// How each cart error answers over HTTP: the one mapping, which every handler uses through `?`.
mod problem {
    use platform::Problem;

    use crate::service::CartError;

    impl From<CartError> for Problem {
        fn from(e: CartError) -> Self {
            let message = e.to_string();
            match e {
                CartError::Validation(errors) => Problem::validation(errors),
                CartError::Unauthenticated(_) => Problem::unauthorized(message),
                CartError::NotFound(_) => Problem::not_found(message),
                CartError::Conflict { errors, .. } => Problem::conflict(message).with_errors(errors),
                CartError::Unavailable(_) => Problem::unavailable(message).with_retry_after(5),
                CartError::Internal(e) => Problem::from_error(&e),
            }
        }
    }
}
