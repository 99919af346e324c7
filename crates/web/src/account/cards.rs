//! The signed-in user's saved cards: listed with brand, last four digits and expiry, each with a
//! Remove button. Payments decides what is kept; this page only shows it and asks to remove.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::payments::MethodList;
use http::StatusCode;
use minijinja::context;

use crate::forms::{Form, NoFields};
use crate::render::{page, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/account/cards", get(cards_page))
        .route("/account/cards/{id}/remove", post(remove_card))
}

async fn cards_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_user()?;
    let list: MethodList = web
        .api(&session)
        .get_json("payments", "/api/v1/payments/methods")
        .await?;
    page(
        &session,
        "account/cards.html",
        context! { cards => value_of(&list.items) },
    )
}

async fn remove_card(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_user()?;
    // Card ids are `pm_<uuid>`: anything else names no card (and must not reach the API's path).
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(PageError::NotFound);
    }
    let api = web.api(&session);
    let reply = api
        .delete("payments", &format!("/api/v1/payments/methods/{id}"))
        .await?;
    match reply.status {
        status if status.is_success() => session.flash("success", "The card is removed."),
        // Removed already (another tab): the list is what matters.
        StatusCode::NOT_FOUND => session.flash("info", "That card was already removed."),
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to("/account/cards").into_response())
}
