//! Event schemas (SPEC §10): `GET /v1/event-types/{type}` describes a type's `data` and shows an
//! example delivery, and `POST /v1/webhooks/{id}/test` with `{"event_type"}` sends that example,
//! signed, to a real receiver that verifies it with the official Standard Webhooks library.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use webhooks_core::catalog::SUBSCRIBABLE;
use webhooks_core::catalog::schemas::{self, EXAMPLE_WEBHOOK_ID};
use webhooks_core::signing::webhook_message_id;
use webhooks_tests::{Api, Hook, hook, setup, unique};

const WAIT: Duration = Duration::from_secs(30);

/// A key of its own company (allowed to manage webhooks), with the API and the admin key.
async fn customer() -> Result<(webhooks_tests::Stack, Api, String)> {
    let (stack, api, admin) = setup().await?;
    let company = unique("co");
    let (_, key) = api.create_key(&admin, &[&company], &["manage"]).await?;
    Ok((stack, api, key))
}

/// What `GET /v1/event-types/{type}` must show as the example: the delivery body of the
/// catalog's example event.
fn expected_example(name: &str, webhook_id: &str) -> Result<Value> {
    let described = schemas::describe(name).context("described")?;
    Ok(serde_json::from_str(&described.example_body(webhook_id))?)
}

fn is_message_id(id: &str) -> bool {
    id.len() == 30 && id.starts_with("msg_") && id[4..].bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[tokio::test]
async fn every_type_answers_its_schema_and_an_example_delivery_body() -> Result<()> {
    // GIVEN a key that may only publish (any key may read the catalog)
    let (_stack, api, admin) = setup().await?;
    let (_, key) = api.create_key(&admin, &[&unique("co")], &["publish"]).await?;

    // WHEN one type is asked for
    let r = api.call("GET", "/v1/event-types/TODO_MOVED", Some(&key), None).await?;

    // THEN it comes with its catalog entry, a 2020-12 schema of `data` and a complete example
    assert_eq!(r.status, 200, "{}", r.body);
    let fields: Vec<&str> = r.body.as_object().context("object")?.keys().map(String::as_str).collect();
    assert_eq!(fields.len(), 5, "{fields:?}");
    assert_eq!(r.body["type"], "TODO_MOVED");
    assert_eq!(r.body["group"], "record");
    assert_eq!(r.body["description"], "A record was moved to another list.");
    assert_eq!(r.body["schema"]["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(r.body["schema"]["type"], "object");
    let example = &r.body["example"];
    assert_eq!(example, &expected_example("TODO_MOVED", EXAMPLE_WEBHOOK_ID)?);
    for field in ["type", "timestamp", "event_id", "company_id", "project_id", "webhook_id", "data"] {
        assert!(example.get(field).is_some(), "the example lacks {field}: {example}");
    }
    assert_eq!(example["type"], "TODO_MOVED");
    assert!(example["data"]["previousValue"]["todoListId"].is_string(), "{example}");

    // AND every subscribable type is described, the admin key reading too
    for t in &SUBSCRIBABLE {
        let r = api.call("GET", &format!("/v1/event-types/{}", t.name), Some(&admin), None).await?;
        assert_eq!(r.status, 200, "{}: {}", t.name, r.body);
        assert_eq!(r.body["example"]["type"], t.name);
        assert_eq!(r.body["group"], t.group);
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_type_is_404_and_the_key_is_checked_first() -> Result<()> {
    let (_stack, api, key) = customer().await?;
    for name in ["NOPE", "todo_created", "WEBHOOK_HEALTH_CHECK"] {
        let r = api.call("GET", &format!("/v1/event-types/{name}"), Some(&key), None).await?;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{name}: {}", r.body);
    }
    let r = api.call("GET", "/v1/event-types/TODO_CREATED", None, None).await?;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    let r = api.call("GET", "/v1/event-types/NOPE", None, None).await?;
    assert_eq!(r.status, 401, "401 before 404");
    Ok(())
}

#[tokio::test]
async fn a_typed_test_sends_the_types_example_signed_with_a_fresh_webhook_id() -> Result<()> {
    // GIVEN a webhook to a receiver of its own
    let (_stack, api, key) = customer().await?;
    let Hook { receiver, id, secret } = hook(&api, &key, json!({})).await?;
    let test = format!("/v1/webhooks/{id}/test");

    // WHEN a test of TODO_CREATED is sent, twice
    for _ in 0..2 {
        let r = api.call("POST", &test, Some(&key), Some(json!({"event_type": "TODO_CREATED"}))).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status_code"], 200);
        assert_eq!(r.body["error"], Value::Null);
    }

    // THEN the receiver got the example's body, with this webhook's id, verified with the secret
    let received = receiver.wait_for(2, WAIT).await?;
    assert_eq!(received.len(), 2);
    let example = expected_example("TODO_CREATED", &id)?;
    for r in &received {
        assert_eq!(r.json(), example);
        assert_eq!(r.json()["webhook_id"], id.as_str());
        assert_eq!(r.header("content-type"), "application/json");
    }
    let verified = receiver.verified_event_ids(&secret)?;
    assert_eq!(verified, [example["event_id"].as_str().unwrap_or_default(); 2]);

    // AND each test had a webhook-id of its own, never the one the example event would get
    let (first, second) = (received[0].header("webhook-id"), received[1].header("webhook-id"));
    assert!(is_message_id(first) && is_message_id(second), "{first} {second}");
    assert_ne!(first, second);
    let derived =
        webhook_message_id("acme", "app/companies/acme/projects/p1", example["event_id"].as_str().unwrap_or_default());
    assert!(first != derived && second != derived);

    // AND the delivery log shows the tests under their type
    let log = api.call("GET", &format!("/v1/webhooks/{id}/deliveries"), Some(&key), None).await?;
    let entries = log.body["data"].as_array().context("data")?;
    for message_id in [first, second] {
        let entry = entries.iter().find(|e| e["webhook_message_id"] == message_id).context("logged")?;
        assert_eq!((entry["type"].as_str(), entry["status"].as_str()), (Some("TODO_CREATED"), Some("succeeded")));
    }
    Ok(())
}

#[tokio::test]
async fn a_test_without_a_type_is_the_health_check_and_bad_bodies_send_nothing() -> Result<()> {
    // GIVEN a webhook to a receiver of its own
    let (_stack, api, key) = customer().await?;
    let Hook { receiver, id, .. } = hook(&api, &key, json!({})).await?;
    let test = format!("/v1/webhooks/{id}/test");

    // WHEN the body names no subscribable type, has a field of its own, or is not JSON
    for (body, field) in [
        (json!({"event_type": "NOPE"}), "event_type"),
        (json!({"event_type": "WEBHOOK_HEALTH_CHECK"}), "event_type"),
        (json!({"event_type": 7}), "event_type"),
        (json!({"event_type": "TODO_CREATED", "data": {}}), "data"),
    ] {
        let r = api.call("POST", &test, Some(&key), Some(body.clone())).await?;
        // THEN 400 names the field
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{body}: {}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{body}");
    }
    let r = api.raw("POST", &test, Some(&key), Some("text/plain"), Some(b"TODO_CREATED".to_vec())).await?;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
    let r = api.call("POST", "/v1/webhooks/wh_nope/test", Some(&key), Some(json!({"event_type": "NOPE"}))).await?;
    assert_eq!(r.status, 404, "404 before 400");

    // AND with no body (any or no content type), `{}` or a null type, it is the health check
    let r = api.call("POST", &test, Some(&key), None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.raw("POST", &test, Some(&key), Some("text/plain"), Some(Vec::new())).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    for body in [json!({}), json!({"event_type": null})] {
        let r = api.call("POST", &test, Some(&key), Some(body)).await?;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let received = receiver.wait_for(4, WAIT).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 4, "nothing sent for the refused bodies");
    for r in received {
        assert_eq!(r.json()["type"], "WEBHOOK_HEALTH_CHECK");
        assert!(r.json()["event_id"].as_str().is_some_and(|e| e.starts_with("hc_")));
    }
    Ok(())
}
