//! Access tokens as every context sees them: short-lived EdDSA JWTs issued by identity, verified
//! locally against its public keys (JWKS). `AuthUser` is the extractor handlers use.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::Problem;

pub const ISSUER: &str = "emporium-identity";
pub const AUDIENCE: &str = "emporium";

/// What an access token says about its bearer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session (refresh-token family) the token was issued under.
    pub sid: Uuid,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token names no known signing key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        Problem::unauthorized(e.to_string())
    }
}

/// Public keys by `kid`; shared between the key ring that signs and every verifier.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Arc<RwLock<HashMap<String, Arc<DecodingKey>>>>,
}

impl KeySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set (after a rotation, or a JWKS refresh).
    pub fn replace(&self, keys: impl IntoIterator<Item = (String, DecodingKey)>) {
        let map = keys.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).get(kid).cloned()
    }

    /// Verifies signature, algorithm (EdDSA only: `none`, HMAC and RSA are refused), issuer,
    /// audience and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidToken
                | jsonwebtoken::errors::ErrorKind::Base64(_)
                | jsonwebtoken::errors::ErrorKind::Json(_)
                | jsonwebtoken::errors::ErrorKind::Utf8(_) => TokenError::Malformed,
                _ => TokenError::Invalid,
            })
    }
}

/// The authenticated caller. Requires a [`KeySet`] request extension (added by the app wiring).
#[derive(Debug, Clone)]
pub struct AuthUser(pub AccessClaims);

impl AuthUser {
    pub fn id(&self) -> Uuid {
        self.0.sub
    }

    pub fn session_id(&self) -> Uuid {
        self.0.sid
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.0.role == role
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require_any_role(&self, roles: &[&str]) -> Result<(), Problem> {
        if roles.iter().any(|r| self.has_role(r)) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("requires role {}", roles.join(" or "))))
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer_token(parts: &Parts) -> Result<&str, TokenError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(token.trim())
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let keys = parts
            .extensions
            .get::<KeySet>()
            .cloned()
            .ok_or_else(|| Problem::internal("no KeySet extension: the app wiring must add one"))?;
        let token = bearer_token(parts)?;
        Ok(AuthUser(keys.verify(token)?))
    }
}
