//! `/api/v1/users/me/identities` and `/api/v1/admin/users/{id}/identities`: the provider
//! accounts linked to an account, listed, linked and unlinked.
//!
//! Linking takes three steps, so that only the account that asked can finish it: the app
//! asks with the account's token (`…/identities/{provider}/start`) and gets a URL for the
//! browser; the browser goes through the provider and back to the app with a one-time
//! code; the app completes the link with that code and the account's token
//! (`POST …/identities`). A link started by one account and finished in someone else's
//! browser links nothing.

use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unavailable};
use crate::routes::requests::{LinkCompleteRequest, LinkStartRequest};
use crate::routes::views::{self, IdentityList, LinkStart};
use crate::runtime::now_seconds;
use crate::service;
use worker::Request;

#[utoipa::path(
    get,
    path = "/api/v1/users/me/identities",
    tag = "users",
    operation_id = "list_identities",
    summary = "The provider accounts linked to this account",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Oldest first", body = views::IdentityList),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/users/me/identities`.
pub async fn list(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let identities = service::oauth::identities(&ctx.deps(), &caller.user.id).await?;
    json(200, &IdentityList::new(&identities))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/me/identities/{provider}/start",
    tag = "users",
    operation_id = "start_link",
    summary = "Start linking a provider: a URL to send the browser to",
    params(("provider" = String, Path, description = "An enabled provider's name")),
    request_body = LinkStartRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Send the browser to `url`; it comes back to `redirect_to` with `code` (or `error`), which completes the link through `POST /api/v1/users/me/identities`", body = views::LinkStart),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/users/me/identities/{provider}/start` `{redirect_to, code_challenge?}` ->
/// 200 `{url}`.
pub async fn start_link(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    ctx.rate_limit("oauth_link", ctx.config.oauth_rate_limit)
        .await?;
    let provider = ctx
        .config
        .oauth
        .provider(ctx.param("provider")?)
        .ok_or(ApiError::NotFound)?;
    let (body, problems) = read_body::<LinkStartRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let deps = ctx.deps();
    let request = service::oauth::app_request(
        &deps,
        &provider.name,
        &body.redirect_to,
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    let ticket = service::oauth::issue_link_ticket(
        &deps,
        &provider.name,
        &caller.user.id,
        request,
        now_seconds(),
    )
    .await?;
    let url = format!(
        "{}?link_ticket={ticket}",
        service::oauth::start_url(ctx.config, &provider.name)
    );
    json(200, &LinkStart { url })
}

#[utoipa::path(
    post,
    path = "/api/v1/users/me/identities",
    tag = "users",
    operation_id = "complete_link",
    summary = "Complete a link with the code the provider's callback returned",
    request_body = LinkCompleteRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Linked (or already linked to this account)", body = views::Identity),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/users/me/identities` `{code, code_verifier?}` -> 201 with the identity. The
/// code is spent by any attempt; one issued to another account's link request, a sign-in's
/// code, or a wrong verifier is a 400 `invalid_grant`; a provider account linked to another
/// account is a 409 `identity_taken`.
pub async fn complete_link(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    ctx.rate_limit("oauth_exchange", ctx.config.oauth_rate_limit)
        .await?;
    let (body, problems) = read_body::<LinkCompleteRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let identity = service::oauth::complete_link(
        &ctx.deps(),
        &caller.user.id,
        &body.code,
        body.code_verifier.as_deref(),
        now_seconds(),
    )
    .await?;
    json(201, &views::Identity::from(&identity))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/me/identities/{id}",
    tag = "users",
    operation_id = "unlink_identity",
    summary = "Unlink a provider account",
    params(("id" = String, Path, description = "Identity id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/users/me/identities/{id}`: refused (409 `last_sign_in_method`) when the
/// account has no password and no other identity; another account's identity is 404.
pub async fn unlink(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    service::oauth::unlink(
        &ctx.deps(),
        &caller.user.id,
        ctx.param("id")?,
        now_seconds(),
    )
    .await?;
    no_content()
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}/identities",
    tag = "admin",
    operation_id = "admin_list_identities",
    summary = "The provider accounts linked to an account (users:read)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Oldest first", body = views::IdentityList),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/users/{id}/identities`.
pub async fn admin_list(ctx: &Ctx<'_>) -> ApiResult {
    let user = service::accounts::find(ctx.store(), ctx.param("id")?).await?;
    let identities = service::oauth::identities(&ctx.deps(), &user.id).await?;
    json(200, &IdentityList::new(&identities))
}
