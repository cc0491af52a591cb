//! Adapters of the webhook service: DynamoDB (one module per table or item kind: `dynamodb`
//! for SubscriptionsTable, `idempotency` for its idempotency records, `health`, `attempts`,
//! `delivery_log`, `parking`, `claims`), SQS, SNS, KMS and the HTTP sender, named by
//! technology, plus configuration from the environment and telemetry set-up. `keys` holds
//! every key format; `ports` implements the core's ports with these adapters, and `memory`
//! implements them in memory for tests.
//!
//! Adapters only persist and transport; every decision lives in `webhooks-core`.

pub mod attempts;
pub mod batch;
pub mod batch_get;
pub mod claims;
pub mod config;
pub mod conflicts;
pub mod delivery_log;
pub mod dynamodb;
pub mod egress;
pub mod health;
pub mod http;
pub mod idempotency;
mod item;
pub mod keys;
pub mod kms;
pub mod memory;
pub mod metrics;
pub mod parking;
pub mod ports;
pub mod publish_pace;
pub mod sns;
pub mod sqs;
pub mod telemetry;
pub mod timing;
pub mod tls;

/// Loads the shared AWS SDK configuration once per execution environment. Region, credentials
/// and endpoint (`AWS_ENDPOINT_URL`, used by the local stack) all come from the environment.
/// The HTTPS client trusts the bundled roots of [`tls`], never the OS store, and times every
/// request on [`timing`]'s clock.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(timing::timed_http_client(tls::sdk_http_client()))
        .load()
        .await
}

/// An error and its causes on one line, for logs (the SDK's top-level messages say little).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
