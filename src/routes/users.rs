//! `/api/v1/users/me`: the signed-in account's profile.

use crate::domain::email::Purpose;
use crate::domain::input::{Patch, Problems};
use crate::domain::user::User;
use crate::domain::user::{normalize_email, normalize_username};
use crate::error::{ApiError, FieldError};
use crate::http::auth::Authenticated;
use crate::http::body::{read_body, read_optional_body};
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::email as email_flows;
use crate::routes::openapi::{Conflict, Forbidden, RateLimited, Unavailable};
use crate::routes::password_checks::confirm_password;
use crate::routes::requests::{AccountDeletion, ProfileUpdate};
use crate::routes::views::{self, UpdatedUser};
use crate::runtime::now_seconds;
use crate::service;
use crate::service::accounts::Reauthentication;
use crate::store::d1_backend::D1Backend;
use crate::store::traits::ProfileChange;
use crate::store::Database;
use crate::store::{self};
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

/// The optional `username` and `email` of a profile change, checked and canonical;
/// `email: null` is `Some(None)` (remove the address).
pub fn check_username_and_email(
    problems: &mut Problems,
    username: Option<String>,
    email: Patch<String>,
) -> (Option<String>, Option<Option<String>>) {
    let username = username.and_then(|raw| problems.check(normalize_username(&raw)));
    let email = match email {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(raw) => problems.check(normalize_email(&raw)).map(Some),
    };
    (username, email)
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
    let current_password = body.current_password;
    let email_changes = email
        .as_ref()
        .is_some_and(|email| email.as_deref() != caller.user.email.as_deref());
    if email_changes && current_password.is_none() {
        problems.reject(FieldError::new(
            "current_password",
            "is required to change the email address",
        ));
    }
    if email_changes && email == Some(None) && ctx.config.email.require_verification {
        problems.reject(FieldError::new(
            "email",
            "cannot be removed: accounts must have a verified email address",
        ));
    }
    problems.finish()?;
    if let Some(password) = current_password.as_deref() {
        confirm_password(ctx, &caller.user, "current_password", password).await?;
    }
    // A new address is only proposed here; removing the address applies at once.
    let pending_email = match (&email, email_changes) {
        (Some(Some(new_email)), true) => Some(new_email.clone()),
        _ => None,
    };
    let change = ProfileChange {
        username: username.as_deref(),
        email: match (&email, email_changes) {
            (Some(None), true) => Some(None),
            _ => None,
        },
        email_verified: None,
    };
    let db = store::database(ctx.env)?;
    // Nothing to write (only an email proposal, or an empty body): the row stays untouched,
    // `updated_at` included.
    let updated = if change.username.is_none() && change.email.is_none() {
        caller.user.clone()
    } else {
        store::users::update_profile(&db, &caller.user.id, &change, now_seconds(), None)
            .await?
            .ok_or(ApiError::NotFound)?
    };
    if let Some(new_email) = &pending_email {
        propose_email_change(ctx, &db, &updated, new_email).await?;
    }
    json(200, &UpdatedUser::new(&updated, pending_email))
}

/// Send the confirmation of a new address (and a notice to the old one). An address that
/// belongs to another account gets nothing, and the answer is the same, so this cannot be
/// used to find out which addresses have accounts; confirming it would fail with a 409.
async fn propose_email_change(
    ctx: &Ctx<'_>,
    db: &Database,
    user: &User,
    new_email: &str,
) -> Result<(), ApiError> {
    let taken = store::users::find_by_email(db, new_email)
        .await?
        .is_some_and(|other| other.id != user.id);
    if taken {
        log::security_event(
            ctx.meta,
            "email_change_to_taken_address",
            json!({ "user_id": user.id }),
        );
        return Ok(());
    }
    let prepared = email_flows::prepare(ctx, Purpose::ChangeEmail, &user.id, new_email)?;
    email_flows::issue_and_send(ctx, db, &prepared).await?;
    if let Some(old_email) = &user.email {
        email_flows::send_notice(ctx, Purpose::EmailChangeNotice, old_email, Some(new_email))
            .await?;
    }
    log::security_event(
        ctx.meta,
        "email_change_requested",
        json!({ "user_id": user.id }),
    );
    Ok(())
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/me",
    tag = "users",
    summary = "Delete the account",
    description = "Re-authentication first: without a body, the session must have signed in \
        with a password within `REAUTH_SECONDS` (default 300), else 403 \
        `reauthentication_required`; with `{\"password\"}`, the password decides (422 when \
        wrong). The last active administrator cannot delete their account (409 `last_admin`).",
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
pub async fn delete_me(req: &mut Request, ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let proof = match read_optional_body::<AccountDeletion>(req, ctx.config.max_body_bytes).await? {
        Some((body, problems)) => {
            problems.finish()?;
            confirm_password(ctx, &caller.user, "password", &body.password).await?;
            Reauthentication::Password
        }
        None => Reauthentication::SessionOnly,
    };
    service::accounts::delete_own(
        &D1Backend::new(ctx.env),
        &caller.user,
        proof,
        ctx.config.reauth_seconds,
        &ctx.origin(),
        now_seconds(),
    )
    .await?;
    log::security_event(
        ctx.meta,
        "account_deleted",
        json!({ "user_id": caller.user.id }),
    );
    no_content()
}
