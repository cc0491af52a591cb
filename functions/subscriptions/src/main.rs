use subscriptions::{AppState, app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    webhooks_aws::telemetry::init();
    let state = AppState::from_env().await?;
    lambda_http::run(app(state)).await
}
