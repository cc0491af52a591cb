//! The small pieces every DynamoDB adapter shares: attribute values, reads of typed
//! attributes, the mapping of SDK errors to `StoreError`, and the one mapping of a conditional
//! write's outcome.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::dynamodb::StoreError;

/// The error code of a write whose condition did not hold.
const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailedException";
/// The cancellation reason of a transaction's action whose condition did not hold.
pub(crate) const CONDITION_FAILED_REASON: &str = "ConditionalCheckFailed";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, name: &str) -> Option<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

pub(crate) fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// `StoreError::Unavailable` of `operation`, keeping the cause.
pub(crate) fn unavailable<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Unavailable { operation, source: Box::new(e) }
}

/// Whether a single-item write (PutItem, UpdateItem, DeleteItem) failed on its condition.
pub(crate) fn condition_failed<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code) == Some(CONDITIONAL_CHECK_FAILED)
}

/// The outcome of a conditional single-item write: `Some` with its output when it was made,
/// `None` when its condition did not hold (another writer got there first, or the item is not
/// as expected); any other failure is `Unavailable`.
pub(crate) fn conditional<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    operation: &'static str,
) -> Result<Option<T>, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if condition_failed(&e) => Ok(None),
        Err(e) => Err(unavailable(operation)(e)),
    }
}

/// The cancellation reason codes of a cancelled transaction, one per action in order (`None`
/// for an action with no code); `None` when the transaction was not cancelled (unreachable,
/// throttled as a whole, refused).
pub(crate) fn cancellation_codes<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<Option<String>>> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            Some(c.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect())
        }
        _ => None,
    }
}
