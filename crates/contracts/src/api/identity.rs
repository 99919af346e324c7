//! The identity context's published request and view types. Other contexts call identity only
//! for service tokens, which `platform::client` fetches and caches for them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
