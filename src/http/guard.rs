//! Route guards: the caller must hold a permission (or a role) — 401 without a valid token,
//! 403 with one that lacks the right.
//!
//! The right must show in both the token's `roles` claim and the account's roles as D1
//! holds them now (see `domain::access`). Authentication reads the account from D1 anyway,
//! and once the token itself has verified, the roles granting the permission are read
//! concurrently with it: a guard costs no extra round trip (and a forged token no D1 read
//! at all), and a demoted admin is refused on the very next request, read or write,
//! whatever token they still hold.

use crate::domain::access::{self, Denial};
use crate::error::ApiError;
use crate::http::auth::{authenticate, load_caller, verify_bearer, Authenticated};
use crate::http::context::Ctx;
use crate::http::log;
use crate::runtime::now_seconds;
use crate::store::traits::RoleStore;
use futures_util::future::join;
use serde_json::json;

/// Log a refusal and build the 403; `what` is "permission" or "role".
fn refuse(
    ctx: &Ctx<'_>,
    caller: &Authenticated,
    what: &str,
    needed: &str,
    denial: Denial,
) -> ApiError {
    log::security_event(
        ctx.meta,
        "forbidden",
        json!({ "user_id": caller.user.id, "needed": needed, "reason": denial.as_str() }),
    );
    ApiError::Forbidden(format!("This needs the {needed} {what}"))
}

/// Authenticate the caller and require `permission` (e.g. `users:write`).
pub async fn require_permission(
    req: &web_sys::Request,
    ctx: &Ctx<'_>,
    permission: &str,
) -> Result<Authenticated, ApiError> {
    let verified = verify_bearer(req, ctx).await?;
    let (caller, granting) = join(
        load_caller(ctx, verified),
        ctx.store().roles_granting(permission),
    )
    .await;
    let caller = caller?;
    let granting = granting?;
    access::authorize(&granting, &caller.token.claims.roles, &caller.user.roles)
        .map_err(|denial| refuse(ctx, &caller, "permission", permission, denial))?;
    require_admin_step_up(ctx, &caller)?;
    Ok(caller)
}

/// Authenticate the caller and require the role `role` (e.g. `admin`).
pub async fn require_role(
    req: &web_sys::Request,
    ctx: &Ctx<'_>,
    role: &str,
) -> Result<Authenticated, ApiError> {
    let caller = authenticate(req, ctx).await?;
    access::has_role(role, &caller.token.claims.roles, &caller.user.roles)
        .map_err(|denial| refuse(ctx, &caller, "role", role, denial))?;
    require_admin_step_up(ctx, &caller)?;
    Ok(caller)
}

/// Every route behind a permission or a role is an administrator's: an administrator with
/// a second factor needs a session that proved it within `STEP_UP_SECONDS` (403
/// `step_up_required`). Authentication read the session's level already: no extra I/O.
fn require_admin_step_up(ctx: &Ctx<'_>, caller: &Authenticated) -> Result<(), ApiError> {
    crate::service::mfa_gate::require_step_up(&ctx.deps(), &caller.user, now_seconds())
}
