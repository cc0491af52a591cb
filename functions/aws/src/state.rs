//! Delivery state in DynamoDB: failure counters (HealthTable), attempt records, the delivery
//! log and parked deliveries (DeliveriesTable), and a webhook's deactivation.
//!
//! DeliveriesTable layout:
//!
//! | item | pk | sk | gsi1 |
//! |---|---|---|---|
//! | attempts of a delivery | `ATT#<delivery id>` | `ATT` | |
//! | log entry | `LOG#<webhook>` | `<attempted at>#<delivery id>#<n>` | `MSG#<webhook>#<webhook-id>` / `<attempted at>` |
//! | parked delivery | `PARK#<webhook>` | `<parked at>#<delivery id>` | |
//!
//! Every counter change is one atomic `UpdateItem`; decisions that must not race (parking
//! while the webhook is re-enabled, deactivating once) are conditional writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, ReturnValue, Select, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use webhooks_core::event::Event;
use webhooks_core::message::Delivery;
use webhooks_core::model::{DisabledReason, DropReason};
use webhooks_core::resources::{Health, LogEntry};

use crate::dynamodb::{Page, StoreError, decode_cursor, encode_cursor};

/// Attempt records outlive any retry window (at most 10 attempts of at most 12 h each).
const ATTEMPT_RECORD_SECONDS: i64 = 6 * 24 * 3600;
/// A log entry keeps at most this much of a failure's response body (SPEC §5).
pub const LOGGED_RESPONSE_BYTES: usize = 1024;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(operation: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Unavailable { operation, source: Box::new(e) }
}

fn key(pk: String, sk: Option<&str>) -> HashMap<String, AttributeValue> {
    let mut k = HashMap::from([("pk".to_owned(), s(pk))]);
    if let Some(sk) = sk {
        k.insert("sk".to_owned(), s(sk));
    }
    k
}

fn get_n<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, name: &str) -> Option<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A webhook's failure counters and probe slot as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthRecord {
    pub health: Health,
    /// The delivery currently allowed through while the webhook is tripped, and until when.
    pub probe: Option<(String, i64)>,
    /// Parked deliveries as counted by parking and replay (expired ones included until a read
    /// finds them); the exact figure is `count_parked`.
    pub parked_count: u64,
}

impl HealthRecord {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Self {
        let dropped = DropReason::ALL
            .iter()
            .filter_map(|r| get_n::<u64>(item, &format!("dropped_{}", r.as_str())).map(|c| (r.as_str().to_owned(), c)))
            .collect::<BTreeMap<_, _>>();
        Self {
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
        }
    }
}

/// What parking a delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkOutcome {
    Parked,
    /// The webhook already keeps the most deliveries it may: dropped (`park_full`).
    Full,
    /// The reason to park no longer holds (the webhook was re-enabled or recovered): send it.
    Send,
}

/// Why a delivery is being parked; the condition is checked in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkGuard {
    /// Only while the webhook is disabled.
    WebhookDisabled,
    /// Only while the webhook has at least this many consecutive failures (tripped).
    Tripped(u32),
    /// Unconditionally (its attempts are used up).
    Always,
}

/// A parked delivery read back for replay.
#[derive(Debug, Clone)]
pub struct ParkedDelivery {
    pub sort_key: String,
    pub delivery: Delivery,
    pub expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogItem {
    #[serde(flatten)]
    entry: LogEntry,
    /// The payload, kept with the log so a delivery can be re-sent on request.
    event: Option<Event>,
}

/// The state delivery and the API keep about deliveries.
#[derive(Debug, Clone)]
pub struct DynamoDbDeliveryState {
    client: Client,
    subscriptions_table: String,
    health_table: String,
    deliveries_table: String,
}

impl DynamoDbDeliveryState {
    pub fn new(client: Client, subscriptions_table: String, health_table: String, deliveries_table: String) -> Self {
        Self { client, subscriptions_table, health_table, deliveries_table }
    }

    // ------------------------------------------------------------------ health

    /// Health of several webhooks, strongly consistent: one BatchGetItem per 100.
    pub async fn health_of(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, HealthRecord>, StoreError> {
        let mut found = HashMap::new();
        let ids: Vec<&String> = ids.iter().collect();
        for chunk in ids.chunks(100) {
            let keys: Vec<_> = chunk.iter().map(|id| key((*id).clone(), None)).collect();
            let mut request =
                Some(KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(unavailable("build"))?);
            while let Some(req) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.health_table, req)
                    .send()
                    .await
                    .map_err(unavailable("BatchGetItem"))?;
                for item in out.responses.and_then(|mut r| r.remove(&self.health_table)).unwrap_or_default() {
                    if let Some(id) = get_s(&item, "pk") {
                        found.insert(id, HealthRecord::from_item(&item));
                    }
                }
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.health_table)).filter(|k| !k.keys().is_empty());
            }
        }
        Ok(found)
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
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("SET consecutive_failures = :zero, last_success_at = :at REMOVE failing_since, probe_id, probe_until")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(at))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(out.attributes.as_ref().map(HealthRecord::from_item).unwrap_or_default())
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
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
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
        Ok(out.attributes.as_ref().map(HealthRecord::from_item).unwrap_or_default())
    }

    /// Counts one dropped delivery of a webhook, by reason.
    pub async fn count_drop(&self, id: &str, reason: DropReason) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("ADD #d :one")
            .expression_attribute_names("#d", format!("dropped_{}", reason.as_str()))
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
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("SET probe_id = :d, probe_until = :until")
            .condition_expression("attribute_not_exists(probe_id) OR probe_until < :now OR probe_id = :d")
            .expression_attribute_values(":d", s(delivery_id))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    /// Frees the probe slot if `delivery_id` holds it.
    pub async fn release_probe(&self, id: &str, delivery_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("REMOVE probe_id, probe_until")
            .condition_expression("probe_id = :d")
            .expression_attribute_values(":d", s(delivery_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    /// A webhook enabled again: the streak and the probe are forgotten.
    pub async fn reset(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("SET consecutive_failures = :zero REMOVE failing_since, probe_id, probe_until")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(())
    }

    /// Deletes a webhook's counters (the webhook is gone).
    pub async fn forget(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .send()
            .await
            .map_err(unavailable("DeleteItem"))?;
        Ok(())
    }

    // ------------------------------------------------------------------ attempts

    /// Attempts recorded for a delivery, and when its first attempt was made (Unix seconds).
    pub async fn attempts(&self, delivery_id: &str) -> Result<Option<(u32, i64)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.deliveries_table)
            .set_key(Some(key(format!("ATT#{delivery_id}"), Some("ATT"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        Ok(out.item.and_then(|i| get_n::<u32>(&i, "attempts_made").zip(get_n::<i64>(&i, "first_attempt_at"))))
    }

    /// Counts attempt `attempt` (made at `first_attempt_at` for the first), exactly once:
    /// `false` when another receive already counted it.
    pub async fn record_attempt(&self, delivery_id: &str, attempt: u32, first_attempt_at: i64, now: i64) -> Result<bool, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.deliveries_table)
            .set_key(Some(key(format!("ATT#{delivery_id}"), Some("ATT"))))
            .update_expression("SET attempts_made = :n, first_attempt_at = if_not_exists(first_attempt_at, :first), expires_at = :exp")
            .expression_attribute_values(":n", n(attempt))
            .expression_attribute_values(":first", n(first_attempt_at))
            .expression_attribute_values(":exp", n(now + ATTEMPT_RECORD_SECONDS));
        let request = if attempt <= 1 {
            request.condition_expression("attribute_not_exists(attempts_made)")
        } else {
            request.condition_expression("attempts_made = :prev").expression_attribute_values(":prev", n(attempt - 1))
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    // ------------------------------------------------------------------ log

    /// Adds a log entry (kept until `expires_at`), with the payload when given.
    pub async fn log(&self, webhook_id: &str, delivery_id: &str, entry: &LogEntry, event: Option<&Event>, expires_at: i64) -> Result<(), StoreError> {
        let item = LogItem { entry: entry.clone(), event: event.cloned() };
        let mut attributes: HashMap<String, AttributeValue> = serde_dynamo::to_item(&item).map_err(unavailable("serialize"))?;
        attributes.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
        let attempt = entry.attempt.map_or_else(|| "P".to_owned(), |a| format!("{a:02}"));
        attributes.insert("pk".into(), s(format!("LOG#{webhook_id}")));
        attributes.insert("sk".into(), s(format!("{}#{delivery_id}#{attempt}", entry.attempted_at)));
        attributes.insert("gsi1pk".into(), s(format!("MSG#{webhook_id}#{}", entry.webhook_message_id)));
        attributes.insert("gsi1sk".into(), s(entry.attempted_at.clone()));
        attributes.insert("expires_at".into(), n(expires_at));
        self.client
            .put_item()
            .table_name(&self.deliveries_table)
            .set_item(Some(attributes))
            .send()
            .await
            .map_err(unavailable("PutItem"))?;
        Ok(())
    }

    /// A page of a webhook's log, newest first, optionally one status or one event.
    pub async fn log_page(
        &self,
        webhook_id: &str,
        status: Option<&str>,
        event_id: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
        now: i64,
    ) -> Result<Page<LogEntry>, StoreError> {
        let mut start = cursor.map(decode_cursor).transpose()?;
        let mut entries: Vec<(LogEntry, String)> = Vec::new();
        let mut filters = vec!["expires_at > :now".to_owned()];
        if status.is_some() {
            filters.push("#status = :status".into());
        }
        if event_id.is_some() {
            filters.push("event_id = :event".into());
        }
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.deliveries_table)
                .key_condition_expression("pk = :pk")
                .filter_expression(filters.join(" AND "))
                .expression_attribute_values(":pk", s(format!("LOG#{webhook_id}")))
                .expression_attribute_values(":now", n(now))
                .scan_index_forward(false)
                .limit(i32::try_from(limit - entries.len()).unwrap_or(100))
                .set_exclusive_start_key(start.take());
            if let Some(status) = status {
                query = query.expression_attribute_names("#status", "status").expression_attribute_values(":status", s(status));
            }
            if let Some(event_id) = event_id {
                query = query.expression_attribute_values(":event", s(event_id));
            }
            let out = query.send().await.map_err(unavailable("Query"))?;
            for item in out.items.unwrap_or_default() {
                let sk = get_s(&item, "sk").unwrap_or_default();
                let log: LogItem = serde_dynamo::from_item(item).map_err(unavailable("deserialize"))?;
                entries.push((log.entry, sk));
            }
            match out.last_evaluated_key {
                Some(k) if entries.len() < limit && !k.is_empty() => start = Some(k),
                Some(k) if !k.is_empty() => {
                    let next = entries.last().map(|(_, sk)| {
                        HashMap::from([("pk".to_owned(), s(format!("LOG#{webhook_id}"))), ("sk".to_owned(), s(sk.clone()))])
                    });
                    return Ok(Page { items: entries.into_iter().map(|(e, _)| e).collect(), next_cursor: encode_cursor(next.as_ref()) });
                }
                _ => return Ok(Page { items: entries.into_iter().map(|(e, _)| e).collect(), next_cursor: None }),
            }
        }
    }

    /// The payload of an event delivered (or tried) to a webhook, if the log still keeps it.
    pub async fn kept_payload(&self, webhook_id: &str, webhook_message_id: &str, now: i64) -> Result<Option<(Event, String)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.deliveries_table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk")
            .filter_expression("expires_at > :now AND attribute_exists(event)")
            .expression_attribute_values(":pk", s(format!("MSG#{webhook_id}#{webhook_message_id}")))
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map_err(unavailable("Query"))?;
        for item in out.items.unwrap_or_default() {
            let log: LogItem = serde_dynamo::from_item(item).map_err(unavailable("deserialize"))?;
            if let Some(event) = log.event {
                return Ok(Some((event, log.entry.webhook_message_id)));
            }
        }
        Ok(None)
    }

    // ------------------------------------------------------------------ parking

    /// Parks a delivery if `guard` still holds and the webhook keeps fewer than `limit`.
    pub async fn park(&self, d: &Delivery, guard: ParkGuard, limit: u64, now: i64, ttl_seconds: i64, parked_at: &str) -> Result<ParkOutcome, StoreError> {
        let body = serde_json::to_string(d).map_err(unavailable("serialize"))?;
        let put = Put::builder()
            .table_name(&self.deliveries_table)
            .item("pk", s(format!("PARK#{}", d.webhook_id)))
            .item("sk", s(format!("{parked_at}#{}", d.delivery_id)))
            .item("delivery", s(body))
            .item("expires_at", n(now + ttl_seconds))
            .build()
            .map_err(unavailable("build"))?;
        let mut counter = Update::builder()
            .table_name(&self.health_table)
            .set_key(Some(key(d.webhook_id.clone(), None)))
            .update_expression("ADD parked_count :one")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit));
        counter = match guard {
            ParkGuard::Tripped(max) => counter
                .condition_expression("(attribute_not_exists(parked_count) OR parked_count < :limit) AND consecutive_failures >= :max")
                .expression_attribute_values(":max", n(max)),
            _ => counter.condition_expression("attribute_not_exists(parked_count) OR parked_count < :limit"),
        };
        let mut actions = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(counter.build().map_err(unavailable("build"))?).build(),
        ];
        if guard == ParkGuard::WebhookDisabled {
            let check = ConditionCheck::builder()
                .table_name(&self.subscriptions_table)
                .set_key(Some(key(format!("WH#{}", d.webhook_id), Some("WH"))))
                .condition_expression("#status = :disabled")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":disabled", s("disabled"))
                .build()
                .map_err(unavailable("build"))?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let result = self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
        let Err(e) = result else { return Ok(ParkOutcome::Parked) };
        let reasons = match e.as_service_error() {
            Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                c.cancellation_reasons().iter().map(|r| r.code() == Some("ConditionalCheckFailed")).collect::<Vec<_>>()
            }
            _ => return Err(unavailable("TransactWriteItems")(e)),
        };
        if reasons.get(2).copied().unwrap_or(false) {
            return Ok(ParkOutcome::Send);
        }
        // The counter's condition failed: not tripped any more, or full. Expired parked
        // deliveries inflate the counter: recount exactly before calling it full.
        let record = self.health(&d.webhook_id).await?;
        if let ParkGuard::Tripped(max) = guard {
            if record.health.consecutive_failures < max {
                return Ok(ParkOutcome::Send);
            }
        }
        let exact = self.count_parked(&d.webhook_id, now).await?;
        if exact < limit && exact < record.parked_count {
            self.set_parked_count(&d.webhook_id, exact).await?;
            return Box::pin(self.park(d, guard, limit, now, ttl_seconds, parked_at)).await;
        }
        Ok(ParkOutcome::Full)
    }

    async fn set_parked_count(&self, id: &str, count: u64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("SET parked_count = :c")
            .expression_attribute_values(":c", n(count))
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(())
    }

    /// Parked deliveries of a webhook not yet expired (all pages of a COUNT query).
    pub async fn count_parked(&self, webhook_id: &str, now: i64) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.deliveries_table)
                .key_condition_expression("pk = :pk")
                .filter_expression("expires_at > :now")
                .expression_attribute_values(":pk", s(format!("PARK#{webhook_id}")))
                .expression_attribute_values(":now", n(now))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable("Query"))?;
            count += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(count),
            }
        }
    }

    /// Up to `limit` parked deliveries, oldest first, after `after` (a sort key).
    pub async fn parked_page(&self, webhook_id: &str, after: Option<&str>, limit: i32) -> Result<(Vec<ParkedDelivery>, bool), StoreError> {
        let start = after.map(|sk| key(format!("PARK#{webhook_id}"), Some(sk)));
        let out = self
            .client
            .query()
            .table_name(&self.deliveries_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("PARK#{webhook_id}")))
            .consistent_read(true)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable("Query"))?;
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let mut parked = Vec::new();
        for item in out.items.unwrap_or_default() {
            let Some(body) = get_s(&item, "delivery") else { continue };
            let delivery: Delivery = serde_json::from_str(&body).map_err(unavailable("deserialize"))?;
            parked.push(ParkedDelivery {
                sort_key: get_s(&item, "sk").unwrap_or_default(),
                delivery,
                expires_at: get_n(&item, "expires_at").unwrap_or(0),
            });
        }
        Ok((parked, more))
    }

    /// Removes parked deliveries (re-sent or expired) and gives back their slots.
    pub async fn unpark(&self, webhook_id: &str, sort_keys: &[String]) -> Result<(), StoreError> {
        for sk in sort_keys {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.deliveries_table)
                .set_key(Some(key(format!("PARK#{webhook_id}"), Some(sk))))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(unavailable("DeleteItem"))?;
            if deleted.attributes.is_some() {
                self.client
                    .update_item()
                    .table_name(&self.health_table)
                    .set_key(Some(key(webhook_id.to_owned(), None)))
                    .update_expression("ADD parked_count :minus")
                    .condition_expression("parked_count > :zero")
                    .expression_attribute_values(":minus", n(-1))
                    .expression_attribute_values(":zero", n(0))
                    .send()
                    .await
                    .map(|_| ())
                    .or_else(|e| if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) { Ok(()) } else { Err(unavailable("UpdateItem")(e)) })?;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ deactivation

    /// Disables an active webhook for `reason`, marking `alert` (JSON) pending on it. `true`
    /// for the one call that won: only it publishes the alert.
    pub async fn deactivate(&self, webhook_id: &str, reason: DisabledReason, alert: &str, at: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.subscriptions_table)
            .set_key(Some(key(format!("WH#{webhook_id}"), Some("WH"))))
            .update_expression("SET #status = :disabled, disabled_reason = :reason, alert_pending = :alert, updated_at = :at, disabled_at_ms = :ms ADD version :one")
            .condition_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":disabled", s("disabled"))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":reason", s(reason.as_str()))
            .expression_attribute_values(":alert", s(alert))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":ms", n(now_ms()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    /// Clears a published alert (only that one: a newer deactivation's alert stays).
    pub async fn clear_alert(&self, webhook_id: &str, alert: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.subscriptions_table)
            .set_key(Some(key(format!("WH#{webhook_id}"), Some("WH"))))
            .update_expression("REMOVE alert_pending")
            .condition_expression("alert_pending = :alert")
            .expression_attribute_values(":alert", s(alert))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }
}
