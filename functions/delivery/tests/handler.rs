//! The delivery handler on the in-memory ports: every decision of SPEC §6 (success, each kind
//! of retry, trip and probe, the deactivation rule, 410, every park guard, replay bounds, every
//! drop reason) and what the handler does when a port fails, with no emulator.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use delivery::{Deliverer, DeliveryConfig, DeliveryPorts, ParkTurns};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use webhooks_aws::memory::{
    ManualClock, MemoryAlerts, MemoryDynamoDb, MemoryQueue, MemoryReceiver, MemoryRetries, MemorySecrets, owner_key,
};
use webhooks_core::attempt::{SendFailure, SendOutcome};
use webhooks_core::event::{format_utc, parse_ingest_body};
use webhooks_core::message::{Delivery, DeliveryQueueMessage, ParkSlot, Purge, Replay, Replayed, Resend};
use webhooks_core::model::{DisabledReason, DropReason, Scope, SignatureScheme, WebhookStatus};
use webhooks_core::ports::{HealthRecord, StoredSecret, StoredWebhook};
use webhooks_core::resources::{Webhook, log_status};
use webhooks_core::retry::RetrySchedule;
use webhooks_core::signing::{SigningSecret, delivery_id, signature_header, webhook_message_id};

const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);
const URL: &str = "https://receiver.example/hooks";
const MAX_ATTEMPTS: u32 = 5;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Delivery on the in-memory ports.
struct Memory;

impl DeliveryPorts for Memory {
    type Webhooks = MemoryDynamoDb;
    type Health = MemoryDynamoDb;
    type Attempts = MemoryDynamoDb;
    type Parking = MemoryDynamoDb;
    type Log = MemoryDynamoDb;
    type Queue = MemoryQueue;
    type Retries = MemoryRetries;
    type Alerts = MemoryAlerts;
    type Secrets = MemorySecrets;
    type Sender = MemoryReceiver;
    type Clock = ManualClock;
}

/// The handler and a handle on each of its ports, to arrange and to look inside.
struct World {
    db: MemoryDynamoDb,
    queue: MemoryQueue,
    retries: MemoryRetries,
    alerts: MemoryAlerts,
    secrets: MemorySecrets,
    receiver: MemoryReceiver,
    clock: ManualClock,
    secret: SigningSecret,
    deliverer: Deliverer<Memory>,
}

impl World {
    fn new() -> Result<Self> {
        Self::with(DeliveryConfig {
            max_attempts: MAX_ATTEMPTS,
            schedule: RetrySchedule::parse("30s,5m")?,
            park_limit: 3,
            ..DeliveryConfig::default()
        })
    }

    fn with(config: DeliveryConfig) -> Result<Self> {
        let clock = ManualClock::at(NOW);
        let db = MemoryDynamoDb::new(clock.clone());
        let (queue, retries, alerts) = (MemoryQueue::default(), MemoryRetries::default(), MemoryAlerts::default());
        let (secrets, receiver) = (MemorySecrets::default(), MemoryReceiver::default());
        let deliverer = Deliverer::<Memory> {
            webhooks: db.clone(),
            health: db.clone(),
            attempts: db.clone(),
            parking: db.clone(),
            log: db.clone(),
            queue: queue.clone(),
            retries: retries.clone(),
            alerts: alerts.clone(),
            secrets: secrets.clone(),
            sender: receiver.clone(),
            clock: clock.clone(),
            config,
            park_turns: ParkTurns::default(),
        };
        let secret = SigningSecret::generate()?;
        let world = Self { db, queue, retries, alerts, secrets, receiver, clock, secret, deliverer };
        world.key("key_1", &["acme"]);
        world.webhook("wh_1", WebhookStatus::Active, None);
        Ok(world)
    }

    fn key(&self, id: &str, companies: &[&str]) {
        self.db.put_key(owner_key(id, companies));
    }

    /// A webhook of `key_1` sending every event of `acme` to [`URL`], signed with the world's
    /// secret.
    fn webhook(&self, id: &str, status: WebhookStatus, disabled: Option<(DisabledReason, OffsetDateTime)>) {
        self.db.put_webhook(StoredWebhook {
            webhook: Webhook {
                id: id.to_owned(),
                owner_key_id: "key_1".to_owned(),
                name: None,
                description: None,
                url: URL.to_owned(),
                events: Vec::new(),
                scopes: vec![Scope { company_id: "acme".to_owned(), project_id: None }],
                headers: [("x-tenant".to_owned(), "acme".to_owned())].into(),
                rate_limit: None,
                filters: Vec::new(),
                status,
                disabled_reason: disabled.map(|(reason, _)| reason),
                signature_scheme: SignatureScheme::V1,
                public_key: None,
                created_at: "2026-11-01T00:00:00Z".to_owned(),
                updated_at: "2026-11-01T00:00:00Z".to_owned(),
            },
            secrets: vec![StoredSecret {
                ciphertext: self.secret.to_string(),
                expires_at: None,
                scheme: SignatureScheme::V1,
            }],
            version: 1,
            partitions: Default::default(),
            alert_pending: None,
            disabled_at_ms: disabled.map(|(_, at)| ms(at)),
        });
    }

    /// The webhook's counters with `failures` in a streak (tripped from `MAX_ATTEMPTS`).
    fn failing(&self, id: &str, failures: u32) {
        let mut record = self.db.health(id);
        record.health.consecutive_failures = failures;
        record.health.failing_since = Some(format_utc(NOW - time::Duration::hours(1)));
        self.db.put_health(id, record);
    }

    /// Hands one batch to the handler.
    async fn handle(&self, records: Vec<SqsMessage>) -> Result<SqsBatchResponse> {
        self.handle_until(records, None).await
    }

    /// Hands one batch to the handler, in an invocation that ends at `deadline`.
    async fn handle_until(
        &self,
        records: Vec<SqsMessage>,
        deadline: Option<OffsetDateTime>,
    ) -> Result<SqsBatchResponse> {
        let mut event = SqsEvent::default();
        event.records = records;
        let mut context = Context::default();
        context.deadline = deadline.map_or(0, |d| u64::try_from(ms(d)).unwrap_or(0));
        self.deliverer.handle(LambdaEvent::new(event, context)).await.map_err(|e| e.to_string().into())
    }

    fn drops(&self, id: &str) -> HashMap<String, u64> {
        self.db.health(id).health.dropped.into_iter().collect()
    }

    /// The alerts published so far, of type `webhook.<kind>`.
    fn alerts(&self, kind: &str) -> Vec<serde_json::Value> {
        let kind = format!("webhook.{kind}");
        self.alerts
            .published()
            .iter()
            .filter_map(|a| serde_json::from_str::<serde_json::Value>(&a.message).ok())
            .filter(|a| a["type"] == kind.as_str())
            .collect()
    }

    fn statuses(&self, id: &str) -> Vec<String> {
        self.db.log(id).into_iter().map(|e| e.status).collect()
    }
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A delivery of event `event_id` of `acme` to `webhook_id`, matched at `queued_at`.
fn delivery(webhook_id: &str, event_id: &str, queued_at: OffsetDateTime) -> Result<Delivery> {
    let body = json!({
        "specversion": "1.0", "id": event_id, "source": "app/companies/acme/projects/p1", "type": "TODO_CREATED",
        "companyid": "acme", "projectid": "p1", "data": {"title": "Ship it"}
    });
    let event = parse_ingest_body(&body.to_string(), NOW).map_err(|e| e.message)?;
    let message_id = webhook_message_id(&event.company_id, &event.source, &event.id);
    Ok(Delivery {
        delivery_id: delivery_id(&message_id, webhook_id, 0),
        webhook_id: webhook_id.to_owned(),
        webhook_message_id: message_id,
        event,
        generation: 0,
        queued_at: ms(queued_at),
        send_at_ms: None,
        owner_key_id: None,
    })
}

/// The SQS record of `message`, on its `receives`-th receive.
fn record(message: &DeliveryQueueMessage, receives: u32) -> SqsMessage {
    let mut r = SqsMessage::default();
    let body = message.to_json();
    r.message_id = Some(format!("m-{}", webhooks_core::signing::sha256_hex(&body)));
    r.receipt_handle = Some(format!("rh-{receives}-{}", r.message_id.as_deref().unwrap_or_default()));
    r.body = Some(body);
    r.attributes.insert("ApproximateReceiveCount".to_owned(), receives.to_string());
    r
}

fn first(d: &Delivery) -> SqsMessage {
    record(&DeliveryQueueMessage::Delivery(d.clone()), 1)
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

fn status(code: u16) -> SendOutcome {
    SendOutcome::response(code, format!("answer {code}"), None, 5)
}

// ---------------------------------------------------------------------- success

#[tokio::test]
async fn a_first_attempt_success_is_sent_signed_once_logged_and_writes_no_health() -> Result {
    // GIVEN an active, healthy webhook that succeeded a moment ago
    let w = World::new()?;
    let mut record = HealthRecord::default();
    record.health.last_success_at = Some(format_utc(NOW - time::Duration::seconds(5)));
    w.db.put_health("wh_1", record.clone());
    let d = delivery("wh_1", "evt-1", NOW)?;
    // WHEN its delivery is received
    let response = w.handle(vec![first(&d)]).await?;
    // THEN it is done, sent once with the Standard Webhooks headers and the webhook's own
    let requests = w.receiver.requests();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.url, URL);
    assert_eq!(sent.header("webhook-id"), Some(d.webhook_message_id.as_str()));
    assert_eq!(sent.header("x-tenant"), Some("acme"));
    let timestamp = NOW.unix_timestamp();
    assert_eq!(sent.header("webhook-timestamp"), Some(timestamp.to_string().as_str()));
    let expected = signature_header(&[w.secret.clone().into()], &d.webhook_message_id, timestamp, sent.body.as_bytes());
    assert_eq!(sent.header("webhook-signature"), Some(expected.as_str()));
    let body: serde_json::Value = serde_json::from_str(&sent.body)?;
    assert_eq!((body["type"].as_str(), body["webhook_id"].as_str()), (Some("TODO_CREATED"), Some("wh_1")));
    // AND it is logged as succeeded with its payload, marked delivered, and the health
    // record is untouched (no write for a healthy webhook's first-attempt success)
    assert_eq!(w.statuses("wh_1"), [log_status::SUCCEEDED]);
    assert!(w.db.attempt_record(&d.delivery_id).delivered);
    assert_eq!(w.db.health("wh_1"), record);
    assert!(w.retries.changes().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_second_receive_of_a_delivered_message_sends_nothing() -> Result {
    // GIVEN a delivery delivered on its first receive
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    w.handle(vec![first(&d)]).await?;
    // WHEN SQS hands the same message out again
    let response = w.handle(vec![record(&DeliveryQueueMessage::Delivery(d.clone()), 2)]).await?;
    // THEN it is deleted and nothing is sent again
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.receiver.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_copy_of_a_delivered_delivery_is_not_parked_while_its_webhook_is_down() -> Result {
    // GIVEN a delivery delivered, then its webhook deactivated for failing
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    w.handle(vec![first(&d)]).await?;
    assert_eq!(w.receiver.requests().len(), 1);
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Failing, NOW)));
    // WHEN a copy of it arrives as a new message (a fan-out repeated after a crash queues the
    // same delivery id again)
    let response = w.handle(vec![first(&d)]).await?;
    // THEN it is done: not parked (a replay would send it a second time), not sent
    assert!(failed_ids(&response).is_empty());
    assert!(w.db.parked("wh_1").is_empty());
    assert_eq!(w.receiver.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_success_after_failures_ends_the_streak_and_replays_what_was_parked() -> Result {
    // GIVEN a webhook with two failures in a row and one delivery parked
    let w = World::new()?;
    w.failing("wh_1", 2);
    let parked = delivery("wh_1", "evt-old", NOW - time::Duration::hours(2))?;
    w.db.put_parked("2026-11-28T08:00:00.000000Z#old", parked, NOW.unix_timestamp() + 3600);
    // WHEN a delivery succeeds
    w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    // THEN the streak ends and the parked delivery's replay is queued (its request cleared)
    let health = w.db.health("wh_1");
    assert_eq!(health.health.consecutive_failures, 0);
    assert_eq!(health.health.failing_since, None);
    assert_eq!(health.replay_requested_at, None, "the request is cleared once the replay is queued");
    let queued: Vec<DeliveryQueueMessage> =
        w.queue.messages().iter().map(|m| DeliveryQueueMessage::from_json(m)).collect::<std::result::Result<_, _>>()?;
    assert!(
        matches!(&queued[..], [DeliveryQueueMessage::Replay(Replay { webhook_id, after: None, until: Some(_) })] if webhook_id == "wh_1")
    );
    Ok(())
}

// ---------------------------------------------------------------------- retries

#[tokio::test]
async fn a_failed_attempt_is_counted_logged_and_retried_on_the_schedule() -> Result {
    // GIVEN a receiver answering 500
    let w = World::new()?;
    w.receiver.answer(URL, [status(500)]);
    let d = delivery("wh_1", "evt-1", NOW)?;
    let r = first(&d);
    // WHEN the delivery is received
    let response = w.handle(vec![r.clone()]).await?;
    // THEN the record is handed back, visible again after the schedule's 30 s ± 20 %
    assert_eq!(failed_ids(&response), [r.message_id.clone().unwrap_or_default()]);
    let changes = w.retries.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(Some(changes[0].0.as_str()), r.receipt_handle.as_deref());
    assert!((24..=36).contains(&changes[0].1), "{changes:?}");
    // AND attempt 1 is counted, the streak has one failure with its status, and the log says
    // pending with the next attempt's time and the receiver's answer
    assert_eq!(w.db.attempt_record(&d.delivery_id).attempts_made, 1);
    let health = w.db.health("wh_1").health;
    assert_eq!((health.consecutive_failures, health.last_status_code), (1, Some(500)));
    assert_eq!(health.last_error.as_deref(), Some("HTTP 500"));
    let log = w.db.log("wh_1");
    assert_eq!(log[0].status, log_status::PENDING);
    assert_eq!(log[0].response_body.as_deref(), Some("answer 500"));
    assert!(log[0].next_attempt_at.is_some());
    Ok(())
}

#[tokio::test]
async fn a_timeout_is_a_failed_attempt_recorded_by_its_code() -> Result {
    let w = World::new()?;
    w.receiver.answer(URL, [SendOutcome::failed(SendFailure::Timeout, 10_000)]);
    let d = delivery("wh_1", "evt-1", NOW)?;
    w.handle(vec![first(&d)]).await?;
    let health = w.db.health("wh_1").health;
    assert_eq!((health.last_error.as_deref(), health.last_status_code), (Some("timeout"), None));
    let log = w.db.log("wh_1");
    assert_eq!((log[0].error.as_deref(), log[0].status_code), (Some("timeout"), None));
    Ok(())
}

#[tokio::test]
async fn retry_after_of_a_503_is_honoured_within_twice_the_delay() -> Result {
    // GIVEN receivers answering 503 asking to come back in an hour, and a 500 that also says
    // 50 s
    for (code, asked, low, high) in [(503, "3600", 48, 72), (503, "10", 24, 36), (500, "50", 24, 36)] {
        let w = World::new()?;
        w.receiver.answer(URL, [SendOutcome::response(code, "", Some(asked.to_owned()), 1)]);
        // WHEN the delivery fails
        w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
        // THEN the wait honours Retry-After within [d, 2d] of the 30 s ± 20 % delay, and
        // only for 503; the attempt counts as failed
        let seconds = w.retries.changes()[0].1;
        assert!((low..=high).contains(&seconds), "{code} with Retry-After {asked}: {seconds} s");
        assert_eq!(w.db.health("wh_1").health.consecutive_failures, 1);
    }
    Ok(())
}

#[tokio::test]
async fn a_429_with_retry_after_slows_down_without_failing_three_times_then_counts() -> Result {
    // GIVEN a receiver answering 429 with Retry-After: 50, four times, then 200
    let w = World::new()?;
    let slow = || SendOutcome::response(429, "slow down", Some("50".to_owned()), 1);
    w.receiver.answer(URL, [slow(), slow(), slow(), slow()]);
    let d = delivery("wh_1", "evt-1", NOW)?;
    // WHEN the delivery is received three times
    for receive in 1..=3 {
        let response = w.handle(vec![record(&DeliveryQueueMessage::Delivery(d.clone()), receive)]).await?;
        assert_eq!(failed_ids(&response).len(), 1);
    }
    // THEN each came back after exactly the 50 s asked, as attempt 1 again, with no failure,
    // no trip, no alert
    assert_eq!(w.retries.changes().iter().map(|c| c.1).collect::<Vec<_>>(), [50, 50, 50]);
    assert_eq!(w.db.attempt_record(&d.delivery_id).attempts_made, 0);
    assert_eq!(w.db.health("wh_1").health.consecutive_failures, 0);
    assert!(w.alerts.published().is_empty());
    let log = w.db.log("wh_1");
    assert!(log.iter().all(|e| e.attempt == Some(1) && e.status == log_status::PENDING && e.status_code == Some(429)));
    // WHEN it answers 429 a fourth time THEN that counts as failed attempt 1, honouring
    // Retry-After within [d, 2d]
    w.handle(vec![record(&DeliveryQueueMessage::Delivery(d.clone()), 4)]).await?;
    assert_eq!(w.db.attempt_record(&d.delivery_id).attempts_made, 1);
    assert_eq!(w.db.health("wh_1").health.consecutive_failures, 1);
    assert!((48..=72).contains(&w.retries.changes()[3].1), "{:?}", w.retries.changes());
    // AND the next receive is attempt 2, delivered
    w.handle(vec![record(&DeliveryQueueMessage::Delivery(d.clone()), 5)]).await?;
    assert!(w.db.attempt_record(&d.delivery_id).delivered);
    assert_eq!(w.receiver.requests().len(), 5);
    Ok(())
}

#[tokio::test]
async fn a_429_asking_for_a_day_waits_at_most_what_sqs_allows() -> Result {
    let w = World::new()?;
    w.receiver.answer(URL, [SendOutcome::response(429, "", Some("86400".to_owned()), 1)]);
    let response = w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    assert_eq!(failed_ids(&response).len(), 1);
    let seconds = w.retries.changes()[0].1;
    assert!((43_000..=43_200).contains(&seconds), "{seconds}");
    Ok(())
}

#[tokio::test]
async fn a_retry_continues_from_the_attempts_recorded_not_from_the_receive_count() -> Result {
    // GIVEN a delivery whose first attempt failed, then received a sixth time (receives
    // without attempts: throttles, crashes)
    let w = World::new()?;
    w.receiver.answer(URL, [status(500), status(500)]);
    let d = delivery("wh_1", "evt-1", NOW)?;
    w.handle(vec![first(&d)]).await?;
    w.clock.advance(time::Duration::seconds(40));
    // WHEN it fails again
    w.handle(vec![record(&DeliveryQueueMessage::Delivery(d.clone()), 6)]).await?;
    // THEN that was attempt 2, retried after the schedule's second delay (5 m ± 20 %)
    assert_eq!(w.db.attempt_record(&d.delivery_id).attempts_made, 2);
    let seconds = w.retries.changes()[1].1;
    assert!((240..=360).contains(&seconds), "{seconds}");
    assert_eq!(w.db.log("wh_1").iter().filter_map(|e| e.attempt).collect::<Vec<_>>(), [1, 2]);
    Ok(())
}

#[tokio::test]
async fn an_attempt_claimed_by_another_receive_is_handed_back_unsent() -> Result {
    // GIVEN a receive that claimed attempt 1 and is still sending it
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    let now = NOW.unix_timestamp();
    use webhooks_core::ports::AttemptStore;
    assert!(w.db.claim_attempt(&d.delivery_id, 1, now, now + 40, "the-other-receive").await?.is_ok());
    // WHEN SQS hands the same message to a second receive
    let r = first(&d);
    let response = w.handle(vec![r.clone()]).await?;
    // THEN nothing is sent; it comes back when the other claim ends
    assert!(w.receiver.requests().is_empty());
    assert_eq!(failed_ids(&response), [r.message_id.unwrap_or_default()]);
    assert_eq!(w.retries.changes()[0].1, 40);
    Ok(())
}

// ---------------------------------------------------------------------- trip, probe, deactivation

#[tokio::test]
async fn a_tripped_webhook_sends_one_probe_and_parks_the_rest() -> Result {
    // GIVEN a webhook tripped (as many failures in a row as attempts), receiver still failing
    let w = World::new()?;
    w.failing("wh_1", MAX_ATTEMPTS);
    w.receiver.answer(URL, [status(500)]);
    let probe = delivery("wh_1", "evt-probe", NOW)?;
    let other = delivery("wh_1", "evt-other", NOW)?;
    // WHEN two deliveries arrive one after the other
    w.handle(vec![first(&probe)]).await?;
    w.handle(vec![first(&other)]).await?;
    // THEN only the first was sent (the probe), and it keeps its slot while it retries
    assert_eq!(w.receiver.requests().len(), 1);
    let (holder, _) = w.db.health("wh_1").probe.ok_or("the probe holds the slot")?;
    assert_eq!(holder, probe.delivery_id);
    // AND the other is parked while the webhook stays tripped
    let parked: Vec<String> = w.db.parked("wh_1").into_iter().map(|(_, d)| d.delivery_id).collect();
    assert_eq!(parked, [other.delivery_id]);
    Ok(())
}

#[tokio::test]
async fn a_probe_that_succeeds_ends_the_trip() -> Result {
    // GIVEN a tripped webhook whose receiver is back
    let w = World::new()?;
    w.failing("wh_1", MAX_ATTEMPTS + 2);
    // WHEN its probe goes through
    w.handle(vec![first(&delivery("wh_1", "evt-probe", NOW)?)]).await?;
    // THEN the streak and the probe slot are gone: the next delivery is sent at once
    let health = w.db.health("wh_1");
    assert_eq!((health.health.consecutive_failures, health.probe), (0, None));
    w.handle(vec![first(&delivery("wh_1", "evt-next", NOW)?)]).await?;
    assert_eq!(w.receiver.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn the_last_failed_attempt_deactivates_only_without_a_success_since_the_first() -> Result {
    for succeeded_in_between in [false, true] {
        // GIVEN a delivery on its last attempt (four counted), its first made 10 minutes ago
        let w = World::new()?;
        let d = delivery("wh_1", "evt-1", NOW)?;
        let first_at = NOW.unix_timestamp() - 600;
        {
            use webhooks_core::ports::AttemptStore;
            for n in 1..MAX_ATTEMPTS {
                w.db.record_attempt(&d.delivery_id, n, first_at, first_at).await?;
            }
        }
        w.failing("wh_1", 1);
        if succeeded_in_between {
            let mut record = w.db.health("wh_1");
            record.health.last_success_at = Some(format_utc(NOW - time::Duration::minutes(5)));
            w.db.put_health("wh_1", record);
        }
        w.receiver.answer(URL, [status(502)]);
        // WHEN it fails
        let response = w.handle(vec![record(&DeliveryQueueMessage::Delivery(d.clone()), 5)]).await?;
        // THEN it is parked (done, not retried) and logged failed
        assert!(failed_ids(&response).is_empty());
        assert_eq!(w.db.parked("wh_1").len(), 1);
        assert_eq!(w.statuses("wh_1"), [log_status::FAILED, log_status::PARKED]);
        // AND the webhook is deactivated with one alert only when nothing succeeded since
        let webhook = w.db.webhook("wh_1").ok_or("webhook")?.webhook;
        let alerts = w.alerts.published();
        if succeeded_in_between {
            assert_eq!(webhook.status, WebhookStatus::Active);
            assert!(alerts.is_empty());
        } else {
            assert_eq!(
                (webhook.status, webhook.disabled_reason),
                (WebhookStatus::Disabled, Some(DisabledReason::Failing))
            );
            assert_eq!(alerts.len(), 1);
            let alert: serde_json::Value = serde_json::from_str(&alerts[0].message)?;
            assert_eq!(alert["type"], "webhook.disabled");
            assert_eq!(alert["companies"], json!(["acme"]));
            assert_eq!(alert["last_status_code"], 502);
            assert_eq!((alerts[0].reason.as_str(), alerts[0].owner_key_id.as_str()), ("failing", "key_1"));
            assert_eq!(w.db.webhook("wh_1").and_then(|s| s.alert_pending), None, "published, so no longer pending");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_410_deactivates_at_once_and_parks_the_delivery() -> Result {
    // GIVEN a receiver that says the endpoint is gone
    let w = World::new()?;
    w.receiver.answer(URL, [status(410)]);
    let d = delivery("wh_1", "evt-1", NOW)?;
    // WHEN the first attempt gets it
    w.handle(vec![first(&d)]).await?;
    // THEN the webhook is disabled as gone, alerted once, and the delivery parked
    let webhook = w.db.webhook("wh_1").ok_or("webhook")?.webhook;
    assert_eq!(webhook.disabled_reason, Some(DisabledReason::Gone));
    assert_eq!(w.alerts("disabled").len(), 1);
    assert_eq!(w.alerts("disabled")[0]["reason"], "gone");
    assert_eq!(w.alerts("failing").len(), 1, "the 410 also started a streak");
    assert_eq!(w.db.parked("wh_1").len(), 1);
    assert!(w.retries.changes().is_empty(), "no retry after a 410");
    Ok(())
}

#[tokio::test]
async fn an_alert_that_could_not_be_published_is_published_with_the_next_batch() -> Result {
    // GIVEN a 410 whose alerts (webhook.failing, then webhook.disabled) failed to publish
    let w = World::new()?;
    w.receiver.answer(URL, [status(410)]);
    w.alerts.fail_next(2);
    w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    assert!(w.alerts.published().is_empty());
    assert!(w.db.webhook("wh_1").and_then(|s| s.alert_pending).is_some());
    assert!(w.db.health("wh_1").pending_alerts.contains_key("failing"));
    // WHEN the webhook's next delivery arrives
    w.handle(vec![first(&delivery("wh_1", "evt-2", NOW)?)]).await?;
    // THEN each alert goes out once, and the delivery is parked (the webhook is disabled)
    assert_eq!((w.alerts("failing").len(), w.alerts("disabled").len()), (1, 1));
    assert_eq!(w.db.webhook("wh_1").and_then(|s| s.alert_pending), None);
    assert!(w.db.health("wh_1").pending_alerts.is_empty());
    // AND a later batch publishes nothing again
    w.handle(vec![first(&delivery("wh_1", "evt-3", NOW)?)]).await?;
    assert_eq!(w.alerts.published().len(), 2, "{:?}", w.alerts.published());
    assert_eq!(w.db.parked("wh_1").len(), 3);
    assert_eq!(w.receiver.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_streak_alerts_once_when_it_starts_and_once_when_it_ends() -> Result {
    // GIVEN a healthy webhook whose receiver fails three deliveries, then answers
    let w = World::new()?;
    w.receiver.answer(URL, [status(503), status(500), SendOutcome::failed(SendFailure::Timeout, 10)]);
    for i in 0..3 {
        w.handle(vec![first(&delivery("wh_1", &format!("evt-{i}"), NOW)?)]).await?;
    }
    // THEN one webhook.failing, at the streak's first failure, saying what failed
    let failing = w.alerts("failing");
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0]["reason"], "HTTP 503");
    assert_eq!((failing[0]["webhook_id"].as_str(), failing[0]["owner_key_id"].as_str()), (Some("wh_1"), Some("key_1")));
    assert_eq!(failing[0]["companies"], json!(["acme"]));
    assert!(w.alerts("recovered").is_empty());
    // WHEN deliveries succeed again THEN one webhook.recovered, for the first success only
    w.handle(vec![first(&delivery("wh_1", "evt-ok-1", NOW)?)]).await?;
    w.handle(vec![first(&delivery("wh_1", "evt-ok-2", NOW)?)]).await?;
    assert_eq!(w.alerts("recovered").len(), 1);
    assert_eq!(w.alerts("recovered")[0].get("reason"), None);
    assert_eq!(w.alerts.published().iter().filter(|a| a.reason == "recovered").count(), 1);
    // AND a new streak alerts again
    w.receiver.answer(URL, [status(500)]);
    w.handle(vec![first(&delivery("wh_1", "evt-again", NOW)?)]).await?;
    assert_eq!(w.alerts("failing").len(), 2);
    Ok(())
}

#[tokio::test]
async fn the_first_success_after_an_enable_is_a_recovery() -> Result {
    // GIVEN a webhook enabled again after a disable (its counters reset, recovering)
    let w = World::new()?;
    w.db.put_health("wh_1", HealthRecord { recovering: true, ..HealthRecord::default() });
    // WHEN its deliveries succeed
    w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    w.handle(vec![first(&delivery("wh_1", "evt-2", NOW)?)]).await?;
    // THEN one webhook.recovered, and the webhook is no longer recovering
    assert_eq!(w.alerts("recovered").len(), 1);
    assert!(!w.db.health("wh_1").recovering);
    Ok(())
}

// ---------------------------------------------------------------------- park guards

#[tokio::test]
async fn a_disabled_webhook_parks_and_a_manual_disable_drops_what_came_after_it() -> Result {
    let disabled_at = NOW - time::Duration::minutes(10);
    // GIVEN a webhook deactivated for failing THEN its deliveries are parked, whenever matched
    let w = World::new()?;
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Failing, disabled_at)));
    w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    assert_eq!(w.db.parked("wh_1").len(), 1);
    // GIVEN a webhook disabled by hand THEN what was matched before is parked, after dropped
    let w = World::new()?;
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Manual, disabled_at)));
    let before = delivery("wh_1", "evt-before", disabled_at - time::Duration::seconds(1))?;
    let after = delivery("wh_1", "evt-after", NOW)?;
    let response = w.handle(vec![first(&before), first(&after)]).await?;
    assert!(failed_ids(&response).is_empty());
    let parked: Vec<String> = w.db.parked("wh_1").into_iter().map(|(_, d)| d.event.id).collect();
    assert_eq!(parked, ["evt-before"]);
    assert_eq!(w.drops("wh_1").get(DropReason::ManualDisabled.as_str()), Some(&1));
    assert!(w.receiver.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_full_park_drops_and_counts_park_full() -> Result {
    // GIVEN a disabled webhook already keeping its limit of 3
    let w = World::new()?;
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Failing, NOW)));
    let keep = NOW.unix_timestamp() + 3600;
    for i in 0..3 {
        w.db.put_parked(
            &format!("2026-11-28T09:00:0{i}.000000Z#d{i}"),
            delivery("wh_1", &format!("old-{i}"), NOW)?,
            keep,
        );
    }
    // WHEN another delivery is received
    let response = w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    // THEN it is dropped for good, counted as park_full, and the record is done
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.db.parked("wh_1").len(), 3);
    assert_eq!(w.drops("wh_1").get(DropReason::ParkFull.as_str()), Some(&1));
    Ok(())
}

#[tokio::test]
async fn a_full_park_first_sweeps_expired_deliveries_and_counts_them() -> Result {
    // GIVEN a disabled webhook at its limit, one of its parked deliveries past its keeping time
    let w = World::new()?;
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Failing, NOW)));
    let now = NOW.unix_timestamp();
    w.db.put_parked("2026-11-28T09:00:00.000000Z#d0", delivery("wh_1", "old-0", NOW)?, now - 1);
    w.db.put_parked("2026-11-28T09:00:01.000000Z#d1", delivery("wh_1", "old-1", NOW)?, now + 3600);
    w.db.put_parked("2026-11-28T09:00:02.000000Z#d2", delivery("wh_1", "old-2", NOW)?, now + 3600);
    // WHEN another delivery is parked
    w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    // THEN the expired one was dropped (park_expired) to make room, not the new one
    let kept: Vec<String> = w.db.parked("wh_1").into_iter().map(|(_, d)| d.event.id).collect();
    assert_eq!(kept.len(), 3);
    assert!(kept.contains(&"evt-1".to_owned()) && !kept.contains(&"old-0".to_owned()), "{kept:?}");
    assert_eq!(w.drops("wh_1").get(DropReason::ParkExpired.as_str()), Some(&1));
    assert_eq!(w.drops("wh_1").get(DropReason::ParkFull.as_str()), None);
    Ok(())
}

#[tokio::test]
async fn a_park_cancelled_by_conflicts_is_retried_soon_never_dropped() -> Result {
    // GIVEN a disabled webhook whose next park transaction is cancelled by conflicts
    let w = World::new()?;
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Failing, NOW)));
    w.db.conflict_next(1);
    let d = delivery("wh_1", "evt-1", NOW)?;
    // WHEN its delivery is received
    let response = w.handle(vec![first(&d)]).await?;
    // THEN it is neither parked nor dropped yet: it comes back in seconds
    assert_eq!(failed_ids(&response).len(), 1);
    assert_eq!(w.retries.changes()[0].1, 2);
    assert!(w.db.parked("wh_1").is_empty());
    assert!(w.drops("wh_1").is_empty(), "a conflict is never read as a full park");
    // AND the next receive parks it
    w.handle(vec![record(&DeliveryQueueMessage::Delivery(d), 2)]).await?;
    assert_eq!(w.db.parked("wh_1").len(), 1);
    Ok(())
}

#[tokio::test]
async fn near_the_queues_receive_limit_a_delivery_is_parked_not_left_for_the_dlq() -> Result {
    // GIVEN a message received 11 times of the queue's 12 without an attempt recorded
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    let response = w.handle(vec![record(&DeliveryQueueMessage::Delivery(d.clone()), 11)]).await?;
    // THEN it is parked and done, nothing sent
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.db.parked("wh_1").len(), 1);
    assert!(w.receiver.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_delivery_whose_attempts_are_used_up_is_parked_unsent() -> Result {
    // GIVEN every attempt counted, the parking lost (a crash after the last count)
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    {
        use webhooks_core::ports::AttemptStore;
        for n in 1..=MAX_ATTEMPTS {
            w.db.record_attempt(&d.delivery_id, n, 0, 0).await?;
        }
    }
    // WHEN the message comes back
    w.handle(vec![record(&DeliveryQueueMessage::Delivery(d), 6)]).await?;
    // THEN it is parked, not sent a sixth time
    assert_eq!(w.db.parked("wh_1").len(), 1);
    assert!(w.receiver.requests().is_empty());
    Ok(())
}

// ---------------------------------------------------------------------- drops

#[tokio::test]
async fn deliveries_of_a_deleted_webhook_or_a_revoked_owner_are_dropped_with_their_reason() -> Result {
    // GIVEN a deleted webhook, and one whose owner key no longer holds the event's company
    let w = World::new()?;
    w.webhook("wh_2", WebhookStatus::Active, None);
    w.db.delete_webhook("wh_1");
    w.key("key_1", &["globex"]);
    // WHEN a delivery of each is received
    let response =
        w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?), first(&delivery("wh_2", "evt-1", NOW)?)]).await?;
    // THEN neither is sent nor kept; the revoked one is counted on its webhook (the deleted
    // webhook's counters are gone with it)
    assert!(failed_ids(&response).is_empty());
    assert!(w.receiver.requests().is_empty());
    assert!(w.db.parked("wh_1").is_empty() && w.db.parked("wh_2").is_empty());
    assert_eq!(w.drops("wh_2").get(DropReason::OwnerRevoked.as_str()), Some(&1));
    assert!(w.drops("wh_1").is_empty());
    Ok(())
}

#[tokio::test]
async fn the_owner_key_a_message_names_is_read_with_the_webhook_and_never_decides_in_its_place() -> Result {
    // GIVEN wh_1 of key_1 (holding acme), wh_2 of key_1 too, and another key holding acme
    let w = World::new()?;
    w.webhook("wh_2", WebhookStatus::Active, None);
    w.key("key_other", &["acme"]);
    // WHEN a delivery to wh_1 names its owner (as the matcher's do), and one to wh_2 names a
    // key that is not its owner
    let named = Delivery { owner_key_id: Some("key_1".to_owned()), ..delivery("wh_1", "evt-1", NOW)? };
    let misnamed = Delivery { owner_key_id: Some("key_other".to_owned()), ..delivery("wh_2", "evt-1", NOW)? };
    w.handle(vec![first(&named), first(&misnamed)]).await?;
    // THEN both are sent: the misnamed key is read besides, and each webhook's own owner
    // decides
    assert_eq!(w.receiver.requests().len(), 2);

    // AND once key_1 no longer holds acme, a delivery naming key_1 is dropped for it, and one
    // naming the other key (which still holds acme) is dropped too: the webhook's owner decides
    w.key("key_1", &["globex"]);
    let named = Delivery { owner_key_id: Some("key_1".to_owned()), ..delivery("wh_1", "evt-2", NOW)? };
    let misnamed = Delivery { owner_key_id: Some("key_other".to_owned()), ..delivery("wh_2", "evt-2", NOW)? };
    w.handle(vec![first(&named), first(&misnamed)]).await?;
    assert_eq!(w.receiver.requests().len(), 2, "nothing more sent");
    assert_eq!(w.drops("wh_1").get(DropReason::OwnerRevoked.as_str()), Some(&1));
    assert_eq!(w.drops("wh_2").get(DropReason::OwnerRevoked.as_str()), Some(&1));
    Ok(())
}

#[tokio::test]
async fn a_purge_removes_a_deleted_webhooks_parked_deliveries_page_by_page() -> Result {
    // GIVEN 150 parked deliveries of a deleted webhook
    let w = World::new()?;
    for i in 0..150 {
        w.db.put_parked(&format!("k{i:04}"), delivery("wh_1", &format!("e{i}"), NOW)?, i64::MAX);
    }
    w.db.delete_webhook("wh_1");
    let purge = DeliveryQueueMessage::Purge(Purge { webhook_id: "wh_1".to_owned() });
    // WHEN the purge message is handled
    w.handle(vec![record(&purge, 1)]).await?;
    // THEN one page of 100 went, and the purge was queued again for the rest
    assert_eq!(w.db.parked("wh_1").len(), 50);
    assert_eq!(w.queue.messages(), [purge.to_json()]);
    Ok(())
}

// ---------------------------------------------------------------------- replay

fn parked_many(w: &World, n: usize, expires_at: i64) -> Result {
    for i in 0..n {
        let d = delivery("wh_1", &format!("parked-{i:03}"), NOW - time::Duration::hours(1))?;
        w.db.put_parked(&format!("2026-11-28T09:00:00.{i:06}Z#{}", d.delivery_id), d, expires_at);
    }
    Ok(())
}

#[tokio::test]
async fn a_replay_resends_one_page_and_queues_the_next() -> Result {
    // GIVEN 30 parked deliveries (a page is 25)
    let w = World::with(DeliveryConfig { park_limit: 100, ..DeliveryConfig::default() })?;
    parked_many(&w, 30, i64::MAX)?;
    let replay =
        Replay { webhook_id: "wh_1".to_owned(), after: None, until: Some("2026-11-28T10:00:00.000000Z".into()) };
    // WHEN the replay message is handled
    w.handle(vec![record(&DeliveryQueueMessage::Replay(replay), 1)]).await?;
    // THEN 25 copies are queued (new generation, same webhook-id, their park slots), removed
    // from the park, and the next page is queued after the last one
    let queued: Vec<DeliveryQueueMessage> =
        w.queue.messages().iter().map(|m| DeliveryQueueMessage::from_json(m)).collect::<std::result::Result<_, _>>()?;
    let copies: Vec<&Replayed> =
        queued.iter().filter_map(|m| if let DeliveryQueueMessage::Replayed(r) = m { Some(r) } else { None }).collect();
    assert_eq!(copies.len(), 25);
    assert!(copies.iter().all(|c| c.delivery.generation != 0 && c.delivery.event.id.starts_with("parked-")));
    assert_eq!(w.db.parked("wh_1").len(), 5);
    let next = queued.iter().find_map(|m| if let DeliveryQueueMessage::Replay(r) = m { Some(r) } else { None });
    assert_eq!(next.and_then(|r| r.after.clone()), copies.last().map(|c| c.slot.sort_key.clone()));
    Ok(())
}

#[tokio::test]
async fn one_replay_page_per_invocation_the_others_go_back_on_the_queue() -> Result {
    // GIVEN two replay messages in one batch
    let w = World::with(DeliveryConfig { park_limit: 100, ..DeliveryConfig::default() })?;
    w.webhook("wh_2", WebhookStatus::Active, None);
    parked_many(&w, 2, i64::MAX)?;
    let replay = |id: &str| Replay { webhook_id: id.to_owned(), after: None, until: Some("9999".into()) };
    let second = DeliveryQueueMessage::Replay(replay("wh_2"));
    let response = w.handle(vec![record(&DeliveryQueueMessage::Replay(replay("wh_1")), 1), record(&second, 1)]).await?;
    // THEN the first is done here, the second is re-queued as a new message, none retried
    assert!(failed_ids(&response).is_empty());
    let messages = w.queue.messages();
    assert_eq!(messages.iter().filter(|m| **m == second.to_json()).count(), 1);
    assert_eq!(w.db.parked("wh_1").len(), 0);
    Ok(())
}

#[tokio::test]
async fn a_replay_stops_while_the_webhook_is_tripped_and_drops_expired_deliveries() -> Result {
    // GIVEN a tripped webhook with parked deliveries THEN a replay re-sends nothing
    let w = World::with(DeliveryConfig { park_limit: 100, ..DeliveryConfig::default() })?;
    parked_many(&w, 3, i64::MAX)?;
    w.failing("wh_1", 5);
    let replay =
        DeliveryQueueMessage::Replay(Replay { webhook_id: "wh_1".into(), after: None, until: Some("9999".into()) });
    w.handle(vec![record(&replay, 1)]).await?;
    assert!(w.queue.messages().is_empty());
    assert_eq!(w.db.parked("wh_1").len(), 3);
    // GIVEN a healthy webhook whose parked deliveries expired THEN they are dropped, counted
    let w = World::with(DeliveryConfig { park_limit: 100, ..DeliveryConfig::default() })?;
    parked_many(&w, 3, NOW.unix_timestamp() - 1)?;
    w.handle(vec![record(&replay, 1)]).await?;
    assert!(w.queue.messages().is_empty());
    assert_eq!(w.drops("wh_1").get(DropReason::ParkExpired.as_str()), Some(&3));
    Ok(())
}

#[tokio::test]
async fn a_replayed_copy_that_fails_for_good_goes_back_to_its_original_slot() -> Result {
    // GIVEN a replayed copy of a delivery parked an hour ago, on its last attempt
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW - time::Duration::hours(1))?.replayed();
    let slot = ParkSlot { sort_key: "2026-11-28T09:00:00.000000Z#orig".into(), expires_at: NOW.unix_timestamp() + 60 };
    let config = DeliveryConfig { max_attempts: 1, ..w.deliverer.config.clone() };
    let w = World { deliverer: Deliverer { config, ..w.deliverer }, ..w };
    w.receiver.answer(URL, [status(500)]);
    w.handle(vec![record(&DeliveryQueueMessage::Replayed(Replayed { delivery: d, slot: slot.clone() }), 1)]).await?;
    // THEN it is parked again under its original key (time and expiry kept)
    let parked: Vec<String> = w.db.parked("wh_1").into_iter().map(|(k, _)| k).collect();
    assert_eq!(parked, [slot.sort_key]);
    assert_eq!(w.db.health("wh_1").park_sweep_at, Some(slot.expires_at));
    Ok(())
}

#[tokio::test]
async fn an_attempt_is_not_started_when_its_outcome_could_not_be_recorded_before_the_deadline() -> Result {
    // GIVEN an invocation with 15 s left, less than the 10 s timeout and the 6 s kept to
    // record the outcome
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    let response = w.handle_until(vec![first(&d)], Some(NOW + time::Duration::seconds(15))).await?;
    // THEN nothing is sent, no attempt used, and the record comes back in a second
    assert_eq!(failed_ids(&response).len(), 1);
    assert!(w.receiver.requests().is_empty());
    assert_eq!(w.db.attempt_record(&d.delivery_id), Default::default());
    assert_eq!(w.retries.changes()[0].1, 1);
    // WHEN it comes back in an invocation with time enough THEN it is delivered
    let response = w
        .handle_until(vec![record(&DeliveryQueueMessage::Delivery(d), 2)], Some(NOW + time::Duration::seconds(16)))
        .await?;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.receiver.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_replay_page_handled_twice_sends_each_parked_delivery_once() -> Result {
    // GIVEN a parked delivery, and a replay page whose removals are cancelled by conflicts the
    // first time (so the page is handled again and queues the same copies twice)
    let w = World::with(DeliveryConfig { park_limit: 100, ..DeliveryConfig::default() })?;
    parked_many(&w, 1, i64::MAX)?;
    let replay =
        DeliveryQueueMessage::Replay(Replay { webhook_id: "wh_1".into(), after: None, until: Some("9999".into()) });
    w.db.conflict_next(1);
    let first_try = w.handle(vec![record(&replay, 1)]).await?;
    assert_eq!(failed_ids(&first_try).len(), 1, "the page is retried");
    w.handle(vec![record(&replay, 2)]).await?;
    let copies = w.queue.messages();
    assert_eq!(copies.len(), 2, "queued once per handling");
    assert_eq!(copies[0], copies[1], "the same copy both times");
    // WHEN both copies are received
    let copy = DeliveryQueueMessage::from_json(&copies[0])?;
    let mut again = record(&copy, 1);
    again.message_id = Some("another-message".into());
    again.receipt_handle = Some("another-receipt".into());
    w.handle(vec![record(&copy, 1)]).await?;
    w.handle(vec![again]).await?;
    // THEN the receiver gets it once
    assert_eq!(w.receiver.requests().len(), 1);
    assert!(w.db.parked("wh_1").is_empty());
    Ok(())
}

#[tokio::test]
async fn a_range_replay_page_queues_each_kept_event_as_a_new_delivery_with_its_webhook_id() -> Result {
    // GIVEN an event delivered and logged (with its payload), and a range replay page naming it
    // and an event the log does not keep
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    w.handle(vec![first(&d)]).await?;
    let page = DeliveryQueueMessage::Resend(Resend {
        webhook_id: "wh_1".into(),
        generation: 7,
        queued_at: ms(NOW),
        messages: vec![d.webhook_message_id.clone(), "msg_notkeptanymore0000000000".into()],
    });
    // WHEN the page is handled, twice (SQS may hand it out again)
    w.handle(vec![record(&page, 1)]).await?;
    w.handle(vec![record(&page, 2)]).await?;
    // THEN the kept event is queued as a new delivery (fresh attempts, same webhook-id, the
    // replay's match time), the same one both times; the other is skipped
    let queued = w.queue.messages();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0], queued[1]);
    let DeliveryQueueMessage::Delivery(copy) = DeliveryQueueMessage::from_json(&queued[0])? else {
        return Err("a delivery".into());
    };
    assert_eq!(copy.webhook_message_id, d.webhook_message_id);
    assert_eq!(copy.event, d.event);
    assert_eq!((copy.generation, copy.queued_at), (7, ms(NOW)));
    assert_eq!(copy.delivery_id, delivery_id(&d.webhook_message_id, "wh_1", 7));
    // AND once the log no longer keeps it, a page re-sends nothing
    w.clock.advance(time::Duration::days(30));
    w.handle(vec![record(&page, 3)]).await?;
    assert_eq!(w.queue.messages().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_copy_parked_again_before_its_replay_removed_the_original_is_kept() -> Result {
    // GIVEN a parked delivery (generation 0) being replayed, and the webhook disabled again
    let w = World::new()?;
    let original = delivery("wh_1", "evt-1", NOW - time::Duration::hours(1))?;
    let slot = ParkSlot { sort_key: "2026-11-28T09:00:00.000000Z#orig".into(), expires_at: NOW.unix_timestamp() + 600 };
    w.db.put_parked(&slot.sort_key, original.clone(), slot.expires_at);
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Failing, NOW)));
    // WHEN its copy is received (and parked in its slot) before the replay removes the original
    let copy = DeliveryQueueMessage::Replayed(Replayed { delivery: original.replayed(), slot: slot.clone() });
    w.handle(vec![record(&copy, 1)]).await?;
    use webhooks_core::ports::ParkingStore;
    let removed = w.db.remove_parked("wh_1", &slot.sort_key, None, Some(original.generation)).await?;
    // THEN the replay's removal leaves the copy parked, once
    assert!(!removed);
    let parked = w.db.parked("wh_1");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].1.generation, 1);
    assert_eq!(w.db.health("wh_1").parked_count, 1);
    Ok(())
}

// ---------------------------------------------------------------------- failures of the ports

#[tokio::test]
async fn when_the_webhooks_cannot_be_read_every_record_comes_back_unsent() -> Result {
    let w = World::new()?;
    let (a, b) = (delivery("wh_1", "evt-1", NOW)?, delivery("wh_1", "evt-2", NOW)?);
    w.db.fail_next(1);
    let response = w.handle(vec![first(&a), first(&b)]).await?;
    assert_eq!(failed_ids(&response).len(), 2);
    assert!(w.receiver.requests().is_empty());
    // AND the attempt claims sent together with the failed read were freed: the next receive
    // of each sends it at once instead of waiting for a claim's lease
    for d in [&a, &b] {
        assert_eq!(w.db.attempt_record(&d.delivery_id).claim, None);
    }
    let again = [&a, &b].map(|d| record(&DeliveryQueueMessage::Delivery(d.clone()), 2));
    let response = w.handle(again.to_vec()).await?;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.receiver.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_first_receive_that_is_not_sent_leaves_no_claim_behind() -> Result {
    // GIVEN a webhook deactivated for failing, and one disabled by hand
    let w = World::new()?;
    w.webhook("wh_1", WebhookStatus::Disabled, Some((DisabledReason::Failing, NOW)));
    w.webhook("wh_2", WebhookStatus::Disabled, Some((DisabledReason::Manual, NOW - time::Duration::minutes(1))));
    // WHEN a first receive of a delivery to each is handled (its attempt claimed together
    // with the batch's reads)
    let (parked, dropped) = (delivery("wh_1", "evt-1", NOW)?, delivery("wh_2", "evt-1", NOW)?);
    let response = w.handle(vec![first(&parked), first(&dropped)]).await?;
    // THEN one is parked and one dropped, nothing sent, and neither keeps a claim
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.db.parked("wh_1").len(), 1);
    assert_eq!(w.drops("wh_2").get(DropReason::ManualDisabled.as_str()), Some(&1));
    assert!(w.receiver.requests().is_empty());
    for d in [&parked, &dropped] {
        assert_eq!(w.db.attempt_record(&d.delivery_id).claim, None, "{}", d.webhook_id);
    }
    Ok(())
}

#[tokio::test]
async fn when_secrets_cannot_be_decrypted_nothing_is_sent_or_counted_and_it_comes_back_soon() -> Result {
    let w = World::new()?;
    let d = delivery("wh_1", "evt-1", NOW)?;
    w.secrets.fail_next(1);
    let response = w.handle(vec![first(&d)]).await?;
    assert_eq!(failed_ids(&response).len(), 1);
    assert!(w.receiver.requests().is_empty());
    assert_eq!(w.db.attempt_record(&d.delivery_id).attempts_made, 0);
    assert_eq!(w.db.health("wh_1").health.consecutive_failures, 0);
    assert_eq!(w.retries.changes()[0].1, 2, "a failed step comes back in seconds");
    Ok(())
}

#[tokio::test]
async fn an_undecodable_message_is_left_for_the_dlq() -> Result {
    let w = World::new()?;
    let mut r = first(&delivery("wh_1", "evt-1", NOW)?);
    r.body = Some("{not json".into());
    let response = w.handle(vec![r.clone()]).await?;
    assert_eq!(failed_ids(&response), [r.message_id.unwrap_or_default()]);
    assert!(w.retries.changes().is_empty(), "left to the queue's redrive, not retried sooner");
    Ok(())
}

#[tokio::test]
async fn a_retry_after_beyond_the_visibility_cap_is_clamped_to_what_sqs_takes() -> Result {
    // GIVEN a schedule whose next delay is 12 h and a 503 asking for a day
    let w = World::with(DeliveryConfig { schedule: RetrySchedule::parse("12h")?, ..DeliveryConfig::default() })?;
    w.receiver.answer(URL, [SendOutcome::response(503, "", Some("86400".into()), 1)]);
    let response = w.handle(vec![first(&delivery("wh_1", "evt-1", NOW)?)]).await?;
    // THEN the retry is scheduled (SQS would refuse more than 12 h), within the cap
    assert_eq!(failed_ids(&response).len(), 1);
    let seconds = w.retries.changes().first().map(|c| c.1).ok_or("a visibility change")?;
    assert!((43_000..=43_200).contains(&seconds), "{seconds}");
    Ok(())
}

// ---------------------------------------------------------------------- rate limit

impl World {
    /// Limits webhook `id` to `rate` requests per second.
    fn limit(&self, id: &str, rate: u32) {
        if let Some(mut stored) = self.db.webhook(id) {
            stored.webhook.rate_limit = Some(rate);
            self.db.put_webhook(stored);
        }
    }

    /// The deliveries queued again to wait for their send slots: (delivery, delay in seconds).
    fn waiting(&self) -> Vec<(Delivery, u32)> {
        self.queue
            .delayed_messages()
            .into_iter()
            .filter_map(|(body, delay)| match DeliveryQueueMessage::from_json(&body).ok()? {
                DeliveryQueueMessage::Delivery(d) => Some((d, delay)),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn a_rate_limited_webhook_sends_what_its_pace_allows_now_and_queues_the_rest_holding_their_slots() -> Result {
    // GIVEN a webhook limited to 2 requests per second, and a batch of 10 of its deliveries
    let w = World::new()?;
    w.limit("wh_1", 2);
    let deliveries: Vec<Delivery> =
        (0..10).map(|i| delivery("wh_1", &format!("evt-{i}"), NOW)).collect::<Result<_>>()?;
    // WHEN the batch is handled
    let response = w.handle(deliveries.iter().map(first).collect()).await?;
    // THEN the slots within the next 2 s (every 550 ms: 4 of them) are sent, and every record
    // is done: none handed back, none counted, nothing failed
    assert!(failed_ids(&response).is_empty(), "{:?}", failed_ids(&response));
    assert_eq!(w.receiver.requests().len(), 4);
    assert!(w.retries.changes().is_empty(), "no receive is used: {:?}", w.retries.changes());
    assert_eq!(w.db.health("wh_1").health.consecutive_failures, 0);
    // AND the other 6 are queued again, delayed to come back 1 to 2 s before their slots,
    // holding them
    let start = ms(NOW);
    let mut waiting: Vec<(i64, u32)> =
        w.waiting().iter().filter_map(|(d, delay)| d.send_at_ms.map(|s| (s - start, *delay))).collect();
    waiting.sort_unstable();
    assert_eq!(waiting, [(2200, 1), (2750, 1), (3300, 2), (3850, 2), (4400, 3), (4950, 3)]);
    // AND the webhook's next free slot follows the batch's
    assert_eq!(w.db.health("wh_1").next_send_ms, Some(start + 5500));
    Ok(())
}

#[tokio::test]
async fn a_delivery_back_for_its_slot_is_sent_as_the_attempt_it_was_at() -> Result {
    // GIVEN a limited webhook whose delivery failed its first attempt
    let w = World::new()?;
    w.limit("wh_1", 5);
    w.receiver.answer(URL, [status(500)]);
    let d = delivery("wh_1", "evt-1", NOW)?;
    w.handle(vec![first(&d)]).await?;
    assert_eq!(w.db.attempt_record(&d.delivery_id).attempts_made, 1);
    // WHEN its retry, held back by the limit, comes back as a new message (first receive)
    // holding a slot that is now
    w.clock.advance(time::Duration::seconds(40));
    let held = Delivery { send_at_ms: Some(ms(NOW + time::Duration::seconds(40))), ..d.clone() };
    let response = w.handle(vec![first(&held)]).await?;
    // THEN it is sent as attempt 2, not as a new first attempt
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.receiver.requests().len(), 2);
    assert!(w.db.attempt_record(&d.delivery_id).delivered);
    assert_eq!(w.db.log("wh_1").iter().filter_map(|e| e.attempt).collect::<Vec<_>>(), [1, 2]);
    Ok(())
}

#[tokio::test]
async fn a_slot_missed_by_more_than_its_lateness_is_given_up_for_a_new_one() -> Result {
    // GIVEN a limited webhook whose next free slot is 3 s away, and a delivery back far
    // later than the slot it held
    let w = World::new()?;
    w.limit("wh_1", 5);
    w.db.put_health("wh_1", HealthRecord { next_send_ms: Some(ms(NOW) + 3000), ..HealthRecord::default() });
    let held = Delivery { send_at_ms: Some(ms(NOW) - 5000), ..delivery("wh_1", "evt-1", NOW)? };
    // WHEN it is received
    w.handle(vec![first(&held)]).await?;
    // THEN it is not sent on the old slot: it takes the next free one, and waits for it
    assert!(w.receiver.requests().is_empty());
    let waiting = w.waiting();
    assert_eq!(
        waiting.iter().map(|(d, delay)| (d.send_at_ms, *delay)).collect::<Vec<_>>(),
        [(Some(ms(NOW) + 3000), 2)]
    );
    assert_eq!(w.db.health("wh_1").next_send_ms, Some(ms(NOW) + 3220));
    Ok(())
}

#[tokio::test]
async fn a_delivery_that_cannot_be_queued_for_its_slot_is_handed_back_not_lost() -> Result {
    // GIVEN a limited webhook with its next slot 5 s away, and a queue that refuses the next send
    let w = World::new()?;
    w.limit("wh_1", 5);
    w.db.put_health("wh_1", HealthRecord { next_send_ms: Some(ms(NOW) + 5000), ..HealthRecord::default() });
    w.queue.fail_next(1);
    let d = delivery("wh_1", "evt-1", NOW)?;
    // WHEN it is received
    let response = w.handle(vec![first(&d)]).await?;
    // THEN the record is handed back soon (nothing sent, nothing counted)
    assert_eq!(failed_ids(&response).len(), 1);
    assert!(w.receiver.requests().is_empty());
    assert_eq!(w.retries.changes().iter().map(|c| c.1).collect::<Vec<_>>(), [2]);
    assert_eq!(w.db.attempt_record(&d.delivery_id).attempts_made, 0);
    Ok(())
}

#[tokio::test]
async fn a_slot_missed_while_waiting_for_it_frees_the_claim_and_sends_nothing() -> Result {
    // GIVEN a limited webhook whose next slot is half a second away, and a process starved
    // while it waits for that slot (its clock jumps 2 s during the wait)
    let w = World::new()?;
    w.limit("wh_1", 5);
    w.db.put_health("wh_1", HealthRecord { next_send_ms: Some(ms(NOW) + 500), ..HealthRecord::default() });
    let d = delivery("wh_1", "evt-1", NOW)?;
    let clock = w.clock.clone();
    let starve = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        clock.advance(time::Duration::seconds(2));
    });
    // WHEN the delivery is received
    let response = w.handle(vec![first(&d)]).await?;
    starve.await?;
    // THEN nothing is sent late (it would crowd the next slots), its claim is freed, nothing is
    // counted, and it is queued again at once to take a new slot
    assert!(failed_ids(&response).is_empty());
    assert!(w.receiver.requests().is_empty());
    let record = w.db.attempt_record(&d.delivery_id);
    assert_eq!((record.claim, record.attempts_made), (None, 0));
    assert_eq!(w.waiting().iter().map(|(d, delay)| (d.send_at_ms, *delay)).collect::<Vec<_>>(), [(None, 0)]);
    Ok(())
}
