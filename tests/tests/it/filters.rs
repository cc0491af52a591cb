//! Payload filters (SPEC §10, §4 rule 4) on the local stack: a webhook gets only the events
//! its filters pass; an event they exclude is no delivery at all (nothing sent, logged, parked
//! or counted); a PATCH of the filters applies to the next event; invalid filters are refused
//! with the field at fault.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use webhooks_tests::{Api, Hook, Stack, cloud_event, hook, setup, unique};

/// Time the receivers get to show a delivery that should not have happened, once a webhook
/// without filters received the same events.
const QUIET_PERIOD: Duration = Duration::from_millis(1500);
const ARRIVAL: Duration = Duration::from_secs(20);

/// The shared stack, its API, a new company and a key of it that manages and publishes.
async fn company_key() -> Result<(Stack, Api, String, String)> {
    let (stack, api, admin) = setup().await?;
    let company = unique("acme");
    let (_, key) = api.create_key(&admin, &[&company], &["manage", "publish"]).await?;
    Ok((stack, api, company, key))
}

/// A TODO_CREATED event of `company`/p1 whose `data.currentValue` is `current`.
fn todo(id: &str, company: &str, current: Value) -> Value {
    let mut event = cloud_event(id, "TODO_CREATED", company, "p1");
    event["data"] = json!({"previousValue": null, "currentValue": current});
    event
}

/// The event ids a receiver got, each once.
fn received_ids(h: &Hook) -> BTreeSet<String> {
    h.receiver.received().iter().map(|r| r.json()["event_id"].as_str().unwrap_or_default().to_owned()).collect()
}

fn ids(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Publishes `events`, waits until `witness` (a webhook without filters) has all of them, then
/// a quiet period: by then every other webhook has what it will get.
async fn publish_and_settle(api: &Api, key: &str, witness: &Hook, events: &[Value]) -> Result<()> {
    let before = witness.receiver.received().len();
    let published = api.publish(key, events).await?;
    assert_eq!(published.status, 202, "{}", published.body);
    witness.receiver.wait_for(before + events.len(), ARRIVAL).await?;
    tokio::time::sleep(QUIET_PERIOD).await;
    Ok(())
}

async fn log_of(api: &Api, key: &str, id: &str) -> Result<Vec<Value>> {
    let r = api.call("GET", &format!("/v1/webhooks/{id}/deliveries"), Some(key), None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(r.body["data"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn each_webhook_gets_only_the_events_its_filters_pass() -> Result<()> {
    // GIVEN webhooks on one company: one without filters, one for open records, one for 3 or
    // 1e300 points (a number DynamoDB could not hold as a number), and one on a field the
    // events do not have
    let (_stack, api, acme, key) = company_key().await?;
    let all = hook(&api, &key, json!({})).await?;
    let open = hook(
        &api,
        &key,
        json!({"filters": [{"path": "data.currentValue.status", "op": "eq", "value": "open"},
                           {"path": "type", "op": "prefix", "value": "TODO_"}]}),
    )
    .await?;
    let points =
        hook(&api, &key, json!({"filters": [{"path": "data.currentValue.points", "op": "in", "value": [1e300, 3]}]}))
            .await?;
    let absent =
        hook(&api, &key, json!({"filters": [{"path": "data.currentValue.priority", "op": "eq", "value": null}]}))
            .await?;
    let shown = api.call("GET", &format!("/v1/webhooks/{}", points.id), Some(&key), None).await?;
    assert_eq!(shown.body["filters"], json!([{"path": "data.currentValue.points", "op": "in", "value": [1e300, 3]}]));

    // WHEN an open record with 3 points and a closed one with "3" (text) points are published
    let (e_open, e_closed) = (unique("open"), unique("closed"));
    let events = [
        todo(&e_open, &acme, json!({"id": "t1", "status": "open", "points": 3})),
        todo(&e_closed, &acme, json!({"id": "t2", "status": "closed", "points": "3"})),
    ];
    publish_and_settle(&api, &key, &all, &events).await?;

    // THEN each webhook received exactly the events its filters pass
    assert_eq!(received_ids(&all), ids(&[&e_open, &e_closed]));
    assert_eq!(received_ids(&open), ids(&[&e_open]), "status is open");
    assert_eq!(received_ids(&points), ids(&[&e_open]), "a number, not its text");
    assert!(received_ids(&absent).is_empty(), "a missing path fails eq, even eq null");
    // AND an excluded event is no delivery: not logged, not parked, not counted as dropped
    let logged: BTreeSet<String> = log_of(&api, &key, &open.id)
        .await?
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(logged, ids(&[&e_open]));
    assert_eq!(log_of(&api, &key, &absent.id).await?, Vec::<Value>::new());
    let view = api.call("GET", &format!("/v1/webhooks/{}", absent.id), Some(&key), None).await?;
    assert_eq!((view.body["parked"].clone(), view.body["health"]["dropped"].clone()), (json!(0), json!({})));
    assert_eq!(view.body["health"]["consecutive_failures"], 0);
    Ok(())
}

#[tokio::test]
async fn filters_changed_by_patch_apply_to_the_next_event() -> Result<()> {
    // GIVEN a webhook for open records, and a witness without filters
    let (_stack, api, acme, key) = company_key().await?;
    let witness = hook(&api, &key, json!({})).await?;
    let filtered =
        hook(&api, &key, json!({"filters": [{"path": "data.currentValue.status", "op": "eq", "value": "open"}]}))
            .await?;
    let e1 = unique("done-1");
    publish_and_settle(&api, &key, &witness, &[todo(&e1, &acme, json!({"status": "done"}))]).await?;
    assert!(received_ids(&filtered).is_empty(), "done is not open");

    // WHEN its filters are replaced by "status is done or closed"
    let path = format!("/v1/webhooks/{}", filtered.id);
    let to_done = json!([{"path": "data.currentValue.status", "op": "in", "value": ["done", "closed"]}]);
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"filters": to_done}))).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["filters"], to_done);
    // THEN the next events follow the new filters at once
    let (e2, e3) = (unique("done-2"), unique("open-3"));
    let events = [todo(&e2, &acme, json!({"status": "done"})), todo(&e3, &acme, json!({"status": "open"}))];
    publish_and_settle(&api, &key, &witness, &events).await?;
    assert_eq!(received_ids(&filtered), ids(&[&e2]));

    // AND a PATCH of other fields keeps them
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"name": "renamed"}))).await?;
    assert_eq!((r.status, r.body["filters"].clone()), (200, to_done));

    // AND emptied, there are none: every event is sent again
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"filters": []}))).await?;
    assert_eq!((r.status, r.body["filters"].clone()), (200, json!([])));
    let e4 = unique("open-4");
    publish_and_settle(&api, &key, &witness, &[todo(&e4, &acme, json!({"status": "open"}))]).await?;
    assert_eq!(received_ids(&filtered), ids(&[&e2, &e4]));
    Ok(())
}

#[tokio::test]
async fn invalid_filters_are_refused_with_the_field_and_change_nothing() -> Result<()> {
    // GIVEN a key with one webhook that has a filter
    let (_stack, api, _acme, key) = company_key().await?;
    let kept = json!([{"path": "data.currentValue.status", "op": "exists"}]);
    let existing = hook(&api, &key, json!({"filters": kept})).await?;
    let exists = |path: &str| json!({"path": path, "op": "exists"});
    let eleven: Vec<Value> = (0..11).map(|_| exists("data.x")).collect();
    let cases = [
        (json!(null), "filters"),
        (json!({"path": "type"}), "filters"),
        (Value::Array(eleven), "filters"),
        (json!([exists("type"), exists("data.x"), {"path": "type", "op": "ne", "value": "x"}]), "filters[2].op"),
        (json!([{"op": "eq", "value": 1}]), "filters[0].path"),
        (json!([exists("data..status")]), "filters[0].path"),
        (json!([exists("status")]), "filters[0].path"),
        (json!([exists("type.name")]), "filters[0].path"),
        (json!([exists("data.a.b.c.d.e.f.g.h")]), "filters[0].path"),
        (json!([{"path": "data.s", "op": "eq"}]), "filters[0].value"),
        (json!([{"path": "data.s", "op": "eq", "value": {"a": 1}}]), "filters[0].value"),
        (json!([{"path": "data.s", "op": "in", "value": []}]), "filters[0].value"),
        (json!([{"path": "data.s", "op": "in", "value": ["a", ["b"]]}]), "filters[0].value[1]"),
        (json!([{"path": "data.s", "op": "prefix", "value": 1}]), "filters[0].value"),
        (json!([exists("data.s"), {"path": "data.s", "op": "exists", "value": true}]), "filters[1].value"),
        (json!([{"path": "data.s", "op": "exists", "extra": 1}]), "filters[0].extra"),
    ];
    let url = existing.receiver.url.clone();
    let path = format!("/v1/webhooks/{}", existing.id);
    for (filters, field) in cases {
        // WHEN a webhook is created with them THEN 400 naming the field, and nothing is created
        let r = api.call("POST", "/v1/webhooks", Some(&key), Some(json!({"url": url, "filters": filters}))).await?;
        assert_eq!(
            (r.status, r.code(), r.body["error"]["field"].as_str()),
            (400, "validation_failed", Some(field)),
            "create {filters}"
        );
        // AND a PATCH with them is refused the same way
        let r = api.call("PATCH", &path, Some(&key), Some(json!({"filters": filters}))).await?;
        assert_eq!(
            (r.status, r.code(), r.body["error"]["field"].as_str()),
            (400, "validation_failed", Some(field)),
            "patch {filters}"
        );
    }
    // THEN the key still has its one webhook, with its filter unchanged
    let list = api.call("GET", "/v1/webhooks", Some(&key), None).await?;
    let data = list.body["data"].as_array().context("data")?;
    assert_eq!(data.len(), 1, "{}", list.body);
    assert_eq!(data[0]["filters"], kept);
    Ok(())
}
