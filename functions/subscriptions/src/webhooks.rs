//! Webhooks: create, list, read, change, delete. A key sees only the webhooks it owns (others
//! are 404, so existence is not leaked); the admin key sees all.

use crate::extract::{Path, Query};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;
use webhooks_aws::dynamodb::{StoredSecret, StoredWebhook};
use webhooks_aws::health::HealthRecord;
use webhooks_aws::parking::SWEEP_PAGE;
use webhooks_core::event::format_utc;
use webhooks_core::ids::random_base62;
use webhooks_core::matching::partitions_for_webhook;
use webhooks_core::message::{DeliveryQueueMessage, Purge};
use webhooks_core::model::DropReason;
use webhooks_core::model::{Permission, Scope, WebhookStatus};
use webhooks_core::resources::{ApiKey, Health, Webhook, WebhookView};
use webhooks_core::signing::SigningKey;
use webhooks_core::signing_keys::{self, SWITCH_GRACE_SECONDS, SchemeSwitch};
use webhooks_core::validation::{parse_rotate_secret, parse_webhook_create, parse_webhook_patch};

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, unavailable};
use crate::idempotency::{Idempotency, IdempotencyKeyHeader};
use crate::lists::list_limit;
use crate::requests::{RotateSecret, WebhookCreate, WebhookPatch, replace_if_given};
use crate::responses::{RotatedSecret, UpdatedWebhook, WebhookList, WebhookWithSecret};

/// The webhook as the API shows it, with its health and parked count.
pub async fn view(state: &AppState, stored: &StoredWebhook) -> Result<WebhookView, ApiError> {
    let record = state.health.health(&stored.webhook.id).await?;
    with_health(state, stored, record).await
}

/// What a new revision of a stored webhook is, which decides what moves besides the change.
#[derive(Debug, Clone, Copy)]
pub enum Revision<'a> {
    /// A change the API shows, made at this time: `updated_at` moves; the partitions stay.
    Changed(OffsetDateTime),
    /// A change the API shows that may change what the webhook matches: `updated_at` moves and
    /// the partitions follow the new selection under its owner's companies.
    Reselected(OffsetDateTime, &'a [String]),
    /// Its owner's companies changed: only the partitions follow. The webhook itself did not
    /// change, so `updated_at` stays.
    Reindexed(&'a [String]),
}

/// The next revision of a stored webhook, to write with `update_webhook(previous, &next)`:
/// `change` applied to a copy, then what `revision` moves, and one more version (the store
/// writes only over the version it read, so a concurrent change is a conflict, never lost).
pub fn next_revision(
    previous: &StoredWebhook,
    revision: Revision<'_>,
    change: impl FnOnce(&mut StoredWebhook),
) -> StoredWebhook {
    let mut next = previous.clone();
    change(&mut next);
    let (at, owner_companies) = match revision {
        Revision::Changed(at) => (Some(at), None),
        Revision::Reselected(at, companies) => (Some(at), Some(companies)),
        Revision::Reindexed(companies) => (None, Some(companies)),
    };
    if let Some(at) = at {
        next.webhook.updated_at = format_utc(at);
    }
    if let Some(companies) = owner_companies {
        next.partitions = partitions_for_webhook(&next.webhook.selection(), companies);
    }
    next.version = previous.version + 1;
    next
}

/// The view reads the maintained counter. Expired deliveries hold it up only until a sweep
/// counts them (`park_expired`): one bounded sweep, only once the earliest keeping time of
/// the webhook's parked deliveries passed.
async fn with_health(state: &AppState, stored: &StoredWebhook, record: HealthRecord) -> Result<WebhookView, ApiError> {
    let id = &stored.webhook.id;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut record = record;
    if record.park_sweep_at.is_some_and(|at| at <= now) {
        match state.parking.sweep_expired(id, now, SWEEP_PAGE).await {
            Ok(0) => {}
            Ok(n) => {
                for _ in 0..n {
                    webhooks_aws::metrics::dropped_delivery(DropReason::ParkExpired);
                }
                record = state.health.health(id).await?;
            }
            Err(e) => {
                tracing::warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "sweep of expired parked deliveries failed")
            }
        }
    }
    Ok(WebhookView { webhook: stored.webhook.clone(), health: record.health, parked: record.parked_count })
}

/// Removes a deleted webhook's parked deliveries (and their payloads), counted as dropped
/// (`webhook_deleted`): queued as purge pages for delivery, which may take longer than an
/// API call may; done here, one bounded page, only if that cannot be queued.
async fn purge_parked(state: &AppState, id: &str) {
    let purge = DeliveryQueueMessage::Purge(Purge { webhook_id: id.to_owned() });
    if state.deliveries.send_all(&[purge.to_json()]).await.is_empty() {
        return;
    }
    match state.parking.purge_parked(id, PURGE_PAGE).await {
        Ok((removed, more)) => {
            for _ in 0..removed {
                webhooks_aws::metrics::dropped_delivery(DropReason::WebhookDeleted);
            }
            if more {
                tracing::warn!(webhook_id = %id, "parked deliveries of a deleted webhook left; they expire");
            }
        }
        Err(e) => {
            tracing::warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "could not remove the parked deliveries of a deleted webhook")
        }
    }
}

/// Parked deliveries of a deleted webhook removed in the API call when no purge can be queued.
const PURGE_PAGE: i32 = 100;

/// 403 when a scope names a company the owner key does not hold (checked after 400s).
fn check_scope_companies(scopes: &[Scope], owner: &ApiKey) -> Result<(), ApiError> {
    match scopes.iter().position(|s| !owner.holds(&s.company_id)) {
        Some(i) => Err(ApiError::Forbidden(format!(
            "scopes[{i}].company_id: the key does not hold company `{}`",
            scopes[i].company_id
        ))),
        None => Ok(()),
    }
}

/// The SSRF check of SPEC §8 at create and update: the host must resolve (within 3 s) and
/// every address must be globally reachable (or an allowed target). 400 `url` otherwise.
async fn check_reachable(state: &AppState, url: &url::Url) -> Result<(), ApiError> {
    webhooks_aws::egress::check_url(url, &state.config.allowed_targets)
        .await
        .map_err(|refusal| ApiError::Validation(refusal.to_field_error()))
}

/// A new signing key of the webhook's scheme (`v1`: a secret, answered once; `v1a`: a key
/// pair, whose public key is answered and on the webhook): it signs from now on; the previous
/// one keeps signing too until the grace period ends (default 1 day, at most 7).
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = Option<RotateSecret>, description = "May be left out"),
    responses((status = 200, body = RotatedSecret)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RotatedSecret>, ApiError> {
    let previous = visible(&state, &caller, &id).await?;
    let grace = parse_rotate_secret(body::optional_json(&headers, &body)?.as_ref())?;
    let (key, current) = new_key(&state, &id, previous.webhook.signature_scheme).await?;
    let now = OffsetDateTime::now_utc();
    // The current key gets its grace; earlier ones keep theirs (already shorter) or go.
    let secrets = signing_keys::rotated(&previous.secrets, current, now.unix_timestamp(), grace);
    let next = next_revision(&previous, Revision::Changed(now), |next| {
        next.secrets = secrets;
        next.webhook.public_key = key.public_key();
    });
    state.store.update_webhook(&previous, &next).await?;
    tracing::info!(webhook_id = %id, grace_seconds = grace, scheme = key.scheme().as_str(), "signing key rotated");
    Ok(Json(RotatedSecret { secret: key.shown_secret(), public_key: key.public_key() }))
}

/// A new signing key of `scheme` for webhook `id`, and its encrypted form to store.
async fn new_key(
    state: &AppState,
    id: &str,
    scheme: webhooks_core::model::SignatureScheme,
) -> Result<(SigningKey, StoredSecret), ApiError> {
    let key = SigningKey::generate(scheme).map_err(unavailable)?;
    let ciphertext = state.secrets.encrypt(id, &key).await.map_err(unavailable)?;
    Ok((key, StoredSecret { ciphertext, expires_at: None, scheme }))
}

/// Creates a webhook owned by the calling key. A `v1` webhook's signing secret is in the
/// answer, and only there (and in the answer replayed to a repeat with the same
/// `Idempotency-Key`); a `v1a` webhook shows its public key instead, here and on every read.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = WebhookCreate,
    params(IdempotencyKeyHeader), responses((status = 201, body = WebhookWithSecret)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let owner = caller.require(Permission::Manage)?.key.clone();
    let input = parse_webhook_create(&body::json(&headers, &body)?, state.config.url_policy)?;
    let idempotency = Idempotency::of(&caller, "POST /v1/webhooks", &headers, &body)?;
    idempotency.run(&state, shown_secret, create_checked(&state, owner, input)).await
}

/// The part of a created webhook's answer shown once.
fn shown_secret(created: &WebhookWithSecret) -> Option<&str> {
    created.secret.as_deref()
}

/// Creates a webhook from valid input, once its URL and scopes pass the checks that need the
/// network or the owner's companies.
async fn create_checked(
    state: &AppState,
    owner: ApiKey,
    input: webhooks_core::validation::WebhookCreate,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    check_reachable(state, &input.url).await?;
    check_scope_companies(&input.scopes, &owner)?;
    let now = format_utc(OffsetDateTime::now_utc());
    let id = random_base62("wh_", 24).map_err(unavailable)?;
    let (key, current) = new_key(state, &id, input.signature_scheme).await?;
    let webhook = Webhook {
        id,
        owner_key_id: owner.id.clone(),
        name: input.name,
        description: input.description,
        url: input.url.to_string(),
        events: input.events,
        scopes: input.scopes,
        headers: input.headers,
        rate_limit: input.rate_limit,
        filters: input.filters,
        status: WebhookStatus::Active,
        disabled_reason: None,
        signature_scheme: input.signature_scheme,
        public_key: key.public_key(),
        created_at: now.clone(),
        updated_at: now,
    };
    let partitions = partitions_for_webhook(&webhook.selection(), &owner.companies);
    let stored = StoredWebhook {
        webhook,
        secrets: vec![current],
        version: 1,
        partitions,
        alert_pending: None,
        disabled_at_ms: None,
    };
    state.store.create_webhook(&stored, state.config.max_webhooks_per_key).await?;
    tracing::info!(webhook_id = %stored.webhook.id, owner_key_id = %owner.id, "webhook created");
    // A new webhook has no counters and nothing parked: nothing to read back.
    let webhook = WebhookView { webhook: stored.webhook, health: Health::default(), parked: 0 };
    Ok((StatusCode::CREATED, Json(WebhookWithSecret { webhook, secret: key.shown_secret() })))
}

/// Filters of `GET /v1/webhooks` (kept as text here: the handler gives the 400s).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookListParams {
    /// Only webhooks in this status.
    #[param(value_type = Option<WebhookStatus>)]
    status: Option<String>,
    /// Items per page, 1 to 100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    cursor: Option<String>,
    /// Admin key only: the webhooks of this key. Ignored for other keys, which see their own.
    owner_key_id: Option<String>,
}

/// The calling key's webhooks (the admin key: everyone's), oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])), params(WebhookListParams),
    responses((status = 200, body = WebhookList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<WebhookListParams>,
) -> Result<Json<WebhookList>, ApiError> {
    let owner = match &caller {
        Caller::Admin => params.owner_key_id.clone(),
        key => Some(key.require(Permission::Manage)?.key.id.clone()),
    };
    let status = match params.status.as_deref() {
        None => None,
        Some("active") => Some(WebhookStatus::Active),
        Some("disabled") => Some(WebhookStatus::Disabled),
        Some(_) => return Err(ApiError::validation("status", "status must be `active` or `disabled`")),
    };
    let limit = list_limit(params.limit.as_deref())?;
    let page = state.store.list_webhooks(owner.as_deref(), status, limit, params.cursor.as_deref()).await?;
    let ids = page.items.iter().map(|w| w.webhook.id.clone()).collect();
    let mut health = state.health.health_of(&ids).await?;
    let mut data: Vec<WebhookView> = Vec::with_capacity(page.items.len());
    for stored in &page.items {
        data.push(with_health(&state, stored, health.remove(&stored.webhook.id).unwrap_or_default()).await?);
    }
    Ok(Json(WebhookList { data, next_cursor: page.next_cursor }))
}

/// The webhook if the caller may see it: its owner (with `manage`) or the admin; else 404.
pub async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<StoredWebhook, ApiError> {
    let owner = match caller {
        Caller::Admin => None,
        key => Some(key.require(Permission::Manage)?.key.id.clone()),
    };
    let stored = state.store.get_webhook(id).await?.ok_or(ApiError::NotFound)?;
    match owner {
        Some(owner) if owner != stored.webhook.owner_key_id => Err(ApiError::NotFound),
        _ => Ok(stored),
    }
}

/// A webhook, with its health and parked count.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = WebhookView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let stored = visible(&state, &caller, &id).await?;
    Ok(Json(view(&state, &stored).await?))
}

/// Changes a webhook; the next event already follows the new settings. A switch of
/// `signature_scheme` signs with the new scheme at once, while the previous scheme's keys keep
/// signing for a day; a new `v1` secret is in the answer, once.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = WebhookPatch, responses((status = 200, body = UpdatedWebhook)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<UpdatedWebhook>, ApiError> {
    let previous = visible(&state, &caller, &id).await?;
    let patch = parse_webhook_patch(&body::json(&headers, &body)?, state.config.url_policy)?;
    if let Some(url) = &patch.url {
        check_reachable(&state, url).await?;
    }
    let owner = match &caller {
        Caller::Key(k) => k.key.clone(),
        Caller::Admin => state.store.get_key(&previous.webhook.owner_key_id).await?.ok_or(ApiError::NotFound)?.key,
    };
    if let Some(scopes) = &patch.scopes {
        check_scope_companies(scopes, &owner)?;
    }
    let now = OffsetDateTime::now_utc();
    let (mut keys, mut shown) = (None, None);
    if let Some(to) = patch.signature_scheme {
        match signing_keys::switch_scheme(
            &previous.secrets,
            previous.webhook.signature_scheme,
            to,
            now.unix_timestamp(),
        ) {
            SchemeSwitch::Unchanged => {}
            SchemeSwitch::Restore(restored) => keys = Some((restored, None)),
            SchemeSwitch::NewKey => {
                let (key, current) = new_key(&state, &id, to).await?;
                let rotated =
                    signing_keys::rotated(&previous.secrets, current, now.unix_timestamp(), SWITCH_GRACE_SECONDS);
                shown = key.shown_secret();
                keys = Some((rotated, key.public_key()));
            }
        }
    }
    let next = next_revision(&previous, Revision::Reselected(now, &owner.companies), |next| {
        let w = &mut next.webhook;
        replace_if_given(&mut w.url, patch.url.map(|url| url.to_string()));
        replace_if_given(&mut w.name, patch.name);
        replace_if_given(&mut w.description, patch.description);
        replace_if_given(&mut w.events, patch.events);
        replace_if_given(&mut w.scopes, patch.scopes);
        replace_if_given(&mut w.headers, patch.headers);
        replace_if_given(&mut w.rate_limit, patch.rate_limit);
        replace_if_given(&mut w.filters, patch.filters);
        if let Some((secrets, public_key)) = keys {
            replace_if_given(&mut w.signature_scheme, patch.signature_scheme);
            w.public_key = public_key;
            next.secrets = secrets;
        }
    });
    state.store.update_webhook(&previous, &next).await?;
    tracing::info!(webhook_id = %id, scheme = next.webhook.signature_scheme.as_str(), "webhook updated");
    Ok(Json(UpdatedWebhook { webhook: view(&state, &next).await?, secret: shown }))
}

/// Deletes a webhook; its queued and parked deliveries are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let stored = visible(&state, &caller, &id).await?;
    state.store.delete_webhook(&stored).await?;
    // Queued deliveries find no webhook and are dropped (webhook_deleted); parked ones are
    // removed and counted the same way.
    purge_parked(&state, &id).await;
    if let Err(e) = state.health.forget(&id).await {
        tracing::warn!(error = %webhooks_aws::error_chain(&e), "could not remove the counters of a deleted webhook");
    }
    tracing::info!(webhook_id = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn stored(at: &str) -> StoredWebhook {
        StoredWebhook {
            webhook: Webhook {
                id: "wh_1".into(),
                owner_key_id: "key_1".into(),
                name: None,
                description: None,
                url: "https://example.com/hook".into(),
                events: vec![],
                scopes: vec![],
                headers: Default::default(),
                rate_limit: None,
                filters: Vec::new(),
                status: WebhookStatus::Active,
                disabled_reason: None,
                signature_scheme: Default::default(),
                public_key: None,
                created_at: at.into(),
                updated_at: at.into(),
            },
            secrets: vec![],
            version: 7,
            partitions: BTreeSet::from(["C#acme".to_owned()]),
            alert_pending: None,
            disabled_at_ms: None,
        }
    }

    const CREATED: &str = "2026-01-01T00:00:00Z";

    fn later() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn a_change_the_api_shows_moves_updated_at_and_the_version_but_not_the_partitions() {
        // GIVEN a stored webhook
        let previous = stored(CREATED);
        // WHEN it is disabled
        let next = next_revision(&previous, Revision::Changed(later()), |n| n.webhook.status = WebhookStatus::Disabled);
        // THEN the change, the time and one more version, and the same partitions
        assert_eq!(next.webhook.status, WebhookStatus::Disabled);
        assert_eq!(next.webhook.updated_at, format_utc(later()));
        assert_eq!(next.version, 8);
        assert_eq!(next.partitions, previous.partitions);
    }

    #[test]
    fn a_reselection_moves_the_partitions_with_the_new_selection() {
        // GIVEN a webhook of an owner holding two companies
        let previous = stored(CREATED);
        let companies = ["acme".to_owned(), "globex".to_owned()];
        // WHEN it is scoped to one of them
        let next = next_revision(&previous, Revision::Reselected(later(), &companies), |n| {
            n.webhook.scopes = vec![Scope { company_id: "globex".into(), project_id: None }];
        });
        // THEN its partitions are that company's, computed from the changed selection
        assert_eq!(next.partitions, partitions_for_webhook(&next.webhook.selection(), &companies));
        assert_ne!(next.partitions, previous.partitions);
        assert_eq!(next.webhook.updated_at, format_utc(later()));
        assert_eq!(next.version, 8);
    }

    #[test]
    fn a_reindex_moves_only_the_partitions_and_the_version() {
        // GIVEN a webhook without scopes
        let previous = stored(CREATED);
        // WHEN its owner's companies change
        let companies = ["globex".to_owned()];
        let next = next_revision(&previous, Revision::Reindexed(&companies), |_| {});
        // THEN it follows them, and the webhook itself is unchanged
        assert_eq!(next.partitions, partitions_for_webhook(&previous.webhook.selection(), &companies));
        assert_ne!(next.partitions, previous.partitions);
        assert_eq!(next.webhook, previous.webhook);
        assert_eq!(next.version, 8);
    }
}
