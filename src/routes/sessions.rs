//! `/api/v1/auth/sessions`: the signed-in user's sessions, listed and revoked.

use crate::http::auth::Authenticated;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{NotFound, Unavailable};
use crate::routes::views::{self, Session, SessionList};
use crate::runtime::now_seconds;
use crate::service;
use serde_json::json;

#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    summary = "The account's live sessions",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Most recently used first; `current` marks the caller's", body = views::SessionList),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/auth/sessions`: live sessions, most recently used first; `current` marks the
/// one the calling token belongs to.
pub async fn list(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let listed = service::sessions::list(ctx.store(), &caller.token, now_seconds()).await?;
    json(
        200,
        &SessionList {
            sessions: listed
                .iter()
                .map(|item| Session::new(&item.session, Some(item.current)))
                .collect(),
        },
    )
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "sessions",
    operation_id = "revoke_session",
    summary = "End one of the account's sessions",
    params(("id" = String, Path, description = "Session id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
/// `DELETE /api/v1/auth/sessions/{id}`: revoke one of the caller's own sessions. Another
/// user's session, an unknown id and a malformed id are all 404 alike.
pub async fn revoke(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let session_id = ctx.param("id")?;
    service::sessions::revoke_own(
        ctx.store(),
        &caller.token,
        session_id,
        &ctx.origin(),
        now_seconds(),
    )
    .await?;
    log::security_event(
        ctx.meta,
        "session_revoked",
        json!({ "user_id": caller.user.id, "session_id": session_id }),
    );
    no_content()
}
