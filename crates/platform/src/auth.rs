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
    /// Set for keysets fed from a JWKS URL: lets [`KeySet::verify_fresh`] fetch it at once.
    jwks: Option<Arc<JwksSource>>,
}

/// At most one on-demand JWKS fetch per this interval, so tokens naming made-up key ids cannot
/// turn the verifier into a request amplifier against identity.
const ON_DEMAND_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a verification may wait for an on-demand fetch.
const ON_DEMAND_REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a JWKS-fed keyset comes from, and when it was last fetched on demand.
struct JwksSource {
    url: String,
    client: reqwest::Client,
    last_on_demand: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl JwksSource {
    async fn fetch(&self, timeout: std::time::Duration) -> Result<jsonwebtoken::jwk::JwkSet, reqwest::Error> {
        let response = self.client.get(&self.url).timeout(timeout).send().await?;
        response.error_for_status()?.json::<jsonwebtoken::jwk::JwkSet>().await
    }
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

    /// Replaces the set with the Ed25519 keys of a JWKS document (other key types are ignored).
    pub fn replace_from_jwks(&self, jwks: &jsonwebtoken::jwk::JwkSet) -> usize {
        let keys: Vec<(String, DecodingKey)> = jwks
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        let count = keys.len();
        self.replace(keys);
        count
    }

    /// A verifier fed from identity's JWKS at `url` (production mode, where identity runs in
    /// another process), refreshed every `every` so rotations are picked up. A token naming a key
    /// the set does not know yet can be checked with [`KeySet::verify_fresh`], which fetches the
    /// JWKS at once (at most every 10 s) instead of waiting for the next refresh.
    pub fn from_jwks_url(url: String, every: std::time::Duration) -> Self {
        let source = Arc::new(JwksSource {
            url,
            client: reqwest::Client::new(),
            last_on_demand: tokio::sync::Mutex::new(None),
        });
        let keys = Self {
            keys: Arc::default(),
            jwks: Some(source.clone()),
        };
        let weak = Arc::downgrade(&keys.keys);
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_secs(1);
            loop {
                let Some(map) = weak.upgrade() else { break };
                let set = KeySet { keys: map, jwks: None };
                let wait = match source.fetch(std::time::Duration::from_secs(5)).await {
                    Ok(jwks) => {
                        let n = set.replace_from_jwks(&jwks);
                        tracing::debug!(keys = n, "refreshed token verification keys");
                        delay = std::time::Duration::from_secs(1);
                        every
                    }
                    Err(error) => {
                        tracing::warn!(%error, url = %source.url, "cannot fetch the JWKS; keeping the keys we have and retrying");
                        delay = (delay * 2).min(every);
                        delay
                    }
                };
                drop(set);
                tokio::time::sleep(wait).await;
            }
        });
        keys
    }

    /// Like [`KeySet::verify`], but a token naming an unknown key first makes a JWKS-fed set
    /// fetch the JWKS (a key rotated in moments ago verifies at once). Fetches are rate limited:
    /// within 10 s of the last one the token is judged on the keys at hand. Sets that are not
    /// fed from a URL (identity's own) behave exactly like `verify`.
    pub async fn verify_fresh(&self, token: &str) -> Result<AccessClaims, TokenError> {
        match self.verify(token) {
            Err(TokenError::UnknownKey) => {}
            other => return other,
        }
        let Some(source) = &self.jwks else {
            return Err(TokenError::UnknownKey);
        };
        {
            // One fetch at a time; whoever waited for it re-checks with the keys it brought.
            let mut last = source.last_on_demand.lock().await;
            let due = last.is_none_or(|at| at.elapsed() >= ON_DEMAND_REFRESH_INTERVAL);
            if due {
                *last = Some(std::time::Instant::now());
                match source.fetch(ON_DEMAND_REFRESH_TIMEOUT).await {
                    Ok(jwks) => {
                        let n = self.replace_from_jwks(&jwks);
                        tracing::info!(keys = n, "a token named an unknown key: fetched the JWKS again");
                    }
                    Err(error) => {
                        tracing::warn!(%error, url = %source.url, "a token named an unknown key and the JWKS could not be fetched");
                    }
                }
            }
        }
        self.verify(token)
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{EncodingKey, Header};

    struct Signer {
        kid: String,
        key: EncodingKey,
        public: Vec<u8>,
    }

    fn signer(seed: u8, kid: &str) -> Signer {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let der = sk.to_pkcs8_der().expect("der");
        Signer {
            kid: kid.into(),
            key: EncodingKey::from_ed_der(der.as_bytes()),
            public: sk.verifying_key().to_bytes().to_vec(),
        }
    }

    fn claims(exp_offset: i64) -> AccessClaims {
        let now = crate::time::now().unix_timestamp();
        AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            role: "customer".into(),
            iat: now,
            exp: now + exp_offset,
            jti: Uuid::now_v7(),
        }
    }

    fn sign(s: &Signer, c: &AccessClaims) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(s.kid.clone());
        jsonwebtoken::encode(&h, c, &s.key).expect("sign")
    }

    fn keyset(s: &Signer) -> KeySet {
        let ks = KeySet::new();
        ks.replace([(s.kid.clone(), DecodingKey::from_ed_der(&s.public))]);
        ks
    }

    #[test]
    fn a_valid_token_verifies() {
        let s = signer(1, "k1");
        let c = claims(300);
        assert_eq!(keyset(&s).verify(&sign(&s, &c)).expect("valid"), c);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let s = signer(1, "k1");
        assert_eq!(keyset(&s).verify(&sign(&s, &claims(-60))), Err(TokenError::Expired));
    }

    #[test]
    fn unknown_kid_and_foreign_keys_are_refused() {
        let ours = signer(1, "k1");
        let theirs = signer(2, "k1");
        assert_eq!(
            keyset(&ours).verify(&sign(&theirs, &claims(300))),
            Err(TokenError::Invalid)
        );
        let other_kid = signer(1, "k2");
        assert_eq!(
            keyset(&ours).verify(&sign(&other_kid, &claims(300))),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn alg_none_and_hmac_confusion_are_refused() {
        let s = signer(1, "k1");
        let ks = keyset(&s);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(300)).expect("json"));
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        assert!(ks.verify(&format!("{none}.{body}.")).is_err());
        // HS256 "signed" with the public key: the classic algorithm-confusion attack.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&h, &claims(300), &EncodingKey::from_secret(&s.public)).expect("sign");
        assert_eq!(ks.verify(&hs), Err(TokenError::Invalid));
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        let s = signer(1, "k1");
        let mut c = claims(300);
        c.aud = "someone-else".into();
        assert_eq!(keyset(&s).verify(&sign(&s, &c)), Err(TokenError::Invalid));
        let mut c = claims(300);
        c.iss = "evil".into();
        assert_eq!(keyset(&s).verify(&sign(&s, &c)), Err(TokenError::Invalid));
    }

    fn jwk(s: &Signer) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": s.kid, "x": URL_SAFE_NO_PAD.encode(&s.public)})
    }

    /// A JWKS endpoint whose keys the test changes, counting fetches.
    async fn jwks_server(
        keys: Arc<RwLock<Vec<serde_json::Value>>>,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let keys = keys.read().expect("lock").clone();
                async move { axum::Json(serde_json::json!({ "keys": keys })) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/jwks.json")
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_the_jwks_at_once_but_not_twice_within_ten_seconds() {
        let first = signer(1, "k1");
        let rotated = signer(2, "k2");
        let published = Arc::new(RwLock::new(vec![jwk(&first)]));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let url = jwks_server(published.clone(), fetches.clone()).await;
        // Hourly background refresh: anything sooner is the on-demand fetch.
        let keys = KeySet::from_jwks_url(url, std::time::Duration::from_secs(3600));
        let old_token = sign(&first, &claims(300));
        for _ in 0..100 {
            if keys.verify(&old_token).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(keys.verify(&old_token).is_ok(), "the first fetch loads k1");

        published.write().expect("lock").push(jwk(&rotated));
        let new_token = sign(&rotated, &claims(300));
        assert_eq!(
            keys.verify(&new_token),
            Err(TokenError::UnknownKey),
            "plain verify waits for the refresh"
        );
        let before = fetches.load(std::sync::atomic::Ordering::SeqCst);
        assert!(keys.verify_fresh(&new_token).await.is_ok(), "k2 is fetched on demand");
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), before + 1);

        // Made-up key ids do not make the verifier hammer identity.
        let bogus = sign(&signer(3, "k3"), &claims(300));
        assert_eq!(keys.verify_fresh(&bogus).await, Err(TokenError::UnknownKey));
        assert_eq!(keys.verify_fresh(&bogus).await, Err(TokenError::UnknownKey));
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), before + 1);
    }

    #[tokio::test]
    async fn verify_fresh_on_a_local_keyset_is_plain_verify() {
        let s = signer(1, "k1");
        let other = signer(1, "k9");
        assert!(keyset(&s).verify_fresh(&sign(&s, &claims(300))).await.is_ok());
        assert_eq!(
            keyset(&s).verify_fresh(&sign(&other, &claims(300))).await,
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn tampered_payloads_are_refused() {
        let s = signer(1, "k1");
        let token = sign(&s, &claims(300));
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims(300);
        c.role = "admin".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
        assert_eq!(
            keyset(&s).verify(&format!("{}.{forged}.{}", parts[0], parts[2])),
            Err(TokenError::Invalid)
        );
        assert_eq!(keyset(&s).verify("not.a.jwt"), Err(TokenError::Malformed));
    }
}
