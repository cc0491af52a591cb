//! The ports of delivery (SPEC §5, §6): the webhooks and their health, attempt records,
//! parking, the delivery log, the queue's retries, alerts, signing secrets and the signed POST.
//! The conditions each write holds are part of its contract: the in-memory implementations
//! keep them exactly as the DynamoDB ones do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use serde::{Deserialize, Serialize};

use super::PortError;
use crate::attempt::SendOutcome;
use crate::event::Event;
use crate::message::{Delivery, ParkSlot};
use crate::model::{DisabledReason, DropReason, SignatureScheme};
use crate::reliability::AttemptRecord;
pub use crate::reliability::ParkGuard;
use crate::resources::{Health, LogEntry, Webhook};
use crate::signing::SigningKey;

/// One signing key of a webhook as stored: KMS ciphertext (base64, encryption context the
/// webhook id) of an HMAC secret (`v1`) or an Ed25519 private key (`v1a`); `expires_at` (Unix
/// seconds) is set on a previous key during the grace period of a rotation or a switch of
/// scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub ciphertext: String,
    pub expires_at: Option<i64>,
    /// Which kind of key the ciphertext holds, known without decrypting it (items written
    /// before `v1a` existed hold HMAC secrets).
    #[serde(default)]
    pub scheme: SignatureScheme,
}

/// A webhook as stored: the resource, its secrets, a version for optimistic concurrency and
/// the index partitions it is written in (so a change knows which entries to remove).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secrets: Vec<StoredSecret>,
    pub version: u64,
    pub partitions: BTreeSet<String>,
    /// The alert of a deactivation, until it is published (at least once, even across a
    /// crash between the deactivation and the publish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_pending: Option<String>,
    /// When it was last disabled (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at_ms: Option<i64>,
}

/// A webhook's failure counters, probe slot and parking bookkeeping, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthRecord {
    pub health: Health,
    /// The delivery currently allowed through while the webhook is tripped, and until when.
    pub probe: Option<(String, i64)>,
    /// Parked deliveries, maintained in the same transactions that park and remove them
    /// (expired ones included until a sweep counts them: see `park_sweep_at`).
    pub parked_count: u64,
    /// No parked delivery expires before this (Unix seconds): a sweep is due once it passed.
    pub park_sweep_at: Option<i64>,
    /// A recovery asked for a replay at this time, and it is not known to be queued yet.
    pub replay_requested_at: Option<String>,
    /// The webhook was enabled after a disable and has not succeeded since: its next success
    /// is a recovery.
    pub recovering: bool,
    /// Operational alerts not yet published, by kind (`failing`, `recovered`): JSON.
    pub pending_alerts: BTreeMap<String, String>,
    /// The webhook's next free send slot under its `rate_limit` (Unix milliseconds; see
    /// `rate_limit`).
    pub next_send_ms: Option<i64>,
}

/// What parking a delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkOutcome {
    Parked,
    /// The webhook already keeps the most deliveries it may: dropped (`park_full`).
    Full,
    /// The reason to park no longer holds (the webhook was re-enabled or recovered): send it.
    Send,
}

/// A parked delivery read back for replay.
#[derive(Debug, Clone)]
pub struct ParkedDelivery {
    pub sort_key: String,
    pub delivery: Delivery,
    pub expires_at: i64,
}

/// The webhooks delivery reads and the two writes it makes on them.
pub trait WebhookStore {
    /// The webhooks among `ids` that exist, by id, read strongly consistent.
    fn webhooks_by_ids(
        &self,
        ids: &BTreeSet<String>,
    ) -> impl Future<Output = Result<HashMap<String, StoredWebhook>, PortError>> + Send;

    /// Disables an active webhook for `reason` with `alert` (JSON) pending on it. `true` only
    /// for the one call that changed it (the webhook was active): only that call alerts.
    fn deactivate(
        &self,
        webhook_id: &str,
        reason: DisabledReason,
        alert: &str,
        at: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Clears `alert` once published (only that one: a newer deactivation's alert stays).
    fn clear_alert(&self, webhook_id: &str, alert: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The failure counters of webhooks (HealthTable): each change is one atomic write.
pub trait HealthStore {
    /// The records of `ids` (a webhook with none has the default), strongly consistent.
    fn health_of(
        &self,
        ids: &BTreeSet<String>,
    ) -> impl Future<Output = Result<HashMap<String, HealthRecord>, PortError>> + Send;

    /// A success at `at`: the streak ends and the probe slot is freed. With `request_replay`,
    /// a success that ends a streak while deliveries are parked also records a replay request
    /// in the same write. Returns the record as it was before.
    fn record_success(
        &self,
        id: &str,
        at: &str,
        request_replay: bool,
    ) -> impl Future<Output = Result<HealthRecord, PortError>> + Send;

    /// A failed attempt: one more in the streak. Returns the record after the change.
    fn record_failure(
        &self,
        id: &str,
        at: &str,
        status_code: Option<u16>,
        error: &str,
    ) -> impl Future<Output = Result<HealthRecord, PortError>> + Send;

    /// Counts one dropped delivery of a webhook, by reason.
    fn count_drop(&self, id: &str, reason: DropReason) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Takes the probe slot of a tripped webhook for `delivery_id` until `until` (Unix
    /// seconds) if it is free, expired at `now`, or already this delivery's. `false` when
    /// another delivery holds it.
    fn claim_probe(
        &self,
        id: &str,
        delivery_id: &str,
        until: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Frees the probe slot if `delivery_id` holds it.
    fn release_probe(&self, id: &str, delivery_id: &str) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Moves the webhook's next free send slot from `seen` (as read; `None`: never set) to
    /// `next` (Unix milliseconds). `false` when it is no longer `seen`: another execution
    /// environment took slots first.
    fn move_next_send(
        &self,
        id: &str,
        seen: Option<i64>,
        next: i64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Keeps an operational alert of `kind` that could not be published, to publish later.
    fn keep_alert(&self, id: &str, kind: &str, alert: &str) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Forgets the kept alert of `kind` once published (only if it is still `alert`).
    fn forget_alert(&self, id: &str, kind: &str, alert: &str) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Clears the replay request made at `requested_at` (only that one) once it is queued.
    fn clear_replay_request(&self, id: &str, requested_at: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Attempt records: which attempt of a delivery is claimed, counted, delivered (SPEC §6's
/// exact attempts; `reliability`'s module docs say why).
pub trait AttemptStore {
    /// Attempts counted for a delivery and when its first was made (Unix seconds).
    fn attempts(&self, delivery_id: &str) -> impl Future<Output = Result<Option<(u32, i64)>, PortError>> + Send;

    /// Claims attempt `attempt` before it is sent, until `until`, for the receive named
    /// `receive`. `Err(record)` (as it is now) when the delivery is delivered, the attempt
    /// counted already, or claimed by another receive whose claim runs past `now`. The same
    /// receive claiming again gets it.
    fn claim_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        now: i64,
        until: i64,
        receive: &str,
    ) -> impl Future<Output = Result<Result<(), AttemptRecord>, PortError>> + Send;

    /// Frees this receive's claim of attempt `attempt`, unsent (its send slot passed while it
    /// waited): the attempt is made by a later receive, counting nothing.
    fn release_claim(
        &self,
        delivery_id: &str,
        attempt: u32,
        receive: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Defers claimed attempt `attempt` (the receiver asked to slow down) if the delivery was
    /// deferred fewer than `max` times: counts the deferral and frees the claim, so the same
    /// attempt is made again later. `false` when it may not be deferred any more.
    fn defer(
        &self,
        delivery_id: &str,
        attempt: u32,
        receive: &str,
        max: u32,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Marks a delivery delivered: a copy received later sends nothing.
    fn record_delivered(&self, delivery_id: &str, now: i64) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Counts attempt `attempt` exactly once (expecting `attempt - 1` counted): `false` when
    /// another receive counted it.
    fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        first_attempt_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// Parked deliveries, counted on the webhook's health record in the same transaction.
pub trait ParkingStore {
    /// Parks `d` if `guard` still holds and the webhook keeps fewer than `limit`, until
    /// `now + ttl_seconds`; a replayed copy (`slot`) goes back to its place and expiry,
    /// replacing the older generation it was made from if that is still there.
    fn park(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        limit: u64,
        now: i64,
        ttl_seconds: i64,
        slot: Option<&ParkSlot>,
    ) -> impl Future<Output = Result<ParkOutcome, PortError>> + Send;

    /// Removes up to `limit` expired parked deliveries (oldest first), each counted as
    /// dropped (`park_expired`). Returns how many.
    fn sweep_expired(
        &self,
        webhook_id: &str,
        now: i64,
        limit: i32,
    ) -> impl Future<Output = Result<u64, PortError>> + Send;

    /// Removes one parked delivery and frees its slot; with `dropped`, counts it; with
    /// `generation`, only if the slot still holds that generation. `false` when it was gone
    /// already (or holds another generation).
    fn remove_parked(
        &self,
        webhook_id: &str,
        sort_key: &str,
        dropped: Option<DropReason>,
        generation: Option<u32>,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Up to `limit` parked deliveries oldest first, after `after` and before `until` (sort
    /// keys); `true` when more may follow.
    fn parked_page(
        &self,
        webhook_id: &str,
        after: Option<&str>,
        until: &str,
        limit: i32,
    ) -> impl Future<Output = Result<(Vec<ParkedDelivery>, bool), PortError>> + Send;

    /// Removes up to `limit` parked deliveries of a deleted webhook. Returns how many, and
    /// whether more remain.
    fn purge_parked(&self, webhook_id: &str, limit: i32)
    -> impl Future<Output = Result<(u64, bool), PortError>> + Send;
}

/// The delivery log (SPEC §7).
pub trait DeliveryLog {
    /// Adds an entry, kept until `expires_at`, with the payload when given.
    fn log(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        entry: &LogEntry,
        event: Option<&Event>,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The payload of an event logged for a webhook (by its `webhook-id`), if an entry that
    /// keeps it has not expired at `now` (Unix seconds).
    fn kept_event(
        &self,
        webhook_id: &str,
        webhook_message_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<Event>, PortError>> + Send;
}

/// Retries by visibility timeout: a received message comes back after a delay.
pub trait RetryScheduler {
    /// Makes the message received with `receipt_handle` visible again in `seconds` (at most
    /// SQS's 12 h from its receipt).
    fn retry_in(&self, receipt_handle: &str, seconds: u64) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The alerts topic.
pub trait Alerts {
    /// Publishes `message` (JSON) with its `reason` and `owner_key_id` as attributes.
    fn publish(
        &self,
        message: &str,
        reason: &str,
        owner_key_id: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Signing keys (HMAC secrets and Ed25519 private keys), decrypted.
pub trait SecretStore {
    /// The keys of a webhook that sign at `now` (current, and previous ones within their
    /// grace), in the stored order.
    fn signing_secrets(
        &self,
        webhook_id: &str,
        stored: &[StoredSecret],
        now: i64,
    ) -> impl Future<Output = Result<Vec<SigningKey>, PortError>> + Send;
}

/// One signed POST (Standard Webhooks, SPEC §5) to a receiver.
#[derive(Debug, Clone)]
pub struct SignedRequest<'a> {
    pub url: &'a str,
    /// The webhook's own headers, sent first.
    pub headers: &'a BTreeMap<String, String>,
    pub webhook_message_id: &'a str,
    /// `webhook-timestamp` (Unix seconds).
    pub timestamp: i64,
    pub body: String,
    /// The keys that sign it, each adding its entry to `webhook-signature`.
    pub secrets: &'a [SigningKey],
}

/// The only way the service reaches URLs customers control.
pub trait WebhookSender {
    /// Sends the request, signed; never fails: the outcome says what happened.
    fn send(&self, request: SignedRequest<'_>) -> impl Future<Output = SendOutcome> + Send;
}
