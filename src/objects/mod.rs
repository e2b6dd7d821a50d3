//! Durable Object classes: exact rate limits and the per-session refresh guard.

pub mod rate_limiter;
pub mod session_guard;
