//! The pipeline on the local stack (the functions' release binaries, the emulator):
//!
//! - DynamoDB requests of the matcher per batch, for three batch shapes, recorded by the
//!   emulator while one batch goes through the matcher's Invoke API (the delivery processes
//!   are paused meanwhile, so every function request recorded is the matcher's);
//! - ingest -> receiver latency of events published at a steady rate to the ingest queue,
//!   fanned out to 10 webhooks on a recording receiver that fails one first attempt in 50,
//!   with the emulator recording every request (for the cost figures);
//! - what the latency is made of, from the functions' own clocks: every invocation logs its
//!   duration and the time it waited on AWS calls (`webhooks_aws::timing`, at the SDK's HTTP
//!   connector), read back from the local stack's logs of the run (also the billed durations).
//!
//! The recordings are written as JSON lines for `infra/bench/run.py`, which prices them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;

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
/// After the last publish, how long the run may take to drain (retries included).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// After the last delivery arrived, how long the functions get to finish their writes
/// before the recording stops.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Pipeline {
    pub matcher_requests: Vec<RecordedBatch>,
    pub e2e: EndToEnd,
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
    /// The functions' invocations during the run, from their own clocks, by binary.
    pub invocations: BTreeMap<String, FunctionTime>,
}

/// One function's invocations during the run: each logs `duration_ms` and `aws_ms`, the part
/// of it with at least one AWS (here: emulator) request in flight.
#[derive(Debug, Serialize)]
pub struct FunctionTime {
    pub count: usize,
    pub duration_ms: Summary,
    pub aws_ms: Summary,
    pub aws_calls: Summary,
    pub total_duration_ms: f64,
    pub total_aws_ms: f64,
    pub total_aws_calls: f64,
    /// Sum of the durations rounded up to the millisecond, as Lambda bills them.
    pub billed_ms: f64,
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

/// Everything above, with `events` published at `rate` per second.
pub async fn measure(stack: &Stack, stack_file: &Path, events: usize, rate: f64, out_dir: &Path) -> Result<Pipeline> {
    let run = unique();
    // Only the measured run fails first attempts: the warm-up and the recorded batches must
    // arrive at once.
    let receiver = RecordingReceiver::new(Some(FAIL_ONE_IN), "e2e-");
    let base = receiver.start()?;
    let key = stack.create_key(&format!("bench-e2e-{run}"), &[COMPANY]).await?;
    let mut webhooks = Vec::new();
    for j in 0..FAN_OUT {
        let url = format!("{base}/e2e/{j}");
        webhooks.push(
            stack
                .create_webhook(&key, &url, &[EVENT_TYPE], json!([{"company_id": COMPANY, "project_id": PROJECT}]))
                .await?,
        );
    }
    let sdk = stack.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ingest = stack.info.ingest_queue_url.clone();

    // Warm every process and the secret cache; wait for it all to arrive.
    let mut expected_pairs = 0usize;
    for i in 0..20 {
        let body = cloud_event(&format!("warm-{run}-{i}"), COMPANY, PROJECT, EVENT_TYPE).to_string();
        sqs.send_message().queue_url(&ingest).message_body(body).send().await?;
    }
    expected_pairs += 20 * FAN_OUT as usize;
    wait_for(&receiver, expected_pairs, DRAIN_TIMEOUT).await?;

    let ingest_arn = "arn:aws:sqs:us-east-1:123456789012:ingest";
    let mut sequence = 0usize;

    // The matcher's requests per batch: delivery paused, so nothing else calls the emulator.
    let mut matcher_requests = Vec::new();
    stack.signal_function("delivery", "STOP").await?;
    let recorded = async {
        for (shape, count, projects) in
            [("1 event", 1usize, 1usize), ("10 events, 1 project", 10, 1), ("10 events, 10 projects", 10, 10)]
        {
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

    Ok(Pipeline { matcher_requests, e2e })
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
            if request.send().await.is_err()
                && let Ok(mut e) = errors.lock()
            {
                *e += 1;
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
    let invocations = ["matcher", "delivery"]
        .iter()
        .map(|b| Ok(((*b).to_owned(), function_time(&logs_dir, b, &logs_before, &logs_after)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;

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
        invocations,
    })
}

/// The "invocation timed" lines `binary`'s processes logged between the two readings of the
/// log sizes.
fn function_time(
    dir: &Path,
    binary: &str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Result<FunctionTime> {
    let (mut durations, mut aws, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    for (name, end) in after.iter().filter(|(name, _)| name.starts_with(&format!("{binary}-"))) {
        let start = before.get(name).copied().unwrap_or(0);
        let bytes = std::fs::read(dir.join(name))?;
        let appended = bytes.get(start as usize..(*end as usize).min(bytes.len())).unwrap_or_default();
        for line in String::from_utf8_lossy(appended).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let fields = &v["fields"];
            if fields["message"] != "invocation timed" {
                continue;
            }
            let (Some(d), Some(a), Some(c)) =
                (fields["duration_ms"].as_f64(), fields["aws_ms"].as_f64(), fields["aws_calls"].as_f64())
            else {
                continue;
            };
            durations.push(d);
            aws.push(a);
            calls.push(c);
        }
    }
    let summary =
        |v: &[f64]| Summary::of(v).with_context(|| format!("no invocation of {binary} was logged during the run"));
    Ok(FunctionTime {
        count: durations.len(),
        duration_ms: summary(&durations)?,
        aws_ms: summary(&aws)?,
        aws_calls: summary(&calls)?,
        total_duration_ms: durations.iter().sum(),
        total_aws_ms: aws.iter().sum(),
        total_aws_calls: calls.iter().sum(),
        billed_ms: durations.iter().map(|d| d.ceil().max(1.0)).sum(),
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
