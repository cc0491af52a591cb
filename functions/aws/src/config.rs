//! Configuration from the environment, read once per execution environment.
//!
//! Resource names (tables, queues) come from the template; `WEBHOOKS_*` settings are the
//! product's tunables, documented in the README.

use std::env;

/// A required variable was missing or a setting could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable; unset and empty are the same.
pub fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.is_empty())
}

/// An optional variable parsed with `parse`, `default` when unset.
pub fn parsed<T>(
    name: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(v) => parse(&v).map_err(|reason| ConfigError::Invalid { name, reason }),
    }
}

/// `true`/`false` flags.
pub fn flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    parsed(name, default, |v| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    })
}
