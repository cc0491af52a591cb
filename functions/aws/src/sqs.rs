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
        let detail = attr(&truncate(detail, 1024))
            .map_err(|e| SqsError { operation: "SendMessage", source: e.into() })?;
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
