//! What the matching benchmark measures: one event against the index entries of its project,
//! prepared in memory, as the matcher has them after its reads.
//!
//! [`matcher_loop`] is the matcher's per-event loop (`matcher::Matcher::plan`, which is private)
//! restated step for step: for each partition of the event, each entry not seen yet, look up
//! the owner key, build the `Selection`, apply `webhooks_core::matching::matches`, and build a
//! delivery message per match. Keep the two in step; if the loop moves into `webhooks-core`
//! as a function of its own, call it here instead.
//!
//! [`PreparedIndex`] and [`TypeIndex`] are the alternatives the report compares it with: the
//! same rules over selections built once per batch, and over entries grouped by event type.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_aws::dynamodb::{IndexEntry, StoredKey};
use webhooks_core::event::Event;
use webhooks_core::matching::{OwnerView, matches, partitions_for_event, project_partition};
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

/// The matcher's per-event loop over what it read (see the module docs): the delivery
/// messages of one event.
pub fn matcher_loop(candidates: &Candidates, event: &Event, queued_at: i64) -> Vec<DeliveryQueueMessage> {
    let message_id = webhook_message_id(&event.source, &event.id);
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
                }));
            }
        }
    }
    plan
}

/// One entry with its selection built and its owner resolved, once per batch.
#[derive(Debug, Clone)]
struct Prepared<'a> {
    webhook_id: &'a str,
    selection: Selection,
    owner: OwnerView<'a>,
}

/// The same rules over selections built once per batch: per event only `matches` runs.
#[derive(Debug)]
pub struct PreparedIndex<'a> {
    by_partition: HashMap<&'a str, Vec<Prepared<'a>>>,
}

impl<'a> PreparedIndex<'a> {
    pub fn new(candidates: &'a Candidates) -> Self {
        let by_partition = candidates
            .by_partition
            .iter()
            .map(|(partition, entries)| (partition.as_str(), entries.iter().map(|e| prepare(candidates, e)).collect()))
            .collect();
        Self { by_partition }
    }

    /// The ids of the webhooks `event` is for.
    pub fn matching(&self, event: &Event) -> Vec<&'a str> {
        let mut found: Vec<&'a str> = Vec::new();
        for partition in partitions_for_event(event) {
            for p in self.by_partition.get(partition.as_str()).into_iter().flatten() {
                if matches(&p.selection, p.owner, event) && !found.contains(&p.webhook_id) {
                    found.push(p.webhook_id);
                }
            }
        }
        found
    }
}

fn prepare<'a>(candidates: &'a Candidates, entry: &'a IndexEntry) -> Prepared<'a> {
    let owner = candidates.owners.get(&entry.owner_key_id);
    Prepared {
        webhook_id: &entry.webhook_id,
        selection: Selection { events: entry.events.clone(), scopes: entry.scopes.clone() },
        owner: OwnerView { active: owner.is_some(), companies: owner.map(|o| o.key.companies.as_slice()).unwrap_or_default() },
    }
}

/// Entries grouped by the event types they select (an empty list under every type), so an
/// event only meets the entries of its own type: what rule 1 leaves, rules 2 and 3 decide.
#[derive(Debug)]
pub struct TypeIndex<'a> {
    by_type: HashMap<(&'a str, &'a str), Vec<Prepared<'a>>>,
    all_types: HashMap<&'a str, Vec<Prepared<'a>>>,
}

impl<'a> TypeIndex<'a> {
    pub fn new(candidates: &'a Candidates) -> Self {
        let mut by_type: HashMap<(&str, &str), Vec<Prepared>> = HashMap::new();
        let mut all_types: HashMap<&str, Vec<Prepared>> = HashMap::new();
        for (partition, entries) in &candidates.by_partition {
            for entry in entries {
                if entry.events.is_empty() {
                    all_types.entry(partition.as_str()).or_default().push(prepare(candidates, entry));
                }
                for t in &entry.events {
                    by_type.entry((partition.as_str(), t.as_str())).or_default().push(prepare(candidates, entry));
                }
            }
        }
        Self { by_type, all_types }
    }

    /// The ids of the webhooks `event` is for.
    pub fn matching(&self, event: &Event) -> Vec<&'a str> {
        let mut found: Vec<&'a str> = Vec::new();
        for partition in partitions_for_event(event) {
            let typed = self.by_type.get(&(partition.as_str(), event.event_type.as_str()));
            let untyped = self.all_types.get(partition.as_str());
            for p in typed.into_iter().chain(untyped).flatten() {
                if matches(&p.selection, p.owner, event) && !found.contains(&p.webhook_id) {
                    found.push(p.webhook_id);
                }
            }
        }
        found
    }
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

    #[test]
    fn every_variant_finds_the_same_matches() {
        for n in [1, 100, 1000] {
            // GIVEN n subscriptions in the event's project, at most 10 selecting its type
            let c = candidates(n);
            let e = event("evt-1");
            // WHEN each variant matches the event
            let looped: Vec<String> = matcher_loop(&c, &e, 0)
                .into_iter()
                .filter_map(|m| match m {
                    DeliveryQueueMessage::Delivery(d) => Some(d.webhook_id),
                    DeliveryQueueMessage::Replay(_) => None,
                })
                .collect();
            let prepared = PreparedIndex::new(&c);
            let typed = TypeIndex::new(&c);
            // THEN all find exactly the first min(n, 10)
            assert_eq!(looped.len(), n.min(MATCHING), "n = {n}");
            assert_eq!(prepared.matching(&e), looped.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(typed.matching(&e), looped.iter().map(String::as_str).collect::<Vec<_>>());
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
