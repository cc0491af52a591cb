//! A running local stack (`infra/local_stack`), as the measurements use it: its `stack.json`,
//! SDK clients for its emulator and the configuration API (both from `webhooks-stack`, shared
//! with the integration tests), the Lambda Invoke API of its control server, the environment of
//! its function processes, and the emulator's request recorder.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use webhooks_stack::Api;
pub use webhooks_stack::{FunctionInfo, Process, StackInfo};

/// The application name in the user agent of the bench's own AWS requests, so the analysis
/// of the emulator's recording can tell them from the functions' requests.
pub const APP_NAME: &str = "webhooks-bench";

/// The local stack and clients for it.
#[derive(Debug, Clone)]
pub struct Stack {
    pub info: StackInfo,
    pub http: reqwest::Client,
    api: Api,
}

impl Stack {
    pub fn open(file: &Path) -> Result<Self> {
        let info = StackInfo::read(file)?;
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
        let api = Api::with_client(&info, http.clone());
        Ok(Self { info, http, api })
    }

    /// SDK configuration for the emulator, with the bench's application name.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.info.sdk_config(Some(APP_NAME)).await
    }

    pub fn table(&self, logical_id: &str) -> Result<&str> {
        self.info
            .tables
            .get(logical_id)
            .map(String::as_str)
            .with_context(|| format!("no table {logical_id} in stack.json"))
    }

    /// The processes of `binary` the stack supervises.
    pub async fn processes(&self, binary: &str) -> Result<Vec<Process>> {
        let mut functions = self.info.processes(&self.http).await?;
        functions.remove(binary).with_context(|| format!("no function {binary} in /status"))
    }

    /// The environment of a running process of `binary`: exactly what the stack gives the
    /// function (the template's variables, Lambda's reserved ones, the emulator's URL), less
    /// its own Runtime API address.
    pub async fn function_env(&self, binary: &str) -> Result<BTreeMap<String, String>> {
        let processes = self.processes(binary).await?;
        let pid = processes.iter().find_map(|p| p.pid).with_context(|| format!("no running process of {binary}"))?;
        let raw = std::fs::read(format!("/proc/{pid}/environ"))
            .with_context(|| format!("reading the environment of {binary} ({pid})"))?;
        let mut env: BTreeMap<String, String> = raw
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        env.remove("AWS_LAMBDA_RUNTIME_API");
        Ok(env)
    }

    /// Sends a signal (`STOP`, `CONT`) to every process of `binary`.
    pub async fn signal_function(&self, binary: &str, signal: &str) -> Result<()> {
        for p in self.processes(binary).await? {
            if let Some(pid) = p.pid {
                let status =
                    std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
                if !status.success() {
                    bail!("kill -{signal} {pid} ({binary}[{}]) failed", p.slot);
                }
            }
        }
        Ok(())
    }

    /// Invokes a function through the Lambda Invoke API (RequestResponse); returns the
    /// response and the round trip.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<(Value, Duration)> {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.info.control_url);
        let started = Instant::now();
        let response = self.http.post(url).body(serde_json::to_vec(payload)?).send().await?;
        let failed = response.headers().contains_key("x-amz-function-error");
        let body: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        let took = started.elapsed();
        if failed {
            bail!("{function} failed: {body}");
        }
        Ok((body, took))
    }

    // ------------------------------------------------------------ the emulator's recorder

    /// Clears the emulator's request recording and starts recording.
    pub async fn start_recording(&self) -> Result<()> {
        self.moto_api("reset-recording").await?;
        self.moto_api("start-recording").await
    }

    /// Stops recording and returns what was recorded: one JSON object per request (method,
    /// url, headers, body).
    pub async fn stop_recording(&self) -> Result<String> {
        self.moto_api("stop-recording").await?;
        let url = format!("{}/moto-api/recorder/download-recording", self.info.emulator_url);
        Ok(self.http.get(url).send().await?.error_for_status()?.text().await?)
    }

    async fn moto_api(&self, action: &str) -> Result<()> {
        let url = format!("{}/moto-api/recorder/{action}", self.info.emulator_url);
        self.http.post(url).send().await?.error_for_status()?;
        Ok(())
    }

    // ------------------------------------------------------------ the configuration API

    /// A new API key holding `companies`, allowed to manage and publish; returns its secret.
    pub async fn create_key(&self, name: &str, companies: &[&str]) -> Result<String> {
        let admin = self
            .info
            .admin_key
            .clone()
            .context("stack.json has no admin key (start the stack with WEBHOOKS_ADMIN_KEY or none)")?;
        let (_, secret) = self.api.create_named_key(&admin, name, companies, &["manage", "publish"]).await?;
        Ok(secret)
    }

    /// A new webhook; returns its id.
    pub async fn create_webhook(&self, key: &str, url: &str, events: &[&str], scopes: Value) -> Result<String> {
        let created = self.api.create_webhook(key, json!({"url": url, "events": events, "scopes": scopes})).await?;
        created["id"].as_str().map(str::to_owned).context("no id in the answer")
    }

    /// Publishes one event through `POST /v1/events` (`application/cloudevents+json`); returns
    /// the status.
    pub async fn publish_one(&self, key: &str, event: &Value) -> Result<u16> {
        let body = serde_json::to_vec(event)?;
        Ok(self
            .api
            .raw("POST", "/v1/events", Some(key), Some("application/cloudevents+json"), Some(body))
            .await?
            .status)
    }
}

/// A CloudEvent as producers send it to the ingest queue.
pub fn cloud_event(id: &str, company: &str, project: &str, event_type: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": format!("app/companies/{company}/projects/{project}"),
        "type": event_type, "time": "2026-11-28T10:00:00Z", "companyid": company, "projectid": project,
        "datacontenttype": "application/json",
        "data": {"previousValue": null, "currentValue": {"id": id, "title": "Benchmark record", "done": false,
                 "assignees": ["u1", "u2"], "tags": ["bench"], "description": "x".repeat(400)}}
    })
}

/// The filler that pads an event's `data` to a given size: `[pad` + `y`s + `]`. The pricing
/// finds it in the recorded requests and grows it to re-price the run at a larger payload.
pub const PAD_OPEN: &str = "[pad";

/// A CloudEvent whose `data`, serialised compactly, is `data_bytes` long (at least its fields').
pub fn cloud_event_sized(id: &str, company: &str, project: &str, event_type: &str, data_bytes: usize) -> Value {
    let data = |pad: usize| {
        json!({"previousValue": null, "currentValue": {"id": id, "title": "Benchmark record", "done": false,
               "assignees": ["u1", "u2"], "tags": ["bench"], "description": format!("{PAD_OPEN}{}]", "y".repeat(pad))}})
    };
    let bare = data(0).to_string().len();
    let mut event = cloud_event(id, company, project, event_type);
    event["data"] = data(data_bytes.saturating_sub(bare));
    event
}

/// An SQS event (as Lambda's event source mapping builds it) carrying `bodies`.
pub fn sqs_event(queue_arn: &str, bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("bench-{i}-{}", unique()), "receiptHandle": format!("bench-rh-{i}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "bench",
                               "ApproximateFirstReceiveTimestamp": "0"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// A string unique within this machine for the next while (names, ids).
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{nanos:x}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Environment variables as `Command::envs` takes them.
pub fn env_pairs(env: &BTreeMap<String, String>) -> HashMap<String, String> {
    env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
