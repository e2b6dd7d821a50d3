//! Password checks that several flows share: confirming the current password before a
//! sensitive change, refusing a new password found in a breach corpus, and going on without
//! the lockout counters when KV does not answer.

use crate::domain::hibp::{breach_count, range_query, BREACHED};
use crate::domain::password::Verification;
use crate::domain::user::User;
use crate::error::ApiError;
use crate::http::context::Ctx;
use crate::http::log;
use crate::store::error::StoreError;
use crate::store::hibp;
use serde_json::json;

/// Check the account's current password; a wrong one is a 422 on `field`, never a 401 (the
/// client's token is fine; only the confirmation failed). Attempts share the login budget
/// per account, so a stolen access token cannot be used to guess the password at hashing
/// speed.
pub async fn confirm_password(
    ctx: &Ctx<'_>,
    user: &User,
    field: &str,
    password: &str,
) -> Result<Verification, ApiError> {
    ctx.rate_limit_by(
        "password_confirm",
        "account",
        &user.id,
        ctx.config.login_rate_limit,
    )
    .await?;
    let verification = ctx
        .config
        .hasher
        .verify(password, &user.password_hash)
        .map_err(|error| ApiError::internal("password verification", error))?;
    if verification == Verification::Mismatch {
        log::security_event(
            ctx.meta,
            "password_confirmation_failed",
            json!({ "user_id": user.id }),
        );
        return Err(ApiError::invalid(field, "is incorrect"));
    }
    Ok(verification)
}

/// With `HIBP_CHECK=true`, refuse a new password that appears in Have I Been Pwned's
/// corpus (422 on `field`). Only the SHA-1 prefix is sent. Fails open: when the range API
/// cannot be reached, answers other than 200, or is too slow, the password passes and a
/// `hibp_unavailable` line is logged — a third-party outage must not stop signups.
pub async fn reject_breached(ctx: &Ctx<'_>, field: &str, password: &str) -> Result<(), ApiError> {
    if !ctx.config.hibp.enabled {
        return Ok(());
    }
    let query = range_query(password);
    match hibp::fetch_range(&ctx.config.hibp.api_url, &query.prefix).await {
        Ok(body) if breach_count(&body, &query.suffix) > 0 => {
            log::security_event(ctx.meta, "password_breached", json!({ "field": field }));
            Err(ApiError::invalid(field, BREACHED))
        }
        Ok(_) => Ok(()),
        Err(reason) => {
            log::warn(ctx.meta, "hibp_unavailable", json!({ "reason": reason }));
            Ok(())
        }
    }
}

/// The lockout is a second barrier behind the exact per-account budget: when KV does not
/// answer, login goes on without it (and the edge's log says so), rather than refusing every
/// login during a KV outage.
pub fn lockout_fail_open<T: Default>(
    ctx: &Ctx<'_>,
    operation: &str,
    result: Result<T, StoreError>,
) -> T {
    result.unwrap_or_else(|error| {
        let cause = error.cause().map(str::to_owned);
        log::warn(
            ctx.meta,
            "login_failures_unavailable",
            json!({ "operation": operation, "error": cause }),
        );
        T::default()
    })
}
