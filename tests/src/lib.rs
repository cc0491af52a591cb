//! Helpers for the integration tests: the local stack (emulated AWS running the functions'
//! real binaries), started or found, clients pointed at it (from `webhooks-stack`, shared with
//! the bench), real receivers, and the template as data.
//!
//! `make test` starts one shared stack and names its `stack.json` in `WEBHOOKS_STACK_FILE`;
//! tests that need settings of their own, or that break things on purpose, start a private
//! stack with [`Stack::private`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
pub use webhooks_stack::{Api, FunctionInfo, Process, Reply, StackInfo, unique};

pub mod chaos;

/// The settings `make test` gives the shared stack (infra/run-tests.sh): fast retries.
pub const TEST_SETTINGS: &[(&str, &str)] = &[("WEBHOOKS_RETRY_SCHEDULE", "1s"), ("WEBHOOKS_DELIVERY_TIMEOUT", "2s")];

/// What most tests start from: the shared stack, a client of its API, and its admin key.
pub async fn setup() -> Result<(Stack, Api, String)> {
    setup_on(Stack::shared().await?)
}

/// The same on a stack of the test's own: the stack, a client of its API, and its admin key.
pub fn setup_on(stack: Stack) -> Result<(Stack, Api, String)> {
    let api = Api::new(&stack);
    let admin = stack.info.admin_key.clone().context("the test stack has an admin key")?;
    Ok((stack, api, admin))
}

/// A running local stack: the shared one, or a private one stopped when dropped.
#[derive(Debug)]
pub struct Stack {
    pub info: StackInfo,
    pub state_dir: PathBuf,
    runner: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

/// The repository root (where `template.yaml` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Stack {
    /// The stack `make test` started, or a private one when run outside `make test`.
    pub async fn shared() -> Result<Self> {
        match std::env::var("WEBHOOKS_STACK_FILE") {
            Ok(file) => {
                let info = StackInfo::read(Path::new(&file))?;
                let state_dir = Path::new(&file).parent().map(Path::to_path_buf).unwrap_or_default();
                Ok(Self { info, state_dir, runner: None, _dir: None })
            }
            Err(_) => Self::private(TEST_SETTINGS, &[]).await,
        }
    }

    /// Starts a stack of its own with the shared stack's settings ([`TEST_SETTINGS`]) and `extra`
    /// on top.
    pub async fn private_with(extra: &[(&str, &str)]) -> Result<Self> {
        let env: Vec<(&str, &str)> = TEST_SETTINGS.iter().chain(extra).copied().collect();
        Self::private(&env, &[]).await
    }

    /// Starts a stack of its own, with extra environment variables and template parameter
    /// overrides, on free ports. Waits until `/health` answers.
    pub async fn private(env: &[(&str, &str)], parameters: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("webhooks-stack-").tempdir()?;
        let state_dir = dir.path().to_path_buf();
        let root = repo_root();
        let log = std::fs::File::create(state_dir.join("runner.log"))?;
        let mut cmd = Command::new(root.join(".venv/bin/python"));
        cmd.current_dir(&root)
            .args(["-m", "local_stack", "--state-dir"])
            .arg(&state_dir)
            .env("PYTHONPATH", root.join("infra"))
            .env("WEBHOOKS_HTTP_PORT", "0")
            .env("WEBHOOKS_EMULATOR_PORT", "0")
            .env_remove("WEBHOOKS_STACK_FILE")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if !parameters.is_empty() {
            cmd.arg("--parameter-overrides");
            cmd.args(parameters.iter().map(|(k, v)| format!("{k}={v}")));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut runner = cmd.spawn().context("starting the local stack")?;
        let file = state_dir.join("stack.json");
        let started = Instant::now();
        while !file.exists() {
            if let Some(status) = runner.try_wait()? {
                let log = std::fs::read_to_string(state_dir.join("runner.log")).unwrap_or_default();
                bail!("local stack exited ({status}):\n{log}");
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("local stack did not start within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let info = StackInfo::read(&file)?;
        let stack = Self { info, state_dir, runner: Some(runner), _dir: Some(dir) };
        stack.wait_healthy().await?;
        Ok(stack)
    }

    async fn wait_healthy(&self) -> Result<()> {
        let url = format!("{}/health", self.info.api_url);
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("{url} did not answer 200 within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An SQS client for the emulator.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        self.info.sqs().await
    }

    /// A DynamoDB client for the emulator.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.info.dynamodb().await
    }

    /// An SNS client for the emulator.
    pub async fn sns(&self) -> aws_sdk_sns::Client {
        self.info.sns().await
    }

    /// A new queue subscribed to the alerts topic (raw delivery: the alert JSON is the body,
    /// its attributes the message's). Returns the queue URL.
    pub async fn subscribe_to_alerts(&self) -> Result<String> {
        let topic = self.info.alerts_topic_arn.clone().context("the template has an alerts topic")?;
        let sqs = self.sqs().await;
        let url = sqs.create_queue().queue_name(unique("alerts")).send().await?.queue_url.context("queue url")?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .context("queue arn")?;
        self.sns()
            .await
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await?;
        Ok(url)
    }

    /// The function processes the runner supervises: `{binary: [{slot, pid, busy, ...}]}`.
    pub async fn processes(&self) -> Result<BTreeMap<String, Vec<Process>>> {
        self.info.processes(&reqwest::Client::new()).await
    }

    /// Everything the function processes of `binary` have logged so far.
    pub fn function_logs(&self, binary: &str) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.state_dir.join("logs")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{binary}-")) {
                    out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl AsRef<StackInfo> for Stack {
    fn as_ref(&self) -> &StackInfo {
        &self.info
    }
}

impl Stack {
    /// Whether a function's log holds a metric line CloudWatch extracts (Embedded Metric Format)
    /// counting one `metric` with this `reason`, in the service's namespace.
    pub fn metric_logged(&self, binary: &str, metric: &str, reason: &str) -> bool {
        self.function_logs(binary)
            .lines()
            .filter_map(|l| webhooks_aws::metrics::cloudwatch_extract(l).ok())
            .flatten()
            .any(|(namespace, name, value, dims)| {
                namespace == webhooks_aws::metrics::NAMESPACE
                    && name == metric
                    && value == 1.0
                    && dims == [("reason".to_owned(), reason.to_owned())]
            })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(runner) = &mut self.runner {
            let _ = Command::new("kill").args(["-TERM", &runner.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = runner.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = runner.kill();
            let _ = runner.wait();
        }
    }
}

/// `template.yaml` as JSON, short tags turned into their long form (`{"Ref": ..}`), decoded by
/// the same parser the AWS tooling uses.
pub fn template() -> Result<Value> {
    let root = repo_root();
    let out = Command::new(root.join(".venv/bin/python"))
        .current_dir(&root)
        .args([
            "-c",
            "import json; from cfnlint.decode import decode; t, e = decode('template.yaml'); \
             assert not e, e; print(json.dumps(t))",
        ])
        .output()
        .context("decoding template.yaml")?;
    if !out.status.success() {
        bail!("decoding template.yaml failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The logical ids of the template's resources of `resource_type`.
pub fn resources_of_type(template: &Value, resource_type: &str) -> Vec<(String, Value)> {
    template["Resources"]
        .as_object()
        .map(|r| r.iter().filter(|(_, v)| v["Type"] == resource_type).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The environment variable names the template gives a function (Globals merged in).
pub fn template_env_names(template: &Value, function_logical_id: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for vars in [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &template["Resources"][function_logical_id]["Properties"]["Environment"]["Variables"],
    ] {
        if let Some(vars) = vars.as_object() {
            names.extend(vars.keys().cloned());
        }
    }
    names
}

/// Sends a signal to a process (`STOP`, `CONT`, `KILL`, ...).
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

/// Polls `check` until it returns `Some`, at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A message's string attributes, by name.
pub fn string_attributes(message: &aws_sdk_sqs::types::Message) -> BTreeMap<String, String> {
    message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
        .collect()
}

/// Waits for a message whose body contains `marker` on `queue_url`, without hiding other
/// tests' messages (visibility 0), and returns its string attributes.
pub async fn wait_for_marker(
    stack: &Stack,
    queue_url: &str,
    marker: &str,
    timeout: Duration,
) -> Result<BTreeMap<String, String>> {
    let sqs = stack.sqs().await;
    eventually(timeout, &format!("{marker} in {queue_url}"), || {
        let sqs = sqs.clone();
        async move {
            let received = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await?;
            let found = received.messages().iter().find(|m| m.body().unwrap_or_default().contains(marker));
            Ok(found.map(string_attributes))
        }
    })
    .await
}

/// A CloudEvent for tests.
pub fn cloud_event(id: &str, event_type: &str, company: &str, project: &str) -> Value {
    serde_json::json!({
        "specversion": "1.0", "id": id, "source": format!("app/companies/{company}/projects/{project}"),
        "type": event_type, "time": "2026-11-28T10:00:00Z", "companyid": company, "projectid": project,
        "datacontenttype": "application/json", "data": {"currentValue": {"id": id}}
    })
}

// ---------------------------------------------------------------------------- receivers

/// A webhook to a receiver of its own.
#[derive(Debug)]
pub struct Hook {
    pub receiver: Receiver,
    pub id: String,
    pub secret: String,
}

/// Creates a webhook of `key` with `selection` (events, scopes, headers...) to a new receiver.
pub async fn hook(api: &Api, key: &str, selection: Value) -> Result<Hook> {
    let receiver = Receiver::start().await?;
    let mut body = selection;
    body["url"] = serde_json::json!(receiver.url);
    let created = api.create_webhook(key, body).await?;
    Ok(Hook {
        receiver,
        id: created["id"].as_str().context("id")?.to_owned(),
        secret: created["secret"].as_str().context("secret")?.to_owned(),
    })
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// The answers a receiver is told to give, in order: status and an optional `Retry-After`.
type Plan = std::collections::VecDeque<(u16, Option<String>)>;

/// A real HTTP receiver on `127.0.0.1:0` that records every request and answers with the
/// statuses it is given (then 200).
#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    plan: std::sync::Arc<std::sync::Mutex<Plan>>,
    /// Deliveries of these event ids are answered 500, whatever the plan says.
    failing: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>,
}

impl Receiver {
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let receiver =
            Self { url, received: Default::default(), plan: Default::default(), failing: Default::default() };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let event_id =
                    serde_json::from_slice::<Value>(&body).ok().and_then(|b| b["event_id"].as_str().map(str::to_owned));
                let failing = state.failing.lock().is_ok_and(|f| event_id.is_some_and(|e| f.contains(&e)));
                let (status, retry_after) = if failing {
                    (500, None)
                } else {
                    state.plan.lock().map(|mut p| p.pop_front()).ok().flatten().unwrap_or((200, None))
                };
                if let Ok(mut r) = state.received.lock() {
                    r.push(Received { headers, body: body.to_vec(), at: Instant::now() });
                }
                let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                let mut response = axum::response::IntoResponse::into_response(status);
                if let Some(v) = retry_after.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
                    response.headers_mut().insert("retry-after", v);
                }
                response
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(receiver)
    }

    /// Answer every delivery of `event_id` with 500 until [`Self::stop_failing`].
    pub fn fail_event(&self, event_id: &str) {
        if let Ok(mut f) = self.failing.lock() {
            f.insert(event_id.to_owned());
        }
    }

    /// Deliveries of `event_id` are answered as planned again.
    pub fn stop_failing(&self, event_id: &str) {
        if let Ok(mut f) = self.failing.lock() {
            f.remove(event_id);
        }
    }

    /// Answer the next requests with these statuses, in order.
    pub fn respond_with(&self, statuses: &[u16]) {
        if let Ok(mut p) = self.plan.lock() {
            p.extend(statuses.iter().map(|s| (*s, None)));
        }
    }

    /// Forget the statuses still planned: answer 200 from now on.
    pub fn heal(&self) {
        if let Ok(mut p) = self.plan.lock() {
            p.clear();
        }
    }

    /// Answer the next request with `status` and a `Retry-After` header.
    pub fn respond_with_retry_after(&self, status: u16, retry_after: &str) {
        if let Ok(mut p) = self.plan.lock() {
            p.push_back((status, Some(retry_after.to_owned())));
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Received>> {
        eventually(timeout, &format!("{n} requests at {}", self.url), || async {
            let r = self.received();
            Ok((r.len() >= n).then_some(r))
        })
        .await
    }

    /// The `event_id`s received, each verified with the official Standard Webhooks library
    /// against `secret`.
    pub fn verified_event_ids(&self, secret: &str) -> Result<Vec<String>> {
        let verifier = standardwebhooks::Webhook::new(secret).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut ids = Vec::new();
        for r in self.received() {
            verifier.verify(&r.body, &r.headers).map_err(|e| anyhow::anyhow!("signature refused: {e:?}"))?;
            ids.push(r.json()["event_id"].as_str().unwrap_or_default().to_owned());
        }
        Ok(ids)
    }
}
