//! `/api/v1/admin/*`: accounts, roles, bans, sessions and the audit log, for callers whose
//! roles grant the route's permission (see `http::guard`).
//!
//! The route table checks each route's permission before its handler runs — so a caller
//! without the right gets 403 whatever the path's ids; a handler then reads the target
//! account (404 when there is none), then makes its change and the audit entry in one D1
//! transaction.

pub use crate::domain::access::ROLE_ADMIN;
use crate::domain::audit::{AuditFilter, AUDIT_QUERY};
use crate::domain::ban::{check_ban_end, check_reason};
use crate::domain::query::{parse_instant, prefix_range, QueryParams};
use crate::domain::user::User;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::http::body::read_body;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{Conflict, Forbidden, NotFound, Unavailable, ValidationFailed};
use crate::routes::requests::check_username_and_email;
use crate::routes::requests::{AdminUserUpdate, BanRequest, RoleGrant};
use crate::routes::views::{
    self, AdminUser, AdminUserPage, AuditPage, Role, RoleList, Session, SessionList,
    SessionsRevoked,
};
use crate::runtime::now_seconds;
use crate::service;
use crate::store::traits::ProfileChange;
use serde_json::json;
use worker::Request;

/// The account a `/users/{id}...` path names, or 404.
async fn target(ctx: &Ctx<'_>) -> Result<User, ApiError> {
    service::accounts::find(ctx.store(), ctx.param("id")?).await
}

/// The query string's `(name, value)` pairs, decoded.
fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let url = req
        .url()
        .map_err(|_| ApiError::MalformedRequest("Request URL could not be read".into()))?;
    Ok(url
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect())
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    summary = "Accounts, newest first (users:read)",
    params(("q" = Option<String>, Query, description = "Username or email prefix"), ("page" = Option<u32>, Query, description = "From 1"), ("per_page" = Option<u32>, Query, description = "1 to 100; default 20")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of accounts", body = views::AdminUserPage),
        (status = 403, response = Forbidden),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/users?page=&per_page=&q=`: accounts, newest first; `q` keeps those
/// whose username or email starts with it (case-insensitive).
pub async fn list_users(req: &Request, ctx: &Ctx<'_>) -> ApiResult {
    let mut query = QueryParams::new(query_pairs(req)?, &["q", "page", "per_page"]);
    let page = query.page();
    let search = match query.get("q").map(str::to_owned) {
        Some(raw) => query.check(prefix_range(&raw)).flatten(),
        None => None,
    };
    query.finish()?;
    let (rows, total) = service::accounts::list(ctx.store(), search.as_ref(), page).await?;
    json(200, &AdminUserPage::new(&rows, page, total, now_seconds()))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    summary = "One account (users:read)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The account", body = views::AdminUser),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/users/{id}`.
pub async fn get_user(ctx: &Ctx<'_>) -> ApiResult {
    let user = target(ctx).await?;
    json(200, &AdminUser::new(&user, now_seconds()))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    summary = "Change an account (users:write)",
    params(("id" = String, Path, description = "User id")),
    request_body = AdminUserUpdate,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The account after the change", body = views::AdminUser),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `PATCH` (or `PUT`) `/api/v1/admin/users/{id}` `{username?, email?, email_verified?}`.
/// `email: null` removes the address; a changed email is unverified unless
/// `email_verified` says otherwise.
pub async fn update_user(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let user = target(ctx).await?;
    let (body, mut problems) = read_body::<AdminUserUpdate>(req, ctx.config.max_body_bytes).await?;
    let (username, email) = check_username_and_email(&mut problems, body.username, body.email);
    let email_verified = body.email_verified;
    problems.finish()?;
    let now = now_seconds();
    let change = ProfileChange {
        username: username.as_deref(),
        email: email.as_ref().map(|email| email.as_deref()),
        email_verified,
    };
    let updated = service::accounts::update(
        ctx.store(),
        &caller.user.id,
        &user,
        &change,
        &ctx.origin(),
        now,
    )
    .await?;
    json(200, &AdminUser::new(&updated, now))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    summary = "Delete an account (users:delete)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted, with its roles and sessions"),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/admin/users/{id}`: the account, its roles and sessions. An admin cannot
/// delete their own account here (that is `DELETE /api/v1/users/me`, with the password).
pub async fn delete_user(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let user = target(ctx).await?;
    let backend = ctx.store();
    service::accounts::delete(
        backend,
        &caller.user.id,
        &user,
        &ctx.origin(),
        now_seconds(),
    )
    .await?;
    log::security_event(
        ctx.meta,
        "account_deleted",
        json!({ "user_id": user.id, "by": caller.user.id }),
    );
    no_content()
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/roles",
    tag = "admin",
    summary = "Every role with its permissions (admin role)",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The roles", body = views::RoleList),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/roles`: every role with its permissions.
pub async fn list_roles(ctx: &Ctx<'_>) -> ApiResult {
    let rows = service::accounts::roles(ctx.store()).await?;
    json(
        200,
        &RoleList {
            roles: rows.iter().map(Role::from).collect(),
        },
    )
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/roles",
    tag = "admin",
    summary = "Grant a role (roles:assign)",
    params(("id" = String, Path, description = "User id")),
    request_body = RoleGrant,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Granted", body = views::AdminUser),
        (status = 200, description = "The account already held it", body = views::AdminUser),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `POST /api/v1/admin/users/{id}/roles` `{role}`: grant a role (idempotent). It reaches the
/// account's tokens at their next refresh or login.
pub async fn grant_role(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let user = target(ctx).await?;
    let (body, problems) = read_body::<RoleGrant>(req, ctx.config.max_body_bytes).await?;
    problems.finish()?;
    let now = now_seconds();
    let (granted, updated) = service::accounts::grant_role(
        ctx.store(),
        &caller.user.id,
        &user,
        &body.role,
        &ctx.origin(),
        now,
    )
    .await?;
    json(
        if granted { 201 } else { 200 },
        &AdminUser::new(&updated, now),
    )
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/roles/{role}",
    tag = "admin",
    summary = "Take a role (roles:assign)",
    params(("id" = String, Path, description = "User id"), ("role" = String, Path, description = "Role name")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The account after the change", body = views::AdminUser),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/admin/users/{id}/roles/{role}`: take a role. Nobody removes their own
/// `admin` role here, and the last `admin` anywhere keeps it.
pub async fn remove_role(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let user = target(ctx).await?;
    let now = now_seconds();
    let updated = service::accounts::remove_role(
        ctx.store(),
        &caller.user.id,
        &user,
        ctx.param("role")?,
        &ctx.origin(),
        now,
    )
    .await?;
    json(200, &AdminUser::new(&updated, now))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/ban",
    tag = "admin",
    summary = "Ban an account; its sessions end at once (users:ban)",
    params(("id" = String, Path, description = "User id")),
    request_body = BanRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Banned", body = views::AdminUser),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
/// `POST` (or `PUT`) `/api/v1/admin/users/{id}/ban` `{until?, reason?}`: ban until a time
/// (RFC 3339, in the future) or, without `until`, indefinitely. Every session of the account
/// ends and every access token it holds is refused, at once.
pub async fn ban(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let user = target(ctx).await?;
    let now = now_seconds();
    let (body, mut problems) = read_body::<BanRequest>(req, ctx.config.max_body_bytes).await?;
    let until = body
        .until
        .and_then(|raw| problems.check(parse_instant("until", &raw)));
    let until_ok = problems.check(check_ban_end(until, now));
    let reason = body
        .reason
        .and_then(|raw| problems.check(check_reason(&raw)))
        .flatten();
    problems.finish()?;
    let until = until_ok.flatten();
    let (updated, revoked) = service::accounts::ban(
        ctx.store(),
        &caller.user.id,
        &user,
        until,
        reason.as_deref(),
        &ctx.origin(),
        now,
    )
    .await?;
    log::security_event(
        ctx.meta,
        "account_banned",
        json!({ "user_id": user.id, "by": caller.user.id, "sessions_revoked": revoked }),
    );
    let mut body = AdminUser::new(&updated, now);
    body.sessions_revoked = Some(revoked as u64);
    json(200, &body)
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/ban",
    tag = "admin",
    summary = "Lift a ban (users:ban)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The account, no longer banned", body = views::AdminUser),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/admin/users/{id}/ban`: lift a ban (idempotent). Sessions ended by the
/// ban stay ended; the account logs in again.
pub async fn unban(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let user = target(ctx).await?;
    let now = now_seconds();
    let updated =
        service::accounts::unban(ctx.store(), &caller.user.id, &user, &ctx.origin(), now).await?;
    json(200, &AdminUser::new(&updated, now))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}/sessions",
    tag = "admin",
    operation_id = "admin_list_sessions",
    summary = "An account's live sessions (sessions:read)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The sessions", body = views::SessionList),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/users/{id}/sessions`: the account's live sessions.
pub async fn list_sessions(ctx: &Ctx<'_>) -> ApiResult {
    let backend = ctx.store();
    let listed =
        service::sessions::list_for_admin(backend, ctx.param("id")?, now_seconds()).await?;
    json(
        200,
        &SessionList {
            sessions: listed
                .iter()
                .map(|session| Session::new(session, None))
                .collect(),
        },
    )
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/sessions",
    tag = "admin",
    operation_id = "admin_revoke_sessions",
    summary = "End every session of an account (sessions:revoke)",
    params(("id" = String, Path, description = "User id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "How many ended", body = views::SessionsRevoked),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/admin/users/{id}/sessions`: end every session of the account and refuse
/// every access token issued before now.
pub async fn revoke_sessions(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let revoked = service::sessions::end_all_for_admin(
        ctx.store(),
        &caller.user.id,
        ctx.param("id")?,
        &ctx.origin(),
        now_seconds(),
    )
    .await?;
    json(
        200,
        &SessionsRevoked {
            sessions_revoked: revoked as u64,
        },
    )
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/sessions/{sid}",
    tag = "admin",
    operation_id = "admin_revoke_session",
    summary = "End one session of an account (sessions:revoke)",
    params(("id" = String, Path, description = "User id"), ("sid" = String, Path, description = "Session id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/admin/users/{id}/sessions/{sid}`: end one session of the account; 404
/// when the account has no such live session.
pub async fn revoke_session(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    service::sessions::end_one_for_admin(
        ctx.store(),
        &caller.user.id,
        ctx.param("id")?,
        ctx.param("sid")?,
        &ctx.origin(),
        now_seconds(),
    )
    .await?;
    no_content()
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    summary = "The audit log, newest first (audit:read)",
    params(("user" = Option<String>, Query, description = "Actor or target id"), ("action" = Option<String>, Query), ("since" = Option<String>, Query, description = "RFC 3339, inclusive"), ("until" = Option<String>, Query, description = "RFC 3339, exclusive"), ("page" = Option<u32>, Query, description = "From 1"), ("per_page" = Option<u32>, Query, description = "1 to 100; default 20")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of entries", body = views::AuditPage),
        (status = 403, response = Forbidden),
        (status = 422, response = ValidationFailed),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/admin/audit?user=&action=&since=&until=&page=&per_page=`: entries, newest
/// first. `user` matches the actor or the target; `since` is inclusive, `until` exclusive.
pub async fn list_audit(req: &Request, ctx: &Ctx<'_>) -> ApiResult {
    let (filter, page) = AuditFilter::parse(QueryParams::new(query_pairs(req)?, &AUDIT_QUERY))?;
    let (rows, total) = service::accounts::audit_log(ctx.store(), &filter, page).await?;
    json(200, &AuditPage::new(&rows, page, total))
}
