//! A webhook's health as delivery changes it: a success's bookkeeping (ending a streak, and
//! the replay that follows), deactivation, and its alert, published at least once.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, warn};
use webhooks_core::model::DisabledReason;
use webhooks_core::ports::{Alerts, Clock, HealthRecord, HealthStore, StoredWebhook, WebhookStore};
use webhooks_core::reliability::{SuccessWrite, after_success, recovered, replay_after_success};

use crate::{Deliverer, DeliveryError, DeliveryPorts};

/// An RFC 3339 time as Unix seconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

/// The companies whose data a webhook receives: its scopes', or all its owner's.
fn companies_of(stored: &StoredWebhook, owner_companies: &[String]) -> Vec<String> {
    let mut companies: Vec<String> = stored.webhook.scopes.iter().map(|s| s.company_id.clone()).collect();
    companies.dedup();
    if companies.is_empty() {
        companies = owner_companies.to_vec();
    }
    companies
}

/// An operational alert (SPEC §10): `webhook.failing` (`kind` `failing`, with the failure as
/// its `reason`) or `webhook.recovered` (`recovered`).
pub fn operational_alert(
    stored: &StoredWebhook,
    kind: &str,
    at: &str,
    reason: Option<&str>,
    owner_companies: &[String],
) -> String {
    let w = &stored.webhook;
    let mut alert = serde_json::json!({
        "type": format!("webhook.{kind}"), "webhook_id": w.id, "owner_key_id": w.owner_key_id,
        "companies": companies_of(stored, owner_companies), "at": at,
    });
    if let Some(reason) = reason {
        alert["reason"] = reason.into();
    }
    alert.to_string()
}

/// The alert of a deactivation (SPEC §6): the companies whose data the webhook was receiving
/// (its scopes', or all its owner's), why, and its last failure.
pub fn disabled_alert(
    stored: &StoredWebhook,
    reason: DisabledReason,
    after: &HealthRecord,
    at: &str,
    owner_companies: &[String],
) -> String {
    let w = &stored.webhook;
    let companies = companies_of(stored, owner_companies);
    serde_json::json!({
        "type": "webhook.disabled", "webhook_id": w.id, "owner_key_id": w.owner_key_id,
        "companies": companies, "url": w.url, "reason": reason.as_str(),
        "consecutive_failures": after.health.consecutive_failures,
        "last_status_code": after.health.last_status_code, "last_error": after.health.last_error,
        "disabled_at": at,
    })
    .to_string()
}

impl<P: DeliveryPorts> Deliverer<P> {
    /// After a success: end a failure streak (and a trip), or refresh `last_success_at` now
    /// and then. A success that ends a streak while deliveries are parked records a replay
    /// request in the same write, then queues the replay: if queueing fails, the request
    /// stays and a later batch queues it. A first-attempt success of a healthy webhook
    /// writes nothing here.
    pub(crate) async fn on_success(
        &self,
        stored: &StoredWebhook,
        health: &HealthRecord,
        at: &str,
        owner_companies: &[String],
    ) -> Result<(), DeliveryError> {
        let h = &health.health;
        let now = self.clock.now().unix_timestamp();
        let last_success = h.last_success_at.as_deref().and_then(parse_time);
        let write = after_success(h.consecutive_failures, health.probe.is_some(), health.recovering, last_success, now);
        if write == SuccessWrite::Nothing {
            return Ok(());
        }
        let id = &stored.webhook.id;
        let before = self.health.record_success(id, at, write == SuccessWrite::EndStreak).await?;
        if recovered(before.health.consecutive_failures, before.recovering) {
            info!(webhook_id = %id, "webhook recovered");
            let alert = operational_alert(stored, "recovered", at, None, owner_companies);
            self.operational(stored, "recovered", &alert).await;
        }
        if replay_after_success(before.health.consecutive_failures, before.parked_count) {
            info!(webhook_id = %id, parked = before.parked_count, "healthy again; replaying parked deliveries");
            self.queue_replay(id, at).await?;
        }
        Ok(())
    }

    /// Disables the webhook and publishes one alert (it stays pending, and is tried again
    /// with the next batch of the webhook, when it cannot be published now).
    pub(crate) async fn deactivate(
        &self,
        stored: &StoredWebhook,
        reason: DisabledReason,
        after: &HealthRecord,
        at: &str,
        owner_companies: &[String],
    ) -> Result<(), DeliveryError> {
        let alert = disabled_alert(stored, reason, after, at, owner_companies);
        let id = &stored.webhook.id;
        if !self.webhooks.deactivate(id, reason, &alert, at).await? {
            return Ok(());
        }
        warn!(webhook_id = %id, reason = reason.as_str(), "webhook deactivated");
        if !self.publish_alert(stored, &alert).await {
            warn!(webhook_id = %id, "alert pending; published with the webhook's next batch");
        }
        Ok(())
    }

    /// Publishes an operational alert of `kind`; one that cannot be published now is kept on
    /// the webhook's record and published with a later batch (at least once).
    pub(crate) async fn operational(&self, stored: &StoredWebhook, kind: &str, alert: &str) {
        let id = &stored.webhook.id;
        if let Err(e) = self.alerts.publish(alert, kind, &stored.webhook.owner_key_id).await {
            warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "could not publish the {kind} alert; kept");
            if let Err(e) = self.health.keep_alert(id, kind, alert).await {
                warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "could not keep the {kind} alert");
            }
        }
    }

    /// Publishes the operational alerts a webhook's record keeps, and forgets each published.
    pub(crate) async fn publish_kept(&self, stored: &StoredWebhook, record: &HealthRecord) {
        for (kind, alert) in &record.pending_alerts {
            if self.alerts.publish(alert, kind, &stored.webhook.owner_key_id).await.is_ok()
                && let Err(e) = self.health.forget_alert(&stored.webhook.id, kind, alert).await
            {
                warn!(error = %webhooks_aws::error_chain(&e), "could not forget a published alert");
            }
        }
    }

    /// Publishes a pending alert and clears it; `false` if it is still pending.
    pub(crate) async fn publish_alert(&self, stored: &StoredWebhook, alert: &str) -> bool {
        let stored_reason = stored.webhook.disabled_reason.map_or("failing", DisabledReason::as_str);
        let reason = serde_json::from_str::<serde_json::Value>(alert)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
            .unwrap_or_else(|| stored_reason.to_owned());
        if let Err(e) = self.alerts.publish(alert, &reason, &stored.webhook.owner_key_id).await {
            warn!(error = %webhooks_aws::error_chain(&e), "could not publish the alert; retried");
            return false;
        }
        self.webhooks.clear_alert(&stored.webhook.id, alert).await.is_ok()
    }
}
