//! The access-token revocation list in KV: `revoked:<jti>` with a TTL of the token's
//! remaining lifetime, so the list never outgrows the tokens it blocks.
//!
//! KV is eventually consistent: a revocation is visible at once in the location that wrote
//! it and within about 60 s elsewhere. Access tokens also die with their session, which every
//! authenticated request checks in D1, so the KV entry is a second, cheaper barrier.

use crate::error::ApiError;
use worker::{console_error, Env};

/// The KV binding's name in `wrangler.toml`.
pub const KV_BINDING: &str = "KV";

/// KV refuses expirations shorter than this.
const KV_MIN_TTL_SECONDS: u64 = 60;

fn unavailable(error: impl Into<worker::Error>) -> ApiError {
    let error: worker::Error = error.into();
    console_error!(
        "{}",
        serde_json::json!({"level": "error", "event": "kv_unavailable", "error": error.to_string()})
    );
    ApiError::Unavailable("Revocation list".into())
}

fn key(jti: &str) -> String {
    format!("revoked:{jti}")
}

/// Put a token id on the list until the token would have expired anyway.
pub async fn revoke(env: &Env, jti: &str, expires_at: i64, now: i64) -> Result<(), ApiError> {
    let remaining = u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0);
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    kv.put(&key(jti), "1")
        .map_err(unavailable)?
        .expiration_ttl(remaining.max(KV_MIN_TTL_SECONDS))
        .execute()
        .await
        .map_err(unavailable)
}

/// Whether a token id is on the list. Fails closed: an unreachable list is a 503.
pub async fn is_revoked(env: &Env, jti: &str) -> Result<bool, ApiError> {
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    let value = kv.get(&key(jti)).text().await.map_err(unavailable)?;
    Ok(value.is_some())
}
