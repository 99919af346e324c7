//! Signing in and out, registration, e-mail verification, password reset and the account pages.
//!
//! Every rule (password strength, token validity, who may see what) is identity's and
//! notifications'; these pages collect input, call the APIs and show their answers as sentences
//! next to the inputs they are about.

mod addresses;
mod cards;
mod privacy;
mod recovery;
mod settings;
mod signup;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::identity::{LoginRequest, TokenResponse};
use http::header::USER_AGENT;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use platform::client::Reply;
use serde::Deserialize;

use crate::forms::{FieldErrors, Form, NoFields};
use crate::render::{page, page_with_status};
use crate::{PageError, Session, WebState, safe_next};

macro_rules! template {
    ($name:literal) => {
        ($name, include_str!(concat!("../../templates/", $name)))
    };
}

pub const TEMPLATES: &[(&str, &str)] = &[
    template!("account/login.html"),
    template!("account/register.html"),
    template!("account/check_mailbox.html"),
    template!("account/verify_email.html"),
    template!("account/forgot_password.html"),
    template!("account/reset_password.html"),
    template!("account/nav.html"),
    template!("account/profile.html"),
    template!("account/password.html"),
    template!("account/sessions.html"),
    template!("account/notifications.html"),
    template!("account/delete.html"),
    template!("account/cards.html"),
    template!("account/addresses.html"),
    template!("account/_address_fields.html"),
    template!("account/address_edit.html"),
    template!("account/privacy.html"),
];

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .merge(signup::routes())
        .merge(recovery::routes())
        .merge(settings::routes())
        .merge(cards::routes())
        .merge(privacy::routes())
        .merge(addresses::routes())
}

/// Shortest password identity accepts; checked here too so an obviously short one is explained
/// without a round trip (identity still decides, with its strength check).
const MIN_PASSWORD_CHARS: usize = 12;

/// The checks a new password gets before identity sees it: present, long enough, typed the same
/// twice. Messages go under `field` and `confirm_field`.
fn check_password_pair(password: &str, confirm: &str, field: &str, confirm_field: &str, errors: &mut FieldErrors) {
    if password.is_empty() {
        errors.add(field, "Choose a password.");
    } else if password.chars().count() < MIN_PASSWORD_CHARS {
        errors.add(
            field,
            format!(
                "Use at least {MIN_PASSWORD_CHARS} characters; a few unrelated words make a strong, memorable password."
            ),
        );
    }
    if password != confirm {
        errors.add(confirm_field, "The two passwords are not the same.");
    }
}

/// A message from the API about `label` as a sentence: identity says "is already registered",
/// the page shows "E-mail address is already registered.".
fn sentence(label: &str, message: &str) -> String {
    // zxcvbn's hints end in a full stop that identity follows with "; …".
    let message = message.trim().replace(".;", ";");
    let mut text = if message.starts_with(|c: char| c.is_lowercase()) {
        format!("{label} {message}")
    } else {
        message
    };
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

/// The API's field errors placed next to this form's inputs. `inputs` maps each field the API
/// may name to (the input it belongs to, the input's label); errors about other fields, and a
/// problem without fields, become the form-wide message.
fn api_errors(reply: &Reply, inputs: &[(&str, &str, &str)]) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for entry in reply.field_errors() {
        match inputs.iter().find(|(api_field, _, _)| *api_field == entry.field) {
            Some((_, input, label)) => errors.add(input, sentence(label, &entry.message)),
            None => errors.add("_form", sentence(&capitalised(&entry.field), &entry.message)),
        }
    }
    if errors.is_empty() {
        errors.add("_form", sentence("", &capitalised(&reply.problem_detail())));
    }
    errors
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The problem type's last segment (`…/problem/email-not-verified` → `email-not-verified`).
fn problem_kind(reply: &Reply) -> String {
    reply
        .problem()
        .and_then(|p| p.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .map(|t| t.rsplit('/').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// "in 5 minutes" / "in a minute" from a `Retry-After` in seconds (absent: "in a little while").
fn wait_phrase(retry_after_secs: Option<u64>) -> String {
    match retry_after_secs {
        None => "in a little while".into(),
        Some(s) if s <= 60 => "in a minute".into(),
        Some(s) => format!("in {} minutes", s.div_ceil(60)),
    }
}

fn retry_after(reply: &Reply) -> Option<u64> {
    reply
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
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
        context! { next => next, email => "", errors => FieldErrors::new(), unverified => false },
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

async fn login(
    State(web): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = safe_next(form.next.as_deref().unwrap_or("/")).to_owned();
    let email = form.email.trim().to_owned();
    let mut errors = FieldErrors::new();
    let mut unverified = false;
    if email.is_empty() {
        errors.add("email", "Enter your e-mail address.");
    }
    if form.password.is_empty() {
        errors.add("password", "Enter your password.");
    }
    if errors.is_empty() {
        let api = web.api(&session).anonymous();
        let body = LoginRequest {
            email: email.clone(),
            password: form.password,
        };
        let reply = login_call(&web, &session, &headers, &body).await?;
        if reply.is_success() {
            let login: TokenResponse = api.decode(reply)?;
            // A guest cart in this session stays: the cart API merges it on the next cart call.
            let user = api.sign_in(&login).await?;
            session.flash("success", format!("Welcome back, {}.", user.name));
            return Ok(Redirect::to(&next).into_response());
        }
        match (reply.status, problem_kind(&reply).as_str()) {
            (StatusCode::UNAUTHORIZED, _) => errors.add("_form", "The e-mail address or password is not right."),
            (StatusCode::FORBIDDEN, "email-not-verified") => {
                unverified = true;
                errors.add(
                    "_form",
                    "Your e-mail address is not confirmed yet. Open the link in the message we sent you, or ask for a new one below.",
                );
            }
            (StatusCode::FORBIDDEN, "account-disabled") => errors.add(
                "_form",
                "This account is disabled. Please contact customer support if you think this is a mistake.",
            ),
            (StatusCode::TOO_MANY_REQUESTS, _) => errors.add(
                "_form",
                format!(
                    "Too many failed sign-in attempts. For your security, signing in is paused; please try again {}.",
                    wait_phrase(retry_after(&reply))
                ),
            ),
            _ => {
                errors = api_errors(
                    &reply,
                    &[
                        ("email", "email", "E-mail address"),
                        ("password", "password", "Password"),
                    ],
                )
            }
        }
    }
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/login.html",
        context! { next => next, email => email, errors => errors, unverified => unverified },
    )
}

/// `POST /auth/login` with the browser's `User-Agent`, which identity records with the session:
/// the sessions page then names the browser ("Firefox on Linux") rather than this server.
async fn login_call(
    web: &WebState,
    session: &Session,
    headers: &HeaderMap,
    body: &LoginRequest,
) -> Result<Reply, PageError> {
    let client = web
        .peers()
        .client(crate::CALLER, "identity")
        .map_err(|e| PageError::Internal(e.context("no route to identity")))?;
    let mut call = client
        .post("/api/v1/auth/login")
        .json(body)
        .on_behalf_of(session.client_ip())
        .timeout(LOGIN_TIMEOUT);
    if let Some(agent) = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
        call = call.header(USER_AGENT.as_str(), agent);
    }
    let unavailable = || PageError::Unavailable {
        what: "identity".into(),
    };
    match call.send().await {
        Ok(reply) if reply.status.is_server_error() => Err(unavailable()),
        Ok(reply) => Ok(reply),
        Err(e) => {
            tracing::warn!(error = %e, "login: identity did not answer");
            Err(unavailable())
        }
    }
}

/// Like every page's API call (see `crate::api`).
const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn logout(State(web): State<WebState>, session: Session, Form(_): Form<NoFields>) -> Result<Response, PageError> {
    web.api(&session).sign_out().await;
    session.flash("info", "You have signed out.");
    Ok(Redirect::to("/").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: StatusCode, body: &str) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn api_fragments_become_sentences_about_the_input() {
        assert_eq!(
            sentence("E-mail address", "is already registered"),
            "E-mail address is already registered."
        );
        assert_eq!(sentence("Password", "Too short!"), "Too short!");
        assert_eq!(sentence("Name", "is required."), "Name is required.");
        assert_eq!(
            sentence(
                "Password",
                "is too weak: This is a very common password.; add more words"
            ),
            "Password is too weak: This is a very common password; add more words."
        );
    }

    #[test]
    fn field_errors_land_on_the_inputs_the_form_has() {
        let r = reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"title":"Invalid","errors":[{"field":"new_password","message":"must be at least 12 characters long"},{"field":"token","message":"is invalid"}]}"#,
        );
        let errors = api_errors(&r, &[("new_password", "new_password", "New password")]);
        assert_eq!(
            errors.get("new_password"),
            Some("New password must be at least 12 characters long.")
        );
        assert_eq!(errors.get("_form"), Some("Token is invalid."));
        let r = reply(
            StatusCode::CONFLICT,
            r#"{"title":"Conflict","detail":"the resource changed"}"#,
        );
        assert_eq!(api_errors(&r, &[]).get("_form"), Some("The resource changed."));
    }

    #[test]
    fn problem_kinds_are_read_from_the_type() {
        let r = reply(
            StatusCode::FORBIDDEN,
            r#"{"type":"tag:emporium.dev,2026:problem/email-not-verified","title":"E-mail not verified"}"#,
        );
        assert_eq!(problem_kind(&r), "email-not-verified");
        assert_eq!(problem_kind(&reply(StatusCode::FORBIDDEN, "not json")), "");
    }

    #[test]
    fn new_passwords_must_be_long_and_typed_twice() {
        let mut errors = FieldErrors::new();
        check_password_pair("correct horse battery", "correct horse battery", "p", "c", &mut errors);
        assert!(errors.is_empty());
        check_password_pair("short", "short", "p", "c", &mut errors);
        assert!(errors.get("p").is_some_and(|m| m.contains("12 characters")));
        assert_eq!(errors.get("c"), None);
        let mut errors = FieldErrors::new();
        check_password_pair("correct horse battery", "correct horse batery", "p", "c", &mut errors);
        assert_eq!(errors.get("p"), None);
        assert_eq!(errors.get("c"), Some("The two passwords are not the same."));
        let mut errors = FieldErrors::new();
        check_password_pair("", "", "p", "c", &mut errors);
        assert_eq!(errors.get("p"), Some("Choose a password."));
    }

    #[test]
    fn waits_are_said_in_minutes() {
        assert_eq!(wait_phrase(None), "in a little while");
        assert_eq!(wait_phrase(Some(30)), "in a minute");
        assert_eq!(wait_phrase(Some(61)), "in 2 minutes");
        assert_eq!(wait_phrase(Some(900)), "in 15 minutes");
    }
}
