//! Partial batch responses for SQS event sources: the records listed are retried by SQS
//! after their visibility timeout; every other record of the batch is deleted.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

/// The response that reports exactly `failed` (message ids) as not processed.
pub fn retry_only<I: IntoIterator<Item = String>>(failed: I) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
