//! Random identifiers and API key secrets: base62 from the OS random source.

/// `[0-9A-Za-z]`: API keys are `whk_` + 40 of these (SPEC §7).
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters in an API key secret after its prefix.
pub const API_KEY_CHARS: usize = 40;
pub const API_KEY_PREFIX: &str = "whk_";

/// The OS random source failed (it does not, on Lambda; but a key must never be guessable).
#[derive(Debug, thiserror::Error)]
#[error("no randomness available")]
pub struct RandomnessError;

/// `prefix` + `n` uniformly random base62 characters (rejection sampling, no modulo bias).
pub fn random_base62(prefix: &str, n: usize) -> Result<String, RandomnessError> {
    let mut out = String::with_capacity(prefix.len() + n);
    out.push_str(prefix);
    let mut buf = [0u8; 64];
    while out.len() < prefix.len() + n {
        getrandom::fill(&mut buf).map_err(|_| RandomnessError)?;
        // 248 = 4 * 62: bytes above it would favour the first characters.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == prefix.len() + n {
                break;
            }
            out.push(BASE62[usize::from(*b % 62)] as char);
        }
    }
    Ok(out)
}

/// A uniform draw from [0, 1), for retry jitter.
pub fn random_unit() -> Result<f64, RandomnessError> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|_| RandomnessError)?;
    Ok(f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0))
}

/// A new API key secret: `whk_` + 40 base62 characters.
pub fn new_api_key_secret() -> Result<String, RandomnessError> {
    random_base62(API_KEY_PREFIX, API_KEY_CHARS)
}

/// Whether `s` has the shape of an API key secret (checked before any lookup).
pub fn is_api_key_secret(s: &str) -> bool {
    s.strip_prefix(API_KEY_PREFIX)
        .is_some_and(|rest| rest.len() == API_KEY_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape_and_differ() -> Result<(), RandomnessError> {
        let a = new_api_key_secret()?;
        let b = new_api_key_secret()?;
        assert!(is_api_key_secret(&a), "{a}");
        assert_eq!(a.len(), 44);
        assert_ne!(a, b);
        Ok(())
    }

    #[test]
    fn malformed_secrets_are_recognised() {
        let ok = format!("whk_{}", "a".repeat(40));
        assert!(is_api_key_secret(&ok));
        for bad in [
            format!("whk_{}", "a".repeat(39)),
            format!("whk_{}", "a".repeat(41)),
            format!("whx_{}", "a".repeat(40)),
            format!("whk_{}-", "a".repeat(39)),
            String::new(),
        ] {
            assert!(!is_api_key_secret(&bad), "{bad}");
        }
    }
}
