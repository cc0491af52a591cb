use lambda_runtime::{LambdaEvent, service_fn};
use matcher::Matcher;
use webhooks_aws::config::required;
use webhooks_aws::sqs::SqsIngestDeadLetters;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    webhooks_aws::telemetry::init();
    let sdk = webhooks_aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let matcher = Matcher { dead_letters: SqsIngestDeadLetters::new(sqs, required("INGEST_DLQ_URL")?) };
    let matcher = &matcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move { matcher.handle(event).await }))
        .await
}
