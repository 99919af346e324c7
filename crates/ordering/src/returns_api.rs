//! The returns (RMA) endpoints: customers request and follow returns of their delivered orders;
//! staff (admin, fulfilment) work the queue under `/api/v1/orders/admin/returns`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use platform::auth::AuthUser;
use platform::http::{Json, Query};
use platform::pagination::{self, Page};
use platform::routes;
use platform::{FieldError, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::api::{ApiError, caller, parse_order_id};
use crate::return_service::{NewReturn, ReceiveReturn, ReturnDecision, ReturnView};
use crate::returns::ReturnStatus;
use crate::service::{FULFILMENT, OrderError, OrderingService};
use crate::store::ReturnFilter;

type Svc = State<Arc<OrderingService>>;
type ApiResult<T> = Result<T, ApiError>;

const TAG: &str = "ordering";

fn parse_return_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| OrderError::NotFound("no such return (ids are UUIDs)".into()).into())
}

/// Requests a return of some or all units of a delivered order, within the return window
/// (`EMPORIUM_RETURN_WINDOW_DAYS` after delivery). The order's customer only.
#[utoipa::path(post, path = "/api/v1/orders/{id}/returns", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")), request_body = NewReturn,
    responses((status = 201, description = "Requested; staff will approve or reject it", body = ReturnView),
        (status = 403, description = "Not the order's customer", body = Problem),
        (status = 404, description = "No such order", body = Problem),
        (status = 409, description = "Not delivered, or the return window closed (`errors[].field` = `order`)", body = Problem),
        (status = 422, description = "Bad `reason`, `lines[i].sku` not on the order, `lines[i].quantity` above what is left", body = Problem)))]
pub async fn request_return(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<NewReturn>,
) -> ApiResult<(StatusCode, Json<ReturnView>)> {
    let view = svc.request_return(&caller(&auth), parse_order_id(&id)?, &req).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The order's returns, oldest first (its customer or staff).
#[utoipa::path(get, path = "/api/v1/orders/{id}/returns", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses((status = 200, description = "The returns", body = Vec<ReturnView>),
        (status = 404, description = "No such order (or not yours)", body = Problem)))]
pub async fn order_returns(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ReturnView>>> {
    Ok(Json(svc.order_returns(&caller(&auth), parse_order_id(&id)?).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReturnQuery {
    /// Only returns in this status (`requested` is the queue to decide).
    pub status: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
}

/// The returns queue (admin, fulfilment), newest first.
#[utoipa::path(get, path = "/api/v1/orders/admin/returns", tag = TAG, security(("bearer" = [])), params(ReturnQuery),
    responses((status = 200, description = "One page", body = Page<ReturnView>),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 422, description = "Bad status, limit or cursor", body = Problem)))]
pub async fn list_returns(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<ReturnQuery>,
) -> ApiResult<Json<Page<ReturnView>>> {
    auth.require_any_role(FULFILMENT)?;
    let mut errors = Vec::new();
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => s
            .parse::<ReturnStatus>()
            .map_err(|m| errors.push(FieldError::new("status", m)))
            .ok(),
    };
    let limit = pagination::limit(q.limit).map_err(|p| errors.extend(p.errors));
    let before = pagination::decode_cursor(q.cursor.as_deref()).map_err(|p| errors.extend(p.errors));
    let (Ok(limit), Ok(before), true) = (limit, before, errors.is_empty()) else {
        return Err(OrderError::Validation(errors).into());
    };
    let filter = ReturnFilter {
        status,
        user_id: None,
        before,
        limit: limit + 1,
    };
    let rows = svc.list_returns(&caller(&auth), &filter).await?;
    let page = pagination::page_from(rows, limit, |r| r.id);
    Ok(Json(Page {
        items: page.items.iter().map(ReturnView::from).collect(),
        next: page.next,
    }))
}

/// One return (admin, fulfilment).
#[utoipa::path(get, path = "/api/v1/orders/admin/returns/{return_id}", tag = TAG, security(("bearer" = [])),
    params(("return_id" = Uuid, Path, description = "Return id")),
    responses((status = 200, description = "The return", body = ReturnView),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 404, description = "No such return", body = Problem)))]
pub async fn get_return(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<ReturnView>> {
    auth.require_any_role(FULFILMENT)?;
    Ok(Json(svc.return_detail(&caller(&auth), parse_return_id(&id)?).await?))
}

/// Approves a requested return (admin, fulfilment); the customer is mailed to send the parcel.
#[utoipa::path(post, path = "/api/v1/orders/admin/returns/{return_id}/approve", tag = TAG, security(("bearer" = [])),
    params(("return_id" = Uuid, Path, description = "Return id")), request_body = ReturnDecision,
    responses((status = 200, description = "Approved", body = ReturnView),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 404, description = "No such return", body = Problem),
        (status = 409, description = "Not requested (already decided; current status in `detail`)", body = Problem),
        (status = 422, description = "`note` too long", body = Problem)))]
pub async fn approve_return(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<ReturnDecision>,
) -> ApiResult<Json<ReturnView>> {
    auth.require_any_role(FULFILMENT)?;
    Ok(Json(
        svc.decide_return(&caller(&auth), parse_return_id(&id)?, true, &req)
            .await?,
    ))
}

/// Rejects a requested return with a note for the customer (admin, fulfilment).
#[utoipa::path(post, path = "/api/v1/orders/admin/returns/{return_id}/reject", tag = TAG, security(("bearer" = [])),
    params(("return_id" = Uuid, Path, description = "Return id")), request_body = ReturnDecision,
    responses((status = 200, description = "Rejected", body = ReturnView),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 404, description = "No such return", body = Problem),
        (status = 409, description = "Not requested (already decided)", body = Problem),
        (status = 422, description = "`note` missing or too long", body = Problem)))]
pub async fn reject_return(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<ReturnDecision>,
) -> ApiResult<Json<ReturnView>> {
    auth.require_any_role(FULFILMENT)?;
    Ok(Json(
        svc.decide_return(&caller(&auth), parse_return_id(&id)?, false, &req)
            .await?,
    ))
}

/// Marks an approved return received (admin, fulfilment): per line whether it goes back to stock,
/// and the refund (default: the lines' value with their share of discount and tax). The restock
/// (through inventory) and the refund (through payments) follow, resumed after a crash.
#[utoipa::path(post, path = "/api/v1/orders/admin/returns/{return_id}/receive", tag = TAG, security(("bearer" = [])),
    params(("return_id" = Uuid, Path, description = "Return id")), request_body = ReceiveReturn,
    responses((status = 200, description = "Received (`status` refunded once the refund went through; `processing` while it runs)", body = ReturnView),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 404, description = "No such return", body = Problem),
        (status = 409, description = "Not approved (current status in `detail`)", body = Problem),
        (status = 422, description = "`lines[i].sku` not on the return, `refund_amount` negative or above what is left", body = Problem)))]
pub async fn receive_return(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<ReceiveReturn>,
) -> ApiResult<Json<ReturnView>> {
    auth.require_any_role(FULFILMENT)?;
    let (caller, id) = (caller(&auth), parse_return_id(&id)?);
    // In a task of its own: a client that disconnects must not stop the steps half-way (the
    // recovery loop would finish them, but only after the lease lapses).
    let view = tokio::spawn(tracing::Instrument::in_current_span(async move {
        svc.receive_return(&caller, id, &req).await
    }))
    .await
    .map_err(|e| Problem::internal(format!("the receipt task failed: {e}")))??;
    Ok(Json(view))
}

/// The returns routes, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<OrderingService>> {
    OpenApiRouter::new()
        .routes(routes!(request_return, order_returns))
        .routes(routes!(list_returns))
        .routes(routes!(get_return))
        .routes(routes!(approve_return))
        .routes(routes!(reject_return))
        .routes(routes!(receive_return))
}
