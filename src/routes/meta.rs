//! Service metadata: health and the public key set.

use crate::domain::time::rfc3339_seconds;
use crate::error::ApiError;
use crate::http::log;
use crate::http::response::{json, ApiResult};
use crate::routes::Ctx;
use crate::runtime::now_seconds;
use crate::store;
use serde_json::json;

/// `GET /api/ping`: liveness without touching any store; also the no-op route benchmarks
/// measure the runtime's ceiling with.
pub fn ping() -> ApiResult {
    json(200, &json!({ "status": "ok" }))
}

/// `GET /api/health`: 200 when D1 answers, 503 when it does not.
pub async fn health(ctx: &Ctx<'_>) -> ApiResult {
    let database = match store::database(ctx.env) {
        Ok(db) => store::ping(&db).await,
        Err(error) => Err(error),
    };
    let (status, state, database) = match database {
        Ok(()) => (200, "healthy", "connected"),
        Err(error) => {
            log::error(ctx.meta, "health_check_failed", &error.to_string());
            (503, "unhealthy", "disconnected")
        }
    };
    json(
        status,
        &json!({
            "status": state,
            "database": database,
            "version": env!("CARGO_PKG_VERSION"),
            "environment": ctx.config.environment,
            "timestamp": rfc3339_seconds(now_seconds()),
        }),
    )
}

/// `GET /.well-known/jwks.json`: the public keys tokens are verified with. Public data, so
/// caches may keep it briefly; rotation publishes the next key before it signs.
pub fn jwks(ctx: &Ctx<'_>) -> ApiResult {
    let response = json(200, &ctx.config.keys.jwks())?;
    response
        .headers()
        .set("cache-control", "public, max-age=300")
        .map_err(|_| ApiError::Internal)?;
    Ok(response)
}
