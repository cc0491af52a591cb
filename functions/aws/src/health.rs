//! HealthTable: each webhook's failure counters, probe slot, drop counters, parking
//! bookkeeping and replay request, one item per webhook. Every change is one atomic
//! `UpdateItem`; those that must not race are conditional.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use webhooks_core::model::DropReason;
use webhooks_core::resources::Health;

use crate::dynamodb::StoreError;
use crate::item::{conditional, get_n, get_s, n, s, unavailable};
use crate::keys::health_key;

pub use webhooks_core::ports::HealthRecord;

/// A record as stored; attributes that are missing read as their defaults.
pub(crate) fn health_from_item(item: &HashMap<String, AttributeValue>) -> HealthRecord {
    let dropped = DropReason::ALL
        .iter()
        .filter_map(|r| get_n::<u64>(item, &drop_attribute(*r)).map(|c| (r.as_str().to_owned(), c)))
        .collect::<BTreeMap<_, _>>();
    HealthRecord {
        health: Health {
            consecutive_failures: get_n(item, "consecutive_failures").unwrap_or(0),
            failing_since: get_s(item, "failing_since"),
            last_success_at: get_s(item, "last_success_at"),
            last_failure_at: get_s(item, "last_failure_at"),
            last_status_code: get_n(item, "last_status_code"),
            last_error: get_s(item, "last_error"),
            dropped,
        },
        probe: get_s(item, "probe_id").zip(get_n(item, "probe_until")),
        parked_count: get_n(item, "parked_count").unwrap_or(0),
        park_sweep_at: get_n(item, "park_sweep_at"),
        replay_requested_at: get_s(item, "replay_requested_at"),
        next_send_ms: get_n(item, "next_send_ms"),
        recovering: item.get("recovering").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        pending_alerts: ALERT_KINDS
            .iter()
            .filter_map(|kind| get_s(item, &alert_attribute(kind)).map(|a| ((*kind).to_owned(), a)))
            .collect(),
    }
}

/// The kinds of operational alerts kept on a webhook's record until published.
pub const ALERT_KINDS: [&str; 2] = ["failing", "recovered"];

/// The attribute keeping an unpublished alert of `kind`.
fn alert_attribute(kind: &str) -> String {
    format!("alert_pending_{kind}")
}

/// The counter of drops for `reason`.
pub(crate) fn drop_attribute(reason: DropReason) -> String {
    format!("dropped_{}", reason.as_str())
}

/// HealthTable.
#[derive(Debug, Clone)]
pub struct DynamoDbHealth {
    client: Client,
    table: String,
}

impl DynamoDbHealth {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// Health of several webhooks, strongly consistent: one BatchGetItem per 100.
    pub async fn health_of(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, HealthRecord>, StoreError> {
        let keys = ids.iter().map(|id| health_key(id)).collect();
        let items = crate::batch_get::batch_get_all(&self.client, &self.table, keys, true)
            .await
            .map_err(unavailable("BatchGetItem"))?;
        Ok(items.iter().filter_map(|item| get_s(item, "pk").map(|id| (id, health_from_item(item)))).collect())
    }

    pub async fn health(&self, id: &str) -> Result<HealthRecord, StoreError> {
        Ok(self.health_of(&BTreeSet::from([id.to_owned()])).await?.remove(id).unwrap_or_default())
    }

    /// A success: the streak ends and the probe slot is freed. Returns the record as it was
    /// before, so the caller knows whether the webhook was tripped.
    pub async fn record_success(&self, id: &str, at: &str) -> Result<HealthRecord, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression(
                "SET consecutive_failures = :zero, last_success_at = :at REMOVE failing_since, probe_id, probe_until, recovering",
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(at))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(out.attributes.as_ref().map(health_from_item).unwrap_or_default())
    }

    /// A success that ends a failure streak, recorded with a replay request when something is
    /// parked (one write: the request cannot be lost between the two). Returns the record as
    /// it was before.
    pub async fn record_success_requesting_replay(&self, id: &str, at: &str) -> Result<HealthRecord, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("SET consecutive_failures = :zero, last_success_at = :at, replay_requested_at = :at REMOVE failing_since, probe_id, probe_until, recovering")
            .condition_expression("parked_count > :zero AND consecutive_failures > :zero")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(at))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match conditional(result, "UpdateItem")? {
            Some(out) => Ok(out.attributes.as_ref().map(health_from_item).unwrap_or_default()),
            None => self.record_success(id, at).await,
        }
    }

    /// A failed attempt: one more in the streak. Returns the record after the change.
    pub async fn record_failure(
        &self,
        id: &str,
        at: &str,
        status_code: Option<u16>,
        error: &str,
    ) -> Result<HealthRecord, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":error", s(error))
            .return_values(ReturnValue::AllNew);
        update = match status_code {
            Some(code) => update
                .update_expression("ADD consecutive_failures :one SET last_failure_at = :at, last_error = :error, last_status_code = :code, failing_since = if_not_exists(failing_since, :at)")
                .expression_attribute_values(":code", n(code)),
            None => update.update_expression("ADD consecutive_failures :one SET last_failure_at = :at, last_error = :error, failing_since = if_not_exists(failing_since, :at) REMOVE last_status_code"),
        };
        let out = update.send().await.map_err(unavailable("UpdateItem"))?;
        Ok(out.attributes.as_ref().map(health_from_item).unwrap_or_default())
    }

    /// Counts one dropped delivery of a webhook, by reason.
    pub async fn count_drop(&self, id: &str, reason: DropReason) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("ADD #d :one")
            .expression_attribute_names("#d", drop_attribute(reason))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(())
    }

    /// Takes the probe slot of a tripped webhook for `delivery_id` until `until` (Unix
    /// seconds): free, expired, or already this delivery's. `false` when another holds it.
    pub async fn claim_probe(&self, id: &str, delivery_id: &str, until: i64, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("SET probe_id = :d, probe_until = :until")
            .condition_expression("attribute_not_exists(probe_id) OR probe_until < :now OR probe_id = :d")
            .expression_attribute_values(":d", s(delivery_id))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(conditional(result, "UpdateItem")?.is_some())
    }

    /// Moves the next free send slot from `seen` to `next` if no one moved it since it was
    /// read: `false` otherwise.
    pub async fn move_next_send(&self, id: &str, seen: Option<i64>, next: i64) -> Result<bool, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("SET next_send_ms = :next")
            .expression_attribute_values(":next", n(next));
        let request = match seen {
            Some(seen) => {
                request.condition_expression("next_send_ms = :seen").expression_attribute_values(":seen", n(seen))
            }
            None => request.condition_expression("attribute_not_exists(next_send_ms)"),
        };
        Ok(conditional(request.send().await, "UpdateItem")?.is_some())
    }

    /// Frees the probe slot if `delivery_id` holds it.
    pub async fn release_probe(&self, id: &str, delivery_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("REMOVE probe_id, probe_until")
            .condition_expression("probe_id = :d")
            .expression_attribute_values(":d", s(delivery_id))
            .send()
            .await;
        conditional(result, "UpdateItem")?;
        Ok(())
    }

    /// A webhook enabled again: the streak and the probe are forgotten, and its next success
    /// is a recovery.
    pub async fn reset(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression(
                "SET consecutive_failures = :zero, recovering = :t REMOVE failing_since, probe_id, probe_until",
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(())
    }

    /// Deletes a webhook's counters (the webhook is gone).
    pub async fn forget(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .send()
            .await
            .map_err(unavailable("DeleteItem"))?;
        Ok(())
    }

    /// Keeps an alert of `kind` that could not be published, for a later batch.
    pub async fn keep_alert(&self, id: &str, kind: &str, alert: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("SET #a = :alert")
            .expression_attribute_names("#a", alert_attribute(kind))
            .expression_attribute_values(":alert", s(alert))
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(())
    }

    /// Forgets a kept alert once published (only that one: a newer one of its kind stays).
    pub async fn forget_alert(&self, id: &str, kind: &str, alert: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("REMOVE #a")
            .condition_expression("#a = :alert")
            .expression_attribute_names("#a", alert_attribute(kind))
            .expression_attribute_values(":alert", s(alert))
            .send()
            .await;
        conditional(result, "UpdateItem")?;
        Ok(())
    }

    /// Clears a replay request once its replay is queued (only that request).
    pub async fn clear_replay_request(&self, id: &str, requested_at: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("REMOVE replay_requested_at")
            .condition_expression("replay_requested_at = :at")
            .expression_attribute_values(":at", s(requested_at))
            .send()
            .await;
        conditional(result, "UpdateItem")?;
        Ok(())
    }

    /// Makes the webhook's next sweep time no later than `expires_at` (a delivery parked again
    /// with its original, earlier expiry).
    pub(crate) async fn lower_sweep_time(&self, id: &str, expires_at: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .update_expression("SET park_sweep_at = :exp")
            .condition_expression("attribute_not_exists(park_sweep_at) OR park_sweep_at > :exp")
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await;
        conditional(result, "UpdateItem")?;
        Ok(())
    }

    /// Sets the next sweep time from `before` (read by the sweep) to `next`; `None` removes it
    /// when nothing is parked. A concurrent change wins: a later sweep sets it right.
    pub(crate) async fn move_sweep_time(&self, id: &str, before: i64, next: Option<i64>) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(health_key(id)))
            .expression_attribute_values(":before", n(before));
        let request = match next {
            Some(next) => request
                .update_expression("SET park_sweep_at = :next")
                .condition_expression("park_sweep_at = :before")
                .expression_attribute_values(":next", n(next)),
            None => request
                .update_expression("REMOVE park_sweep_at")
                .condition_expression(
                    "park_sweep_at = :before AND (attribute_not_exists(parked_count) OR parked_count <= :zero)",
                )
                .expression_attribute_values(":zero", n(0)),
        };
        conditional(request.send().await, "UpdateItem")?;
        Ok(())
    }
}
