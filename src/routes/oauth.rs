//! `/api/v1/auth/oauth/*`: sign-in through a provider. `start` sends the browser to the
//! provider with a fresh state bound to it by a `__Host-` cookie; `callback` checks the
//! state and the cookie, completes the sign-in with the provider and sends the browser
//! back to the app with a one-time code; `exchange` turns that code into a session.
//!
//! No token ever travels in a URL: the app receives only the one-time code, and redeems it
//! from its own code. Once a callback's state has passed, every failure goes back to the
//! app's `redirect_to` (checked against `ALLOWED_REDIRECT_URLS` at `start`, and again
//! here) with an `error` parameter; before that, the answer is a 400 problem, since where
//! to send the browser is not known.

use crate::domain::identity::GrantKind;
use crate::domain::metrics::Event;
use crate::domain::oauth::{with_query_param, Provider};
use crate::error::ApiError;
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, ApiResult};
use crate::routes::openapi::{BadRequest, NotFound, RateLimited, Unavailable};
use crate::routes::requests::OAuthExchangeRequest;
use crate::routes::views;
use crate::runtime::now_seconds;
use crate::service;
use crate::service::oauth::ProviderFailure;
use serde_json::json;
use worker::{Request, Response, ResponseBuilder};

/// The cookie that binds a state to the browser that started the sign-in. `__Host-`: only
/// set over HTTPS, by this host, for every path; the browser refuses to let a sibling
/// domain set or read it.
const COOKIE: &str = "__Host-edge-auth-oauth";

/// The error codes of RFC 6749 §4.1.2.1 a provider's callback may carry, passed on to the
/// app as they are; anything else becomes `server_error`, so no provider text reaches the
/// app's URL.
const PROVIDER_ERRORS: [&str; 7] = [
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
];

/// The enabled provider the path names; 404 for any other.
fn provider<'c>(ctx: &'c Ctx<'_>) -> Result<&'c Provider, ApiError> {
    let name = ctx.param("provider")?;
    ctx.config.oauth.provider(name).ok_or(ApiError::NotFound)
}

/// The query's value of `name`; a name given twice is refused rather than resolved, so
/// nothing in front of the service can read another value than it does.
fn query_value(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    let url = req
        .url()
        .map_err(|_| ApiError::MalformedRequest("Request URL could not be read".into()))?;
    let mut values = url
        .query_pairs()
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::MalformedRequest(format!(
            "The query names {name} twice"
        )));
    }
    Ok(first)
}

/// The binding cookie's value, when the request carries it.
fn binding_cookie(req: &Request) -> Option<String> {
    let header = req.headers().get("cookie").ok().flatten()?;
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

/// A 302 to `location`, never cached, setting or clearing the binding cookie.
fn redirect(location: &str, cookie: &str) -> ApiResult {
    let mut response: Response = ResponseBuilder::new().with_status(302).empty();
    let headers = response.headers_mut();
    headers
        .set("location", location)
        .and_then(|_| headers.set("set-cookie", cookie))
        .and_then(|_| headers.set("cache-control", "no-store"))
        .map_err(|error| ApiError::internal("redirect headers", error))?;
    Ok(response)
}

fn set_cookie(value: &str, max_age: i64) -> String {
    format!("{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}")
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/oauth/{provider}/start",
    tag = "oauth",
    summary = "Start signing in through a provider: redirects to it",
    params(
        ("provider" = String, Path, description = "An enabled provider's name (`OAUTH_PROVIDERS`)"),
        ("redirect_to" = String, Query, description = "Where the app is sent back with its one-time code; must match `ALLOWED_REDIRECT_URLS`"),
        ("code_challenge" = Option<String>, Query, description = "The app's PKCE S256 challenge; the exchange then needs its verifier"),
        ("code_challenge_method" = Option<String>, Query, description = "`S256`, the only method"),
    ),
    responses(
        (status = 302, description = "To the provider; sets the `__Host-` cookie that binds the sign-in to this browser"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/auth/oauth/{provider}/start?redirect_to=…[&code_challenge=…]` -> 302; or
/// `?link_ticket=…`, the ticket a signed-in account's link request handed the browser.
pub async fn start(req: &Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("oauth_start", ctx.config.oauth_rate_limit)
        .await?;
    let provider = provider(ctx)?;
    let deps = ctx.deps();
    let now = now_seconds();
    let begun = match query_value(req, "link_ticket")? {
        Some(ticket) => {
            let others = ["redirect_to", "code_challenge", "code_challenge_method"];
            for name in others {
                if query_value(req, name)?.is_some() {
                    return Err(ApiError::MalformedRequest(format!(
                        "{name} was given with the link request, not here"
                    )));
                }
            }
            service::oauth::begin_link(&deps, &provider.name, &ticket, now)
                .await?
                .0
        }
        None => {
            let request = app_request(req, ctx, provider)?;
            service::oauth::begin(&deps, &provider.name, &request, None, now).await?
        }
    };
    let location = service::oauth::authorization_redirect(&deps, ctx, provider, &begun).await?;
    let max_age = GrantKind::State.ttl_seconds();
    redirect(&location, &set_cookie(&begun.cookie, max_age))
}

/// The app's `redirect_to` and challenge from the query, checked.
fn app_request(
    req: &Request,
    ctx: &Ctx<'_>,
    provider: &Provider,
) -> Result<service::oauth::AppRequest, ApiError> {
    let redirect_to = query_value(req, "redirect_to")?
        .ok_or_else(|| ApiError::MalformedRequest("redirect_to is required".into()))?;
    let challenge = query_value(req, "code_challenge")?;
    let method = query_value(req, "code_challenge_method")?;
    service::oauth::app_request(
        &ctx.deps(),
        &provider.name,
        &redirect_to,
        challenge.as_deref(),
        method.as_deref(),
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/oauth/{provider}/callback",
    tag = "oauth",
    summary = "Where the provider sends the browser back: redirects to the app",
    params(
        ("provider" = String, Path, description = "The provider's name"),
        ("state" = String, Query, description = "The state `start` sent"),
        ("code" = Option<String>, Query, description = "The provider's authorization code"),
        ("error" = Option<String>, Query, description = "The provider's error, instead of a code"),
    ),
    responses(
        (status = 302, description = "To `redirect_to` with `code` (single use, 60 seconds), or with `error` (`access_denied` and the other RFC 6749 codes from the provider; `provider_failed`, `link_required`, `identity_taken`, `account_disabled`, `temporarily_unavailable`); clears the cookie"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/auth/oauth/{provider}/callback?state=…&code=…` -> 302 to the app.
pub async fn callback(req: &Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("oauth_callback", ctx.config.oauth_rate_limit)
        .await?;
    let provider = provider(ctx)?;
    let state = query_value(req, "state")?;
    let code = query_value(req, "code")?;
    let error = query_value(req, "error")?;
    let deps = ctx.deps();
    let now = now_seconds();
    let pending = service::oauth::resume(
        &deps,
        &provider.name,
        state.as_deref(),
        binding_cookie(req).as_deref(),
        now,
    )
    .await
    .inspect_err(|error| {
        if *error == ApiError::InvalidState {
            ctx.count(Event::OAuthSignIn {
                provider: &provider.name,
                result: "invalid_state",
            });
        }
    })?;
    // Checked at start; checked again in case the list has changed since.
    if !ctx.config.oauth.allows_redirect(&pending.redirect_to) {
        return Err(ApiError::InvalidState);
    }
    let clear = set_cookie("", 0);
    let back = |pairs: &[(&str, &str)]| -> ApiResult {
        let location =
            with_query_param(&pending.redirect_to, pairs).ok_or(ApiError::InvalidState)?;
        redirect(&location, &clear)
    };
    let fail = |code: &str| {
        log::security_event(
            ctx.meta,
            "oauth_sign_in_refused",
            json!({ "provider": provider.name, "error": code }),
        );
        ctx.count(Event::OAuthSignIn {
            provider: &provider.name,
            result: code,
        });
        back(&[("error", code)])
    };
    if let Some(error) = error {
        let error = PROVIDER_ERRORS
            .into_iter()
            .find(|known| *known == error)
            .unwrap_or("server_error");
        return fail(error);
    }
    let account = match service::oauth::provider_account(
        &deps,
        ctx,
        provider,
        &pending,
        code.as_deref(),
        now,
    )
    .await
    {
        Ok(account) => account,
        Err(ProviderFailure::Provider { .. } | ProviderFailure::IdToken(_)) => {
            return fail("provider_failed")
        }
    };
    // A link is completed by the account that asked for it, with this code and its token.
    if let Some(user_id) = pending.link_user.as_deref() {
        let code =
            service::oauth::issue_code(&deps, user_id, &pending, Some(&account), now).await?;
        ctx.count(Event::OAuthSignIn {
            provider: &provider.name,
            result: "link_code",
        });
        return back(&[("code", &code)]);
    }
    let user = match service::oauth::account_for(&deps, &provider.name, &account, now).await {
        Ok(user) => user,
        Err(ApiError::LinkRequired) => return fail("link_required"),
        Err(ApiError::IdentityTaken) => return fail("identity_taken"),
        Err(ApiError::Forbidden(_)) => return fail("account_disabled"),
        Err(ApiError::Unavailable { .. }) => return fail("temporarily_unavailable"),
        Err(other) => return Err(other),
    };
    let code = service::oauth::issue_code(&deps, &user.id, &pending, None, now).await?;
    ctx.count(Event::OAuthSignIn {
        provider: &provider.name,
        result: "success",
    });
    back(&[("code", &code)])
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/oauth/exchange",
    tag = "oauth",
    summary = "Exchange a provider sign-in's one-time code for tokens",
    request_body = OAuthExchangeRequest,
    responses(
        (status = 200, description = "Signed in; a new session. With a second factor enrolled: `mfa_required` and an `mfa_token` instead", body = views::SignIn),
        (status = 403, response = crate::routes::openapi::Forbidden),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/auth/oauth/exchange` `{code, code_verifier?}` -> 200 with tokens. The
/// code is spent by any attempt; a wrong or missing verifier (when the app sent a
/// challenge) is a 400 `invalid_grant`.
pub async fn exchange(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("oauth_exchange", ctx.config.oauth_rate_limit)
        .await?;
    let (body, problems) =
        read_body::<OAuthExchangeRequest>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let deps = ctx.deps();
    let now = now_seconds();
    let (user, provider) =
        service::oauth::redeem_code(&deps, &body.code, body.code_verifier.as_deref(), now).await?;
    let sign_in = service::auth::provider_session(&deps, user, &provider, now).await?;
    json(200, &views::SignIn::from(sign_in))
}
