//! The configuration API behind API Gateway (HTTP API, payload 2.0): routing with axum inside
//! `lambda_http`. Handlers only translate HTTP to store and queue calls and back; validation and
//! matching rules live in `webhooks-core`.

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde_json::{Value, json};
use webhooks_aws::config::{ConfigError, flag, optional, parsed, required};
use webhooks_aws::dynamodb::DynamoDbSubscriptions;
use webhooks_aws::sqs::SqsBatchSender;
use webhooks_core::catalog;
use webhooks_aws::http::HttpSender;
use webhooks_aws::kms::KmsSecretBox;
use webhooks_aws::state::DynamoDbDeliveryState;
use webhooks_core::retry::{parse_duration, parse_retention};
use webhooks_core::ssrf::AllowedTargets;
use webhooks_core::validation::UrlPolicy;

pub mod auth;
pub mod body;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod keys;
pub mod lists;
pub mod webhooks;
pub mod webapp;

/// Settings of the API, read once per execution environment.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Lowercase hex SHA-256 of the admin key; `None` = no admin key.
    pub admin_key_sha256: Option<String>,
    pub url_policy: UrlPolicy,
    pub max_webhooks_per_key: u32,
    pub log_ttl_seconds: i64,
    pub log_successes: bool,
    pub delivery_timeout: std::time::Duration,
    pub allowed_targets: AllowedTargets,
}

/// The default of `WEBHOOKS_MAX_WEBHOOKS_PER_KEY` (SPEC §7).
pub const DEFAULT_MAX_WEBHOOKS_PER_KEY: u32 = 100;

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let admin_key_sha256 = optional("WEBHOOKS_ADMIN_KEY_SHA256").map(|h| h.to_ascii_lowercase());
        if let Some(h) = &admin_key_sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid {
                    name: "WEBHOOKS_ADMIN_KEY_SHA256",
                    reason: "expected 64 hex characters".into(),
                });
            }
        }
        Ok(Self {
            admin_key_sha256,
            url_policy: UrlPolicy { allow_http: flag("WEBHOOKS_ALLOW_HTTP", false)? },
            max_webhooks_per_key: parsed("WEBHOOKS_MAX_WEBHOOKS_PER_KEY", DEFAULT_MAX_WEBHOOKS_PER_KEY, |v| {
                v.parse().map_err(|_| "expected a whole number".to_owned())
            })?,
            log_ttl_seconds: parsed("WEBHOOKS_LOG_TTL", std::time::Duration::from_secs(3 * 86_400), parse_retention)?.as_secs() as i64,
            log_successes: flag("WEBHOOKS_LOG_SUCCESSES", true)?,
            delivery_timeout: parsed("WEBHOOKS_DELIVERY_TIMEOUT", std::time::Duration::from_secs(10), parse_duration)?,
            allowed_targets: parsed("WEBHOOKS_ALLOWED_TARGETS", AllowedTargets::none(), |v| {
                AllowedTargets::parse(v).map_err(|e| e.to_string())
            })?,
        })
    }
}

/// Shared state of the API, built once per execution environment.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: DynamoDbSubscriptions,
    pub state: DynamoDbDeliveryState,
    pub ingest: SqsBatchSender,
    pub deliveries: SqsBatchSender,
    pub sender: HttpSender,
    pub secrets: KmsSecretBox,
    pub config: ApiConfig,
}

impl AppState {
    /// Clients and settings from the environment the template gives the function.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let sdk = webhooks_aws::sdk_config().await;
        let config = ApiConfig::from_env()?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let subscriptions_table = required("SUBSCRIPTIONS_TABLE")?;
        Ok(Self {
            store: DynamoDbSubscriptions::new(dynamodb.clone(), subscriptions_table.clone()),
            state: DynamoDbDeliveryState::new(dynamodb, subscriptions_table, required("HEALTH_TABLE")?, required("DELIVERIES_TABLE")?),
            ingest: SqsBatchSender::new(sqs.clone(), required("INGEST_QUEUE_URL")?),
            deliveries: SqsBatchSender::new(sqs, required("DELIVERY_QUEUE_URL")?),
            sender: HttpSender::new(config.delivery_timeout, config.allowed_targets.clone())?,
            secrets: KmsSecretBox::new(aws_sdk_kms::Client::new(&sdk), required("SIGNING_KEY_ID")?),
            config,
        })
    }
}

/// The whole API as one router, served by `lambda_http::run`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(webapp::routes())
        .route("/health", get(health))
        .route("/v1/me", get(keys::me))
        .route("/v1/event-types", get(event_types))
        .route("/v1/api-keys", post(keys::create).get(keys::list))
        .route("/v1/api-keys/{id}", axum::routing::patch(keys::update).delete(keys::delete))
        .route("/v1/api-keys/{id}/rotate", post(keys::rotate))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/{id}", get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
        .route("/v1/webhooks/{id}/disable", post(deliveries::disable))
        .route("/v1/webhooks/{id}/enable", post(deliveries::enable))
        .route("/v1/webhooks/{id}/test", post(deliveries::test))
        .route("/v1/webhooks/{id}/rotate-secret", post(webhooks::rotate_secret))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries::log))
        .route("/v1/webhooks/{id}/deliveries/{message_id}/redeliver", post(deliveries::redeliver))
        .route("/v1/events", post(events::publish))
        .fallback(not_found)
        // Sizes are checked by the handlers, after authentication (SPEC §7's check order).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound
}

async fn event_types(_caller: auth::Caller) -> Json<Value> {
    Json(json!({"data": catalog::SUBSCRIBABLE.as_slice()}))
}
