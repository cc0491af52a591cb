//! The core's ports implemented with DynamoDB and SQS: each delegates to its adapter's own
//! method and maps the adapter's error to a `PortError`, keeping it as the cause.

use std::collections::{BTreeSet, HashMap};

use webhooks_core::ports::{
    Claim, DeliveryQueue, EventClaims, IndexEntry, IngestDeadLetters, MatchIndexReader, OwnerKeys, PortError, StoredKey,
};

use crate::claims::DynamoDbEventClaims;
use crate::dynamodb::{DynamoDbSubscriptions, StoreError};
use crate::sqs::{SqsBatchSender, SqsError, SqsIngestDeadLetters};

impl From<StoreError> for PortError {
    fn from(e: StoreError) -> Self {
        let operation = match &e {
            StoreError::Unavailable { operation, .. } => *operation,
            _ => "dynamodb",
        };
        PortError::unavailable(operation, e)
    }
}

impl From<SqsError> for PortError {
    fn from(e: SqsError) -> Self {
        PortError::unavailable(e.operation, e)
    }
}

impl MatchIndexReader for DynamoDbSubscriptions {
    async fn index_entries(&self, partition: &str, event_types: &BTreeSet<&str>) -> Result<Vec<IndexEntry>, PortError> {
        Ok(DynamoDbSubscriptions::index_entries(self, partition, event_types).await?)
    }
}

impl OwnerKeys for DynamoDbSubscriptions {
    async fn keys_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredKey>, PortError> {
        Ok(DynamoDbSubscriptions::keys_by_ids(self, ids).await?)
    }
}

impl EventClaims for DynamoDbEventClaims {
    async fn claim(&self, event_key: &str, now: i64) -> Result<Claim, PortError> {
        Ok(DynamoDbEventClaims::claim(self, event_key, now).await?)
    }

    async fn complete(&self, event_key: &str, now: i64) -> Result<(), PortError> {
        Ok(DynamoDbEventClaims::complete(self, event_key, now).await?)
    }
}

impl DeliveryQueue for SqsBatchSender {
    async fn send_all(&self, bodies: &[String]) -> Vec<usize> {
        SqsBatchSender::send_all(self, bodies).await
    }
}

impl IngestDeadLetters for SqsIngestDeadLetters {
    async fn reject(&self, body: &str, reason: &str, detail: &str) -> Result<(), PortError> {
        Ok(SqsIngestDeadLetters::reject(self, body, reason, detail).await?)
    }
}
