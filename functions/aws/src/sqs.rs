//! SQS adapters.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;

/// Failure to hand a message to SQS; the caller keeps the record for a retry.
#[derive(Debug, thiserror::Error)]
#[error("sqs {operation} failed")]
pub struct SqsError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The ingest dead-letter queue, where the matcher puts events it refuses, with the reason.
#[derive(Debug, Clone)]
pub struct SqsIngestDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsIngestDeadLetters {
    pub fn new(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    /// Sends `body` unchanged, with `reason` (a stable code) and `detail` attributes.
    pub async fn reject(&self, body: &str, reason: &str, detail: &str) -> Result<(), SqsError> {
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(if v.is_empty() { "-" } else { v })
                .build()
        };
        let reason = attr(reason).map_err(|e| SqsError { operation: "SendMessage", source: e.into() })?;
        let detail =
            attr(&truncate(detail, 1024)).map_err(|e| SqsError { operation: "SendMessage", source: e.into() })?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("reason", reason)
            .message_attributes("detail", detail)
            .send()
            .await
            .map_err(|e| SqsError { operation: "SendMessage", source: e.into() })?;
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The delivery queue seen from its consumer: retries are scheduled by changing a received
/// message's visibility, never by sleeping inside the function.
#[derive(Debug, Clone)]
pub struct SqsRetryScheduler {
    client: Client,
    queue_url: String,
}

impl SqsRetryScheduler {
    pub fn new(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    /// Makes the received message visible again in `seconds` (0..=43200).
    pub async fn retry_in(&self, receipt_handle: &str, seconds: u64) -> Result<(), SqsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds.min(43_200)).unwrap_or(43_200))
            .send()
            .await
            .map_err(|e| SqsError { operation: "ChangeMessageVisibility", source: e.into() })?;
        Ok(())
    }
}

/// SendMessageBatch takes at most 10 entries...
const MAX_BATCH_ENTRIES: usize = 10;
/// ...and at most 1 MiB of bodies in all (SQS's message size limit applies to the batch).
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// SQS delays a message by at most 15 minutes.
const MAX_DELAY_SECONDS: u32 = 900;
/// Entries SQS refused for a passing reason are sent again this many times in the same call.
const SEND_ATTEMPTS: usize = 3;

/// A queue that takes many messages at once: the ingest queue (from the API) or the delivery
/// queue (from the matcher).
#[derive(Debug, Clone)]
pub struct SqsBatchSender {
    client: Client,
    queue_url: String,
}

impl SqsBatchSender {
    pub fn new(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    /// Sends every body, in as few `SendMessageBatch` calls as the limits allow. Returns the
    /// indexes (into `bodies`) that could not be sent; empty means all were.
    pub async fn send_all(&self, bodies: &[String]) -> Vec<usize> {
        self.send_all_delayed(bodies, &[]).await
    }

    /// As [`send_all`](Self::send_all), each body `i` delayed by `delays[i]` seconds (none
    /// when `delays` is shorter; SQS takes at most 900).
    pub async fn send_all_delayed(&self, bodies: &[String], delays: &[u32]) -> Vec<usize> {
        let mut failed = Vec::new();
        for chunk in chunks(bodies) {
            let mut pending = chunk;
            for attempt in 1..=SEND_ATTEMPTS {
                pending = self.send_chunk(bodies, delays, &pending).await;
                if pending.is_empty() {
                    break;
                }
                tracing::warn!(attempt, unsent = pending.len(), "SendMessageBatch left entries unsent");
            }
            failed.extend(pending);
        }
        failed
    }

    async fn send_chunk(&self, bodies: &[String], delays: &[u32], indexes: &[usize]) -> Vec<usize> {
        let entries: Result<Vec<_>, _> = indexes
            .iter()
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&bodies[*i])
                    .set_delay_seconds(delays.get(*i).map(|d| i32::try_from(*d.min(&MAX_DELAY_SECONDS)).unwrap_or(0)))
                    .build()
            })
            .collect();
        let Ok(entries) = entries else { return indexes.to_vec() };
        match self.client.send_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await {
            Ok(out) => out.failed().iter().filter_map(|f| f.id().parse().ok()).collect(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SendMessageBatch failed");
                indexes.to_vec()
            }
        }
    }
}

/// Groups indexes of `bodies` into batches within both SQS limits, in order.
fn chunks(bodies: &[String]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, body) in bodies.iter().enumerate() {
        let full = out.last().is_none_or(|c| c.len() == MAX_BATCH_ENTRIES || bytes + body.len() > MAX_BATCH_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += body.len();
        if let Some(current) = out.last_mut() {
            current.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_ten_entries_and_one_mebibyte() {
        let small: Vec<String> = (0..23).map(|i| i.to_string()).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);

        let big = "x".repeat(300 * 1024);
        let bodies = vec![big.clone(), big.clone(), big.clone(), big.clone(), "y".into()];
        let groups = chunks(&bodies);
        assert_eq!(groups, vec![vec![0, 1, 2], vec![3, 4]]);
        for g in groups {
            assert!(g.iter().map(|i| bodies[*i].len()).sum::<usize>() <= MAX_BATCH_BYTES);
        }
        assert!(chunks(&[]).is_empty());
    }
}
