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
    AttributeValue, ConditionCheck, DeleteRequest, Put, ReturnValue, TransactWriteItem, Update, WriteRequest,
};
use serde::{Deserialize, Serialize};
use webhooks_core::event::Event;
use webhooks_core::message::{Delivery, ParkSlot};
use webhooks_core::model::{DisabledReason, DropReason};
use webhooks_core::reliability::{AttemptRecord, ParkCancelled, expired, park_cancelled};
use webhooks_core::resources::{Health, LogEntry};

use crate::dynamodb::{Page, StoreError, decode_page_cursor, encode_cursor};

/// Attempt records outlive any retry window (at most 10 attempts of at most 12 h each).
const ATTEMPT_RECORD_SECONDS: i64 = 6 * 24 * 3600;
/// DynamoDB TTL deletes parked items only this long after their keeping time ends, so a sweep
/// sees (and counts) every expiry first; TTL is a storage backstop, not the expiry.
const PARK_STORAGE_GRACE_SECONDS: i64 = 30 * 24 * 3600;
/// A transaction cancelled by conflicts or throttles is tried this many times in all (with
/// the backoff of `batch_get`, at most about 2.5 s): parks of one webhook all touch its
/// health item, so a burst of them conflicts.
const TRANSACTION_ATTEMPTS: u32 = 8;
/// Parked items a sweep looks at, oldest first (keys and expiries only): bounded work.
pub const SWEEP_PAGE: i32 = 100;
/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE_ITEMS: usize = 25;
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

/// Sort-key times: RFC 3339 in UTC with exactly six fractional digits, so that keys sort as
/// the instants do (a variable number of digits puts `10:00:00Z` after `10:00:00.5Z`).
const SORT_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// An instant as the leading part of a sort key (fixed width).
pub fn sort_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(SORT_TIME).unwrap_or_else(|_| webhooks_core::event::format_utc(t))
}

/// The sort key of a parked delivery: when it was parked, then its id.
pub fn park_sort_key(parked_at: time::OffsetDateTime, delivery_id: &str) -> String {
    format!("{}#{delivery_id}", sort_time(parked_at))
}

/// The upper bound of a replay started at `t`: every delivery parked before `t` sorts below.
pub fn replay_bound(t: time::OffsetDateTime) -> String {
    sort_time(t)
}

/// The logical expiry of a parked item (`expires_at` of items parked before it had its own).
fn park_expiry(item: &HashMap<String, AttributeValue>) -> i64 {
    get_n(item, "park_expires_at").or_else(|| get_n(item, "expires_at")).unwrap_or(0)
}

/// How a cancelled transaction was cancelled, when it was one.
fn cancellation<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<ParkCancelled> {
    match e.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c),
        ) => {
            let codes: Vec<Option<&str>> = c.cancellation_reasons().iter().map(|r| r.code()).collect();
            Some(park_cancelled(&codes))
        }
        _ => None,
    }
}

/// A conditional write whose condition failed is fine (someone else got there first).
fn ignore_condition<E>(
    result: Result<(), aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    operation: &'static str,
) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(()) => Ok(()),
        Err(e)
            if e.as_service_error().and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable(operation)(e)),
    }
}

/// A webhook's failure counters and probe slot as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthRecord {
    pub health: Health,
    /// The delivery currently allowed through while the webhook is tripped, and until when.
    pub probe: Option<(String, i64)>,
    /// Parked deliveries, maintained in the same transactions that park and remove them
    /// (expired ones included until a sweep counts them: see `park_sweep_at`).
    pub parked_count: u64,
    /// No parked delivery expires before this (Unix seconds): a sweep is due once it passed.
    pub park_sweep_at: Option<i64>,
    /// A recovery asked for a replay at this time, and it is not known to be queued yet.
    pub replay_requested_at: Option<String>,
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
            park_sweep_at: get_n(item, "park_sweep_at"),
            replay_requested_at: get_s(item, "replay_requested_at"),
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
        let keys = ids.iter().map(|id| key(id.clone(), None)).collect();
        let items = crate::batch_get::batch_get_all(&self.client, &self.health_table, keys, true)
            .await
            .map_err(unavailable("BatchGetItem"))?;
        Ok(items.iter().filter_map(|item| get_s(item, "pk").map(|id| (id, HealthRecord::from_item(item)))).collect())
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
            .update_expression(
                "SET consecutive_failures = :zero, last_success_at = :at REMOVE failing_since, probe_id, probe_until",
            )
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

    /// The attempt record of a delivery as a claim sees it.
    pub async fn attempt_record(&self, delivery_id: &str) -> Result<AttemptRecord, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.deliveries_table)
            .set_key(Some(key(format!("ATT#{delivery_id}"), Some("ATT"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        Ok(out.item.map_or_else(AttemptRecord::default, |i| AttemptRecord {
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
            .table_name(&self.deliveries_table)
            .set_key(Some(key(format!("ATT#{delivery_id}"), Some("ATT"))))
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
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Err(self.attempt_record(delivery_id).await?))
            }
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    /// Marks a delivery delivered (a 2xx was received): a copy received later sends nothing.
    pub async fn record_delivered(&self, delivery_id: &str, now: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.deliveries_table)
            .set_key(Some(key(format!("ATT#{delivery_id}"), Some("ATT"))))
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
            .table_name(&self.deliveries_table)
            .set_key(Some(key(format!("ATT#{delivery_id}"), Some("ATT"))))
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
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    // ------------------------------------------------------------------ log

    /// Adds a log entry (kept until `expires_at`), with the payload when given.
    pub async fn log(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        entry: &LogEntry,
        event: Option<&Event>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let item = LogItem { entry: entry.clone(), event: event.cloned() };
        let mut attributes: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(&item).map_err(unavailable("serialize"))?;
        attributes.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
        let attempt = entry.attempt.map_or_else(|| "P".to_owned(), |a| format!("{a:02}"));
        attributes.insert("pk".into(), s(format!("LOG#{webhook_id}")));
        let at = time::OffsetDateTime::parse(&entry.attempted_at, &time::format_description::well_known::Rfc3339)
            .map_or_else(|_| entry.attempted_at.clone(), sort_time);
        attributes.insert("sk".into(), s(format!("{at}#{delivery_id}#{attempt}")));
        attributes.insert("gsi1pk".into(), s(format!("MSG#{webhook_id}#{}", entry.webhook_message_id)));
        attributes.insert("gsi1sk".into(), s(at));
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
        let partition = format!("LOG#{webhook_id}");
        let mut start = cursor.map(|c| decode_page_cursor(c, &["pk", "sk"], ("pk", &partition))).transpose()?;
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
                query = query
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status));
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
                        HashMap::from([
                            ("pk".to_owned(), s(format!("LOG#{webhook_id}"))),
                            ("sk".to_owned(), s(sk.clone())),
                        ])
                    });
                    return Ok(Page {
                        items: entries.into_iter().map(|(e, _)| e).collect(),
                        next_cursor: encode_cursor(next.as_ref()),
                    });
                }
                _ => return Ok(Page { items: entries.into_iter().map(|(e, _)| e).collect(), next_cursor: None }),
            }
        }
    }

    /// The payload of an event delivered (or tried) to a webhook, if the log still keeps it.
    pub async fn kept_payload(
        &self,
        webhook_id: &str,
        webhook_message_id: &str,
        now: i64,
    ) -> Result<Option<(Event, String)>, StoreError> {
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
    ///
    /// A delivery re-sent by a replay (`slot` given) goes back to its original place: same
    /// sort key (park time) and same expiry, counted once even when two receives park it.
    /// The webhook's `parked_count` changes in the same transaction as the park, so views read
    /// a maintained counter. Only a failed limit condition means full; a transaction cancelled
    /// by a conflict or a throttle is tried again.
    pub async fn park(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        limit: u64,
        now: i64,
        ttl_seconds: i64,
        slot: Option<&ParkSlot>,
    ) -> Result<ParkOutcome, StoreError> {
        let (sort_key, expires_at) = match slot {
            Some(slot) => (slot.sort_key.clone(), slot.expires_at),
            None => (park_sort_key(time::OffsetDateTime::now_utc(), &d.delivery_id), now + ttl_seconds),
        };
        let mut swept = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.park_once(d, guard, limit, &sort_key, expires_at).await? {
                None => {
                    if slot.is_some() {
                        self.lower_sweep_time(&d.webhook_id, expires_at).await?;
                    }
                    return Ok(ParkOutcome::Parked);
                }
                Some(ParkCancelled::AlreadyParked) => return Ok(ParkOutcome::Parked),
                Some(ParkCancelled::NotDisabled) => return Ok(ParkOutcome::Send),
                Some(ParkCancelled::Transient) if attempt < TRANSACTION_ATTEMPTS => {
                    tokio::time::sleep(crate::batch_get::backoff(attempt)).await;
                }
                Some(ParkCancelled::Transient) => {
                    return Err(StoreError::Unavailable {
                        operation: "TransactWriteItems",
                        source: "cancelled by conflicts".into(),
                    });
                }
                Some(ParkCancelled::LimitOrGuard) => {
                    let record = self.health(&d.webhook_id).await?;
                    if let ParkGuard::Tripped(max) = guard
                        && record.health.consecutive_failures < max
                    {
                        return Ok(ParkOutcome::Send);
                    }
                    // Expired deliveries still hold slots until a sweep counts them: one
                    // bounded sweep, only when one of them may have expired.
                    if swept || record.park_sweep_at.is_none_or(|at| at > now) {
                        return Ok(ParkOutcome::Full);
                    }
                    swept = true;
                    if self.sweep_expired(&d.webhook_id, now, SWEEP_PAGE).await? == 0 {
                        return Ok(ParkOutcome::Full);
                    }
                }
            }
        }
    }

    /// One park transaction: `None` when it went through.
    async fn park_once(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        limit: u64,
        sort_key: &str,
        expires_at: i64,
    ) -> Result<Option<ParkCancelled>, StoreError> {
        let body = serde_json::to_string(d).map_err(unavailable("serialize"))?;
        let put = Put::builder()
            .table_name(&self.deliveries_table)
            .item("pk", s(format!("PARK#{}", d.webhook_id)))
            .item("sk", s(sort_key))
            .item("delivery", s(body))
            .item("park_expires_at", n(expires_at))
            .item("expires_at", n(expires_at + PARK_STORAGE_GRACE_SECONDS))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(unavailable("build"))?;
        let mut counter = Update::builder()
            .table_name(&self.health_table)
            .set_key(Some(key(d.webhook_id.clone(), None)))
            .update_expression("ADD parked_count :one SET park_sweep_at = if_not_exists(park_sweep_at, :exp)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":limit", n(limit));
        counter = match guard {
            ParkGuard::Tripped(max) => counter
                .condition_expression(
                    "(attribute_not_exists(parked_count) OR parked_count < :limit) AND consecutive_failures >= :max",
                )
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
        match result {
            Ok(_) => Ok(None),
            Err(e) => cancellation(&e).map(Some).ok_or_else(|| unavailable("TransactWriteItems")(e)),
        }
    }

    /// Makes the webhook's next sweep time no later than `expires_at` (a delivery parked again
    /// with its original, earlier expiry).
    async fn lower_sweep_time(&self, id: &str, expires_at: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("SET park_sweep_at = :exp")
            .condition_expression("attribute_not_exists(park_sweep_at) OR park_sweep_at > :exp")
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await;
        ignore_condition(result.map(|_| ()), "UpdateItem")
    }

    /// Removes up to `limit` expired parked deliveries of a webhook (oldest first, keys only:
    /// no payload is read), each counted as dropped (`park_expired`) in the same transaction
    /// that removes it, so a sweep racing another counts each once. Returns how many it
    /// removed; moves the webhook's next sweep time to the oldest delivery still kept.
    pub async fn sweep_expired(&self, webhook_id: &str, now: i64, limit: i32) -> Result<u64, StoreError> {
        let before = self.health(webhook_id).await?.park_sweep_at;
        let out = self
            .client
            .query()
            .table_name(&self.deliveries_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("PARK#{webhook_id}")))
            .projection_expression("sk, park_expires_at, expires_at")
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(unavailable("Query"))?;
        let more = out.last_evaluated_key.as_ref().is_some_and(|k| !k.is_empty());
        let mut removed = 0;
        let mut next = None;
        for item in out.items.unwrap_or_default() {
            let sk = get_s(&item, "sk").unwrap_or_default();
            let expires_at = park_expiry(&item);
            if expired(expires_at, now) {
                if self.remove_parked(webhook_id, &sk, Some(DropReason::ParkExpired)).await? {
                    removed += 1;
                }
            } else {
                next = Some(next.map_or(expires_at, |n: i64| n.min(expires_at)));
            }
        }
        if let Some(before) = before {
            self.move_sweep_time(webhook_id, before, next.or(more.then_some(now))).await?;
        }
        Ok(removed)
    }

    /// Sets the next sweep time from `before` (read by this sweep) to `next`; `None` removes it
    /// when nothing is parked. A concurrent change wins: a later sweep sets it right.
    async fn move_sweep_time(&self, id: &str, before: i64, next: Option<i64>) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
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
        ignore_condition(request.send().await.map(|_| ()), "UpdateItem")
    }

    /// Removes one parked delivery and gives back its slot, in one transaction; with a reason,
    /// counts it as dropped too. `false` when it was not there any more.
    pub async fn remove_parked(
        &self,
        webhook_id: &str,
        sort_key: &str,
        dropped: Option<DropReason>,
    ) -> Result<bool, StoreError> {
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.deliveries_table)
                .set_key(Some(key(format!("PARK#{webhook_id}"), Some(sort_key))))
                .condition_expression("attribute_exists(sk)")
                .build()
                .map_err(unavailable("build"))?;
            let mut counter = Update::builder()
                .table_name(&self.health_table)
                .set_key(Some(key(webhook_id.to_owned(), None)))
                .expression_attribute_values(":minus", n(-1));
            counter = match dropped {
                Some(reason) => counter
                    .update_expression("ADD parked_count :minus, #d :one")
                    .expression_attribute_names("#d", format!("dropped_{}", reason.as_str()))
                    .expression_attribute_values(":one", n(1)),
                None => counter.update_expression("ADD parked_count :minus"),
            };
            let actions = vec![
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().update(counter.build().map_err(unavailable("build"))?).build(),
            ];
            let result = self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
            match result {
                Ok(_) => return Ok(true),
                Err(e) => match cancellation(&e) {
                    // The delete's condition: another replay or sweep removed it first.
                    Some(ParkCancelled::AlreadyParked) => return Ok(false),
                    Some(_) if attempt < TRANSACTION_ATTEMPTS => {
                        tokio::time::sleep(crate::batch_get::backoff(attempt)).await
                    }
                    _ => return Err(unavailable("TransactWriteItems")(e)),
                },
            }
        }
        Err(StoreError::Unavailable { operation: "TransactWriteItems", source: "cancelled by conflicts".into() })
    }

    /// Up to `limit` parked deliveries, oldest first, after `after` and before `until` (sort
    /// keys): a replay covers what was parked before it started. `true` when more may follow.
    pub async fn parked_page(
        &self,
        webhook_id: &str,
        after: Option<&str>,
        until: &str,
        limit: i32,
    ) -> Result<(Vec<ParkedDelivery>, bool), StoreError> {
        let start = after.map(|sk| key(format!("PARK#{webhook_id}"), Some(sk)));
        let out = self
            .client
            .query()
            .table_name(&self.deliveries_table)
            .key_condition_expression("pk = :pk AND sk < :until")
            .expression_attribute_values(":pk", s(format!("PARK#{webhook_id}")))
            .expression_attribute_values(":until", s(until))
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
                expires_at: park_expiry(&item),
            });
        }
        Ok((parked, more))
    }

    /// Removes parked deliveries that were re-sent and gives back their slots.
    pub async fn unpark(&self, webhook_id: &str, sort_keys: &[String]) -> Result<(), StoreError> {
        for sk in sort_keys {
            self.remove_parked(webhook_id, sk, None).await?;
        }
        Ok(())
    }

    /// Removes up to `limit` parked deliveries of a deleted webhook (keys only, one batch
    /// write per 25). Returns how many it removed and whether more remain.
    pub async fn purge_parked(&self, webhook_id: &str, limit: i32) -> Result<(u64, bool), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.deliveries_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("PARK#{webhook_id}")))
            .projection_expression("pk, sk")
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(unavailable("Query"))?;
        let more = out.last_evaluated_key.as_ref().is_some_and(|k| !k.is_empty());
        let items = out.items.unwrap_or_default();
        let removed = items.len() as u64;
        for chunk in items.chunks(BATCH_WRITE_ITEMS) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let key = item
                        .iter()
                        .filter(|(k, _)| *k == "pk" || *k == "sk")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    DeleteRequest::builder()
                        .set_key(Some(key))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<_, _>>()
                .map_err(unavailable("build"))?;
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.deliveries_table, requests)
                    .send()
                    .await
                    .map_err(unavailable("BatchWriteItem"))?;
                requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.deliveries_table)).unwrap_or_default();
                if !requests.is_empty() {
                    if attempt >= crate::batch_get::MAX_ATTEMPTS {
                        return Err(StoreError::Unavailable {
                            operation: "BatchWriteItem",
                            source: "items left unprocessed".into(),
                        });
                    }
                    tokio::time::sleep(crate::batch_get::backoff(attempt)).await;
                }
            }
        }
        Ok((removed, more))
    }

    // ------------------------------------------------------------------ replay requests

    /// A success that ends a failure streak, recorded with a replay request when something is
    /// parked (one write: the request cannot be lost between the two). Returns the record as
    /// it was before.
    pub async fn record_success_requesting_replay(&self, id: &str, at: &str) -> Result<HealthRecord, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("SET consecutive_failures = :zero, last_success_at = :at, replay_requested_at = :at REMOVE failing_since, probe_id, probe_until")
            .condition_expression("parked_count > :zero AND consecutive_failures > :zero")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(at))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.as_ref().map(HealthRecord::from_item).unwrap_or_default()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                self.record_success(id, at).await
            }
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    /// Clears a replay request once its replay is queued (only that request).
    pub async fn clear_replay_request(&self, id: &str, requested_at: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.health_table)
            .set_key(Some(key(id.to_owned(), None)))
            .update_expression("REMOVE replay_requested_at")
            .condition_expression("replay_requested_at = :at")
            .expression_attribute_values(":at", s(requested_at))
            .send()
            .await;
        ignore_condition(result.map(|_| ()), "UpdateItem")
    }

    // ------------------------------------------------------------------ deactivation

    /// Disables an active webhook for `reason`, marking `alert` (JSON) pending on it. `true`
    /// for the one call that won: only it publishes the alert.
    pub async fn deactivate(
        &self,
        webhook_id: &str,
        reason: DisabledReason,
        alert: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_items_by_time_within_a_second() -> Result<(), Box<dyn std::error::Error>> {
        // GIVEN instants within one second, one of them on the whole second
        let base = time::OffsetDateTime::from_unix_timestamp(1_796_000_000)?;
        let times: Vec<time::OffsetDateTime> = [0, 1, 10, 100, 120, 500, 999]
            .iter()
            .map(|ms| base + time::Duration::milliseconds(*ms))
            .chain([base + time::Duration::seconds(1)])
            .collect();
        // WHEN they become sort keys THEN the keys sort as the instants do, at a fixed width
        let keys: Vec<String> = times.iter().map(|t| park_sort_key(*t, "dlv_x")).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert!(keys.iter().all(|k| k.len() == keys[0].len()), "{keys:?}");
        Ok(())
    }
}
