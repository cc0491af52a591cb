//! The critical path from the matcher receiving an event to the first POST of it: how many
//! sequential AWS round trips it makes, measured.
//!
//! A child process gets the matcher's and the delivery function's environments (read from
//! their running processes of the local stack) and builds both handlers in-process with their
//! own wiring (the matcher's as its `main.rs` does, the deliverer by
//! `delivery::wiring::from_env`), the delivery queue replaced by a private queue of the
//! emulator so the stack's own delivery processes never take the messages. For each of a few
//! single events: the matcher handles a one-record batch; its messages are received from the
//! private queue (outside the timed windows) and handed to the deliverer as one batch, which
//! posts them to a receiver in the same process.
//!
//! Every AWS call is timed from the SDK's own span of the operation (`rpc.service`,
//! `rpc.method`: serialising, signing, the round trip and parsing), on the same clock as the
//! receiver's arrivals. On the path are the matcher's calls that start before its last send to
//! the delivery queue ends (the messages exist from then on), and the deliverer's that start
//! before the first POST arrives. Calls that overlap in time form one round trip; the count
//! of such groups is the figure.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Subscriber, subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::receiver::RecordingReceiver;
use crate::stack::{Stack, cloud_event_sized, sqs_event, unique};
use crate::stats::{Summary, ms};

const COMPANY: &str = "benchcp";
const PROJECT: &str = "cp";
const EVENT_TYPE: &str = "TODO_CREATED";
/// Webhooks each event fans out to (as in the pipeline).
const FAN_OUT: usize = 10;
/// Events handled before the measured ones: connections opened, secrets decrypted.
const WARM_UP: usize = 2;
/// The matcher's settings the child must share with the deliverer's environment.
const MATCHER_VARS: [&str; 4] = ["SUBSCRIPTIONS_TABLE", "INGEST_DLQ_URL", "EVENTS_TABLE", "DELIVERY_QUEUE_URL"];

/// One AWS call of the SDK, on this process's clock.
#[derive(Debug, Clone)]
struct Call {
    operation: String,
    start: Instant,
    end: Instant,
}

static CALLS: Mutex<Vec<Call>> = Mutex::new(Vec::new());

/// The part of a span the layer keeps while it is open.
struct Open {
    operation: String,
    start: Option<Instant>,
}

#[derive(Default)]
struct Names {
    service: String,
    method: String,
}

impl Visit for Names {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "rpc.service" => value.clone_into(&mut self.service),
            "rpc.method" => value.clone_into(&mut self.method),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, text.trim_matches('"'));
    }
}

/// Keeps the start (first poll) and end (close) of every SDK operation span.
struct CallTimes;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CallTimes {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if attrs.metadata().fields().field("rpc.method").is_none() {
            return;
        }
        let mut names = Names::default();
        attrs.record(&mut names);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut()
                .insert(Open { operation: format!("{}:{}", names.service, names.method), start: None });
        }
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(open) = span.extensions_mut().get_mut::<Open>()
        {
            open.start.get_or_insert_with(Instant::now);
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let end = Instant::now();
        if let Some(span) = ctx.span(&id)
            && let Some(open) = span.extensions_mut().remove::<Open>()
            && let Ok(mut calls) = CALLS.lock()
        {
            calls.push(Call { operation: open.operation, start: open.start.unwrap_or(end), end });
        }
    }
}

/// One event's path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// The secrets were decrypted for this event (the first after the webhooks were created).
    pub cold_secret_cache: bool,
    pub round_trips: usize,
    pub matcher_round_trips: usize,
    pub delivery_round_trips: usize,
    /// Each round trip: its calls ("service:Operation"), its duration on the emulator (ms).
    pub groups: Vec<(Vec<String>, f64)>,
    /// Each round trip's calls on one line ("DynamoDB:Query x2 + DynamoDB:PutItem").
    pub described: Vec<String>,
    /// The matcher's path (handler start to its last send's end) and the deliverer's (handler
    /// start to the first POST's arrival), ms on the emulator.
    pub matcher_path_ms: f64,
    pub delivery_path_ms: f64,
    /// Of both paths, the time with no AWS call in flight: our code (and the POST).
    pub own_ms: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CriticalPath {
    pub samples: Vec<Sample>,
    /// Over the warm samples (secrets cached).
    pub round_trips: Option<Summary>,
    pub own_ms: Option<Summary>,
}

/// Runs the child with the two functions' environments; returns what it measured.
pub async fn measure(stack: &Stack, stack_file: &Path, samples: usize, work_dir: &Path) -> Result<CriticalPath> {
    let matcher = stack.function_env("matcher").await?;
    let delivery = stack.function_env("delivery").await?;
    let mut env = matcher.clone();
    for (k, v) in &delivery {
        if MATCHER_VARS.contains(&k.as_str()) && matcher.get(k).is_some_and(|m| m != v) {
            bail!("the matcher and the deliverer disagree on {k}");
        }
        env.insert(k.clone(), v.clone());
    }
    // A private delivery queue: the stack's event source mapping must not take the messages.
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config().await);
    let queue = sqs
        .create_queue()
        .queue_name(format!("bench-critical-path-{}", std::process::id()))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await?
        .queue_url
        .context("no queue url")?;
    env.insert("DELIVERY_QUEUE_URL".to_owned(), queue.clone());
    let out = work_dir.join("critical-path.json");
    let status = std::process::Command::new(std::env::current_exe()?)
        .env_clear()
        .envs(&env)
        .args(["critical-path-worker", "--stack"])
        .arg(stack_file)
        .args(["--samples", &samples.to_string(), "--queue", &queue, "--out"])
        .arg(&out)
        .status()?;
    let _ = sqs.delete_queue().queue_url(&queue).send().await;
    if !status.success() {
        bail!("the critical path worker failed ({status})");
    }
    Ok(serde_json::from_slice(&std::fs::read(&out)?)?)
}

/// The child: see the module's documentation.
pub async fn worker(stack_file: &Path, samples: usize, queue: &str, out: &Path) -> Result<()> {
    subscriber::set_global_default(tracing_subscriber::registry().with(CallTimes))?;
    let stack = Stack::open(stack_file)?;
    let receiver = RecordingReceiver::new(None, &[]);
    let base = receiver.start()?;
    let run = unique();
    let key = stack.create_key(&format!("bench-cp-{run}"), &[COMPANY]).await?;
    for j in 0..FAN_OUT {
        let url = format!("{base}/e2e/{j}");
        stack
            .create_webhook(&key, &url, &[EVENT_TYPE], json!([{"company_id": COMPANY, "project_id": PROJECT}]))
            .await?;
    }
    let matcher = matcher_from_env().await?;
    let deliverer = delivery::wiring::from_env().await.map_err(|e| anyhow::anyhow!("building the deliverer: {e}"))?;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config().await);
    let ingest_arn = "arn:aws:sqs:us-east-1:123456789012:ingest";
    let delivery_arn = "arn:aws:sqs:us-east-1:123456789012:delivery";

    let mut measured = Vec::new();
    for i in 0..WARM_UP + samples {
        let id = format!("cp-{run}-{i}");
        let body = cloud_event_sized(&id, COMPANY, PROJECT, EVENT_TYPE, 1024).to_string();
        let event: SqsEvent = serde_json::from_value(sqs_event(ingest_arn, &[body]))?;
        take_calls();
        let matcher_started = Instant::now();
        let response = matcher
            .handle(LambdaEvent::new(event, LambdaContext::default()))
            .await
            .map_err(|e| anyhow::anyhow!("matcher: {e}"))?;
        if !response.batch_item_failures.is_empty() {
            bail!("the matcher handed event {id} back");
        }
        let matcher_calls = take_calls();

        // Outside the timed windows: the messages the matcher sent.
        let mut messages = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while messages.len() < FAN_OUT && Instant::now() < deadline {
            let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await?;
            messages.extend(got.messages.unwrap_or_default());
        }
        if messages.len() != FAN_OUT {
            bail!("{} of {FAN_OUT} delivery messages arrived on the private queue", messages.len());
        }
        let bodies: Vec<String> = messages.iter().filter_map(|m| m.body.clone()).collect();
        let batch: SqsEvent = serde_json::from_value(sqs_event(delivery_arn, &bodies))?;
        take_calls();
        let delivery_started = Instant::now();
        let response = deliverer
            .handle(LambdaEvent::new(batch, LambdaContext::default()))
            .await
            .map_err(|e| anyhow::anyhow!("deliverer: {e}"))?;
        if !response.batch_item_failures.is_empty() {
            bail!("the deliverer handed {} deliveries of {id} back", response.batch_item_failures.len());
        }
        let delivery_calls = take_calls();
        for m in &messages {
            if let Some(handle) = &m.receipt_handle {
                sqs.delete_message().queue_url(queue).receipt_handle(handle).send().await?;
            }
        }
        let first_post = receiver
            .arrivals()
            .iter()
            .filter(|((event_id, _), _)| *event_id == id)
            .map(|(_, a)| a.first)
            .min()
            .with_context(|| format!("no POST of {id} arrived"))?;
        if matcher_calls.is_empty() || delivery_calls.is_empty() {
            bail!("no AWS call was seen (are the SDK's debug spans compiled out?)");
        }
        if i >= WARM_UP || i == 0 {
            measured.push(sample(
                i == 0,
                matcher_started,
                &matcher_calls,
                delivery_started,
                &delivery_calls,
                first_post,
            )?);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let warm: Vec<&Sample> = measured.iter().filter(|s| !s.cold_secret_cache).collect();
    let result = CriticalPath {
        round_trips: Summary::of(&warm.iter().map(|s| s.round_trips as f64).collect::<Vec<_>>()),
        own_ms: Summary::of(&warm.iter().map(|s| s.own_ms).collect::<Vec<_>>()),
        samples: measured,
    };
    std::fs::write(out, serde_json::to_vec_pretty(&result)?)?;
    Ok(())
}

fn take_calls() -> Vec<Call> {
    CALLS.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default()
}

fn sample(
    cold: bool,
    matcher_started: Instant,
    matcher_calls: &[Call],
    delivery_started: Instant,
    delivery_calls: &[Call],
    first_post: Instant,
) -> Result<Sample> {
    let sent = matcher_calls
        .iter()
        .filter(|c| c.operation.starts_with("SQS:SendMessage"))
        .map(|c| c.end)
        .max()
        .context("the matcher sent nothing to the delivery queue")?;
    let matcher_path: Vec<&Call> = matcher_calls.iter().filter(|c| c.start < sent).collect();
    let delivery_path: Vec<&Call> = delivery_calls.iter().filter(|c| c.start < first_post).collect();
    let matcher_groups = groups(&matcher_path);
    let delivery_groups = groups(&delivery_path);
    let busy = |groups: &[(Vec<String>, Instant, Instant)], until: Instant| {
        groups.iter().map(|(_, s, e)| ms((*e).min(until).saturating_duration_since(*s))).sum::<f64>()
    };
    let matcher_path_ms = ms(sent.saturating_duration_since(matcher_started));
    let delivery_path_ms = ms(first_post.saturating_duration_since(delivery_started));
    let own_ms =
        (matcher_path_ms - busy(&matcher_groups, sent)) + (delivery_path_ms - busy(&delivery_groups, first_post));
    let all: Vec<(Vec<String>, f64)> = matcher_groups
        .iter()
        .chain(&delivery_groups)
        .map(|(ops, s, e)| (ops.clone(), ms(e.saturating_duration_since(*s))))
        .collect();
    Ok(Sample {
        cold_secret_cache: cold,
        round_trips: all.len(),
        described: describe(&all),
        matcher_round_trips: matcher_groups.len(),
        delivery_round_trips: delivery_groups.len(),
        groups: all,
        matcher_path_ms,
        delivery_path_ms,
        own_ms: own_ms.max(0.0),
    })
}

/// Calls in start order, merged while they overlap: (operations, start, end) of each group.
fn groups(calls: &[&Call]) -> Vec<(Vec<String>, Instant, Instant)> {
    let mut sorted: Vec<&&Call> = calls.iter().collect();
    sorted.sort_by_key(|c| c.start);
    let mut out: Vec<(Vec<String>, Instant, Instant)> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some((ops, _, end)) if c.start < *end => {
                ops.push(c.operation.clone());
                *end = (*end).max(c.end);
            }
            _ => out.push((vec![c.operation.clone()], c.start, c.end)),
        }
    }
    out
}

/// The matcher as its `main.rs` wires it.
async fn matcher_from_env() -> Result<
    matcher::Matcher<
        webhooks_aws::dynamodb::DynamoDbSubscriptions,
        webhooks_aws::dynamodb::DynamoDbSubscriptions,
        webhooks_aws::claims::DynamoDbEventClaims,
        webhooks_aws::sqs::SqsBatchSender,
        webhooks_aws::sqs::SqsIngestDeadLetters,
        webhooks_core::ports::SystemClock,
    >,
> {
    use webhooks_aws::config::required;
    let sdk = webhooks_aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = webhooks_aws::conflicts::dynamodb_client(&sdk);
    let var = |name: &'static str| required(name).map_err(|e| anyhow::anyhow!("{name}: {e}"));
    let subscriptions =
        webhooks_aws::dynamodb::DynamoDbSubscriptions::new(dynamodb.clone(), var("SUBSCRIPTIONS_TABLE")?);
    Ok(matcher::Matcher {
        dead_letters: webhooks_aws::sqs::SqsIngestDeadLetters::new(sqs.clone(), var("INGEST_DLQ_URL")?),
        index: subscriptions.clone(),
        owners: subscriptions,
        claims: webhooks_aws::claims::DynamoDbEventClaims::new(dynamodb, var("EVENTS_TABLE")?),
        deliveries: webhooks_aws::sqs::SqsBatchSender::new(sqs, var("DELIVERY_QUEUE_URL")?),
        clock: webhooks_core::ports::SystemClock,
        owner_cache: matcher::OwnerKeyCache::default(),
    })
}

/// Round trips by the operations they hold, for the table.
fn describe(groups: &[(Vec<String>, f64)]) -> Vec<String> {
    groups
        .iter()
        .map(|(ops, _)| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for op in ops {
                *counts.entry(op.as_str()).or_default() += 1;
            }
            counts
                .iter()
                .map(|(op, n)| if *n > 1 { format!("{op} x{n}") } else { (*op).to_owned() })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect()
}
