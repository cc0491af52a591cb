//! The matcher: validates each ingest record on its own, sends refused ones to the ingest DLQ
//! with their reason, and fans valid events out to the delivery queue, one message per
//! (event, webhook) pair.
//!
//! Cost per batch (SPEC §4): one claim per distinct event, one Query (all pages, strongly
//! consistent) per distinct (company, project) and per distinct company, one BatchGetItem per
//! 100 distinct owner keys; no Scan, no per-webhook reads. Subscriptions are never cached, so
//! a webhook change applies to every event accepted after the API call returned.
//!
//! A record is reported as failed (left on the queue for SQS to retry) only when the work
//! could not be done now; a malformed event is never retried, it goes to the DLQ at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use time::OffsetDateTime;
use tracing::{error, info, warn};
use webhooks_aws::claims::{Claim, DynamoDbEventClaims};
use webhooks_aws::dynamodb::{DynamoDbSubscriptions, IndexEntry, StoredKey};
use webhooks_aws::sqs::{SqsBatchSender, SqsIngestDeadLetters};
use webhooks_core::event::{Event, parse_ingest_body};
use webhooks_core::matching::{MatchIndex, OwnerView, Subscriber, partitions_for_event};
use webhooks_core::message::{Delivery, DeliveryQueueMessage};
use webhooks_core::signing::{delivery_id, webhook_message_id};

/// What the matcher needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub dead_letters: SqsIngestDeadLetters,
    pub subscriptions: DynamoDbSubscriptions,
    pub claims: DynamoDbEventClaims,
    pub deliveries: SqsBatchSender,
}

/// A valid event of the batch and the records that carried it (duplicates within a batch
/// share one fan-out).
#[derive(Debug)]
struct Pending {
    event: Event,
    message_id: String,
    records: Vec<String>,
}

/// Something went wrong that a later retry may not meet.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transient(String);

impl Matcher {
    /// Handles one SQS batch; the response lists the records to retry.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let received_at = OffsetDateTime::now_utc();
        let mut failed: Vec<String> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut by_message_id: HashMap<String, usize> = HashMap::new();

        for record in event.payload.records {
            let record_id = record.message_id.clone().unwrap_or_default();
            let body = record.body.as_deref().unwrap_or_default();
            match parse_ingest_body(body, received_at) {
                Ok(event) => {
                    let message_id = webhook_message_id(&event.source, &event.id);
                    match by_message_id.get(&message_id) {
                        Some(i) => pending[*i].records.push(record_id),
                        None => {
                            by_message_id.insert(message_id.clone(), pending.len());
                            pending.push(Pending { event, message_id, records: vec![record_id] });
                        }
                    }
                }
                Err(rejection) => {
                    if let Err(e) = self.reject(body, &rejection, received_at).await {
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

    async fn reject(
        &self,
        body: &str,
        rejection: &webhooks_core::event::EventError,
        at: OffsetDateTime,
    ) -> Result<(), webhooks_aws::sqs::SqsError> {
        // One line per refused event, in CloudWatch's embedded metric format.
        info!(
            _aws = %serde_json::json!({"Timestamp": at.unix_timestamp() * 1000,
                "CloudWatchMetrics": [{"Namespace": "Webhooks", "Dimensions": [["reason"]],
                "Metrics": [{"Name": "RejectedEvents", "Unit": "Count"}]}]}),
            reason = rejection.code,
            RejectedEvents = 1,
            field = %rejection.field,
            "event rejected"
        );
        let detail = if rejection.field.is_empty() {
            rejection.message.clone()
        } else {
            format!("{}: {}", rejection.field, rejection.message)
        };
        self.dead_letters.reject(body, rejection.code, &detail).await
    }

    /// Fans the batch's events out; returns the indexes of events to retry.
    async fn fan_out(&self, pending: &[Pending], now: i64) -> Vec<usize> {
        let mut retry = Vec::new();
        let mut claimed = Vec::new();
        for (i, p) in pending.iter().enumerate() {
            match self.claims.claim(&p.message_id, now).await {
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

        let plan = match self.plan(pending, &claimed).await {
            Ok(plan) => plan,
            Err(e) => {
                error!(error = %e, "matching failed; the batch's events will be retried");
                retry.extend(claimed);
                return retry;
            }
        };

        let bodies: Vec<String> = plan.iter().map(|(_, m)| m.to_json()).collect();
        let unsent: BTreeSet<usize> = self.deliveries.send_all(&bodies).await.into_iter().map(|j| plan[j].0).collect();
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
            if let Err(e) = self.claims.complete(&p.message_id, now).await {
                warn!(event_id = %p.event.id, error = %webhooks_aws::error_chain(&e), "could not mark the event done");
            }
        }
        retry
    }

    /// Every (event index, delivery message) of the claimed events.
    async fn plan(&self, pending: &[Pending], claimed: &[usize]) -> Result<Vec<(usize, DeliveryQueueMessage)>, Transient> {
        let partitions: BTreeSet<String> =
            claimed.iter().flat_map(|i| partitions_for_event(&pending[*i].event)).collect();
        let mut candidates: BTreeMap<String, Vec<IndexEntry>> = BTreeMap::new();
        for partition in &partitions {
            let entries = self
                .subscriptions
                .index_entries(partition)
                .await
                .map_err(|e| Transient(webhooks_aws::error_chain(&e)))?;
            candidates.insert(partition.clone(), entries);
        }
        let owner_ids: BTreeSet<String> =
            candidates.values().flatten().map(|entry| entry.owner_key_id.clone()).collect();
        let owners = if owner_ids.is_empty() {
            HashMap::new()
        } else {
            self.subscriptions.keys_by_ids(&owner_ids).await.map_err(|e| Transient(webhooks_aws::error_chain(&e)))?
        };

        let index = match_index(&candidates, &owners);
        let queued_at = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let mut plan = Vec::new();
        for &i in claimed {
            let p = &pending[i];
            for message in first_deliveries(&index, &p.event, &p.message_id, queued_at) {
                plan.push((i, message));
            }
        }
        Ok(plan)
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
                Subscriber { webhook_id: &entry.webhook_id, events: &entry.events, scopes: &entry.scopes, owner },
            );
        }
    }
    index
}

/// The first delivery of `event` (whose Standard Webhooks id is `message_id`) to each webhook
/// of `index` it matches.
pub fn first_deliveries(index: &MatchIndex<'_>, event: &Event, message_id: &str, queued_at: i64) -> Vec<DeliveryQueueMessage> {
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
            })
        })
        .collect()
}
