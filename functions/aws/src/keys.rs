//! Every key format of the three tables, in one place.
//!
//! | table | item | pk | sk |
//! |---|---|---|---|
//! | SubscriptionsTable | API key | `KEY#<id>` | `KEY` |
//! | | key lookup by secret | `KEYHASH#<sha256>` | `KEYHASH` |
//! | | webhook | `WH#<id>` | `WH` |
//! | | match index entry | `IDX#<partition>` | `<webhook id>` |
//! | | idempotency record | `IDEM#<caller key id>#<sha256 of the Idempotency-Key>` | `IDEM` |
//! | EventsTable | an event's de-duplication claim | `EVT#<webhook-id>` | |
//! | HealthTable | a webhook's counters | `<webhook id>` | |
//! | | an API key's publishing pace | `PUB#<key id>` | |
//! | DeliveriesTable | attempts of a delivery | `ATT#<delivery id>` | `ATT` |
//! | | log entry | `LOG#<webhook>` | `<attempted at>#<delivery id>#<attempt>` |
//! | | parked delivery | `PARK#<webhook>` | `<parked at>#<delivery id>` |
//!
//! The log's index `gsi1` finds the entries of one message: `MSG#<webhook>#<webhook-id>` /
//! `<attempted at>`; its index `gsi2` those of one event type: `TYPE#<webhook>#<type>` / the
//! entry's sort key (so a time range is a key condition there too).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::item::s;

/// A key of `pk` and, for tables that have one, `sk`.
pub(crate) fn key(pk: String, sk: Option<&str>) -> HashMap<String, AttributeValue> {
    let mut k = HashMap::from([("pk".to_owned(), s(pk))]);
    if let Some(sk) = sk {
        k.insert("sk".to_owned(), s(sk));
    }
    k
}

// ---------------------------------------------------------------------- SubscriptionsTable

pub(crate) const KEY_SK: &str = "KEY";
pub(crate) const KEY_HASH_SK: &str = "KEYHASH";
pub(crate) const WEBHOOK_SK: &str = "WH";
pub(crate) const IDEMPOTENCY_SK: &str = "IDEM";

pub(crate) fn key_pk(id: &str) -> String {
    format!("KEY#{id}")
}

pub(crate) fn key_hash_pk(sha256: &str) -> String {
    format!("KEYHASH#{sha256}")
}

pub(crate) fn webhook_pk(id: &str) -> String {
    format!("WH#{id}")
}

pub(crate) fn index_pk(partition: &str) -> String {
    format!("IDX#{partition}")
}

/// The idempotency record of a caller's `Idempotency-Key` (hashed: any visible ASCII, fixed length).
pub(crate) fn idempotency_pk(caller_key_id: &str, header_sha256: &str) -> String {
    format!("IDEM#{caller_key_id}#{header_sha256}")
}

/// The key of a webhook's item.
pub(crate) fn webhook_key(id: &str) -> HashMap<String, AttributeValue> {
    key(webhook_pk(id), Some(WEBHOOK_SK))
}

// ---------------------------------------------------------------------- EventsTable

/// The de-duplication claim of an event (its `webhook-id`).
pub(crate) fn event_pk(event_key: &str) -> String {
    format!("EVT#{event_key}")
}

// ---------------------------------------------------------------------- HealthTable

/// The key of an API key's publishing pace (the publish limit).
pub(crate) fn publish_pace_key(key_id: &str) -> HashMap<String, AttributeValue> {
    key(format!("PUB#{key_id}"), None)
}

/// The key of a webhook's counters.
pub(crate) fn health_key(webhook_id: &str) -> HashMap<String, AttributeValue> {
    key(webhook_id.to_owned(), None)
}

// ---------------------------------------------------------------------- DeliveriesTable

/// The key of a delivery's attempt record.
pub(crate) fn attempt_key(delivery_id: &str) -> HashMap<String, AttributeValue> {
    key(format!("ATT#{delivery_id}"), Some("ATT"))
}

pub(crate) fn log_pk(webhook_id: &str) -> String {
    format!("LOG#{webhook_id}")
}

/// A log entry's sort key: when, which delivery, which attempt (`P` for a parking).
pub(crate) fn log_sk(attempted_at: &str, delivery_id: &str, attempt: Option<u32>) -> String {
    let attempt = attempt.map_or_else(|| "P".to_owned(), |a| format!("{a:02}"));
    format!("{attempted_at}#{delivery_id}#{attempt}")
}

/// The log index's partition: the entries of one message to one webhook.
pub(crate) fn message_pk(webhook_id: &str, webhook_message_id: &str) -> String {
    format!("MSG#{webhook_id}#{webhook_message_id}")
}

/// The log's type index partition: the entries of one event type for one webhook.
pub(crate) fn log_type_pk(webhook_id: &str, event_type: &str) -> String {
    format!("TYPE#{webhook_id}#{event_type}")
}

/// The delivery id in a log entry's sort key.
pub(crate) fn log_sk_delivery(sk: &str) -> Option<&str> {
    sk.split('#').nth(1)
}

pub(crate) fn park_pk(webhook_id: &str) -> String {
    format!("PARK#{webhook_id}")
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Sort-key times: RFC 3339 in UTC with exactly six fractional digits, so that keys sort as
/// the instants do (a variable number of digits puts `10:00:00Z` after `10:00:00.5Z`).
const SORT_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// An instant as the leading part of a sort key (fixed width).
pub fn sort_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(SORT_TIME).unwrap_or_else(|_| webhooks_core::event::format_utc(t))
}

/// The sort key of a parked delivery: when it was parked, then its id.
pub fn park_sort_key(parked_at: OffsetDateTime, delivery_id: &str) -> String {
    format!("{}#{delivery_id}", sort_time(parked_at))
}

/// The upper bound of a replay started at `t`: every delivery parked before `t` sorts below.
pub fn replay_bound(t: OffsetDateTime) -> String {
    sort_time(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_items_by_time_within_a_second() -> Result<(), Box<dyn std::error::Error>> {
        // GIVEN instants within one second, one of them on the whole second
        let base = OffsetDateTime::from_unix_timestamp(1_796_000_000)?;
        let times: Vec<OffsetDateTime> = [0, 1, 10, 100, 120, 500, 999]
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
