//! Durable Object classes.

pub mod rate_limiter;
