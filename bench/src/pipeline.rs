//! The pipeline on the local stack (the functions' release binaries, the emulator):
//!
//! - DynamoDB requests of the matcher per batch, for three batch shapes, recorded by the
//!   emulator while one batch goes through the matcher's Invoke API (the delivery processes
//!   are paused meanwhile, so every function request recorded is the matcher's);
//! - ingest -> receiver latency of events published at a steady rate to the ingest queue,
//!   fanned out to 10 webhooks on a recording receiver that fails one first attempt in 50,
//!   with the emulator recording every request (for the cost figures);
//! - what the latency is made of, estimated: the emulator's latency per call (timed from here,
//!   with recording on, as during the run) times the calls on an event's critical path, and the
//!   local stack's own hop (an empty invocation);
//! - the functions' durations per batch through the Invoke API (for GB-seconds).
//!
//! The recordings are written as JSON lines for `infra/bench/run.py`, which prices them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use serde::Serialize;
use serde_json::json;
use webhooks_core::message::{Delivery, DeliveryQueueMessage};
use webhooks_core::signing::{delivery_id, webhook_message_id};

use crate::receiver::RecordingReceiver;
use crate::stack::{Stack, cloud_event, sqs_event, unique};
use crate::stats::{Summary, ms, percentile};

/// Webhooks each event fans out to (the cost assumptions' fan-out).
pub const FAN_OUT: u32 = 10;
/// One (event, webhook) pair in this many fails its first attempt: 98 % first-attempt success.
pub const FAIL_ONE_IN: u64 = 50;
const COMPANY: &str = "benche2e";
const PROJECT: &str = "p1";
const EVENT_TYPE: &str = "TODO_CREATED";
/// Timed calls per emulator operation.
const CALL_SAMPLES: usize = 30;
/// Invocations per batch shape when timing the functions.
const INVOKE_SAMPLES: usize = 12;
/// After the last publish, how long the run may take to drain (retries included).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// After the last delivery arrived, how long the functions get to finish their writes
/// before the recording stops.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Pipeline {
    pub emulator_call_ms: BTreeMap<String, Summary>,
    pub empty_invoke_ms: BTreeMap<String, Summary>,
    /// Invoke API round trips by function and batch size (events or deliveries).
    pub invoke_ms: BTreeMap<String, BTreeMap<usize, Summary>>,
    pub matcher_requests: Vec<RecordedBatch>,
    pub e2e: EndToEnd,
    pub critical_path: CriticalPath,
}

/// One batch through the matcher and the file its requests were recorded in.
#[derive(Debug, Serialize)]
pub struct RecordedBatch {
    pub shape: String,
    pub events: usize,
    pub projects: usize,
    pub recording: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct EndToEnd {
    pub events: usize,
    pub fan_out: u32,
    pub rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    pub publish_errors: usize,
    pub pairs_expected: usize,
    pub pairs_delivered: usize,
    pub pairs_failed_first: usize,
    pub extra_requests: u64,
    /// Ingest (before SendMessage) to the first arrival of each (event, webhook) pair.
    pub latency_ms: Percentiles,
    /// Ingest to the last of an event's first arrivals (all its webhooks reached).
    pub event_latency_ms: Percentiles,
    pub seconds: f64,
    /// The recorded window, in Unix seconds (to pick the local stack's log lines of the run).
    pub started_unix: f64,
    pub ended_unix: f64,
    pub recording: PathBuf,
    /// Bytes the functions logged during the run (CloudWatch Logs ingestion), by binary.
    pub log_bytes: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            count: values.len(),
            p50: percentile(&values, 50.0),
            p90: percentile(&values, 90.0),
            p99: percentile(&values, 99.0),
            max: values.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The emulator calls between an event entering the ingest queue and its POST, as the
/// functions are written today, and their estimated share of the median latency.
#[derive(Debug, Serialize)]
pub struct CriticalPath {
    pub calls: Vec<String>,
    pub emulator_ms: f64,
    pub local_stack_hops_ms: f64,
    pub p50_ms: f64,
    pub emulator_share: f64,
    pub local_stack_share: f64,
    pub rest_share: f64,
}

/// The emulator calls on an event's critical path: the producer's send, the matcher's
/// receive, claim, two Queries (project, company), owner keys, fan-out; the delivery's
/// receive and its three reads (webhooks, owner keys, health). Completing the claim and the
/// delivery log happen after the fan-out and the POST respectively.
const CRITICAL_PATH: [&str; 11] = [
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "dynamodb:PutItem (conditional)",
    "dynamodb:Query",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "sqs:SendMessageBatch",
    "sqs:ReceiveMessage",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchGetItem",
];

/// Everything above, with `events` published at `rate` per second.
pub async fn measure(stack: &Stack, stack_file: &Path, events: usize, rate: f64, out_dir: &Path) -> Result<Pipeline> {
    let run = unique();
    // Only the measured run fails first attempts: the other deliveries are invoked directly
    // and would never be retried.
    let receiver = RecordingReceiver::new(Some(FAIL_ONE_IN), "e2e-");
    let base = receiver.start()?;
    let key = stack.create_key(&format!("bench-e2e-{run}"), &[COMPANY]).await?;
    let mut webhooks = Vec::new();
    for j in 0..FAN_OUT {
        let url = format!("{base}/e2e/{j}");
        webhooks.push(stack.create_webhook(&key, &url, &[EVENT_TYPE], json!([{"company_id": COMPANY, "project_id": PROJECT}])).await?);
    }
    let sdk = stack.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let kms = aws_sdk_kms::Client::new(&sdk);
    let ingest = stack.info.ingest_queue_url.clone();

    // Warm every process and the secret cache; wait for it all to arrive.
    let mut expected_pairs = 0usize;
    for i in 0..20 {
        let body = cloud_event(&format!("warm-{run}-{i}"), COMPANY, PROJECT, EVENT_TYPE).to_string();
        sqs.send_message().queue_url(&ingest).message_body(body).send().await?;
    }
    expected_pairs += 20 * FAN_OUT as usize;
    wait_for(&receiver, expected_pairs, DRAIN_TIMEOUT).await?;

    stack.start_recording().await?;
    let emulator_call_ms = time_emulator_calls(stack, &sqs, &dynamodb, &kms, &webhooks).await?;
    stack.stop_recording().await?;

    let mut empty_invoke_ms = BTreeMap::new();
    for function in ["matcher", "delivery"] {
        let mut rtts = Vec::new();
        for _ in 0..CALL_SAMPLES {
            rtts.push(ms(stack.invoke(function, &json!({"Records": []})).await?.1));
        }
        empty_invoke_ms.insert(function.to_owned(), Summary::of(&rtts).context("no samples")?);
    }

    let ingest_arn = "arn:aws:sqs:us-east-1:123456789012:ingest";
    let delivery_arn = "arn:aws:sqs:us-east-1:123456789012:delivery";
    let mut invoke_ms: BTreeMap<String, BTreeMap<usize, Summary>> = BTreeMap::new();
    let mut sequence = 0usize;
    for size in [1usize, 10] {
        let mut rtts = Vec::new();
        for _ in 0..INVOKE_SAMPLES {
            let bodies: Vec<String> = (0..size)
                .map(|_| {
                    sequence += 1;
                    cloud_event(&format!("inv-{run}-{sequence}"), COMPANY, PROJECT, EVENT_TYPE).to_string()
                })
                .collect();
            rtts.push(ms(stack.invoke("matcher", &sqs_event(ingest_arn, &bodies)).await?.1));
            expected_pairs += size * FAN_OUT as usize;
        }
        invoke_ms.entry("matcher".into()).or_default().insert(size, Summary::of(&rtts).context("no samples")?);
    }
    for size in [1usize, 10] {
        let mut rtts = Vec::new();
        for _ in 0..INVOKE_SAMPLES {
            sequence += 1;
            let bodies = delivery_messages(&format!("dlv-{run}-{sequence}"), &webhooks[..size])?;
            rtts.push(ms(stack.invoke("delivery", &sqs_event(delivery_arn, &bodies)).await?.1));
            expected_pairs += size;
        }
        invoke_ms.entry("delivery".into()).or_default().insert(size, Summary::of(&rtts).context("no samples")?);
    }

    // The matcher's requests per batch: delivery paused, so nothing else calls the emulator.
    let mut matcher_requests = Vec::new();
    stack.signal_function("delivery", "STOP").await?;
    let recorded = async {
        for (shape, count, projects) in [("1 event", 1usize, 1usize), ("10 events, 1 project", 10, 1), ("10 events, 10 projects", 10, 10)] {
            let bodies: Vec<String> = (0..count)
                .map(|i| {
                    sequence += 1;
                    let project = if projects == 1 { PROJECT.to_owned() } else { format!("p{}", i + 1) };
                    cloud_event(&format!("req-{run}-{sequence}"), COMPANY, &project, EVENT_TYPE).to_string()
                })
                .collect();
            expected_pairs += FAN_OUT as usize * if projects == 1 { count } else { 1 };
            stack.start_recording().await?;
            stack.invoke("matcher", &sqs_event(ingest_arn, &bodies)).await?;
            let recording = out_dir.join(format!("matcher-{}.jsonl", shape.replace([' ', ','], "_")));
            std::fs::write(&recording, stack.stop_recording().await?)?;
            matcher_requests.push(RecordedBatch { shape: shape.to_owned(), events: count, projects, recording });
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    stack.signal_function("delivery", "CONT").await?;
    recorded?;
    wait_for(&receiver, expected_pairs, DRAIN_TIMEOUT).await?;

    let e2e = end_to_end(stack, stack_file, &sqs, &receiver, &run, events, rate, expected_pairs, out_dir).await?;

    let emulator_ms: f64 = CRITICAL_PATH
        .iter()
        .map(|call| emulator_call_ms.get(*call).map_or(0.0, |s| s.median))
        .sum();
    let local_stack_hops_ms: f64 = empty_invoke_ms.values().map(|s| s.median).sum();
    let p50 = e2e.latency_ms.p50;
    let critical_path = CriticalPath {
        calls: CRITICAL_PATH.iter().map(|c| (*c).to_owned()).collect(),
        emulator_ms,
        local_stack_hops_ms,
        p50_ms: p50,
        emulator_share: emulator_ms / p50,
        local_stack_share: local_stack_hops_ms / p50,
        rest_share: 1.0 - (emulator_ms + local_stack_hops_ms) / p50,
    };
    Ok(Pipeline { emulator_call_ms, empty_invoke_ms, invoke_ms, matcher_requests, e2e, critical_path })
}

/// Delivery queue messages of one new event for `webhooks`.
fn delivery_messages(event_id: &str, webhooks: &[String]) -> Result<Vec<String>> {
    let json = cloud_event(event_id, COMPANY, PROJECT, EVENT_TYPE).to_string();
    let event = webhooks_core::event::parse_ingest_body(&json, time::OffsetDateTime::now_utc())
        .map_err(|e| anyhow::anyhow!("bench event refused: {}", e.message))?;
    let message_id = webhook_message_id(&event.source, &event.id);
    Ok(webhooks
        .iter()
        .map(|w| {
            DeliveryQueueMessage::Delivery(Delivery {
                delivery_id: delivery_id(&message_id, w, 0),
                webhook_id: w.clone(),
                webhook_message_id: message_id.clone(),
                event: event.clone(),
                generation: 0,
                queued_at: 0,
            })
            .to_json()
        })
        .collect())
}

async fn wait_for(receiver: &RecordingReceiver, pairs: usize, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    while receiver.delivered() < pairs {
        if started.elapsed() > timeout {
            bail!("only {} of {pairs} deliveries arrived within {timeout:?}", receiver.delivered());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn time_calls<F, Fut, T>(samples: usize, mut call: F) -> Result<Summary>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut took = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        call(i).await?;
        took.push(ms(started.elapsed()));
    }
    Summary::of(&took).context("no samples")
}

/// The emulator's latency per call, for the operations on the critical path and the writes
/// after it, with items and messages of the pipeline's sizes.
async fn time_emulator_calls(
    stack: &Stack,
    sqs: &aws_sdk_sqs::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    kms: &aws_sdk_kms::Client,
    webhooks: &[String],
) -> Result<BTreeMap<String, Summary>> {
    let subscriptions = stack.table("SubscriptionsTable")?.to_owned();
    let events_table = stack.table("EventsTable")?.to_owned();
    let deliveries = stack.table("DeliveriesTable")?.to_owned();
    let health = stack.table("HealthTable")?.to_owned();
    let scratch = sqs.create_queue().queue_name(format!("bench-scratch-{}", unique().replace('-', ""))).send().await?.queue_url.context("queue url")?;
    let run = unique();
    let payload = cloud_event("call-timing", COMPANY, PROJECT, EVENT_TYPE).to_string();
    let s = |v: String| AttributeValue::S(v);
    let mut out = BTreeMap::new();

    out.insert("sqs:SendMessage".into(), time_calls(CALL_SAMPLES, |_| {
        let r = sqs.send_message().queue_url(&scratch).message_body(&payload).send();
        async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
    }).await?);
    out.insert("sqs:SendMessageBatch".into(), time_calls(CALL_SAMPLES, |i| {
        let entries: Vec<SendMessageBatchRequestEntry> = (0..10)
            .filter_map(|j| SendMessageBatchRequestEntry::builder().id(format!("m{i}x{j}")).message_body(&payload).build().ok())
            .collect();
        let r = sqs.send_message_batch().queue_url(&scratch).set_entries(Some(entries)).send();
        async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
    }).await?);
    // Messages are waiting: a receive answers at once, as the mappings' long polls do when
    // work arrives.
    let handles: Arc<Mutex<Vec<String>>> = Arc::default();
    out.insert("sqs:ReceiveMessage".into(), time_calls(CALL_SAMPLES, |_| {
        let r = sqs.receive_message().queue_url(&scratch).max_number_of_messages(10).send();
        let handles = Arc::clone(&handles);
        async move {
            let got = r.await?;
            if let Ok(mut h) = handles.lock() {
                h.extend(got.messages().iter().filter_map(|m| m.receipt_handle().map(str::to_owned)));
            }
            Ok::<(), anyhow::Error>(())
        }
    }).await?);
    let received: Vec<String> = handles.lock().map(|h| h.clone()).unwrap_or_default();
    let chunks: Vec<Vec<String>> = received.chunks(10).map(<[String]>::to_vec).collect();
    if !chunks.is_empty() {
        out.insert("sqs:DeleteMessageBatch".into(), time_calls(chunks.len().min(CALL_SAMPLES), |i| {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunks[i]
                .iter()
                .enumerate()
                .filter_map(|(j, h)| DeleteMessageBatchRequestEntry::builder().id(format!("d{j}")).receipt_handle(h).build().ok())
                .collect();
            let r = sqs.delete_message_batch().queue_url(&scratch).set_entries(Some(entries)).send();
            async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
        }).await?);
    }

    out.insert("dynamodb:PutItem (conditional)".into(), time_calls(CALL_SAMPLES, |i| {
        let r = dynamodb
            .put_item()
            .table_name(&events_table)
            .item("pk", s(format!("BENCH#{run}#{i}")))
            .item("state", s("in_progress".into()))
            .item("lease_until", AttributeValue::N("1".into()))
            .condition_expression("attribute_not_exists(pk)")
            .send();
        async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
    }).await?);
    out.insert("dynamodb:Query".into(), time_calls(CALL_SAMPLES, |_| {
        let r = dynamodb
            .query()
            .table_name(&subscriptions)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("IDX#P#{COMPANY}#{PROJECT}")))
            .consistent_read(true)
            .send();
        async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
    }).await?);
    out.insert("dynamodb:BatchGetItem".into(), time_calls(CALL_SAMPLES, |_| {
        let keys: Vec<HashMap<String, AttributeValue>> = webhooks
            .iter()
            .map(|w| HashMap::from([("pk".to_owned(), s(format!("WH#{w}"))), ("sk".to_owned(), s("WH".into()))]))
            .collect();
        let request = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build();
        let r = request.map(|req| dynamodb.batch_get_item().request_items(&subscriptions, req).send());
        async move {
            match r {
                Ok(call) => call.await.map(|_| ()).map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        }
    }).await?);
    out.insert("dynamodb:PutItem (log entry)".into(), time_calls(CALL_SAMPLES, |i| {
        let r = dynamodb
            .put_item()
            .table_name(&deliveries)
            .item("pk", s(format!("BENCH#{run}")))
            .item("sk", s(format!("{i:06}")))
            .item("payload", s(payload.clone()))
            .send();
        async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
    }).await?);
    out.insert("dynamodb:UpdateItem".into(), time_calls(CALL_SAMPLES, |_| {
        let r = dynamodb
            .update_item()
            .table_name(&health)
            .key("pk", s(format!("BENCH#{run}")))
            .update_expression("ADD failures :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send();
        async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
    }).await?);

    let key_id = stack.info.functions.get("delivery").and_then(|f| f.env.get("SIGNING_KEY_ID")).context("SIGNING_KEY_ID")?;
    let ciphertext = kms
        .encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec()))
        .encryption_context("webhook_id", "wh_bench")
        .send()
        .await?
        .ciphertext_blob
        .context("no ciphertext")?;
    out.insert("kms:Decrypt".into(), time_calls(CALL_SAMPLES, |_| {
        let r = kms.decrypt().key_id(key_id).ciphertext_blob(ciphertext.clone()).encryption_context("webhook_id", "wh_bench").send();
        async move { r.await.map(|_| ()).map_err(anyhow::Error::from) }
    }).await?);
    sqs.delete_queue().queue_url(&scratch).send().await?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn end_to_end(
    stack: &Stack,
    stack_file: &Path,
    sqs: &aws_sdk_sqs::Client,
    receiver: &RecordingReceiver,
    run: &str,
    events: usize,
    rate: f64,
    already_expected: usize,
    out_dir: &Path,
) -> Result<EndToEnd> {
    let logs_dir = stack_file.parent().map(|d| d.join("logs")).unwrap_or_default();
    let logs_before = log_sizes(&logs_dir);
    stack.start_recording().await?;
    let started_unix = unix_now();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let errors: Arc<Mutex<usize>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(events);
    for i in 0..events {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let id = format!("e2e-{run}-{i}");
        let body = cloud_event(&id, COMPANY, PROJECT, EVENT_TYPE).to_string();
        let request = sqs.send_message().queue_url(&stack.info.ingest_queue_url).message_body(body);
        let (sent, errors) = (Arc::clone(&sent), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            if let Ok(mut s) = sent.lock() {
                s.insert(id, at);
            }
            if request.send().await.is_err() {
                if let Ok(mut e) = errors.lock() {
                    *e += 1;
                }
            }
        }));
    }
    let published_in = started.elapsed();
    for t in tasks {
        let _ = t.await;
    }
    let expected = events * FAN_OUT as usize;
    let drained = wait_for(receiver, already_expected + expected, DRAIN_TIMEOUT).await;
    tokio::time::sleep(SETTLE).await;
    let recording = out_dir.join("e2e.jsonl");
    std::fs::write(&recording, stack.stop_recording().await?)?;
    let ended_unix = unix_now();
    let seconds = started.elapsed().as_secs_f64();
    let logs_after = log_sizes(&logs_dir);
    drained?;

    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let arrivals = receiver.arrivals();
    let mut latencies = Vec::new();
    // Per event: its slowest first arrival, and how many of its webhooks were reached.
    let mut per_event: HashMap<&str, (f64, u32)> = HashMap::new();
    let (mut delivered, mut failed_first, mut extra) = (0usize, 0usize, 0u64);
    for ((event_id, _), arrival) in &arrivals {
        let Some(at) = sent.get(event_id) else { continue };
        let latency = ms(arrival.first.saturating_duration_since(*at));
        latencies.push(latency);
        let (worst, reached) = per_event.entry(event_id.as_str()).or_insert((0.0, 0));
        *worst = worst.max(latency);
        *reached += 1;
        if arrival.succeeded {
            delivered += 1;
        }
        if receiver_failed_first(arrival.requests, arrival.succeeded) {
            failed_first += 1;
        }
        extra += u64::from(arrival.requests.saturating_sub(1));
    }
    let complete_events: Vec<f64> =
        per_event.values().filter(|(_, reached)| *reached == FAN_OUT).map(|(worst, _)| *worst).collect();
    let log_bytes = ["matcher", "delivery"]
        .iter()
        .map(|b| {
            let grown: u64 = logs_after
                .iter()
                .filter(|(name, _)| name.starts_with(&format!("{b}-")))
                .map(|(name, after)| after.saturating_sub(logs_before.get(name).copied().unwrap_or(0)))
                .sum();
            ((*b).to_owned(), grown)
        })
        .collect();
    Ok(EndToEnd {
        events,
        fan_out: FAN_OUT,
        rate_per_s: rate,
        achieved_rate_per_s: events as f64 / published_in.as_secs_f64().max(f64::MIN_POSITIVE),
        publish_errors: errors.lock().map(|e| *e).unwrap_or_default(),
        pairs_expected: expected,
        pairs_delivered: delivered,
        pairs_failed_first: failed_first,
        extra_requests: extra,
        latency_ms: Percentiles::of(latencies),
        event_latency_ms: Percentiles::of(complete_events),
        seconds,
        started_unix,
        ended_unix,
        recording,
        log_bytes,
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// A pair answered 500 first and 2xx on its retry.
fn receiver_failed_first(requests: u32, succeeded: bool) -> bool {
    requests > 1 && succeeded
}

fn log_sizes(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.metadata().ok()?.len())))
                .collect()
        })
        .unwrap_or_default()
}
