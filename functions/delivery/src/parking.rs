//! Parking (SPEC §6): a delivery that cannot be sent now is kept for a replay, one park at a
//! time per webhook; a delivery that is neither sent nor kept is dropped with a counted reason.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::info;
use webhooks_core::event::format_utc;
use webhooks_core::message::{Delivery, ParkSlot};
use webhooks_core::model::DropReason;
use webhooks_core::ports::{Clock, HealthStore, ParkGuard, ParkOutcome, ParkingStore};

use crate::{Deliverer, DeliveryError, DeliveryPorts};

/// What asking to park came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// Kept, or dropped for good (`park_full`, counted): the record is done.
    Kept,
    /// The reason to park no longer holds (the webhook was enabled or recovered): send it.
    Send,
}

/// One turn per webhook for parking, shared by the concurrent records of an environment.
///
/// Each park updates the webhook's parked counter in its transaction, and DynamoDB cancels
/// transactions that overlap on an item, so a batch parking ten deliveries of one webhook at
/// once would conflict with itself and retry.
#[derive(Debug, Clone, Default)]
pub struct ParkTurns(Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl ParkTurns {
    /// Waits for `webhook_id`'s turn; the turn ends when the guard is dropped.
    pub(crate) async fn take(&self, webhook_id: &str) -> ParkTurn {
        let turn = match self.0.lock() {
            Ok(mut turns) => turns.entry(webhook_id.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        ParkTurn { guard: Some(turn.lock_owned().await), turns: self.clone(), webhook_id: webhook_id.to_owned() }
    }

    /// Whether no webhook holds or waits for a turn.
    pub fn is_idle(&self) -> bool {
        self.0.lock().map(|t| t.is_empty()).unwrap_or(false)
    }
}

/// A webhook's turn to park; dropping it frees the turn (and forgets the webhook when no one
/// else waits).
pub(crate) struct ParkTurn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    turns: ParkTurns,
    webhook_id: String,
}

impl Drop for ParkTurn {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut turns) = self.turns.0.lock()
            && turns.get(&self.webhook_id).is_some_and(|t| Arc::strong_count(t) == 1)
        {
            turns.remove(&self.webhook_id);
        }
    }
}

impl<P: DeliveryPorts> Deliverer<P> {
    /// Parks `d` (a replayed copy back in its `slot`) while `guard` holds, and logs it.
    pub(crate) async fn park(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        slot: Option<&ParkSlot>,
    ) -> Result<Parked, DeliveryError> {
        let turn = self.park_turns.take(&d.webhook_id).await;
        let t = self.clock.now();
        let outcome = self
            .parking
            .park(d, guard, self.config.park_limit, t.unix_timestamp(), self.config.park_ttl.as_secs() as i64, slot)
            .await;
        drop(turn);
        match outcome? {
            ParkOutcome::Parked => {
                info!("delivery parked");
                self.log_parked(d, &format_utc(t)).await?;
                Ok(Parked::Kept)
            }
            ParkOutcome::Full => {
                self.drop_delivery(d, DropReason::ParkFull, true).await?;
                Ok(Parked::Kept)
            }
            ParkOutcome::Send => Ok(Parked::Send),
        }
    }

    /// Drops `d` for `reason`: a metric always, and the webhook's counter when it still has
    /// one (`counted`; a deleted webhook's counters are gone with it).
    pub(crate) async fn drop_delivery(
        &self,
        d: &Delivery,
        reason: DropReason,
        counted: bool,
    ) -> Result<(), DeliveryError> {
        metric_drop(reason);
        if counted {
            self.health.count_drop(&d.webhook_id, reason).await?;
        }
        Ok(())
    }
}

/// Drops counted together (a sweep, a purge): one metric line with their count.
pub(crate) fn metric_drops(reason: DropReason, count: u64) {
    webhooks_aws::metrics::dropped_deliveries(reason, count);
    info!(reason = reason.as_str(), count, "deliveries dropped");
}

/// One counted drop: a metric in Embedded Metric Format, and a log line saying which.
fn metric_drop(reason: DropReason) {
    webhooks_aws::metrics::dropped_delivery(reason);
    info!(reason = reason.as_str(), "delivery dropped");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn parks_of_one_webhook_take_turns_and_others_do_not_wait() {
        // GIVEN one webhook's turn taken
        let turns = ParkTurns::default();
        let first = turns.take("wh_a").await;
        // WHEN another park of it, and one of another webhook, ask for theirs
        let same = tokio::time::timeout(Duration::from_millis(50), turns.take("wh_a")).await;
        let other = tokio::time::timeout(Duration::from_millis(50), turns.take("wh_b")).await;
        // THEN the same webhook waits, the other does not
        assert!(same.is_err(), "a second park of one webhook ran alongside the first");
        assert!(other.is_ok());
        drop(other);
        // AND once the first is done the next goes, and nothing is kept afterwards
        drop(first);
        let next = tokio::time::timeout(Duration::from_millis(50), turns.take("wh_a")).await;
        assert!(next.is_ok());
        drop(next);
        assert!(turns.is_idle());
    }
}
