//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of this API, generated from the code.
//!
//! The operations come from the handlers' `#[utoipa::path]` attributes, collected by the same
//! router that serves them (`lib.rs`), so a route cannot exist without its documentation. The
//! responses are the types the handlers serialize (`responses`), the request bodies are stated
//! in `requests`, and the resources are `webhooks-core`'s own types. This module only
//! assembles the document; the tests check it against the validators.
//!
//! The error responses every operation can give follow from what it takes (SPEC §7's check
//! order): [`ErrorResponses`] adds them to each operation, so none is forgotten.

use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::requests::{LogEventType, LogStatus};
use crate::responses::{ErrorBody, ErrorDetail};

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
    components(schemas(ErrorBody, ErrorDetail, LogStatus, LogEventType))
)]
pub struct ApiDoc;

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
    let has_params = operation
        .parameters
        .as_ref()
        .is_some_and(|p| p.iter().any(|p| !matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path)));
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
    if path == "/v1/events" {
        errors.push((
            429,
            "`rate_limited`: the key published more than its limit (`WEBHOOKS_PUBLISH_RATE` events per second, bursts of twice that); nothing was enqueued. `Retry-After` says when to retry.",
        ));
    }
    for (status, description) in errors {
        operation.responses.responses.entry(status.to_string()).or_insert_with(|| {
            let response = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
            );
            let response = if status == 429 {
                response.header(
                    "Retry-After",
                    utoipa::openapi::header::HeaderBuilder::new()
                        .schema(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::Integer)
                                .minimum(Some(1)),
                        )
                        .description(Some("Seconds to wait before publishing again."))
                        .build(),
                )
            } else {
                response
            };
            RefOr::T(response.build())
        });
    }
}

/// The document of the whole API, as `GET /v1/openapi.json` serves it.
pub fn document() -> OpenApi {
    let mut doc = crate::api_router().split_for_parts().1;
    ErrorResponses.modify(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use webhooks_core::catalog;
    use webhooks_core::validation::*;

    use super::*;

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
            "GET /health",
            "GET /v1/openapi.json",
            "GET /v1/me",
            "GET /v1/event-types",
            "GET /v1/event-types/{type}",
            "POST /v1/api-keys",
            "GET /v1/api-keys",
            "PATCH /v1/api-keys/{id}",
            "DELETE /v1/api-keys/{id}",
            "POST /v1/api-keys/{id}/rotate",
            "POST /v1/webhooks",
            "GET /v1/webhooks",
            "GET /v1/webhooks/{id}",
            "PATCH /v1/webhooks/{id}",
            "DELETE /v1/webhooks/{id}",
            "POST /v1/webhooks/{id}/disable",
            "POST /v1/webhooks/{id}/enable",
            "POST /v1/webhooks/{id}/rotate-secret",
            "POST /v1/webhooks/{id}/test",
            "GET /v1/webhooks/{id}/deliveries",
            "POST /v1/webhooks/{id}/deliveries/{message_id}/redeliver",
            "POST /v1/webhooks/{id}/replay",
            "POST /v1/events",
        ];
        assert_eq!(documented, set(&spec));
    }

    #[test]
    fn every_keyed_operation_documents_its_errors_and_the_bearer_scheme() {
        let doc = doc();
        assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        for (method, path, op) in operations(&doc) {
            let responses =
                op["responses"].as_object().map(|r| r.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
            if path == "/health" || path == "/v1/openapi.json" {
                assert!(op.get("security").is_none(), "{method} {path} needs no key");
                continue;
            }
            assert_eq!(op["security"][0][BEARER], serde_json::json!([]), "{method} {path}");
            for status in ["401", "403", "503"] {
                assert!(responses.contains(status), "{method} {path} lacks {status}");
                assert_eq!(
                    op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody"
                );
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
            ("ReplayRequest", &webhooks_core::log_query::REPLAY_FIELDS[..]),
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
    fn filters_are_documented_as_the_parser_takes_them() {
        use webhooks_core::filters::{FILTER_FIELDS, MAX_FILTERS, MAX_IN_VALUES, OPS, PATH_PATTERN};
        let doc = doc();
        // GIVEN the request bodies and the webhook object WHEN read THEN each has its filters
        for name in ["WebhookCreate", "WebhookPatch"] {
            let filters = &schema(&doc, name)["properties"]["filters"];
            assert_eq!(filters["maxItems"], MAX_FILTERS, "{name}");
            assert_eq!(filters["items"]["$ref"], "#/components/schemas/Filter", "{name}");
        }
        assert_eq!(schema(&doc, "Webhook")["properties"]["filters"]["items"]["$ref"], "#/components/schemas/Filter");
        // AND a filter is one of four shapes, one per op, refusing other fields
        let variants = schema(&doc, "Filter")["oneOf"].as_array().cloned().unwrap_or_default();
        let ops: Vec<&str> = variants.iter().filter_map(|v| v["properties"]["op"]["enum"][0].as_str()).collect();
        assert_eq!(ops, OPS);
        for v in &variants {
            let op = v["properties"]["op"]["enum"][0].as_str().unwrap_or_default();
            assert!(property_names(v).is_subset(&set(&FILTER_FIELDS)), "{op}");
            assert_eq!(v["additionalProperties"], false, "{op}");
            assert_eq!(v["properties"]["path"]["pattern"], PATH_PATTERN, "{op}");
            let required: BTreeSet<String> =
                v["required"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)).collect();
            let expected = if op == "exists" { set(&["path", "op"]) } else { set(&FILTER_FIELDS) };
            assert_eq!(required, expected, "{op}");
            assert_eq!(property_names(v), expected, "{op}");
        }
        assert_eq!(variants[1]["properties"]["value"]["maxItems"], MAX_IN_VALUES);
        assert_eq!(variants[1]["properties"]["value"]["minItems"], 1);
        assert_eq!(variants[2]["properties"]["value"]["type"], "string");
    }

    #[test]
    fn event_schemas_and_typed_tests_are_documented() {
        let doc = doc();
        // GIVEN the operation that describes one type
        let get = &doc["paths"]["/v1/event-types/{type}"]["get"];
        assert_eq!(get["parameters"][0]["name"], "type");
        assert_eq!(get["parameters"][0]["schema"]["$ref"], "#/components/schemas/EventTypeName");
        assert_eq!(
            get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/EventTypeDetail"
        );
        let detail = schema(&doc, "EventTypeDetail");
        let fields: BTreeSet<String> = detail["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|part| match part["$ref"].as_str() {
                Some(r) => property_names(schema(&doc, r.trim_start_matches("#/components/schemas/"))),
                None => property_names(part),
            })
            .collect();
        assert_eq!(fields, set(&["type", "group", "description", "schema", "example"]));
        assert_eq!(
            property_names(schema(&doc, "DeliveryBody")),
            set(&["type", "timestamp", "event_id", "company_id", "project_id", "webhook_id", "data"])
        );
        // AND the test's body, which may be left out
        let test = &doc["paths"]["/v1/webhooks/{id}/test"]["post"];
        assert_ne!(test["requestBody"]["required"], true);
        let body = schema(&doc, "WebhookTest");
        assert_eq!(property_names(body), set(&webhooks_core::catalog::schemas::TEST_FIELDS));
        assert_eq!(body["additionalProperties"], false);
        assert!(body.get("required").is_none());
    }

    #[test]
    fn the_log_filters_and_the_range_replay_are_documented() {
        let doc = doc();
        // GIVEN the delivery log THEN it takes a type and a time range besides status and event
        let get = &doc["paths"]["/v1/webhooks/{id}/deliveries"]["get"];
        let params: BTreeSet<String> = get["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(params, set(&["id", "status", "event_id", "event_type", "since", "until", "limit", "cursor"]));
        let types = &schema(&doc, "LogEventType")["enum"];
        assert_eq!(types.as_array().map(Vec::len), Some(38), "the 37 types and health checks");
        // AND the replay answers 202 with the count, and requires `since`
        let replay = &doc["paths"]["/v1/webhooks/{id}/replay"]["post"];
        assert_eq!(
            replay["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Scheduled"
        );
        assert!(replay["responses"].get("409").is_some());
        assert_eq!(schema(&doc, "ReplayRequest")["required"], serde_json::json!(["since"]));
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
