//! Event de-duplication claims (EventsTable): an event is fanned out once per (company,
//! source, id) within 24 h (claimed under its `webhook-id`, which is derived from all three). The matcher claims the id with an expiring in-progress record, enqueues, then
//! marks it done; a crash between the two lets the lease expire and the event fan out again
//! (same `webhook-id`s) — twice at worst, never zero times.

use aws_sdk_dynamodb::Client;

use crate::dynamodb::StoreError;
use crate::item::{conditional, n, s, unavailable};
use crate::keys::event_pk;

/// The outcome of a claim lives in the core (the `EventClaims` port carries it).
pub use webhooks_core::ports::Claim;

/// How long a claim protects an event being fanned out; shorter than the ingest queue's
/// visibility timeout, so the retry of a crashed fan-out finds the lease expired.
pub const CLAIM_LEASE_SECONDS: i64 = 60;
/// Duplicates are recognised for this long (SPEC §2).
pub const DEDUPLICATION_WINDOW_SECONDS: i64 = 24 * 3600;

#[derive(Debug, Clone)]
pub struct DynamoDbEventClaims {
    client: Client,
    table: String,
}

impl DynamoDbEventClaims {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Claims `event_key` (e.g. the event's `webhook-id`) at `now` (Unix seconds).
    pub async fn claim(&self, event_key: &str, now: i64) -> Result<Claim, StoreError> {
        let pk = s(event_pk(event_key));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk.clone())
            .item("state", s("in_progress"))
            .item("lease_until", n(now + CLAIM_LEASE_SECONDS))
            .item("expires_at", n(now + DEDUPLICATION_WINDOW_SECONDS))
            // Free, or a lease that expired, or a record past its window that TTL has not
            // deleted yet (TTL deletes late, and never on the local emulator).
            .condition_expression(
                "attribute_not_exists(pk) OR (#s = :in_progress AND lease_until < :now) OR expires_at < :now",
            )
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        if conditional(result, "PutItem")?.is_some() {
            return Ok(Claim::Claimed);
        }
        let current = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        let done =
            current.item.as_ref().and_then(|i| i.get("state")).and_then(|s| s.as_s().ok()) == Some(&"done".to_owned());
        Ok(if done { Claim::Done } else { Claim::Busy })
    }

    /// Marks a claimed event as fanned out, for the rest of the window.
    pub async fn complete(&self, event_key: &str, now: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(event_pk(event_key)))
            .item("state", s("done"))
            .item("expires_at", n(now + DEDUPLICATION_WINDOW_SECONDS))
            .send()
            .await
            .map_err(unavailable("PutItem"))?;
        Ok(())
    }
}
