//! What every backend keeps outside its tables, on the Worker's bindings: the revocation
//! list and the login failure counters in KV, refresh rotation and request budgets in
//! Durable Objects. One implementation, whichever database holds the tables.

use crate::config::RateLimit;
use crate::domain::audit::Origin;
use crate::domain::lockout::FailureState;
use crate::domain::rate_limit::Decision;
use crate::store::error::StoreError;
use crate::store::traits::{
    LoginFailureStore, RateLimitStore, RefreshRotation, RevocationStore, RotateReply,
};
use crate::store::{login_failures, rate_limit, revocation, session_guard};
use worker::Env;

/// The KV namespace and Durable Object namespaces of one request.
pub struct Bindings<'a> {
    env: &'a Env,
}

impl<'a> Bindings<'a> {
    pub fn new(env: &'a Env) -> Self {
        Self { env }
    }
}

impl RevocationStore for Bindings<'_> {
    async fn revoke_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        revocation::revoke(self.env, jti, expires_at, now).await
    }

    async fn is_revoked(&self, jti: &str, cache_seconds: u64) -> Result<bool, StoreError> {
        revocation::is_revoked(self.env, jti, cache_seconds).await
    }
}

impl LoginFailureStore for Bindings<'_> {
    async fn load_failures(&self, digest: &str) -> Result<FailureState, StoreError> {
        login_failures::load(self.env, digest).await
    }

    async fn save_failures(
        &self,
        digest: &str,
        state: &FailureState,
        forget_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        login_failures::save(self.env, digest, state, forget_at, now).await
    }

    async fn clear_failures(&self, digest: &str) -> Result<(), StoreError> {
        login_failures::clear(self.env, digest).await
    }
}

impl RefreshRotation for Bindings<'_> {
    async fn rotate(
        &self,
        session_id: &str,
        presented_hash: &str,
        origin: Origin,
        budget: RateLimit,
    ) -> Result<RotateReply, StoreError> {
        session_guard::rotate(self.env, session_id, presented_hash, origin, budget).await
    }
}

impl RateLimitStore for Bindings<'_> {
    async fn check_rate(&self, key: &str, budget: RateLimit) -> Result<Decision, StoreError> {
        rate_limit::check(self.env, key, budget).await
    }
}
