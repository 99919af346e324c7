//! Registration and e-mail verification.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::identity::{EmailRequest, RegisterRequest, TokenRequest};
use http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use super::{api_errors, check_password_pair};
use crate::forms::{FieldErrors, Form};
use crate::render::{page, page_with_status};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/register", get(register_page).post(register))
        .route("/verify-email", get(verify_page).post(verify))
        .route("/verify-email/resend", post(resend))
}

async fn register_page(session: Session) -> Result<Response, PageError> {
    if session.user().is_some() {
        return Ok(Redirect::to("/account").into_response());
    }
    page(
        &session,
        "account/register.html",
        context! { name => "", email => "", errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

/// The API fields registration may complain about, and the inputs and labels they belong to.
const REGISTER_INPUTS: &[(&str, &str, &str)] = &[
    ("name", "name", "Your name"),
    ("email", "email", "E-mail address"),
    ("password", "password", "Password"),
];

async fn register(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<RegisterForm>,
) -> Result<Response, PageError> {
    let name = form.name.trim().to_owned();
    let email = form.email.trim().to_owned();
    let mut errors = FieldErrors::new();
    if name.is_empty() {
        errors.add("name", "Enter your name.");
    }
    if email.is_empty() {
        errors.add("email", "Enter your e-mail address.");
    }
    check_password_pair(
        &form.password,
        &form.password_confirm,
        "password",
        "password_confirm",
        &mut errors,
    );
    if errors.is_empty() {
        let api = web.api(&session).anonymous();
        let body = RegisterRequest {
            email: email.clone(),
            password: form.password,
            name: name.clone(),
        };
        let reply = api.post("identity", "/api/v1/auth/register", &body).await?;
        if reply.is_success() {
            return check_mailbox(&web, &session, &email, false).await;
        }
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            return Err(api.error_for(&reply));
        }
        // A taken address is not an error here: identity answers "check your mailbox" either way
        // and tells the address's owner instead, so the form reveals no accounts.
        errors = api_errors(&reply, REGISTER_INPUTS);
    }
    // The typed name and address come back; passwords never do.
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/register.html",
        context! { name => name, email => email, errors => errors },
    )
}

/// "Check your mailbox", with a form that sends the message again. Where the platform keeps a
/// development mailbox (embedded mode without SMTP) the page links to it, so trying the shop out
/// needs no mail server.
async fn check_mailbox(web: &WebState, session: &Session, email: &str, resent: bool) -> Result<Response, PageError> {
    let mailbox_url = dev_mailbox_url(email);
    let has_dev_mailbox = match web.api(session).anonymous().get("notifications", &mailbox_url).await {
        Ok(reply) => reply.is_success(),
        // Only a hint: a mailbox that cannot be asked is simply not mentioned.
        Err(_) => false,
    };
    page(
        session,
        "account/check_mailbox.html",
        context! {
            email => email,
            resent => resent,
            dev_mailbox_url => has_dev_mailbox.then_some(mailbox_url),
        },
    )
}

/// The development mailbox's listing of the messages to `email`.
fn dev_mailbox_url(email: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("to", email)
        .finish();
    format!("/api/v1/dev/mailbox?{query}")
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// GET only shows a button: mail scanners and link previews open links, and must not use up
/// the single-use token. The POST it makes verifies.
async fn verify_page(session: Session, Query(q): Query<TokenQuery>) -> Result<Response, PageError> {
    let token = q.token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let state = if token.is_some() { "confirm" } else { "missing" };
    page(
        &session,
        "account/verify_email.html",
        context! {
            token => token,
            state => state,
            email => "",
            errors => FieldErrors::new(),
        },
    )
}

#[derive(Debug, Deserialize)]
struct VerifyForm {
    #[serde(default)]
    token: String,
}

async fn verify(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<VerifyForm>,
) -> Result<Response, PageError> {
    let token = form.token.trim();
    if !token.is_empty() {
        let api = web.api(&session).anonymous();
        let reply = api
            .post(
                "identity",
                "/api/v1/auth/verify-email",
                &TokenRequest {
                    token: token.to_owned(),
                },
            )
            .await?;
        if reply.is_success() {
            return Ok(if session.user().is_some() {
                session.flash("success", "Your e-mail address is confirmed.");
                Redirect::to("/account").into_response()
            } else {
                session.flash("success", "Your e-mail address is confirmed. You can sign in now.");
                Redirect::to("/login").into_response()
            });
        }
        if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(api.error_for(&reply));
        }
    }
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/verify_email.html",
        context! { token => "", state => "failed", email => "", errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct ResendForm {
    #[serde(default)]
    email: String,
}

/// Sends a new verification message. Identity answers the same whether or not the address has
/// an account, and so does this page.
async fn resend(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<ResendForm>,
) -> Result<Response, PageError> {
    let email = form.email.trim().to_owned();
    if email.is_empty() {
        let mut errors = FieldErrors::new();
        errors.add("email", "Enter the e-mail address you registered with.");
        return page_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &session,
            "account/verify_email.html",
            context! { token => "", state => "missing", email => email, errors => errors },
        );
    }
    let api = web.api(&session).anonymous();
    let reply = api
        .post(
            "identity",
            "/api/v1/auth/resend-verification",
            &EmailRequest { email: email.clone() },
        )
        .await?;
    if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        let errors = api_errors(&reply, &[("email", "email", "E-mail address")]);
        return page_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &session,
            "account/verify_email.html",
            context! { token => "", state => "missing", email => email, errors => errors },
        );
    }
    if !reply.is_success() {
        return Err(api.error_for(&reply));
    }
    check_mailbox(&web, &session, &email, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_mailbox_link_encodes_the_address() {
        assert_eq!(
            dev_mailbox_url("ada@example.com"),
            "/api/v1/dev/mailbox?to=ada%40example.com"
        );
        assert_eq!(
            dev_mailbox_url("a+b&c=d@example.com"),
            "/api/v1/dev/mailbox?to=a%2Bb%26c%3Dd%40example.com"
        );
    }
}
