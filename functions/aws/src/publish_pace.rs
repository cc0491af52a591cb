//! HealthTable: each API key's publishing pace (`PUB#<key id>`), the state of the publish
//! limit of SPEC §10. The rule is `webhooks_core::rate_limit::admit_publish`; DynamoDB cannot
//! take the maximum of two values in an update, so the rule is applied as two conditional
//! writes, the first of which alone serves a key publishing steadily:
//!
//! 1. the pace is at or after now and stays within the burst: it moves on by the cost;
//! 2. otherwise, if the pace is behind now (or the key never published): it restarts at now
//!    plus the cost;
//! 3. if that restart's condition failed, a concurrent request of the same key restarted the
//!    pace first (or an SDK retry of this one's restart, after a fault that took effect, finds
//!    its own write, and the request is then counted twice, erring on the strict side): rule
//!    1 once more;
//! 4. otherwise the key is over its limit: nothing is written, and its pace is read for
//!    `Retry-After`.

use aws_sdk_dynamodb::Client;
use webhooks_core::rate_limit::PublishPace;

use crate::dynamodb::StoreError;
use crate::item::{conditional, get_n, n};
use crate::keys::publish_pace_key;

/// A pace record outlives its burst by far, then TTL removes it (it restarts at now anyway).
const PACE_RECORD_SECONDS: i64 = 3600;

/// The publish limit's records in HealthTable.
#[derive(Debug, Clone)]
pub struct DynamoDbPublishPace {
    client: Client,
    table: String,
}

impl DynamoDbPublishPace {
    pub fn new(client: Client, health_table: String) -> Self {
        Self { client, table: health_table }
    }

    /// Admits a publish of `events` events by key `key_id` at `now_us` (Unix microseconds)
    /// under `pace`: `Ok(None)` when accepted (and counted), `Ok(Some(seconds))` when refused,
    /// with the seconds to wait.
    pub async fn admit(
        &self,
        key_id: &str,
        pace: PublishPace,
        events: usize,
        now_us: i64,
    ) -> Result<Option<u64>, StoreError> {
        let cost = pace.cost_us(events);
        let ceiling = pace.ceiling_us(now_us, cost);
        let expires_at = now_us / 1_000_000 + PACE_RECORD_SECONDS;
        if ceiling < now_us {
            // More events than any burst holds: never accepted as one request.
            return Ok(Some(pace.retry_after_seconds(now_us, now_us, cost)));
        }
        // Steady, else restart, else steady once more: a restart that failed its condition
        // was beaten by a concurrent one (rule 3), which leaves the pace at or after now.
        if self.steady(key_id, cost, now_us, ceiling, expires_at).await?
            || self.restart(key_id, cost, now_us, expires_at).await?
            || self.steady(key_id, cost, now_us, ceiling, expires_at).await?
        {
            return Ok(None);
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(publish_pace_key(key_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(crate::item::unavailable("GetItem"))?
            .item;
        let tat = item.as_ref().and_then(|i| get_n::<i64>(i, "tat")).unwrap_or(now_us);
        Ok(Some(pace.retry_after_seconds(tat, now_us, cost)))
    }

    /// Rule 1: moves a pace at or after now on by `cost`, within the burst; false when the
    /// condition fails.
    async fn steady(
        &self,
        key_id: &str,
        cost: i64,
        now_us: i64,
        ceiling: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(publish_pace_key(key_id)))
            .update_expression("SET tat = tat + :cost, expires_at = :exp")
            .condition_expression("tat BETWEEN :now AND :ceiling")
            .expression_attribute_values(":cost", n(cost))
            .expression_attribute_values(":now", n(now_us))
            .expression_attribute_values(":ceiling", n(ceiling))
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await;
        Ok(conditional(written, "UpdateItem")?.is_some())
    }

    /// Rule 2: restarts a pace behind now (or missing) at now plus `cost`; false when the
    /// condition fails.
    async fn restart(&self, key_id: &str, cost: i64, now_us: i64, expires_at: i64) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(publish_pace_key(key_id)))
            .update_expression("SET tat = :next, expires_at = :exp")
            .condition_expression("attribute_not_exists(tat) OR tat < :now")
            .expression_attribute_values(":next", n(now_us + cost))
            .expression_attribute_values(":now", n(now_us))
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await;
        Ok(conditional(written, "UpdateItem")?.is_some())
    }
}
