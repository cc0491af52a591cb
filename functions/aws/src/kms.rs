//! Signing keys at rest (`v1` HMAC secrets and `v1a` Ed25519 private keys, in their text
//! forms `whsec_…` and `whsk_…`): encrypted with KMS, the webhook id as encryption context (a
//! ciphertext copied to another webhook does not decrypt). Plaintext is cached per execution
//! environment for at most 5 minutes, keyed by ciphertext: a batch costs at most one Decrypt
//! per webhook, and a rotation (a new ciphertext on the webhook, read on every batch) applies
//! to the next send. Plaintext is never logged; `SigningKey`'s Debug redacts it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use webhooks_core::signing::SigningKey;

/// How long decrypted plaintext may stay in memory (SPEC §8).
pub const PLAINTEXT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Encryption context key.
const CONTEXT_KEY: &str = "webhook_id";

#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("kms {operation} failed")]
    Kms {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a stored secret is not valid")]
    Corrupt,
}

/// Encrypts and decrypts webhook signing secrets.
#[derive(Debug, Clone)]
pub struct KmsSecretBox {
    client: Client,
    key_id: String,
    cache: Arc<Mutex<HashMap<String, (SigningKey, Instant)>>>,
}

impl KmsSecretBox {
    pub fn new(client: Client, key_id: String) -> Self {
        Self { client, key_id, cache: Arc::default() }
    }

    /// The ciphertext (base64) of `secret` for `webhook_id`.
    pub async fn encrypt(&self, webhook_id: &str, secret: &SigningKey) -> Result<String, SecretBoxError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(secret.to_string().into_bytes()))
            .encryption_context(CONTEXT_KEY, webhook_id)
            .send()
            .await
            .map_err(|e| SecretBoxError::Kms { operation: "Encrypt", source: e.into() })?;
        let blob = out.ciphertext_blob.ok_or(SecretBoxError::Corrupt)?;
        Ok(STANDARD.encode(blob.as_ref()))
    }

    /// The secret behind `ciphertext`, from the cache when decrypted less than 5 min ago.
    pub async fn decrypt(&self, webhook_id: &str, ciphertext: &str) -> Result<SigningKey, SecretBoxError> {
        let cache_key = format!("{webhook_id}\u{0}{ciphertext}");
        if let Ok(mut cache) = self.cache.lock() {
            match cache.get(&cache_key) {
                Some((secret, at)) if at.elapsed() < PLAINTEXT_CACHE_TTL => return Ok(secret.clone()),
                Some(_) => {
                    cache.remove(&cache_key);
                }
                None => {}
            }
        }
        let blob = STANDARD.decode(ciphertext).map_err(|_| SecretBoxError::Corrupt)?;
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(CONTEXT_KEY, webhook_id)
            .send()
            .await
            .map_err(|e| SecretBoxError::Kms { operation: "Decrypt", source: e.into() })?;
        let plaintext = out.plaintext.ok_or(SecretBoxError::Corrupt)?;
        let text = std::str::from_utf8(plaintext.as_ref()).map_err(|_| SecretBoxError::Corrupt)?;
        let secret = SigningKey::parse(text).map_err(|_| SecretBoxError::Corrupt)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (_, at)| at.elapsed() < PLAINTEXT_CACHE_TTL);
            cache.insert(cache_key, (secret.clone(), Instant::now()));
        }
        Ok(secret)
    }

    /// The secrets of a webhook that sign now (current, and previous ones within their grace).
    pub async fn signing_secrets(
        &self,
        webhook_id: &str,
        stored: &[crate::dynamodb::StoredSecret],
        now: i64,
    ) -> Result<Vec<SigningKey>, SecretBoxError> {
        let mut secrets = Vec::new();
        for s in stored.iter().filter(|s| s.expires_at.is_none_or(|t| t > now)) {
            secrets.push(self.decrypt(webhook_id, &s.ciphertext).await?);
        }
        Ok(secrets)
    }
}
