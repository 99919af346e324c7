//! The identity context's published request and view types: what identity serves (accounts,
//! sessions, tokens, the audit log), what the web tier sends and reads, and the service token
//! other contexts fetch through `platform::client`. Who may do what stays identity's rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::kernel::Role;

/// Where identity issues service tokens.
pub const SERVICE_TOKEN_PATH: &str = "/api/v1/auth/service-token";

/// A context asking for a token with role `service`. No `Debug`: it holds the shared secret.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTokenRequest {
    /// The calling context's name (lower-case letters).
    #[schema(example = "ordering")]
    pub client_id: String,
    /// The shared `EMPORIUM_SERVICE_SECRET`.
    pub client_secret: String,
}

/// A service token. No `Debug`: it is a bearer credential.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceTokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Whether an account may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
    /// Soft-deleted by its owner: personal data removed, history kept.
    Deleted,
}

impl UserStatus {
    pub const ALL: [UserStatus; 3] = [UserStatus::Active, UserStatus::Disabled, UserStatus::Deleted];

    pub const fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
            UserStatus::Deleted => "deleted",
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| "must be one of active, disabled, deleted".into())
    }
}

/// An account as its owner and administrators see it. Never includes the password hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub status: UserStatus,
    pub email_verified: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub email_verified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Increases with every change; send it back as `If-Match: "v<version>"` to update safely.
    pub version: i64,
}

// No `Debug`: it holds bearer credentials.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// EdDSA-signed JWT; send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use: exchange it at `/api/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
}

// No `Debug`: it holds a password.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Normalised to lower case.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 12 characters and hard to guess (common passwords are refused).
    #[schema(example = "correct horse battery staple")]
    pub password: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistrationAccepted {
    #[schema(example = "Check your mailbox: we sent a message to ada@example.com.")]
    pub message: String,
}

// No `Debug`: the token is a credential.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token from the e-mail.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

// No `Debug`: it holds a password.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub password: String,
}

// No `Debug`: the token is a credential.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

// No `Debug`: it holds a token and a password.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub token: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RotatedKey {
    pub kid: String,
    /// When the new key starts signing: it is published in the JWKS at once, and signs only after
    /// `EMPORIUM_SIGNING_KEY_LEAD_SECS`, so every verifier has fetched it by then.
    #[serde(with = "time::serde::rfc3339")]
    pub signs_from: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    pub name: String,
}

// No `Debug`: it holds a password.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    pub password: String,
}

// No `Debug`: it holds passwords.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    /// The browser or client that logged in.
    pub device: String,
    pub ip: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// True for the session this request was made with.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `active` or `disabled`.
    pub status: UserStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// e.g. `login.failed`, `password.changed`, `role.changed`, `user.disabled`.
    pub kind: String,
    pub user_id: Option<Uuid>,
    /// The administrator who acted, for admin actions.
    pub actor_id: Option<Uuid>,
    pub email: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_statuses_travel_by_their_names() {
        for status in UserStatus::ALL {
            assert_eq!(status.as_str().parse::<UserStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serialises"),
                serde_json::json!(status.as_str())
            );
        }
        assert!("Active".parse::<UserStatus>().is_err());
    }

    #[test]
    fn a_user_view_reads_back_what_identity_writes() {
        let json = serde_json::json!({
            "id": "0190a0a0-0000-7000-8000-000000000001",
            "email": "ada@example.com",
            "name": "Ada",
            "role": "catalog_manager",
            "status": "disabled",
            "email_verified": false,
            "email_verified_at": null,
            "created_at": "2026-01-02T03:04:05Z",
            "updated_at": "2026-01-02T03:04:05Z",
            "version": 3
        });
        let user: UserView = serde_json::from_value(json.clone()).expect("reads");
        assert_eq!(user.role, Role::CatalogManager);
        assert_eq!(user.status, UserStatus::Disabled);
        assert_eq!(serde_json::to_value(&user).expect("writes"), json);
        let unknown_role = serde_json::json!({ "role": "root" });
        assert!(serde_json::from_value::<RoleRequest>(unknown_role).is_err());
    }
}

/// An address to save in (or replace in) the caller's address book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    /// A name for the shopper's own use ("Home", "Work"), at most 40 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Home")]
    pub label: Option<String>,
    /// The address, in the shape checkout takes (`shipping_address`).
    pub address: crate::api::ordering::RawAddress,
    /// Make it the default. The first address is the default anyway; on a replace, `false`
    /// leaves the mark where it is.
    #[serde(default)]
    pub default: bool,
}

/// One address of the caller's address book. `address` can be sent as a checkout's
/// `shipping_address` as it is; the order keeps its own copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddressView {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub address: crate::api::ordering::RawAddress,
    /// The address checkout offers first; exactly one address of a non-empty book is the default.
    pub is_default: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The caller's address book: the default first, then oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddressBook {
    pub items: Vec<AddressView>,
    /// How many addresses the book may hold.
    pub limit: usize,
}

/// Where an export stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Waiting for a context's part.
    Preparing,
    /// Every part arrived: the archive can be downloaded until `expires_at`.
    Ready,
    /// The archive was deleted; ask for a new export.
    Expired,
}

/// One export of a user's personal data (GDPR articles 15 and 20).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportView {
    pub id: Uuid,
    pub status: ExportStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Where the owner downloads the archive (`.tar.gz`), while ready.
    #[serde(default)]
    pub download: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportList {
    /// Newest first.
    pub items: Vec<ExportView>,
}

/// One context's step of an erasure.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErasureStepView {
    pub context: String,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
    /// What the context did ("1 cart(s) deleted").
    pub summary: String,
}

/// How far an account's erasure went: identity's own step at once, then one per context.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErasureReport {
    pub user_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// The account itself, or the administrator who erased it on request.
    pub requested_by: Uuid,
    /// True once every context holding personal data reported its step.
    pub complete: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    pub steps: Vec<ErasureStepView>,
    /// Contexts that have not reported yet (a context that is down catches up from the bus).
    pub waiting_for: Vec<String>,
}
