//! `POST /v1/events`: CloudEvents in, one or a batch, all or nothing. Events are validated and
//! checked against the key's companies before anything is enqueued; they are matched later,
//! by the matcher, exactly like events arriving on the ingest queue.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use time::OffsetDateTime;
use webhooks_core::event::{Event, EventError, validate_event};
use webhooks_core::model::Permission;
use webhooks_core::rate_limit::PublishPace;

use crate::AppState;
use crate::body::media_type;
use crate::error::ApiError;
use crate::idempotency::{Idempotency, IdempotencyKeyHeader, no_secret};
use crate::requests::{CloudEvent, CloudEventBatch, MAX_BATCH_EVENTS};
use crate::responses::Accepted;

/// Largest request (SPEC §7).
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// The publish limit (SPEC §10): counts `events` against the key's pace, or refuses them all
/// with 429 `rate_limited` and `Retry-After`. Checked last, after validation and the key's
/// rights, so that a refused request costs the key nothing.
async fn admit(state: &AppState, key_id: &str, events: usize) -> Result<(), ApiError> {
    let pace = PublishPace::new(state.config.publish_rate);
    let now_us = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX);
    match state.publish_pace.admit(key_id, pace, events, now_us).await? {
        None => Ok(()),
        Some(retry_after_seconds) => {
            tracing::info!(key_id, events, retry_after_seconds, "publish limit reached");
            Err(ApiError::RateLimited {
                message: format!(
                    "this key publishes at most {} events per second (bursts of twice that); retry after {retry_after_seconds} s",
                    state.config.publish_rate
                ),
                retry_after_seconds,
            })
        }
    }
}

fn invalid(e: EventError) -> ApiError {
    ApiError::validation(e.field, e.message)
}

/// Publishes events: one (`application/cloudevents+json`) or a batch of 1 to 100
/// (`application/cloudevents-batch+json`), all or nothing. They are matched and delivered
/// asynchronously.
#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])),
    request_body(content(
        (CloudEvent = "application/cloudevents+json"),
        (CloudEventBatch = "application/cloudevents-batch+json"),
    )),
    params(IdempotencyKeyHeader), responses((status = 202, body = Accepted)))]
pub async fn publish(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = caller.require(Permission::Publish)?.key.clone();
    let batch = match media_type(&headers).as_deref() {
        Some("application/cloudevents+json") => false,
        Some("application/cloudevents-batch+json") => true,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send application/cloudevents+json (one event) or application/cloudevents-batch+json (an array)".into(),
            ));
        }
    };
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::PayloadTooLarge("a request is at most 1 MiB".into()));
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::validation("", format!("the body is not valid JSON: {e}")))?;
    let items = match (batch, value) {
        (false, v) => vec![v],
        (true, Value::Array(items)) if items.len() > MAX_BATCH_EVENTS => {
            return Err(ApiError::PayloadTooLarge("a batch holds at most 100 events".into()));
        }
        (true, Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::validation("", "a batch holds 1 to 100 events"));
        }
        (true, Value::Array(items)) => items,
        (true, _) => return Err(ApiError::validation("", "a batch is a JSON array of events")),
    };

    let now = OffsetDateTime::now_utc();
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let event = validate_event(item, now).map_err(|e| if batch { e.within(&format!("[{i}]")) } else { e });
        events.push(event.map_err(invalid)?);
    }
    if let Some((i, e)) = events.iter().enumerate().find(|(_, e)| !key.holds(&e.company_id)) {
        let field = if batch { format!("[{i}].companyid") } else { "companyid".to_owned() };
        return Err(ApiError::Forbidden(format!("{field}: the key does not hold company `{}`", e.company_id)));
    }

    let idempotency = Idempotency::of(&caller, "POST /v1/events", &headers, &body)?;
    idempotency
        .run(&state, no_secret, async {
            admit(&state, &key.id, events.len()).await?;
            // What is enqueued is the event as validated and authorised, re-serialised, never
            // the caller's JSON: no attribute it carried can make the matcher read another
            // event. The receipt time is already the event's time when it had none.
            let bodies: Vec<String> = events.iter().map(Event::to_ingest_body).collect();
            let unsent = state.ingest.send_all(&bodies).await;
            if !unsent.is_empty() {
                tracing::error!(unsent = unsent.len(), total = bodies.len(), "events could not all be enqueued");
                return Err(ApiError::Unavailable("events could not all be enqueued".into()));
            }
            Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: events.len() })))
        })
        .await
}
