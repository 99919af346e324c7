//! Password hashing with argon2id. Hashing is CPU-bound, so it runs on the blocking pool and
//! never stalls the async runtime.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

#[derive(Debug, Clone, Copy)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist so that
    /// unknown e-mails take as long as wrong passwords.
    decoy: std::sync::Arc<String>,
}

impl PasswordHasher {
    pub fn new(settings: Argon2Settings) -> anyhow::Result<Self> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let decoy = hash_with(&params, &crate::tokens::OpaqueToken::generate().expose())?;
        Ok(Self {
            params,
            decoy: std::sync::Arc::new(decoy),
        })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password)).await?
    }

    /// Verifies `password` against `stored`, or against the decoy when there is no stored hash.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let (stored, real) = match stored {
            Some(h) => (h, true),
            None => ((*self.decoy).clone(), false),
        };
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await?;
        Ok(ok && real)
    }
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Settings {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        })
        .expect("hasher")
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let h = hasher();
        let a = h.hash("correct horse battery staple".into()).await.expect("hash");
        let b = h.hash("correct horse battery staple".into()).await.expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert_ne!(a, b, "salts differ");
        assert!(
            h.verify("correct horse battery staple".into(), Some(a.clone()))
                .await
                .expect("verify")
        );
        assert!(!h.verify("wrong".into(), Some(a)).await.expect("verify"));
    }

    #[tokio::test]
    async fn missing_hash_never_verifies() {
        let h = hasher();
        assert!(!h.verify("anything".into(), None).await.expect("verify"));
        assert!(!h.verify("anything".into(), Some("!".into())).await.expect("verify"));
    }
}
