//! Access tokens for a context's router tested on its own, without identity to issue them: a
//! fixed test key signs them the way identity does (EdDSA, key id `k1`), and [`TestTokens::keys`]
//! is the key set that accepts them.

use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use platform::auth::{AUDIENCE, AccessClaims, ISSUER, KeySet};
use uuid::Uuid;

const KEY_ID: &str = "k1";

/// How long a test token stays valid: longer than any test, short enough to be a real expiry.
const LIFETIME_SECS: i64 = 600;

pub struct TestTokens {
    signer: EncodingKey,
    keys: KeySet,
}

impl TestTokens {
    pub fn new() -> Self {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let keys = KeySet::new();
        keys.replace([(
            KEY_ID.to_owned(),
            DecodingKey::from_ed_der(&sk.verifying_key().to_bytes()),
        )]);
        Self {
            signer: EncodingKey::from_ed_der(sk.to_pkcs8_der().expect("der").as_bytes()),
            keys,
        }
    }

    /// The key set the router under test verifies with.
    pub fn keys(&self) -> KeySet {
        self.keys.clone()
    }

    /// A token for `sub` in `role`, in a session of its own.
    pub fn sign(&self, sub: Uuid, role: &str) -> String {
        let now = platform::clock::now().unix_timestamp();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub,
            sid: Uuid::now_v7(),
            role: role.into(),
            iat: now,
            exp: now + LIFETIME_SECS,
            jti: Uuid::now_v7(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(KEY_ID.into());
        platform::auth::install_token_crypto();
        jsonwebtoken::encode(&header, &claims, &self.signer).expect("sign")
    }
}

impl Default for TestTokens {
    fn default() -> Self {
        Self::new()
    }
}
