//! A running local stack (`infra/local_stack`) as its clients see it: what it wrote to its
//! `stack.json`, SDK clients for its emulator, the function processes its control server
//! supervises, and a client of the configuration API.
//!
//! Shared by the integration tests (`webhooks-tests`, which also start stacks) and the
//! measurements (`webhooks-bench`, which open one). It starts nothing and depends on no
//! crate of the product: it speaks to the stack only as an outside client would.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use aws_config::{AppName, BehaviorVersion, Region};
use aws_sdk_sqs::config::Credentials;
use serde::Deserialize;
use serde_json::{Value, json};

/// What the local stack wrote to its `stack.json` (the fields its clients use).
#[derive(Debug, Clone, Deserialize)]
pub struct StackInfo {
    pub api_url: String,
    pub emulator_url: String,
    pub region: String,
    pub ingest_queue_url: String,
    pub ingest_dlq_url: String,
    pub delivery_queue_url: String,
    pub delivery_dlq_url: String,
    pub alerts_topic_arn: Option<String>,
    pub admin_key: Option<String>,
    pub control_url: String,
    /// The fault proxy in front of the emulator; only when the stack injects faults.
    #[serde(default)]
    pub fault_proxy_url: Option<String>,
    pub queues: BTreeMap<String, String>,
    pub tables: BTreeMap<String, String>,
    pub functions: BTreeMap<String, FunctionInfo>,
    pub lambda_reserved_env: Vec<String>,
}

/// One function as the stack runs it.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionInfo {
    pub logical_id: String,
    pub timeout: u64,
    pub memory: u64,
    pub env: BTreeMap<String, String>,
}

/// One supervised function process, from the control server's `/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct Process {
    pub slot: u32,
    pub pid: Option<u32>,
    pub busy: bool,
    pub restarts: u32,
}

impl StackInfo {
    /// Reads a `stack.json`.
    pub fn read(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
    }

    /// SDK configuration for the emulator. `app_name` goes into the user agent, so that a
    /// recording of the emulator's requests can tell this client's from the functions'.
    pub async fn sdk_config(&self, app_name: Option<&'static str>) -> aws_config::SdkConfig {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.emulator_url)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new("test", "test", None, None, "local-stack"));
        match app_name.map(AppName::new) {
            Some(Ok(name)) => loader.app_name(name),
            _ => loader,
        }
        .load()
        .await
    }

    /// An SQS client for the emulator.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config(None).await)
    }

    /// A DynamoDB client for the emulator.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config(None).await)
    }

    /// An SNS client for the emulator.
    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config(None).await)
    }

    /// The function processes the control server supervises: `{binary: [process, ...]}`.
    pub async fn processes(&self, http: &reqwest::Client) -> Result<BTreeMap<String, Vec<Process>>> {
        #[derive(Deserialize)]
        struct Status {
            functions: BTreeMap<String, Vec<Process>>,
        }
        let bytes = http.get(format!("{}/status", self.control_url)).send().await?.error_for_status()?.bytes().await?;
        let status: Status = serde_json::from_slice(&bytes)?;
        Ok(status.functions)
    }
}

impl AsRef<StackInfo> for StackInfo {
    fn as_ref(&self) -> &StackInfo {
        self
    }
}

/// A unique suffix for names and markers, so clients sharing a stack never collide.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------- the API

/// A client of the configuration API.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The `Retry-After` header in seconds, when the answer has one.
    pub retry_after: Option<u64>,
}

impl Reply {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl Api {
    pub fn new(stack: &impl AsRef<StackInfo>) -> Self {
        Self::with_client(stack, reqwest::Client::new())
    }

    /// A client sending through `http` (its timeouts, its proxy settings).
    pub fn with_client(stack: &impl AsRef<StackInfo>, http: reqwest::Client) -> Self {
        Self { base: stack.as_ref().api_url.clone(), http }
    }

    /// A request with an optional bearer key and a JSON body (`application/json`).
    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Result<Reply> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, key, bytes.as_ref().map(|_| "application/json"), bytes.clone()).await
    }

    /// A request with any content type and body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
        let bytes = response.bytes().await?;
        Ok(Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), retry_after })
    }

    /// Creates an API key with the admin key; returns (id, secret).
    pub async fn create_key(&self, admin: &str, companies: &[&str], permissions: &[&str]) -> Result<(String, String)> {
        self.create_named_key(admin, &unique("key"), companies, permissions).await
    }

    /// Creates an API key named `name` with the admin key; returns (id, secret).
    pub async fn create_named_key(
        &self,
        admin: &str,
        name: &str,
        companies: &[&str],
        permissions: &[&str],
    ) -> Result<(String, String)> {
        let body = json!({"name": name, "companies": companies, "permissions": permissions});
        let r = self.call("POST", "/v1/api-keys", Some(admin), Some(body)).await?;
        if r.status != 201 {
            bail!("creating a key: {} {}", r.status, r.body);
        }
        Ok((
            r.body["id"].as_str().unwrap_or_default().to_owned(),
            r.body["key"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// Creates a webhook; returns the created object (with its `secret`).
    pub async fn create_webhook(&self, key: &str, body: Value) -> Result<Value> {
        let r = self.call("POST", "/v1/webhooks", Some(key), Some(body)).await?;
        if r.status != 201 {
            bail!("creating a webhook: {} {}", r.status, r.body);
        }
        Ok(r.body)
    }

    /// Publishes CloudEvents as a batch through `POST /v1/events`.
    pub async fn publish(&self, key: &str, events: &[Value]) -> Result<Reply> {
        let body = serde_json::to_vec(events)?;
        self.raw("POST", "/v1/events", Some(key), Some("application/cloudevents-batch+json"), Some(body)).await
    }
}
