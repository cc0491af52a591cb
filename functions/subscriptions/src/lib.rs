//! The configuration API behind API Gateway (HTTP API, payload 2.0): routing with axum inside
//! `lambda_http`. Handlers only translate HTTP to store and queue calls and back; validation and
//! matching rules live in `webhooks-core`.

use std::sync::LazyLock;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use webhooks_aws::config::{ConfigError, flag, optional, parsed};
use webhooks_aws::delivery_log::DynamoDbDeliveryLog;
use webhooks_aws::dynamodb::DynamoDbSubscriptions;
use webhooks_aws::health::DynamoDbHealth;
use webhooks_aws::http::HttpSender;
use webhooks_aws::idempotency::DynamoDbIdempotency;
use webhooks_aws::kms::KmsSecretBox;
use webhooks_aws::parking::DynamoDbParking;
use webhooks_aws::sqs::SqsBatchSender;
use webhooks_core::catalog;
use webhooks_core::retry::{parse_duration, parse_retention};
use webhooks_core::ssrf::AllowedTargets;
use webhooks_core::validation::UrlPolicy;

pub mod auth;
pub mod body;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod keys;
pub mod lists;
pub mod openapi;
pub mod requests;
pub mod responses;
pub mod webapp;
pub mod webhooks;

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
    /// Events per second one key may publish (`WEBHOOKS_PUBLISH_RATE`), bursts of twice that.
    pub publish_rate: u32,
}

/// The default of `WEBHOOKS_MAX_WEBHOOKS_PER_KEY` (SPEC §7).
pub const DEFAULT_MAX_WEBHOOKS_PER_KEY: u32 = 100;

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let admin_key_sha256 = optional("WEBHOOKS_ADMIN_KEY_SHA256").map(|h| h.to_ascii_lowercase());
        if let Some(h) = &admin_key_sha256
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::Invalid {
                name: "WEBHOOKS_ADMIN_KEY_SHA256",
                reason: "expected 64 hex characters".into(),
            });
        }
        Ok(Self {
            admin_key_sha256,
            url_policy: UrlPolicy { allow_http: flag("WEBHOOKS_ALLOW_HTTP", false)? },
            max_webhooks_per_key: parsed("WEBHOOKS_MAX_WEBHOOKS_PER_KEY", DEFAULT_MAX_WEBHOOKS_PER_KEY, |v| {
                v.parse().map_err(|_| "expected a whole number".to_owned())
            })?,
            log_ttl_seconds: parsed("WEBHOOKS_LOG_TTL", std::time::Duration::from_secs(3 * 86_400), parse_retention)?
                .as_secs() as i64,
            log_successes: flag("WEBHOOKS_LOG_SUCCESSES", true)?,
            delivery_timeout: parsed("WEBHOOKS_DELIVERY_TIMEOUT", std::time::Duration::from_secs(10), parse_duration)?,
            allowed_targets: parsed("WEBHOOKS_ALLOWED_TARGETS", AllowedTargets::none(), |v| {
                AllowedTargets::parse(v).map_err(|e| e.to_string())
            })?,
            publish_rate: parsed("WEBHOOKS_PUBLISH_RATE", webhooks_core::rate_limit::DEFAULT_PUBLISH_RATE, |v| {
                v.parse()
                    .ok()
                    .filter(|r| *r >= 1)
                    .ok_or_else(|| "expected a whole number of events per second, at least 1".to_owned())
            })?,
        })
    }
}

/// Shared state of the API: clients and settings, built once per execution environment by
/// `main` and shared by every request.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: DynamoDbSubscriptions,
    pub health: DynamoDbHealth,
    /// The publish limit's pace per key.
    pub publish_pace: webhooks_aws::publish_pace::DynamoDbPublishPace,
    pub log: DynamoDbDeliveryLog,
    pub parking: DynamoDbParking,
    pub ingest: SqsBatchSender,
    pub deliveries: SqsBatchSender,
    pub sender: HttpSender,
    pub secrets: KmsSecretBox,
    /// Answers of creating POSTs with an `Idempotency-Key`.
    pub idempotency: DynamoDbIdempotency,
    pub config: ApiConfig,
}

/// Every API route with its documentation: `utoipa_axum` registers each handler under the
/// method and path of its `#[utoipa::path]`, so what is served is what is documented.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .routes(routes!(keys::me))
        .routes(routes!(event_types))
        .routes(routes!(event_type))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::update, keys::delete))
        .routes(routes!(keys::rotate))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(deliveries::disable))
        .routes(routes!(deliveries::enable))
        .routes(routes!(deliveries::test))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(deliveries::log))
        .routes(routes!(deliveries::redeliver))
        .routes(routes!(deliveries::replay))
        .routes(routes!(events::publish))
}

/// The document, built once per execution environment.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| openapi::document().to_json().unwrap_or_default());

/// The whole API as one router, served by `lambda_http::run`.
pub fn app(state: AppState) -> Router {
    let (api, _) = api_router().split_for_parts();
    api.merge(webapp::routes())
        .fallback(not_found)
        // Sizes are checked by the handlers, after authentication (SPEC §7's check order).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Whether the service answers (no key needed, nothing called).
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, body = responses::Status)))]
async fn health() -> Json<responses::Status> {
    Json(responses::Status { status: "ok" })
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound
}

/// The event types a webhook can subscribe to.
#[utoipa::path(get, path = "/v1/event-types", tag = "events", security(("bearer" = [])),
    responses((status = 200, body = responses::EventTypeList)))]
async fn event_types(_caller: auth::Caller) -> Json<responses::EventTypeList> {
    Json(responses::EventTypeList { data: catalog::SUBSCRIBABLE.as_slice() })
}

/// One event type: a JSON Schema (2020-12) of its `data`, and an example delivery body that
/// validates against it (what `POST /v1/webhooks/{id}/test` sends for this type).
#[utoipa::path(get, path = "/v1/event-types/{type}", tag = "events", security(("bearer" = [])),
    params(("type" = requests::EventTypeName, Path, description = "A subscribable type, as `GET /v1/event-types` lists them")),
    responses((status = 200, body = responses::EventTypeDetail)))]
async fn event_type(
    _caller: auth::Caller,
    extract::Path(name): extract::Path<String>,
) -> Result<Json<responses::EventTypeDetail>, error::ApiError> {
    let described = catalog::schemas::describe(&name).ok_or(error::ApiError::NotFound)?;
    responses::EventTypeDetail::of(&described).map(Json).map_err(error::unavailable)
}
