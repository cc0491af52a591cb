//! The function's wiring: the AWS implementations of the ports and the settings, built once
//! per execution environment from the environment the template gives the function. `main.rs`
//! runs it; the bench's throughput worker runs the same, so it measures this function as
//! deployed.

use webhooks_aws::attempts::DynamoDbAttempts;
use webhooks_aws::config::{optional, required};
use webhooks_aws::delivery_log::DynamoDbDeliveryLog;
use webhooks_aws::dynamodb::DynamoDbSubscriptions;
use webhooks_aws::health::DynamoDbHealth;
use webhooks_aws::http::HttpSender;
use webhooks_aws::kms::KmsSecretBox;
use webhooks_aws::parking::DynamoDbParking;
use webhooks_aws::sns::SnsAlerts;
use webhooks_aws::sqs::{SqsBatchSender, SqsRetryScheduler};
use webhooks_core::ports::SystemClock;
use webhooks_core::ssrf::AllowedTargets;

use crate::{Deliverer, DeliveryConfig, DeliveryPorts, ParkTurns};

/// Delivery on AWS: DynamoDB, SQS, SNS, KMS, and HTTP to the receivers.
#[derive(Debug, Clone, Copy)]
pub struct Aws;

impl DeliveryPorts for Aws {
    type Webhooks = DynamoDbSubscriptions;
    type Health = DynamoDbHealth;
    type Attempts = DynamoDbAttempts;
    type Parking = DynamoDbParking;
    type Log = DynamoDbDeliveryLog;
    type Queue = SqsBatchSender;
    type Retries = SqsRetryScheduler;
    type Alerts = SnsAlerts;
    type Secrets = KmsSecretBox;
    type Sender = HttpSender;
    type Clock = SystemClock;
}

/// Clients and settings from the environment (the template's `Environment` of the function).
pub async fn from_env() -> Result<Deliverer<Aws>, Box<dyn std::error::Error + Send + Sync>> {
    let config = DeliveryConfig::from_env()?;
    let subscriptions_table = required("SUBSCRIPTIONS_TABLE")?;
    let deliveries_table = required("DELIVERIES_TABLE")?;
    let queue_url = required("DELIVERY_QUEUE_URL")?;
    let allowed = AllowedTargets::parse(&optional("WEBHOOKS_ALLOWED_TARGETS").unwrap_or_default())?;
    let sdk = webhooks_aws::sdk_config().await;
    let dynamodb = webhooks_aws::conflicts::dynamodb_client(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let health = DynamoDbHealth::new(dynamodb.clone(), required("HEALTH_TABLE")?);
    Ok(Deliverer {
        webhooks: DynamoDbSubscriptions::new(dynamodb.clone(), subscriptions_table.clone()),
        parking: DynamoDbParking::new(dynamodb.clone(), deliveries_table.clone(), health.clone(), subscriptions_table),
        health,
        attempts: DynamoDbAttempts::new(dynamodb.clone(), deliveries_table.clone()),
        log: DynamoDbDeliveryLog::new(dynamodb, deliveries_table),
        queue: SqsBatchSender::new(sqs.clone(), queue_url.clone()),
        retries: SqsRetryScheduler::new(sqs, queue_url),
        alerts: SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), optional("ALERTS_TOPIC_ARN")),
        secrets: KmsSecretBox::new(aws_sdk_kms::Client::new(&sdk), required("SIGNING_KEY_ID")?),
        sender: HttpSender::new(config.timeout, allowed)?,
        clock: SystemClock,
        config,
        park_turns: ParkTurns::default(),
    })
}
