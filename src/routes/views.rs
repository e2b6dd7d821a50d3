//! The JSON views of accounts and sessions that several resources answer with (the account
//! itself, the admin API, the email flows). Never a password hash.

use crate::domain::session::Session;
use crate::domain::time::rfc3339_seconds;
use crate::domain::user::User;
use serde_json::{json, Value};

/// The public view of an account (never the password hash).
pub fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "email_verified": user.email_verified,
        "roles": user.roles,
        "created_at": rfc3339_seconds(user.created_at),
        "updated_at": rfc3339_seconds(user.updated_at),
    })
}

/// An account as administrators see it: the public view plus its ban.
pub fn admin_user_json(user: &User, now: i64) -> Value {
    let mut view = user_json(user);
    let banned = user.ban_state(now).is_banned();
    view["banned"] = banned.into();
    view["banned_at"] = user
        .banned_at
        .filter(|_| banned)
        .map(rfc3339_seconds)
        .into();
    view["banned_until"] = user
        .banned_until
        .filter(|_| banned)
        .map(rfc3339_seconds)
        .into();
    view["ban_reason"] = user.ban_reason.clone().filter(|_| banned).into();
    view
}

/// A session as its owner (or an admin) sees it.
pub fn session_json(session: &Session) -> Value {
    json!({
        "id": session.id,
        "created_at": rfc3339_seconds(session.created_at),
        "last_used_at": rfc3339_seconds(session.last_used_at),
        "expires_at": rfc3339_seconds(session.idle_expires_at),
        "absolute_expires_at": rfc3339_seconds(session.absolute_expires_at),
        "user_agent": session.user_agent,
        "colo": session.colo,
        "country": session.country,
    })
}
