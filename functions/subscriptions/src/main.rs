use axum::middleware::{Next, from_fn};
use subscriptions::{AppState, app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    webhooks_aws::telemetry::init();
    let state = AppState::from_env().await?;
    let app = app(state).layer(from_fn(|request, next: Next| webhooks_aws::timing::invocation(next.run(request))));
    lambda_http::run(app).await
}
