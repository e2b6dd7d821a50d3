//! `GET /metrics`: the service's counters in the Prometheus text format.

use crate::domain::metrics::{scrape_access, ScrapeAccess, CONTENT_TYPE};
use crate::error::ApiError;
use crate::http::auth::bearer_token;
use crate::http::context::Ctx;
use crate::http::response::{with_body, ApiResult};
use crate::routes::openapi::{NotFound, Unauthorized, Unavailable};
use crate::store::metrics_batch;
use worker::Request;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    summary = "Counters and latency histograms in the Prometheus text format",
    security(("metricsToken" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// Totals across every isolate, after this isolate's pending counts are added. With
/// `METRICS_TOKEN` set the scraper must send it as a bearer token (401 otherwise); without
/// one the route exists only in development and test (404 elsewhere: fail closed).
pub async fn scrape(req: &Request, ctx: &Ctx<'_>) -> ApiResult {
    let presented = bearer_token(req.inner());
    match scrape_access(
        ctx.config.metrics_token_digest.as_ref(),
        presented.as_deref(),
        &ctx.config.environment,
    ) {
        ScrapeAccess::Allowed => {}
        ScrapeAccess::Unauthorized => {
            return Err(ApiError::Unauthorized(
                "A valid metrics token is required".into(),
            ))
        }
        ScrapeAccess::Hidden => return Err(ApiError::NotFound),
    }
    let totals = metrics_batch::flush_and_read(ctx.env).await?;
    Ok(with_body(200, CONTENT_TYPE, totals.render().into_bytes()))
}
