//! The ledger: nothing is lost when everything fails now and then (SPEC §1, §6).
//!
//! A private stack whose functions reach the emulator through the fault proxy (a fraction of
//! their AWS calls answer 500, are throttled, or take effect and still answer 500), with a 1 s
//! retry schedule and a 1 s delivery timeout. Several webhooks with different selections point
//! at receivers that fail at random (5xx, 429 with Retry-After, resets, closed connections,
//! answers slower than the timeout); one of them also goes through an outage long enough to
//! trip, park and deactivate its webhook. A few hundred events are published, half through
//! `POST /v1/events`, half straight to the ingest queue (some as EventBridge envelopes), while
//! a matcher and delivery processes are killed mid-batch. Once the queues are quiet, the
//! receivers are fixed and every webhook that is disabled or holds parked deliveries is
//! enabled, so that replays drain. Then every expected (event, webhook) pair must have been
//! delivered (a 200 in time, signature verified): missing = 0. Duplicates are counted and
//! printed, never failed on (delivery is at least once).
//!
//! Scale with `LEDGER_EVENTS` (default 200), `LEDGER_FAULT_RATE` (0.05), `LEDGER_RECEIVER_FAILURE`
//! (0.3), `LEDGER_KILLS` (delivery processes killed, 2), `LEDGER_SEED` (1); `LEDGER_KEEP_LOGS=<dir>`
//! copies the stack's logs there. `make chaos` runs it large.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use serde_json::{Value, json};
use webhooks_tests::chaos::{Chaos, ChaosReceiver, fault_proxy_url, faults, next_unit, set_fault_rate};
use webhooks_tests::{Api, Reply, Stack, cloud_event, signal, unique};

const TYPES: &[&str] = &[
    "TODO_CREATED",
    "TODO_MOVED",
    "TODO_DONE_STATUS_UPDATED",
    "COMMENT_CREATED",
    "TAG_CREATED",
    "TODO_LIST_CREATED",
    "CUSTOM_FIELD_UPDATED",
    "TODO_CHECKLIST_ITEM_CREATED",
];
const PROJECTS: &[&str] = &["p1", "p2", "p3"];
/// Queue visibility for this run: a killed batch comes back this much later (the template's
/// 180 s would outlast the test).
const VISIBILITY_SECONDS: &str = "15";
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest an outage lasts at 0 events; each event adds [`OUTAGE_PER_EVENT`].
const OUTAGE: Duration = Duration::from_secs(120);
/// A tripped webhook's probe makes its attempts from the same queue as every other delivery:
/// the larger the run, the longer each attempt waits behind the backlog, and the outage must
/// outlast the probe's five attempts (it ends as soon as the webhook is seen deactivated).
const OUTAGE_PER_EVENT: Duration = Duration::from_millis(600);

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Debug, Clone)]
struct Event {
    id: String,
    event_type: &'static str,
    company: String,
    project: &'static str,
}

/// A webhook's scopes: (company, project or the whole company).
type Scopes = Vec<(String, Option<&'static str>)>;

/// A webhook of the run: its selection (to compute the expected pairs) and its receiver.
#[derive(Debug)]
struct Hook {
    name: &'static str,
    id: String,
    events: Vec<&'static str>,
    scopes: Scopes,
    receiver: ChaosReceiver,
}

impl Hook {
    /// SPEC §4, for a key that holds every company of the run.
    fn matches(&self, e: &Event) -> bool {
        (self.events.is_empty() || self.events.contains(&e.event_type))
            && (self.scopes.is_empty()
                || self.scopes.iter().any(|(c, p)| *c == e.company && p.is_none_or(|p| p == e.project)))
    }
}

/// The API under faults: 5xx (and transport errors) are retried, as a careful client does.
async fn call(api: &Api, method: &str, path: &str, key: &str, body: Option<Value>) -> Result<Reply> {
    let mut last = String::new();
    for attempt in 0..30u32 {
        match api.call(method, path, Some(key), body.clone()).await {
            Ok(r) if r.status < 500 => return Ok(r),
            Ok(r) => last = format!("{} {}", r.status, r.body),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10) + 1))).await;
    }
    bail!("{method} {path}: still failing: {last}")
}

async fn queue_depth(stack: &Stack, url: &str) -> Result<u64> {
    let attributes = stack
        .sqs()
        .await
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok(attributes.values().filter_map(|v| v.parse::<u64>().ok()).sum())
}

/// Messages waiting or in flight on the ingest and delivery queues.
async fn in_flight(stack: &Stack) -> Result<u64> {
    Ok(queue_depth(stack, &stack.info.ingest_queue_url).await?
        + queue_depth(stack, &stack.info.delivery_queue_url).await?)
}

/// Publishes through `POST /v1/events` in batches of 50, as a well-behaved client does: a 5xx is
/// re-posted (safe: duplicates fan out once), a 429 `rate_limited` is posted again after its
/// `Retry-After` (the key's publish limit refuses the whole batch and enqueues nothing).
async fn publish_http(api: &Api, key: &str, events: &[Event]) -> Result<Published> {
    let mut published = Published::default();
    for chunk in events.chunks(50) {
        let body: Vec<Value> = chunk.iter().map(|e| cloud_event(&e.id, e.event_type, &e.company, e.project)).collect();
        let mut tries = 0;
        loop {
            match api.publish(key, &body).await {
                Ok(r) if r.status == 202 => break,
                Ok(r) if r.status == 429 && r.code() == "rate_limited" => {
                    let wait = r.retry_after.context("a 429 rate_limited carries Retry-After")?;
                    published.held_back += 1;
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                Ok(r) if r.status < 500 => bail!("publishing: {} {}", r.status, r.body),
                _ if tries < 30 => {
                    tries += 1;
                    published.reposts += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => bail!("publishing keeps failing: {other:?}"),
            }
        }
    }
    Ok(published)
}

/// What publishing over HTTP took besides one POST per batch.
#[derive(Debug, Default, Clone, Copy)]
struct Published {
    /// Batches posted again after a 5xx or a transport error.
    reposts: u32,
    /// Batches refused for the key's publish limit and posted again after `Retry-After`.
    held_back: u32,
}

/// Publishes straight to the ingest queue, as producers inside AWS do; every third event in an
/// EventBridge envelope.
async fn publish_sqs(stack: &Stack, events: &[Event]) -> Result<()> {
    let sqs = stack.sqs().await;
    for chunk in events.chunks(10) {
        let mut entries = Vec::new();
        for (i, e) in chunk.iter().enumerate() {
            let event = cloud_event(&e.id, e.event_type, &e.company, e.project);
            let body = if i % 3 == 0 {
                json!({"version": "0", "id": unique("eb"), "detail-type": e.event_type, "source": "app", "detail": event})
            } else {
                event
            };
            entries.push(
                SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body.to_string()).build()?,
            );
        }
        let out =
            sqs.send_message_batch().queue_url(&stack.info.ingest_queue_url).set_entries(Some(entries)).send().await?;
        if !out.failed().is_empty() {
            bail!("SendMessageBatch refused entries: {:?}", out.failed());
        }
    }
    Ok(())
}

/// Distinct (event, webhook) pairs delivered so far.
fn delivered_pairs(hooks: &[Hook]) -> usize {
    let mut pairs = BTreeSet::new();
    for h in hooks {
        for r in h.receiver.requests().iter().filter(|r| r.delivered) {
            let body = r.json();
            if body["type"] != "WEBHOOK_HEALTH_CHECK" {
                pairs.insert((body["event_id"].as_str().unwrap_or_default().to_owned(), h.id.clone()));
            }
        }
    }
    pairs.len()
}

/// Kills one busy process of `binary` (mid-batch); false when none was busy within `within`.
async fn kill_busy(stack: &Stack, binary: &str, within: Duration) -> Result<bool> {
    let started = Instant::now();
    while started.elapsed() < within {
        let busy = stack
            .processes()
            .await?
            .remove(binary)
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.busy)
            .and_then(|p| p.pid);
        if let Some(pid) = busy {
            signal(pid, "KILL")?;
            eprintln!("ledger: killed a busy {binary} process (pid {pid}) at {:.1} s", started.elapsed().as_secs_f64());
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(false)
}

/// Every entry of a webhook's delivery log matching `query` (all pages).
async fn log_entries(api: &Api, key: &str, webhook_id: &str, query: &str) -> Result<Vec<Value>> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let r = call(api, "GET", &format!("/v1/webhooks/{webhook_id}/deliveries?limit=100{query}{page}"), key, None)
            .await?;
        if r.status != 200 {
            bail!("delivery log of {webhook_id}: {} {}", r.status, r.body);
        }
        entries.extend(r.body["data"].as_array().cloned().unwrap_or_default());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(entries),
        }
    }
}

async fn count_messages(stack: &Stack, queue: &str) -> Result<usize> {
    let sqs = stack.sqs().await;
    let mut n = 0;
    loop {
        let out = sqs.receive_message().queue_url(queue).max_number_of_messages(10).wait_time_seconds(1).send().await?;
        if out.messages().is_empty() {
            return Ok(n);
        }
        n += out.messages().len();
    }
}

/// The alerts that reached `queue`, by type (`webhook.disabled`, `webhook.failing`, ...). Each is
/// deleted once counted: there can be thousands, more than one visibility timeout lets a
/// receive loop see once.
async fn count_alerts(stack: &Stack, queue: &str) -> Result<BTreeMap<String, usize>> {
    let sqs = stack.sqs().await;
    let mut by_type = BTreeMap::new();
    loop {
        let out = sqs.receive_message().queue_url(queue).max_number_of_messages(10).wait_time_seconds(1).send().await?;
        if out.messages().is_empty() {
            return Ok(by_type);
        }
        let mut batch = sqs.delete_message_batch().queue_url(queue);
        for (i, m) in out.messages().iter().enumerate() {
            let alert: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
            *by_type.entry(alert["type"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1;
            let entry = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()?;
            batch = batch.entries(entry);
        }
        batch.send().await?;
    }
}

#[tokio::test]
async fn every_event_reaches_every_matching_webhook_despite_faults_crashes_and_failing_receivers() -> Result<()> {
    let started = Instant::now();
    let events_total: usize = setting("LEDGER_EVENTS", 200);
    let fault_rate: f64 = setting("LEDGER_FAULT_RATE", 0.05);
    let receiver_failure: f64 = setting("LEDGER_RECEIVER_FAILURE", 0.3);
    let delivery_kills: u32 = setting("LEDGER_KILLS", 2);
    let seed: u64 = setting("LEDGER_SEED", 1);
    let mut rng = seed;

    // GIVEN a private stack whose functions meet AWS faults, with fast retries and timeouts
    let rate = fault_rate.to_string();
    let seed_text = seed.to_string();
    let stack = Stack::private(
        &[
            ("WEBHOOKS_LOCAL_FAULT_RATE", rate.as_str()),
            ("WEBHOOKS_LOCAL_FAULT_SEED", seed_text.as_str()),
            ("WEBHOOKS_RETRY_SCHEDULE", "1s"),
            ("WEBHOOKS_DELIVERY_TIMEOUT", "1s"),
        ],
        &[],
    )
    .await?;
    // LEDGER_FAULT_RATE=0: no proxy at all (a baseline).
    let proxy = fault_proxy_url(&stack)?;
    assert_eq!(proxy.is_some(), fault_rate > 0.0, "a fault proxy runs exactly when faults are asked for");
    let sqs = stack.sqs().await;
    for queue in [&stack.info.ingest_queue_url, &stack.info.delivery_queue_url] {
        sqs.set_queue_attributes()
            .queue_url(queue)
            .attributes(QueueAttributeName::VisibilityTimeout, VISIBILITY_SECONDS)
            .send()
            .await?;
    }
    let alerts = stack.subscribe_to_alerts().await?;
    let api = Api::new(&stack);
    let admin = stack.info.admin_key.clone().context("admin key")?;

    // AND, set up without faults (the subject is the flow of events, not the API): a key for
    // two companies and four webhooks with different selections, each with a failing receiver
    if let Some(proxy) = &proxy {
        set_fault_rate(proxy, 0.0).await?;
    }
    let (c1, c2) = (unique("acme"), unique("globex"));
    let (_, key) = api.create_key(&admin, &[&c1, &c2], &["manage", "publish"]).await?;
    let chaos = |n: u64| Chaos {
        failure_rate: receiver_failure,
        slow: DELIVERY_TIMEOUT + Duration::from_millis(700),
        seed: seed * 1000 + n,
    };
    let specs: Vec<(&'static str, Vec<&'static str>, Scopes)> = vec![
        ("everything", vec![], vec![]),
        (
            "records of c1/p1",
            vec!["TODO_CREATED", "TODO_MOVED", "TODO_DONE_STATUS_UPDATED"],
            vec![(c1.clone(), Some("p1"))],
        ),
        (
            "comments and tags",
            vec!["COMMENT_CREATED", "TAG_CREATED", "TODO_CREATED"],
            vec![(c2.clone(), None), (c1.clone(), Some("p2"))],
        ),
        ("all of c1, with an outage", vec![], vec![(c1.clone(), None)]),
    ];
    let mut hooks = Vec::new();
    for (n, (name, events, scopes)) in specs.into_iter().enumerate() {
        let receiver = ChaosReceiver::start(chaos(n as u64)).await?;
        let scope_json: Vec<Value> = scopes
            .iter()
            .map(|(c, p)| match p {
                Some(p) => json!({"company_id": c, "project_id": p}),
                None => json!({"company_id": c}),
            })
            .collect();
        let created = api
            .create_webhook(&key, json!({"url": receiver.url, "name": name, "events": events, "scopes": scope_json}))
            .await?;
        receiver.verify_with(created["secret"].as_str().context("secret")?)?;
        hooks.push(Hook { name, id: created["id"].as_str().context("id")?.to_owned(), events, scopes, receiver });
    }
    if let Some(proxy) = &proxy {
        set_fault_rate(proxy, fault_rate).await?;
    }

    // WHEN a few hundred events are published, half over HTTP and half to the ingest queue,
    // while one receiver goes down for a while and processes are killed mid-batch
    let events: Vec<Event> = (0..events_total)
        .map(|i| Event {
            id: format!("ledger-{seed}-{i}"),
            event_type: TYPES[(next_unit(&mut rng) * TYPES.len() as f64) as usize],
            company: if next_unit(&mut rng) < 0.5 { c1.clone() } else { c2.clone() },
            project: PROJECTS[(next_unit(&mut rng) * PROJECTS.len() as f64) as usize],
        })
        .collect();
    let (over_http, over_sqs) = events.split_at(events.len() / 2);
    // Until its webhook is deactivated (trip, parking, a probe whose five attempts fail), at
    // most OUTAGE and OUTAGE_PER_EVENT per event; it ends when the test sees the webhook
    // disabled.
    hooks[3].receiver.outage_after(10, OUTAGE + OUTAGE_PER_EVENT * events_total as u32);
    let publishing = async {
        let (http, sqs) = tokio::join!(publish_http(&api, &key, over_http), publish_sqs(&stack, over_sqs));
        sqs?;
        http.map(|published| (published, started.elapsed()))
    };
    let killing = async {
        let matcher_killed = kill_busy(&stack, "matcher", Duration::from_secs(20)).await?;
        let mut kills = 0u32;
        // Spread over the busy part of the run.
        let spacing = Duration::from_millis(1500 + 5 * events_total as u64);
        for _ in 0..delivery_kills {
            tokio::time::sleep(spacing).await;
            if kill_busy(&stack, "delivery", Duration::from_secs(30)).await? {
                kills += 1;
            }
        }
        anyhow::Ok((matcher_killed, kills))
    };
    let (published, killed) = tokio::join!(publishing, killing);
    let ((http_published, published_at), (matcher_killed, delivery_killed)) = (published?, killed?);
    let kills = delivery_killed + u32::from(matcher_killed);
    eprintln!(
        "ledger: {} events published in {:.1} s ({} HTTP batches re-posted after an error, {} after a 429)",
        events.len(),
        published_at.as_secs_f64(),
        http_published.reposts,
        http_published.held_back,
    );
    assert!(delivery_killed >= 1, "a delivery process was killed mid-batch at least once");

    // AND the stack works through it until its queues are quiet (retries, parking)
    // Generous: a loaded 2-core machine delivers a few pairs per second.
    // The emulator's pace under injected faults, not AWS's: about a second per event at worst.
    let budget = Duration::from_secs(120) + Duration::from_millis(1200 * events_total as u64);
    let expected_pairs = events.iter().map(|e| hooks.iter().filter(|h| h.matches(e)).count()).sum::<usize>();
    let mut quiet_checks = 0;
    let mut last_progress = Instant::now();
    let mut outage_hook_disabled = false;
    let mut last_status_check = Instant::now();
    loop {
        // The queues can go quiet right after the probe's last attempt deactivated the webhook,
        // before the next look at it: one last look then.
        let quiet = quiet_checks >= 3;
        if !outage_hook_disabled && (quiet || last_status_check.elapsed() > Duration::from_secs(3)) {
            last_status_check = Instant::now();
            let w = call(&api, "GET", &format!("/v1/webhooks/{}", hooks[3].id), &key, None).await?.body;
            if w["status"] == "disabled" {
                outage_hook_disabled = true;
                hooks[3].receiver.end_outage();
                eprintln!(
                    "ledger: {:.0} s: \"{}\" deactivated ({}), its receiver is back",
                    started.elapsed().as_secs_f64(),
                    hooks[3].name,
                    w["disabled_reason"]
                );
            }
        }
        if quiet {
            break;
        }
        let n = in_flight(&stack).await?;
        if started.elapsed() > budget {
            bail!("the queues did not drain within {budget:?}: {n} messages in flight");
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "ledger: {:.0} s: {n} messages in flight, {}/{expected_pairs} pairs delivered",
                started.elapsed().as_secs_f64(),
                delivered_pairs(&hooks)
            );
        }
        quiet_checks = if n == 0 { quiet_checks + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let chaos_phase = started.elapsed();
    let requests_under_chaos: usize = hooks.iter().map(|h| h.receiver.requests().len()).sum();

    // AND then the receivers are fixed, and every webhook that was disabled or holds parked
    // deliveries is enabled, until everything parked has been re-sent
    for h in &hooks {
        h.receiver.calm();
    }
    let mut enables = 0;
    let mut replayed = 0;
    // Enable again only once a replay has stalled: a replay takes a while, and enabling again
    // meanwhile only queues the same parked deliveries twice (duplicates, not progress).
    let mut last_change: BTreeMap<String, (String, u64, Instant)> = BTreeMap::new();
    let mut enabled_once = BTreeSet::new();
    let mut settled_checks = 0;
    let mut states = Vec::new();
    while settled_checks < 3 {
        if started.elapsed() > budget + Duration::from_secs(120) + Duration::from_millis(300 * events_total as u64) {
            bail!("the replays did not drain: {states:?}; {} messages in flight", in_flight(&stack).await?);
        }
        states.clear();
        for h in &hooks {
            let w = call(&api, "GET", &format!("/v1/webhooks/{}", h.id), &key, None).await?.body;
            let parked = w["parked"].as_u64().unwrap_or(0);
            let status = w["status"].as_str().unwrap_or("?").to_owned();
            let seen = (status.clone(), parked);
            let changed = last_change.get(&h.id).is_none_or(|(s, p, _)| (s.clone(), *p) != seen);
            if changed {
                last_change.insert(h.id.clone(), (status.clone(), parked, Instant::now()));
            }
            let stalled = last_change.get(&h.id).is_some_and(|(_, _, t)| t.elapsed() > Duration::from_secs(15));
            if (status != "active" || parked > 0) && (!enabled_once.contains(&h.id) || stalled) {
                let r = call(&api, "POST", &format!("/v1/webhooks/{}/enable", h.id), &key, None).await?;
                if r.status == 200 {
                    enables += 1;
                    replayed += r.body["replayed"].as_u64().unwrap_or(0);
                    enabled_once.insert(h.id.clone());
                    last_change.insert(h.id.clone(), (status, parked, Instant::now()));
                }
            }
            states.push((h.name, w["status"].as_str().unwrap_or("?").to_owned(), parked));
        }
        let n = in_flight(&stack).await?;
        let settled = states.iter().all(|(_, s, p)| s == "active" && *p == 0) && n == 0;
        if last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "ledger: {:.0} s: replaying: {states:?}, {n} messages in flight, {}/{expected_pairs} pairs delivered",
                started.elapsed().as_secs_f64(),
                delivered_pairs(&hooks)
            );
        }
        settled_checks = if settled { settled_checks + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    // THEN every (event, webhook) pair the selections call for was delivered, signature verified
    let mut expected = BTreeSet::new();
    for e in &events {
        for h in &hooks {
            if h.matches(e) {
                expected.insert((e.id.clone(), h.id.clone()));
            }
        }
    }
    let mut delivered: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut unverified = 0;
    let mut foreign = Vec::new();
    let mut answers: BTreeMap<&'static str, usize> = BTreeMap::new();
    for h in &hooks {
        for r in h.receiver.requests() {
            *answers.entry(r.answer.label()).or_insert(0) += 1;
            if r.verified != Some(true) {
                unverified += 1;
            }
            let body = r.json();
            if body["type"] == "WEBHOOK_HEALTH_CHECK" || !r.delivered {
                continue;
            }
            if body["webhook_id"] != h.id.as_str() {
                foreign.push(format!("{} got a delivery for {}", h.name, body["webhook_id"]));
            }
            *delivered.entry((body["event_id"].as_str().unwrap_or_default().to_owned(), h.id.clone())).or_insert(0) +=
                1;
        }
    }
    let missing: Vec<&(String, String)> = expected.iter().filter(|p| !delivered.contains_key(*p)).collect();
    let unexpected: Vec<&(String, String)> = delivered.keys().filter(|p| !expected.contains(*p)).collect();
    // Two kinds of repeated requests: the product's duplicates (a request sent again after the
    // receiver already answered 2xx: at-least-once delivery's price) and retries after a
    // failed attempt (by design).
    let duplicates: u32 = delivered.values().map(|n| n - 1).sum();
    let mut retries_after_failure = 0;
    for h in &hooks {
        let mut answered: BTreeMap<String, bool> = BTreeMap::new();
        for r in h.receiver.requests() {
            let body = r.json();
            if body["type"] == "WEBHOOK_HEALTH_CHECK" {
                continue;
            }
            let event_id = body["event_id"].as_str().unwrap_or_default().to_owned();
            if let Some(false) = answered.get(&event_id) {
                retries_after_failure += 1
            }
            let done = answered.entry(event_id).or_insert(false);
            *done = *done || r.delivered;
        }
    }
    let duplicate_share = f64::from(duplicates) / expected.len().max(1) as f64;
    // A few of the duplicated pairs, request by request, to tell their causes apart: a second
    // send seconds apart with another `webhook-timestamp` (a re-send after a lost outcome, or a
    // replay) or two at once (two receives).
    let t0 = hooks.iter().flat_map(|h| h.receiver.requests()).map(|r| r.at).min();
    let mut shown = 0;
    for h in &hooks {
        let requests = h.receiver.requests();
        for ((event_id, webhook_id), n) in &delivered {
            if *n < 2 || webhook_id != &h.id || shown >= 8 {
                continue;
            }
            shown += 1;
            let sends: Vec<String> = requests
                .iter()
                .filter(|r| r.json()["event_id"].as_str() == Some(event_id.as_str()))
                .map(|r| {
                    let at = t0.map_or(0.0, |t0| r.at.duration_since(t0).as_secs_f64());
                    format!("{at:.1}s {} ts={}", r.answer.label(), r.header("webhook-timestamp"))
                })
                .collect();
            eprintln!("ledger: duplicate {} {event_id}: {}", h.name, sends.join(", "));
        }
    }

    let mut parked = 0;
    let mut dropped = BTreeMap::new();
    for h in &hooks {
        parked += log_entries(&api, &key, &h.id, "&status=parked").await?.len();
        let w = call(&api, "GET", &format!("/v1/webhooks/{}", h.id), &key, None).await?.body;
        if let Some(d) = w["health"]["dropped"].as_object() {
            for (reason, n) in d {
                *dropped.entry(reason.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
            }
        }
    }
    let alerts_by_type = count_alerts(&stack, &alerts).await?;
    let ingest_dlq = count_messages(&stack, &stack.info.ingest_dlq_url).await?;
    let delivery_dlq = count_messages(&stack, &stack.info.delivery_dlq_url).await?;
    let injected = match &proxy {
        Some(proxy) => faults(proxy).await?,
        None => json!({"injected": 0}),
    };

    eprintln!(
        "ledger: events={} pairs={} delivered={} parked={} missing={} duplicates={} ({:.2} % of pairs, goal <= 1 %) \
         retries_after_failure={} faults_injected={} kills={}",
        events.len(),
        expected.len(),
        delivered.len(),
        parked,
        missing.len(),
        duplicates,
        100.0 * duplicate_share,
        retries_after_failure,
        injected["injected"],
        kills
    );
    eprintln!(
        "ledger: receiver requests={} under chaos={} answers={answers:?}; alerts={alerts_by_type:?} enables={enables} \
         replayed={replayed} dropped={dropped:?} reposts={} dlq(ingest={ingest_dlq}, delivery={delivery_dlq})",
        answers.values().sum::<usize>(),
        requests_under_chaos,
        http_published.reposts,
    );
    eprintln!(
        "ledger: aws requests={} faults={} (after taking effect: {}) by operation={}; forwards slower than 1 s: {} (slowest {})",
        injected["requests"],
        injected["by_kind"],
        injected["by_kind"]["after"],
        injected["by_operation"],
        injected["slow_forwards"],
        injected["slowest_forward"]
    );
    if let Some(timing) = injected["timing"].as_object() {
        let mut by_cost: Vec<(&String, &Value)> = timing.iter().collect();
        by_cost.sort_by(|a, b| {
            b.1["emulator_seconds"]
                .as_f64()
                .partial_cmp(&a.1["emulator_seconds"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let top: Vec<String> = by_cost
            .iter()
            .take(6)
            .map(|(op, t)| {
                format!("{op} {}x {}s (+{}s waiting)", t["requests"], t["emulator_seconds"], t["waiting_seconds"])
            })
            .collect();
        eprintln!("ledger: emulator time through the proxy: {}", top.join(", "));
    }
    eprintln!(
        "ledger: published in {:.1} s, queues quiet at {:.1} s, replays drained at {:.1} s (fault rate {fault_rate}, receiver failure rate {receiver_failure}, seed {seed})",
        published_at.as_secs_f64(),
        chaos_phase.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    if let Ok(dir) = std::env::var("LEDGER_KEEP_LOGS") {
        let target = std::path::Path::new(&dir);
        std::fs::create_dir_all(target)?;
        for entry in std::fs::read_dir(stack.state_dir.join("logs"))?.flatten() {
            std::fs::copy(entry.path(), target.join(entry.file_name()))?;
        }
        eprintln!("ledger: logs kept in {dir}");
    }
    if !missing.is_empty() {
        let delivery_logs = stack.function_logs("delivery");
        let matcher_logs = stack.function_logs("matcher");
        for (event_id, webhook_id) in missing.iter().take(10) {
            let name = hooks.iter().find(|h| &h.id == webhook_id).map_or("?", |h| h.name);
            eprintln!("MISSING {event_id} -> {webhook_id} ({name})");
            for entry in log_entries(&api, &key, webhook_id, &format!("&event_id={event_id}")).await? {
                eprintln!("  delivery log: {entry}");
            }
            let quoted = format!("\"{event_id}\"");
            for line in matcher_logs.lines().chain(delivery_logs.lines()).filter(|l| l.contains(&quoted)).take(30) {
                eprintln!("  function log: {line}");
            }
        }
    }

    assert!(outage_hook_disabled, "the webhook whose receiver was down got deactivated");
    assert_eq!(unverified, 0, "every request carries a valid signature");
    assert!(foreign.is_empty(), "{foreign:?}");
    assert!(unexpected.is_empty(), "deliveries no selection calls for: {unexpected:?}");
    assert_eq!(ingest_dlq + delivery_dlq, 0, "nothing reached a dead-letter queue");
    assert_eq!(missing.len(), 0, "every (event, webhook) pair is delivered: missing {missing:?}");
    Ok(())
}
