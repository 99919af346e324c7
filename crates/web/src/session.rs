//! The browser session: an encrypted, authenticated cookie (AES-256-GCM through the `cookie`
//! crate's private jar). It holds the CSRF secret, the user's tokens from identity and the guest
//! cart token. Nothing is stored on the server, so any gateway replica with the same key can
//! serve any request; signing out revokes the refresh token at identity.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use contracts::api::identity::UserView;
use contracts::kernel::Role;
use cookie::{Cookie, CookieJar, SameSite};
use http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use http::request::Parts;
use http::{HeaderValue, Uri};
use platform::http::ClientIp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::WebState;
use crate::error::PageError;

pub const COOKIE_NAME: &str = "emporium_session";
/// The cookie outlives the refresh token a little; the tokens inside decide what is valid.
const COOKIE_MAX_AGE: time::Duration = time::Duration::days(30);

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// Travels as its name (`admin`), so cookies written before it was typed still read; one
    /// naming a role that no longer exists does not, and that browser is simply signed out.
    pub role: Role,
}

impl SessionUser {
    /// Who identity says signed in.
    pub fn from_account(account: UserView) -> Self {
        Self {
            id: account.id,
            email: account.email,
            name: account.name,
            role: account.role,
        }
    }

    /// Anyone who works here: every role but `customer` reaches the admin console (each page's
    /// API still decides what that role may do).
    pub fn is_staff(&self) -> bool {
        self.role != Role::Customer
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds.
    pub access_expires_at: i64,
}

/// A one-time message for the next page ("Order placed", "Password changed").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// `success`, `info` or `error`.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionData {
    csrf: String,
    #[serde(default)]
    user: Option<SessionUser>,
    #[serde(default)]
    tokens: Option<Tokens>,
    #[serde(default)]
    cart_token: Option<String>,
    #[serde(default)]
    flash: Option<Flash>,
    /// The display currency the visitor picked (prices are still charged in the shop's).
    #[serde(default)]
    display_currency: Option<String>,
}

impl SessionData {
    fn new() -> Self {
        Self {
            csrf: random_token(),
            user: None,
            tokens: None,
            cart_token: None,
            flash: None,
            display_currency: None,
        }
    }
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

struct SessionState {
    data: SessionData,
    dirty: bool,
    /// How this request's pages show prices (worked out per request, not stored).
    display: Option<crate::display::Display>,
}

/// The current request's session. Cheap to clone; changes are written back to the cookie when
/// the response leaves.
#[derive(Clone)]
pub struct Session {
    state: Arc<Mutex<SessionState>>,
    /// The path and query of the page being served (where to come back to after signing in).
    uri: Uri,
    client_ip: IpAddr,
}

impl Session {
    fn with<R>(&self, f: impl FnOnce(&mut SessionState) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    fn change(&self, f: impl FnOnce(&mut SessionData)) {
        self.with(|s| {
            f(&mut s.data);
            s.dirty = true;
        });
    }

    pub fn user(&self) -> Option<SessionUser> {
        self.with(|s| s.data.user.clone())
    }

    /// The signed-in user, or a redirect to the login page that comes back here.
    pub fn require_user(&self) -> Result<SessionUser, PageError> {
        self.user().ok_or_else(|| PageError::LoginRequired {
            next: self.current_path(),
        })
    }

    /// A staff member (admin console), else a login redirect or 403.
    pub fn require_staff(&self) -> Result<SessionUser, PageError> {
        let user = self.require_user()?;
        if user.is_staff() {
            Ok(user)
        } else {
            Err(PageError::Forbidden)
        }
    }

    /// The page being served, path and query.
    pub fn current_path(&self) -> String {
        self.uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned())
    }

    /// The browser's address (for rate limits and audit records downstream).
    pub fn client_ip(&self) -> IpAddr {
        self.client_ip
    }

    pub fn csrf(&self) -> String {
        self.with(|s| s.data.csrf.clone())
    }

    /// Shows `message` on the next page rendered for this browser.
    pub fn flash(&self, kind: &str, message: impl Into<String>) {
        let flash = Flash {
            kind: kind.to_owned(),
            message: message.into(),
        };
        self.change(|d| d.flash = Some(flash));
    }

    /// The pending flash message, removed from the session.
    pub fn take_flash(&self) -> Option<Flash> {
        self.with(|s| {
            let flash = s.data.flash.take();
            if flash.is_some() {
                s.dirty = true;
            }
            flash
        })
    }

    /// How this page shows prices: `None` when the shop has no exchange rates.
    pub fn display(&self) -> Option<crate::display::Display> {
        self.with(|s| s.display.clone())
    }

    pub fn set_display_currency(&self, currency: Option<String>) {
        self.change(|d| d.display_currency = currency);
    }

    pub fn cart_token(&self) -> Option<String> {
        self.with(|s| s.data.cart_token.clone())
    }

    pub fn set_cart_token(&self, token: Option<String>) {
        self.change(|d| d.cart_token = token);
    }

    pub(crate) fn tokens(&self) -> Option<Tokens> {
        self.with(|s| s.data.tokens.clone())
    }

    pub(crate) fn set_tokens(&self, tokens: Tokens) {
        self.change(|d| d.tokens = Some(tokens));
    }

    /// Records a successful sign-in. A new CSRF secret is issued so a token planted before
    /// signing in is worthless afterwards (session fixation).
    pub(crate) fn sign_in(&self, user: SessionUser, tokens: Tokens) {
        self.change(|d| {
            d.user = Some(user);
            d.tokens = Some(tokens);
            d.csrf = random_token();
        });
    }

    /// Forgets the user (the caller revokes the refresh token first, when it can).
    pub fn sign_out(&self) {
        self.change(|d| {
            d.user = None;
            d.tokens = None;
            d.cart_token = None;
            d.csrf = random_token();
        });
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PageError::Internal(anyhow::anyhow!("the session layer is not installed")))
    }
}

/// Reads the session cookie before the page runs and writes it back when it changed.
pub(crate) async fn layer(State(web): State<WebState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let ClientIp(client_ip) = match ClientIp::from_request_parts(&mut parts, &()).await {
        Ok(ip) => ip,
        Err(never) => match never {},
    };
    let key = &web.config().session_key;
    let mut jar = CookieJar::new();
    for value in parts.headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for cookie in Cookie::split_parse_encoded(value.to_owned()).flatten() {
            jar.add_original(cookie);
        }
    }
    // A cookie that does not decrypt (another key, tampered with) is simply a new visitor.
    let restored = jar
        .private(key)
        .get(COOKIE_NAME)
        .and_then(|c| serde_json::from_str::<SessionData>(c.value()).ok());
    let (data, dirty) = match restored {
        Some(data) => (data, false),
        None => (SessionData::new(), true),
    };
    let chosen = data.display_currency.clone();
    let session = Session {
        state: Arc::new(Mutex::new(SessionState {
            data,
            dirty,
            display: None,
        })),
        uri: parts.uri.clone(),
        client_ip,
    };
    if let Some(rates) = crate::display::rates(&web, &session).await {
        let language = parts.headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
        let display = crate::display::choose(&rates, chosen.as_deref(), language);
        session.with(|s| s.display = display);
    }
    parts.extensions.insert(session.clone());
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(crate::error::ErrorPage(ctx)) = response.extensions_mut().remove() {
        // Error pages are built without the session; show them with the visitor's own header.
        let status = response.status();
        if let Ok(page) = crate::render::page_with_status(status, &session, "error.html", ctx) {
            let (mut page_parts, page_body) = page.into_parts();
            if let Some(retry) = response.headers().get(http::header::RETRY_AFTER) {
                page_parts.headers.insert(http::header::RETRY_AFTER, retry.clone());
            }
            response = Response::from_parts(page_parts, page_body);
        }
    }

    let headers = response.headers_mut();
    // Pages are personal: never cached by a shared cache, nor reused from history after sign-out.
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.append(VARY, HeaderValue::from_static("cookie"));
    headers.append(VARY, HeaderValue::from_static("accept-language"));
    let written = session.with(|s| s.dirty.then(|| serde_json::to_string(&s.data)));
    if let Some(Ok(json)) = written {
        let mut out = CookieJar::new();
        let cookie = Cookie::build((COOKIE_NAME, json))
            .path("/")
            .http_only(true)
            .secure(web.config().secure_cookies)
            .same_site(SameSite::Lax)
            .max_age(COOKIE_MAX_AGE)
            .build();
        out.private_mut(key).add(cookie);
        for cookie in out.delta() {
            if let Ok(value) = HeaderValue::try_from(cookie.encoded().to_string()) {
                headers.append(SET_COOKIE, value);
            }
        }
    }
    response
}
