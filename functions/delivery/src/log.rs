//! The delivery log (SPEC §7): one entry per attempt and per parking, with the event's payload
//! (for redelivery on request), kept `WEBHOOKS_LOG_TTL`.

use webhooks_aws::delivery_log::LOGGED_RESPONSE_BYTES;
use webhooks_core::attempt::SendOutcome;
use webhooks_core::message::Delivery;
use webhooks_core::ports::{Clock, DeliveryLog};
use webhooks_core::resources::{LogEntry, log_status};

use crate::{Deliverer, DeliveryError, DeliveryPorts};

/// The entry of an attempt: a failure keeps the first KiB of the response body.
pub fn attempt_entry(
    d: &Delivery,
    attempt: u32,
    status: &str,
    outcome: &SendOutcome,
    at: &str,
    next_attempt_at: Option<String>,
) -> LogEntry {
    LogEntry {
        attempt: Some(attempt),
        status: status.into(),
        status_code: outcome.status(),
        error: outcome.error_code().map(str::to_owned),
        response_body: (status != log_status::SUCCEEDED).then(|| outcome.body_excerpt(LOGGED_RESPONSE_BYTES)).flatten(),
        duration_ms: Some(outcome.duration_ms),
        next_attempt_at,
        ..parked_entry(d, at)
    }
}

/// The entry of a parking.
pub fn parked_entry(d: &Delivery, at: &str) -> LogEntry {
    LogEntry {
        event_id: d.event.id.clone(),
        source: Some(d.event.source.clone()),
        webhook_message_id: d.webhook_message_id.clone(),
        event_type: d.event.event_type.clone(),
        attempt: None,
        status: log_status::PARKED.into(),
        status_code: None,
        error: None,
        response_body: None,
        duration_ms: None,
        attempted_at: at.to_owned(),
        next_attempt_at: None,
    }
}

impl<P: DeliveryPorts> Deliverer<P> {
    /// Logs attempt `attempt` of `d` with its outcome.
    pub(crate) async fn log_attempt(
        &self,
        d: &Delivery,
        attempt: u32,
        status: &str,
        outcome: &SendOutcome,
        at: &str,
        next_attempt_at: Option<String>,
    ) -> Result<(), DeliveryError> {
        self.write(d, &attempt_entry(d, attempt, status, outcome, at, next_attempt_at)).await
    }

    /// Logs the parking of `d`.
    pub(crate) async fn log_parked(&self, d: &Delivery, at: &str) -> Result<(), DeliveryError> {
        self.write(d, &parked_entry(d, at)).await
    }

    async fn write(&self, d: &Delivery, entry: &LogEntry) -> Result<(), DeliveryError> {
        let expires = self.clock.now().unix_timestamp() + self.config.log_ttl.as_secs() as i64;
        self.log.log(&d.webhook_id, &d.delivery_id, entry, Some(&d.event), expires).await?;
        Ok(())
    }
}
