//! Attempt records in DeliveriesTable (`ATT#<delivery id>`): which attempt of a delivery is
//! claimed, by which receive, how many were counted, and whether it was delivered. Why the
//! writes are conditional: `webhooks_core::reliability`'s module docs.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_core::reliability::AttemptRecord;

use crate::dynamodb::StoreError;
use crate::item::{conditional, get_n, get_s, n, s, unavailable};
use crate::keys::attempt_key;

/// Attempt records outlive any retry window (at most 10 attempts of at most 12 h each).
const ATTEMPT_RECORD_SECONDS: i64 = 6 * 24 * 3600;

/// The attempt records of DeliveriesTable.
#[derive(Debug, Clone)]
pub struct DynamoDbAttempts {
    client: Client,
    table: String,
}

impl DynamoDbAttempts {
    pub fn new(client: Client, deliveries_table: String) -> Self {
        Self { client, table: deliveries_table }
    }

    async fn read(
        &self,
        delivery_id: &str,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(attempt_key(delivery_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        Ok(out.item)
    }

    /// Which of `delivery_ids` are recorded delivered (a 2xx was received), read in batches.
    pub async fn delivered_among(&self, delivery_ids: &BTreeSet<String>) -> Result<BTreeSet<String>, StoreError> {
        let keys = delivery_ids.iter().map(|id| attempt_key(id)).collect();
        let items = crate::batch_get::batch_get_all(&self.client, &self.table, keys, false)
            .await
            .map_err(unavailable("BatchGetItem"))?;
        Ok(items
            .iter()
            .filter(|i| i.get("delivered").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false))
            .filter_map(|i| get_s(i, "pk").and_then(|pk| pk.strip_prefix("ATT#").map(str::to_owned)))
            .collect())
    }

    /// Attempts recorded for a delivery, and when its first attempt was made (Unix seconds).
    pub async fn attempts(&self, delivery_id: &str) -> Result<Option<(u32, i64)>, StoreError> {
        Ok(self
            .read(delivery_id)
            .await?
            .and_then(|i| get_n::<u32>(&i, "attempts_made").zip(get_n::<i64>(&i, "first_attempt_at"))))
    }

    /// The attempt record of a delivery as a claim sees it.
    pub async fn attempt_record(&self, delivery_id: &str) -> Result<AttemptRecord, StoreError> {
        Ok(self.read(delivery_id).await?.map_or_else(AttemptRecord::default, |i| AttemptRecord {
            attempts_made: get_n(&i, "attempts_made").unwrap_or(0),
            delivered: i.get("delivered").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
            claim: get_n(&i, "claimed_attempt").zip(get_n(&i, "claim_until")),
        }))
    }

    /// Claims attempt `attempt` of a delivery before it is sent, until `until` (Unix seconds):
    /// only one receive of a message SQS handed out twice sends it. `Err(record)` (the record
    /// as it is now) when the delivery is delivered, the attempt already counted, or claimed
    /// by another receive whose claim still runs. A receive that crashed after its claim
    /// leaves it to expire: the attempt is then sent again, never lost. `receive` names the
    /// receive (one per SQS receipt): the same claim sent again (an SDK retry after an answer
    /// that was lost) is its own, not another receive's.
    pub async fn claim_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        now: i64,
        until: i64,
        receive: &str,
    ) -> Result<Result<(), AttemptRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(attempt_key(delivery_id)))
            .update_expression("SET claimed_attempt = :n, claim_until = :until, claimed_by = :by, expires_at = :exp")
            .condition_expression(
                "attribute_not_exists(delivered) AND (attribute_not_exists(attempts_made) OR attempts_made < :n) \
                 AND (attribute_not_exists(claimed_attempt) OR claimed_attempt < :n OR claim_until < :now \
                 OR (claimed_attempt = :n AND claimed_by = :by))",
            )
            .expression_attribute_values(":by", s(receive))
            .expression_attribute_values(":n", n(attempt))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(now + ATTEMPT_RECORD_SECONDS))
            .send()
            .await;
        match conditional(result, "UpdateItem")? {
            Some(_) => Ok(Ok(())),
            None => Ok(Err(self.attempt_record(delivery_id).await?)),
        }
    }

    /// Frees this receive's claim of attempt `attempt`, unsent: a later receive makes it.
    pub async fn release_claim(&self, delivery_id: &str, attempt: u32, receive: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(attempt_key(delivery_id)))
            .update_expression("REMOVE claimed_attempt, claim_until, claimed_by")
            .condition_expression("claimed_attempt = :n AND claimed_by = :by")
            .expression_attribute_values(":n", n(attempt))
            .expression_attribute_values(":by", s(receive))
            .send()
            .await;
        conditional(result, "UpdateItem")?;
        Ok(())
    }

    /// Defers claimed attempt `attempt` if fewer than `max` deferrals were counted: one more
    /// deferral, and the claim freed (only this receive's), so the attempt is made again.
    pub async fn defer(&self, delivery_id: &str, attempt: u32, receive: &str, max: u32) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(attempt_key(delivery_id)))
            .update_expression("ADD deferrals :one REMOVE claimed_attempt, claim_until, claimed_by")
            .condition_expression(
                "(attribute_not_exists(deferrals) OR deferrals < :max) AND claimed_attempt = :n AND claimed_by = :by",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max))
            .expression_attribute_values(":n", n(attempt))
            .expression_attribute_values(":by", s(receive))
            .send()
            .await;
        Ok(conditional(result, "UpdateItem")?.is_some())
    }

    /// Marks a delivery delivered (a 2xx was received): a copy received later sends nothing.
    pub async fn record_delivered(&self, delivery_id: &str, now: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(attempt_key(delivery_id)))
            .update_expression("SET delivered = :t, expires_at = :exp REMOVE claimed_attempt, claim_until, claimed_by")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":exp", n(now + ATTEMPT_RECORD_SECONDS))
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(())
    }

    /// Counts attempt `attempt` (made at `first_attempt_at` for the first), exactly once:
    /// `false` when another receive already counted it.
    pub async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        first_attempt_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(attempt_key(delivery_id)))
            .update_expression(
                "SET attempts_made = :n, first_attempt_at = if_not_exists(first_attempt_at, :first), expires_at = :exp",
            )
            .expression_attribute_values(":n", n(attempt))
            .expression_attribute_values(":first", n(first_attempt_at))
            .expression_attribute_values(":exp", n(now + ATTEMPT_RECORD_SECONDS));
        let request = if attempt <= 1 {
            request.condition_expression("attribute_not_exists(attempts_made)")
        } else {
            request.condition_expression("attempts_made = :prev").expression_attribute_values(":prev", n(attempt - 1))
        };
        Ok(conditional(request.send().await, "UpdateItem")?.is_some())
    }
}
