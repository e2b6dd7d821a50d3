//! Service metadata: health and the public key set.

use crate::domain::time::rfc3339_seconds;
use crate::error::ApiError;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, with_body, ApiResult};
use crate::routes::views::{self, Health, Ping};
use crate::runtime::now_seconds;
use crate::store::traits::HealthStore;
use std::rc::Rc;

#[utoipa::path(
    get,
    path = "/api/ping",
    tag = "meta",
    summary = "Liveness, touching no store",
    responses(
        (status = 200, description = "The Worker runs", body = views::Ping),
    )
)]
/// `GET /api/ping`: liveness without touching any store; also the no-op route benchmarks
/// measure the runtime's ceiling with.
pub async fn ping() -> ApiResult {
    json(
        200,
        &Ping {
            status: "ok".into(),
        },
    )
}

#[utoipa::path(
    get,
    path = "/api/health",
    tag = "meta",
    summary = "Health, with a D1 round trip",
    responses(
        (status = 200, description = "Healthy", body = views::Health),
        (status = 503, description = "D1 did not answer", body = views::Health),
    )
)]
/// `GET /api/health`: 200 when D1 answers, 503 when it does not.
pub async fn health(ctx: &Ctx<'_>) -> ApiResult {
    let database = ctx.store().ping().await;
    let (status, state, database) = match database {
        Ok(()) => (200, "healthy", "connected"),
        Err(error) => {
            log::error(ctx.meta, "health_check_failed", &error.to_string());
            (503, "unhealthy", "disconnected")
        }
    };
    json(
        status,
        &Health {
            status: state.into(),
            database: database.into(),
            backend: ctx.store().kind().as_str().into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environment: ctx.config.environment.clone(),
            timestamp: rfc3339_seconds(now_seconds()),
        },
    )
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "meta",
    summary = "The public keys access tokens are verified with",
    responses(
        (status = 200, description = "A JWK set (RFC 7517): Ed25519 (RFC 8037), P-256 or RSA keys, each with its one alg", body = views::Jwks),
    )
)]
/// `GET /.well-known/jwks.json`: the public keys tokens are verified with. Public data, so
/// caches may keep it briefly; rotation publishes the next key before it signs.
pub async fn jwks(ctx: &Ctx<'_>) -> ApiResult {
    let response = json(200, &views::Jwks::new(&ctx.config.keys))?;
    response
        .headers()
        .set("cache-control", "public, max-age=300")
        .map_err(|error| ApiError::internal("response header", error))?;
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    summary = "Health, at the seed service's path",
    responses(
        (status = 200, description = "Healthy", body = views::Health),
        (status = 503, description = "D1 did not answer", body = views::Health),
    ),
)]
/// `GET /health`: the same as `/api/health`, where the seed service answered it.
pub async fn health_alias(ctx: &Ctx<'_>) -> ApiResult {
    health(ctx).await
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")),
)]
/// `GET /openapi.json`: built from the code once per isolate (the route table hands it in).
pub async fn openapi(document: Rc<Vec<u8>>) -> ApiResult {
    Ok(with_body(
        200,
        "application/json",
        document.as_ref().clone(),
    ))
}
