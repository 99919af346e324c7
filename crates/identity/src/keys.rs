//! The signing key ring: Ed25519 keys that sign access tokens, kept in identity's database so
//! every replica signs with the same active key and publishes the same JWKS. Rotation publishes a
//! new key at once and signs with it only after a lead time (a verifier that has not fetched it yet
//! would refuse its tokens); retired keys stay published until every token they signed has
//! expired. A key's `created_at` is when it starts signing, its `retired_at` when it stops.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use platform::auth::{AccessClaims, KeySet};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::store::{IdentityStore, SigningKeyRecord};

struct Signer {
    kid: String,
    key: EncodingKey,
    /// Signs from…
    from: OffsetDateTime,
    /// …until (exclusive).
    until: Option<OffsetDateTime>,
}

/// The key that signs at `now`: the newest one whose signing window holds `now`.
fn signer_at(signers: &[Signer], now: OffsetDateTime) -> Option<&Signer> {
    signers
        .iter()
        .filter(|s| s.from <= now && s.until.is_none_or(|u| u > now))
        .max_by_key(|s| s.from)
}

pub struct KeyRing {
    store: Arc<dyn IdentityStore>,
    signers: RwLock<Vec<Signer>>,
    jwks: RwLock<serde_json::Value>,
    verify: KeySet,
    /// How long a retired key must stay published: the access-token lifetime plus a margin.
    retention: Duration,
    /// How long a new key is published before it signs (`EMPORIUM_SIGNING_KEY_LEAD_SECS`).
    lead: Duration,
}

fn generate() -> anyhow::Result<SigningKeyRecord> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let signing = SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes().to_vec();
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("encoding the new signing key failed: {e}"))?;
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(&public)[..12]);
    Ok(SigningKeyRecord {
        kid,
        private_key: der.as_bytes().to_vec(),
        public_key: public,
        created_at: platform::clock::now(),
        retired_at: None,
    })
}

impl KeyRing {
    /// Loads the keys, creating the first one on a fresh database.
    pub async fn load(
        store: Arc<dyn IdentityStore>,
        access_ttl: Duration,
        lead: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let ring = Arc::new(Self {
            store,
            signers: RwLock::new(Vec::new()),
            jwks: RwLock::new(json!({ "keys": [] })),
            verify: KeySet::new(),
            retention: access_ttl + lead + Duration::from_secs(300),
            lead,
        });
        ring.reload().await?;
        if ring.active_kid().is_none() {
            // Nothing can sign yet (a fresh database): no token exists that a verifier could
            // miss, so the first key signs at once.
            ring.rotate_after(Duration::ZERO).await?;
        }
        Ok(ring)
    }

    /// Re-reads keys from the database (another replica may have rotated).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let records = self.store.signing_keys().await?;
        let mut published = Vec::new();
        let mut decoding = Vec::new();
        let mut signers = Vec::new();
        for r in &records {
            let x = URL_SAFE_NO_PAD.encode(&r.public_key);
            published.push(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": r.kid, "x": x,
            }));
            decoding.push((r.kid.clone(), DecodingKey::from_ed_der(&r.public_key)));
            signers.push(Signer {
                kid: r.kid.clone(),
                key: EncodingKey::from_ed_der(&r.private_key),
                from: r.created_at,
                until: r.retired_at,
            });
        }
        self.verify.replace(decoding);
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = json!({ "keys": published });
        *self.signers.write().unwrap_or_else(|p| p.into_inner()) = signers;
        Ok(())
    }

    /// Publishes a new key now; it becomes the signing key after the lead time, when the current
    /// one retires. Forgets keys retired long enough ago. Returns its kid and when it signs from.
    pub async fn rotate(&self) -> anyhow::Result<(String, OffsetDateTime)> {
        self.rotate_after(self.lead).await
    }

    async fn rotate_after(&self, lead: Duration) -> anyhow::Result<(String, OffsetDateTime)> {
        let now = platform::clock::now();
        let switch_at = now + lead;
        let mut record = generate()?;
        record.created_at = switch_at;
        self.store.activate_signing_key(&record, switch_at).await?;
        let pruned = self.store.prune_signing_keys(now - self.retention).await?;
        self.reload().await?;
        tracing::info!(kid = %record.kid, pruned, signs_from = %switch_at, "signing key rotated");
        Ok((record.kid, switch_at))
    }

    /// The key that signs now.
    pub fn active_kid(&self) -> Option<String> {
        let signers = self.signers.read().unwrap_or_else(|p| p.into_inner());
        signer_at(&signers, platform::clock::now()).map(|s| s.kid.clone())
    }

    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let guard = self.signers.read().unwrap_or_else(|p| p.into_inner());
        let active =
            signer_at(&guard, platform::clock::now()).ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(active.kid.clone());
        header.typ = Some("at+jwt".into());
        platform::auth::install_token_crypto();
        Ok(jsonwebtoken::encode(&header, claims, &active.key)?)
    }

    /// The public keys as a JWK Set (RFC 7517).
    pub fn jwks(&self) -> serde_json::Value {
        self.jwks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The verifier every handler's `AuthUser` extractor uses.
    pub fn key_set(&self) -> KeySet {
        self.verify.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn signer(kid: &str, from: OffsetDateTime, until: Option<OffsetDateTime>) -> Signer {
        Signer {
            kid: kid.into(),
            key: EncodingKey::from_secret(b"unused"),
            from,
            until,
        }
    }

    #[test]
    fn a_published_key_signs_only_from_its_switch_time() {
        let switch = datetime!(2026-12-03 10:02 UTC);
        let keys = [
            signer("old", datetime!(2026-12-01 00:00 UTC), Some(switch)),
            signer("new", switch, None),
        ];
        let at = |t| signer_at(&keys, t).map(|s| s.kid.as_str());
        assert_eq!(at(datetime!(2026-12-03 10:00 UTC)), Some("old"), "during the lead time");
        assert_eq!(at(switch), Some("new"));
        assert_eq!(at(datetime!(2026-12-03 11:00 UTC)), Some("new"));
        assert_eq!(at(datetime!(2026-11-30 00:00 UTC)), None, "before any key");
    }
}
