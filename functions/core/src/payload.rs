//! The delivery request body (SPEC §5), in its documented field order.

use serde::Serialize;
use serde_json::Value;

use crate::catalog::HEALTH_CHECK;
use crate::event::Event;

#[derive(Debug, Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: &'a str,
    event_id: &'a str,
    company_id: Option<&'a str>,
    project_id: Option<&'a str>,
    webhook_id: &'a str,
    data: &'a Value,
}

/// The body sent to a webhook for an event.
pub fn delivery_body(event: &Event, webhook_id: &str) -> String {
    serde_json::to_string(&Body {
        event_type: &event.event_type,
        timestamp: &event.time,
        event_id: &event.id,
        company_id: Some(&event.company_id),
        project_id: Some(&event.project_id),
        webhook_id,
        data: &event.data,
    })
    .unwrap_or_default()
}

/// The body of a `WEBHOOK_HEALTH_CHECK` (no company, no project, empty data).
pub fn health_check_body(event_id: &str, timestamp: &str, webhook_id: &str) -> String {
    serde_json::to_string(&Body {
        event_type: HEALTH_CHECK,
        timestamp,
        event_id,
        company_id: None,
        project_id: None,
        webhook_id,
        data: &Value::Object(serde_json::Map::new()),
    })
    .unwrap_or_default()
}

/// The headers of a signed delivery request (SPEC §5), custom headers first so they can
/// never replace the ones the signature depends on.
pub fn request_headers(
    custom: &std::collections::BTreeMap<String, String>,
    webhook_message_id: &str,
    timestamp: i64,
    body: &str,
    keys: &[crate::signing::SigningKey],
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = custom.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    headers.push(("content-type".into(), "application/json".into()));
    headers.push(("webhook-id".into(), webhook_message_id.to_owned()));
    headers.push(("webhook-timestamp".into(), timestamp.to_string()));
    headers.push((
        "webhook-signature".into(),
        crate::signing::signature_header(keys, webhook_message_id, timestamp, body.as_bytes()),
    ));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_body_has_the_documented_fields_in_order() {
        let event = Event {
            id: "evt-8f2c".into(),
            source: "app/x".into(),
            event_type: "TODO_CREATED".into(),
            company_id: "acme".into(),
            project_id: "p1".into(),
            time: "2026-11-28T10:00:00Z".into(),
            data: json!({"currentValue": {"id": "t1"}}),
        };
        assert_eq!(
            delivery_body(&event, "wh_1"),
            r#"{"type":"TODO_CREATED","timestamp":"2026-11-28T10:00:00Z","event_id":"evt-8f2c","company_id":"acme","project_id":"p1","webhook_id":"wh_1","data":{"currentValue":{"id":"t1"}}}"#
        );
    }

    #[test]
    fn health_check_body_has_null_tenant_and_empty_data() {
        let body: Value =
            serde_json::from_str(&health_check_body("hc_1", "2026-11-28T10:00:00Z", "wh_1")).unwrap_or_default();
        assert_eq!(
            body,
            json!({"type":"WEBHOOK_HEALTH_CHECK","timestamp":"2026-11-28T10:00:00Z","event_id":"hc_1",
                   "company_id":null,"project_id":null,"webhook_id":"wh_1","data":{}})
        );
    }
}
