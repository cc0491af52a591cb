//! The configuration API behind API Gateway (HTTP API, payload 2.0): routing with axum inside
//! `lambda_http`. Handlers only translate HTTP to use cases and back.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// Shared state of the API, built once per execution environment.
#[derive(Debug, Clone, Default)]
pub struct AppState {}

/// The whole API as one router, testable with `oneshot` and served by `lambda_http::run`.
pub fn app(state: AppState) -> Router {
    Router::new().route("/health", get(health)).with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
