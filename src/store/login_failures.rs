//! Login-failure counters in KV, one entry per login identifier: `login_failures:<sha256>`,
//! where the digest is of the normalised identifier, so neither a username nor an email
//! address appears in a key. The value is the JSON of [`FailureState`]; its TTL is how long
//! the state still matters, so entries clean themselves up.
//!
//! KV is eventually consistent and has no compare-and-set: concurrent failures may count as
//! one, and another location may see a lockout up to ~60 s late. That is the documented
//! approximation; the exact bound is the per-account rate limit (a Durable Object). An
//! unreachable KV fails open (logged): the lockout is a second barrier, and refusing every
//! login while KV is down would be a bigger outage than the one it prevents.

use crate::domain::lockout::FailureState;
use crate::store::revocation::KV_BINDING;
use worker::{console_error, Env};

/// KV refuses expirations shorter than this.
const KV_MIN_TTL_SECONDS: i64 = 60;

fn key(identifier_digest: &str) -> String {
    format!("login_failures:{identifier_digest}")
}

fn log_unavailable(operation: &str, error: &str) {
    console_error!(
        "{}",
        serde_json::json!({
            "level": "error",
            "event": "login_failures_unavailable",
            "operation": operation,
            "error": error,
        })
    );
}

/// The state of an identifier; nothing stored (or unreadable) is a clean state.
pub async fn load(env: &Env, identifier_digest: &str) -> FailureState {
    let kv = match env.kv(KV_BINDING) {
        Ok(kv) => kv,
        Err(error) => {
            log_unavailable("read", &error.to_string());
            return FailureState::default();
        }
    };
    match kv.get(&key(identifier_digest)).json::<FailureState>().await {
        Ok(state) => state.unwrap_or_default(),
        Err(error) => {
            log_unavailable("read", &error.to_string());
            FailureState::default()
        }
    }
}

/// Store an identifier's state until `forget_at` (unix seconds).
pub async fn save(
    env: &Env,
    identifier_digest: &str,
    state: &FailureState,
    forget_at: i64,
    now: i64,
) {
    let ttl = forget_at.saturating_sub(now).max(KV_MIN_TTL_SECONDS);
    let result = async {
        let kv = env.kv(KV_BINDING).map_err(|error| error.to_string())?;
        kv.put(&key(identifier_digest), state)
            .map_err(|error| error.to_string())?
            .expiration_ttl(u64::try_from(ttl).unwrap_or(60))
            .execute()
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    if let Err(error) = result {
        log_unavailable("write", &error);
    }
}

/// Forget an identifier's failures (after a successful login or a password reset).
pub async fn clear(env: &Env, identifier_digest: &str) {
    let result = async {
        let kv = env.kv(KV_BINDING).map_err(|error| error.to_string())?;
        kv.delete(&key(identifier_digest))
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    if let Err(error) = result {
        log_unavailable("delete", &error);
    }
}
