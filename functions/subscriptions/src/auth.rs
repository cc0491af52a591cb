//! Who is calling: the admin key (configured as a hash) or a stored API key. Keys are stored
//! only as SHA-256 and compared in constant time; a 401 never says which part was wrong.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use time::OffsetDateTime;
use webhooks_aws::dynamodb::StoredKey;
use webhooks_core::ids::is_api_key_secret;
use webhooks_core::model::Permission;
use webhooks_core::resources::ADMIN_KEY_ID;
use webhooks_core::signing::{constant_time_eq, sha256_hex};

use crate::AppState;
use crate::error::ApiError;

/// `last_used_at` is refreshed at most this often per key: a write per request would double
/// the API's DynamoDB cost for a timestamp nobody needs to the second.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    Key(Box<StoredKey>),
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin)
    }

    /// The key, if the caller holds `permission`; the admin key holds none of them.
    pub fn require(&self, permission: Permission) -> Result<&StoredKey, ApiError> {
        match self {
            Self::Key(k) if k.key.may(permission) => Ok(k),
            _ => Err(ApiError::Forbidden(format!("this key lacks the `{}` permission", permission.as_str()))),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("only the admin key may do this".into())) }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Admin => ADMIN_KEY_ID,
            Self::Key(k) => &k.key.id,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let secret = header.strip_prefix("Bearer ").map(str::trim).unwrap_or_default();
        if !is_api_key_secret(secret) {
            return Err(ApiError::Unauthenticated);
        }
        let hash = sha256_hex(secret);
        if let Some(admin) = &state.config.admin_key_sha256
            && constant_time_eq(hash.as_bytes(), admin.as_bytes())
        {
            return Ok(Self::Admin);
        }
        let key = state.store.key_by_secret_hash(&hash).await?.ok_or(ApiError::Unauthenticated)?;
        let now = OffsetDateTime::now_utc();
        let stale = key
            .key
            .last_used_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .is_none_or(|t| (now - t).whole_seconds() >= LAST_USED_RESOLUTION_SECONDS);
        if stale && let Err(e) = state.store.touch_key(&key.key.id, &webhooks_core::event::format_utc(now)).await {
            tracing::warn!(error = %e, "could not record last_used_at");
        }
        Ok(Self::Key(Box::new(key)))
    }
}
