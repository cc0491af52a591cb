//! Signing and identifiers (SPEC §5): the deterministic `webhook-id` of an event, delivery ids,
//! signing keys (`v1` HMAC secrets and `v1a` Ed25519 key pairs, SPEC §10) and the
//! `webhook-signature` header of the Standard Webhooks specification, plus the hashing and
//! comparison used for API keys.
//!
//! Secrets and private keys never appear in `Debug` output. Only `generate` touches the OS (for randomness);
//! everything else is a pure function.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::Signer as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::SignatureScheme;

/// Prefix of a signing secret, as Standard Webhooks defines it.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of a `webhook-id` (the Standard Webhooks examples use it; receivers only compare).
pub const MESSAGE_ID_PREFIX: &str = "msg_";
/// Prefix of a delivery id, so logs tell it apart from a message id.
pub const DELIVERY_ID_PREFIX: &str = "dlv_";
/// Bytes of a generated secret: 256 bits, the HMAC-SHA256 block-size sweet spot.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Shortest key accepted: Standard Webhooks asks for 24 to 64 bytes (its own example has 24).
pub const MIN_SECRET_BYTES: usize = 24;
/// Longest key accepted, per the same recommendation.
pub const MAX_SECRET_BYTES: usize = 64;
/// Characters of base32 in ids: 26 × 5 = 130 bits, collision-free in practice.
const ID_CHARS: usize = 26;
/// Crockford's base32 alphabet, lowercased: no i, l, o, u, so ids survive being read aloud.
const CROCKFORD_LOWER: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Signature scheme tag of Standard Webhooks' symmetric signatures.
const SIGNATURE_VERSION: &str = "v1";
/// Prefix of an Ed25519 private key, as Standard Webhooks writes asymmetric secret keys. This
/// form exists only to be encrypted: it is never shown.
pub const PRIVATE_KEY_PREFIX: &str = "whsk_";
/// Prefix of an Ed25519 public key, as Standard Webhooks writes it (the webhook's `public_key`).
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Bytes of an Ed25519 private key (the RFC 8032 seed) and of a public key.
pub const ED25519_KEY_BYTES: usize = 32;

/// Decodes secrets with or without `=` padding: other tools print both.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// The `webhook-id` of an event: `msg_` + 26 characters of lowercase Crockford base32 of the
/// first 130 bits of SHA-256(`company_id` ‖ 0x00 ‖ `source` ‖ 0x00 ‖ `id`).
///
/// The same (company, source, id) always gives the same value, for every attempt, replay,
/// redelivery and webhook, so receivers can de-duplicate on it; it also keys the matcher's
/// de-duplication, so one company's events can never suppress another's (SPEC §2, §5). The
/// 0x00 separators keep ("a", "bc") and ("ab", "c") apart (ids never contain 0x00).
pub fn webhook_message_id(company_id: &str, source: &str, id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(company_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(source.as_bytes());
    hasher.update([0u8]);
    hasher.update(id.as_bytes());
    format!("{MESSAGE_ID_PREFIX}{}", crockford_base32(&hasher.finalize(), ID_CHARS))
}

/// The id of one delivery of a message to a webhook: `dlv_` + 26 characters of base32 of
/// SHA-256(`webhook_message_id` ‖ 0x00 ‖ `webhook_id` ‖ 0x00 ‖ `generation` as 4 big-endian bytes).
///
/// Deterministic, so a redelivered SQS message finds the attempts already recorded under it;
/// `generation` is raised for a replay or redelivery, which starts a fresh attempt budget.
pub fn delivery_id(webhook_message_id: &str, webhook_id: &str, generation: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(webhook_message_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(webhook_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(generation.to_be_bytes());
    format!("{DELIVERY_ID_PREFIX}{}", crockford_base32(&hasher.finalize(), ID_CHARS))
}

/// The first `chars` × 5 bits of `bytes`, most significant bit first, in lowercase Crockford
/// base32. `chars` must not ask for more bits than `bytes` holds (missing bits read as 0).
fn crockford_base32(bytes: &[u8], chars: usize) -> String {
    (0..chars)
        .map(|i| {
            let value = (0..5).fold(0usize, |acc, b| {
                let bit = i * 5 + b;
                let set = bytes.get(bit / 8).is_some_and(|byte| byte & (0x80 >> (bit % 8)) != 0);
                (acc << 1) | usize::from(set)
            });
            char::from(CROCKFORD_LOWER[value])
        })
        .collect()
}

/// Why a signing secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a signing secret starts with `whsec_`")]
    MissingPrefix,
    #[error("a signing secret is `whsec_` followed by standard base64")]
    InvalidBase64(#[source] base64::DecodeError),
    #[error("a signing secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {0}")]
    InvalidLength(usize),
    #[error("the operating system gave no random bytes")]
    Randomness(#[source] getrandom::Error),
    #[error("a signing key starts with `whsec_` or `whsk_`")]
    UnknownPrefix,
    #[error("an Ed25519 private key holds {ED25519_KEY_BYTES} bytes, not {0}")]
    InvalidKeyLength(usize),
}

/// A webhook signing secret: the HMAC key, written `whsec_<base64>`.
///
/// `Display` gives the `whsec_` form (to show once, or to encrypt); `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// Parses `whsec_<base64>` (padding optional) into the key bytes: 24 to 64 bytes.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let encoded = s.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = LENIENT_BASE64.decode(encoded).map_err(SecretError::InvalidBase64)?;
        Self::from_bytes(key)
    }

    /// A secret with these key bytes: 24 to 64 of them.
    pub fn from_bytes(key: Vec<u8>) -> Result<Self, SecretError> {
        if (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            Ok(Self { key })
        } else {
            Err(SecretError::InvalidLength(key.len()))
        }
    }

    /// A new secret of 32 bytes from the operating system's random source.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        getrandom::fill(&mut key).map_err(SecretError::Randomness)?;
        Ok(Self { key })
    }

    /// The HMAC key. Handle with care: this is the secret itself.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// `v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`.
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            unreachable!("HMAC-SHA256 takes keys of any length")
        };
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("{SIGNATURE_VERSION},{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl FromStr for SigningSecret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(whsec_<redacted>)")
    }
}

impl PartialEq for SigningSecret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.key, &other.key)
    }
}

impl Eq for SigningSecret {}

/// A `v1a` signing key: an Ed25519 private key, written `whsk_<base64 of the 32-byte seed>`
/// only to be encrypted. What receivers get is its public key, `whpk_<base64>`.
///
/// `Debug` never shows the private key.
#[derive(Clone)]
pub struct Ed25519Key {
    key: ed25519_dalek::SigningKey,
}

impl Ed25519Key {
    /// Parses `whsk_<base64>` (padding optional): 32 bytes.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let encoded = s.strip_prefix(PRIVATE_KEY_PREFIX).ok_or(SecretError::UnknownPrefix)?;
        let seed = LENIENT_BASE64.decode(encoded).map_err(SecretError::InvalidBase64)?;
        let seed: [u8; ED25519_KEY_BYTES] =
            seed.as_slice().try_into().map_err(|_| SecretError::InvalidKeyLength(seed.len()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key pair of this RFC 8032 private key (seed).
    pub fn from_seed(seed: &[u8; ED25519_KEY_BYTES]) -> Self {
        Self { key: ed25519_dalek::SigningKey::from_bytes(seed) }
    }

    /// A new key pair from the operating system's random source.
    pub fn generate() -> Result<Self, SecretError> {
        let mut seed = [0u8; ED25519_KEY_BYTES];
        getrandom::fill(&mut seed).map_err(SecretError::Randomness)?;
        let key = Self::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// `whpk_` + base64 of the 32-byte public key: what receivers verify with.
    pub fn public_key(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(self.key.verifying_key().as_bytes()))
    }

    /// The 64-byte Ed25519 signature of `message` (RFC 8032, deterministic).
    fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// `v1a,<base64 Ed25519 signature of "{msg_id}.{timestamp}.{body}">`.
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut message = format!("{msg_id}.{timestamp}.").into_bytes();
        message.extend_from_slice(body);
        let tag = SignatureScheme::V1a.as_str();
        format!("{tag},{}", STANDARD.encode(self.sign_message(&message)))
    }
}

impl fmt::Display for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PRIVATE_KEY_PREFIX}{}", STANDARD.encode(self.key.to_bytes()))
    }
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Key({})", self.public_key())
    }
}

impl PartialEq for Ed25519Key {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.key.to_bytes(), &other.key.to_bytes())
    }
}

impl Eq for Ed25519Key {}

/// A key that signs a webhook's deliveries, of either scheme. Its text form (`whsec_…` or
/// `whsk_…`) is what gets encrypted, so one stored list holds both kinds (a switch of scheme
/// keeps the old kind signing through its grace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// `v1`: an HMAC secret.
    Secret(SigningSecret),
    /// `v1a`: an Ed25519 private key.
    Ed25519(Ed25519Key),
}

impl SigningKey {
    /// Parses either text form, told apart by its prefix.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if s.starts_with(SECRET_PREFIX) {
            SigningSecret::parse(s).map(Self::Secret)
        } else if s.starts_with(PRIVATE_KEY_PREFIX) {
            Ed25519Key::parse(s).map(Self::Ed25519)
        } else {
            Err(SecretError::UnknownPrefix)
        }
    }

    /// A new key of `scheme` from the operating system's random source.
    pub fn generate(scheme: SignatureScheme) -> Result<Self, SecretError> {
        match scheme {
            SignatureScheme::V1 => SigningSecret::generate().map(Self::Secret),
            SignatureScheme::V1a => Ed25519Key::generate().map(Self::Ed25519),
        }
    }

    /// The scheme this key signs with.
    pub fn scheme(&self) -> SignatureScheme {
        match self {
            Self::Secret(_) => SignatureScheme::V1,
            Self::Ed25519(_) => SignatureScheme::V1a,
        }
    }

    /// The public key (`whpk_…`) of a `v1a` key; `None` for a secret, which has none.
    pub fn public_key(&self) -> Option<String> {
        match self {
            Self::Secret(_) => None,
            Self::Ed25519(key) => Some(key.public_key()),
        }
    }

    /// What the owner is shown once (on create, rotate, or a switch to `v1`): a `v1` secret.
    /// `None` for a `v1a` private key, which never leaves encryption.
    pub fn shown_secret(&self) -> Option<String> {
        match self {
            Self::Secret(secret) => Some(secret.to_string()),
            Self::Ed25519(_) => None,
        }
    }

    /// One `webhook-signature` entry: `v1,<HMAC>` or `v1a,<Ed25519>`.
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        match self {
            Self::Secret(secret) => secret.sign(msg_id, timestamp, body),
            Self::Ed25519(key) => key.sign(msg_id, timestamp, body),
        }
    }
}

impl From<SigningSecret> for SigningKey {
    fn from(secret: SigningSecret) -> Self {
        Self::Secret(secret)
    }
}

impl From<Ed25519Key> for SigningKey {
    fn from(key: Ed25519Key) -> Self {
        Self::Ed25519(key)
    }
}

impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(secret) => secret.fmt(f),
            Self::Ed25519(key) => key.fmt(f),
        }
    }
}

/// The `webhook-signature` header: one entry per key (`v1,<HMAC>` or `v1a,<Ed25519>`),
/// space-separated, in the order given (during a rotation or a switch of scheme: the new key
/// and the old one, so receivers holding either can verify). No keys give an empty string.
pub fn signature_header(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|k| k.sign(msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only (not on where
/// they first differ): for comparing key hashes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Lowercase hex SHA-256 of `s`: how API keys are stored and looked up.
pub fn sha256_hex(s: &str) -> String {
    use std::fmt::Write as _;
    Sha256::digest(s.as_bytes()).iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The published Standard Webhooks test vector.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signature_matches_the_standard_webhooks_vector() -> TestResult {
        // GIVEN the specification's secret, id, timestamp and body
        let secret = SigningSecret::parse(VECTOR_SECRET)?;
        // WHEN the header is computed
        let header = signature_header(&[secret.into()], VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes());
        // THEN it is the published signature
        assert_eq!(header, VECTOR_SIGNATURE);
        Ok(())
    }

    #[test]
    fn rotation_signs_with_every_secret_in_order() -> TestResult {
        // GIVEN two secrets
        let old = SigningSecret::parse(VECTOR_SECRET)?;
        let new = SigningSecret::from_bytes(vec![7u8; 32])?;
        // WHEN the header is computed
        let keys = [new.clone().into(), old.into()];
        let header = signature_header(&keys, VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes());
        let parts: Vec<&str> = header.split(' ').collect();
        // THEN there is one entry per secret, space-separated, in the order given
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], VECTOR_SIGNATURE);
        assert!(parts[0].starts_with("v1,") && parts[0] != VECTOR_SIGNATURE);
        assert_eq!(parts[0], new.sign(VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()));
        // AND no secrets give an empty header
        assert_eq!(signature_header(&[], VECTOR_MSG_ID, VECTOR_TIMESTAMP, b"{}"), "");
        Ok(())
    }

    #[test]
    fn signature_covers_id_timestamp_and_body() -> TestResult {
        // GIVEN the vector WHEN any signed part changes THEN the signature changes
        let secret = [SigningSecret::parse(VECTOR_SECRET)?.into()];
        let body = VECTOR_BODY.as_bytes();
        let variants = [
            signature_header(&secret, "msg_other", VECTOR_TIMESTAMP, body),
            signature_header(&secret, VECTOR_MSG_ID, VECTOR_TIMESTAMP + 1, body),
            signature_header(&secret, VECTOR_MSG_ID, VECTOR_TIMESTAMP, br#"{"test":2432232314}"#),
        ];
        for v in variants {
            assert_ne!(v, VECTOR_SIGNATURE);
        }
        Ok(())
    }

    /// RFC 8032 §7.1, TEST 1 and TEST 3: (private key, public key, message, signature), hex.
    const RFC8032_VECTORS: [(&str, &str, &str, &str); 2] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
    }

    fn seed(hex: &str) -> Result<[u8; 32], Box<dyn std::error::Error>> {
        Ok(unhex(hex).as_slice().try_into()?)
    }

    #[test]
    fn ed25519_matches_the_rfc_8032_vectors() -> TestResult {
        for (private, public, message, signature) in RFC8032_VECTORS {
            // GIVEN an RFC 8032 private key
            let key = Ed25519Key::from_seed(&seed(private)?);
            // WHEN its public key is shown and the message signed
            // THEN both are the published ones
            assert_eq!(key.public_key(), format!("whpk_{}", STANDARD.encode(unhex(public))));
            assert_eq!(key.sign_message(&unhex(message)).to_vec(), unhex(signature));
        }
        Ok(())
    }

    #[test]
    fn v1a_signs_the_standard_webhooks_string_with_ed25519() -> TestResult {
        // GIVEN the RFC 8032 TEST 1 key and the Standard Webhooks vector's id, time and body
        let key = Ed25519Key::from_seed(&seed(RFC8032_VECTORS[0].0)?);
        // WHEN the header is computed
        let header = signature_header(&[key.clone().into()], VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes());
        // THEN it is `v1a,` and the base64 Ed25519 signature of "{id}.{timestamp}.{body}"
        let signed = format!("{VECTOR_MSG_ID}.{VECTOR_TIMESTAMP}.{VECTOR_BODY}");
        assert_eq!(header, format!("v1a,{}", STANDARD.encode(key.sign_message(signed.as_bytes()))));
        let signature = header.strip_prefix("v1a,").map(|b| STANDARD.decode(b)).transpose()?.unwrap_or_default();
        assert_eq!(signature.len(), 64);
        // AND it verifies under the public key, and not for another body
        let public =
            ed25519_dalek::VerifyingKey::from_bytes(&seed(RFC8032_VECTORS[0].1)?).map_err(|e| e.to_string())?;
        let signature = ed25519_dalek::Signature::from_slice(&signature).map_err(|e| e.to_string())?;
        assert!(public.verify_strict(signed.as_bytes(), &signature).is_ok());
        assert!(public.verify_strict(b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{}", &signature).is_err());
        Ok(())
    }

    #[test]
    fn a_header_carries_both_schemes_in_the_order_given() -> TestResult {
        // GIVEN a new v1a key and the v1 secret it replaces
        let new = SigningKey::generate(SignatureScheme::V1a)?;
        let old = SigningKey::parse(VECTOR_SECRET)?;
        // WHEN the header is computed
        let header = signature_header(&[new, old], VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes());
        let parts: Vec<&str> = header.split(' ').collect();
        // THEN the v1a entry comes first, then the v1 one, unchanged
        assert_eq!(parts.len(), 2, "{header}");
        assert!(parts[0].starts_with("v1a,"), "{header}");
        assert_eq!(parts[1], VECTOR_SIGNATURE);
        Ok(())
    }

    #[test]
    fn signing_key_parsing_table() -> TestResult {
        let seed = STANDARD.encode(seed(RFC8032_VECTORS[0].0)?);
        // (case, input, accepted scheme or the error)
        let cases: Vec<(&str, String, Result<SignatureScheme, &str>)> = vec![
            ("v1 secret", VECTOR_SECRET.to_owned(), Ok(SignatureScheme::V1)),
            ("v1a key", format!("whsk_{seed}"), Ok(SignatureScheme::V1a)),
            ("v1a key unpadded", format!("whsk_{}", seed.trim_end_matches('=')), Ok(SignatureScheme::V1a)),
            ("public key", format!("whpk_{seed}"), Err("prefix")),
            ("no prefix", seed.clone(), Err("prefix")),
            ("31 bytes", format!("whsk_{}", STANDARD.encode([1u8; 31])), Err("key length")),
            ("64 bytes", format!("whsk_{}", STANDARD.encode([1u8; 64])), Err("key length")),
            ("not base64", "whsk_not base64!".to_owned(), Err("base64")),
        ];
        for (case, input, expected) in cases {
            // GIVEN a candidate key WHEN parsed THEN it is accepted as its scheme or refused
            let got = SigningKey::parse(&input).map(|k| k.scheme()).map_err(|e| match e {
                SecretError::UnknownPrefix | SecretError::MissingPrefix => "prefix",
                SecretError::InvalidBase64(_) => "base64",
                SecretError::InvalidKeyLength(_) => "key length",
                SecretError::InvalidLength(_) => "length",
                SecretError::Randomness(_) => "randomness",
            });
            assert_eq!(got, expected, "{case}");
        }
        Ok(())
    }

    #[test]
    fn ed25519_key_display_round_trips_and_debug_shows_only_the_public_key() -> TestResult {
        // GIVEN a generated key pair
        let key = Ed25519Key::generate()?;
        let text = key.to_string();
        // WHEN written and parsed back THEN it is the same key, of the documented shapes
        assert_eq!(SigningKey::parse(&text)?, SigningKey::Ed25519(key.clone()));
        assert_eq!(text.len(), PRIVATE_KEY_PREFIX.len() + 44);
        assert_eq!(key.public_key().len(), PUBLIC_KEY_PREFIX.len() + 44);
        assert_ne!(Ed25519Key::generate()?, key);
        // AND it is never shown as a secret, only by its public key
        assert_eq!(SigningKey::from(key.clone()).shown_secret(), None);
        assert_eq!(SigningKey::from(key.clone()).public_key(), Some(key.public_key()));
        let secret = SigningKey::generate(SignatureScheme::V1)?;
        assert_eq!((secret.shown_secret(), secret.public_key()), (Some(secret.to_string()), None));
        // AND Debug shows the public key, never the private one
        let debug = format!("{:?}", SigningKey::from(key.clone()));
        assert!(!debug.contains(&text[PRIVATE_KEY_PREFIX.len()..]), "{debug}");
        assert!(debug.contains(&key.public_key()), "{debug}");
        Ok(())
    }

    #[test]
    fn secret_parsing_table() {
        // (case, input, accepted key length or the error)
        let cases: Vec<(&str, String, Result<usize, &str>)> = vec![
            ("vector, 24 bytes", VECTOR_SECRET.to_owned(), Ok(24)),
            ("32 bytes padded", format!("whsec_{}", STANDARD.encode([1u8; 32])), Ok(32)),
            ("32 bytes unpadded", format!("whsec_{}", STANDARD.encode([1u8; 32]).trim_end_matches('=')), Ok(32)),
            ("64 bytes", format!("whsec_{}", STANDARD.encode([1u8; 64])), Ok(64)),
            ("no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(), Err("prefix")),
            ("wrong prefix case", "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(), Err("prefix")),
            ("empty key", "whsec_".to_owned(), Err("length")),
            ("23 bytes", format!("whsec_{}", STANDARD.encode([1u8; 23])), Err("length")),
            ("65 bytes", format!("whsec_{}", STANDARD.encode([1u8; 65])), Err("length")),
            ("not base64", "whsec_not base64!".to_owned(), Err("base64")),
            ("url-safe alphabet", format!("whsec_{}", "-_".repeat(16)), Err("base64")),
        ];
        for (case, input, expected) in cases {
            // GIVEN a candidate secret WHEN parsed THEN it is accepted or refused for this reason
            let got = SigningSecret::parse(&input).map(|s| s.key().len()).map_err(|e| match e {
                SecretError::MissingPrefix => "prefix",
                SecretError::InvalidBase64(_) => "base64",
                SecretError::InvalidLength(_) => "length",
                SecretError::Randomness(_) => "randomness",
                SecretError::UnknownPrefix | SecretError::InvalidKeyLength(_) => "not a secret error",
            });
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn secret_display_round_trips_and_debug_redacts() -> TestResult {
        // GIVEN a parsed and a generated secret
        let parsed = SigningSecret::parse(VECTOR_SECRET)?;
        let generated = SigningSecret::generate()?;
        // WHEN displayed THEN the whsec_ form parses back to the same key
        assert_eq!(parsed.to_string(), VECTOR_SECRET);
        assert_eq!(generated.to_string().parse::<SigningSecret>()?, generated);
        assert_eq!(generated.key().len(), GENERATED_SECRET_BYTES);
        assert_eq!(generated.to_string().len(), SECRET_PREFIX.len() + 44);
        // AND Debug shows nothing of the key
        for secret in [&parsed, &generated] {
            let debug = format!("{secret:?}");
            assert!(!debug.contains(&secret.to_string()[SECRET_PREFIX.len()..]), "{debug}");
            assert_eq!(debug, "SigningSecret(whsec_<redacted>)");
        }
        Ok(())
    }

    #[test]
    fn generated_secrets_differ() -> TestResult {
        // GIVEN two generated secrets THEN they differ (32 random bytes each)
        assert_ne!(SigningSecret::generate()?, SigningSecret::generate()?);
        Ok(())
    }

    #[test]
    fn message_id_shape_and_determinism() {
        // GIVEN (company, source, id) triples, the same (source, id) in two companies among them
        let triples = [
            ("acme", "app/companies/acme/projects/p1", "evt-8f2c"),
            ("globex", "app/companies/acme/projects/p1", "evt-8f2c"),
            ("acme", "", ""),
            ("acme", "a", "bc"),
            ("acme", "ab", "c"),
            ("acmea", "", "bc"),
            ("acme", "src", "ü-unicode-✓"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (company, source, id) in triples {
            // WHEN the webhook-id is derived
            let got = webhook_message_id(company, source, id);
            // THEN it is msg_ + 26 chars of the lowercase Crockford alphabet, stable and distinct
            let body = got.strip_prefix("msg_").unwrap_or_default();
            assert_eq!(body.len(), 26, "{got}");
            assert!(body.bytes().all(|b| CROCKFORD_LOWER.contains(&b)), "{got}");
            assert_eq!(got, webhook_message_id(company, source, id));
            assert!(seen.insert(got), "collision for {company:?}/{source:?}/{id:?}");
        }
    }

    #[test]
    fn message_id_is_the_documented_derivation() {
        // GIVEN the SHA-256 of company, NUL, source, NUL and id, written out as a string of bits
        let digest = Sha256::digest(b"acme\0app/companies/acme/projects/p1\0evt-8f2c");
        let bits: String = digest.iter().map(|b| format!("{b:08b}")).collect();
        // WHEN its first 130 bits are read 5 at a time into the alphabet
        let expected: String = bits.as_bytes()[..130]
            .chunks(5)
            .map(|group| {
                let index = group.iter().fold(0usize, |acc, bit| (acc << 1) | usize::from(*bit == b'1'));
                char::from(CROCKFORD_LOWER[index])
            })
            .collect();
        // THEN that is the webhook-id after `msg_`
        assert_eq!(webhook_message_id("acme", "app/companies/acme/projects/p1", "evt-8f2c"), format!("msg_{expected}"));
    }

    #[test]
    fn base32_reads_bits_most_significant_first() {
        // GIVEN byte patterns with known 5-bit groups
        let cases: [(&[u8], usize, &str); 5] = [
            (&[0x00, 0x00], 3, "000"),
            (&[0xff, 0xff], 3, "zzz"),
            (&[0b0000_1000, 0b1000_0110], 3, "123"),
            (&[0b1000_0010], 2, "g8"),
            (&[0xff], 3, "zw0"),
        ];
        for (bytes, chars, expected) in cases {
            // WHEN encoded THEN each char is the next 5 bits, missing bits reading as 0
            assert_eq!(crockford_base32(bytes, chars), expected, "{bytes:?}");
        }
    }

    #[test]
    fn delivery_id_is_deterministic_and_separates_its_inputs() {
        // GIVEN a message, webhook and generation
        let base = delivery_id("msg_a", "wh_1", 0);
        // WHEN any input changes THEN the id changes; WHEN none does THEN it is the same
        assert_eq!(base, delivery_id("msg_a", "wh_1", 0));
        assert!(base.starts_with("dlv_") && base.len() == 4 + 26, "{base}");
        let others = [
            delivery_id("msg_b", "wh_1", 0),
            delivery_id("msg_a", "wh_2", 0),
            delivery_id("msg_a", "wh_1", 1),
            delivery_id("msg_", "awh_1", 0),
        ];
        for other in others {
            assert_ne!(other, base);
        }
    }

    #[test]
    fn constant_time_eq_table() {
        // (a, b, equal)
        let cases: [(&[u8], &[u8], bool); 6] = [
            (b"", b"", true),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"", b"a", false),
            (b"Abc", b"abc", false),
        ];
        for (a, b, expected) in cases {
            // GIVEN two byte strings WHEN compared THEN equal exactly when identical
            assert_eq!(constant_time_eq(a, b), expected, "{a:?} {b:?}");
        }
    }

    #[test]
    fn sha256_hex_known_answers() {
        // GIVEN the FIPS 180 examples WHEN hashed THEN lowercase hex of the known digests
        let cases = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ];
        for (input, expected) in cases {
            assert_eq!(sha256_hex(input), expected);
        }
    }
}
