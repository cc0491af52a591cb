//! Retry timing (SPEC §6): the retry schedule, its jitter, `Retry-After`, and the delay before
//! the next attempt, expressed as an SQS visibility timeout (never a sleep).
//!
//! Pure functions: the caller supplies the random draw (`unit`) and the clock (`now`), so every
//! boundary is testable.

use std::time::Duration;

use time::OffsetDateTime;
use time::PrimitiveDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// The schedule used when `WEBHOOKS_RETRY_SCHEDULE` is unset (SPEC §6).
pub const DEFAULT_RETRY_SCHEDULE: &str = "30s,5m,30m,2h";
/// Shortest schedule entry: visibility timeouts are whole seconds.
pub const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest delay: SQS refuses a visibility timeout above 12 hours.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(12 * 60 * 60);
/// Jitter factors run from 0.8 up to (not including) 1.2, in millionths: ±20 % spreads the
/// retries of a burst of failures so they do not all come back at once.
const JITTER_MIN_PPM: u128 = 800_000;
const JITTER_SPAN_PPM: u128 = 400_000;
const MILLIS_PER_SECOND: u128 = 1_000;
const PER_MILLION: u128 = 1_000_000;

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE: &[BorrowedFormatItem<'static>] =
    format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");

/// RFC 850 date (obsolete, but recipients must read it), with its two-digit year already
/// widened to four digits, e.g. `Sunday, 06-Nov-1994 08:49:37 GMT`.
const RFC850_WIDENED: &[BorrowedFormatItem<'static>] =
    format_description!("[weekday], [day]-[month repr:short]-[year] [hour]:[minute]:[second] GMT");
/// ANSI C's asctime() format (obsolete, but recipients must read it), e.g.
/// `Sun Nov  6 08:49:37 1994`.
const ASCTIME: &[BorrowedFormatItem<'static>] =
    format_description!("[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]");
/// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past century.
const TWO_DIGIT_YEAR_HORIZON: i32 = 50;

/// The delays before attempts 2, 3, …: never empty, each between 1 s and 12 h.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    /// Parses a comma list of `<n>s`, `<n>m` or `<n>h` (e.g. `30s,5m,30m,2h`), whitespace
    /// around entries tolerated; every entry between 1 s and 12 h, at least one entry.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("the retry schedule needs at least one delay".to_owned());
        }
        let delays = s
            .split(',')
            .map(|entry| {
                let entry = entry.trim();
                let delay = parse_amount(entry, &[("s", 1), ("m", 60), ("h", 3600)])
                    .ok_or_else(|| format!("`{entry}` is not a delay like 30s, 5m or 2h"))?;
                if (MIN_RETRY_DELAY..=MAX_RETRY_DELAY).contains(&delay) {
                    Ok(delay)
                } else {
                    Err(format!("`{entry}` must be between 1s and 12h"))
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { delays })
    }

    /// The delays, in order.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The delay before attempt `next_attempt` (2 for the first retry), before jitter. When the
    /// schedule is shorter than the attempts, its last delay repeats; attempts below 2 get the
    /// first delay.
    pub fn base_delay(&self, next_attempt: u32) -> Duration {
        let index = usize::try_from(next_attempt.saturating_sub(2)).unwrap_or(usize::MAX);
        self.delays.get(index).or(self.delays.last()).copied().unwrap_or(MIN_RETRY_DELAY)
    }
}

impl Default for RetrySchedule {
    /// `30s,5m,30m,2h`.
    fn default() -> Self {
        Self {
            delays: vec![
                Duration::from_secs(30),
                Duration::from_secs(5 * 60),
                Duration::from_secs(30 * 60),
                Duration::from_secs(2 * 60 * 60),
            ],
        }
    }
}

/// Parses a positive duration written `<n>ms`, `<n>s`, `<n>m` or `<n>h` (surrounding whitespace
/// tolerated), as `WEBHOOKS_DELIVERY_TIMEOUT` is. Zero is refused: nothing finishes in no time.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let duration = parse_amount(s, &[("ms", 0), ("s", 1), ("m", 60), ("h", 3600)])
        .ok_or_else(|| format!("`{s}` is not a duration like 500ms, 10s, 5m or 1h"))?;
    if duration.is_zero() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(duration)
}

/// `<digits><unit>` with a unit from `units` (name, seconds per unit; 0 seconds means
/// milliseconds). `None` on any other shape or on overflow.
fn parse_amount(s: &str, units: &[(&str, u64)]) -> Option<Duration> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let (_, seconds) = units.iter().find(|(name, _)| *name == unit)?;
    match seconds {
        0 => Some(Duration::from_millis(n)),
        s => n.checked_mul(*s).map(Duration::from_secs),
    }
}

/// `base` with ±20 % jitter: `unit` in [0, 1) maps linearly onto factors [0.8, 1.2); the result
/// is rounded up to whole seconds and is at least 1 s. A `unit` outside [0, 1) (or NaN) is
/// clamped into it.
pub fn jittered(base: Duration, unit: f64) -> Duration {
    let unit = if unit.is_nan() { 0.0 } else { unit.clamp(0.0, 1.0) };
    // Integer arithmetic after the draw, so 30 s × 0.8 is exactly 24 s and not 24.000…01.
    let offset = ((unit * JITTER_SPAN_PPM as f64) as u128).min(JITTER_SPAN_PPM - 1);
    let factor = JITTER_MIN_PPM + offset;
    let scaled = base.as_millis().saturating_mul(factor);
    let seconds = scaled.div_ceil(MILLIS_PER_SECOND * PER_MILLION);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX)).max(MIN_RETRY_DELAY)
}

/// Reads a `Retry-After` value (RFC 9110 §10.2.3): delta-seconds, or an HTTP date in any of
/// the three forms RFC 9110 §5.6.7 requires recipients to read (IMF-fixdate, RFC 850,
/// asctime), taken relative to `now`. A date in the past gives zero; a fractional remainder is
/// rounded up to whole seconds. Anything else gives `None`, and the schedule alone decides.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: too many of them is a very long wait, which the caller clamps anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = http_date(value, now)?;
    let wait = date.assume_utc() - now;
    if wait.is_negative() {
        return Some(Duration::ZERO);
    }
    let whole = wait.whole_seconds().unsigned_abs();
    Some(Duration::from_secs(if wait.subsec_nanoseconds() > 0 { whole.saturating_add(1) } else { whole }))
}

/// An HTTP date in one of its three forms. The parser does not check the weekday against the
/// date, nor the exact padding: a re-format to the same text does.
fn http_date(value: &str, now: OffsetDateTime) -> Option<PrimitiveDateTime> {
    let exact = |text: &str, format: &[BorrowedFormatItem<'static>]| {
        PrimitiveDateTime::parse(text, format).ok().filter(|d| d.format(format).ok().as_deref() == Some(text))
    };
    exact(value, IMF_FIXDATE)
        .or_else(|| exact(&widen_rfc850_year(value, now)?, RFC850_WIDENED))
        .or_else(|| exact(value, ASCTIME))
}

/// `Sunday, 06-Nov-94 08:49:37 GMT` with its year in four digits: the most recent year ending
/// in those digits that is not more than 50 years after `now`.
fn widen_rfc850_year(value: &str, now: OffsetDateTime) -> Option<String> {
    let (weekday, rest) = value.split_once(", ")?;
    let (date, time_of_day) = rest.split_once(' ')?;
    let (day_month, yy) = date.rsplit_once('-')?;
    if yy.len() != 2 || !yy.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = yy.parse().ok()?;
    let this_year = now.year();
    let mut year = this_year - this_year.rem_euclid(100) + yy;
    if year > this_year + TWO_DIGIT_YEAR_HORIZON {
        year -= 100;
    }
    Some(format!("{weekday}, {day_month}-{year:04} {time_of_day}"))
}

/// SQS refuses a visibility timeout that ends more than 12 h after the message was received;
/// the receive happened somewhat before the handler saw it (the poller's batching window):
/// this much is kept in hand.
pub const RECEIPT_MARGIN: Duration = Duration::from_secs(60);

/// The visibility timeout to ask for now so that the retry comes back after `delay`, within
/// SQS's cap of 12 h counted from the receipt, `since_receipt` ago.
pub fn visibility_within_cap(delay: Duration, since_receipt: Duration) -> Duration {
    let left = MAX_RETRY_DELAY.saturating_sub(since_receipt).saturating_sub(RECEIPT_MARGIN);
    delay.min(left)
}

/// The visibility timeout before attempt `next_attempt`: the schedule's delay with jitter
/// (`unit` as in [`jittered`]) = d; a `Retry-After` (pass it only for 429 and 503) is honoured
/// within [d, 2d]; the result is whole seconds, at most 12 h (SQS's limit).
pub fn next_delay(schedule: &RetrySchedule, next_attempt: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
    let d = jittered(schedule.base_delay(next_attempt), unit);
    let delay = match retry_after {
        Some(wait) => ceil_to_seconds(wait).clamp(d, d.saturating_mul(2)),
        None => d,
    };
    delay.min(MAX_RETRY_DELAY)
}

/// A retention such as `WEBHOOKS_PARK_TTL` or `WEBHOOKS_LOG_TTL`: `<n>d`, or any duration
/// `parse_duration` takes.
pub fn parse_retention(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix('d') {
        Some(days) => match days.parse::<u64>() {
            Ok(d) if d >= 1 => Ok(Duration::from_secs(d * 86_400)),
            _ => Err(format!("{s:?} is not a number of days (e.g. 7d)")),
        },
        None => parse_duration(s),
    }
}

fn ceil_to_seconds(d: Duration) -> Duration {
    if d.subsec_nanos() == 0 { d } else { Duration::from_secs(d.as_secs().saturating_add(1)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_takes_days_or_durations() {
        assert_eq!(parse_retention("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_retention("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_retention("90m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_retention("0d").is_err());
        assert!(parse_retention("xd").is_err());
        assert!(parse_retention("").is_err());
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The largest f64 below 1.0: the top of the jitter draw.
    const TOP: f64 = 1.0 - f64::EPSILON / 2.0;

    #[test]
    fn schedule_parsing_table() {
        // (input, expected delays in seconds, or an error)
        let cases: Vec<(&str, Result<Vec<u64>, ()>)> = vec![
            ("30s,5m,30m,2h", Ok(vec![30, 300, 1800, 7200])),
            (" 30s , 5m,30m ,2h ", Ok(vec![30, 300, 1800, 7200])),
            ("1s", Ok(vec![1])),
            ("12h", Ok(vec![43_200])),
            ("720m", Ok(vec![43_200])),
            ("43200s", Ok(vec![43_200])),
            ("05m", Ok(vec![300])),
            ("0s", Err(())),
            ("43201s", Err(())),
            ("13h", Err(())),
            ("721m", Err(())),
            ("", Err(())),
            ("   ", Err(())),
            ("30s,", Err(())),
            ("30s,,5m", Err(())),
            (",30s", Err(())),
            ("30", Err(())),
            ("s", Err(())),
            ("30 s", Err(())),
            ("30S", Err(())),
            ("500ms", Err(())),
            ("1d", Err(())),
            ("-5s", Err(())),
            ("+5s", Err(())),
            ("1.5s", Err(())),
            ("99999999999999999999999s", Err(())),
            ("18446744073709551615h", Err(())),
        ];
        for (input, expected) in cases {
            // GIVEN a WEBHOOKS_RETRY_SCHEDULE value WHEN parsed THEN these delays or an error
            let got = RetrySchedule::parse(input)
                .map(|s| s.delays().iter().map(Duration::as_secs).collect::<Vec<_>>())
                .map_err(|_| ());
            assert_eq!(got, expected, "{input:?}");
        }
    }

    #[test]
    fn default_schedule_is_the_documented_one() -> TestResult {
        // GIVEN the documented default WHEN parsed THEN it equals Default
        assert_eq!(RetrySchedule::parse(DEFAULT_RETRY_SCHEDULE)?, RetrySchedule::default());
        Ok(())
    }

    #[test]
    fn base_delay_repeats_the_last_entry() -> TestResult {
        let default = RetrySchedule::default();
        let short = RetrySchedule::parse("10s,1m")?;
        // (schedule, next attempt, expected base delay)
        let cases = [
            (&default, 0, secs(30)),
            (&default, 1, secs(30)),
            (&default, 2, secs(30)),
            (&default, 3, secs(300)),
            (&default, 4, secs(1800)),
            (&default, 5, secs(7200)),
            (&default, 6, secs(7200)),
            (&default, u32::MAX, secs(7200)),
            (&short, 2, secs(10)),
            (&short, 3, secs(60)),
            (&short, 4, secs(60)),
            (&short, 5, secs(60)),
        ];
        for (schedule, attempt, expected) in cases {
            // GIVEN a schedule WHEN asked for the delay before an attempt THEN this one
            assert_eq!(schedule.base_delay(attempt), expected, "{schedule:?} attempt {attempt}");
        }
        Ok(())
    }

    #[test]
    fn duration_parsing_table() {
        // (input, expected, in milliseconds, or an error)
        let cases: Vec<(&str, Result<u128, ()>)> = vec![
            ("10s", Ok(10_000)),
            (" 10s ", Ok(10_000)),
            ("500ms", Ok(500)),
            ("1ms", Ok(1)),
            ("2m", Ok(120_000)),
            ("1h", Ok(3_600_000)),
            ("0s", Err(())),
            ("0ms", Err(())),
            ("10", Err(())),
            ("ms", Err(())),
            ("10 s", Err(())),
            ("1.5s", Err(())),
            ("-1s", Err(())),
            ("10sec", Err(())),
            ("", Err(())),
            ("18446744073709551615h", Err(())),
        ];
        for (input, expected) in cases {
            // GIVEN a WEBHOOKS_DELIVERY_TIMEOUT value WHEN parsed THEN this duration or an error
            assert_eq!(parse_duration(input).map(|d| d.as_millis()).map_err(|_| ()), expected, "{input:?}");
        }
    }

    #[test]
    fn jitter_extremes_and_rounding() {
        // (base, unit, expected)
        let cases = [
            (secs(30), 0.0, secs(24)), // exactly 0.8: no spurious rounding up
            (secs(30), 0.5, secs(30)), // the middle is the base
            (secs(30), TOP, secs(36)), // just below 1.2: 35.99… rounds up to 36
            (secs(10), 0.0, secs(8)),
            (secs(10), 0.25, secs(9)),      // 9.0 exactly
            (secs(10), 0.26, secs(10)),     // 9.04 rounds up
            (secs(1), 0.0, secs(1)),        // 0.8 s rounds up to 1 s
            (secs(1), TOP, secs(2)),        // 1.19… s rounds up to 2 s
            (secs(2), 0.0, secs(2)),        // 1.6 s rounds up
            (Duration::ZERO, 0.5, secs(1)), // never below 1 s
            (Duration::from_millis(100), 0.0, secs(1)),
            (secs(7200), 0.0, secs(5760)),
            (secs(7200), TOP, secs(8640)),
            (MAX_RETRY_DELAY, TOP, secs(51_840)), // jitter alone may exceed 12 h; next_delay caps
            (secs(30), -3.0, secs(24)),           // out-of-range draws are clamped
            (secs(30), 1.0, secs(36)),
            (secs(30), 7.0, secs(36)),
            (secs(30), f64::NAN, secs(24)),
        ];
        for (base, unit, expected) in cases {
            // GIVEN a base delay and a random draw WHEN jittered THEN whole seconds within ±20 %
            assert_eq!(jittered(base, unit), expected, "{base:?} × {unit}");
        }
    }

    #[test]
    fn jitter_stays_within_bounds_across_draws() {
        // GIVEN many draws over the schedule WHEN jittered THEN 0.8·base ≤ d < 1.2·base + 1 s
        for base in RetrySchedule::default().delays() {
            for step in 0..1000 {
                let d = jittered(*base, f64::from(step) / 1000.0);
                assert!(d.as_secs_f64() >= base.as_secs_f64() * 0.8, "{base:?} {step}");
                assert!(d.as_secs_f64() < base.as_secs_f64() * 1.2 + 1.0, "{base:?} {step}");
                assert_eq!(d.subsec_nanos(), 0);
            }
        }
    }

    fn at(unix: i64) -> Result<OffsetDateTime, Box<dyn std::error::Error>> {
        Ok(OffsetDateTime::from_unix_timestamp(unix)?)
    }

    #[test]
    fn retry_after_table() -> TestResult {
        // Sun, 06 Nov 1994 08:49:37 GMT
        let date = 784_111_777;
        let now = at(date - 120)?;
        let now_with_fraction = now + time::Duration::milliseconds(250);
        // (value, now, expected)
        let cases = [
            ("120", now, Some(secs(120))),
            (" 7 ", now, Some(secs(7))),
            ("0", now, Some(secs(0))),
            ("99999999999999999999999", now, Some(secs(u64::MAX))),
            ("Sun, 06 Nov 1994 08:49:37 GMT", now, Some(secs(120))),
            ("Sun, 06 Nov 1994 08:49:37 GMT", now_with_fraction, Some(secs(120))),
            ("Sun, 06 Nov 1994 08:49:37 GMT", at(date)?, Some(secs(0))),
            ("Sun, 06 Nov 1994 08:49:37 GMT", at(date + 60)?, Some(secs(0))),
            ("Mon, 06 Nov 1994 08:49:37 GMT", now, None), // wrong weekday
            ("Sunday, 06-Nov-94 08:49:37 GMT", now, Some(secs(120))), // RFC 850: recipients must read it
            ("Sun Nov  6 08:49:37 1994", now, Some(secs(120))), // asctime, likewise
            ("Sun Nov 06 08:49:37 1994", now, None),      // asctime pads the day with a space
            ("Sun, 06 Nov 1994 08:49:37 UTC", now, None),
            ("Sun, 6 Nov 1994 08:49:37 GMT", now, None),
            ("-5", now, None),
            ("1.5", now, None),
            ("", now, None),
            ("soon", now, None),
        ];
        for (value, now, expected) in cases {
            // GIVEN a Retry-After value WHEN read at `now` THEN this wait, or ignored
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
        Ok(())
    }

    #[test]
    fn next_delay_table() -> TestResult {
        let default = RetrySchedule::default();
        let long = RetrySchedule::parse("12h")?;
        let one = RetrySchedule::parse("1s")?;
        // (schedule, next attempt, unit, retry-after, expected)
        let cases = [
            (&default, 2, 0.5, None, secs(30)),
            (&default, 2, 0.0, None, secs(24)),
            (&default, 2, TOP, None, secs(36)),
            (&default, 5, 0.5, None, secs(7200)),
            (&default, 9, 0.5, None, secs(7200)), // schedule shorter than attempts
            (&default, 2, 0.5, Some(secs(45)), secs(45)), // within [d, 2d]: honoured
            (&default, 2, 0.5, Some(secs(5)), secs(30)), // below d: raised to d
            (&default, 2, 0.5, Some(secs(600)), secs(60)), // above 2d: lowered to 2d
            (&default, 2, 0.5, Some(Duration::ZERO), secs(30)),
            (&default, 2, 0.5, Some(Duration::from_millis(44_100)), secs(45)), // whole seconds
            (&default, 2, 0.5, Some(secs(u64::MAX)), secs(60)),
            (&default, 5, TOP, Some(secs(20_000)), secs(17_280)), // 2d = 17280 s
            (&long, 2, 0.5, None, MAX_RETRY_DELAY),
            (&long, 2, TOP, None, MAX_RETRY_DELAY), // +20 % capped at 12 h
            (&long, 2, 0.0, None, secs(34_560)),
            (&long, 2, 0.0, Some(secs(86_400)), MAX_RETRY_DELAY), // 2d beyond 12 h: capped
            (&one, 2, 0.0, None, secs(1)),
            (&one, 2, 0.0, Some(secs(3)), secs(2)),
        ];
        for (schedule, attempt, unit, retry_after, expected) in cases {
            // GIVEN a failed attempt WHEN the next delay is computed THEN this visibility timeout
            let got = next_delay(schedule, attempt, unit, retry_after);
            assert_eq!(got, expected, "{schedule:?} attempt {attempt} unit {unit} retry-after {retry_after:?}");
        }
        Ok(())
    }

    #[test]
    fn a_visibility_near_twelve_hours_counts_from_the_receipt() {
        // GIVEN a delay well below the cap THEN asked as is
        assert_eq!(visibility_within_cap(secs(30), secs(5)), secs(30));
        // GIVEN a delay of 12 h and a receive 5 s ago THEN what is left of the 12 h, with margin
        assert_eq!(visibility_within_cap(MAX_RETRY_DELAY, secs(5)), MAX_RETRY_DELAY - secs(5) - RECEIPT_MARGIN);
        assert_eq!(visibility_within_cap(secs(43_000), secs(200)), MAX_RETRY_DELAY - secs(200) - RECEIPT_MARGIN);
        // GIVEN a receipt older than the cap (cannot happen) THEN the shortest visibility
        assert_eq!(visibility_within_cap(MAX_RETRY_DELAY, MAX_RETRY_DELAY * 2), Duration::ZERO);
    }
}
