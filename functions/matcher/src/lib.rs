//! The matcher: validates each ingest record on its own, sends refused ones to the ingest DLQ
//! with their reason, and fans valid events out to the delivery queue, one message per
//! (event, webhook) pair.
//!
//! Cost per batch (SPEC §4): one claim per distinct event, one Query (all pages, strongly
//! consistent) per distinct (company, project) and per distinct company, one BatchGetItem per
//! 100 distinct owner keys it does not hold in its cache; no Scan, no per-webhook reads.
//! Claims, Queries and completions each go out concurrently. Subscriptions are never cached,
//! so a webhook change applies to every event accepted after the API call returned; owner keys
//! are, for up to 60 s and only to let events through (`owner_cache`).
//!
//! A record is reported as failed (left on the queue for SQS to retry) only when the work
//! could not be done now; a malformed event is never retried, it goes to the DLQ at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::future::{join, join_all};
use lambda_runtime::LambdaEvent;
use tracing::{error, info, warn};
use webhooks_core::event::{Event, parse_ingest_body};
use webhooks_core::matching::{MatchIndex, OwnerView, Subscriber, partitions_for_event};
use webhooks_core::message::{Delivery, DeliveryQueueMessage};
use webhooks_core::ports::{
    Claim, Clock, DeliveryQueue, EventClaims, IndexEntry, IngestDeadLetters, MatchIndexReader, OwnerKeys, PortError,
    StoredKey,
};
use webhooks_core::signing::{delivery_id, webhook_message_id};

pub use crate::owner_cache::OwnerKeyCache;

mod owner_cache;

/// What the matcher needs, built once per execution environment: in production DynamoDB and
/// SQS (`main.rs`), in tests the in-memory ports of `webhooks_aws::memory`.
#[derive(Debug, Clone)]
pub struct Matcher<Index, Owners, Claims, Queue, DeadLetters, Time> {
    /// Where refused events go, with their reason.
    pub dead_letters: DeadLetters,
    /// The match index, read per partition.
    pub index: Index,
    /// The owner keys of the matched webhooks (the live gate of SPEC §4).
    pub owners: Owners,
    /// Event de-duplication.
    pub claims: Claims,
    /// The delivery queue.
    pub deliveries: Queue,
    /// Receipt time (an event's default `time`), claim leases and `queued_at`.
    pub clock: Time,
    /// Owner keys read by earlier batches, trusted for a while where they let events through.
    pub owner_cache: OwnerKeyCache,
}

/// A valid event of the batch and the records that carried it (duplicates within a batch
/// share one fan-out).
#[derive(Debug)]
struct Pending {
    event: Event,
    message_id: String,
    records: Vec<String>,
}

impl<Index, Owners, Claims, Queue, DeadLetters, Time> Matcher<Index, Owners, Claims, Queue, DeadLetters, Time>
where
    Index: MatchIndexReader + Sync,
    Owners: OwnerKeys + Sync,
    Claims: EventClaims + Sync,
    Queue: DeliveryQueue + Sync,
    DeadLetters: IngestDeadLetters + Sync,
    Time: Clock + Sync,
{
    /// Handles one SQS batch; the response lists the records to retry.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let received_at = self.clock.now();
        let mut failed: Vec<String> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut by_message_id: HashMap<String, usize> = HashMap::new();

        for record in event.payload.records {
            let record_id = record.message_id.clone().unwrap_or_default();
            let body = record.body.as_deref().unwrap_or_default();
            match parse_ingest_body(body, received_at) {
                Ok(event) => {
                    let message_id = webhook_message_id(&event.company_id, &event.source, &event.id);
                    match by_message_id.get(&message_id) {
                        Some(i) => pending[*i].records.push(record_id),
                        None => {
                            by_message_id.insert(message_id.clone(), pending.len());
                            pending.push(Pending { event, message_id, records: vec![record_id] });
                        }
                    }
                }
                Err(rejection) => {
                    if let Err(e) = self.reject(body, &rejection).await {
                        warn!(message_id = %record_id, error = %webhooks_aws::error_chain(&e), "could not dead-letter a refused event; it will be retried");
                        failed.push(record_id);
                    }
                }
            }
        }

        if !pending.is_empty() {
            let retry = self.fan_out(&pending, received_at.unix_timestamp()).await;
            for i in retry {
                failed.extend(pending[i].records.iter().cloned());
            }
        }
        Ok(webhooks_aws::batch::retry_only(failed))
    }

    async fn reject(&self, body: &str, rejection: &webhooks_core::event::EventError) -> Result<(), PortError> {
        webhooks_aws::metrics::rejected_event(rejection.code);
        info!(reason = rejection.code, field = %rejection.field, "event rejected");
        let detail = if rejection.field.is_empty() {
            rejection.message.clone()
        } else {
            format!("{}: {}", rejection.field, rejection.message)
        };
        self.dead_letters.reject(body, rejection.code, &detail).await
    }

    /// Fans the batch's events out; returns the indexes of events to retry.
    ///
    /// The claims and the reads do not depend on each other, so they go out together: an
    /// event's way to the delivery queue is two round trips (claims and Queries, the send)
    /// when its owner keys are cached, three when they must be read. The reads for an event that turns out to be a
    /// duplicate are wasted; that is rare.
    async fn fan_out(&self, pending: &[Pending], now: i64) -> Vec<usize> {
        let (claims, reads) =
            join(join_all(pending.iter().map(|p| self.claims.claim(&p.message_id, now))), self.read(pending)).await;
        let mut retry = Vec::new();
        let mut claimed = Vec::new();
        for ((i, p), claim) in pending.iter().enumerate().zip(claims) {
            match claim {
                Ok(Claim::Claimed) => claimed.push(i),
                Ok(Claim::Done) => info!(event_id = %p.event.id, "duplicate event skipped"),
                Ok(Claim::Busy) => {
                    info!(event_id = %p.event.id, "event is being fanned out elsewhere; retry later");
                    retry.push(i);
                }
                Err(e) => {
                    warn!(event_id = %p.event.id, error = %webhooks_aws::error_chain(&e), "claim failed");
                    retry.push(i);
                }
            }
        }
        if claimed.is_empty() {
            return retry;
        }
        let (candidates, owners) = match reads {
            Ok(reads) => reads,
            Err(e) => {
                error!(error = %webhooks_aws::error_chain(&e), "matching failed; the batch's events will be retried");
                retry.extend(claimed);
                return retry;
            }
        };

        let index = match_index(&candidates, &owners);
        let owner_of: HashMap<&str, &str> = candidates
            .values()
            .flatten()
            .map(|entry| (entry.webhook_id.as_str(), entry.owner_key_id.as_str()))
            .collect();
        let queued_at = (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
        let mut plan = Vec::new();
        for &i in &claimed {
            let p = &pending[i];
            for message in first_deliveries(&index, &owner_of, &p.event, &p.message_id, queued_at) {
                plan.push((i, message));
            }
        }

        let bodies: Vec<String> = plan.iter().map(|(_, m)| m.to_json()).collect();
        let unsent: BTreeSet<usize> = self.deliveries.send_all(&bodies).await.into_iter().map(|j| plan[j].0).collect();
        let mut done = Vec::new();
        for i in claimed {
            let p = &pending[i];
            if unsent.contains(&i) {
                // Claimed and partly sent: the lease expires before SQS hands the record back,
                // and the retry sends the same delivery ids again (at least once).
                retry.push(i);
                continue;
            }
            let deliveries = plan.iter().filter(|(e, _)| *e == i).count();
            info!(event_id = %p.event.id, event_type = %p.event.event_type, deliveries, "event fanned out");
            done.push(p);
        }
        let completed = join_all(done.iter().map(|p| self.claims.complete(&p.message_id, now))).await;
        for (p, result) in done.iter().zip(completed) {
            if let Err(e) = result {
                warn!(event_id = %p.event.id, error = %webhooks_aws::error_chain(&e), "could not mark the event done");
            }
        }
        retry
    }

    /// What matching the batch's events needs: the index entries of every partition they
    /// touch (one Query each, all at once) and those entries' owner keys.
    async fn read(
        &self,
        pending: &[Pending],
    ) -> Result<(BTreeMap<String, Vec<IndexEntry>>, HashMap<String, StoredKey>), PortError> {
        // Each partition the batch touches, with the event types its events there have: the
        // Query returns only entries selecting one of them (or every type).
        let mut partitions: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        let mut company_of: HashMap<String, &str> = HashMap::new();
        for p in pending {
            for partition in partitions_for_event(&p.event) {
                partitions.entry(partition.clone()).or_default().insert(p.event.event_type.as_str());
                company_of.insert(partition, p.event.company_id.as_str());
            }
        }
        let queried = join_all(partitions.iter().map(|(partition, event_types)| async move {
            self.index.index_entries(partition, event_types).await.map(|entries| (partition.clone(), entries))
        }))
        .await;
        let candidates: BTreeMap<String, Vec<IndexEntry>> = queried.into_iter().collect::<Result<_, _>>()?;
        // Each owner key with the companies it must hold to let this batch's events through.
        let mut needs: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for (partition, entries) in &candidates {
            let company = company_of.get(partition).copied().unwrap_or_default();
            for entry in entries {
                needs.entry(entry.owner_key_id.clone()).or_default().insert(company);
            }
        }
        let now = self.clock.now().unix_timestamp();
        let (mut owners, to_read) = self.owner_cache.serve(&needs, now);
        if !to_read.is_empty() {
            let read = self.owners.keys_by_ids(&to_read).await?;
            self.owner_cache.keep(&to_read, &read, now);
            owners.extend(read);
        }
        Ok((candidates, owners))
    }
}

/// The match index of what a batch read (index entries by partition, their owner keys by id),
/// built in one pass: an entry whose owner key was not found belongs to a deleted key.
pub fn match_index<'a>(
    candidates: &'a BTreeMap<String, Vec<IndexEntry>>,
    owners: &'a HashMap<String, StoredKey>,
) -> MatchIndex<'a> {
    let mut index = MatchIndex::default();
    for (partition, entries) in candidates {
        for entry in entries {
            let owner = owners.get(&entry.owner_key_id);
            let owner = OwnerView {
                active: owner.is_some(),
                companies: owner.map(|o| o.key.companies.as_slice()).unwrap_or_default(),
            };
            index.insert(
                partition,
                Subscriber {
                    webhook_id: &entry.webhook_id,
                    events: &entry.events,
                    scopes: &entry.scopes,
                    filters: &entry.filters,
                    owner,
                },
            );
        }
    }
    index
}

/// The first delivery of `event` (whose Standard Webhooks id is `message_id`) to each webhook
/// of `index` it matches, payload filters included: an event a webhook's filters exclude is no
/// delivery at all (nothing queued, logged or counted). Each carries its webhook's owner key
/// id from `owner_of`.
pub fn first_deliveries(
    index: &MatchIndex<'_>,
    owner_of: &HashMap<&str, &str>,
    event: &Event,
    message_id: &str,
    queued_at: i64,
) -> Vec<DeliveryQueueMessage> {
    index
        .matching(event)
        .into_iter()
        .map(|webhook_id| {
            DeliveryQueueMessage::Delivery(Delivery {
                delivery_id: delivery_id(message_id, webhook_id, 0),
                webhook_id: webhook_id.to_owned(),
                webhook_message_id: message_id.to_owned(),
                event: event.clone(),
                generation: 0,
                queued_at,
                send_at_ms: None,
                owner_key_id: owner_of.get(webhook_id).map(|id| (*id).to_owned()),
            })
        })
        .collect()
}
