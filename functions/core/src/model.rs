//! The vocabulary shared by every function: what a webhook selects, what a key may do, the
//! states a webhook can be in and why a delivery may be dropped.
//!
//! Plain data with its wire form (serde); no behaviour beyond naming. Decisions taken on these
//! types live in `matching`, `retry` and `validation`.

use serde::{Deserialize, Serialize};

/// One entry of a webhook's `scopes`: a whole company, or one project of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub company_id: String,
    /// `None` selects every project of the company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub project_id: Option<String>,
}

impl Scope {
    /// A scope covering every project of `company_id`.
    pub fn company(company_id: impl Into<String>) -> Self {
        Self { company_id: company_id.into(), project_id: None }
    }

    /// A scope covering one project.
    pub fn project(company_id: impl Into<String>, project_id: impl Into<String>) -> Self {
        Self { company_id: company_id.into(), project_id: Some(project_id.into()) }
    }
}

/// What a webhook subscribes to. An empty list means "all": every subscribable type, or every
/// company the owner key holds (SPEC §4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<Scope>,
}

/// What an API key may do besides reading itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Create, read, change and delete its own webhooks.
    Manage,
    /// Publish events through `POST /v1/events`.
    Publish,
}

impl Permission {
    /// Every permission, in the order the API lists them.
    pub const ALL: [Self; 2] = [Self::Manage, Self::Publish];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Manage => "manage",
            Self::Publish => "publish",
        }
    }

    /// The permission with wire name `s`, if any (exact, lowercase).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Whether a webhook receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    Active,
    Disabled,
}

impl WebhookStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

/// How a webhook's deliveries are signed (SPEC §5, §10): `v1`, HMAC-SHA256 with a shared
/// secret, or `v1a`, Ed25519 with a key pair whose public key the webhook object shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SignatureScheme {
    #[default]
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v1a")]
    V1a,
}

impl SignatureScheme {
    pub const ALL: [Self; 2] = [Self::V1, Self::V1a];

    /// The wire name, also the tag of its entries in `webhook-signature`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1a => "v1a",
        }
    }

    /// The scheme with wire name `s`, if any (exact, lowercase).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Why a webhook is disabled; decides whether new matches are parked or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DisabledReason {
    /// A delivery used all its attempts with no success of the webhook in between.
    Failing,
    /// The receiver answered `410 Gone`.
    Gone,
    /// Disabled through the API.
    Manual,
}

impl DisabledReason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::Gone => "gone",
            Self::Manual => "manual",
        }
    }
}

/// Why an (event, webhook) pair was dropped rather than delivered or parked. Every drop is
/// counted with one of these (SPEC §6), so nothing is lost silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The webhook was disabled by hand: new matches are not kept.
    ManualDisabled,
    /// The webhook (or its owner key) was deleted.
    WebhookDeleted,
    /// The owner key was revoked, or no longer holds the event's company.
    OwnerRevoked,
    /// The webhook already had as many parked deliveries as allowed.
    ParkFull,
    /// A parked delivery outlived the parking TTL.
    ParkExpired,
}

impl DropReason {
    /// Every reason, e.g. to publish a zero for each metric dimension.
    pub const ALL: [Self; 5] =
        [Self::ManualDisabled, Self::WebhookDeleted, Self::OwnerRevoked, Self::ParkFull, Self::ParkExpired];

    /// The wire name, also used as the metric dimension and in `health.dropped`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ManualDisabled => "manual_disabled",
            Self::WebhookDeleted => "webhook_deleted",
            Self::OwnerRevoked => "owner_revoked",
            Self::ParkFull => "park_full",
            Self::ParkExpired => "park_expired",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn scope_serializes_project_only_when_present() -> TestResult {
        // GIVEN a whole-company scope and a project scope
        let cases = [
            (Scope::company("acme"), json!({"company_id": "acme"})),
            (Scope::project("acme", "p1"), json!({"company_id": "acme", "project_id": "p1"})),
        ];
        for (scope, wire) in cases {
            // WHEN serialized and read back
            let written = serde_json::to_value(&scope)?;
            let read: Scope = serde_json::from_value(wire.clone())?;
            // THEN the wire form omits an absent project and round-trips
            assert_eq!(written, wire);
            assert_eq!(read, scope);
        }
        Ok(())
    }

    #[test]
    fn scope_refuses_unknown_fields_and_accepts_null_project() -> TestResult {
        // GIVEN a scope with an extra field, and one with an explicit null project
        let extra = json!({"company_id": "acme", "project": "p1"});
        let null_project = json!({"company_id": "acme", "project_id": null});
        // WHEN read
        // THEN the extra field is refused and null means "whole company"
        assert!(serde_json::from_value::<Scope>(extra).is_err());
        assert_eq!(serde_json::from_value::<Scope>(null_project)?, Scope::company("acme"));
        Ok(())
    }

    #[test]
    fn selection_defaults_to_everything() -> TestResult {
        // GIVEN an empty object WHEN read THEN both lists are empty (= all)
        let sel: Selection = serde_json::from_value(json!({}))?;
        assert_eq!(sel, Selection::default());
        assert!(sel.events.is_empty() && sel.scopes.is_empty());
        Ok(())
    }

    #[test]
    fn enums_use_their_documented_wire_names() -> TestResult {
        // GIVEN every variant with its expected wire name
        #[rustfmt::skip]
        let cases: Vec<(Value, &str, &str)> = vec![
            (serde_json::to_value(Permission::Manage)?, Permission::Manage.as_str(), "manage"),
            (serde_json::to_value(Permission::Publish)?, Permission::Publish.as_str(), "publish"),
            (serde_json::to_value(WebhookStatus::Active)?, WebhookStatus::Active.as_str(), "active"),
            (serde_json::to_value(WebhookStatus::Disabled)?, WebhookStatus::Disabled.as_str(), "disabled"),
            (serde_json::to_value(DisabledReason::Failing)?, DisabledReason::Failing.as_str(), "failing"),
            (serde_json::to_value(DisabledReason::Gone)?, DisabledReason::Gone.as_str(), "gone"),
            (serde_json::to_value(DisabledReason::Manual)?, DisabledReason::Manual.as_str(), "manual"),
            (serde_json::to_value(DropReason::ManualDisabled)?, DropReason::ManualDisabled.as_str(), "manual_disabled"),
            (serde_json::to_value(DropReason::WebhookDeleted)?, DropReason::WebhookDeleted.as_str(), "webhook_deleted"),
            (serde_json::to_value(DropReason::OwnerRevoked)?, DropReason::OwnerRevoked.as_str(), "owner_revoked"),
            (serde_json::to_value(DropReason::ParkFull)?, DropReason::ParkFull.as_str(), "park_full"),
            (serde_json::to_value(DropReason::ParkExpired)?, DropReason::ParkExpired.as_str(), "park_expired"),
        ];
        for (serialized, as_str, expected) in cases {
            // WHEN serialized or named THEN both give the documented name
            assert_eq!(serialized, json!(expected));
            assert_eq!(as_str, expected);
        }
        Ok(())
    }

    #[test]
    fn every_drop_reason_is_listed_once() {
        // GIVEN DropReason::ALL WHEN names are collected THEN they are the five of SPEC §6
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["manual_disabled", "webhook_deleted", "owner_revoked", "park_full", "park_expired"]);
    }

    #[test]
    fn permission_names_are_exact() {
        // GIVEN candidate names WHEN looked up THEN only the exact lowercase names are known
        let cases = [
            ("manage", Some(Permission::Manage)),
            ("publish", Some(Permission::Publish)),
            ("Manage", None),
            ("admin", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(Permission::from_name(name), expected, "{name}");
        }
    }

    #[test]
    fn unknown_wire_names_are_refused() {
        // GIVEN names that are not variants WHEN read THEN they are refused
        assert!(serde_json::from_value::<Permission>(json!("MANAGE")).is_err());
        assert!(serde_json::from_value::<WebhookStatus>(json!("paused")).is_err());
        assert!(serde_json::from_value::<DisabledReason>(json!("Failing")).is_err());
        assert!(serde_json::from_value::<DropReason>(json!("parkFull")).is_err());
    }
}
