//! `/api/v1/auth/sessions`: the signed-in user's sessions, listed and revoked.

use crate::domain::audit::AuditAction;
use crate::domain::session::is_uuid;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{json, no_content, ApiResult};
use crate::routes::openapi::{schemas, NotFound, Unavailable};
use crate::routes::views::session_json;
use crate::runtime::now_seconds;
use crate::store::{self, revocation, sessions};
use serde_json::{json, Value};

#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    summary = "The account's live sessions",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Most recently used first; `current` marks the caller's", body = schemas::SessionList),
        (status = 503, response = Unavailable),
    )
)]
/// `GET /api/v1/auth/sessions`: live sessions, most recently used first; `current` marks the
/// one the calling token belongs to.
pub async fn list(ctx: &Ctx<'_>, caller: Authenticated) -> ApiResult {
    let db = store::database(ctx.env)?;
    let rows = sessions::list_live(&db, &caller.user.id, now_seconds()).await?;
    let sessions: Vec<Value> = rows
        .iter()
        .map(|session| {
            let mut view = session_json(session);
            view["current"] = (session.id == caller.token.claims.sid).into();
            view
        })
        .collect();
    json(200, &json!({ "sessions": sessions }))
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
    let session_id = Some(ctx.param("id")?)
        .filter(|id| is_uuid(id))
        .ok_or(ApiError::NotFound)?;
    let now = now_seconds();
    let db = store::database(ctx.env)?;
    if !sessions::revoke(
        &db,
        session_id,
        &caller.user.id,
        "revoked_by_user",
        now,
        &ctx.audit(AuditAction::SessionRevoked, now)
            .by_self(&caller.user.id)
            .with("session_id", session_id)
            .with("reason", "revoked_by_user"),
    )
    .await?
    {
        return Err(ApiError::NotFound);
    }
    if session_id == caller.token.claims.sid {
        revocation::revoke(
            ctx.env,
            &caller.token.claims.jti,
            caller.token.expires_at,
            now,
        )
        .await?;
    }
    log::security_event(
        ctx.meta,
        "session_revoked",
        json!({ "user_id": caller.user.id, "session_id": session_id }),
    );
    no_content()
}
