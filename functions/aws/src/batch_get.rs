//! BatchGetItem of any number of keys: chunks of 100 (DynamoDB's limit per call), and the
//! `UnprocessedKeys` DynamoDB hands back under load re-requested after an exponential backoff
//! with full jitter, a bounded number of times. Re-requesting at once only adds to the
//! throttling that caused them.
//!
//! One helper for every table; it knows nothing of what the items mean.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

/// DynamoDB takes at most 100 keys per BatchGetItem.
pub const MAX_KEYS_PER_CALL: usize = 100;
/// Calls per chunk (the first included) before unprocessed keys are an error.
pub const MAX_ATTEMPTS: u32 = 6;
/// The first backoff's upper bound; each retry doubles it...
const BASE_BACKOFF: Duration = Duration::from_millis(25);
/// ...up to this, so the bounded attempts stay well within a function's timeout (< 2 s).
const MAX_BACKOFF: Duration = Duration::from_millis(800);

/// An item as DynamoDB returns it.
pub type Item = HashMap<String, AttributeValue>;

/// Why a batch read failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchGetError {
    /// The request could not be built or DynamoDB refused it.
    #[error("dynamodb BatchGetItem failed")]
    Request {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Keys were still unprocessed after every attempt (sustained throttling).
    #[error("{remaining} keys still unprocessed after {MAX_ATTEMPTS} BatchGetItem calls")]
    Unprocessed { remaining: usize },
}

/// The upper bound of the wait before retry `attempt` (1 for the first retry): exponential,
/// capped.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The wait before retry `attempt`, with full jitter: `unit` in [0, 1) of the ceiling.
pub fn jittered_backoff(attempt: u32, unit: f64) -> Duration {
    let unit = if unit.is_nan() { 0.0 } else { unit.clamp(0.0, 1.0) };
    backoff_ceiling(attempt).mul_f64(unit)
}

/// The wait before retry `attempt`, drawn now.
pub fn backoff(attempt: u32) -> Duration {
    jittered_backoff(attempt, webhooks_core::ids::random_unit().unwrap_or(0.5))
}

/// Every item of `table` under `keys` that exists (any order), read strongly consistent when
/// `consistent`.
pub async fn batch_get_all(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, BatchGetError> {
    let mut found = Vec::new();
    for chunk in keys.chunks(MAX_KEYS_PER_CALL) {
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .consistent_read(consistent)
            .build()
            .map_err(|e| BatchGetError::Request { source: e.into() })?;
        for attempt in 1..=MAX_ATTEMPTS {
            let out = client
                .batch_get_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| BatchGetError::Request { source: e.into() })?;
            found.extend(out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
            match out.unprocessed_keys.and_then(|mut u| u.remove(table)).filter(|k| !k.keys().is_empty()) {
                None => break,
                Some(_) if attempt == MAX_ATTEMPTS => {
                    return Err(BatchGetError::Unprocessed { remaining: chunk.len() });
                }
                Some(rest) => {
                    tracing::warn!(
                        attempt,
                        unprocessed = rest.keys().len(),
                        table,
                        "BatchGetItem left keys unprocessed; backing off"
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                    pending = rest;
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let ceilings: Vec<u128> = (1..=8).map(|a| backoff_ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [25, 50, 100, 200, 400, 800, 800, 800]);
        assert_eq!(backoff_ceiling(0), BASE_BACKOFF);
        assert_eq!(backoff_ceiling(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn jitter_spans_zero_to_the_ceiling() {
        assert_eq!(jittered_backoff(3, 0.0), Duration::ZERO);
        assert_eq!(jittered_backoff(3, 0.5), Duration::from_millis(50));
        assert!(jittered_backoff(3, 0.999) < backoff_ceiling(3));
        assert_eq!(jittered_backoff(3, f64::NAN), Duration::ZERO);
        assert_eq!(jittered_backoff(3, 7.0), backoff_ceiling(3));
    }

    #[test]
    fn the_bounded_attempts_stay_short() {
        let worst: Duration = (1..MAX_ATTEMPTS).map(backoff_ceiling).sum();
        assert!(worst < Duration::from_secs(2), "{worst:?}");
    }
}
