//! Bearer authentication: the one place a request becomes an authenticated user.
//!
//! A token must verify (signature, algorithm, key, issuer, audience, lifetime) and its session
//! must still be live in D1 — the same query reads the account, so revocation and deletion
//! cost no extra round trip.

use crate::domain::token::{verify, VerifiedToken};
use crate::error::ApiError;
use crate::http::{log, now_seconds};
use crate::routes::Ctx;
use crate::store::{self, users::UserRow};
use serde_json::json;
use worker::Request;

/// The caller behind a valid bearer token.
pub struct Authenticated {
    pub token: VerifiedToken,
    pub user: UserRow,
}

/// Extract the token from `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(req: &Request) -> Option<String> {
    let header = req.headers().get("authorization").ok().flatten()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Authenticate the request or fail with 401.
pub async fn authenticate(req: &Request, ctx: &Ctx<'_>) -> Result<Authenticated, ApiError> {
    let token =
        bearer_token(req).ok_or_else(|| ApiError::Unauthorized("Not authenticated".into()))?;
    let now = now_seconds();
    let verified = verify(&ctx.config.keys, &ctx.config.tokens, &token, now).map_err(|error| {
        log::security_event(
            ctx.meta,
            "token_rejected",
            json!({ "reason": format!("{error:?}") }),
        );
        ApiError::Unauthorized(error.detail().into())
    })?;
    let db = store::database(ctx.env)?;
    let user =
        store::users::find_by_live_session(&db, &verified.claims.sub, &verified.claims.sid, now)
            .await?
            .ok_or_else(|| {
                log::security_event(
                    ctx.meta,
                    "token_rejected",
                    json!({ "reason": "SessionNotLive", "user_id": verified.claims.sub }),
                );
                ApiError::Unauthorized("Session is no longer valid".into())
            })?;
    ctx.set_user(&user.id);
    Ok(Authenticated {
        token: verified,
        user,
    })
}
