//! Password checks that several flows share: confirming the current password before a
//! sensitive change, refusing a new password found in a breach corpus, hashing a new one,
//! and going on without the lockout counters when their store does not answer.

use crate::domain::hibp::{breach_count, range_query, BREACHED};
use crate::domain::password::Verification;
use crate::domain::user::User;
use crate::error::ApiError;
use crate::runtime::random_bytes;
use crate::service::ports::{Deps, Edge};
use crate::store::error::StoreError;
use serde_json::json;

/// Check the account's current password; a wrong one is a 422 on `field`, never a 401 (the
/// client's token is fine; only the confirmation failed). Attempts share the login budget
/// per account, so a stolen access token cannot be used to guess the password at hashing
/// speed.
pub async fn confirm<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    field: &str,
    password: &str,
) -> Result<Verification, ApiError> {
    deps.edge
        .rate_limit_by(
            "password_confirm",
            "account",
            &user.id,
            deps.config.login_rate_limit,
        )
        .await?;
    let verification = deps
        .config
        .hasher
        .verify(password, &user.password_hash)
        .map_err(|error| ApiError::internal("password verification", error))?;
    if verification == Verification::Mismatch {
        deps.edge.security_event(
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
pub async fn reject_breached<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    field: &str,
    password: &str,
) -> Result<(), ApiError> {
    if !deps.config.hibp.enabled {
        return Ok(());
    }
    let query = range_query(password);
    match deps.edge.breach_range(&query.prefix).await {
        Ok(body) if breach_count(&body, &query.suffix) > 0 => {
            deps.edge
                .security_event("password_breached", json!({ "field": field }));
            Err(ApiError::invalid(field, BREACHED))
        }
        Ok(_) => Ok(()),
        Err(reason) => {
            deps.edge
                .warn("hibp_unavailable", json!({ "reason": reason }));
            Ok(())
        }
    }
}

/// The stored form of a new password, with a fresh salt.
pub fn hash<S, E>(deps: &Deps<'_, S, E>, password: &str) -> Result<String, ApiError> {
    deps.config
        .hasher
        .hash(password, &random_bytes::<16>()?)
        .map_err(|error| ApiError::internal("password hash", error))
}

/// The lockout is a second barrier behind the exact per-account budget: when its store does
/// not answer, login goes on without it (and the log says so), rather than refusing every
/// login during an outage.
pub fn lockout_fail_open<T: Default, E: Edge>(
    edge: &E,
    operation: &str,
    result: Result<T, StoreError>,
) -> T {
    result.unwrap_or_else(|error| {
        let cause = error.cause().map(str::to_owned);
        edge.warn(
            "login_failures_unavailable",
            json!({ "operation": operation, "error": cause }),
        );
        T::default()
    })
}
