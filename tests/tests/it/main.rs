//! The integration tests, one binary: each module a part of the contract, run against the
//! local stack (the shared one `make test` starts, or private ones) and real receivers on
//! `127.0.0.1:0`. One binary links the helpers once instead of once per file.
//!
//! Filter by module: `cargo nextest run -p webhooks-tests -E 'test(/^ledger::/)'`.

mod api;
mod event_types;
mod filters;
mod idempotency;
mod ledger;
mod local_stack;
mod pipeline;
mod rate_limits;
mod reliability;
mod replay_range;
mod security;
mod signatures_v1a;
mod ssrf;
mod template;
