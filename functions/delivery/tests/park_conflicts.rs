//! Parking against a DynamoDB that cancels a transaction for a passing reason (a conflict with
//! a concurrent park, a throttle): the park is retried, never read as "full".
//!
//! The emulator runs transactions one at a time, so it never produces these cancellations; a
//! small fake of the DynamoDB JSON protocol on `127.0.0.1:0` does, exactly as AWS words them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use axum::http::{HeaderMap, StatusCode};
use webhooks_aws::health::DynamoDbHealth;
use webhooks_aws::parking::{DynamoDbParking, ParkGuard, ParkOutcome};
use webhooks_core::event::{Event, parse_ingest_body};
use webhooks_core::message::Delivery;

/// Planned answers (status, body) of one operation, in order.
type Answers = VecDeque<(u16, String)>;

/// Answers per operation (the `x-amz-target` suffix), in order; then `{}`.
#[derive(Clone, Default)]
struct FakeDynamoDb {
    planned: Arc<Mutex<Vec<(String, Answers)>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl FakeDynamoDb {
    fn plan(&self, operation: &str, status: u16, body: &str) {
        if let Ok(mut p) = self.planned.lock() {
            match p.iter_mut().find(|(op, _)| op == operation) {
                Some((_, q)) => q.push_back((status, body.to_owned())),
                None => p.push((operation.to_owned(), VecDeque::from([(status, body.to_owned())]))),
            }
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    async fn start(&self) -> Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let fake = self.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let fake = fake.clone();
            async move {
                let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
                if let Ok(mut c) = fake.calls.lock() {
                    c.push(operation.clone());
                }
                let (status, body) = fake
                    .planned
                    .lock()
                    .ok()
                    .and_then(|mut p| p.iter_mut().find(|(op, _)| *op == operation).and_then(|(_, q)| q.pop_front()))
                    .unwrap_or((200, default_answer(&operation).to_owned()));
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                    [("content-type", "application/x-amz-json-1.0")],
                    body,
                )
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }
}

fn default_answer(operation: &str) -> &'static str {
    match operation {
        "Query" => r#"{"Count":0,"ScannedCount":0,"Items":[]}"#,
        "BatchGetItem" => r#"{"Responses":{"health":[]},"UnprocessedKeys":{}}"#,
        _ => "{}",
    }
}

fn cancelled(codes: &[&str]) -> String {
    let reasons: Vec<String> = codes.iter().map(|c| format!(r#"{{"Code":"{c}"}}"#)).collect();
    format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [{}]","CancellationReasons":[{}]}}"#,
        codes.join(", "),
        reasons.join(",")
    )
}

fn state(url: &str) -> DynamoDbParking {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "fake"))
        .endpoint_url(url)
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    DynamoDbParking::new(
        client.clone(),
        "deliveries".into(),
        DynamoDbHealth::new(client, "health".into()),
        "subscriptions".into(),
    )
}

fn delivery() -> Result<Delivery> {
    let body = serde_json::json!({
        "specversion": "1.0", "id": "evt-1", "source": "app/companies/acme/projects/p1", "type": "TODO_CREATED",
        "companyid": "acme", "projectid": "p1", "data": {}
    });
    let event: Event = parse_ingest_body(&body.to_string(), time::OffsetDateTime::now_utc())?;
    Ok(Delivery {
        delivery_id: "dlv_1".into(),
        webhook_id: "wh_1".into(),
        webhook_message_id: "msg_1".into(),
        event,
        generation: 0,
        queued_at: 0,
        send_at_ms: None,
        owner_key_id: None,
    })
}

#[tokio::test]
async fn a_conflicting_transaction_is_retried_not_read_as_a_full_park() -> Result<()> {
    // GIVEN a park of 10 holding nothing, and a first transaction cancelled by a conflict
    let fake = FakeDynamoDb::default();
    fake.plan("TransactWriteItems", 400, &cancelled(&["None", "TransactionConflict"]));
    let state = state(&fake.start().await?);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // WHEN a delivery is parked
    let outcome = park(&state, &delivery()?, now).await?;

    // THEN it is parked (the transaction was tried again), not dropped as park_full
    assert_eq!(outcome, ParkOutcome::Parked, "calls: {:?}", fake.calls());
    assert_eq!(fake.calls().iter().filter(|c| *c == "TransactWriteItems").count(), 2);
    Ok(())
}

#[tokio::test]
async fn a_failed_limit_condition_means_full() -> Result<()> {
    // GIVEN the counter's condition fails (the park holds its limit of live deliveries)
    let fake = FakeDynamoDb::default();
    fake.plan("TransactWriteItems", 400, &cancelled(&["None", "ConditionalCheckFailed"]));
    fake.plan("TransactWriteItems", 400, &cancelled(&["None", "ConditionalCheckFailed"]));
    fake.plan(
        "BatchGetItem",
        200,
        r#"{"Responses":{"health":[{"pk":{"S":"wh_1"},"parked_count":{"N":"10"}}]},"UnprocessedKeys":{}}"#,
    );
    let state = state(&fake.start().await?);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // WHEN a delivery is parked THEN it is full
    assert_eq!(park(&state, &delivery()?, now).await?, ParkOutcome::Full, "calls: {:?}", fake.calls());
    Ok(())
}

async fn park(state: &DynamoDbParking, d: &Delivery, now: i64) -> Result<ParkOutcome> {
    Ok(state.park(d, ParkGuard::Always, 10, now, 3600, None).await?)
}
