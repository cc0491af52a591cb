//! The delivery log in DeliveriesTable (`LOG#<webhook>`): one entry per attempt or parking,
//! newest first, kept `WEBHOOKS_LOG_TTL`; its index `gsi1` finds the entries of one message.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use webhooks_core::event::Event;
use webhooks_core::resources::LogEntry;

use crate::dynamodb::{Page, StoreError, decode_page_cursor, encode_cursor};
use crate::item::{get_s, n, s, unavailable};
use crate::keys::{log_pk, log_sk, message_pk, sort_time};

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
        attributes.insert("sk".into(), s(log_sk(&at, delivery_id, entry.attempt)));
        attributes.insert("gsi1pk".into(), s(message_pk(webhook_id, &entry.webhook_message_id)));
        attributes.insert("gsi1sk".into(), s(at));
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
        let partition = log_pk(webhook_id);
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
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .filter_expression(filters.join(" AND "))
                .expression_attribute_values(":pk", s(partition.clone()))
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
                        HashMap::from([("pk".to_owned(), s(partition.clone())), ("sk".to_owned(), s(sk.clone()))])
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
