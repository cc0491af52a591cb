//! Events in: CloudEvents 1.0 (structured JSON), alone or inside an EventBridge envelope.
//!
//! Validation is strict on what the service relies on (identity, type, tenant, time) and
//! ignores every other attribute or extension, as the CloudEvents spec asks of consumers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog;

/// Largest accepted event, serialized (SPEC §2).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_SOURCE_CHARS: usize = 1024;
/// Deepest nesting of objects and arrays in `data`: DynamoDB keeps at most 32 levels in an
/// item, and the delivery log stores `data` inside the event, inside the entry.
pub const MAX_DATA_DEPTH: usize = 28;
/// DynamoDB's number range (magnitude): every number of `data` must be storable as it is.
const MIN_STORABLE_MAGNITUDE: f64 = 1e-130;
const MAX_STORABLE_MAGNITUDE: f64 = 1e126;

/// A validated event: everything matching and delivery need, nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub company_id: String,
    pub project_id: String,
    /// RFC 3339, UTC: the event's `time`, or its receipt time when it had none.
    pub time: String,
    pub data: Value,
}

/// Why an event was refused: a stable `code` (for DLQ attributes and metrics), the attribute
/// concerned, and a message a producer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EventError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl EventError {
    fn new(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self { code, field: field.to_owned(), message: message.into() }
    }

    /// The same error located inside a batch or envelope, e.g. `[3].type`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.field) };
        self
    }
}

/// Parses one ingest queue message body: a CloudEvent, or an EventBridge envelope whose
/// `detail` is one. A body with a `specversion` is a CloudEvent, whatever else it carries:
/// only a body without one is read as an envelope (SPEC §2), so no attribute of an event can
/// make the matcher read another event out of it.
pub fn parse_ingest_body(body: &str, received_at: OffsetDateTime) -> Result<Event, EventError> {
    if body.len() > MAX_EVENT_BYTES + 64 * 1024 {
        return Err(EventError::new("too_large", "", "message is larger than an event may be"));
    }
    let value: Value = serde_json::from_str(body)
        .map_err(|e| EventError::new("invalid_json", "", format!("body is not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(EventError::new("not_an_object", "", "body must be a JSON object"));
    };
    if !object.contains_key("specversion") && object.contains_key("detail-type") {
        return match object.remove("detail") {
            Some(Value::Object(detail)) => {
                let size = Value::Object(detail.clone()).to_string().len();
                validate_object(detail, size, received_at).map_err(|e| e.within("detail"))
            }
            _ => Err(EventError::new(
                "invalid_envelope",
                "detail",
                "an EventBridge envelope needs an object `detail` holding the CloudEvent",
            )),
        };
    }
    validate_object(object, body.len(), received_at)
}

/// The CloudEvent form of a validated [`Event`], borrowed: what is enqueued and measured.
#[derive(Serialize)]
struct CloudEventOut<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    time: &'a str,
    companyid: &'a str,
    projectid: &'a str,
    datacontenttype: &'static str,
    data: &'a Value,
}

impl Event {
    fn as_cloud_event(&self) -> CloudEventOut<'_> {
        CloudEventOut {
            specversion: "1.0",
            id: &self.id,
            source: &self.source,
            event_type: &self.event_type,
            time: &self.time,
            companyid: &self.company_id,
            projectid: &self.project_id,
            datacontenttype: "application/json",
            data: &self.data,
        }
    }

    /// The event as a CloudEvent again, with only the attributes the service validated, as an
    /// ingest queue body: what `POST /v1/events` enqueues, never the caller's raw JSON.
    pub fn to_ingest_body(&self) -> String {
        crate::wire::queue_safe_json(serde_json::to_string(&self.as_cloud_event()).unwrap_or_default())
    }

    /// The size of [`Self::to_ingest_body`] before queue escaping, counted without building it.
    fn kept_size(&self) -> usize {
        let mut counter = crate::wire::ByteCounter::default();
        let _ = serde_json::to_writer(&mut counter, &self.as_cloud_event());
        counter.bytes
    }
}

/// Validates one CloudEvent given as a JSON value (an element of an API batch, say).
pub fn validate_event(value: Value, received_at: OffsetDateTime) -> Result<Event, EventError> {
    match value {
        Value::Object(object) => {
            let size = Value::Object(object.clone()).to_string().len();
            validate_object(object, size, received_at)
        }
        _ => Err(EventError::new("not_an_object", "", "an event must be a JSON object")),
    }
}

fn validate_object(
    mut object: Map<String, Value>,
    size: usize,
    received_at: OffsetDateTime,
) -> Result<Event, EventError> {
    // A cheap first look at what the caller sent; the rule is on what is kept (below).
    if size > MAX_EVENT_BYTES + MAX_IGNORED_BYTES {
        return Err(too_large());
    }
    match object.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(_) => {
            return Err(EventError::new("invalid_specversion", "specversion", "must be \"1.0\""));
        }
        None => return Err(missing("specversion")),
    }
    let id = bounded_string(&object, "id", MAX_ID_CHARS)?;
    let source = bounded_string(&object, "source", MAX_SOURCE_CHARS)?;
    let event_type = required_string(&object, "type")?;
    if catalog::subscribable(&event_type).is_none() {
        return Err(EventError::new(
            "unknown_type",
            "type",
            format!("`{event_type}` is not one of the subscribable event types"),
        ));
    }
    let company_id = identifier(&object, "companyid")?;
    let project_id = identifier(&object, "projectid")?;
    let time = match object.get("time") {
        None | Some(Value::Null) => format_utc(received_at),
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| format_utc(t.to_offset(time::UtcOffset::UTC)))
            .map_err(|_| EventError::new("invalid_time", "time", "must be an RFC 3339 timestamp"))?,
        Some(_) => return Err(EventError::new("invalid_time", "time", "must be a string")),
    };
    let data = match object.remove("data") {
        None | Some(Value::Null) => Value::Null,
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(EventError::new("invalid_data", "data", "must be a JSON object or null")),
    };
    storable(&data, "data", 0)?;
    let event = Event { id, source, event_type, company_id, project_id, time, data };
    // The size that counts is the event's as it is enqueued and kept (re-serialised, other
    // attributes dropped), so what the API accepts the matcher accepts too.
    if event.kept_size() > MAX_EVENT_BYTES {
        return Err(too_large());
    }
    Ok(event)
}

/// How far the caller's JSON may exceed the limit with attributes that are not kept.
const MAX_IGNORED_BYTES: usize = 64 * 1024;

fn too_large() -> EventError {
    EventError::new("too_large", "", "an event is at most 256 KiB")
}

/// Refuses what DynamoDB could not store: nesting deeper than [`MAX_DATA_DEPTH`], numbers
/// outside its range. `depth` counts the objects and arrays around `value` inside `data`.
fn storable(value: &Value, path: &str, depth: usize) -> Result<(), EventError> {
    if matches!(value, Value::Object(_) | Value::Array(_)) && depth >= MAX_DATA_DEPTH {
        return Err(EventError::new(
            "invalid_data",
            "data",
            format!("nests deeper than {MAX_DATA_DEPTH} levels of objects and arrays"),
        ));
    }
    match value {
        Value::Object(map) => map.iter().try_for_each(|(k, v)| storable(v, &format!("{path}.{k}"), depth + 1)),
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| storable(v, &format!("{path}[{i}]"), depth + 1))
        }
        Value::Number(n) if n.is_f64() => {
            let magnitude = n.as_f64().map_or(0.0, f64::abs);
            if magnitude != 0.0 && !(MIN_STORABLE_MAGNITUDE..MAX_STORABLE_MAGNITUDE).contains(&magnitude) {
                return Err(EventError::new("invalid_data", path, "numbers must be 0 or of magnitude 1e-130 to 1e126"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// RFC 3339 in UTC with a `Z`, as delivered in `timestamp`.
pub fn format_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// `[A-Za-z0-9_-]{1,64}`: company and project ids everywhere in the service.
pub fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn missing(field: &str) -> EventError {
    EventError::new("missing_attribute", field, format!("`{field}` is required"))
}

fn required_string(object: &Map<String, Value>, field: &str) -> Result<String, EventError> {
    match object.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(EventError::new("invalid_attribute", field, format!("`{field}` must be a string"))),
        None => Err(missing(field)),
    }
}

fn bounded_string(object: &Map<String, Value>, field: &str, max: usize) -> Result<String, EventError> {
    let s = required_string(object, field)?;
    let chars = s.chars().count();
    if chars == 0 || chars > max {
        return Err(EventError::new("invalid_attribute", field, format!("`{field}` must be 1 to {max} characters")));
    }
    Ok(s)
}

fn identifier(object: &Map<String, Value>, field: &str) -> Result<String, EventError> {
    let s = required_string(object, field)?;
    if !is_identifier(&s) {
        return Err(EventError::new("invalid_attribute", field, format!("`{field}` must match [A-Za-z0-9_-]{{1,64}}")));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn sample() -> Value {
        json!({"specversion":"1.0","id":"evt-8f2c","source":"app/companies/acme/projects/p1",
               "type":"TODO_CREATED","time":"2026-11-28T11:00:00+01:00",
               "companyid":"acme","projectid":"p1","datacontenttype":"application/json",
               "data":{"previousValue":null,"currentValue":{"id":"t1","title":"Ship it"}}})
    }

    #[test]
    fn valid_event_is_normalised_to_utc() {
        let e = parse_ingest_body(&sample().to_string(), now()).map_err(|e| e.to_string());
        let e = e.unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(e.id, "evt-8f2c");
        assert_eq!(e.event_type, "TODO_CREATED");
        assert_eq!((e.company_id.as_str(), e.project_id.as_str()), ("acme", "p1"));
        assert_eq!(e.time, "2026-11-28T10:00:00Z");
        assert_eq!(e.data["currentValue"]["title"], "Ship it");
    }

    #[test]
    fn eventbridge_envelope_carries_the_event_in_detail() {
        let body = json!({"version":"0","detail-type":"TODO_CREATED","source":"x","detail":sample()});
        let e = parse_ingest_body(&body.to_string(), now());
        assert_eq!(e.map(|e| e.id), Ok("evt-8f2c".to_owned()));
        let bad = json!({"detail-type":"x","detail":"nope"});
        assert_eq!(parse_ingest_body(&bad.to_string(), now()).map_err(|e| e.code), Err("invalid_envelope"));
        let mut inner = sample();
        inner["type"] = json!("NOPE");
        let err = parse_ingest_body(&json!({"detail-type":"x","detail":inner}).to_string(), now());
        assert_eq!(err.map_err(|e| e.field), Err("detail.type".to_owned()));
    }

    #[test]
    fn a_body_with_a_specversion_is_never_read_as_an_envelope() {
        // GIVEN a valid event of one company carrying envelope fields with another's event
        let mut own = sample();
        let mut other = sample();
        other["companyid"] = json!("victim");
        other["id"] = json!("forged");
        own["detail-type"] = json!("TODO_CREATED");
        own["detail"] = other;
        // WHEN the matcher parses it THEN it is the outer event
        let e = parse_ingest_body(&own.to_string(), now()).map_err(|e| e.to_string());
        assert_eq!(e.map(|e| (e.id, e.company_id)), Ok(("evt-8f2c".to_owned(), "acme".to_owned())));
    }

    #[test]
    fn the_re_serialised_event_parses_to_the_same_event_and_nothing_else() {
        let mut v = sample();
        v["detail-type"] = json!("x");
        v["detail"] = json!({"specversion": "1.0"});
        v["extension"] = json!("ignored");
        let event = validate_event(v, now()).map_err(|e| e.to_string()).unwrap_or_else(|m| panic!("{m}"));
        let body = event.to_ingest_body();
        let value: Value = serde_json::from_str(&body).unwrap_or_default();
        assert!(
            value.get("detail").is_none() && value.get("detail-type").is_none() && value.get("extension").is_none()
        );
        assert_eq!(parse_ingest_body(&body, now()), Ok(event));
    }

    #[test]
    fn missing_time_defaults_to_receipt_and_null_data_is_kept() {
        let mut v = sample();
        let o = v.as_object_mut().unwrap_or_else(|| unreachable!());
        o.remove("time");
        o.remove("data");
        let e = validate_event(v, now()).map_err(|e| e.to_string());
        let e = e.unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(e.time, "2027-01-15T08:00:00Z");
        assert_eq!(e.data, Value::Null);
    }

    #[test]
    fn each_rule_refuses_with_its_code_and_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("specversion", json!("0.3"), "invalid_specversion"),
            ("id", json!(""), "invalid_attribute"),
            ("id", json!("x".repeat(129)), "invalid_attribute"),
            ("id", json!(5), "invalid_attribute"),
            ("source", json!("s".repeat(1025)), "invalid_attribute"),
            ("type", json!("WEBHOOK_HEALTH_CHECK"), "unknown_type"),
            ("type", json!("todo_created"), "unknown_type"),
            ("companyid", json!("ac me"), "invalid_attribute"),
            ("companyid", json!("a".repeat(65)), "invalid_attribute"),
            ("projectid", json!(""), "invalid_attribute"),
            ("projectid", json!("p/1"), "invalid_attribute"),
            ("time", json!("yesterday"), "invalid_time"),
            ("time", json!("2026-11-28 10:00:00"), "invalid_time"),
            ("data", json!([1, 2]), "invalid_data"),
            ("data", json!("text"), "invalid_data"),
        ];
        for (field, value, code) in cases {
            let mut v = sample();
            v[field] = value.clone();
            let got = validate_event(v, now()).map_err(|e| (e.code, e.field));
            assert_eq!(got, Err((code, field.to_owned())), "{field} = {value}");
        }
        for field in ["specversion", "id", "source", "type", "companyid", "projectid"] {
            let mut v = sample();
            v.as_object_mut().map(|o| o.remove(field));
            let got = validate_event(v, now()).map_err(|e| (e.code, e.field));
            assert_eq!(got, Err(("missing_attribute", field.to_owned())), "{field}");
        }
    }

    #[test]
    fn boundaries_are_inclusive() {
        let mut v = sample();
        v["id"] = json!("x".repeat(128));
        v["source"] = json!("s".repeat(1024));
        v["companyid"] = json!("A-z_9".repeat(12) + "abcd");
        assert!(validate_event(v, now()).is_ok());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert_eq!(parse_ingest_body("{not json", now()).map_err(|e| e.code), Err("invalid_json"));
        assert_eq!(parse_ingest_body("[1]", now()).map_err(|e| e.code), Err("not_an_object"));
        let mut v = sample();
        v["data"] = json!({"blob": "x".repeat(MAX_EVENT_BYTES)});
        assert_eq!(validate_event(v, now()).map_err(|e| e.code), Err("too_large"));
    }

    #[test]
    fn data_must_be_storable() {
        let with = |data: Value| {
            let mut v = sample();
            v["data"] = data;
            validate_event(v, now()).map_err(|e| (e.code, e.field))
        };
        // Numbers: DynamoDB's range, 0 included, integers of any size JSON gives
        assert_eq!(with(json!({"n": 1e200})), Err(("invalid_data", "data.n".to_owned())));
        assert_eq!(with(json!({"a": [0, {"b": -1e-131}]})), Err(("invalid_data", "data.a[1].b".to_owned())));
        for ok in [json!(0.0), json!(-1e125), json!(1e-130), json!(u64::MAX), json!(i64::MIN), json!(1.5)] {
            assert!(with(json!({"n": ok})).is_ok(), "{ok}");
        }
        // Nesting: MAX_DATA_DEPTH levels of objects and arrays, counting `data` itself
        // (objects and arrays alternating, the outermost an object as `data` must be)
        let nested = |levels: usize| {
            (1..levels).fold(json!({"leaf": 1}), |inner, i| {
                if (levels - i) % 2 == 1 { json!({"d": inner}) } else { json!([inner]) }
            })
        };
        assert!(with(nested(MAX_DATA_DEPTH)).is_ok());
        assert_eq!(with(nested(MAX_DATA_DEPTH + 1)), Err(("invalid_data", "data".to_owned())));
    }

    #[test]
    fn the_size_limit_is_on_the_event_as_it_is_kept() {
        // GIVEN an event just under the limit as sent, without the attributes it gains
        let mut v = sample();
        v.as_object_mut().map(|o| {
            o.remove("time");
            o.remove("datacontenttype")
        });
        v["data"] = json!({"blob": ""});
        let pad = MAX_EVENT_BYTES - v.to_string().len() - 8;
        v["data"]["blob"] = json!("x".repeat(pad));
        assert!(v.to_string().len() < MAX_EVENT_BYTES);
        // THEN it is refused: re-serialised it would not fit
        assert_eq!(validate_event(v.clone(), now()).map_err(|e| e.code), Err("too_large"));
        // AND an event that fits as kept is accepted, by the API and the matcher alike
        v["data"]["blob"] = json!("x".repeat(pad - 80));
        let event = validate_event(v, now()).map_err(|e| e.to_string());
        let kept = event.map(|e| e.to_ingest_body());
        assert!(kept.as_ref().is_ok_and(|k| k.len() <= MAX_EVENT_BYTES), "{kept:?}");
        assert!(kept.is_ok_and(|k| parse_ingest_body(&k, now()).is_ok()));
    }

    #[test]
    fn unknown_attributes_are_ignored() {
        let mut v = sample();
        v["traceparent"] = json!("00-abc");
        v["subject"] = json!(42);
        assert!(validate_event(v, now()).is_ok());
    }
}
