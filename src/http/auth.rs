//! Bearer authentication: the one place a request becomes an authenticated user.
//!
//! A token must verify (signature, algorithm, key, issuer, audience, lifetime), must not be on
//! the KV revocation list, and its session must still be live in D1 with the token issued
//! after the account's not-before stamp. The KV and D1 reads run concurrently; the D1 query
//! also reads the account, so revocation and deletion cost no extra round trip.
//!
//! A client sends the same access token with every request for its lifetime, and checking
//! its signature was the largest single cost of an authenticated request
//! (`benches/profile.mjs`). So an isolate remembers, by SHA-256 digest, the tokens whose
//! signature it has verified, for a few minutes. Only the signature check is skipped:
//! the claims (lifetime, issuer, audience), the revocation list and the session are
//! checked on every request, and a token that failed is never remembered.

use crate::domain::token::{inspect, validate_claims, verify, TokenError, VerifiedToken};
use crate::domain::ttl_cache::TtlCache;
use crate::domain::user::User;
use crate::error::ApiError;
use crate::http::context::Ctx;
use crate::http::log;
use crate::runtime::{now_seconds, webcrypto};
use crate::store::traits::{RevocationStore, UserStore};
use futures_util::future::join;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use worker::Date;

/// Signatures an isolate remembers at most: a digest and an expiry each, some 100 KiB in all.
const VERIFIED_CAPACITY: usize = 2_048;

/// How long a verified signature is remembered. Key rotation needs no flush: a retired key
/// leaves the key set only with a new deployment, which starts new isolates.
const VERIFIED_TTL_MS: u64 = 300_000;

thread_local! {
    static VERIFIED: RefCell<TtlCache<[u8; 32], ()>> =
        RefCell::new(TtlCache::new(VERIFIED_CAPACITY, VERIFIED_TTL_MS));
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The caller behind a valid bearer token.
pub struct Authenticated {
    pub token: VerifiedToken,
    pub user: User,
}

/// Extract the token from `Authorization: Bearer <token>` (scheme case-insensitive).
pub(crate) fn bearer_token(req: &web_sys::Request) -> Option<String> {
    let header = req.headers().get("authorization").ok().flatten()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Verify a token's signature with WebCrypto (the fast path) and its claims with the domain
/// rules. The algorithm is already pinned to the key's by `inspect`, before any crypto.
/// Should WebCrypto itself fail, the pure-Rust verifier decides instead: slower, never
/// weaker.
async fn verify_token(ctx: &Ctx<'_>, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
    let keys = &ctx.config.keys;
    let pending = inspect(keys, token)?;
    let digest = token_digest(token);
    let now_ms = Date::now().as_millis();
    if VERIFIED.with(|verified| verified.borrow_mut().get(&digest, now_ms).is_some()) {
        return validate_claims(&pending, &ctx.config.tokens, now);
    }
    let public = keys
        .verifying_key(&pending.kid)
        .ok_or(TokenError::UnknownKey)?;
    let checked = match webcrypto::verify(
        &pending.kid,
        public,
        pending.signing_input.as_bytes(),
        pending.signature(),
    )
    .await
    {
        Ok(true) => validate_claims(&pending, &ctx.config.tokens, now),
        Ok(false) => Err(TokenError::BadSignature),
        Err(error) => {
            log::error(ctx.meta, "webcrypto_unavailable", &format!("{error:?}"));
            verify(keys, &ctx.config.tokens, token, now)
        }
    };
    if checked.is_ok() {
        VERIFIED.with(|verified| verified.borrow_mut().insert(digest, (), now_ms));
    }
    checked
}

/// Check the bearer token itself — signature, algorithm, key, issuer, audience, lifetime —
/// or fail with 401. Costs no storage I/O; [`load_caller`] does the lookups.
pub async fn verify_bearer(
    req: &web_sys::Request,
    ctx: &Ctx<'_>,
) -> Result<VerifiedToken, ApiError> {
    let token =
        bearer_token(req).ok_or_else(|| ApiError::Unauthorized("Not authenticated".into()))?;
    verify_token(ctx, &token, now_seconds())
        .await
        .map_err(|error| {
            log::security_event(
                ctx.meta,
                "token_rejected",
                json!({ "reason": format!("{error:?}") }),
            );
            ApiError::Unauthorized(error.detail().into())
        })
}

/// Finish authenticating a verified token: not revoked (KV), session live and account in
/// good standing (D1), concurrently; or fail with 401.
pub async fn load_caller(
    ctx: &Ctx<'_>,
    verified: VerifiedToken,
) -> Result<Authenticated, ApiError> {
    let now = now_seconds();
    let store = ctx.store();
    let (revoked, user) = join(
        store.is_revoked(&verified.claims.jti, ctx.config.revocation_cache_seconds),
        store.find_by_live_session(
            &verified.claims.sub,
            &verified.claims.sid,
            verified.issued_at,
            now,
        ),
    )
    .await;
    let rejected = |reason: &str, detail: &str| {
        log::security_event(
            ctx.meta,
            "token_rejected",
            json!({ "reason": reason, "user_id": verified.claims.sub }),
        );
        ApiError::Unauthorized(detail.into())
    };
    if revoked? {
        return Err(rejected("Revoked", "Token has been revoked"));
    }
    let user = user?.ok_or_else(|| rejected("SessionNotLive", "Session is no longer valid"))?;
    ctx.set_user(&user.id);
    Ok(Authenticated {
        token: verified,
        user,
    })
}

/// Authenticate the request or fail with 401.
pub async fn authenticate(
    req: &web_sys::Request,
    ctx: &Ctx<'_>,
) -> Result<Authenticated, ApiError> {
    let verified = verify_bearer(req, ctx).await?;
    load_caller(ctx, verified).await
}
