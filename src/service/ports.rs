//! What the flows need from outside storage: the request's origin and device, the log and
//! the counters, request budgets, mail delivery and the breached-password lookup ([`Edge`]),
//! and the calls to sign-in providers ([`ProviderClient`]). The edge implements both for
//! each request (`http::context::Ctx`); the flows' tests implement them with doubles that
//! record what a flow asked for and answer from a script.

// The Worker is single-threaded: its futures are not `Send`, and none is asked of them.
#![allow(async_fn_in_trait)]

use crate::config::{Config, RateLimit};
use crate::domain::audit::{AuditAction, AuditEntry, Origin};
use crate::domain::email::Message;
use crate::domain::keys::PublicKey;
use crate::domain::metrics::Event;
use crate::domain::token::{sign, AccessClaims, KeySet, TokenSettings};
use crate::error::ApiError;
use serde_json::Value;

/// The client a session is started for, as the request describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    pub user_agent: Option<String>,
    pub colo: Option<String>,
    pub country: Option<String>,
}

/// A message to send, with the secrets it carries (kept only by the development outbox).
pub struct Mail {
    pub message: Message,
    pub token: Option<String>,
    pub code: Option<String>,
}

/// The request's edge, as the flows see it.
pub trait Edge {
    /// Where the request came from, for audit entries.
    fn origin(&self) -> Origin;

    /// The client, for a session the request starts.
    fn device(&self) -> Device;

    /// Log a security event (the edge adds the time and the request id).
    fn security_event(&self, event: &str, fields: Value);

    /// Log a degraded dependency that the flow went on without.
    fn warn(&self, event: &str, fields: Value);

    /// Count an event for `/metrics`.
    fn count(&self, event: Event<'_>);

    /// Record the account the request acts for (the access log's `user_id`).
    fn set_user(&self, user_id: &str);

    /// Sign an access token. The default signs in pure Rust (the domain's signer); the
    /// Worker's edge signs ES256 and RS256 through WebCrypto, which is native code there.
    async fn sign_access_token(
        &self,
        keys: &KeySet,
        settings: &TokenSettings,
        claims: AccessClaims,
        now: i64,
    ) -> Result<String, ApiError> {
        sign(keys, settings, claims, now)
            .map_err(|error| ApiError::internal("token signing", error))
    }

    /// Count this request against the budget of `scope` for one value of a dimension;
    /// `RateLimited` when it is spent.
    async fn rate_limit_by(
        &self,
        scope: &str,
        dimension: &str,
        value: &str,
        budget: RateLimit,
    ) -> Result<(), ApiError>;

    /// Report a budget decision taken by storage (the refresh rotation counts itself).
    fn apply_rate_limit(
        &self,
        scope: &str,
        dimension: &str,
        decision: crate::domain::rate_limit::Decision,
    ) -> Result<(), ApiError>;

    /// Send a message the configured way; only a provider that stores before answering
    /// can fail the request.
    async fn send_mail(&self, mail: Mail) -> Result<(), ApiError>;

    /// The breached-password corpus' range for a SHA-1 prefix; `Err` with a reason when it
    /// cannot be had (the caller fails open).
    async fn breach_range(&self, prefix: &str) -> Result<String, String>;
}

/// One call to a sign-in provider: discovery, JWKS, token endpoint or GitHub's API.
pub struct ProviderRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    pub url: String,
    /// Besides `user-agent`, which the client sets. May hold a credential
    /// (`authorization`): never logged.
    pub headers: Vec<(&'static str, String)>,
    /// An `application/x-www-form-urlencoded` body (the token request; it holds the code,
    /// the verifier and perhaps the client secret).
    pub form: Option<String>,
}

// Headers and form carry secrets: a stray `{:?}` shows the method and URL only.
impl std::fmt::Debug for ProviderRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderRequest({} {})", self.method, self.url)
    }
}

/// A provider's answer: its status and body (redirects are not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderResponse {
    pub status: u16,
    pub body: String,
}

/// How the flows reach sign-in providers.
pub trait ProviderClient {
    /// Send one request; `Err` says why there is no answer (unreachable, too slow, too
    /// large), in words that hold nothing of the request.
    async fn send(&self, request: ProviderRequest) -> Result<ProviderResponse, String>;

    /// Whether `signature` is `key`'s signature of `message`, `key` being one of
    /// `provider`'s. The default checks in pure Rust; the Worker checks through WebCrypto,
    /// caching the imported key under a name of the provider's own.
    async fn verify_signature(
        &self,
        provider: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let _ = provider;
        key.verify(message, signature)
    }
}

/// What every flow runs with: storage, the request's edge and the configuration.
pub struct Deps<'a, S, E> {
    pub store: &'a S,
    pub edge: &'a E,
    pub config: &'a Config,
}

impl<S, E: Edge> Deps<'_, S, E> {
    /// An audit entry for this request; add actor, target and details to it.
    pub fn audit(&self, action: AuditAction, now: i64) -> AuditEntry {
        AuditEntry::new(action, self.edge.origin(), now)
    }
}
