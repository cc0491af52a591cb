//! Rate limits (SPEC §10): a webhook's `rate_limit`, held across execution environments with
//! the deliveries held back waiting (not failing), and the publish limit per key.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use webhooks_tests::{Api, Stack, cloud_event, hook, setup, setup_on, unique};

/// SPEC's tolerance on "never more than `rate_limit` requests in any one-second window".
const TOLERANCE: f64 = 0.10;

/// The most requests in any one-second window `[t, t + 1 s)` starting at a request.
fn busiest_second(arrivals: &[Duration]) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| sorted[i..].iter().take_while(|t| **t < sorted[i] + Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_webhook_limited_to_5_per_second_gets_50_events_in_about_10_seconds_and_never_more_than_5_a_second()
-> Result<()> {
    // GIVEN a webhook limited to 5 requests per second, and an unlimited one on the same events
    let (_stack, api, admin) = setup().await?;
    let acme = unique("acme");
    let (_, key) = api.create_key(&admin, &[&acme], &["manage", "publish"]).await?;
    let selection = json!({"events": ["TODO_CREATED"], "scopes": [{"company_id": acme}]});
    let mut limited_selection = selection.clone();
    limited_selection["rate_limit"] = json!(5);
    let limited = hook(&api, &key, limited_selection).await?;
    let free = hook(&api, &key, selection).await?;
    let shown = api.call("GET", &format!("/v1/webhooks/{}", limited.id), Some(&key), None).await?;
    assert_eq!(shown.body["rate_limit"], 5, "the webhook shows its limit: {}", shown.body);

    // WHEN 50 events are published at once
    let ids: Vec<String> = (0..50).map(|i| unique(&format!("e{i}"))).collect();
    let events: Vec<Value> = ids.iter().map(|id| cloud_event(id, "TODO_CREATED", &acme, "p1")).collect();
    let published = api.publish(&key, &events).await?;
    assert_eq!(published.status, 202, "{}", published.body);

    // THEN the unlimited webhook gets them at once, while the limited one gets each exactly once,
    // in about 10 s, never more than 5 (10 % tolerance) in any second
    free.receiver.wait_for(50, Duration::from_secs(60)).await?;
    let received = limited.receiver.wait_for(50, Duration::from_secs(90)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = limited.receiver.verified_event_ids(&limited.secret)?;
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each event exactly once");
    let first = received.iter().map(|r| r.at).min().context("no delivery")?;
    let arrivals: Vec<Duration> = received.iter().map(|r| r.at - first).collect();
    let span = arrivals.iter().max().copied().unwrap_or_default();
    let busiest = busiest_second(&arrivals);
    eprintln!("limited webhook: 50 deliveries over {span:?}, at most {busiest} in one second");
    assert!(busiest as f64 <= 5.0 * (1.0 + TOLERANCE), "{busiest} requests in one second: {arrivals:?}");
    // 49 gaps at 5/s are 9.8 s; the limit is kept with a margin, and waiting is not failing.
    assert!(span >= Duration::from_secs_f64(9.8 * (1.0 - TOLERANCE)), "too fast: {span:?}");
    // Slots given up by a late (starved) send go to the back of the line: some slack for a
    // busy machine, but waiting stays bounded.
    assert!(span <= Duration::from_secs(25), "held back far longer than the limit asks: {span:?}");

    // AND nothing held back counted as a failure, was parked or logged as failed
    let w = api.call("GET", &format!("/v1/webhooks/{}", limited.id), Some(&key), None).await?;
    assert_eq!(w.body["health"]["consecutive_failures"], 0, "{}", w.body);
    assert!(w.body["health"]["last_failure_at"].is_null(), "{}", w.body);
    assert_eq!(w.body["parked"], 0, "{}", w.body);
    let failed =
        api.call("GET", &format!("/v1/webhooks/{}/deliveries?status=failed", limited.id), Some(&key), None).await?;
    assert_eq!(failed.body["data"], json!([]), "{}", failed.body);
    Ok(())
}

#[tokio::test]
async fn a_rate_limit_is_validated_changed_and_removed() -> Result<()> {
    // GIVEN a webhook without a limit
    let (_stack, api, admin) = setup().await?;
    let acme = unique("acme");
    let (_, key) = api.create_key(&admin, &[&acme], &["manage"]).await?;
    let h = hook(&api, &key, json!({})).await?;
    let path = format!("/v1/webhooks/{}", h.id);
    let before = api.call("GET", &path, Some(&key), None).await?;
    assert_eq!(before.body["rate_limit"], Value::Null, "no limit unless asked: {}", before.body);

    // WHEN limits out of range are asked, THEN 400 naming the field, and nothing changes
    for bad in [json!(0), json!(1001), json!(2.5), json!("5")] {
        let r = api.call("PATCH", &path, Some(&key), Some(json!({"rate_limit": bad}))).await?;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{bad}: {}", r.body);
        assert_eq!(r.body["error"]["field"], "rate_limit", "{}", r.body);
    }
    let r = api.call("POST", "/v1/webhooks", Some(&key), Some(json!({"url": h.receiver.url, "rate_limit": 0}))).await?;
    assert_eq!((r.status, r.body["error"]["field"].clone()), (400, json!("rate_limit")), "{}", r.body);
    assert_eq!(api.call("GET", &path, Some(&key), None).await?.body["rate_limit"], Value::Null);

    // WHEN a limit is set and then removed with null, THEN the webhook shows each
    let set = api.call("PATCH", &path, Some(&key), Some(json!({"rate_limit": 1000}))).await?;
    assert_eq!((set.status, set.body["rate_limit"].clone()), (200, json!(1000)), "{}", set.body);
    let removed = api.call("PATCH", &path, Some(&key), Some(json!({"rate_limit": null}))).await?;
    assert_eq!((removed.status, removed.body["rate_limit"].clone()), (200, Value::Null), "{}", removed.body);
    Ok(())
}

/// Publishes `events` with `key`; returns the status, the error code and `Retry-After`.
async fn publish_raw(api: &Api, key: &str, events: &[Value]) -> Result<(u16, String, Option<u64>)> {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(key)
        .header("content-type", "application/cloudevents-batch+json")
        .body(serde_json::to_vec(events)?)
        .send()
        .await?;
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body["error"]["code"].as_str().unwrap_or_default().to_owned(), retry_after))
}

#[tokio::test]
async fn a_key_over_its_publish_limit_gets_429_and_enqueues_nothing_while_another_key_is_unaffected() -> Result<()> {
    // GIVEN a stack limiting each key to 1 event per second (bursts of 2), two keys of one
    // company, and a webhook receiving every event of that company
    let (_stack, api, admin) = setup_on(Stack::private_with(&[("WEBHOOKS_PUBLISH_RATE", "1")]).await?)?;
    let acme = unique("acme");
    let (_, noisy) = api.create_key(&admin, &[&acme], &["manage", "publish"]).await?;
    let (_, quiet) = api.create_key(&admin, &[&acme], &["publish"]).await?;
    let h = hook(&api, &noisy, json!({"scopes": [{"company_id": acme}]})).await?;
    let event = |name: &str| cloud_event(&unique(name), "TODO_CREATED", &acme, "p1");

    // WHEN the first key publishes its burst, then two more events (which only two seconds
    // of pace would make room for)
    let burst: Vec<Value> = (0..2).map(|_| event("burst")).collect();
    let (status, _, _) = publish_raw(&api, &noisy, &burst).await?;
    assert_eq!(status, 202, "a burst of twice the rate is accepted");
    let over = [event("over"), event("over")];
    let (status, code, retry_after) = publish_raw(&api, &noisy, &over).await?;

    // THEN they are refused with 429 rate_limited and a Retry-After of a second or two
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    let retry_after = retry_after.context("a 429 says when to retry")?;
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");

    // AND the other key publishes its own burst at once, unaffected
    let other = [event("other"), event("other")];
    let (status, _, _) = publish_raw(&api, &quiet, &other).await?;
    assert_eq!(status, 202, "another key is not limited by the first");

    // AND a batch larger than any burst is refused whole
    let too_many: Vec<Value> = (0..3).map(|_| event("batch")).collect();
    let (status, code, _) = publish_raw(&api, &quiet, &too_many).await?;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));

    // AND after waiting what it was told, the first key publishes again
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let later = event("later");
    let (status, _, _) = publish_raw(&api, &noisy, std::slice::from_ref(&later)).await?;
    assert_eq!(status, 202, "accepted after Retry-After");

    // AND what was refused was never enqueued: the webhook receives exactly the accepted events
    h.receiver.wait_for(5, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got: BTreeSet<String> = h.receiver.verified_event_ids(&h.secret)?.into_iter().collect();
    let want: BTreeSet<String> =
        burst.iter().chain(&other).chain([&later]).map(|e| e["id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(got, want);
    assert_eq!(h.receiver.received().len(), 5, "each accepted event once, nothing refused");
    Ok(())
}

/// Sends every batch at once with `key`; returns the statuses of the refused ones.
async fn publish_at_once(api: &Api, key: &str, batches: &[Vec<Value>]) -> Result<Vec<(u16, String)>> {
    let mut sends = tokio::task::JoinSet::new();
    for batch in batches {
        let (api, key, batch) = (api.clone(), key.to_owned(), batch.clone());
        sends.spawn(async move { publish_raw(&api, &key, &batch).await });
    }
    let mut refused = Vec::new();
    for answer in sends.join_all().await {
        let (status, code, _) = answer?;
        if status != 202 {
            refused.push((status, code));
        }
    }
    Ok(refused)
}

#[tokio::test]
async fn concurrent_publishes_of_an_idle_key_within_its_burst_are_all_accepted() -> Result<()> {
    // GIVEN a key that has never published (its pace record does not exist yet), with the
    // default limit of 200 events per second (bursts of 400)
    let (_stack, api, admin) = setup().await?;
    let acme = unique("acme");
    let (_, key) = api.create_key(&admin, &[&acme], &["publish"]).await?;

    // WHEN it sends 16 requests of 5 events at once: 80 events, a fifth of its burst
    let batches: Vec<Vec<Value>> =
        (0..16).map(|_| (0..5).map(|_| cloud_event(&unique("burst"), "TODO_CREATED", &acme, "p1")).collect()).collect();
    let refused = publish_at_once(&api, &key, &batches).await?;

    // THEN every request is accepted: racing requests restart the same idle pace once between
    // them, and none is refused for losing that race
    assert!(refused.is_empty(), "refused within the burst: {refused:?}");

    // AND the same holds once the key has been idle past its pace again
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let refused = publish_at_once(&api, &key, &batches).await?;
    assert!(refused.is_empty(), "refused within the burst after idling: {refused:?}");
    Ok(())
}
