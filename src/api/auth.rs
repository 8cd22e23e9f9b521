//! Bearer tokens: account API keys (`chk_…`, stored as SHA-256) and the operator token.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::extract::Caller;
use super::problem::ApiError;
use crate::core::id::new_id;
use crate::store::{ApiKey, Store};

pub const API_KEY_PREFIX: &str = "chk_";
/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY_SECS: i64 = 60;

/// SHA-256 in hex. API keys carry 256 random bits, so a fast hash is enough: there is nothing
/// to brute-force.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random token with `prefix`.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new API key for `account_id`: the row to store, its hash, and the secret to show once.
pub fn new_api_key(account_id: &str, name: &str) -> (ApiKey, String, String) {
    let secret = random_token(API_KEY_PREFIX);
    let key = ApiKey {
        id: new_id("key"),
        account_id: account_id.to_owned(),
        name: name.to_owned(),
        prefix: secret[..API_KEY_PREFIX.len() + 6].to_owned(),
        created_at: Timestamp::now(),
        last_used_at: None,
    };
    let hash = hash_token(&secret);
    (key, hash, secret)
}

#[derive(Clone)]
pub struct Auth {
    store: Arc<dyn Store>,
    operator_hash: Arc<str>,
}

impl Auth {
    pub fn new(store: Arc<dyn Store>, operator_hash: String) -> Auth {
        Auth {
            store,
            operator_hash: operator_hash.into(),
        }
    }

    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let hash = hash_token(token);
        if token.starts_with(API_KEY_PREFIX) {
            let key = self
                .store
                .api_key_by_hash(&hash)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            let now = Timestamp::now();
            if key
                .last_used_at
                .is_none_or(|t| now.as_second() - t.as_second() >= TOUCH_EVERY_SECS)
            {
                let store = self.store.clone();
                let id = key.id.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.touch_api_key(&id, now).await {
                        tracing::warn!(error = %e, "could not note an API key's use");
                    }
                });
            }
            return Ok(Caller::Account {
                account_id: key.account_id,
            });
        }
        if !self.operator_hash.is_empty()
            && constant_time_eq(hash.as_bytes(), self.operator_hash.as_bytes())
        {
            return Ok(Caller::Operator);
        }
        Err(ApiError::Unauthorized)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let a = random_token(API_KEY_PREFIX);
        let b = random_token(API_KEY_PREFIX);
        assert!(a.starts_with("chk_") && a.len() == 4 + 43);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

/// Argon2id hash of a web sign-in password, as a PHC string.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches a hash made by [`hash_password`].
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
