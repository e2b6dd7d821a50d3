//! Edge authentication service: a Cloudflare Worker that signs users up and in, issues
//! EdDSA-signed JWT access tokens with rotating refresh tokens, and publishes its keys as a
//! JWKS so apps verify tokens themselves.
//!
//! Layout: `domain` is pure logic (no `worker` types), `store` is the only place with SQL,
//! `http` is the edge (limits, headers, errors, auth), `routes` holds one thin handler file
//! per resource, `objects` the Durable Object classes.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod domain;
pub mod env;
pub mod error;
pub mod http;
pub mod mail;
pub mod objects;
pub mod routes;
pub mod runtime;
pub mod scheduled;
pub mod service;
pub mod store;

pub use objects::metrics_aggregator::MetricsAggregator;
pub use objects::rate_limiter::RateLimiter;
pub use objects::session_guard::SessionGuard;

use worker::{event, Context, Env, Response, Result, ScheduleContext, ScheduledEvent};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The runtime's request as it is: the edge reads what it needs in one call
/// (`http::glue`), and converts it to `worker`'s type only for a handler that reads it.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<Response> {
    routes::handle(req, env, ctx).await
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    scheduled::run(&env, &event.cron(), event.schedule()).await;
}
