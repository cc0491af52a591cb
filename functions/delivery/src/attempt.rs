//! One delivery of a batch, in order: admission (drop, park, probe or send), the attempt's
//! number, its claim, the signed POST, and what the attempt's outcome decides.

use std::time::Duration;

use futures_util::future::join_all;

use aws_lambda_events::event::sqs::SqsMessage;
use time::OffsetDateTime;
use tracing::{info, warn};
use webhooks_core::event::format_utc;
use webhooks_core::ids::random_unit;
use webhooks_core::message::{Delivery, ParkSlot};
use webhooks_core::payload::delivery_body;
use webhooks_core::ports::{
    AttemptStore, Clock, HealthRecord, HealthStore, ParkGuard, PortError, RetryScheduler, SecretStore, SignedRequest,
    WebhookSender,
};
use webhooks_core::rate_limit::{SlotUse, use_slot};
use webhooks_core::reliability::{
    Admission, AttemptRecord, AttemptResult, Attempted, ClaimRefused, MAX_DEFERRALS, NextStep, WebhookState, admit,
    after_attempt, after_refused_claim, attempt_number, deferral, receive_limit_near, starts_a_streak,
};
use webhooks_core::resources::log_status;
use webhooks_core::retry::visibility_within_cap;
use webhooks_core::signing::sha256_hex;

use crate::health::operational_alert;
use crate::pace::{Pace, now_ms};
use crate::parking::Parked;
use crate::{Deliverer, DeliveryError, DeliveryPorts, Disposition, Loaded, Receive};

/// A record whose step failed (nothing sent, or its outcome not yet recorded) comes back after
/// this long.
pub(crate) const STEP_RETRY: Duration = Duration::from_secs(2);
/// Time kept, after an attempt's timeout, for recording its outcome before the invocation's
/// deadline.
const RECORDING_RESERVE: Duration = Duration::from_secs(6);
/// A record handed back because its invocation had too little time left comes back after
/// this long.
const DEADLINE_RETRY: Duration = Duration::from_secs(1);
/// An attempt's claim outlives the request's timeout by this much.
const CLAIM_MARGIN_SECONDS: i64 = 30;
/// A probe keeps its slot this long past its next retry, in case that receive is late.
const PROBE_LEASE_MARGIN_SECONDS: i64 = 60;

/// The attempt a first receive makes.
const FIRST_ATTEMPT: u32 = 1;

/// What claiming an attempt answered: claimed, or refused with the attempt record as it is.
pub(crate) type ClaimAnswer = Result<Result<(), AttemptRecord>, PortError>;

/// What the batch prepared for one delivery before delivering it.
pub(crate) struct Prepared {
    /// Its send slot under its webhook's `rate_limit`.
    pub pace: Pace,
    /// For a first receive, the claim of attempt 1, sent together with the batch's reads.
    pub first_claim: Option<ClaimAnswer>,
}

/// How many times SQS has handed this message out, this receive included.
fn receive_count(record: &SqsMessage) -> u32 {
    record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// This receive's name in attempt claims: its receipt handle, so that an SDK retry of a claim
/// is still its own.
fn receive_name(record: &SqsMessage, d: &Delivery) -> String {
    sha256_hex(record.receipt_handle.as_deref().unwrap_or(&d.delivery_id))
}

/// Whether the attempt of this receive is known before anything is read: the first receive of
/// a delivery (not one back for its send slot) makes attempt 1.
pub(crate) fn first_receive(record: &SqsMessage, d: &Delivery) -> bool {
    receive_count(record) == 1 && d.send_at_ms.is_none()
}

impl<P: DeliveryPorts> Deliverer<P> {
    /// Delivers one record of a batch that read `loaded`. `unalerted`: its webhook's
    /// deactivation alert is still pending, so it is parked (it is disabled). A claim the
    /// batch `prepared` is freed again when the delivery does not come to be sent.
    pub(crate) async fn deliver(
        &self,
        receive: Receive<'_>,
        d: &Delivery,
        slot: Option<&ParkSlot>,
        loaded: &Loaded,
        unalerted: bool,
        prepared: Prepared,
    ) -> Disposition {
        let Prepared { pace, mut first_claim } = prepared;
        // A first receive knows already whether its delivery is done (delivered, or its
        // attempts used up and parked): a copy of it, as a fan-out repeated after a crash
        // queues, is then neither sent nor parked again (a parked copy would be sent on replay).
        if let Some(Ok(Err(record))) = &first_claim {
            let now_s = self.clock.now().unix_timestamp();
            if after_refused_claim(*record, FIRST_ATTEMPT, self.config.max_attempts, now_s) == ClaimRefused::Duplicate {
                info!("a copy of a delivery already done; nothing sent or parked");
                return Disposition::Done;
            }
        }
        let parked_unalerted = if unalerted {
            self.park(d, ParkGuard::WebhookDisabled, slot).await.map(|p| p == Parked::Kept)
        } else {
            Ok(false)
        };
        let result = match parked_unalerted {
            Ok(true) => Ok(Disposition::Done),
            Ok(false) => self.try_deliver(&receive, d, slot, loaded, pace, &mut first_claim).await,
            Err(e) => Err(e),
        };
        self.free_unused_claim(receive.record, d, first_claim).await;
        match result {
            Ok(disposition) => disposition,
            Err(e) => {
                // A conflict, a throttle, a service that did not answer: soon again, not after
                // the queue's whole visibility timeout.
                warn!(error = %webhooks_aws::error_chain(&e), "delivery step failed; retried");
                self.hand_back(&receive, STEP_RETRY).await;
                Disposition::HandBack
            }
        }
    }

    /// Claims attempt 1 of each first receive among `deliveries` at `now_s`, all at once (sent
    /// together with the batch's reads, they cost no round trip of their own); `None` for the
    /// others, which claim their attempt once they know its number.
    pub(crate) async fn first_claims<'a>(
        &self,
        deliveries: impl Iterator<Item = (&'a SqsMessage, &'a Delivery)>,
        now_s: i64,
    ) -> Vec<Option<ClaimAnswer>> {
        let until = self.claim_until(now_s);
        join_all(deliveries.map(|(record, d)| async move {
            if !first_receive(record, d) {
                return None;
            }
            let name = receive_name(record, d);
            Some(self.attempts.claim_attempt(&d.delivery_id, FIRST_ATTEMPT, now_s, until, &name).await)
        }))
        .await
    }

    /// Frees a claim of attempt 1 taken with the batch's reads that the delivery did not use
    /// (it was parked, dropped, held back or handed back unsent), so that its next receive
    /// can claim it. Best effort: a claim left behind only makes that receive wait for the
    /// claim's lease.
    pub(crate) async fn free_unused_claim(&self, record: &SqsMessage, d: &Delivery, claim: Option<ClaimAnswer>) {
        if let Some(Ok(Ok(()))) = claim
            && let Err(e) = self.attempts.release_claim(&d.delivery_id, FIRST_ATTEMPT, &receive_name(record, d)).await
        {
            warn!(error = %webhooks_aws::error_chain(&e), "could not free an unused attempt claim");
        }
    }

    /// Until when a claim made at `now_s` holds: the request's whole timeout and a margin.
    fn claim_until(&self, now_s: i64) -> i64 {
        now_s + self.config.timeout.as_secs() as i64 + CLAIM_MARGIN_SECONDS
    }

    async fn try_deliver(
        &self,
        receive: &Receive<'_>,
        d: &Delivery,
        slot: Option<&ParkSlot>,
        loaded: &Loaded,
        pace: Pace,
        first_claim: &mut Option<ClaimAnswer>,
    ) -> Result<Disposition, DeliveryError> {
        let stored = loaded.webhooks.get(&d.webhook_id);
        let owner_companies: &[String] =
            stored.and_then(|s| loaded.owners.get(&s.webhook.owner_key_id)).map_or(&[], |o| o.key.companies.as_slice());
        let health = loaded.health.get(&d.webhook_id).cloned().unwrap_or_default();
        let state = stored.map(|s| WebhookState {
            status: s.webhook.status,
            disabled_reason: s.webhook.disabled_reason,
            disabled_at_ms: s.disabled_at_ms,
            owner_holds_company: loaded
                .owners
                .get(&s.webhook.owner_key_id)
                .is_some_and(|o| o.key.holds(&d.event.company_id)),
            consecutive_failures: health.health.consecutive_failures,
        });
        let now_s = self.clock.now().unix_timestamp();
        let mut probe = false;
        match admit(state, d.queued_at, self.config.max_attempts) {
            Admission::Drop(reason) => {
                self.drop_delivery(d, reason, stored.is_some()).await?;
                return Ok(Disposition::Done);
            }
            Admission::Park(guard) => {
                if self.park(d, guard, slot).await? == Parked::Kept {
                    return Ok(Disposition::Done);
                }
            }
            Admission::Probe => {
                let until = now_s + self.config.timeout.as_secs() as i64 + PROBE_LEASE_MARGIN_SECONDS;
                probe = self.health.claim_probe(&d.webhook_id, &d.delivery_id, until, now_s).await?;
                if !probe && self.park(d, ParkGuard::Tripped(self.config.max_attempts), slot).await? == Parked::Kept {
                    return Ok(Disposition::Done);
                }
            }
            Admission::Send => {}
        }
        // Admission let it through, so the webhook exists.
        let Some(stored) = stored else { return Ok(Disposition::Done) };
        let send_at_ms = match pace {
            Pace::At(slot) => Some(slot),
            Pace::Free | Pace::Unavailable => None,
        };
        match pace.now(now_ms(&self.clock)) {
            None | Some(SlotUse::SendIn(_)) => {}
            Some(SlotUse::QueueFor(delay_seconds)) => {
                info!(delay_seconds, "held back by the webhook's rate limit; queued for its send slot");
                return Ok(Disposition::Wait { send_at_ms, delay_seconds: u32::try_from(delay_seconds).unwrap_or(0) });
            }
            Some(SlotUse::Missed) if pace == Pace::Unavailable => {
                self.hand_back(receive, STEP_RETRY).await;
                return Ok(Disposition::HandBack);
            }
            // Its slot passed while the batch was read: it takes a new one at once.
            Some(SlotUse::Missed) => return Ok(Disposition::Wait { send_at_ms: None, delay_seconds: 0 }),
        };

        // A delivery queued again for its send slot was received before, as another message.
        let receive_count = receive_count(receive.record);
        let earlier_receives = if d.send_at_ms.is_some() { receive_count.max(2) } else { receive_count };
        if receive_limit_near(receive_count, self.config.max_receive_count) {
            // Receives that made no attempt (throttles, crashes) used up the queue's redrive
            // budget: keep the delivery rather than let it reach the DLQ.
            self.park(d, ParkGuard::Always, slot).await?;
            return Ok(Disposition::Done);
        }
        let recorded = if earlier_receives > 1 { self.attempts.attempts(&d.delivery_id).await? } else { None };
        let attempt = attempt_number(earlier_receives, recorded.map(|(n, _)| n));
        let first_attempt_at = recorded.map_or(now_s, |(_, first)| first);
        if attempt > self.config.max_attempts {
            // Its last attempt was counted but the parking did not happen (a crash).
            self.park(d, ParkGuard::Always, slot).await?;
            return Ok(Disposition::Done);
        }

        let secrets = self.secrets.signing_secrets(&d.webhook_id, &stored.secrets, now_s).await?;
        let slot_wait =
            Duration::from_millis(send_at_ms.map_or(0, |slot| u64::try_from(slot - now_ms(&self.clock)).unwrap_or(0)));
        if !self.time_for_an_attempt(receive.deadline, slot_wait) {
            // Sent now, its outcome might not be recorded before the runtime stops the
            // invocation, and a 2xx not recorded is sent again: it waits for a receive with
            // time enough. No attempt is used.
            info!(attempt, "too close to the invocation's deadline to send; handed back");
            self.hand_back(receive, DEADLINE_RETRY).await;
            return Ok(Disposition::HandBack);
        }
        // Claimed before it is sent: a second receive of the same message sends nothing. A
        // first receive's claim went out with the batch's reads.
        let receive_name = receive_name(receive.record, d);
        let claimed = match first_claim.take() {
            Some(answer) if attempt == FIRST_ATTEMPT => answer?,
            other => {
                self.free_unused_claim(receive.record, d, other).await;
                let until = self.claim_until(now_s);
                self.attempts.claim_attempt(&d.delivery_id, attempt, now_s, until, &receive_name).await?
            }
        };
        if let Err(now_record) = claimed {
            return match after_refused_claim(now_record, attempt, self.config.max_attempts, now_s) {
                ClaimRefused::Duplicate => {
                    info!(attempt, "a second receive of a delivery already done; nothing sent");
                    Ok(Disposition::Done)
                }
                ClaimRefused::HandBack(wait) => {
                    info!(attempt, "attempt claimed by another receive; handed back, nothing sent");
                    self.hand_back(receive, wait).await;
                    Ok(Disposition::HandBack)
                }
            };
        }
        if let Some(slot) = send_at_ms {
            // Waited for here, after every read and the claim, so that the request leaves at
            // its slot; if the wait itself ran late (a starved process), the slot is given up
            // rather than crowd the next ones.
            let ahead = u64::try_from(slot - now_ms(&self.clock)).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ahead)).await;
            if use_slot(slot, now_ms(&self.clock)) == SlotUse::Missed {
                info!(attempt, "send slot missed while waiting for it; queued for a new one, nothing sent");
                self.attempts.release_claim(&d.delivery_id, attempt, &receive_name).await?;
                return Ok(Disposition::Wait { send_at_ms: None, delay_seconds: 0 });
            }
        }

        let outcome = self
            .sender
            .send(SignedRequest {
                url: &stored.webhook.url,
                headers: &stored.webhook.headers,
                webhook_message_id: &d.webhook_message_id,
                timestamp: now_s,
                body: delivery_body(&d.event, &stored.webhook.id),
                secrets: &secrets,
            })
            .await;
        let sent_at = self.clock.now();
        let at = format_utc(sent_at);
        let result = outcome.classify(sent_at);
        if result == AttemptResult::Succeeded {
            info!(attempt, status = outcome.status(), duration_ms = outcome.duration_ms, probe, "delivered");
            // After a 2xx nothing may cause a re-send: the bookkeeping is best effort.
            if let Err(e) = self.attempts.record_delivered(&d.delivery_id, now_s).await {
                warn!(error = %webhooks_aws::error_chain(&e), "could not record the delivery as done");
            }
            if let Err(e) = self.on_success(stored, &health, &at, owner_companies).await {
                warn!(error = %webhooks_aws::error_chain(&e), "could not record the success");
            }
            if self.config.log_successes
                && let Err(e) = self.log_attempt(d, attempt, log_status::SUCCEEDED, &outcome, &at, None).await
            {
                warn!(error = %webhooks_aws::error_chain(&e), "could not log the success");
            }
            return Ok(Disposition::Done);
        }

        if let Some(wait) = deferral(result)
            && self.attempts.defer(&d.delivery_id, attempt, &receive_name, MAX_DEFERRALS).await?
        {
            // The receiver asked to slow down: the same attempt again after what it asked, no
            // failure counted (SPEC §10).
            info!(attempt, wait_seconds = wait.as_secs(), "the receiver asked to slow down; deferred");
            let next_at = format_utc(self.clock.now() + wait);
            self.log_attempt(d, attempt, log_status::PENDING, &outcome, &at, Some(next_at)).await?;
            if probe {
                let until = now_s + wait.as_secs() as i64 + PROBE_LEASE_MARGIN_SECONDS;
                self.health.claim_probe(&d.webhook_id, &d.delivery_id, until, now_s).await?;
            }
            self.hand_back(receive, wait).await;
            return Ok(Disposition::HandBack);
        }
        warn!(
            attempt,
            status = outcome.status(),
            error = outcome.error_code(),
            duration_ms = outcome.duration_ms,
            "attempt failed"
        );
        let counted = self.attempts.record_attempt(&d.delivery_id, attempt, first_attempt_at, now_s).await?;
        let after = if counted {
            let failure = outcome.failure_text();
            let after = self.health.record_failure(&d.webhook_id, &at, outcome.status(), &failure).await?;
            if starts_a_streak(after.health.consecutive_failures) {
                let alert = operational_alert(stored, "failing", &at, Some(&failure), owner_companies);
                self.operational(stored, "failing", &alert).await;
            }
            after
        } else {
            health
        };
        let step = after_attempt(
            Attempted {
                result,
                attempt,
                max_attempts: self.config.max_attempts,
                success_since_first_attempt: success_since(&after, first_attempt_at),
                probe,
            },
            &self.config.schedule,
            random_unit().unwrap_or(0.5),
        );
        match step {
            NextStep::Delivered => Ok(Disposition::Done),
            NextStep::Retry { delay, renew_probe, .. } => {
                let next_at = format_utc(self.clock.now() + delay);
                self.log_attempt(d, attempt, log_status::PENDING, &outcome, &at, Some(next_at)).await?;
                if renew_probe {
                    let until = now_s + delay.as_secs() as i64 + PROBE_LEASE_MARGIN_SECONDS;
                    self.health.claim_probe(&d.webhook_id, &d.delivery_id, until, now_s).await?;
                }
                self.hand_back(receive, delay).await;
                Ok(Disposition::HandBack)
            }
            NextStep::Park { deactivate, release_probe } => {
                self.log_attempt(d, attempt, log_status::FAILED, &outcome, &at, None).await?;
                if let Some(reason) = deactivate {
                    // An alert that cannot be published stays pending (retried with the next
                    // batch); the delivery is parked all the same.
                    self.deactivate(stored, reason, &after, &at, owner_companies).await?;
                }
                if release_probe {
                    self.health.release_probe(&d.webhook_id, &d.delivery_id).await?;
                }
                self.park(d, ParkGuard::Always, slot).await?;
                Ok(Disposition::Done)
            }
        }
    }

    /// Whether an attempt started after `wait` ends, and its outcome is recorded, before
    /// `deadline`: the wait, the request's whole timeout and a reserve for the writes after it.
    fn time_for_an_attempt(&self, deadline: Option<OffsetDateTime>, wait: Duration) -> bool {
        deadline.is_none_or(|deadline| deadline - self.clock.now() >= wait + self.config.timeout + RECORDING_RESERVE)
    }

    /// Makes the received record visible again after `wait`, within SQS's cap of 12 h from
    /// the receipt (which happened before this invocation started).
    pub(crate) async fn hand_back(&self, receive: &Receive<'_>, wait: Duration) {
        let visibility = visibility_within_cap(wait, receive.started.elapsed());
        if let Some(handle) = receive.record.receipt_handle.as_deref()
            && let Err(e) = self.retries.retry_in(handle, visibility.as_secs()).await
        {
            // The queue's own visibility timeout applies instead: later, not lost.
            warn!(error = %webhooks_aws::error_chain(&e), "could not schedule the retry");
        }
    }
}

/// Whether the webhook had a success at or after the delivery's first attempt (Unix seconds).
fn success_since(record: &HealthRecord, first_attempt_at: i64) -> bool {
    record.health.last_success_at.as_deref().and_then(crate::health::parse_time).is_some_and(|s| s >= first_attempt_at)
}
