//! Access tokens as every context sees them: short-lived EdDSA JWTs issued by identity, verified
//! locally against its public keys (JWKS). `AuthUser` is the extractor handlers use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use contracts::events::Event as _;
use contracts::events::identity::{SessionRevoked, UserSessionsRevoked};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::Problem;
use crate::sync::lock;

mod jwt;
pub use jwt::install as install_token_crypto;

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
    verified: Arc<Mutex<Verified>>,
}

/// Tokens this set verified lately, by their exact text. An Ed25519 check costs tens of
/// microseconds, a session sends the same token with every request, and a checkout hands it to
/// three contexts. Only successes are kept, and each is checked for expiry again on every use;
/// a change of keys forgets them all, so a removed key's tokens are checked (and refused) again.
/// Revocations are judged after verification, on every request, as before.
#[derive(Default)]
struct Verified {
    /// Bumped by every change of keys: a check that started before it does not store its result.
    keys_changed: u64,
    tokens: HashMap<Box<str>, AccessClaims>,
}

/// Tokens remembered at most: a few MB, and more than one access-token lifetime of active
/// sessions on a busy replica sends.
const MAX_VERIFIED: usize = 4_096;
/// Seconds a token is still accepted past its `exp` (clocks drift between processes).
const EXPIRY_LEEWAY_SECS: i64 = 5;

fn expired(claims: &AccessClaims, now: i64) -> bool {
    claims.exp.saturating_add(EXPIRY_LEEWAY_SECS) < now
}

/// At most one on-demand JWKS fetch per this interval, so tokens naming made-up key ids cannot
/// turn the verifier into a request amplifier against identity.
const ON_DEMAND_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Until the first fetch succeeded (identity still starting), retry this often in the background
/// and allow on-demand fetches this often, since every token is refused until the first keys
/// arrive.
const FIRST_FETCH_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a verification may wait for an on-demand fetch.
const ON_DEMAND_REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a JWKS-fed keyset comes from, and when it was last fetched on demand.
struct JwksSource {
    url: String,
    client: reqwest::Client,
    last_on_demand: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Set once a fetch succeeded.
    loaded: std::sync::atomic::AtomicBool,
}

impl JwksSource {
    async fn fetch(&self, timeout: std::time::Duration) -> Result<jsonwebtoken::jwk::JwkSet, reqwest::Error> {
        let response = self.client.get(&self.url).timeout(timeout).send().await?;
        let jwks = response.error_for_status()?.json::<jsonwebtoken::jwk::JwkSet>().await?;
        self.loaded.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(jwks)
    }

    fn loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl KeySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set (after a rotation, or a JWKS refresh).
    pub fn replace(&self, keys: impl IntoIterator<Item = (String, DecodingKey)>) {
        let map = keys.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        *crate::sync::write(&self.keys) = map;
        let mut verified = lock(&self.verified);
        verified.keys_changed += 1;
        verified.tokens.clear();
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
            loaded: std::sync::atomic::AtomicBool::new(false),
        });
        let keys = Self {
            keys: Arc::default(),
            jwks: Some(source.clone()),
            verified: Arc::default(),
        };
        let weak = (Arc::downgrade(&keys.keys), Arc::downgrade(&keys.verified));
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_secs(1);
            loop {
                let (Some(map), Some(verified)) = (weak.0.upgrade(), weak.1.upgrade()) else {
                    break;
                };
                // A refresh forgets the remembered tokens too (one check each per refresh).
                let set = KeySet {
                    keys: map,
                    jwks: None,
                    verified,
                };
                let wait = match source.fetch(std::time::Duration::from_secs(5)).await {
                    Ok(jwks) => {
                        let n = set.replace_from_jwks(&jwks);
                        tracing::debug!(keys = n, "refreshed token verification keys");
                        delay = std::time::Duration::from_secs(1);
                        every
                    }
                    Err(error) => {
                        tracing::warn!(%error, url = %source.url, "cannot fetch the JWKS; keeping the keys we have and retrying");
                        // Quickly while nothing was ever loaded; backing off once there are keys.
                        delay = if source.loaded() {
                            (delay * 2).min(every)
                        } else {
                            FIRST_FETCH_RETRY
                        };
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
            let interval = if source.loaded() {
                ON_DEMAND_REFRESH_INTERVAL
            } else {
                FIRST_FETCH_RETRY
            };
            let due = last.is_none_or(|at| at.elapsed() >= interval);
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
        crate::sync::read(&self.keys).get(kid).cloned()
    }

    /// Verifies signature, algorithm (EdDSA only: `none`, HMAC and RSA are refused), issuer,
    /// audience and expiry; a token verified before is only checked for expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let now = crate::clock::now().unix_timestamp();
        let keys_changed = {
            let verified = lock(&self.verified);
            if let Some(claims) = verified.tokens.get(token) {
                return if expired(claims, now) {
                    Err(TokenError::Expired)
                } else {
                    Ok(claims.clone())
                };
            }
            verified.keys_changed
        };
        let claims = self.verify_signed(token)?;
        let mut verified = lock(&self.verified);
        if verified.keys_changed == keys_changed {
            if verified.tokens.len() >= MAX_VERIFIED {
                verified.tokens.retain(|_, c| !expired(c, now));
                if verified.tokens.len() >= MAX_VERIFIED {
                    verified.tokens.clear();
                }
            }
            verified.tokens.insert(token.into(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Result<AccessClaims, TokenError> {
        install_token_crypto();
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
        validation.leeway = EXPIRY_LEEWAY_SECS.unsigned_abs();
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

/// The events that feed [`Revocations`] (identity's `SessionRevoked` and `UserSessionsRevoked`).
pub const REVOCATION_EVENTS: [&str; 2] = [SessionRevoked::TYPE, UserSessionsRevoked::TYPE];

/// Largest number of revocations kept; far above what one access-token lifetime sees.
const MAX_REVOCATIONS: usize = 100_000;

/// Access tokens that were revoked before they expire, as every context sees them (a stateless
/// token otherwise keeps working outside identity until `exp`, even after logout). Fed by
/// identity's events; an entry is kept only as long as a token it refuses could still be valid,
/// and the set never holds more than [`MAX_REVOCATIONS`] entries.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<RwLock<RevocationSet>>,
    /// How long an entry matters: the access-token lifetime plus a margin.
    keep_for: std::time::Duration,
}

#[derive(Default)]
struct RevocationSet {
    /// Session id → when it was revoked (unix ms).
    sessions: HashMap<Uuid, i64>,
    /// User id → sessions started before this instant (unix ms) are revoked.
    users: HashMap<Uuid, i64>,
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl RevocationSet {
    fn len(&self) -> usize {
        self.sessions.len() + self.users.len()
    }

    /// Forgets entries older than `cutoff_ms`; if still full, the oldest ones.
    fn make_room(&mut self, cutoff_ms: i64) {
        if self.len() < MAX_REVOCATIONS {
            return;
        }
        self.sessions.retain(|_, at| *at >= cutoff_ms);
        self.users.retain(|_, at| *at >= cutoff_ms);
        while self.len() >= MAX_REVOCATIONS {
            let oldest_session = self.sessions.iter().min_by_key(|(_, at)| **at).map(|(k, at)| (*k, *at));
            let oldest_user = self.users.iter().min_by_key(|(_, at)| **at).map(|(k, at)| (*k, *at));
            match (oldest_session, oldest_user) {
                (Some((s, a)), Some((_, b))) if a <= b => self.sessions.remove(&s),
                (_, Some((u, _))) => self.users.remove(&u),
                (Some((s, _)), None) => self.sessions.remove(&s),
                (None, None) => break,
            };
        }
    }
}

impl Revocations {
    /// A set whose entries matter for `keep_for` (the access-token lifetime plus leeway).
    pub fn new(keep_for: std::time::Duration) -> Self {
        Self {
            inner: Arc::default(),
            keep_for,
        }
    }

    fn cutoff_ms(&self) -> i64 {
        unix_ms(crate::clock::now() - self.keep_for)
    }

    pub fn revoke_session(&self, session_id: Uuid, at: time::OffsetDateTime) {
        let cutoff = self.cutoff_ms();
        let mut set = crate::sync::write(&self.inner);
        set.make_room(cutoff);
        set.sessions.insert(session_id, unix_ms(at));
    }

    /// Revokes every session of `user` that started before `before`.
    pub fn revoke_user_sessions(&self, user: Uuid, before: time::OffsetDateTime) {
        let cutoff = self.cutoff_ms();
        let mut set = crate::sync::write(&self.inner);
        set.make_room(cutoff);
        let at = unix_ms(before);
        let entry = set.users.entry(user).or_insert(at);
        *entry = (*entry).max(at);
    }

    pub fn len(&self) -> usize {
        crate::sync::read(&self.inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `claims` belong to a revoked session. A session's start is the timestamp of its
    /// (UUIDv7) id, so a login after a revocation is not caught by it; ids without one fall back
    /// to the token's issue time.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let set = crate::sync::read(&self.inner);
        if set.sessions.contains_key(&claims.sid) {
            return true;
        }
        let Some(before) = set.users.get(&claims.sub) else {
            return false;
        };
        let started_ms = claims.sid.get_timestamp().map_or(claims.iat.saturating_mul(1000), |t| {
            let (secs, nanos) = t.to_unix();
            i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000) + i64::from(nanos / 1_000_000)
        });
        started_ms < *before
    }

    /// Applies one of identity's revocation events; other events are ignored.
    pub fn apply(&self, event: &crate::events::Event) -> Result<(), crate::events::HandlerError> {
        let bad = |e: serde_json::Error| crate::events::HandlerError::permanent(format!("{}: {e}", event.event_type));
        if let Some(r) = event.payload::<SessionRevoked>() {
            let r = r.map_err(bad)?;
            self.revoke_session(r.session_id, r.revoked_at);
        } else if let Some(r) = event.payload::<UserSessionsRevoked>() {
            let r = r.map_err(bad)?;
            self.revoke_user_sessions(r.user_id, r.revoked_at);
        }
        Ok(())
    }
}

/// Feeds a [`Revocations`] set from the bus.
pub struct RevocationFeed(pub Revocations);

#[async_trait::async_trait]
impl crate::events::EventHandler for RevocationFeed {
    async fn handle(&self, event: &crate::events::Event) -> Result<(), crate::events::HandlerError> {
        self.0.apply(event)
    }
}

/// The subject of `client_id`'s service tokens: the same in every token of that context, so what
/// it did as a service (idempotency keys, ledger entries) stays scoped to it across tokens.
pub fn service_subject(client_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("urn:emporium:service:{client_id}").as_bytes(),
    )
}

/// The authenticated caller. Requires a [`KeySet`] request extension (added by the app wiring);
/// with a [`Revocations`] extension, tokens of revoked sessions are refused too.
#[derive(Debug, Clone)]
pub struct AuthUser(pub AccessClaims);

impl AuthUser {
    /// The user a bearer token names, for a direct call that passes the shopper's token along
    /// (the calling context's own extractor already refused revoked sessions on that request).
    pub async fn from_bearer(keys: &KeySet, token: &str) -> Result<Self, Problem> {
        Ok(Self(keys.verify_fresh(token).await?))
    }

    /// Another context of this process calling directly: the principal its service token would
    /// carry over HTTP (role `service`, [`service_subject`]), so access rules and idempotency
    /// scopes are the same in both modes. Never built from anything a client sent.
    pub fn service(caller: &str) -> Self {
        let now = crate::clock::now().unix_timestamp();
        Self(AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: service_subject(caller),
            sid: Uuid::nil(),
            role: contracts::kernel::SERVICE_ROLE.to_owned(),
            iat: now,
            exp: now,
            jti: Uuid::nil(),
        })
    }

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
        let keys = crate::http::Wiring::of(&parts.extensions, |w| w.keys.as_ref())
            .ok_or_else(|| Problem::internal("no KeySet on the request: the app wiring must add one"))?;
        let token = bearer_token(parts)?;
        // An unknown key id makes a JWKS-fed set fetch the keys again (single-flight, rate
        // limited), so a context that started before identity, or a rotation it has not seen
        // yet, does not refuse valid tokens until the next scheduled refresh.
        let claims = keys.verify_fresh(token).await?;
        if let Some(revoked) = crate::http::Wiring::of(&parts.extensions, |w| w.revocations.as_ref())
            && revoked.is_revoked(&claims)
        {
            return Err(Problem::unauthorized("the session has ended; log in again"));
        }
        Ok(AuthUser(claims))
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
        let now = crate::clock::now().unix_timestamp();
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
        install_token_crypto();
        jsonwebtoken::encode(&h, c, &s.key).expect("sign")
    }

    fn keyset(s: &Signer) -> KeySet {
        let ks = KeySet::new();
        ks.replace([(s.kid.clone(), DecodingKey::from_ed_der(&s.public))]);
        ks
    }

    #[test]
    fn a_remembered_token_is_still_checked_for_expiry_and_forgotten_with_its_key() {
        let s = signer(1, "k1");
        let ks = keyset(&s);
        let c = claims(300);
        let token = sign(&s, &c);
        assert_eq!(ks.verify(&token).expect("valid"), c);
        assert_eq!(ks.verify(&token).expect("remembered"), c);
        // Its key is withdrawn: the remembered answer goes with it.
        let other = signer(1, "k2");
        ks.replace([(other.kid.clone(), DecodingKey::from_ed_der(&other.public))]);
        assert_eq!(ks.verify(&token), Err(TokenError::UnknownKey));

        let now = crate::clock::now().unix_timestamp();
        let mut late = claims(0);
        late.exp = now - EXPIRY_LEEWAY_SECS;
        assert!(!expired(&late, now), "within the leeway");
        late.exp = now - EXPIRY_LEEWAY_SECS - 1;
        assert!(expired(&late, now));
        // A remembered token past its expiry is refused as expired, as an unremembered one is.
        lock(&ks.verified).tokens.insert(token.clone().into(), late);
        assert_eq!(ks.verify(&token), Err(TokenError::Expired));
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
        // HS256 signed with the public key: the classic algorithm-confusion attack. jsonwebtoken
        // here has no HMAC, so the token is put together by hand.
        use hmac::Mac;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&s.public).expect("key");
        mac.update(format!("{header}.{body}").as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            ks.verify(&format!("{header}.{body}.{signature}")),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn the_token_provider_signs_and_verifies_ed25519_only() {
        install_token_crypto();
        let s = signer(1, "k1");
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some("k1".into());
        let c = claims(300);
        let token = jsonwebtoken::encode(&h, &c, &s.key).expect("EdDSA signs");
        let key = DecodingKey::from_ed_der(&s.public);
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[AUDIENCE]);
        assert_eq!(
            jsonwebtoken::decode::<AccessClaims>(&token, &key, &v)
                .expect("verifies")
                .claims,
            c
        );
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(jsonwebtoken::decode::<AccessClaims>(&tampered, &key, &v).is_err());
        // Every other algorithm is refused rather than left to a missing backend.
        let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &EncodingKey::from_secret(b"k"));
        assert!(hs.is_err());
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[AUDIENCE]);
        assert!(jsonwebtoken::decode::<AccessClaims>(&token, &DecodingKey::from_secret(b"k"), &v).is_err());
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

    /// Handlers' `AuthUser` fetches a key it does not know instead of refusing the token until the
    /// next scheduled refresh: right after a key rotation, valid tokens would be refused.
    #[tokio::test]
    async fn the_extractor_fetches_an_unknown_key() {
        let s = signer(1, "k1");
        let published = Arc::new(RwLock::new(Vec::new()));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let url = jwks_server(published.clone(), fetches.clone()).await;
        let keys = KeySet::from_jwks_url(url, std::time::Duration::from_secs(3600));
        for _ in 0..100 {
            if fetches.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        published.write().expect("lock").push(jwk(&s));
        let request = axum::http::Request::builder()
            .header(header::AUTHORIZATION, format!("Bearer {}", sign(&s, &claims(300))))
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        parts.extensions.insert(keys);
        let user = AuthUser::from_request_parts(&mut parts, &()).await.expect("verified");
        assert_eq!(user.0.role, "customer");
    }

    /// While identity is not answering yet, the background fetch retries every second instead of
    /// backing off (1, 2, 4 s…), so the first keys arrive soon after identity.
    #[tokio::test]
    async fn the_first_fetch_is_retried_quickly() {
        let s = signer(1, "k1");
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let served = jwk(&s);
        let flag = up.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let up = flag.load(std::sync::atomic::Ordering::SeqCst);
                let body = serde_json::json!({ "keys": [served.clone()] });
                async move {
                    if up {
                        Ok(axum::Json(body))
                    } else {
                        Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let started = std::time::Instant::now();
        let keys = KeySet::from_jwks_url(format!("http://{addr}/jwks.json"), std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
        up.store(true, std::sync::atomic::Ordering::SeqCst);
        let token = sign(&s, &claims(300));
        // Backing off from the first failure would fetch at 0, 2, 6 s; retrying every second
        // fetches by 4.x s.
        while keys.verify(&token).is_err() && started.elapsed() < std::time::Duration::from_secs(8) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(keys.verify(&token).is_ok(), "keys never arrived");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(5500),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn revoked_sessions_and_users_are_refused_and_later_logins_are_not() {
        let revoked = Revocations::new(std::time::Duration::from_secs(900));
        let old = claims(300);
        let other = claims(300);
        assert!(!revoked.is_revoked(&old));
        revoked.revoke_session(old.sid, crate::clock::now());
        assert!(revoked.is_revoked(&old));
        assert!(!revoked.is_revoked(&other), "another session of someone else");

        let mut before = claims(300);
        before.sub = other.sub;
        std::thread::sleep(std::time::Duration::from_millis(2));
        revoked.revoke_user_sessions(other.sub, crate::clock::now());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut after = claims(300);
        after.sub = other.sub;
        assert!(revoked.is_revoked(&other) && revoked.is_revoked(&before));
        assert!(!revoked.is_revoked(&after), "a session started after the revocation");
    }

    #[test]
    fn the_revocation_set_stays_bounded() {
        let revoked = Revocations::new(std::time::Duration::from_secs(900));
        let now = crate::clock::now();
        for _ in 0..MAX_REVOCATIONS + 10 {
            revoked.revoke_session(Uuid::now_v7(), now);
        }
        assert!(revoked.len() <= MAX_REVOCATIONS);
        // Entries older than a token's lifetime are the first to go.
        let stale = Revocations::new(std::time::Duration::from_secs(900));
        for _ in 0..MAX_REVOCATIONS {
            stale.revoke_session(Uuid::now_v7(), now - std::time::Duration::from_secs(3600));
        }
        stale.revoke_session(Uuid::now_v7(), now);
        assert_eq!(stale.len(), 1);
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
