//! The gate between a first factor and a second: whether an account has a second factor,
//! the `mfa_token` a right first factor hands out instead of a session, and the step-up
//! rule sensitive operations apply. Kept apart from `mfa` (the flows that prove a factor),
//! which builds on `auth`, so that `auth` can use this without a circle.

use crate::domain::identity::GrantKind;
use crate::domain::mfa::{step_up_satisfied, Factor, MfaTicket, FACTOR_PASSKEY, FACTOR_TOTP};
use crate::domain::secret::{encode_opaque_token, hash_opaque_token};
use crate::domain::user::User;
use crate::error::ApiError;
use crate::runtime::random_bytes;
use crate::service::ports::{Deps, Edge};
use crate::store::traits::{FactorStore, OAuthGrantStore, PasskeyStore};
use serde_json::json;

/// What a right first factor answers when a second one is needed.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// The one-time ticket for `POST /api/v1/auth/mfa/verify`.
    pub mfa_token: String,
    /// The factors the account can finish with.
    pub factors: Vec<&'static str>,
}

// The token finishes a sign-in: never in a log line through `{:?}`.
impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("factors", &self.factors)
            .finish_non_exhaustive()
    }
}

/// The second factors the account can prove: `totp` when its authenticator app is
/// confirmed, `passkey` when it has a passkey. Empty: a first factor is enough.
pub async fn second_factors<S: FactorStore + PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
) -> Result<Vec<&'static str>, ApiError> {
    let mut factors = Vec::new();
    if has_confirmed_factor(deps, user_id).await? {
        factors.push(FACTOR_TOTP);
    }
    if !deps.store.passkeys_of(user_id).await?.is_empty() {
        factors.push(FACTOR_PASSKEY);
    }
    Ok(factors)
}

/// Whether the account has a confirmed authenticator app (TOTP).
pub async fn has_confirmed_factor<S: FactorStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
) -> Result<bool, ApiError> {
    Ok(deps
        .store
        .factors_of(user_id)
        .await?
        .iter()
        .any(Factor::is_confirmed))
}

/// Refuse (`StepUpRequired`) a sensitive operation of an account with a second factor
/// unless its session proved that factor within `STEP_UP_SECONDS`. Accounts without one
/// pass (their own rules apply). `user` is the caller as authentication read it (its
/// session's level and whether it has a factor).
pub fn require_step_up<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    now: i64,
) -> Result<(), ApiError> {
    if step_up_satisfied(
        user.mfa_enabled,
        user.session_level.as_ref(),
        now,
        deps.config.step_up_seconds,
    ) {
        return Ok(());
    }
    deps.edge
        .security_event("step_up_required", json!({ "user_id": user.id }));
    Err(ApiError::StepUpRequired)
}

/// How a first factor was just proven, for the ticket that waits for the second.
pub(crate) struct FirstFactor<'a> {
    /// Its `amr` value (`pwd`, `fed`).
    pub amr: &'a str,
    /// The provider of a provider sign-in.
    pub provider: Option<&'a str>,
    /// The password's new hash when its parameters are outdated, stored when the sign-in
    /// completes.
    pub rehashed: Option<String>,
}

/// Issue an `mfa_token` for an account whose first factor was just proven and which can
/// finish with `factors`.
pub(crate) async fn challenge<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    first: FirstFactor<'_>,
    factors: Vec<&'static str>,
    now: i64,
) -> Result<MfaChallenge, ApiError> {
    let token = encode_opaque_token(&random_bytes::<32>()?);
    let expires_at = now + GrantKind::Mfa.ttl_seconds();
    let amr = first.amr;
    let ticket = MfaTicket {
        user_id: user_id.to_owned(),
        amr: amr.to_owned(),
        provider: first.provider.map(str::to_owned),
        attempts: 0,
        expires_at,
        rehashed: first.rehashed,
    };
    put_ticket(deps, &hash_opaque_token(&token), &ticket, now).await?;
    deps.edge.security_event(
        "mfa_required",
        json!({ "user_id": user_id, "first_factor": amr }),
    );
    Ok(MfaChallenge {
        mfa_token: token,
        factors,
    })
}

pub(crate) async fn put_ticket<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    digest: &str,
    ticket: &MfaTicket,
    now: i64,
) -> Result<(), ApiError> {
    let payload =
        serde_json::to_string(ticket).map_err(|error| ApiError::internal("mfa ticket", error))?;
    deps.store
        .put_grant(GrantKind::Mfa, digest, &payload, now, ticket.expires_at)
        .await?;
    Ok(())
}
