//! `/api/v1/auth/*`: signup, login, refresh and password change.

use crate::domain::password::{Verification, MAX_PASSWORD_BYTES};
use crate::domain::secret::{encode_opaque_token, hash_opaque_token, is_well_formed_opaque_token};
use crate::domain::token::{sign, AccessClaims};
use crate::domain::user::{looks_like_email, mask_email, normalize_email, normalize_username};
use crate::error::{ApiError, FieldError, INVALID_CREDENTIALS};
use crate::http::auth::authenticate;
use crate::http::body::read_json;
use crate::http::response::{json, ApiResult};
use crate::http::{log, now_seconds};
use crate::routes::users::{confirm_password, user_json};
use crate::routes::Ctx;
use crate::store;
use crate::store::sessions::{self, NewSession};
use crate::store::users::{self, NewUser, UserRow};
use serde_json::json;
use uuid::Uuid;
use worker::Request;

/// Fill a buffer from the platform CSPRNG (WebCrypto in workerd).
fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0_u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| ApiError::Internal)?;
    Ok(bytes)
}

/// A fresh refresh token and the digest that is stored for it.
fn new_refresh_token() -> Result<(String, String), ApiError> {
    let token = encode_opaque_token(&random_bytes::<32>()?);
    let digest = hash_opaque_token(&token);
    Ok((token, digest))
}

/// The token response shared by signup, login and refresh.
fn token_response(
    ctx: &Ctx<'_>,
    status: u16,
    user: &UserRow,
    session_id: &str,
    refresh_token: &str,
    now: i64,
) -> ApiResult {
    let claims = AccessClaims {
        iss: ctx.config.tokens.issuer.clone(),
        aud: ctx.config.tokens.audience.clone(),
        sub: user.id.clone(),
        jti: Uuid::new_v4().to_string(),
        sid: session_id.to_owned(),
        roles: user.role_names(),
    };
    let access_token =
        sign(&ctx.config.keys, &ctx.config.tokens, claims, now).map_err(|_| ApiError::Internal)?;
    json(
        status,
        &json!({
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": ctx.config.tokens.ttl_seconds,
            "user": user_json(user),
        }),
    )
}

/// `POST /api/v1/auth/signup` `{username, email?, password}` -> 201 with tokens.
pub async fn signup(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("signup", ctx.config.signup_rate_limit)
        .await?;
    let mut fields = read_json(req, ctx.config.max_body_bytes).await?;
    let username = fields
        .required_string("username")
        .and_then(|raw| fields.check(normalize_username(&raw)));
    let email = fields
        .optional_string("email")
        .and_then(|raw| fields.check(normalize_email(&raw)));
    let password = fields.required_string("password");
    if let (Some(username), Some(password)) = (&username, &password) {
        fields.check(ctx.config.password_policy.check(
            "password",
            password,
            username,
            email.as_deref(),
        ));
    }
    fields.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::Internal);
    };

    let now = now_seconds();
    let password_hash = ctx
        .config
        .hasher
        .hash(&password, &random_bytes::<16>()?)
        .map_err(|_| ApiError::Internal)?;
    let user_id = Uuid::new_v4().to_string();
    let session_id = Uuid::new_v4().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token()?;
    let db = store::database(ctx.env)?;
    sessions::create_user_with_session(
        &db,
        &NewUser {
            id: &user_id,
            username: &username,
            email: email.as_deref(),
            password_hash: &password_hash,
            now,
        },
        &NewSession {
            id: &session_id,
            user_id: &user_id,
            refresh_token_hash: &refresh_hash,
            user_agent: ctx.meta.user_agent.as_deref(),
            colo: ctx.meta.colo.as_deref(),
            now,
            expires_at: now + ctx.config.refresh_ttl_seconds,
        },
    )
    .await?;
    ctx.set_user(&user_id);
    let user = UserRow {
        id: user_id,
        username,
        email,
        password_hash,
        email_verified: 0,
        created_at: now,
        updated_at: now,
        roles: Some("user".into()),
    };
    token_response(ctx, 201, &user, &session_id, &refresh_token, now)
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized(INVALID_CREDENTIALS.into())
}

/// `POST /api/v1/auth/login` `{username | email, password}` -> 200 with tokens.
///
/// An unknown account and a wrong password give the same 401 body and both cost one argon2
/// hash, so neither the answer nor its timing tells whether an account exists.
pub async fn login(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("login", ctx.config.login_rate_limit).await?;
    let mut fields = read_json(req, ctx.config.max_body_bytes).await?;
    let username = fields.optional_string("username");
    let email = fields.optional_string("email");
    let password = fields.required_string("password");
    let identifier = email.or(username);
    if identifier.is_none() {
        fields.reject(FieldError::new("username", "username or email is required"));
    }
    fields.finish()?;
    let (Some(identifier), Some(password)) = (identifier, password) else {
        return Err(ApiError::Internal);
    };
    if password.len() > MAX_PASSWORD_BYTES {
        // No stored password can be this long; refuse before hashing (argon2 cost grows
        // with input). Independent of the account, so it reveals nothing.
        return Err(invalid_credentials());
    }

    let db = store::database(ctx.env)?;
    let identifier = identifier.trim();
    let user = if looks_like_email(identifier) {
        match normalize_email(identifier) {
            Ok(email) => users::find_by_email(&db, &email).await?,
            Err(_) => None,
        }
    } else {
        match normalize_username(identifier) {
            Ok(username) => users::find_by_username(&db, &username).await?,
            Err(_) => None,
        }
    };
    let masked = if looks_like_email(identifier) {
        mask_email(identifier)
    } else {
        identifier.chars().take(42).collect()
    };
    let Some(user) = user else {
        ctx.config.hasher.burn(&password);
        log::security_event(
            ctx.meta,
            "login_failed",
            json!({ "reason": "unknown_account", "identifier": masked }),
        );
        return Err(invalid_credentials());
    };
    let verification = ctx
        .config
        .hasher
        .verify(&password, &user.password_hash)
        .map_err(|_| ApiError::Internal)?;
    if verification == Verification::Mismatch {
        log::security_event(
            ctx.meta,
            "login_failed",
            json!({ "reason": "wrong_password", "user_id": user.id }),
        );
        return Err(invalid_credentials());
    }
    let rehashed = if verification == Verification::MatchNeedsRehash {
        Some(
            ctx.config
                .hasher
                .hash(&password, &random_bytes::<16>()?)
                .map_err(|_| ApiError::Internal)?,
        )
    } else {
        None
    };

    let now = now_seconds();
    let session_id = Uuid::new_v4().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token()?;
    sessions::create_session(
        &db,
        &NewSession {
            id: &session_id,
            user_id: &user.id,
            refresh_token_hash: &refresh_hash,
            user_agent: ctx.meta.user_agent.as_deref(),
            colo: ctx.meta.colo.as_deref(),
            now,
            expires_at: now + ctx.config.refresh_ttl_seconds,
        },
        rehashed.as_deref(),
    )
    .await?;
    ctx.set_user(&user.id);
    token_response(ctx, 200, &user, &session_id, &refresh_token, now)
}

/// `POST /api/v1/auth/refresh` `{refresh_token}` -> 200 with a new access token and the
/// refresh token's successor; the presented token is spent.
pub async fn refresh(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("refresh", ctx.config.refresh_rate_limit)
        .await?;
    let mut fields = read_json(req, ctx.config.max_body_bytes).await?;
    let presented = fields.required_string("refresh_token");
    fields.finish()?;
    let presented = presented.unwrap_or_default();
    let refused = || ApiError::Unauthorized("Invalid or expired refresh token".into());
    if !is_well_formed_opaque_token(&presented) {
        return Err(refused());
    }
    let now = now_seconds();
    let (successor, successor_hash) = new_refresh_token()?;
    let db = store::database(ctx.env)?;
    let rotated =
        sessions::rotate_refresh_token(&db, &hash_opaque_token(&presented), &successor_hash, now)
            .await?
            .ok_or_else(|| {
                log::security_event(ctx.meta, "refresh_rejected", json!({}));
                refused()
            })?;
    ctx.set_user(&rotated.user.id);
    token_response(
        ctx,
        200,
        &rotated.user,
        &rotated.session_id,
        &successor,
        now,
    )
}

/// `POST /api/v1/auth/password/change` `{current_password, new_password}`: every other
/// session of the account is revoked; this one stays signed in.
pub async fn change_password(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    let caller = authenticate(req, ctx).await?;
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
        return Err(ApiError::Internal);
    };
    confirm_password(ctx, &caller.user, "current_password", &current)?;
    let new_hash = ctx
        .config
        .hasher
        .hash(&new, &random_bytes::<16>()?)
        .map_err(|_| ApiError::Internal)?;
    let db = store::database(ctx.env)?;
    let revoked = users::update_password(
        &db,
        &caller.user.id,
        &new_hash,
        Some(&caller.token.claims.sid),
        now_seconds(),
    )
    .await?;
    log::security_event(
        ctx.meta,
        "password_changed",
        json!({ "user_id": caller.user.id, "sessions_revoked": revoked }),
    );
    json(
        200,
        &json!({ "detail": "Password changed", "sessions_revoked": revoked }),
    )
}
