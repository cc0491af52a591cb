//! Replay (SPEC §6): re-sending a webhook's parked deliveries a page at a time, oldest first;
//! re-sending logged events (a replay by time range, SPEC §10) a page at a time; removing a deleted webhook's (purge); and the work a batch's webhooks owe (a replay asked
//! for and not yet queued, a sweep of expired parked deliveries).

use std::collections::BTreeSet;

use futures_util::future::join;
use tracing::{info, warn};
use webhooks_aws::keys::replay_bound;
use webhooks_aws::parking::SWEEP_PAGE;
use webhooks_core::event::Event;
use webhooks_core::message::{Delivery, DeliveryQueueMessage, ParkSlot, Purge, Replay, Replayed, Resend};
use webhooks_core::model::DropReason;
use webhooks_core::ports::{
    Clock, DeliveryLog, DeliveryQueue, HealthStore, ParkedDelivery, ParkingStore, WebhookStore,
};
use webhooks_core::reliability::{expired, replay_continues};

use crate::health::parse_time;
use crate::parking::metric_drops;
use crate::{Deliverer, DeliveryError, DeliveryPorts, Loaded};

/// Parked deliveries re-sent per replay message: a page (payloads of up to 256 KiB each, one
/// queue batch per 10, one transaction per removal) finishes well within the function's
/// timeout.
pub const REPLAY_PAGE: i32 = 25;
/// Parked deliveries of a deleted webhook removed per purge message (keys only).
pub const PURGE_PAGE: i32 = 100;
/// A replay request older than this was not queued by the success that recorded it (the
/// send failed, or the function stopped): a later batch queues it.
const REPLAY_REQUEST_GRACE_SECONDS: i64 = 30;

/// The copy of a parked delivery a replay re-sends: the next generation with its original
/// match time (the same copy whichever replay makes it), and the slot it goes back to if it
/// has to be parked again.
pub fn resent(parked: &ParkedDelivery) -> DeliveryQueueMessage {
    DeliveryQueueMessage::Replayed(Replayed {
        delivery: parked.delivery.replayed(),
        slot: ParkSlot { sort_key: parked.sort_key.clone(), expires_at: parked.expires_at },
    })
}

/// The copy of a logged event a range replay re-sends: a new delivery (the replay's generation,
/// so fresh attempts) with the event's `webhook-id`, matched when the replay was asked for.
pub fn resent_event(page: &Resend, webhook_message_id: &str, event: Event) -> DeliveryQueueMessage {
    let logged = Delivery {
        delivery_id: String::new(),
        webhook_id: page.webhook_id.clone(),
        webhook_message_id: webhook_message_id.to_owned(),
        event,
        generation: 0,
        queued_at: 0,
        send_at_ms: None,
        owner_key_id: None,
    };
    DeliveryQueueMessage::Delivery(logged.next_generation(page.generation, page.queued_at))
}

impl<P: DeliveryPorts> Deliverer<P> {
    /// One page of a replay by time range: each event's payload, as the log keeps it, queued as
    /// a normal delivery (retries, parking, the webhook's state checked before each attempt).
    /// An event whose payload the log no longer keeps is skipped. A page handled twice queues
    /// the same deliveries (same ids): each is sent once.
    pub(crate) async fn resend(&self, page: &Resend) -> Result<(), DeliveryError> {
        let now_s = self.clock.now().unix_timestamp();
        let mut bodies = Vec::with_capacity(page.messages.len());
        for message in &page.messages {
            match self.log.kept_event(&page.webhook_id, message, now_s).await? {
                Some(event) => bodies.push(resent_event(page, message, event).to_json()),
                None => info!(webhook_message_id = %message, "payload no longer kept; not re-sent"),
            }
        }
        if !self.queue.send_all(&bodies).await.is_empty() {
            return Err(DeliveryError::Queue("the re-sent events"));
        }
        info!(resent = bodies.len(), asked = page.messages.len(), "range replay page done");
        Ok(())
    }

    /// One page of a replay: re-sends parked deliveries oldest first as new generations (fresh
    /// attempts, same `webhook-id`, original match time), each carrying its park slot; drops
    /// expired ones (counted); queues the next page. A replay covers what was parked before it
    /// started (`until`), and stops, leaving the rest parked, as soon as the webhook is
    /// tripped, disabled or deleted.
    pub(crate) async fn replay(&self, replay: &Replay) -> Result<(), DeliveryError> {
        let t = self.clock.now();
        let now_s = t.unix_timestamp();
        let id = &replay.webhook_id;
        let ids = BTreeSet::from([id.clone()]);
        let (webhooks, health) = join(self.webhooks.webhooks_by_ids(&ids), self.health.health_of(&ids)).await;
        let status = webhooks?.get(id).map(|w| w.webhook.status);
        let failures = health?.get(id).map_or(0, |h| h.health.consecutive_failures);
        if !replay_continues(status, failures, self.config.max_attempts) {
            info!(?status, consecutive_failures = failures, "replay stopped; the rest stays parked");
            return Ok(());
        }
        let until = replay.until.clone().unwrap_or_else(|| replay_bound(t));
        let (page, more) = self.parking.parked_page(id, replay.after.as_deref(), &until, REPLAY_PAGE).await?;
        let (expired_items, live): (Vec<_>, Vec<_>) = page.into_iter().partition(|p| expired(p.expires_at, now_s));
        let bodies: Vec<String> = live.iter().map(|p| resent(p).to_json()).collect();
        if !self.queue.send_all(&bodies).await.is_empty() {
            return Err(DeliveryError::Queue("the re-sent deliveries"));
        }
        // Removed only once re-queued (a crash in between queues the same copies again: sent
        // once, never zero times), and only the generation read: a copy of it that was parked
        // again in its slot meanwhile stays.
        for p in &live {
            self.parking.remove_parked(id, &p.sort_key, None, Some(p.delivery.generation)).await?;
        }
        let mut dropped = 0;
        for p in &expired_items {
            if self
                .parking
                .remove_parked(id, &p.sort_key, Some(DropReason::ParkExpired), Some(p.delivery.generation))
                .await?
            {
                dropped += 1;
            }
        }
        if dropped > 0 {
            metric_drops(DropReason::ParkExpired, dropped);
        }
        info!(resent = live.len(), expired = expired_items.len(), more, "replay page done");
        if more {
            let last = live.iter().chain(&expired_items).map(|p| &p.sort_key).max().cloned();
            let next = DeliveryQueueMessage::Replay(Replay { webhook_id: id.clone(), after: last, until: Some(until) });
            if !self.queue.send_all(&[next.to_json()]).await.is_empty() {
                return Err(DeliveryError::Queue("the next replay page"));
            }
        }
        Ok(())
    }

    /// Queues a replay of everything parked until now, then clears the request that asked
    /// for it (a crash in between queues it twice: re-sent twice, never lost).
    pub(crate) async fn queue_replay(&self, webhook_id: &str, requested_at: &str) -> Result<(), DeliveryError> {
        let replay = DeliveryQueueMessage::Replay(Replay {
            webhook_id: webhook_id.to_owned(),
            after: None,
            until: Some(replay_bound(self.clock.now())),
        });
        if !self.queue.send_all(&[replay.to_json()]).await.is_empty() {
            return Err(DeliveryError::Queue("the replay"));
        }
        self.health.clear_replay_request(webhook_id, requested_at).await?;
        Ok(())
    }

    /// One page of removing a deleted webhook's parked deliveries, counted as dropped.
    pub(crate) async fn purge(&self, purge: &Purge) -> Result<(), DeliveryError> {
        let (removed, more) = self.parking.purge_parked(&purge.webhook_id, PURGE_PAGE).await?;
        if removed > 0 {
            metric_drops(DropReason::WebhookDeleted, removed);
        }
        info!(webhook_id = %purge.webhook_id, removed, more, "parked deliveries of a deleted webhook removed");
        if more && !self.queue.send_all(&[DeliveryQueueMessage::Purge(purge.clone()).to_json()]).await.is_empty() {
            return Err(DeliveryError::Queue("the next purge page"));
        }
        Ok(())
    }

    /// Work the batch's webhooks owe, bounded per invocation: replays asked for by a recovery
    /// whose queueing failed (the request stays recorded until the replay is queued), and one
    /// sweep of expired parked deliveries. Failures here only postpone it to a later batch.
    pub(crate) async fn housekeeping(&self, loaded: &Loaded) {
        let now_s = self.clock.now().unix_timestamp();
        for (id, h) in &loaded.health {
            let Some(requested) = &h.replay_requested_at else { continue };
            let stale = parse_time(requested).is_none_or(|at| now_s - at >= REPLAY_REQUEST_GRACE_SECONDS);
            if stale
                && loaded.webhooks.contains_key(id)
                && let Err(e) = self.queue_replay(id, requested).await
            {
                warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "could not queue a requested replay; tried again later");
            }
        }
        let due = loaded
            .health
            .iter()
            .find(|(id, h)| h.park_sweep_at.is_some_and(|at| at <= now_s) && loaded.webhooks.contains_key(*id));
        if let Some((id, _)) = due {
            match self.parking.sweep_expired(id, now_s, SWEEP_PAGE).await {
                Ok(0) => {}
                Ok(n) => metric_drops(DropReason::ParkExpired, n),
                Err(e) => {
                    warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "sweep of expired parked deliveries failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use webhooks_aws::keys::now_ms;
    use webhooks_core::message::Delivery;
    use webhooks_core::reliability::parked_on_manual_disable;

    use super::*;

    fn parked(queued_at: i64) -> Result<ParkedDelivery, Box<dyn std::error::Error>> {
        let body = serde_json::json!({
            "specversion": "1.0", "id": "evt-1", "source": "app/companies/acme/projects/p1", "type": "TODO_CREATED",
            "companyid": "acme", "projectid": "p1", "data": {}
        });
        let event = webhooks_core::event::parse_ingest_body(&body.to_string(), OffsetDateTime::now_utc())?;
        let delivery = Delivery {
            delivery_id: "dlv_0".into(),
            webhook_id: "wh_1".into(),
            webhook_message_id: "msg_1".into(),
            event,
            generation: 0,
            queued_at,
            send_at_ms: None,
            owner_key_id: None,
        };
        Ok(ParkedDelivery { sort_key: "k".into(), delivery, expires_at: i64::MAX })
    }

    #[test]
    fn a_manual_disable_during_a_replay_parks_the_replayed_deliveries() -> Result<(), Box<dyn std::error::Error>> {
        // GIVEN a delivery matched an hour ago and parked
        let matched = now_ms() - 3_600_000;
        let p = parked(matched)?;
        // WHEN a replay re-sends it, and the webhook is disabled by hand right after
        let DeliveryQueueMessage::Replayed(Replayed { delivery: copy, slot }) = resent(&p) else {
            return Err("a replayed delivery".into());
        };
        assert_eq!(slot.sort_key, p.sort_key, "parked again in its original place");
        let disabled_at = now_ms() - 1;
        // THEN the copy is parked on the manual disable (it was matched before it), not dropped
        assert!(
            parked_on_manual_disable(copy.queued_at, Some(disabled_at)),
            "queued_at {} vs disabled {disabled_at}",
            copy.queued_at
        );
        // AND it keeps its webhook-id, with a fresh attempt budget
        assert_eq!(copy.webhook_message_id, p.delivery.webhook_message_id);
        assert_ne!(copy.delivery_id, p.delivery.delivery_id);
        Ok(())
    }
}
