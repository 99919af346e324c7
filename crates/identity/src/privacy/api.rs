//! The HTTP API of erasures and exports: thin handlers over [`IdentityService`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::api::identity::{ErasureReport, ExportList, ExportView};
use platform::Problem;
use platform::auth::AuthUser;
use platform::http::{Json, Path};
use platform::routes;
use utoipa_axum::router::OpenApiRouter;

use crate::api::{Client, parse_id};
use crate::service::IdentityService;

type Svc = State<Arc<IdentityService>>;
type ApiResult<T> = Result<T, Problem>;

/// Starts an export of the caller's personal data from every context. The archive is listed
/// at `GET /users/me/exports` once every context contributed, and its owner is mailed.
#[utoipa::path(post, path = "/api/v1/users/me/export", tag = "users", security(("bearer" = [])),
    responses((status = 202, description = "Started", body = ExportView),
        (status = 409, description = "An export is already being prepared", body = Problem)))]
pub async fn request_my_export(State(svc): Svc, auth: AuthUser, Client(client): Client) -> ApiResult<Response> {
    let view = svc.request_export(&auth, &client).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// The caller's exports, newest first, with their download link while ready.
#[utoipa::path(get, path = "/api/v1/users/me/exports", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "Exports", body = ExportList)))]
pub async fn my_exports(State(svc): Svc, auth: AuthUser) -> ApiResult<Json<ExportList>> {
    Ok(Json(ExportList {
        items: svc.my_exports(&auth).await?,
    }))
}

/// Downloads one of the caller's exports: a `.tar.gz` of `manifest.json` and one JSON file per
/// context (docs/privacy.md).
#[utoipa::path(get, path = "/api/v1/users/me/exports/{id}/archive", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Export id")),
    responses((status = 200, description = "The archive", content_type = "application/gzip"),
        (status = 404, description = "No such export of yours", body = Problem),
        (status = 409, description = "Still being prepared", body = Problem),
        (status = 410, description = "Expired", body = Problem)))]
pub async fn my_export_archive(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (name, bytes) = svc.export_archive(&auth, parse_id(&id)?, &client).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// Erases an account on its owner's request (admin): identity's copy at once, the other contexts
/// through the bus. Answers the erasure report (poll `GET …/erasure` for the other steps).
#[utoipa::path(post, path = "/api/v1/users/{id}/erase", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 202, description = "Erased in identity; the other contexts follow", body = ErasureReport),
        (status = 404, description = "No such user", body = Problem),
        (status = 409, description = "Already erased, or your own account", body = Problem)))]
pub async fn erase_user(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let report = svc.erase_user_on_request(&auth, parse_id(&id)?, &client).await?;
    Ok((StatusCode::ACCEPTED, Json(report)).into_response())
}

/// How far an account's erasure went, context by context (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}/erasure", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "The report", body = ErasureReport),
        (status = 404, description = "Not erased", body = Problem)))]
pub async fn erasure_report(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<ErasureReport>> {
    Ok(Json(svc.erasure_report(&auth, parse_id(&id)?).await?))
}

/// Starts an export of an account's data on its owner's request (admin); the owner is mailed
/// and downloads it from their account page.
#[utoipa::path(post, path = "/api/v1/users/{id}/export", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 202, description = "Started", body = ExportView),
        (status = 404, description = "No such user", body = Problem),
        (status = 409, description = "Erased, or an export is already being prepared", body = Problem)))]
pub async fn export_user(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = svc.export_user_on_request(&auth, parse_id(&id)?, &client).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// An account's exports (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}/exports", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "Exports", body = ExportList)))]
pub async fn user_exports(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<ExportList>> {
    Ok(Json(ExportList {
        items: svc.exports_of_user(&auth, parse_id(&id)?).await?,
    }))
}

/// The routes of erasures and exports.
pub fn routes() -> OpenApiRouter<Arc<IdentityService>> {
    OpenApiRouter::new()
        .routes(routes!(request_my_export))
        .routes(routes!(my_exports))
        .routes(routes!(my_export_archive))
        .routes(routes!(erase_user))
        .routes(routes!(erasure_report))
        .routes(routes!(export_user))
        .routes(routes!(user_exports))
}
