//! Notifications' HTTP API: thin handlers that parse, call the service and shape the answer.
//!
//! `/api/v1/notifications/preferences`: the caller's own preferences (any signed-in user).
//! `/api/v1/notifications/admin/deliveries`: the delivery log (admin, support) and resending a
//! dead message (admin).

use std::sync::Arc;

use axum::extract::State;
use contracts::api::notifications::{DeliveryView, PreferencesRequest, PreferencesView};
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

use crate::domain::{DeliveryStatus, Kind};
use crate::service::NotificationService;
use crate::store::DeliveryFilter;

type Svc = State<Arc<NotificationService>>;
type ApiResult<T> = Result<T, Problem>;

const TAG: &str = "notifications";

/// The caller's notification preferences (defaults until changed).
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = TAG, security(("bearer" = [])),
    responses((status = 200, description = "The caller's preferences", body = PreferencesView),
        (status = 401, description = "Not signed in", body = Problem)))]
pub async fn get_preferences(State(svc): Svc, auth: AuthUser) -> ApiResult<Json<PreferencesView>> {
    Ok(Json(svc.preferences(&auth).await?.into()))
}

/// Changes the caller's preferences. Fields left out keep their value. Transactional mail
/// (`order_updates`, `email_verification`, `password_reset`) cannot be switched off.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = TAG, security(("bearer" = [])),
    request_body = PreferencesRequest,
    responses((status = 200, description = "The preferences now", body = PreferencesView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 422, description = "A transactional kind set to false, or an unknown field (named in `errors[].field`)", body = Problem)))]
pub async fn put_preferences(
    State(svc): Svc,
    auth: AuthUser,
    Json(req): Json<PreferencesRequest>,
) -> ApiResult<Json<PreferencesView>> {
    Ok(Json(svc.update_preferences(&auth, &(&req).into()).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `sent`, `failed` (retrying) or `dead`.
    pub status: Option<String>,
    /// Recipient address (case-insensitive).
    pub to: Option<String>,
    /// The event that caused the message.
    pub event_id: Option<String>,
    /// Template, e.g. `order_shipped`.
    pub kind: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// `next` from the previous page.
    pub cursor: Option<String>,
}

/// Parses the filters, collecting every bad one.
fn filter(q: &DeliveryQuery) -> ApiResult<DeliveryFilter> {
    let mut errors = Vec::new();
    let mut f = DeliveryFilter::default();
    if let Some(s) = q.status.as_deref() {
        match s.parse::<DeliveryStatus>() {
            Ok(s) => f.status = Some(s),
            Err(m) => errors.push(FieldError::new("status", m)),
        }
    }
    if let Some(k) = q.kind.as_deref() {
        match k.parse::<Kind>() {
            Ok(k) => f.kind = Some(k),
            Err(m) => errors.push(FieldError::new("kind", m)),
        }
    }
    if let Some(e) = q.event_id.as_deref() {
        match Uuid::parse_str(e.trim()) {
            Ok(id) => f.event_id = Some(id),
            Err(_) => errors.push(FieldError::new("event_id", "is not a UUID")),
        }
    }
    if let Some(to) = q.to.as_deref() {
        let to = to.trim();
        if to.is_empty() || to.len() > 254 {
            errors.push(FieldError::new("to", "must be an address of 1 to 254 characters"));
        } else {
            f.to = Some(to.to_owned());
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    f.before = pagination::decode_cursor(q.cursor.as_deref())?;
    Ok(f)
}

/// The delivery log (admin, support), newest first, filtered. Bodies are never shown.
#[utoipa::path(get, path = "/api/v1/notifications/admin/deliveries", tag = TAG, security(("bearer" = [])),
    params(DeliveryQuery),
    responses((status = 200, description = "One page of deliveries", body = Page<DeliveryView>),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 403, description = "Not admin or support", body = Problem),
        (status = 422, description = "Bad filter, limit or cursor (named in `errors[].field`)", body = Problem)))]
pub async fn list_deliveries(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<Page<DeliveryView>>> {
    let limit = pagination::limit(q.limit)?;
    let f = filter(&q)?;
    let rows = svc.deliveries(&auth, &f, limit + 1).await?;
    let page = pagination::page_from(rows, limit, |d| d.id);
    Ok(Json(Page {
        items: page.items.iter().map(DeliveryView::from).collect(),
        next: page.next,
    }))
}

fn parse_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| Problem::not_found("no delivery with this id (ids are UUIDs)"))
}

/// One delivery (admin, support).
#[utoipa::path(get, path = "/api/v1/notifications/admin/deliveries/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery", body = DeliveryView),
        (status = 403, description = "Not admin or support", body = Problem),
        (status = 404, description = "No such delivery", body = Problem)))]
pub async fn get_delivery(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<DeliveryView>> {
    let d = svc.delivery(&auth, parse_id(&id)?).await?;
    Ok(Json(DeliveryView::from(&d)))
}

/// Sends a dead delivery again (admin): back to `pending`, due now, with a fresh attempt budget.
#[utoipa::path(post, path = "/api/v1/notifications/admin/deliveries/{id}/retry", tag = TAG,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 200, description = "Queued again", body = DeliveryView),
        (status = 403, description = "Not admin", body = Problem),
        (status = 404, description = "No such delivery", body = Problem),
        (status = 409, description = "The delivery is not dead", body = Problem)))]
pub async fn retry_delivery(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<DeliveryView>> {
    let d = svc.retry(&auth, parse_id(&id)?).await?;
    Ok(Json(DeliveryView::from(&d)))
}

pub fn routes() -> OpenApiRouter<Arc<NotificationService>> {
    OpenApiRouter::new()
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
}

/// How each notifications error answers over HTTP: the one mapping, which every handler uses through `?`.
mod problem {
    use platform::Problem;

    use crate::store::StoreError;

    impl From<StoreError> for Problem {
        fn from(e: StoreError) -> Self {
            match e {
                // An unreachable database is a 503 with Retry-After, not a 500.
                StoreError::Db(e) => e.into(),
                other => Problem::internal(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> DeliveryQuery {
        DeliveryQuery {
            status: None,
            to: None,
            event_id: None,
            kind: None,
            limit: None,
            cursor: None,
        }
    }

    #[test]
    fn filters_are_parsed_and_every_bad_one_named() {
        let id = Uuid::now_v7();
        let f = filter(&DeliveryQuery {
            status: Some("dead".into()),
            to: Some(" Ann@Example.com ".into()),
            event_id: Some(id.to_string()),
            kind: Some("order_shipped".into()),
            ..q()
        })
        .expect("ok");
        assert_eq!(f.status, Some(DeliveryStatus::Dead));
        assert_eq!(f.kind, Some(Kind::OrderShipped));
        assert_eq!(f.event_id, Some(id));
        assert_eq!(f.to.as_deref(), Some("Ann@Example.com"));
        let err = filter(&DeliveryQuery {
            status: Some("lost".into()),
            event_id: Some("x".into()),
            kind: Some("spam".into()),
            to: Some(" ".into()),
            ..q()
        })
        .expect_err("refused");
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["status", "kind", "event_id", "to"]);
        let err = filter(&DeliveryQuery {
            cursor: Some("!!".into()),
            ..q()
        })
        .expect_err("refused");
        assert_eq!(err.errors[0].field, "cursor");
    }
}
