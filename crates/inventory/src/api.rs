//! Inventory's HTTP API: thin handlers that parse, call the service and shape the answer.
//!
//! Reads of availability (`GET /api/v1/inventory`, `GET /api/v1/inventory/{sku}`) are public:
//! storefronts and carts show them. Everything else needs a bearer token with a staff role.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use platform::auth::AuthUser;
use platform::http::Path;
use platform::http::{Json, Query};
use platform::pagination::{self, Page};
use platform::routes;
use platform::{FieldError, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use contracts::api::inventory::{AdjustmentRequest, CreateReservationRequest, ThresholdRequest};

use crate::domain::{MAX_BATCH_SKUS, RawLine, ReservationId, Sku};
use crate::service::{AdjustAnswer, InventoryService, ReservationAnswer, ReservationRequest};
use crate::views::{BatchAvailability, MovementView, ReservationView, StockView};

type Svc = State<Arc<InventoryService>>;
type ApiResult<T> = Result<T, Problem>;

const TAG: &str = "inventory";
pub use contracts::kernel::IDEMPOTENCY_KEY_HEADER as IDEMPOTENCY_KEY;

fn parse_sku(raw: &str) -> ApiResult<Sku> {
    Sku::parse(raw).map_err(|m| Problem::invalid_field("sku", m))
}

fn parse_id(text: &str) -> ApiResult<ReservationId> {
    Uuid::parse_str(text)
        .map(ReservationId)
        .map_err(|_| Problem::not_found("no reservation with this id (ids are UUIDs)"))
}

/// `sku=A&sku=B` or `sku=A,B`: 1..=100 SKUs, each well-formed; any other parameter is refused.
fn batch_skus(query: Option<&str>) -> ApiResult<Vec<Sku>> {
    let mut errors = Vec::new();
    let mut skus = Vec::new();
    let mut index = 0;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name != "sku" {
            errors.push(FieldError::new(name.into_owned(), "is not a known parameter"));
            continue;
        }
        for raw in value.split(',') {
            match Sku::parse(raw) {
                Ok(sku) => skus.push(sku),
                Err(m) => errors.push(FieldError::new(format!("sku[{index}]"), m)),
            }
            index += 1;
        }
    }
    if index == 0 && errors.is_empty() {
        errors.push(FieldError::new(
            "sku",
            "is required (repeat it, or separate SKUs with commas)",
        ));
    } else if index > MAX_BATCH_SKUS {
        errors.push(FieldError::new(
            "sku",
            format!("at most {MAX_BATCH_SKUS} SKUs per request"),
        ));
    }
    if errors.is_empty() {
        Ok(skus)
    } else {
        Err(Problem::validation(errors))
    }
}

/// Availability of up to 100 SKUs at once (public). Unknown SKUs do not fail the call: they are
/// listed in `not_found`.
#[utoipa::path(get, path = "/api/v1/inventory", tag = TAG,
    params(("sku" = Vec<String>, Query, description = "Repeat (`sku=A&sku=B`) or comma-separate; 1 to 100 SKUs")),
    responses(
        (status = 200, description = "Known SKUs and the unknown ones", body = BatchAvailability),
        (status = 422, description = "No SKU, more than 100, or a malformed one (`sku[i]`)", body = Problem)))]
pub async fn batch_availability(State(svc): Svc, RawQuery(query): RawQuery) -> ApiResult<Json<BatchAvailability>> {
    let skus = batch_skus(query.as_deref())?;
    Ok(Json(availability(&svc, &skus).await?))
}

/// What inventory can sell now of `skus`, as the handler above and a direct call
/// ([`crate::direct`]) answer.
pub(crate) async fn availability(svc: &InventoryService, skus: &[Sku]) -> ApiResult<BatchAvailability> {
    if skus.is_empty() || skus.len() > MAX_BATCH_SKUS {
        return Err(Problem::invalid_field(
            "sku",
            format!("give 1 to {MAX_BATCH_SKUS} SKUs"),
        ));
    }
    let (found, missing) = svc.availability(skus).await?;
    Ok(BatchAvailability {
        items: found.iter().map(StockView::from).collect(),
        not_found: missing.into_iter().map(|s| s.to_string()).collect(),
    })
}

/// One SKU's stock (public).
#[utoipa::path(get, path = "/api/v1/inventory/{sku}", tag = TAG,
    params(("sku" = String, Path, description = "SKU, `[A-Z0-9-]{3,64}`")),
    responses((status = 200, description = "The stock", body = StockView),
        (status = 404, description = "No stock row for this SKU", body = Problem),
        (status = 422, description = "Malformed SKU", body = Problem)))]
pub async fn get_stock(State(svc): Svc, Path(sku): Path<String>) -> ApiResult<Json<StockView>> {
    let stock = svc.stock(&parse_sku(&sku)?).await?;
    Ok(Json(StockView::from(&stock)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// `next` from the previous page.
    pub cursor: Option<String>,
}

fn decode_sku_cursor(cursor: Option<&str>) -> ApiResult<Option<Sku>> {
    let Some(text) = cursor else { return Ok(None) };
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| Sku::parse(&s).ok())
        .map(Some)
        .ok_or_else(|| Problem::invalid_field("cursor", "is not a cursor returned by this API"))
}

/// SKUs whose available units are at or below their threshold (staff), in SKU order.
#[utoipa::path(get, path = "/api/v1/inventory/low-stock", tag = TAG, security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "One page of low SKUs", body = Page<StockView>),
        (status = 403, description = "Not staff", body = Problem),
        (status = 422, description = "Bad limit or cursor", body = Problem)))]
pub async fn low_stock(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<StockView>>> {
    let limit = pagination::limit(q.limit)?;
    let after = decode_sku_cursor(q.cursor.as_deref())?;
    let mut rows = svc.low_stock(&auth, after.as_ref(), limit + 1).await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|s| URL_SAFE_NO_PAD.encode(s.sku.as_str()))
    } else {
        None
    };
    Ok(Json(Page {
        items: rows.iter().map(StockView::from).collect(),
        next,
    }))
}

/// Adjusts on_hand (admin, fulfilment, catalog_manager, service) and records it in the ledger.
/// on_hand can never go negative nor below the reserved units. With `Idempotency-Key`, a retry
/// of the same request answers as the first did (`Idempotent-Replayed: true`) without adjusting
/// again; the same key with another request is a 422.
#[utoipa::path(post, path = "/api/v1/inventory/{sku}/adjustments", tag = TAG, security(("bearer" = [])),
    params(("sku" = String, Path, description = "SKU"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = AdjustmentRequest,
    responses((status = 201, description = "Adjusted; the stock as it is now", body = StockView),
        (status = 403, description = "Role may not adjust stock", body = Problem),
        (status = 404, description = "No stock row for this SKU (rows come from the catalogue)", body = Problem),
        (status = 409, description = "on_hand would go negative or below reserved", body = Problem),
        (status = 422, description = "Invalid kind, quantity or reason", body = Problem)))]
pub async fn adjust(
    State(svc): Svc,
    auth: AuthUser,
    headers: HeaderMap,
    Path(sku): Path<String>,
    Json(req): Json<AdjustmentRequest>,
) -> ApiResult<Response> {
    let key = platform::idempotency::header(&headers)?;
    let answer = adjust_once(&svc, &auth, &sku, key, &req).await?;
    let mut response = (StatusCode::CREATED, Json(StockView::from(&answer.stock))).into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// An adjustment of `sku`, as the handler above and a direct call ([`crate::direct`]) make it.
pub(crate) async fn adjust_once(
    svc: &InventoryService,
    auth: &AuthUser,
    sku: &str,
    key: Option<&str>,
    req: &AdjustmentRequest,
) -> ApiResult<AdjustAnswer> {
    Ok(svc
        .adjust_once(auth, &parse_sku(sku)?, req.kind, req.quantity, &req.reason, key)
        .await?)
}

/// The SKU's ledger (staff), newest first.
#[utoipa::path(get, path = "/api/v1/inventory/{sku}/movements", tag = TAG, security(("bearer" = [])),
    params(("sku" = String, Path, description = "SKU"), PageQuery),
    responses((status = 200, description = "One page of movements", body = Page<MovementView>),
        (status = 404, description = "No stock row for this SKU", body = Problem),
        (status = 422, description = "Bad SKU, limit or cursor", body = Problem)))]
pub async fn movements(
    State(svc): Svc,
    auth: AuthUser,
    Path(sku): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<MovementView>>> {
    let sku = parse_sku(&sku)?;
    let limit = pagination::limit(q.limit)?;
    let before = pagination::decode_cursor(q.cursor.as_deref())?;
    let rows = svc.movements(&auth, &sku, before, limit + 1).await?;
    let page = pagination::page_from(rows, limit, |m| m.id);
    Ok(Json(Page {
        items: page.items.into_iter().map(MovementView::from).collect(),
        next: page.next,
    }))
}

/// Sets a SKU's low-stock threshold (admin, fulfilment, catalog_manager).
#[utoipa::path(put, path = "/api/v1/inventory/{sku}/threshold", tag = TAG, security(("bearer" = [])),
    params(("sku" = String, Path, description = "SKU")), request_body = ThresholdRequest,
    responses((status = 200, description = "Updated", body = StockView),
        (status = 404, description = "No stock row for this SKU", body = Problem),
        (status = 422, description = "Threshold out of range", body = Problem)))]
pub async fn set_threshold(
    State(svc): Svc,
    auth: AuthUser,
    Path(sku): Path<String>,
    Json(req): Json<ThresholdRequest>,
) -> ApiResult<Json<StockView>> {
    let stock = svc.set_threshold(&auth, &parse_sku(&sku)?, req.threshold).await?;
    Ok(Json(StockView::from(&stock)))
}

fn reservation_response(answer: ReservationAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/inventory/reservations/{}", answer.id)) {
        headers.insert(header::LOCATION, location);
    }
    if answer.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Reserves units of one or more SKUs (admin, fulfilment), all or nothing.
///
/// `Idempotency-Key` is optional but recommended for retries: the same key with the same body
/// returns the first successful answer (same status and body, plus `Idempotent-Replayed: true`);
/// the same key with a different body is a 422. Keys are scoped to the caller and kept 24 hours.
/// A refused request (409/422) records nothing, so retrying it re-evaluates the stock.
#[utoipa::path(post, path = "/api/v1/inventory/reservations", tag = TAG, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = CreateReservationRequest,
    responses((status = 201, description = "Reserved", body = ReservationView),
        (status = 403, description = "Role may not reserve", body = Problem),
        (status = 409, description = "Not enough available for a SKU (named in `detail` and `errors`), or SKU discontinued", body = Problem),
        (status = 422, description = "Invalid field (`items[i].sku`, `items[i].qty`, `ttl_seconds`, `reference`), unknown SKU, or key reused with another body", body = Problem)))]
pub async fn create_reservation(
    State(svc): Svc,
    auth: AuthUser,
    headers: HeaderMap,
    Json(req): Json<CreateReservationRequest>,
) -> ApiResult<Response> {
    let key = platform::idempotency::header(&headers)?;
    Ok(reservation_response(reserve(&svc, &auth, key, req).await?))
}

/// A reservation, as the handler above and a direct call ([`crate::direct`]) make it.
pub(crate) async fn reserve(
    svc: &InventoryService,
    auth: &AuthUser,
    key: Option<&str>,
    req: CreateReservationRequest,
) -> ApiResult<ReservationAnswer> {
    let request = ReservationRequest {
        reference: req.reference,
        items: req
            .items
            .into_iter()
            .map(|l| RawLine { sku: l.sku, qty: l.qty })
            .collect(),
        ttl_seconds: req.ttl_seconds,
    };
    Ok(svc.reserve(auth, key, request).await?)
}

/// One reservation (admin, fulfilment, support).
#[utoipa::path(get, path = "/api/v1/inventory/reservations/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Reservation id")),
    responses((status = 200, description = "The reservation", body = ReservationView),
        (status = 404, description = "No such reservation", body = Problem)))]
pub async fn get_reservation(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<ReservationView>> {
    let r = svc.reservation(&auth, parse_id(&id)?).await?;
    Ok(Json(ReservationView::from(&r)))
}

/// Gives the units back (admin, fulfilment). Releasing a released reservation is a no-op;
/// a committed or expired one is a 409.
#[utoipa::path(post, path = "/api/v1/inventory/reservations/{id}/release", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Reservation id")),
    responses((status = 200, description = "Released", body = ReservationView),
        (status = 404, description = "No such reservation", body = Problem),
        (status = 409, description = "Already committed or expired", body = Problem)))]
pub async fn release_reservation(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<ReservationView>> {
    let r = svc.release(&auth, parse_id(&id)?).await?;
    Ok(Json(ReservationView::from(&r)))
}

/// Turns the reserved units into a deduction (admin, fulfilment): on_hand and reserved both
/// go down by the units. Committing a committed reservation is a no-op; a released or expired
/// one (including one past `expires_at`) is a 409.
#[utoipa::path(post, path = "/api/v1/inventory/reservations/{id}/commit", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Reservation id")),
    responses((status = 200, description = "Committed", body = ReservationView),
        (status = 404, description = "No such reservation", body = Problem),
        (status = 409, description = "Released, expired, or past its deadline", body = Problem)))]
pub async fn commit_reservation(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<ReservationView>> {
    let r = svc.commit(&auth, parse_id(&id)?).await?;
    Ok(Json(ReservationView::from(&r)))
}

/// Every inventory route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<InventoryService>> {
    OpenApiRouter::new()
        .routes(routes!(batch_availability))
        .routes(routes!(low_stock))
        .routes(routes!(create_reservation))
        .routes(routes!(get_reservation))
        .routes(routes!(release_reservation))
        .routes(routes!(commit_reservation))
        .routes(routes!(get_stock))
        .routes(routes!(adjust))
        .routes(routes!(movements))
        .routes(routes!(set_threshold))
}

/// How each inventory error answers over HTTP: the one mapping, which every handler uses through `?`.
mod problem {
    use platform::Problem;

    use crate::service::InventoryError;

    impl From<InventoryError> for Problem {
        fn from(e: InventoryError) -> Self {
            let message = e.to_string();
            match e {
                InventoryError::Validation(errors) => Problem::validation(errors),
                InventoryError::Forbidden(_) => Problem::forbidden(message),
                InventoryError::NotFound(_) => Problem::not_found(message),
                InventoryError::Conflict { errors, .. } => Problem::conflict(message).with_errors(errors),
                InventoryError::Internal(e) => Problem::from_error(&e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(p: Problem) -> Vec<String> {
        p.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn batch_skus_accepts_repeats_and_commas() {
        let skus = batch_skus(Some("sku=AAA-1&sku=bbb-2,CCC-3")).expect("ok");
        assert_eq!(
            skus.iter().map(Sku::as_str).collect::<Vec<_>>(),
            ["AAA-1", "BBB-2", "CCC-3"]
        );
        assert_eq!(fields(batch_skus(None).expect_err("none")), ["sku"]);
        assert_eq!(
            fields(batch_skus(Some("sku=AAA-1&sku=x")).expect_err("bad")),
            ["sku[1]"]
        );
        assert_eq!(
            fields(batch_skus(Some("sku=AAA-1&foo=1")).expect_err("unknown")),
            ["foo"]
        );
        let many = (0..101).map(|i| format!("sku=SKU-{i}")).collect::<Vec<_>>().join("&");
        assert_eq!(fields(batch_skus(Some(&many)).expect_err("too many")), ["sku"]);
    }

    #[test]
    fn sku_cursors_round_trip() {
        let c = URL_SAFE_NO_PAD.encode("AAA-1");
        assert_eq!(
            decode_sku_cursor(Some(&c)).expect("ok").expect("some").as_str(),
            "AAA-1"
        );
        assert_eq!(fields(decode_sku_cursor(Some("!!")).expect_err("bad")), ["cursor"]);
    }
}
