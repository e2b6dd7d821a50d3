//! `/api/v1/users/me`: the signed-in account's profile.

use crate::http::auth::Authenticated;
use crate::http::body::{read_body, read_optional_body};
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{Conflict, Forbidden, RateLimited, Unavailable};
use crate::routes::requests::{check_username_and_email, AccountDeletion, ProfileUpdate};
use crate::routes::views::{self, UpdatedUser};
use crate::runtime::now_seconds;
use crate::service;
use crate::service::accounts::Reauthentication;
use crate::service::passwords;
use crate::service::profile::{self, ProfileRequest};
use serde_json::json;
use worker::Request;

#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "users",
    summary = "The signed-in account",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The account", body = views::User),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/users/me`.
pub async fn get_me(caller: Authenticated) -> ApiResult {
    json(200, &views::User::from(&caller.user))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/me",
    tag = "users",
    summary = "Change the username or email",
    request_body = ProfileUpdate,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The account after the change", body = views::UpdatedUser),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `PATCH` (or `PUT`) `/api/v1/users/me`: change the username at once; change the email
/// (where password resets go) only with the current password and only once the new address
/// confirms — a confirmation goes to the new address and a notice to the old one. A
/// `current_password` that is sent is always checked, so a wrong one never passes silently.
pub async fn update_me(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let (body, mut problems) = read_body::<ProfileUpdate>(req, ctx.config.max_body_bytes).await?;
    let (username, email) = check_username_and_email(&mut problems, body.username, body.email);
    let request = ProfileRequest {
        username,
        email,
        current_password: body.current_password,
    };
    let require_verification = ctx.config.email.require_verification;
    for error in profile::rule_errors(&caller.user, &request, require_verification) {
        problems.reject(error);
    }
    problems.finish()?;
    let updated = profile::update(&ctx.deps(), &caller.user, request, now_seconds()).await?;
    json(200, &UpdatedUser::new(&updated.user, updated.pending_email))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/me",
    tag = "users",
    summary = "Delete the account",
    description = "Re-authentication first: without a body, the session must have signed in \
        with a password within `REAUTH_SECONDS` (default 300), else 403 \
        `reauthentication_required`; with `{\"password\"}`, the password decides (422 when \
        wrong). With a second factor enrolled, a step-up within `STEP_UP_SECONDS` is needed \
        instead (403 `step_up_required`). The last active administrator cannot delete their account (409 `last_admin`).",
    request_body(content = Option<AccountDeletion>, description = "Optional: the account's password"),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted; every session ended"),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/users/me`: a stolen access token alone cannot delete an account once its
/// sign-in is older than `REAUTH_SECONDS`; then the password must come with the request.
///
/// With a second factor enrolled, a recent step-up is needed instead (403
/// `step_up_required`), and counts as the re-authentication.
pub async fn delete_me(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let now = now_seconds();
    service::mfa_gate::require_step_up(&ctx.deps(), &caller.user, now)?;
    let mut proof =
        match read_optional_body::<AccountDeletion>(req, ctx.config.max_body_bytes).await? {
            Some((body, problems)) => {
                problems.finish()?;
                passwords::confirm(&ctx.deps(), &caller.user, "password", &body.password).await?;
                Reauthentication::Password
            }
            None => Reauthentication::SessionOnly,
        };
    if caller.user.mfa_enabled {
        // The step-up above proved a second factor within STEP_UP_SECONDS.
        proof = Reauthentication::Password;
    }
    service::accounts::delete_own(
        ctx.store(),
        &caller.user,
        proof,
        ctx.config.reauth_seconds,
        &ctx.origin(),
        now,
    )
    .await?;
    log::security_event(
        ctx.meta,
        "account_deleted",
        json!({ "user_id": caller.user.id }),
    );
    no_content()
}
