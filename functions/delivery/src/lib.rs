//! The delivery function: sends each queued (event, webhook) pair as a signed POST.
//!
//! A record it cannot decode is poison: it is reported as failed and never deleted, so SQS
//! moves it to the delivery DLQ after `maxReceiveCount` receives, where it stays visible and
//! re-drivable.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use tracing::{error, info_span};
use webhooks_core::message::DeliveryQueueMessage;

/// What delivery needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct Deliverer {}

impl Deliverer {
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let mut failed = Vec::new();
        for record in event.payload.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let _span = info_span!("record", message_id = %message_id).entered();
            match DeliveryQueueMessage::from_json(record.body.as_deref().unwrap_or_default()) {
                Ok(DeliveryQueueMessage::Delivery(_)) => {
                    error!("delivery is not available in this build; message kept");
                    failed.push(message_id);
                }
                Err(e) => {
                    error!(error = %e, "undecodable delivery message; left for the DLQ");
                    failed.push(message_id);
                }
            }
        }
        Ok(webhooks_aws::batch::retry_only(failed))
    }
}
