//! The delivery function: sends each queued (event, webhook) pair as a signed POST (Standard
//! Webhooks), all records of a batch concurrently, and keeps the promise of SPEC §6: exact
//! attempts, retries by visibility timeout, failure counters, trip and probe, deactivation
//! with one alert, parking, and replay.
//!
//! The handler loads, decides, applies. It reads the batch's webhooks, owner keys and counters
//! once (strongly consistent), so a deleted webhook, a revoked key or a key that lost the
//! event's company stops the flow, queued retries included. Every decision is a pure function
//! of `webhooks_core::reliability` over plain values ([`admit`](webhooks_core::reliability::admit)
//! before an attempt, [`after_attempt`](webhooks_core::reliability::after_attempt) after it,
//! [`after_success`](webhooks_core::reliability::after_success) for the bookkeeping); this
//! crate only applies them through the ports of `webhooks_core::ports`, one module per job:
//!
//! | module | job |
//! |---|---|
//! | `lib.rs` | the batch: decode, purge and replay pages, load, alerts owed, deliveries |
//! | [`attempt`] | one delivery: admission, the attempt's number and claim, the signed POST, what follows |
//! | [`pace`] | send slots under a webhook's `rate_limit`, and deliveries queued again to wait for theirs |
//! | [`parking`] | parking (one turn per webhook) and counted drops |
//! | [`health`] | a success's bookkeeping, deactivation and its alert |
//! | [`replay`] | replay and purge pages, owed replays and sweeps |
//! | [`log`] | the delivery log's entries |
//! | [`wiring`] | the AWS implementations of the ports, from the environment |
//!
//! A record it cannot decode is poison: it is reported as failed and never deleted, so SQS
//! moves it to the delivery DLQ after `maxReceiveCount` receives, where it stays visible and
//! re-drivable.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::{join, join_all, join3};
use lambda_runtime::LambdaEvent;
use time::OffsetDateTime;
use tracing::{Instrument, error, info_span, warn};
use webhooks_core::message::{Delivery, DeliveryQueueMessage, ParkSlot, Purge, Replay, Resend};
use webhooks_core::ports::{
    Alerts, AttemptStore, Clock, DeliveryLog, DeliveryQueue, HealthRecord, HealthStore, OwnerKeys, ParkingStore,
    PortError, RetryScheduler, SecretStore, StoredKey, StoredWebhook, WebhookSender, WebhookStore,
};

pub mod attempt;
pub mod config;
pub mod health;
pub mod log;
pub mod pace;
pub mod parking;
pub mod replay;
pub mod wiring;

pub use config::DeliveryConfig;
pub use parking::ParkTurns;

/// Replay pages (of parked deliveries or of a time range) handled per invocation, before the
/// batch's deliveries: bounded work.
const REPLAY_PAGES_PER_INVOCATION: usize = 1;

/// The implementations delivery runs on: DynamoDB, SQS, SNS, KMS and HTTP in production
/// ([`wiring::Aws`]), in memory in the unit tests (`webhooks_aws::memory`).
pub trait DeliveryPorts {
    /// Webhooks (read, deactivated, alert cleared) and their owner keys.
    type Webhooks: WebhookStore + OwnerKeys + Sync;
    type Health: HealthStore + Sync;
    type Attempts: AttemptStore + Sync;
    type Parking: ParkingStore + Sync;
    type Log: DeliveryLog + Sync;
    /// The delivery queue, for replay and purge pages and re-sent deliveries.
    type Queue: DeliveryQueue + Sync;
    /// The delivery queue's visibility, for retries.
    type Retries: RetryScheduler + Sync;
    type Alerts: Alerts + Sync;
    type Secrets: SecretStore + Sync;
    type Sender: WebhookSender + Sync;
    type Clock: Clock + Sync;
}

/// What delivery needs, built once per execution environment.
pub struct Deliverer<P: DeliveryPorts> {
    pub webhooks: P::Webhooks,
    pub health: P::Health,
    pub attempts: P::Attempts,
    pub parking: P::Parking,
    pub log: P::Log,
    pub queue: P::Queue,
    pub retries: P::Retries,
    pub alerts: P::Alerts,
    pub secrets: P::Secrets,
    pub sender: P::Sender,
    pub clock: P::Clock,
    pub config: DeliveryConfig,
    /// Parks of one webhook in this execution environment go one at a time (see
    /// [`ParkTurns`]).
    pub park_turns: ParkTurns,
}

impl<P: DeliveryPorts> std::fmt::Debug for Deliverer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Why a step of delivery failed; the record is handed back to SQS (no attempt is lost).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A store, queue or service did not answer or refused: retried soon.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A message could not be queued.
    #[error("could not queue {0}")]
    Queue(&'static str),
}

/// What becomes of a received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Finished (delivered, parked, dropped with a counted reason, or a duplicate): SQS
    /// deletes it.
    Done,
    /// SQS hands it back later (its visibility says when).
    HandBack,
    /// Held back by its webhook's `rate_limit`: queued again as a new message, delayed by
    /// `delay_seconds`, holding the send slot `send_at_ms` (none: it takes one when it comes
    /// back). No attempt, receive or failure is used; the received record is then done.
    Wait { send_at_ms: Option<i64>, delay_seconds: u32 },
}

/// What one batch read about its webhooks.
#[derive(Debug, Default)]
pub struct Loaded {
    pub webhooks: HashMap<String, StoredWebhook>,
    pub owners: HashMap<String, StoredKey>,
    pub health: HashMap<String, HealthRecord>,
}

/// One receive of a record: the record, when the invocation started and when it must end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Receive<'a> {
    pub record: &'a SqsMessage,
    /// When this invocation started (the receipt was before): bounds hand-backs by SQS's 12 h.
    pub started: Instant,
    /// When the runtime stops the invocation, if it said.
    pub deadline: Option<OffsetDateTime>,
}

/// A delivery of the batch: the record that carried it, and its park slot when it is a
/// replayed copy.
struct Received<'a> {
    record: &'a SqsMessage,
    delivery: Delivery,
    slot: Option<ParkSlot>,
}

/// A page of a replay: of parked deliveries, or of logged events (by time range).
enum ReplayPage {
    Parked(Replay),
    Range(Resend),
}

impl ReplayPage {
    fn webhook_id(&self) -> &str {
        match self {
            Self::Parked(r) => &r.webhook_id,
            Self::Range(r) => &r.webhook_id,
        }
    }

    fn message(&self) -> DeliveryQueueMessage {
        match self {
            Self::Parked(r) => DeliveryQueueMessage::Replay(r.clone()),
            Self::Range(r) => DeliveryQueueMessage::Resend(r.clone()),
        }
    }
}

fn message_id(record: &SqsMessage) -> String {
    record.message_id.clone().unwrap_or_default()
}

impl<P: DeliveryPorts> Deliverer<P> {
    /// Handles one SQS batch; the response lists the records SQS must hand back later.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let started = Instant::now();
        // The invocation's deadline (Unix milliseconds; 0 when the runtime gave none).
        let deadline = (event.context.deadline > 0)
            .then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.context.deadline) * 1_000_000).ok())
            .flatten();
        let mut failed = Vec::new();
        let mut deliveries = Vec::new();
        let mut replays = Vec::new();
        let mut purges = Vec::new();
        for record in &event.payload.records {
            match DeliveryQueueMessage::from_json(record.body.as_deref().unwrap_or_default()) {
                Ok(DeliveryQueueMessage::Delivery(delivery)) => {
                    deliveries.push(Received { record, delivery, slot: None });
                }
                Ok(DeliveryQueueMessage::Replayed(r)) => {
                    deliveries.push(Received { record, delivery: r.delivery, slot: Some(r.slot) });
                }
                Ok(DeliveryQueueMessage::Replay(r)) => replays.push((record, ReplayPage::Parked(r))),
                Ok(DeliveryQueueMessage::Resend(r)) => replays.push((record, ReplayPage::Range(r))),
                Ok(DeliveryQueueMessage::Purge(p)) => purges.push((record, p)),
                Err(e) => {
                    error!(message_id = %message_id(record), error = %e, "undecodable delivery message; left for the DLQ");
                    failed.push(message_id(record));
                }
            }
        }
        failed.extend(self.purges(&purges).await);
        failed.extend(self.replays(replays).await);
        if deliveries.is_empty() {
            return Ok(webhooks_aws::batch::retry_only(failed));
        }

        let ids: BTreeSet<String> = deliveries.iter().map(|r| r.delivery.webhook_id.clone()).collect();
        let owners: BTreeSet<String> = deliveries.iter().filter_map(|r| r.delivery.owner_key_id.clone()).collect();
        // First receives claim their attempt together with the reads: one round trip for both.
        let now_s = self.clock.now().unix_timestamp();
        let (loaded, first_claims) = join(
            self.load(&ids, &owners),
            self.first_claims(deliveries.iter().map(|r| (r.record, &r.delivery)), now_s),
        )
        .await;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                // No attempt was made: the records come back after their visibility timeout.
                error!(error = %webhooks_aws::error_chain(&e), "could not read webhooks; batch retried");
                join_all(
                    deliveries.iter().zip(first_claims).map(|(r, c)| self.free_unused_claim(r.record, &r.delivery, c)),
                )
                .await;
                failed.extend(deliveries.iter().map(|r| message_id(r.record)));
                return Ok(webhooks_aws::batch::retry_only(failed));
            }
        };
        self.housekeeping(&loaded).await;
        let unalerted = self.alerts_owed(&loaded).await;
        let paces = self.send_slots(deliveries.iter().map(|r| &r.delivery), &loaded).await;

        let dispositions = join_all(deliveries.iter().zip(paces).zip(first_claims).map(|((r, pace), claim)| {
            let d = &r.delivery;
            let span = info_span!("delivery", webhook_id = %d.webhook_id, event_id = %d.event.id, delivery_id = %d.delivery_id);
            let unalerted = unalerted.contains(&d.webhook_id);
            let receive = Receive { record: r.record, started, deadline };
            let prepared = attempt::Prepared { pace, first_claim: claim };
            self.deliver(receive, d, r.slot.as_ref(), &loaded, unalerted, prepared).instrument(span)
        }))
        .await;
        let mut waiting = Vec::new();
        for (r, disposition) in deliveries.iter().zip(dispositions) {
            match disposition {
                Disposition::Done => {}
                Disposition::HandBack => failed.push(message_id(r.record)),
                Disposition::Wait { send_at_ms, delay_seconds } => {
                    let delivery = Delivery { send_at_ms, ..r.delivery.clone() };
                    let message = match &r.slot {
                        Some(slot) => DeliveryQueueMessage::Replayed(webhooks_core::message::Replayed {
                            delivery,
                            slot: slot.clone(),
                        }),
                        None => DeliveryQueueMessage::Delivery(delivery),
                    };
                    waiting.push((Receive { record: r.record, started, deadline }, message.to_json(), delay_seconds));
                }
            }
        }
        failed.extend(self.queue_waiting(&waiting).await);
        Ok(webhooks_aws::batch::retry_only(failed))
    }

    /// Purge pages; returns the records to retry.
    async fn purges(&self, purges: &[(&SqsMessage, Purge)]) -> Vec<String> {
        let mut failed = Vec::new();
        for (record, purge) in purges {
            if let Err(e) = self.purge(purge).await {
                warn!(webhook_id = %purge.webhook_id, error = %webhooks_aws::error_chain(&e), "purge page failed; retried");
                failed.push(message_id(record));
            }
        }
        failed
    }

    /// Replay pages, bounded: one page per invocation; the others go back on the queue as new
    /// messages (no receive is used up). Returns the records to retry.
    async fn replays(&self, replays: Vec<(&SqsMessage, ReplayPage)>) -> Vec<String> {
        let mut failed = Vec::new();
        let (now_pages, later): (Vec<_>, Vec<_>) =
            replays.into_iter().enumerate().partition(|(i, _)| *i < REPLAY_PAGES_PER_INVOCATION);
        if !later.is_empty() {
            let bodies: Vec<String> = later.iter().map(|(_, (_, r))| r.message().to_json()).collect();
            let unsent = self.queue.send_all(&bodies).await;
            failed.extend(unsent.into_iter().filter_map(|i| later.get(i)).map(|(_, (record, _))| message_id(record)));
        }
        for (_, (record, page)) in &now_pages {
            let webhook_id = page.webhook_id();
            let span = info_span!("replay", webhook_id = %webhook_id);
            let done = match page {
                ReplayPage::Parked(replay) => self.replay(replay).instrument(span).await,
                ReplayPage::Range(resend) => self.resend(resend).instrument(span).await,
            };
            if let Err(e) = done {
                warn!(webhook_id = %webhook_id, error = %webhooks_aws::error_chain(&e), "replay page failed; retried");
                failed.push(message_id(record));
            }
        }
        failed
    }

    /// The batch's webhooks, their owner keys and their health: one round trip when the
    /// messages carry their webhooks' owner key ids (the matcher's do): the three reads go out
    /// together. A key no message named (messages of other origins) is read after the
    /// webhooks, a second round trip.
    async fn load(&self, ids: &BTreeSet<String>, carried_owners: &BTreeSet<String>) -> Result<Loaded, PortError> {
        let carried = async {
            if carried_owners.is_empty() { Ok(HashMap::new()) } else { self.webhooks.keys_by_ids(carried_owners).await }
        };
        let (webhooks, health, carried) =
            join3(self.webhooks.webhooks_by_ids(ids), self.health.health_of(ids), carried).await;
        let webhooks = webhooks?;
        let mut owners = carried?;
        // A named key that was not found is deleted: it is not read again.
        let unnamed: BTreeSet<String> = webhooks
            .values()
            .map(|w| w.webhook.owner_key_id.clone())
            .filter(|owner| !carried_owners.contains(owner))
            .collect();
        if !unnamed.is_empty() {
            owners.extend(self.webhooks.keys_by_ids(&unnamed).await?);
        }
        Ok(Loaded { webhooks, owners, health: health? })
    }

    /// Alerts of earlier deactivations not yet published (a crash, a publish that failed) go
    /// first; while one is still pending, its webhook's deliveries are parked (the webhook is
    /// disabled), and the alert is tried again with the next batch. Returns those webhooks.
    async fn alerts_owed(&self, loaded: &Loaded) -> BTreeSet<String> {
        let mut unalerted = BTreeSet::new();
        for (id, record) in &loaded.health {
            if let Some(stored) = loaded.webhooks.get(id)
                && !record.pending_alerts.is_empty()
            {
                self.publish_kept(stored, record).await;
            }
        }
        for w in loaded.webhooks.values() {
            if let Some(alert) = &w.alert_pending
                && !self.publish_alert(w, alert).await
            {
                unalerted.insert(w.webhook.id.clone());
            }
        }
        unalerted
    }
}
