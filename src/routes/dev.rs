//! Development-only routes. They answer 404 unless `ENVIRONMENT=development` and the request
//! is addressed to a loopback host: a Worker deployed with development settings by mistake
//! still does not show its outbox (every reset code) to the internet.

use crate::error::ApiError;
use crate::http::context::Ctx;
use crate::http::request::is_loopback_host;
use crate::http::response::{json, ApiResult};
use crate::routes::openapi::{NotFound, Unavailable, ValidationFailed};
use crate::routes::views::{HashParameters, IsolateMemory, OutboxMessage};
use crate::runtime::random_bytes;
use crate::store::traits::OutboxStore;
use worker::Request;

/// 404 unless the Worker runs in development and is reached on a loopback host.
fn ensure_development(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    if ctx.config.is_development() && is_loopback_host(&ctx.meta.host) {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/dev/outbox",
    tag = "dev",
    summary = "Emails the outbox provider stored for an address (development only)",
    params(("to" = String, Query, description = "The recipient address")),
    responses(
        (status = 200, description = "Newest first", body = Vec<OutboxMessage>),
        (status = 404, response = NotFound),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/dev/outbox?to=ADDR`: messages the `outbox` provider stored for an address,
/// newest first.
pub async fn outbox(req: &Request, ctx: &Ctx<'_>) -> ApiResult {
    ensure_development(ctx)?;
    let url = req.url().map_err(|_| ApiError::NotFound)?;
    let to = url
        .query_pairs()
        .find(|(name, _)| name == "to")
        .map(|(_, value)| value.trim().to_lowercase())
        .filter(|to| !to.is_empty())
        .ok_or_else(|| ApiError::invalid("to", "is required"))?;
    let messages: Vec<OutboxMessage> = ctx
        .store()
        .messages_to(&to)
        .await?
        .into_iter()
        .map(OutboxMessage::from)
        .collect();
    json(200, &messages)
}

#[utoipa::path(
    get,
    path = "/api/v1/dev/argon2",
    tag = "dev",
    summary = "Hash one password with the configured argon2id parameters (development only)",
    responses(
        (status = 200, description = "Hashed; the parameters used", body = HashParameters),
        (status = 404, response = NotFound),
    )
)]
/// `GET /api/v1/dev/argon2`: one argon2id hash and nothing else, so `npm run bench` can time
/// the hash inside workerd (where the clock stands still during computation) as this route's
/// latency minus the no-op route's, and compare it with the same crate run natively.
pub async fn argon2(ctx: &Ctx<'_>) -> ApiResult {
    ensure_development(ctx)?;
    let salt = random_bytes::<16>()?;
    ctx.config
        .hasher
        .hash("correct horse battery staple", &salt)
        .map_err(|error| ApiError::internal("password hash", error))?;
    let params = ctx.config.hasher.params();
    json(
        200,
        &HashParameters {
            algorithm: "argon2id".into(),
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
        },
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/dev/memory",
    tag = "dev",
    summary = "This isolate's wasm linear memory (development only)",
    responses(
        (status = 200, description = "The size of the Rust heap's memory", body = IsolateMemory),
        (status = 404, response = NotFound),
    )
)]
/// `GET /api/v1/dev/memory`: the size of this isolate's wasm linear memory, which only ever
/// grows, so `npm run bench` can tell a leak in the Worker's own code from workerd's process
/// memory (which grows under load even for an empty Worker).
pub async fn memory(ctx: &Ctx<'_>) -> ApiResult {
    ensure_development(ctx)?;
    json(
        200,
        &IsolateMemory {
            wasm_memory_bytes: linear_memory_bytes(),
        },
    )
}

#[cfg(target_arch = "wasm32")]
fn linear_memory_bytes() -> u64 {
    const PAGE_BYTES: u64 = 65_536;
    core::arch::wasm32::memory_size(0) as u64 * PAGE_BYTES
}

#[cfg(not(target_arch = "wasm32"))]
fn linear_memory_bytes() -> u64 {
    0
}
