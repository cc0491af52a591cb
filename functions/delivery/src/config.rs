//! Settings of delivery, read once per execution environment, and the constants they come
//! with.

use std::time::Duration;

use webhooks_aws::config::{ConfigError, flag, parsed};
use webhooks_core::retry::{RetrySchedule, parse_duration, parse_retention};

/// Default of `WEBHOOKS_MAX_ATTEMPTS` (SPEC §6).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default of `WEBHOOKS_DELIVERY_TIMEOUT` (SPEC §5).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The template's default `MaxReceiveCount`, used when `MAX_RECEIVE_COUNT` is not given.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 12;

/// Settings of delivery.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts per delivery (`WEBHOOKS_MAX_ATTEMPTS`, 1–10).
    pub max_attempts: u32,
    /// Delays between attempts (`WEBHOOKS_RETRY_SCHEDULE`).
    pub schedule: RetrySchedule,
    /// The whole request and response (`WEBHOOKS_DELIVERY_TIMEOUT`).
    pub timeout: Duration,
    /// The delivery queue's `maxReceiveCount` (`MAX_RECEIVE_COUNT`).
    pub max_receive_count: u32,
    /// Parked deliveries kept per webhook (`WEBHOOKS_PARK_LIMIT`).
    pub park_limit: u64,
    /// How long a parked delivery is kept (`WEBHOOKS_PARK_TTL`).
    pub park_ttl: Duration,
    /// How long log entries are kept (`WEBHOOKS_LOG_TTL`).
    pub log_ttl: Duration,
    /// Whether successes are logged (`WEBHOOKS_LOG_SUCCESSES`).
    pub log_successes: bool,
}

impl Default for DeliveryConfig {
    /// The documented defaults (README, configuration).
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            schedule: RetrySchedule::default(),
            timeout: DEFAULT_DELIVERY_TIMEOUT,
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            park_limit: 10_000,
            park_ttl: Duration::from_secs(7 * 86_400),
            log_ttl: Duration::from_secs(3 * 86_400),
            log_successes: true,
        }
    }
}

impl DeliveryConfig {
    /// The settings from the environment, each defaulting as documented.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let number = |v: &str| v.parse::<u64>().map_err(|_| "expected a whole number".to_owned());
        Ok(Self {
            max_attempts: parsed("WEBHOOKS_MAX_ATTEMPTS", defaults.max_attempts, |v| match v.parse::<u32>() {
                Ok(n) if (1..=10).contains(&n) => Ok(n),
                _ => Err("expected a whole number from 1 to 10".to_owned()),
            })?,
            schedule: parsed("WEBHOOKS_RETRY_SCHEDULE", defaults.schedule, RetrySchedule::parse)?,
            timeout: parsed("WEBHOOKS_DELIVERY_TIMEOUT", defaults.timeout, parse_duration)?,
            max_receive_count: parsed("MAX_RECEIVE_COUNT", defaults.max_receive_count, |v| {
                number(v).and_then(|n| u32::try_from(n).map_err(|e| e.to_string()))
            })?,
            park_limit: parsed("WEBHOOKS_PARK_LIMIT", defaults.park_limit, number)?,
            park_ttl: parsed("WEBHOOKS_PARK_TTL", defaults.park_ttl, parse_retention)?,
            log_ttl: parsed("WEBHOOKS_LOG_TTL", defaults.log_ttl, parse_retention)?,
            log_successes: flag("WEBHOOKS_LOG_SUCCESSES", defaults.log_successes)?,
        })
    }
}
