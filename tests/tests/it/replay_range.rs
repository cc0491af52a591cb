//! Replay by time range and the delivery log's filters (SPEC §10): after an outage, what failed
//! is sent again, once each, with its `webhook-id`; the log narrows by event type and time.
//!
//! The outage runs on a stack of its own that keeps parked deliveries 3 s: what was parked
//! during the outage expires (dropped) instead of being re-sent by the enable, so only a range
//! replay can bring it back, as it would after a longer outage.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use webhooks_tests::{Api, Receiver, Stack, cloud_event, eventually, hook, setup_on, unique};

const WAIT: Duration = Duration::from_secs(60);
/// Long enough for a queued replay page and its deliveries to have arrived if they were sent.
const SETTLE: Duration = Duration::from_secs(4);

struct Setup {
    _stack: Stack,
    api: Api,
    key: String,
    company: String,
}

impl Setup {
    async fn on(stack: Stack) -> Result<Self> {
        let (stack, api, admin) = setup_on(stack)?;
        let company = unique("acme");
        let (_, key) = api.create_key(&admin, &[&company], &["manage", "publish"]).await?;
        Ok(Self { _stack: stack, api, key, company })
    }

    async fn publish(&self, id: &str, event_type: &str) -> Result<()> {
        let r = self.api.publish(&self.key, &[cloud_event(id, event_type, &self.company, "p1")]).await?;
        assert_eq!(r.status, 202, "{}", r.body);
        Ok(())
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<webhooks_tests::Reply> {
        self.api.call(method, path, Some(&self.key), body).await
    }

    async fn webhook(&self, id: &str) -> Result<Value> {
        Ok(self.call("GET", &format!("/v1/webhooks/{id}"), None).await?.body)
    }

    async fn wait_webhook(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Result<Value> {
        eventually(WAIT, what, || async {
            let w = self.webhook(id).await?;
            Ok(check(&w).then_some(w))
        })
        .await
    }

    /// Every entry of the log with `query`, all pages (a small page size exercises the cursor).
    async fn log(&self, id: &str, query: &str) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
            let r = self.call("GET", &format!("/v1/webhooks/{id}/deliveries?limit=3{query}{after}"), None).await?;
            assert_eq!(r.status, 200, "{query}: {}", r.body);
            all.extend(r.body["data"].as_array().cloned().unwrap_or_default());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(all),
            }
        }
    }

    async fn replay(&self, id: &str, body: Value) -> Result<webhooks_tests::Reply> {
        self.call("POST", &format!("/v1/webhooks/{id}/replay"), Some(body)).await
    }
}

fn rfc3339(t: OffsetDateTime) -> Result<String> {
    Ok(t.format(&Rfc3339)?)
}

fn attempted_at(entry: &Value) -> OffsetDateTime {
    entry["attempted_at"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The `webhook-id`s of the requests a receiver got from index `from` on, by event id: one per
/// request.
fn delivered_since(receiver: &Receiver, from: usize) -> BTreeMap<String, Vec<String>> {
    let mut by_event: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in receiver.received().iter().skip(from) {
        let event = r.json()["event_id"].as_str().unwrap_or_default().to_owned();
        by_event.entry(event).or_default().push(r.header("webhook-id").to_owned());
    }
    by_event
}

/// A log entry's identity, to compare sets of entries.
fn key_of(entry: &Value) -> (String, String, Value) {
    (
        entry["attempted_at"].as_str().unwrap_or_default().to_owned(),
        entry["webhook_message_id"].as_str().unwrap_or_default().to_owned(),
        entry["attempt"].clone(),
    )
}

#[tokio::test]
async fn after_an_outage_what_failed_is_sent_again_once_and_the_log_narrows_by_type_and_time() -> Result<()> {
    // GIVEN a webhook whose receiver got one event, then went down while two more came (they
    // used their attempts, the webhook was disabled, and what was parked expired)
    let s = Setup::on(Stack::private_with(&[("WEBHOOKS_PARK_TTL", "3s")]).await?).await?;
    let webhooks_tests::Hook { receiver, id, .. } = hook(&s.api, &s.key, json!({})).await?;
    let started = OffsetDateTime::now_utc();
    let before_outage = unique("before");
    s.publish(&before_outage, "TODO_CREATED").await?;
    receiver.wait_for(1, WAIT).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let outage_started = OffsetDateTime::now_utc();
    receiver.respond_with(&[500; 100]);
    let (lost_tag, lost_todo) = (unique("lost-tag"), unique("lost-todo"));
    s.publish(&lost_tag, "TAG_CREATED").await?;
    s.publish(&lost_todo, "TODO_CREATED").await?;
    s.wait_webhook(&id, "disabled by the outage", |w| w["status"] == "disabled").await?;
    s.wait_webhook(&id, "what was parked expired", |w| w["parked"] == 0 && w["health"]["dropped"]["park_expired"] == 2)
        .await?;
    let outage_ended = OffsetDateTime::now_utc();
    receiver.heal();
    let failed_attempts = receiver.received().len();
    let outage_ids: BTreeMap<String, String> = receiver
        .received()
        .iter()
        .skip(1)
        .map(|r| (r.json()["event_id"].as_str().unwrap_or_default().to_owned(), r.header("webhook-id").to_owned()))
        .collect();
    assert_eq!(outage_ids.len(), 2, "both events were tried during the outage");

    // WHEN a range replay is asked while the webhook is disabled THEN 409, nothing sent
    let since = rfc3339(started - time::Duration::seconds(1))?;
    let r = s.replay(&id, json!({"since": since})).await?;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.body);

    // WHEN it is enabled (the parked ones expired: nothing comes back by itself)
    let r = s.call("POST", &format!("/v1/webhooks/{id}/enable"), None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(SETTLE).await;
    let after_enable = receiver.received().len();
    assert_eq!(after_enable, failed_attempts + 1, "only the health check reached the receiver");

    // AND the failed events are replayed from before the outage
    let r = s.replay(&id, json!({"since": since})).await?;
    assert_eq!(r.status, 202, "{}", r.body);
    // THEN exactly the two failed events are scheduled and re-sent, once each, with the
    // webhook-id they had
    assert_eq!(r.body, json!({"scheduled": 2}));
    receiver.wait_for(after_enable + 2, WAIT).await?;
    tokio::time::sleep(SETTLE).await;
    let resent = delivered_since(&receiver, after_enable);
    assert_eq!(resent.len(), 2, "{resent:?}");
    for (event, webhook_id) in &outage_ids {
        assert_eq!(resent.get(event), Some(&vec![webhook_id.clone()]), "{event}");
    }
    assert!(!resent.contains_key(&before_outage), "what succeeded is not re-sent");

    // AND once delivered, nothing failed any more
    for event in [&lost_tag, &lost_todo] {
        eventually(WAIT, "the re-sent delivery logged", || async {
            let ok = s.log(&id, &format!("&status=succeeded&event_id={event}")).await?;
            Ok((!ok.is_empty()).then_some(()))
        })
        .await?;
    }
    let r = s.replay(&id, json!({"since": since, "status": "failed"})).await?;
    assert_eq!(r.body, json!({"scheduled": 0}), "{}", r.body);

    // WHEN everything is replayed THEN every event is sent once more
    let before_all = receiver.received().len();
    let r = s.replay(&id, json!({"since": since, "status": "all"})).await?;
    assert_eq!(r.body, json!({"scheduled": 3}), "{}", r.body);
    receiver.wait_for(before_all + 3, WAIT).await?;
    tokio::time::sleep(SETTLE).await;
    let again = delivered_since(&receiver, before_all);
    assert_eq!(again.len(), 3, "{again:?}");
    assert!(again.values().all(|ids| ids.len() == 1), "{again:?}");

    // WHEN the request is wrong THEN 400 with the field, and nothing is sent
    let sent = receiver.received().len();
    let now = OffsetDateTime::now_utc();
    let bad = [
        (json!({"since": rfc3339(now)?, "until": rfc3339(now - time::Duration::minutes(1))?}), "since"),
        (json!({"since": rfc3339(now - time::Duration::days(4))?}), "since"),
        (json!({"since": "yesterday"}), "since"),
        (json!({"until": rfc3339(now)?}), "since"),
        (json!({"since": since, "status": "pending"}), "status"),
        (json!({"since": since, "webhook_id": id}), "webhook_id"),
    ];
    for (body, field) in bad {
        let r = s.replay(&id, body.clone()).await?;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{body}: {}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{body}");
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(receiver.received().len(), sent, "bad requests send nothing");

    // AND the log filters: by type, only that type's entries (all of them)
    let everything = s.log(&id, "").await?;
    let tags = s.log(&id, "&event_type=TAG_CREATED").await?;
    let expected: Vec<_> = everything.iter().filter(|e| e["type"] == "TAG_CREATED").map(key_of).collect();
    assert_eq!(tags.iter().map(key_of).collect::<Vec<_>>(), expected);
    assert!(tags.iter().any(|e| e["status"] == "parked"), "the outage's parking is there: {tags:?}");
    // AND by time: the outage's entries only, newest first
    let range = format!("&since={}&until={}", rfc3339(outage_started)?, rfc3339(outage_ended)?);
    let during = s.log(&id, &range.replace('+', "%2B")).await?;
    let expected: Vec<_> =
        everything.iter().filter(|e| (outage_started..outage_ended).contains(&attempted_at(e))).map(key_of).collect();
    assert_eq!(during.iter().map(key_of).collect::<Vec<_>>(), expected);
    assert!(during.iter().all(|e| e["event_id"] != before_outage.as_str()), "{during:?}");
    // AND both, with a status
    let failed_tags =
        s.log(&id, &format!("{}&event_type=TAG_CREATED&status=pending", range.replace('+', "%2B"))).await?;
    let expected: Vec<_> =
        during.iter().filter(|e| e["type"] == "TAG_CREATED" && e["status"] == "pending").map(key_of).collect();
    assert!(!expected.is_empty(), "the lost tag event failed at least once: {during:?}");
    assert_eq!(failed_tags.iter().map(key_of).collect::<Vec<_>>(), expected);
    assert!(failed_tags.iter().all(|e| e["event_id"] == lost_tag.as_str()));
    // AND wrong filters are 400 with the field
    for (query, field) in [
        ("?event_type=NOPE", "event_type"),
        ("?since=noon", "since"),
        ("?until=2026-13-01T00:00:00Z", "until"),
        ("?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "since"),
    ] {
        let r = s.call("GET", &format!("/v1/webhooks/{id}/deliveries{query}"), None).await?;
        assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some(field)), "{query}: {}", r.body);
    }

    // WHEN the webhook is disabled by hand THEN nothing is re-sent to it (409)
    let r = s.call("POST", &format!("/v1/webhooks/{id}/disable"), None).await?;
    assert_eq!(r.status, 200);
    let r = s.replay(&id, json!({"since": since, "status": "all"})).await?;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.body);
    Ok(())
}

#[tokio::test]
async fn without_a_success_log_what_was_delivered_on_a_retry_is_not_failed() -> Result<()> {
    // GIVEN a log that keeps no successes, and an event whose first attempt failed and whose
    // retry was delivered (the log shows only the failure)
    let s = Setup::on(Stack::private_with(&[("WEBHOOKS_LOG_SUCCESSES", "false")]).await?).await?;
    let webhooks_tests::Hook { receiver, id, .. } = hook(&s.api, &s.key, json!({})).await?;
    let since = rfc3339(OffsetDateTime::now_utc() - time::Duration::seconds(1))?;
    receiver.respond_with(&[500]);
    let event = unique("late");
    s.publish(&event, "TODO_CREATED").await?;
    receiver.wait_for(2, WAIT).await?;
    let logged = s.log(&id, "").await?;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["status"], "pending");

    // WHEN what failed is replayed THEN it is not (its delivery is recorded delivered)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = s.replay(&id, json!({"since": since})).await?;
    assert_eq!(r.body, json!({"scheduled": 0}), "{}", r.body);
    // AND everything logged is, once
    let r = s.replay(&id, json!({"since": since, "status": "all"})).await?;
    assert_eq!(r.body, json!({"scheduled": 1}), "{}", r.body);
    let got = receiver.wait_for(3, WAIT).await?;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(receiver.received().len(), 3);
    assert_eq!(got[2].header("webhook-id"), got[1].header("webhook-id"));
    Ok(())
}
