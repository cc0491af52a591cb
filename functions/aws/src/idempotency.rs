//! Idempotency records of the API's creating POSTs (SubscriptionsTable, SPEC §10): one item per
//! (caller key, `Idempotency-Key` header), kept 24 h.
//!
//! A request claims its record with a conditional put (`in_progress`, its fingerprint, a claim
//! token and a lease), so two requests with the same header can never both go ahead; the one
//! that did stores its answer (`done`) or, when it failed, deletes the claim, so a failure is
//! never replayed. A claim whose holder crashed is taken over once its lease expired; an
//! expired record (TTL deletes late, and never on the emulator) counts as absent.
//!
//! A stored answer may carry a secret shown once (a webhook's signing secret, an API key):
//! that secret is cut out of the stored body and kept only as KMS ciphertext whose encryption
//! context is the record's key, so the table never holds it in clear and a ciphertext copied
//! to another record does not decrypt. What to do with a record is decided by the caller.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use webhooks_core::signing::sha256_hex;

use crate::dynamodb::StoreError;
use crate::item::{conditional, get_n, get_s, n, s, unavailable};
use crate::keys::{IDEMPOTENCY_SK, idempotency_pk, key};

/// A first answer is replayed for this long (SPEC §10).
pub const IDEMPOTENCY_WINDOW_SECONDS: i64 = 24 * 3600;
/// How long a claim holds off other requests with the same header: longer than the API
/// function's timeout (29 s), so a request still running never loses its claim; a crashed
/// one blocks its retries for at most this long.
pub const CLAIM_LEASE_SECONDS: i64 = 60;
/// KMS encryption context key of a stored answer's secret (its value: the record's key).
const CONTEXT_KEY: &str = "idempotency_record";
/// Claims tried when the record vanishes between a refused claim and its read (the request
/// holding it failed and released it): then it is free again.
const CLAIM_TRIES: u32 = 3;
/// Random characters of a claim token: a request completes or releases only its own claim.
const CLAIM_TOKEN_CHARS: usize = 22;

/// An answer as first given: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
}

/// Where a request with an `Idempotency-Key` stands.
#[derive(Debug)]
pub enum Begun {
    /// This request holds the claim: go ahead, then [`DynamoDbIdempotency::complete`] or
    /// [`DynamoDbIdempotency::release`] it.
    Claimed(IdempotencyClaim),
    /// A request with this header finished within the window: its fingerprint and answer
    /// (to [`DynamoDbIdempotency::open`] for a replay).
    Done { fingerprint: String, answer: KeptAnswer },
    /// A request with this header is still running (its lease has not expired).
    InProgress { fingerprint: String },
}

/// An answer as kept: its secret, if it shows one, still encrypted.
#[derive(Debug)]
pub struct KeptAnswer {
    pk: String,
    answer: StoredAnswer,
    /// The secret's ciphertext and where it goes in the body.
    sealed: Option<(String, usize)>,
}

/// A claim held by one request.
#[derive(Debug)]
pub struct IdempotencyClaim {
    pk: String,
    token: String,
}

/// Why an answer could not be stored or read back.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("kms {operation} failed")]
    Kms {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Randomness(#[from] webhooks_core::ids::RandomnessError),
    /// The secret to seal is not in the answer's body, or a stored record is not as written.
    #[error("an idempotency record is not valid: {0}")]
    Corrupt(&'static str),
}

/// Idempotency records in SubscriptionsTable, secrets sealed with the signing key.
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotency {
    client: Client,
    table: String,
    kms: aws_sdk_kms::Client,
    key_id: String,
}

impl DynamoDbIdempotency {
    pub fn new(client: Client, table: String, kms: aws_sdk_kms::Client, key_id: String) -> Self {
        Self { client, table, kms, key_id }
    }

    /// Claims the record of `caller`'s `header` for a request with `fingerprint` at `now` (Unix
    /// seconds), or says why not: a finished request's answer, or one still running.
    pub async fn begin(
        &self,
        caller: &str,
        header: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<Begun, IdempotencyError> {
        let pk = idempotency_pk(caller, &sha256_hex(header));
        for _ in 0..CLAIM_TRIES {
            let token = webhooks_core::ids::random_base62("", CLAIM_TOKEN_CHARS)?;
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(pk.clone()))
                .item("sk", s(IDEMPOTENCY_SK))
                .item("state", s("in_progress"))
                .item("fingerprint", s(fingerprint))
                .item("token", s(token.clone()))
                .item("lease_until", n(now + CLAIM_LEASE_SECONDS))
                .item("expires_at", n(now + IDEMPOTENCY_WINDOW_SECONDS))
                // Free, or past its window (TTL deletes late), or a claim whose holder crashed.
                .condition_expression(
                    "attribute_not_exists(pk) OR expires_at <= :now OR (#s = :in_progress AND lease_until <= :now)",
                )
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":in_progress", s("in_progress"))
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            if conditional(result, "PutItem")?.is_some() {
                return Ok(Begun::Claimed(IdempotencyClaim { pk, token }));
            }
            let Some(item) = self.read(&pk, now).await? else { continue };
            let recorded = get_s(&item, "fingerprint").ok_or(IdempotencyError::Corrupt("no fingerprint"))?;
            if get_s(&item, "state").as_deref() != Some("done") {
                return Ok(Begun::InProgress { fingerprint: recorded });
            }
            let status = get_n::<u16>(&item, "status").ok_or(IdempotencyError::Corrupt("no status"))?;
            let body = get_s(&item, "body").ok_or(IdempotencyError::Corrupt("no body"))?;
            let sealed = get_s(&item, "sealed").zip(get_n::<usize>(&item, "sealed_at"));
            let answer = KeptAnswer { pk, answer: StoredAnswer { status, body }, sealed };
            return Ok(Begun::Done { fingerprint: recorded, answer });
        }
        Err(IdempotencyError::Store(StoreError::Conflict))
    }

    /// Stores the answer of the request holding `claim`. `secret`, when given, is cut out of
    /// the stored body and kept only encrypted.
    pub async fn complete(
        &self,
        claim: &IdempotencyClaim,
        answer: &StoredAnswer,
        secret: Option<&str>,
    ) -> Result<(), IdempotencyError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(claim.pk.clone(), Some(IDEMPOTENCY_SK))))
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":status", n(answer.status))
            .expression_attribute_values(":token", s(claim.token.clone()))
            .condition_expression("#s = :in_progress AND #t = :token")
            .expression_attribute_names("#t", "token")
            .expression_attribute_values(":in_progress", s("in_progress"));
        let mut set = "SET #s = :done, #status = :status, #body = :body".to_owned();
        update = update.expression_attribute_names("#status", "status").expression_attribute_names("#body", "body");
        match secret {
            Some(secret) => {
                let (body, at) =
                    cut(&answer.body, secret).ok_or(IdempotencyError::Corrupt("the secret is not in the body"))?;
                let sealed = self.seal(&claim.pk, secret).await?;
                set.push_str(", sealed = :sealed, sealed_at = :sealed_at");
                update = update
                    .expression_attribute_values(":body", s(body))
                    .expression_attribute_values(":sealed", s(sealed))
                    .expression_attribute_values(":sealed_at", n(at));
            }
            None => update = update.expression_attribute_values(":body", s(answer.body.clone())),
        }
        let result = update.update_expression(format!("{set} REMOVE lease_until")).send().await;
        match conditional(result, "UpdateItem")? {
            Some(_) => Ok(()),
            // The lease outlives the function's timeout: only a request that ran longer than
            // it could lose its claim.
            None => Err(IdempotencyError::Store(StoreError::Conflict)),
        }
    }

    /// Gives the claim up (the request failed): a retry with the same header runs again.
    pub async fn release(&self, claim: &IdempotencyClaim) -> Result<(), IdempotencyError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(claim.pk.clone(), Some(IDEMPOTENCY_SK))))
            .condition_expression("#t = :token")
            .expression_attribute_names("#t", "token")
            .expression_attribute_values(":token", s(claim.token.clone()))
            .send()
            .await;
        conditional(result, "DeleteItem")?;
        Ok(())
    }

    /// The record, unless absent or past its window (TTL deletes late).
    async fn read(&self, pk: &str, now: i64) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), Some(IDEMPOTENCY_SK))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        Ok(out.item.filter(|item| get_n::<i64>(item, "expires_at").is_some_and(|t| t > now)))
    }

    async fn seal(&self, pk: &str, secret: &str) -> Result<String, IdempotencyError> {
        let out = self
            .kms
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(secret.as_bytes().to_vec()))
            .encryption_context(CONTEXT_KEY, pk)
            .send()
            .await
            .map_err(|e| IdempotencyError::Kms { operation: "Encrypt", source: e.into() })?;
        let blob = out.ciphertext_blob.ok_or(IdempotencyError::Corrupt("no ciphertext"))?;
        Ok(STANDARD.encode(blob.as_ref()))
    }

    /// A kept answer as first given: its secret decrypted and put back where it was.
    pub async fn open(&self, kept: KeptAnswer) -> Result<StoredAnswer, IdempotencyError> {
        let KeptAnswer { pk, answer, sealed } = kept;
        let Some((sealed, at)) = sealed else { return Ok(answer) };
        let blob = STANDARD.decode(sealed).map_err(|_| IdempotencyError::Corrupt("ciphertext is not base64"))?;
        let out = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(CONTEXT_KEY, pk)
            .send()
            .await
            .map_err(|e| IdempotencyError::Kms { operation: "Decrypt", source: e.into() })?;
        let plaintext = out.plaintext.ok_or(IdempotencyError::Corrupt("no plaintext"))?;
        let secret = std::str::from_utf8(plaintext.as_ref()).map_err(|_| IdempotencyError::Corrupt("not UTF-8"))?;
        let body = splice(&answer.body, at, secret)
            .ok_or(IdempotencyError::Corrupt("the secret's place is not in the body"))?;
        Ok(StoredAnswer { status: answer.status, body })
    }
}

/// `body` without `secret`, and where it was (a byte offset): what is stored.
fn cut(body: &str, secret: &str) -> Option<(String, usize)> {
    if secret.is_empty() {
        return None;
    }
    let at = body.find(secret)?;
    Some((format!("{}{}", &body[..at], &body[at + secret.len()..]), at))
}

/// `secret` put back at `at` into a body [`cut`] made: the answer exactly as first given.
fn splice(body: &str, at: usize, secret: &str) -> Option<String> {
    body.is_char_boundary(at).then(|| format!("{}{secret}{}", &body[..at], &body[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_stored_apart_and_put_back_byte_for_byte() {
        // GIVEN an answer that shows a secret once
        let body = r#"{"id":"wh_1","name":"é","secret":"whsec_ab+/cd=="}"#;
        // WHEN it is cut out for storage
        let (stored, at) = cut(body, "whsec_ab+/cd==").unwrap_or_default();
        // THEN the stored body no longer holds it, and splicing it back gives the same bytes
        assert!(!stored.contains("whsec_"));
        assert_eq!(splice(&stored, at, "whsec_ab+/cd==").as_deref(), Some(body));
    }

    #[test]
    fn nothing_is_cut_when_the_secret_is_missing_and_nothing_spliced_off_a_char_boundary() {
        assert_eq!(cut(r#"{"id":"wh_1"}"#, "whsec_x"), None);
        assert_eq!(cut(r#"{"id":"wh_1"}"#, ""), None);
        assert_eq!(splice("é", 1, "x"), None);
        assert_eq!(splice("ab", 9, "x"), None);
    }
}
