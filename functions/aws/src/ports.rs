//! The core's ports implemented with DynamoDB, SQS, SNS, KMS and the HTTP sender: each
//! delegates to its adapter's own method and maps the adapter's error to a `PortError`, keeping
//! it as the cause.

use std::collections::{BTreeSet, HashMap};

use webhooks_core::attempt::SendOutcome;
use webhooks_core::event::Event;
use webhooks_core::message::{Delivery, ParkSlot};
use webhooks_core::model::{DisabledReason, DropReason};
use webhooks_core::ports::{
    Alerts, AttemptStore, Claim, DeliveryLog, DeliveryQueue, EventClaims, HealthRecord, HealthStore, IndexEntry,
    IngestDeadLetters, MatchIndexReader, OwnerKeys, ParkGuard, ParkOutcome, ParkedDelivery, ParkingStore, PortError,
    RetryScheduler, SecretStore, SignedRequest, StoredKey, StoredSecret, StoredWebhook, WebhookSender, WebhookStore,
};
use webhooks_core::reliability::AttemptRecord;
use webhooks_core::resources::LogEntry;
use webhooks_core::signing::SigningKey;

use crate::attempts::DynamoDbAttempts;
use crate::claims::DynamoDbEventClaims;
use crate::delivery_log::DynamoDbDeliveryLog;
use crate::dynamodb::{DynamoDbSubscriptions, StoreError};
use crate::health::DynamoDbHealth;
use crate::http::HttpSender;
use crate::kms::{KmsSecretBox, SecretBoxError};
use crate::parking::DynamoDbParking;
use crate::sns::SnsAlerts;
use crate::sqs::{SqsBatchSender, SqsError, SqsIngestDeadLetters, SqsRetryScheduler};

impl From<StoreError> for PortError {
    fn from(e: StoreError) -> Self {
        let operation = match &e {
            StoreError::Unavailable { operation, .. } => *operation,
            _ => "dynamodb",
        };
        PortError::unavailable(operation, e)
    }
}

impl From<SqsError> for PortError {
    fn from(e: SqsError) -> Self {
        PortError::unavailable(e.operation, e)
    }
}

impl MatchIndexReader for DynamoDbSubscriptions {
    async fn index_entries(&self, partition: &str, event_types: &BTreeSet<&str>) -> Result<Vec<IndexEntry>, PortError> {
        Ok(DynamoDbSubscriptions::index_entries(self, partition, event_types).await?)
    }
}

impl OwnerKeys for DynamoDbSubscriptions {
    async fn keys_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredKey>, PortError> {
        Ok(DynamoDbSubscriptions::keys_by_ids(self, ids).await?)
    }
}

impl EventClaims for DynamoDbEventClaims {
    async fn claim(&self, event_key: &str, now: i64) -> Result<Claim, PortError> {
        Ok(DynamoDbEventClaims::claim(self, event_key, now).await?)
    }

    async fn complete(&self, event_key: &str, now: i64) -> Result<(), PortError> {
        Ok(DynamoDbEventClaims::complete(self, event_key, now).await?)
    }
}

impl DeliveryQueue for SqsBatchSender {
    async fn send_all(&self, bodies: &[String]) -> Vec<usize> {
        SqsBatchSender::send_all(self, bodies).await
    }

    async fn send_later(&self, messages: &[(String, u32)]) -> Vec<usize> {
        let (bodies, delays): (Vec<String>, Vec<u32>) = messages.iter().cloned().unzip();
        SqsBatchSender::send_all_delayed(self, &bodies, &delays).await
    }
}

impl IngestDeadLetters for SqsIngestDeadLetters {
    async fn reject(&self, body: &str, reason: &str, detail: &str) -> Result<(), PortError> {
        Ok(SqsIngestDeadLetters::reject(self, body, reason, detail).await?)
    }
}

impl From<SecretBoxError> for PortError {
    fn from(e: SecretBoxError) -> Self {
        PortError::unavailable("Decrypt", e)
    }
}

impl WebhookStore for DynamoDbSubscriptions {
    async fn webhooks_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredWebhook>, PortError> {
        Ok(DynamoDbSubscriptions::webhooks_by_ids(self, ids).await?)
    }

    async fn deactivate(
        &self,
        webhook_id: &str,
        reason: DisabledReason,
        alert: &str,
        at: &str,
    ) -> Result<bool, PortError> {
        Ok(DynamoDbSubscriptions::deactivate(self, webhook_id, reason, alert, at).await?)
    }

    async fn clear_alert(&self, webhook_id: &str, alert: &str) -> Result<(), PortError> {
        Ok(DynamoDbSubscriptions::clear_alert(self, webhook_id, alert).await?)
    }
}

impl HealthStore for DynamoDbHealth {
    async fn health_of(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, HealthRecord>, PortError> {
        Ok(DynamoDbHealth::health_of(self, ids).await?)
    }

    async fn record_success(&self, id: &str, at: &str, request_replay: bool) -> Result<HealthRecord, PortError> {
        Ok(if request_replay {
            DynamoDbHealth::record_success_requesting_replay(self, id, at).await?
        } else {
            DynamoDbHealth::record_success(self, id, at).await?
        })
    }

    async fn record_failure(
        &self,
        id: &str,
        at: &str,
        status_code: Option<u16>,
        error: &str,
    ) -> Result<HealthRecord, PortError> {
        Ok(DynamoDbHealth::record_failure(self, id, at, status_code, error).await?)
    }

    async fn count_drop(&self, id: &str, reason: DropReason) -> Result<(), PortError> {
        Ok(DynamoDbHealth::count_drop(self, id, reason).await?)
    }

    async fn claim_probe(&self, id: &str, delivery_id: &str, until: i64, now: i64) -> Result<bool, PortError> {
        Ok(DynamoDbHealth::claim_probe(self, id, delivery_id, until, now).await?)
    }

    async fn release_probe(&self, id: &str, delivery_id: &str) -> Result<(), PortError> {
        Ok(DynamoDbHealth::release_probe(self, id, delivery_id).await?)
    }

    async fn move_next_send(&self, id: &str, seen: Option<i64>, next: i64) -> Result<bool, PortError> {
        Ok(DynamoDbHealth::move_next_send(self, id, seen, next).await?)
    }

    async fn keep_alert(&self, id: &str, kind: &str, alert: &str) -> Result<(), PortError> {
        Ok(DynamoDbHealth::keep_alert(self, id, kind, alert).await?)
    }

    async fn forget_alert(&self, id: &str, kind: &str, alert: &str) -> Result<(), PortError> {
        Ok(DynamoDbHealth::forget_alert(self, id, kind, alert).await?)
    }

    async fn clear_replay_request(&self, id: &str, requested_at: &str) -> Result<(), PortError> {
        Ok(DynamoDbHealth::clear_replay_request(self, id, requested_at).await?)
    }
}

impl AttemptStore for DynamoDbAttempts {
    async fn attempts(&self, delivery_id: &str) -> Result<Option<(u32, i64)>, PortError> {
        Ok(DynamoDbAttempts::attempts(self, delivery_id).await?)
    }

    async fn claim_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        now: i64,
        until: i64,
        receive: &str,
    ) -> Result<Result<(), AttemptRecord>, PortError> {
        Ok(DynamoDbAttempts::claim_attempt(self, delivery_id, attempt, now, until, receive).await?)
    }

    async fn release_claim(&self, delivery_id: &str, attempt: u32, receive: &str) -> Result<(), PortError> {
        Ok(DynamoDbAttempts::release_claim(self, delivery_id, attempt, receive).await?)
    }

    async fn defer(&self, delivery_id: &str, attempt: u32, receive: &str, max: u32) -> Result<bool, PortError> {
        Ok(DynamoDbAttempts::defer(self, delivery_id, attempt, receive, max).await?)
    }

    async fn record_delivered(&self, delivery_id: &str, now: i64) -> Result<(), PortError> {
        Ok(DynamoDbAttempts::record_delivered(self, delivery_id, now).await?)
    }

    async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        first_attempt_at: i64,
        now: i64,
    ) -> Result<bool, PortError> {
        Ok(DynamoDbAttempts::record_attempt(self, delivery_id, attempt, first_attempt_at, now).await?)
    }
}

impl ParkingStore for DynamoDbParking {
    async fn park(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        limit: u64,
        now: i64,
        ttl_seconds: i64,
        slot: Option<&ParkSlot>,
    ) -> Result<ParkOutcome, PortError> {
        Ok(DynamoDbParking::park(self, d, guard, limit, now, ttl_seconds, slot).await?)
    }

    async fn sweep_expired(&self, webhook_id: &str, now: i64, limit: i32) -> Result<u64, PortError> {
        Ok(DynamoDbParking::sweep_expired(self, webhook_id, now, limit).await?)
    }

    async fn remove_parked(
        &self,
        webhook_id: &str,
        sort_key: &str,
        dropped: Option<DropReason>,
        generation: Option<u32>,
    ) -> Result<bool, PortError> {
        Ok(DynamoDbParking::remove_parked(self, webhook_id, sort_key, dropped, generation).await?)
    }

    async fn parked_page(
        &self,
        webhook_id: &str,
        after: Option<&str>,
        until: &str,
        limit: i32,
    ) -> Result<(Vec<ParkedDelivery>, bool), PortError> {
        Ok(DynamoDbParking::parked_page(self, webhook_id, after, until, limit).await?)
    }

    async fn purge_parked(&self, webhook_id: &str, limit: i32) -> Result<(u64, bool), PortError> {
        Ok(DynamoDbParking::purge_parked(self, webhook_id, limit).await?)
    }
}

impl DeliveryLog for DynamoDbDeliveryLog {
    async fn log(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        entry: &LogEntry,
        event: Option<&Event>,
        expires_at: i64,
    ) -> Result<(), PortError> {
        Ok(DynamoDbDeliveryLog::log(self, webhook_id, delivery_id, entry, event, expires_at).await?)
    }

    async fn kept_event(
        &self,
        webhook_id: &str,
        webhook_message_id: &str,
        now: i64,
    ) -> Result<Option<Event>, PortError> {
        Ok(DynamoDbDeliveryLog::kept_payload(self, webhook_id, webhook_message_id, now).await?.map(|(event, _)| event))
    }
}

impl RetryScheduler for SqsRetryScheduler {
    async fn retry_in(&self, receipt_handle: &str, seconds: u64) -> Result<(), PortError> {
        Ok(SqsRetryScheduler::retry_in(self, receipt_handle, seconds).await?)
    }
}

impl Alerts for SnsAlerts {
    async fn publish(&self, message: &str, reason: &str, owner_key_id: &str) -> Result<(), PortError> {
        Ok(SnsAlerts::publish(self, message, reason, owner_key_id).await?)
    }
}

impl SecretStore for KmsSecretBox {
    async fn signing_secrets(
        &self,
        webhook_id: &str,
        stored: &[StoredSecret],
        now: i64,
    ) -> Result<Vec<SigningKey>, PortError> {
        Ok(KmsSecretBox::signing_secrets(self, webhook_id, stored, now).await?)
    }
}

impl WebhookSender for HttpSender {
    async fn send(&self, request: SignedRequest<'_>) -> SendOutcome {
        self.send_signed(request).await
    }
}
