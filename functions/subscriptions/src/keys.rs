//! API keys (admin only) and `GET /v1/me`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
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
use crate::{AppState, webhooks};

fn randomness(e: webhooks_core::ids::RandomnessError) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

pub async fn me(caller: Caller) -> Json<Value> {
    Json(match caller {
        Caller::Admin => json!({"id": ADMIN_KEY_ID, "name": "admin", "companies": [], "permissions": [], "is_admin": true}),
        Caller::Key(k) => json!({"id": k.key.id, "name": k.key.name, "companies": k.key.companies,
                                 "permissions": k.key.permissions, "is_admin": false}),
    })
}

fn with_secret(key: &ApiKey, secret: &str) -> Value {
    let mut v = json!(key);
    v["key"] = json!(secret);
    v
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let page = state.store.list_keys(list_limit(params.limit.as_deref())? as i32, params.cursor.as_deref()).await?;
    Ok(Json(json!({"data": page.items, "next_cursor": page.next_cursor})))
}

async fn existing(state: &AppState, id: &str) -> Result<StoredKey, ApiError> {
    state.store.get_key(id).await?.ok_or(ApiError::NotFound)
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!(key)))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let stored = existing(&state, &id).await?;
    // The key goes first: from this moment it authenticates nothing and matches nothing.
    state.store.delete_key(&stored).await?;
    webhooks::delete_all_of_owner(&state, &id).await?;
    tracing::info!(key_id = %id, "api key deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rotate(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let stored = existing(&state, &id).await?;
    let secret = new_api_key_secret().map_err(randomness)?;
    state.store.rotate_key(&stored, &sha256_hex(&secret)).await?;
    tracing::info!(key_id = %id, "api key rotated");
    Ok(Json(with_secret(&stored.key, &secret)))
}

