//! Identity's HTTP API: thin handlers that parse, call the service and shape the answer.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::api::identity::{
    AddressBook, AddressRequest, AddressView, AuditEventView, ChangePasswordRequest, EmailRequest, LoginRequest,
    PasswordConfirmation, RefreshRequest, RegisterRequest, RegistrationAccepted, ResetPasswordRequest, RoleRequest,
    RotatedKey, ServiceTokenRequest, ServiceTokenResponse, SessionView, StatusRequest, TokenRequest, TokenResponse,
    UpdateProfileRequest, UserView,
};
use platform::auth::AuthUser;
use platform::client::InProcessCall;
use platform::http::Path;
use platform::http::{ClientIp, Json, Query, UserAgent};
use platform::pagination::{self, Page};
use platform::routes;
use platform::{FieldError, Problem};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::domain::{LoginThrottle, Role, UserStatus};
use crate::service::{ClientInfo, IdentityError, IdentityService, IssuedTokens, Registration};
use crate::store::{AddressRecord, AuditEvent, AuditFilter, Session, User, UserFilter};

type Svc = State<Arc<IdentityService>>;
type ApiResult<T> = Result<T, Problem>;

/// The caller's address and user agent, for sessions and the audit log.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let UserAgent(user_agent) = UserAgent::from_request_parts(parts, state).await?;
        Ok(Client(ClientInfo {
            ip: ip.to_string(),
            user_agent,
        }))
    }
}

/// Spends one unit of the caller's per-address budget for unauthenticated auth requests;
/// rejects with 429 and `Retry-After` when it is used up.
pub struct RateLimited;

impl FromRequestParts<Arc<IdentityService>> for RateLimited {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, svc: &Arc<IdentityService>) -> Result<Self, Self::Rejection> {
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, svc).await;
        svc.auth_limiter().check(ip)?;
        Ok(RateLimited)
    }
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            name: u.name,
            role: u.role,
            status: u.status,
            email_verified: u.email_verified_at.is_some(),
            email_verified_at: u.email_verified_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
            version: u.version,
        }
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"v{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"v0\""))
}

fn user_with_etag(status: StatusCode, user: User) -> Response {
    let tag = etag(user.version);
    (status, [(header::ETAG, tag)], Json(UserView::from(user))).into_response()
}

/// Reads `If-Match: "v<n>"`; absent or `*` means "whatever version is current".
fn expected_version(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    platform::http::if_match_version(headers, |tag| tag.strip_prefix('v')?.parse().ok())
}

impl From<IssuedTokens> for TokenResponse {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer".into(),
            expires_in: t.access_expires_in.as_secs(),
            refresh_token: t.refresh_token.expose(),
            refresh_expires_in: t.refresh_expires_in.as_secs(),
            session_id: t.session_id,
        }
    }
}

fn tokens(t: IssuedTokens) -> Response {
    // Token responses must never be cached (RFC 6749, section 5.1).
    ([(header::CACHE_CONTROL, "no-store")], Json(TokenResponse::from(t))).into_response()
}

/// Signs up. The answer is the same whether or not the address already has an account, so it
/// reveals nothing: a new account gets an e-mail verification token; the owner of an existing one
/// gets a message saying someone tried (with links to sign in or reset the password).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 202, description = "Check your mailbox; verify the e-mail address next", body = RegistrationAccepted),
        (status = 422, description = "Invalid field(s)", body = Problem),
        (status = 429, description = "Too many requests from this address; see Retry-After", body = Problem)))]
pub async fn register(
    State(svc): Svc,
    _: RateLimited,
    Client(client): Client,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<Response> {
    let email = req.email.trim().to_lowercase();
    svc.register(
        Registration {
            email: req.email,
            password: req.password,
            name: req.name,
        },
        &client,
    )
    .await?;
    let body = RegistrationAccepted {
        message: format!("Check your mailbox: we sent a message to {email}."),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Confirms an e-mail address with the single-use token that was mailed.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses((status = 204, description = "Verified"), (status = 422, description = "Token invalid, expired or used", body = Problem)))]
pub async fn verify_email(State(svc): Svc, _: RateLimited, Json(req): Json<TokenRequest>) -> ApiResult<StatusCode> {
    svc.verify_email(&req.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a new verification token. Same answer whether or not the address is registered.
#[utoipa::path(post, path = "/api/v1/auth/resend-verification", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "If the address has an unverified account, a message is on its way")))]
pub async fn resend_verification(
    State(svc): Svc,
    _: RateLimited,
    Json(req): Json<EmailRequest>,
) -> ApiResult<StatusCode> {
    svc.resend_verification(&req.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Exchanges e-mail and password for an access token and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong e-mail or password", body = Problem),
        (status = 403, description = "E-mail not verified, or account disabled", body = Problem),
        (status = 429, description = "Too many failures for this account or address; see Retry-After", body = Problem)))]
pub async fn login(State(svc): Svc, Client(client): Client, Json(req): Json<LoginRequest>) -> ApiResult<Response> {
    match svc.login(&req.email, req.password, &client).await {
        Ok(issued) => Ok(tokens(issued)),
        Err(IdentityError::Throttled(t)) => Ok(lockout(t)),
        Err(e) => Err(e.into()),
    }
}

/// A login lockout: 429 whose `Retry-After` and `RateLimit-*` fields describe the same limit (the
/// edge keeps its own budget's fields off an answer that carries these).
fn lockout(t: LoginThrottle) -> Response {
    let wait = t.wait.as_secs().max(1);
    let mut response = Problem::from(IdentityError::Throttled(t)).into_response();
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(t.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
    headers.insert("ratelimit-reset", HeaderValue::from(wait));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w={}", t.limit, t.window.as_secs())) {
        headers.insert("ratelimit-policy", policy);
    }
    response
}

/// Rotates a refresh token: returns a new pair; the old refresh token stops working. Presenting
/// an already-rotated token revokes the whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "New token pair", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = Problem)))]
pub async fn refresh(
    State(svc): Svc,
    _: RateLimited,
    Client(client): Client,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Response> {
    Ok(tokens(svc.refresh(&req.refresh_token, &client).await?))
}

/// Ends the caller's session: its refresh token stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, description = "Not logged in", body = Problem)))]
pub async fn logout(State(svc): Svc, auth: AuthUser, Client(client): Client) -> ApiResult<StatusCode> {
    svc.logout(&auth, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a password-reset token. Same answer whether or not the address is registered.
#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "If the address has an account, a message is on its way")))]
pub async fn forgot_password(
    State(svc): Svc,
    _: RateLimited,
    Client(client): Client,
    Json(req): Json<EmailRequest>,
) -> StatusCode {
    svc.forgot_password(&req.email, &client).await;
    StatusCode::ACCEPTED
}

/// Sets a new password with a reset token; every session of the account is revoked.
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204, description = "Password changed"), (status = 422, description = "Token invalid, or password too weak", body = Problem)))]
pub async fn reset_password(
    State(svc): Svc,
    _: RateLimited,
    Client(client): Client,
    Json(req): Json<ResetPasswordRequest>,
) -> ApiResult<StatusCode> {
    svc.reset_password(&req.token, req.new_password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a short-lived token with role `service` to another Emporium context, which calls
/// peers with it (reservations, payments). Rate limited per client id (120 per minute); wrong
/// credentials are limited per address. Not part of the sign-up budget.
#[utoipa::path(post, path = "/api/v1/auth/service-token", tag = "auth", request_body = ServiceTokenRequest,
    responses((status = 200, description = "Service token", body = ServiceTokenResponse),
        (status = 401, description = "Unknown client or wrong secret", body = Problem),
        (status = 429, description = "Too many tokens for this client id, or too many wrong credentials from this address", body = Problem)))]
pub async fn service_token(
    State(svc): Svc,
    in_process: Option<Extension<InProcessCall>>,
    ClientIp(ip): ClientIp,
    Json(req): Json<ServiceTokenRequest>,
) -> ApiResult<Response> {
    let caller = in_process.is_none().then_some(ip);
    let (token, ttl) = svc.issue_service_token(&req.client_id, &req.client_secret, caller)?;
    let body = ServiceTokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: ttl.as_secs(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// The public keys that verify access tokens (RFC 7517). Other contexts cache this.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWK Set", body = Object)))]
pub async fn jwks(State(svc): Svc) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(svc.keys().jwks()),
    )
        .into_response()
}

/// Publishes a new signing key (admin), which signs after the lead time. Older keys stay
/// published until their tokens expire.
#[utoipa::path(post, path = "/api/v1/auth/signing-keys/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 201, description = "New active key", body = RotatedKey), (status = 403, description = "Not an admin", body = Problem)))]
pub async fn rotate_signing_key(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
) -> ApiResult<(StatusCode, Json<RotatedKey>)> {
    let (kid, signs_from) = svc.rotate_signing_key(&auth, &client).await?;
    Ok((StatusCode::CREATED, Json(RotatedKey { kid, signs_from })))
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The account; `ETag` carries its version", body = UserView),
        (status = 401, description = "Not logged in, or the session ended", body = Problem)))]
pub async fn me(State(svc): Svc, auth: AuthUser) -> ApiResult<Response> {
    Ok(user_with_etag(StatusCode::OK, svc.current_user(&auth).await?))
}

/// Updates the caller's profile. Send `If-Match` with the `ETag` you read to avoid lost updates.
#[utoipa::path(put, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateProfileRequest,
    params(("If-Match" = Option<String>, Header, description = "ETag from a previous read, e.g. \"v3\"")),
    responses((status = 200, description = "Updated", body = UserView),
        (status = 412, description = "The account changed since it was read", body = Problem),
        (status = 422, description = "Invalid name", body = Problem)))]
pub async fn update_me(
    State(svc): Svc,
    auth: AuthUser,
    headers: HeaderMap,
    Json(req): Json<UpdateProfileRequest>,
) -> ApiResult<Response> {
    let expected = expected_version(&headers)?;
    Ok(user_with_etag(
        StatusCode::OK,
        svc.update_profile(&auth, &req.name, expected).await?,
    ))
}

/// Deletes the caller's account: personal data is erased and every session ends.
#[utoipa::path(delete, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = PasswordConfirmation,
    responses((status = 204, description = "Deleted"), (status = 422, description = "Wrong password", body = Problem)))]
pub async fn delete_me(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Json(req): Json<PasswordConfirmation>,
) -> ApiResult<StatusCode> {
    svc.delete_account(&auth, req.password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password; every other session is revoked.
#[utoipa::path(put, path = "/api/v1/users/me/password", tag = "users", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed"), (status = 422, description = "Wrong current password, or weak new one", body = Problem)))]
pub async fn change_password(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    svc.change_password(&auth, req.current_password, req.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's live sessions, most recently used first.
#[utoipa::path(get, path = "/api/v1/users/me/sessions", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "Live sessions", body = Vec<SessionView>)))]
pub async fn my_sessions(State(svc): Svc, auth: AuthUser) -> ApiResult<Json<Vec<SessionView>>> {
    let current = auth.session_id();
    let sessions = svc.sessions(&auth).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s: Session| SessionView {
                current: s.id == current,
                id: s.id,
                device: s.user_agent,
                ip: s.ip,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
            })
            .collect(),
    ))
}

/// Ends one of the caller's sessions (e.g. a lost phone).
#[utoipa::path(delete, path = "/api/v1/users/me/sessions/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such live session", body = Problem)))]
pub async fn revoke_my_session(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    svc.revoke_own_session(&auth, parse_id(&id)?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn address_view(r: AddressRecord) -> AddressView {
    AddressView {
        id: r.id,
        label: r.label,
        address: r.address.to_raw(),
        is_default: r.is_default,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The caller's address book, the default first.
#[utoipa::path(get, path = "/api/v1/users/me/addresses", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "Saved addresses", body = AddressBook)))]
pub async fn my_addresses(State(svc): Svc, auth: AuthUser) -> ApiResult<Json<AddressBook>> {
    let items = svc.addresses(&auth).await?.into_iter().map(address_view).collect();
    Ok(Json(AddressBook {
        items,
        limit: crate::domain::MAX_SAVED_ADDRESSES,
    }))
}

/// Saves an address. The first one becomes the default; `default: true` moves the mark to it.
#[utoipa::path(post, path = "/api/v1/users/me/addresses", tag = "users", security(("bearer" = [])), request_body = AddressRequest,
    responses((status = 201, description = "Saved", body = AddressView),
        (status = 409, description = "The address book is full", body = Problem),
        (status = 422, description = "A field is invalid (`label`, `address.<field>`)", body = Problem)))]
pub async fn add_address(
    State(svc): Svc,
    auth: AuthUser,
    Json(req): Json<AddressRequest>,
) -> ApiResult<(StatusCode, Json<AddressView>)> {
    let saved = svc.add_address(&auth, &req).await?;
    Ok((StatusCode::CREATED, Json(address_view(saved))))
}

/// Replaces one of the caller's addresses; orders placed with it keep their own copy.
#[utoipa::path(put, path = "/api/v1/users/me/addresses/{id}", tag = "users", security(("bearer" = [])), request_body = AddressRequest,
    params(("id" = Uuid, Path, description = "Address id")),
    responses((status = 200, description = "Replaced", body = AddressView),
        (status = 404, description = "No such address in the caller's book", body = Problem),
        (status = 422, description = "A field is invalid (`label`, `address.<field>`)", body = Problem)))]
pub async fn replace_address(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<AddressRequest>,
) -> ApiResult<Json<AddressView>> {
    let id = parse_id(&id)?;
    Ok(Json(address_view(svc.replace_address(&auth, id, &req).await?)))
}

/// Removes one of the caller's addresses. Removing the default passes the mark to the most
/// recently added address left.
#[utoipa::path(delete, path = "/api/v1/users/me/addresses/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Address id")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such address in the caller's book", body = Problem)))]
pub async fn remove_address(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    svc.remove_address(&auth, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes one of the caller's addresses the default.
#[utoipa::path(post, path = "/api/v1/users/me/addresses/{id}/default", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Address id")),
    responses((status = 200, description = "Now the default", body = AddressView),
        (status = 404, description = "No such address in the caller's book", body = Problem)))]
pub async fn make_default_address(
    State(svc): Svc,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<AddressView>> {
    let id = parse_id(&id)?;
    Ok(Json(address_view(svc.make_default_address(&auth, id).await?)))
}

/// `ids=a,b,c`: account ids, at most [`pagination::MAX_LIMIT`] of them.
fn parse_ids(text: &str) -> ApiResult<Vec<Uuid>> {
    let ids = text
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            Uuid::parse_str(id).map_err(|_| Problem::invalid_field("ids", "must be comma-separated user ids (UUIDs)"))
        })
        .collect::<ApiResult<Vec<Uuid>>>()?;
    if ids.len() > pagination::MAX_LIMIT as usize {
        return Err(Problem::invalid_field(
            "ids",
            format!("at most {} ids at once", pagination::MAX_LIMIT),
        ));
    }
    Ok(ids)
}

pub(crate) fn parse_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| Problem::not_found("no resource with this id (ids are UUIDs)"))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Part of the e-mail address.
    pub email: Option<String>,
    /// Only these accounts: comma-separated ids, at most 200 (to name many users in one call).
    pub ids: Option<String>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// `next` from the previous page.
    pub cursor: Option<String>,
}

/// Lists accounts (admin), oldest first.
#[utoipa::path(get, path = "/api/v1/users", tag = "admin", security(("bearer" = [])), params(ListUsersQuery),
    responses((status = 200, description = "One page of users", body = Page<UserView>),
        (status = 403, description = "Not an admin", body = Problem)))]
pub async fn list_users(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<ListUsersQuery>,
) -> ApiResult<Json<Page<UserView>>> {
    let limit = pagination::limit(q.limit)?;
    let after = pagination::decode_cursor(q.cursor.as_deref())?;
    let filter = UserFilter {
        email_contains: q.email.filter(|e| !e.trim().is_empty()).map(|e| e.trim().to_owned()),
        ids: q.ids.as_deref().map(parse_ids).transpose()?,
        role: q.role,
        status: q.status,
    };
    let rows = svc.list_users(&auth, &filter, after, limit + 1).await?;
    let page = pagination::page_from(rows, limit, |u| u.id.0);
    Ok(Json(Page {
        items: page.items.into_iter().map(UserView::from).collect(),
        next: page.next,
    }))
}

/// One account (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The account", body = UserView), (status = 404, description = "No such user", body = Problem)))]
pub async fn get_user(State(svc): Svc, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(user_with_etag(
        StatusCode::OK,
        svc.get_user(&auth, parse_id(&id)?).await?,
    ))
}

/// Changes an account's role (admin). The account's sessions end so the new role applies at once.
#[utoipa::path(put, path = "/api/v1/users/{id}/role", tag = "admin", security(("bearer" = [])), request_body = RoleRequest,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Updated", body = UserView), (status = 409, description = "Own role", body = Problem)))]
pub async fn set_role(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
    Json(req): Json<RoleRequest>,
) -> ApiResult<Response> {
    Ok(user_with_etag(
        StatusCode::OK,
        svc.change_role(&auth, parse_id(&id)?, req.role, &client).await?,
    ))
}

/// Disables or re-enables an account (admin). Disabling ends every session of the account.
#[utoipa::path(put, path = "/api/v1/users/{id}/status", tag = "admin", security(("bearer" = [])), request_body = StatusRequest,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Updated", body = UserView), (status = 409, description = "Own account", body = Problem)))]
pub async fn set_status(
    State(svc): Svc,
    auth: AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
    Json(req): Json<StatusRequest>,
) -> ApiResult<Response> {
    Ok(user_with_etag(
        StatusCode::OK,
        svc.change_status(&auth, parse_id(&id)?, req.status, &client).await?,
    ))
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            occurred_at: e.occurred_at,
            kind: e.kind,
            user_id: e.user_id,
            actor_id: e.actor_id,
            email: e.subject_email,
            ip: e.ip,
            user_agent: e.user_agent,
            detail: e.detail,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub kind: Option<String>,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub ip: Option<String>,
    /// RFC 3339; events at or after.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    pub since: Option<OffsetDateTime>,
    /// RFC 3339; events before.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    pub until: Option<OffsetDateTime>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The security audit log (admin), newest first.
#[utoipa::path(get, path = "/api/v1/auth/audit-events", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "One page of events", body = Page<AuditEventView>),
        (status = 403, description = "Not an admin", body = Problem)))]
pub async fn audit_events(
    State(svc): Svc,
    auth: AuthUser,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditEventView>>> {
    let limit = pagination::limit(q.limit)?;
    let before = pagination::decode_cursor(q.cursor.as_deref())?;
    if let (Some(s), Some(u)) = (q.since, q.until)
        && s >= u
    {
        return Err(Problem::validation(vec![FieldError::new(
            "until",
            "must be after since",
        )]));
    }
    let filter = AuditFilter {
        kind: q.kind,
        user_id: q.user_id,
        email: q.email.map(|e| e.trim().to_lowercase()),
        ip: q.ip,
        since: q.since,
        until: q.until,
    };
    let rows = svc.audit_log(&auth, &filter, before, limit + 1).await?;
    let page = pagination::page_from(rows, limit, |e| e.id);
    Ok(Json(Page {
        items: page.items.into_iter().map(AuditEventView::from).collect(),
        next: page.next,
    }))
}

/// Every identity route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<IdentityService>> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(service_token))
        .routes(routes!(jwks))
        .routes(routes!(rotate_signing_key))
        .routes(routes!(audit_events))
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(change_password))
        .routes(routes!(my_sessions))
        .routes(routes!(revoke_my_session))
        .routes(routes!(my_addresses, add_address))
        .routes(routes!(replace_address, remove_address))
        .routes(routes!(make_default_address))
        .routes(routes!(list_users))
        .routes(routes!(get_user))
        .routes(routes!(set_role))
        .routes(routes!(set_status))
        .merge(crate::privacy::api::routes())
}

/// How each identity error answers over HTTP: the one mapping, which every handler uses through `?`.
mod problem {
    use platform::{FieldError, Problem};

    use crate::service::IdentityError;

    impl From<IdentityError> for Problem {
        fn from(e: IdentityError) -> Self {
            use axum::http::StatusCode;
            let message = e.to_string();
            match e {
                IdentityError::Validation(errors) => Problem::validation(errors),
                IdentityError::EmailTaken => {
                    Problem::conflict(message).with_errors(vec![FieldError::new("email", "is already registered")])
                }
                IdentityError::InvalidCredentials
                | IdentityError::InvalidClientCredentials
                | IdentityError::InvalidRefreshToken
                | IdentityError::RefreshTokenReuse
                | IdentityError::SessionEnded => Problem::unauthorized(message),
                IdentityError::EmailNotVerified => {
                    Problem::new(StatusCode::FORBIDDEN, "email-not-verified", "E-mail not verified")
                        .with_detail(message)
                }
                IdentityError::AccountDisabled => {
                    Problem::new(StatusCode::FORBIDDEN, "account-disabled", "Account disabled").with_detail(message)
                }
                IdentityError::Throttled(t) => Problem::too_many_requests(t.wait.as_secs(), message),
                IdentityError::Forbidden(_) => Problem::forbidden(message),
                IdentityError::Conflict(_) => Problem::conflict(message),
                IdentityError::NotFound(_) => Problem::not_found(message),
                IdentityError::Gone(_) => Problem::new(StatusCode::GONE, "gone", "Gone").with_detail(message),
                IdentityError::VersionMismatch => Problem::precondition_failed(message),
                // A database outage is a 503 with Retry-After, found in the error chain.
                IdentityError::Internal(e) => Problem::from_error(&e),
            }
        }
    }
}
