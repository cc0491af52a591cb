//! Send slots under a webhook's `rate_limit` (SPEC §10; the rule: `webhooks_core::rate_limit`).
//!
//! A batch takes the slots its deliveries need, per webhook, in one conditional write on the
//! webhook's health record (read with the batch, so usually no extra read). A delivery sends
//! at its slot, waiting for it when it is near; one further away is queued again as a new
//! message, delayed until just before its slot and carrying it: waiting costs no receive (the
//! queue's redrive budget is for failures), no attempt and no failure.

use std::collections::HashMap;

use tracing::{info, warn};
use webhooks_core::message::Delivery;
use webhooks_core::model::WebhookStatus;
use webhooks_core::ports::{Clock, DeliveryQueue, HealthStore, PortError};
use webhooks_core::rate_limit::{SlotUse, reserve, use_slot};

use crate::attempt::STEP_RETRY;
use crate::{Deliverer, DeliveryPorts, Loaded, Receive};

/// Another execution environment took slots of the same webhook between the batch's read and
/// its write: read again and retry this many times before handing the deliveries back.
const SLOT_RACE_RETRIES: usize = 5;

/// What a delivery of the batch may do under its webhook's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// No limit (or nothing to send: a disabled or deleted webhook is parked or dropped).
    Free,
    /// It holds the send slot at this time (Unix milliseconds).
    At(i64),
    /// No slot could be taken (the store failed or was contended throughout): handed back.
    Unavailable,
}

impl Pace {
    /// What to do now with this pace: `None` to send at once.
    pub(crate) fn now(self, now_ms: i64) -> Option<SlotUse> {
        match self {
            Pace::Free => None,
            Pace::At(slot) => Some(use_slot(slot, now_ms)),
            Pace::Unavailable => Some(SlotUse::Missed),
        }
    }
}

pub(crate) fn now_ms<C: Clock>(clock: &C) -> i64 {
    i64::try_from(clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl<P: DeliveryPorts> Deliverer<P> {
    /// The pace of each delivery, in order: a slot it carries and may still use, or one taken
    /// now with the others of its webhook in the batch.
    pub(crate) async fn send_slots<'a>(
        &self,
        deliveries: impl Iterator<Item = &'a Delivery>,
        loaded: &Loaded,
    ) -> Vec<Pace> {
        let now = now_ms(&self.clock);
        let mut paces = Vec::new();
        // Deliveries needing a slot, by webhook: their positions in `paces`.
        let mut wanting: HashMap<&str, Vec<usize>> = HashMap::new();
        for d in deliveries {
            let limited = loaded
                .webhooks
                .get(&d.webhook_id)
                .filter(|w| w.webhook.status == WebhookStatus::Active)
                .and_then(|w| w.webhook.rate_limit);
            let pace = match (limited, d.send_at_ms) {
                (None, _) => Pace::Free,
                (Some(_), Some(slot)) if use_slot(slot, now) != SlotUse::Missed => Pace::At(slot),
                (Some(_), carried) => {
                    if let Some(slot) = carried {
                        info!(webhook_id = %d.webhook_id, late_ms = now - slot, "back after its send slot; takes a new one");
                    }
                    wanting.entry(d.webhook_id.as_str()).or_default().push(paces.len());
                    Pace::Unavailable
                }
            };
            paces.push(pace);
        }
        for (id, positions) in wanting {
            let Some(rate) = loaded.webhooks.get(id).and_then(|w| w.webhook.rate_limit) else { continue };
            let seen = loaded.health.get(id).and_then(|h| h.next_send_ms);
            match self.take_slots(id, rate, seen, positions.len()).await {
                Ok(slots) => {
                    for (position, slot) in positions.into_iter().zip(slots) {
                        paces[position] = Pace::At(slot);
                    }
                }
                Err(e) => {
                    warn!(webhook_id = %id, error = %webhooks_aws::error_chain(&e), "could not take send slots; handed back");
                }
            }
        }
        paces
    }

    /// `count` consecutive send slots of webhook `id`, limited to `rate`, whose next free slot
    /// was read as `seen`.
    async fn take_slots(
        &self,
        id: &str,
        rate: u32,
        mut seen: Option<i64>,
        count: usize,
    ) -> Result<Vec<i64>, PortError> {
        for _ in 0..SLOT_RACE_RETRIES {
            let taken = reserve(seen, now_ms(&self.clock), count, rate);
            if self.health.move_next_send(id, seen, taken.next_free_ms).await? {
                return Ok(taken.slots);
            }
            let ids = std::iter::once(id.to_owned()).collect();
            seen = self.health.health_of(&ids).await?.get(id).and_then(|h| h.next_send_ms);
        }
        Err(PortError::unavailable("UpdateItem", "send slots contended by other execution environments throughout"))
    }

    /// Queues again the deliveries waiting for their slots (`(receive, body, delay)`); returns
    /// the records to hand back, those that could not be queued (they come back soon and try
    /// again: nothing is lost).
    pub(crate) async fn queue_waiting(&self, waiting: &[(Receive<'_>, String, u32)]) -> Vec<String> {
        if waiting.is_empty() {
            return Vec::new();
        }
        let messages: Vec<(String, u32)> = waiting.iter().map(|(_, body, delay)| (body.clone(), *delay)).collect();
        let mut failed = Vec::new();
        for i in self.queue.send_later(&messages).await {
            if let Some((receive, _, _)) = waiting.get(i) {
                warn!("could not queue a delivery again for its send slot; handed back");
                self.hand_back(receive, STEP_RETRY).await;
                failed.push(receive.record.message_id.clone().unwrap_or_default());
            }
        }
        failed
    }
}
