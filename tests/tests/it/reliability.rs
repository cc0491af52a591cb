//! Never lose an event (SPEC §6) on the local stack with a 1 s retry schedule and 5 attempts:
//! exact attempts, recovery, deactivation with one alert, 410, trip and probe, parking,
//! replay on enable, manual disable, redelivery, tests and the delivery log.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use webhooks_tests::{Api, Hook, Receiver, Stack, cloud_event, eventually, hook, string_attributes, unique};

// Generous: under a full parallel run a replay of 130 parked deliveries takes most of a minute.
const WAIT: Duration = Duration::from_secs(120);
const QUIET: Duration = Duration::from_millis(2500);

struct Setup {
    stack: Stack,
    api: Api,
    key: String,
    company: String,
}

async fn setup() -> Result<Setup> {
    Setup::on(Stack::shared().await?).await
}

impl Setup {
    /// A new company on `stack`, with a key that may manage and publish.
    async fn on(stack: Stack) -> Result<Self> {
        let (stack, api, admin) = webhooks_tests::setup_on(stack)?;
        let company = unique("acme");
        let (_, key) = api.create_key(&admin, &[&company], &["manage", "publish"]).await?;
        Ok(Self { stack, api, key, company })
    }

    /// A webhook to a new receiver that answers 200: the receiver, the webhook's id and its
    /// signing secret.
    async fn webhook(&self) -> Result<(Receiver, String, String)> {
        self.webhook_answering(&[]).await
    }

    /// A webhook to a new receiver that answers `statuses` in order, then 200: the receiver, the
    /// webhook's id and its signing secret.
    async fn webhook_answering(&self, statuses: &[u16]) -> Result<(Receiver, String, String)> {
        let Hook { receiver, id, secret } = hook(&self.api, &self.key, json!({})).await?;
        receiver.respond_with(statuses);
        Ok((receiver, id, secret))
    }

    async fn publish(&self, ids: &[&str]) -> Result<()> {
        let events: Vec<Value> = ids.iter().map(|id| cloud_event(id, "TODO_CREATED", &self.company, "p1")).collect();
        let r = self.api.publish(&self.key, &events).await?;
        assert_eq!(r.status, 202, "{}", r.body);
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Value> {
        Ok(self.api.call("GET", &format!("/v1/webhooks/{id}"), Some(&self.key), None).await?.body)
    }

    async fn log(&self, id: &str, query: &str) -> Result<Vec<Value>> {
        let r = self.api.call("GET", &format!("/v1/webhooks/{id}/deliveries{query}"), Some(&self.key), None).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        Ok(r.body["data"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until the webhook satisfies `check`.
    async fn wait_webhook(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Result<Value> {
        eventually(WAIT, what, || async {
            let w = self.get(id).await?;
            Ok(check(&w).then_some(w))
        })
        .await
    }
}

/// The alerts of type `webhook.<kind>` among `found`.
fn of_kind<'a>(found: &'a [(Value, String, String)], kind: &str) -> Vec<&'a (Value, String, String)> {
    found.iter().filter(|(alert, _, _)| alert["type"] == format!("webhook.{kind}").as_str()).collect()
}

/// Alerts about `webhook_id` that reached the subscribed queue: (body, reason attr, owner attr).
async fn alerts_for(stack: &Stack, queue: &str, webhook_id: &str) -> Result<Vec<(Value, String, String)>> {
    let sqs = stack.sqs().await;
    let mut found = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await?;
        if out.messages().is_empty() {
            return Ok(found);
        }
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
            let attributes = string_attributes(m);
            let attr = |n: &str| attributes.get(n).cloned().unwrap_or_default();
            if body["webhook_id"] == webhook_id {
                found.push((body, attr("reason"), attr("owner_key_id")));
            }
        }
    }
}

#[tokio::test]
async fn a_dead_receiver_gets_exactly_five_attempts_then_is_deactivated_with_one_alert() -> Result<()> {
    // GIVEN a receiver that always fails, and a queue subscribed to the alerts topic
    let s = setup().await?;
    let alerts = s.stack.subscribe_to_alerts().await?;
    let (receiver, id, _) = s.webhook_answering(&[500; 50]).await?;

    // WHEN one event is published
    let event = unique("doomed");
    s.publish(&[&event]).await?;

    // THEN the webhook ends disabled for failing, with the streak in its health
    // (deactivation comes first, then the parking of the delivery that caused it)
    let w = s.wait_webhook(&id, "deactivation", |w| w["status"] == "disabled" && w["parked"] == 1).await?;
    assert_eq!(w["disabled_reason"], "failing");
    assert_eq!(w["health"]["consecutive_failures"], 5);
    assert_eq!(w["health"]["last_status_code"], 500);
    assert!(w["health"]["failing_since"].is_string() && w["health"]["last_failure_at"].is_string());
    assert_eq!(w["parked"], 1, "the delivery is kept");
    // AND exactly five attempts arrived, a schedule delay apart, all with one webhook-id
    tokio::time::sleep(QUIET).await;
    let got = receiver.received();
    assert_eq!(got.len(), 5);
    assert_eq!(got.iter().map(|r| r.header("webhook-id")).collect::<BTreeSet<_>>().len(), 1);
    for pair in got.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(800), "spaced by the schedule");
    }
    // AND the log shows attempts 1..5 (4 pending, the last failed) and the parking
    let log = s.log(&id, "").await?;
    let attempts: Vec<(Option<u64>, &str)> =
        log.iter().map(|e| (e["attempt"].as_u64(), e["status"].as_str().unwrap_or_default())).collect();
    assert_eq!(
        attempts,
        vec![
            (None, "parked"),
            (Some(5), "failed"),
            (Some(4), "pending"),
            (Some(3), "pending"),
            (Some(2), "pending"),
            (Some(1), "pending")
        ]
    );
    assert!(log[2]["next_attempt_at"].is_string() && log[1]["next_attempt_at"].is_null());
    assert_eq!(log[1]["status_code"], 500);
    assert_eq!(log[1]["event_id"], event.as_str());
    // AND exactly two alerts with the documented fields and attributes: the streak's start,
    // then the deactivation
    let found = alerts_for(&s.stack, &alerts, &id).await?;
    assert_eq!(found.len(), 2, "{found:?}");
    let failing = of_kind(&found, "failing");
    assert_eq!(failing.len(), 1, "{found:?}");
    assert_eq!((failing[0].0["reason"].as_str(), failing[0].1.as_str()), (Some("HTTP 500"), "failing"));
    assert_eq!(failing[0].0["companies"], json!([s.company]));
    let disabled = of_kind(&found, "disabled");
    assert_eq!(disabled.len(), 1, "{found:?}");
    let (alert, reason, owner) = disabled[0];
    assert_eq!(alert["type"], "webhook.disabled");
    assert_eq!(alert["reason"], "failing");
    assert_eq!(alert["url"], receiver.url.as_str());
    assert_eq!(alert["consecutive_failures"], 5);
    assert_eq!(alert["last_status_code"], 500);
    assert_eq!(alert["companies"], json!([s.company]));
    assert!(alert["disabled_at"].is_string());
    assert_eq!(reason, "failing");
    assert_eq!(owner, alert["owner_key_id"].as_str().unwrap_or_default());
    Ok(())
}

#[tokio::test]
async fn a_receiver_that_recovers_keeps_its_webhook_active() -> Result<()> {
    let s = setup().await?;
    let alerts = s.stack.subscribe_to_alerts().await?;
    let (receiver, id, _) = s.webhook_answering(&[500, 502]).await?;
    s.publish(&[&unique("bumpy")]).await?;

    receiver.wait_for(3, WAIT).await?;
    let w = s.wait_webhook(&id, "recovery", |w| w["health"]["last_success_at"].is_string()).await?;
    assert_eq!(w["status"], "active");
    assert_eq!(w["health"]["consecutive_failures"], 0);
    assert_eq!(w["health"]["failing_since"], Value::Null);
    assert_eq!(w["parked"], 0);
    tokio::time::sleep(QUIET).await;
    assert_eq!(receiver.received().len(), 3);
    // AND its owner heard once that it was failing, and once that it recovered
    let found = alerts_for(&s.stack, &alerts, &id).await?;
    let kinds: Vec<&str> = found.iter().map(|(a, _, _)| a["type"].as_str().unwrap_or_default()).collect();
    assert_eq!(kinds, ["webhook.failing", "webhook.recovered"], "{found:?}");
    assert_eq!(found[0].0["reason"], "HTTP 500");
    assert_eq!((found[1].1.as_str(), found[1].0["owner_key_id"].as_str()), ("recovered", Some(found[1].2.as_str())));
    Ok(())
}

#[tokio::test]
async fn gone_deactivates_at_once_and_enable_replays_what_was_parked() -> Result<()> {
    // GIVEN a receiver answering 410 Gone
    let s = setup().await?;
    let alerts = s.stack.subscribe_to_alerts().await?;
    let (receiver, id, secret) = s.webhook_answering(&[410]).await?;
    let (first, second) = (unique("first"), unique("second"));
    s.publish(&[&first]).await?;

    // THEN one attempt deactivates it (gone) and the delivery is parked
    let w = s.wait_webhook(&id, "gone", |w| w["disabled_reason"] == "gone" && w["parked"] == 1).await?;
    assert_eq!(w["status"], "disabled");
    assert_eq!(receiver.received().len(), 1);
    let found = alerts_for(&s.stack, &alerts, &id).await?;
    let disabled = of_kind(&found, "disabled");
    assert_eq!(disabled.len(), 1, "{found:?}");
    assert_eq!(disabled[0].1, "gone");

    // AND what arrives while it is disabled is parked too
    s.publish(&[&second]).await?;
    s.wait_webhook(&id, "second parked", |w| w["parked"] == 2).await?;
    assert_eq!(receiver.received().len(), 1);

    // WHEN it is enabled (the receiver is back)
    let r = s.api.call("POST", &format!("/v1/webhooks/{id}/enable"), Some(&s.key), None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["replayed"], 2);
    assert_eq!(r.body["webhook"]["status"], "active");
    assert_eq!(r.body["webhook"]["disabled_reason"], Value::Null);

    // THEN the health check and both parked deliveries arrive, with their original webhook-ids
    let got = receiver.wait_for(4, WAIT).await?;
    assert_eq!(got[1].json()["type"], "WEBHOOK_HEALTH_CHECK");
    assert_eq!(got[1].json()["company_id"], Value::Null);
    let replayed: BTreeSet<String> =
        got[2..].iter().map(|r| r.json()["event_id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(replayed, BTreeSet::from([first.clone(), second.clone()]));
    let original_id = got[0].header("webhook-id").to_owned();
    assert!(got[2..].iter().any(|r| r.header("webhook-id") == original_id), "replays keep the webhook-id");
    // AND every request verifies with the webhook's secret
    assert_eq!(receiver.verified_event_ids(&secret)?.len(), 4);
    let w = s.wait_webhook(&id, "replay done", |w| w["parked"] == 0).await?;
    assert_eq!(w["health"]["consecutive_failures"], 0);
    // AND the first delivery after the enable told its owner the webhook recovered, once
    let recovered = eventually(WAIT, "webhook.recovered", || async {
        let found = alerts_for(&s.stack, &alerts, &id).await?;
        let recovered: Vec<Value> = of_kind(&found, "recovered").into_iter().map(|(a, _, _)| a.clone()).collect();
        Ok((!recovered.is_empty()).then_some(recovered))
    })
    .await?;
    assert_eq!(recovered.len(), 1);
    tokio::time::sleep(QUIET).await;
    assert!(of_kind(&alerts_for(&s.stack, &alerts, &id).await?, "recovered").is_empty(), "only once");
    Ok(())
}

#[tokio::test]
async fn enable_refuses_while_the_receiver_still_fails() -> Result<()> {
    let s = setup().await?;
    let (_receiver, id, _) = s.webhook_answering(&[410, 503]).await?;
    s.publish(&[&unique("e")]).await?;
    s.wait_webhook(&id, "gone", |w| w["disabled_reason"] == "gone").await?;

    let r = s.api.call("POST", &format!("/v1/webhooks/{id}/enable"), Some(&s.key), None).await?;
    assert_eq!((r.status, r.code()), (409, "health_check_failed"));
    assert_eq!(r.body["error"]["details"]["status_code"], 503);
    assert!(r.body["error"]["details"]["duration_ms"].is_u64());
    let w = s.get(&id).await?;
    assert_eq!(
        (w["status"].as_str(), w["disabled_reason"].as_str(), w["parked"].as_u64()),
        (Some("disabled"), Some("gone"), Some(1))
    );
    Ok(())
}

#[tokio::test]
async fn a_manual_disable_drops_new_matches_and_counts_them() -> Result<()> {
    let s = setup().await?;
    let (receiver, id, _) = s.webhook().await?;
    let r = s.api.call("POST", &format!("/v1/webhooks/{id}/disable"), Some(&s.key), None).await?;
    assert_eq!((r.status, r.body["disabled_reason"].as_str()), (200, Some("manual")));
    // Disabling again is fine.
    assert_eq!(
        s.api.call("POST", &format!("/v1/webhooks/{id}/disable"), Some(&s.key), Some(json!({}))).await?.status,
        200
    );

    s.publish(&[&unique("ignored"), &unique("ignored")]).await?;
    let w = s.wait_webhook(&id, "drops counted", |w| w["health"]["dropped"]["manual_disabled"] == 2).await?;
    assert_eq!(w["parked"], 0);
    assert!(receiver.received().is_empty());

    let r = s.api.call("POST", &format!("/v1/webhooks/{id}/enable"), Some(&s.key), None).await?;
    assert_eq!((r.status, r.body["replayed"].as_u64()), (200, Some(0)));
    assert_eq!(receiver.received().len(), 1, "only the health check");
    Ok(())
}

#[tokio::test]
async fn a_dead_endpoint_under_a_stream_trips_sends_one_probe_and_replays_on_recovery() -> Result<()> {
    // GIVEN a receiver that fails until told otherwise
    let s = setup().await?;
    let (receiver, id, secret) = s.webhook_answering(&[500; 200]).await?;

    // WHEN ten events arrive at once
    let events: Vec<String> = (0..10).map(|i| unique(&format!("stream{i}"))).collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    s.publish(&refs).await?;

    // THEN the webhook trips: deliveries are parked instead of retried, while it stays active
    let parked = eventually(WAIT, "deliveries parked while tripped", || async {
        let parked = s.log(&id, "?status=parked&limit=100").await?;
        Ok((parked.len() >= 3).then_some(parked.len()))
    })
    .await?;
    assert!(parked >= 3);
    assert_eq!(s.get(&id).await?["status"], "active");
    let failed_before_recovery = receiver.received().len();
    assert!(failed_before_recovery < 10 + 5, "one probe, not ten deliveries retrying: {failed_before_recovery}");

    // WHEN the receiver recovers, the probe's next attempt succeeds
    receiver.heal();
    let w = s
        .wait_webhook(&id, "recovery", |w| {
            w["health"]["consecutive_failures"] == 0 && w["health"]["last_success_at"].is_string() && w["parked"] == 0
        })
        .await?;
    assert_eq!(w["status"], "active");
    // THEN all ten are delivered: the probe, and the parked ones replayed
    let delivered = eventually(WAIT, "all ten delivered", || async {
        let ok: BTreeSet<String> = receiver
            .received()
            .into_iter()
            .skip(failed_before_recovery)
            .map(|r| r.json()["event_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        Ok(events.iter().all(|e| ok.contains(e)).then_some(ok))
    })
    .await?;
    assert!(events.iter().all(|e| delivered.contains(e)));
    receiver.verified_event_ids(&secret)?;
    Ok(())
}

#[tokio::test]
async fn test_sends_a_signed_health_check_and_redeliver_resends_an_event() -> Result<()> {
    let s = setup().await?;
    let (receiver, id, secret) = s.webhook().await?;

    let r = s.api.call("POST", &format!("/v1/webhooks/{id}/test"), Some(&s.key), None).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status_code"], 200);
    assert_eq!(r.body["error"], Value::Null);
    let check = receiver.wait_for(1, WAIT).await?.remove(0);
    assert_eq!(check.json()["type"], "WEBHOOK_HEALTH_CHECK");
    assert!(check.json()["event_id"].as_str().is_some_and(|e| e.starts_with("hc_")));
    let hc_id = check.header("webhook-id");
    assert!(
        hc_id.starts_with("msg_")
            && hc_id.len() == 30
            && hc_id[4..].bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );

    let event = unique("again");
    s.publish(&[&event]).await?;
    let original = receiver.wait_for(2, WAIT).await?.remove(1);
    let message_id = original.header("webhook-id").to_owned();
    let r =
        s.api.call("POST", &format!("/v1/webhooks/{id}/deliveries/{message_id}/redeliver"), Some(&s.key), None).await?;
    assert_eq!(r.status, 202, "{}", r.body);
    let again = receiver.wait_for(3, WAIT).await?.remove(2);
    assert_eq!(again.header("webhook-id"), message_id);
    assert_eq!(again.json()["event_id"], event.as_str());
    assert_eq!(receiver.verified_event_ids(&secret)?.len(), 3);

    let r =
        s.api.call("POST", &format!("/v1/webhooks/{id}/deliveries/msg_unknown/redeliver"), Some(&s.key), None).await?;
    assert_eq!(r.status, 404);

    // The log lists the health check and the two deliveries, filterable and paged.
    let all = s.log(&id, "").await?;
    assert_eq!(all.len(), 3);
    assert_eq!(all.last().map(|e| e["type"].clone()), Some(json!("WEBHOOK_HEALTH_CHECK")));
    let by_event = s.log(&id, &format!("?event_id={event}")).await?;
    assert_eq!(by_event.len(), 2);
    assert!(by_event.iter().all(|e| e["status"] == "succeeded" && e["webhook_message_id"] == message_id.as_str()));
    let r = s.api.call("GET", &format!("/v1/webhooks/{id}/deliveries?limit=2"), Some(&s.key), None).await?;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(2));
    let cursor = r.body["next_cursor"].as_str().context("a second page")?;
    let r =
        s.api.call("GET", &format!("/v1/webhooks/{id}/deliveries?limit=2&cursor={cursor}"), Some(&s.key), None).await?;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["next_cursor"], Value::Null);
    assert_eq!(
        s.api.call("GET", &format!("/v1/webhooks/{id}/deliveries?status=odd"), Some(&s.key), None).await?.status,
        400
    );
    Ok(())
}

#[tokio::test]
async fn retry_after_is_honoured_within_twice_the_delay() -> Result<()> {
    // GIVEN a receiver that answers 503 with Retry-After: 30 once
    let s = setup().await?;
    let (receiver, id, _) = s.webhook().await?;
    receiver.respond_with_retry_after(503, "30");
    s.publish(&[&unique("unavailable")]).await?;
    // THEN the retry waits longer than the 1 s delay, but the 30 s asked for is clamped to
    // twice the jittered delay (at most 2 x 2 s, as jitter rounds up; the emulator may add 1 s)
    let got = receiver.wait_for(2, WAIT).await?;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(1800), "{gap:?}");
    assert!(gap < Duration::from_secs(10), "Retry-After: 30 was clamped: {gap:?}");
    // AND it was a failed attempt
    let log = s.log(&id, "").await?;
    assert!(log.iter().any(|e| e["attempt"] == 1 && e["status"] == "pending" && e["status_code"] == 503), "{log:?}");
    Ok(())
}

#[tokio::test]
async fn a_429_with_retry_after_slows_the_delivery_down_without_counting_a_failure() -> Result<()> {
    // GIVEN a receiver that answers 429 with Retry-After: 4 once, then 200
    let s = setup().await?;
    let (receiver, id, _) = s.webhook().await?;
    receiver.respond_with_retry_after(429, "4");
    s.publish(&[&unique("slow-down")]).await?;
    // THEN the same attempt comes again after the 4 s asked (not clamped to the 1 s schedule)
    let got = receiver.wait_for(2, WAIT).await?;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(3800), "Retry-After: 4 was honoured: {gap:?}");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    // AND no failure was counted: the webhook never started a streak, and the log shows the
    // deferral and the success as attempt 1
    let w = s.wait_webhook(&id, "delivered", |w| w["health"]["last_success_at"].is_string()).await?;
    assert_eq!(w["health"]["failing_since"], Value::Null);
    assert_eq!(w["health"]["last_failure_at"], Value::Null);
    let log = s.log(&id, "").await?;
    let attempts: Vec<(Option<u64>, &str)> =
        log.iter().map(|e| (e["attempt"].as_u64(), e["status"].as_str().unwrap_or_default())).collect();
    assert_eq!(attempts, [(Some(1), "succeeded"), (Some(1), "pending")], "{log:?}");
    assert_eq!(log[1]["status_code"], 429);
    Ok(())
}

// ---------------------------------------------------------------------------- parking and replay

impl Setup {
    async fn publish_many(&self, ids: &[String]) -> Result<()> {
        for chunk in ids.chunks(100) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            self.publish(&refs).await?;
        }
        Ok(())
    }

    /// Every log entry of `status`, all pages.
    async fn log_all(&self, id: &str, status: &str) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("?status={status}&limit=100&cursor={c}"),
                None => format!("?status={status}&limit=100"),
            };
            let r =
                self.api.call("GET", &format!("/v1/webhooks/{id}/deliveries{query}"), Some(&self.key), None).await?;
            assert_eq!(r.status, 200, "{}", r.body);
            all.extend(r.body["data"].as_array().cloned().unwrap_or_default());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(all),
            }
        }
    }

    async fn enable(&self, id: &str) -> Result<Value> {
        let r = self.api.call("POST", &format!("/v1/webhooks/{id}/enable"), Some(&self.key), None).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        Ok(r.body)
    }
}

/// The sort keys (park time first) of a webhook's parked items, read from the table.
async fn parked_sort_keys(stack: &Stack, webhook_id: &str) -> Result<BTreeSet<String>> {
    let table = stack.info.tables.get("DeliveriesTable").context("deliveries table")?;
    let dynamodb = stack.dynamodb().await;
    let mut keys = BTreeSet::new();
    let mut start = None;
    loop {
        let out = dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("PARK#{webhook_id}")),
            )
            .projection_expression("sk")
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        keys.extend(out.items().iter().filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned()));
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(keys),
        }
    }
}

#[tokio::test]
async fn a_replay_to_an_endpoint_that_still_fails_ends_and_keeps_each_delivery_parked_once() -> Result<()> {
    // GIVEN a webhook gone (410) with 130 parked deliveries, more than one replay page
    let s = setup().await?;
    let (receiver, id, _) = s.webhook_answering(&[410; 130]).await?;
    let events: Vec<String> = (0..130).map(|i| unique(&format!("loop{i}"))).collect();
    s.publish_many(&events).await?;
    s.wait_webhook(&id, "all parked", |w| w["status"] == "disabled" && w["parked"] == 130).await?;
    let parked_before = parked_sort_keys(&s.stack, &id).await?;
    assert_eq!(parked_before.len(), 130);

    // WHEN it is enabled with a receiver that answers the health check but fails every event
    receiver.heal();
    receiver.respond_with(&[200]);
    receiver.respond_with(&[500; 3000]);
    let enabled = s.enable(&id).await?;
    assert_eq!(enabled["replayed"], 130);

    // THEN the replay ends: the webhook trips, then is disabled again, and all 130 stay parked
    s.wait_webhook(&id, "disabled again with all parked", |w| w["status"] == "disabled" && w["parked"] == 130).await?;
    let entries = s.log_all(&id, "parked").await?.len();
    let requests = receiver.received().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // AND nothing goes round any more: no new parking, no new request
    assert_eq!(s.log_all(&id, "parked").await?.len(), entries, "the replay keeps re-parking");
    assert_eq!(receiver.received().len(), requests, "the replay keeps re-sending");
    assert!(entries <= 2 * 130, "each delivery parked at most once per replay: {entries}");
    // AND each delivery is back in its original place (park time and expiry kept)
    assert_eq!(parked_sort_keys(&s.stack, &id).await?, parked_before);
    let w = s.get(&id).await?;
    assert_eq!(w["parked"], 130);
    Ok(())
}

#[tokio::test]
async fn a_webhook_that_stays_active_resends_what_it_parked_once_it_is_healthy_again() -> Result<()> {
    // GIVEN an event that fails five times while another one succeeds in between
    let s = setup().await?;
    let (receiver, id, _) = s.webhook().await?;
    let unlucky = unique("unlucky");
    receiver.fail_event(&unlucky);
    s.publish(&[&unlucky]).await?;
    receiver.wait_for(1, WAIT).await?;
    s.publish(&[&unique("lucky")]).await?;
    // THEN it is parked while the webhook stays active
    let w = s.wait_webhook(&id, "parked while active", |w| w["parked"] == 1).await?;
    assert_eq!(w["status"], "active");
    let tries = |r: &[webhooks_tests::Received]| r.iter().filter(|r| r.json()["event_id"] == unlucky.as_str()).count();
    assert_eq!(tries(&receiver.received()), 5);

    // WHEN the webhook is healthy again (its next delivery after the failures succeeds)
    receiver.stop_failing(&unlucky);
    s.publish(&[&unique("healthy")]).await?;

    // THEN the parked delivery is re-sent without an enable, and delivered
    eventually(WAIT, "the parked delivery re-sent", || async { Ok((tries(&receiver.received()) == 6).then_some(())) })
        .await?;
    s.wait_webhook(&id, "nothing parked", |w| w["parked"] == 0).await?;
    let delivered = s.log(&id, &format!("?event_id={unlucky}&status=succeeded")).await?;
    assert_eq!(delivered.len(), 1);
    Ok(())
}

#[tokio::test]
async fn expired_parked_deliveries_are_counted_as_dropped() -> Result<()> {
    // GIVEN parked deliveries are kept 3 s
    let stack = Stack::private_with(&[("WEBHOOKS_PARK_TTL", "3s")]).await?;
    let s = Setup::on(stack).await?;
    let (_receiver, id, _) = s.webhook_answering(&[410]).await?;
    s.publish(&[&unique("kept-briefly")]).await?;
    s.wait_webhook(&id, "parked", |w| w["parked"] == 1).await?;

    // WHEN its keeping time passes THEN the view counts it as dropped (park_expired)
    let w = s.wait_webhook(&id, "expiry counted", |w| w["health"]["dropped"]["park_expired"] == 1).await?;
    assert_eq!(w["parked"], 0);
    Ok(())
}

#[tokio::test]
async fn deleting_a_webhook_removes_its_parked_deliveries() -> Result<()> {
    // GIVEN a webhook with parked deliveries
    let s = setup().await?;
    let (_receiver, id, _) = s.webhook_answering(&[410, 410]).await?;
    s.publish(&[&unique("orphan"), &unique("orphan")]).await?;
    s.wait_webhook(&id, "parked", |w| w["parked"] == 2).await?;
    assert_eq!(parked_sort_keys(&s.stack, &id).await?.len(), 2);

    // WHEN it is deleted
    let r = s.api.call("DELETE", &format!("/v1/webhooks/{id}"), Some(&s.key), None).await?;
    assert_eq!(r.status, 204);

    // THEN its parked deliveries (and their payloads) are removed
    eventually(WAIT, "parked deliveries removed", || async {
        Ok(parked_sort_keys(&s.stack, &id).await?.is_empty().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn one_message_received_twice_is_sent_once() -> Result<()> {
    // GIVEN a webhook and two copies of one delivery on the delivery queue (SQS may hand one
    // message to two receives)
    let s = setup().await?;
    let (receiver, id, _) = s.webhook().await?;
    let event_id = unique("twice");
    let delivery = json!({
        "kind": "delivery.v1", "delivery_id": unique("dlv"), "webhook_id": id, "webhook_message_id": "msg_0123456789abcdefghjkmnpqrs",
        "event": {"id": event_id, "source": "app/test", "type": "TODO_CREATED", "company_id": s.company, "project_id": "p1",
                  "time": "2026-11-28T10:00:00Z", "data": {}},
        "generation": 0, "queued_at": 0
    })
    .to_string();
    let sqs = s.stack.sqs().await;
    for _ in 0..2 {
        sqs.send_message().queue_url(&s.stack.info.delivery_queue_url).message_body(&delivery).send().await?;
    }
    // WHEN both are handled THEN the receiver gets the event once
    receiver.wait_for(1, WAIT).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.received().len(), 1);
    Ok(())
}

/// What the stack's AWS proxy counted of one operation (e.g. `dynamodb:Query`) so far.
async fn aws_requests(stack: &Stack, operation: &str) -> Result<u64> {
    let file = stack.state_dir.join("stack.json");
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    let proxy = info["proxy_url"].as_str().context("the stack runs its AWS proxy")?;
    let counted = webhooks_tests::chaos::faults(proxy).await?;
    Ok(counted["timing"][operation]["requests"].as_u64().unwrap_or(0))
}

/// Trust issue, defect 4: a webhook's view shows its parked count from a maintained counter;
/// reading it never reads the parked deliveries (payloads included), however many there are.
#[tokio::test]
async fn viewing_a_webhook_never_reads_its_parked_deliveries() -> Result<()> {
    // GIVEN a stack of its own (so its AWS requests are this test's), and a webhook gone (410)
    // with 20 deliveries parked
    let stack = Stack::private(webhooks_tests::TEST_SETTINGS, &[]).await?;
    let Setup { stack, api, key, company } = Setup::on(stack).await?;
    let receiver = Receiver::start().await?;
    receiver.respond_with(&[410; 40]);
    let id = api.create_webhook(&key, json!({"url": receiver.url})).await?["id"].as_str().context("id")?.to_owned();
    let events: Vec<Value> =
        (0..20).map(|i| cloud_event(&unique(&format!("e{i}")), "TODO_CREATED", &company, "p1")).collect();
    assert_eq!(api.publish(&key, &events).await?.status, 202);
    eventually(WAIT, "20 parked", || async {
        let w = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?.body;
        Ok((w["parked"] == 20).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // WHEN it is read five times
    let before = aws_requests(&stack, "dynamodb:Query").await?;
    for _ in 0..5 {
        let w = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?.body;
        assert_eq!(w["parked"], 20);
    }
    // THEN no Query ran (the count is a counter, not a read of the partition)
    assert_eq!(aws_requests(&stack, "dynamodb:Query").await? - before, 0);

    // AND its list costs one Query (the owner's page), whatever is parked
    let before = aws_requests(&stack, "dynamodb:Query").await?;
    let list = api.call("GET", "/v1/webhooks", Some(&key), None).await?.body;
    assert_eq!(list["data"][0]["parked"], 20);
    assert_eq!(aws_requests(&stack, "dynamodb:Query").await? - before, 1);
    Ok(())
}

/// Trust issue, defect 11: an alert that cannot be published keeps the webhook's deliveries
/// parked (not handed back until they reach the DLQ), and goes out once it can.
#[tokio::test]
async fn an_alert_that_cannot_be_published_parks_deliveries_and_goes_out_later() -> Result<()> {
    // GIVEN a stack whose alerts topic is gone, and a webhook whose receiver always fails with
    // one attempt per delivery
    let stack = Stack::private_with(&[("WEBHOOKS_MAX_ATTEMPTS", "1")]).await?;
    let topic = stack.info.alerts_topic_arn.clone().context("alerts topic")?;
    let sns = stack.sns().await;
    sns.delete_topic().topic_arn(&topic).send().await?;
    let Setup { stack, api, key, company } = Setup::on(stack).await?;
    let receiver = Receiver::start().await?;
    receiver.respond_with(&[500; 50]);
    let id = api.create_webhook(&key, json!({"url": receiver.url})).await?["id"].as_str().context("id")?.to_owned();

    // WHEN its first delivery fails (deactivating it) and more arrive
    let events: Vec<Value> =
        (0..3).map(|i| cloud_event(&unique(&format!("e{i}")), "TODO_CREATED", &company, "p1")).collect();
    api.publish(&key, &events[..1]).await?;
    receiver.wait_for(1, WAIT).await?;
    // (the others once it is disabled: before, they would be sent like any delivery)
    eventually(WAIT, "disabled", || async {
        let w = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?.body;
        Ok((w["status"] == "disabled").then_some(()))
    })
    .await?;
    api.publish(&key, &events[1..]).await?;

    // THEN it is disabled and every delivery is parked, none left for the DLQ
    let w = eventually(WAIT, "3 parked", || async {
        let w = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?.body;
        Ok((w["parked"] == 3).then_some(w))
    })
    .await?;
    assert_eq!((w["status"].as_str(), w["disabled_reason"].as_str()), (Some("disabled"), Some("failing")), "{w}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dlq = stack
        .sqs()
        .await
        .get_queue_attributes()
        .queue_url(&stack.info.delivery_dlq_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await?;
    let in_dlq = dlq
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .cloned();
    assert_eq!(in_dlq.as_deref(), Some("0"));
    assert_eq!(receiver.received().len(), 1, "nothing is sent to a disabled webhook");

    // WHEN the topic is back and another delivery of the webhook comes by
    let name = topic.rsplit(':').next().context("topic name")?;
    assert_eq!(sns.create_topic().name(name).send().await?.topic_arn(), Some(topic.as_str()));
    let alerts = stack.subscribe_to_alerts().await?;
    api.publish(&key, &[cloud_event(&unique("later"), "TODO_CREATED", &company, "p1")]).await?;

    // THEN the pending alert goes out, once
    let found = eventually(WAIT, "the alert", || async {
        let found = alerts_for(&stack, &alerts, &id).await?;
        Ok((!found.is_empty()).then_some(found))
    })
    .await?;
    // (the streak's webhook.failing was kept too, and goes out with it)
    let found = eventually(WAIT, "both alerts", || async {
        let mut all = found.clone();
        all.extend(alerts_for(&stack, &alerts, &id).await?);
        Ok((all.len() >= 2).then_some(all))
    })
    .await?;
    let disabled = of_kind(&found, "disabled");
    assert_eq!(disabled.len(), 1, "{found:?}");
    assert_eq!(disabled[0].1, "failing");
    assert_eq!(of_kind(&found, "failing").len(), 1, "{found:?}");
    Ok(())
}

/// An attempt claim whose answer was lost (AWS applied it, the caller saw a 5xx and its SDK sent
/// it again) is taken again by the same receive: it must not wait for its own claim to expire.
/// Another receive is still refused while the claim runs.
#[tokio::test]
async fn a_claim_sent_again_by_the_same_receive_is_its_own() -> Result<()> {
    // GIVEN the delivery state on the stack's tables
    let stack = Stack::shared().await?;
    let table = |name: &str| stack.info.tables.get(name).cloned().with_context(|| name.to_owned());
    let state = webhooks_aws::attempts::DynamoDbAttempts::new(stack.dynamodb().await, table("DeliveriesTable")?);
    let delivery = unique("dlv");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // WHEN one receive claims attempt 1, and the same claim arrives again (the SDK's retry)
    assert!(state.claim_attempt(&delivery, 1, now, now + 60, "receive-a").await?.is_ok());
    let again = state.claim_attempt(&delivery, 1, now, now + 60, "receive-a").await?;
    // THEN it is still that receive's claim
    assert!(again.is_ok(), "the same receive's claim was refused: {again:?}");
    // AND another receive of the same message is refused while it runs
    assert!(state.claim_attempt(&delivery, 1, now, now + 60, "receive-b").await?.is_err());
    Ok(())
}
