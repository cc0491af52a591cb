//! The delivery function: sends each queued (event, webhook) pair as a signed POST (Standard
//! Webhooks), all records of a batch concurrently over one pooled client, and keeps the
//! promise of SPEC §6: exact attempts, retries by visibility timeout, failure counters, trip
//! and probe, deactivation with one alert, parking, and replay.
//!
//! The webhook, its owner key and its counters are read (strongly consistent) once per batch,
//! so a deleted webhook, a revoked key or a key that lost the event's company stops the flow,
//! queued retries included. Decisions are `webhooks_core::reliability`'s; this module only
//! reads, sends and records.
//!
//! A record it cannot decode is poison: it is reported as failed and never deleted, so SQS
//! moves it to the delivery DLQ after `maxReceiveCount` receives, where it stays visible and
//! re-drivable.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::{join, join_all};
use lambda_runtime::LambdaEvent;
use reqwest::header::HeaderMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{Instrument, error, info, info_span, warn};
use webhooks_aws::config::{ConfigError, flag, optional, parsed, required};
use webhooks_aws::dynamodb::StoreError;
use webhooks_aws::dynamodb::{DynamoDbSubscriptions, StoredKey, StoredWebhook};
use webhooks_aws::http::{HttpSender, SendOutcome, insert};
use webhooks_aws::kms::KmsSecretBox;
use webhooks_aws::sns::SnsAlerts;
use webhooks_aws::sqs::{SqsBatchSender, SqsRetryScheduler};
use webhooks_aws::state::{DynamoDbDeliveryState, HealthRecord, LOGGED_RESPONSE_BYTES, ParkGuard, ParkOutcome};
use webhooks_core::event::format_utc;
use webhooks_core::ids::random_unit;
use webhooks_core::matching::is_tripped;
use webhooks_core::message::{Delivery, DeliveryQueueMessage, ParkSlot, Purge, Replay, Replayed};
use webhooks_core::model::{DisabledReason, DropReason, WebhookStatus};
use webhooks_core::payload::{delivery_body, request_headers};
use webhooks_core::reliability::{
    AttemptResult, ClaimRefused, NextStep, after_attempt, after_refused_claim, attempt_number, expired,
    parked_on_manual_disable, receive_limit_near, replay_after_success, replay_continues,
};
use webhooks_core::resources::{LogEntry, log_status};
use webhooks_core::retry::{RetrySchedule, parse_duration, parse_retention, parse_retry_after, visibility_within_cap};
use webhooks_core::signing::{SigningSecret, sha256_hex};

/// Default of `WEBHOOKS_MAX_ATTEMPTS` (SPEC §6).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default of `WEBHOOKS_DELIVERY_TIMEOUT` (SPEC §5).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The template's default `MaxReceiveCount`, used when `MAX_RECEIVE_COUNT` is not given.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 12;
/// Parked deliveries re-sent per replay message: a page (payloads of up to 256 KiB each, one
/// queue batch per 10, one transaction per removal) finishes well within the function's
/// timeout.
const REPLAY_PAGE: i32 = 25;
/// Replay pages handled per invocation, before the batch's deliveries: bounded work.
const REPLAY_PAGES_PER_INVOCATION: usize = 1;
/// Parked deliveries of a deleted webhook removed per purge message (keys only).
const PURGE_PAGE: i32 = 100;
/// A replay request older than this was not queued by the success that recorded it (the
/// send failed, or the function stopped): a later batch queues it.
const REPLAY_REQUEST_GRACE_SECONDS: i64 = 30;
/// A record whose step failed (nothing sent, or its outcome not yet recorded) comes back after
/// this long.
const STEP_RETRY: Duration = Duration::from_secs(2);
/// An attempt's claim outlives the request's timeout by this much.
const CLAIM_MARGIN_SECONDS: i64 = 30;
/// `last_success_at` is refreshed at most this often while a webhook is healthy: a
/// first-attempt success then writes only its log entry. After any failure the next success
/// always writes (it resets the streak), so deactivation decisions stay exact.
const LAST_SUCCESS_RESOLUTION_SECONDS: i64 = 60;
/// A probe keeps its slot this long past its next retry, in case that receive is late.
const PROBE_LEASE_MARGIN_SECONDS: i64 = 60;

/// Settings of delivery, read once per execution environment.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub schedule: RetrySchedule,
    pub timeout: Duration,
    pub max_receive_count: u32,
    pub park_limit: u64,
    pub park_ttl: Duration,
    pub log_ttl: Duration,
    pub log_successes: bool,
}

impl DeliveryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let number = |v: &str| v.parse::<u64>().map_err(|_| "expected a whole number".to_owned());
        Ok(Self {
            max_attempts: parsed("WEBHOOKS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, |v| match v.parse::<u32>() {
                Ok(n) if (1..=10).contains(&n) => Ok(n),
                _ => Err("expected a whole number from 1 to 10".to_owned()),
            })?,
            schedule: parsed("WEBHOOKS_RETRY_SCHEDULE", RetrySchedule::default(), RetrySchedule::parse)?,
            timeout: parsed("WEBHOOKS_DELIVERY_TIMEOUT", DEFAULT_DELIVERY_TIMEOUT, parse_duration)?,
            max_receive_count: parsed("MAX_RECEIVE_COUNT", DEFAULT_MAX_RECEIVE_COUNT, |v| {
                number(v).and_then(|n| u32::try_from(n).map_err(|e| e.to_string()))
            })?,
            park_limit: parsed("WEBHOOKS_PARK_LIMIT", 10_000, number)?,
            park_ttl: parsed("WEBHOOKS_PARK_TTL", Duration::from_secs(7 * 86_400), parse_retention)?,
            log_ttl: parsed("WEBHOOKS_LOG_TTL", Duration::from_secs(3 * 86_400), parse_retention)?,
            log_successes: flag("WEBHOOKS_LOG_SUCCESSES", true)?,
        })
    }
}

/// What delivery needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pub subscriptions: DynamoDbSubscriptions,
    pub state: DynamoDbDeliveryState,
    pub retries: SqsRetryScheduler,
    pub queue: SqsBatchSender,
    pub alerts: Option<SnsAlerts>,
    pub secrets: KmsSecretBox,
    pub sender: HttpSender,
    pub config: DeliveryConfig,
    /// Parks of one webhook in this execution environment go one at a time: each updates the
    /// webhook's parked counter in its transaction, and DynamoDB cancels transactions that
    /// overlap on an item, so a batch parking ten deliveries of one webhook at once would
    /// conflict with itself and retry.
    pub park_turns: ParkTurns,
}

/// One turn per webhook for parking, shared by the concurrent records of an environment.
#[derive(Debug, Clone, Default)]
pub struct ParkTurns(Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl ParkTurns {
    /// Waits for `webhook_id`'s turn; the turn ends when the guard is dropped.
    async fn take(&self, webhook_id: &str) -> ParkTurn {
        let turn = match self.0.lock() {
            Ok(mut turns) => turns.entry(webhook_id.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        ParkTurn { guard: Some(turn.lock_owned().await), turns: self.clone(), webhook_id: webhook_id.to_owned() }
    }
}

/// A webhook's turn to park; dropping it frees the turn (and forgets the webhook when no one
/// else waits).
struct ParkTurn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    turns: ParkTurns,
    webhook_id: String,
}

impl Drop for ParkTurn {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut turns) = self.turns.0.lock()
            && turns.get(&self.webhook_id).is_some_and(|t| Arc::strong_count(t) == 1)
        {
            turns.remove(&self.webhook_id);
        }
    }
}

/// Why a step of delivery failed; the record is handed back to SQS (no attempt is lost).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not queue {0}")]
    Queue(&'static str),
    #[error("signing secrets unavailable, no attempt made")]
    Secrets(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What one batch read about its webhooks.
struct Loaded {
    webhooks: HashMap<String, StoredWebhook>,
    owners: HashMap<String, StoredKey>,
    health: HashMap<String, HealthRecord>,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse_time(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

impl Deliverer {
    /// Clients and settings from the environment the template gives the function.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let sdk = webhooks_aws::sdk_config().await;
        let config = DeliveryConfig::from_env()?;
        let dynamodb = webhooks_aws::conflicts::dynamodb_client(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let subscriptions_table = required("SUBSCRIPTIONS_TABLE")?;
        let queue_url = required("DELIVERY_QUEUE_URL")?;
        let allowed =
            webhooks_core::ssrf::AllowedTargets::parse(&optional("WEBHOOKS_ALLOWED_TARGETS").unwrap_or_default())?;
        Ok(Self {
            subscriptions: DynamoDbSubscriptions::new(dynamodb.clone(), subscriptions_table.clone()),
            state: DynamoDbDeliveryState::new(
                dynamodb,
                subscriptions_table,
                required("HEALTH_TABLE")?,
                required("DELIVERIES_TABLE")?,
            ),
            retries: SqsRetryScheduler::new(sqs.clone(), queue_url.clone()),
            queue: SqsBatchSender::new(sqs, queue_url),
            alerts: optional("ALERTS_TOPIC_ARN").map(|arn| SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), arn)),
            secrets: KmsSecretBox::new(aws_sdk_kms::Client::new(&sdk), required("SIGNING_KEY_ID")?),
            sender: HttpSender::new(config.timeout, allowed)?,
            config,
            park_turns: ParkTurns::default(),
        })
    }

    /// Handles one SQS batch; the response lists the records SQS must hand back later.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let started = Instant::now();
        let mut failed = Vec::new();
        let mut deliveries = Vec::new();
        let mut replays = Vec::new();
        let mut purges = Vec::new();
        for record in &event.payload.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            match DeliveryQueueMessage::from_json(record.body.as_deref().unwrap_or_default()) {
                Ok(DeliveryQueueMessage::Delivery(d)) => deliveries.push((record, d, None)),
                Ok(DeliveryQueueMessage::Replayed(r)) => deliveries.push((record, r.delivery, Some(r.slot))),
                Ok(DeliveryQueueMessage::Replay(r)) => replays.push((record, r)),
                Ok(DeliveryQueueMessage::Purge(p)) => purges.push((record, p)),
                Err(e) => {
                    error!(message_id = %message_id, error = %e, "undecodable delivery message; left for the DLQ");
                    failed.push(message_id);
                }
            }
        }
        for (record, purge) in &purges {
            if let Err(e) = self.purge(purge).await {
                warn!(webhook_id = %purge.webhook_id, error = %e, "purge page failed; retried");
                failed.push(record.message_id.clone().unwrap_or_default());
            }
        }
        // Replay work before the batch's deliveries is bounded: one page per invocation; the
        // others go back on the queue as new messages (no receive is used up).
        let (now_pages, later): (Vec<_>, Vec<_>) =
            replays.into_iter().enumerate().partition(|(i, _)| *i < REPLAY_PAGES_PER_INVOCATION);
        if !later.is_empty() {
            let bodies: Vec<String> =
                later.iter().map(|(_, (_, r))| DeliveryQueueMessage::Replay(r.clone()).to_json()).collect();
            let unsent = self.queue.send_all(&bodies).await;
            failed.extend(
                unsent
                    .into_iter()
                    .filter_map(|i| later.get(i))
                    .map(|(_, (record, _))| record.message_id.clone().unwrap_or_default()),
            );
        }
        for (_, (record, replay)) in &now_pages {
            let span = info_span!("replay", webhook_id = %replay.webhook_id);
            if let Err(e) = self.replay(replay).instrument(span).await {
                warn!(webhook_id = %replay.webhook_id, error = %e, "replay page failed; retried");
                failed.push(record.message_id.clone().unwrap_or_default());
            }
        }
        if deliveries.is_empty() {
            return Ok(webhooks_aws::batch::retry_only(failed));
        }

        let ids: BTreeSet<String> = deliveries.iter().map(|(_, d, _)| d.webhook_id.clone()).collect();
        let loaded = match self.load(&ids).await {
            Ok(loaded) => loaded,
            Err(e) => {
                // No attempt was made: the records come back after their visibility timeout.
                error!(error = %e, "could not read webhooks; batch retried");
                failed.extend(deliveries.iter().map(|(r, _, _)| r.message_id.clone().unwrap_or_default()));
                return Ok(webhooks_aws::batch::retry_only(failed));
            }
        };
        self.housekeeping(&loaded).await;
        // Alerts of earlier deactivations not yet published (a crash, a publish that failed)
        // go first; while one is still pending, its webhook's deliveries are parked (the
        // webhook is disabled), and the alert is tried again with the next batch.
        let mut unalerted = BTreeSet::new();
        for w in loaded.webhooks.values() {
            if let Some(alert) = &w.alert_pending
                && !self.publish_alert(w, alert).await
            {
                unalerted.insert(w.webhook.id.clone());
            }
        }

        let outcomes = join_all(deliveries.iter().map(|(record, d, slot)| {
            let span = info_span!("delivery", webhook_id = %d.webhook_id, event_id = %d.event.id, delivery_id = %d.delivery_id);
            let unalerted = unalerted.contains(&d.webhook_id);
            let loaded = &loaded;
            async move {
                if unalerted {
                    match self.park(d, ParkGuard::WebhookDisabled, slot.as_ref()).await {
                        Ok(true) => return false,
                        Ok(false) => {}
                        Err(e) => {
                            warn!(error = %e, "could not park; retried");
                            return true;
                        }
                    }
                }
                self.deliver(record, d, slot.as_ref(), loaded, started).await
            }
            .instrument(span)
        }))
        .await;
        for ((record, _, _), retry) in deliveries.iter().zip(outcomes) {
            if retry {
                failed.push(record.message_id.clone().unwrap_or_default());
            }
        }
        Ok(webhooks_aws::batch::retry_only(failed))
    }

    /// Work the batch's webhooks owe, bounded per invocation: replays asked for by a recovery
    /// whose queueing failed (the request stays recorded until the replay is queued), and one
    /// sweep of expired parked deliveries. Failures here only postpone it to a later batch.
    async fn housekeeping(&self, loaded: &Loaded) {
        let t = now();
        let now_s = t.unix_timestamp();
        for (id, h) in &loaded.health {
            let Some(requested) = &h.replay_requested_at else { continue };
            let stale = parse_time(requested).is_none_or(|at| now_s - at >= REPLAY_REQUEST_GRACE_SECONDS);
            if stale
                && loaded.webhooks.contains_key(id)
                && let Err(e) = self.queue_replay(id, requested).await
            {
                warn!(webhook_id = %id, error = %e, "could not queue a requested replay; tried again later");
            }
        }
        let due = loaded
            .health
            .iter()
            .find(|(id, h)| h.park_sweep_at.is_some_and(|at| at <= now_s) && loaded.webhooks.contains_key(*id));
        if let Some((id, _)) = due {
            match self.state.sweep_expired(id, now_s, webhooks_aws::state::SWEEP_PAGE).await {
                Ok(0) => {}
                Ok(n) => metric_drops(DropReason::ParkExpired, n),
                Err(e) => {
                    warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "sweep of expired parked deliveries failed")
                }
            }
        }
    }

    /// Queues a replay of everything parked until now, then clears the request that asked
    /// for it (a crash in between queues it twice: re-sent twice, never lost).
    async fn queue_replay(&self, webhook_id: &str, requested_at: &str) -> Result<(), DeliveryError> {
        let replay = DeliveryQueueMessage::Replay(Replay {
            webhook_id: webhook_id.to_owned(),
            after: None,
            until: Some(webhooks_aws::state::replay_bound(now())),
        });
        if !self.queue.send_all(&[replay.to_json()]).await.is_empty() {
            return Err(DeliveryError::Queue("the replay"));
        }
        self.state.clear_replay_request(webhook_id, requested_at).await?;
        Ok(())
    }

    /// One page of removing a deleted webhook's parked deliveries, counted as dropped.
    async fn purge(&self, purge: &Purge) -> Result<(), DeliveryError> {
        let (removed, more) = self.state.purge_parked(&purge.webhook_id, PURGE_PAGE).await?;
        if removed > 0 {
            metric_drops(DropReason::WebhookDeleted, removed);
        }
        info!(webhook_id = %purge.webhook_id, removed, more, "parked deliveries of a deleted webhook removed");
        if more && !self.queue.send_all(&[DeliveryQueueMessage::Purge(purge.clone()).to_json()]).await.is_empty() {
            return Err(DeliveryError::Queue("the next purge page"));
        }
        Ok(())
    }

    /// The batch's webhooks, their owner keys and their health: two round trips (the health
    /// is read together with the webhooks; the keys need the webhooks' owners).
    async fn load(&self, ids: &BTreeSet<String>) -> Result<Loaded, String> {
        let chain = |e: webhooks_aws::dynamodb::StoreError| webhooks_aws::error_chain(&e);
        let (webhooks, health) = join(self.subscriptions.webhooks_by_ids(ids), self.state.health_of(ids)).await;
        let webhooks = webhooks.map_err(chain)?;
        let owner_ids: BTreeSet<String> = webhooks.values().map(|w| w.webhook.owner_key_id.clone()).collect();
        let owners = self.subscriptions.keys_by_ids(&owner_ids).await.map_err(chain)?;
        Ok(Loaded { webhooks, owners, health: health.map_err(chain)? })
    }

    /// Delivers one record; `true` when SQS must hand it back later.
    async fn deliver(
        &self,
        record: &SqsMessage,
        d: &Delivery,
        slot: Option<&ParkSlot>,
        loaded: &Loaded,
        started: Instant,
    ) -> bool {
        match self.try_deliver(record, d, slot, loaded, started).await {
            Ok(retry) => retry,
            Err(e) => {
                // A conflict, a throttle, a service that did not answer: soon again, not after
                // the queue's whole visibility timeout.
                warn!(error = %webhooks_aws::error_chain(&e), "delivery step failed; retried");
                self.hand_back(record, STEP_RETRY, started).await;
                true
            }
        }
    }

    async fn try_deliver(
        &self,
        record: &SqsMessage,
        d: &Delivery,
        slot: Option<&ParkSlot>,
        loaded: &Loaded,
        started: Instant,
    ) -> Result<bool, DeliveryError> {
        let Some(stored) = loaded.webhooks.get(&d.webhook_id) else {
            metric_drop(DropReason::WebhookDeleted);
            return Ok(false);
        };
        let w = &stored.webhook;
        if !loaded.owners.get(&w.owner_key_id).is_some_and(|o| o.key.holds(&d.event.company_id)) {
            return self.drop_delivery(d, DropReason::OwnerRevoked).await;
        }
        let health = loaded.health.get(&w.id).cloned().unwrap_or_default();
        let t = now();
        let now_s = t.unix_timestamp();
        let mut probe = false;
        match (w.status, w.disabled_reason) {
            (WebhookStatus::Disabled, Some(DisabledReason::Manual))
                if !parked_on_manual_disable(d.queued_at, stored.disabled_at_ms) =>
            {
                // Matched after a manual disable: dropped. Matched before it (a replayed copy
                // keeps its original match time): parked below.
                return self.drop_delivery(d, DropReason::ManualDisabled).await;
            }
            (WebhookStatus::Disabled, _) => {
                if self.park(d, ParkGuard::WebhookDisabled, slot).await? {
                    return Ok(false);
                }
            }
            (WebhookStatus::Active, _) if is_tripped(health.health.consecutive_failures, self.config.max_attempts) => {
                let until = now_s + self.config.timeout.as_secs() as i64 + PROBE_LEASE_MARGIN_SECONDS;
                probe = self.state.claim_probe(&w.id, &d.delivery_id, until, now_s).await?;
                if !probe && self.park(d, ParkGuard::Tripped(self.config.max_attempts), slot).await? {
                    return Ok(false);
                }
            }
            (WebhookStatus::Active, _) => {}
        }

        let receive_count = receive_count(record);
        if receive_limit_near(receive_count, self.config.max_receive_count) {
            // Receives that made no attempt (throttles, crashes) used up the queue's redrive
            // budget: keep the delivery rather than let it reach the DLQ.
            self.park(d, ParkGuard::Always, slot).await?;
            return Ok(false);
        }
        let recorded = if receive_count > 1 { self.state.attempts(&d.delivery_id).await? } else { None };
        let attempt = attempt_number(receive_count, recorded.map(|(n, _)| n));
        let first_attempt_at = recorded.map_or(now_s, |(_, first)| first);
        if attempt > self.config.max_attempts {
            // Its last attempt was counted but the parking did not happen (a crash).
            self.park(d, ParkGuard::Always, slot).await?;
            return Ok(false);
        }

        let secrets = self
            .secrets
            .signing_secrets(&w.id, &stored.secrets, now_s)
            .await
            .map_err(|e| DeliveryError::Secrets(Box::new(e)))?;
        // Claimed before it is sent: a second receive of the same message sends nothing.
        let claim_until = now_s + self.config.timeout.as_secs() as i64 + CLAIM_MARGIN_SECONDS;
        // The receipt handle names this receive: an SDK retry of the claim is still ours.
        let receive = sha256_hex(record.receipt_handle.as_deref().unwrap_or(&d.delivery_id));
        if let Err(now_record) = self.state.claim_attempt(&d.delivery_id, attempt, now_s, claim_until, &receive).await?
        {
            return match after_refused_claim(now_record, attempt, self.config.max_attempts, now_s) {
                ClaimRefused::Duplicate => {
                    info!(attempt, "a second receive of a delivery already done; nothing sent");
                    Ok(false)
                }
                ClaimRefused::HandBack(wait) => {
                    info!(attempt, "attempt claimed by another receive; handed back, nothing sent");
                    self.hand_back(record, wait, started).await;
                    Ok(true)
                }
            };
        }
        let outcome = self.send(stored, d, &secrets, now_s).await;
        let result = attempt_result(&outcome);
        let at = format_utc(now());
        if result == AttemptResult::Succeeded {
            info!(attempt, status = outcome.status, duration_ms = outcome.duration_ms, probe, "delivered");
            // After a 2xx nothing may cause a re-send: the bookkeeping is best effort.
            if let Err(e) = self.state.record_delivered(&d.delivery_id, now_s).await {
                warn!(error = %webhooks_aws::error_chain(&e), "could not record the delivery as done");
            }
            if let Err(e) = self.on_success(stored, &health, &at).await {
                warn!(error = %webhooks_aws::error_chain(&e), "could not record the success");
            }
            if self.config.log_successes {
                let entry = self.entry(d, Some(attempt), log_status::SUCCEEDED, &outcome, &at, None);
                if let Err(e) = self.log(d, &entry).await {
                    warn!(error = %webhooks_aws::error_chain(&e), "could not log the success");
                }
            }
            return Ok(false);
        }

        warn!(
            attempt,
            status = outcome.status,
            error = outcome.error.as_deref(),
            duration_ms = outcome.duration_ms,
            "attempt failed"
        );
        let counted = self.state.record_attempt(&d.delivery_id, attempt, first_attempt_at, now_s).await?;
        let after = if counted {
            let error = outcome.error.clone().unwrap_or_else(|| format!("HTTP {}", outcome.status.unwrap_or(0)));
            self.state.record_failure(&w.id, &at, outcome.status, &error).await?
        } else {
            health
        };
        let success_since_first =
            after.health.last_success_at.as_deref().and_then(parse_time).is_some_and(|s| s >= first_attempt_at);
        let step = after_attempt(
            result,
            attempt,
            self.config.max_attempts,
            success_since_first,
            &self.config.schedule,
            random_unit().unwrap_or(0.5),
        );
        match step {
            NextStep::Delivered => Ok(false),
            NextStep::Retry { delay, .. } => {
                let next_at = format_utc(now() + delay);
                let entry = self.entry(d, Some(attempt), log_status::PENDING, &outcome, &at, Some(next_at));
                self.log(d, &entry).await?;
                if probe {
                    let until = now_s + delay.as_secs() as i64 + PROBE_LEASE_MARGIN_SECONDS;
                    self.state.claim_probe(&w.id, &d.delivery_id, until, now_s).await?;
                }
                self.hand_back(record, delay, started).await;
                Ok(true)
            }
            NextStep::Park { deactivate } => {
                let entry = self.entry(d, Some(attempt), log_status::FAILED, &outcome, &at, None);
                self.log(d, &entry).await?;
                if let Some(reason) = deactivate {
                    let owner_companies =
                        loaded.owners.get(&w.owner_key_id).map(|o| o.key.companies.clone()).unwrap_or_default();
                    // An alert that cannot be published stays pending (retried with the next
                    // batch); the delivery is parked all the same.
                    self.deactivate(stored, reason, &after, &at, &owner_companies).await?;
                }
                if probe {
                    self.state.release_probe(&w.id, &d.delivery_id).await?;
                }
                self.park(d, ParkGuard::Always, slot).await?;
                Ok(false)
            }
        }
    }

    /// Makes the received record visible again after `wait`, within SQS's cap of 12 h from
    /// the receipt (which happened before this invocation `started`).
    async fn hand_back(&self, record: &SqsMessage, wait: Duration, started: Instant) {
        let visibility = visibility_within_cap(wait, started.elapsed());
        if let Some(handle) = record.receipt_handle.as_deref()
            && let Err(e) = self.retries.retry_in(handle, visibility.as_secs()).await
        {
            // The queue's own visibility timeout applies instead: later, not lost.
            warn!(error = %webhooks_aws::error_chain(&e), "could not schedule the retry");
        }
    }

    /// The signed POST.
    async fn send(&self, stored: &StoredWebhook, d: &Delivery, secrets: &[SigningSecret], now_s: i64) -> SendOutcome {
        let body = delivery_body(&d.event, &stored.webhook.id);
        let mut headers = HeaderMap::new();
        for (name, value) in request_headers(&stored.webhook.headers, &d.webhook_message_id, now_s, &body, secrets) {
            insert(&mut headers, &name, &value);
        }
        self.sender.post(&stored.webhook.url, headers, body).await
    }

    /// After a success: end a failure streak (and a trip), or refresh `last_success_at` now
    /// and then. A success that ends a streak while deliveries are parked records a replay
    /// request in the same write, then queues the replay: if queueing fails, the request
    /// stays and a later batch queues it. A first-attempt success of a healthy webhook
    /// writes nothing here.
    async fn on_success(&self, stored: &StoredWebhook, health: &HealthRecord, at: &str) -> Result<(), DeliveryError> {
        let h = &health.health;
        let stale = h
            .last_success_at
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|t| now().unix_timestamp() - t >= LAST_SUCCESS_RESOLUTION_SECONDS);
        if h.consecutive_failures == 0 && health.probe.is_none() && !stale {
            return Ok(());
        }
        let id = &stored.webhook.id;
        let before = if h.consecutive_failures > 0 {
            self.state.record_success_requesting_replay(id, at).await?
        } else {
            self.state.record_success(id, at).await?
        };
        if replay_after_success(before.health.consecutive_failures, before.parked_count) {
            info!(webhook_id = %id, parked = before.parked_count, "healthy again; replaying parked deliveries");
            self.queue_replay(id, at).await?;
        }
        Ok(())
    }

    /// Disables the webhook and publishes one alert (it stays pending, and is tried again
    /// with the next batch of the webhook, when it cannot be published now).
    async fn deactivate(
        &self,
        stored: &StoredWebhook,
        reason: DisabledReason,
        after: &HealthRecord,
        at: &str,
        owner_companies: &[String],
    ) -> Result<(), DeliveryError> {
        let w = &stored.webhook;
        // The companies whose data the webhook was receiving: its scopes', or all the key's.
        let mut companies: Vec<String> = w.scopes.iter().map(|s| s.company_id.clone()).collect();
        companies.dedup();
        if companies.is_empty() {
            companies = owner_companies.to_vec();
        }
        let alert = serde_json::json!({
            "type": "webhook.disabled", "webhook_id": w.id, "owner_key_id": w.owner_key_id,
            "companies": companies, "url": w.url, "reason": reason.as_str(),
            "consecutive_failures": after.health.consecutive_failures,
            "last_status_code": after.health.last_status_code, "last_error": after.health.last_error,
            "disabled_at": at,
        })
        .to_string();
        let won = self.state.deactivate(&w.id, reason, &alert, at).await?;
        if !won {
            return Ok(());
        }
        warn!(webhook_id = %w.id, reason = reason.as_str(), "webhook deactivated");
        let mut updated = stored.clone();
        updated.alert_pending = Some(alert.clone());
        if !self.publish_alert(&updated, &alert).await {
            warn!(webhook_id = %w.id, "alert pending; published with the webhook's next batch");
        }
        Ok(())
    }

    /// Publishes a pending alert and clears it; `false` if it is still pending.
    async fn publish_alert(&self, stored: &StoredWebhook, alert: &str) -> bool {
        let reason = stored.webhook.disabled_reason.map_or("failing", DisabledReason::as_str);
        let reason = serde_json::from_str::<serde_json::Value>(alert)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
            .unwrap_or_else(|| reason.to_owned());
        let Some(alerts) = &self.alerts else {
            warn!(webhook_id = %stored.webhook.id, "no alerts topic configured; alert logged only");
            return self.state.clear_alert(&stored.webhook.id, alert).await.is_ok();
        };
        if let Err(e) = alerts.publish(alert, &reason, &stored.webhook.owner_key_id).await {
            warn!(error = %webhooks_aws::error_chain(&e), "could not publish the alert; retried");
            return false;
        }
        self.state.clear_alert(&stored.webhook.id, alert).await.is_ok()
    }

    /// Parks `d` (a replayed copy back in its `slot`); `true` when it is kept or dropped for
    /// good, `false` when it must be sent (the reason to park no longer holds).
    async fn park(&self, d: &Delivery, guard: ParkGuard, slot: Option<&ParkSlot>) -> Result<bool, DeliveryError> {
        let turn = self.park_turns.take(&d.webhook_id).await;
        let t = now();
        let at = format_utc(t);
        let outcome = self
            .state
            .park(d, guard, self.config.park_limit, t.unix_timestamp(), self.config.park_ttl.as_secs() as i64, slot)
            .await;
        drop(turn);
        let outcome = outcome?;
        match outcome {
            ParkOutcome::Parked => {
                info!("delivery parked");
                let entry = LogEntry {
                    event_id: d.event.id.clone(),
                    source: Some(d.event.source.clone()),
                    webhook_message_id: d.webhook_message_id.clone(),
                    event_type: d.event.event_type.clone(),
                    attempt: None,
                    status: log_status::PARKED.into(),
                    status_code: None,
                    error: None,
                    response_body: None,
                    duration_ms: None,
                    attempted_at: at,
                    next_attempt_at: None,
                };
                self.log(d, &entry).await?;
                Ok(true)
            }
            ParkOutcome::Full => self.drop_delivery(d, DropReason::ParkFull).await.map(|_| true),
            ParkOutcome::Send => Ok(false),
        }
    }

    /// Counts a drop; `Ok(false)`: the record is done.
    async fn drop_delivery(&self, d: &Delivery, reason: DropReason) -> Result<bool, DeliveryError> {
        metric_drop(reason);
        self.state.count_drop(&d.webhook_id, reason).await?;
        Ok(false)
    }

    async fn log(&self, d: &Delivery, entry: &LogEntry) -> Result<(), DeliveryError> {
        let expires = now().unix_timestamp() + self.config.log_ttl.as_secs() as i64;
        self.state.log(&d.webhook_id, &d.delivery_id, entry, Some(&d.event), expires).await?;
        Ok(())
    }

    fn entry(
        &self,
        d: &Delivery,
        attempt: Option<u32>,
        status: &str,
        outcome: &SendOutcome,
        at: &str,
        next: Option<String>,
    ) -> LogEntry {
        let failed = status != log_status::SUCCEEDED;
        LogEntry {
            event_id: d.event.id.clone(),
            source: Some(d.event.source.clone()),
            webhook_message_id: d.webhook_message_id.clone(),
            event_type: d.event.event_type.clone(),
            attempt,
            status: status.into(),
            status_code: outcome.status,
            error: outcome.error.clone(),
            response_body: failed.then(|| {
                let end = outcome.body.len().min(LOGGED_RESPONSE_BYTES);
                String::from_utf8_lossy(&outcome.body[..end]).into_owned()
            }),
            duration_ms: Some(outcome.duration_ms),
            attempted_at: at.to_owned(),
            next_attempt_at: next,
        }
    }

    /// One page of a replay: re-sends parked deliveries oldest first as new generations (fresh
    /// attempts, same `webhook-id`, original match time), each carrying its park slot; drops
    /// expired ones (counted); queues the next page. A replay covers what was parked before it
    /// started (`until`), and stops, leaving the rest parked, as soon as the webhook is
    /// tripped, disabled or deleted.
    async fn replay(&self, replay: &Replay) -> Result<(), DeliveryError> {
        let t = now();
        let now_s = t.unix_timestamp();
        let ids = BTreeSet::from([replay.webhook_id.clone()]);
        let (webhooks, health) =
            join(self.subscriptions.webhooks_by_ids(&ids), self.state.health(&replay.webhook_id)).await;
        let status = webhooks?.get(&replay.webhook_id).map(|w| w.webhook.status);
        let health = health?;
        if !replay_continues(status, health.health.consecutive_failures, self.config.max_attempts) {
            info!(
                ?status,
                consecutive_failures = health.health.consecutive_failures,
                "replay stopped; the rest stays parked"
            );
            return Ok(());
        }
        let until = replay.until.clone().unwrap_or_else(|| webhooks_aws::state::replay_bound(t));
        let (page, more) =
            self.state.parked_page(&replay.webhook_id, replay.after.as_deref(), &until, REPLAY_PAGE).await?;
        let (expired_items, live): (Vec<_>, Vec<_>) = page.into_iter().partition(|p| expired(p.expires_at, now_s));
        let generation = (random_unit().unwrap_or(0.5) * f64::from(u32::MAX)) as u32 | 1;
        let bodies: Vec<String> = live.iter().map(|p| resent(p, generation).to_json()).collect();
        if !self.queue.send_all(&bodies).await.is_empty() {
            return Err(DeliveryError::Queue("the re-sent deliveries"));
        }
        // Removed only once re-queued: a crash in between re-sends some twice, never zero times.
        let sent: Vec<String> = live.iter().map(|p| p.sort_key.clone()).collect();
        self.state.unpark(&replay.webhook_id, &sent).await?;
        let mut dropped = 0;
        for p in &expired_items {
            if self.state.remove_parked(&replay.webhook_id, &p.sort_key, Some(DropReason::ParkExpired)).await? {
                dropped += 1;
            }
        }
        if dropped > 0 {
            metric_drops(DropReason::ParkExpired, dropped);
        }
        info!(resent = live.len(), expired = expired_items.len(), more, "replay page done");
        if more {
            let last = sent.iter().chain(expired_items.iter().map(|p| &p.sort_key)).max().cloned();
            let next = DeliveryQueueMessage::Replay(Replay {
                webhook_id: replay.webhook_id.clone(),
                after: last,
                until: Some(until),
            });
            if !self.queue.send_all(&[next.to_json()]).await.is_empty() {
                return Err(DeliveryError::Queue("the next replay page"));
            }
        }
        Ok(())
    }
}

/// The copy of a parked delivery a replay re-sends: a new generation with its original match
/// time, and the slot it goes back to if it has to be parked again.
fn resent(parked: &webhooks_aws::state::ParkedDelivery, generation: u32) -> DeliveryQueueMessage {
    DeliveryQueueMessage::Replayed(Replayed {
        delivery: parked.delivery.replayed(generation),
        slot: ParkSlot { sort_key: parked.sort_key.clone(), expires_at: parked.expires_at },
    })
}

fn attempt_result(outcome: &SendOutcome) -> AttemptResult {
    if outcome.succeeded() {
        return AttemptResult::Succeeded;
    }
    match outcome.status {
        Some(410) => AttemptResult::Gone,
        Some(429 | 503) => AttemptResult::Failed {
            retry_after: outcome.retry_after.as_deref().and_then(|v| parse_retry_after(v, now())),
        },
        _ => AttemptResult::Failed { retry_after: None },
    }
}

/// How many times SQS has handed this message out, this receive included.
fn receive_count(record: &SqsMessage) -> u32 {
    record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// Drops counted together (a sweep, a purge): one metric line with their count.
fn metric_drops(reason: DropReason, count: u64) {
    webhooks_aws::metrics::dropped_deliveries(reason, count);
    info!(reason = reason.as_str(), count, "deliveries dropped");
}

/// One counted drop: a metric in Embedded Metric Format, and a log line saying which.
fn metric_drop(reason: DropReason) {
    webhooks_aws::metrics::dropped_delivery(reason);
    info!(reason = reason.as_str(), "delivery dropped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhooks_aws::state::{ParkedDelivery, now_ms};
    use webhooks_core::reliability::parked_on_manual_disable;

    #[tokio::test]
    async fn parks_of_one_webhook_take_turns_and_others_do_not_wait() {
        // GIVEN one webhook's turn taken
        let turns = ParkTurns::default();
        let first = turns.take("wh_a").await;
        // WHEN another park of it, and one of another webhook, ask for theirs
        let same = tokio::time::timeout(Duration::from_millis(50), turns.take("wh_a")).await;
        let other = tokio::time::timeout(Duration::from_millis(50), turns.take("wh_b")).await;
        // THEN the same webhook waits, the other does not
        assert!(same.is_err(), "a second park of one webhook ran alongside the first");
        assert!(other.is_ok());
        drop(other);
        // AND once the first is done the next goes, and nothing is kept afterwards
        drop(first);
        let next = tokio::time::timeout(Duration::from_millis(50), turns.take("wh_a")).await;
        assert!(next.is_ok());
        drop(next);
        assert!(turns.0.lock().map(|t| t.is_empty()).unwrap_or(false));
    }

    fn parked(queued_at: i64) -> Result<ParkedDelivery, Box<dyn std::error::Error>> {
        let body = serde_json::json!({
            "specversion": "1.0", "id": "evt-1", "source": "app/companies/acme/projects/p1", "type": "TODO_CREATED",
            "companyid": "acme", "projectid": "p1", "data": {}
        });
        let event = webhooks_core::event::parse_ingest_body(&body.to_string(), now())?;
        let delivery = Delivery {
            delivery_id: "dlv_0".into(),
            webhook_id: "wh_1".into(),
            webhook_message_id: "msg_1".into(),
            event,
            generation: 0,
            queued_at,
        };
        Ok(ParkedDelivery { sort_key: "k".into(), delivery, expires_at: i64::MAX })
    }

    #[test]
    fn a_manual_disable_during_a_replay_parks_the_replayed_deliveries() -> Result<(), Box<dyn std::error::Error>> {
        // GIVEN a delivery matched an hour ago and parked
        let matched = now_ms() - 3_600_000;
        let p = parked(matched)?;
        // WHEN a replay re-sends it, and the webhook is disabled by hand right after
        let DeliveryQueueMessage::Replayed(Replayed { delivery: copy, slot }) = resent(&p, 7) else {
            return Err("a replayed delivery".into());
        };
        assert_eq!(slot.sort_key, p.sort_key, "parked again in its original place");
        let disabled_at = now_ms() - 1;
        // THEN the copy is parked on the manual disable (it was matched before it), not dropped
        assert!(
            parked_on_manual_disable(copy.queued_at, Some(disabled_at)),
            "queued_at {} vs disabled {disabled_at}",
            copy.queued_at
        );
        // AND it keeps its webhook-id, with a fresh attempt budget
        assert_eq!(copy.webhook_message_id, p.delivery.webhook_message_id);
        assert_ne!(copy.delivery_id, p.delivery.delivery_id);
        Ok(())
    }
}
