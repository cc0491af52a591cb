//! Delivery throughput: deliveries per second of the delivery handler, in-process, one batch
//! of 10 at a time (as one execution environment works; its 10 sends run concurrently), next
//! to a raw HTTP load tool (`wrk`) at the same concurrency against the same fast receiver, in
//! alternating rounds so each round's ratio compares figures taken under the same load.
//!
//! The handler runs in a child process given exactly the delivery function's environment (read
//! from a running process of the local stack) and built by `delivery::wiring::from_env`, the
//! function's own wiring; its AWS calls go to the stack's emulator. A third figure, the HTTP
//! sender alone (signing and egress checks included, no AWS), separates our sending path from
//! the cost of the emulator calls around it; and the handler's rate over its time not spent
//! waiting on AWS (`webhooks_aws::timing`, at the SDK's HTTP connector) is what it would do
//! if every AWS call answered at once: the upper bound of our own code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_lambda_events::event::sqs::SqsEvent;
use futures_util::future::join_all;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use webhooks_core::message::{Delivery, DeliveryQueueMessage};
use webhooks_core::payload::delivery_body;
use webhooks_core::ports::SignedRequest;
use webhooks_core::signing::{SigningKey, SigningSecret, delivery_id, webhook_message_id};

use crate::stack::{Stack, cloud_event, sqs_event, unique};
use crate::stats::Summary;

/// Records per SQS batch (the template's `BatchSize`), sent concurrently by the handler.
pub const BATCH: usize = 10;
/// Batches run before timing: connections opened, secrets decrypted and cached.
const WARM_UP_BATCHES: usize = 3;
const COMPANY: &str = "benchtp";
const PROJECT: &str = "tp";

/// What one timed run of a worker did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WorkerRun {
    pub deliveries: u64,
    pub failed: u64,
    pub seconds: f64,
    /// Of `seconds`, the time with at least one AWS request in flight.
    pub aws_seconds: f64,
}

impl WorkerRun {
    pub fn per_second(&self) -> f64 {
        self.deliveries as f64 / self.seconds
    }

    /// The rate over the time not spent waiting on AWS.
    pub fn per_second_without_aws(&self) -> f64 {
        self.deliveries as f64 / (self.seconds - self.aws_seconds).max(f64::MIN_POSITIVE)
    }
}

/// One round: the three figures, taken one after the other.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub handler_per_s: f64,
    pub handler_without_aws_per_s: f64,
    pub sender_per_s: f64,
    pub raw_per_s: Option<f64>,
    pub handler_to_raw: Option<f64>,
    pub handler_without_aws_to_raw: Option<f64>,
    pub sender_to_raw: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    pub batch: usize,
    pub concurrency: usize,
    pub seconds_per_figure: f64,
    pub raw_tool: Option<String>,
    pub rounds: Vec<Round>,
    pub handler_per_s: Option<Summary>,
    pub handler_without_aws_per_s: Option<Summary>,
    pub sender_per_s: Option<Summary>,
    pub raw_per_s: Option<Summary>,
    pub handler_to_raw: Option<Summary>,
    pub handler_without_aws_to_raw: Option<Summary>,
    pub sender_to_raw: Option<Summary>,
}

/// Which path a worker times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Deliverer::handle` on SQS batches: reads, signs, sends, records.
    Handler,
    /// `HttpSender::post` of signed bodies only.
    Sender,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Handler => "handler",
            Self::Sender => "sender",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "handler" => Ok(Self::Handler),
            "sender" => Ok(Self::Sender),
            other => bail!("unknown mode {other}"),
        }
    }
}

/// Sets up 10 webhooks on the receiver and runs `rounds` rounds of handler, sender and raw
/// tool, `seconds` each.
pub async fn measure(
    stack: &Stack,
    receiver: &str,
    rounds: usize,
    seconds: f64,
    work_dir: &Path,
) -> Result<Throughput> {
    let key = stack.create_key(&format!("bench-throughput-{}", unique()), &[COMPANY]).await?;
    let mut webhooks = Vec::new();
    for j in 0..BATCH {
        let url = format!("{receiver}/tp/{j}");
        webhooks.push(
            stack
                .create_webhook(&key, &url, &["TODO_CREATED"], json!([{"company_id": COMPANY, "project_id": PROJECT}]))
                .await?,
        );
    }
    let env = stack.function_env("delivery").await?;
    let raw_tool = which("wrk");
    let mut all = Vec::new();
    for round in 0..rounds {
        let handler = run_worker(
            &env,
            Mode::Handler,
            receiver,
            &webhooks,
            seconds,
            &work_dir.join(format!("handler-{round}.json")),
        )?;
        let sender = run_worker(
            &env,
            Mode::Sender,
            receiver,
            &webhooks,
            seconds,
            &work_dir.join(format!("sender-{round}.json")),
        )?;
        let raw = match &raw_tool {
            Some(wrk) => Some(run_wrk(wrk, &format!("{receiver}/raw"), BATCH, seconds)?),
            None => None,
        };
        if handler.failed > 0 || sender.failed > 0 {
            bail!("round {round}: {} handler and {} sender deliveries failed", handler.failed, sender.failed);
        }
        all.push(Round {
            handler_per_s: handler.per_second(),
            handler_without_aws_per_s: handler.per_second_without_aws(),
            sender_per_s: sender.per_second(),
            raw_per_s: raw,
            handler_to_raw: raw.map(|r| handler.per_second() / r),
            handler_without_aws_to_raw: raw.map(|r| handler.per_second_without_aws() / r),
            sender_to_raw: raw.map(|r| sender.per_second() / r),
        });
    }
    let series = |f: fn(&Round) -> Option<f64>| Summary::of(&all.iter().filter_map(f).collect::<Vec<_>>());
    Ok(Throughput {
        batch: BATCH,
        concurrency: BATCH,
        seconds_per_figure: seconds,
        raw_tool: raw_tool.map(|p| format!("wrk -t2 -c{BATCH} -d{seconds}s ({})", p.display())),
        handler_per_s: series(|r| Some(r.handler_per_s)),
        handler_without_aws_per_s: series(|r| Some(r.handler_without_aws_per_s)),
        sender_per_s: series(|r| Some(r.sender_per_s)),
        raw_per_s: series(|r| r.raw_per_s),
        handler_to_raw: series(|r| r.handler_to_raw),
        handler_without_aws_to_raw: series(|r| r.handler_without_aws_to_raw),
        sender_to_raw: series(|r| r.sender_to_raw),
        rounds: all,
    })
}

fn run_worker(
    env: &BTreeMap<String, String>,
    mode: Mode,
    receiver: &str,
    webhooks: &[String],
    seconds: f64,
    out: &Path,
) -> Result<WorkerRun> {
    let exe = std::env::current_exe()?;
    let status = Command::new(exe)
        .env_clear()
        .envs(env)
        .args(["deliver-worker", "--mode", mode.as_str(), "--seconds", &seconds.to_string(), "--receiver", receiver])
        .args(["--webhooks", &webhooks.join(",")])
        .arg("--out")
        .arg(out)
        // The function's JSON logs: produced as on Lambda, not kept.
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("the {} worker failed ({status})", mode.as_str());
    }
    Ok(serde_json::from_slice(&std::fs::read(out)?)?)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(tool)).find(|p| p.is_file())
}

/// Requests per second `wrk` reaches with `connections` connections on 2 threads.
fn run_wrk(wrk: &Path, url: &str, connections: usize, seconds: f64) -> Result<f64> {
    let out = Command::new(wrk)
        .args(["-t2", &format!("-c{connections}"), &format!("-d{}s", seconds.ceil() as u64), url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))
}

// ---------------------------------------------------------------- the worker (child process)

/// The child: times `mode` for `seconds` after a warm-up, writes a [`WorkerRun`] to `out`.
pub async fn worker(mode: Mode, receiver: &str, webhooks: &[String], seconds: f64, out: &Path) -> Result<()> {
    webhooks_aws::telemetry::init();
    let deliverer = delivery::wiring::from_env().await.map_err(|e| anyhow::anyhow!("building the deliverer: {e}"))?;
    let queue_arn = "arn:aws:sqs:us-east-1:123456789012:bench-delivery";
    let run_id = unique();
    let secret = SigningKey::from(SigningSecret::generate().map_err(|e| anyhow::anyhow!("{e}"))?);
    let sender = &deliverer.sender;
    let mut batch_number = 0usize;
    let mut next_batch = || {
        batch_number += 1;
        let event_json = cloud_event(&format!("tp-{run_id}-{batch_number}"), COMPANY, PROJECT, "TODO_CREATED");
        let event = webhooks_core::event::parse_ingest_body(&event_json.to_string(), time::OffsetDateTime::now_utc())
            .map_err(|e| anyhow::anyhow!("bench event refused: {}", e.message))?;
        let message_id = webhook_message_id(&event.company_id, &event.source, &event.id);
        Ok::<_, anyhow::Error>(
            webhooks
                .iter()
                .map(|w| Delivery {
                    delivery_id: delivery_id(&message_id, w, 0),
                    webhook_id: w.clone(),
                    webhook_message_id: message_id.clone(),
                    event: event.clone(),
                    generation: 0,
                    queued_at: 0,
                    send_at_ms: None,
                    // As from the matcher; the key is read after the webhook otherwise.
                    owner_key_id: None,
                })
                .collect::<Vec<_>>(),
        )
    };
    let run_batch = |batch: Vec<Delivery>| {
        let deliverer = &deliverer;
        let secret = &secret;
        async move {
            match mode {
                Mode::Handler => {
                    let bodies: Vec<String> =
                        batch.into_iter().map(|d| DeliveryQueueMessage::Delivery(d).to_json()).collect();
                    let event: SqsEvent = serde_json::from_value(sqs_event(queue_arn, &bodies))?;
                    let response = deliverer
                        .handle(LambdaEvent::new(event, LambdaContext::default()))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    Ok::<u64, anyhow::Error>(response.batch_item_failures.len() as u64)
                }
                Mode::Sender => {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let sends = batch.iter().enumerate().map(|(j, d)| {
                        let body = delivery_body(&d.event, &d.webhook_id);
                        let url = format!("{receiver}/tp/{j}");
                        async move {
                            let headers = BTreeMap::new();
                            let request = SignedRequest {
                                url: &url,
                                headers: &headers,
                                webhook_message_id: &d.webhook_message_id,
                                timestamp: now,
                                body,
                                secrets: std::slice::from_ref(secret),
                            };
                            sender.send_signed(request).await
                        }
                    });
                    Ok(join_all(sends).await.iter().filter(|o| !o.succeeded()).count() as u64)
                }
            }
        }
    };
    for _ in 0..WARM_UP_BATCHES {
        run_batch(next_batch()?).await?;
    }
    let started = Instant::now();
    let (aws_before, _) = webhooks_aws::timing::aws_time();
    let mut run = WorkerRun { deliveries: 0, failed: 0, seconds: 0.0, aws_seconds: 0.0 };
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        let failed = run_batch(next_batch()?).await?;
        run.deliveries += BATCH as u64 - failed;
        run.failed += failed;
    }
    run.seconds = started.elapsed().as_secs_f64();
    run.aws_seconds = webhooks_aws::timing::aws_time().0.saturating_sub(aws_before).as_secs_f64();
    std::fs::write(out, serde_json::to_vec(&run)?)?;
    Ok(())
}
