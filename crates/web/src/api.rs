//! The JSON APIs as seen from a page: calls carry the session's access token (refreshed when it
//! is about to expire), the guest cart token and the browser's address; failures become
//! [`PageError`]s a page can return as they are.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use contracts::api::identity::{RefreshRequest, TokenResponse, UserView};
use http::{Method, StatusCode};
use platform::client::{CallError, Reply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::PageError;
use crate::session::{Session, SessionUser, Tokens};
use crate::{CALLER, WebState};

/// Refresh the access token when less than this is left, so it cannot expire mid-page.
const REFRESH_MARGIN_SECS: i64 = 60;
/// A page waits this long for a context before showing the "temporarily unavailable" page.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The contexts a page may call (the names `Peers` knows them by).
pub const CONTEXTS: [&str; 7] = [
    "identity",
    "catalog",
    "inventory",
    "cart",
    "ordering",
    "payments",
    "notifications",
];

/// Calls for one page, as the session's user.
pub struct Api<'a> {
    web: &'a WebState,
    session: &'a Session,
    idempotency_key: Option<String>,
    anonymous: bool,
}

impl<'a> Api<'a> {
    pub(crate) fn new(web: &'a WebState, session: &'a Session) -> Self {
        Self {
            web,
            session,
            idempotency_key: None,
            anonymous: false,
        }
    }

    /// Sends `Idempotency-Key: key` with the next calls (checkout, refunds).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Calls without the user's token (login, registration: the API must not see a session).
    pub fn anonymous(mut self) -> Self {
        self.anonymous = true;
        self
    }

    pub async fn get(&self, ctx: &'static str, path: &str) -> Result<Reply, PageError> {
        self.call(Method::GET, ctx, path, None::<&()>).await
    }

    pub async fn post<B: Serialize + ?Sized>(
        &self,
        ctx: &'static str,
        path: &str,
        body: &B,
    ) -> Result<Reply, PageError> {
        self.call(Method::POST, ctx, path, Some(body)).await
    }

    pub async fn put<B: Serialize + ?Sized>(
        &self,
        ctx: &'static str,
        path: &str,
        body: &B,
    ) -> Result<Reply, PageError> {
        self.call(Method::PUT, ctx, path, Some(body)).await
    }

    pub async fn patch<B: Serialize + ?Sized>(
        &self,
        ctx: &'static str,
        path: &str,
        body: &B,
    ) -> Result<Reply, PageError> {
        self.call(Method::PATCH, ctx, path, Some(body)).await
    }

    pub async fn delete(&self, ctx: &'static str, path: &str) -> Result<Reply, PageError> {
        self.call(Method::DELETE, ctx, path, None::<&()>).await
    }

    /// GET and decode; any non-2xx answer becomes the matching page error.
    pub async fn get_json<T: DeserializeOwned>(&self, ctx: &'static str, path: &str) -> Result<T, PageError> {
        let reply = self.get(ctx, path).await?;
        self.decode(reply)
    }

    /// Decodes a 2xx reply, or turns any other into the matching page error.
    pub fn decode<T: DeserializeOwned>(&self, reply: Reply) -> Result<T, PageError> {
        if !reply.is_success() {
            return Err(self.error_for(&reply));
        }
        reply
            .json()
            .map_err(|e| PageError::Internal(anyhow::anyhow!("decoding the API's answer: {e}")))
    }

    /// The page error for a non-2xx reply: 401 → sign in again, 403, 404, 429, and anything
    /// else as a refusal with the API's own explanation.
    pub fn error_for(&self, reply: &Reply) -> PageError {
        match reply.status {
            StatusCode::UNAUTHORIZED => {
                // The session was revoked or expired at identity: forget it here too.
                self.session.sign_out();
                PageError::LoginRequired {
                    next: self.session.current_path(),
                }
            }
            StatusCode::FORBIDDEN => PageError::Forbidden,
            StatusCode::NOT_FOUND => PageError::NotFound,
            StatusCode::TOO_MANY_REQUESTS => PageError::RateLimited {
                retry_after: reply
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
            },
            status => PageError::Refused {
                status: if status.is_client_error() {
                    status
                } else {
                    StatusCode::BAD_GATEWAY
                },
                detail: reply.problem_detail(),
            },
        }
    }

    /// One call. 5xx answers, timeouts and unreachable contexts become [`PageError::Unavailable`];
    /// other replies are returned for the page to judge (422 → re-render the form).
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        ctx: &'static str,
        path: &str,
        body: Option<&B>,
    ) -> Result<Reply, PageError> {
        let bearer = if self.anonymous {
            None
        } else {
            self.fresh_access_token().await?
        };
        let client = self
            .web
            .peers()
            .client(CALLER, ctx)
            .map_err(|e| PageError::Internal(e.context(format!("no route to {ctx}"))))?;
        let mut call = client
            .call(method, path)
            .timeout(self.web.config().call_timeout)
            .on_behalf_of(self.session.client_ip());
        if let Some(token) = &bearer {
            call = call.bearer(token);
        }
        if let Some(cart) = self.session.cart_token() {
            call = call.header("x-cart-token", &cart);
        }
        if let Some(key) = &self.idempotency_key {
            call = call.idempotency_key(key);
        }
        if let Some(body) = body {
            call = call.json(body);
        }
        match call.send().await {
            Ok(reply) if reply.status.is_server_error() => {
                tracing::warn!(context = ctx, status = %reply.status, detail = reply.problem_detail(), "a page's API call failed");
                Err(PageError::Unavailable { what: ctx.to_owned() })
            }
            Ok(reply) => Ok(reply),
            Err(CallError::BadReply(e)) => Err(PageError::Internal(anyhow::anyhow!("{ctx}: {e}"))),
            Err(e) => {
                tracing::warn!(context = ctx, error = %e, "a page's API call got no answer");
                Err(PageError::Unavailable { what: ctx.to_owned() })
            }
        }
    }

    /// The session's access token, refreshed first when it is about to expire. A refresh that
    /// identity refuses signs the session out (the pages then ask to sign in again).
    async fn fresh_access_token(&self) -> Result<Option<String>, PageError> {
        let Some(tokens) = self.session.tokens() else {
            return Ok(None);
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if tokens.access_expires_at - now > REFRESH_MARGIN_SECS {
            return Ok(Some(tokens.access_token));
        }
        match self
            .web
            .refreshes()
            .refresh(self.web, self.session, &tokens.refresh_token)
            .await?
        {
            Some(fresh) => {
                self.session.set_tokens(fresh.clone());
                Ok(Some(fresh.access_token))
            }
            None => {
                self.session.sign_out();
                Ok(None)
            }
        }
    }

    /// Signs `session` in with a token pair from identity (`/auth/login`): reads the profile with
    /// the new token and stores both in the session.
    pub async fn sign_in(&self, login: &TokenResponse) -> Result<SessionUser, PageError> {
        let tokens = Tokens::from_answer(login);
        let client = self
            .web
            .peers()
            .client(CALLER, "identity")
            .map_err(|e| PageError::Internal(e.context("no route to identity")))?;
        let reply = client
            .get("/api/v1/users/me")
            .bearer(&tokens.access_token)
            .on_behalf_of(self.session.client_ip())
            .timeout(self.web.config().call_timeout)
            .send()
            .await
            .map_err(|_| PageError::Unavailable {
                what: "identity".into(),
            })?;
        let user = SessionUser::from_account(self.decode::<UserView>(reply)?);
        self.session.sign_in(user.clone(), tokens);
        Ok(user)
    }

    /// Revokes the session's refresh token at identity (best effort) and forgets the user.
    pub async fn sign_out(&self) {
        if let Some(tokens) = self.session.tokens() {
            let body = RefreshRequest {
                refresh_token: tokens.refresh_token,
            };
            if let Err(e) = self.post("identity", "/api/v1/auth/logout", &body).await {
                tracing::info!(error = %e, "logout: could not revoke the refresh token; the session ends here anyway");
            }
        }
        self.session.sign_out();
    }
}

impl Tokens {
    /// The pair identity issued, with the access token's expiry as a moment rather than a delay.
    fn from_answer(answer: &TokenResponse) -> Self {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Self {
            access_token: answer.access_token.clone(),
            refresh_token: answer.refresh_token.clone(),
            access_expires_at: now.saturating_add(i64::try_from(answer.expires_in).unwrap_or(i64::MAX)),
        }
    }
}

/// Refresh tokens are single-use and a reused one revokes the whole session (theft detection),
/// so two pages of one browser refreshing at once must not both present it. Within a process the
/// first refresh runs and the others get its result for a short while.
type TokenHash = [u8; 32];

#[derive(Default)]
pub(crate) struct RefreshSingleFlight {
    recent: tokio::sync::Mutex<HashMap<TokenHash, (Instant, Option<Tokens>)>>,
}

const REMEMBER_REFRESH: Duration = Duration::from_secs(30);

impl RefreshSingleFlight {
    async fn refresh(
        &self,
        web: &WebState,
        session: &Session,
        refresh_token: &str,
    ) -> Result<Option<Tokens>, PageError> {
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        // Held across the call on purpose: refreshes are rare (one per user per 15 minutes).
        let mut recent = self.recent.lock().await;
        recent.retain(|_, (at, _)| at.elapsed() < REMEMBER_REFRESH);
        if let Some((_, outcome)) = recent.get(&key) {
            return Ok(outcome.clone());
        }
        let client = web
            .peers()
            .client(CALLER, "identity")
            .map_err(|e| PageError::Internal(e.context("no route to identity")))?;
        let reply = client
            .post("/api/v1/auth/refresh")
            .json(&RefreshRequest {
                refresh_token: refresh_token.to_owned(),
            })
            .on_behalf_of(session.client_ip())
            .timeout(web.config().call_timeout)
            .send()
            .await
            .map_err(|_| PageError::Unavailable {
                what: "identity".into(),
            })?;
        let outcome = if reply.is_success() {
            reply.json::<TokenResponse>().ok().as_ref().map(Tokens::from_answer)
        } else if reply.status.is_server_error() {
            return Err(PageError::Unavailable {
                what: "identity".into(),
            });
        } else {
            None
        };
        recent.insert(key, (Instant::now(), outcome.clone()));
        Ok(outcome)
    }
}
