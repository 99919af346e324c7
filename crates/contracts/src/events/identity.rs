//! The events identity publishes. Notifications keeps its recipients from the account events and
//! mails the one-time tokens; every context refuses the tokens of revoked sessions.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Event, shared_shape};

/// An account, as the account events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
}

shared_shape! {
    /// A new account (signed up, or an administrator created from the command line).
    UserRegistered(Account) = "identity.user.registered"
}

shared_shape! {
    /// The account's name or e-mail address changed: contexts that keep a copy update it.
    UserUpdated(Account) = "identity.user.updated"
}

/// An account was erased (by its owner or an administrator on request): every context that holds
/// personal data erases or pseudonymises it and answers with its `<context>.privacy.erased`
/// step. Carries no personal data itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserErased {
    pub user_id: Uuid,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub erased_at: OffsetDateTime,
}

impl Event for UserErased {
    const TYPE: &'static str = "identity.user.erased";
}

/// A data export (GDPR articles 15 and 20) was started: every context holding personal data
/// answers with its part (`<context>.privacy.exported`). Carries no personal data itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequested {
    pub export_id: Uuid,
    pub user_id: Uuid,
}

impl Event for ExportRequested {
    const TYPE: &'static str = "identity.export.requested";
}

/// Every part of an export arrived: notifications mails its owner that the archive can be
/// downloaded (from the account page, until `expires_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportReady {
    pub export_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Event for ExportReady {
    const TYPE: &'static str = "identity.export.ready";
}

shared_shape! {
    /// Someone tried to sign up with this account's address: its owner is told (by mail), the
    /// caller learns nothing.
    RegistrationAttempted(Account) = "identity.registration.attempted"
}

/// A single-use token to mail to its account. The bus is internal: the plaintext token exists
/// only in this event and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeToken {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub token: String,
    /// RFC 3339.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The token's lifetime, so the mail can say "valid for 24 hours" without clock arithmetic.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

shared_shape! {
    /// Mail the link that verifies the account's address.
    EmailVerificationRequested(OneTimeToken) = "identity.email.verification_requested"
}

shared_shape! {
    /// Mail the link that sets a new password.
    PasswordResetRequested(OneTimeToken) = "identity.password.reset_requested"
}

/// One session ended (logout, a session ended by its owner, refresh-token reuse): every context
/// refuses its access tokens from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRevoked {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    #[serde(default)]
    pub reason: String,
}

impl Event for SessionRevoked {
    const TYPE: &'static str = "identity.session.revoked";
}

/// Every session of a user that started before `revoked_at` ended (password reset, account
/// disabled or deleted, role changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSessionsRevoked {
    pub user_id: Uuid,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    #[serde(default)]
    pub reason: String,
}

impl Event for UserSessionsRevoked {
    const TYPE: &'static str = "identity.user.sessions_revoked";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::tests::wire_form;

    const USER: &str = "0192b1c0-0000-7000-8000-000000000001";

    #[test]
    fn account_events() {
        let sample = json!({"user_id": USER, "email": "ann@example.com", "name": "Ann"});
        let registered: UserRegistered = wire_form(sample.clone());
        assert_eq!(registered.email, "ann@example.com");
        let attempted: RegistrationAttempted = wire_form(sample);
        assert_eq!(attempted.0, registered.0);
    }

    #[test]
    fn one_time_tokens() {
        let sample = json!({"user_id": USER, "email": "ann@example.com", "name": "Ann", "token": "t0k",
            "expires_at": "2030-01-02T00:00:00Z", "ttl_seconds": 86_400});
        let v: EmailVerificationRequested = wire_form(sample.clone());
        assert_eq!(v.ttl_seconds, Some(86_400));
        assert_eq!(v.expires_at.map(|t| t.unix_timestamp()), Some(1_893_542_400));
        let r: PasswordResetRequested = wire_form(sample);
        assert_eq!(r.token, "t0k");
        // Without the lifetime fields (older producers).
        let old: PasswordResetRequested =
            serde_json::from_value(json!({"user_id": USER, "email": "a@b.io", "name": "A", "token": "t"}))
                .expect("parse");
        assert_eq!((old.expires_at, old.ttl_seconds), (None, None));
    }

    #[test]
    fn revocations() {
        let one: SessionRevoked = wire_form(json!({"user_id": USER,
            "session_id": "0192b1c0-0000-7000-8000-000000000002",
            "revoked_at": "2026-11-23T10:00:00Z", "reason": "logout"}));
        assert_eq!(one.reason, "logout");
        let all: UserSessionsRevoked =
            wire_form(json!({"user_id": USER, "revoked_at": "2026-11-23T10:00:00.5Z", "reason": "password_reset"}));
        assert_eq!(all.revoked_at.millisecond(), 500);
        let no_reason: UserSessionsRevoked =
            serde_json::from_value(json!({"user_id": USER, "revoked_at": "2026-11-23T10:00:00Z"})).expect("parse");
        assert_eq!(no_reason.reason, "");
        assert!(
            serde_json::from_value::<SessionRevoked>(json!({"user_id": USER, "revoked_at": "2026-11-23T10:00:00Z"}))
                .is_err(),
            "a session revocation names its session"
        );
    }
}
