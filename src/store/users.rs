//! Accounts in D1: lookups, signup, profile and password updates, deletion.

use super::{changes, integer, map_d1_error, optional_text, text};
use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use worker::D1Database;

/// An account row with its role names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    /// Never leaves the Worker: skipped when a row is passed to a Durable Object or back.
    #[serde(default, skip_serializing)]
    pub password_hash: String,
    pub email_verified: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Comma-separated role names (`group_concat`), `None` when the account has none.
    pub roles: Option<String>,
}

impl UserRow {
    pub fn role_names(&self) -> Vec<String> {
        let mut roles: Vec<String> = self
            .roles
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|role| !role.is_empty())
            .map(str::to_owned)
            .collect();
        roles.sort();
        roles
    }
}

/// The columns of [`UserRow`], for a `users` table aliased `u`.
pub(super) const USER_COLUMNS: &str = "u.id, u.username, u.email, u.password_hash, \
    u.email_verified, u.created_at, u.updated_at, \
    (SELECT group_concat(role, ',') FROM user_roles WHERE user_id = u.id) AS roles";

/// A new account, as signup creates it.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: &'a str,
    pub now: i64,
}

/// Find an account by canonical username.
pub async fn find_by_username(
    db: &D1Database,
    username: &str,
) -> Result<Option<UserRow>, ApiError> {
    db.prepare(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?1"
    ))
    .bind(&[text(username)])
    .map_err(map_d1_error)?
    .first::<UserRow>(None)
    .await
    .map_err(map_d1_error)
}

/// Find an account by canonical email.
pub async fn find_by_email(db: &D1Database, email: &str) -> Result<Option<UserRow>, ApiError> {
    db.prepare(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.email = ?1"
    ))
    .bind(&[text(email)])
    .map_err(map_d1_error)?
    .first::<UserRow>(None)
    .await
    .map_err(map_d1_error)
}

/// Find the account behind an access token, only while its session is live and the token
/// was issued after the account's not-before stamp: one round trip that also makes a
/// revoked session, a logout everywhere or a deleted account end the token at once.
pub async fn find_by_live_session(
    db: &D1Database,
    user_id: &str,
    session_id: &str,
    issued_at: i64,
    now: i64,
) -> Result<Option<UserRow>, ApiError> {
    db.prepare(format!(
        "SELECT {USER_COLUMNS} FROM users u JOIN sessions s ON s.user_id = u.id \
         WHERE u.id = ?1 AND s.id = ?2 AND s.revoked_at IS NULL \
           AND s.idle_expires_at > ?3 AND s.absolute_expires_at > ?3 \
           AND u.tokens_valid_after <= ?4"
    ))
    .bind(&[
        text(user_id),
        text(session_id),
        integer(now),
        integer(issued_at),
    ])
    .map_err(map_d1_error)?
    .first::<UserRow>(None)
    .await
    .map_err(map_d1_error)
}

/// The statements that insert an account with the default role (run inside a batch).
///
/// When both the username and the email are taken, SQLite reports the email's UNIQUE
/// constraint. The first statement makes a taken username fail first, whatever the email: it
/// inserts a row (with no email) only when the username exists, which then fails on the
/// username. Otherwise "username taken + this email" would answer differently depending on
/// whether the email has an account — an oracle for addresses, which signup must not be
/// when verification is required (see `routes::auth::signup`). Same batch, no extra round
/// trip.
pub(super) fn insert_statements(
    db: &D1Database,
    user: &NewUser<'_>,
) -> Result<Vec<worker::D1PreparedStatement>, ApiError> {
    Ok(vec![
        db.prepare(
            "INSERT INTO users (id, username, email, password_hash, email_verified, created_at, updated_at) \
             SELECT ?1, ?2, NULL, '', 0, 0, 0 WHERE EXISTS (SELECT 1 FROM users WHERE username = ?2)",
        )
        .bind(&[text(user.id), text(user.username)])
        .map_err(map_d1_error)?,
        db.prepare(
            "INSERT INTO users (id, username, email, password_hash, email_verified, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
        )
        .bind(&[
            text(user.id),
            text(user.username),
            optional_text(user.email),
            text(user.password_hash),
            integer(user.now),
        ])
        .map_err(map_d1_error)?,
        db.prepare("INSERT INTO user_roles (user_id, role, granted_at) VALUES (?1, 'user', ?2)")
            .bind(&[text(user.id), integer(user.now)])
            .map_err(map_d1_error)?,
    ])
}

/// Changes to a profile; `None` leaves a field as it is.
pub struct ProfileChange<'a> {
    pub username: Option<&'a str>,
    /// `Some(None)` removes the email.
    pub email: Option<Option<&'a str>>,
}

/// Apply a profile change and return the updated row. A changed email is unverified;
/// `updated_at` moves only when a value actually changes.
pub async fn update_profile(
    db: &D1Database,
    user_id: &str,
    change: &ProfileChange<'_>,
    now: i64,
) -> Result<Option<UserRow>, ApiError> {
    let email_changes = change.email.is_some();
    let statement = db
        .prepare(
            "UPDATE users SET \
               username = COALESCE(?2, username), \
               email = CASE WHEN ?3 THEN ?4 ELSE email END, \
               email_verified = CASE WHEN ?3 AND ?4 IS NOT email THEN 0 ELSE email_verified END, \
               updated_at = CASE WHEN (?2 IS NOT NULL AND ?2 IS NOT username) \
                                   OR (?3 AND ?4 IS NOT email) THEN ?5 ELSE updated_at END \
             WHERE id = ?1",
        )
        .bind(&[
            text(user_id),
            optional_text(change.username),
            integer(i64::from(email_changes)),
            optional_text(change.email.flatten()),
            integer(now),
        ])
        .map_err(map_d1_error)?;
    let select = db
        .prepare(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"
        ))
        .bind(&[text(user_id)])
        .map_err(map_d1_error)?;
    let results = db
        .batch(vec![statement, select])
        .await
        .map_err(map_d1_error)?;
    let rows = results
        .last()
        .map(|result| result.results::<UserRow>())
        .transpose()
        .map_err(map_d1_error)?
        .unwrap_or_default();
    Ok(rows.into_iter().next())
}

/// Store a new password hash; when `revoke_other_sessions_than` names a session, every
/// other live session of the account is revoked in the same transaction.
pub async fn update_password(
    db: &D1Database,
    user_id: &str,
    password_hash: &str,
    revoke_other_sessions_than: Option<&str>,
    now: i64,
) -> Result<usize, ApiError> {
    let mut statements = vec![db
        .prepare("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")
        .bind(&[text(user_id), text(password_hash), integer(now)])
        .map_err(map_d1_error)?];
    if let Some(keep) = revoke_other_sessions_than {
        statements.push(
            db.prepare(
                "UPDATE sessions SET revoked_at = ?3, revoked_reason = 'password_change' \
                 WHERE user_id = ?1 AND id != ?2 AND revoked_at IS NULL",
            )
            .bind(&[text(user_id), text(keep), integer(now)])
            .map_err(map_d1_error)?,
        );
    }
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    Ok(results.get(1).map(changes).unwrap_or(0))
}

/// Replace a password hash made with old parameters (after a successful login).
pub(super) fn rehash_statement(
    db: &D1Database,
    user_id: &str,
    password_hash: &str,
) -> Result<worker::D1PreparedStatement, ApiError> {
    db.prepare("UPDATE users SET password_hash = ?2 WHERE id = ?1")
        .bind(&[text(user_id), text(password_hash)])
        .map_err(map_d1_error)
}

/// Delete an account with its roles, sessions and refresh tokens, in one transaction.
pub async fn delete(db: &D1Database, user_id: &str) -> Result<bool, ApiError> {
    let statements = vec![
        db.prepare(
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?1)",
        )
        .bind(&[text(user_id)])
        .map_err(map_d1_error)?,
        db.prepare("DELETE FROM sessions WHERE user_id = ?1")
            .bind(&[text(user_id)])
            .map_err(map_d1_error)?,
        db.prepare("DELETE FROM user_roles WHERE user_id = ?1")
            .bind(&[text(user_id)])
            .map_err(map_d1_error)?,
        db.prepare("DELETE FROM users WHERE id = ?1")
            .bind(&[text(user_id)])
            .map_err(map_d1_error)?,
    ];
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    Ok(results.last().map(changes).unwrap_or(0) > 0)
}

/// Find an account by id.
pub async fn find_by_id(db: &D1Database, user_id: &str) -> Result<Option<UserRow>, ApiError> {
    db.prepare(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"
    ))
    .bind(&[text(user_id)])
    .map_err(map_d1_error)?
    .first::<UserRow>(None)
    .await
    .map_err(map_d1_error)
}
