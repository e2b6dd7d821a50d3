//! The route table and the router: every route of the service is declared once in
//! [`route_table!`] below (pattern, methods, handler, access policy), and every request
//! passes through [`handle`], which applies the edge rules (trusted hosts, CORS, headers,
//! problem details, the access log) whatever the handler did.
//!
//! The table gives everything else: path matching and path parameters (`matchit`), the
//! `Allow` header, the pattern the access log names, the access check that runs before a
//! handler (public, bearer token, permission or role), and the paths of the OpenAPI
//! document. Adding an endpoint is its handler with its `#[utoipa::path]` annotation and one
//! entry in the table.

pub mod admin;
pub mod auth;
pub mod dev;
pub mod docs;
pub mod email;
pub mod identities;
pub mod meta;
pub mod mfa;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod passkeys;
pub mod requests;
pub mod scrape;
pub mod sessions;
pub mod users;
pub mod views;

use crate::domain::access::permission;
use crate::domain::rate_limit::Decision;
use crate::env;
use crate::error::ApiError;
use crate::http::auth::authenticate;
use crate::http::context::Ctx;
use crate::http::guard::{require_permission, require_role};
use crate::http::log;
use crate::http::request::{IncomingRequest, RequestMeta};
use crate::http::response::{apply_edge_headers, problem, set_cors_headers, ApiResult};
use crate::store::metrics_batch as isolate_metrics;
use std::rc::Rc;
use worker::{Context, Date, Env, Method, Response, ResponseBuilder};

/// Who may call a route. The table checks it before the handler runs; a handler behind
/// `Bearer`, `Permission` or `Role` receives the authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A valid bearer token of a live session (401 otherwise).
    Bearer,
    /// A bearer token whose account holds a role granting this permission (403 otherwise).
    Permission(&'static str),
    /// A bearer token whose account holds this role (403 otherwise).
    Role(&'static str),
}

/// The [`Access`] value of a table entry's access words.
macro_rules! access_value {
    (public) => {
        Access::Public
    };
    (bearer) => {
        Access::Bearer
    };
    (permission($permission:expr)) => {
        Access::Permission($permission)
    };
    (role($role:expr)) => {
        Access::Role($role)
    };
}

/// Check a table entry's access before its handler: the authenticated caller, or `()`.
macro_rules! grant_access {
    ($req:ident, $ctx:ident, public) => {
        ()
    };
    ($req:ident, $ctx:ident, bearer) => {
        authenticate($req.raw(), $ctx).await?
    };
    ($req:ident, $ctx:ident, permission($permission:expr)) => {
        require_permission($req.raw(), $ctx, $permission).await?
    };
    ($req:ident, $ctx:ident, role($role:expr)) => {
        require_role($req.raw(), $ctx, $role).await?
    };
}

/// The `worker` method of a method name in the table.
macro_rules! method_value {
    (GET) => {
        Method::Get
    };
    (HEAD) => {
        Method::Head
    };
    (POST) => {
        Method::Post
    };
    (PUT) => {
        Method::Put
    };
    (PATCH) => {
        Method::Patch
    };
    (DELETE) => {
        Method::Delete
    };
}

/// Declares the routes from one list. Each entry: the route's name and its pattern (the
/// OpenAPI form, `{id}` for a path parameter), then per method (or methods sharing a
/// handler) its access in brackets and the handler call. The first line names the request,
/// the context and the caller as the calls use them.
macro_rules! route_table {
    (
        |$req:ident, $ctx:ident, $caller:ident|
        $(
            $(#[$doc:meta])*
            $route:ident $pattern:literal {
                $(
                    $($method:ident)|+ [$($access:tt)+]
                        => $($handler:ident)::+ ($($arg:expr),*)
                ),+ $(,)?
            }
        )*
    ) => {
        /// The routes of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $($(#[$doc])* $route,)*
        }

        impl Route {
            /// Every route, in table order.
            pub const ALL: &'static [Route] = &[$(Route::$route,)*];

            /// The path as the OpenAPI document and the access log name it.
            pub fn pattern(self) -> &'static str {
                match self {
                    $(Route::$route => $pattern,)*
                }
            }

            /// Who may call the route with this method; `None` for a method it does not serve.
            pub fn access(self, method: &Method) -> Option<Access> {
                $($(
                    if self == Route::$route && [$(method_value!($method)),+].contains(method) {
                        return Some(access_value!($($access)+));
                    }
                )+)*
                None
            }

            /// The methods the route answers, as the `Allow` header lists them; OPTIONS (the
            /// CORS preflight) goes with every route.
            pub fn allowed_methods(self) -> &'static str {
                match self {
                    $(Route::$route => concat!($($(stringify!($method), ", ",)+)+ "OPTIONS"),)*
                }
            }
        }

        /// Run the handler of a route and method, after its access check.
        async fn dispatch(
            route: Route,
            method: Method,
            #[allow(unused_mut)] mut $req: IncomingRequest,
            $ctx: &Ctx<'_>,
        ) -> ApiResult {
            $($(
                if route == Route::$route && [$(method_value!($method)),+].contains(&method) {
                    #[allow(unused_variables, clippy::let_unit_value)]
                    let $caller = grant_access!($req, $ctx, $($access)+);
                    return $($handler)::+($($arg),*).await;
                }
            )+)*
            Err(ApiError::MethodNotAllowed)
        }

        /// The operations of every handler in the table, for the OpenAPI document.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($($($handler)::+),+),*))]
        pub struct TablePaths;
    };
}

route_table! {
    |req, ctx, caller|

    Ping "/api/ping" { GET | HEAD [public] => meta::ping() }
    Health "/api/health" { GET | HEAD [public] => meta::health(ctx) }
    /// `/health`, the seed service's path for `/api/health`.
    HealthAlias "/health" { GET | HEAD [public] => meta::health_alias(ctx) }
    Jwks "/.well-known/jwks.json" { GET | HEAD [public] => meta::jwks(ctx) }
    OpenApi "/openapi.json" { GET | HEAD [public] => meta::openapi(document_json()) }
    Docs "/docs" { GET | HEAD [public] => docs::swagger_ui(ctx) }
    DocsFile "/docs/{file}" { GET | HEAD [public] => docs::swagger_ui_file(ctx) }
    Redoc "/redoc" { GET | HEAD [public] => docs::redoc(ctx) }
    RedocFile "/redoc/{file}" { GET | HEAD [public] => docs::redoc_file(ctx) }
    /// The account-security page (passkeys).
    Account "/account" { GET | HEAD [public] => docs::account(ctx) }
    AccountFile "/account/{file}" { GET | HEAD [public] => docs::account_file(ctx) }

    Signup "/api/v1/auth/signup" { POST [public] => auth::signup(&mut req, ctx) }
    Login "/api/v1/auth/login" { POST [public] => auth::login(&mut req, ctx) }
    Refresh "/api/v1/auth/refresh" { POST [public] => auth::refresh(&mut req, ctx) }
    Logout "/api/v1/auth/logout" { POST [bearer] => auth::logout(ctx, caller) }
    LogoutAll "/api/v1/auth/logout-all" { POST [bearer] => auth::logout_all(ctx, caller) }
    PasswordChange "/api/v1/auth/password/change" {
        POST [bearer] => auth::change_password(&mut req, ctx, caller)
    }
    Sessions "/api/v1/auth/sessions" { GET [bearer] => sessions::list(ctx, caller) }
    Session "/api/v1/auth/sessions/{id}" { DELETE [bearer] => sessions::revoke(ctx, caller) }
    VerifyEmail "/api/v1/auth/verify-email" {
        POST [public] => email::verify_email_api(&mut req, ctx)
    }
    ResendVerification "/api/v1/auth/verify-email/resend" {
        POST [public] => email::resend_verification(&mut req, ctx)
    }
    PasswordReset "/api/v1/auth/password/reset" {
        POST [public] => email::request_password_reset(&mut req, ctx)
    }
    PasswordResetConfirm "/api/v1/auth/password/reset/confirm" {
        POST [public] => email::confirm_password_reset(&mut req, ctx)
    }
    EmailChangeConfirm "/api/v1/auth/email/confirm" {
        POST [public] => email::confirm_email_change_api(&mut req, ctx)
    }
    OAuthStart "/api/v1/auth/oauth/{provider}/start" {
        GET [public] => oauth::start(&req, ctx)
    }
    OAuthCallback "/api/v1/auth/oauth/{provider}/callback" {
        GET [public] => oauth::callback(&req, ctx)
    }
    OAuthExchange "/api/v1/auth/oauth/exchange" {
        POST [public] => oauth::exchange(&mut req, ctx)
    }
    MfaVerify "/api/v1/auth/mfa/verify" { POST [public] => mfa::verify(&mut req, ctx) }
    MfaPasskeyOptions "/api/v1/auth/mfa/passkey/options" {
        POST [public] => mfa::passkey_options(&mut req, ctx)
    }
    MfaStepUpOptions "/api/v1/auth/mfa/step-up/options" {
        POST [bearer] => mfa::step_up_options(ctx, caller)
    }
    MfaStepUp "/api/v1/auth/mfa/step-up" {
        POST [bearer] => mfa::step_up(&mut req, ctx, caller)
    }
    PasskeyOptions "/api/v1/auth/passkey/options" {
        POST [public] => passkeys::request_options(ctx)
    }
    PasskeySignIn "/api/v1/auth/passkey/verify" {
        POST [public] => passkeys::sign_in(&mut req, ctx)
    }

    Me "/api/v1/users/me" {
        GET [bearer] => users::get_me(caller),
        PATCH | PUT [bearer] => users::update_me(&mut req, ctx, caller),
        DELETE [bearer] => users::delete_me(&mut req, ctx, caller),
    }

    MyIdentities "/api/v1/users/me/identities" {
        GET [bearer] => identities::list(ctx, caller),
        POST [bearer] => identities::complete_link(&mut req, ctx, caller),
    }
    MyIdentity "/api/v1/users/me/identities/{id}" {
        DELETE [bearer] => identities::unlink(ctx, caller)
    }
    MyIdentityLink "/api/v1/users/me/identities/{provider}/start" {
        POST [bearer] => identities::start_link(&mut req, ctx, caller)
    }
    MyMfa "/api/v1/users/me/mfa" { GET [bearer] => mfa::status(ctx, caller) }
    MyTotp "/api/v1/users/me/mfa/totp" {
        POST [bearer] => mfa::enrol_totp(ctx, caller),
        DELETE [bearer] => mfa::remove_totp(ctx, caller),
    }
    MyTotpConfirm "/api/v1/users/me/mfa/totp/confirm" {
        POST [bearer] => mfa::confirm_totp(&mut req, ctx, caller)
    }
    MyRecoveryCodes "/api/v1/users/me/mfa/recovery-codes" {
        POST [bearer] => mfa::regenerate_recovery_codes(ctx, caller)
    }
    MyPasskeys "/api/v1/users/me/passkeys" {
        GET [bearer] => passkeys::list(ctx, caller),
        POST [bearer] => passkeys::register(&mut req, ctx, caller),
    }
    MyPasskeyOptions "/api/v1/users/me/passkeys/options" {
        POST [bearer] => passkeys::creation_options(ctx, caller)
    }
    MyPasskey "/api/v1/users/me/passkeys/{id}" {
        PATCH [bearer] => passkeys::rename(&mut req, ctx, caller),
        DELETE [bearer] => passkeys::delete(ctx, caller),
    }

    DevOutbox "/api/v1/dev/outbox" { GET [public] => dev::outbox(&req, ctx) }
    DevArgon2 "/api/v1/dev/argon2" { GET [public] => dev::argon2(ctx) }
    DevMemory "/api/v1/dev/memory" { GET [public] => dev::memory(ctx) }

    /// HTML pages that links in emails open.
    VerifyEmailPage "/verify-email" {
        GET [public] => pages::verify_email_form(&req, ctx),
        POST [public] => pages::verify_email_submit(&mut req, ctx),
    }
    ResetPasswordPage "/reset-password" {
        GET [public] => pages::reset_password_form(&req, ctx),
        POST [public] => pages::reset_password_submit(&mut req, ctx),
    }
    ConfirmEmailPage "/confirm-email" {
        GET [public] => pages::confirm_email_form(&req, ctx),
        POST [public] => pages::confirm_email_submit(&mut req, ctx),
    }

    AdminUsers "/api/v1/admin/users" {
        GET [permission(permission::USERS_READ)] => admin::list_users(&req, ctx)
    }
    AdminUser "/api/v1/admin/users/{id}" {
        GET [permission(permission::USERS_READ)] => admin::get_user(ctx),
        PATCH | PUT [permission(permission::USERS_WRITE)]
            => admin::update_user(&mut req, ctx, caller),
        DELETE [permission(permission::USERS_DELETE)] => admin::delete_user(ctx, caller),
    }
    AdminUserRoles "/api/v1/admin/users/{id}/roles" {
        POST [permission(permission::ROLES_ASSIGN)] => admin::grant_role(&mut req, ctx, caller)
    }
    AdminUserRole "/api/v1/admin/users/{id}/roles/{role}" {
        DELETE [permission(permission::ROLES_ASSIGN)] => admin::remove_role(ctx, caller)
    }
    AdminUserBan "/api/v1/admin/users/{id}/ban" {
        POST | PUT [permission(permission::USERS_BAN)] => admin::ban(&mut req, ctx, caller),
        DELETE [permission(permission::USERS_BAN)] => admin::unban(ctx, caller),
    }
    AdminUserSessions "/api/v1/admin/users/{id}/sessions" {
        GET [permission(permission::SESSIONS_READ)] => admin::list_sessions(ctx),
        DELETE [permission(permission::SESSIONS_REVOKE)] => admin::revoke_sessions(ctx, caller),
    }
    AdminUserSession "/api/v1/admin/users/{id}/sessions/{sid}" {
        DELETE [permission(permission::SESSIONS_REVOKE)] => admin::revoke_session(ctx, caller)
    }
    AdminUserIdentities "/api/v1/admin/users/{id}/identities" {
        GET [permission(permission::USERS_READ)] => identities::admin_list(ctx)
    }
    AdminUserMfa "/api/v1/admin/users/{id}/mfa" {
        GET [permission(permission::USERS_READ)] => mfa::admin_status(ctx),
        DELETE [permission(permission::USERS_WRITE)] => mfa::admin_reset(ctx, caller),
    }
    AdminUserPasskeys "/api/v1/admin/users/{id}/passkeys" {
        GET [permission(permission::USERS_READ)] => passkeys::admin_list(ctx)
    }
    AdminRoles "/api/v1/admin/roles" { GET [role(admin::ROLE_ADMIN)] => admin::list_roles(ctx) }
    AdminAudit "/api/v1/admin/audit" {
        GET [permission(permission::AUDIT_READ)] => admin::list_audit(&req, ctx)
    }

    /// Prometheus scrape endpoint (its own token, checked by the handler).
    Metrics "/metrics" { GET [public] => scrape::scrape(&req, ctx) }
}

thread_local! {
    /// Pattern to route, built once per isolate from the table.
    static ROUTER: matchit::Router<Route> = build_router();
}

/// The table's patterns in `matchit`'s syntax (`{id}` becomes `:id`).
fn build_router() -> matchit::Router<Route> {
    let mut router = matchit::Router::new();
    for &route in Route::ALL {
        let pattern = route.pattern().replace('{', ":").replace('}', "");
        // The patterns are this file's literals; a conflict is caught by the unit tests.
        let _ = router.insert(pattern, route);
    }
    router
}

impl Route {
    /// The route a path names (one trailing slash ignored) and its path parameters.
    pub fn resolve(path: &str) -> Option<(Route, Vec<(String, String)>)> {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        ROUTER.with(|router| {
            let found = router.at(path).ok()?;
            // `matchit` lets a parameter match an empty segment (`/users//roles`); such a
            // path names nothing.
            if found.params.iter().any(|(_, value)| value.is_empty()) {
                return None;
            }
            let params = found
                .params
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            Some((*found.value, params))
        })
    }
}

thread_local! {
    static DOCUMENT: Rc<Vec<u8>> = Rc::new(
        openapi::document(<TablePaths as utoipa::OpenApi>::openapi())
            .to_json()
            .unwrap_or_default()
            .into_bytes(),
    );
}

/// The OpenAPI document as JSON: the table's operations with the shared components, built
/// once per isolate.
pub fn document_json() -> Rc<Vec<u8>> {
    DOCUMENT.with(Rc::clone)
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
pub async fn handle(req: web_sys::Request, env: Env, worker: Context) -> worker::Result<Response> {
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
    let resolved = Route::resolve(&meta.path);
    let route = resolved.as_ref().map(|(route, _)| *route);
    let params = resolved.map(|(_, params)| params).unwrap_or_default();
    let ctx = Ctx::new(&env, &config, &worker, &meta, params);
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
            (Some(route), Some(method)) => {
                dispatch(route, method, IncomingRequest::new(req), &ctx).await
            }
        }
    };
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            // The one place an internal cause is logged: with the request id, never sent.
            if let Some((what, cause)) = error.internal_cause() {
                let event = if matches!(error, ApiError::Internal { .. }) {
                    "internal_error"
                } else {
                    "dependency_unavailable"
                };
                log::dependency_failure(&meta, event, what, cause);
            }
            let mut response = problem(&error, &meta.request_id);
            if let (ApiError::MethodNotAllowed, Some(route)) = (&error, route) {
                let _ = response.headers_mut().set("allow", route.allowed_methods());
            }
            response
        }
    };
    if let Some(decision) = ctx.reported_rate_limit() {
        set_rate_limit_headers(&mut response, &decision);
    }
    apply_edge_headers(&mut response, &meta, Some(&config));
    let pattern = route.map_or("-", Route::pattern);
    log::request(
        &meta,
        pattern,
        response.status_code(),
        ctx.user_id().as_deref(),
    );
    // Date.now() in workerd advances only across I/O (a Spectre mitigation), so this is the
    // request's wall time up to its last I/O: CPU work after that (or on a route without
    // any I/O) does not show. Acceptable for spotting slow routes and dependencies.
    let duration_ms = Date::now().as_millis().saturating_sub(meta.started_ms);
    isolate_metrics::observe_request(pattern, response.status_code(), duration_ms);
    let flush_meta = meta.clone();
    isolate_metrics::flush_if_due(&env, &worker, config.metrics_flush_seconds, move |error| {
        let cause = error.cause().unwrap_or_default();
        log::dependency_failure(&flush_meta, "metrics_flush_failed", "Metrics store", cause);
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use utoipa::OpenApi;

    const ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    fn route(path: &str) -> Option<Route> {
        Route::resolve(path).map(|(route, _)| route)
    }

    fn params(path: &str) -> Vec<(String, String)> {
        Route::resolve(path)
            .map(|(_, params)| params)
            .unwrap_or_default()
    }

    #[test]
    fn paths_resolve_with_or_without_trailing_slash() {
        assert_eq!(route("/api/health"), Some(Route::Health));
        assert_eq!(route("/health"), Some(Route::HealthAlias));
        assert_eq!(route("/api/v1/users/me/"), Some(Route::Me));
        assert_eq!(route("/api/v1/users/you"), None);
        assert_eq!(
            route(&format!("/api/v1/auth/sessions/{ID}")),
            Some(Route::Session)
        );
        assert_eq!(route("/api/v1/auth/sessions/"), Some(Route::Sessions));
        assert_eq!(route("/api/v1/auth/sessions/x/y"), None);
        assert_eq!(
            route("/api/v1/admin/users/abc/ban/"),
            Some(Route::AdminUserBan)
        );
        assert_eq!(route("/api/v1/admin/users/abc/bans"), None);
        assert_eq!(route("/"), None);
        assert_eq!(route("/metrics"), Some(Route::Metrics));
        assert_eq!(Route::Metrics.pattern(), "/metrics");
    }

    #[test]
    fn path_parameters_come_from_the_table() {
        let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(
            params(&format!("/api/v1/admin/users/{ID}/roles/admin")),
            vec![pair("id", ID), pair("role", "admin")]
        );
        assert_eq!(
            params(&format!("/api/v1/admin/users/{ID}/sessions/x")),
            vec![pair("id", ID), pair("sid", "x")]
        );
        assert_eq!(
            params("/docs/swagger-ui.css"),
            vec![pair("file", "swagger-ui.css")]
        );
        assert_eq!(route("/docs"), Some(Route::Docs));
        assert_eq!(route("/redoc/a.js"), Some(Route::RedocFile));
        assert_eq!(
            params("/api/v1/users/me/identities/github/start"),
            vec![pair("provider", "github")]
        );
        assert_eq!(
            params(&format!("/api/v1/users/me/identities/{ID}")),
            vec![pair("id", ID)]
        );
        assert_eq!(
            params("/api/v1/auth/oauth/acme/callback"),
            vec![pair("provider", "acme")]
        );
    }

    #[test]
    fn other_admin_paths_are_unknown() {
        for path in [
            "/api/v1/admin",
            "/api/v1/admin/users//roles",
            "/api/v1/admin/users/x/password",
            "/api/v1/admin/users/x/roles/admin/extra",
            "/api/v1/admin/audit/1",
        ] {
            assert_eq!(route(path), None, "{path}");
        }
    }

    #[test]
    fn every_pattern_is_routed_to_its_own_route() {
        for &expected in Route::ALL {
            let path = expected
                .pattern()
                .replace("{id}", ID)
                .replace(['{', '}'], "");
            assert_eq!(route(&path), Some(expected), "{path}");
        }
    }

    #[test]
    fn admin_routes_need_a_permission_or_the_admin_role() {
        for &route in Route::ALL {
            if !route.pattern().starts_with("/api/v1/admin/") {
                continue;
            }
            for method in [
                Method::Get,
                Method::Post,
                Method::Put,
                Method::Patch,
                Method::Delete,
            ] {
                match route.access(&method) {
                    None | Some(Access::Permission(_) | Access::Role(_)) => {}
                    Some(other) => panic!("{route:?} {method:?} is {other:?}"),
                }
            }
        }
        assert_eq!(
            Route::AdminUser.access(&Method::Delete),
            Some(Access::Permission(permission::USERS_DELETE))
        );
        assert_eq!(Route::Me.access(&Method::Put), Some(Access::Bearer));
        assert_eq!(Route::Signup.access(&Method::Get), None);
    }

    fn documented() -> BTreeSet<(String, String)> {
        let document = openapi::document(TablePaths::openapi());
        let value = serde_json::to_value(&document).unwrap();
        let mut operations = BTreeSet::new();
        for (path, item) in value["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    operations.insert((path.clone(), method.to_uppercase()));
                }
            }
        }
        operations
    }

    /// Every route and method the router answers, without the implied ones: HEAD goes with
    /// GET, OPTIONS (CORS preflight) with every route.
    fn routed() -> BTreeSet<(String, String)> {
        Route::ALL
            .iter()
            .flat_map(|route| {
                route
                    .allowed_methods()
                    .split(", ")
                    .filter(|method| !matches!(*method, "HEAD" | "OPTIONS"))
                    .map(|method| (route.pattern().to_owned(), method.to_owned()))
            })
            .collect()
    }

    #[test]
    fn the_document_describes_exactly_the_routes_the_router_serves() {
        let documented = documented();
        let routed = routed();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the document: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn operations_are_complete() {
        let value = serde_json::to_value(openapi::document(TablePaths::openapi())).unwrap();
        assert!(value["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut ids = BTreeSet::new();
        for (path, item) in value["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "operationId {id} is used twice");
                assert!(
                    operation["summary"].is_string(),
                    "{method} {path} has a summary"
                );
                assert!(operation["tags"].is_array(), "{method} {path} has a tag");
                let responses = operation["responses"].as_object().unwrap();
                // A browser endpoint's success is a redirect (the provider sign-in's start
                // and callback).
                assert!(
                    responses
                        .keys()
                        .any(|status| status.starts_with('2') || status.starts_with('3')),
                    "{method} {path} documents its success"
                );
                if operation.get("security").is_some() {
                    assert!(
                        responses.contains_key("401"),
                        "{method} {path} is protected, so documents 401"
                    );
                }
                if operation.get("requestBody").is_some() && path.starts_with("/api/") {
                    for status in ["400", "413", "415", "422"] {
                        assert!(
                            responses.contains_key(status),
                            "{method} {path} takes JSON, so documents {status}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let text = openapi::document(TablePaths::openapi()).to_json().unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let pointer = target.trim_start_matches('#');
            assert!(value.pointer(pointer).is_some(), "{target} resolves");
        }
    }
}
