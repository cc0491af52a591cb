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
}

/// One page of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    pub webhook_id: String,
    /// Where the previous page ended; `None` for the first page.
    pub after: Option<String>,
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
}

impl Delivery {
    /// The same event for the same webhook, as a new delivery (fresh attempts).
    pub fn next_generation(&self, generation: u32, queued_at: i64) -> Self {
        Self {
            delivery_id: crate::signing::delivery_id(&self.webhook_message_id, &self.webhook_id, generation),
            generation,
            queued_at,
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
        });
        // WHEN it is written for the queue THEN SQS accepts it, and it reads back the same
        let body = message.to_json();
        assert!(crate::wire::sqs_accepts(&body), "{body:?}");
        assert_eq!(DeliveryQueueMessage::from_json(&body).ok(), Some(message));
    }
}
