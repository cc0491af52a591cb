//! The delivery log in DeliveriesTable (`LOG#<webhook>`): one entry per attempt or parking,
//! newest first, kept `WEBHOOKS_LOG_TTL`; its index `gsi1` finds the entries of one message,
//! `gsi2` those of one event type.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use webhooks_core::event::Event;
use webhooks_core::log_query::{LogFilter, LoggedAttempt};
use webhooks_core::resources::{LogEntry, log_status};

use crate::attempts::DynamoDbAttempts;
use crate::dynamodb::{Page, StoreError, decode_page_cursor, encode_cursor};
use crate::item::{get_s, n, s, unavailable};
use crate::keys::{log_pk, log_sk, log_sk_delivery, log_type_pk, message_pk, sort_time};

/// The log's index by event type (`TYPE#<webhook>#<type>`, the entry's sort key): it keeps the
/// entries without their payloads.
const TYPE_INDEX: &str = "gsi2";

/// A log entry keeps at most this much of a failure's response body (SPEC §5).
pub const LOGGED_RESPONSE_BYTES: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct LogItem {
    #[serde(flatten)]
    entry: LogEntry,
    /// The payload, kept with the log so a delivery can be re-sent on request.
    event: Option<Event>,
}

/// The delivery log of DeliveriesTable.
#[derive(Debug, Clone)]
pub struct DynamoDbDeliveryLog {
    client: Client,
    table: String,
}

impl DynamoDbDeliveryLog {
    pub fn new(client: Client, deliveries_table: String) -> Self {
        Self { client, table: deliveries_table }
    }

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
        let at = time::OffsetDateTime::parse(&entry.attempted_at, &time::format_description::well_known::Rfc3339)
            .map_or_else(|_| entry.attempted_at.clone(), sort_time);
        attributes.insert("pk".into(), s(log_pk(webhook_id)));
        let sk = log_sk(&at, delivery_id, entry.attempt);
        attributes.insert("sk".into(), s(sk.clone()));
        attributes.insert("gsi2sk".into(), s(sk));
        attributes.insert("gsi1pk".into(), s(message_pk(webhook_id, &entry.webhook_message_id)));
        attributes.insert("gsi1sk".into(), s(at.clone()));
        attributes.insert("gsi2pk".into(), s(log_type_pk(webhook_id, &entry.event_type)));
        attributes.insert("expires_at".into(), n(expires_at));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attributes))
            .send()
            .await
            .map_err(unavailable("PutItem"))?;
        Ok(())
    }

    /// A page of a webhook's log, newest first, narrowed by `filter`. The read is bounded by
    /// keys: a time range is a condition on the sort key (it starts with the attempt's time),
    /// an event type picks the type index's partition; status and event id only filter what
    /// those keys select.
    pub async fn log_page(
        &self,
        webhook_id: &str,
        filter: &LogFilter,
        limit: usize,
        cursor: Option<&str>,
        now: i64,
    ) -> Result<Page<LogEntry>, StoreError> {
        let table_partition = log_pk(webhook_id);
        let (index, (pk_name, sk_name), partition) = match &filter.event_type {
            Some(t) => (Some(TYPE_INDEX), ("gsi2pk", "gsi2sk"), log_type_pk(webhook_id, t)),
            None => (None, ("pk", "sk"), table_partition.clone()),
        };
        let low = filter.since.map(sort_time);
        let high = filter.until.map(sort_time);
        let mut start = match cursor {
            None => None,
            Some(c) => {
                let names: &[&str] = if index.is_some() { &["pk", "sk", "gsi2pk", "gsi2sk"] } else { &["pk", "sk"] };
                let key = decode_page_cursor(c, names, (pk_name, &partition))?;
                // A cursor of another list (other filters) could start outside this one's keys.
                let at = key.get(sk_name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
                let inside = low.as_deref().is_none_or(|l| at >= l) && high.as_deref().is_none_or(|h| at < h);
                if !inside || key.get("pk").and_then(|v| v.as_s().ok()) != Some(&table_partition) {
                    return Err(StoreError::InvalidCursor);
                }
                Some(key)
            }
        };
        let key_condition = match (&low, &high) {
            (Some(_), Some(_)) => "#pk = :pk AND #sk BETWEEN :low AND :high",
            (Some(_), None) => "#pk = :pk AND #sk >= :low",
            (None, Some(_)) => "#pk = :pk AND #sk < :high",
            (None, None) => "#pk = :pk",
        };
        let mut entries: Vec<(LogEntry, String)> = Vec::new();
        let mut filters = vec!["expires_at > :now".to_owned()];
        if filter.status.is_some() {
            filters.push("#status = :status".into());
        }
        if filter.event_id.is_some() {
            filters.push("event_id = :event".into());
        }
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(key_condition)
                .filter_expression(filters.join(" AND "))
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(partition.clone()))
                .expression_attribute_values(":now", n(now))
                .scan_index_forward(false)
                .limit(i32::try_from(limit - entries.len()).unwrap_or(100))
                .set_exclusive_start_key(start.take());
            // DynamoDB refuses a name the expressions do not use.
            if low.is_some() || high.is_some() {
                query = query.expression_attribute_names("#sk", sk_name);
            }
            if let Some(low) = &low {
                query = query.expression_attribute_values(":low", s(low.clone()));
            }
            if let Some(high) = &high {
                // BETWEEN includes its bounds: an entry at `until` sorts after `high` (its key
                // goes on after the time), so the range stays half-open.
                query = query.expression_attribute_values(":high", s(high.clone()));
            }
            if let Some(status) = &filter.status {
                query = query
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.clone()));
            }
            if let Some(event_id) = &filter.event_id {
                query = query.expression_attribute_values(":event", s(event_id.clone()));
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
                        let mut key = HashMap::from([
                            ("pk".to_owned(), s(table_partition.clone())),
                            ("sk".to_owned(), s(sk.clone())),
                        ]);
                        if index.is_some() {
                            key.insert("gsi2pk".to_owned(), s(partition.clone()));
                            key.insert("gsi2sk".to_owned(), s(sk.clone()));
                        }
                        key
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

    /// What a range replay needs of a webhook's entries attempted from `since` on that keep a
    /// payload (oldest first; never the payloads themselves): one Query of the sort key's
    /// range, all pages.
    pub async fn replay_window(
        &self,
        webhook_id: &str,
        since: OffsetDateTime,
        now: i64,
    ) -> Result<Vec<LoggedAttempt>, StoreError> {
        let mut start = None;
        let mut window = Vec::new();
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk >= :low")
                .filter_expression("expires_at > :now AND attribute_exists(#event)")
                .projection_expression("sk, webhook_message_id, #status, attempted_at, next_attempt_at")
                .expression_attribute_names("#event", "event")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":pk", s(log_pk(webhook_id)))
                .expression_attribute_values(":low", s(sort_time(since)))
                .expression_attribute_values(":now", n(now))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable("Query"))?;
            for item in out.items.unwrap_or_default() {
                let instant = |name: &str| get_s(&item, name).and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok());
                let sk = get_s(&item, "sk").unwrap_or_default();
                let (Some(delivery_id), Some(message), Some(status), Some(attempted_at)) = (
                    log_sk_delivery(&sk),
                    get_s(&item, "webhook_message_id"),
                    get_s(&item, "status"),
                    instant("attempted_at"),
                ) else {
                    continue;
                };
                window.push(LoggedAttempt {
                    webhook_message_id: message,
                    delivery_id: delivery_id.to_owned(),
                    status,
                    attempted_at,
                    next_attempt_at: instant("next_attempt_at"),
                });
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(window),
            }
        }
    }

    /// Whether the log keeps a `succeeded` entry of a message to a webhook attempted before
    /// `before`.
    pub async fn succeeded_before(
        &self,
        webhook_id: &str,
        webhook_message_id: &str,
        before: OffsetDateTime,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk AND gsi1sk < :before")
                .filter_expression("expires_at > :now AND #status = :succeeded")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":pk", s(message_pk(webhook_id, webhook_message_id)))
                .expression_attribute_values(":before", s(sort_time(before)))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":succeeded", s(log_status::SUCCEEDED))
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable("Query"))?;
            if out.count > 0 {
                return Ok(true);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(false),
            }
        }
    }

    /// The attempt records of the same table (whether a logged delivery was delivered).
    pub fn attempts(&self) -> DynamoDbAttempts {
        DynamoDbAttempts::new(self.client.clone(), self.table.clone())
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
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk")
            .filter_expression("expires_at > :now AND attribute_exists(event)")
            .expression_attribute_values(":pk", s(message_pk(webhook_id, webhook_message_id)))
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
}
