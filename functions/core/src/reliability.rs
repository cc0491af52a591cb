//! Retries, deactivation and parking (SPEC §6) as pure decisions: which attempt is this, what
//! happens after its outcome, when a delivery must be parked instead of sent or retried.
//!
//! Why a throttled or crashed receive can neither consume nor double-count an attempt: an
//! attempt is counted only by the conditional write `attempts_made = n` (expecting `n - 1`)
//! made after the POST's outcome is known. A receive that never sent (throttled, crashed,
//! could not read the webhook) writes nothing, so the next receive computes the same attempt
//! number again. Two receivers racing on one message (a visibility timeout that ran out) both
//! compute `n`; only one conditional write succeeds, so `n` is counted once. A crash between
//! the POST and the write repeats that POST with the same `webhook-id` — at least once, never
//! lost. The SQS receive count alone cannot do this: it also counts receives that sent nothing.

use std::time::Duration;

use crate::matching::is_tripped;
use crate::model::{DisabledReason, DropReason, WebhookStatus};
use crate::retry::{RetrySchedule, next_delay};

/// What the batch read of a delivery's webhook, as far as sending it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookState {
    pub status: WebhookStatus,
    pub disabled_reason: Option<DisabledReason>,
    /// When it was last disabled (Unix milliseconds).
    pub disabled_at_ms: Option<i64>,
    /// The webhook's owner key still exists and still holds the event's company (SPEC §4's
    /// live gate, checked again at delivery).
    pub owner_holds_company: bool,
    pub consecutive_failures: u32,
}

/// Why a delivery is being parked; the condition is checked in the same write as the park.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkGuard {
    /// Only while the webhook is disabled.
    WebhookDisabled,
    /// Only while the webhook has at least this many consecutive failures (tripped).
    Tripped(u32),
    /// Unconditionally (its attempts are used up, or the queue's receives are).
    Always,
}

/// What a receive does with a delivery before any attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Neither sent nor kept: counted as dropped for this reason (SPEC §6).
    Drop(DropReason),
    /// Kept for a later replay while the guard holds; sent when it no longer does (the
    /// webhook was enabled in between).
    Park(ParkGuard),
    /// The webhook is tripped: sent only as its probe (one at a time), else parked while it
    /// stays tripped.
    Probe,
    /// Sent.
    Send,
}

/// The decision before any attempt: a deleted webhook, a revoked owner and a delivery matched
/// after a manual disable are dropped; a disabled webhook's deliveries are parked (a replayed
/// copy keeps its original match time, so one matched before a manual disable is kept); a
/// tripped webhook lets one probe through.
pub fn admit(webhook: Option<WebhookState>, queued_at_ms: i64, max_attempts: u32) -> Admission {
    let Some(w) = webhook else { return Admission::Drop(DropReason::WebhookDeleted) };
    if !w.owner_holds_company {
        return Admission::Drop(DropReason::OwnerRevoked);
    }
    match (w.status, w.disabled_reason) {
        (WebhookStatus::Disabled, Some(DisabledReason::Manual))
            if !parked_on_manual_disable(queued_at_ms, w.disabled_at_ms) =>
        {
            Admission::Drop(DropReason::ManualDisabled)
        }
        (WebhookStatus::Disabled, _) => Admission::Park(ParkGuard::WebhookDisabled),
        (WebhookStatus::Active, _) if is_tripped(w.consecutive_failures, max_attempts) => Admission::Probe,
        (WebhookStatus::Active, _) => Admission::Send,
    }
}

/// The attempt a receive makes: the first receive of a message is attempt 1 with no read;
/// later receives continue from the attempts recorded for the delivery.
pub fn attempt_number(receive_count: u32, attempts_recorded: Option<u32>) -> u32 {
    if receive_count <= 1 { 1 } else { attempts_recorded.unwrap_or(0) + 1 }
}

/// Park instead of sending when SQS is about to move the message to the DLQ: a delivery that
/// kept being throttled must be kept, not left to the DLQ (which is for bugs and poison).
/// One receive of headroom is kept for the park itself to be retried.
pub fn receive_limit_near(receive_count: u32, max_receive_count: u32) -> bool {
    receive_count + 1 >= max_receive_count
}

/// What an attempt ended with, as far as the decision is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx within the timeout.
    Succeeded,
    /// `410 Gone`: the receiver says the endpoint is gone for good.
    Gone,
    /// A `429` with `Retry-After`: the receiver asks to slow down (SPEC §10). Deferred, up to
    /// [`MAX_DEFERRALS`] times per delivery, without counting as a failure; beyond that a
    /// failed attempt like any other.
    SlowDown { retry_after: Duration },
    /// Anything else: another status, a timeout, a refused address, a connection error.
    Failed {
        /// `Retry-After` of a 429 or 503, parsed.
        retry_after: Option<Duration>,
    },
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Done: delete the message.
    Delivered,
    /// Try again after `delay` (the message's new visibility); a probe keeps its slot until
    /// then.
    Retry { delay: Duration, next_attempt: u32, renew_probe: bool },
    /// Keep the delivery for a later replay; deactivate the webhook first when given, and
    /// free the probe slot this delivery held.
    Park { deactivate: Option<DisabledReason>, release_probe: bool },
}

/// An attempt made, as the decision after it sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempted {
    pub result: AttemptResult,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// Whether the webhook had any success since this delivery's first attempt. A delivery
    /// that used all its attempts deactivates the webhook only when it had none: a webhook
    /// that keeps succeeding for other events stays active, and this delivery is parked for
    /// the next replay.
    pub success_since_first_attempt: bool,
    /// The attempt was the probe of a tripped webhook.
    pub probe: bool,
}

/// The decision after an attempt; `jitter_unit` in [0, 1) spreads the retries.
pub fn after_attempt(a: Attempted, schedule: &RetrySchedule, jitter_unit: f64) -> NextStep {
    match a.result {
        AttemptResult::Succeeded => NextStep::Delivered,
        AttemptResult::Gone => NextStep::Park { deactivate: Some(DisabledReason::Gone), release_probe: a.probe },
        AttemptResult::Failed { .. } | AttemptResult::SlowDown { .. } if a.attempt >= a.max_attempts => {
            NextStep::Park {
                deactivate: (!a.success_since_first_attempt).then_some(DisabledReason::Failing),
                release_probe: a.probe,
            }
        }
        AttemptResult::SlowDown { retry_after } => NextStep::Retry {
            delay: next_delay(schedule, a.attempt + 1, jitter_unit, Some(retry_after)),
            next_attempt: a.attempt + 1,
            renew_probe: a.probe,
        },
        AttemptResult::Failed { retry_after } => NextStep::Retry {
            delay: next_delay(schedule, a.attempt + 1, jitter_unit, retry_after),
            next_attempt: a.attempt + 1,
            renew_probe: a.probe,
        },
    }
}

/// A delivery's receiver may ask to slow down (`429` with `Retry-After`) this many times before
/// the next such answer counts as a failed attempt (SPEC §10).
pub const MAX_DEFERRALS: u32 = 3;

/// How long an attempt answered "slow down" waits, if it may still be deferred: what the
/// receiver asked, in whole seconds, at least 1 s and at most SQS's 12 h. `None` for any other
/// result.
pub fn deferral(result: AttemptResult) -> Option<Duration> {
    match result {
        AttemptResult::SlowDown { retry_after } => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            Some(Duration::from_secs(seconds.clamp(1, MAX_VISIBILITY_SECONDS)))
        }
        _ => None,
    }
}

/// SQS's longest visibility timeout.
const MAX_VISIBILITY_SECONDS: u64 = 12 * 3600;

/// `last_success_at` is refreshed at most this often while a webhook is healthy: a
/// first-attempt success then writes only its log entry. After any failure the next success
/// always writes (it resets the streak), so deactivation decisions stay exact.
pub const LAST_SUCCESS_RESOLUTION_SECONDS: i64 = 60;

/// What a success writes on its webhook's health record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuccessWrite {
    /// Nothing: the webhook is healthy and `last_success_at` is recent.
    Nothing,
    /// `last_success_at` (and the probe slot freed, if one was held).
    Refresh,
    /// The streak ends; with deliveries parked, a replay is requested in the same write.
    EndStreak,
}

/// Whether a success ends a failure streak, or is the first since the webhook was enabled
/// again: the webhook recovered (`webhook.recovered`, SPEC §10), once.
pub fn recovered(failures_before: u32, recovering_before: bool) -> bool {
    failures_before > 0 || recovering_before
}

/// Whether a counted failure starts a streak (`webhook.failing`, SPEC §10): the record after
/// it holds one failure. The count is one atomic write, so exactly one failure sees 1.
pub fn starts_a_streak(failures_after: u32) -> bool {
    failures_after == 1
}

/// The write after a success at `now` (Unix seconds) of a webhook whose record is
/// `consecutive_failures`, a probe held or not, and `last_success_at` (Unix seconds). A
/// webhook `recovering` from a disable ends that state with its first success.
pub fn after_success(
    consecutive_failures: u32,
    probe_held: bool,
    recovering: bool,
    last_success_at: Option<i64>,
    now: i64,
) -> SuccessWrite {
    if consecutive_failures > 0 {
        SuccessWrite::EndStreak
    } else if probe_held || recovering || last_success_at.is_none_or(|t| now - t >= LAST_SUCCESS_RESOLUTION_SECONDS) {
        SuccessWrite::Refresh
    } else {
        SuccessWrite::Nothing
    }
}

/// Whether a parked delivery is past its keeping time (expiry is enforced by reads: DynamoDB
/// TTL deletes late, and the local emulator never does).
pub fn expired(expires_at: i64, now: i64) -> bool {
    expires_at <= now
}

/// Whether one more delivery may be parked for a webhook holding `parked` of at most `limit`.
pub fn may_park(parked: u64, limit: u64) -> bool {
    parked < limit
}

/// Why a park transaction (`[put the item, count it, check the webhook is disabled?]`) was
/// cancelled, read from its cancellation reason codes, one per action in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkCancelled {
    /// The counter's condition failed: the park limit is reached, or the webhook is no
    /// longer tripped. Only this can mean "full".
    LimitOrGuard,
    /// The webhook is not disabled any more: send the delivery instead.
    NotDisabled,
    /// The item is already in its slot (a re-park of a replayed delivery that was parked
    /// again by another receive): nothing to add, nothing to count.
    AlreadyParked,
    /// A conflict with a concurrent transaction, a throttle, or anything else: try again.
    /// Never read as full.
    Transient,
}

/// The code DynamoDB gives an action whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// Classifies a cancelled park transaction from its `CancellationReasons` codes.
pub fn park_cancelled(codes: &[Option<&str>]) -> ParkCancelled {
    let failed = |i: usize| codes.get(i).copied().flatten() == Some(CONDITION_FAILED);
    if failed(2) {
        ParkCancelled::NotDisabled
    } else if failed(0) {
        ParkCancelled::AlreadyParked
    } else if failed(1) {
        ParkCancelled::LimitOrGuard
    } else {
        ParkCancelled::Transient
    }
}

/// Whether a replay goes on with its next page: only while the webhook is active and not
/// tripped. A replay that stops leaves the rest parked for the next one (an `enable`, or the
/// webhook's next recovery).
pub fn replay_continues(status: Option<WebhookStatus>, consecutive_failures: u32, max_attempts: u32) -> bool {
    status == Some(WebhookStatus::Active) && consecutive_failures < max_attempts
}

/// Whether a success should re-send the webhook's parked deliveries: it ends a failure streak
/// (or a trip) and something is parked. A webhook that stays healthy replays nothing, so a
/// delivery that keeps failing is re-sent once per recovery, not in a loop.
pub fn replay_after_success(failures_before: u32, parked: u64) -> bool {
    failures_before > 0 && parked > 0
}

/// What a receive makes of a delivery whose webhook was disabled by hand at `disabled_at_ms`:
/// a delivery matched before the disable (`queued_at`, its original match time, also for a
/// replayed copy) is parked; one matched after it is dropped (`manual_disabled`).
pub fn parked_on_manual_disable(queued_at_ms: i64, disabled_at_ms: Option<i64>) -> bool {
    disabled_at_ms.is_some_and(|disabled| queued_at_ms < disabled)
}

/// The attempt record of a delivery, as far as claiming an attempt is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptRecord {
    /// Attempts whose outcome was recorded.
    pub attempts_made: u32,
    /// A receive already got a 2xx for this delivery.
    pub delivered: bool,
    /// The attempt a receive claimed (is sending), and until when (Unix seconds).
    pub claim: Option<(u32, i64)>,
}

/// What a receive does when it could not claim `attempt` (SQS handed the same message to two
/// receives, or a retry came back while the previous receive still runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefused {
    /// The delivery is done (delivered, or its attempts are used up and it was parked):
    /// delete this copy, send nothing.
    Duplicate,
    /// Another receive is sending it now, or already moved on: hand this copy back to SQS for
    /// this long, send nothing.
    HandBack(Duration),
}

/// Shortest hand-back: visibility timeouts are whole seconds.
const MIN_HAND_BACK: Duration = Duration::from_secs(1);

/// The decision of a receive whose claim of `attempt` failed, given the record as it is now.
pub fn after_refused_claim(record: AttemptRecord, attempt: u32, max_attempts: u32, now: i64) -> ClaimRefused {
    if record.delivered || record.attempts_made >= max_attempts {
        return ClaimRefused::Duplicate;
    }
    match record.claim {
        Some((claimed, until)) if claimed >= attempt && until > now => {
            ClaimRefused::HandBack(Duration::from_secs(u64::try_from(until - now).unwrap_or(0)).max(MIN_HAND_BACK))
        }
        _ => ClaimRefused::HandBack(MIN_HAND_BACK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> RetrySchedule {
        RetrySchedule::parse("30s,5m").unwrap_or_default()
    }

    fn attempted(result: AttemptResult, attempt: u32, max_attempts: u32, success_since: bool) -> Attempted {
        Attempted { result, attempt, max_attempts, success_since_first_attempt: success_since, probe: false }
    }

    fn active(consecutive_failures: u32) -> WebhookState {
        WebhookState {
            status: WebhookStatus::Active,
            disabled_reason: None,
            disabled_at_ms: None,
            owner_holds_company: true,
            consecutive_failures,
        }
    }

    fn disabled(reason: DisabledReason, at_ms: i64) -> WebhookState {
        WebhookState {
            status: WebhookStatus::Disabled,
            disabled_reason: Some(reason),
            disabled_at_ms: Some(at_ms),
            ..active(0)
        }
    }

    #[test]
    fn admission_drops_parks_probes_or_sends() {
        // GIVEN a deleted webhook, or an owner that lost the company THEN dropped with the reason
        assert_eq!(admit(None, 0, 5), Admission::Drop(DropReason::WebhookDeleted));
        let revoked = WebhookState { owner_holds_company: false, ..active(0) };
        assert_eq!(admit(Some(revoked), 0, 5), Admission::Drop(DropReason::OwnerRevoked));
        // AND a revoked owner wins over a disabled webhook: nothing of it is kept
        let revoked_disabled = WebhookState { owner_holds_company: false, ..disabled(DisabledReason::Failing, 9) };
        assert_eq!(admit(Some(revoked_disabled), 0, 5), Admission::Drop(DropReason::OwnerRevoked));
        // GIVEN a manual disable at t=2000 THEN what was matched before it is parked, after it dropped
        let manual = disabled(DisabledReason::Manual, 2_000);
        assert_eq!(admit(Some(manual), 1_999, 5), Admission::Park(ParkGuard::WebhookDisabled));
        assert_eq!(admit(Some(manual), 2_000, 5), Admission::Drop(DropReason::ManualDisabled));
        // GIVEN a deactivation (failing, gone) THEN parked whatever the match time
        for reason in [DisabledReason::Failing, DisabledReason::Gone] {
            assert_eq!(admit(Some(disabled(reason, 2_000)), 5_000, 5), Admission::Park(ParkGuard::WebhookDisabled));
        }
        // GIVEN an active webhook THEN sent below the trip, probed from it
        assert_eq!(admit(Some(active(4)), 0, 5), Admission::Send);
        assert_eq!(admit(Some(active(5)), 0, 5), Admission::Probe);
        assert_eq!(admit(Some(active(40)), 0, 5), Admission::Probe);
    }

    #[test]
    fn a_probe_keeps_its_slot_while_it_retries_and_frees_it_when_parked() {
        // GIVEN the probe of a tripped webhook
        let probe = |result, attempt| Attempted { probe: true, ..attempted(result, attempt, 5, false) };
        let failed = AttemptResult::Failed { retry_after: None };
        // WHEN it fails with attempts left THEN it keeps the slot until its retry
        assert!(matches!(
            after_attempt(probe(failed, 2), &schedule(), 0.5),
            NextStep::Retry { renew_probe: true, next_attempt: 3, .. }
        ));
        // WHEN it used its last attempt, or the receiver said gone THEN the slot is freed
        assert_eq!(
            after_attempt(probe(failed, 5), &schedule(), 0.5),
            NextStep::Park { deactivate: Some(DisabledReason::Failing), release_probe: true }
        );
        assert_eq!(
            after_attempt(probe(AttemptResult::Gone, 1), &schedule(), 0.5),
            NextStep::Park { deactivate: Some(DisabledReason::Gone), release_probe: true }
        );
    }

    #[test]
    fn slow_down_waits_what_was_asked_within_sqs_limits_and_then_counts_as_a_failure() {
        let slow = |s: u64, ms: u32| AttemptResult::SlowDown { retry_after: Duration::new(s, ms * 1_000_000) };
        assert_eq!(deferral(slow(50, 0)), Some(Duration::from_secs(50)));
        assert_eq!(deferral(slow(2, 300)), Some(Duration::from_secs(3)), "whole seconds, rounded up");
        assert_eq!(deferral(slow(0, 0)), Some(Duration::from_secs(1)));
        assert_eq!(deferral(slow(86_400, 0)), Some(Duration::from_secs(43_200)), "SQS's 12 h");
        assert_eq!(deferral(AttemptResult::Failed { retry_after: Some(Duration::from_secs(9)) }), None);
        // WHEN it may no longer be deferred THEN it is a failed attempt honouring Retry-After
        let step = after_attempt(attempted(slow(45, 0), 1, 5, false), &schedule(), 0.5);
        assert_eq!(step, NextStep::Retry { delay: Duration::from_secs(45), next_attempt: 2, renew_probe: false });
        let last = after_attempt(attempted(slow(45, 0), 5, 5, false), &schedule(), 0.5);
        assert_eq!(last, NextStep::Park { deactivate: Some(DisabledReason::Failing), release_probe: false });
    }

    #[test]
    fn a_streak_starts_once_and_a_recovery_is_told_once() {
        assert!(starts_a_streak(1));
        assert!(!starts_a_streak(2), "later failures of the streak");
        assert!(!starts_a_streak(0));
        assert!(recovered(3, false), "the success that ends a streak");
        assert!(recovered(0, true), "the first success after an enable");
        assert!(!recovered(0, false), "a healthy webhook's success");
    }

    #[test]
    fn a_success_writes_only_when_it_changes_something() {
        let now = 10_000;
        // GIVEN a streak THEN it ends (and may request a replay)
        assert_eq!(after_success(3, false, false, Some(now), now), SuccessWrite::EndStreak);
        // GIVEN a probe held, or last_success_at a minute old or unknown THEN refreshed
        assert_eq!(after_success(0, true, false, Some(now), now), SuccessWrite::Refresh);
        assert_eq!(after_success(0, false, true, Some(now), now), SuccessWrite::Refresh, "the first since an enable");
        assert_eq!(
            after_success(0, false, false, Some(now - LAST_SUCCESS_RESOLUTION_SECONDS), now),
            SuccessWrite::Refresh
        );
        assert_eq!(after_success(0, false, false, None, now), SuccessWrite::Refresh);
        // GIVEN a healthy webhook that succeeded recently THEN nothing is written
        assert_eq!(
            after_success(0, false, false, Some(now - LAST_SUCCESS_RESOLUTION_SECONDS + 1), now),
            SuccessWrite::Nothing
        );
    }

    #[test]
    fn first_receive_is_attempt_one_without_a_read() {
        // GIVEN a first receive THEN attempt 1, whatever is recorded
        assert_eq!(attempt_number(1, None), 1);
        assert_eq!(attempt_number(0, None), 1);
        // GIVEN later receives THEN recorded attempts + 1
        assert_eq!(attempt_number(2, Some(1)), 2);
        assert_eq!(attempt_number(7, Some(1)), 2, "throttled receives do not count");
        assert_eq!(attempt_number(3, None), 1, "nothing recorded: no attempt was made yet");
        assert_eq!(attempt_number(9, Some(4)), 5);
    }

    #[test]
    fn the_receive_limit_parks_one_receive_early() {
        assert!(!receive_limit_near(10, 12));
        assert!(receive_limit_near(11, 12));
        assert!(receive_limit_near(12, 12));
        assert!(!receive_limit_near(1, 12));
    }

    #[test]
    fn success_is_delivered_whatever_the_attempt() {
        for attempt in 1..=5 {
            assert_eq!(
                after_attempt(attempted(AttemptResult::Succeeded, attempt, 5, false), &schedule(), 0.5),
                NextStep::Delivered
            );
        }
    }

    #[test]
    fn gone_deactivates_at_once_on_any_attempt() {
        for attempt in 1..=5 {
            assert_eq!(
                after_attempt(attempted(AttemptResult::Gone, attempt, 5, true), &schedule(), 0.5),
                NextStep::Park { deactivate: Some(DisabledReason::Gone), release_probe: false }
            );
        }
    }

    #[test]
    fn failures_retry_on_the_schedule_until_the_last_attempt() {
        let failed = AttemptResult::Failed { retry_after: None };
        assert_eq!(
            after_attempt(attempted(failed, 1, 5, false), &schedule(), 0.5),
            NextStep::Retry { delay: Duration::from_secs(30), next_attempt: 2, renew_probe: false }
        );
        assert_eq!(
            after_attempt(attempted(failed, 2, 5, false), &schedule(), 0.5),
            NextStep::Retry { delay: Duration::from_secs(300), next_attempt: 3, renew_probe: false }
        );
        // The last delay repeats past the schedule's end.
        assert_eq!(
            after_attempt(attempted(failed, 4, 5, false), &schedule(), 0.5),
            NextStep::Retry { delay: Duration::from_secs(300), next_attempt: 5, renew_probe: false }
        );
    }

    #[test]
    fn retry_after_is_clamped_between_the_delay_and_twice_it() {
        let asked = |s| AttemptResult::Failed { retry_after: Some(Duration::from_secs(s)) };
        let delay = |r| match after_attempt(attempted(r, 1, 5, false), &schedule(), 0.5) {
            NextStep::Retry { delay, .. } => delay.as_secs(),
            other => panic!("{other:?}"),
        };
        assert_eq!(delay(asked(1)), 30);
        assert_eq!(delay(asked(45)), 45);
        assert_eq!(delay(asked(3600)), 60);
    }

    #[test]
    fn the_last_failed_attempt_parks_and_deactivates_only_without_success_in_between() {
        let failed = AttemptResult::Failed { retry_after: None };
        assert_eq!(
            after_attempt(attempted(failed, 5, 5, false), &schedule(), 0.5),
            NextStep::Park { deactivate: Some(DisabledReason::Failing), release_probe: false }
        );
        assert_eq!(
            after_attempt(attempted(failed, 5, 5, true), &schedule(), 0.5),
            NextStep::Park { deactivate: None, release_probe: false }
        );
        // An attempt beyond the maximum (a duplicate receive) is treated as the last one.
        assert_eq!(
            after_attempt(attempted(failed, 6, 5, true), &schedule(), 0.5),
            NextStep::Park { deactivate: None, release_probe: false }
        );
        // With a single attempt allowed, the first failure is the last.
        assert_eq!(
            after_attempt(attempted(failed, 1, 1, false), &schedule(), 0.5),
            NextStep::Park { deactivate: Some(DisabledReason::Failing), release_probe: false }
        );
    }

    #[test]
    fn expiry_and_the_park_limit_are_exact_at_their_boundaries() {
        assert!(expired(100, 100));
        assert!(!expired(101, 100));
        assert!(may_park(9_999, 10_000));
        assert!(!may_park(10_000, 10_000));
        assert!(!may_park(0, 0));
    }

    #[test]
    fn only_a_failed_limit_condition_means_the_park_is_full() {
        let none = Some("None");
        let ccf = Some("ConditionalCheckFailed");
        let conflict = Some("TransactionConflict");
        // GIVEN the counter's condition failed THEN full (or no longer tripped)
        assert_eq!(park_cancelled(&[none, ccf]), ParkCancelled::LimitOrGuard);
        assert_eq!(park_cancelled(&[none, ccf, none]), ParkCancelled::LimitOrGuard);
        // GIVEN the disabled check failed THEN send
        assert_eq!(park_cancelled(&[none, none, ccf]), ParkCancelled::NotDisabled);
        assert_eq!(park_cancelled(&[none, ccf, ccf]), ParkCancelled::NotDisabled);
        // GIVEN the slot is taken THEN already parked
        assert_eq!(park_cancelled(&[ccf, none]), ParkCancelled::AlreadyParked);
        // GIVEN a conflict or a throttle THEN retried, never full
        assert_eq!(park_cancelled(&[none, conflict]), ParkCancelled::Transient);
        assert_eq!(park_cancelled(&[conflict, none, none]), ParkCancelled::Transient);
        assert_eq!(park_cancelled(&[Some("ThrottlingError"), Some("ThrottlingError")]), ParkCancelled::Transient);
        assert_eq!(park_cancelled(&[]), ParkCancelled::Transient);
    }

    #[test]
    fn a_replay_stops_as_soon_as_the_webhook_is_tripped_or_disabled() {
        assert!(replay_continues(Some(WebhookStatus::Active), 0, 5));
        assert!(replay_continues(Some(WebhookStatus::Active), 4, 5));
        assert!(!replay_continues(Some(WebhookStatus::Active), 5, 5), "tripped");
        assert!(!replay_continues(Some(WebhookStatus::Disabled), 0, 5));
        assert!(!replay_continues(None, 0, 5), "deleted");
    }

    #[test]
    fn a_recovery_replays_what_is_parked() {
        assert!(replay_after_success(1, 3));
        assert!(replay_after_success(5, 1));
        assert!(!replay_after_success(0, 3), "a healthy webhook does not replay on every success");
        assert!(!replay_after_success(4, 0));
    }

    #[test]
    fn a_manual_disable_parks_what_was_matched_before_it() {
        assert!(parked_on_manual_disable(1_000, Some(2_000)));
        assert!(!parked_on_manual_disable(2_000, Some(2_000)));
        assert!(!parked_on_manual_disable(3_000, Some(2_000)));
        assert!(!parked_on_manual_disable(1_000, None));
    }

    #[test]
    fn a_refused_claim_sends_nothing() {
        let record = |attempts_made, delivered, claim| AttemptRecord { attempts_made, delivered, claim };
        // GIVEN the first receive already delivered THEN the second is a duplicate
        assert_eq!(after_refused_claim(record(0, true, Some((1, 90))), 1, 5, 100), ClaimRefused::Duplicate);
        // GIVEN the attempts are used up THEN a duplicate
        assert_eq!(after_refused_claim(record(5, false, None), 5, 5, 100), ClaimRefused::Duplicate);
        // GIVEN another receive is sending the same attempt THEN handed back until its claim ends
        assert_eq!(
            after_refused_claim(record(0, false, Some((1, 130))), 1, 5, 100),
            ClaimRefused::HandBack(Duration::from_secs(30))
        );
        // GIVEN the attempt was already counted by another receive THEN handed back briefly
        assert_eq!(
            after_refused_claim(record(2, false, Some((2, 90))), 2, 5, 100),
            ClaimRefused::HandBack(Duration::from_secs(1))
        );
        assert_eq!(
            after_refused_claim(record(1, false, Some((1, 100))), 1, 5, 100),
            ClaimRefused::HandBack(Duration::from_secs(1))
        );
    }
}
