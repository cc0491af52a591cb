//! Wiring: clients and settings built once per execution environment, then the API served.

use axum::middleware::{Next, from_fn};
use subscriptions::{ApiConfig, AppState, app};
use webhooks_aws::config::required;
use webhooks_aws::delivery_log::DynamoDbDeliveryLog;
use webhooks_aws::dynamodb::DynamoDbSubscriptions;
use webhooks_aws::health::DynamoDbHealth;
use webhooks_aws::http::HttpSender;
use webhooks_aws::idempotency::DynamoDbIdempotency;
use webhooks_aws::kms::KmsSecretBox;
use webhooks_aws::parking::DynamoDbParking;
use webhooks_aws::publish_pace::DynamoDbPublishPace;
use webhooks_aws::sqs::SqsBatchSender;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    webhooks_aws::telemetry::init();
    let config = ApiConfig::from_env()?;
    let sdk = webhooks_aws::sdk_config().await;
    let dynamodb = webhooks_aws::conflicts::dynamodb_client(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let subscriptions_table = required("SUBSCRIPTIONS_TABLE")?;
    let deliveries_table = required("DELIVERIES_TABLE")?;
    let health_table = required("HEALTH_TABLE")?;
    let health = DynamoDbHealth::new(dynamodb.clone(), health_table.clone());
    let kms = aws_sdk_kms::Client::new(&sdk);
    let signing_key = required("SIGNING_KEY_ID")?;
    let state = AppState {
        store: DynamoDbSubscriptions::new(dynamodb.clone(), subscriptions_table.clone()),
        idempotency: DynamoDbIdempotency::new(
            dynamodb.clone(),
            subscriptions_table.clone(),
            kms.clone(),
            signing_key.clone(),
        ),
        parking: DynamoDbParking::new(dynamodb.clone(), deliveries_table.clone(), health.clone(), subscriptions_table),
        health,
        publish_pace: DynamoDbPublishPace::new(dynamodb.clone(), health_table),
        log: DynamoDbDeliveryLog::new(dynamodb, deliveries_table),
        ingest: SqsBatchSender::new(sqs.clone(), required("INGEST_QUEUE_URL")?),
        deliveries: SqsBatchSender::new(sqs, required("DELIVERY_QUEUE_URL")?),
        sender: HttpSender::new(config.delivery_timeout, config.allowed_targets.clone())?,
        secrets: KmsSecretBox::new(kms, signing_key),
        config,
    };
    let app = app(state).layer(from_fn(|request, next: Next| webhooks_aws::timing::invocation(next.run(request))));
    lambda_http::run(app).await
}
