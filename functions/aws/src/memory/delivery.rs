//! The ports of delivery in memory. [`MemoryDynamoDb`] holds the three tables delivery writes
//! (webhooks and keys, health, deliveries) behind one lock, so a park's transaction across
//! them is as atomic as DynamoDB's; each write checks the condition its DynamoDB adapter
//! sends, and items keep DynamoDB's size limit. The queue's retries refuse SQS's visibility
//! cap, and the receiver answers what the test scripts, recording what it got.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use webhooks_core::attempt::SendOutcome;
use webhooks_core::event::Event;
use webhooks_core::message::{Delivery, ParkSlot};
use webhooks_core::model::{DisabledReason, DropReason, WebhookStatus};
use webhooks_core::payload::request_headers;
use webhooks_core::ports::{
    Alerts, AttemptStore, Clock, DeliveryLog, HealthRecord, HealthStore, OwnerKeys, ParkGuard, ParkOutcome,
    ParkedDelivery, ParkingStore, PortError, RetryScheduler, SecretStore, SignedRequest, StoredKey, StoredSecret,
    StoredWebhook, WebhookSender, WebhookStore,
};
use webhooks_core::reliability::{AttemptRecord, expired};
use webhooks_core::resources::LogEntry;
use webhooks_core::signing::SigningKey;

use super::{DYNAMODB_MAX_BATCH_GET_KEYS, Failures, ManualClock, MemoryError, lock};
use crate::keys::park_sort_key;

/// DynamoDB refuses an item larger than 400 KB (names and values).
pub const DYNAMODB_MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB refuses an item nested deeper than 32 levels.
pub const DYNAMODB_MAX_DEPTH: usize = 32;
/// SQS refuses a visibility timeout over 12 h.
pub const SQS_MAX_VISIBILITY_SECONDS: u64 = 43_200;

/// A parked item: the delivery and its logical expiry.
#[derive(Debug, Clone)]
struct ParkedItem {
    delivery: Delivery,
    expires_at: i64,
}

/// An attempt record as `DynamoDbAttempts` stores it.
#[derive(Debug, Clone, Default)]
struct AttemptItem {
    attempts_made: Option<u32>,
    first_attempt_at: Option<i64>,
    delivered: bool,
    /// Claimed attempt, until when, by which receive.
    claim: Option<(u32, i64, String)>,
    /// Times the receiver asked to slow down.
    deferrals: u32,
}

#[derive(Debug, Default)]
struct Tables {
    webhooks: HashMap<String, StoredWebhook>,
    keys: HashMap<String, StoredKey>,
    health: HashMap<String, HealthRecord>,
    attempts: HashMap<String, AttemptItem>,
    /// Parked items by webhook, then sort key (the table's order).
    parked: HashMap<String, BTreeMap<String, ParkedItem>>,
    /// Log entries by webhook, in the order written, with their payloads and expiry.
    log: HashMap<String, Vec<(LogEntry, Option<Event>, i64)>>,
}

/// SubscriptionsTable, HealthTable and DeliveriesTable in memory, for delivery's unit tests.
/// A cheap handle: clone it into the ports, keep one to set up and look inside.
#[derive(Debug, Clone)]
pub struct MemoryDynamoDb {
    tables: Arc<Mutex<Tables>>,
    failures: Arc<Failures>,
    /// Transactions cancelled by a conflict, after the adapter's own retries.
    conflicts: Arc<Failures>,
    clock: ManualClock,
}

/// How deep a JSON value nests (a scalar is 0).
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// DynamoDB's limits on an item: its size and how deep it nests.
fn check_item(what: &impl serde::Serialize) -> Result<(), PortError> {
    let value = serde_json::to_value(what).map_err(|e| PortError::unavailable("serialize", e))?;
    let bytes = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    if bytes > DYNAMODB_MAX_ITEM_BYTES {
        return Err(PortError::unavailable("validation", MemoryError::ItemTooLarge { bytes }));
    }
    let levels = depth(&value);
    if levels > DYNAMODB_MAX_DEPTH {
        return Err(PortError::unavailable("validation", MemoryError::NestedTooDeep { levels }));
    }
    Ok(())
}

impl MemoryDynamoDb {
    /// Empty tables; park times and disable times come from `clock`.
    pub fn new(clock: ManualClock) -> Self {
        Self { tables: Arc::default(), failures: Arc::default(), conflicts: Arc::default(), clock }
    }

    /// Stores a webhook (as the API does).
    pub fn put_webhook(&self, stored: StoredWebhook) {
        lock(&self.tables).webhooks.insert(stored.webhook.id.clone(), stored);
    }

    /// Deletes a webhook (as the API does: its counters go with it).
    pub fn delete_webhook(&self, id: &str) {
        let mut tables = lock(&self.tables);
        tables.webhooks.remove(id);
        tables.health.remove(id);
    }

    /// Stores a key.
    pub fn put_key(&self, key: StoredKey) {
        lock(&self.tables).keys.insert(key.key.id.clone(), key);
    }

    /// Sets a webhook's counters (a webhook with a history).
    pub fn put_health(&self, id: &str, record: HealthRecord) {
        lock(&self.tables).health.insert(id.to_owned(), record);
    }

    /// A webhook as stored now.
    pub fn webhook(&self, id: &str) -> Option<StoredWebhook> {
        lock(&self.tables).webhooks.get(id).cloned()
    }

    /// A webhook's counters now (the default when it has none).
    pub fn health(&self, id: &str) -> HealthRecord {
        lock(&self.tables).health.get(id).cloned().unwrap_or_default()
    }

    /// The attempts counted for a delivery, and whether it was delivered.
    pub fn attempt_record(&self, delivery_id: &str) -> AttemptRecord {
        lock(&self.tables).attempts.get(delivery_id).map_or_else(AttemptRecord::default, |a| AttemptRecord {
            attempts_made: a.attempts_made.unwrap_or(0),
            delivered: a.delivered,
            claim: a.claim.as_ref().map(|(n, until, _)| (*n, *until)),
        })
    }

    /// A webhook's parked deliveries, oldest first, with their sort keys.
    pub fn parked(&self, webhook_id: &str) -> Vec<(String, Delivery)> {
        lock(&self.tables)
            .parked
            .get(webhook_id)
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.delivery.clone())).collect())
            .unwrap_or_default()
    }

    /// Parks a delivery directly, with its expiry (a webhook with a backlog).
    pub fn put_parked(&self, sort_key: &str, delivery: Delivery, expires_at: i64) {
        let mut tables = lock(&self.tables);
        let webhook_id = delivery.webhook_id.clone();
        tables
            .parked
            .entry(webhook_id.clone())
            .or_default()
            .insert(sort_key.to_owned(), ParkedItem { delivery, expires_at });
        let record = tables.health.entry(webhook_id).or_default();
        record.parked_count += 1;
        record.park_sweep_at = Some(record.park_sweep_at.map_or(expires_at, |at| at.min(expires_at)));
    }

    /// A webhook's log entries, in the order written.
    pub fn log(&self, webhook_id: &str) -> Vec<LogEntry> {
        lock(&self.tables)
            .log
            .get(webhook_id)
            .map(|l| l.iter().map(|(e, _, _)| e.clone()).collect())
            .unwrap_or_default()
    }

    /// Makes the next `n` calls fail as `Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }

    /// Makes the next `n` transactions (park, remove a parked delivery) cancelled by conflicts
    /// with concurrent ones, as the adapter reports them once its retries are used up.
    pub fn conflict_next(&self, n: usize) {
        self.conflicts.fail_next(n);
    }

    fn transaction(&self) -> Result<(), PortError> {
        self.failures.check("TransactWriteItems")?;
        if self.conflicts.take() {
            return Err(PortError::unavailable("TransactWriteItems", MemoryError::TransactionConflict));
        }
        Ok(())
    }

    /// Removes expired parked items of a webhook (up to `limit`, oldest first), counting each.
    fn sweep(tables: &mut Tables, webhook_id: &str, now: i64, limit: i32) -> u64 {
        let page: Vec<(String, i64)> = tables
            .parked
            .get(webhook_id)
            .map(|p| p.iter().take(limit as usize).map(|(k, v)| (k.clone(), v.expires_at)).collect())
            .unwrap_or_default();
        let more = page.len() == limit as usize;
        let mut removed = 0;
        let mut next: Option<i64> = None;
        for (sort_key, expires_at) in page {
            if expired(expires_at, now) {
                if let Some(p) = tables.parked.get_mut(webhook_id) {
                    p.remove(&sort_key);
                }
                let record = tables.health.entry(webhook_id.to_owned()).or_default();
                record.parked_count = record.parked_count.saturating_sub(1);
                *record.health.dropped.entry(DropReason::ParkExpired.as_str().to_owned()).or_default() += 1;
                removed += 1;
            } else {
                next = Some(next.map_or(expires_at, |n| n.min(expires_at)));
            }
        }
        let record = tables.health.entry(webhook_id.to_owned()).or_default();
        record.park_sweep_at = next.or(more.then_some(now));
        removed
    }
}

impl OwnerKeys for MemoryDynamoDb {
    async fn keys_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredKey>, PortError> {
        let ids: Vec<&String> = ids.iter().collect();
        let mut found = HashMap::new();
        for chunk in ids.chunks(DYNAMODB_MAX_BATCH_GET_KEYS) {
            self.failures.check("BatchGetItem")?;
            let tables = lock(&self.tables);
            found.extend(chunk.iter().filter_map(|id| tables.keys.get(*id).map(|k| ((*id).clone(), k.clone()))));
        }
        Ok(found)
    }
}

impl WebhookStore for MemoryDynamoDb {
    async fn webhooks_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredWebhook>, PortError> {
        let ids: Vec<&String> = ids.iter().collect();
        let mut found = HashMap::new();
        for chunk in ids.chunks(DYNAMODB_MAX_BATCH_GET_KEYS) {
            self.failures.check("BatchGetItem")?;
            let tables = lock(&self.tables);
            found.extend(chunk.iter().filter_map(|id| tables.webhooks.get(*id).map(|w| ((*id).clone(), w.clone()))));
        }
        Ok(found)
    }

    async fn deactivate(
        &self,
        webhook_id: &str,
        reason: DisabledReason,
        alert: &str,
        at: &str,
    ) -> Result<bool, PortError> {
        self.failures.check("UpdateItem")?;
        let disabled_at_ms = (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
        let mut tables = lock(&self.tables);
        // `#status = :active`
        let Some(stored) = tables.webhooks.get_mut(webhook_id).filter(|w| w.webhook.status == WebhookStatus::Active)
        else {
            return Ok(false);
        };
        stored.webhook.status = WebhookStatus::Disabled;
        stored.webhook.disabled_reason = Some(reason);
        stored.webhook.updated_at = at.to_owned();
        stored.alert_pending = Some(alert.to_owned());
        stored.disabled_at_ms = Some(disabled_at_ms);
        stored.version += 1;
        Ok(true)
    }

    async fn clear_alert(&self, webhook_id: &str, alert: &str) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        // `alert_pending = :alert`
        if let Some(stored) = tables.webhooks.get_mut(webhook_id).filter(|w| w.alert_pending.as_deref() == Some(alert))
        {
            stored.alert_pending = None;
        }
        Ok(())
    }
}

impl HealthStore for MemoryDynamoDb {
    async fn health_of(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, HealthRecord>, PortError> {
        let ids: Vec<&String> = ids.iter().collect();
        let mut found = HashMap::new();
        for chunk in ids.chunks(DYNAMODB_MAX_BATCH_GET_KEYS) {
            self.failures.check("BatchGetItem")?;
            let tables = lock(&self.tables);
            found.extend(chunk.iter().filter_map(|id| tables.health.get(*id).map(|h| ((*id).clone(), h.clone()))));
        }
        Ok(found)
    }

    async fn record_success(&self, id: &str, at: &str, request_replay: bool) -> Result<HealthRecord, PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        let record = tables.health.entry(id.to_owned()).or_default();
        let before = record.clone();
        // The replay request's condition: `parked_count > 0 AND consecutive_failures > 0`.
        if request_replay && before.parked_count > 0 && before.health.consecutive_failures > 0 {
            record.replay_requested_at = Some(at.to_owned());
        }
        record.health.consecutive_failures = 0;
        record.health.last_success_at = Some(at.to_owned());
        record.health.failing_since = None;
        record.probe = None;
        record.recovering = false;
        Ok(before)
    }

    async fn record_failure(
        &self,
        id: &str,
        at: &str,
        status_code: Option<u16>,
        error: &str,
    ) -> Result<HealthRecord, PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        let record = tables.health.entry(id.to_owned()).or_default();
        record.health.consecutive_failures += 1;
        record.health.last_failure_at = Some(at.to_owned());
        record.health.last_error = Some(error.to_owned());
        record.health.last_status_code = status_code;
        record.health.failing_since.get_or_insert_with(|| at.to_owned());
        Ok(record.clone())
    }

    async fn count_drop(&self, id: &str, reason: DropReason) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        *tables
            .health
            .entry(id.to_owned())
            .or_default()
            .health
            .dropped
            .entry(reason.as_str().to_owned())
            .or_default() += 1;
        Ok(())
    }

    async fn claim_probe(&self, id: &str, delivery_id: &str, until: i64, now: i64) -> Result<bool, PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        let record = tables.health.entry(id.to_owned()).or_default();
        // `attribute_not_exists(probe_id) OR probe_until < :now OR probe_id = :d`
        let free = record.probe.as_ref().is_none_or(|(holder, held_until)| *held_until < now || holder == delivery_id);
        if free {
            record.probe = Some((delivery_id.to_owned(), until));
        }
        Ok(free)
    }

    async fn release_probe(&self, id: &str, delivery_id: &str) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        if let Some(record) = tables.health.get_mut(id)
            && record.probe.as_ref().is_some_and(|(holder, _)| holder == delivery_id)
        {
            record.probe = None;
        }
        Ok(())
    }

    async fn move_next_send(&self, id: &str, seen: Option<i64>, next: i64) -> Result<bool, PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        if tables.health.get(id).and_then(|r| r.next_send_ms) != seen {
            return Ok(false);
        }
        tables.health.entry(id.to_owned()).or_default().next_send_ms = Some(next);
        Ok(true)
    }

    async fn keep_alert(&self, id: &str, kind: &str, alert: &str) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        lock(&self.tables)
            .health
            .entry(id.to_owned())
            .or_default()
            .pending_alerts
            .insert(kind.to_owned(), alert.to_owned());
        Ok(())
    }

    async fn forget_alert(&self, id: &str, kind: &str, alert: &str) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        if let Some(record) = tables.health.get_mut(id)
            && record.pending_alerts.get(kind).map(String::as_str) == Some(alert)
        {
            record.pending_alerts.remove(kind);
        }
        Ok(())
    }

    async fn clear_replay_request(&self, id: &str, requested_at: &str) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        if let Some(record) = tables.health.get_mut(id)
            && record.replay_requested_at.as_deref() == Some(requested_at)
        {
            record.replay_requested_at = None;
        }
        Ok(())
    }
}

impl AttemptStore for MemoryDynamoDb {
    async fn attempts(&self, delivery_id: &str) -> Result<Option<(u32, i64)>, PortError> {
        self.failures.check("GetItem")?;
        Ok(lock(&self.tables).attempts.get(delivery_id).and_then(|a| a.attempts_made.zip(a.first_attempt_at)))
    }

    async fn claim_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        now: i64,
        until: i64,
        receive: &str,
    ) -> Result<Result<(), AttemptRecord>, PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        let item = tables.attempts.entry(delivery_id.to_owned()).or_default();
        let claimable = !item.delivered
            && item.attempts_made.is_none_or(|made| made < attempt)
            && item.claim.as_ref().is_none_or(|(claimed, claim_until, by)| {
                *claimed < attempt || *claim_until < now || (*claimed == attempt && by == receive)
            });
        if claimable {
            item.claim = Some((attempt, until, receive.to_owned()));
            return Ok(Ok(()));
        }
        drop(tables);
        Ok(Err(self.attempt_record(delivery_id)))
    }

    async fn release_claim(&self, delivery_id: &str, attempt: u32, receive: &str) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        // `claimed_attempt = :n AND claimed_by = :by`
        if let Some(item) = tables.attempts.get_mut(delivery_id)
            && item.claim.as_ref().is_some_and(|(n, _, by)| *n == attempt && by == receive)
        {
            item.claim = None;
        }
        Ok(())
    }

    async fn defer(&self, delivery_id: &str, attempt: u32, receive: &str, max: u32) -> Result<bool, PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        let item = tables.attempts.entry(delivery_id.to_owned()).or_default();
        // `(attribute_not_exists(deferrals) OR deferrals < :max) AND claimed_attempt = :n AND
        // claimed_by = :by`
        let ours = item.claim.as_ref().is_some_and(|(n, _, by)| *n == attempt && by == receive);
        if item.deferrals >= max || !ours {
            return Ok(false);
        }
        item.deferrals += 1;
        item.claim = None;
        Ok(true)
    }

    async fn record_delivered(&self, delivery_id: &str, _now: i64) -> Result<(), PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        let item = tables.attempts.entry(delivery_id.to_owned()).or_default();
        item.delivered = true;
        item.claim = None;
        Ok(())
    }

    async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        first_attempt_at: i64,
        _now: i64,
    ) -> Result<bool, PortError> {
        self.failures.check("UpdateItem")?;
        let mut tables = lock(&self.tables);
        let item = tables.attempts.entry(delivery_id.to_owned()).or_default();
        // `attribute_not_exists(attempts_made)` for the first, `attempts_made = :prev` after.
        let expected = if attempt <= 1 { None } else { Some(attempt - 1) };
        if item.attempts_made != expected {
            return Ok(false);
        }
        item.attempts_made = Some(attempt);
        item.first_attempt_at.get_or_insert(first_attempt_at);
        Ok(true)
    }
}

impl ParkingStore for MemoryDynamoDb {
    async fn park(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        limit: u64,
        now: i64,
        ttl_seconds: i64,
        slot: Option<&ParkSlot>,
    ) -> Result<ParkOutcome, PortError> {
        self.transaction()?;
        check_item(d)?;
        let (sort_key, expires_at) = match slot {
            Some(slot) => (slot.sort_key.clone(), slot.expires_at),
            None => (park_sort_key(self.clock.now(), &d.delivery_id), now + ttl_seconds),
        };
        let mut tables = lock(&self.tables);
        let mut swept = false;
        loop {
            // The transaction's actions, in the order `park_cancelled` reads them.
            let disabled =
                tables.webhooks.get(&d.webhook_id).is_some_and(|w| w.webhook.status == WebhookStatus::Disabled);
            if guard == ParkGuard::WebhookDisabled && !disabled {
                return Ok(ParkOutcome::Send);
            }
            if let Some(item) = tables.parked.get_mut(&d.webhook_id).and_then(|p| p.get_mut(&sort_key)) {
                // Taken: by this copy, a newer one, or the older generation it was made from,
                // which it replaces (`DynamoDbParking::replace_older`).
                if item.delivery.generation < d.generation {
                    *item = ParkedItem { delivery: d.clone(), expires_at };
                }
                return Ok(ParkOutcome::Parked);
            }
            let record = tables.health.get(&d.webhook_id).cloned().unwrap_or_default();
            let guard_holds = match guard {
                ParkGuard::Tripped(max) => record.health.consecutive_failures >= max,
                _ => true,
            };
            if record.parked_count < limit && guard_holds {
                tables
                    .parked
                    .entry(d.webhook_id.clone())
                    .or_default()
                    .insert(sort_key, ParkedItem { delivery: d.clone(), expires_at });
                let record = tables.health.entry(d.webhook_id.clone()).or_default();
                record.parked_count += 1;
                record.park_sweep_at = Some(record.park_sweep_at.map_or(expires_at, |at| at.min(expires_at)));
                return Ok(ParkOutcome::Parked);
            }
            if !guard_holds {
                return Ok(ParkOutcome::Send);
            }
            // Full, unless expired deliveries still hold slots: one sweep, when one may have.
            if swept || record.park_sweep_at.is_none_or(|at| at > now) {
                return Ok(ParkOutcome::Full);
            }
            swept = true;
            if Self::sweep(&mut tables, &d.webhook_id, now, crate::parking::SWEEP_PAGE) == 0 {
                return Ok(ParkOutcome::Full);
            }
        }
    }

    async fn sweep_expired(&self, webhook_id: &str, now: i64, limit: i32) -> Result<u64, PortError> {
        self.failures.check("Query")?;
        Ok(Self::sweep(&mut lock(&self.tables), webhook_id, now, limit))
    }

    async fn remove_parked(
        &self,
        webhook_id: &str,
        sort_key: &str,
        dropped: Option<DropReason>,
        generation: Option<u32>,
    ) -> Result<bool, PortError> {
        self.transaction()?;
        let mut tables = lock(&self.tables);
        let Some(parked) = tables.parked.get_mut(webhook_id) else { return Ok(false) };
        // `attribute_exists(sk)`, and `generation = :g` when given.
        let matches = parked.get(sort_key).is_some_and(|i| generation.is_none_or(|g| i.delivery.generation == g));
        if !matches {
            return Ok(false);
        }
        parked.remove(sort_key);
        let record = tables.health.entry(webhook_id.to_owned()).or_default();
        record.parked_count = record.parked_count.saturating_sub(1);
        if let Some(reason) = dropped {
            *record.health.dropped.entry(reason.as_str().to_owned()).or_default() += 1;
        }
        Ok(true)
    }

    async fn parked_page(
        &self,
        webhook_id: &str,
        after: Option<&str>,
        until: &str,
        limit: i32,
    ) -> Result<(Vec<ParkedDelivery>, bool), PortError> {
        self.failures.check("Query")?;
        let tables = lock(&self.tables);
        let page: Vec<ParkedDelivery> = tables
            .parked
            .get(webhook_id)
            .into_iter()
            .flat_map(|p| p.iter())
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a) && k.as_str() < until)
            .take(limit as usize)
            .map(|(k, v)| ParkedDelivery {
                sort_key: k.clone(),
                delivery: v.delivery.clone(),
                expires_at: v.expires_at,
            })
            .collect();
        // DynamoDB returns a LastEvaluatedKey whenever the limit was reached.
        let more = page.len() == limit as usize;
        Ok((page, more))
    }

    async fn purge_parked(&self, webhook_id: &str, limit: i32) -> Result<(u64, bool), PortError> {
        self.failures.check("Query")?;
        let mut tables = lock(&self.tables);
        let Some(parked) = tables.parked.get_mut(webhook_id) else { return Ok((0, false)) };
        let keys: Vec<String> = parked.keys().take(limit as usize).cloned().collect();
        for k in &keys {
            parked.remove(k);
        }
        Ok((keys.len() as u64, keys.len() == limit as usize))
    }
}

impl DeliveryLog for MemoryDynamoDb {
    async fn log(
        &self,
        webhook_id: &str,
        _delivery_id: &str,
        entry: &LogEntry,
        event: Option<&Event>,
        expires_at: i64,
    ) -> Result<(), PortError> {
        self.failures.check("PutItem")?;
        check_item(&(entry, event))?;
        lock(&self.tables).log.entry(webhook_id.to_owned()).or_default().push((
            entry.clone(),
            event.cloned(),
            expires_at,
        ));
        Ok(())
    }

    async fn kept_event(
        &self,
        webhook_id: &str,
        webhook_message_id: &str,
        now: i64,
    ) -> Result<Option<Event>, PortError> {
        self.failures.check("Query")?;
        let tables = lock(&self.tables);
        let entries = tables.log.get(webhook_id).map(Vec::as_slice).unwrap_or_default();
        Ok(entries
            .iter()
            .filter(|(e, _, expires_at)| e.webhook_message_id == webhook_message_id && *expires_at > now)
            .find_map(|(_, event, _)| event.clone()))
    }
}

// ---------------------------------------------------------------------- the queue's retries

/// Visibility changes of received messages, in memory, refused beyond SQS's 12 h cap.
#[derive(Debug, Clone, Default)]
pub struct MemoryRetries {
    changes: Arc<Mutex<Vec<(String, u64)>>>,
    failures: Arc<Failures>,
}

impl MemoryRetries {
    /// Every visibility change so far: (receipt handle, seconds).
    pub fn changes(&self) -> Vec<(String, u64)> {
        lock(&self.changes).clone()
    }

    /// Makes the next `n` calls fail as `Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }
}

impl RetryScheduler for MemoryRetries {
    async fn retry_in(&self, receipt_handle: &str, seconds: u64) -> Result<(), PortError> {
        self.failures.check("ChangeMessageVisibility")?;
        if seconds > SQS_MAX_VISIBILITY_SECONDS {
            return Err(PortError::unavailable("ChangeMessageVisibility", MemoryError::VisibilityTooLong { seconds }));
        }
        lock(&self.changes).push((receipt_handle.to_owned(), seconds));
        Ok(())
    }
}

// ---------------------------------------------------------------------- alerts and secrets

/// One published alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedAlert {
    pub message: String,
    pub reason: String,
    pub owner_key_id: String,
}

/// The alerts topic, in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryAlerts {
    published: Arc<Mutex<Vec<PublishedAlert>>>,
    failures: Arc<Failures>,
}

impl MemoryAlerts {
    /// Every alert published, in order.
    pub fn published(&self) -> Vec<PublishedAlert> {
        lock(&self.published).clone()
    }

    /// Makes the next `n` publishes fail as `Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }
}

impl Alerts for MemoryAlerts {
    async fn publish(&self, message: &str, reason: &str, owner_key_id: &str) -> Result<(), PortError> {
        self.failures.check("Publish")?;
        let alert = PublishedAlert {
            message: message.to_owned(),
            reason: reason.to_owned(),
            owner_key_id: owner_key_id.to_owned(),
        };
        lock(&self.published).push(alert);
        Ok(())
    }
}

/// Signing keys "encrypted" as themselves: a stored ciphertext is the key's text (`whsec_…`
/// or `whsk_…`).
#[derive(Debug, Clone, Default)]
pub struct MemorySecrets {
    failures: Arc<Failures>,
}

impl MemorySecrets {
    /// Makes the next `n` calls fail as `Unavailable` (KMS did not answer).
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }
}

impl SecretStore for MemorySecrets {
    async fn signing_secrets(
        &self,
        _webhook_id: &str,
        stored: &[StoredSecret],
        now: i64,
    ) -> Result<Vec<SigningKey>, PortError> {
        self.failures.check("Decrypt")?;
        stored
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| SigningKey::parse(&s.ciphertext).map_err(|e| PortError::unavailable("Decrypt", e)))
            .collect()
    }
}

// ---------------------------------------------------------------------- the receiver

/// A request the receiver got: its URL, headers (as sent, signature included) and body.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ReceivedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct ReceiverState {
    requests: Vec<ReceivedRequest>,
    /// Scripted answers by URL, in order; a URL with none left answers 200.
    answers: HashMap<String, VecDeque<SendOutcome>>,
}

/// Receivers in memory: each request is signed as `HttpSender` signs it and recorded; the
/// answer is the next one scripted for its URL, else a 200.
#[derive(Debug, Clone, Default)]
pub struct MemoryReceiver {
    state: Arc<Mutex<ReceiverState>>,
}

impl MemoryReceiver {
    /// `url` answers `outcomes` to its next requests, in order.
    pub fn answer(&self, url: &str, outcomes: impl IntoIterator<Item = SendOutcome>) {
        lock(&self.state).answers.entry(url.to_owned()).or_default().extend(outcomes);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.state).requests.clone()
    }
}

impl WebhookSender for MemoryReceiver {
    async fn send(&self, request: SignedRequest<'_>) -> SendOutcome {
        let headers = request_headers(
            request.headers,
            request.webhook_message_id,
            request.timestamp,
            &request.body,
            request.secrets,
        );
        let mut state = lock(&self.state);
        state.requests.push(ReceivedRequest { url: request.url.to_owned(), headers, body: request.body });
        state
            .answers
            .get_mut(request.url)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| SendOutcome::response(200, "ok", None, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().map(|rt| rt.block_on(f)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_queue_refuses_a_visibility_over_twelve_hours() {
        block_on(async {
            let retries = MemoryRetries::default();
            assert!(retries.retry_in("rh", SQS_MAX_VISIBILITY_SECONDS).await.is_ok());
            assert!(retries.retry_in("rh", SQS_MAX_VISIBILITY_SECONDS + 1).await.is_err());
            assert_eq!(retries.changes(), [("rh".to_owned(), SQS_MAX_VISIBILITY_SECONDS)]);
        });
    }

    #[test]
    fn items_over_dynamodbs_size_or_depth_are_refused() {
        // GIVEN an item of 401 KB, and one nested 33 levels deep
        let big = json_string(DYNAMODB_MAX_ITEM_BYTES);
        let mut deep = serde_json::json!(1);
        for _ in 0..=DYNAMODB_MAX_DEPTH {
            deep = serde_json::json!([deep]);
        }
        // THEN both are refused, and items at the limits are not
        assert!(check_item(&big).is_err());
        assert!(check_item(&deep).is_err());
        assert!(check_item(&json_string(DYNAMODB_MAX_ITEM_BYTES - 2)).is_ok());
        assert_eq!(depth(&deep[0]), DYNAMODB_MAX_DEPTH);
        assert!(check_item(&deep[0]).is_ok());
    }

    fn json_string(bytes: usize) -> String {
        // Serialised with its two quotes.
        "x".repeat(bytes.saturating_sub(1))
    }

    #[test]
    fn a_probe_slot_is_held_by_one_delivery_until_it_expires() {
        block_on(async {
            let db = MemoryDynamoDb::new(ManualClock::at(time::OffsetDateTime::UNIX_EPOCH));
            assert_eq!(db.claim_probe("wh", "d1", 100, 0).await.ok(), Some(true));
            assert_eq!(db.claim_probe("wh", "d2", 100, 50).await.ok(), Some(false));
            assert_eq!(db.claim_probe("wh", "d1", 200, 50).await.ok(), Some(true), "its own again");
            assert_eq!(db.claim_probe("wh", "d2", 300, 201).await.ok(), Some(true), "expired");
        });
    }
}
