//! The access-token revocation list in KV: `revoked:<jti>` with a TTL of the token's
//! remaining lifetime, so the list never outgrows the tokens it blocks.
//!
//! KV is eventually consistent: a revocation is visible at once in the location that wrote
//! it and within about 60 s elsewhere. Access tokens also die with their session, which every
//! authenticated request checks in D1, so the KV entry is a second, cheaper barrier.
//!
//! Each isolate remembers its answers for `REVOCATION_CACHE_SECONDS` (default 5), so a client
//! calling in a loop costs one KV read per token per window, not one per request. That adds
//! at most those seconds to KV's own propagation delay, and only for tokens revoked
//! elsewhere: a revocation made in this isolate is remembered at once.

use crate::domain::ttl_cache::TtlCache;
use crate::store::error::StoreError;
use std::cell::RefCell;
use worker::{Date, Env};

/// Token ids an isolate remembers at most; each entry is a few dozen bytes.
const CACHE_CAPACITY: usize = 10_000;

thread_local! {
    static ANSWERS: RefCell<TtlCache<String, bool>> = RefCell::new(TtlCache::new(CACHE_CAPACITY, 0));
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// The KV binding's name in `wrangler.toml`.
pub const KV_BINDING: &str = "KV";

/// KV refuses expirations shorter than this.
const KV_MIN_TTL_SECONDS: u64 = 60;

fn unavailable(error: impl Into<worker::Error>) -> StoreError {
    StoreError::unavailable("Revocation list", error.into())
}

fn key(jti: &str) -> String {
    format!("revoked:{jti}")
}

/// Put a token id on the list until the token would have expired anyway.
pub async fn revoke(env: &Env, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
    ANSWERS.with(|answers| answers.borrow_mut().insert(jti.to_owned(), true, now_ms()));
    let remaining = u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0);
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    kv.put(&key(jti), "1")
        .map_err(unavailable)?
        .expiration_ttl(remaining.max(KV_MIN_TTL_SECONDS))
        .execute()
        .await
        .map_err(unavailable)
}

/// Whether a token id is on the list, answered from this isolate's memory when it asked
/// less than `cache_seconds` ago. Fails closed: an unreachable list is a 503.
pub async fn is_revoked(env: &Env, jti: &str, cache_seconds: u64) -> Result<bool, StoreError> {
    let remembered = ANSWERS.with(|answers| {
        let mut answers = answers.borrow_mut();
        answers.set_ttl_ms(cache_seconds.saturating_mul(1_000));
        answers.get(&jti.to_owned(), now_ms())
    });
    if let Some(revoked) = remembered {
        return Ok(revoked);
    }
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    let revoked = kv
        .get(&key(jti))
        .text()
        .await
        .map_err(unavailable)?
        .is_some();
    ANSWERS.with(|answers| {
        answers
            .borrow_mut()
            .insert(jti.to_owned(), revoked, now_ms())
    });
    Ok(revoked)
}
