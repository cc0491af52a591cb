//! What the matching benchmark measures: one event against the index entries of its project,
//! prepared in memory, as the matcher has them after its reads.
//!
//! [`shipped_index`] and [`shipped_match`] call the matcher's own functions: the index of what a
//! batch read, built once per batch, and the deliveries of one event from it. [`scan_loop`] is
//! the baseline the report compares them with: the loop the matcher had before the index,
//! which visits every entry of the project for every event.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_aws::dynamodb::{IndexEntry, StoredKey};
use webhooks_core::event::Event;
use webhooks_core::matching::{MatchIndex, OwnerView, matches, partitions_for_event, project_partition};
use webhooks_core::message::{Delivery, DeliveryQueueMessage};
use webhooks_core::model::{Scope, Selection};
use webhooks_core::resources::ApiKey;
use webhooks_core::signing::{delivery_id, webhook_message_id};

/// The event every matching benchmark matches.
pub const EVENT_TYPE: &str = "TODO_CREATED";
pub const COMPANY: &str = "acme";
pub const PROJECT: &str = "p1";
/// At most this many of a project's subscriptions match the event (the scenario).
pub const MATCHING: usize = 10;
/// A key owns at most 100 webhooks (`WEBHOOKS_MAX_WEBHOOKS_PER_KEY`): N subscriptions need N/100 keys.
const WEBHOOKS_PER_KEY: usize = 100;
/// Event types of the subscriptions that do not match: three each, none the event's.
const OTHER_TYPES: [&str; 6] =
    ["TODO_DELETED", "TODO_MOVED", "COMMENT_CREATED", "TAG_CREATED", "TODO_DONE_STATUS_UPDATED", "TODO_LIST_CREATED"];

/// The matcher's view of one project after its reads: entries by partition, owner keys by id.
#[derive(Debug, Clone)]
pub struct Candidates {
    pub by_partition: BTreeMap<String, Vec<IndexEntry>>,
    pub owners: HashMap<String, StoredKey>,
}

/// The event of the benchmark.
pub fn event(id: &str) -> Event {
    Event {
        id: id.to_owned(),
        source: format!("app/companies/{COMPANY}/projects/{PROJECT}"),
        event_type: EVENT_TYPE.to_owned(),
        company_id: COMPANY.to_owned(),
        project_id: PROJECT.to_owned(),
        time: "2026-11-28T10:00:00Z".to_owned(),
        data: serde_json::json!({"previousValue": null, "currentValue": {"id": "t1", "title": "Ship it"}}),
    }
}

/// `n` subscriptions scoped to the event's project, of which `min(n, MATCHING)` select the
/// event's type; every owner key is active and holds the company.
pub fn candidates(n: usize) -> Candidates {
    let entries: Vec<IndexEntry> = (0..n)
        .map(|i| {
            let events = if i < MATCHING {
                vec![EVENT_TYPE.to_owned(), "TODO_DELETED".to_owned()]
            } else {
                (0..3).map(|k| OTHER_TYPES[(i + k) % OTHER_TYPES.len()].to_owned()).collect()
            };
            IndexEntry {
                webhook_id: format!("wh_{i:026}"),
                owner_key_id: owner_id(i / WEBHOOKS_PER_KEY),
                events,
                scopes: vec![Scope::project(COMPANY, PROJECT)],
                filters: Vec::new(),
            }
        })
        .collect();
    let owners = (0..n.div_ceil(WEBHOOKS_PER_KEY))
        .map(|k| {
            let key = StoredKey {
                key: ApiKey {
                    id: owner_id(k),
                    name: format!("customer {k}"),
                    companies: vec![COMPANY.to_owned(), "globex".to_owned()],
                    permissions: vec![webhooks_core::model::Permission::Manage],
                    created_at: "2026-11-01T00:00:00Z".to_owned(),
                    last_used_at: None,
                },
                secret_sha256: "0".repeat(64),
                webhook_count: WEBHOOKS_PER_KEY as u32,
            };
            (owner_id(k), key)
        })
        .collect();
    let by_partition = BTreeMap::from([(project_partition(COMPANY, PROJECT), entries)]);
    Candidates { by_partition, owners }
}

fn owner_id(k: usize) -> String {
    format!("key_{k:020}")
}

/// What the matcher does per batch, before matching its events: the match index of what it
/// read (`matcher::match_index`).
pub fn shipped_index(candidates: &Candidates) -> MatchIndex<'_> {
    matcher::match_index(&candidates.by_partition, &candidates.owners)
}

/// What the matcher also builds once per batch: each webhook's owner key id, carried in its
/// delivery messages.
pub fn shipped_owners(candidates: &Candidates) -> HashMap<&str, &str> {
    candidates
        .by_partition
        .values()
        .flatten()
        .map(|entry| (entry.webhook_id.as_str(), entry.owner_key_id.as_str()))
        .collect()
}

/// What the matcher does per event (`matcher::first_deliveries`): the delivery messages of
/// one event, given the batch's index and owners and the event's message id (computed when
/// the record is parsed).
pub fn shipped_match(
    index: &MatchIndex<'_>,
    owner_of: &HashMap<&str, &str>,
    event: &Event,
    message_id: &str,
    queued_at: i64,
) -> Vec<DeliveryQueueMessage> {
    matcher::first_deliveries(index, owner_of, event, message_id, queued_at)
}

/// The baseline: the matcher's loop before the match index. For each partition of the event,
/// each entry not seen yet: look up the owner key, build the `Selection`, apply `matches`, and
/// build a delivery message per match: every entry of the project, for every event.
pub fn scan_loop(candidates: &Candidates, event: &Event, queued_at: i64) -> Vec<DeliveryQueueMessage> {
    let message_id = webhook_message_id(&event.company_id, &event.source, &event.id);
    let mut plan = Vec::new();
    let mut seen = BTreeSet::new();
    for partition in partitions_for_event(event) {
        for entry in candidates.by_partition.get(&partition).into_iter().flatten() {
            if !seen.insert(entry.webhook_id.clone()) {
                continue;
            }
            let owner = candidates.owners.get(&entry.owner_key_id);
            let view = OwnerView {
                active: owner.is_some(),
                companies: owner.map(|o| o.key.companies.as_slice()).unwrap_or_default(),
            };
            let selection = Selection { events: entry.events.clone(), scopes: entry.scopes.clone() };
            if matches(&selection, view, event) {
                plan.push(DeliveryQueueMessage::Delivery(Delivery {
                    delivery_id: delivery_id(&message_id, &entry.webhook_id, 0),
                    webhook_id: entry.webhook_id.clone(),
                    webhook_message_id: message_id.clone(),
                    event: event.clone(),
                    generation: 0,
                    queued_at,
                    send_at_ms: None,
                    owner_key_id: Some(entry.owner_key_id.clone()),
                }));
            }
        }
    }
    plan
}

/// The DynamoDB items of `entries`, as the subscriptions API writes them (serde_dynamo, plus
/// the partition and sort keys).
pub fn index_items(entries: &[IndexEntry]) -> Vec<HashMap<String, AttributeValue>> {
    entries
        .iter()
        .map(|entry| {
            let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(entry).unwrap_or_default();
            item.insert("pk".into(), AttributeValue::S(format!("IDX#{}", project_partition(COMPANY, PROJECT))));
            item.insert("sk".into(), AttributeValue::S(entry.webhook_id.clone()));
            item
        })
        .collect()
}

/// What the matcher does with each item of a Query page.
pub fn decode_items(items: Vec<HashMap<String, AttributeValue>>) -> Result<Vec<IndexEntry>, serde_dynamo::Error> {
    items.into_iter().map(serde_dynamo::from_item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook_ids(messages: Vec<DeliveryQueueMessage>) -> Vec<String> {
        messages
            .into_iter()
            .filter_map(|m| match m {
                DeliveryQueueMessage::Delivery(d) => Some(d.webhook_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn shipped_and_baseline_find_the_same_matches() {
        for n in [1, 100, 1000] {
            // GIVEN n subscriptions in the event's project, at most 10 selecting its type
            let c = candidates(n);
            let e = event("evt-1");
            let message_id = webhook_message_id(&e.company_id, &e.source, &e.id);
            // WHEN the matcher's functions and the baseline loop match the event
            let index = shipped_index(&c);
            let shipped = webhook_ids(shipped_match(&index, &shipped_owners(&c), &e, &message_id, 0));
            let baseline = webhook_ids(scan_loop(&c, &e, 0));
            // THEN both find exactly the first min(n, 10)
            let expected: Vec<String> = (0..n.min(MATCHING)).map(|i| format!("wh_{i:026}")).collect();
            assert_eq!(shipped, expected, "n = {n}");
            assert_eq!(baseline, expected, "n = {n}");
        }
    }

    #[test]
    fn items_decode_back_to_their_entries() {
        // GIVEN index entries written as DynamoDB items WHEN decoded THEN they are unchanged
        let c = candidates(3);
        let entries = &c.by_partition[&project_partition(COMPANY, PROJECT)];
        let decoded = decode_items(index_items(entries)).unwrap_or_default();
        assert_eq!(&decoded, entries);
    }
}
