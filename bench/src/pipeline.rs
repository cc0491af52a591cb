//! The pipeline on the local stack (the functions' release binaries, the emulator):
//!
//! - DynamoDB requests of the matcher per batch, for three batch shapes, recorded by the
//!   emulator while one batch goes through the matcher's Invoke API (the delivery processes
//!   are paused meanwhile, so every function request recorded is the matcher's);
//! - measured windows: events published at a steady rate (through `POST /v1/events`, one per
//!   request, or straight to the ingest queue), each with a `data` padded to a given size,
//!   fanned out to 10 webhooks (then, in a second window, to 1) on a recording receiver that
//!   fails one first attempt in 50, with the emulator recording every request (for the cost
//!   figures), the tables snapshotted just before (so the pricing can replay the writes over
//!   the items as they stood), and the CPU time of every process of the stack read before and
//!   after (`cpu`);
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

use crate::cpu;
use crate::receiver::{RecordingReceiver, SLOW_WEBHOOKS};
use crate::stack::{Stack, cloud_event, cloud_event_sized, sqs_event, unique};
use crate::stats::{Summary, ms, percentile};

/// Webhooks each event fans out to (the cost assumptions' fan-out).
pub const FAN_OUT: u32 = 10;
/// One (event, webhook) pair in this many fails its first attempt: 98 % first-attempt success.
pub const FAIL_ONE_IN: u64 = 50;
const COMPANY: &str = "benche2e";
const PROJECT: &str = "p1";
const EVENT_TYPE: &str = "TODO_CREATED";
/// The type only the first webhook receives: the fan-out-1 window's.
const EVENT_TYPE_ONE: &str = "TODO_DELETED";
/// The isolation windows' types: the first without, the second with the bad webhooks.
const ISOLATION_BASE: &str = "TODO_MOVED";
const ISOLATION_BAD: &str = "TODO_NAME_CHANGED";
/// Webhooks the isolation figures are about (with the two bad ones: 10 deliveries an event).
const ISOLATION_WEBHOOKS: u32 = 8;
/// After the last publish, how long the run may take to drain (retries included).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Deliveries a second the emulator is sure to keep up with, for the drain's time limit: at a
/// faster rate it falls behind, and the deliveries still queued when publishing ends arrive
/// later (their latency shows it, labelled as the emulator's pace).
const SLOWEST_DRAIN_PER_S: f64 = 5.0;
/// After the last delivery arrived, how long the functions get to finish their writes
/// before the recording stops.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Pipeline {
    pub matcher_requests: Vec<RecordedBatch>,
    /// The measured window at fan-out 10 (latency, cost, CPU).
    pub e2e: EndToEnd,
    /// The same at fan-out 1 (cost), when asked for.
    pub fan_out_1: Option<EndToEnd>,
    /// The isolation scenario, when asked for.
    pub isolation: Option<Isolation>,
}

/// The same events to the same 8 webhooks, without (`base`) and with (`with_bad`) two more
/// webhooks receiving every event: one that never answers (10 % of the deliveries: each
/// waits for the delivery timeout), one that answers 200 after [`crate::receiver::SLOW`]. The
/// figures of each window are those of the 8.
#[derive(Debug, Serialize)]
pub struct Isolation {
    pub base: EndToEnd,
    pub with_bad: EndToEnd,
}

/// One batch through the matcher and the file its requests were recorded in.
#[derive(Debug, Serialize)]
pub struct RecordedBatch {
    pub shape: String,
    pub events: usize,
    pub projects: usize,
    pub recording: PathBuf,
}

/// How the measured events are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Publish {
    /// `POST /v1/events`, one event per request (API Gateway, the subscriptions function).
    Api,
    /// `SendMessage` to the ingest queue, as a producer inside the account may.
    Queue,
}

impl Publish {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "api" => Ok(Self::Api),
            "queue" => Ok(Self::Queue),
            other => bail!("unknown publish mode {other} (api or queue)"),
        }
    }
}

/// What the pipeline command is asked to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub events: usize,
    pub rate: f64,
    /// Events of the fan-out-1 window (0: none).
    pub events_fan_out_1: usize,
    /// Events of each isolation window (0: none).
    pub events_isolation: usize,
    pub publish: Publish,
    /// Size of each event's `data`, serialised.
    pub payload_bytes: usize,
    /// A command (split on spaces) run before each window with an output path appended: it
    /// writes the tables' items, the state the pricing replays the recorded writes from.
    pub snapshot_command: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EndToEnd {
    pub name: String,
    pub events: usize,
    pub fan_out: u32,
    pub publish: Publish,
    pub payload_bytes: usize,
    /// Requests to `POST /v1/events` (one per event in `api` mode).
    pub api_requests: usize,
    pub rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    pub publish_errors: usize,
    pub pairs_expected: usize,
    pub pairs_delivered: usize,
    /// Deliveries (of the webhooks the figures are about) per second, from the first publish
    /// to the last of their first arrivals.
    pub delivery_rate_per_s: f64,
    /// All of them arrived within the drain's time limit (a window that must drain fails
    /// otherwise; an isolation window reports what arrived).
    pub drained: bool,
    pub pairs_failed_first: usize,
    pub extra_requests: u64,
    /// Ingest (before the publish request) to the first arrival of each (event, webhook) pair.
    pub latency_ms: Percentiles,
    /// Ingest to the last of an event's first arrivals (all its webhooks reached).
    pub event_latency_ms: Percentiles,
    pub seconds: f64,
    /// The recorded window, in Unix seconds (to pick the local stack's log lines of the run).
    pub started_unix: f64,
    pub ended_unix: f64,
    pub recording: PathBuf,
    /// The tables' items at the start of the window (see [`Settings::snapshot_command`]).
    pub snapshot: Option<PathBuf>,
    /// Bytes the functions logged during the run (CloudWatch Logs ingestion), by binary.
    pub log_bytes: BTreeMap<String, u64>,
    /// The functions' invocations during the run, from their own clocks, by binary.
    pub invocations: BTreeMap<String, FunctionTime>,
    /// CPU seconds of the stack's processes over the window, by role.
    pub cpu: cpu::Usage,
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
    /// Each invocation's (duration, AWS time, AWS calls), for the pricing's latency models.
    pub each: Vec<(f64, f64, f64)>,
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

/// One measured window: its events' ids start with `prefix`, have type `event_type` and
/// reach `fan_out` webhooks.
struct Window {
    name: &'static str,
    prefix: &'static str,
    event_type: &'static str,
    fan_out: u32,
    events: usize,
    /// Pairs per event of slow webhooks, waited for but not in the figures.
    slow_per_event: usize,
    /// Snapshot the tables for the pricing, and fail if not all pairs arrive.
    priced: bool,
}

/// The receiver's first-attempt failures: (event id prefix, fan-out) of each window.
const FAILING: &[(&str, u64)] = &[("e2e-", FAN_OUT as u64), ("f1-", 1)];

/// Everything above, with `settings.events` published at `settings.rate` per second.
pub async fn measure(stack: &Stack, stack_file: &Path, settings: &Settings, out_dir: &Path) -> Result<Pipeline> {
    let run = unique();
    // Only the measured run fails first attempts: the warm-up and the recorded batches must
    // arrive at once.
    let receiver = RecordingReceiver::new(Some(FAIL_ONE_IN), FAILING);
    let base = receiver.start()?;
    let key = stack.create_key(&format!("bench-e2e-{run}"), &[COMPANY]).await?;
    let scopes = json!([{"company_id": COMPANY, "project_id": PROJECT}]);
    for j in 0..FAN_OUT {
        let url = format!("{base}/e2e/{j}");
        // The first webhook also receives the fan-out-1 window's events; the first 8 the
        // isolation windows'.
        let mut events = vec![EVENT_TYPE];
        if j == 0 {
            events.push(EVENT_TYPE_ONE);
        }
        if j < ISOLATION_WEBHOOKS {
            events.extend([ISOLATION_BASE, ISOLATION_BAD]);
        }
        stack.create_webhook(&key, &url, &events, scopes.clone()).await?;
    }
    if settings.events_isolation > 0 {
        stack.create_webhook(&key, &format!("{base}/hang/0"), &[ISOLATION_BAD], scopes.clone()).await?;
        stack.create_webhook(&key, &format!("{base}/slow/0"), &[ISOLATION_BAD], scopes.clone()).await?;
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
    if settings.publish == Publish::Api {
        for i in 0..10 {
            let event = cloud_event(&format!("warmapi-{run}-{i}"), COMPANY, PROJECT, EVENT_TYPE);
            let status = stack.publish_one(&key, &event).await?;
            if status != 202 {
                bail!("publishing a warm-up event answered {status}");
            }
        }
        expected_pairs += 10 * FAN_OUT as usize;
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

    let context =
        RunContext { stack, stack_file, sqs: &sqs, receiver: &receiver, key: &key, run: &run, settings, out_dir };
    let priced = |name, prefix, event_type, fan_out, events| Window {
        name,
        prefix,
        event_type,
        fan_out,
        events,
        slow_per_event: 0,
        priced: true,
    };
    let e2e =
        end_to_end(&context, &priced("fanout10", "e2e-", EVENT_TYPE, FAN_OUT, settings.events), &mut expected_pairs)
            .await?;
    let fan_out_1 = if settings.events_fan_out_1 > 0 {
        let window = priced("fanout1", "f1-", EVENT_TYPE_ONE, 1, settings.events_fan_out_1);
        Some(end_to_end(&context, &window, &mut expected_pairs).await?)
    } else {
        None
    };
    // Last: the webhook that never answers keeps the delivery processes busy with its retries.
    let isolation = if settings.events_isolation > 0 {
        let window = |name, prefix, event_type, slow_per_event| Window {
            name,
            prefix,
            event_type,
            fan_out: ISOLATION_WEBHOOKS,
            events: settings.events_isolation,
            slow_per_event,
            priced: false,
        };
        let base =
            end_to_end(&context, &window("isolation_base", "ib-", ISOLATION_BASE, 0), &mut expected_pairs).await?;
        let with_bad =
            end_to_end(&context, &window("isolation_bad", "ix-", ISOLATION_BAD, 1), &mut expected_pairs).await?;
        Some(Isolation { base, with_bad })
    } else {
        None
    };

    Ok(Pipeline { matcher_requests, e2e, fan_out_1, isolation })
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

struct RunContext<'a> {
    stack: &'a Stack,
    stack_file: &'a Path,
    sqs: &'a aws_sdk_sqs::Client,
    receiver: &'a RecordingReceiver,
    key: &'a str,
    run: &'a str,
    settings: &'a Settings,
    out_dir: &'a Path,
}

/// The local stack's own process: the parent of a function process.
async fn stack_pid(stack: &Stack) -> Result<u32> {
    let processes = stack.processes("delivery").await?;
    let pid = processes.iter().find_map(|p| p.pid).context("no delivery process")?;
    cpu::parent_of(pid).context("no parent of the delivery process")
}

async fn end_to_end(c: &RunContext<'_>, window: &Window, expected_pairs: &mut usize) -> Result<EndToEnd> {
    let (stack, settings) = (c.stack, c.settings);
    let logs_dir = c.stack_file.parent().map(|d| d.join("logs")).unwrap_or_default();
    // The previous part's last writes (after its POSTs) land before the state is read.
    tokio::time::sleep(SETTLE).await;
    let snapshot = match &settings.snapshot_command {
        Some(command) if window.priced => {
            let path = c.out_dir.join(format!("{}-snapshot.json", window.name));
            let mut parts = command.split_whitespace();
            let program = parts.next().context("an empty snapshot command")?;
            let status = std::process::Command::new(program).args(parts).arg(&path).status()?;
            if !status.success() {
                bail!("the snapshot command failed ({status})");
            }
            Some(path)
        }
        _ => None,
    };
    let stack_pid = stack_pid(stack).await?;
    let logs_before = log_sizes(&logs_dir);
    stack.start_recording().await?;
    let cpu_before = cpu::read(stack_pid);
    let started_unix = unix_now();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let errors: Arc<Mutex<usize>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / settings.rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(window.events);
    for i in 0..window.events {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let id = format!("{}{}-{i}", window.prefix, c.run);
        let event = cloud_event_sized(&id, COMPANY, PROJECT, window.event_type, settings.payload_bytes);
        let (sent, errors) = (Arc::clone(&sent), Arc::clone(&errors));
        let (stack, sqs, key, publish) = (stack.clone(), c.sqs.clone(), c.key.to_owned(), settings.publish);
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            if let Ok(mut s) = sent.lock() {
                s.insert(id, at);
            }
            let ok = match publish {
                Publish::Api => matches!(stack.publish_one(&key, &event).await, Ok(202)),
                Publish::Queue => sqs
                    .send_message()
                    .queue_url(&stack.info.ingest_queue_url)
                    .message_body(event.to_string())
                    .send()
                    .await
                    .is_ok(),
            };
            if !ok && let Ok(mut e) = errors.lock() {
                *e += 1;
            }
        }));
    }
    let published_in = started.elapsed();
    for t in tasks {
        let _ = t.await;
    }
    let expected = window.events * window.fan_out as usize;
    *expected_pairs += expected + window.events * window.slow_per_event;
    let backlog = Duration::from_secs_f64(expected as f64 / SLOWEST_DRAIN_PER_S);
    let drained = wait_for(c.receiver, *expected_pairs, DRAIN_TIMEOUT + backlog.saturating_sub(published_in)).await;
    if !window.priced && drained.is_err() {
        // What did not arrive is not expected later: the next window waits for its own only.
        *expected_pairs = c.receiver.delivered();
    }
    tokio::time::sleep(SETTLE).await;
    let cpu_after = cpu::read(stack_pid);
    let recording = c.out_dir.join(format!("{}.jsonl", if window.name == "fanout10" { "e2e" } else { window.name }));
    std::fs::write(&recording, stack.stop_recording().await?)?;
    let ended_unix = unix_now();
    let seconds = started.elapsed().as_secs_f64();
    let logs_after = log_sizes(&logs_dir);
    let all_arrived = drained.is_ok();
    if window.priced {
        drained?;
    }
    let mut invocations = BTreeMap::new();
    for b in ["subscriptions", "matcher", "delivery"] {
        if let Some(t) = function_time(&logs_dir, b, &logs_before, &logs_after)? {
            invocations.insert(b.to_owned(), t);
        }
    }
    for b in ["matcher", "delivery"] {
        if !invocations.contains_key(b) {
            bail!("no invocation of {b} was logged during the run");
        }
    }

    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let arrivals = c.receiver.arrivals();
    let mut latencies = Vec::new();
    // Per event: its slowest first arrival, and how many of its webhooks were reached.
    let mut per_event: HashMap<&str, (f64, u32)> = HashMap::new();
    let (mut delivered, mut failed_first, mut extra) = (0usize, 0usize, 0u64);
    let mut last_arrival = started;
    for ((event_id, webhook), arrival) in &arrivals {
        let Some(at) = sent.get(event_id) else { continue };
        if *webhook >= SLOW_WEBHOOKS {
            continue;
        }
        last_arrival = last_arrival.max(arrival.first);
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
        per_event.values().filter(|(_, reached)| *reached == window.fan_out).map(|(worst, _)| *worst).collect();
    let log_bytes = ["subscriptions", "matcher", "delivery"]
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
        name: window.name.to_owned(),
        events: window.events,
        fan_out: window.fan_out,
        publish: settings.publish,
        payload_bytes: settings.payload_bytes,
        api_requests: if settings.publish == Publish::Api { window.events } else { 0 },
        rate_per_s: settings.rate,
        achieved_rate_per_s: window.events as f64 / published_in.as_secs_f64().max(f64::MIN_POSITIVE),
        publish_errors: errors.lock().map(|e| *e).unwrap_or_default(),
        pairs_expected: expected,
        pairs_delivered: delivered,
        delivery_rate_per_s: delivered as f64 / last_arrival.saturating_duration_since(started).as_secs_f64().max(1e-3),
        drained: all_arrived,
        pairs_failed_first: failed_first,
        extra_requests: extra,
        latency_ms: Percentiles::of(latencies),
        event_latency_ms: Percentiles::of(complete_events),
        seconds,
        started_unix,
        ended_unix,
        recording,
        snapshot,
        log_bytes,
        invocations,
        cpu: cpu::between(&cpu_before, &cpu_after),
    })
}

/// The "invocation timed" lines `binary`'s processes logged between the two readings of the
/// log sizes.
fn function_time(
    dir: &Path,
    binary: &str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Result<Option<FunctionTime>> {
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
    if durations.is_empty() {
        return Ok(None);
    }
    let summary =
        |v: &[f64]| Summary::of(v).with_context(|| format!("no invocation of {binary} was logged during the run"));
    let each = durations.iter().zip(&aws).zip(&calls).map(|((d, a), c)| (*d, *a, *c)).collect();
    Ok(Some(FunctionTime {
        count: durations.len(),
        duration_ms: summary(&durations)?,
        aws_ms: summary(&aws)?,
        aws_calls: summary(&calls)?,
        total_duration_ms: durations.iter().sum(),
        total_aws_ms: aws.iter().sum(),
        total_aws_calls: calls.iter().sum(),
        billed_ms: durations.iter().map(|d| d.ceil().max(1.0)).sum(),
        each,
    }))
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
