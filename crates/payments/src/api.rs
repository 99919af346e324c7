//! Payments' HTTP API: thin handlers that parse, call the service and shape the answer.
//!
//! Payment methods: any authenticated user (for themselves). Payments, captures and refunds:
//! role `service` (ordering) or `admin`. Reads: also `support`, and the customer a payment
//! belongs to. The provider webhook carries no bearer token: its signature authenticates it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::Problem;
use platform::auth::AuthUser;
use platform::http::Path;
use platform::http::{Json, Query};
use platform::routes;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use contracts::api::payments::{CreateMethodRequest, CreatePaymentRequest, CreateRefundRequest};

use crate::domain::PaymentId;
use crate::service::{Answer, NewMethod, PaymentRequest, PaymentsService};
use crate::views::{MethodList, MethodView, PaymentList, PaymentView, RefundList, RefundView, WebhookAck};

type Svc = State<Arc<PaymentsService>>;
type ApiResult<T> = Result<T, Problem>;

const TAG: &str = "payments";
pub use contracts::kernel::IDEMPOTENCY_KEY_HEADER as IDEMPOTENCY_KEY;

fn parse_id(text: &str) -> ApiResult<PaymentId> {
    Uuid::parse_str(text)
        .map(PaymentId)
        .map_err(|_| Problem::not_found("no payment with this id (ids are UUIDs)"))
}

fn answer_response<T: Serialize>(answer: Answer<T>, location: String) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, Json(answer.value)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    if answer.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Saves a card for the caller (any authenticated user).
///
/// Simulated provider: send the card fields. Test cards: 4242424242424242 succeeds;
/// 4000000000000002 is declined (`card_declined`); 4000000000009995 `insufficient_funds`;
/// 4000000000000119 fails with a processing error (retryable); 4000000000000259 succeeds slowly.
/// Stripe (`EMPORIUM_PAYMENTS_PROVIDER=stripe`): send `provider_token`, the `pm_…` or `tok_…` id
/// Stripe.js made in the shopper's browser; card fields are refused.
#[utoipa::path(post, path = "/api/v1/payments/methods", tag = TAG, security(("bearer" = [])),
    request_body = CreateMethodRequest,
    responses((status = 201, description = "Saved", body = MethodView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 422, description = "Invalid `card_number` (Luhn; or any card field in Stripe mode), `exp_month`, `exp_year` (expired), `cvc`, `holder_name`, or `provider_token` (unknown to the provider, malformed, or sent with card fields)", body = Problem),
        (status = 503, description = "The provider did not answer; retry", body = Problem)))]
pub async fn create_method(
    State(svc): Svc,
    auth: AuthUser,
    Json(req): Json<CreateMethodRequest>,
) -> ApiResult<(StatusCode, Json<MethodView>)> {
    let source = crate::domain::card_source(&req).map_err(|errors| {
        Problem::validation(
            errors
                .into_iter()
                .map(|(f, m)| platform::FieldError::new(f, m))
                .collect(),
        )
    })?;
    let method = svc.add_method(&auth, NewMethod { source, save: req.save }).await?;
    Ok((StatusCode::CREATED, Json(MethodView::from(&method))))
}

/// Removes one of the caller's saved cards (its owner only).
#[utoipa::path(delete, path = "/api/v1/payments/methods/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path, description = "`pm_<uuid>`")),
    responses((status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 404, description = "No such method (or not yours, or already removed)", body = Problem)))]
pub async fn delete_method(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    svc.remove_method(&auth, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's saved cards (those created with `"save": true`, not removed), newest first.
#[utoipa::path(get, path = "/api/v1/payments/methods", tag = TAG, security(("bearer" = [])),
    responses((status = 200, description = "The caller's methods", body = MethodList),
        (status = 401, description = "Not signed in", body = Problem)))]
pub async fn list_methods(State(svc): Svc, auth: AuthUser) -> ApiResult<Json<MethodList>> {
    let methods = svc.methods(&auth).await?;
    Ok(Json(MethodList {
        items: methods.iter().map(MethodView::from).collect(),
    }))
}

/// One card (its owner; also service, admin, support), saved or serving one checkout; 404 once
/// removed.
#[utoipa::path(get, path = "/api/v1/payments/methods/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path, description = "`pm_<uuid>`")),
    responses((status = 200, description = "The method", body = MethodView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 404, description = "No such method (or not yours)", body = Problem)))]
pub async fn get_method(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<MethodView>> {
    let method = svc.method(&auth, &id).await?;
    Ok(Json(MethodView::from(&method)))
}

/// Charges a saved card (roles `service`, `admin`).
///
/// `Idempotency-Key` is required: the same key with the same body returns the payment as it is
/// now (with `Idempotent-Replayed: true`), never a second charge; with another body it is a 422.
/// Declines are answers, not errors: 201 with status `declined` and a `decline_code`. When the
/// provider has not answered within `EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS` the answer is 202 with
/// status `processing`; the payment settles in the background and a retry with the same key
/// returns its final state.
#[utoipa::path(post, path = "/api/v1/payments", tag = TAG, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Required; 1 to 255 visible ASCII characters")),
    request_body = CreatePaymentRequest,
    responses((status = 201, description = "Settled: captured, authorized, declined or failed", body = PaymentView),
        (status = 202, description = "Still processing with the provider", body = PaymentView),
        (status = 403, description = "Role may not create payments", body = Problem),
        (status = 409, description = "The order already has a captured, authorized or processing payment", body = Problem),
        (status = 422, description = "Invalid field (`amount`, `currency`, `payment_method`, `Idempotency-Key`), or key reused with another body", body = Problem)))]
pub async fn create_payment(
    State(svc): Svc,
    auth: AuthUser,
    headers: HeaderMap,
    Json(req): Json<CreatePaymentRequest>,
) -> ApiResult<Response> {
    let key = platform::idempotency::header(&headers)?;
    let answer = charge(&svc, &auth, key, req).await?;
    let location = format!("/api/v1/payments/{}", answer.value.id);
    Ok(answer_response(answer, location))
}

/// A charge, as the handler above and a direct call ([`crate::direct`]) make it.
pub(crate) async fn charge(
    svc: &PaymentsService,
    auth: &AuthUser,
    key: Option<&str>,
    req: CreatePaymentRequest,
) -> ApiResult<Answer<PaymentView>> {
    let currency = match (req.amount.currency(), req.currency.as_deref()) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
            return Err(Problem::invalid_field("currency", "differs from amount.currency"));
        }
        (Some(c), _) | (None, Some(c)) => c.to_owned(),
        (None, None) => return Err(Problem::invalid_field("amount.currency", "is required")),
    };
    let answer = svc
        .create_payment(
            auth,
            key,
            PaymentRequest {
                order_id: req.order_id,
                customer_id: req.customer_id,
                amount: req.amount.amount(),
                currency,
                payment_method: req.payment_method,
                capture: req.capture,
            },
        )
        .await?;
    Ok(map_answer(answer, |p| PaymentView::from(&p)))
}

fn map_answer<T, U>(a: Answer<T>, f: impl FnOnce(T) -> U) -> Answer<U> {
    Answer {
        value: f(a.value),
        status: a.status,
        replayed: a.replayed,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The order whose payments to list (required).
    pub order_id: Uuid,
}

/// An order's payments, oldest first (service, admin, support; customers see their own).
#[utoipa::path(get, path = "/api/v1/payments", tag = TAG, security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "The order's payments", body = PaymentList),
        (status = 422, description = "Missing or malformed `order_id`", body = Problem)))]
pub async fn list_payments(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<PaymentList>> {
    let payments = svc.payments_of_order(&auth, q.order_id).await?;
    Ok(Json(PaymentList {
        items: payments.iter().map(PaymentView::from).collect(),
    }))
}

/// One payment (service, admin, support, or the customer it belongs to).
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
        (status = 404, description = "No such payment (or not yours)", body = Problem)))]
pub async fn get_payment(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<PaymentView>> {
    let payment = svc.payment(&auth, parse_id(&id)?).await?;
    Ok(Json(PaymentView::from(&payment)))
}

/// Captures an authorized payment (service, admin). Capturing a captured payment returns it.
#[utoipa::path(post, path = "/api/v1/payments/{id}/capture", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment id")),
    responses((status = 200, description = "Captured", body = PaymentView),
        (status = 404, description = "No such payment", body = Problem),
        (status = 409, description = "Still processing, declined or failed", body = Problem),
        (status = 503, description = "The provider did not answer; retry", body = Problem)))]
pub async fn capture_payment(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<PaymentView>> {
    let payment = svc.capture(&auth, parse_id(&id)?).await?;
    Ok(Json(PaymentView::from(&payment)))
}

/// Refunds part or all of a captured payment (service, admin). `Idempotency-Key` required, with
/// the same rules as payments.
#[utoipa::path(post, path = "/api/v1/payments/{id}/refunds", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment id"),
        ("Idempotency-Key" = String, Header, description = "Required; 1 to 255 visible ASCII characters")),
    request_body = CreateRefundRequest,
    responses((status = 201, description = "Refund completed (or failed at the provider)", body = RefundView),
        (status = 202, description = "Refund still pending with the provider", body = RefundView),
        (status = 404, description = "No such payment", body = Problem),
        (status = 409, description = "The payment is not captured", body = Problem),
        (status = 422, description = "`amount` above the refundable remainder or not positive, bad `reason`, or key problems", body = Problem)))]
pub async fn create_refund(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(req): Json<CreateRefundRequest>,
) -> ApiResult<Response> {
    let key = platform::idempotency::header(&headers)?;
    let answer = refund(&svc, &auth, &id, key, &req).await?;
    Ok(answer_response(answer, format!("/api/v1/payments/{id}/refunds")))
}

/// A refund of payment `id`, as the handler above and a direct call ([`crate::direct`]) make it.
pub(crate) async fn refund(
    svc: &PaymentsService,
    auth: &AuthUser,
    id: &str,
    key: Option<&str>,
    req: &CreateRefundRequest,
) -> ApiResult<Answer<RefundView>> {
    let id = parse_id(id)?;
    if let Some(currency) = req.amount.currency() {
        let payment = svc.payment(auth, id).await?;
        if !currency.eq_ignore_ascii_case(payment.currency.as_str()) {
            return Err(Problem::invalid_field(
                "amount.currency",
                format!("the payment is in {}", payment.currency),
            ));
        }
    }
    let answer = svc
        .refund(auth, id, key, req.amount.amount(), req.reason.as_deref())
        .await?;
    Ok(map_answer(answer, |r| RefundView::from(&r)))
}

/// A payment's refunds, oldest first (whoever may read the payment).
#[utoipa::path(get, path = "/api/v1/payments/{id}/refunds", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment id")),
    responses((status = 200, description = "The refunds", body = RefundList),
        (status = 404, description = "No such payment (or not yours)", body = Problem)))]
pub async fn list_refunds(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<RefundList>> {
    let refunds = svc.refunds(&auth, parse_id(&id)?).await?;
    Ok(Json(RefundList {
        items: refunds.iter().map(RefundView::from).collect(),
    }))
}

/// Provider webhooks (no bearer token). The body is verified against the provider's signature
/// header: `Emporium-Signature` for the simulated provider (secret
/// `EMPORIUM_PAYMENTS_WEBHOOK_SECRET`), `Stripe-Signature` for Stripe (secret
/// `EMPORIUM_PAYMENTS_STRIPE_WEBHOOK_SECRET`); both `t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">`, at most 5 minutes old. A processing payment is settled by it; `charge.refunded`
/// records refunds the ledger lacks (made in the provider's dashboard); an event id seen before
/// is acknowledged and ignored, as are event types payments does not act on.
#[utoipa::path(post, path = "/api/v1/payments/webhooks/{provider}", tag = TAG,
    params(("provider" = String, Path, description = "The configured provider: `simulated` or `stripe`"),
        ("Emporium-Signature" = String, Header, description = "Simulated provider: t=<unix seconds>,v1=<hex signature>"),
        ("Stripe-Signature" = String, Header, description = "Stripe: t=<unix seconds>,v1=<hex signature>")),
    request_body(content = Object, description = "The provider's event", content_type = "application/json"),
    responses((status = 200, description = "Received", body = WebhookAck),
        (status = 400, description = "Missing, malformed, expired or wrong signature, or an unknown event", body = Problem),
        (status = 404, description = "Not the configured provider", body = Problem),
        (status = 503, description = "The provider could not be asked about the refunds; it retries the webhook", body = Problem)))]
pub async fn webhook(
    State(svc): Svc,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookAck>> {
    let result = svc.webhook(&provider, &headers, &body).await?;
    Ok(Json(WebhookAck {
        received: true,
        result: result.to_owned(),
    }))
}

/// Every payments route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<PaymentsService>> {
    OpenApiRouter::new()
        .routes(routes!(create_method, list_methods))
        .routes(routes!(get_method, delete_method))
        .routes(routes!(create_payment, list_payments))
        .routes(routes!(get_payment))
        .routes(routes!(capture_payment))
        .routes(routes!(create_refund, list_refunds))
        .routes(routes!(webhook))
}

/// How each payments error answers over HTTP: the one mapping, which every handler uses through `?`.
mod problem {
    use platform::Problem;

    use crate::service::PaymentsError;

    impl From<PaymentsError> for Problem {
        fn from(e: PaymentsError) -> Self {
            let message = e.to_string();
            match e {
                PaymentsError::Validation(errors) => Problem::validation(errors),
                PaymentsError::Forbidden(_) => Problem::forbidden(message),
                PaymentsError::NotFound(_) => Problem::not_found(message),
                PaymentsError::Conflict(_) => Problem::conflict(message),
                PaymentsError::Unavailable(_) => Problem::unavailable(message).with_retry_after(5),
                PaymentsError::BadWebhook(_) => Problem::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid-webhook",
                    "Invalid webhook",
                )
                .with_detail(message),
                PaymentsError::Internal(e) => Problem::from_error(&e),
            }
        }
    }
}
