//! `/api/v1/auth/*`: signup, login, refresh, logout and password change.

use crate::domain::user::{normalize_email, normalize_username, User};
use crate::error::{ApiError, FieldError};
use crate::http::auth::Authenticated;
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{Conflict, Forbidden, RateLimited, Unauthorized, Unavailable};
use crate::routes::requests::{LoginRequest, PasswordChangeRequest, RefreshRequest, SignupRequest};
use crate::routes::views::{self, PasswordChanged, Signup, TokenResponse, VerificationRequired};
use crate::runtime::now_seconds;
use crate::service;
use crate::service::auth::{SignupInput, SignupOutcome};
use serde_json::json;
use worker::Request;

#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "auth",
    summary = "Create an account and sign in",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Signed up: the tokens of its first session or, when the address must be verified first, no session yet", body = views::Signup),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/signup` `{username, email?, password}` -> 201 with tokens.
pub async fn signup(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("signup", ctx.config.signup_rate_limit)
        .await?;
    let (body, mut problems) = read_body::<SignupRequest>(req, ctx.config.max_body_bytes).await?;
    let username = problems
        .valid("username", body.username.as_str())
        .and_then(|raw| problems.check(normalize_username(raw)));
    let email = body
        .email
        .as_deref()
        .and_then(|raw| problems.check(normalize_email(raw)));
    // Checked whatever the other fields' fate, so every field's problem comes back at once;
    // an invalid username or email is still compared as sent (a mistyped one as empty).
    if let Some(password) = problems.valid("password", body.password.as_str()) {
        problems.check(ctx.config.password_policy.check(
            "password",
            password,
            username.as_deref().unwrap_or(&body.username),
            email.as_deref().or(body.email.as_deref()),
        ));
    }
    let require_verification = ctx.config.email.require_verification;
    if require_verification && email.is_none() && !problems.has_errors_for("email") {
        problems.reject(FieldError::new(
            "email",
            "is required: accounts must verify an email address",
        ));
    }
    problems.finish()?;
    let Some(username) = username else {
        return Err(ApiError::internal(
            "validated field",
            "missing after validation",
        ));
    };
    let password = body.password;
    let input = SignupInput {
        username,
        email,
        password,
    };
    match service::auth::signup(&ctx.deps(), input, now_seconds()).await? {
        SignupOutcome::SignedIn(signed_in) => {
            json(201, &Signup::Tokens(TokenResponse::from(signed_in)))
        }
        SignupOutcome::VerificationRequired(user) => verification_required(&user),
    }
}

/// The signup answer when the address must be verified before the first login.
fn verification_required(user: &User) -> ApiResult {
    json(
        201,
        &Signup::VerificationRequired(VerificationRequired {
            verification_required: true,
            detail: "Check your email to verify your address, then sign in".into(),
            user: views::User::from(user),
        }),
    )
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    summary = "Sign in with a username or email and a password",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; a new session. With a second factor enrolled: `mfa_required` and an `mfa_token` instead, no tokens", body = views::SignIn),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/login` `{username | email, password}` -> 200 with tokens.
///
/// An unknown account and a wrong password give the same 401 body, both cost one argon2
/// hash and both count towards the identifier's lockout, so neither the answer nor its
/// timing tells whether an account exists. Budgets: per client IP (`RATE_LIMIT_LOGIN`) and
/// per identifier (`RATE_LIMIT_LOGIN_ACCOUNT`); after `LOGIN_LOCKOUT_THRESHOLD` failures the
/// identifier is locked (429) before any password is checked.
pub async fn login(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("login", ctx.config.login_rate_limit).await?;
    let (body, mut problems) = read_body::<LoginRequest>(req, ctx.config.max_body_bytes).await?;
    // An empty `email` must not hide a `username` sent beside it.
    let identifier = body
        .email
        .filter(|email| !email.trim().is_empty())
        .or(body.username);
    if identifier.is_none() {
        problems.reject(FieldError::new("username", "username or email is required"));
    }
    problems.finish()?;
    let Some(identifier) = identifier else {
        return Err(ApiError::internal(
            "validated field",
            "missing after validation",
        ));
    };
    let password = body.password;
    let sign_in = service::auth::login(&ctx.deps(), &identifier, &password, now_seconds()).await?;
    json(200, &views::SignIn::from(sign_in))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    summary = "Rotate a refresh token for a new token pair",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and the refresh token's successor", body = views::TokenResponse),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/refresh` `{refresh_token}` -> 200 with a new access token and the
/// refresh token's successor. The session's Durable Object does the rotation, so concurrent
/// refreshes with one token all get the same successor (within the grace window) and a
/// token reused after that window ends the session.
pub async fn refresh(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    let (body, problems) = read_body::<RefreshRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let presented = body.refresh_token;
    let signed_in = service::auth::refresh(&ctx.deps(), &presented, now_seconds()).await?;
    json(200, &TokenResponse::from(signed_in))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    summary = "End this session and this access token now",
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/logout`: end this session and this access token now.
pub async fn logout(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    service::sessions::logout(ctx.store(), &caller.token, &ctx.origin(), now_seconds()).await?;
    let claims = &caller.token.claims;
    log::security_event(
        ctx.meta,
        "logout",
        json!({ "user_id": claims.sub, "session_id": claims.sid }),
    );
    no_content()
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout-all",
    tag = "auth",
    summary = "End every session of the account",
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Every session ended; every earlier access token is refused"),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/logout-all`: end every session of the account and refuse every access
/// token issued before now, wherever it is.
pub async fn logout_all(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let revoked = service::sessions::logout_everywhere(
        ctx.store(),
        &caller.token,
        &ctx.origin(),
        now_seconds(),
    )
    .await?;
    log::security_event(
        ctx.meta,
        "logout_all",
        json!({ "user_id": caller.token.claims.sub, "sessions_revoked": revoked }),
    );
    no_content()
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password/change",
    tag = "auth",
    summary = "Change the password; other sessions end",
    request_body = PasswordChangeRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Changed", body = views::PasswordChanged),
        (status = 403, response = Forbidden),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/password/change` `{current_password, new_password}`: every other
/// session of the account is revoked; this one stays signed in.
pub async fn change_password(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let (body, mut problems) =
        read_body::<PasswordChangeRequest>(req, ctx.config.max_body_bytes).await?;
    if let Some(new) = problems.valid("new_password", body.new_password.as_str()) {
        problems.check(ctx.config.password_policy.check(
            "new_password",
            new,
            &caller.user.username,
            caller.user.email.as_deref(),
        ));
        if problems.valid("current_password", body.current_password.as_str()) == Some(new) {
            problems.reject(FieldError::new(
                "new_password",
                "must differ from the current password",
            ));
        }
    }
    problems.finish()?;
    let PasswordChangeRequest {
        current_password: current,
        new_password: new,
    } = body;
    let revoked = service::auth::change_password(
        &ctx.deps(),
        &caller.user,
        &caller.token.claims.sid,
        &current,
        &new,
        now_seconds(),
    )
    .await?;
    json(
        200,
        &PasswordChanged {
            detail: "Password changed".into(),
            sessions_revoked: revoked as u64,
        },
    )
}
