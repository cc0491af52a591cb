//! Wiring: the AWS ports and the settings, built once per execution environment
//! ([`delivery::wiring::from_env`]), then the SQS batches handled.

// The handler's future, generic over eleven ports, nests deeper than the compiler's default
// layout query depth.
#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    webhooks_aws::telemetry::init();
    let deliverer = delivery::wiring::from_env().await?;
    let deliverer = &deliverer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        webhooks_aws::timing::invocation(deliverer.handle(event))
    }))
    .await
}
