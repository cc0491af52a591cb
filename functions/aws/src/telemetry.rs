//! Structured logs for CloudWatch: one JSON object per line, level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .init();
}
