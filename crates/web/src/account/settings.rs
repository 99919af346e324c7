//! The signed-in user's own pages: profile, password, sessions, notification preferences and
//! deleting the account.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::identity::{
    ChangePasswordRequest, PasswordConfirmation, SessionView, UpdateProfileRequest, UserView,
};
use contracts::api::notifications::{PreferencesRequest, PreferencesView};
use http::{Method, StatusCode};
use minijinja::context;
use platform::http::Path;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{api_errors, check_password_pair};
use crate::forms::{FieldErrors, Form};
use crate::render::{page, page_with_status, value_of};
use crate::session::SessionUser;
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/account", get(profile_page).post(save_profile))
        .route("/account/password", get(password_page).post(change_password))
        .route("/account/sessions", get(sessions_page))
        .route("/account/sessions/{id}/revoke", post(revoke_session))
        .route(
            "/account/notifications",
            get(notifications_page).post(save_notifications),
        )
        .route("/account/delete", get(delete_page).post(delete_account))
}

async fn profile_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_user()?;
    let me: UserView = web.api(&session).get_json("identity", "/api/v1/users/me").await?;
    let name = me.name.clone();
    page(
        &session,
        "account/profile.html",
        context! { me => value_of(&me), name => name, errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct ProfileForm {
    #[serde(default)]
    name: String,
}

async fn save_profile(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<ProfileForm>,
) -> Result<Response, PageError> {
    let user = session.require_user()?;
    let api = web.api(&session);
    let name = form.name.trim().to_owned();
    let mut errors = FieldErrors::new();
    if name.is_empty() {
        errors.add("name", "Enter your name.");
    } else {
        let change = UpdateProfileRequest { name: name.clone() };
        let reply = api.put("identity", "/api/v1/users/me", &change).await?;
        if reply.is_success() {
            let me: UserView = api.decode(reply)?;
            remember_name(&session, user, me.name);
            session.flash("success", "Your profile is saved.");
            return Ok(Redirect::to("/account").into_response());
        }
        if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(api.error_for(&reply));
        }
        errors = api_errors(&reply, &[("name", "name", "Name")]);
    }
    let me: UserView = api.get_json("identity", "/api/v1/users/me").await?;
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/profile.html",
        context! { me => value_of(&me), name => name, errors => errors },
    )
}

/// The header greets the user by the name kept in the session: keep it current.
fn remember_name(session: &Session, user: SessionUser, name: String) {
    if let Some(tokens) = session.tokens() {
        session.sign_in(SessionUser { name, ..user }, tokens);
    }
}

async fn password_page(session: Session) -> Result<Response, PageError> {
    session.require_user()?;
    page(
        &session,
        "account/password.html",
        context! { errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

async fn change_password(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let mut errors = FieldErrors::new();
    if form.current_password.is_empty() {
        errors.add("current_password", "Enter your current password.");
    }
    check_password_pair(
        &form.new_password,
        &form.new_password_confirm,
        "new_password",
        "new_password_confirm",
        &mut errors,
    );
    if errors.is_empty() {
        let api = web.api(&session);
        let body = ChangePasswordRequest {
            current_password: form.current_password,
            new_password: form.new_password,
        };
        let reply = api.put("identity", "/api/v1/users/me/password", &body).await?;
        if reply.is_success() {
            // Identity keeps this session and ends every other one.
            session.flash(
                "success",
                "Your password is changed. Every other device you were signed in on has been signed out.",
            );
            return Ok(Redirect::to("/account").into_response());
        }
        if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(api.error_for(&reply));
        }
        errors = api_errors(
            &reply,
            &[
                ("current_password", "current_password", "Current password"),
                ("new_password", "new_password", "New password"),
            ],
        );
    }
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/password.html",
        context! { errors => errors },
    )
}

/// One of identity's sessions as the sessions page lists it: the view, and the browser and
/// system its user agent names.
#[derive(Debug, Serialize)]
struct SessionRow {
    #[serde(flatten)]
    session: SessionView,
    described: String,
}

async fn sessions_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_user()?;
    let sessions: Vec<SessionView> = web
        .api(&session)
        .get_json("identity", "/api/v1/users/me/sessions")
        .await?;
    let rows: Vec<SessionRow> = sessions
        .into_iter()
        .map(|session| SessionRow {
            described: describe_device(&session.device),
            session,
        })
        .collect();
    page(
        &session,
        "account/sessions.html",
        context! { sessions => value_of(&rows) },
    )
}

async fn revoke_session(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<crate::forms::NoFields>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let id: Uuid = id.parse().map_err(|_| PageError::NotFound)?;
    let api = web.api(&session);
    let reply = api
        .delete("identity", &format!("/api/v1/users/me/sessions/{id}"))
        .await?;
    match reply.status {
        status if status.is_success() => {
            session.flash("success", "That device is signed out.");
        }
        // Already ended (expired, or signed out elsewhere): the list is what matters.
        StatusCode::NOT_FOUND => session.flash("info", "That session had already ended."),
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to("/account/sessions").into_response())
}

/// "Firefox on Linux" from a `User-Agent` string; the string itself (shortened) when neither
/// part is recognised. Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari",
/// Android also says "Linux", iOS also says "Mac OS X".
pub(crate) fn describe_device(user_agent: &str) -> String {
    let ua = user_agent.trim();
    if ua.is_empty() || ua == "unknown" {
        return "Unknown device".into();
    }
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| *name);
    let system = [
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) => {
            let short: String = ua.chars().take(60).collect();
            if short.len() < ua.len() {
                format!("{short}…")
            } else {
                short
            }
        }
    }
}

async fn notifications_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    let user = session.require_user()?;
    let prefs: PreferencesView = web
        .api(&session)
        .get_json("notifications", "/api/v1/notifications/preferences")
        .await?;
    page(
        &session,
        "account/notifications.html",
        context! { prefs => value_of(&prefs), staff => user.is_staff() },
    )
}

/// Unticked checkboxes are not sent at all, so each one is "present or not".
#[derive(Debug, Deserialize)]
struct PreferencesForm {
    marketing: Option<String>,
    low_stock_alerts: Option<String>,
}

async fn save_notifications(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<PreferencesForm>,
) -> Result<Response, PageError> {
    let user = session.require_user()?;
    let change = PreferencesRequest {
        marketing: Some(form.marketing.is_some()),
        // Low-stock alerts are for staff; a customer's form does not show them, so leaves them be.
        low_stock_alerts: user.is_staff().then_some(form.low_stock_alerts.is_some()),
        ..PreferencesRequest::default()
    };
    let api = web.api(&session);
    let reply = api
        .put("notifications", "/api/v1/notifications/preferences", &change)
        .await?;
    if !reply.is_success() {
        return Err(api.error_for(&reply));
    }
    session.flash("success", "Your e-mail preferences are saved.");
    Ok(Redirect::to("/account/notifications").into_response())
}

async fn delete_page(session: Session) -> Result<Response, PageError> {
    session.require_user()?;
    page(
        &session,
        "account/delete.html",
        context! { errors => FieldErrors::new() },
    )
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    #[serde(default)]
    password: String,
}

async fn delete_account(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<DeleteForm>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let mut errors = FieldErrors::new();
    if form.password.is_empty() {
        errors.add("password", "Enter your password to confirm.");
    } else {
        let api = web.api(&session);
        let body = PasswordConfirmation {
            password: form.password,
        };
        let reply = api
            .call(Method::DELETE, "identity", "/api/v1/users/me", Some(&body))
            .await?;
        if reply.is_success() {
            // Identity has ended every session of the account; forget it here too.
            session.sign_out();
            session.flash("info", "Your account is deleted. Thank you for shopping with us.");
            return Ok(Redirect::to("/").into_response());
        }
        if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(api.error_for(&reply));
        }
        errors = api_errors(&reply, &[("password", "password", "Password")]);
    }
    page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &session,
        "account/delete.html",
        context! { errors => errors },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_named_like_people_say_them() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            ("curl/8.5.0", "curl"),
            ("", "Unknown device"),
            ("unknown", "Unknown device"),
            ("emporium-cli", "emporium-cli"),
        ];
        for (ua, expected) in cases {
            assert_eq!(describe_device(ua), expected, "{ua}");
        }
        assert_eq!(describe_device(&"x".repeat(100)).chars().count(), 61);
    }
}
