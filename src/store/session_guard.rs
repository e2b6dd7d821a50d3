//! Client of the `SessionGuard` Durable Object: one object per session id.

use crate::config::RateLimit;
use crate::domain::audit::Origin;
use crate::error::ApiError;
use crate::objects::session_guard::{RotateReply, RotateRequest};
use worker::{console_error, Env, Method, Request, RequestInit};

/// The Durable Object binding's name in `wrangler.toml`.
pub const SESSION_GUARD_BINDING: &str = "SESSION_GUARD";

fn unavailable(error: worker::Error) -> ApiError {
    console_error!(
        "{}",
        serde_json::json!({"level": "error", "event": "session_guard_unavailable", "error": error.to_string()})
    );
    ApiError::Unavailable("Session store".into())
}

/// Ask the session's object to count a refresh against `budget` and, when it fits, rotate
/// the presented refresh token (by digest).
pub async fn rotate(
    env: &Env,
    session_id: &str,
    presented_hash: &str,
    origin: Origin,
    budget: RateLimit,
) -> Result<RotateReply, ApiError> {
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
    .map_err(|_| ApiError::Internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request =
        Request::new_with_init("https://session-guard/rotate", &init).map_err(unavailable)?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(unavailable)?;
    if response.status_code() != 200 {
        return Err(ApiError::Unavailable("Session store".into()));
    }
    response.json::<RotateReply>().await.map_err(unavailable)
}
