//! The signing key ring: Ed25519 keys that sign access tokens, kept in identity's database so
//! every replica signs with the same active key and publishes the same JWKS. Rotation adds a new
//! active key; retired keys stay published until every token they signed has expired.

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

use crate::store::{IdentityStore, SigningKeyRecord};

struct Active {
    kid: String,
    key: EncodingKey,
}

pub struct KeyRing {
    store: Arc<dyn IdentityStore>,
    active: RwLock<Option<Active>>,
    jwks: RwLock<serde_json::Value>,
    verify: KeySet,
    /// How long a retired key must stay published: the access-token lifetime plus a margin.
    retention: Duration,
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
        created_at: platform::time::now(),
        retired_at: None,
    })
}

impl KeyRing {
    /// Loads the keys, creating the first one on a fresh database.
    pub async fn load(store: Arc<dyn IdentityStore>, access_ttl: Duration) -> anyhow::Result<Arc<Self>> {
        let ring = Arc::new(Self {
            store,
            active: RwLock::new(None),
            jwks: RwLock::new(json!({ "keys": [] })),
            verify: KeySet::new(),
            retention: access_ttl + Duration::from_secs(300),
        });
        ring.reload().await?;
        if ring.active_kid().is_none() {
            ring.rotate().await?;
        }
        Ok(ring)
    }

    /// Re-reads keys from the database (another replica may have rotated).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let records = self.store.signing_keys().await?;
        let mut published = Vec::new();
        let mut decoding = Vec::new();
        let mut active = None;
        for r in &records {
            let x = URL_SAFE_NO_PAD.encode(&r.public_key);
            published.push(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": r.kid, "x": x,
            }));
            decoding.push((r.kid.clone(), DecodingKey::from_ed_der(&r.public_key)));
            if r.retired_at.is_none() {
                active = Some(Active {
                    kid: r.kid.clone(),
                    key: EncodingKey::from_ed_der(&r.private_key),
                });
            }
        }
        self.verify.replace(decoding);
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = json!({ "keys": published });
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = active;
        Ok(())
    }

    /// Makes a new key the signing key and forgets keys retired long enough ago. Returns its kid.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let record = generate()?;
        let now = platform::time::now();
        self.store.activate_signing_key(&record, now).await?;
        let pruned = self.store.prune_signing_keys(now - self.retention).await?;
        self.reload().await?;
        tracing::info!(kid = %record.kid, pruned, "signing key rotated");
        Ok(record.kid)
    }

    pub fn active_kid(&self) -> Option<String> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|a| a.kid.clone())
    }

    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let guard = self.active.read().unwrap_or_else(|p| p.into_inner());
        let active = guard.as_ref().ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(active.kid.clone());
        header.typ = Some("at+jwt".into());
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
