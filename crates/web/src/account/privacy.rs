//! "Your data": a copy of everything the shop holds about the shopper (requested here, mailed
//! when every part arrived, downloaded here), and the way to erasure.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::identity::{ExportList, ExportView};
use http::{HeaderValue, StatusCode, header};
use minijinja::context;
use platform::http::Path;
use uuid::Uuid;

use crate::forms::{Form, NoFields};
use crate::render::{page, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/account/privacy", get(privacy_page))
        .route("/account/privacy/export", post(request_export))
        .route("/account/privacy/exports/{id}", get(download))
}

async fn privacy_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_user()?;
    let exports: ExportList = web
        .api(&session)
        .get_json("identity", "/api/v1/users/me/exports")
        .await?;
    let preparing = exports
        .items
        .iter()
        .any(|x: &ExportView| x.status == contracts::api::identity::ExportStatus::Preparing);
    page(
        &session,
        "account/privacy.html",
        context! { exports => value_of(&exports.items), preparing => preparing },
    )
}

async fn request_export(
    State(web): State<WebState>,
    session: Session,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let api = web.api(&session);
    let reply = api
        .post("identity", "/api/v1/users/me/export", &serde_json::json!({}))
        .await?;
    match reply.status {
        status if status.is_success() => session.flash(
            "success",
            "We are gathering your data. You will get an e-mail when it is ready to download.",
        ),
        StatusCode::CONFLICT => session.flash("info", "A copy of your data is already being prepared."),
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to("/account/privacy").into_response())
}

/// Streams the archive from identity with its own file name.
async fn download(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let id: Uuid = id.parse().map_err(|_| PageError::NotFound)?;
    let api = web.api(&session);
    let reply = api
        .get("identity", &format!("/api/v1/users/me/exports/{id}/archive"))
        .await?;
    match reply.status {
        StatusCode::CONFLICT => {
            session.flash(
                "info",
                "This copy is still being prepared; you will get an e-mail when it is ready.",
            );
            return Ok(Redirect::to("/account/privacy").into_response());
        }
        StatusCode::GONE => {
            session.flash("info", "This copy has expired. Ask for a new one below.");
            return Ok(Redirect::to("/account/privacy").into_response());
        }
        status if !status.is_success() => return Err(api.error_for(&reply)),
        _ => {}
    }
    let mut response = Response::new(Body::from(reply.body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    let disposition = reply
        .headers
        .get(header::CONTENT_DISPOSITION)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("attachment; filename=\"emporium-export.tar.gz\""));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}
