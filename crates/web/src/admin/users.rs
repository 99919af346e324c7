//! Accounts (search, change role, block and unblock) and the security audit log.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::identity::{
    AuditEventView, ErasureReport, ExportList, RoleRequest, StatusRequest, UserStatus, UserView,
};
use contracts::kernel::Role;
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use platform::pagination::Page;
use serde::{Deserialize, Serialize};

use super::{query_string, segment, sentence};
use crate::forms::{FieldErrors, Form};
use crate::render::{page_with_status, value_of};
use crate::{PageError, Session, WebState, safe_next};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/users", get(users))
        .route("/admin/users/{id}/role", post(change_role))
        .route("/admin/users/{id}/status", post(change_status))
        .route("/admin/users/{id}/privacy", get(privacy_page))
        .route("/admin/users/{id}/export", post(export_on_request))
        .route("/admin/users/{id}/erase", post(erase_on_request))
        .route("/admin/audit", get(audit))
}

/// The role names identity accepts, in its order.
const ROLES: [&str; 5] = {
    let [a, b, c, d, e] = Role::ALL;
    [a.as_str(), b.as_str(), c.as_str(), d.as_str(), e.as_str()]
};
const USER_STATUSES: [&str; 3] = {
    let [a, b, c] = UserStatus::ALL;
    [a.as_str(), b.as_str(), c.as_str()]
};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct UserFilter {
    email: String,
    role: String,
    status: String,
    cursor: String,
}

fn known<'a>(value: &'a str, allowed: &[&str]) -> &'a str {
    if allowed.contains(&value) { value } else { "" }
}

async fn users(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<UserFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let filters = [
        ("email", filter.email.as_str()),
        ("role", known(&filter.role, &ROLES)),
        ("status", known(&filter.status, &USER_STATUSES)),
    ];
    let mut api_query = filters.to_vec();
    api_query.extend([("limit", "50"), ("cursor", filter.cursor.as_str())]);
    let list: Page<UserView> = web
        .api(&session)
        .get_json("identity", &format!("/api/v1/users{}", query_string(&api_query)))
        .await?;
    let rows: Vec<UserRow> = list.items.into_iter().map(UserRow::new).collect();
    let mut page_query = filters.to_vec();
    let next_page = list.next.as_deref().map(|cursor| {
        page_query.push(("cursor", cursor));
        format!("/admin/users{}", query_string(&page_query))
    });
    // Back to this very list (filters and page) after an action.
    let back = session.current_path();
    page_with_status(
        StatusCode::OK,
        &session,
        "admin/users.html",
        context! {
            users => value_of(&rows),
            filter => value_of(&filter),
            roles => ROLES,
            statuses => USER_STATUSES,
            next_page => next_page,
            back => back,
        },
    )
}

/// An account as the users page lists it: the view, and a link to its audit trail.
#[derive(Debug, Serialize)]
struct UserRow {
    #[serde(flatten)]
    user: UserView,
    audit_href: String,
}

impl UserRow {
    fn new(user: UserView) -> Self {
        let audit_href = format!("/admin/audit{}", query_string(&[("email", &user.email)]));
        Self { user, audit_href }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AccountForm {
    role: String,
    status: String,
    back: String,
}

async fn change_role(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<AccountForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let back = safe_next(&form.back).to_owned();
    let Ok(role) = form.role.parse::<Role>() else {
        session.flash("error", "Choose one of the listed roles.");
        return Ok(Redirect::to(&back).into_response());
    };
    let api = web.api(&session);
    let reply = api
        .put(
            "identity",
            &format!("/api/v1/users/{}/role", segment(&id)),
            &RoleRequest { role },
        )
        .await?;
    after(&web, &session, reply, &back, |user| {
        format!("{} is now {}; their sessions were ended.", user.email, user.role)
    })
}

async fn change_status(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<AccountForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let back = safe_next(&form.back).to_owned();
    let status = match form.status.parse::<UserStatus>() {
        Ok(status @ (UserStatus::Active | UserStatus::Disabled)) => status,
        _ => {
            session.flash("error", "An account can only be blocked or unblocked here.");
            return Ok(Redirect::to(&back).into_response());
        }
    };
    let reply = web
        .api(&session)
        .put(
            "identity",
            &format!("/api/v1/users/{}/status", segment(&id)),
            &StatusRequest { status },
        )
        .await?;
    after(&web, &session, reply, &back, |user| {
        if user.status == UserStatus::Disabled {
            format!("{} is blocked; their sessions were ended.", user.email)
        } else {
            format!("{} is unblocked.", user.email)
        }
    })
}

fn after(
    web: &WebState,
    session: &Session,
    reply: platform::client::Reply,
    back: &str,
    done: impl FnOnce(&UserView) -> String,
) -> Result<Response, PageError> {
    let api = web.api(session);
    if reply.is_success() {
        let user: UserView = api.decode(reply)?;
        session.flash("success", done(&user));
    } else if matches!(reply.status, StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY) {
        // e.g. changing one's own role: identity says why.
        session.flash("error", sentence(&reply.problem_detail()));
    } else {
        return Err(api.error_for(&reply));
    }
    Ok(Redirect::to(back).into_response())
}

/// One account's personal data: its exports, its erasure report, and the actions an
/// administrator takes on the owner's request (both recorded in the audit log).
async fn privacy_page(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let user: UserView = api
        .get_json("identity", &format!("/api/v1/users/{}", segment(&id)))
        .await?;
    let exports: ExportList = api
        .get_json("identity", &format!("/api/v1/users/{}/exports", user.id))
        .await?;
    let reply = api
        .get("identity", &format!("/api/v1/users/{}/erasure", user.id))
        .await?;
    let erasure: Option<ErasureReport> = match reply.status {
        StatusCode::NOT_FOUND => None,
        _ => Some(api.decode(reply)?),
    };
    page_with_status(
        StatusCode::OK,
        &session,
        "admin/user_privacy.html",
        context! {
            user => value_of(&user),
            exports => value_of(&exports.items),
            erasure => value_of(&erasure),
        },
    )
}

async fn export_on_request(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<crate::forms::NoFields>,
) -> Result<Response, PageError> {
    on_request(
        &web,
        &session,
        &id,
        "export",
        "The export started; the customer gets an e-mail when it is ready.",
    )
    .await
}

async fn erase_on_request(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<crate::forms::NoFields>,
) -> Result<Response, PageError> {
    on_request(
        &web,
        &session,
        &id,
        "erase",
        "The account is erased; every part of the shop reports below as it finishes.",
    )
    .await
}

/// Asks identity to `action` (`export` or `erase`) the account, then shows its personal-data
/// page with `done` or identity's reason for refusing.
async fn on_request(
    web: &WebState,
    session: &Session,
    id: &str,
    action: &str,
    done: &str,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(session);
    let reply = api
        .post(
            "identity",
            &format!("/api/v1/users/{}/{action}", segment(id)),
            &serde_json::json!({}),
        )
        .await?;
    if reply.is_success() {
        session.flash("success", done);
    } else if reply.status == StatusCode::CONFLICT {
        session.flash("error", sentence(&reply.problem_detail()));
    } else {
        return Err(api.error_for(&reply));
    }
    Ok(Redirect::to(&format!("/admin/users/{}/privacy", segment(id))).into_response())
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct AuditFilter {
    kind: String,
    email: String,
    ip: String,
    from: String,
    until: String,
    cursor: String,
}

async fn audit(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let mut errors = FieldErrors::new();
    let day = |text: &str, later: i64, field: &str, errors: &mut FieldErrors| {
        if text.trim().is_empty() {
            return String::new();
        }
        super::orders::day_start(text, later).unwrap_or_else(|m| {
            errors.add(field, m);
            String::new()
        })
    };
    let since = day(&filter.from, 0, "from", &mut errors);
    let until = day(&filter.until, 1, "until", &mut errors);
    let filters = [
        ("kind", filter.kind.as_str()),
        ("email", filter.email.as_str()),
        ("ip", filter.ip.as_str()),
    ];
    let list = if errors.is_empty() {
        let mut query = filters.to_vec();
        query.extend([
            ("since", since.as_str()),
            ("until", until.as_str()),
            ("limit", "100"),
            ("cursor", &filter.cursor),
        ]);
        let api = web.api(&session);
        let reply = api
            .get(
                "identity",
                &format!("/api/v1/auth/audit-events{}", query_string(&query)),
            )
            .await?;
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
            errors = super::problem_errors(&reply, |f| {
                match f {
                    "since" => "from",
                    "kind" | "email" | "ip" | "until" => f,
                    _ => "_form",
                }
                .to_owned()
            });
            no_events()
        } else {
            api.decode::<Page<AuditEventView>>(reply)?
        }
    } else {
        no_events()
    };
    let next_page = list.next.as_deref().map(|cursor| {
        let mut query = filters.to_vec();
        query.extend([
            ("from", filter.from.as_str()),
            ("until", filter.until.as_str()),
            ("cursor", cursor),
        ]);
        format!("/admin/audit{}", query_string(&query))
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with_status(
        status,
        &session,
        "admin/audit.html",
        context! {
            events => value_of(&list.items),
            filter => value_of(&filter),
            errors => errors,
            next_page => next_page,
        },
    )
}

/// What the audit page shows when the filters were refused.
fn no_events() -> Page<AuditEventView> {
    Page {
        items: Vec::new(),
        next: None,
    }
}
