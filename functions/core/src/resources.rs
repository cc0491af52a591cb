//! The API's resources as users see them (SPEC §7): API keys, webhooks and their health.
//!
//! Plain data with its wire form. Secrets are never part of these types: they appear in an API
//! answer only on create and rotate, added by the handler.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::filters::Filter;
use crate::model::{DisabledReason, Permission, Scope, Selection, SignatureScheme, WebhookStatus};

/// The admin key's id: it is configured, not stored.
pub const ADMIN_KEY_ID: &str = "key_admin";

/// An API key object (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub companies: Vec<String>,
    pub permissions: Vec<Permission>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl ApiKey {
    pub fn holds(&self, company_id: &str) -> bool {
        self.companies.iter().any(|c| c == company_id)
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

/// A webhook's configuration and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: String,
    pub owner_key_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub scopes: Vec<Scope>,
    pub headers: BTreeMap<String, String>,
    /// Requests per second at most, across every execution environment (SPEC §10); `null`:
    /// none.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub rate_limit: Option<u32>,
    /// Conditions on the delivery body that must all hold (SPEC §10); empty = none. Stored as
    /// JSON text (`filters::stored`), shown as a list.
    #[serde(default, deserialize_with = "crate::filters::stored::deserialize")]
    pub filters: Vec<Filter>,
    pub status: WebhookStatus,
    pub disabled_reason: Option<DisabledReason>,
    /// How deliveries are signed: `v1` (HMAC-SHA256, the default) or `v1a` (Ed25519). Stored
    /// webhooks from before `v1a` read as `v1`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub signature_scheme: SignatureScheme,
    /// `v1a` only: `whpk_` + base64 of the 32-byte Ed25519 public key that verifies the
    /// signatures; `null` for `v1`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, pattern = "^whpk_[A-Za-z0-9+/]{43}=$"))]
    pub public_key: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Webhook {
    pub fn selection(&self) -> Selection {
        Selection { events: self.events.clone(), scopes: self.scopes.clone() }
    }
}

/// Failure counters of a webhook (SPEC §6), plus drops by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub consecutive_failures: u32,
    pub failing_since: Option<String>,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub dropped: BTreeMap<String, u64>,
}

/// A webhook as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub health: Health,
    pub parked: u64,
}

/// One entry of a webhook's delivery log (SPEC §7): an attempt, or a parking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    pub event_id: String,
    pub source: Option<String>,
    pub webhook_message_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `None` for a parking.
    pub attempt: Option<u32>,
    /// `succeeded`, `pending` (failed, retry at `next_attempt_at`), `failed` (no retry left) or
    /// `parked`.
    pub status: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The first KiB of a failure's response body.
    pub response_body: Option<String>,
    pub duration_ms: Option<u64>,
    pub attempted_at: String,
    pub next_attempt_at: Option<String>,
}

/// Log entry statuses.
pub mod log_status {
    pub const SUCCEEDED: &str = "succeeded";
    pub const PENDING: &str = "pending";
    pub const FAILED: &str = "failed";
    pub const PARKED: &str = "parked";
    pub const ALL: [&str; 4] = [SUCCEEDED, PENDING, FAILED, PARKED];
}
