//! Client of the `SessionGuard` Durable Object: one object per session id, and the protocol
//! the client and the object (`objects::session_guard`) speak.

use crate::config::RateLimit;
use crate::domain::audit::Origin;
use crate::store::error::StoreError;
use crate::store::reply;
use crate::store::traits::RotateReply;
use serde::{Deserialize, Serialize};
use worker::{Env, Method, Request, RequestInit};

/// What the Worker asks.
#[derive(Debug, Serialize, Deserialize)]
pub struct RotateRequest {
    pub session_id: String,
    pub presented_hash: String,
    /// The refresh request's origin, for the audit entry of a reuse revocation.
    #[serde(default)]
    pub origin: Origin,
    /// The per-session refresh budget (`RATE_LIMIT_REFRESH`), counted here rather than in a
    /// `RateLimiter` object: this object already sees every refresh of the session, one at a
    /// time, so the count costs no extra round trip.
    pub limit: u32,
    pub period_ms: u64,
}

/// The Durable Object binding's name in `wrangler.toml`.
pub const SESSION_GUARD_BINDING: &str = "SESSION_GUARD";

fn unavailable(error: worker::Error) -> StoreError {
    StoreError::unavailable("Session store", error)
}

/// Ask the session's object to count a refresh against `budget` and, when it fits, rotate
/// the presented refresh token (by digest).
pub async fn rotate(
    env: &Env,
    session_id: &str,
    presented_hash: &str,
    origin: Origin,
    budget: RateLimit,
) -> Result<RotateReply, StoreError> {
    let namespace = env
        .durable_object(SESSION_GUARD_BINDING)
        .map_err(unavailable)?;
    let stub = namespace
        .id_from_name(session_id)
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let body = serde_json::to_string(&RotateRequest {
        session_id: session_id.to_owned(),
        presented_hash: presented_hash.to_owned(),
        origin,
        limit: budget.limit,
        period_ms: u64::from(budget.period_seconds) * 1000,
    })
    .map_err(|error| StoreError::unavailable("Session store", error))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request =
        Request::new_with_init("https://session-guard/rotate", &init).map_err(unavailable)?;
    let response = stub
        .fetch_with_request(request)
        .await
        .map_err(unavailable)?;
    if response.status_code() != 200 {
        return Err(StoreError::unavailable(
            "Session store",
            format!("session guard answered {}", response.status_code()),
        ));
    }
    reply::json::<RotateReply>(response)
        .await
        .map_err(unavailable)
}
