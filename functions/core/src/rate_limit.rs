//! Rate limits (SPEC §10): a webhook's `rate_limit` (requests per second to its URL, across
//! every execution environment) and the publish limit of `POST /v1/events` per key.
//!
//! A webhook's sends are spaced by a fixed interval, as the generic cell rate algorithm does:
//! the webhook's record keeps the time of its next free send slot, and a batch takes the
//! slots it needs in one conditional write ([`reserve`]). A delivery sends at its slot
//! ([`use_slot`]); one whose slot is further away than an invocation should wait is queued
//! again, delayed until its slot, carrying it (no receive, attempt or failure is used). A slot
//! missed by more than [`SLOT_LATENESS_MS`] is given up and a new one taken, so that late
//! sends never bunch up with punctual ones.
//!
//! Why the interval is 10 % longer than `1 s / rate`: a send happens up to
//! [`SLOT_LATENESS_MS`] after its slot, and the request travels with some jitter; with the
//! margin, no one-second window sees more than `rate` requests even then, while the rate
//! reached stays within SPEC's 10 % tolerance of the limit.

/// The most a webhook may be sent per second; the least is 1.
pub const MAX_RATE_LIMIT: u32 = 1000;

/// Margin on the interval between two sends, in per mille of `1 s / rate` (see module docs).
const SPACING_PER_MILLE: i64 = 1100;

/// A slot is used up to this long after its time; later, the delivery takes a new one. With
/// the network's jitter it must stay within the interval's margin (100 ms over `rate`
/// intervals): a send late by the whole margin would share a one-second window with `rate`
/// punctual ones.
pub const SLOT_LATENESS_MS: i64 = 50;

/// A delivery whose slot is at most this far away waits for it in the invocation (two Lambda
/// seconds cost less than a queue round trip and keep the pace exact); further away, it is
/// queued again, to come back between [`ARRIVE_EARLY_MS`] and this long before its slot.
pub const WAIT_IN_INVOCATION_MS: i64 = 2000;

/// A delivery queued for its slot comes back at least this long before it: room for the
/// queue's and the poller's own delays, so that it rarely misses its slot.
pub const ARRIVE_EARLY_MS: i64 = 1000;

/// SQS delays a message by at most 15 minutes: a slot further away takes several hops.
pub const MAX_QUEUE_DELAY_SECONDS: i64 = 900;

/// `a / b` rounded up, for `a >= 0` and `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Milliseconds between two sends to a webhook limited to `rate` requests per second.
pub fn interval_ms(rate: u32) -> i64 {
    let rate = i64::from(rate.clamp(1, MAX_RATE_LIMIT));
    // Rounded up: never closer than the margin says.
    ceil_div(1000 * SPACING_PER_MILLE, 1000 * rate)
}

/// Slots taken by one batch for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The slots' times (Unix milliseconds), in order, one per delivery asking.
    pub slots: Vec<i64>,
    /// The webhook's next free slot after these: what the conditional write stores.
    pub next_free_ms: i64,
}

/// Takes `count` consecutive slots for a webhook limited to `rate` whose next free slot is
/// `next_free_ms` (none yet: now is free), at `now_ms`. A slot in the past is not taken: the
/// first is never before now.
pub fn reserve(next_free_ms: Option<i64>, now_ms: i64, count: usize, rate: u32) -> Reservation {
    let interval = interval_ms(rate);
    let first = next_free_ms.map_or(now_ms, |n| n.max(now_ms));
    let slots: Vec<i64> = (0..count as i64).map(|i| first + i * interval).collect();
    Reservation { next_free_ms: first + count as i64 * interval, slots }
}

/// What a delivery holding a slot does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotUse {
    /// Send after waiting this many milliseconds (0: at once).
    SendIn(i64),
    /// Queue the delivery again, delayed by this many seconds, still holding its slot.
    QueueFor(i64),
    /// The slot passed too long ago: take a new one.
    Missed,
}

/// What to do at `now_ms` with the slot at `slot_ms`.
pub fn use_slot(slot_ms: i64, now_ms: i64) -> SlotUse {
    let ahead = slot_ms - now_ms;
    if ahead < -SLOT_LATENESS_MS {
        SlotUse::Missed
    } else if ahead <= WAIT_IN_INVOCATION_MS {
        SlotUse::SendIn(ahead.max(0))
    } else {
        // Whole seconds, rounded down: it comes back between 1 and 2 s before its slot and
        // waits the rest.
        SlotUse::QueueFor(((ahead - ARRIVE_EARLY_MS) / 1000).clamp(1, MAX_QUEUE_DELAY_SECONDS))
    }
}

/// Default of `WEBHOOKS_PUBLISH_RATE`: events per second one key may publish (SPEC §10).
pub const DEFAULT_PUBLISH_RATE: u32 = 200;

/// A key's publishing pace, as the generic cell rate algorithm keeps it: each event moves the
/// key's theoretical arrival time (`tat`, Unix microseconds) on by one interval, and a publish
/// is accepted while that time stays within [`PUBLISH_BURST_SECONDS`] of now: a key idle for a
/// while may send twice its rate at once, then its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishPace {
    /// Microseconds one event costs: `1 s / rate`.
    pub interval_us: i64,
}

/// How far ahead of now a key's pace may run: two seconds of its rate are a burst of twice it.
pub const PUBLISH_BURST_SECONDS: i64 = 2;

impl PublishPace {
    pub fn new(rate: u32) -> Self {
        Self { interval_us: ceil_div(1_000_000, i64::from(rate.max(1))) }
    }

    /// What `events` events cost (microseconds of pace).
    pub fn cost_us(&self, events: usize) -> i64 {
        self.interval_us.saturating_mul(events as i64)
    }

    /// The latest pace that still accepts a publish costing `cost_us` at `now_us`: the pace
    /// after it must not run more than the burst ahead of now. Below `now_us` when the publish
    /// is larger than any burst (it is never accepted).
    pub fn ceiling_us(&self, now_us: i64, cost_us: i64) -> i64 {
        now_us + PUBLISH_BURST_SECONDS * 1_000_000 - cost_us
    }

    /// Whole seconds (at least 1) until a publish costing `cost_us`, refused at `now_us` with
    /// the key's pace at `tat_us`, would be accepted: `Retry-After`.
    pub fn retry_after_seconds(&self, tat_us: i64, now_us: i64, cost_us: i64) -> u64 {
        let wait_us = tat_us.max(now_us) - self.ceiling_us(now_us, cost_us);
        u64::try_from(ceil_div(wait_us.max(0), 1_000_000)).unwrap_or(0).max(1)
    }
}

/// Whether a publish costing `cost_us` is accepted at `now_us` with the key's pace at `tat_us`
/// (none: never published), and the pace after it. What the store's conditional writes decide
/// in one step, stated once.
pub fn admit_publish(pace: PublishPace, tat_us: Option<i64>, now_us: i64, cost_us: i64) -> Option<i64> {
    let from = tat_us.map_or(now_us, |t| t.max(now_us));
    (from <= pace.ceiling_us(now_us, cost_us)).then_some(from + cost_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_keeps_a_ten_percent_margin() {
        assert_eq!(interval_ms(1), 1100);
        assert_eq!(interval_ms(5), 220);
        assert_eq!(interval_ms(1000), 2, "1.1 ms rounded up");
        assert_eq!(interval_ms(0), 1100, "clamped to the least rate");
    }

    #[test]
    fn a_first_reservation_starts_now() {
        // GIVEN a webhook never sent to, WHEN a batch takes 3 slots at 5/s
        let r = reserve(None, 10_000, 3, 5);
        // THEN they start now, 220 ms apart, and the next free slot follows them
        assert_eq!(r.slots, vec![10_000, 10_220, 10_440]);
        assert_eq!(r.next_free_ms, 10_660);
    }

    #[test]
    fn a_reservation_continues_after_the_last_one() {
        let r = reserve(Some(12_000), 10_000, 2, 5);
        assert_eq!(r.slots, vec![12_000, 12_220]);
        assert_eq!(r.next_free_ms, 12_440);
    }

    #[test]
    fn slots_left_unused_in_the_past_are_not_given_out() {
        // GIVEN the next free slot long past (the webhook was idle)
        let r = reserve(Some(1_000), 10_000, 1, 5);
        // THEN the slot is now, not a burst of catch-up slots
        assert_eq!(r.slots, vec![10_000]);
        assert_eq!(r.next_free_ms, 10_220);
    }

    #[test]
    fn no_one_second_window_holds_more_than_the_rate() {
        // GIVEN slots reserved by several batches, every other send up to the lateness late and
        // arriving up to 40 ms later than the punctual ones (the request's jitter)
        const JITTER_MS: i64 = 40;
        for rate in [1, 2, 5, 7, 10, 33, 100, 1000] {
            let mut next = None;
            let mut sends = Vec::new();
            for batch in 0..20 {
                let r = reserve(next, batch * 37, 10, rate);
                next = Some(r.next_free_ms);
                sends.extend(
                    r.slots
                        .iter()
                        .enumerate()
                        .map(|(i, s)| s + if i % 2 == 0 { SLOT_LATENESS_MS + JITTER_MS } else { 0 }),
                );
            }
            sends.sort_unstable();
            // THEN every window [t, t + 1 s) starting at a send holds at most `rate` sends
            for (i, start) in sends.iter().enumerate() {
                let within = sends[i..].iter().take_while(|s| **s < start + 1000).count();
                assert!(within <= rate as usize, "rate {rate}: {within} sends in the second from {start}");
            }
        }
    }

    #[test]
    fn a_slot_is_used_by_how_far_it_is() {
        assert_eq!(use_slot(10_000, 10_000), SlotUse::SendIn(0));
        assert_eq!(use_slot(10_300, 10_000), SlotUse::SendIn(300));
        assert_eq!(use_slot(12_000, 10_000), SlotUse::SendIn(2000));
        assert_eq!(use_slot(9_950, 10_000), SlotUse::SendIn(0), "a little late: still its slot");
        assert_eq!(use_slot(9_899, 10_000), SlotUse::Missed);
        assert_eq!(use_slot(12_001, 10_000), SlotUse::QueueFor(1), "back 1 to 2 s early");
        assert_eq!(use_slot(13_999, 10_000), SlotUse::QueueFor(2));
        assert_eq!(use_slot(14_000, 10_000), SlotUse::QueueFor(3));
        assert_eq!(use_slot(10_000 + 3_600_000, 10_000), SlotUse::QueueFor(900), "SQS's longest delay");
    }

    #[test]
    fn an_idle_key_may_publish_a_burst_of_twice_its_rate_then_its_rate() {
        // GIVEN a key limited to 200 events/s that never published
        let pace = PublishPace::new(200);
        let one = pace.cost_us(1);
        let mut tat = None;
        // WHEN it publishes one event at a time, all at once
        let mut accepted = 0;
        while let Some(next) = admit_publish(pace, tat, 0, one) {
            tat = Some(next);
            accepted += 1;
        }
        // THEN twice the rate pass, and the next is told to wait a second at most
        assert_eq!(accepted, 400);
        assert_eq!(pace.retry_after_seconds(tat.unwrap_or(0), 0, one), 1);
        // AND one second later, 200 more (its rate)
        let mut later = 0;
        while let Some(next) = admit_publish(pace, tat, 1_000_000, one) {
            tat = Some(next);
            later += 1;
        }
        assert_eq!(later, 200);
    }

    #[test]
    fn a_batch_counts_each_of_its_events() {
        let pace = PublishPace::new(5);
        // 10 events fit the burst of a key limited to 5/s; 11 never do
        assert_eq!(admit_publish(pace, None, 0, pace.cost_us(10)), Some(2_000_000));
        assert_eq!(admit_publish(pace, None, 0, pace.cost_us(11)), None);
        assert_eq!(admit_publish(pace, Some(1_000_000), 0, pace.cost_us(6)), None);
        assert_eq!(pace.retry_after_seconds(1_000_000, 0, pace.cost_us(6)), 1);
        assert_eq!(pace.retry_after_seconds(5_000_000, 0, pace.cost_us(1)), 4);
    }
}
