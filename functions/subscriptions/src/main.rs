use subscriptions::{AppState, app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    webhooks_aws::telemetry::init();
    lambda_http::run(app(AppState::default())).await
}
