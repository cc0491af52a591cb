//! What the API answers: the bodies the handlers serialize, each with its schema for the
//! OpenAPI document. Resources (`ApiKey`, `WebhookView`, `LogEntry`) are `webhooks-core`'s own
//! types; these are the envelopes around them. Plain data: no handler, store or client here.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use webhooks_core::catalog;
use webhooks_core::catalog::schemas::{self, EventSchema};
use webhooks_core::model::Permission;
use webhooks_core::resources::{ApiKey, LogEntry, WebhookView};

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The calling key (`GET /v1/me`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub name: String,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub companies: Vec<String>,
    pub permissions: Vec<Permission>,
    pub is_admin: bool,
    /// Events per second this key may publish (`POST /v1/events`), bursts of twice that;
    /// `null` for a key without the `publish` permission.
    pub publish_rate: Option<u32>,
}

/// The event catalog (`GET /v1/event-types`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: &'static [catalog::EventType],
}

/// One event type with what its deliveries hold (`GET /v1/event-types/{type}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeDetail {
    #[serde(flatten)]
    pub event_type: catalog::EventType,
    /// A JSON Schema (2020-12) of the event's `data`.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// A complete delivery body of this type, as a webhook receives it (`webhook_id` a
    /// placeholder); its `data` validates against `schema`. `POST /v1/webhooks/{id}/test` with
    /// this `event_type` sends it.
    pub example: DeliveryBody,
}

impl EventTypeDetail {
    /// The detail of a described type. The example is read back from the very body
    /// `webhooks_core::payload` writes for deliveries, so it has their shape; an error only if
    /// that shape and [`DeliveryBody`] disagree (a test checks they agree).
    pub fn of(described: &EventSchema) -> Result<Self, serde_json::Error> {
        let example = serde_json::from_str(&described.example_body(schemas::EXAMPLE_WEBHOOK_ID))?;
        Ok(Self { event_type: *described.event_type, schema: described.data_schema.clone(), example })
    }
}

/// The body of a delivery request (SPEC §5), in its documented field order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryBody {
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub event_id: String,
    /// `null` for a health check only.
    pub company_id: Option<String>,
    /// `null` for a health check only.
    pub project_id: Option<String>,
    pub webhook_id: String,
    /// The event's `data`: an object, or `null`.
    #[schema(value_type = Option<Object>)]
    pub data: Value,
}

/// A page of API keys, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKey>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// An API key with its secret: shown once, on create and rotate.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyWithSecret {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// `whk_` and 40 base62 characters. Not retrievable later.
    #[schema(pattern = "^whk_[0-9A-Za-z]{40}$")]
    pub key: String,
}

/// A page of webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A new webhook with its signing secret: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `v1` only: `whsec_` and the base64 of 32 random bytes. Not retrievable later. A `v1a`
    /// webhook has no secret: receivers verify with its `public_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: Option<String>,
}

/// A changed webhook. A switch of `signature_scheme` to `v1` that needed a new signing secret
/// adds it here, shown once as at create.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Only when this change made a new `v1` secret: `whsec_` and the base64 of 32 random
    /// bytes. Not retrievable later.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: Option<String>,
}

/// The new signing key after `rotate-secret`: a `v1` webhook's new secret, or a `v1a`
/// webhook's new public key (also on the webhook from now on).
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// `v1` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: Option<String>,
    /// `v1a` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, pattern = "^whpk_[A-Za-z0-9+/]{43}=$")]
    pub public_key: Option<String>,
}

/// What the receiver answered a signed `WEBHOOK_HEALTH_CHECK` (or test event).
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthCheckOutcome {
    /// `null` when no HTTP answer came (refused, timed out, blocked address).
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// `enable`: the webhook, active again, and how many parked deliveries are being re-sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enabled {
    pub webhook: WebhookView,
    pub replayed: u64,
}

/// A page of the delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryLog {
    pub data: Vec<LogEntry>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A redelivery was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    #[schema(example = "queued")]
    pub status: &'static str,
    pub webhook_message_id: String,
}

/// A replay by time range was accepted: this many events will be re-sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Scheduled {
    pub scheduled: usize,
}

/// `POST /v1/events`: every event was enqueued (duplicates included).
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: usize,
}

/// Every error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for people (`message`) and programs (`code`, `field`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `validation_failed`, `unauthenticated`, `forbidden`, `not_found`, `conflict`,
    /// `health_check_failed`, `payload_too_large`, `unsupported_media_type`, `rate_limited` or
    /// `unavailable`.
    pub code: String,
    pub message: String,
    /// Where in the request (`validation_failed` only): a path like `scopes[1].company_id`;
    /// empty for the body as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `health_check_failed` only: the receiver's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub details: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_detail_whose_example_is_the_delivery_body() {
        for t in &catalog::SUBSCRIBABLE {
            // GIVEN a described type
            let Some(described) = schemas::describe(t.name) else { panic!("{} is not described", t.name) };
            // WHEN its detail is made
            let detail = EventTypeDetail::of(&described).unwrap_or_else(|e| panic!("{}: {e}", t.name));
            // THEN the example is the delivery body, field for field and in the same order
            let answered = serde_json::to_string(&detail.example).unwrap_or_default();
            assert_eq!(answered, described.example_body(schemas::EXAMPLE_WEBHOOK_ID), "{}", t.name);
            assert_eq!(detail.schema, described.data_schema);
            let json = serde_json::to_value(&detail).unwrap_or_default();
            let keys: Vec<&str> = json.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
            assert_eq!(keys.len(), 5, "{keys:?}");
            assert_eq!((&json["type"], &json["group"]), (&Value::from(t.name), &Value::from(t.group)));
        }
    }
}
