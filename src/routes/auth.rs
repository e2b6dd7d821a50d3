//! `/api/v1/auth/*`: signup, login, refresh, logout and password change.

use crate::domain::audit::{mask_identifier, AuditAction};
use crate::domain::email::Purpose;
use crate::domain::lockout::{login_subject, FailureState, Gate};
use crate::domain::metrics::Event;
use crate::domain::password::{Verification, MAX_PASSWORD_BYTES};
use crate::domain::secret::hash_opaque_token;
use crate::domain::session::{encode_refresh_token, refresh_token_session};
use crate::domain::token::{sign, AccessClaims};
use crate::domain::user::User;
use crate::domain::user::{mask_email, normalize_email, normalize_username};
use crate::error::{ApiError, FieldError, INVALID_CREDENTIALS};
use crate::http::auth::Authenticated;
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::email::{self as email_flows, PreparedToken};
use crate::routes::openapi::{Conflict, Forbidden, RateLimited, Unauthorized, Unavailable};
use crate::routes::password_checks::{confirm_password, lockout_fail_open, reject_breached};
use crate::routes::requests::{LoginRequest, PasswordChangeRequest, RefreshRequest, SignupRequest};
use crate::routes::views::{self, PasswordChanged, Signup, TokenResponse, VerificationRequired};
use crate::runtime::{now_seconds, random_bytes};
use crate::service;
use crate::store::d1_backend::D1Backend;
use crate::store::session_guard::RotateOutcome;
use crate::store::sessions::{self, NewSession};
use crate::store::users::{self, NewUser};
use crate::store::Database;
use crate::store::{self, audit, login_failures, session_guard};
use futures_util::future::join;
use serde_json::json;
use uuid::Uuid;
use worker::Request;

/// A fresh refresh token for a session and the digest that is stored for it.
fn new_refresh_token(session_id: &str) -> Result<(String, String), ApiError> {
    let token = encode_refresh_token(session_id, &random_bytes::<32>()?);
    let digest = hash_opaque_token(&token);
    Ok((token, digest))
}

/// A new session row for this request's client.
fn new_session<'a>(
    ctx: &'a Ctx<'_>,
    id: &'a str,
    user_id: &'a str,
    refresh_token_hash: &'a str,
    now: i64,
) -> NewSession<'a> {
    NewSession {
        id,
        user_id,
        refresh_token_hash,
        user_agent: ctx.meta.user_agent.as_deref(),
        colo: ctx.meta.colo.as_deref(),
        country: ctx.meta.country.as_deref(),
        now,
        expiry: ctx.config.sessions.start(now),
    }
}

/// The tokens of a session, as signup, login and refresh answer them.
fn tokens(
    ctx: &Ctx<'_>,
    user: &User,
    session_id: &str,
    refresh_token: &str,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    let claims = AccessClaims {
        iss: ctx.config.tokens.issuer.clone(),
        aud: ctx.config.tokens.audience.clone(),
        sub: user.id.clone(),
        jti: Uuid::new_v4().to_string(),
        sid: session_id.to_owned(),
        roles: user.roles.clone(),
        email_verified: user.email_verified,
    };
    let access_token = sign(&ctx.config.keys, &ctx.config.tokens, claims, now)
        .map_err(|error| ApiError::internal("token signing", error))?;
    Ok(TokenResponse {
        access_token,
        refresh_token: refresh_token.to_owned(),
        token_type: "bearer".into(),
        expires_in: u64::try_from(ctx.config.tokens.ttl_seconds).unwrap_or(0),
        user: views::User::from(user),
    })
}

/// The token response of login and refresh.
fn token_response(
    ctx: &Ctx<'_>,
    status: u16,
    user: &User,
    session_id: &str,
    refresh_token: &str,
    now: i64,
) -> ApiResult {
    json(status, &tokens(ctx, user, session_id, refresh_token, now)?)
}

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
    reject_breached(ctx, "password", &password).await?;

    let now = now_seconds();
    let password_hash = ctx
        .config
        .hasher
        .hash(&password, &random_bytes::<16>()?)
        .map_err(|error| ApiError::internal("password hash", error))?;
    let user_id = Uuid::new_v4().to_string();
    let session_id = Uuid::new_v4().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token(&session_id)?;
    let db = store::database(ctx.env)?;
    let verification = email
        .as_deref()
        .map(|email| email_flows::prepare(ctx, Purpose::VerifyEmail, &user_id, email))
        .transpose()?;
    let digests = verification.as_ref().map(PreparedToken::digests);
    let verification_record = verification
        .as_ref()
        .zip(digests.as_ref())
        .map(|(prepared, digests)| prepared.record(digests));
    // An account that must verify its email gets no session until it has.
    let session = (!require_verification)
        .then(|| new_session(ctx, &session_id, &user_id, &refresh_hash, now));
    let created = sessions::create_user_with_session(
        &db,
        &NewUser {
            id: &user_id,
            username: &username,
            email: email.as_deref(),
            password_hash: &password_hash,
            now,
        },
        session.as_ref(),
        &ctx.audit(AuditAction::Signup, now)
            .by_self(&user_id)
            .with("session_id", session_id.as_str()),
        verification_record.as_ref(),
    )
    .await;
    let user = User {
        id: user_id,
        username,
        email,
        password_hash,
        email_verified: false,
        created_at: now,
        updated_at: now,
        roles: vec!["user".into()],
        banned_at: None,
        banned_until: None,
        ban_reason: None,
        session_signed_in_at: None,
    };
    match created {
        Ok(()) => {}
        // When accounts must verify their address, a taken email must not be told apart
        // from a fresh signup: the same 201 with an account that was never stored, after
        // the same hash and D1 batch; the owner of the address hears of it by email. (A
        // taken username is still a 409: usernames are public handles. When both are taken
        // the batch fails on the username first — see `store::users::insert_statements` —
        // so that case is a 409 too, whatever the email.)
        Err(error) if require_verification && store::is_email_taken(&error) => {
            if let Some(owner) = &user.email {
                email_flows::send_notice(ctx, Purpose::SignupAttemptNotice, owner, None).await?;
            }
            log::security_event(
                ctx.meta,
                "signup_email_taken",
                json!({ "email": user.email.as_deref().map(mask_email) }),
            );
            return verification_required(&user);
        }
        Err(error) => return Err(error.into()),
    }
    ctx.count(Event::Signup);
    ctx.set_user(&user.id);
    if let Some(prepared) = &verification {
        email_flows::send_token(ctx, prepared).await?;
    }
    if require_verification {
        return verification_required(&user);
    }
    json(
        201,
        &Signup::Tokens(tokens(ctx, &user, &session_id, &refresh_token, now)?),
    )
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

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized(INVALID_CREDENTIALS.into())
}

/// Count a failed login against its identifier; log the lockout it may start.
async fn record_login_failure(
    ctx: &Ctx<'_>,
    digest: &str,
    state: FailureState,
    now: i64,
    masked: &str,
) {
    let policy = ctx.config.lockout;
    let outcome = policy.record_failure(state, now);
    if let Some(seconds) = outcome.locked_for_seconds {
        log::security_event(
            ctx.meta,
            "login_locked",
            json!({
                "started": true,
                "identifier": masked,
                "lockout_seconds": seconds,
                "lockouts": outcome.state.lockouts,
            }),
        );
    }
    let saved = login_failures::save(
        ctx.env,
        digest,
        &outcome.state,
        policy.forget_at(&outcome.state),
        now,
    )
    .await;
    lockout_fail_open(ctx, "write", saved);
}

/// Record a refused login — a security log line and an audit entry — and return the
/// error to answer with. `user_id` is the account when one was found; otherwise only a
/// masked identifier is kept.
async fn login_refused(
    ctx: &Ctx<'_>,
    db: &Database,
    reason: &str,
    user_id: Option<&str>,
    identifier: &str,
    error: ApiError,
) -> ApiError {
    let mut entry = ctx
        .audit(AuditAction::LoginFailed, now_seconds())
        .with("reason", reason);
    let mut fields = json!({ "reason": reason });
    match user_id {
        Some(user_id) => {
            entry = entry.on(user_id);
            fields["user_id"] = user_id.into();
        }
        None => {
            let masked = mask_identifier(identifier);
            entry = entry.with("identifier", masked.as_str());
            fields["identifier"] = masked.into();
        }
    }
    log::security_event(ctx.meta, "login_failed", fields);
    ctx.count(Event::LoginFailure);
    match audit::record(db, &entry).await {
        Ok(()) => error,
        // The refusal stands either way; an outage is reported as one.
        Err(outage) => outage.into(),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    summary = "Sign in with a username or email and a password",
    request_body = LoginRequest,
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
    let identifier = identifier.trim();
    let masked = mask_identifier(identifier);
    let db = store::database(ctx.env)?;
    if password.len() > MAX_PASSWORD_BYTES {
        // No stored password can be this long; refuse before hashing (argon2 cost grows
        // with input). Independent of the account, so it reveals nothing.
        return Err(login_refused(
            ctx,
            &db,
            "password_too_long",
            None,
            identifier,
            invalid_credentials(),
        )
        .await);
    }

    // The account first: failures and the per-account budget count against it whichever of
    // its names was typed, and against the identifier itself when it names none. The budget
    // (a Durable Object) and the failure count (KV) are then read together.
    let user = users::find_by_identifier(&db, identifier).await?;
    let subject = login_subject(user.as_ref().map(|user| user.id.as_str()), identifier);
    let digest = ctx.config.identifier_digest(&subject);
    let (budget, failures) = join(
        ctx.rate_limit_by(
            "login",
            "account",
            &subject,
            ctx.config.login_account_rate_limit,
        ),
        login_failures::load(ctx.env, &digest),
    )
    .await;
    budget?;
    let failures = lockout_fail_open(ctx, "read", failures);
    let now = now_seconds();
    if let Gate::Locked {
        retry_after_seconds,
    } = ctx.config.lockout.gate(&failures, now)
    {
        // Refused before the password is looked at, so the answer is the same for a right
        // and a wrong one; one hash all the same, so the timing is too.
        ctx.config.hasher.burn(&password);
        ctx.count(Event::LoginFailure);
        log::security_event(
            ctx.meta,
            "login_locked",
            json!({
                "started": false,
                "identifier": masked,
                "retry_after_seconds": retry_after_seconds,
            }),
        );
        return Err(ApiError::LoginLocked(retry_after_seconds));
    }
    let Some(user) = user else {
        ctx.config.hasher.burn(&password);
        record_login_failure(ctx, &digest, failures, now, &masked).await;
        return Err(login_refused(
            ctx,
            &db,
            "unknown_account",
            None,
            identifier,
            invalid_credentials(),
        )
        .await);
    };
    let verification = ctx
        .config
        .hasher
        .verify(&password, &user.password_hash)
        .map_err(|error| ApiError::internal("password verification", error))?;
    if verification == Verification::Mismatch {
        record_login_failure(ctx, &digest, failures, now, &masked).await;
        return Err(login_refused(
            ctx,
            &db,
            "wrong_password",
            Some(&user.id),
            identifier,
            invalid_credentials(),
        )
        .await);
    }
    // Only after the password is proven: a ban must not reveal that an account exists.
    if let Some(detail) = user.ban_state(now_seconds()).login_refusal() {
        return Err(login_refused(
            ctx,
            &db,
            "banned",
            Some(&user.id),
            identifier,
            ApiError::Forbidden(detail),
        )
        .await);
    }
    if !failures.is_clear() {
        lockout_fail_open(ctx, "delete", login_failures::clear(ctx.env, &digest).await);
    }
    if ctx.config.email.require_verification && !user.email_verified {
        // Only after the password proved right: the answer reveals nothing to a guesser.
        ctx.count(Event::LoginFailure);
        log::security_event(
            ctx.meta,
            "login_refused",
            json!({ "reason": "email_not_verified", "user_id": user.id }),
        );
        return Err(ApiError::Forbidden(
            "Email address is not verified: use the link or code we sent, or ask for a new one"
                .into(),
        ));
    }
    let rehashed = if verification == Verification::MatchNeedsRehash {
        Some(
            ctx.config
                .hasher
                .hash(&password, &random_bytes::<16>()?)
                .map_err(|error| ApiError::internal("password rehash", error))?,
        )
    } else {
        None
    };

    let session_id = Uuid::new_v4().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token(&session_id)?;
    sessions::create_session(
        &db,
        &new_session(ctx, &session_id, &user.id, &refresh_hash, now),
        rehashed.as_deref(),
        &ctx.audit(AuditAction::Login, now)
            .by_self(&user.id)
            .with("session_id", session_id.as_str()),
    )
    .await?;
    ctx.count(Event::LoginSuccess);
    ctx.set_user(&user.id);
    token_response(ctx, 200, &user, &session_id, &refresh_token, now)
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
    let refused = || ApiError::Unauthorized("Invalid or expired refresh token".into());
    let Some(session_id) = refresh_token_session(&presented) else {
        log::security_event(
            ctx.meta,
            "refresh_rejected",
            json!({ "reason": "malformed" }),
        );
        return Err(refused());
    };
    let reply = session_guard::rotate(
        ctx.env,
        session_id,
        &hash_opaque_token(&presented),
        ctx.origin(),
        ctx.config.refresh_rate_limit,
    )
    .await?;
    ctx.apply_rate_limit("refresh", "session", reply.decision)?;
    let Some(outcome) = reply.outcome else {
        return Err(ApiError::internal(
            "validated field",
            "missing after validation",
        ));
    };
    let (refresh_token, user) = match outcome {
        RotateOutcome::Rotated {
            refresh_token,
            user,
        }
        | RotateOutcome::Replayed {
            refresh_token,
            user,
        } => (refresh_token, user),
        RotateOutcome::Reused { user_id } => {
            ctx.count(Event::RefreshTokenReuse);
            log::security_event(
                ctx.meta,
                "refresh_token_reuse",
                json!({ "session_id": session_id, "user_id": user_id }),
            );
            return Err(refused());
        }
        RotateOutcome::Invalid => {
            log::security_event(
                ctx.meta,
                "refresh_rejected",
                json!({ "reason": "not_live", "session_id": session_id }),
            );
            return Err(refused());
        }
    };
    ctx.count(Event::Refresh);
    ctx.set_user(&user.id);
    token_response(ctx, 200, &user, session_id, &refresh_token, now_seconds())
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
    let backend = D1Backend::new(ctx.env);
    service::sessions::logout(&backend, &caller.token, &ctx.origin(), now_seconds()).await?;
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
    let backend = D1Backend::new(ctx.env);
    let revoked =
        service::sessions::logout_everywhere(&backend, &caller.token, &ctx.origin(), now_seconds())
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
    confirm_password(ctx, &caller.user, "current_password", &current).await?;
    reject_breached(ctx, "new_password", &new).await?;
    let new_hash = ctx
        .config
        .hasher
        .hash(&new, &random_bytes::<16>()?)
        .map_err(|error| ApiError::internal("password hash", error))?;
    let db = store::database(ctx.env)?;
    let now = now_seconds();
    let revoked = users::update_password(
        &db,
        &caller.user.id,
        &new_hash,
        Some(&caller.token.claims.sid),
        now,
        &ctx.audit(AuditAction::PasswordChanged, now)
            .by_self(&caller.user.id),
    )
    .await?;
    log::security_event(
        ctx.meta,
        "password_changed",
        json!({ "user_id": caller.user.id, "sessions_revoked": revoked }),
    );
    json(
        200,
        &PasswordChanged {
            detail: "Password changed".into(),
            sessions_revoked: revoked as u64,
        },
    )
}
