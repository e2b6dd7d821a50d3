//! The request context: what a handler may use besides the request itself, and what the edge
//! collects while it runs (the authenticated user for the log, the tightest rate-limit
//! decision for the `RateLimit-*` headers).

use crate::config::{Config, RateLimit};
use crate::domain::audit::{AuditAction, AuditEntry, Origin};
use crate::domain::keys::PublicKey;
use crate::domain::metrics::Event;
use crate::domain::rate_limit::{client_bucket, Decision};
use crate::domain::token::{self, AccessClaims, Algorithm, KeySet, TokenSettings};
use crate::error::ApiError;
use crate::http::log;
use crate::http::request::RequestMeta;
use crate::mail::{self, Outgoing};
use crate::runtime::webcrypto;
use crate::service::ports::{
    Deps, Device, Edge, Mail, ProviderClient, ProviderRequest, ProviderResponse,
};
use crate::store::backend::Backend;
use crate::store::hibp;
use crate::store::metrics_batch as isolate_metrics;
use crate::store::provider_http;
use crate::store::traits::RateLimitStore;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Context, Env};

/// What a handler may use besides the request itself.
pub struct Ctx<'a> {
    pub env: &'a Env,
    pub config: &'a Rc<Config>,
    /// For work that outlives the response (`wait_until`).
    pub worker: &'a Context,
    pub meta: &'a RequestMeta,
    /// Storage on this request's bindings.
    store: Backend<'a>,
    /// The path parameters the route table matched (`id`, `role`, `sid`, `file`).
    params: Vec<(String, String)>,
    user_id: RefCell<Option<String>>,
    rate_limit: RefCell<Option<Decision>>,
}

impl<'a> Ctx<'a> {
    /// The context of one request, before any handler ran.
    pub fn new(
        env: &'a Env,
        config: &'a Rc<Config>,
        worker: &'a Context,
        meta: &'a RequestMeta,
        params: Vec<(String, String)>,
    ) -> Self {
        Self {
            env,
            config,
            worker,
            meta,
            store: Backend::new(env, config.database),
            params,
            user_id: RefCell::new(None),
            rate_limit: RefCell::new(None),
        }
    }

    /// A path parameter of the route (`"id"` in `/users/{id}`); 404 when the route has none
    /// of that name, which only a table entry that does not match its handler can cause.
    pub fn param(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .ok_or(ApiError::NotFound)
    }

    /// Storage on this request's bindings.
    pub fn store(&self) -> &Backend<'a> {
        &self.store
    }

    /// What the service's flows run with for this request.
    pub fn deps(&self) -> Deps<'_, Backend<'a>, Self> {
        Deps {
            store: &self.store,
            edge: self,
            config: self.config,
        }
    }

    /// The authenticated user, once a handler recorded one.
    pub fn user_id(&self) -> Option<String> {
        self.user_id.borrow().clone()
    }

    /// The tightest budget decision this request was counted against, for its headers.
    pub fn reported_rate_limit(&self) -> Option<Decision> {
        *self.rate_limit.borrow()
    }

    /// Record the authenticated user for the access log.
    pub fn set_user(&self, user_id: &str) {
        *self.user_id.borrow_mut() = Some(user_id.to_owned());
    }

    /// Where this request came from, for the audit log.
    pub fn origin(&self) -> Origin {
        Origin {
            request_id: Some(self.meta.request_id.clone()),
            ip: self.meta.client_ip.clone(),
            colo: self.meta.colo.clone(),
        }
    }

    /// Count an event for `/metrics` (in this isolate's batch: no I/O).
    pub fn count(&self, event: Event<'_>) {
        isolate_metrics::record(event);
    }

    /// An audit entry for this request; add actor, target and details to it.
    pub fn audit(&self, action: AuditAction, now: i64) -> AuditEntry {
        AuditEntry::new(action, self.origin(), now)
    }

    /// Count this request against a budget per client (`CF-Connecting-IP`; an IPv6 client by
    /// its /64); 429 when it is spent. The decision's figures go out as `RateLimit-*` headers
    /// on the response, whatever it is.
    pub async fn rate_limit(&self, scope: &str, budget: RateLimit) -> Result<(), ApiError> {
        let client = self
            .meta
            .client_ip
            .as_deref()
            .map_or_else(|| "unknown".to_owned(), client_bucket);
        self.rate_limit_by(scope, "ip", &client, budget).await
    }

    /// Count this request against the budget of `scope` for one value of a dimension (an IP,
    /// a session, an account). Each key is its own Durable Object, named with a keyed digest
    /// of the value, so no address or name can be read back from the object's name. When a
    /// request counts against several budgets, the `RateLimit-*` headers describe the
    /// tightest.
    pub async fn rate_limit_by(
        &self,
        scope: &str,
        dimension: &str,
        value: &str,
        budget: RateLimit,
    ) -> Result<(), ApiError> {
        let key = format!(
            "{scope}:{dimension}:{}",
            self.config.identifier_digest(value)
        );
        let decision = self.store.check_rate(&key, budget).await?;
        self.apply_rate_limit(scope, dimension, decision)
    }

    /// Report a budget decision taken elsewhere (the session guard counts refreshes itself):
    /// its figures go out as headers, and a refusal is a 429 with a security event.
    pub fn apply_rate_limit(
        &self,
        scope: &str,
        dimension: &str,
        decision: Decision,
    ) -> Result<(), ApiError> {
        {
            let mut reported = self.rate_limit.borrow_mut();
            if reported
                .as_ref()
                .is_none_or(|previous| decision.is_tighter_than(previous))
            {
                *reported = Some(decision);
            }
        }
        if decision.allowed {
            Ok(())
        } else {
            self.count(Event::RateLimited { scope });
            log::security_event(
                self.meta,
                "rate_limited",
                json!({ "scope": scope, "dimension": dimension, "retry_after_seconds": decision.retry_after_seconds }),
            );
            Err(ApiError::RateLimited(decision.retry_after_seconds))
        }
    }
}

impl Edge for Ctx<'_> {
    /// Every algorithm signs through WebCrypto with the key imported once per isolate.
    /// Should WebCrypto fail, EdDSA and ES256 fall back to the pure-Rust signers
    /// (deterministic nonces, no secret-dependent timing); RS256 does not, since the
    /// pure-Rust RSA signer runs without blinding (RUSTSEC-2023-0071): the request fails
    /// instead.
    async fn sign_access_token(
        &self,
        keys: &KeySet,
        settings: &TokenSettings,
        claims: AccessClaims,
        now: i64,
    ) -> Result<String, ApiError> {
        let failed = |error| ApiError::internal("token signing", error);
        // Natively: Ed25519 in wasm took a tenth of a refresh's CPU (`benches/profile.mjs`).
        let input = token::signing_input(keys, settings, claims.clone(), now).map_err(failed)?;
        match webcrypto::sign(keys.signing_kid(), keys.signing_key(), input.as_bytes()).await {
            Ok(signature) => Ok(token::assemble(&input, &signature)),
            Err(error) => {
                log::error(self.meta, "webcrypto_unavailable", &format!("{error:?}"));
                if keys.algorithm() == Algorithm::RS256 {
                    return Err(ApiError::internal(
                        "token signing",
                        "WebCrypto failed; RS256 has no constant-time fallback",
                    ));
                }
                token::sign(keys, settings, claims, now).map_err(failed)
            }
        }
    }

    fn origin(&self) -> Origin {
        Ctx::origin(self)
    }

    fn device(&self) -> Device {
        Device {
            user_agent: self.meta.user_agent.clone(),
            colo: self.meta.colo.clone(),
            country: self.meta.country.clone(),
        }
    }

    fn security_event(&self, event: &str, fields: Value) {
        log::security_event(self.meta, event, fields);
    }

    fn warn(&self, event: &str, fields: Value) {
        log::warn(self.meta, event, fields);
    }

    fn count(&self, event: Event<'_>) {
        Ctx::count(self, event);
    }

    fn set_user(&self, user_id: &str) {
        Ctx::set_user(self, user_id);
    }

    async fn rate_limit_by(
        &self,
        scope: &str,
        dimension: &str,
        value: &str,
        budget: RateLimit,
    ) -> Result<(), ApiError> {
        Ctx::rate_limit_by(self, scope, dimension, value, budget).await
    }

    fn apply_rate_limit(
        &self,
        scope: &str,
        dimension: &str,
        decision: Decision,
    ) -> Result<(), ApiError> {
        Ctx::apply_rate_limit(self, scope, dimension, decision)
    }

    async fn send_mail(&self, mail: Mail) -> Result<(), ApiError> {
        mail::deliver(
            self.env,
            self.config,
            self.worker,
            Outgoing {
                message: mail.message,
                request_id: self.meta.request_id.clone(),
                token: mail.token,
                code: mail.code,
            },
        )
        .await
    }

    async fn breach_range(&self, prefix: &str) -> Result<String, String> {
        hibp::fetch_range(&self.config.hibp.api_url, prefix).await
    }
}

impl ProviderClient for Ctx<'_> {
    async fn send(&self, request: ProviderRequest) -> Result<ProviderResponse, String> {
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let (status, body) = provider_http::send(
            request.method,
            &request.url,
            &headers,
            request.form.as_deref(),
        )
        .await?;
        Ok(ProviderResponse { status, body })
    }

    /// Through WebCrypto, the imported key cached under `oauth:{provider}:{thumbprint}`: a
    /// name the service's own keys (bare thumbprints) never have, so a provider's key can
    /// never stand in for one of them, and a key the provider replaces under the same `kid`
    /// is imported afresh. Should WebCrypto fail, the pure-Rust verifier decides.
    async fn verify_signature(
        &self,
        provider: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let kid = format!("oauth:{provider}:{}", key.thumbprint());
        match webcrypto::verify(&kid, key, message, signature).await {
            Ok(valid) => valid,
            Err(error) => {
                log::error(self.meta, "webcrypto_unavailable", &format!("{error:?}"));
                key.verify(message, signature)
            }
        }
    }
}
