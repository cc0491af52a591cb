//! In-memory implementations of the core's ports, for unit tests of the handlers (the
//! matcher's here, delivery's in `delivery`). Each one refuses what AWS refuses (SQS
//! characters and sizes, batches of at most 10 entries, the 12 h visibility cap, DynamoDB key
//! lengths, item sizes and conditions), so a test sees what AWS would do: a fake kinder than
//! AWS hides the defects that matter most.
//!
//! Every fake is a cheap handle on shared state (clone it into the handler, keep one to look
//! inside), counts the calls that cost money (Query, BatchGetItem, SendMessageBatch), and
//! takes a switch that makes its next calls fail as `Unavailable`, to test retries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;
use webhooks_core::matching::partitions_for_webhook;
use webhooks_core::model::Selection;
use webhooks_core::ports::{
    Claim, Clock, DeliveryQueue, EventClaims, IndexEntry, IngestDeadLetters, MatchIndexReader, OwnerKeys, PortError,
    StoredKey,
};
use webhooks_core::resources::ApiKey;
use webhooks_core::wire::sqs_accepts;

use crate::claims::{CLAIM_LEASE_SECONDS, DEDUPLICATION_WINDOW_SECONDS};
use crate::keys::{event_pk, index_pk};

mod delivery;

pub use delivery::{
    DYNAMODB_MAX_ITEM_BYTES, MemoryAlerts, MemoryDynamoDb, MemoryReceiver, MemoryRetries, MemorySecrets,
    PublishedAlert, ReceivedRequest, SQS_MAX_VISIBILITY_SECONDS,
};

/// SQS refuses a message (body and attributes) over the queues' `MaximumMessageSize`
/// (template.yaml: 1 MiB), and a `SendMessageBatch` whose bodies add up to more.
pub const SQS_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// SQS refuses a delay longer than 15 minutes.
pub const SQS_MAX_DELAY_SECONDS: u32 = 900;
/// SQS refuses a `SendMessageBatch` of more than 10 entries.
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;
/// DynamoDB refuses a partition key value longer than this.
pub const DYNAMODB_MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB refuses a BatchGetItem of more than 100 keys.
pub const DYNAMODB_MAX_BATCH_GET_KEYS: usize = 100;
/// The dead-letter adapter keeps this much of a `detail` attribute.
const MAX_DETAIL_BYTES: usize = 1024;

/// What a fake refused, as the cause of its `PortError::Unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The test asked for this call to fail.
    #[error("injected failure")]
    Injected,
    /// SQS refuses a message holding a character outside its allowed set.
    #[error("the message holds a character SQS refuses")]
    InvalidMessageContents,
    /// Over the queue's maximum message size (or a batch over it in all).
    #[error("{bytes} bytes is over SQS's limit of {SQS_MAX_MESSAGE_BYTES}")]
    MessageTooLong { bytes: usize },
    /// SQS delays a message by at most 15 minutes.
    #[error("a delay of {seconds} s is over SQS's limit of {SQS_MAX_DELAY_SECONDS}")]
    DelayTooLong { seconds: u32 },
    /// A key value DynamoDB refuses.
    #[error("a key value of {bytes} bytes is over DynamoDB's limit of {DYNAMODB_MAX_PARTITION_KEY_BYTES}")]
    KeyTooLong { bytes: usize },
    /// An item DynamoDB refuses.
    #[error("an item of {bytes} bytes is over DynamoDB's limit of {}", delivery::DYNAMODB_MAX_ITEM_BYTES)]
    ItemTooLarge { bytes: usize },
    /// An item nested deeper than DynamoDB takes.
    #[error("an item nested {levels} levels deep is over DynamoDB's limit of {}", delivery::DYNAMODB_MAX_DEPTH)]
    NestedTooDeep { levels: usize },
    /// A transaction DynamoDB cancelled because a concurrent one touched the same item.
    #[error("the transaction was cancelled by conflicts")]
    TransactionConflict,
    /// A visibility timeout SQS refuses.
    #[error("a visibility timeout of {seconds} s is over SQS's limit of {}", delivery::SQS_MAX_VISIBILITY_SECONDS)]
    VisibilityTooLong { seconds: u64 },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; the state is still fine
    // to read for the others.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A switch that makes the next `n` calls of a fake fail.
#[derive(Debug, Default)]
struct Failures(AtomicUsize);

impl Failures {
    fn fail_next(&self, n: usize) {
        self.0.store(n, Ordering::SeqCst);
    }

    /// Whether this call is to fail (and counts it down).
    fn take(&self) -> bool {
        self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    fn check(&self, operation: &'static str) -> Result<(), PortError> {
        if self.take() { Err(PortError::unavailable(operation, MemoryError::Injected)) } else { Ok(()) }
    }
}

fn check_partition_key(value: &str) -> Result<(), PortError> {
    if value.len() > DYNAMODB_MAX_PARTITION_KEY_BYTES {
        return Err(PortError::unavailable("validation", MemoryError::KeyTooLong { bytes: value.len() }));
    }
    Ok(())
}

/// A stored key holding `companies`, with no permission and a placeholder hash: the owner
/// of test webhooks.
pub fn owner_key(id: &str, companies: &[&str]) -> StoredKey {
    StoredKey {
        key: ApiKey {
            id: id.to_owned(),
            name: id.to_owned(),
            companies: companies.iter().map(|c| (*c).to_owned()).collect(),
            permissions: Vec::new(),
            created_at: "2026-11-01T00:00:00Z".to_owned(),
            last_used_at: None,
        },
        secret_sha256: "0".repeat(64),
        webhook_count: 1,
    }
}

// ---------------------------------------------------------------------- subscriptions

#[derive(Debug, Default)]
struct SubscriptionsState {
    /// Index entries by partition, then webhook id (the table's `pk`/`sk`).
    index: BTreeMap<String, BTreeMap<String, IndexEntry>>,
    keys: HashMap<String, StoredKey>,
    /// The partition of each Query, in order.
    queries: Vec<String>,
    /// The number of keys of each BatchGetItem, in order.
    batch_gets: Vec<usize>,
}

/// The match index and the owner keys (SubscriptionsTable), in memory.
#[derive(Debug, Clone, Default)]
pub struct MemorySubscriptions {
    state: Arc<Mutex<SubscriptionsState>>,
    failures: Arc<Failures>,
}

impl MemorySubscriptions {
    /// Stores a key.
    pub fn put_key(&self, key: StoredKey) {
        lock(&self.state).keys.insert(key.key.id.clone(), key);
    }

    /// Deletes a key (its webhooks' index entries stay, as they do for a moment in DynamoDB
    /// while a key's deletion deletes its webhooks).
    pub fn remove_key(&self, id: &str) {
        lock(&self.state).keys.remove(id);
    }

    /// Writes a webhook's index entries in the partitions the API writes them in, for an
    /// owner holding `owner_companies`.
    pub fn put_webhook(&self, entry: IndexEntry, owner_companies: &[String]) {
        let selection = Selection { events: entry.events.clone(), scopes: entry.scopes.clone() };
        let mut state = lock(&self.state);
        for partition in partitions_for_webhook(&selection, owner_companies) {
            state.index.entry(partition).or_default().insert(entry.webhook_id.clone(), entry.clone());
        }
    }

    /// The partition of every Query so far, in order.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.state).queries.clone()
    }

    /// The number of keys of every BatchGetItem so far, in order.
    pub fn batch_gets(&self) -> Vec<usize> {
        lock(&self.state).batch_gets.clone()
    }

    /// Makes the next `n` calls (Query or BatchGetItem) fail as `Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }
}

impl MatchIndexReader for MemorySubscriptions {
    async fn index_entries(&self, partition: &str, event_types: &BTreeSet<&str>) -> Result<Vec<IndexEntry>, PortError> {
        check_partition_key(&index_pk(partition))?;
        self.failures.check("Query")?;
        let mut state = lock(&self.state);
        state.queries.push(partition.to_owned());
        let entries = state.index.get(partition).into_iter().flat_map(BTreeMap::values);
        Ok(entries.filter(|entry| entry.selects_any(event_types)).cloned().collect())
    }
}

impl OwnerKeys for MemorySubscriptions {
    async fn keys_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredKey>, PortError> {
        let ids: Vec<&String> = ids.iter().collect();
        let mut found = HashMap::new();
        for chunk in ids.chunks(DYNAMODB_MAX_BATCH_GET_KEYS) {
            self.failures.check("BatchGetItem")?;
            let mut state = lock(&self.state);
            state.batch_gets.push(chunk.len());
            for id in chunk {
                if let Some(key) = state.keys.get(*id) {
                    found.insert((*id).clone(), key.clone());
                }
            }
        }
        Ok(found)
    }
}

// ---------------------------------------------------------------------- claims

/// The state of a claim item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    InProgress,
    Done,
}

#[derive(Debug, Clone, Copy)]
struct ClaimItem {
    state: ClaimState,
    /// Only an in-progress item has a lease (`complete` writes the item without one).
    lease_until: Option<i64>,
    expires_at: i64,
}

/// Event de-duplication claims (EventsTable), in memory, with the conditions of
/// `DynamoDbEventClaims`.
#[derive(Debug, Clone, Default)]
pub struct MemoryEventClaims {
    items: Arc<Mutex<HashMap<String, ClaimItem>>>,
    failures: Arc<Failures>,
}

impl MemoryEventClaims {
    /// The state of `event_key`'s item, if there is one.
    pub fn state(&self, event_key: &str) -> Option<ClaimState> {
        lock(&self.items).get(event_key).map(|item| item.state)
    }

    /// Makes the next `n` calls (claim or complete) fail as `Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }
}

impl EventClaims for MemoryEventClaims {
    async fn claim(&self, event_key: &str, now: i64) -> Result<Claim, PortError> {
        check_partition_key(&event_pk(event_key))?;
        self.failures.check("PutItem")?;
        let mut items = lock(&self.items);
        // DynamoDbEventClaims's condition: `attribute_not_exists(pk) OR (#s = :in_progress AND
        // lease_until < :now) OR expires_at < :now`.
        let free = match items.get(event_key) {
            None => true,
            Some(item) => {
                (item.state == ClaimState::InProgress && item.lease_until.is_some_and(|lease| lease < now))
                    || item.expires_at < now
            }
        };
        if free {
            let item = ClaimItem {
                state: ClaimState::InProgress,
                lease_until: Some(now + CLAIM_LEASE_SECONDS),
                expires_at: now + DEDUPLICATION_WINDOW_SECONDS,
            };
            items.insert(event_key.to_owned(), item);
            return Ok(Claim::Claimed);
        }
        let done = items.get(event_key).is_some_and(|item| item.state == ClaimState::Done);
        Ok(if done { Claim::Done } else { Claim::Busy })
    }

    async fn complete(&self, event_key: &str, now: i64) -> Result<(), PortError> {
        check_partition_key(&event_pk(event_key))?;
        self.failures.check("PutItem")?;
        // An unconditional put of the whole item: the lease goes.
        let item =
            ClaimItem { state: ClaimState::Done, lease_until: None, expires_at: now + DEDUPLICATION_WINDOW_SECONDS };
        lock(&self.items).insert(event_key.to_owned(), item);
        Ok(())
    }
}

// ---------------------------------------------------------------------- queues

#[derive(Debug, Default)]
struct QueueState {
    messages: Vec<String>,
    /// The delay of each message, in seconds (0 for those sent without).
    delays: Vec<u32>,
    /// The number of entries of every SendMessageBatch, in order (failed ones included).
    batch_calls: Vec<usize>,
}

/// The delivery queue, in memory: `send_all` goes out in SendMessageBatch calls within SQS's
/// limits, as `SqsBatchSender` does.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueue {
    state: Arc<Mutex<QueueState>>,
    failures: Arc<Failures>,
}

impl MemoryQueue {
    /// Every body the queue accepted, in order.
    pub fn messages(&self) -> Vec<String> {
        lock(&self.state).messages.clone()
    }

    /// Every body the queue accepted with its delay in seconds, in order.
    pub fn delayed_messages(&self) -> Vec<(String, u32)> {
        let state = lock(&self.state);
        state.messages.iter().cloned().zip(state.delays.iter().copied()).collect()
    }

    /// The number of entries of every SendMessageBatch call, in order.
    pub fn batch_calls(&self) -> Vec<usize> {
        lock(&self.state).batch_calls.clone()
    }

    /// Makes the next `n` calls of `send_all` fail as a whole (nothing is sent).
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }

    /// One SendMessageBatch: SQS refuses the whole call when one body holds a character it
    /// refuses or is too long, or when the bodies are too long in all.
    fn send_batch(&self, bodies: &[&String], delays: &[u32]) -> Result<(), MemoryError> {
        assert!(bodies.len() <= SQS_MAX_BATCH_ENTRIES, "SQS refuses a batch of {} entries", bodies.len());
        let mut state = lock(&self.state);
        state.batch_calls.push(bodies.len());
        if bodies.iter().any(|body| !sqs_accepts(body)) {
            return Err(MemoryError::InvalidMessageContents);
        }
        let bytes: usize = bodies.iter().map(|body| body.len()).sum();
        if let Some(body) = bodies.iter().find(|body| body.len() > SQS_MAX_MESSAGE_BYTES) {
            return Err(MemoryError::MessageTooLong { bytes: body.len() });
        }
        if bytes > SQS_MAX_MESSAGE_BYTES {
            return Err(MemoryError::MessageTooLong { bytes });
        }
        if let Some(delay) = delays.iter().find(|d| **d > SQS_MAX_DELAY_SECONDS) {
            return Err(MemoryError::DelayTooLong { seconds: *delay });
        }
        state.messages.extend(bodies.iter().map(|body| (*body).clone()));
        state.delays.extend((0..bodies.len()).map(|i| delays.get(i).copied().unwrap_or(0)));
        Ok(())
    }
}

impl DeliveryQueue for MemoryQueue {
    async fn send_all(&self, bodies: &[String]) -> Vec<usize> {
        self.send(bodies, &[])
    }

    async fn send_later(&self, messages: &[(String, u32)]) -> Vec<usize> {
        let (bodies, delays): (Vec<String>, Vec<u32>) = messages.iter().cloned().unzip();
        self.send(&bodies, &delays)
    }
}

impl MemoryQueue {
    fn send(&self, bodies: &[String], delays: &[u32]) -> Vec<usize> {
        if self.failures.take() {
            return (0..bodies.len()).collect();
        }
        let mut unsent = Vec::new();
        for chunk in batches(bodies) {
            let entries: Vec<&String> = chunk.iter().map(|i| &bodies[*i]).collect();
            let entry_delays: Vec<u32> = chunk.iter().map(|i| delays.get(*i).copied().unwrap_or(0)).collect();
            if let Err(e) = self.send_batch(&entries, &entry_delays) {
                tracing::warn!(error = %e, entries = chunk.len(), "SendMessageBatch refused");
                unsent.extend(chunk);
            }
        }
        unsent
    }
}

/// Indexes of `bodies` in batches of at most 10 entries and 1 MiB in all, in order (a body
/// over the limit on its own goes alone, for SQS to refuse).
fn batches(bodies: &[String]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, body) in bodies.iter().enumerate() {
        let full =
            out.last().is_none_or(|c| c.len() == SQS_MAX_BATCH_ENTRIES || bytes + body.len() > SQS_MAX_MESSAGE_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += body.len();
        if let Some(current) = out.last_mut() {
            current.push(i);
        }
    }
    out
}

/// An event refused by the matcher, as the ingest DLQ holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub reason: String,
    pub detail: String,
}

/// The ingest dead-letter queue, in memory: attributes written as `SqsIngestDeadLetters`
/// writes them, and the message refused where SQS would refuse it.
#[derive(Debug, Clone, Default)]
pub struct MemoryDeadLetters {
    letters: Arc<Mutex<Vec<DeadLetter>>>,
    failures: Arc<Failures>,
}

impl MemoryDeadLetters {
    /// Every refused event received, in order.
    pub fn letters(&self) -> Vec<DeadLetter> {
        lock(&self.letters).clone()
    }

    /// Makes the next `n` sends fail as `Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.failures.fail_next(n);
    }
}

/// An attribute value as the adapter writes it: SQS refuses an empty one.
fn attribute(value: &str, max: usize) -> String {
    if value.is_empty() {
        return "-".to_owned();
    }
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

impl IngestDeadLetters for MemoryDeadLetters {
    async fn reject(&self, body: &str, reason: &str, detail: &str) -> Result<(), PortError> {
        self.failures.check("SendMessage")?;
        let letter = DeadLetter {
            body: body.to_owned(),
            reason: attribute(reason, usize::MAX),
            detail: attribute(detail, MAX_DETAIL_BYTES),
        };
        if ![&letter.body, &letter.reason, &letter.detail].iter().all(|text| sqs_accepts(text)) {
            return Err(PortError::unavailable("SendMessage", MemoryError::InvalidMessageContents));
        }
        // Attributes count towards the message size: name, data type and value.
        let bytes = letter.body.len()
            + ["reason", "detail"].iter().map(|name| name.len() + "String".len()).sum::<usize>()
            + letter.reason.len()
            + letter.detail.len();
        if bytes > SQS_MAX_MESSAGE_BYTES {
            return Err(PortError::unavailable("SendMessage", MemoryError::MessageTooLong { bytes }));
        }
        lock(&self.letters).push(letter);
        Ok(())
    }
}

// ---------------------------------------------------------------------- clock

/// A clock that moves only when told.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn at(at: OffsetDateTime) -> Self {
        Self { now: Arc::new(Mutex::new(at)) }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: time::Duration) {
        let mut now = lock(&self.now);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().map(|rt| rt.block_on(f)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_claim_is_held_for_its_lease_then_free_again() {
        block_on(async {
            // GIVEN an event claimed at t = 1000
            let claims = MemoryEventClaims::default();
            assert_eq!(claims.claim("msg_a", 1000).await.ok(), Some(Claim::Claimed));
            // THEN it is busy until its lease has passed, and free after
            assert_eq!(claims.claim("msg_a", 1000 + CLAIM_LEASE_SECONDS).await.ok(), Some(Claim::Busy));
            assert_eq!(claims.claim("msg_a", 1001 + CLAIM_LEASE_SECONDS).await.ok(), Some(Claim::Claimed));
        });
    }

    #[test]
    fn a_completed_claim_is_done_for_the_window_only() {
        block_on(async {
            // GIVEN an event claimed and completed at t = 1000
            let claims = MemoryEventClaims::default();
            assert_eq!(claims.claim("msg_a", 1000).await.ok(), Some(Claim::Claimed));
            assert!(claims.complete("msg_a", 1000).await.is_ok());
            // THEN it is a duplicate long after the lease, until the window has passed
            assert_eq!(claims.claim("msg_a", 1000 + 3600).await.ok(), Some(Claim::Done));
            assert_eq!(claims.claim("msg_a", 1000 + DEDUPLICATION_WINDOW_SECONDS).await.ok(), Some(Claim::Done));
            assert_eq!(claims.claim("msg_a", 1001 + DEDUPLICATION_WINDOW_SECONDS).await.ok(), Some(Claim::Claimed));
        });
    }

    #[test]
    fn injected_failures_fail_the_next_calls_only() {
        block_on(async {
            let claims = MemoryEventClaims::default();
            claims.fail_next(2);
            assert!(matches!(claims.claim("msg_a", 1).await, Err(PortError::Unavailable { operation: "PutItem", .. })));
            assert!(claims.complete("msg_a", 1).await.is_err());
            assert_eq!(claims.claim("msg_a", 1).await.ok(), Some(Claim::Claimed));
        });
    }

    #[test]
    fn the_queue_sends_batches_of_ten_and_refuses_what_sqs_refuses() {
        block_on(async {
            // GIVEN 23 bodies, one holding a character SQS refuses
            let queue = MemoryQueue::default();
            let mut bodies: Vec<String> = (0..23).map(|i| format!("{{\"n\":{i}}}")).collect();
            bodies[12] = "bad \u{FFFF}".to_owned();
            // WHEN they are sent
            let unsent = queue.send_all(&bodies).await;
            // THEN they went in calls of at most 10, and the batch holding the refused body
            // was refused as a whole
            assert_eq!(queue.batch_calls(), [10, 10, 3]);
            assert_eq!(unsent, (10..20).collect::<Vec<_>>());
            assert_eq!(queue.messages().len(), 13);
        });
    }

    #[test]
    fn the_queue_refuses_a_body_over_its_maximum_size() {
        block_on(async {
            let queue = MemoryQueue::default();
            let bodies = vec!["x".repeat(SQS_MAX_MESSAGE_BYTES + 1), "y".to_owned()];
            assert_eq!(queue.send_all(&bodies).await, [0]);
            assert_eq!(queue.messages(), ["y"]);
        });
    }

    #[test]
    fn a_dead_letter_counts_its_attributes_towards_the_size_limit() {
        block_on(async {
            // GIVEN a body that alone is exactly at the limit
            let letters = MemoryDeadLetters::default();
            let body = "x".repeat(SQS_MAX_MESSAGE_BYTES);
            // THEN with its attributes it is refused; a smaller one goes with "-" for empty
            assert!(letters.reject(&body, "invalid_json", "").await.is_err());
            assert!(letters.reject("{", "invalid_json", "").await.is_ok());
            assert_eq!(letters.letters()[0].detail, "-");
        });
    }

    #[test]
    fn owner_keys_are_read_in_batches_of_one_hundred() {
        block_on(async {
            let subscriptions = MemorySubscriptions::default();
            let ids: BTreeSet<String> = (0..250).map(|i| format!("key_{i}")).collect();
            let found = subscriptions.keys_by_ids(&ids).await.map(|k| k.len()).ok();
            assert_eq!(found, Some(0));
            assert_eq!(subscriptions.batch_gets(), [100, 100, 50]);
        });
    }
}
