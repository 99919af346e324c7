//! Signing in and out, registration, e-mail verification, password reset and the account pages.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use crate::forms::{FieldErrors, Form, NoFields};
use crate::render::{page, page_with_status};
use crate::{PageError, Session, WebState, safe_next};

pub const TEMPLATES: &[(&str, &str)] = &[("account/login.html", include_str!("../../templates/account/login.html"))];

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(session: Session, Query(q): Query<NextQuery>) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref().unwrap_or("/")).to_owned();
    if session.user().is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    page(
        &session,
        "account/login.html",
        context! { next => next, email => "", errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn login(State(web): State<WebState>, session: Session, Form(form): Form<LoginForm>) -> Result<Response, PageError> {
    let next = safe_next(form.next.as_deref().unwrap_or("/")).to_owned();
    let email = form.email.trim().to_owned();
    let mut errors = FieldErrors::new();
    if email.is_empty() {
        errors.add("email", "Enter your e-mail address.");
    }
    if form.password.is_empty() {
        errors.add("password", "Enter your password.");
    }
    if errors.is_empty() {
        let api = web.api(&session).anonymous();
        let reply = api
            .post(
                "identity",
                "/api/v1/auth/login",
                &serde_json::json!({ "email": email, "password": form.password }),
            )
            .await?;
        if reply.is_success() {
            let login: serde_json::Value = api.decode(reply)?;
            let user = api.sign_in(&login).await?;
            session.flash("success", format!("Welcome back, {}.", user.name));
            return Ok(Redirect::to(&next).into_response());
        }
        match reply.status {
            StatusCode::UNAUTHORIZED => errors.add("_form", "The e-mail address or password is not right."),
            StatusCode::TOO_MANY_REQUESTS => errors.add(
                "_form",
                "Too many sign-in attempts. Please wait a minute and try again.",
            ),
            _ => errors = FieldErrors::from_problem(&reply),
        }
    }
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/login.html",
        context! { next => next, email => email, errors => errors },
    )
}

async fn logout(State(web): State<WebState>, session: Session, Form(_): Form<NoFields>) -> Result<Response, PageError> {
    web.api(&session).sign_out().await;
    session.flash("info", "You have signed out.");
    Ok(Redirect::to("/").into_response())
}
