//! The router: every route of the service is registered here, and every request passes
//! through [`handle`], which applies the edge rules (trusted hosts, CORS, headers, problem
//! details, the access log) whatever the handler did.

pub mod admin;
pub mod auth;
pub mod dev;
pub mod docs;
pub mod email;
pub mod meta;
pub mod metrics;
pub mod pages;
pub mod sessions;
pub mod users;

use crate::config::Config;
use crate::config::RateLimit;
use crate::domain::audit::{AuditAction, AuditEntry, Origin};
use crate::domain::metrics::Event;
use crate::domain::rate_limit::{client_bucket, Decision};
use crate::env;
use crate::error::ApiError;
use crate::http::response::{apply_edge_headers, problem, set_cors_headers, ApiResult};
use crate::http::{log, RequestMeta};
use crate::metrics as isolate_metrics;
use crate::store::rate_limit;
use admin::AdminPath;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Context, Date, Env, Method, Request, Response, ResponseBuilder};

/// What a handler may use besides the request itself.
pub struct Ctx<'a> {
    pub env: &'a Env,
    pub config: &'a Rc<Config>,
    /// For work that outlives the response (`wait_until`).
    pub worker: &'a Context,
    pub meta: &'a RequestMeta,
    user_id: RefCell<Option<String>>,
    rate_limit: RefCell<Option<Decision>>,
}

impl Ctx<'_> {
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
        let decision = rate_limit::check(self.env, &key, budget).await?;
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

/// Declares [`Route`] and [`Route::ALL`] from one list, so no route can be missing from
/// `ALL` (which the OpenAPI document's test walks).
macro_rules! routes {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// The routes of the API; `pattern` names them in logs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $($(#[$doc])* $variant,)*
        }

        impl Route {
            /// Every route.
            pub const ALL: &'static [Route] = &[$(Route::$variant,)*];
        }
    };
}

routes! {
    Ping,
    Health,
    /// `/health`, the seed service's path for `/api/health`.
    HealthAlias,
    Jwks,
    OpenApi,
    /// `/docs` and `/redoc`, and their files (`/docs/{file}`, `/redoc/{file}`).
    Docs,
    DocsFile,
    Redoc,
    RedocFile,
    Signup,
    Login,
    Refresh,
    Logout,
    LogoutAll,
    PasswordChange,
    Sessions,
    /// `/api/v1/auth/sessions/{id}`; the id is read from the path by the handler.
    Session,
    VerifyEmail,
    ResendVerification,
    PasswordReset,
    PasswordResetConfirm,
    EmailChangeConfirm,
    Me,
    DevOutbox,
    DevArgon2,
    DevMemory,
    /// HTML pages that links in emails open.
    VerifyEmailPage,
    ResetPasswordPage,
    ConfirmEmailPage,
    /// `/api/v1/admin/...`; ids are read from the path by the handlers.
    AdminUsers,
    AdminUser,
    AdminUserRoles,
    AdminUserRole,
    AdminUserBan,
    AdminUserSessions,
    AdminUserSession,
    AdminRoles,
    AdminAudit,
    /// Prometheus scrape endpoint.
    Metrics,
}

impl Route {
    fn from_path(path: &str) -> Option<Self> {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        Some(match path {
            "/api/ping" => Route::Ping,
            "/api/health" => Route::Health,
            "/health" => Route::HealthAlias,
            "/.well-known/jwks.json" => Route::Jwks,
            "/openapi.json" => Route::OpenApi,
            "/docs" => Route::Docs,
            "/redoc" => Route::Redoc,
            "/api/v1/auth/signup" => Route::Signup,
            "/api/v1/auth/login" => Route::Login,
            "/api/v1/auth/refresh" => Route::Refresh,
            "/api/v1/auth/logout" => Route::Logout,
            "/api/v1/auth/logout-all" => Route::LogoutAll,
            "/api/v1/auth/sessions" => Route::Sessions,
            "/api/v1/auth/verify-email" => Route::VerifyEmail,
            "/api/v1/auth/verify-email/resend" => Route::ResendVerification,
            "/api/v1/auth/password/reset" => Route::PasswordReset,
            "/api/v1/auth/password/reset/confirm" => Route::PasswordResetConfirm,
            "/api/v1/auth/email/confirm" => Route::EmailChangeConfirm,
            "/api/v1/dev/outbox" => Route::DevOutbox,
            "/api/v1/dev/argon2" => Route::DevArgon2,
            "/api/v1/dev/memory" => Route::DevMemory,
            "/verify-email" => Route::VerifyEmailPage,
            "/reset-password" => Route::ResetPasswordPage,
            "/confirm-email" => Route::ConfirmEmailPage,
            "/metrics" => Route::Metrics,
            other if sessions::session_id_from_path(other).is_some() => Route::Session,
            other if docs::viewer_file(other) == Some(docs::Viewer::SwaggerUi) => Route::DocsFile,
            other if docs::viewer_file(other) == Some(docs::Viewer::Redoc) => Route::RedocFile,
            "/api/v1/auth/password/change" => Route::PasswordChange,
            "/api/v1/users/me" => Route::Me,
            other => match admin::parse_path(other)? {
                AdminPath::Users => Route::AdminUsers,
                AdminPath::User(_) => Route::AdminUser,
                AdminPath::UserRoles(_) => Route::AdminUserRoles,
                AdminPath::UserRole(..) => Route::AdminUserRole,
                AdminPath::UserBan(_) => Route::AdminUserBan,
                AdminPath::UserSessions(_) => Route::AdminUserSessions,
                AdminPath::UserSession(..) => Route::AdminUserSession,
                AdminPath::Roles => Route::AdminRoles,
                AdminPath::Audit => Route::AdminAudit,
            },
        })
    }

    /// The path as the OpenAPI document and the access log name it.
    pub fn pattern(self) -> &'static str {
        match self {
            Route::Ping => "/api/ping",
            Route::Health => "/api/health",
            Route::HealthAlias => "/health",
            Route::Jwks => "/.well-known/jwks.json",
            Route::OpenApi => "/openapi.json",
            Route::Docs => "/docs",
            Route::DocsFile => "/docs/{file}",
            Route::Redoc => "/redoc",
            Route::RedocFile => "/redoc/{file}",
            Route::Signup => "/api/v1/auth/signup",
            Route::Login => "/api/v1/auth/login",
            Route::Refresh => "/api/v1/auth/refresh",
            Route::Logout => "/api/v1/auth/logout",
            Route::LogoutAll => "/api/v1/auth/logout-all",
            Route::Sessions => "/api/v1/auth/sessions",
            Route::Session => "/api/v1/auth/sessions/{id}",
            Route::VerifyEmail => "/api/v1/auth/verify-email",
            Route::ResendVerification => "/api/v1/auth/verify-email/resend",
            Route::PasswordReset => "/api/v1/auth/password/reset",
            Route::PasswordResetConfirm => "/api/v1/auth/password/reset/confirm",
            Route::EmailChangeConfirm => "/api/v1/auth/email/confirm",
            Route::DevOutbox => "/api/v1/dev/outbox",
            Route::DevArgon2 => "/api/v1/dev/argon2",
            Route::DevMemory => "/api/v1/dev/memory",
            Route::VerifyEmailPage => "/verify-email",
            Route::ResetPasswordPage => "/reset-password",
            Route::ConfirmEmailPage => "/confirm-email",
            Route::PasswordChange => "/api/v1/auth/password/change",
            Route::Me => "/api/v1/users/me",
            Route::AdminUsers => "/api/v1/admin/users",
            Route::AdminUser => "/api/v1/admin/users/{id}",
            Route::AdminUserRoles => "/api/v1/admin/users/{id}/roles",
            Route::AdminUserRole => "/api/v1/admin/users/{id}/roles/{role}",
            Route::AdminUserBan => "/api/v1/admin/users/{id}/ban",
            Route::AdminUserSessions => "/api/v1/admin/users/{id}/sessions",
            Route::AdminUserSession => "/api/v1/admin/users/{id}/sessions/{sid}",
            Route::AdminRoles => "/api/v1/admin/roles",
            Route::AdminAudit => "/api/v1/admin/audit",
            Route::Metrics => "/metrics",
        }
    }

    /// The methods the router answers, as the `Allow` header lists them.
    pub fn allowed_methods(self) -> &'static str {
        match self {
            Route::Ping
            | Route::Health
            | Route::HealthAlias
            | Route::Jwks
            | Route::OpenApi
            | Route::Docs
            | Route::DocsFile
            | Route::Redoc
            | Route::RedocFile => "GET, HEAD, OPTIONS",
            Route::Signup
            | Route::Login
            | Route::Refresh
            | Route::Logout
            | Route::LogoutAll
            | Route::PasswordChange
            | Route::VerifyEmail
            | Route::ResendVerification
            | Route::PasswordReset
            | Route::PasswordResetConfirm
            | Route::EmailChangeConfirm => "POST, OPTIONS",
            Route::DevOutbox | Route::DevArgon2 | Route::DevMemory | Route::Metrics => {
                "GET, OPTIONS"
            }
            Route::VerifyEmailPage | Route::ResetPasswordPage | Route::ConfirmEmailPage => {
                "GET, POST"
            }
            Route::Sessions | Route::AdminUsers | Route::AdminRoles | Route::AdminAudit => {
                "GET, OPTIONS"
            }
            Route::Session | Route::AdminUserRole | Route::AdminUserSession => "DELETE, OPTIONS",
            Route::Me | Route::AdminUser => "GET, PATCH, PUT, DELETE, OPTIONS",
            Route::AdminUserRoles => "POST, OPTIONS",
            Route::AdminUserBan => "POST, PUT, DELETE, OPTIONS",
            Route::AdminUserSessions => "GET, DELETE, OPTIONS",
        }
    }
}

async fn dispatch(route: Route, method: Method, mut req: Request, ctx: &Ctx<'_>) -> ApiResult {
    match (route, method) {
        (Route::Ping, Method::Get | Method::Head) => meta::ping(),
        (Route::Health, Method::Get | Method::Head) => meta::health(ctx).await,
        (Route::HealthAlias, Method::Get | Method::Head) => meta::health_alias(ctx).await,
        (Route::Jwks, Method::Get | Method::Head) => meta::jwks(ctx),
        (Route::OpenApi, Method::Get | Method::Head) => meta::openapi(),
        (Route::Docs, Method::Get | Method::Head) => docs::swagger_ui(ctx).await,
        (Route::DocsFile, Method::Get | Method::Head) => docs::swagger_ui_file(ctx).await,
        (Route::Redoc, Method::Get | Method::Head) => docs::redoc(ctx).await,
        (Route::RedocFile, Method::Get | Method::Head) => docs::redoc_file(ctx).await,
        (Route::Signup, Method::Post) => auth::signup(&mut req, ctx).await,
        (Route::Login, Method::Post) => auth::login(&mut req, ctx).await,
        (Route::Refresh, Method::Post) => auth::refresh(&mut req, ctx).await,
        (Route::Logout, Method::Post) => auth::logout(&req, ctx).await,
        (Route::LogoutAll, Method::Post) => auth::logout_all(&req, ctx).await,
        (Route::PasswordChange, Method::Post) => auth::change_password(&mut req, ctx).await,
        (Route::Sessions, Method::Get) => sessions::list(&req, ctx).await,
        (Route::Session, Method::Delete) => sessions::revoke(&req, ctx).await,
        (Route::VerifyEmail, Method::Post) => email::verify_email_api(&mut req, ctx).await,
        (Route::ResendVerification, Method::Post) => {
            email::resend_verification(&mut req, ctx).await
        }
        (Route::PasswordReset, Method::Post) => email::request_password_reset(&mut req, ctx).await,
        (Route::PasswordResetConfirm, Method::Post) => {
            email::confirm_password_reset(&mut req, ctx).await
        }
        (Route::EmailChangeConfirm, Method::Post) => {
            email::confirm_email_change_api(&mut req, ctx).await
        }
        (Route::DevOutbox, Method::Get) => dev::outbox(&req, ctx).await,
        (Route::DevArgon2, Method::Get) => dev::argon2(ctx),
        (Route::DevMemory, Method::Get) => dev::memory(ctx),
        (Route::VerifyEmailPage, Method::Get) => pages::verify_email_form(&req, ctx),
        (Route::VerifyEmailPage, Method::Post) => pages::verify_email_submit(&mut req, ctx).await,
        (Route::ResetPasswordPage, Method::Get) => pages::reset_password_form(&req, ctx),
        (Route::ResetPasswordPage, Method::Post) => {
            pages::reset_password_submit(&mut req, ctx).await
        }
        (Route::ConfirmEmailPage, Method::Get) => pages::confirm_email_form(&req, ctx),
        (Route::ConfirmEmailPage, Method::Post) => pages::confirm_email_submit(&mut req, ctx).await,
        (Route::Me, Method::Get) => users::get_me(&req, ctx).await,
        (Route::Me, Method::Patch | Method::Put) => users::update_me(&mut req, ctx).await,
        (Route::Me, Method::Delete) => users::delete_me(&mut req, ctx).await,
        (Route::AdminUsers, Method::Get) => admin::list_users(&req, ctx).await,
        (Route::AdminUser, Method::Get) => admin::get_user(&req, ctx).await,
        (Route::AdminUser, Method::Patch | Method::Put) => admin::update_user(&mut req, ctx).await,
        (Route::AdminUser, Method::Delete) => admin::delete_user(&req, ctx).await,
        (Route::AdminUserRoles, Method::Post) => admin::grant_role(&mut req, ctx).await,
        (Route::AdminUserRole, Method::Delete) => admin::remove_role(&req, ctx).await,
        (Route::AdminUserBan, Method::Post | Method::Put) => admin::ban(&mut req, ctx).await,
        (Route::AdminUserBan, Method::Delete) => admin::unban(&req, ctx).await,
        (Route::AdminUserSessions, Method::Get) => admin::list_sessions(&req, ctx).await,
        (Route::AdminUserSessions, Method::Delete) => admin::revoke_sessions(&req, ctx).await,
        (Route::AdminUserSession, Method::Delete) => admin::revoke_session(&req, ctx).await,
        (Route::AdminRoles, Method::Get) => admin::list_roles(&req, ctx).await,
        (Route::AdminAudit, Method::Get) => admin::list_audit(&req, ctx).await,
        (Route::Metrics, Method::Get) => metrics::scrape(&req, ctx).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Answer a CORS preflight: 204, with grants only for an allowed origin.
fn preflight(route: Route, ctx: &Ctx<'_>) -> Response {
    let mut response = ResponseBuilder::new().with_status(204).empty();
    let headers = response.headers_mut();
    let _ = headers.set("allow", route.allowed_methods());
    if let Some(origin) = ctx.meta.origin.as_deref() {
        set_cors_headers(headers, &ctx.config.allowed_origins, origin, true);
    }
    response
}

fn set_rate_limit_headers(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    let _ = headers.set("ratelimit-limit", &decision.limit.to_string());
    let _ = headers.set("ratelimit-remaining", &decision.remaining.to_string());
    let _ = headers.set("ratelimit-reset", &decision.reset_seconds.to_string());
}

/// Serve one request end to end. Never returns an error: every failure is a problem-details
/// response with the edge headers.
pub async fn handle(req: Request, env: Env, worker: Context) -> worker::Result<Response> {
    let meta = RequestMeta::from_request(&req);
    let config = match env::config(&env) {
        Ok(config) => config,
        Err(error) => {
            log::error(&meta, "configuration_error", &error.0);
            let mut response = problem(&ApiError::Misconfigured, &meta.request_id);
            apply_edge_headers(&mut response, &meta, None);
            log::request(&meta, "-", response.status_code(), None);
            return Ok(response);
        }
    };
    let ctx = Ctx {
        env: &env,
        config: &config,
        worker: &worker,
        meta: &meta,
        user_id: RefCell::new(None),
        rate_limit: RefCell::new(None),
    };
    let route = Route::from_path(&meta.path);
    let result = if meta.header_bytes > config.max_header_bytes {
        Err(ApiError::HeadersTooLarge(config.max_header_bytes))
    } else if !config.host_allowed(&meta.host) {
        Err(ApiError::UntrustedHost)
    } else {
        match (route, meta.known_method.clone()) {
            (None, _) => Err(ApiError::NotFound),
            // A method no route serves is refused before any handler sees the request.
            (Some(_), None) => Err(ApiError::MethodNotAllowed),
            (Some(route), Some(Method::Options)) => Ok(preflight(route, &ctx)),
            (Some(route), Some(method)) => dispatch(route, method, req, &ctx).await,
        }
    };
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            let mut response = problem(&error, &meta.request_id);
            if let (ApiError::MethodNotAllowed, Some(route)) = (&error, route) {
                let _ = response.headers_mut().set("allow", route.allowed_methods());
            }
            response
        }
    };
    if let Some(decision) = ctx.rate_limit.borrow().as_ref() {
        set_rate_limit_headers(&mut response, decision);
    }
    apply_edge_headers(&mut response, &meta, Some(&config));
    let pattern = route.map_or("-", Route::pattern);
    log::request(
        &meta,
        pattern,
        response.status_code(),
        ctx.user_id.borrow().as_deref(),
    );
    // Date.now() in workerd advances only across I/O (a Spectre mitigation), so this is the
    // request's wall time up to its last I/O: CPU work after that (or on a route without
    // any I/O) does not show. Acceptable for spotting slow routes and dependencies.
    let duration_ms = Date::now().as_millis().saturating_sub(meta.started_ms);
    isolate_metrics::observe_request(pattern, response.status_code(), duration_ms);
    isolate_metrics::flush_if_due(
        &env,
        &worker,
        config.metrics_flush_seconds,
        &meta.request_id,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_with_or_without_trailing_slash() {
        assert_eq!(Route::from_path("/api/health"), Some(Route::Health));
        assert_eq!(Route::from_path("/health"), Some(Route::HealthAlias));
        assert_eq!(Route::from_path("/api/v1/users/me/"), Some(Route::Me));
        assert_eq!(Route::from_path("/api/v1/users/you"), None);
        assert_eq!(
            Route::from_path("/api/v1/auth/sessions/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
            Some(Route::Session)
        );
        assert_eq!(
            Route::from_path("/api/v1/auth/sessions/"),
            Some(Route::Sessions)
        );
        assert_eq!(Route::from_path("/api/v1/auth/sessions/x/y"), None);
        assert_eq!(
            Route::from_path("/api/v1/admin/users/abc/ban/"),
            Some(Route::AdminUserBan)
        );
        assert_eq!(Route::from_path("/api/v1/admin/users/abc/bans"), None);
        assert_eq!(Route::from_path("/"), None);
        assert_eq!(Route::from_path("/metrics"), Some(Route::Metrics));
        assert_eq!(Route::Metrics.pattern(), "/metrics");
    }
}
