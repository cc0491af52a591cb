//! Queue message contracts. Every message on a work queue is one of these versioned, tagged
//! types, so a deployment can change a contract while messages of the old shape still drain.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// A message on the delivery queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum DeliveryQueueMessage {
    /// Send one event to one webhook.
    #[serde(rename = "delivery.v1")]
    Delivery(Delivery),
    /// Re-send a webhook's parked deliveries, oldest first, one page per message: the page's
    /// handler queues the next page, so a replay of any size never outgrows one invocation.
    #[serde(rename = "replay.v1")]
    Replay(Replay),
    /// A parked delivery re-sent by a replay: if it has to be parked again, it goes back to
    /// its original place (park time and expiry), so a replay never meets it twice and the
    /// webhook's parked count holds each event once.
    #[serde(rename = "replayed.v1")]
    Replayed(Replayed),
    /// Remove the parked deliveries of a deleted webhook, one page per message, each counted
    /// as dropped (`webhook_deleted`).
    #[serde(rename = "purge.v1")]
    Purge(Purge),
    /// Re-send logged events to a webhook (a replay by time range, SPEC §10), one page of
    /// them per message: each is loaded from the log and queued as a new delivery.
    #[serde(rename = "resend.v1")]
    Resend(Resend),
}

/// One page of a replay by time range: events of the log, by `webhook-id`, to re-send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resend {
    pub webhook_id: String,
    /// The generation of every re-sent copy, drawn once per replay: a page handled twice makes
    /// the same deliveries, whose attempt claims let each be sent once.
    pub generation: u32,
    /// When the replay was asked for (Unix milliseconds): the copies' match time, so a manual
    /// disable after it parks them like any delivery queued before it.
    pub queued_at: i64,
    /// The events' `webhook-id`s, oldest first.
    pub messages: Vec<String>,
}

/// One page of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    pub webhook_id: String,
    /// Where the previous page ended; `None` for the first page.
    pub after: Option<String>,
    /// The replay covers only what was parked before it started: sort keys below this one.
    /// `None` (a message of the first shape) means "before the page's own start".
    #[serde(default)]
    pub until: Option<String>,
}

/// Where a parked delivery was kept, carried by its re-sent copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkSlot {
    /// The sort key of the parked item (its original park time first).
    pub sort_key: String,
    /// Its original expiry (Unix seconds): parking again never extends it.
    pub expires_at: i64,
}

/// A delivery re-sent by a replay, with the slot it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    pub delivery: Delivery,
    pub slot: ParkSlot,
}

/// One page of the removal of a deleted webhook's parked deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purge {
    pub webhook_id: String,
}

/// One (event, webhook) pair to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Deterministic: the same pair (and generation) always has the same id, so attempt
    /// records written under it survive redelivery of the SQS message.
    pub delivery_id: String,
    pub webhook_id: String,
    /// The `webhook-id` header: the same for every attempt, replay and webhook of the event.
    pub webhook_message_id: String,
    pub event: Event,
    /// 0 for the matcher's fan-out; each replay or redelivery is a new generation, so it gets
    /// a fresh attempt budget under a new delivery id while keeping the `webhook-id`.
    #[serde(default)]
    pub generation: u32,
    /// When it was queued (Unix milliseconds): a manual disable parks deliveries queued
    /// before it and drops those matched after.
    #[serde(default)]
    pub queued_at: i64,
    /// The send slot this delivery holds under its webhook's `rate_limit` (Unix milliseconds),
    /// when it was queued again to wait for it (`crate::rate_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at_ms: Option<i64>,
    /// The webhook's owner key as the matcher saw it (a webhook's owner never changes): the
    /// delivery function reads that key together with the webhook and its health, in one round
    /// trip. Absent from messages of other origins; the key is then read after the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_key_id: Option<String>,
}

impl Delivery {
    /// The same event for the same webhook, as a new delivery (fresh attempts).
    pub fn next_generation(&self, generation: u32, queued_at: i64) -> Self {
        Self {
            delivery_id: crate::signing::delivery_id(&self.webhook_message_id, &self.webhook_id, generation),
            generation,
            queued_at,
            send_at_ms: None,
            ..self.clone()
        }
    }
}

impl DeliveryQueueMessage {
    /// The message as a delivery queue body (JSON that SQS accepts, see [`crate::wire`]).
    pub fn to_json(&self) -> String {
        crate::wire::queue_safe_json(serde_json::to_string(self).unwrap_or_default())
    }

    pub fn from_json(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

impl Delivery {
    /// The copy of a parked delivery a replay re-sends: fresh attempts (the next generation),
    /// the same `webhook-id`, and its original match time, so a manual disable that comes
    /// during the replay parks it (it was queued before the disable) instead of dropping it
    /// as a new match.
    ///
    /// The generation is the parked one's plus one, never a random one: two replays that read
    /// the same parked delivery (a replay page queued twice, or two recoveries close together)
    /// make the same copy, with the same delivery id, whose attempt claims let it be sent once.
    /// A copy that fails and is parked again is copied with the generation after its own.
    pub fn replayed(&self) -> Self {
        self.next_generation(self.generation.wrapping_add(1), self.queued_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_and_versions_are_refused() {
        assert!(DeliveryQueueMessage::from_json(r#"{"kind":"delivery.v0"}"#).is_err());
        assert!(DeliveryQueueMessage::from_json(r#"{"delivery_id":"d"}"#).is_err());
        assert!(DeliveryQueueMessage::from_json("not json").is_err());
    }

    #[test]
    fn every_replay_of_one_parked_delivery_makes_the_same_copy() -> Result<(), Box<dyn std::error::Error>> {
        let event = crate::event::parse_ingest_body(
            r#"{"specversion":"1.0","id":"e1","source":"app/companies/acme/projects/p1","type":"TODO_CREATED",
                "companyid":"acme","projectid":"p1","data":{}}"#,
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .map_err(|e| e.message)?;
        let parked = Delivery {
            delivery_id: "d0".into(),
            webhook_id: "wh_1".into(),
            webhook_message_id: "msg_1".into(),
            event,
            generation: 0,
            queued_at: 7,
            send_at_ms: None,
            owner_key_id: None,
        };
        // GIVEN one parked delivery read by two replays THEN both copies are one delivery
        assert_eq!(parked.replayed(), parked.replayed());
        // AND it is a new one, with the original match time and webhook-id
        let copy = parked.replayed();
        assert_ne!(copy.delivery_id, parked.delivery_id);
        assert_eq!((copy.generation, copy.queued_at, copy.webhook_message_id.as_str()), (1, 7, "msg_1"));
        // AND a copy parked again and replayed again is a new one again
        assert_ne!(copy.replayed().delivery_id, copy.delivery_id);
        Ok(())
    }

    #[test]
    fn replay_messages_of_the_first_shape_still_decode() {
        // GIVEN a replay page queued before `until` existed THEN it decodes with no bound
        let old = DeliveryQueueMessage::from_json(r#"{"kind":"replay.v1","webhook_id":"wh_1","after":null}"#);
        assert!(matches!(old, Ok(DeliveryQueueMessage::Replay(Replay { until: None, .. }))));
    }

    #[test]
    fn a_body_sqs_would_refuse_is_never_written() {
        // GIVEN a delivery whose event holds characters SQS refuses in a message
        let event = crate::event::Event {
            id: "e\u{FFFF}".into(),
            source: "s".into(),
            event_type: "TODO_CREATED".into(),
            company_id: "acme".into(),
            project_id: "p1".into(),
            time: "2026-11-28T10:00:00Z".into(),
            data: serde_json::json!({"text": "a\u{FFFE}b\u{1}c"}),
        };
        let message = DeliveryQueueMessage::Delivery(Delivery {
            delivery_id: "dlv_x".into(),
            webhook_id: "wh_x".into(),
            webhook_message_id: "msg_x".into(),
            event,
            generation: 0,
            queued_at: 1,
            send_at_ms: None,
            owner_key_id: None,
        });
        // WHEN it is written for the queue THEN SQS accepts it, and it reads back the same
        let body = message.to_json();
        assert!(crate::wire::sqs_accepts(&body), "{body:?}");
        assert_eq!(DeliveryQueueMessage::from_json(&body).ok(), Some(message));
    }
}
