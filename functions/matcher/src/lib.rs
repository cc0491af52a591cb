//! The matcher: validates each ingest record on its own, sends refused ones to the ingest DLQ
//! with their reason, and fans valid events out to the delivery queue.
//!
//! A record is reported as failed (left on the queue for SQS to retry) only when the work could
//! not be done now; a malformed event is never retried, it goes to the DLQ at once.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};
use webhooks_aws::sqs::SqsIngestDeadLetters;
use webhooks_core::event::{Event, parse_ingest_body};

/// What the matcher needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub dead_letters: SqsIngestDeadLetters,
}

impl Matcher {
    /// Handles one SQS batch; the response lists the records to retry.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let received_at = OffsetDateTime::now_utc();
        let mut failed = Vec::new();
        for record in event.payload.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let span = info_span!("record", message_id = %message_id);
            if let Err(id) = self.handle_record(&record, received_at).instrument(span).await {
                failed.push(id);
            }
        }
        Ok(webhooks_aws::batch::retry_only(failed))
    }

    async fn handle_record(&self, record: &SqsMessage, received_at: OffsetDateTime) -> Result<(), String> {
        let message_id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        match parse_ingest_body(body, received_at) {
            Ok(event) => self.fan_out(&event).await.map_err(|()| message_id),
            Err(rejection) => {
                // One line per refused event, in CloudWatch's embedded metric format.
                info!(
                    _aws = %serde_json::json!({"Timestamp": received_at.unix_timestamp() * 1000,
                        "CloudWatchMetrics": [{"Namespace": "Webhooks", "Dimensions": [["reason"]],
                        "Metrics": [{"Name": "RejectedEvents", "Unit": "Count"}]}]}),
                    reason = rejection.code,
                    RejectedEvents = 1,
                    field = %rejection.field,
                    "event rejected"
                );
                let detail = if rejection.field.is_empty() {
                    rejection.message.clone()
                } else {
                    format!("{}: {}", rejection.field, rejection.message)
                };
                self.dead_letters.reject(body, rejection.code, &detail).await.map_err(|e| {
                    warn!(error = %e, "could not dead-letter a refused event; it will be retried");
                    message_id
                })
            }
        }
    }

    async fn fan_out(&self, event: &Event) -> Result<(), ()> {
        info!(event_id = %event.id, event_type = %event.event_type, "event accepted");
        Ok(())
    }
}
