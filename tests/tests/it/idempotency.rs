//! Idempotent POSTs (SPEC §10): a create or publish repeated with the same `Idempotency-Key` by
//! the same key gets the first answer and does nothing else, also when the repeats arrive
//! together; the same header with another request is 409; keys are independent; an invalid
//! header is 400; a failed request keeps nothing.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use webhooks_tests::{Api, Receiver, Stack, cloud_event, hook, setup, unique};

const HEADER: &str = "Idempotency-Key";

/// An answer: status, whether it is marked replayed, and its JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    replayed: bool,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// A POST of `body` (as `content_type`) with `key` and, when given, an `Idempotency-Key`.
async fn post(
    api: &Api,
    path: &str,
    key: &str,
    idempotency_key: Option<&[u8]>,
    content_type: &str,
    body: &Value,
) -> Result<Answer> {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", api.base))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(value) = idempotency_key {
        request = request.header(HEADER, reqwest::header::HeaderValue::from_bytes(value)?);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let bytes = response.bytes().await?;
    Ok(Answer { status, replayed, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
}

async fn post_json(api: &Api, path: &str, key: &str, idempotency_key: Option<&str>, body: &Value) -> Result<Answer> {
    post(api, path, key, idempotency_key.map(str::as_bytes), "application/json", body).await
}

/// The ids of the webhooks `key` sees.
async fn webhook_ids(api: &Api, key: &str) -> Result<Vec<String>> {
    let list = api.call("GET", "/v1/webhooks?limit=100", Some(key), None).await?;
    assert_eq!(list.status, 200, "{}", list.body);
    Ok(list.body["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|w| w["id"].as_str().map(str::to_owned))
        .collect())
}

/// A key of a company of its own that manages and publishes: (id, secret).
async fn customer(api: &Api, admin: &str) -> Result<(String, String)> {
    api.create_key(admin, &[&unique("co")], &["manage", "publish"]).await
}

/// The idempotency record of `caller_id`'s `header`, as stored.
async fn record(
    stack: &Stack,
    caller_id: &str,
    header: &str,
) -> Result<std::collections::HashMap<String, AttributeValue>> {
    let table = stack.info.tables.get("SubscriptionsTable").context("SubscriptionsTable")?;
    let pk = format!("IDEM#{caller_id}#{}", webhooks_core::signing::sha256_hex(header));
    let out = stack
        .dynamodb()
        .await
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S("IDEM".into()))
        .consistent_read(true)
        .send()
        .await?;
    out.item.context("no idempotency record")
}

#[tokio::test]
async fn a_retried_webhook_create_returns_the_same_webhook_and_creates_one() -> Result<()> {
    // GIVEN a customer key and a webhook to create
    let (stack, api, admin) = setup().await?;
    let (key_id, key) = customer(&api, &admin).await?;
    let receiver = Receiver::start().await?;
    let body = json!({"url": receiver.url, "name": "orders", "events": ["TODO_CREATED"]});
    let header = unique("create");

    // WHEN it is sent twice with the same Idempotency-Key
    let first = post_json(&api, "/v1/webhooks", &key, Some(&header), &body).await?;
    let second = post_json(&api, "/v1/webhooks", &key, Some(&header), &body).await?;

    // THEN the repeat is the first answer, secret included, marked as replayed
    assert_eq!((first.status, first.replayed), (201, false), "{}", first.body);
    assert_eq!((second.status, second.replayed), (201, true), "{}", second.body);
    assert_eq!(second.body, first.body);
    let id = first.body["id"].as_str().context("id")?;
    assert!(first.body["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    // AND one webhook exists
    assert_eq!(webhook_ids(&api, &key).await?, [id]);
    // AND the kept answer holds the secret only encrypted
    let kept = record(&stack, &key_id, &header).await?;
    let secret = first.body["secret"].as_str().unwrap_or_default().trim_start_matches("whsec_");
    assert!(!format!("{kept:?}").contains(secret), "the secret is kept encrypted only");
    assert!(kept.get("body").and_then(|b| b.as_s().ok()).is_some_and(|b| b.contains(id)));
    assert!(kept.contains_key("sealed"));
    assert!(kept.contains_key("expires_at"), "the record expires (TTL)");
    Ok(())
}

#[tokio::test]
async fn a_retried_key_create_returns_the_same_key_and_creates_one() -> Result<()> {
    // GIVEN the admin key and a key to create, named uniquely
    let (stack, api, admin) = setup().await?;
    let name = unique("idempotent key");
    let body = json!({"name": name, "companies": [unique("co")], "permissions": ["manage"]});
    let header = unique("key");

    // WHEN it is sent twice with the same Idempotency-Key
    let first = post_json(&api, "/v1/api-keys", &admin, Some(&header), &body).await?;
    let second = post_json(&api, "/v1/api-keys", &admin, Some(&header), &body).await?;

    // THEN both answers are the first one, with the same working secret
    assert_eq!((first.status, first.replayed), (201, false), "{}", first.body);
    assert_eq!((second.status, second.replayed), (201, true), "{}", second.body);
    assert_eq!(second.body, first.body);
    let secret = first.body["key"].as_str().context("key")?;
    assert_eq!(api.call("GET", "/v1/me", Some(secret), None).await?.body["id"], first.body["id"]);
    let kept = record(&stack, "key_admin", &header).await?;
    assert!(!format!("{kept:?}").contains(secret.trim_start_matches("whk_")), "the key is kept encrypted only");
    // AND one key has the name
    let mut named = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/api-keys?limit=100&cursor={c}"),
            None => "/v1/api-keys?limit=100".to_owned(),
        };
        let page = api.call("GET", &path, Some(&admin), None).await?;
        named += page.body["data"].as_array().context("data")?.iter().filter(|k| k["name"] == name.as_str()).count();
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(named, 1);
    Ok(())
}

#[tokio::test]
async fn a_retried_publish_enqueues_the_event_once() -> Result<()> {
    // GIVEN a webhook for the key's company, to a receiver of its own
    let (stack, api, admin) = setup().await?;
    let company = unique("co");
    let (_, key) = api.create_key(&admin, &[&company], &["manage", "publish"]).await?;
    let hook = hook(&api, &key, json!({"events": ["TODO_CREATED"]})).await?;
    let event_id = unique("evt-idem");
    let event = cloud_event(&event_id, "TODO_CREATED", &company, "p1");
    let header = unique("publish");

    // WHEN the event is published twice with the same Idempotency-Key
    let ct = "application/cloudevents+json";
    let first = post(&api, "/v1/events", &key, Some(header.as_bytes()), ct, &event).await?;
    let second = post(&api, "/v1/events", &key, Some(header.as_bytes()), ct, &event).await?;

    // THEN both are the first answer
    assert_eq!((first.status, first.replayed, &first.body), (202, false, &json!({"accepted": 1})));
    assert_eq!((second.status, second.replayed, &second.body), (202, true, &json!({"accepted": 1})));
    // AND the receiver gets one delivery, from one ingest message: the matcher never met the
    // event a second time (no duplicate skipped)
    hook.receiver.wait_for(1, Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.receiver.verified_event_ids(&hook.secret)?, [event_id.as_str()]);
    let matcher_lines = stack.function_logs("matcher");
    let seen: Vec<&str> = matcher_lines.lines().filter(|l| l.contains(&event_id)).collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("event fanned out"), "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn the_same_header_with_another_request_is_a_conflict_and_does_nothing() -> Result<()> {
    // GIVEN a webhook created with a header
    let (_stack, api, admin) = setup().await?;
    let company = unique("co");
    let (_, key) = api.create_key(&admin, &[&company], &["manage", "publish"]).await?;
    let receiver = Receiver::start().await?;
    let header = unique("reused");
    let first = post_json(&api, "/v1/webhooks", &key, Some(&header), &json!({"url": receiver.url})).await?;
    assert_eq!(first.status, 201, "{}", first.body);

    // WHEN the header comes again with another body, or on another operation
    let other_body =
        post_json(&api, "/v1/webhooks", &key, Some(&header), &json!({"url": receiver.url, "name": "x"})).await?;
    let event = cloud_event(&unique("evt"), "TODO_CREATED", &company, "p1");
    let other_operation =
        post(&api, "/v1/events", &key, Some(header.as_bytes()), "application/cloudevents+json", &event).await?;

    // THEN each is 409 conflict with the reason, and nothing more was created
    for answer in [&other_body, &other_operation] {
        assert_eq!((answer.status, answer.code()), (409, "conflict"), "{}", answer.body);
        assert_eq!(answer.body["error"]["details"], json!({"reason": "idempotency_key_reused"}));
        assert!(!answer.replayed);
    }
    assert_eq!(webhook_ids(&api, &key).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn keys_are_independent_and_checked_before_any_replay() -> Result<()> {
    // GIVEN two customer keys, and a publish-only key, sending the same header and body
    let (_stack, api, admin) = setup().await?;
    let (_, alice) = customer(&api, &admin).await?;
    let (_, bob) = customer(&api, &admin).await?;
    let (_, publisher) = api.create_key(&admin, &[&unique("co")], &["publish"]).await?;
    let receiver = Receiver::start().await?;
    let body = json!({"url": receiver.url});
    let header = unique("shared");

    // WHEN each creates a webhook with it
    let a = post_json(&api, "/v1/webhooks", &alice, Some(&header), &body).await?;
    let b = post_json(&api, "/v1/webhooks", &bob, Some(&header), &body).await?;

    // THEN each got a webhook of its own, neither a replay
    assert_eq!((a.status, a.replayed, b.status, b.replayed), (201, false, 201, false), "{} {}", a.body, b.body);
    assert_ne!(a.body["id"], b.body["id"]);
    assert_eq!(webhook_ids(&api, &bob).await?.len(), 1);
    // AND a key without the permission, or no valid key, is refused before any replay
    let refused = post_json(&api, "/v1/webhooks", &publisher, Some(&header), &body).await?;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    let unknown = format!("whk_{}", "A".repeat(40));
    let refused = post_json(&api, "/v1/webhooks", &unknown, Some(&header), &body).await?;
    assert_eq!((refused.status, refused.code()), (401, "unauthenticated"));
    Ok(())
}

#[tokio::test]
async fn an_invalid_header_is_400_and_creates_nothing() -> Result<()> {
    let (_stack, api, admin) = setup().await?;
    let (_, key) = customer(&api, &admin).await?;
    let receiver = Receiver::start().await?;
    let long = "k".repeat(256);
    for value in [&b""[..], b"two words", long.as_bytes(), "caf\u{e9}".as_bytes()] {
        let answer =
            post(&api, "/v1/webhooks", &key, Some(value), "application/json", &json!({"url": receiver.url})).await?;
        assert_eq!((answer.status, answer.code()), (400, "validation_failed"), "{value:?}: {}", answer.body);
        assert_eq!(answer.body["error"]["field"], HEADER);
    }
    assert!(webhook_ids(&api, &key).await?.is_empty());
    // The longest valid one is taken.
    let longest = "k".repeat(255);
    assert_eq!(post_json(&api, "/v1/webhooks", &key, Some(&longest), &json!({"url": receiver.url})).await?.status, 201);
    Ok(())
}

#[tokio::test]
async fn a_failed_request_keeps_nothing_and_its_header_can_be_used_again() -> Result<()> {
    // GIVEN a create refused after its checks began (a scope of a company the key lacks)
    let (_stack, api, admin) = setup().await?;
    let (_, key) = customer(&api, &admin).await?;
    let receiver = Receiver::start().await?;
    let header = unique("failed");
    let foreign = json!({"url": receiver.url, "scopes": [{"company_id": unique("foreign")}]});
    let refused = post_json(&api, "/v1/webhooks", &key, Some(&header), &foreign).await?;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // WHEN it is repeated, then corrected under the same header
    let again = post_json(&api, "/v1/webhooks", &key, Some(&header), &foreign).await?;
    let corrected = post_json(&api, "/v1/webhooks", &key, Some(&header), &json!({"url": receiver.url})).await?;

    // THEN the repeat ran again (no replay of the failure) and the correction created the webhook
    assert_eq!((again.status, again.replayed), (403, false));
    assert_eq!((corrected.status, corrected.replayed), (201, false), "{}", corrected.body);
    assert_eq!(webhook_ids(&api, &key).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn concurrent_repeats_create_one_webhook_and_all_get_its_answer() -> Result<()> {
    // GIVEN one create sent five times at once with the same header
    let (_stack, api, admin) = setup().await?;
    let (_, key) = customer(&api, &admin).await?;
    let receiver = Receiver::start().await?;
    let body = json!({"url": receiver.url, "name": "double click"});
    let header = unique("concurrent");
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (api, key, header, body) = (api.clone(), key.clone(), header.clone(), body.clone());
        sends.spawn(async move { post_json(&api, "/v1/webhooks", &key, Some(&header), &body).await });
    }

    // WHEN they all finish
    let answers = sends.join_all().await;

    // THEN one ran and the others waited for its answer (or, had it been slow, were told it is
    // still in progress): one webhook
    let ids = webhook_ids(&api, &key).await?;
    assert_eq!(ids.len(), 1, "{answers:?}");
    let mut first = 0;
    for answer in answers {
        let answer = answer?;
        match (answer.status, answer.replayed) {
            (201, replayed) => {
                assert_eq!(answer.body["id"], ids[0].as_str());
                first += usize::from(!replayed);
            }
            (409, _) => assert_eq!(answer.body["error"]["details"]["reason"], "idempotency_key_in_progress"),
            other => panic!("{other:?}: {}", answer.body),
        }
    }
    assert_eq!(first, 1, "exactly one request ran");
    Ok(())
}
