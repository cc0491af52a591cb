//! What clients send, stated for them: the request-body and parameter schemas of the OpenAPI
//! document. The bodies are parsed by `webhooks_core::validation` (precise errors with a field
//! path); the schemas here state the same rules, and `openapi`'s tests check both agree. What
//! every PATCH does with a parsed body is [`replace_if_given`].
//! Plain data: no handler, store or client here.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use webhooks_core::filters::Filter;
use webhooks_core::model::{Permission, Scope, SignatureScheme};
use webhooks_core::{catalog, event, validation};

/// Most events in one batch of `POST /v1/events` (SPEC §7).
pub const MAX_BATCH_EVENTS: usize = 100;

/// One of the 37 subscribable event types (`GET /v1/event-types`).
#[derive(Debug, Deserialize)]
pub struct EventTypeName(pub String);

impl PartialSchema for EventTypeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(catalog::SUBSCRIBABLE.iter().map(|t| t.name)))
            .into()
    }
}

impl ToSchema for EventTypeName {}

/// An event type as the delivery log names it: a subscribable type, or `WEBHOOK_HEALTH_CHECK`
/// (health checks and tests).
#[derive(Debug)]
pub struct LogEventType;

impl PartialSchema for LogEventType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(catalog::SUBSCRIBABLE.iter().map(|t| t.name).chain([catalog::HEALTH_CHECK])))
            .into()
    }
}

impl ToSchema for LogEventType {}

/// A custom header value: at most 1024 visible ASCII characters and inner spaces.
#[derive(Debug, Deserialize)]
pub struct HeaderValue(pub String);

impl PartialSchema for HeaderValue {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(validation::MAX_HEADER_VALUE_CHARS))
            .pattern(Some("^([!-~]([ !-~]*[!-~])?)?$"))
            .into()
    }
}

impl ToSchema for HeaderValue {}

/// Custom headers sent with every delivery: at most 10; names are RFC 9110 tokens of up to 64
/// characters, not one the service sets (`host`, `user-agent`, `content-*`, `webhook-*`,
/// `proxy-*`, hop-by-hop); `authorization` is allowed.
#[derive(Debug, Default, Deserialize)]
pub struct Headers(pub BTreeMap<String, HeaderValue>);

impl PartialSchema for Headers {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(validation::MAX_HEADERS))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(format!("^[!#$%&'*+.^_`|~0-9A-Za-z-]{{1,{}}}$", validation::MAX_HEADER_NAME_CHARS))),
            ))
            .additional_properties(Some(HeaderValue::schema()))
            .into()
    }
}

impl ToSchema for Headers {}

/// `POST /v1/webhooks`. Lists and `headers` may be left out (none), never `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Where deliveries go: `https` (or `http` where allowed), no user info, no fragment, a
    /// host that resolves only to public addresses.
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: Option<String>,
    #[schema(max_length = 1000, pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$")]
    pub description: Option<String>,
    /// Empty or left out: every type.
    #[serde(default)]
    pub events: Vec<EventTypeName>,
    /// Empty or left out: every company the key holds.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub headers: Headers,
    /// Requests per second at most, across every execution environment; deliveries held back
    /// by it wait. Left out or `null`: no limit.
    #[schema(minimum = 1, maximum = 1000)]
    pub rate_limit: Option<u32>,
    /// Conditions on the delivery body that must all hold for an event to be sent. Empty or
    /// left out: none.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub filters: Vec<Filter>,
    /// Left out: `v1` (HMAC, the answer shows the `secret`); `v1a`: Ed25519, the webhook shows
    /// its `public_key`.
    #[serde(default)]
    pub signature_scheme: SignatureScheme,
}

/// `PATCH /v1/webhooks/{id}`: only what is given changes; lists and `headers` are replaced
/// whole; `null` clears `name`, `description` or `rate_limit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default)]
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: Option<String>,
    #[schema(max_length = 1000, pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$")]
    pub description: Option<String>,
    #[serde(default)]
    pub events: Vec<EventTypeName>,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub headers: Headers,
    /// `null` removes the limit.
    #[schema(minimum = 1, maximum = 1000)]
    pub rate_limit: Option<u32>,
    #[serde(default)]
    #[schema(max_items = 10)]
    pub filters: Vec<Filter>,
    /// A switch makes a new key pair (`v1a`), or brings back the secret of a switch less than a
    /// day ago, else makes a new one shown in the answer (`v1`); the previous scheme's keys keep
    /// signing for a day.
    #[serde(default)]
    pub signature_scheme: SignatureScheme,
}

/// A PATCH changes only what it gives: `field` takes `given` when there is one.
pub fn replace_if_given<T>(field: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *field = value;
    }
}

/// `POST /v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: String,
    #[schema(min_items = 1, max_items = 100, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub companies: Vec<String>,
    #[schema(min_items = 1)]
    pub permissions: Vec<Permission>,
}

/// `PATCH /v1/api-keys/{id}`: only what is given changes; none may be `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPatch {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: String,
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub companies: Vec<String>,
    #[serde(default)]
    #[schema(min_items = 1)]
    pub permissions: Vec<Permission>,
}

/// `POST /v1/webhooks/{id}/rotate-secret` (the body may be left out).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret keeps signing too (default 86400 = 1 day).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_seconds: u32,
}

/// `POST /v1/webhooks/{id}/test` (the body may be left out: a health check).
// Parsed by `webhooks_core::catalog::schemas::parse_test_request`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTest {
    /// Send this type's example (`GET /v1/event-types/{type}`, `webhook_id` set to this webhook)
    /// instead of a `WEBHOOK_HEALTH_CHECK`; left out or `null`: the health check.
    pub event_type: Option<EventTypeName>,
}

/// `POST /v1/webhooks/{id}/replay`: re-send the events logged for the webhook with an attempt
/// in [`since`, `until`).
// Parsed by `webhooks_core::log_query::parse_replay_request`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// RFC 3339; not older than the log keeps entries (`WEBHOOKS_LOG_TTL`, 3 days by default),
    /// not after `until`.
    #[schema(format = DateTime, example = "2026-11-28T10:00:00Z")]
    pub since: String,
    /// RFC 3339; left out or `null`: now.
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// `failed` (default): only events not delivered to the webhook (no `succeeded` entry in
    /// the log, and no delivery of them recorded delivered); `all`: every one.
    pub status: Option<ReplayStatusName>,
}

/// Which events a replay re-sends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatusName {
    Failed,
    All,
}

/// A CloudEvents 1.0 event in structured JSON (SPEC §2). Other attributes and extensions are
/// allowed and ignored.
#[derive(Debug)]
pub struct CloudEvent;

impl PartialSchema for CloudEvent {
    fn schema() -> RefOr<Schema> {
        let string = |min: usize, max: usize| {
            ObjectBuilder::new().schema_type(Type::String).min_length(Some(min)).max_length(Some(max))
        };
        let identifier = || ObjectBuilder::new().schema_type(Type::String).pattern(Some(IDENTIFIER_PATTERN));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("specversion", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["1.0"])))
            .property("id", string(1, event::MAX_ID_CHARS))
            .property("source", string(1, event::MAX_SOURCE_CHARS))
            .property("type", EventTypeName::schema())
            .property("companyid", identifier())
            .property("projectid", identifier())
            .property(
                "time",
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime))),
            )
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null])),
            )
            .required("specversion")
            .required("id")
            .required("source")
            .required("type")
            .required("companyid")
            .required("projectid")
            .into()
    }
}

impl ToSchema for CloudEvent {}

/// 1 to 100 CloudEvents, published all or none (more than 100 is a 413).
#[derive(Debug)]
pub struct CloudEventBatch;

impl PartialSchema for CloudEventBatch {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(Ref::from_schema_name("CloudEvent"))
            .min_items(Some(1))
            .max_items(Some(MAX_BATCH_EVENTS))
            .into()
    }
}

impl ToSchema for CloudEventBatch {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((CloudEvent::name().into(), CloudEvent::schema()));
    }
}

/// Company and project ids (SPEC §2).
pub const IDENTIFIER_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// The status of a delivery log entry (`succeeded`, `pending`, `failed`, `parked`).
#[derive(Debug)]
pub struct LogStatus;

impl PartialSchema for LogStatus {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(webhooks_core::resources::log_status::ALL))
            .into()
    }
}

impl ToSchema for LogStatus {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_replaces_what_it_gives_and_keeps_the_rest() {
        // GIVEN a name and a list
        let (mut name, mut list) = (Some("old".to_owned()), vec![1, 2]);
        // WHEN a patch clears the name and leaves the list out
        replace_if_given(&mut name, Some(None));
        replace_if_given(&mut list, None);
        // THEN the name is cleared and the list is unchanged
        assert_eq!(name, None);
        assert_eq!(list, [1, 2]);
    }
}
