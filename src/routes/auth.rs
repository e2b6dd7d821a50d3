//! `/api/v1/auth/*`: signup, login, refresh, logout and password change.

use crate::domain::user::{normalize_email, normalize_username, User};
use crate::error::{ApiError, FieldError};
use crate::http::auth::Authenticated;
use crate::http::body::read_json;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{
    schemas, Conflict, Forbidden, RateLimited, Unauthorized, Unavailable,
};
use crate::routes::views::{self, user_json, PasswordChanged, TokenResponse};
use crate::runtime::now_seconds;
use crate::service;
use crate::service::auth::{SignedIn, SignupInput, SignupOutcome};
use serde_json::json;
use worker::Request;

/// The token response shared by signup, login and refresh.
fn token_response(status: u16, signed_in: SignedIn) -> ApiResult {
    json(
        status,
        &TokenResponse {
            access_token: signed_in.access_token,
            refresh_token: signed_in.refresh_token,
            token_type: "bearer".into(),
            expires_in: signed_in.expires_in,
            user: views::User::from(&signed_in.user),
        },
    )
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "auth",
    summary = "Create an account and sign in",
    request_body = schemas::SignupRequest,
    responses(
        (status = 201, description = "Signed up; the tokens of its first session", body = views::TokenResponse),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/signup` `{username, email?, password}` -> 201 with tokens.
pub async fn signup(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("signup", ctx.config.signup_rate_limit)
        .await?;
    let mut fields = read_json(req, ctx.config.max_body_bytes).await?;
    let raw_username = fields.required_string("username");
    let username = raw_username
        .as_deref()
        .and_then(|raw| fields.check(normalize_username(raw)));
    let raw_email = fields.optional_string("email");
    let email = raw_email
        .as_deref()
        .and_then(|raw| fields.check(normalize_email(raw)));
    let password = fields.required_string("password");
    // Checked whatever the other fields' fate, so every field's problem comes back at once;
    // an invalid username or email is still compared as sent.
    if let Some(password) = &password {
        let username = username.as_deref().or(raw_username.as_deref());
        fields.check(ctx.config.password_policy.check(
            "password",
            password,
            username.unwrap_or_default(),
            email.as_deref().or(raw_email.as_deref()),
        ));
    }
    let require_verification = ctx.config.email.require_verification;
    if require_verification && email.is_none() && !fields.has_errors_for("email") {
        fields.reject(FieldError::new(
            "email",
            "is required: accounts must verify an email address",
        ));
    }
    fields.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::internal(
            "validated field",
            "missing after validation",
        ));
    };
    let input = SignupInput {
        username,
        email,
        password,
    };
    match service::auth::signup(&ctx.deps(), input, now_seconds()).await? {
        SignupOutcome::SignedIn(signed_in) => token_response(201, signed_in),
        SignupOutcome::VerificationRequired(user) => verification_required(&user),
    }
}

/// The signup answer when the address must be verified before the first login.
fn verification_required(user: &User) -> ApiResult {
    json(
        201,
        &json!({
            "verification_required": true,
            "detail": "Check your email to verify your address, then sign in",
            "user": user_json(user),
        }),
    )
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    summary = "Sign in with a username or email and a password",
    request_body = schemas::LoginRequest,
    responses(
        (status = 200, description = "Signed in; a new session", body = views::TokenResponse),
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
    let mut fields = read_json(req, ctx.config.max_body_bytes).await?;
    let username = fields.optional_string("username");
    let email = fields.optional_string("email");
    let password = fields.required_string("password");
    // An empty `email` must not hide a `username` sent beside it.
    let identifier = email.filter(|email| !email.trim().is_empty()).or(username);
    if identifier.is_none() {
        fields.reject(FieldError::new("username", "username or email is required"));
    }
    fields.finish()?;
    let (Some(identifier), Some(password)) = (identifier, password) else {
        return Err(ApiError::internal(
            "validated field",
            "missing after validation",
        ));
    };
    let signed_in =
        service::auth::login(&ctx.deps(), &identifier, &password, now_seconds()).await?;
    token_response(200, signed_in)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    summary = "Rotate a refresh token for a new token pair",
    request_body = schemas::RefreshRequest,
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
    let mut fields = read_json(req, ctx.config.max_body_bytes).await?;
    let presented = fields.required_string("refresh_token");
    fields.finish()?;
    let presented = presented.unwrap_or_default();
    let signed_in = service::auth::refresh(&ctx.deps(), &presented, now_seconds()).await?;
    token_response(200, signed_in)
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
    request_body = schemas::PasswordChangeRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Changed", body = views::PasswordChanged),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/password/change` `{current_password, new_password}`: every other
/// session of the account is revoked; this one stays signed in.
pub async fn change_password(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let mut fields = read_json(req, ctx.config.max_body_bytes).await?;
    let current = fields.required_string("current_password");
    let new = fields.required_string("new_password");
    if let Some(new) = &new {
        fields.check(ctx.config.password_policy.check(
            "new_password",
            new,
            &caller.user.username,
            caller.user.email.as_deref(),
        ));
        if current.as_deref() == Some(new.as_str()) {
            fields.reject(FieldError::new(
                "new_password",
                "must differ from the current password",
            ));
        }
    }
    fields.finish()?;
    let (Some(current), Some(new)) = (current, new) else {
        return Err(ApiError::internal(
            "validated field",
            "missing after validation",
        ));
    };
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
