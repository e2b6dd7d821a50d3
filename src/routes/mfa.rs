//! Second factors: `/api/v1/users/me/mfa/*` (enrol an authenticator app, confirm it, see
//! and renew recovery codes, remove it), `/api/v1/auth/mfa/verify` (finish a sign-in that
//! answered `mfa_required`), `/api/v1/auth/mfa/step-up` (raise the current session), and
//! `/api/v1/admin/users/{id}/mfa` (list, reset).
//!
//! Every code submission counts against `RATE_LIMIT_VERIFY` per client IP, and a wrong
//! code on sign-in or step-up counts as a failed login of the account.

use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{
    Conflict, Forbidden, NotFound, RateLimited, Unauthorized, Unavailable,
};
use crate::routes::requests::{
    second_factor, MfaPasskeyOptionsRequest, MfaVerifyRequest, StepUpRequest, TotpConfirmRequest,
};
use crate::routes::views::{self, MfaStatus, RecoveryCodes, StepUp, TokenResponse, TotpEnrolment};
use crate::runtime::now_seconds;
use crate::service;

/// The internal error of a field the validation has just accepted.
fn validated() -> ApiError {
    ApiError::internal("validated field", "missing after validation")
}

#[utoipa::path(
    get,
    path = "/api/v1/users/me/mfa",
    tag = "users",
    operation_id = "mfa_status",
    summary = "The account's second factors and how many recovery codes are left",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Factors, oldest first", body = views::MfaStatus),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/users/me/mfa`.
pub async fn status(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let status = service::mfa::status(&ctx.deps(), &caller.user.id).await?;
    json(200, &MfaStatus::from(&status))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/me/mfa/totp",
    tag = "users",
    operation_id = "enrol_totp",
    summary = "Start enrolling an authenticator app (TOTP)",
    description = "A new pending factor (replacing an older pending one): its secret, \
        `otpauth://` URI and QR code, shown once. It is active once confirmed with a code.",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Pending until confirmed", body = views::TotpEnrolment),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/users/me/mfa/totp`: 409 `mfa_already_enabled` when one is active.
pub async fn enrol_totp(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let enrolment = service::mfa::enrol(&ctx.deps(), &caller.user, now_seconds()).await?;
    json(200, &TotpEnrolment::from(enrolment))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/me/mfa/totp/confirm",
    tag = "users",
    operation_id = "confirm_totp",
    summary = "Confirm the authenticator app with its current code; ten recovery codes",
    description = "A wrong code is a 422 on `code`. The recovery codes are shown this once; \
        the session that confirmed is raised to `aal2`.",
    request_body = TotpConfirmRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Active; the recovery codes", body = views::RecoveryCodes),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/users/me/mfa/totp/confirm` `{code}`.
pub async fn confirm_totp(
    req: &mut worker::Request,
    ctx: &Ctx<'_>,
    caller: Authenticated,
) -> ApiResult {
    ctx.rate_limit("mfa", ctx.config.verify_rate_limit).await?;
    let (body, problems) = read_body::<TotpConfirmRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let codes = service::mfa::confirm(
        &ctx.deps(),
        &caller.user,
        &caller.token.claims.sid,
        &body.code,
        now_seconds(),
    )
    .await?;
    json(
        200,
        &RecoveryCodes {
            recovery_codes: codes,
        },
    )
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/me/mfa/totp",
    tag = "users",
    operation_id = "remove_totp",
    summary = "Remove the authenticator app and the recovery codes (needs step-up)",
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Removed; the password alone signs in again"),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/users/me/mfa/totp`: 403 `step_up_required` without a recent step-up.
pub async fn remove_totp(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    service::mfa::remove(&ctx.deps(), &caller.user, now_seconds()).await?;
    no_content()
}

#[utoipa::path(
    post,
    path = "/api/v1/users/me/mfa/recovery-codes",
    tag = "users",
    operation_id = "regenerate_recovery_codes",
    summary = "Ten new recovery codes, replacing the old ones (needs step-up)",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new codes, shown this once", body = views::RecoveryCodes),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/users/me/mfa/recovery-codes`.
pub async fn regenerate_recovery_codes(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let codes =
        service::mfa::regenerate_recovery_codes(&ctx.deps(), &caller.user, now_seconds()).await?;
    json(
        200,
        &RecoveryCodes {
            recovery_codes: codes,
        },
    )
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/verify",
    tag = "auth",
    operation_id = "mfa_verify",
    summary = "Finish a sign-in with its mfa_token and a code (or a recovery code)",
    description = "A wrong code is a 401 and a failed login of the account; the `mfa_token` \
        survives up to 5 wrong codes and 5 minutes.",
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Signed in; a new session at `aal2`", body = views::TokenResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/mfa/verify` `{mfa_token, code | recovery_code}` -> 200 with tokens.
pub async fn verify(req: &mut worker::Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("mfa", ctx.config.verify_rate_limit).await?;
    let (body, mut problems) =
        read_body::<MfaVerifyRequest>(req, ctx.config.max_body_bytes).await?;
    let proof = second_factor(&mut problems, body.code, body.recovery_code, body.passkey);
    problems.finish()?;
    let proof = proof.ok_or_else(validated)?;
    let signed_in =
        service::mfa::verify(&ctx.deps(), &body.mfa_token, &proof, now_seconds()).await?;
    json(200, &TokenResponse::from(signed_in))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/step-up",
    tag = "auth",
    operation_id = "mfa_step_up",
    summary = "Prove the second factor again: this session becomes aal2 for STEP_UP_SECONDS",
    description = "Needed before a password or email change, deleting the account, removing \
        the factor, new recovery codes and any admin route, for accounts with a second \
        factor. A wrong code is a 422 and a failed login of the account.",
    request_body = StepUpRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A new access token of this session, at `aal2`", body = views::StepUp),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/mfa/step-up` `{code | recovery_code}`.
pub async fn step_up(req: &mut worker::Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    ctx.rate_limit("mfa", ctx.config.verify_rate_limit).await?;
    let (body, mut problems) = read_body::<StepUpRequest>(req, ctx.config.max_body_bytes).await?;
    let proof = second_factor(&mut problems, body.code, body.recovery_code, body.passkey);
    problems.finish()?;
    let proof = proof.ok_or_else(validated)?;
    let signed_in = service::mfa::step_up(
        &ctx.deps(),
        &caller.user,
        &caller.token.claims.sid,
        &proof,
        now_seconds(),
    )
    .await?;
    json(200, &StepUp::from(signed_in))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/passkey/options",
    tag = "auth",
    operation_id = "mfa_passkey_options",
    summary = "Request options for proving a pending sign-in with one of the account's passkeys",
    description = "For an `mfa_required` answer that lists `passkey`: pass the options to \
        `navigator.credentials.get()` and send its answer as `passkey` to \
        `POST /api/v1/auth/mfa/verify`. The mfa_token stays pending.",
    request_body = MfaPasskeyOptionsRequest,
    responses(
        (status = 200, description = "`PublicKeyCredentialRequestOptionsJSON`, the account's passkeys allowed; the challenge lives 5 minutes, single use", body = Object),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/mfa/passkey/options` `{mfa_token}`.
pub async fn passkey_options(req: &mut worker::Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("mfa", ctx.config.verify_rate_limit).await?;
    let (body, problems) =
        read_body::<MfaPasskeyOptionsRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let options =
        service::mfa::passkey_options(&ctx.deps(), &body.mfa_token, now_seconds()).await?;
    json(200, &options)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/step-up/options",
    tag = "auth",
    operation_id = "mfa_step_up_options",
    summary = "Request options for stepping up with one of the account's passkeys",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "`PublicKeyCredentialRequestOptionsJSON` for `navigator.credentials.get()`; send its answer as `passkey` to `POST /api/v1/auth/mfa/step-up`", body = Object),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/mfa/step-up/options`: 404 for an account without a passkey.
pub async fn step_up_options(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    ctx.rate_limit("mfa", ctx.config.verify_rate_limit).await?;
    let options =
        service::mfa::step_up_passkey_options(&ctx.deps(), &caller.user.id, now_seconds()).await?;
    json(200, &options)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}/mfa",
    tag = "admin",
    operation_id = "admin_mfa_status",
    summary = "An account's second factors (users:read)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Factors, oldest first", body = views::MfaStatus),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/users/{id}/mfa`.
pub async fn admin_status(ctx: &Ctx<'_>) -> ApiResult {
    let user = service::accounts::find(ctx.store(), ctx.param("id")?).await?;
    let status = service::mfa::status(&ctx.deps(), &user.id).await?;
    json(200, &MfaStatus::from(&status))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/mfa",
    tag = "admin",
    operation_id = "admin_mfa_reset",
    summary = "Remove an account's second factors and recovery codes (users:write)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Reset; audited as mfa.reset"),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/admin/users/{id}/mfa`: 404 when the account has none.
pub async fn admin_reset(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let user = service::accounts::find(ctx.store(), ctx.param("id")?).await?;
    service::mfa::admin_reset(&ctx.deps(), &caller.user.id, &user, now_seconds()).await?;
    no_content()
}
