//! A forgotten password: ask for a reset link, then choose a new password with it.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use contracts::api::identity::{EmailRequest, ResetPasswordRequest};
use http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use super::{api_errors, check_password_pair};
use crate::forms::{FieldErrors, Form};
use crate::render::{page, page_with_status};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/forgot-password", get(forgot_page).post(forgot))
        .route("/reset-password", get(reset_page).post(reset))
}

async fn forgot_page(session: Session) -> Result<Response, PageError> {
    page(
        &session,
        "account/forgot_password.html",
        context! { email => "", sent => false, errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// Always the same answer, whether or not the address has an account: the page must not tell
/// anyone which addresses are registered.
async fn forgot(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<ForgotForm>,
) -> Result<Response, PageError> {
    let email = form.email.trim().to_owned();
    if email.is_empty() {
        let mut errors = FieldErrors::new();
        errors.add("email", "Enter the e-mail address of your account.");
        return page_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &session,
            "account/forgot_password.html",
            context! { email => email, sent => false, errors => errors },
        );
    }
    let api = web.api(&session).anonymous();
    let reply = api
        .post(
            "identity",
            "/api/v1/auth/forgot-password",
            &EmailRequest { email: email.clone() },
        )
        .await?;
    if !reply.is_success() {
        return Err(api.error_for(&reply));
    }
    page(
        &session,
        "account/forgot_password.html",
        context! { email => email, sent => true, errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn reset_page(session: Session, Query(q): Query<TokenQuery>) -> Result<Response, PageError> {
    let token = q.token.map(|t| t.trim().to_owned()).unwrap_or_default();
    let mut errors = FieldErrors::new();
    if token.is_empty() {
        errors.add("_form", missing_token_message());
    }
    page(
        &session,
        "account/reset_password.html",
        context! { token => token, errors => errors },
    )
}

fn missing_token_message() -> &'static str {
    "This page needs the link from the password-reset e-mail. Ask for a new link if yours is lost or used."
}

#[derive(Debug, Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

async fn reset(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<ResetForm>,
) -> Result<Response, PageError> {
    let token = form.token.trim().to_owned();
    let mut errors = FieldErrors::new();
    if token.is_empty() {
        errors.add("_form", missing_token_message());
    }
    check_password_pair(
        &form.new_password,
        &form.new_password_confirm,
        "new_password",
        "new_password_confirm",
        &mut errors,
    );
    if errors.is_empty() {
        let api = web.api(&session).anonymous();
        let body = ResetPasswordRequest {
            token: token.clone(),
            new_password: form.new_password,
        };
        let reply = api.post("identity", "/api/v1/auth/reset-password", &body).await?;
        if reply.is_success() {
            // Identity ended every session of the account, this browser's included.
            if session.user().is_some() {
                session.sign_out();
            }
            session.flash("success", "Your password is changed. Sign in with the new one.");
            return Ok(Redirect::to("/login").into_response());
        }
        if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(api.error_for(&reply));
        }
        errors = api_errors(&reply, &[("new_password", "new_password", "New password")]);
        if errors.get("_form").is_some() && errors.get("new_password").is_none() {
            // The only other thing identity checks is the token.
            errors = FieldErrors::new();
            errors.add("_form", "This reset link is invalid, expired or already used.");
        }
    }
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/reset_password.html",
        context! { token => token, errors => errors },
    )
}
