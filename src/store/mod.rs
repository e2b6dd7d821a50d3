//! Storage: the traits the service is written against (`traits`), their implementation on
//! Cloudflare's bindings (`d1` for the tables, with KV for revocations and login failures
//! and the Durable Object clients beside it), an in-memory one for native tests, and the
//! one outside HTTP API (Have I Been Pwned). The only place that writes SQL.

pub mod backend;
pub mod bindings;
pub mod d1;
pub mod error;
pub mod hibp;
pub mod login_failures;
#[cfg(test)]
pub mod memory;
pub mod metrics_aggregator;
pub mod metrics_batch;
pub mod postgres;
pub mod provider_http;
pub mod rate_limit;
pub mod reply;
pub mod revocation;
pub mod session_guard;
pub mod sign_in_method;
pub mod traits;
