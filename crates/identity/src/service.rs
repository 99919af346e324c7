//! Identity's use cases. Handlers call these; these call the domain rules, the store, the key ring
//! and the mailer. Every security-relevant outcome lands in the audit log.

use std::sync::Arc;
use std::time::Duration;

use contracts::api::identity::AddressRequest;
use contracts::events::identity as events;
use platform::auth::{AUDIENCE, AccessClaims, AuthUser, ISSUER};
use platform::events::{Event, Outbox};
use platform::{FieldError, Problem};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::IdentityConfig;
use crate::domain::{
    DisplayName, Email, LoginThrottle, MAX_SAVED_ADDRESSES, RefreshDecision, RefreshState, Role, SavedAddress,
    TokenLifetimes, TokenPurpose, UserId, UserStatus, Validation, check_new_password, decide_refresh, throttle,
};
use crate::keys::KeyRing;
use crate::passwords::PasswordHasher;
use crate::store::{
    AddressRecord, AuditEvent, AuditFilter, IdentityStore, LoginAttempt, LoginFailures, LoginOutcome, NewRefreshToken,
    Session, StoreError, User, UserFilter,
};
use crate::tokens::OpaqueToken;

/// Service tokens one client id may obtain per minute. A context renews its token every ten
/// minutes (per replica), so this only stops a runaway caller.
const SERVICE_TOKENS_PER_MINUTE: std::num::NonZeroU32 = std::num::NonZeroU32::new(120).expect("non-zero");
pub use contracts::kernel::SERVICE_ROLE;

/// Everything that can go wrong in identity, mapped to HTTP once (`From<IdentityError> for Problem`).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("wrong e-mail address or password")]
    InvalidCredentials,
    #[error("unknown client or wrong client secret")]
    InvalidClientCredentials,
    #[error("the e-mail address is not verified yet; use the link we sent, or ask for a new one")]
    EmailNotVerified,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("too many failed logins; try again later")]
    Throttled(LoginThrottle),
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("this refresh token was already used: the session has been revoked; log in again")]
    RefreshTokenReuse,
    #[error("the session has ended; log in again")]
    SessionEnded,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// It existed, and was deleted for good (an expired export).
    #[error("{0}")]
    Gone(String),
    #[error("the resource changed since you read it; fetch it again")]
    VersionMismatch,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateEmail => Self::EmailTaken,
            StoreError::AddressBookFull(held) => Self::Conflict(format!(
                "the address book is full ({held} addresses); remove one before adding another"
            )),
            StoreError::VersionMismatch => Self::VersionMismatch,
            StoreError::NotFound => Self::NotFound("user"),
            other => Self::Internal(other.into()),
        }
    }
}

pub type IdResult<T> = Result<T, IdentityError>;

/// An address that is not the caller's is as absent as one that does not exist.
fn address_error(e: StoreError) -> IdentityError {
    match e {
        StoreError::NotFound => IdentityError::NotFound("address"),
        other => other.into(),
    }
}

/// Who is calling, for sessions and the audit log.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: String,
}

/// An access token with its refresh token, as returned by login and refresh.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub access_expires_in: Duration,
    pub refresh_token: OpaqueToken,
    pub refresh_expires_in: Duration,
    pub session_id: Uuid,
}

pub struct IdentityService {
    pub(crate) store: Arc<dyn IdentityStore>,
    /// Erasures and exports (crate::privacy).
    pub(crate) privacy: Arc<dyn crate::privacy::store::PrivacyStore>,
    keys: Arc<KeyRing>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) outbox: Outbox,
    pub(crate) config: IdentityConfig,
    auth_limiter: platform::rate_limit::IpRateLimiter,
    /// Service tokens issued per client id (callers holding the secret).
    service_client_limiter: platform::rate_limit::NamedRateLimiter,
    /// Wrong service credentials per address.
    service_failure_limiter: platform::rate_limit::IpRateLimiter,
    /// Logins so far, to prune old attempts every so often.
    login_attempts: std::sync::atomic::AtomicU64,
    /// The revocation set of this process, told at once (other processes learn from the events).
    revocations: std::sync::OnceLock<platform::auth::Revocations>,
}

/// The account as identity's account events carry it.
fn account(user: &User) -> events::Account {
    events::Account {
        user_id: user.id.0,
        email: user.email.clone(),
        name: user.name.clone(),
    }
}

pub(crate) fn audit(kind: &str) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        occurred_at: platform::clock::now(),
        kind: kind.to_owned(),
        user_id: None,
        actor_id: None,
        subject_email: None,
        ip: None,
        user_agent: None,
        detail: None,
    }
}

pub(crate) trait AuditExt {
    fn user(self, user: &User) -> Self;
    fn client(self, client: &ClientInfo) -> Self;
    fn actor(self, actor: Uuid) -> Self;
    fn detail(self, detail: impl Into<String>) -> Self;
}

impl AuditExt for AuditEvent {
    fn user(mut self, user: &User) -> Self {
        self.user_id = Some(user.id.0);
        self.subject_email = Some(user.email.clone());
        self
    }
    fn client(mut self, client: &ClientInfo) -> Self {
        self.ip = Some(client.ip.clone());
        self.user_agent = Some(client.user_agent.clone());
        self
    }
    fn actor(mut self, actor: Uuid) -> Self {
        self.actor_id = Some(actor);
        self
    }
    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

fn count_login(outcome: &'static str) {
    metrics::counter!("identity_logins_total", "outcome" => outcome).increment(1);
}

pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "identity_logins_total",
        "Login attempts by outcome (success, failure, throttled)."
    );
    metrics::describe_counter!("identity_registrations_total", "Accounts registered.");
    metrics::describe_counter!(
        "identity_service_tokens_total",
        "Service-token requests from other contexts by outcome (issued, refused)."
    );
    metrics::describe_counter!(
        "identity_refresh_token_reuse_total",
        "Refresh tokens presented again after rotation (token theft signal)."
    );
}

impl IdentityService {
    pub fn new(
        store: Arc<dyn IdentityStore>,
        privacy: Arc<dyn crate::privacy::store::PrivacyStore>,
        keys: Arc<KeyRing>,
        hasher: PasswordHasher,
        outbox: Outbox,
        config: IdentityConfig,
    ) -> Self {
        let auth_limiter = platform::rate_limit::IpRateLimiter::per_minute(config.auth_requests_per_minute);
        let service_failure_limiter = platform::rate_limit::IpRateLimiter::per_minute(config.auth_requests_per_minute);
        Self {
            store,
            privacy,
            keys,
            hasher,
            outbox,
            config,
            auth_limiter,
            service_client_limiter: platform::rate_limit::NamedRateLimiter::per_minute(SERVICE_TOKENS_PER_MINUTE),
            service_failure_limiter,
            login_attempts: std::sync::atomic::AtomicU64::new(0),
            revocations: std::sync::OnceLock::new(),
        }
    }

    /// Revocations are also applied to `set` directly (the contexts in this process check it).
    pub fn feed_revocations(&self, set: platform::auth::Revocations) {
        let _ = self.revocations.set(set);
    }

    /// Tells every context that a session (`Some`) or all of a user's sessions started before
    /// `at` (`None`) ended, so their access tokens stop working everywhere before they expire (a
    /// token copied before logout must not outlive it). A failure to publish is logged: the
    /// sessions are revoked in identity anyway.
    pub(crate) async fn announce_revocation(
        &self,
        user: UserId,
        session: Option<Uuid>,
        at: OffsetDateTime,
        reason: &str,
    ) {
        if let Some(set) = self.revocations.get() {
            match session {
                Some(sid) => set.revoke_session(sid, at),
                None => set.revoke_user_sessions(user.0, at),
            }
        }
        let subject = user.0.to_string();
        let reason = reason.to_owned();
        let event = match session {
            Some(session_id) => Event::of(
                subject,
                &events::SessionRevoked {
                    user_id: user.0,
                    session_id,
                    revoked_at: at,
                    reason,
                },
            ),
            None => Event::of(
                subject,
                &events::UserSessionsRevoked {
                    user_id: user.0,
                    revoked_at: at,
                    reason,
                },
            ),
        };
        let event_type = event.event_type.clone();
        match self.store.enqueue_events(&[event]).await {
            Ok(()) => self.outbox.notify(),
            Err(e) => tracing::error!(error = %e, event_type, "could not publish a revocation"),
        }
    }

    /// The per-address limit on unauthenticated auth requests (sign-up, reset, verification, refresh).
    pub fn auth_limiter(&self) -> &platform::rate_limit::IpRateLimiter {
        &self.auth_limiter
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    fn lifetimes(&self) -> TokenLifetimes {
        self.config.lifetimes
    }

    pub(crate) async fn record(&self, event: AuditEvent) {
        // An audit write failing must not turn a completed action into an error, but it is loud.
        if let Err(e) = self.store.record_audit(&event).await {
            tracing::error!(error = %e, kind = %event.kind, "could not write audit event");
        }
    }

    fn parse_registration(&self, r: &Registration) -> IdResult<(Email, DisplayName)> {
        let mut v = Validation::new();
        let email = v.field("email", Email::parse(&r.email));
        let name = v.field("name", DisplayName::parse(&r.name));
        let inputs = [r.email.as_str(), r.name.as_str()];
        v.field("password", check_new_password(&r.password, &inputs));
        v.finish().map_err(IdentityError::Validation)?;
        match (email, name) {
            (Some(e), Some(n)) => Ok((e, n)),
            _ => Err(IdentityError::Internal(anyhow::anyhow!(
                "validation passed without values"
            ))),
        }
    }

    async fn create_user(&self, r: Registration, role: Role, verified: bool) -> IdResult<User> {
        let (email, name) = self.parse_registration(&r)?;
        let hash = self.hasher.hash(r.password).await?;
        let now = platform::clock::now();
        let user = User {
            id: UserId::new(),
            email: email.into_inner(),
            name: name.as_str().to_owned(),
            password_hash: hash,
            role,
            status: UserStatus::Active,
            email_verified_at: verified.then_some(now),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let registered = Event::of(user.id.0.to_string(), &events::UserRegistered(account(&user)));
        self.store.insert_user(&user, &[registered]).await?;
        self.outbox.notify();
        Ok(user)
    }

    /// Signs up a customer. The caller learns nothing about whether the address already had an
    /// account (so sign-up cannot be used to find out who is a customer): either way the answer is
    /// "check your mailbox". A new account gets the verification message; an existing one's owner
    /// is told someone tried (and how to sign in or reset the password). Both ways hash the
    /// password, so they take as long.
    pub async fn register(&self, r: Registration, client: &ClientInfo) -> IdResult<()> {
        let email = r.email.clone();
        match self.create_user(r, Role::Customer, false).await {
            Ok(user) => {
                metrics::counter!("identity_registrations_total").increment(1);
                self.record(audit("user.registered").user(&user).client(client)).await;
                self.send_verification(&user).await
            }
            Err(IdentityError::EmailTaken) => self.registration_attempted(&email, client).await,
            Err(e) => Err(e),
        }
    }

    async fn registration_attempted(&self, email: &str, client: &ClientInfo) -> IdResult<()> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        let Some(user) = self.store.user_by_email(email.as_str()).await? else {
            return Ok(());
        };
        if user.status == UserStatus::Active {
            let event = Event::of(user.id.0.to_string(), &events::RegistrationAttempted(account(&user)));
            self.store.enqueue_events(&[event]).await?;
            self.outbox.notify();
        }
        self.record(audit("registration.duplicate").user(&user).client(client))
            .await;
        Ok(())
    }

    /// Creates an administrator (CLI bootstrap); the address counts as verified.
    pub async fn create_admin(&self, r: Registration) -> IdResult<User> {
        let user = self.create_user(r, Role::Admin, true).await?;
        self.record(
            audit("admin.created")
                .user(&user)
                .detail("created from the command line"),
        )
        .await;
        Ok(user)
    }

    /// Stores a single-use token and, in the same transaction, the event asking notifications to
    /// mail it (an `E` event). The plaintext token exists only in that event and the message.
    async fn issue_one_time_token<E: contracts::events::Event + From<events::OneTimeToken>>(
        &self,
        user: &User,
        purpose: TokenPurpose,
        ttl: Duration,
    ) -> IdResult<()> {
        let token = OpaqueToken::generate();
        let now = platform::clock::now();
        let expires_at = TokenLifetimes::expiry(now, ttl);
        let payload = E::from(events::OneTimeToken {
            user_id: user.id.0,
            email: user.email.clone(),
            name: user.name.clone(),
            token: token.expose(),
            expires_at: Some(expires_at),
            ttl_seconds: i64::try_from(ttl.as_secs()).ok(),
        });
        let event = Event::of(user.id.0.to_string(), &payload);
        self.store
            .insert_one_time_token(&token.digest(), user.id, purpose, now, expires_at, &[event])
            .await?;
        self.outbox.notify();
        Ok(())
    }

    async fn send_verification(&self, user: &User) -> IdResult<()> {
        let ttl = self.lifetimes().email_verification;
        self.issue_one_time_token::<events::EmailVerificationRequested>(user, TokenPurpose::EmailVerification, ttl)
            .await
    }

    /// Sends a new verification message. Same answer whether or not the address is known.
    pub async fn resend_verification(&self, email: &str) -> IdResult<()> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        if let Some(user) = self.store.user_by_email(email.as_str()).await?
            && user.status == UserStatus::Active
            && user.email_verified_at.is_none()
        {
            self.send_verification(&user).await?;
        }
        Ok(())
    }

    pub async fn verify_email(&self, token: &str) -> IdResult<()> {
        let now = platform::clock::now();
        let digest = OpaqueToken::presented(token).digest();
        let Some(user_id) = self
            .store
            .consume_one_time_token(&digest, TokenPurpose::EmailVerification, now)
            .await?
        else {
            return Err(invalid_token_field());
        };
        self.store.mark_email_verified(user_id, now).await?;
        if let Some(user) = self.store.user_by_id(user_id).await? {
            self.record(audit("email.verified").user(&user)).await;
        }
        Ok(())
    }

    pub async fn login(&self, email: &str, password: String, client: &ClientInfo) -> IdResult<IssuedTokens> {
        let email = Email::parse(email).map_err(|m| IdentityError::Validation(vec![FieldError::new("email", m)]))?;
        let now = platform::clock::now();
        let c = &self.config;
        // The attempt is reserved (counted) before the password is checked, so a burst of parallel
        // guesses cannot all pass the check on the same old count.
        let attempt = LoginAttempt {
            id: Uuid::now_v7(),
            email: email.as_str().to_owned(),
            ip: client.ip.clone(),
            at: now,
        };
        let rule = |seen: LoginFailures| {
            [
                (seen.account, c.login_max_failures),
                (seen.ip, c.login_max_failures_per_ip),
            ]
            .into_iter()
            .filter_map(|(seen, limit)| {
                throttle(seen, limit, c.login_window, now).map(|wait| LoginThrottle {
                    wait,
                    limit,
                    window: c.login_window,
                })
            })
            .max_by_key(|t| t.wait)
        };
        let refused = self
            .store
            .reserve_login_attempt(&attempt, now - c.login_window, &rule)
            .await?;
        if let Some(refusal) = refused {
            count_login("throttled");
            let mut event = audit("login.throttled").client(client);
            event.subject_email = Some(email.as_str().to_owned());
            self.record(event).await;
            return Err(IdentityError::Throttled(refusal));
        }
        if self
            .login_attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(256)
        {
            // Now and then, forget attempts that no longer count, so the table stays small.
            if let Err(e) = self.store.prune_login_attempts(now - c.login_window).await {
                tracing::warn!(error = %e, "pruning old login attempts failed");
            }
        }

        let result = self.check_login(&email, password, client, now).await;
        let outcome = match &result {
            Ok(_) => LoginOutcome::Succeeded,
            Err(IdentityError::AccountDisabled | IdentityError::EmailNotVerified) => LoginOutcome::Refused,
            Err(_) => LoginOutcome::Failed,
        };
        if let Err(e) = self.store.settle_login_attempt(attempt.id, outcome).await {
            // The attempt stays pending and so keeps counting as a failure: the safe side.
            tracing::error!(error = %e, "could not record the outcome of a login attempt");
        }
        result
    }

    /// The part of a login after its attempt was reserved: the password and the account's state.
    async fn check_login(
        &self,
        email: &Email,
        password: String,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> IdResult<IssuedTokens> {
        let user = self.store.user_by_email(email.as_str()).await?;
        let ok = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let Some(user) = user.filter(|_| ok) else {
            count_login("failure");
            let mut event = audit("login.failed").client(client).detail("wrong e-mail or password");
            event.subject_email = Some(email.as_str().to_owned());
            self.record(event).await;
            return Err(IdentityError::InvalidCredentials);
        };
        match user.status {
            UserStatus::Active => {}
            UserStatus::Disabled => {
                count_login("failure");
                self.record(
                    audit("login.refused")
                        .user(&user)
                        .client(client)
                        .detail("account disabled"),
                )
                .await;
                return Err(IdentityError::AccountDisabled);
            }
            UserStatus::Deleted => return Err(IdentityError::InvalidCredentials),
        }
        if self.config.require_verified_email && user.email_verified_at.is_none() {
            self.record(
                audit("login.refused")
                    .user(&user)
                    .client(client)
                    .detail("e-mail not verified"),
            )
            .await;
            return Err(IdentityError::EmailNotVerified);
        }
        let tokens = self.start_session(&user, client, now).await?;
        count_login("success");
        self.record(audit("login.succeeded").user(&user).client(client)).await;
        Ok(tokens)
    }

    async fn start_session(&self, user: &User, client: &ClientInfo, now: OffsetDateTime) -> IdResult<IssuedTokens> {
        let l = self.lifetimes();
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user.id,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: TokenLifetimes::expiry(now, l.refresh),
            revoked_at: None,
        };
        let refresh = OpaqueToken::generate();
        let stored = NewRefreshToken {
            digest: refresh.digest(),
            issued_at: now,
            expires_at: TokenLifetimes::expiry(now, l.refresh),
        };
        self.store.create_session(&session, &stored).await?;
        self.issue(user, session.id, refresh, now)
    }

    fn issue(
        &self,
        user: &User,
        session_id: Uuid,
        refresh: OpaqueToken,
        now: OffsetDateTime,
    ) -> IdResult<IssuedTokens> {
        let l = self.lifetimes();
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user.id.0,
            sid: session_id,
            role: user.role.as_str().to_owned(),
            iat: now.unix_timestamp(),
            exp: TokenLifetimes::expiry(now, l.access).unix_timestamp(),
            jti: Uuid::now_v7(),
        };
        Ok(IssuedTokens {
            access_token: self.keys.sign(&claims)?,
            access_expires_in: l.access,
            refresh_token: refresh,
            refresh_expires_in: l.refresh,
            session_id,
        })
    }

    /// A short-lived access token with role `service` for another context (OAuth 2 client
    /// credentials in spirit): `client_id` names the calling context, `secret` must equal the
    /// shared `EMPORIUM_SERVICE_SECRET`. The subject is a stable UUIDv5 of the context name.
    ///
    /// Budgets (were it the sign-up budget of the caller's address, anyone seen from that address,
    /// such as 127.0.0.1, could use it up and stop checkout): a caller with the right secret spends
    /// its client id's budget only; wrong secrets spend a budget of their address (`None`: an
    /// in-process call, which no address pays for).
    pub fn issue_service_token(
        &self,
        client_id: &str,
        secret: &str,
        caller: Option<std::net::IpAddr>,
    ) -> Result<(String, Duration), Problem> {
        let valid_id = (2..=32).contains(&client_id.len()) && client_id.bytes().all(|b| b.is_ascii_lowercase());
        let expected = self.config.service_secret.as_deref().unwrap_or("");
        // Compare digests so the time taken says nothing about how much of the secret matched.
        let matches = !expected.is_empty() && constant_time_eq(&sha256(expected), &sha256(secret));
        if !valid_id || !matches {
            metrics::counter!("identity_service_tokens_total", "outcome" => "refused").increment(1);
            if let Some(ip) = caller {
                self.service_failure_limiter.check(ip)?;
            }
            return Err(IdentityError::InvalidClientCredentials.into());
        }
        self.service_client_limiter.check(client_id)?;
        let now = platform::clock::now();
        let ttl = self.lifetimes().access;
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: platform::auth::service_subject(client_id),
            sid: Uuid::nil(),
            role: SERVICE_ROLE.to_owned(),
            iat: now.unix_timestamp(),
            exp: TokenLifetimes::expiry(now, ttl).unix_timestamp(),
            jti: Uuid::now_v7(),
        };
        metrics::counter!("identity_service_tokens_total", "outcome" => "issued").increment(1);
        Ok((self.keys.sign(&claims).map_err(IdentityError::from)?, ttl))
    }

    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> IdResult<IssuedTokens> {
        let now = platform::clock::now();
        let old = OpaqueToken::presented(presented);
        let Some(stored) = self.store.refresh_token(&old.digest()).await? else {
            return Err(IdentityError::InvalidRefreshToken);
        };
        let state = RefreshState {
            token_expires_at: stored.expires_at,
            token_used_at: stored.used_at,
            session_revoked_at: stored.session.revoked_at,
            session_expires_at: stored.session.expires_at,
        };
        let session = stored.session;
        match decide_refresh(&state, now) {
            RefreshDecision::Rotate => {}
            RefreshDecision::ReuseDetected => return Err(self.reuse_detected(&session, client, now).await),
            RefreshDecision::Expired | RefreshDecision::Revoked => return Err(IdentityError::InvalidRefreshToken),
        }
        let user = self
            .store
            .user_by_id(session.user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active)
            .ok_or(IdentityError::InvalidRefreshToken)?;
        let new = OpaqueToken::generate();
        let record = NewRefreshToken {
            digest: new.digest(),
            issued_at: now,
            expires_at: TokenLifetimes::expiry(now, self.lifetimes().refresh).min(session.expires_at),
        };
        if !self
            .store
            .rotate_refresh_token(&old.digest(), &record, session.id, now)
            .await?
        {
            // Another request rotated this token first: two holders of one token means a copy.
            return Err(self.reuse_detected(&session, client, now).await);
        }
        self.issue(&user, session.id, new, now)
    }

    async fn reuse_detected(&self, session: &Session, client: &ClientInfo, now: OffsetDateTime) -> IdentityError {
        metrics::counter!("identity_refresh_token_reuse_total").increment(1);
        if let Err(e) = self.store.revoke_session(session.id, "refresh token reuse", now).await {
            return IdentityError::Internal(e.into());
        }
        self.announce_revocation(session.user_id, Some(session.id), now, "refresh token reuse")
            .await;
        let mut event = audit("token.reuse_detected")
            .client(client)
            .detail(format!("session {} revoked", session.id));
        event.user_id = Some(session.user_id.0);
        self.record(event).await;
        IdentityError::RefreshTokenReuse
    }

    /// The caller's account, while its session is live.
    pub async fn current_user(&self, auth: &AuthUser) -> IdResult<User> {
        self.store
            .user_in_live_session(UserId(auth.id()), auth.session_id(), platform::clock::now())
            .await?
            .ok_or(IdentityError::SessionEnded)
    }

    pub(crate) async fn current_admin(&self, auth: &AuthUser) -> IdResult<User> {
        let user = self.current_user(auth).await?;
        if user.role == Role::Admin {
            Ok(user)
        } else {
            Err(IdentityError::Forbidden("requires role admin".into()))
        }
    }

    pub async fn logout(&self, auth: &AuthUser, client: &ClientInfo) -> IdResult<()> {
        let user = self.current_user(auth).await?;
        let now = platform::clock::now();
        self.store.revoke_session(auth.session_id(), "logout", now).await?;
        self.announce_revocation(user.id, Some(auth.session_id()), now, "logout")
            .await;
        self.record(audit("logout").user(&user).client(client)).await;
        Ok(())
    }

    /// Always succeeds, known address or not, and does the work off the request path so the
    /// answer takes the same time either way.
    pub async fn forgot_password(self: &Arc<Self>, email: &str, client: &ClientInfo) {
        let Ok(email) = Email::parse(email) else { return };
        let service = Arc::clone(self);
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = service.send_password_reset(email, &client).await {
                tracing::error!(error = %e, "password reset message failed");
            }
        });
    }

    async fn send_password_reset(&self, email: Email, client: &ClientInfo) -> IdResult<()> {
        let Some(user) = self.store.user_by_email(email.as_str()).await? else {
            return Ok(());
        };
        if user.status != UserStatus::Active {
            return Ok(());
        }
        let ttl = self.lifetimes().password_reset;
        self.issue_one_time_token::<events::PasswordResetRequested>(&user, TokenPurpose::PasswordReset, ttl)
            .await?;
        self.record(audit("password.reset_requested").user(&user).client(client))
            .await;
        Ok(())
    }

    pub async fn reset_password(&self, token: &str, new_password: String, client: &ClientInfo) -> IdResult<()> {
        check_new_password(&new_password, &[])
            .map_err(|m| IdentityError::Validation(vec![FieldError::new("new_password", m)]))?;
        let now = platform::clock::now();
        let digest = OpaqueToken::presented(token).digest();
        let user_id = self
            .store
            .consume_one_time_token(&digest, TokenPurpose::PasswordReset, now)
            .await?
            .ok_or_else(invalid_token_field)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(IdentityError::NotFound("user"))?;
        let hash = self.hasher.hash(new_password).await?;
        self.store.set_password_hash(user.id, &hash, now).await?;
        // Following the link proved control of the mailbox.
        self.store.mark_email_verified(user.id, now).await?;
        self.store
            .burn_one_time_tokens(user.id, TokenPurpose::PasswordReset, now)
            .await?;
        let revoked = self
            .store
            .revoke_sessions_of(user.id, None, "password reset", now)
            .await?;
        self.announce_revocation(user.id, None, now, "password reset").await;
        self.record(
            audit("password.reset")
                .user(&user)
                .client(client)
                .detail(format!("{revoked} sessions revoked")),
        )
        .await;
        Ok(())
    }

    pub async fn change_password(
        &self,
        auth: &AuthUser,
        current: String,
        new: String,
        client: &ClientInfo,
    ) -> IdResult<()> {
        let user = self.current_user(auth).await?;
        check_new_password(&new, &[&user.email, &user.name])
            .map_err(|m| IdentityError::Validation(vec![FieldError::new("new_password", m)]))?;
        if new == current {
            return Err(IdentityError::Validation(vec![FieldError::new(
                "new_password",
                "must differ from the current password",
            )]));
        }
        if !self.hasher.verify(current, Some(user.password_hash.clone())).await? {
            self.record(audit("password.change_failed").user(&user).client(client))
                .await;
            return Err(IdentityError::Validation(vec![FieldError::new(
                "current_password",
                "is incorrect",
            )]));
        }
        let now = platform::clock::now();
        let hash = self.hasher.hash(new).await?;
        self.store.set_password_hash(user.id, &hash, now).await?;
        let revoked = self
            .store
            .revoke_sessions_of(user.id, Some(auth.session_id()), "password changed", now)
            .await?;
        self.record(
            audit("password.changed")
                .user(&user)
                .client(client)
                .detail(format!("{revoked} other sessions revoked")),
        )
        .await;
        Ok(())
    }

    pub async fn update_profile(&self, auth: &AuthUser, name: &str, expected_version: Option<i64>) -> IdResult<User> {
        let name = DisplayName::parse(name).map_err(|m| IdentityError::Validation(vec![FieldError::new("name", m)]))?;
        let user = self.current_user(auth).await?;
        // Contexts that keep a copy of the name (notifications) learn of the change.
        let changed = events::Account {
            name: name.as_str().to_owned(),
            ..account(&user)
        };
        let updated = Event::of(user.id.0.to_string(), &events::UserUpdated(changed));
        let after = self
            .store
            .update_name(
                user.id,
                name.as_str(),
                expected_version,
                platform::clock::now(),
                &[updated],
            )
            .await?;
        self.outbox.notify();
        Ok(after)
    }

    /// Deletes the caller's account (soft): identity's copy of the personal data is erased at
    /// once, and every other context is asked to erase theirs (crate::privacy).
    pub async fn delete_account(&self, auth: &AuthUser, password: String, client: &ClientInfo) -> IdResult<()> {
        let user = self.current_user(auth).await?;
        if !self.hasher.verify(password, Some(user.password_hash.clone())).await? {
            return Err(IdentityError::Validation(vec![FieldError::new(
                "password",
                "is incorrect",
            )]));
        }
        self.erase(&user, user.id.0, client).await
    }

    /// The caller's address book.
    pub async fn addresses(&self, auth: &AuthUser) -> IdResult<Vec<AddressRecord>> {
        let user = self.current_user(auth).await?;
        Ok(self.store.addresses(user.id).await?)
    }

    /// Saves an address in the caller's book.
    pub async fn add_address(&self, auth: &AuthUser, req: &AddressRequest) -> IdResult<AddressRecord> {
        let saved = SavedAddress::parse(req.label.as_deref(), &req.address).map_err(IdentityError::Validation)?;
        let user = self.current_user(auth).await?;
        let now = platform::clock::now();
        let record = AddressRecord {
            id: Uuid::now_v7(),
            user_id: user.id,
            label: saved.label,
            address: saved.address,
            is_default: req.default,
            created_at: now,
            updated_at: now,
        };
        Ok(self.store.add_address(&record, MAX_SAVED_ADDRESSES).await?)
    }

    /// Replaces one of the caller's addresses (and makes it the default when asked).
    pub async fn replace_address(&self, auth: &AuthUser, id: Uuid, req: &AddressRequest) -> IdResult<AddressRecord> {
        let saved = SavedAddress::parse(req.label.as_deref(), &req.address).map_err(IdentityError::Validation)?;
        let user = self.current_user(auth).await?;
        let now = platform::clock::now();
        let updated = self
            .store
            .update_address(user.id, id, saved.label.as_deref(), &saved.address, now)
            .await
            .map_err(address_error)?;
        if req.default && !updated.is_default {
            return self
                .store
                .make_default_address(user.id, id, now)
                .await
                .map_err(address_error);
        }
        Ok(updated)
    }

    pub async fn make_default_address(&self, auth: &AuthUser, id: Uuid) -> IdResult<AddressRecord> {
        let user = self.current_user(auth).await?;
        self.store
            .make_default_address(user.id, id, platform::clock::now())
            .await
            .map_err(address_error)
    }

    pub async fn remove_address(&self, auth: &AuthUser, id: Uuid) -> IdResult<()> {
        let user = self.current_user(auth).await?;
        self.store
            .remove_address(user.id, id, platform::clock::now())
            .await
            .map_err(address_error)
    }

    pub async fn sessions(&self, auth: &AuthUser) -> IdResult<Vec<Session>> {
        let user = self.current_user(auth).await?;
        Ok(self.store.live_sessions(user.id, platform::clock::now()).await?)
    }

    pub async fn revoke_own_session(&self, auth: &AuthUser, session_id: Uuid, client: &ClientInfo) -> IdResult<()> {
        let user = self.current_user(auth).await?;
        let session = self
            .store
            .session(session_id)
            .await?
            .filter(|s| s.user_id == user.id && s.revoked_at.is_none())
            .ok_or(IdentityError::NotFound("session"))?;
        let now = platform::clock::now();
        self.store.revoke_session(session.id, "revoked by user", now).await?;
        self.announce_revocation(user.id, Some(session.id), now, "revoked by user")
            .await;
        self.record(
            audit("session.revoked")
                .user(&user)
                .client(client)
                .detail(format!("session {session_id}")),
        )
        .await;
        Ok(())
    }

    pub async fn list_users(
        &self,
        auth: &AuthUser,
        filter: &UserFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> IdResult<Vec<User>> {
        self.current_admin(auth).await?;
        Ok(self.store.list_users(filter, after, limit).await?)
    }

    pub async fn get_user(&self, auth: &AuthUser, id: Uuid) -> IdResult<User> {
        self.current_admin(auth).await?;
        self.store
            .user_by_id(UserId(id))
            .await?
            .ok_or(IdentityError::NotFound("user"))
    }

    pub async fn change_role(&self, auth: &AuthUser, id: Uuid, role: Role, client: &ClientInfo) -> IdResult<User> {
        let admin = self.current_admin(auth).await?;
        if admin.id.0 == id {
            return Err(IdentityError::Conflict(
                "administrators cannot change their own role; ask another administrator".into(),
            ));
        }
        let before = self
            .store
            .user_by_id(UserId(id))
            .await?
            .ok_or(IdentityError::NotFound("user"))?;
        let now = platform::clock::now();
        let after = self.store.set_role(before.id, role, now).await?;
        // Tokens carry the role: end the user's sessions so the new role applies at next login.
        self.store
            .revoke_sessions_of(after.id, None, "role changed", now)
            .await?;
        self.announce_revocation(after.id, None, now, "role changed").await;
        self.record(
            audit("role.changed")
                .user(&after)
                .actor(admin.id.0)
                .client(client)
                .detail(format!("{} -> {}", before.role.as_str(), role.as_str())),
        )
        .await;
        Ok(after)
    }

    pub async fn change_status(
        &self,
        auth: &AuthUser,
        id: Uuid,
        status: UserStatus,
        client: &ClientInfo,
    ) -> IdResult<User> {
        let admin = self.current_admin(auth).await?;
        if admin.id.0 == id {
            return Err(IdentityError::Conflict(
                "administrators cannot disable themselves".into(),
            ));
        }
        if status == UserStatus::Deleted {
            return Err(IdentityError::Validation(vec![FieldError::new(
                "status",
                "must be active or disabled; accounts are deleted by their owners",
            )]));
        }
        let now = platform::clock::now();
        let user = self.store.set_status(UserId(id), status, now).await?;
        if status == UserStatus::Disabled {
            self.store
                .revoke_sessions_of(user.id, None, "account disabled", now)
                .await?;
            self.announce_revocation(user.id, None, now, "account disabled").await;
        }
        let kind = if status == UserStatus::Disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        self.record(audit(kind).user(&user).actor(admin.id.0).client(client))
            .await;
        Ok(user)
    }

    /// The fault-injection flags (admin), as the shared store holds them now.
    pub async fn fault_flags(
        &self,
        auth: &AuthUser,
        faults: &platform::faults::Faults,
    ) -> Result<platform::faults::FaultFlags, Problem> {
        self.current_admin(auth).await?;
        if !faults.is_enabled() {
            return Err(platform::faults::FaultsError::Disabled.into());
        }
        Ok(faults.fetch().await)
    }

    /// Replaces the fault-injection flags (admin) and records who changed what in the audit log.
    pub async fn set_fault_flags(
        &self,
        auth: &AuthUser,
        faults: &platform::faults::Faults,
        flags: platform::faults::FaultFlags,
        client: &ClientInfo,
    ) -> Result<platform::faults::FaultFlags, Problem> {
        let admin = self.current_admin(auth).await?;
        let before = faults.set(flags.clone()).await?;
        let changes = flags.changes_from(&before);
        let detail = if changes.is_empty() {
            "no change".to_owned()
        } else {
            changes.join("; ")
        };
        tracing::warn!(admin = %admin.email, changes = %detail, "fault injection flags set by an administrator");
        self.record(audit("faults.changed").actor(admin.id.0).client(client).detail(detail))
            .await;
        Ok(flags)
    }

    pub async fn audit_log(
        &self,
        auth: &AuthUser,
        filter: &AuditFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> IdResult<Vec<AuditEvent>> {
        self.current_admin(auth).await?;
        Ok(self.store.list_audit(filter, before, limit).await?)
    }

    /// Publishes a new signing key; it signs from the returned time (after the lead time).
    pub async fn rotate_signing_key(&self, auth: &AuthUser, client: &ClientInfo) -> IdResult<(String, OffsetDateTime)> {
        let admin = self.current_admin(auth).await?;
        let (kid, signs_from) = self.keys.rotate().await?;
        self.record(
            audit("signing_key.rotated")
                .user(&admin)
                .actor(admin.id.0)
                .client(client)
                .detail(format!("new kid {kid}, signing from {signs_from}")),
        )
        .await;
        Ok((kid, signs_from))
    }
}

fn invalid_token_field() -> IdentityError {
    IdentityError::Validation(vec![FieldError::new("token", "is invalid, expired or already used")])
}

fn sha256(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
