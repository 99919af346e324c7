//! Outbound webhooks' admin API, under `/api/v1/notifications/webhooks` (role `admin`): thin
//! handlers over [`WebhookService`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use contracts::api::notifications::{
    WebhookAttemptView, WebhookEndpointList, WebhookEndpointRequest, WebhookEndpointView, WebhookMessageList,
    WebhookMessageView,
};
use platform::Problem;
use platform::auth::AuthUser;
use platform::http::{Json, Path, Query};
use platform::routes;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::domain::{MessageStatus, message_id};
use super::service::{EndpointChange, WebhookService};
use super::store::{Attempt, Endpoint, Message};

type Svc = State<Arc<WebhookService>>;
type ApiResult<T> = Result<T, Problem>;

const TAG: &str = "webhooks";

fn endpoint_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| Problem::not_found("no such webhook endpoint (ids are UUIDs)"))
}

fn message_uuid(text: &str) -> ApiResult<Uuid> {
    let raw = text.strip_prefix("msg_").unwrap_or(text);
    Uuid::parse_str(raw).map_err(|_| Problem::not_found("no such message (ids are UUIDs or msg_…)"))
}

fn view(e: Endpoint, with_secret: bool) -> WebhookEndpointView {
    let now = platform::clock::now();
    WebhookEndpointView {
        id: e.id,
        url: e.url,
        description: e.description,
        event_types: e.event_types,
        enabled: e.enabled,
        disabled_reason: e.disabled_reason,
        failure_streak: e.failure_streak,
        previous_secret_valid_until: e.previous_secret_until.filter(|until| *until > now),
        secret: with_secret.then_some(e.secret),
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn message_view(m: Message, detail: Option<Vec<Attempt>>) -> WebhookMessageView {
    let next_attempt_at = (m.status == MessageStatus::Pending)
        .then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(m.next_attempt_ms) * 1_000_000).ok())
        .flatten();
    let payload = detail.as_ref().and_then(|_| serde_json::from_str(&m.payload).ok());
    WebhookMessageView {
        id: m.id,
        webhook_id: message_id(m.id),
        event_id: m.event_id,
        event_type: m.event_type,
        status: m.status.as_str().to_owned(),
        attempts: m.attempts,
        next_attempt_at,
        last_status: m.last_status,
        last_error: m.last_error,
        created_at: m.created_at,
        delivered_at: m.delivered_at,
        payload,
        attempt_log: detail.map(|attempts| {
            attempts
                .into_iter()
                .map(|a| WebhookAttemptView {
                    attempted_at: a.attempted_at,
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect()
        }),
    }
}

fn change(req: WebhookEndpointRequest) -> EndpointChange {
    EndpointChange {
        url: req.url,
        description: req.description,
        event_types: req.event_types,
        enabled: req.enabled,
    }
}

/// Registers an endpoint. The answer carries its signing `secret`, shown this once.
///
/// `url`: `https://` (plain `http://` only in embedded mode), never a loopback, private or
/// link-local address or name unless `EMPORIUM_WEBHOOK_ALLOW_PRIVATE=true`; redirects are not
/// followed. `event_types`: 1 to 50 patterns (`ordering.order.confirmed`, `ordering.order.*`,
/// `payments.#`, `#`).
#[utoipa::path(post, path = "/api/v1/notifications/webhooks/endpoints", tag = TAG, security(("bearer" = [])),
    request_body = WebhookEndpointRequest,
    responses((status = 201, description = "Registered; `secret` shown once", body = WebhookEndpointView),
        (status = 403, description = "Not an admin", body = Problem),
        (status = 409, description = "Too many endpoints", body = Problem),
        (status = 422, description = "Bad `url` (scheme, internal address, credentials), `event_types` (empty, too many, malformed) or `description`", body = Problem)))]
pub async fn create_webhook_endpoint(
    State(svc): Svc,
    auth: AuthUser,
    Json(req): Json<WebhookEndpointRequest>,
) -> ApiResult<(StatusCode, Json<WebhookEndpointView>)> {
    let endpoint = svc.create(&auth, change(req)).await?;
    Ok((StatusCode::CREATED, Json(view(endpoint, true))))
}

/// Every endpoint, oldest first (no secrets).
#[utoipa::path(get, path = "/api/v1/notifications/webhooks/endpoints", tag = TAG, security(("bearer" = [])),
    responses((status = 200, description = "The endpoints", body = WebhookEndpointList),
        (status = 403, description = "Not an admin", body = Problem)))]
pub async fn list_webhook_endpoints(State(svc): Svc, auth: AuthUser) -> ApiResult<Json<WebhookEndpointList>> {
    let items = svc
        .endpoints(&auth)
        .await?
        .into_iter()
        .map(|e| view(e, false))
        .collect();
    Ok(Json(WebhookEndpointList { items }))
}

/// One endpoint (no secret).
#[utoipa::path(get, path = "/api/v1/notifications/webhooks/endpoints/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint", body = WebhookEndpointView),
        (status = 404, description = "No such endpoint", body = Problem)))]
pub async fn get_webhook_endpoint(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookEndpointView>> {
    Ok(Json(view(svc.endpoint(&auth, endpoint_id(&id)?).await?, false)))
}

/// Changes an endpoint; `enabled: true` switches a disabled one back on (its failure run starts
/// over; replay what it missed).
#[utoipa::path(patch, path = "/api/v1/notifications/webhooks/endpoints/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = WebhookEndpointRequest,
    responses((status = 200, description = "The endpoint now", body = WebhookEndpointView),
        (status = 404, description = "No such endpoint", body = Problem),
        (status = 422, description = "A bad field, named", body = Problem)))]
pub async fn update_webhook_endpoint(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<WebhookEndpointRequest>,
) -> ApiResult<Json<WebhookEndpointView>> {
    Ok(Json(view(
        svc.update(&auth, endpoint_id(&id)?, change(req)).await?,
        false,
    )))
}

/// Removes an endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/v1/notifications/webhooks/endpoints/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint", body = Problem)))]
pub async fn delete_webhook_endpoint(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    svc.delete(&auth, endpoint_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown once. The previous one keeps signing alongside it (two `v1,`
/// signatures in `webhook-signature`) for `EMPORIUM_WEBHOOK_ROTATION_OVERLAP_SECS`.
#[utoipa::path(post, path = "/api/v1/notifications/webhooks/endpoints/{id}/rotate-secret", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint with its new `secret`", body = WebhookEndpointView),
        (status = 404, description = "No such endpoint", body = Problem)))]
pub async fn rotate_webhook_secret(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookEndpointView>> {
    Ok(Json(view(svc.rotate_secret(&auth, endpoint_id(&id)?).await?, true)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// The `next_before` of the previous page.
    pub before: Option<Uuid>,
    /// 1 to 100 (default 50).
    pub limit: Option<u32>,
}

/// An endpoint's delivery log, newest first: each message with its attempts, last status code and
/// error.
#[utoipa::path(get, path = "/api/v1/notifications/webhooks/endpoints/{id}/messages", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), MessageQuery),
    responses((status = 200, description = "The log", body = WebhookMessageList),
        (status = 404, description = "No such endpoint", body = Problem),
        (status = 422, description = "Bad `status` or `limit`", body = Problem)))]
pub async fn list_webhook_messages(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<MessageQuery>,
) -> ApiResult<Json<WebhookMessageList>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            MessageStatus::parse(s)
                .ok_or_else(|| Problem::invalid_field("status", "must be pending, delivered or failed"))?,
        ),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Problem::invalid_field("limit", "must be between 1 and 100"));
    }
    let messages = svc.messages(&auth, endpoint_id(&id)?, status, q.before, limit).await?;
    let next_before = (messages.len() == limit as usize)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(Json(WebhookMessageList {
        items: messages.into_iter().map(|m| message_view(m, None)).collect(),
        next_before,
    }))
}

/// One message with its body and every attempt (time, status code, latency, error).
#[utoipa::path(get, path = "/api/v1/notifications/webhooks/endpoints/{id}/messages/{message}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), ("message" = String, Path, description = "Message id (UUID or msg_…)")),
    responses((status = 200, description = "The message", body = WebhookMessageView),
        (status = 404, description = "No such endpoint or message", body = Problem)))]
pub async fn get_webhook_message(
    State(svc): Svc,
    auth: AuthUser,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<Json<WebhookMessageView>> {
    let (m, attempts) = svc.message(&auth, endpoint_id(&id)?, message_uuid(&message)?).await?;
    Ok(Json(message_view(m, Some(attempts))))
}

/// Sends a message again now with a fresh attempt budget (same `webhook-id`).
#[utoipa::path(post, path = "/api/v1/notifications/webhooks/endpoints/{id}/messages/{message}/replay", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), ("message" = String, Path, description = "Message id (UUID or msg_…)")),
    responses((status = 202, description = "Queued", body = WebhookMessageView),
        (status = 404, description = "No such endpoint or message", body = Problem),
        (status = 409, description = "The endpoint is disabled", body = Problem)))]
pub async fn replay_webhook_message(
    State(svc): Svc,
    auth: AuthUser,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<WebhookMessageView>)> {
    let m = svc.replay(&auth, endpoint_id(&id)?, message_uuid(&message)?).await?;
    Ok((StatusCode::ACCEPTED, Json(message_view(m, None))))
}

pub fn routes() -> OpenApiRouter<Arc<WebhookService>> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook_endpoint, list_webhook_endpoints))
        .routes(routes!(
            get_webhook_endpoint,
            update_webhook_endpoint,
            delete_webhook_endpoint
        ))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(list_webhook_messages))
        .routes(routes!(get_webhook_message))
        .routes(routes!(replay_webhook_message))
}
