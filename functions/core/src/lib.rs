//! Domain of the webhook service: the event catalog, CloudEvent validation, matching, signing,
//! retry and failure policy, input validation, queue message contracts and the ports (traits)
//! adapters implement.
//!
//! Must not depend on the AWS SDK, on Lambda, or on an HTTP client: every decision here is a
//! pure function, tested without any of them.

pub mod attempt;
pub mod catalog;
pub mod event;
pub mod filters;
pub mod ids;
pub mod log_query;
pub mod matching;
pub mod message;
pub mod model;
pub mod payload;
pub mod ports;
pub mod rate_limit;
pub mod reliability;
pub mod resources;
pub mod retry;
pub mod signing;
pub mod signing_keys;
pub mod ssrf;
pub mod validation;
pub mod wire;
