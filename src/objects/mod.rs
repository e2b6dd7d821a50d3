//! Durable Object classes: exact rate limits, the per-session refresh guard and the metrics
//! aggregator.

pub mod budget;
pub mod metrics_aggregator;
pub mod rate_limiter;
pub mod session_guard;
