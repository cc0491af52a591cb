//! The pipeline end to end on the local stack: events in (HTTP, SQS, EventBridge envelope),
//! matched precisely, delivered signed to real receivers that verify with the official
//! Standard Webhooks library.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use webhooks_core::signing::webhook_message_id;
use webhooks_tests::{Api, Hook, Receiver, Stack, cloud_event, hook, setup, unique, wait_for_marker};

/// Time the receivers get to show an extra delivery that should not have happened, after the
/// expected ones arrived.
const QUIET_PERIOD: Duration = Duration::from_millis(1500);
const ARRIVAL: Duration = Duration::from_secs(20);

/// The shared stack, its API, and a new company `acme` with a key allowed `permissions`.
async fn acme_key(permissions: &[&str]) -> Result<(Stack, Api, String, String)> {
    let (stack, api, admin) = setup().await?;
    let acme = unique("acme");
    let (_, key) = api.create_key(&admin, &[&acme], permissions).await?;
    Ok((stack, api, acme, key))
}

/// Waits for `expected` at every hook, then a quiet period, then asserts exact sets.
async fn assert_exact(hooks: &BTreeMap<&str, &Hook>, expected: &BTreeMap<&str, Vec<&str>>) -> Result<()> {
    for (name, h) in hooks {
        let n = expected.get(name).map_or(0, Vec::len);
        if n > 0 {
            h.receiver.wait_for(n, ARRIVAL).await.with_context(|| format!("webhook {name}"))?;
        }
    }
    tokio::time::sleep(QUIET_PERIOD).await;
    for (name, h) in hooks {
        let got: BTreeSet<String> = h.receiver.verified_event_ids(&h.secret)?.into_iter().collect();
        let want: BTreeSet<String> = expected.get(name).into_iter().flatten().map(|s| (*s).to_owned()).collect();
        assert_eq!(got, want, "webhook {name} received exactly its events");
        assert_eq!(h.receiver.received().len(), want.len(), "webhook {name}: each event once");
    }
    Ok(())
}

#[tokio::test]
async fn every_webhook_receives_exactly_its_events_signed() -> Result<()> {
    // GIVEN a key holding two companies and another holding one of them
    let (stack, api, admin) = setup().await?;
    let (acme, globex) = (unique("acme"), unique("globex"));
    let (_, a) = api.create_key(&admin, &[&acme, &globex], &["manage", "publish"]).await?;
    let (_, b) = api.create_key(&admin, &[&acme], &["manage"]).await?;

    // AND webhooks with different selections
    let w1 = hook(&api, &a, json!({"events": ["TODO_CREATED"], "scopes": [{"company_id": acme, "project_id": "p1"}]}))
        .await?;
    let w2 = hook(&api, &a, json!({"scopes": [{"company_id": globex}]})).await?;
    let w3 = hook(
        &api,
        &a,
        json!({"events": ["COMMENT_CREATED", "TODO_CREATED"],
        "scopes": [{"company_id": acme, "project_id": "p2"}, {"company_id": globex, "project_id": "g1"}]}),
    )
    .await?;
    let w4 = hook(&api, &a, json!({})).await?;
    let w5 = hook(&api, &b, json!({"events": ["TODO_CREATED"], "headers": {"X-Tenant": "b"}})).await?;

    // WHEN events arrive by HTTP (one batch), by SQS and by an EventBridge envelope
    let e = |n: &str| unique(n);
    let (e1, e2, e3, e4, e5, e6, e7, e8) = (e("e1"), e("e2"), e("e3"), e("e4"), e("e5"), e("e6"), e("e7"), e("e8"));
    let published = api
        .publish(
            &a,
            &[
                cloud_event(&e1, "TODO_CREATED", &acme, "p1"),
                cloud_event(&e2, "TODO_CREATED", &acme, "p2"),
                cloud_event(&e3, "COMMENT_CREATED", &globex, "g1"),
                cloud_event(&e4, "TAG_CREATED", &globex, "g2"),
                cloud_event(&e5, "TODO_DELETED", &acme, "p1"),
                cloud_event(&e6, "COMMENT_CREATED", &acme, "p9"),
            ],
        )
        .await?;
    assert_eq!(published.status, 202, "{}", published.body);
    let sqs = stack.sqs().await;
    sqs.send_message()
        .queue_url(&stack.info.ingest_queue_url)
        .message_body(cloud_event(&e7, "TODO_CREATED", &acme, "p1").to_string())
        .send()
        .await?;
    let envelope = json!({"version": "0", "id": "eb-1", "detail-type": "TAG_DELETED", "source": "app",
        "detail": cloud_event(&e8, "TAG_DELETED", &globex, "g9")});
    sqs.send_message().queue_url(&stack.info.ingest_queue_url).message_body(envelope.to_string()).send().await?;

    // THEN each webhook receives exactly the events that are for it, each verified
    let hooks = BTreeMap::from([("w1", &w1), ("w2", &w2), ("w3", &w3), ("w4", &w4), ("w5", &w5)]);
    let expected = BTreeMap::from([
        ("w1", vec![e1.as_str(), e7.as_str()]),
        ("w2", vec![e3.as_str(), e4.as_str(), e8.as_str()]),
        ("w3", vec![e2.as_str(), e3.as_str()]),
        (
            "w4",
            vec![
                e1.as_str(),
                e2.as_str(),
                e3.as_str(),
                e4.as_str(),
                e5.as_str(),
                e6.as_str(),
                e7.as_str(),
                e8.as_str(),
            ],
        ),
        ("w5", vec![e1.as_str(), e2.as_str(), e7.as_str()]),
    ]);
    assert_exact(&hooks, &expected).await?;

    // AND the request is the documented one
    let r = w1.receiver.received().into_iter().find(|r| r.json()["event_id"] == e1.as_str()).context("e1 at w1")?;
    let source = format!("app/companies/{acme}/projects/p1");
    assert_eq!(r.header("webhook-id"), webhook_message_id(&acme, &source, &e1));
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("granular-webhooks/"));
    assert_eq!(
        r.json(),
        json!({"type": "TODO_CREATED", "timestamp": "2026-11-28T10:00:00Z", "event_id": e1, "company_id": acme,
               "project_id": "p1", "webhook_id": w1.id, "data": {"currentValue": {"id": e1}}})
    );
    // AND the same event carries the same webhook-id to every webhook
    let at_w4 = w4.receiver.received().into_iter().find(|r| r.json()["event_id"] == e1.as_str()).context("e1 at w4")?;
    assert_eq!(at_w4.header("webhook-id"), r.header("webhook-id"));
    // AND custom headers are sent
    assert!(w5.receiver.received().iter().all(|r| r.header("x-tenant") == "b"));
    Ok(())
}

#[tokio::test]
async fn the_matchers_query_returns_only_entries_of_the_batchs_event_types() -> Result<()> {
    // GIVEN webhooks on one project selecting different event types, and one taking every type
    let (stack, api, acme, key) = acme_key(&["manage"]).await?;
    let scopes = json!([{"company_id": acme, "project_id": "p1"}]);
    let receiver = Receiver::start().await?;
    let mut ids = BTreeMap::new();
    for (name, events) in [
        ("todo", json!(["TODO_CREATED"])),
        ("tags_comments", json!(["TAG_CREATED", "COMMENT_CREATED"])),
        ("every_type", json!([])),
        ("deleted", json!(["TODO_DELETED"])),
    ] {
        let created =
            api.create_webhook(&key, json!({"url": receiver.url, "events": events, "scopes": scopes})).await?;
        ids.insert(created["id"].as_str().context("id")?.to_owned(), name);
    }
    let table = stack.info.tables.get("SubscriptionsTable").context("SubscriptionsTable")?;
    let store = webhooks_aws::dynamodb::DynamoDbSubscriptions::new(stack.dynamodb().await, table.clone());
    let partition = webhooks_core::matching::project_partition(&acme, "p1");
    // (the batch's event types in the project, the webhooks the Query returns)
    let cases: [(&[&str], &[&str]); 4] = [
        (&["TODO_CREATED", "COMMENT_CREATED"], &["every_type", "tags_comments", "todo"]),
        (&["TODO_MOVED"], &["every_type"]),
        (&["TODO_DELETED", "TAG_CREATED", "TODO_CREATED"], &["deleted", "every_type", "tags_comments", "todo"]),
        (&[], &["deleted", "every_type", "tags_comments", "todo"]),
    ];
    for (types, expected) in cases {
        // WHEN the matcher queries the project's partition for a batch with these types
        let types: BTreeSet<&str> = types.iter().copied().collect();
        let entries = store.index_entries(&partition, &types).await?;
        // THEN it gets exactly the entries that select one of them or every type
        let mut got: Vec<&str> = entries.iter().filter_map(|e| ids.get(&e.webhook_id).copied()).collect();
        got.sort_unstable();
        assert_eq!(got, expected, "{types:?}");
        assert_eq!(entries.len(), got.len(), "no entry of another webhook");
    }
    Ok(())
}

#[tokio::test]
async fn a_webhook_change_applies_to_the_very_next_event() -> Result<()> {
    let (_stack, api, acme, key) = acme_key(&["manage", "publish"]).await?;
    let w = hook(&api, &key, json!({"events": ["TODO_CREATED"]})).await?;

    // GIVEN the webhook switched from TODO_CREATED to TODO_DELETED
    let r = api
        .call("PATCH", &format!("/v1/webhooks/{}", w.id), Some(&key), Some(json!({"events": ["TODO_DELETED"]})))
        .await?;
    assert_eq!(r.status, 200);
    // WHEN both kinds are published right after
    let (created, deleted) = (unique("created"), unique("deleted"));
    api.publish(
        &key,
        &[cloud_event(&created, "TODO_CREATED", &acme, "p"), cloud_event(&deleted, "TODO_DELETED", &acme, "p")],
    )
    .await?;
    // THEN only the new selection is delivered
    assert_exact(&BTreeMap::from([("w", &w)]), &BTreeMap::from([("w", vec![deleted.as_str()])])).await?;

    // AND after deletion nothing more arrives
    assert_eq!(api.call("DELETE", &format!("/v1/webhooks/{}", w.id), Some(&key), None).await?.status, 204);
    api.publish(&key, &[cloud_event(&unique("late"), "TODO_DELETED", &acme, "p")]).await?;
    tokio::time::sleep(QUIET_PERIOD).await;
    assert_eq!(w.receiver.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_duplicate_event_fans_out_once() -> Result<()> {
    let (stack, api, acme, key) = acme_key(&["manage", "publish"]).await?;
    let w = hook(&api, &key, json!({})).await?;

    // WHEN the same (source, id) arrives twice in one batch, again by HTTP, and again by SQS
    let id = unique("dup");
    let event = cloud_event(&id, "TODO_CREATED", &acme, "p1");
    assert_eq!(api.publish(&key, &[event.clone(), event.clone()]).await?.status, 202);
    assert_eq!(api.publish(&key, std::slice::from_ref(&event)).await?.status, 202);
    stack
        .sqs()
        .await
        .send_message()
        .queue_url(&stack.info.ingest_queue_url)
        .message_body(event.to_string())
        .send()
        .await?;

    // THEN the webhook receives it once
    assert_exact(&BTreeMap::from([("w", &w)]), &BTreeMap::from([("w", vec![id.as_str()])])).await?;
    Ok(())
}

#[tokio::test]
async fn a_malformed_message_is_dead_lettered_and_its_batch_mates_are_delivered() -> Result<()> {
    let (stack, api, acme, key) = acme_key(&["manage"]).await?;
    let w = hook(&api, &key, json!({})).await?;

    // WHEN one batch carries a malformed event between two good ones
    let (good1, good2, bad) = (unique("good"), unique("good"), unique("bad"));
    let mut malformed = cloud_event(&bad, "NOT_A_TYPE", &acme, "p1");
    malformed["marker"] = json!(bad);
    let entries =
        [cloud_event(&good1, "TODO_CREATED", &acme, "p1"), malformed, cloud_event(&good2, "TAG_CREATED", &acme, "p2")]
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body.to_string())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
    let sqs = stack.sqs().await;
    sqs.send_message_batch().queue_url(&stack.info.ingest_queue_url).set_entries(Some(entries)).send().await?;

    // THEN the good ones are delivered
    assert_exact(&BTreeMap::from([("w", &w)]), &BTreeMap::from([("w", vec![good1.as_str(), good2.as_str()])])).await?;
    // AND the bad one is in the ingest DLQ with its reason and detail
    let attributes = wait_for_marker(&stack, &stack.info.ingest_dlq_url, &bad, ARRIVAL).await?;
    assert_eq!(attributes.get("reason").map(String::as_str), Some("unknown_type"));
    let detail = attributes.get("detail").map(String::as_str).unwrap_or_default();
    assert!(detail.starts_with("type:"), "{detail}");
    // AND it is counted in a metric CloudWatch extracts from the matcher's log
    let counted = stack.metric_logged("matcher", "RejectedEvents", "unknown_type");
    assert!(counted, "no RejectedEvents line in Embedded Metric Format");
    Ok(())
}

#[tokio::test]
async fn one_companys_event_ids_never_suppress_anothers() -> Result<()> {
    // GIVEN two companies, each with a publisher, and a webhook of the victim's
    let (_stack, api, admin) = setup().await?;
    let (victim, attacker) = (unique("victim"), unique("attacker"));
    let (_, victim_key) = api.create_key(&admin, &[&victim], &["manage", "publish"]).await?;
    let (_, attacker_key) = api.create_key(&admin, &[&attacker], &["manage", "publish"]).await?;
    let w = hook(&api, &victim_key, json!({})).await?;
    let a = hook(&api, &attacker_key, json!({})).await?;

    // WHEN the attacker first publishes, for its own company, the (source, id) the victim is
    // about to use, and then the victim publishes its real event
    let id = unique("evt");
    let mut squatted = cloud_event(&id, "TODO_CREATED", &victim, "p1");
    squatted["companyid"] = json!(attacker);
    assert_eq!(api.publish(&attacker_key, &[squatted.clone()]).await?.status, 202);
    a.receiver.wait_for(1, ARRIVAL).await?;
    let real = cloud_event(&id, "TODO_CREATED", &victim, "p1");
    assert_eq!(api.publish(&victim_key, &[real]).await?.status, 202);

    // THEN the victim's webhook receives its event, once
    assert_exact(
        &BTreeMap::from([("w", &w), ("a", &a)]),
        &BTreeMap::from([("w", vec![id.as_str()]), ("a", vec![id.as_str()])]),
    )
    .await?;
    // AND the two events have different webhook-ids, each derived with its company
    let source = format!("app/companies/{victim}/projects/p1");
    let (at_w, at_a) = (&w.receiver.received()[0], &a.receiver.received()[0]);
    assert_eq!(at_w.json()["company_id"], victim.as_str());
    assert_eq!(at_w.header("webhook-id"), webhook_message_id(&victim, &source, &id));
    assert_eq!(at_a.header("webhook-id"), webhook_message_id(&attacker, &source, &id));
    Ok(())
}

/// Trust issue, defect 6: every accepted event can be stored, queued, delivered once and
/// logged; what cannot be is refused at the door.
#[tokio::test]
async fn events_that_storage_or_queues_would_refuse_are_refused_at_the_door_or_delivered_once() -> Result<()> {
    let (stack, api, acme, key) = acme_key(&["manage", "publish"]).await?;
    let w = hook(&api, &key, json!({})).await?;
    let with_data = |data: Value| {
        let mut e = cloud_event(&unique("e"), "TODO_CREATED", &acme, "p1");
        e["data"] = data;
        e
    };

    // GIVEN events DynamoDB could not store: a number beyond its range, data nested too deep
    let mut deep = json!({"leaf": true});
    for _ in 0..40 {
        deep = json!({"d": deep});
    }
    for (event, field) in [
        (with_data(json!({"n": 1e200})), "[0].data.n"),
        (with_data(json!({"list": [1, 2, 1e-200]})), "[0].data.list[2]"),
        (with_data(deep), "[0].data"),
    ] {
        // WHEN they are published THEN they are refused with the field, and nothing is enqueued
        let r = api.publish(&key, &[event]).await?;
        assert_eq!(
            (r.status, r.code(), r.body["error"]["field"].as_str()),
            (400, "validation_failed", Some(field)),
            "{}",
            r.body
        );
    }

    // GIVEN an event whose size as enqueued would pass 256 KiB though the caller's JSON does not
    let mut big = with_data(json!({"blob": ""}));
    big.as_object_mut().map(|o| {
        o.remove("time");
        o.remove("datacontenttype")
    });
    let pad = 256 * 1024 - big.to_string().len() - 8;
    big["data"]["blob"] = json!("x".repeat(pad));
    assert!(big.to_string().len() < 256 * 1024);
    let r = api.publish(&key, &[big]).await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("[0]")), "{}", r.body);

    // GIVEN events with characters SQS refuses in a message, by HTTP and from the ingest queue
    let odd = "a\u{FFFF}b\u{FFFE}c\u{1}d";
    let by_http = with_data(json!({"s": odd}));
    let by_sqs = with_data(json!({"s": odd}));
    assert_eq!(api.publish(&key, std::slice::from_ref(&by_http)).await?.status, 202);
    // (escaped as JSON, so that the queue accepts the body)
    let escaped = by_sqs.to_string().replace('\u{FFFF}', "\\uffff").replace('\u{FFFE}', "\\ufffe");
    stack.sqs().await.send_message().queue_url(&stack.info.ingest_queue_url).message_body(escaped).send().await?;
    // THEN each is delivered once, with its data intact, and logged
    let ids = [by_http["id"].as_str().unwrap_or_default(), by_sqs["id"].as_str().unwrap_or_default()];
    assert_exact(&BTreeMap::from([("w", &w)]), &BTreeMap::from([("w", ids.to_vec())])).await?;
    assert!(w.receiver.received().iter().all(|r| r.json()["data"]["s"] == odd));
    for id in ids {
        let log = webhooks_tests::eventually(ARRIVAL, "the log entry", || {
            let api = api.clone();
            let (key, hook_id) = (key.clone(), w.id.clone());
            async move {
                let r = api
                    .call("GET", &format!("/v1/webhooks/{hook_id}/deliveries?event_id={id}"), Some(&key), None)
                    .await?;
                Ok(r.body["data"].as_array().filter(|d| !d.is_empty()).cloned())
            }
        })
        .await?;
        assert_eq!(log[0]["status"], "succeeded");
    }
    Ok(())
}

#[tokio::test]
async fn a_failed_attempt_is_retried_with_the_same_webhook_id() -> Result<()> {
    let (_stack, api, acme, key) = acme_key(&["manage", "publish"]).await?;
    let w = hook(&api, &key, json!({})).await?;
    // GIVEN a receiver that fails twice, then recovers
    w.receiver.respond_with(&[500, 503]);

    let id = unique("retry");
    api.publish(&key, &[cloud_event(&id, "TODO_CREATED", &acme, "p1")]).await?;

    // THEN it gets three attempts, spaced by the 1 s schedule, all with one webhook-id
    let got = w.receiver.wait_for(3, ARRIVAL).await?;
    let ids: BTreeSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1);
    for pair in got.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(700), "retries are spaced by the schedule");
    }
    tokio::time::sleep(QUIET_PERIOD).await;
    assert_eq!(w.receiver.received().len(), 3, "no attempt after the success");
    Ok(())
}

#[tokio::test]
async fn the_owner_keys_companies_decide_what_flows() -> Result<()> {
    // GIVEN a publisher for two companies, and an owner key holding only acme with a webhook
    // for everything it holds
    let (_stack, api, admin) = setup().await?;
    let (acme, globex) = (unique("acme"), unique("globex"));
    let (_, publisher) = api.create_key(&admin, &[&acme, &globex], &["publish"]).await?;
    let (owner_id, owner) = api.create_key(&admin, &[&acme], &["manage"]).await?;
    let all = hook(&api, &owner, json!({})).await?;
    let pinned = hook(&api, &owner, json!({"scopes": [{"company_id": acme, "project_id": "p1"}]})).await?;

    // WHEN the key gains globex and loses acme
    let r = api
        .call("PATCH", &format!("/v1/api-keys/{owner_id}"), Some(&admin), Some(json!({"companies": [globex]})))
        .await?;
    assert_eq!(r.status, 200);
    let (to_acme, to_globex) = (unique("acme-ev"), unique("globex-ev"));
    api.publish(
        &publisher,
        &[cloud_event(&to_acme, "TODO_CREATED", &acme, "p1"), cloud_event(&to_globex, "TODO_CREATED", &globex, "g")],
    )
    .await?;

    // THEN the webhook without scopes follows the key to globex, and nothing of acme flows
    assert_exact(
        &BTreeMap::from([("all", &all), ("pinned", &pinned)]),
        &BTreeMap::from([("all", vec![to_globex.as_str()])]),
    )
    .await?;

    // AND once the key is deleted, its webhooks are gone and nothing flows
    assert_eq!(api.call("DELETE", &format!("/v1/api-keys/{owner_id}"), Some(&admin), None).await?.status, 204);
    assert_eq!(api.call("GET", &format!("/v1/webhooks/{}", all.id), Some(&admin), None).await?.status, 404);
    api.publish(&publisher, &[cloud_event(&unique("after"), "TODO_CREATED", &globex, "g")]).await?;
    tokio::time::sleep(QUIET_PERIOD).await;
    assert_eq!(all.receiver.received().len(), 1);
    Ok(())
}

/// Trust issue, defect 8: a key's new companies saved, but the reindex of its webhooks
/// interrupted. Repeating the same PATCH completes it.
#[tokio::test]
async fn repeating_a_key_patch_completes_an_interrupted_reindex() -> Result<()> {
    // GIVEN a key holding acme, with a webhook for every company it holds
    let (stack, api, admin) = setup().await?;
    let (acme, globex) = (unique("acme"), unique("globex"));
    let (_, publisher) = api.create_key(&admin, &[&acme, &globex], &["publish"]).await?;
    let (owner_id, owner) = api.create_key(&admin, &[&acme], &["manage"]).await?;
    let all = hook(&api, &owner, json!({})).await?;
    // AND its companies changed to globex in the store, with no reindex after it (as when the
    // API stopped between saving the key and moving the webhook's index entries)
    let table = stack.info.tables.get("SubscriptionsTable").context("SubscriptionsTable")?;
    stack
        .dynamodb()
        .await
        .update_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("KEY#{owner_id}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("KEY".into()))
        .update_expression("SET companies = :c")
        .expression_attribute_values(
            ":c",
            aws_sdk_dynamodb::types::AttributeValue::L(vec![aws_sdk_dynamodb::types::AttributeValue::S(
                globex.clone(),
            )]),
        )
        .send()
        .await?;

    // WHEN the admin repeats the PATCH
    let r = api
        .call("PATCH", &format!("/v1/api-keys/{owner_id}"), Some(&admin), Some(json!({"companies": [globex]})))
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);

    // THEN the webhook follows the key to globex
    let event = unique("globex-ev");
    api.publish(&publisher, &[cloud_event(&event, "TODO_CREATED", &globex, "g")]).await?;
    assert_exact(&BTreeMap::from([("all", &all)]), &BTreeMap::from([("all", vec![event.as_str()])])).await?;
    Ok(())
}
