//! Identity's storage port. One trait, one SQL implementation generic over the backend
//! (`store::sql`), instantiated for SQLite (embedded) and PostgreSQL (production) and tested by
//! one shared suite on both.

pub mod sql;

/// The store on `db`, whichever backend it is: how every caller gets one.
pub fn open(db: &platform::db::Db) -> std::sync::Arc<dyn IdentityStore> {
    use std::sync::Arc;
    match db {
        platform::db::Db::Sqlite(pool) => Arc::new(sql::SqlStore::<sqlx::Sqlite>::new(pool.clone())),
        platform::db::Db::Postgres(pool) => Arc::new(sql::SqlStore::<sqlx::Postgres>::new(pool.clone())),
    }
}

use platform::events::Event;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Role, TokenPurpose, UserId, UserStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the address book holds {0} addresses already")]
    AddressBookFull(usize),
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    #[error("the record was changed by someone else")]
    VersionMismatch,
    #[error("no such record")]
    NotFound,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub status: UserStatus,
    pub email_verified_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: UserId,
    pub user_agent: String,
    pub ip: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A refresh token as stored (by digest), with its session.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub session: Session,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub digest: [u8; 32],
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub occurred_at: OffsetDateTime,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub subject_email: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Substring of the e-mail address.
    pub email_contains: Option<String>,
    /// Only these accounts (the admin console names many customers in one call).
    pub ids: Option<Vec<Uuid>>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub kind: Option<String>,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub ip: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Failed logins in a window: for the account and for the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub account: crate::domain::FailureWindow,
    pub ip: crate::domain::FailureWindow,
}

/// A login attempt, reserved before the password is checked.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub id: Uuid,
    pub email: String,
    pub ip: String,
    pub at: OffsetDateTime,
}

/// How a reserved login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Wrong e-mail or password: keeps counting against the limits.
    Failed,
    /// Right password, but the account may not log in (disabled, unverified): neither counts nor clears.
    Refused,
    /// Logged in: clears the account's count.
    Succeeded,
}

impl LoginOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Succeeded => "succeeded",
        }
    }
}

/// Decides from the counts whether an attempt must wait (and how long).
pub type ThrottleRule<'a> = &'a (dyn Fn(LoginFailures) -> Option<crate::domain::LoginThrottle> + Send + Sync);

#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// PKCS#8 DER.
    pub private_key: Vec<u8>,
    /// Raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

/// One address in a shopper's address book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRecord {
    pub id: Uuid,
    pub user_id: UserId,
    pub label: Option<String>,
    pub address: contracts::kernel::PostalAddress,
    pub is_default: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[async_trait::async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// Inserts the user and, in the same transaction, the events announcing it.
    async fn insert_user(&self, user: &User, events: &[Event]) -> StoreResult<()>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// The user behind an access token, only while the token's session is live and the user active.
    async fn user_in_live_session(
        &self,
        id: UserId,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>>;
    /// Updates the display name (and puts `events` in the outbox, in the same transaction); with
    /// `expected_version`, only if the stored version matches.
    async fn update_name(
        &self,
        id: UserId,
        name: &str,
        expected_version: Option<i64>,
        now: OffsetDateTime,
        events: &[Event],
    ) -> StoreResult<User>;
    async fn set_password_hash(&self, id: UserId, hash: &str, now: OffsetDateTime) -> StoreResult<()>;
    async fn mark_email_verified(&self, id: UserId, now: OffsetDateTime) -> StoreResult<()>;
    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> StoreResult<User>;
    async fn set_status(&self, id: UserId, status: UserStatus, now: OffsetDateTime) -> StoreResult<User>;
    /// Users in id (creation) order after `after`, at most `limit`.
    async fn list_users(&self, filter: &UserFilter, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<User>>;

    /// The user's saved addresses, the default first, then oldest first.
    async fn addresses(&self, user: UserId) -> StoreResult<Vec<AddressRecord>>;
    /// Saves `record` for its (live) user unless the book already holds `limit` addresses
    /// (`AddressBookFull`). The first address is the default whatever `record.is_default` says;
    /// a new default takes the mark from the old one. Answers the row as stored.
    async fn add_address(&self, record: &AddressRecord, limit: usize) -> StoreResult<AddressRecord>;
    /// Replaces the label and address of one of the user's addresses.
    async fn update_address(
        &self,
        user: UserId,
        id: Uuid,
        label: Option<&str>,
        address: &contracts::kernel::PostalAddress,
        now: OffsetDateTime,
    ) -> StoreResult<AddressRecord>;
    /// Makes one of the user's addresses the default (and no other).
    async fn make_default_address(&self, user: UserId, id: Uuid, now: OffsetDateTime) -> StoreResult<AddressRecord>;
    /// Removes one of the user's addresses; removing the default passes the mark to the most
    /// recently added remaining address, so checkout keeps offering one.
    async fn remove_address(&self, user: UserId, id: Uuid, now: OffsetDateTime) -> StoreResult<()>;

    /// Starts a session with its first refresh token, atomically.
    async fn create_session(&self, session: &Session, token: &NewRefreshToken) -> StoreResult<()>;
    async fn refresh_token(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshToken>>;
    /// Marks `old` used and stores `new` in one transaction. `false` if `old` was already used
    /// (a concurrent rotation won), in which case nothing is written.
    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        new: &NewRefreshToken,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    async fn session(&self, id: Uuid) -> StoreResult<Option<Session>>;
    async fn live_sessions(&self, user: UserId, now: OffsetDateTime) -> StoreResult<Vec<Session>>;
    /// Revokes one session; `false` if it was already revoked or does not exist.
    async fn revoke_session(&self, id: Uuid, reason: &str, now: OffsetDateTime) -> StoreResult<bool>;
    /// Revokes every live session of `user` except `keep`; returns how many.
    async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<Uuid>,
        reason: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;

    /// Stores a single-use token's digest and, in the same transaction, the event that asks
    /// notifications to mail it.
    async fn insert_one_time_token(
        &self,
        digest: &[u8; 32],
        user: UserId,
        purpose: TokenPurpose,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        events: &[Event],
    ) -> StoreResult<()>;
    /// Uses a single-use token: returns its user if it was unused, unexpired and of `purpose`.
    async fn consume_one_time_token(
        &self,
        digest: &[u8; 32],
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> StoreResult<Option<UserId>>;
    /// Invalidates every outstanding token of `purpose` for `user`.
    async fn burn_one_time_tokens(&self, user: UserId, purpose: TokenPurpose, now: OffsetDateTime) -> StoreResult<()>;

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Puts events in the outbox (for the relay to publish).
    async fn enqueue_events(&self, events: &[Event]) -> StoreResult<()>;
    /// Counts the pending and failed login attempts since `since` for `attempt`'s account (only
    /// those after its last success) and address, and unless `rule` answers a wait for those
    /// counts, records `attempt` as pending. Both happen under a lock on the account and the
    /// address, so concurrent attempts see each other. Returns the wait when refused (nothing
    /// written).
    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt,
        since: OffsetDateTime,
        rule: ThrottleRule<'_>,
    ) -> StoreResult<Option<crate::domain::LoginThrottle>>;
    /// Records how a reserved attempt ended.
    async fn settle_login_attempt(&self, id: Uuid, outcome: LoginOutcome) -> StoreResult<()>;
    /// Forgets attempts (and idle locks) older than `cutoff`: they no longer count.
    async fn prune_login_attempts(&self, cutoff: OffsetDateTime) -> StoreResult<u64>;
    /// Newest first, before `before`.
    async fn list_audit(&self, filter: &AuditFilter, before: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEvent>>;

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Stores `key` as the active key and retires every other active key, atomically.
    async fn activate_signing_key(&self, key: &SigningKeyRecord, now: OffsetDateTime) -> StoreResult<()>;
    /// Forgets keys retired before `cutoff` (no unexpired token can carry their signature).
    async fn prune_signing_keys(&self, cutoff: OffsetDateTime) -> StoreResult<u64>;
}
