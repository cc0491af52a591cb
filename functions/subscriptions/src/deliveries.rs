//! A webhook's operations (SPEC §6, §7, §10): disable, enable (signed health check, then replay
//! of what was parked), test (a health check or an event type's example), the delivery log (with
//! its filters), redelivery of one event, and replay by time range.

use crate::extract::{Path, Query};
use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use time::OffsetDateTime;
use webhooks_aws::delivery_log::LOGGED_RESPONSE_BYTES;
use webhooks_aws::dynamodb::StoredWebhook;
use webhooks_aws::http::SendOutcome;
use webhooks_aws::keys::{now_ms, replay_bound};
use webhooks_core::catalog::HEALTH_CHECK;
use webhooks_core::catalog::schemas::{EventSchema, parse_test_request};
use webhooks_core::event::format_utc;
use webhooks_core::ids::{random_base62, random_unit};
use webhooks_core::log_query::{
    LogQuery, RESEND_PAGE, ReplayCandidate, ReplayStatus, parse_log_filter, parse_replay_request, replay_candidates,
};
use webhooks_core::message::{Delivery, DeliveryQueueMessage, Replay, Resend};
use webhooks_core::model::{DisabledReason, WebhookStatus};
use webhooks_core::payload::health_check_body;
use webhooks_core::ports::SignedRequest;
use webhooks_core::resources::{LogEntry, WebhookView, log_status};

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, unavailable};
use crate::lists::list_limit;
use crate::requests::{LogEventType, LogStatus, ReplayRequest, WebhookTest};
use crate::responses::{DeliveryLog, Enabled, HealthCheckOutcome, Redelivery, Scheduled};
use crate::webhooks::{Revision, next_revision, view, visible};

/// What a check sends: a `WEBHOOK_HEALTH_CHECK`, or an event type's example (`test`).
#[derive(Debug)]
enum Probe {
    HealthCheck,
    Example(Box<EventSchema>),
}

/// Sends a signed `WEBHOOK_HEALTH_CHECK` with a fresh `webhook-id` and logs it. Changes no
/// counter or status.
async fn health_check(state: &AppState, stored: &StoredWebhook) -> Result<SendOutcome, ApiError> {
    send_now(state, stored, Probe::HealthCheck).await
}

/// Sends `probe` now, signed, with a fresh `webhook-id`, and logs it (with no payload kept: it
/// cannot be redelivered). Changes no counter or status.
async fn send_now(state: &AppState, stored: &StoredWebhook, probe: Probe) -> Result<SendOutcome, ApiError> {
    let now = OffsetDateTime::now_utc();
    let at = format_utc(now);
    // A fresh webhook-id of the documented shape: msg_ + 26 of [0-9a-z].
    let message_id = random_base62("", 26).map_err(unavailable)?.to_ascii_lowercase();
    let message_id = format!("msg_{message_id}");
    let (event_id, event_type, body) = match probe {
        Probe::HealthCheck => {
            let event_id = random_base62("hc_", 24).map_err(unavailable)?;
            let body = health_check_body(&event_id, &at, &stored.webhook.id);
            (event_id, HEALTH_CHECK, body)
        }
        Probe::Example(described) => {
            let body = described.example_body(&stored.webhook.id);
            (described.example.id, described.event_type.name, body)
        }
    };
    let secrets = state
        .secrets
        .signing_secrets(&stored.webhook.id, &stored.secrets, now.unix_timestamp())
        .await
        .map_err(unavailable)?;
    let outcome = state
        .sender
        .send_signed(SignedRequest {
            url: &stored.webhook.url,
            headers: &stored.webhook.headers,
            webhook_message_id: &message_id,
            timestamp: now.unix_timestamp(),
            body,
            secrets: &secrets,
        })
        .await;
    let succeeded = outcome.succeeded();
    if !succeeded || state.config.log_successes {
        let entry = LogEntry {
            event_id,
            source: None,
            webhook_message_id: message_id.clone(),
            event_type: event_type.into(),
            attempt: Some(1),
            status: if succeeded { log_status::SUCCEEDED } else { log_status::FAILED }.into(),
            status_code: outcome.status(),
            error: outcome.error_code().map(str::to_owned),
            response_body: (!succeeded).then(|| outcome.body_excerpt(LOGGED_RESPONSE_BYTES)).flatten(),
            duration_ms: Some(outcome.duration_ms),
            attempted_at: at,
            next_attempt_at: None,
        };
        let expires = now.unix_timestamp() + state.config.log_ttl_seconds;
        if let Err(e) = state.log.log(&stored.webhook.id, &message_id, &entry, None, expires).await {
            tracing::warn!(error = %webhooks_aws::error_chain(&e), event_type, "could not log a check");
        }
    }
    Ok(outcome)
}

fn outcome_of(outcome: &SendOutcome) -> HealthCheckOutcome {
    HealthCheckOutcome {
        status_code: outcome.status(),
        duration_ms: outcome.duration_ms,
        error: outcome.error_code().map(str::to_owned),
    }
}

async fn set_status(
    state: &AppState,
    previous: &StoredWebhook,
    status: WebhookStatus,
    reason: Option<DisabledReason>,
) -> Result<StoredWebhook, ApiError> {
    let next = next_revision(previous, Revision::Changed(OffsetDateTime::now_utc()), |next| {
        next.webhook.status = status;
        next.webhook.disabled_reason = reason;
        if status == WebhookStatus::Disabled {
            next.disabled_at_ms = Some(now_ms());
        }
    });
    state.store.update_webhook(previous, &next).await?;
    Ok(next)
}

/// Stops deliveries by hand: what was queued is parked, new matches are dropped (counted).
#[utoipa::path(post, path = "/v1/webhooks/{id}/disable", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = WebhookView)))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let previous = visible(&state, &caller, &id).await?;
    let next = set_status(&state, &previous, WebhookStatus::Disabled, Some(DisabledReason::Manual)).await?;
    tracing::info!(webhook_id = %id, "webhook disabled by hand");
    Ok(Json(view(&state, &next).await?))
}

/// Sends a signed health check; on a 2xx the webhook is active again and what was parked is
/// re-sent (asynchronously), else 409 `health_check_failed` and nothing changes.
#[utoipa::path(post, path = "/v1/webhooks/{id}/enable", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Enabled)))]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Enabled>, ApiError> {
    let previous = visible(&state, &caller, &id).await?;
    let outcome = health_check(&state, &previous).await?;
    if !outcome.succeeded() {
        return Err(ApiError::HealthCheckFailed {
            message: "the receiver did not answer the health check with a 2xx; the webhook is unchanged".into(),
            details: serde_json::to_value(outcome_of(&outcome)).unwrap_or_default(),
        });
    }
    // The replay covers what was parked before now; it is queued right after the webhook is
    // active again, before anything else that could time out. Its pages stop by themselves
    // while the webhook is still tripped, so the counters are reset first.
    let started = OffsetDateTime::now_utc();
    state.health.reset(&id).await?;
    let next = set_status(&state, &previous, WebhookStatus::Active, None).await?;
    let replay = DeliveryQueueMessage::Replay(Replay {
        webhook_id: id.clone(),
        after: None,
        until: Some(replay_bound(started)),
    });
    if !state.deliveries.send_all(&[replay.to_json()]).await.is_empty() {
        return Err(ApiError::Unavailable("could not queue the replay".into()));
    }
    let webhook = view(&state, &next).await?;
    let replayed = webhook.parked;
    tracing::info!(webhook_id = %id, replayed, "webhook enabled");
    Ok(Json(Enabled { webhook, replayed }))
}

/// Sends a signed `WEBHOOK_HEALTH_CHECK` now, or with `event_type` that type's example (as
/// `GET /v1/event-types/{type}` shows it, `webhook_id` set to this webhook), with a fresh
/// `webhook-id`, and tells what the receiver answered, whatever it was. Changes no counter or
/// status.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    request_body(content = Option<WebhookTest>, description = "May be left out: a health check"),
    responses((status = 200, body = HealthCheckOutcome)))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<HealthCheckOutcome>, ApiError> {
    let stored = visible(&state, &caller, &id).await?;
    let probe = match parse_test_request(body::optional_json(&headers, &body)?.as_ref())? {
        None => Probe::HealthCheck,
        Some(described) => Probe::Example(Box::new(described)),
    };
    let outcome = send_now(&state, &stored, probe).await?;
    Ok(Json(outcome_of(&outcome)))
}

/// Filters of the delivery log (kept as text here: the handler gives the 400s).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only entries with this status.
    #[param(value_type = Option<LogStatus>)]
    status: Option<String>,
    /// Only entries of this event.
    event_id: Option<String>,
    /// Only entries of this event type (or `WEBHOOK_HEALTH_CHECK`).
    #[param(value_type = Option<LogEventType>)]
    event_type: Option<String>,
    /// Only entries attempted at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only entries attempted before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Items per page, 1 to 100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// The delivery log: one entry per attempt and per parking, newest first. Filters combine; a
/// time range and an event type are served by the log's keys, never by reading all of it.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path), LogParams), responses((status = 200, body = DeliveryLog)))]
pub async fn log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<LogParams>,
) -> Result<Json<DeliveryLog>, ApiError> {
    visible(&state, &caller, &id).await?;
    let filter = parse_log_filter(LogQuery {
        status: params.status.as_deref(),
        event_id: params.event_id.as_deref(),
        event_type: params.event_type.as_deref(),
        since: params.since.as_deref(),
        until: params.until.as_deref(),
    })?;
    let limit = list_limit(params.limit.as_deref())?;
    let page = state
        .log
        .log_page(&id, &filter, limit, params.cursor.as_deref(), OffsetDateTime::now_utc().unix_timestamp())
        .await?;
    Ok(Json(DeliveryLog { data: page.items, next_cursor: page.next_cursor }))
}

/// Re-sends a logged event as a new delivery (same `webhook-id`, fresh attempts). 404 when its
/// payload is no longer kept.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{message_id}/redeliver", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path), ("message_id" = String, Path, description = "The `webhook_message_id` of a log entry")),
    responses((status = 202, body = Redelivery)))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Redelivery>), ApiError> {
    visible(&state, &caller, &id).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (event, webhook_message_id) = state.log.kept_payload(&id, &message_id, now).await?.ok_or(ApiError::NotFound)?;
    let generation = (random_unit().map_err(unavailable)? * f64::from(u32::MAX)) as u32 | 1;
    let delivery = Delivery {
        delivery_id: String::new(),
        webhook_id: id.clone(),
        webhook_message_id,
        event,
        generation: 0,
        queued_at: 0,
        send_at_ms: None,
        owner_key_id: None,
    }
    .next_generation(generation, now_ms());
    if !state.deliveries.send_all(&[DeliveryQueueMessage::Delivery(delivery).to_json()]).await.is_empty() {
        return Err(ApiError::Unavailable("could not queue the redelivery".into()));
    }
    tracing::info!(webhook_id = %id, webhook_message_id = %message_id, "redelivery queued");
    Ok((StatusCode::ACCEPTED, Json(Redelivery { status: "queued", webhook_message_id: message_id })))
}

/// Candidates whose success the window cannot show are checked this many at a time (one small
/// Query each): quick, without a burst on the table.
const SUCCESS_CHECKS_AT_ONCE: usize = 8;

/// Re-sends the events logged for the webhook with an attempt in [`since`, `until`): with
/// `status: failed` (the default) only those not delivered to it, with `all` every one; each
/// once, as a new delivery (same `webhook-id`, fresh attempts), asynchronously. 409 on a
/// disabled webhook (nothing is re-sent to it).
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReplayRequest,
    responses((status = 202, body = Scheduled)))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Scheduled>), ApiError> {
    let stored = visible(&state, &caller, &id).await?;
    let value = body::json(&headers, &body)?;
    let now = OffsetDateTime::now_utc();
    let request = parse_replay_request(Some(&value), now, state.config.log_ttl_seconds)?;
    if stored.webhook.status == WebhookStatus::Disabled {
        return Err(ApiError::Conflict("the webhook is disabled: enable it before replaying".into()));
    }
    let now_s = now.unix_timestamp();
    let window = state.log.replay_window(&id, request.since, now_s).await?;
    let candidates = replay_candidates(&window, request.until, request.status, now);
    let chosen = match request.status {
        ReplayStatus::All => candidates,
        ReplayStatus::Failed => undelivered(&state, &id, candidates, request.since, now_s).await?,
    };
    let messages: Vec<String> = chosen.into_iter().map(|c| c.webhook_message_id).collect();
    let generation = (random_unit().map_err(unavailable)? * f64::from(u32::MAX)) as u32 | 1;
    let queued_at = now_ms();
    let pages: Vec<String> = messages
        .chunks(RESEND_PAGE)
        .map(|chunk| {
            DeliveryQueueMessage::Resend(Resend {
                webhook_id: id.clone(),
                generation,
                queued_at,
                messages: chunk.to_vec(),
            })
            .to_json()
        })
        .collect();
    if !state.deliveries.send_all(&pages).await.is_empty() {
        return Err(ApiError::Unavailable("could not queue the replay".into()));
    }
    tracing::info!(webhook_id = %id, scheduled = messages.len(), status = ?request.status, "range replay queued");
    Ok((StatusCode::ACCEPTED, Json(Scheduled { scheduled: messages.len() })))
}

/// The candidates not delivered to the webhook: none of their logged deliveries is recorded
/// delivered (this holds when the log keeps no successes too), and the log has no success of
/// them before `since` either (the window read only from `since` on).
async fn undelivered(
    state: &AppState,
    id: &str,
    candidates: Vec<ReplayCandidate>,
    since: OffsetDateTime,
    now_s: i64,
) -> Result<Vec<ReplayCandidate>, ApiError> {
    let deliveries: BTreeSet<String> = candidates.iter().flat_map(|c| c.delivery_ids.iter().cloned()).collect();
    let delivered = state.log.attempts().delivered_among(&deliveries).await?;
    let open: Vec<ReplayCandidate> = candidates.into_iter().filter(|c| !c.delivered(&delivered)).collect();
    // Each check owns what it reads, so the stream holds no borrow across its awaits.
    let checks: Vec<_> = open
        .iter()
        .map(|c| {
            let (log, id, message) = (state.log.clone(), id.to_owned(), c.webhook_message_id.clone());
            async move { log.succeeded_before(&id, &message, since, now_s).await }
        })
        .collect();
    let succeeded: Vec<bool> = stream::iter(checks).buffered(SUCCESS_CHECKS_AT_ONCE).try_collect().await?;
    Ok(open.into_iter().zip(succeeded).filter(|(_, done)| !done).map(|(c, _)| c).collect())
}
