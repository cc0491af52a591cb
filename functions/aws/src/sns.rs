//! Operational alerts on the SNS alerts topic, with message attributes so operators can route
//! them per customer (`owner_key_id`) and per `reason`.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::sqs::SqsError;

/// The alerts topic; without one (`ALERTS_TOPIC_ARN` unset) an alert is only logged.
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: Client,
    topic_arn: Option<String>,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: Option<String>) -> Self {
        Self { client, topic_arn }
    }

    /// Publishes `message` (JSON) with the `reason` and `owner_key_id` attributes.
    pub async fn publish(&self, message: &str, reason: &str, owner_key_id: &str) -> Result<(), SqsError> {
        let Some(topic_arn) = &self.topic_arn else {
            tracing::warn!(alert = message, "no alerts topic configured; alert logged only");
            return Ok(());
        };
        let attr = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build();
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| SqsError { operation: "Publish", source: e };
        self.client
            .publish()
            .topic_arn(topic_arn)
            .message(message)
            .message_attributes("reason", attr(reason).map_err(|e| failed(e.into()))?)
            .message_attributes("owner_key_id", attr(owner_key_id).map_err(|e| failed(e.into()))?)
            .send()
            .await
            .map_err(|e| failed(e.into()))?;
        Ok(())
    }
}
