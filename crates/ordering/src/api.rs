//! Ordering's HTTP API: thin handlers that parse, call the service and shape the answer.
//!
//! Everything needs a bearer token except `GET /api/v1/orders/shipping-methods`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::auth::AuthUser;
use platform::http::Path;
use platform::http::{Json, Query, RequestContext, parse_json};
use platform::money::{MoneyInput, MoneyView};
use platform::pagination::{self, Page};
use platform::routes;
use platform::{FieldError, Problem};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::domain::{Country, OrderId, OrderStatus, ShippingMethod};
use crate::invoice::{InvoiceDocument, InvoiceLine, Party, render_html, render_pdf};
use crate::service::{Caller, CheckoutRequest, NewCoupon, OrderError, OrderingService};
use crate::store::{OrderDetail, OrderFilter};
use crate::views::{CouponView, OrderSummary, OrderView, QuoteView, order_summary};
use contracts::api::ordering::{
    CancelRequest, RefundBody, RefundRequestBody, ShipRequest, ShippingMethodView, ShippingMethods,
};

type Svc = State<Arc<OrderingService>>;
type ApiResult<T> = Result<T, ApiError>;

const TAG: &str = "ordering";

/// An ordering error as an HTTP answer: problem+json, and for a price change the current quote.
/// A problem raised by the API layer itself (a body that does not parse, a failed task) is
/// answered as it is, with its own status.
pub enum ApiError {
    Order(OrderError),
    Problem(Problem),
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        Self::Order(e)
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::Problem(p)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            Self::Problem(problem) => return problem.into_response(),
            Self::Order(error) => error,
        };
        let quote = match &error {
            OrderError::PriceChanged { quote, .. } => Some(quote.as_ref().clone()),
            _ => None,
        };
        let mut problem = Problem::from(error);
        let Some(quote) = quote else {
            return problem.into_response();
        };
        if let Some(ctx) = RequestContext::current() {
            problem.instance.get_or_insert(ctx.path);
            problem.request_id.get_or_insert(ctx.request_id);
        }
        let mut body = serde_json::to_value(&problem).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut body {
            map.insert("quote".into(), serde_json::to_value(quote).unwrap_or_default());
        }
        let mut response = (StatusCode::CONFLICT, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(platform::problem::PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

pub(crate) fn caller(auth: &AuthUser) -> Caller {
    Caller {
        id: auth.id(),
        staff: auth.has_role("admin") || auth.has_role("fulfilment"),
        admin: auth.has_role("admin"),
    }
}

/// An authenticated request's own bearer token (forwarded to cart and payments).
fn bearer(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn parse_order_id(text: &str) -> Result<OrderId, ApiError> {
    Uuid::parse_str(text)
        .map(OrderId)
        .map_err(|_| OrderError::NotFound("no such order (ids are UUIDs)".into()).into())
}

fn checkout_body(body: &serde_json::Value) -> Result<CheckoutRequest, ApiError> {
    parse_json::<CheckoutRequest>(body.to_string().as_bytes()).map_err(ApiError::from)
}

// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShippingQuery {
    /// A destination (ISO 3166-1 alpha-2): adds its tax rate to the answer.
    pub country: Option<String>,
}

fn method_view(m: &ShippingMethod, currency: &str) -> ShippingMethodView {
    ShippingMethodView {
        id: m.id.clone(),
        name: m.name.clone(),
        price: MoneyView::new(m.price, currency),
        free_over: m.free_over.map(|f| MoneyView::new(f, currency)),
    }
}

/// Shipping methods with their prices, and the supported destinations (public).
#[utoipa::path(get, path = "/api/v1/orders/shipping-methods", tag = TAG, params(ShippingQuery),
    responses((status = 200, description = "The methods", body = ShippingMethods),
        (status = 422, description = "`country` malformed or not a destination", body = Problem)))]
pub async fn shipping_methods(
    State(svc): Svc,
    Query(q): Query<ShippingQuery>,
) -> Result<Json<ShippingMethods>, Problem> {
    let config = svc.config();
    let tax_rate_bp = match q.country {
        None => None,
        Some(raw) => {
            let country = Country::parse(&raw).map_err(|m| Problem::invalid_field("country", m))?;
            Some(
                config
                    .tax_rate(&country)
                    .ok_or_else(|| Problem::invalid_field("country", format!("we do not ship to {country}")))?,
            )
        }
    };
    Ok(Json(ShippingMethods {
        currency: config.currency.to_string(),
        methods: config
            .shipping_methods
            .iter()
            .map(|m| method_view(m, config.currency.as_str()))
            .collect(),
        countries: config.tax_rates.keys().map(ToString::to_string).collect(),
        tax_rate_bp,
    }))
}

/// Totals and current prices of a would-be order (same body as placing; `payment_method` is
/// ignored). Writes nothing; a stale `unit_price`/`expected_total` is a 409 like checkout's.
#[utoipa::path(post, path = "/api/v1/orders/quote", tag = TAG, security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses((status = 200, description = "The quote", body = QuoteView),
        (status = 409, description = "Price changed (`type` …/price-changed, body has `quote`) or not enough stock", body = Problem),
        (status = 422, description = "Invalid field (items[i].sku, shipping_address.country, shipping_method, coupon, …)", body = Problem)))]
pub async fn quote(
    State(svc): Svc,
    _auth: AuthUser,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Json<QuoteView>> {
    let req = checkout_body(&body)?;
    Ok(Json(svc.quote(&req, &bearer(&headers)).await?))
}

/// Places an order: prices from the catalogue, stock reserved, payment captured, reservation
/// committed. `Idempotency-Key` is required: a retry with the same key and body returns the same
/// order (`Idempotent-Replayed: true`), never a second one or a second charge.
#[utoipa::path(post, path = "/api/v1/orders", tag = TAG, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")),
    request_body = CheckoutRequest,
    responses((status = 201, description = "Placed: confirmed, or payment_failed", body = OrderView),
        (status = 200, description = "Replay of an earlier request with this key", body = OrderView),
        (status = 202, description = "Placed; the payment is still processing (awaiting_payment)", body = OrderView),
        (status = 409, description = "Price changed (body has `quote`), not enough stock (`items[i].quantity`), or the first request is still running", body = Problem),
        (status = 422, description = "Invalid field, unknown SKU, bad coupon, unknown payment method, or the key reused with another body", body = Problem),
        (status = 503, description = "A context we depend on is unavailable; nothing was written", body = Problem)))]
pub async fn place(
    State(svc): Svc,
    auth: AuthUser,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    let key = platform::idempotency::required(&headers)?.into_inner();
    let req = checkout_body(&body)?;
    let (caller, bearer) = (caller(&auth), bearer(&headers));
    // The checkout runs in a task of its own: a client that disconnects must not cancel the saga
    // between two steps (leaving a claimed key without an order, or a step for the recovery loop).
    // In the request's span, so the saga's calls and events continue the request's trace.
    let placed = tokio::spawn(tracing::Instrument::in_current_span(async move {
        svc.place(&caller, &bearer, &key, &body, &req).await
    }))
    .await
    .map_err(|e| Problem::internal(format!("the checkout task failed: {e}")))??;
    let status = if placed.replayed {
        StatusCode::OK
    } else if placed.order.status == OrderStatus::AwaitingPayment {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let mut response = (status, Json(&placed.order)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/orders/{}", placed.order.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if placed.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only orders in this status.
    pub status: Option<String>,
    /// Placed at or after (RFC 3339).
    pub since: Option<String>,
    /// Placed before (RFC 3339).
    pub until: Option<String>,
    /// Admin list only: one customer's orders.
    pub user_id: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
}

fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, FieldError> {
    raw.map(|t| {
        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|_| FieldError::new(field, "must be an RFC 3339 timestamp"))
    })
    .transpose()
}

fn filter(q: &ListQuery, user: Option<Uuid>, allow_user_filter: bool) -> ApiResult<OrderFilter> {
    let mut errors = Vec::new();
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => s
            .parse::<OrderStatus>()
            .map_err(|m| errors.push(FieldError::new("status", m)))
            .ok(),
    };
    let since = parse_time("since", q.since.as_deref())
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let until = parse_time("until", q.until.as_deref())
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let user_id = match (&q.user_id, allow_user_filter) {
        (None, _) => user,
        (Some(_), false) => {
            errors.push(FieldError::new("user_id", "is not a known parameter"));
            None
        }
        (Some(u), true) => Uuid::parse_str(u)
            .map_err(|_| errors.push(FieldError::new("user_id", "must be a UUID")))
            .ok(),
    };
    let limit = pagination::limit(q.limit).map_err(|p| {
        errors.extend(p.errors);
    });
    let before = pagination::decode_cursor(q.cursor.as_deref()).map_err(|p| errors.extend(p.errors));
    match (limit, before) {
        (Ok(limit), Ok(before)) if errors.is_empty() => Ok(OrderFilter {
            user_id,
            status,
            since,
            until,
            before,
            limit: limit + 1,
        }),
        _ => Err(OrderError::Validation(errors).into()),
    }
}

fn page(rows: Vec<crate::store::Order>, limit: u32, caller: &Caller) -> Page<OrderSummary> {
    let page = pagination::page_from(rows, limit - 1, |o| o.id.0);
    Page {
        items: page
            .items
            .iter()
            .map(|o| order_summary(o, caller.viewer(o.user_id)))
            .collect(),
        next: page.next,
    }
}

/// My orders, newest first, with filters and cursor pagination.
#[utoipa::path(get, path = "/api/v1/orders", tag = TAG, security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "One page", body = Page<OrderSummary>),
        (status = 422, description = "Bad filter, limit or cursor", body = Problem)))]
pub async fn my_orders(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<OrderSummary>>> {
    let f = filter(&q, Some(auth.id()), false)?;
    let limit = f.limit;
    Ok(Json(page(svc.list(&f).await?, limit, &caller(&auth))))
}

/// All orders (admin, fulfilment), newest first, with filters and cursor pagination.
#[utoipa::path(get, path = "/api/v1/orders/admin/orders", tag = TAG, security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "One page", body = Page<OrderSummary>),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 422, description = "Bad filter, limit or cursor", body = Problem)))]
pub async fn admin_orders(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<OrderSummary>>> {
    auth.require_any_role(crate::service::FULFILMENT)?;
    let f = filter(&q, None, true)?;
    let limit = f.limit;
    Ok(Json(page(svc.list(&f).await?, limit, &caller(&auth))))
}

/// One order with lines, totals, address, payment summary, timeline, tracking and invoice number
/// (its owner, admin or fulfilment; anyone else gets a 404).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses((status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order (or not yours)", body = Problem)))]
pub async fn get_order(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<OrderView>> {
    Ok(Json(svc.order(&caller(&auth), parse_order_id(&id)?).await?))
}

/// Cancels an order before it ships (its owner or an admin). After payment the full amount is
/// refunded and the stock given back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")), request_body = CancelRequest,
    responses((status = 200, description = "Cancelled", body = OrderView),
        (status = 404, description = "No such order", body = Problem),
        (status = 409, description = "Not cancellable in its status (named in `detail`)", body = Problem)))]
pub async fn cancel(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<CancelRequest>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(
        svc.cancel(&caller(&auth), parse_order_id(&id)?, req.reason).await?,
    ))
}

/// Asks for a refund (the customer); recorded in the timeline for an admin to decide.
#[utoipa::path(post, path = "/api/v1/orders/{id}/refund-requests", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")), request_body = RefundRequestBody,
    responses((status = 201, description = "Recorded", body = OrderView),
        (status = 404, description = "No such order", body = Problem),
        (status = 409, description = "Nothing to refund in this status", body = Problem),
        (status = 422, description = "Missing reason", body = Problem)))]
pub async fn refund_request(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<RefundRequestBody>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let view = svc
        .request_refund(&caller(&auth), parse_order_id(&id)?, &req.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Marks a confirmed order shipped (admin, fulfilment).
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")), request_body = ShipRequest,
    responses((status = 200, description = "Shipped", body = OrderView),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 409, description = "Not confirmed (current status in `detail`)", body = Problem),
        (status = 422, description = "Bad carrier or tracking_number", body = Problem)))]
pub async fn ship(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<ShipRequest>,
) -> ApiResult<Json<OrderView>> {
    auth.require_any_role(crate::service::FULFILMENT)?;
    let id = parse_order_id(&id)?;
    Ok(Json(
        svc.ship(&caller(&auth), id, &req.carrier, &req.tracking_number).await?,
    ))
}

/// Marks a shipped order delivered (admin, fulfilment).
#[utoipa::path(post, path = "/api/v1/orders/{id}/deliver", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses((status = 200, description = "Delivered", body = OrderView),
        (status = 403, description = "Not admin or fulfilment", body = Problem),
        (status = 409, description = "Not shipped (current status in `detail`)", body = Problem)))]
pub async fn deliver(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<OrderView>> {
    auth.require_any_role(crate::service::FULFILMENT)?;
    Ok(Json(svc.deliver(&caller(&auth), parse_order_id(&id)?).await?))
}

/// Refunds part or all of a paid order (admin). `Idempotency-Key` required.
#[utoipa::path(post, path = "/api/v1/orders/{id}/refunds", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")),
    request_body = RefundBody,
    responses((status = 201, description = "Refunded: partially_refunded or refunded", body = OrderView),
        (status = 200, description = "Replay of an earlier refund with this key", body = OrderView),
        (status = 403, description = "Not admin", body = Problem),
        (status = 409, description = "Not refundable in its status", body = Problem),
        (status = 422, description = "`amount` above what is left, or the key reused with another body", body = Problem)))]
pub async fn refund(
    State(svc): Svc,
    auth: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<RefundBody>,
) -> ApiResult<Response> {
    auth.require_any_role(&["admin"])?;
    let key = platform::idempotency::required(&headers)?.into_inner();
    let id = parse_order_id(&id)?;
    if let Some(c) = req.amount.as_ref().and_then(MoneyInput::currency)
        && !c.eq_ignore_ascii_case(svc.config().currency.as_str())
    {
        return Err(Problem::invalid_field(
            "amount.currency",
            format!("orders are taken in {} only", svc.config().currency),
        )
        .into());
    }
    let amount = req.amount.as_ref().map(MoneyInput::amount);
    let (view, replayed) = svc.refund(&caller(&auth), id, &key, amount, &req.reason).await?;
    let mut response = (if replayed { StatusCode::OK } else { StatusCode::CREATED }, Json(view)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Creates a coupon (admin).
#[utoipa::path(post, path = "/api/v1/orders/admin/coupons", tag = TAG, security(("bearer" = [])),
    request_body = NewCoupon,
    responses((status = 201, description = "Created", body = CouponView),
        (status = 403, description = "Not admin", body = Problem),
        (status = 409, description = "Code taken", body = Problem),
        (status = 422, description = "Invalid field", body = Problem)))]
pub async fn create_coupon(
    State(svc): Svc,
    auth: AuthUser,
    Json(req): Json<NewCoupon>,
) -> ApiResult<(StatusCode, Json<CouponView>)> {
    Ok((StatusCode::CREATED, Json(svc.create_coupon(&caller(&auth), req).await?)))
}

/// Every coupon (admin).
#[utoipa::path(get, path = "/api/v1/orders/admin/coupons", tag = TAG, security(("bearer" = [])),
    responses((status = 200, description = "Coupons by code", body = Vec<CouponView>),
        (status = 403, description = "Not admin", body = Problem)))]
pub async fn coupons(State(svc): Svc, auth: AuthUser) -> ApiResult<Json<Vec<CouponView>>> {
    Ok(Json(svc.coupons(&caller(&auth)).await?))
}

/// Deactivates a coupon (admin); orders that used it keep their discount.
#[utoipa::path(delete, path = "/api/v1/orders/admin/coupons/{code}", tag = TAG, security(("bearer" = [])),
    params(("code" = String, Path, description = "Coupon code")),
    responses((status = 200, description = "Deactivated", body = CouponView),
        (status = 403, description = "Not admin", body = Problem),
        (status = 404, description = "No such coupon", body = Problem)))]
pub async fn deactivate_coupon(
    State(svc): Svc,
    auth: AuthUser,
    Path(code): Path<String>,
) -> ApiResult<Json<CouponView>> {
    Ok(Json(svc.deactivate_coupon(&caller(&auth), &code).await?))
}

fn invoice_document(svc: &OrderingService, d: &OrderDetail) -> ApiResult<InvoiceDocument> {
    let o = &d.order;
    let (Some(number), Some(issued_at)) = (o.invoice_number.clone(), o.paid_at) else {
        return Err(OrderError::Conflict {
            detail: format!("the order is {}: it has no invoice until it is paid", o.status),
            errors: Vec::new(),
        }
        .into());
    };
    let seller = &svc.config().seller;
    let a = &o.shipping_address;
    let mut buyer_lines = vec![a.line1.clone()];
    buyer_lines.extend(a.line2.clone());
    buyer_lines.push(format!("{} {}", a.postal_code, a.city));
    buyer_lines.push(a.country.to_string());
    Ok(InvoiceDocument {
        invoice_number: number,
        order_number: o.number.to_string(),
        issued_at,
        seller: Party {
            name: seller.first().cloned().unwrap_or_default(),
            address_lines: seller.iter().skip(1).cloned().collect(),
        },
        buyer: Party {
            name: a.name.clone(),
            address_lines: buyer_lines,
        },
        currency: o.currency.to_string(),
        lines: d
            .lines
            .iter()
            .map(|l| InvoiceLine {
                sku: l.sku.to_string(),
                description: l.name.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
                line_total: l.line_total,
            })
            .collect(),
        subtotal: o.totals.subtotal,
        discount: o.totals.discount,
        shipping: o.totals.shipping,
        tax: o.totals.tax,
        tax_rate_bp: o.totals.tax_rate_bp,
        total: o.totals.total,
        refunded: o.refunded,
        payment: match (&o.payment_brand, &o.payment_last4) {
            (Some(brand), Some(last4)) => Some(format!("{brand} •••• {last4}")),
            _ => None,
        },
    })
}

/// The invoice of a paid order as a printable HTML page (its owner or staff).
#[utoipa::path(get, path = "/api/v1/orders/{id}/invoice", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses((status = 200, description = "HTML invoice", content_type = "text/html", body = String),
        (status = 404, description = "No such order", body = Problem),
        (status = 409, description = "Not paid yet: no invoice", body = Problem)))]
pub async fn invoice_html(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Response> {
    let detail = svc.detail(&caller(&auth), parse_order_id(&id)?).await?;
    let doc = invoice_document(&svc, &detail)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        render_html(&doc),
    )
        .into_response())
}

/// The invoice of a paid order as a PDF download (its owner or staff).
#[utoipa::path(get, path = "/api/v1/orders/{id}/invoice.pdf", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses((status = 200, description = "PDF invoice", content_type = "application/pdf", body = Vec<u8>),
        (status = 404, description = "No such order", body = Problem),
        (status = 409, description = "Not paid yet: no invoice", body = Problem)))]
pub async fn invoice_pdf(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Response> {
    let detail = svc.detail(&caller(&auth), parse_order_id(&id)?).await?;
    let doc = invoice_document(&svc, &detail)?;
    let disposition = format!("attachment; filename=\"invoice-{}.pdf\"", doc.invoice_number);
    let mut response = render_pdf(&doc).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Every ordering route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<OrderingService>> {
    OpenApiRouter::new()
        .routes(routes!(shipping_methods))
        .routes(routes!(quote))
        .routes(routes!(place, my_orders))
        .routes(routes!(admin_orders))
        .routes(routes!(create_coupon, coupons))
        .routes(routes!(deactivate_coupon))
        .routes(routes!(get_order))
        .routes(routes!(cancel))
        .routes(routes!(refund_request))
        .routes(routes!(ship))
        .routes(routes!(deliver))
        .routes(routes!(refund))
        .routes(routes!(invoice_html))
        .routes(routes!(invoice_pdf))
        .merge(crate::returns_api::routes())
}

/// How each ordering error answers over HTTP: the one mapping, which every handler uses through `?`.
mod problem {
    use platform::Problem;

    use crate::service::OrderError;

    impl From<OrderError> for Problem {
        fn from(e: OrderError) -> Self {
            let message = e.to_string();
            match e {
                OrderError::Validation(errors) => Problem::validation(errors),
                OrderError::Forbidden(_) => Problem::forbidden(message),
                OrderError::NotFound(_) => Problem::not_found(message),
                OrderError::Conflict { errors, .. } => Problem::conflict(message).with_errors(errors),
                OrderError::PriceChanged { errors, .. } => {
                    Problem::new(axum::http::StatusCode::CONFLICT, "price-changed", "Prices changed")
                        .with_detail("the current prices differ from the ones sent; review the quote and confirm")
                        .with_errors(errors)
                }
                OrderError::Unavailable(_) => Problem::unavailable(message).with_retry_after(2),
                OrderError::Internal(e) => Problem::from_error(&e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: impl Into<ApiError>) -> StatusCode {
        e.into().into_response().status()
    }

    #[test]
    fn a_problem_keeps_its_status() {
        assert_eq!(
            status(Problem::internal("the checkout task failed")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status(Problem::unavailable("busy")), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(Problem::not_found("no such order")), StatusCode::NOT_FOUND);
        assert_eq!(status(Problem::forbidden("not yours")), StatusCode::FORBIDDEN);
        assert_eq!(
            status(Problem::invalid_field("country", "unknown")),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn an_order_error_maps_once() {
        assert_eq!(status(OrderError::conflict("already shipped")), StatusCode::CONFLICT);
        assert_eq!(
            status(OrderError::Unavailable("payments".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(OrderError::invalid("lines", "empty")),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
