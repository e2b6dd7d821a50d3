//! Client of the `RateLimiter` Durable Object.
//!
//! Keys are `route:dimension:digest` (e.g. `login:ip:<keyed digest of 203.0.113.9>`); each key
//! is its own object.
//! When the object cannot be reached the request is refused with 503: a limiter that fails
//! open would switch itself off under exactly the load it exists for.

use crate::config::RateLimit;
use crate::domain::rate_limit::Decision;
use crate::store::error::StoreError;
use crate::store::reply;
use worker::{Env, Method, Request, RequestInit};

/// The Durable Object binding's name in `wrangler.toml`.
pub const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";

fn unavailable(error: worker::Error) -> StoreError {
    StoreError::unavailable("Rate limiter", error)
}

/// Count one request against `key` under `budget`.
pub async fn check(env: &Env, key: &str, budget: RateLimit) -> Result<Decision, StoreError> {
    let namespace = env
        .durable_object(RATE_LIMITER_BINDING)
        .map_err(unavailable)?;
    let stub = namespace
        .id_from_name(key)
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let url = format!(
        "https://rate-limiter/check?limit={}&period_ms={}",
        budget.limit,
        u64::from(budget.period_seconds) * 1000
    );
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    let request = Request::new_with_init(&url, &init).map_err(unavailable)?;
    let response = stub
        .fetch_with_request(request)
        .await
        .map_err(unavailable)?;
    reply::json::<Decision>(response).await.map_err(unavailable)
}
