//! Opaque secrets (refresh, verification and reset tokens): 256 random bits, shown to the user
//! once, stored only as a SHA-256 digest so a database leak yields nothing usable.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A secret token. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(String);

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken(***)")
    }
}

impl OpaqueToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a token presented by a client.
    pub fn presented(text: &str) -> Self {
        Self(text.trim().to_owned())
    }

    pub fn expose(&self) -> String {
        self.0.clone()
    }

    /// The digest under which the token is stored and looked up. Looking up by digest means no
    /// secret is ever compared byte by byte against stored secrets.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hidden_from_debug() {
        let a = OpaqueToken::generate();
        let b = OpaqueToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(format!("{a:?}"), "OpaqueToken(***)");
    }

    #[test]
    fn digest_is_stable_and_ignores_surrounding_whitespace() {
        let t = OpaqueToken::generate();
        assert_eq!(
            t.digest(),
            OpaqueToken::presented(&format!(" {} ", t.expose())).digest()
        );
    }
}
