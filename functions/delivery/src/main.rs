//! Wiring: clients and settings built once per execution environment (by
//! [`Deliverer::from_env`], which the bench's throughput worker shares), then the SQS batches
//! handled.

use delivery::Deliverer;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    webhooks_aws::telemetry::init();
    let deliverer = Deliverer::from_env().await?;
    let deliverer = &deliverer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        webhooks_aws::timing::invocation(deliverer.handle(event))
    }))
    .await
}
