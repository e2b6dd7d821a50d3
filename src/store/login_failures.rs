//! Login-failure counters in KV, one entry per login subject (an account, or an identifier
//! that names none; see `domain::lockout::login_subject`): `login_failures:<keyed digest>`,
//! so no username, address or id appears in a key. The value is the JSON of [`FailureState`]; its TTL is how long
//! the state still matters, so entries clean themselves up.
//!
//! KV is eventually consistent and has no compare-and-set: concurrent failures may count as
//! one, and another location may see a lockout up to ~60 s late. That is the documented
//! approximation; the exact bound is the per-account rate limit (a Durable Object). An
//! unreachable KV fails open (the caller logs it): the lockout is a second barrier, and refusing every
//! login while KV is down would be a bigger outage than the one it prevents.

use crate::domain::lockout::FailureState;
use crate::store::error::StoreError;
use crate::store::revocation::KV_BINDING;
use worker::Env;

/// KV refuses expirations shorter than this.
const KV_MIN_TTL_SECONDS: i64 = 60;

fn key(identifier_digest: &str) -> String {
    format!("login_failures:{identifier_digest}")
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::unavailable("Login failure counters", error)
}

/// The state of a subject; nothing stored is a clean state. An error means KV did not
/// answer: the caller decides to fail open (and logs it).
pub async fn load(env: &Env, digest: &str) -> Result<FailureState, StoreError> {
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    kv.get(&key(digest))
        .json::<FailureState>()
        .await
        .map(Option::unwrap_or_default)
        .map_err(unavailable)
}

/// Store a subject's state until `forget_at` (unix seconds).
pub async fn save(
    env: &Env,
    digest: &str,
    state: &FailureState,
    forget_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    let ttl = forget_at.saturating_sub(now).max(KV_MIN_TTL_SECONDS);
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    kv.put(&key(digest), state)
        .map_err(unavailable)?
        .expiration_ttl(u64::try_from(ttl).unwrap_or(60))
        .execute()
        .await
        .map_err(unavailable)
}

/// Forget a subject's failures (after a successful login or a password reset).
pub async fn clear(env: &Env, digest: &str) -> Result<(), StoreError> {
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    kv.delete(&key(digest)).await.map_err(unavailable)
}
