//! Wiring: clients and settings built once per execution environment, then the SQS batches
//! handled.

use delivery::{Deliverer, DeliveryConfig};
use lambda_runtime::{LambdaEvent, service_fn};
use webhooks_aws::config::{optional, required};
use webhooks_aws::dynamodb::DynamoDbSubscriptions;
use webhooks_aws::http::HttpSender;
use webhooks_aws::kms::KmsSecretBox;
use webhooks_aws::sns::SnsAlerts;
use webhooks_aws::sqs::{SqsBatchSender, SqsRetryScheduler};
use webhooks_aws::state::DynamoDbDeliveryState;
use webhooks_core::ssrf::AllowedTargets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    webhooks_aws::telemetry::init();
    let sdk = webhooks_aws::sdk_config().await;
    let config = DeliveryConfig::from_env()?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let subscriptions_table = required("SUBSCRIPTIONS_TABLE")?;
    let queue_url = required("DELIVERY_QUEUE_URL")?;
    let allowed = AllowedTargets::parse(&optional("WEBHOOKS_ALLOWED_TARGETS").unwrap_or_default())?;
    let deliverer = Deliverer {
        subscriptions: DynamoDbSubscriptions::new(dynamodb.clone(), subscriptions_table.clone()),
        state: DynamoDbDeliveryState::new(dynamodb, subscriptions_table, required("HEALTH_TABLE")?, required("DELIVERIES_TABLE")?),
        retries: SqsRetryScheduler::new(sqs.clone(), queue_url.clone()),
        queue: SqsBatchSender::new(sqs, queue_url),
        alerts: optional("ALERTS_TOPIC_ARN").map(|arn| SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), arn)),
        secrets: KmsSecretBox::new(aws_sdk_kms::Client::new(&sdk), required("SIGNING_KEY_ID")?),
        sender: HttpSender::new(config.timeout, allowed)?,
        config,
    };
    let deliverer = &deliverer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| webhooks_aws::timing::invocation(deliverer.handle(event))))
        .await
}
