//! Ports: the narrow capabilities the handlers need from the outside world, as traits, and the
//! plain data they carry. `webhooks-aws` implements each one twice, side by side: with
//! DynamoDB and SQS, and in memory for tests (with the same conditions and limits).
//!
//! Handlers are generic over these traits (no `dyn`); every method returns a `Send` future, so
//! a handler's future stays `Send` whatever implements it. Like the rest of the core, this
//! module must not depend on the AWS SDK, on Lambda, or on an HTTP client.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::filters::Filter;
use crate::model::Scope;
use crate::resources::ApiKey;

mod delivery;

pub use delivery::{
    Alerts, AttemptStore, DeliveryLog, HealthRecord, HealthStore, ParkGuard, ParkOutcome, ParkedDelivery, ParkingStore,
    RetryScheduler, SecretStore, SignedRequest, StoredSecret, StoredWebhook, WebhookSender, WebhookStore,
};

/// Why a port could not do what it was asked; the cause is kept.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The store or queue could not be reached or refused the request: a later retry may
    /// succeed.
    #[error("{operation} failed")]
    Unavailable {
        /// What was attempted, e.g. `Query` or `SendMessage`.
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PortError {
    /// An `Unavailable` error of `operation` caused by `source`.
    pub fn unavailable(operation: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable { operation, source: source.into() }
    }
}

/// What the matcher reads of a webhook: enough to decide a match, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub webhook_id: String,
    pub owner_key_id: String,
    pub events: Vec<String>,
    pub scopes: Vec<Scope>,
    /// The webhook's payload filters, checked after rules 1–3 (so the matcher reads nothing
    /// else); stored as JSON text, left out when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "crate::filters::stored")]
    pub filters: Vec<Filter>,
}

impl IndexEntry {
    /// Whether the entry selects one of `event_types`: it selects every type when its list is
    /// empty, and an empty `event_types` asks for every entry.
    pub fn selects_any(&self, event_types: &BTreeSet<&str>) -> bool {
        event_types.is_empty() || self.events.is_empty() || self.events.iter().any(|e| event_types.contains(e.as_str()))
    }
}

/// An API key as stored: the object, its secret's hash and its webhook count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub secret_sha256: String,
    #[serde(default)]
    pub webhook_count: u32,
}

/// The outcome of an event de-duplication claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours: fan it out, then `complete`.
    Claimed,
    /// Fanned out already: a duplicate.
    Done,
    /// Another fan-out of the same event is under way: try again later.
    Busy,
}

/// The match index (SPEC §4): the entries of one partition, all pages, strongly consistent.
pub trait MatchIndexReader {
    /// The entries of `partition` that select one of `event_types` or every type (an empty
    /// list); an empty `event_types` returns every entry. One Query (all its pages) per call.
    fn index_entries(
        &self,
        partition: &str,
        event_types: &BTreeSet<&str>,
    ) -> impl Future<Output = Result<Vec<IndexEntry>, PortError>> + Send;
}

/// The owner keys of webhooks, read in batches (never one read per webhook).
pub trait OwnerKeys {
    /// The keys among `ids` that still exist, by id, read strongly consistent. A key that is
    /// missing from the answer was deleted.
    fn keys_by_ids(
        &self,
        ids: &BTreeSet<String>,
    ) -> impl Future<Output = Result<HashMap<String, StoredKey>, PortError>> + Send;
}

/// Event de-duplication (SPEC §2): an event is claimed with an expiring in-progress lease,
/// fanned out, then completed, so a crash in between lets it fan out again, never zero times.
pub trait EventClaims {
    /// Claims `event_key` (the event's `webhook-id`) at `now` (Unix seconds).
    fn claim(&self, event_key: &str, now: i64) -> impl Future<Output = Result<Claim, PortError>> + Send;

    /// Marks a claimed event as fanned out, for the rest of the de-duplication window.
    fn complete(&self, event_key: &str, now: i64) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The delivery queue, from the matcher: many messages at once.
pub trait DeliveryQueue {
    /// Sends every body. Returns the indexes (into `bodies`) that could not be sent; empty
    /// means all were.
    fn send_all(&self, bodies: &[String]) -> impl Future<Output = Vec<usize>> + Send;

    /// Sends every `(body, delay in seconds)`, each invisible until its delay passed (at most
    /// 900 s). Returns the indexes that could not be sent.
    fn send_later(&self, messages: &[(String, u32)]) -> impl Future<Output = Vec<usize>> + Send;
}

/// The ingest dead-letter queue, where refused events go at once with their reason.
pub trait IngestDeadLetters {
    /// Sends `body` unchanged, with the `reason` (a stable code) and `detail` attributes.
    fn reject(&self, body: &str, reason: &str, detail: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The time, so that tests can set it.
pub trait Clock {
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(events: &[&str]) -> IndexEntry {
        IndexEntry {
            webhook_id: "wh_1".into(),
            owner_key_id: "key_1".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            scopes: Vec::new(),
            filters: Vec::new(),
        }
    }

    #[test]
    fn an_entry_selects_its_types_or_every_type() {
        let created: BTreeSet<&str> = BTreeSet::from(["TODO_CREATED"]);
        let deleted: BTreeSet<&str> = BTreeSet::from(["TODO_DELETED"]);
        assert!(entry(&["TODO_CREATED"]).selects_any(&created));
        assert!(!entry(&["TODO_CREATED"]).selects_any(&deleted));
        assert!(entry(&[]).selects_any(&deleted));
        assert!(entry(&["TODO_CREATED"]).selects_any(&BTreeSet::new()));
    }
}
