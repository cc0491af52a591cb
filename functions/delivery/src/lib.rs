//! The delivery function: sends each queued (event, webhook) pair as a signed POST (Standard
//! Webhooks), all records of a batch concurrently over one pooled client.
//!
//! A failed attempt is retried by SQS: the message's visibility is set to the next delay of
//! the retry schedule and the record is reported failed; nothing sleeps inside the function.
//! The webhook and its owner key are read (strongly consistent) before every attempt, so a
//! deleted webhook, a revoked key or a key that lost the event's company stops the flow, queued
//! retries included.
//!
//! A record it cannot decode is poison: it is reported as failed and never deleted, so SQS
//! moves it to the delivery DLQ after `maxReceiveCount` receives, where it stays visible and
//! re-drivable.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use lambda_runtime::LambdaEvent;
use reqwest::header::HeaderMap;
use time::OffsetDateTime;
use tracing::{Instrument, error, info, info_span, warn};
use webhooks_aws::config::{ConfigError, parsed, required};
use webhooks_aws::dynamodb::{DynamoDbSubscriptions, StoredKey, StoredWebhook};
use webhooks_aws::http::{HttpSender, insert};
use webhooks_aws::sqs::SqsRetryScheduler;
use webhooks_core::ids::random_unit;
use webhooks_core::message::{Delivery, DeliveryQueueMessage};
use webhooks_core::model::{DisabledReason, DropReason, WebhookStatus};
use webhooks_core::payload::delivery_body;
use webhooks_core::retry::{RetrySchedule, next_delay, parse_duration, parse_retry_after};
use webhooks_core::signing::{SigningSecret, signature_header};

/// Default of `WEBHOOKS_MAX_ATTEMPTS` (SPEC §6).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default of `WEBHOOKS_DELIVERY_TIMEOUT` (SPEC §5).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of delivery, read once per execution environment.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub schedule: RetrySchedule,
    pub timeout: Duration,
}

impl DeliveryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            max_attempts: parsed("WEBHOOKS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, |v| match v.parse::<u32>() {
                Ok(n) if (1..=10).contains(&n) => Ok(n),
                _ => Err("expected a whole number from 1 to 10".to_owned()),
            })?,
            schedule: parsed("WEBHOOKS_RETRY_SCHEDULE", RetrySchedule::default(), RetrySchedule::parse)?,
            timeout: parsed("WEBHOOKS_DELIVERY_TIMEOUT", DEFAULT_DELIVERY_TIMEOUT, parse_duration)?,
        })
    }
}

/// What delivery needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pub subscriptions: DynamoDbSubscriptions,
    pub retries: SqsRetryScheduler,
    pub sender: HttpSender,
    pub config: DeliveryConfig,
}

impl Deliverer {
    /// Clients and settings from the environment the template gives the function.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let sdk = webhooks_aws::sdk_config().await;
        let config = DeliveryConfig::from_env()?;
        Ok(Self {
            subscriptions: DynamoDbSubscriptions::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                required("SUBSCRIPTIONS_TABLE")?,
            ),
            retries: SqsRetryScheduler::new(aws_sdk_sqs::Client::new(&sdk), required("DELIVERY_QUEUE_URL")?),
            sender: HttpSender::new(config.timeout)?,
            config,
        })
    }

    /// Handles one SQS batch; the response lists the records SQS must hand back later.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let mut failed = Vec::new();
        let mut work = Vec::new();
        for record in &event.payload.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            match DeliveryQueueMessage::from_json(record.body.as_deref().unwrap_or_default()) {
                Ok(DeliveryQueueMessage::Delivery(d)) => work.push((record, d)),
                Err(e) => {
                    error!(message_id = %message_id, error = %e, "undecodable delivery message; left for the DLQ");
                    failed.push(message_id);
                }
            }
        }
        if work.is_empty() {
            return Ok(webhooks_aws::batch::retry_only(failed));
        }

        // One read of every webhook and owner key of the batch, strongly consistent.
        let webhook_ids: BTreeSet<String> = work.iter().map(|(_, d)| d.webhook_id.clone()).collect();
        let loaded = match self.subscriptions.webhooks_by_ids(&webhook_ids).await {
            Ok(webhooks) => {
                let owner_ids: BTreeSet<String> = webhooks.values().map(|w| w.webhook.owner_key_id.clone()).collect();
                self.subscriptions.keys_by_ids(&owner_ids).await.map(|owners| (webhooks, owners))
            }
            Err(e) => Err(e),
        };
        let (webhooks, owners) = match loaded {
            Ok(both) => both,
            Err(e) => {
                // No attempt was made: the records come back after their visibility timeout.
                error!(error = %webhooks_aws::error_chain(&e), "could not read webhooks; batch retried");
                failed.extend(work.iter().map(|(r, _)| r.message_id.clone().unwrap_or_default()));
                return Ok(webhooks_aws::batch::retry_only(failed));
            }
        };

        let outcomes = join_all(work.iter().map(|(record, d)| {
            let span = info_span!("delivery", webhook_id = %d.webhook_id, event_id = %d.event.id, delivery_id = %d.delivery_id);
            self.deliver(record, d, &webhooks, &owners).instrument(span)
        }))
        .await;
        for ((record, _), retry) in work.iter().zip(outcomes) {
            if retry {
                failed.push(record.message_id.clone().unwrap_or_default());
            }
        }
        Ok(webhooks_aws::batch::retry_only(failed))
    }

    /// Delivers one record; `true` when SQS must hand it back later.
    async fn deliver(
        &self,
        record: &SqsMessage,
        d: &Delivery,
        webhooks: &HashMap<String, StoredWebhook>,
        owners: &HashMap<String, StoredKey>,
    ) -> bool {
        let Some(stored) = webhooks.get(&d.webhook_id) else {
            dropped(DropReason::WebhookDeleted);
            return false;
        };
        let w = &stored.webhook;
        if !owners.get(&w.owner_key_id).is_some_and(|o| o.key.holds(&d.event.company_id)) {
            dropped(DropReason::OwnerRevoked);
            return false;
        }
        if w.status != WebhookStatus::Active {
            if w.disabled_reason == Some(DisabledReason::Manual) {
                dropped(DropReason::ManualDisabled);
                return false;
            }
            // Kept on the queue, never lost, until the webhook is enabled again.
            return self.schedule_retry(record, u32::MAX, None).await;
        }

        let now = OffsetDateTime::now_utc().unix_timestamp();
        let secrets: Vec<SigningSecret> = stored
            .secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .filter_map(|s| SigningSecret::parse(&s.secret).ok())
            .collect();
        let body = delivery_body(&d.event, &w.id);
        let mut headers = HeaderMap::new();
        for (name, value) in &w.headers {
            insert(&mut headers, name, value);
        }
        insert(&mut headers, "content-type", "application/json");
        insert(&mut headers, "webhook-id", &d.webhook_message_id);
        insert(&mut headers, "webhook-timestamp", &now.to_string());
        insert(&mut headers, "webhook-signature", &signature_header(&secrets, &d.webhook_message_id, now, body.as_bytes()));

        let attempt = receive_count(record);
        let outcome = self.sender.post(&w.url, headers, body).await;
        if outcome.succeeded() {
            info!(attempt, status = outcome.status, duration_ms = outcome.duration_ms, "delivered");
            return false;
        }
        warn!(attempt, status = outcome.status, error = outcome.error.as_deref(), duration_ms = outcome.duration_ms, "attempt failed");
        let retry_after = match outcome.status {
            Some(429 | 503) => outcome.retry_after.as_deref().and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc())),
            _ => None,
        };
        self.schedule_retry(record, attempt.saturating_add(1), retry_after).await
    }

    /// Sets the record's visibility to the delay before `next_attempt`; always `true`.
    async fn schedule_retry(&self, record: &SqsMessage, next_attempt: u32, retry_after: Option<Duration>) -> bool {
        let unit = random_unit().unwrap_or(0.5);
        let delay = next_delay(&self.config.schedule, next_attempt, unit, retry_after);
        if let Some(handle) = record.receipt_handle.as_deref() {
            if let Err(e) = self.retries.retry_in(handle, delay.as_secs()).await {
                // The queue's own visibility timeout applies instead: later, not lost.
                warn!(error = %webhooks_aws::error_chain(&e), "could not schedule the retry");
            }
        }
        true
    }
}

/// How many times SQS has handed this message out, this receive included.
fn receive_count(record: &SqsMessage) -> u32 {
    record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// One counted drop, in CloudWatch's embedded metric format.
fn dropped(reason: DropReason) {
    info!(
        _aws = %serde_json::json!({"Timestamp": OffsetDateTime::now_utc().unix_timestamp() * 1000,
            "CloudWatchMetrics": [{"Namespace": "Webhooks", "Dimensions": [["reason"]],
            "Metrics": [{"Name": "DroppedDeliveries", "Unit": "Count"}]}]}),
        reason = reason.as_str(),
        DroppedDeliveries = 1,
        "delivery dropped"
    );
}
