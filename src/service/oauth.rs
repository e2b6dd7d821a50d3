//! Sign-in through a provider, the parts that need storage but no provider: the state that
//! carries a sign-in from `start` to `callback` (single use, bound to the browser by a
//! cookie), the rules that decide which account a provider's account signs in to, and the
//! one-time code an app exchanges for tokens (single use, 60 seconds, PKCE when the app
//! sent a challenge), and the calls to the provider in between (discovery, JWKS, the token
//! endpoint, GitHub's API), made through the [`ProviderClient`] port.
//!
//! Every secret value (state, cookie, code) is 256 bits from the CSPRNG, stored only as a
//! SHA-256 digest, and compared through that digest or in constant time.

use crate::config::Config;
use crate::domain::audit::AuditAction;
use crate::domain::identity::{GrantKind, Identity, Unlink};
use crate::domain::keys::provider_signing_keys;
use crate::domain::metrics::Event;
use crate::domain::oauth::{
    allows_plain_http, authorization_url, check_claims, discovery_url, github_account,
    github_endpoints, is_s256_challenge, parse_discovery, pkce_matches, select_key, split_id_token,
    token_request, username_base, Authorization, Endpoints, Expected, IdTokenError, Provider,
    ProviderAccount, ProviderKind, GITHUB_SCOPE, OIDC_SCOPE,
};
use crate::domain::password::NO_PASSWORD;
use crate::domain::secret::{constant_time_eq, encode_opaque_token, hash_opaque_token};
use crate::domain::user::{normalize_email, User};
use crate::error::ApiError;
use crate::runtime::random_bytes;
use crate::service::ports::{Deps, Edge, ProviderClient, ProviderRequest};
use crate::store::error::{StoreError, Unique};
use crate::store::traits::{IdentityStore, NewIdentity, NewUser, OAuthGrantStore, UserStore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// What a state remembers from `start` for the callback. Stored in the database under the
/// state's digest; it holds the PKCE verifier sent to the provider and the nonce, so it
/// lives only as long as the state (10 minutes) and is removed when spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub provider: String,
    pub redirect_to: String,
    pub nonce: String,
    /// The PKCE verifier of the service's own request to the provider.
    pub verifier: String,
    /// The app's S256 challenge, when it sent one; its code then needs the verifier.
    pub app_challenge: Option<String>,
    /// The signed-in account that asked to link this provider (`None`: a sign-in).
    pub link_user: Option<String>,
    /// Digest of the browser's cookie value.
    binding: String,
}

/// A started sign-in: what goes to the provider and what goes into the cookie.
#[derive(Debug)]
pub struct Begun {
    pub state: String,
    /// The `__Host-` cookie's value, binding the state to this browser.
    pub cookie: String,
    pub nonce: String,
    /// The S256 challenge of `PendingSignIn::verifier`, for the authorization request.
    pub challenge: String,
}

/// A fresh 256-bit secret, base64url.
fn secret() -> Result<String, ApiError> {
    Ok(encode_opaque_token(&random_bytes::<32>()?))
}

/// The refusal of any state that does not carry a sign-in through: unknown, spent,
/// expired, another provider's, or without this browser's cookie. One answer for all, so
/// a probe learns nothing about which.
fn invalid_state() -> ApiError {
    ApiError::InvalidState
}

/// What an app asks for when it starts a sign-in or a link: where it is to be sent back,
/// and its PKCE challenge (then the code needs the verifier). Checked once, when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRequest {
    pub redirect_to: String,
    pub app_challenge: Option<String>,
}

/// Check an app's `redirect_to` against `ALLOWED_REDIRECT_URLS` (400 otherwise: no open
/// redirect) and its challenge (S256 only; a method without a challenge is refused rather
/// than ignored).
pub fn app_request<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    redirect_to: &str,
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<AppRequest, ApiError> {
    if !deps.config.oauth.allows_redirect(redirect_to) {
        deps.edge
            .security_event("oauth_redirect_refused", json!({ "provider": provider }));
        return Err(ApiError::MalformedRequest(
            "redirect_to is not an allowed redirect URL".into(),
        ));
    }
    let app_challenge = match challenge {
        None if method.is_some() => {
            return Err(ApiError::MalformedRequest(
                "code_challenge_method needs a code_challenge".into(),
            ))
        }
        None => None,
        Some(challenge) => {
            // Only S256: `plain` would put the verifier itself in the browser's history.
            if method.unwrap_or("S256") != "S256" || !is_s256_challenge(challenge) {
                return Err(ApiError::MalformedRequest(
                    "code_challenge must be an S256 challenge (code_challenge_method=S256)".into(),
                ));
            }
            Some(challenge.to_owned())
        }
    };
    Ok(AppRequest {
        redirect_to: redirect_to.to_owned(),
        app_challenge,
    })
}

/// Start a sign-in (or, with `link_user`, a link) through `provider`: store a state for
/// the checked `request`. The caller has checked that the provider is enabled.
pub async fn begin<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    request: &AppRequest,
    link_user: Option<&str>,
    now: i64,
) -> Result<Begun, ApiError> {
    let begun = Begun {
        state: secret()?,
        cookie: secret()?,
        nonce: secret()?,
        challenge: String::new(),
    };
    let verifier = secret()?;
    let pending = PendingSignIn {
        provider: provider.to_owned(),
        redirect_to: request.redirect_to.clone(),
        nonce: begun.nonce.clone(),
        verifier: verifier.clone(),
        app_challenge: request.app_challenge.clone(),
        link_user: link_user.map(str::to_owned),
        binding: hash_opaque_token(&begun.cookie),
    };
    put(deps, GrantKind::State, &begun.state, &pending, now).await?;
    Ok(Begun {
        challenge: crate::domain::oauth::pkce_challenge(&verifier),
        ..begun
    })
}

/// Store a one-time value's digest with what spending it yields.
async fn put<S: OAuthGrantStore, E: Edge, T: Serialize>(
    deps: &Deps<'_, S, E>,
    kind: GrantKind,
    value: &str,
    payload: &T,
    now: i64,
) -> Result<(), ApiError> {
    let payload =
        serde_json::to_string(payload).map_err(|error| ApiError::internal("oauth grant", error))?;
    deps.store
        .put_grant(
            kind,
            &hash_opaque_token(value),
            &payload,
            now,
            now + kind.ttl_seconds(),
        )
        .await?;
    Ok(())
}

/// Spend a one-time value: what it was stored with, or `None` when it is unknown, spent,
/// expired or unreadable. Values longer than any this service issues are not looked up.
async fn take<S: OAuthGrantStore, E: Edge, T: serde::de::DeserializeOwned>(
    deps: &Deps<'_, S, E>,
    kind: GrantKind,
    value: &str,
    now: i64,
) -> Result<Option<T>, ApiError> {
    if value.is_empty() || value.len() > 128 {
        return Ok(None);
    }
    Ok(deps
        .store
        .take_grant(kind, &hash_opaque_token(value), now)
        .await?
        .as_deref()
        .and_then(|payload| serde_json::from_str(payload).ok()))
}

/// What a link ticket stands for: a signed-in account's request to link `provider`.
#[derive(Debug, Serialize, Deserialize)]
struct LinkTicket {
    user_id: String,
    provider: String,
    request: AppRequest,
}

/// A signed-in account asks to link `provider`: a ticket (single use, 60 seconds) the
/// browser takes to `start`, which binds the state to that browser as for a sign-in. The
/// link itself happens only when the same account completes it with the code the
/// callback returns ([`complete_link`]), so a ticket or code sent to someone else's
/// browser cannot link their provider account to this one.
pub async fn issue_link_ticket<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    user_id: &str,
    request: AppRequest,
    now: i64,
) -> Result<String, ApiError> {
    let ticket = secret()?;
    let payload = LinkTicket {
        user_id: user_id.to_owned(),
        provider: provider.to_owned(),
        request,
    };
    put(deps, GrantKind::Link, &ticket, &payload, now).await?;
    Ok(ticket)
}

/// `start` with a link ticket: spend it and start the link it asked for.
pub async fn begin_link<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    ticket: &str,
    now: i64,
) -> Result<(Begun, AppRequest), ApiError> {
    let ticket: LinkTicket = take(deps, GrantKind::Link, ticket, now)
        .await?
        .filter(|ticket: &LinkTicket| ticket.provider == provider)
        .ok_or_else(invalid_state)?;
    let begun = begin(deps, provider, &ticket.request, Some(&ticket.user_id), now).await?;
    Ok((begun, ticket.request))
}

/// Spend the state of a callback and check it belongs to `provider` and to this browser.
/// The state is spent even when the check fails, so a stolen one is burned by its first
/// use.
pub async fn resume<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    state: Option<&str>,
    cookie: Option<&str>,
    now: i64,
) -> Result<PendingSignIn, ApiError> {
    let pending: PendingSignIn = take(deps, GrantKind::State, state.unwrap_or(""), now)
        .await?
        .ok_or_else(invalid_state)?;
    let browser = cookie.map(hash_opaque_token).unwrap_or_default();
    let bound = constant_time_eq(browser.as_bytes(), pending.binding.as_bytes());
    if pending.provider != provider || !bound {
        deps.edge.security_event(
            "oauth_state_refused",
            json!({ "provider": provider, "cookie": cookie.is_some() }),
        );
        return Err(invalid_state());
    }
    Ok(pending)
}

/// Where a browser starts a sign-in or a link: `{PUBLIC_BASE_URL}/api/v1/auth/oauth/{provider}/start`.
pub fn start_url(config: &Config, provider: &str) -> String {
    format!(
        "{}/api/v1/auth/oauth/{provider}/start",
        config.email.public_base_url
    )
}

/// Where the provider sends the browser back, the URL registered with it:
/// `{PUBLIC_BASE_URL}/api/v1/auth/oauth/{provider}/callback`.
pub fn callback_url(config: &Config, provider: &str) -> String {
    format!(
        "{}/api/v1/auth/oauth/{provider}/callback",
        config.email.public_base_url
    )
}

/// Why a provider's sign-in could not be completed. It names the step and what went
/// wrong, never a code, token or response body, so it can be logged and counted as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderFailure {
    /// No usable answer at `step` (`discovery`, `jwks`, `token`, `user`, `emails`):
    /// unreachable, an error status, or not the expected document.
    Provider { step: &'static str, why: String },
    /// The id_token was refused.
    IdToken(IdTokenError),
}

impl ProviderFailure {
    /// For the log and the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ProviderFailure::Provider { step, .. } => step,
            ProviderFailure::IdToken(error) => error.as_str(),
        }
    }
}

fn failed(step: &'static str, why: impl Into<String>) -> ProviderFailure {
    ProviderFailure::Provider {
        step,
        why: why.into(),
    }
}

/// Send a request and read its 200 answer as JSON.
async fn fetch_json<C: ProviderClient>(
    client: &C,
    step: &'static str,
    request: ProviderRequest,
) -> Result<Value, ProviderFailure> {
    let response = client
        .send(request)
        .await
        .map_err(|why| failed(step, why))?;
    if response.status != 200 {
        return Err(failed(step, format!("answered {}", response.status)));
    }
    serde_json::from_str(&response.body).map_err(|_| failed(step, "answered with no JSON"))
}

fn get(url: &str, headers: Vec<(&'static str, String)>) -> ProviderRequest {
    ProviderRequest {
        method: "GET",
        url: url.to_owned(),
        headers: [vec![("accept", "application/json".to_owned())], headers].concat(),
        form: None,
    }
}

/// A provider's endpoints: GitHub's are fixed; an OpenID Connect provider's come from its
/// discovery document, read on every sign-in so a provider's rotation is followed at once.
async fn endpoints<C: ProviderClient>(
    config: &Config,
    client: &C,
    provider: &Provider,
) -> Result<Endpoints, ProviderFailure> {
    match &provider.kind {
        ProviderKind::Github { web_url, .. } => Ok(github_endpoints(web_url)),
        ProviderKind::Oidc { issuer } => {
            let response = client
                .send(get(&discovery_url(issuer), Vec::new()))
                .await
                .map_err(|why| failed("discovery", why))?;
            if response.status != 200 {
                return Err(failed("discovery", format!("answered {}", response.status)));
            }
            parse_discovery(
                &response.body,
                issuer,
                allows_plain_http(&config.environment),
            )
            .map_err(|why| failed("discovery", format!("the document {why}")))
        }
    }
}

/// Log a provider's failure (its step and reason only) and hand it on.
fn report<E: Edge>(edge: &E, provider: &str, failure: ProviderFailure) -> ProviderFailure {
    let why = match &failure {
        ProviderFailure::Provider { why, .. } => why.as_str(),
        ProviderFailure::IdToken(_) => "",
    };
    edge.security_event(
        "oauth_provider_failed",
        json!({ "provider": provider, "reason": failure.reason(), "why": why }),
    );
    failure
}

/// The provider's authorization URL for a started sign-in, where `start` sends the
/// browser. A provider that cannot be reached or is misconfigured is a 503: the sign-in
/// cannot begin, and nothing was asked of the user yet.
pub async fn authorization_redirect<S, E: Edge, C: ProviderClient>(
    deps: &Deps<'_, S, E>,
    client: &C,
    provider: &Provider,
    begun: &Begun,
) -> Result<String, ApiError> {
    let unavailable = |failure: ProviderFailure| {
        let failure = report(deps.edge, &provider.name, failure);
        ApiError::unavailable("Sign-in provider", failure.reason())
    };
    let endpoints = endpoints(deps.config, client, provider)
        .await
        .map_err(unavailable)?;
    let (scope, nonce) = match provider.kind {
        ProviderKind::Github { .. } => (GITHUB_SCOPE, None),
        ProviderKind::Oidc { .. } => (OIDC_SCOPE, Some(begun.nonce.as_str())),
    };
    authorization_url(
        &endpoints,
        &provider.client_id,
        &Authorization {
            redirect_uri: &callback_url(deps.config, &provider.name),
            scope,
            state: &begun.state,
            nonce,
            challenge: &begun.challenge,
        },
    )
    .ok_or_else(|| {
        unavailable(failed(
            "discovery",
            "the authorization endpoint is not a URL",
        ))
    })
}

/// The longest authorization code taken from a callback.
const MAX_CODE_LEN: usize = 2048;

/// Complete a sign-in with the provider after its state passed: exchange the code (with
/// the service's PKCE verifier) and learn which account the provider vouches for, from a
/// verified id_token (OpenID Connect) or from GitHub's API. Every failure is logged by its
/// step and reason.
pub async fn provider_account<S, E: Edge, C: ProviderClient>(
    deps: &Deps<'_, S, E>,
    client: &C,
    provider: &Provider,
    pending: &PendingSignIn,
    code: Option<&str>,
    now: i64,
) -> Result<ProviderAccount, ProviderFailure> {
    let result = async {
        let code = code
            .filter(|code| !code.is_empty() && code.len() <= MAX_CODE_LEN)
            .ok_or_else(|| failed("token", "the callback carries no code"))?;
        let endpoints = endpoints(deps.config, client, provider).await?;
        let (form, basic) = token_request(
            &endpoints,
            &provider.client_id,
            &provider.client_secret,
            code,
            &callback_url(deps.config, &provider.name),
            &pending.verifier,
        );
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        headers.extend(basic.map(|header| ("authorization", header)));
        let token_request = ProviderRequest {
            form: Some(form),
            method: "POST",
            ..get(&endpoints.token, headers)
        };
        let tokens = fetch_json(client, "token", token_request).await?;
        match &provider.kind {
            ProviderKind::Oidc { issuer } => {
                let id_token = tokens
                    .get("id_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| failed("token", "the answer has no id_token"))?;
                let jwks = endpoints
                    .jwks
                    .as_deref()
                    .ok_or_else(|| failed("discovery", "no jwks_uri"))?;
                verified_account(deps, client, provider, issuer, jwks, id_token, pending, now).await
            }
            ProviderKind::Github { api_url, .. } => {
                let access_token = tokens
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| failed("token", "the answer has no access_token"))?;
                github(client, api_url, access_token).await
            }
        }
    }
    .await;
    result.map_err(|failure| report(deps.edge, &provider.name, failure))
}

/// Check an id_token: the key of the provider's JWKS it names (by `kid` and algorithm),
/// its signature, then its claims with this sign-in's nonce.
#[allow(clippy::too_many_arguments)]
async fn verified_account<S, E: Edge, C: ProviderClient>(
    deps: &Deps<'_, S, E>,
    client: &C,
    provider: &Provider,
    issuer: &str,
    jwks: &str,
    id_token: &str,
    pending: &PendingSignIn,
    now: i64,
) -> Result<ProviderAccount, ProviderFailure> {
    let split = split_id_token(id_token).map_err(ProviderFailure::IdToken)?;
    let document = fetch_json(client, "jwks", get(jwks, Vec::new())).await?;
    let keys = provider_signing_keys(&document);
    let key = select_key(&keys, split.kid.as_deref(), &split.alg)
        .ok_or(ProviderFailure::IdToken(IdTokenError::UnknownKey))?;
    let signed = client
        .verify_signature(
            &provider.name,
            key,
            split.signing_input.as_bytes(),
            &split.signature,
        )
        .await;
    if !signed {
        return Err(ProviderFailure::IdToken(IdTokenError::Signature));
    }
    check_claims(
        &split.claims,
        &Expected {
            issuer,
            client_id: &provider.client_id,
            nonce: &pending.nonce,
            now,
            leeway_seconds: deps.config.tokens.leeway_seconds,
        },
    )
    .map_err(ProviderFailure::IdToken)
}

/// GitHub's account for an access token: `/user`, then `/user/emails` for the verified
/// primary address.
async fn github<C: ProviderClient>(
    client: &C,
    api_url: &str,
    access_token: &str,
) -> Result<ProviderAccount, ProviderFailure> {
    let api = api_url.trim_end_matches('/');
    let headers = || {
        vec![
            ("authorization", format!("Bearer {access_token}")),
            ("x-github-api-version", "2022-11-28".to_owned()),
        ]
    };
    let user = fetch_json(client, "user", get(&format!("{api}/user"), headers())).await?;
    let emails = fetch_json(
        client,
        "emails",
        get(&format!("{api}/user/emails"), headers()),
    )
    .await?;
    github_account(&user, &emails).ok_or_else(|| failed("user", "the profile has no id"))
}

/// The account a provider's account signs in to, linking or creating it by these rules:
/// 1. a linked identity signs in to its account;
/// 2. an account with the same email is linked only when the provider asserts the address
///    verified and the account's email is verified too; when only the provider vouches,
///    `LinkRequired` (the user signs in and links); when the provider says nothing (or
///    false), a new account is made, without that address, which is someone else's;
/// 3. otherwise a new account without a password, its username derived from the profile.
pub async fn account_for<S: UserStore + IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    account: &ProviderAccount,
    now: i64,
) -> Result<User, ApiError> {
    let email = account
        .email
        .as_deref()
        .and_then(|email| normalize_email(email).ok());
    if let Some(identity) = deps.store.find_identity(provider, &account.subject).await? {
        let entry = deps
            .audit(AuditAction::ProviderLogin, now)
            .by_self(&identity.user_id)
            .with("provider", provider);
        deps.store
            .touch_identity(&identity.id, email.as_deref(), now, &entry)
            .await?;
        return existing(deps, &identity.user_id, now).await;
    }
    let mut new_email = email.clone();
    if let Some(address) = email.as_deref() {
        if let Some(local) = deps.store.find_by_email(address).await? {
            match account.email_verified {
                Some(true) if local.email_verified => {
                    link(deps, provider, account, email.as_deref(), &local.id, now).await?;
                    return existing(deps, &local.id, now).await;
                }
                Some(true) => {
                    deps.edge.security_event(
                        "oauth_link_required",
                        json!({ "provider": provider, "user_id": local.id }),
                    );
                    return Err(ApiError::LinkRequired);
                }
                _ => new_email = None,
            }
        }
    }
    create(deps, provider, account, new_email.as_deref(), now).await
}

/// Link a provider's account to the signed-in `user_id`: the identity, new or already
/// this account's. One linked to another account is never moved (`IdentityTaken`).
pub async fn link_account<S: IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    account: &ProviderAccount,
    user_id: &str,
    now: i64,
) -> Result<Identity, ApiError> {
    let linked = match deps.store.find_identity(provider, &account.subject).await? {
        Some(identity) => Some(identity),
        None => {
            let email = account
                .email
                .as_deref()
                .and_then(|email| normalize_email(email).ok());
            link(deps, provider, account, email.as_deref(), user_id, now).await?;
            deps.store.find_identity(provider, &account.subject).await?
        }
    };
    match linked {
        Some(identity) if identity.user_id == user_id => Ok(identity),
        _ => {
            deps.edge.security_event(
                "oauth_identity_taken",
                json!({ "provider": provider, "user_id": user_id }),
            );
            Err(ApiError::IdentityTaken)
        }
    }
}

/// An existing account, refused while banned.
async fn existing<S: UserStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    now: i64,
) -> Result<User, ApiError> {
    let user = deps
        .store
        .find_user(user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(detail) = user.ban_state(now).login_refusal() {
        return Err(ApiError::Forbidden(detail));
    }
    Ok(user)
}

async fn link<S: IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    account: &ProviderAccount,
    email: Option<&str>,
    user_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    let identity_id = Uuid::new_v4().to_string();
    let entry = deps
        .audit(AuditAction::IdentityLinked, now)
        .by_self(user_id)
        .with("provider", provider)
        .with("identity_id", identity_id.as_str());
    deps.store
        .link_identity(
            &NewIdentity {
                id: &identity_id,
                user_id,
                provider,
                subject: &account.subject,
                email,
                now,
            },
            &entry,
        )
        .await?;
    Ok(())
}

/// How many usernames are tried before giving up (the base, then with random suffixes).
const USERNAME_ATTEMPTS: usize = 5;

async fn create<S: UserStore + IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    account: &ProviderAccount,
    email: Option<&str>,
    now: i64,
) -> Result<User, ApiError> {
    let base = username_base(&[account.name_hint.as_deref(), email]);
    let user_id = Uuid::new_v4().to_string();
    let identity_id = Uuid::new_v4().to_string();
    let email_verified = email.is_some() && account.email_verified == Some(true);
    for attempt in 0..USERNAME_ATTEMPTS {
        let username = if attempt == 0 {
            base.clone()
        } else {
            let [a, b] = random_bytes::<2>()?;
            format!("{base}_{:04}", u16::from_be_bytes([a, b]) % 10_000)
        };
        let entry = deps
            .audit(AuditAction::Signup, now)
            .by_self(&user_id)
            .with("provider", provider);
        let created = deps
            .store
            .create_user_with_identity(
                &NewUser {
                    id: &user_id,
                    username: &username,
                    email,
                    password_hash: NO_PASSWORD,
                    email_verified,
                    now,
                },
                &NewIdentity {
                    id: &identity_id,
                    user_id: &user_id,
                    provider,
                    subject: &account.subject,
                    email,
                    now,
                },
                &entry,
            )
            .await;
        match created {
            Ok(()) => {
                deps.edge.count(Event::Signup);
                return existing(deps, &user_id, now).await;
            }
            Err(StoreError::Taken(Unique::Username)) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::UsernameTaken)
}

/// The provider account a link code carries from the callback to its completion.
#[derive(Debug, Serialize, Deserialize)]
struct LinkedAccount {
    subject: String,
    email: Option<String>,
}

/// What a one-time code stands for: a sign-in to `user_id`, or (with `link`) a link of a
/// provider account to `user_id`, which only that account can complete.
#[derive(Debug, Serialize, Deserialize)]
struct CodeGrant {
    user_id: String,
    provider: String,
    app_challenge: Option<String>,
    #[serde(default)]
    link: Option<LinkedAccount>,
}

/// Issue the one-time code the callback hands to the app (60 seconds, single use): a
/// sign-in to `user_id`, or, for a link request, the provider's account to link.
pub async fn issue_code<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    pending: &PendingSignIn,
    link: Option<&ProviderAccount>,
    now: i64,
) -> Result<String, ApiError> {
    let code = secret()?;
    let grant = CodeGrant {
        user_id: user_id.to_owned(),
        provider: pending.provider.clone(),
        app_challenge: pending.app_challenge.clone(),
        link: link.map(|account| LinkedAccount {
            subject: account.subject.clone(),
            email: account.email.clone(),
        }),
    };
    put(deps, GrantKind::Code, &code, &grant, now).await?;
    Ok(code)
}

/// Spend a one-time code. The code is spent by the attempt whatever follows, so a wrong
/// verifier cannot be retried against it. A code issued with a challenge needs its
/// verifier.
async fn take_code<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    code: &str,
    verifier: Option<&str>,
    now: i64,
) -> Result<CodeGrant, ApiError> {
    let grant: CodeGrant = take(deps, GrantKind::Code, code, now)
        .await?
        .ok_or(ApiError::InvalidGrant)?;
    if let Some(challenge) = grant.app_challenge.as_deref() {
        if !verifier.is_some_and(|verifier| pkce_matches(verifier, challenge)) {
            deps.edge.security_event(
                "oauth_code_verifier_refused",
                json!({ "provider": grant.provider, "user_id": grant.user_id }),
            );
            return Err(ApiError::InvalidGrant);
        }
    }
    Ok(grant)
}

/// Spend a sign-in's one-time code: the account it stands for, and the provider it came
/// through. A link's code is refused here: it completes only with its account's token.
pub async fn redeem_code<S: OAuthGrantStore + UserStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    code: &str,
    verifier: Option<&str>,
    now: i64,
) -> Result<(User, String), ApiError> {
    let grant = take_code(deps, code, verifier, now).await?;
    if grant.link.is_some() {
        return Err(ApiError::InvalidGrant);
    }
    // An account deleted since the code was issued: the code stands for nothing.
    let user = match existing(deps, &grant.user_id, now).await {
        Err(ApiError::NotFound) => Err(ApiError::InvalidGrant),
        other => other,
    }?;
    Ok((user, grant.provider))
}

/// Complete a link with the code the callback returned: only the account that asked for
/// the link can, so a link started by one account and finished in another's browser
/// links nothing.
pub async fn complete_link<S: OAuthGrantStore + IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    code: &str,
    verifier: Option<&str>,
    now: i64,
) -> Result<Identity, ApiError> {
    let grant = take_code(deps, code, verifier, now).await?;
    let Some(linked) = grant.link.filter(|_| grant.user_id == user_id) else {
        deps.edge.security_event(
            "oauth_link_code_refused",
            json!({ "provider": grant.provider, "user_id": user_id }),
        );
        return Err(ApiError::InvalidGrant);
    };
    let account = ProviderAccount {
        subject: linked.subject,
        email: linked.email,
        email_verified: None,
        name_hint: None,
    };
    link_account(deps, &grant.provider, &account, user_id, now).await
}

/// An account's identities, oldest first.
pub async fn identities<S: IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
) -> Result<Vec<Identity>, ApiError> {
    Ok(deps.store.identities_of(user_id).await?)
}

/// Unlink one of the caller's identities; refused when it is the account's last way to
/// sign in, and 404 for an identity that is not the caller's.
pub async fn unlink<S: IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    identity_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    if Uuid::parse_str(identity_id).is_err() {
        return Err(ApiError::NotFound);
    }
    let entry = deps
        .audit(AuditAction::IdentityUnlinked, now)
        .by_self(user_id)
        .with("identity_id", identity_id);
    match deps
        .store
        .unlink_identity(user_id, identity_id, &entry)
        .await?
    {
        Unlink::Unlinked => Ok(()),
        Unlink::NotFound => Err(ApiError::NotFound),
        Unlink::LastSignInMethod => Err(ApiError::LastSignInMethod),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::oauth::pkce_challenge;
    use crate::service::block_on;
    use crate::service::testing::World;

    const REDIRECT: &str = "https://app.example/done";
    /// A local account's id.
    const ANN: &str = "00000000-0000-4000-8000-000000000001";

    fn world() -> World {
        World::new(&[
            ("OAUTH_PROVIDERS", "acme"),
            ("OAUTH_ACME_CLIENT_ID", "client"),
            ("OAUTH_ACME_CLIENT_SECRET", "secret"),
            ("OAUTH_ACME_ISSUER", "https://id.acme.example"),
            ("ALLOWED_REDIRECT_URLS", REDIRECT),
        ])
    }

    fn account(subject: &str, email: Option<&str>, verified: Option<bool>) -> ProviderAccount {
        ProviderAccount {
            subject: subject.into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            name_hint: Some("Ann".into()),
        }
    }

    /// A local account with a password, its email verified or not.
    fn local(world: &World, id: &str, email: &str, verified: bool) {
        let mut user = crate::service::test_account(id, &["user"], 1);
        user.email = Some(email.into());
        user.email_verified = verified;
        user.password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into();
        world.store.users.borrow_mut().push(user);
    }

    /// A checked request to be sent back to `redirect_to`.
    fn app(redirect_to: &str, challenge: Option<&str>) -> AppRequest {
        AppRequest {
            redirect_to: redirect_to.into(),
            app_challenge: challenge.map(str::to_owned),
        }
    }

    #[test]
    fn a_state_is_spent_once_and_only_with_its_browsers_cookie() {
        let world = world();
        let deps = world.deps();
        let started = || block_on(begin(&deps, "acme", &app(REDIRECT, None), None, 100)).unwrap();
        // The callback of `provider` at `now`, with this browser's cookie or `cookie`.
        let resumed = |begun: &Begun, provider: &str, cookie: Option<&str>, now: i64| {
            block_on(resume(&deps, provider, Some(&begun.state), cookie, now))
        };
        let begun = started();
        let pending = resumed(&begun, "acme", Some(&begun.cookie), 101).unwrap();
        assert_eq!(pending.redirect_to, REDIRECT);
        assert_eq!(pkce_challenge(&pending.verifier), begun.challenge);
        assert_eq!(pending.nonce, begun.nonce);
        // Replayed.
        assert_eq!(
            resumed(&begun, "acme", Some(&begun.cookie), 102).unwrap_err(),
            ApiError::InvalidState
        );
        // Without the cookie, or another browser's: refused, and the state is burned.
        for cookie in [None, Some("another-browser")] {
            let begun = started();
            assert_eq!(
                resumed(&begun, "acme", cookie, 101).unwrap_err(),
                ApiError::InvalidState
            );
            assert!(resumed(&begun, "acme", Some(&begun.cookie), 101).is_err());
        }
        // Expired after ten minutes; a state of another provider; no state at all.
        let begun = started();
        assert!(resumed(&begun, "acme", Some(&begun.cookie), 700).is_err());
        let begun = started();
        assert!(resumed(&begun, "other", Some(&begun.cookie), 101).is_err());
        assert!(block_on(resume(&deps, "acme", None, Some(&begun.cookie), 101)).is_err());
    }

    #[test]
    fn a_disallowed_redirect_or_a_non_s256_challenge_is_a_400() {
        let world = world();
        let deps = world.deps();
        let refused = app_request(&deps, "acme", "https://evil.example/", None, None);
        assert_eq!(refused.unwrap_err().status(), 400);
        assert_eq!(world.edge.event_names(), ["oauth_redirect_refused"]);
        let challenge = pkce_challenge(&"v".repeat(43));
        for (bad, method) in [
            (Some(challenge.as_str()), Some("plain")),
            (Some("short"), None),
            (None, Some("S256")),
        ] {
            let refused = app_request(&deps, "acme", REDIRECT, bad, method);
            assert_eq!(refused.unwrap_err().status(), 400);
        }
        let accepted = app_request(&deps, "acme", REDIRECT, Some(&challenge), Some("S256"));
        assert_eq!(accepted.unwrap(), app(REDIRECT, Some(&challenge)));
        assert_eq!(
            app_request(&deps, "acme", REDIRECT, None, None).unwrap(),
            app(REDIRECT, None)
        );
    }

    #[test]
    fn a_link_ticket_is_spent_once_by_its_provider_and_starts_a_link_for_its_account() {
        let world = world();
        let deps = world.deps();
        let ticket = block_on(issue_link_ticket(
            &deps,
            "acme",
            "u1",
            app(REDIRECT, None),
            100,
        ))
        .unwrap();
        // Another provider's start spends it without starting anything.
        assert_eq!(
            block_on(begin_link(&deps, "other", &ticket, 101)).unwrap_err(),
            ApiError::InvalidState
        );
        let ticket = block_on(issue_link_ticket(
            &deps,
            "acme",
            "u1",
            app(REDIRECT, None),
            100,
        ))
        .unwrap();
        assert_eq!(
            block_on(begin_link(&deps, "acme", &ticket, 161)).unwrap_err(),
            ApiError::InvalidState,
            "a ticket lives 60 seconds"
        );
        let ticket = block_on(issue_link_ticket(
            &deps,
            "acme",
            "u1",
            app(REDIRECT, None),
            200,
        ))
        .unwrap();
        let (begun, request) = block_on(begin_link(&deps, "acme", &ticket, 259)).unwrap();
        assert_eq!(request, app(REDIRECT, None));
        assert!(block_on(begin_link(&deps, "acme", &ticket, 259)).is_err());
        let pending = block_on(resume(
            &deps,
            "acme",
            Some(&begun.state),
            Some(&begun.cookie),
            261,
        ))
        .unwrap();
        assert_eq!(pending.link_user.as_deref(), Some("u1"));
    }

    #[test]
    fn a_link_code_completes_only_for_the_account_that_asked() {
        let world = world();
        let caller = ANN;
        local(&world, caller, "ann@example.com", false);
        let deps = world.deps();
        let mut link_pending = pending(None);
        link_pending.link_user = Some(caller.into());
        let linked = account("s1", Some("ann@elsewhere.example"), Some(true));
        // Someone else's token cannot complete it, and the attempt spends the code.
        let code = block_on(issue_code(&deps, caller, &link_pending, Some(&linked), 10)).unwrap();
        let other = "00000000-0000-4000-8000-000000000002";
        assert_eq!(
            block_on(complete_link(&deps, other, &code, None, 11)).unwrap_err(),
            ApiError::InvalidGrant
        );
        assert_eq!(
            block_on(complete_link(&deps, caller, &code, None, 11)).unwrap_err(),
            ApiError::InvalidGrant
        );
        // A link's code is no sign-in.
        let code = block_on(issue_code(&deps, caller, &link_pending, Some(&linked), 10)).unwrap();
        assert_eq!(
            block_on(redeem_code(&deps, &code, None, 11)).unwrap_err(),
            ApiError::InvalidGrant
        );
        let code = block_on(issue_code(&deps, caller, &link_pending, Some(&linked), 10)).unwrap();
        let identity = block_on(complete_link(&deps, caller, &code, None, 11)).unwrap();
        assert_eq!(
            (identity.user_id.as_str(), identity.subject.as_str()),
            (caller, "s1")
        );
        assert_eq!(identity.email.as_deref(), Some("ann@elsewhere.example"));
        // A sign-in's code completes no link.
        let code = block_on(issue_code(&deps, caller, &pending(None), None, 10)).unwrap();
        assert_eq!(
            block_on(complete_link(&deps, caller, &code, None, 11)).unwrap_err(),
            ApiError::InvalidGrant
        );
    }

    #[test]
    fn a_new_provider_account_gets_an_account_without_a_password() {
        let world = world();
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", Some("Ann@Example.com"), Some(true)),
            10,
        ))
        .unwrap();
        assert_eq!(user.username, "ann");
        assert_eq!(user.email.as_deref(), Some("ann@example.com"));
        assert!(user.email_verified);
        assert_eq!(world.store.users.borrow()[0].password_hash, NO_PASSWORD);
        // The next time, the identity signs in to the same account.
        let again = block_on(account_for(&deps, "acme", &account("s1", None, None), 20)).unwrap();
        assert_eq!(again.id, user.id);
        assert_eq!(world.store.identities.borrow()[0].last_used_at, 20);
        let actions: Vec<_> = world
            .store
            .audit
            .borrow()
            .iter()
            .map(|entry| entry.action)
            .collect();
        assert_eq!(actions, [AuditAction::Signup, AuditAction::ProviderLogin]);
    }

    #[test]
    fn usernames_are_made_unique() {
        let world = world();
        let deps = world.deps();
        let first = block_on(account_for(&deps, "acme", &account("s1", None, None), 1)).unwrap();
        let second = block_on(account_for(&deps, "acme", &account("s2", None, None), 1)).unwrap();
        assert_eq!(first.username, "ann");
        assert!(second.username.starts_with("ann_"), "{}", second.username);
    }

    #[test]
    fn a_verified_email_links_to_a_verified_account() {
        let world = world();
        local(&world, ANN, "ann@example.com", true);
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", Some("ann@example.com"), Some(true)),
            10,
        ))
        .unwrap();
        assert_eq!(user.id, ANN);
        assert_eq!(world.store.users.borrow().len(), 1);
        assert_eq!(
            world.store.audit.borrow()[0].action,
            AuditAction::IdentityLinked
        );
    }

    #[test]
    fn an_unverified_local_email_asks_the_user_to_sign_in_and_link() {
        let world = world();
        local(&world, ANN, "ann@example.com", false);
        let deps = world.deps();
        let refused = block_on(account_for(
            &deps,
            "acme",
            &account("s1", Some("ann@example.com"), Some(true)),
            10,
        ));
        assert_eq!(refused.unwrap_err(), ApiError::LinkRequired);
        assert!(world.store.identities.borrow().is_empty());
    }

    #[test]
    fn an_email_the_provider_does_not_vouch_for_makes_a_new_account_without_it() {
        for verified in [None, Some(false)] {
            let world = world();
            local(&world, ANN, "ann@example.com", true);
            let deps = world.deps();
            let user = block_on(account_for(
                &deps,
                "acme",
                &account("s1", Some("ann@example.com"), verified),
                10,
            ))
            .unwrap();
            assert_ne!(user.id, ANN);
            assert_eq!(user.email, None);
        }
    }

    #[test]
    fn linking_adds_the_identity_to_the_callers_account_and_never_steals_one() {
        let world = world();
        let caller = ANN;
        local(&world, caller, "ann@example.com", false);
        let deps = world.deps();
        let linked = block_on(link_account(
            &deps,
            "acme",
            &account("s1", None, None),
            caller,
            10,
        ))
        .unwrap();
        assert_eq!(linked.user_id, caller);
        // Linking it again is no change.
        let again = block_on(link_account(
            &deps,
            "acme",
            &account("s1", None, None),
            caller,
            11,
        ))
        .unwrap();
        assert_eq!(again.id, linked.id);
        let other = block_on(account_for(&deps, "acme", &account("s2", None, None), 10)).unwrap();
        assert_ne!(other.id, caller);
        let stolen = block_on(link_account(
            &deps,
            "acme",
            &account("s2", None, None),
            caller,
            10,
        ));
        assert_eq!(stolen.unwrap_err(), ApiError::IdentityTaken);
        assert_eq!(
            world.store.identities.borrow().len(),
            2,
            "the other account keeps its identity"
        );
    }

    fn pending(challenge: Option<String>) -> PendingSignIn {
        PendingSignIn {
            provider: "acme".into(),
            redirect_to: REDIRECT.into(),
            nonce: "n".into(),
            verifier: "v".into(),
            app_challenge: challenge,
            link_user: None,
            binding: String::new(),
        }
    }

    #[test]
    fn a_code_is_redeemed_once_within_sixty_seconds() {
        let world = world();
        let deps = world.deps();
        let user = block_on(account_for(&deps, "acme", &account("s1", None, None), 1)).unwrap();
        let code = block_on(issue_code(&deps, &user.id, &pending(None), None, 100)).unwrap();
        let (redeemed, provider) = block_on(redeem_code(&deps, &code, None, 159)).unwrap();
        assert_eq!(
            (redeemed.id.as_str(), provider.as_str()),
            (user.id.as_str(), "acme")
        );
        assert_eq!(
            block_on(redeem_code(&deps, &code, None, 159)).unwrap_err(),
            ApiError::InvalidGrant
        );
        let late = block_on(issue_code(&deps, &user.id, &pending(None), None, 100)).unwrap();
        assert_eq!(
            block_on(redeem_code(&deps, &late, None, 160)).unwrap_err(),
            ApiError::InvalidGrant
        );
    }

    #[test]
    fn a_code_issued_with_a_challenge_needs_its_verifier_and_a_wrong_one_spends_it() {
        let world = world();
        let deps = world.deps();
        let user = block_on(account_for(&deps, "acme", &account("s1", None, None), 1)).unwrap();
        let verifier = "v".repeat(43);
        let with_challenge = pending(Some(pkce_challenge(&verifier)));
        for wrong in [None, Some("w".repeat(43))] {
            let code = block_on(issue_code(&deps, &user.id, &with_challenge, None, 100)).unwrap();
            assert_eq!(
                block_on(redeem_code(&deps, &code, wrong.as_deref(), 101)).unwrap_err(),
                ApiError::InvalidGrant
            );
            assert!(block_on(redeem_code(&deps, &code, Some(&verifier), 101)).is_err());
        }
        let code = block_on(issue_code(&deps, &user.id, &with_challenge, None, 100)).unwrap();
        assert!(block_on(redeem_code(&deps, &code, Some(&verifier), 101)).is_ok());
    }

    #[test]
    fn a_redeemed_code_opens_a_session_as_a_login_does_naming_the_provider() {
        let world = world();
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", Some("ann@example.com"), Some(true)),
            1,
        ))
        .unwrap();
        let code = block_on(issue_code(&deps, &user.id, &pending(None), None, 100)).unwrap();
        let (user, provider) = block_on(redeem_code(&deps, &code, None, 101)).unwrap();
        let crate::service::auth::SignIn::SignedIn(signed_in) = block_on(
            crate::service::auth::provider_session(&deps, user, &provider, 101),
        )
        .unwrap() else {
            panic!("no second factor, so a session")
        };
        assert!(!signed_in.access_token.is_empty());
        assert!(signed_in
            .refresh_token
            .starts_with(&format!("{}.", signed_in.session_id)));
        assert_eq!(world.store.sessions.borrow().len(), 1);
        let audit = world.store.audit.borrow();
        let login = audit.last().unwrap();
        assert_eq!(login.action, AuditAction::Login);
        assert_eq!(login.details["provider"], "acme");
    }

    #[test]
    fn a_provider_account_without_a_verified_address_is_refused_when_verification_is_required() {
        let mut world = world();
        world.config.email.require_verification = true;
        let deps = world.deps();
        let user = block_on(account_for(&deps, "acme", &account("s1", None, None), 1)).unwrap();
        let refused = block_on(crate::service::auth::provider_session(
            &deps, user, "acme", 2,
        ));
        assert_eq!(refused.unwrap_err().status(), 403);
        assert!(world.store.sessions.borrow().is_empty());
    }

    mod provider_calls {
        use super::*;
        use crate::domain::keys::parse_private;
        use crate::service::testing::ScriptedProvider;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;

        const ISSUER: &str = "https://id.acme.example";
        const DISCOVERY: &str = "https://id.acme.example/.well-known/openid-configuration";
        const TOKEN: &str = "https://id.acme.example/token";
        const JWKS: &str = "https://id.acme.example/jwks";
        const CALLBACK: &str = "https://auth.example/api/v1/auth/oauth/acme/callback";
        const NOW: i64 = 1_790_000_000;

        fn fixture(name: &str, form: &str) -> Value {
            let all: Value =
                serde_json::from_str(include_str!("../../tests/fixtures/test-keys.json")).unwrap();
            all[name][form].clone()
        }

        fn with_kid(mut jwk: Value, kid: &str) -> Value {
            jwk["kid"] = json!(kid);
            jwk
        }

        /// An id_token signed by a fixture key (`es256` or `rs256`).
        fn id_token(key: &str, kid: Option<&str>, claims: &Value) -> String {
            let private = parse_private(&fixture(key, "private_jwk").to_string(), "test").unwrap();
            let mut header = json!({ "alg": private.algorithm().as_str(), "typ": "JWT" });
            if let Some(kid) = kid {
                header["kid"] = json!(kid);
            }
            let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
            let input = format!("{}.{}", encode(&header), encode(claims));
            let signature = private.sign(input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
        }

        fn claims(nonce: &str) -> Value {
            json!({
                "iss": ISSUER, "aud": "client", "sub": "acme-42",
                "iat": NOW, "exp": NOW + 300, "nonce": nonce,
                "email": "ann@example.com", "email_verified": true,
                "preferred_username": "ann",
            })
        }

        /// A provider with a discovery document and a JWKS holding, besides its ES256 and
        /// RS256 keys, keys this service cannot or must not use.
        fn provider() -> ScriptedProvider {
            let scripted = ScriptedProvider::default();
            scripted.answer(
                "GET",
                DISCOVERY,
                200,
                json!({
                    "issuer": ISSUER,
                    "authorization_endpoint": "https://id.acme.example/auth",
                    "token_endpoint": TOKEN,
                    "jwks_uri": JWKS,
                    "code_challenge_methods_supported": ["S256"],
                })
                .to_string(),
            );
            let mut encryption = with_kid(fixture("rs256_other", "public_jwk"), "enc");
            encryption["use"] = json!("enc");
            scripted.answer(
                "GET",
                JWKS,
                200,
                json!({ "keys": [
                    with_kid(fixture("ed25519", "public_jwk"), "ed"),
                    with_kid(fixture("p384", "public_jwk"), "p384"),
                    with_kid(fixture("rsa1024", "public_jwk"), "weak"),
                    encryption,
                    { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
                    with_kid(fixture("es256", "public_jwk"), "ec-1"),
                    with_kid(fixture("rs256", "public_jwk"), "rsa-1"),
                ]})
                .to_string(),
            );
            scripted
        }

        fn acme(world: &World) -> Provider {
            world.config.oauth.provider("acme").unwrap().clone()
        }

        /// Start a sign-in and come back from the provider with it.
        fn pending(world: &World) -> (Begun, PendingSignIn) {
            let deps = world.deps();
            let begun = block_on(begin(&deps, "acme", &app(REDIRECT, None), None, NOW)).unwrap();
            let pending = block_on(resume(
                &deps,
                "acme",
                Some(&begun.state),
                Some(&begun.cookie),
                NOW,
            ))
            .unwrap();
            (begun, pending)
        }

        #[test]
        fn start_sends_the_browser_to_the_discovered_endpoint_with_state_nonce_and_pkce() {
            let world = world();
            let scripted = provider();
            let (begun, _) = pending(&world);
            let url = block_on(authorization_redirect(
                &world.deps(),
                &scripted,
                &acme(&world),
                &begun,
            ))
            .unwrap();
            let url = url::Url::parse(&url).unwrap();
            assert_eq!(url.path(), "/auth");
            let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
            assert_eq!(query["response_type"], "code");
            assert_eq!(query["client_id"], "client");
            assert_eq!(query["redirect_uri"], CALLBACK);
            assert_eq!(query["scope"], OIDC_SCOPE);
            assert_eq!(query["state"], begun.state);
            assert_eq!(query["nonce"], begun.nonce);
            assert_eq!(query["code_challenge"], begun.challenge);
            assert_eq!(query["code_challenge_method"], "S256");
        }

        #[test]
        fn an_unreachable_or_foreign_discovery_document_is_a_503_at_start() {
            let world = world();
            let (begun, _) = pending(&world);
            let unreachable = ScriptedProvider::default();
            let error = block_on(authorization_redirect(
                &world.deps(),
                &unreachable,
                &acme(&world),
                &begun,
            ))
            .unwrap_err();
            assert_eq!(error.status(), 503);
            let foreign = provider();
            foreign.answer(
                "GET",
                DISCOVERY,
                200,
                json!({ "issuer": "https://evil.example", "authorization_endpoint": "https://evil.example/a",
                        "token_endpoint": TOKEN, "jwks_uri": JWKS })
                .to_string(),
            );
            let error = block_on(authorization_redirect(
                &world.deps(),
                &foreign,
                &acme(&world),
                &begun,
            ))
            .unwrap_err();
            assert_eq!(error.status(), 503);
            assert_eq!(
                world.edge.event_names(),
                ["oauth_provider_failed", "oauth_provider_failed"]
            );
        }

        #[test]
        fn a_signed_id_token_gives_the_account_and_the_exchange_carries_the_verifier() {
            for (key, kid) in [("es256", "ec-1"), ("rs256", "rsa-1")] {
                let world = world();
                let scripted = provider();
                let (_, pending) = pending(&world);
                let token = id_token(key, Some(kid), &claims(&pending.nonce));
                scripted.answer("POST", TOKEN, 200, json!({ "id_token": token }).to_string());
                let account = block_on(provider_account(
                    &world.deps(),
                    &scripted,
                    &acme(&world),
                    &pending,
                    Some("the-code"),
                    NOW + 5,
                ))
                .unwrap();
                assert_eq!(account.subject, "acme-42");
                assert_eq!(account.email_verified, Some(true));
                let (headers, form) = scripted.last("POST", TOKEN).unwrap();
                let form: std::collections::HashMap<_, _> = form_urlencoded::parse(form.as_bytes())
                    .into_owned()
                    .collect();
                assert_eq!(form["grant_type"], "authorization_code");
                assert_eq!(form["code"], "the-code");
                assert_eq!(form["redirect_uri"], CALLBACK);
                assert_eq!(form["code_verifier"], pending.verifier);
                assert!(!form.contains_key("client_secret"), "sent by HTTP Basic");
                let basic = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("client:secret")
                );
                assert!(headers.contains(&("authorization".into(), basic)));
            }
        }

        fn refused(
            scripted: &ScriptedProvider,
            world: &World,
            pending: &PendingSignIn,
            token: &str,
        ) -> ProviderFailure {
            scripted.answer("POST", TOKEN, 200, json!({ "id_token": token }).to_string());
            block_on(provider_account(
                &world.deps(),
                scripted,
                &acme(world),
                pending,
                Some("the-code"),
                NOW + 5,
            ))
            .unwrap_err()
        }

        #[test]
        fn each_bad_id_token_is_refused_for_its_reason() {
            let world = world();
            let scripted = provider();
            let (_, pending) = pending(&world);
            let good = claims(&pending.nonce);
            let with = |name: &str, value: Value| {
                let mut claims = good.clone();
                claims[name] = value;
                claims
            };
            let tampered = {
                let token = id_token("es256", Some("ec-1"), &good);
                let (input, _) = token.rsplit_once('.').unwrap();
                let other = id_token("es256_other", Some("ec-1"), &good);
                format!("{input}.{}", other.rsplit_once('.').unwrap().1)
            };
            let cases = [
                (tampered, IdTokenError::Signature),
                (
                    id_token("es256_other", Some("ec-1"), &good),
                    IdTokenError::Signature,
                ),
                (
                    id_token("es256", Some("unknown"), &good),
                    IdTokenError::UnknownKey,
                ),
                // An RSA key's kid on an ES256 token: the algorithm is the key's.
                (
                    id_token("es256", Some("rsa-1"), &good),
                    IdTokenError::UnknownKey,
                ),
                (
                    id_token("es256", Some("ec-1"), &with("nonce", json!("another"))),
                    IdTokenError::Nonce,
                ),
                (
                    id_token("es256", Some("ec-1"), &with("aud", json!("other"))),
                    IdTokenError::Audience,
                ),
                (
                    id_token(
                        "es256",
                        Some("ec-1"),
                        &with("iss", json!("https://evil.example")),
                    ),
                    IdTokenError::Issuer,
                ),
                (
                    id_token("es256", Some("ec-1"), &with("exp", json!(NOW - 120))),
                    IdTokenError::Expired,
                ),
                ("not.a.token".to_owned(), IdTokenError::Malformed),
            ];
            for (token, reason) in cases {
                assert_eq!(
                    refused(&scripted, &world, &pending, &token),
                    ProviderFailure::IdToken(reason),
                    "{reason:?}"
                );
            }
            // With no kid, the set's one ES256 key is used.
            scripted.answer(
                "POST",
                TOKEN,
                200,
                json!({ "id_token": id_token("es256", None, &good) }).to_string(),
            );
            assert!(block_on(provider_account(
                &world.deps(),
                &scripted,
                &acme(&world),
                &pending,
                Some("c"),
                NOW + 5
            ))
            .is_ok());
            // Failures are logged by reason, never with the token or the code.
            let events = world.edge.events.borrow();
            assert!(events.iter().all(|(_, fields)| {
                let text = fields.to_string();
                !text.contains("the-code") && !text.contains("eyJ")
            }));
        }

        #[test]
        fn a_failing_token_endpoint_or_no_code_is_a_provider_failure() {
            let world = world();
            let scripted = provider();
            let (_, pending) = pending(&world);
            scripted.answer("POST", TOKEN, 400, r#"{"error":"invalid_grant"}"#);
            let call = |code: Option<&str>| {
                block_on(provider_account(
                    &world.deps(),
                    &scripted,
                    &acme(&world),
                    &pending,
                    code,
                    NOW,
                ))
                .unwrap_err()
                .reason()
            };
            assert_eq!(call(Some("c")), "token");
            assert_eq!(call(None), "token");
            scripted.answer("POST", TOKEN, 200, r#"{"access_token":"x"}"#);
            assert_eq!(call(Some("c")), "token");
        }

        fn github_world() -> World {
            World::new(&[
                ("ENVIRONMENT", "test"),
                ("OAUTH_PROVIDERS", "github"),
                ("OAUTH_GITHUB_CLIENT_ID", "gh-client"),
                ("OAUTH_GITHUB_CLIENT_SECRET", "gh-secret"),
                ("OAUTH_GITHUB_WEB_URL", "http://127.0.0.1:9000"),
                ("OAUTH_GITHUB_API_URL", "http://127.0.0.1:9001"),
                ("ALLOWED_REDIRECT_URLS", REDIRECT),
            ])
        }

        #[test]
        fn github_gives_its_numeric_id_and_only_a_verified_primary_address() {
            let world = github_world();
            let github = world.config.oauth.provider("github").unwrap().clone();
            let deps = world.deps();
            let begun = block_on(begin(&deps, "github", &app(REDIRECT, None), None, NOW)).unwrap();
            let scripted = ScriptedProvider::default();
            let url = block_on(authorization_redirect(&deps, &scripted, &github, &begun)).unwrap();
            assert!(url.starts_with("http://127.0.0.1:9000/login/oauth/authorize?"));
            assert!(!url.contains("nonce="));
            let pending = block_on(resume(
                &deps,
                "github",
                Some(&begun.state),
                Some(&begun.cookie),
                NOW,
            ))
            .unwrap();
            let token_url = "http://127.0.0.1:9000/login/oauth/access_token";
            scripted.answer(
                "POST",
                token_url,
                200,
                r#"{"access_token":"gho_1","token_type":"bearer"}"#,
            );
            scripted.answer(
                "GET",
                "http://127.0.0.1:9001/user",
                200,
                r#"{"id":7,"login":"octo-cat"}"#,
            );
            let emails = |verified: bool| {
                json!([
                    { "email": "other@example.com", "primary": false, "verified": true },
                    { "email": "octo@example.com", "primary": true, "verified": verified },
                ])
                .to_string()
            };
            scripted.answer(
                "GET",
                "http://127.0.0.1:9001/user/emails",
                200,
                emails(true),
            );
            let account = block_on(provider_account(
                &deps,
                &scripted,
                &github,
                &pending,
                Some("c"),
                NOW,
            ))
            .unwrap();
            assert_eq!(account.subject, "7");
            assert_eq!(account.email.as_deref(), Some("octo@example.com"));
            assert_eq!(account.email_verified, Some(true));
            assert_eq!(account.name_hint.as_deref(), Some("octo-cat"));
            let (_, form) = scripted.last("POST", token_url).unwrap();
            assert!(form.contains("client_secret=gh-secret"));
            assert!(form.contains(&format!("code_verifier={}", pending.verifier)));
            let (headers, _) = scripted.last("GET", "http://127.0.0.1:9001/user").unwrap();
            assert!(headers.contains(&("authorization".into(), "Bearer gho_1".into())));

            scripted.answer(
                "GET",
                "http://127.0.0.1:9001/user/emails",
                200,
                emails(false),
            );
            let account = block_on(provider_account(
                &deps,
                &scripted,
                &github,
                &pending,
                Some("c"),
                NOW,
            ))
            .unwrap();
            assert_eq!((account.email, account.email_verified), (None, None));

            // GitHub reports a bad code with a 200 and no token.
            scripted.answer(
                "POST",
                token_url,
                200,
                r#"{"error":"bad_verification_code"}"#,
            );
            let failure = block_on(provider_account(
                &deps,
                &scripted,
                &github,
                &pending,
                Some("c"),
                NOW,
            ))
            .unwrap_err();
            assert_eq!(failure.reason(), "token");
        }
    }
}
