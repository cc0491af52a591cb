//! API keys (admin only) and `GET /v1/me`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use crate::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use time::OffsetDateTime;
use webhooks_aws::dynamodb::StoredKey;
use webhooks_core::event::format_utc;
use webhooks_core::ids::{new_api_key_secret, random_base62};
use webhooks_core::resources::{ADMIN_KEY_ID, ApiKey};
use webhooks_core::signing::sha256_hex;
use webhooks_core::validation::{parse_key_create, parse_key_patch};

use crate::auth::Caller;
use crate::body;
use crate::error::ApiError;
use crate::lists::{ListParams, list_limit};
use crate::openapi::{ApiKeyCreate, ApiKeyList, ApiKeyPatch, ApiKeyWithSecret, Me};
use crate::{AppState, webhooks};

fn randomness(e: webhooks_core::ids::RandomnessError) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

/// The calling key.
#[utoipa::path(get, path = "/v1/me", tag = "keys", security(("bearer" = [])), responses((status = 200, body = Me)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(match caller {
        Caller::Admin => Me { id: ADMIN_KEY_ID.into(), name: "admin".into(), companies: vec![], permissions: vec![], is_admin: true },
        Caller::Key(k) => Me {
            id: k.key.id.clone(),
            name: k.key.name.clone(),
            companies: k.key.companies.clone(),
            permissions: k.key.permissions.clone(),
            is_admin: false,
        },
    })
}

fn with_secret(key: &ApiKey, secret: &str) -> ApiKeyWithSecret {
    ApiKeyWithSecret { api_key: key.clone(), key: secret.to_owned() }
}

/// Creates an API key (admin only). Its secret is in the answer, and only there.
#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", security(("bearer" = [])), request_body = ApiKeyCreate,
    responses((status = 201, body = ApiKeyWithSecret)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ApiKeyWithSecret>), ApiError> {
    caller.require_admin()?;
    let input = parse_key_create(&body::json(&headers, &body)?)?;
    let secret = new_api_key_secret().map_err(randomness)?;
    let key = ApiKey {
        id: random_base62("key_", 20).map_err(randomness)?,
        name: input.name,
        companies: input.companies,
        permissions: input.permissions,
        created_at: format_utc(OffsetDateTime::now_utc()),
        last_used_at: None,
    };
    state.store.create_key(&StoredKey { key: key.clone(), secret_sha256: sha256_hex(&secret), webhook_count: 0 }).await?;
    tracing::info!(key_id = %key.id, "api key created");
    Ok((StatusCode::CREATED, Json(with_secret(&key, &secret))))
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
    let mut key = stored.key.clone();
    if let Some(name) = patch.name {
        key.name = name;
    }
    if let Some(companies) = patch.companies {
        key.companies = companies;
    }
    if let Some(permissions) = patch.permissions {
        key.permissions = permissions;
    }
    state.store.update_key(&key).await?;
    if key.companies != stored.key.companies {
        // Webhooks with no scopes follow the key's companies: move their index entries.
        webhooks::reindex_owner(&state, &key).await?;
    }
    tracing::info!(key_id = %key.id, "api key updated");
    Ok(Json(key))
}

/// Deletes a key and its webhooks (admin only); their queued and parked deliveries are dropped.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "keys", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let stored = existing(&state, &id).await?;
    // The key goes first: from this moment it authenticates nothing and matches nothing.
    state.store.delete_key(&stored).await?;
    webhooks::delete_all_of_owner(&state, &id).await?;
    tracing::info!(key_id = %id, "api key deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for a key (admin only); the old one is dead at once.
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "keys", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyWithSecret)))]
pub async fn rotate(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<ApiKeyWithSecret>, ApiError> {
    caller.require_admin()?;
    let stored = existing(&state, &id).await?;
    let secret = new_api_key_secret().map_err(randomness)?;
    state.store.rotate_key(&stored, &sha256_hex(&secret)).await?;
    tracing::info!(key_id = %id, "api key rotated");
    Ok(Json(with_secret(&stored.key, &secret)))
}

