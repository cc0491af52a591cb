//! DynamoDB's `TransactionConflictException` retried by the SDK. DynamoDB answers it to a
//! single write whose item a transaction is busy with; it says to retry, but the SDK's default
//! classifiers do not know the code, so the caller would see it as a failure (a record handed
//! back to SQS, a receive spent). This classifier makes it a transient error the SDK retries
//! with its usual backoff.

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};

/// The error code DynamoDB puts in `__type` for a write that met a transaction.
const TRANSACTION_CONFLICT: &[u8] = b"TransactionConflictException";

/// Classifies DynamoDB's `TransactionConflictException` as a transient, retryable error.
#[derive(Debug, Default, Clone, Copy)]
pub struct TransactionConflictRetry;

impl ClassifyRetry for TransactionConflictRetry {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let conflict = ctx.response().is_some_and(|response| {
            response.status().as_u16() == 400
                && response
                    .body()
                    .bytes()
                    .is_some_and(|body| body.windows(TRANSACTION_CONFLICT.len()).any(|w| w == TRANSACTION_CONFLICT))
        });
        if conflict { RetryAction::transient_error() } else { RetryAction::NoActionIndicated }
    }

    fn name(&self) -> &'static str {
        "DynamoDB TransactionConflictException"
    }
}

/// A DynamoDB client of `sdk` that retries `TransactionConflictException`.
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk).retry_classifier(TransactionConflictRetry).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::interceptors::context::Input;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::body::SdkBody;

    fn classify(status: u16, body: &'static str) -> RetryAction {
        let mut ctx = InterceptorContext::new(Input::doesnt_matter());
        if let Ok(status) = status.try_into() {
            ctx.set_response(HttpResponse::new(status, SdkBody::from(body)));
        }
        TransactionConflictRetry.classify_retry(&ctx)
    }

    #[test]
    fn a_write_that_met_a_transaction_is_retried_and_nothing_else() {
        let conflict = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#;
        assert_eq!(classify(400, conflict), RetryAction::transient_error());
        let condition = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#;
        assert_eq!(classify(400, condition), RetryAction::NoActionIndicated);
        assert_eq!(classify(200, "{}"), RetryAction::NoActionIndicated);
    }
}
