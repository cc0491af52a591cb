//! API keys (admin only) and `GET /v1/me`.

use crate::extract::{Path, Query};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use time::OffsetDateTime;
use webhooks_aws::dynamodb::{StoreError, StoredKey, StoredWebhook};
use webhooks_core::event::format_utc;
use webhooks_core::ids::{new_api_key_secret, random_base62};
use webhooks_core::model::Permission;
use webhooks_core::resources::{ADMIN_KEY_ID, ApiKey};
use webhooks_core::signing::sha256_hex;
use webhooks_core::validation::{KeyCreate, parse_key_create, parse_key_patch};

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, unavailable};
use crate::idempotency::{Idempotency, IdempotencyKeyHeader};
use crate::lists::{ListParams, list_limit};
use crate::requests::{ApiKeyCreate, ApiKeyPatch, replace_if_given};
use crate::responses::{ApiKeyList, ApiKeyWithSecret, Me};
use crate::webhooks::{Revision, next_revision};

/// The calling key.
#[utoipa::path(get, path = "/v1/me", tag = "keys", security(("bearer" = [])), responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Json<Me> {
    Json(match caller {
        Caller::Admin => Me {
            id: ADMIN_KEY_ID.into(),
            name: "admin".into(),
            companies: vec![],
            permissions: vec![],
            is_admin: true,
            publish_rate: None,
        },
        Caller::Key(k) => Me {
            id: k.key.id.clone(),
            name: k.key.name.clone(),
            companies: k.key.companies.clone(),
            permissions: k.key.permissions.clone(),
            is_admin: false,
            publish_rate: k.key.permissions.contains(&Permission::Publish).then_some(state.config.publish_rate),
        },
    })
}

fn with_secret(key: &ApiKey, secret: &str) -> ApiKeyWithSecret {
    ApiKeyWithSecret { api_key: key.clone(), key: secret.to_owned() }
}

/// Creates an API key (admin only). Its secret is in the answer, and only there (and in the
/// answer replayed to a repeat with the same `Idempotency-Key`).
#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", security(("bearer" = [])), request_body = ApiKeyCreate,
    params(IdempotencyKeyHeader), responses((status = 201, body = ApiKeyWithSecret)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let input = parse_key_create(&body::json(&headers, &body)?)?;
    let idempotency = Idempotency::of(&caller, "POST /v1/api-keys", &headers, &body)?;
    idempotency.run(&state, shown_key, create_key(&state, input)).await
}

/// Stores a new key for valid input, with a new secret.
async fn create_key(state: &AppState, input: KeyCreate) -> Result<(StatusCode, Json<ApiKeyWithSecret>), ApiError> {
    let secret = new_api_key_secret().map_err(unavailable)?;
    let key = ApiKey {
        id: random_base62("key_", 20).map_err(unavailable)?,
        name: input.name,
        companies: input.companies,
        permissions: input.permissions,
        created_at: format_utc(OffsetDateTime::now_utc()),
        last_used_at: None,
    };
    state
        .store
        .create_key(&StoredKey { key: key.clone(), secret_sha256: sha256_hex(&secret), webhook_count: 0 })
        .await?;
    tracing::info!(key_id = %key.id, "api key created");
    Ok((StatusCode::CREATED, Json(with_secret(&key, &secret))))
}

/// The part of a created key's answer shown once.
fn shown_key(created: &ApiKeyWithSecret) -> Option<&str> {
    Some(created.key.as_str())
}

/// Every API key (admin only).
#[utoipa::path(get, path = "/v1/api-keys", tag = "keys", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = ApiKeyList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<ApiKeyList>, ApiError> {
    caller.require_admin()?;
    let page = state.store.list_keys(list_limit(params.limit.as_deref())? as i32, params.cursor.as_deref()).await?;
    Ok(Json(ApiKeyList { data: page.items, next_cursor: page.next_cursor }))
}

async fn existing(state: &AppState, id: &str) -> Result<StoredKey, ApiError> {
    state.store.get_key(id).await?.ok_or(ApiError::NotFound)
}

/// Changes a key's name, companies or permissions (admin only). A company taken away stops its
/// flows at once, queued retries included.
#[utoipa::path(patch, path = "/v1/api-keys/{id}", tag = "keys", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ApiKeyPatch, responses((status = 200, body = ApiKey)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ApiKey>, ApiError> {
    caller.require_admin()?;
    let stored = existing(&state, &id).await?;
    let patch = parse_key_patch(&body::json(&headers, &body)?)?;
    let patch_has_companies = patch.companies.is_some();
    let mut key = stored.key.clone();
    replace_if_given(&mut key.name, patch.name);
    replace_if_given(&mut key.companies, patch.companies);
    replace_if_given(&mut key.permissions, patch.permissions);
    state.store.update_key(&key).await?;
    if patch_has_companies {
        // Webhooks with no scopes follow the key's companies: move their index entries. Done
        // on every PATCH that names companies, changed or not, so that repeating a request
        // whose reindex was interrupted completes it.
        reindex_owner(&state, &key).await?;
    }
    tracing::info!(key_id = %key.id, "api key updated");
    Ok(Json(key))
}

/// Deletes a key and its webhooks (admin only); their queued and parked deliveries are dropped.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "keys", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let stored = existing(&state, &id).await?;
    // The secret goes first: from this moment the key authenticates nothing (so it creates no
    // webhook). Then its webhooks, then the key item, which a retry of an interrupted
    // deletion finds again and completes.
    state.store.revoke_key_secret(&stored).await?;
    for attempt in 1..=DELETE_ROUNDS {
        for webhook in owned_webhooks(&state, &id).await? {
            match state.store.delete_webhook(&webhook).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match state.store.delete_key(&stored).await {
            Ok(()) => break,
            // A webhook created by a request already under way: one more round.
            Err(StoreError::Conflict) if attempt < DELETE_ROUNDS && state.store.get_key(&id).await?.is_some() => {}
            Err(StoreError::Conflict) if state.store.get_key(&id).await?.is_none() => break,
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(key_id = %id, "api key deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Rounds of "delete the webhooks, then the key" before a deletion gives up (503, to retry).
const DELETE_ROUNDS: u32 = 3;
/// Tries per webhook when a concurrent change moves it during a reindex.
const REINDEX_TRIES: u32 = 3;

/// Every webhook a key owns, as the owner index lists them (eventually consistent: a webhook
/// created a moment ago may be missing; each is re-read before it is rewritten).
async fn owned_webhooks(state: &AppState, owner: &str) -> Result<Vec<StoredWebhook>, ApiError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = state.store.list_webhooks(Some(owner), None, crate::lists::MAX_LIMIT, cursor.as_deref()).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// After a key's companies changed: webhooks without scopes follow them. Each webhook is read
/// again (strongly consistent) before it is rewritten, and a concurrent change is met by
/// reading and deciding again; a webhook already in place is left alone, so running it twice
/// changes nothing the second time.
async fn reindex_owner(state: &AppState, key: &ApiKey) -> Result<(), ApiError> {
    for listed in owned_webhooks(state, &key.id).await? {
        for attempt in 1..=REINDEX_TRIES {
            let Some(current) = state.store.get_webhook(&listed.webhook.id).await? else { break };
            let next = next_revision(&current, Revision::Reindexed(&key.companies), |_| {});
            if next.partitions == current.partitions {
                break;
            }
            match state.store.update_webhook(&current, &next).await {
                Ok(()) => break,
                Err(StoreError::Conflict) if attempt < REINDEX_TRIES => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// A new secret for a key (admin only); the old one is dead at once.
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "keys", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyWithSecret)))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyWithSecret>, ApiError> {
    caller.require_admin()?;
    let stored = existing(&state, &id).await?;
    let secret = new_api_key_secret().map_err(unavailable)?;
    state.store.rotate_key(&stored, &sha256_hex(&secret)).await?;
    tracing::info!(key_id = %id, "api key rotated");
    Ok(Json(with_secret(&stored.key, &secret)))
}
