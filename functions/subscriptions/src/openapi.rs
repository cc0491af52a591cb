//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of this API, generated from the code.
//!
//! The operations come from the handlers' `#[utoipa::path]` attributes, collected by the same
//! router that serves them (`lib.rs`), so a route cannot exist without its documentation. The
//! responses are the types the handlers serialize, and the resources are `webhooks-core`'s own
//! types. Request bodies are parsed by `webhooks_core::validation` (precise errors with a field
//! path); their schemas below state the same rules, and the tests check both agree.
//!
//! The error responses every operation can give follow from what it takes (SPEC §7's check
//! order): [`ErrorResponses`] adds them to each operation, so none is forgotten.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};
use webhooks_core::{catalog, event, validation};
use webhooks_core::model::{Permission, Scope};
use webhooks_core::resources::{ApiKey, LogEntry, WebhookView};

/// The name of the bearer security scheme every authenticated operation requires.
pub const BEARER: &str = "bearer";

/// The document's frame: title, version, security scheme and the shared error responses.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "Webhooks API",
        description = "Configure webhooks, publish events and follow deliveries. Authenticate with `Authorization: Bearer <key>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorBody, ErrorDetail, LogStatus)),
)]
pub struct ApiDoc;

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

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
}

/// The event catalog (`GET /v1/event-types`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: &'static [catalog::EventType],
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
    /// `whsec_` and the base64 of 32 random bytes. Not retrievable later.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: String,
}

/// The new signing secret after `rotate-secret`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: String,
}

/// What the receiver answered a signed `WEBHOOK_HEALTH_CHECK`.
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
    /// `health_check_failed`, `payload_too_large`, `unsupported_media_type` or `unavailable`.
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

// ---------------------------------------------------------------------------------------------
// Request bodies: the rules of `webhooks_core::validation`, stated for clients.
// ---------------------------------------------------------------------------------------------

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
            .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(format!(
                "^[!#$%&'*+.^_`|~0-9A-Za-z-]{{1,{}}}$",
                validation::MAX_HEADER_NAME_CHARS
            )))))
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
}

/// `PATCH /v1/webhooks/{id}`: only what is given changes; lists and `headers` are replaced
/// whole; `null` clears `name` or `description`.
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
                ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null])),
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
            .max_items(Some(crate::events::MAX_BATCH_EVENTS))
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

// ---------------------------------------------------------------------------------------------
// Error responses and security, added to every operation
// ---------------------------------------------------------------------------------------------

/// Adds the bearer scheme, and to each operation the error answers it can give: 401, 403 and
/// 503 when it needs a key; 404 when it names a resource; 400 when it takes parameters or a
/// body; 409 when it writes; 413 and 415 when it takes a body.
#[derive(Debug)]
pub struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(BEARER, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.patch.as_mut()),
                (true, item.delete.as_mut()),
                (true, item.put.as_mut()),
            ];
            for (writes, operation) in operations {
                if let Some(operation) = operation {
                    add_errors(path, writes, operation);
                }
            }
        }
    }
}

fn add_errors(path: &str, writes: bool, operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    if !secured {
        return;
    }
    let has_params = operation.parameters.as_ref().is_some_and(|p| p.iter().any(|p| {
        !matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path)
    }));
    let has_body = operation.request_body.is_some();
    let mut errors = vec![
        (401, "No valid key: missing, malformed, unknown or revoked (which, is not said)."),
        (403, "The key lacks the permission, or a scope or event names a company it does not hold."),
        (503, "A dependency failed; nothing was changed or everything was (retrying is safe)."),
    ];
    if path.contains('{') {
        errors.push((404, "No such resource, or one this key does not own."));
    }
    if has_params || has_body {
        errors.push((400, "Invalid input (`validation_failed`); `field` says where."));
    }
    if writes {
        errors.push((409, "`conflict`: changed concurrently, or a limit reached (see `message`)."));
    }
    if has_body {
        errors.push((413, "The body is too large."));
        errors.push((415, "The body's media type is not the one documented."));
    }
    for (status, description) in errors {
        operation.responses.responses.entry(status.to_string()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                    .build(),
            )
        });
    }
}

/// The document of the whole API, as `GET /v1/openapi.json` serves it.
pub fn document() -> OpenApi {
    let mut doc = crate::api_router().split_for_parts().1;
    ErrorResponses.modify(&mut doc);
    doc
}

/// The status of a delivery log entry (`succeeded`, `pending`, `failed`, `parked`).
#[derive(Debug)]
pub struct LogStatus;

impl PartialSchema for LogStatus {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(webhooks_core::resources::log_status::ALL)).into()
    }
}

impl ToSchema for LogStatus {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use webhooks_core::validation::*;

    fn doc() -> Value {
        serde_json::to_value(document()).unwrap_or_default()
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        &doc["components"]["schemas"][name]
    }

    fn property_names(schema: &Value) -> BTreeSet<String> {
        schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
    }

    fn set(fields: &[&str]) -> BTreeSet<String> {
        fields.iter().map(|f| (*f).to_owned()).collect()
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                out.push((method.to_uppercase(), path.clone(), operation));
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route_of_spec_section_7() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<String> = operations(&doc).iter().map(|(m, p, _)| format!("{m} {p}")).collect();
        let spec = [
            "GET /health", "GET /v1/openapi.json", "GET /v1/me", "GET /v1/event-types",
            "POST /v1/api-keys", "GET /v1/api-keys", "PATCH /v1/api-keys/{id}", "DELETE /v1/api-keys/{id}",
            "POST /v1/api-keys/{id}/rotate", "POST /v1/webhooks", "GET /v1/webhooks", "GET /v1/webhooks/{id}",
            "PATCH /v1/webhooks/{id}", "DELETE /v1/webhooks/{id}", "POST /v1/webhooks/{id}/disable",
            "POST /v1/webhooks/{id}/enable", "POST /v1/webhooks/{id}/rotate-secret", "POST /v1/webhooks/{id}/test",
            "GET /v1/webhooks/{id}/deliveries", "POST /v1/webhooks/{id}/deliveries/{message_id}/redeliver",
            "POST /v1/events",
        ];
        assert_eq!(documented, set(&spec));
    }

    #[test]
    fn every_keyed_operation_documents_its_errors_and_the_bearer_scheme() {
        let doc = doc();
        assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        for (method, path, op) in operations(&doc) {
            let responses = op["responses"].as_object().map(|r| r.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
            if path == "/health" || path == "/v1/openapi.json" {
                assert!(op.get("security").is_none(), "{method} {path} needs no key");
                continue;
            }
            assert_eq!(op["security"][0][BEARER], serde_json::json!([]), "{method} {path}");
            for status in ["401", "403", "503"] {
                assert!(responses.contains(status), "{method} {path} lacks {status}");
                assert_eq!(op["responses"][status]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(responses.contains(status), "{method} {path} lacks {status}");
                }
            }
            assert_eq!(responses.contains("404"), path.contains('{'), "{method} {path}");
        }
    }

    #[test]
    fn request_schemas_accept_exactly_the_fields_the_parsers_accept() {
        let doc = doc();
        for (name, fields) in [
            ("WebhookCreate", &WEBHOOK_FIELDS[..]),
            ("WebhookPatch", &WEBHOOK_FIELDS[..]),
            ("Scope", &SCOPE_FIELDS[..]),
            ("ApiKeyCreate", &KEY_FIELDS[..]),
            ("ApiKeyPatch", &KEY_FIELDS[..]),
            ("RotateSecret", &ROTATE_FIELDS[..]),
        ] {
            let s = schema(&doc, name);
            assert_eq!(property_names(s), set(fields), "{name}");
            assert_eq!(s["additionalProperties"], false, "{name} refuses unknown fields");
        }
        assert_eq!(schema(&doc, "WebhookCreate")["required"], serde_json::json!(["url"]));
        assert!(schema(&doc, "WebhookPatch").get("required").is_none());
        assert_eq!(schema(&doc, "ApiKeyCreate")["required"], serde_json::json!(KEY_FIELDS));
        assert!(schema(&doc, "ApiKeyPatch").get("required").is_none());
    }

    #[test]
    fn request_limits_are_the_validators_limits() {
        let doc = doc();
        for name in ["WebhookCreate", "WebhookPatch"] {
            let p = &schema(&doc, name)["properties"];
            assert_eq!(p["url"]["maxLength"], MAX_URL_CHARS, "{name}");
            assert_eq!(p["name"]["maxLength"], MAX_NAME_CHARS, "{name}");
            assert_eq!(p["description"]["maxLength"], MAX_DESCRIPTION_CHARS, "{name}");
            assert_eq!(p["scopes"]["maxItems"], MAX_SCOPES, "{name}");
        }
        for name in ["ApiKeyCreate", "ApiKeyPatch"] {
            let p = &schema(&doc, name)["properties"];
            assert_eq!(p["name"]["maxLength"], MAX_KEY_NAME_CHARS, "{name}");
            assert_eq!(p["companies"]["maxItems"], MAX_KEY_COMPANIES, "{name}");
        }
        assert_eq!(schema(&doc, "Headers")["maxProperties"], MAX_HEADERS);
        assert_eq!(schema(&doc, "Headers")["additionalProperties"]["maxLength"], MAX_HEADER_VALUE_CHARS);
        assert_eq!(schema(&doc, "RotateSecret")["properties"]["grace_seconds"]["maximum"], MAX_GRACE_SECONDS);
        let names: Vec<&str> = catalog::SUBSCRIBABLE.iter().map(|t| t.name).collect();
        assert_eq!(schema(&doc, "EventTypeName")["enum"], serde_json::json!(names));
        assert_eq!(names.len(), 37);
    }

    #[test]
    fn every_reference_resolves() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        out.push(r.clone());
                    }
                    o.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r} resolves");
        }
    }
}
