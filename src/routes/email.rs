//! The JSON API of the email flows (`service::email`): verification, password reset and
//! email change, each by a link token or a six-digit code. The HTML pages in `pages` run
//! the same flows.
//!
//! Requests that name an address (`resend`, `password/reset`) always answer 202 with the same
//! body, and do the same amount of database work, whether or not an account matches.

use crate::domain::input::Problems;
use crate::domain::user::normalize_email;
use crate::error::{ApiError, FieldError};
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::response::{json, ApiResult};
use crate::routes::openapi::{Conflict, RateLimited, Unavailable};
use crate::routes::requests::{
    EmailAddress, EmailProof, PasswordResetConfirmation, PasswordResetRequest,
};
use crate::routes::views::{self, Message, Redeemed};
use crate::runtime::now_seconds;
use crate::service;
use crate::service::email::Proof;
use worker::Request;

/// The proof in a body's `token`, or its `email` and `code`; when neither is there, the
/// problem follows those of the three fields.
pub fn read_proof(
    problems: &mut Problems,
    token: Option<String>,
    email: Option<String>,
    code: Option<String>,
) -> Option<Proof> {
    match (token, email, code) {
        (Some(token), _, _) => Some(Proof::Token(token)),
        (None, Some(email), Some(code)) => Some(Proof::Code { email, code }),
        _ => {
            problems.reject_after(
                "code",
                FieldError::new("token", "token, or email and code, is required"),
            );
            None
        }
    }
}

/// Which flow a `{token}` / `{email, code}` body redeems.
#[derive(Clone, Copy)]
pub enum Redeem {
    VerifyEmail,
    ConfirmEmailChange,
}

/// `POST /api/v1/auth/verify-email` and `POST /api/v1/auth/email/confirm`: `{token}` or
/// `{email, code}` -> 200 `{detail, user}`.
pub async fn redeem_api(req: &mut Request, ctx: &Ctx<'_>, flow: Redeem) -> ApiResult {
    ctx.rate_limit("verify", ctx.config.verify_rate_limit)
        .await?;
    let (body, mut problems) = read_body::<EmailProof>(req, ctx.config.max_body_bytes).await?;
    let proof = read_proof(&mut problems, body.token, body.email, body.code);
    problems.finish()?;
    let proof =
        proof.ok_or_else(|| ApiError::internal("validated field", "missing after validation"))?;
    let deps = ctx.deps();
    let now = now_seconds();
    let (user, detail) = match flow {
        Redeem::VerifyEmail => (
            service::email::verify_email(&deps, &proof, now).await?,
            "Email verified",
        ),
        Redeem::ConfirmEmailChange => (
            service::email::confirm_email_change(&deps, &proof, now).await?,
            "Email changed",
        ),
    };
    json(
        200,
        &Redeemed {
            detail: detail.into(),
            user: views::User::from(&user),
        },
    )
}

fn accepted(detail: &str) -> ApiResult {
    json(202, &Message::new(detail))
}

const RESEND_ACCEPTED: &str =
    "If the address belongs to an account that is not verified yet, a new message is on its way";
const RESET_ACCEPTED: &str =
    "If the account exists and has an email address, a reset message is on its way";

#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email",
    tag = "auth",
    operation_id = "verify_email",
    summary = "Verify the account's address with the emailed token or code",
    request_body = EmailProof,
    responses(
        (status = 200, description = "Verified", body = views::Redeemed),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/verify-email`.
pub async fn verify_email_api(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    redeem_api(req, ctx, Redeem::VerifyEmail).await
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/email/confirm",
    tag = "auth",
    operation_id = "confirm_email_change",
    summary = "Confirm a new address with the token or code sent to it",
    request_body = EmailProof,
    responses(
        (status = 200, description = "The new address is the account's", body = views::Redeemed),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/email/confirm`.
pub async fn confirm_email_change_api(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    redeem_api(req, ctx, Redeem::ConfirmEmailChange).await
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email/resend",
    tag = "auth",
    summary = "Send the address verification email again",
    request_body = EmailAddress,
    responses(
        (status = 202, description = "Always, whether or not the address has an account", body = views::Message),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/verify-email/resend` `{email}`: always 202.
pub async fn resend_verification(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("email", ctx.config.email_rate_limit).await?;
    let (body, mut problems) = read_body::<EmailAddress>(req, ctx.config.max_body_bytes).await?;
    let email = problems
        .valid("email", body.email.as_str())
        .and_then(|raw| problems.check(normalize_email(raw)));
    problems.finish()?;
    let email =
        email.ok_or_else(|| ApiError::internal("validated field", "missing after validation"))?;
    service::email::resend_verification(&ctx.deps(), &email, now_seconds()).await?;
    accepted(RESEND_ACCEPTED)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password/reset",
    tag = "auth",
    summary = "Email a password reset link and code",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Always, whether or not an account matched", body = views::Message),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/password/reset` `{email}` or `{username}`: always 202.
pub async fn request_password_reset(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("password_reset", ctx.config.email_rate_limit)
        .await?;
    let (body, mut problems) =
        read_body::<PasswordResetRequest>(req, ctx.config.max_body_bytes).await?;
    let identifier = body.email.or(body.username);
    if identifier.is_none() {
        problems.reject(FieldError::new("email", "email or username is required"));
    }
    problems.finish()?;
    let identifier = identifier.unwrap_or_default();
    service::email::request_password_reset(&ctx.deps(), &identifier, now_seconds()).await?;
    accepted(RESET_ACCEPTED)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password/reset/confirm",
    tag = "auth",
    summary = "Set a new password with a reset token or code",
    request_body = PasswordResetConfirmation,
    responses(
        (status = 200, description = "Reset; every session ended", body = views::Message),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/password/reset/confirm` `{token | email+code, new_password}`.
pub async fn confirm_password_reset(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("verify", ctx.config.verify_rate_limit)
        .await?;
    let (body, mut problems) =
        read_body::<PasswordResetConfirmation>(req, ctx.config.max_body_bytes).await?;
    let proof = read_proof(&mut problems, body.token, body.email, body.code);
    problems.finish()?;
    let proof =
        proof.ok_or_else(|| ApiError::internal("validated field", "missing after validation"))?;
    let new_password = body.new_password;
    service::email::reset_password(&ctx.deps(), &proof, &new_password, now_seconds()).await?;
    json(
        200,
        &Message::new("Password has been reset; every session was signed out"),
    )
}
