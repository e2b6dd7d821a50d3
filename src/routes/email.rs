//! Email flows: verification, password reset and email change, each by a link token or a
//! six-digit code. Both the JSON API here and the HTML pages in `pages` run these flows.
//!
//! Requests that name an address (`resend`, `password/reset`) always answer 202 with the same
//! body, and do the same amount of database work, whether or not an account matches.

use crate::domain::email::{render, Purpose, TemplateContext};
use crate::domain::input::Problems;
use crate::domain::lockout::login_subject;
use crate::domain::one_time::{code_from_random, code_matches, hash_code, is_code};
use crate::domain::secret::{encode_opaque_token, hash_opaque_token, is_well_formed_opaque_token};
use crate::domain::user::normalize_email;
use crate::domain::user::User;
use crate::error::{ApiError, FieldError};
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, ApiResult};
use crate::mail::{self, Outgoing};
use crate::routes::openapi::{Conflict, RateLimited, Unavailable};
use crate::routes::password_checks::{lockout_fail_open, reject_breached};
use crate::routes::requests::{
    EmailAddress, EmailProof, PasswordResetConfirmation, PasswordResetRequest,
};
use crate::routes::views::{self, Message, Redeemed};
use crate::runtime::{now_seconds, random_bytes};
use crate::store;
use crate::store::login_failures;
use crate::store::one_time_tokens::{self, Effect, NewToken, TokenRow};
use crate::store::users;
use crate::store::Database;
use serde_json::json;
use uuid::Uuid;
use worker::Request;

/// A token and code ready to store and send.
pub struct PreparedToken {
    pub id: String,
    pub purpose: Purpose,
    pub token: String,
    pub code: String,
    pub user_id: String,
    /// The address the message goes to.
    pub email: String,
    pub now: i64,
    pub expires_at: i64,
}

fn ttl(ctx: &Ctx<'_>, purpose: Purpose) -> i64 {
    let email = &ctx.config.email;
    match purpose {
        Purpose::VerifyEmail | Purpose::EmailChangeNotice | Purpose::SignupAttemptNotice => {
            email.verify_ttl_seconds
        }
        Purpose::ResetPassword => email.reset_ttl_seconds,
        Purpose::ChangeEmail => email.change_ttl_seconds,
    }
}

fn random_code() -> Result<String, ApiError> {
    loop {
        let value = u32::from_le_bytes(random_bytes::<4>()?);
        if let Some(code) = code_from_random(value) {
            return Ok(code);
        }
    }
}

/// Draw a token and code for a purpose.
pub fn prepare(
    ctx: &Ctx<'_>,
    purpose: Purpose,
    user_id: &str,
    email: &str,
) -> Result<PreparedToken, ApiError> {
    let now = now_seconds();
    Ok(PreparedToken {
        id: Uuid::new_v4().to_string(),
        purpose,
        token: encode_opaque_token(&random_bytes::<32>()?),
        code: random_code()?,
        user_id: user_id.to_owned(),
        email: email.to_owned(),
        now,
        expires_at: now + ttl(ctx, purpose),
    })
}

impl PreparedToken {
    /// The digests of its token and code, as the store keeps them (never the values).
    pub fn digests(&self) -> (String, String) {
        (
            hash_opaque_token(&self.token),
            hash_code(&self.id, &self.code),
        )
    }

    /// The record that stores it, with its digests from [`PreparedToken::digests`].
    pub fn record<'a>(&'a self, digests: &'a (String, String)) -> NewToken<'a> {
        NewToken {
            id: &self.id,
            user_id: &self.user_id,
            purpose: self.purpose,
            token_hash: &digests.0,
            code_hash: &digests.1,
            email: &self.email,
            now: self.now,
            expires_at: self.expires_at,
        }
    }
}

/// The page a link of this purpose opens.
fn page_path(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::VerifyEmail | Purpose::EmailChangeNotice | Purpose::SignupAttemptNotice => {
            "/verify-email"
        }
        Purpose::ResetPassword => "/reset-password",
        Purpose::ChangeEmail => "/confirm-email",
    }
}

/// Render and deliver the message for a stored token.
pub async fn send_token(ctx: &Ctx<'_>, prepared: &PreparedToken) -> Result<(), ApiError> {
    let email = &ctx.config.email;
    let link = format!(
        "{}{}?token={}",
        email.public_base_url,
        page_path(prepared.purpose),
        prepared.token
    );
    let message = render(
        prepared.purpose,
        &prepared.email,
        &TemplateContext {
            app_name: &email.app_name,
            link: Some(&link),
            code: Some(&prepared.code),
            valid_minutes: (prepared.expires_at - prepared.now) / 60,
            new_email: None,
        },
    );
    mail::deliver(
        ctx.env,
        ctx.config,
        ctx.worker,
        Outgoing {
            message,
            request_id: ctx.meta.request_id.clone(),
            token: Some(prepared.token.clone()),
            code: Some(prepared.code.clone()),
        },
    )
    .await
}

/// Store and send a token in one go.
pub async fn issue_and_send(
    ctx: &Ctx<'_>,
    db: &Database,
    prepared: &PreparedToken,
) -> Result<(), ApiError> {
    one_time_tokens::issue(db, &prepared.record(&prepared.digests())).await?;
    send_token(ctx, prepared).await
}

/// Send a notice that carries no token: to the old address when a change to `new_email`
/// was requested (`EmailChangeNotice`), or to an address someone tried to sign up with
/// (`SignupAttemptNotice`).
pub async fn send_notice(
    ctx: &Ctx<'_>,
    purpose: Purpose,
    to: &str,
    new_email: Option<&str>,
) -> Result<(), ApiError> {
    let email = &ctx.config.email;
    let message = render(
        purpose,
        to,
        &TemplateContext {
            app_name: &email.app_name,
            link: None,
            code: None,
            valid_minutes: 0,
            new_email,
        },
    );
    mail::deliver(
        ctx.env,
        ctx.config,
        ctx.worker,
        Outgoing {
            message,
            request_id: ctx.meta.request_id.clone(),
            token: None,
            code: None,
        },
    )
    .await
}

/// How a client proves it received a message.
pub enum Proof {
    Token(String),
    Code { email: String, code: String },
}

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

fn invalid_proof(proof: &Proof) -> ApiError {
    match proof {
        Proof::Token(_) => ApiError::invalid("token", "is invalid or expired"),
        Proof::Code { .. } => ApiError::invalid("code", "is invalid or expired"),
    }
}

/// Find the live token a proof names. A wrong code counts against its token's attempts.
pub async fn find_token(
    ctx: &Ctx<'_>,
    db: &Database,
    purpose: Purpose,
    proof: &Proof,
) -> Result<TokenRow, ApiError> {
    let now = now_seconds();
    let found = match proof {
        Proof::Token(token) => {
            if !is_well_formed_opaque_token(token) {
                return Err(invalid_proof(proof));
            }
            one_time_tokens::find_live_by_hash(db, purpose, &hash_opaque_token(token), now).await?
        }
        Proof::Code { email, code } => {
            let (Ok(email), true) = (normalize_email(email), is_code(code)) else {
                return Err(invalid_proof(proof));
            };
            match one_time_tokens::find_live_by_email(db, purpose, &email, now).await? {
                Some(row) if code_matches(&row.id, code, &row.code_hash) => Some(row),
                Some(row) => {
                    one_time_tokens::record_failed_code(
                        db,
                        &row.id,
                        ctx.config.email.max_code_attempts,
                        now,
                    )
                    .await?;
                    log::security_event(
                        ctx.meta,
                        "code_rejected",
                        json!({ "purpose": purpose.as_str(), "user_id": row.user_id, "attempt": row.attempts + 1 }),
                    );
                    None
                }
                None => None,
            }
        }
    };
    found.ok_or_else(|| invalid_proof(proof))
}

/// Spend a token for its effect; a token spent concurrently by another request is invalid.
pub async fn spend(
    db: &Database,
    token: &TokenRow,
    effect: Effect<'_>,
    proof: &Proof,
) -> Result<User, ApiError> {
    one_time_tokens::spend(
        db,
        token,
        effect,
        &Uuid::new_v4().to_string(),
        now_seconds(),
    )
    .await?
    .ok_or_else(|| invalid_proof(proof))
}

/// Verify an address; the account's email must still be the one the message went to.
pub async fn verify_email(ctx: &Ctx<'_>, proof: &Proof) -> Result<User, ApiError> {
    let db = store::database(ctx.env)?;
    let token = find_token(ctx, &db, Purpose::VerifyEmail, proof).await?;
    let user = spend(&db, &token, Effect::VerifyEmail, proof).await?;
    if user.email.as_deref() != Some(token.email.as_str()) || !user.email_verified {
        return Err(invalid_proof(proof));
    }
    log::security_event(ctx.meta, "email_verified", json!({ "user_id": user.id }));
    Ok(user)
}

/// Set a new password from a reset token: every session ends, the address is verified.
pub async fn reset_password(
    ctx: &Ctx<'_>,
    proof: &Proof,
    new_password: &str,
) -> Result<User, ApiError> {
    let db = store::database(ctx.env)?;
    let token = find_token(ctx, &db, Purpose::ResetPassword, proof).await?;
    let owner = users::find_by_id(&db, &token.user_id)
        .await?
        .ok_or_else(|| invalid_proof(proof))?;
    ctx.config
        .password_policy
        .check(
            "new_password",
            new_password,
            &owner.username,
            owner.email.as_deref(),
        )
        .map_err(|error| ApiError::Validation(vec![error]))?;
    reject_breached(ctx, "new_password", new_password).await?;
    let password_hash = ctx
        .config
        .hasher
        .hash(new_password, &random_bytes::<16>()?)
        .map_err(|error| ApiError::internal("password hash", error))?;
    let user = spend(
        &db,
        &token,
        Effect::ResetPassword {
            password_hash: &password_hash,
        },
        proof,
    )
    .await?;
    log::security_event(ctx.meta, "password_reset", json!({ "user_id": user.id }));
    // Whoever proved the mailbox may sign in at once, even if someone else locked the
    // account with wrong passwords meanwhile.
    let subject = login_subject(Some(&user.id), &user.username);
    // The reset itself stands even when KV does not answer; only the unlock is lost.
    let cleared = login_failures::clear(ctx.env, &ctx.config.identifier_digest(&subject)).await;
    lockout_fail_open(ctx, "delete", cleared);
    Ok(user)
}

/// Make a confirmed new address the account's email.
pub async fn confirm_email_change(ctx: &Ctx<'_>, proof: &Proof) -> Result<User, ApiError> {
    let db = store::database(ctx.env)?;
    let token = find_token(ctx, &db, Purpose::ChangeEmail, proof).await?;
    let user = spend(&db, &token, Effect::ChangeEmail, proof).await?;
    log::security_event(ctx.meta, "email_changed", json!({ "user_id": user.id }));
    Ok(user)
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
    let (user, detail) = match flow {
        Redeem::VerifyEmail => (verify_email(ctx, &proof).await?, "Email verified"),
        Redeem::ConfirmEmailChange => (confirm_email_change(ctx, &proof).await?, "Email changed"),
    };
    ctx.set_user(&user.id);
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
    let db = store::database(ctx.env)?;
    match users::find_by_email(&db, &email).await? {
        Some(user) if !user.email_verified => {
            let prepared = prepare(ctx, Purpose::VerifyEmail, &user.id, &email)?;
            issue_and_send(ctx, &db, &prepared).await?;
        }
        _ => one_time_tokens::equivalent_work(&db, now_seconds()).await?,
    }
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
    let db = store::database(ctx.env)?;
    let user = users::find_by_identifier(&db, &identifier).await?;
    match user
        .as_ref()
        .and_then(|user| user.email.as_deref().map(|email| (user, email)))
    {
        Some((user, email)) => {
            let prepared = prepare(ctx, Purpose::ResetPassword, &user.id, email)?;
            issue_and_send(ctx, &db, &prepared).await?;
            log::security_event(
                ctx.meta,
                "password_reset_requested",
                json!({ "user_id": user.id }),
            );
        }
        None => one_time_tokens::equivalent_work(&db, now_seconds()).await?,
    }
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
    let user = reset_password(ctx, &proof, &new_password).await?;
    ctx.set_user(&user.id);
    json(
        200,
        &Message::new("Password has been reset; every session was signed out"),
    )
}
