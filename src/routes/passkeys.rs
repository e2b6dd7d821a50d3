//! Passkeys: `/api/v1/users/me/passkeys` (register, list, rename, delete the signed-in
//! account's), `/api/v1/auth/passkey/*` (passwordless sign-in) and
//! `/api/v1/admin/users/{id}/passkeys`.
//!
//! Each ceremony takes two requests: the options (with a fresh single-use challenge,
//! 5 minutes) for `navigator.credentials.create()` or `.get()`, then the browser's answer,
//! sent back as `PublicKeyCredential.toJSON()` gives it. All of them answer 404 when
//! passkeys are off (no `WEBAUTHN_RP_ID` and no usable `PUBLIC_BASE_URL`).

use crate::http::auth::Authenticated;
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unauthorized, Unavailable,
};
use crate::routes::requests::{PasskeyRegisterRequest, PasskeyRenameRequest, PasskeyVerifyRequest};
use crate::routes::views::{self, PasskeyList, TokenResponse, WebAuthnOptions};
use crate::runtime::now_seconds;
use crate::service;
use worker::Request;

#[utoipa::path(
    post,
    path = "/api/v1/users/me/passkeys/options",
    tag = "users",
    operation_id = "passkey_creation_options",
    summary = "Options to register a passkey (navigator.credentials.create)",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Creation options: a discoverable credential, no attestation, the account's passkeys excluded; the challenge is good for one registration within 5 minutes", body = views::WebAuthnOptions),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/users/me/passkeys/options` -> 200 creation options.
pub async fn creation_options(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let options =
        service::passkeys::registration_options(&ctx.deps(), &caller.user, now_seconds()).await?;
    json(200, &WebAuthnOptions(options))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/me/passkeys",
    tag = "users",
    operation_id = "register_passkey",
    summary = "Register a passkey with the browser's answer to the creation options",
    request_body = PasskeyRegisterRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Registered", body = views::Passkey),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/users/me/passkeys` `{name?, response}` -> 201 with the passkey. A response
/// that does not verify, or answers no challenge issued to this account (spent, expired),
/// is a 400 `invalid_passkey`; a credential registered already is a 409 `passkey_taken`.
pub async fn register(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let (body, problems) =
        read_body::<PasskeyRegisterRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let passkey = service::passkeys::register(
        &ctx.deps(),
        &caller.user,
        body.name.as_deref(),
        &body.response,
        now_seconds(),
    )
    .await?;
    json(201, &views::Passkey::from(&passkey))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/me/passkeys",
    tag = "users",
    operation_id = "list_passkeys",
    summary = "The passkeys of this account",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Oldest first", body = views::PasskeyList),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/users/me/passkeys`.
pub async fn list(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let passkeys = service::passkeys::list(&ctx.deps(), &caller.user.id).await?;
    json(200, &PasskeyList::new(&passkeys))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/me/passkeys/{id}",
    tag = "users",
    operation_id = "rename_passkey",
    summary = "Rename a passkey",
    params(("id" = String, Path, description = "Passkey id")),
    request_body = PasskeyRenameRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Renamed", body = views::Passkey),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `PATCH /api/v1/users/me/passkeys/{id}` `{name}` -> 200 with the passkey.
pub async fn rename(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let (body, problems) =
        read_body::<PasskeyRenameRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let passkey = service::passkeys::rename(
        &ctx.deps(),
        &caller.user.id,
        ctx.param("id")?,
        &body.name,
        now_seconds(),
    )
    .await?;
    json(200, &views::Passkey::from(&passkey))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/me/passkeys/{id}",
    tag = "users",
    operation_id = "delete_passkey",
    summary = "Delete a passkey",
    params(("id" = String, Path, description = "Passkey id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/users/me/passkeys/{id}`: refused (409 `last_sign_in_method`) when the
/// account has no password, no provider identity and no other passkey; another account's
/// passkey is 404.
pub async fn delete(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let deps = ctx.deps();
    let now = now_seconds();
    // Removing a factor needs a stepped-up session, as removing the authenticator app does.
    service::mfa::require_step_up(&deps, &caller.user, now)?;
    service::passkeys::delete(&deps, &caller.user.id, ctx.param("id")?, now).await?;
    no_content()
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/options",
    tag = "auth",
    operation_id = "passkey_request_options",
    summary = "Options to sign in with a passkey (navigator.credentials.get)",
    responses(
        (status = 200, description = "Request options with an empty allowCredentials (the browser offers its passkeys for this site) and user verification required; the challenge is good for one sign-in within 5 minutes", body = views::WebAuthnOptions),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/passkey/options` -> 200 request options. Budget per client IP
/// (`RATE_LIMIT_LOGIN`, its own count): each answer stores a challenge.
pub async fn request_options(ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("passkey_options", ctx.config.login_rate_limit)
        .await?;
    let options =
        service::passkeys::authentication_options(&ctx.deps(), None, now_seconds()).await?;
    json(200, &WebAuthnOptions(options))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/verify",
    tag = "auth",
    operation_id = "passkey_sign_in",
    summary = "Sign in with the browser's answer to the passkey request options",
    request_body = PasskeyVerifyRequest,
    responses(
        (status = 200, description = "Signed in; a new session", body = views::TokenResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/passkey/verify` `{response}` -> 200 with tokens, as a login. Every
/// refusal of the assertion (unknown or spent challenge, unknown credential, wrong origin,
/// bad signature, ...) is the same 401; a banned account is a 403 after the proof. Budget
/// per client IP (`RATE_LIMIT_LOGIN`, shared with password logins).
pub async fn sign_in(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("login", ctx.config.login_rate_limit).await?;
    let (body, problems) =
        read_body::<PasskeyVerifyRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let signed_in = service::passkeys::sign_in(&ctx.deps(), &body.response, now_seconds()).await?;
    json(200, &TokenResponse::from(signed_in))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}/passkeys",
    tag = "admin",
    operation_id = "admin_list_passkeys",
    summary = "The passkeys of an account (users:read)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Oldest first", body = views::PasskeyList),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/users/{id}/passkeys`.
pub async fn admin_list(ctx: &Ctx<'_>) -> ApiResult {
    let user = service::accounts::find(ctx.store(), ctx.param("id")?).await?;
    let passkeys = service::passkeys::list(&ctx.deps(), &user.id).await?;
    json(200, &PasskeyList::new(&passkeys))
}
