use lambda_runtime::{LambdaEvent, service_fn};
use matcher::Matcher;
use webhooks_aws::claims::DynamoDbEventClaims;
use webhooks_aws::config::required;
use webhooks_aws::dynamodb::DynamoDbSubscriptions;
use webhooks_aws::sqs::{SqsBatchSender, SqsIngestDeadLetters};
use webhooks_core::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    webhooks_aws::telemetry::init();
    let sdk = webhooks_aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = webhooks_aws::conflicts::dynamodb_client(&sdk);
    let subscriptions = DynamoDbSubscriptions::new(dynamodb.clone(), required("SUBSCRIPTIONS_TABLE")?);
    let matcher = Matcher {
        dead_letters: SqsIngestDeadLetters::new(sqs.clone(), required("INGEST_DLQ_URL")?),
        index: subscriptions.clone(),
        owners: subscriptions,
        claims: DynamoDbEventClaims::new(dynamodb, required("EVENTS_TABLE")?),
        deliveries: SqsBatchSender::new(sqs, required("DELIVERY_QUEUE_URL")?),
        clock: SystemClock,
        owner_cache: matcher::OwnerKeyCache::default(),
    };
    let matcher = &matcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        webhooks_aws::timing::invocation(matcher.handle(event))
    }))
    .await
}
