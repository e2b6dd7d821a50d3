//! Accounts in D1: lookups, listing and search, signup, profile and password updates, bans,
//! deletion. Every change that the audit log records writes its entry in the same batch.

use super::audit::{self, When};
use super::Database;
use super::{changes, integer, map_d1_error, optional_text, text};
use crate::domain::audit::AuditEntry;
use crate::domain::query::{Page, PrefixRange};
use crate::domain::user::{looks_like_email, normalize_email, normalize_username, User};
use crate::store::error::StoreError;
use crate::store::traits::NewUser;
use crate::store::traits::{Ban, ProfileChange};
use serde::Deserialize;

/// An account row as D1 returns it, with its role names; it becomes a [`User`] before it
/// leaves the store.
#[derive(Debug, Deserialize)]
pub(super) struct UserRow {
    id: String,
    username: String,
    email: Option<String>,
    #[serde(default)]
    password_hash: String,
    /// SQLite has no boolean: 0 or 1.
    email_verified: i64,
    created_at: i64,
    updated_at: i64,
    /// Comma-separated role names (`group_concat`), `None` when the account has none.
    roles: Option<String>,
    #[serde(default)]
    banned_at: Option<i64>,
    #[serde(default)]
    banned_until: Option<i64>,
    #[serde(default)]
    ban_reason: Option<String>,
    /// The session's creation, read only by [`find_by_live_session`] (only signup and login
    /// create sessions, so it is when the session signed in with a password).
    #[serde(default)]
    session_signed_in_at: Option<i64>,
    /// The session's level, read only by [`find_by_live_session`] and by a refresh token's
    /// rotation (`sessions::rotate_refresh_token`).
    #[serde(default)]
    session_aal: Option<String>,
    #[serde(default)]
    session_amr: Option<String>,
    #[serde(default)]
    session_aal2_at: Option<i64>,
    /// Whether the account has a confirmed second factor (0 or 1), read only by
    /// [`find_by_live_session`].
    #[serde(default)]
    mfa_enabled: Option<i64>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        let mut roles: Vec<String> = row
            .roles
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|role| !role.is_empty())
            .map(str::to_owned)
            .collect();
        roles.sort();
        User {
            id: row.id,
            username: row.username,
            email: row.email,
            email_verified: row.email_verified != 0,
            roles,
            created_at: row.created_at,
            updated_at: row.updated_at,
            banned_at: row.banned_at,
            banned_until: row.banned_until,
            ban_reason: row.ban_reason,
            password_hash: row.password_hash,
            session_signed_in_at: row.session_signed_in_at,
            session_level: row.session_aal.as_deref().map(|aal| {
                crate::domain::mfa::SessionLevel::from_stored(
                    aal,
                    row.session_amr.as_deref(),
                    row.session_aal2_at,
                )
            }),
            mfa_enabled: row.mfa_enabled.unwrap_or(0) != 0,
        }
    }
}

/// The first row of a query, as an account.
pub(super) async fn first_user(
    statement: worker::D1PreparedStatement,
) -> Result<Option<User>, StoreError> {
    Ok(statement
        .first::<UserRow>(None)
        .await
        .map_err(map_d1_error)?
        .map(User::from))
}

/// The columns of [`UserRow`] but the password hash, for a `users` table aliased `u`.
macro_rules! public_columns {
    () => {
        "u.id, u.username, u.email, u.email_verified, u.created_at, u.updated_at, \
         (SELECT group_concat(role, ',') FROM user_roles WHERE user_id = u.id) AS roles, \
         u.banned_at, u.banned_until, u.ban_reason"
    };
}

/// What a listing reads: no password hashes where none is needed.
const PUBLIC_COLUMNS: &str = public_columns!();

/// The columns of [`UserRow`], for a `users` table aliased `u`.
pub(super) const USER_COLUMNS: &str = concat!(public_columns!(), ", u.password_hash");

/// SQL: account `u` is not banned at the time in parameter `now` (the rule of
/// [`BanState::at`]).
pub(super) fn not_banned(now: &str) -> String {
    format!("(u.banned_at IS NULL OR (u.banned_until IS NOT NULL AND u.banned_until <= {now}))")
}

/// Find an account by canonical username.
pub async fn find_by_username(db: &Database, username: &str) -> Result<Option<User>, StoreError> {
    first_user(
        db.prepare(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?1"
        ))
        .bind(&[text(username)])
        .map_err(map_d1_error)?,
    )
    .await
}

/// Find an account by canonical email.
pub async fn find_by_email(db: &Database, email: &str) -> Result<Option<User>, StoreError> {
    first_user(
        db.prepare(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.email = ?1"
        ))
        .bind(&[text(email)])
        .map_err(map_d1_error)?,
    )
    .await
}

/// Find an account by id.
pub async fn find_by_id(db: &Database, user_id: &str) -> Result<Option<User>, StoreError> {
    first_user(select_statement(db, user_id)?).await
}

/// The account a login identifier names: an email when it looks like one, else a username.
/// An identifier that is neither names no account (it is not an error: callers answer as
/// for an unknown account).
pub async fn find_by_identifier(
    db: &Database,
    identifier: &str,
) -> Result<Option<User>, StoreError> {
    let identifier = identifier.trim();
    if looks_like_email(identifier) {
        match normalize_email(identifier) {
            Ok(email) => find_by_email(db, &email).await,
            Err(_) => Ok(None),
        }
    } else {
        match normalize_username(identifier) {
            Ok(username) => find_by_username(db, &username).await,
            Err(_) => Ok(None),
        }
    }
}

/// Find the account behind an access token, only while its session is live, the account is
/// not banned and the token was issued after the account's not-before stamp: one round
/// trip that also makes a revoked session, a logout everywhere, a ban or a deleted account
/// end the token at once.
pub async fn find_by_live_session(
    db: &Database,
    user_id: &str,
    session_id: &str,
    issued_at: i64,
    now: i64,
) -> Result<Option<User>, StoreError> {
    first_user(
        db.prepare(format!(
            "SELECT {USER_COLUMNS}, s.created_at AS session_signed_in_at, \
           s.aal AS session_aal, s.amr AS session_amr, s.aal2_at AS session_aal2_at, \
           (EXISTS (SELECT 1 FROM mfa_factors f WHERE f.user_id = u.id \
             AND f.confirmed_at IS NOT NULL) \
            OR EXISTS (SELECT 1 FROM passkeys p WHERE p.user_id = u.id)) AS mfa_enabled \
         FROM users u JOIN sessions s ON s.user_id = u.id \
         WHERE u.id = ?1 AND s.id = ?2 AND s.revoked_at IS NULL \
           AND s.idle_expires_at > ?3 AND s.absolute_expires_at > ?3 \
           AND u.tokens_valid_after <= ?4 AND {}",
            not_banned("?3")
        ))
        .bind(&[
            text(user_id),
            text(session_id),
            integer(now),
            integer(issued_at),
        ])
        .map_err(map_d1_error)?,
    )
    .await
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
    db: &Database,
    user: &NewUser<'_>,
) -> Result<Vec<worker::D1PreparedStatement>, StoreError> {
    Ok(vec![
        db.prepare(
            "INSERT INTO users (id, username, email, password_hash, email_verified, created_at, updated_at) \
             SELECT ?1, ?2, NULL, '', 0, 0, 0 WHERE EXISTS (SELECT 1 FROM users WHERE username = ?2)",
        )
        .bind(&[text(user.id), text(user.username)])
        .map_err(map_d1_error)?,
        db.prepare(
            "INSERT INTO users (id, username, email, password_hash, email_verified, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?6, ?5, ?5)",
        )
        .bind(&[
            text(user.id),
            text(user.username),
            optional_text(user.email),
            text(user.password_hash),
            integer(user.now),
            integer(i64::from(user.email_verified)),
        ])
        .map_err(map_d1_error)?,
        db.prepare("INSERT INTO user_roles (user_id, role, granted_at) VALUES (?1, 'user', ?2)")
            .bind(&[text(user.id), integer(user.now)])
            .map_err(map_d1_error)?,
    ])
}

/// Read one account (by id); also the last statement of batches that return it.
pub(super) fn select_statement(
    db: &Database,
    user_id: &str,
) -> Result<worker::D1PreparedStatement, StoreError> {
    db.prepare(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"
    ))
    .bind(&[text(user_id)])
    .map_err(map_d1_error)
}

/// The account read by the last statement of a batch.
pub(super) fn last_user(results: &[worker::D1Result]) -> Result<Option<User>, StoreError> {
    Ok(match results.last() {
        Some(result) => result
            .results::<UserRow>()
            .map_err(map_d1_error)?
            .into_iter()
            .next()
            .map(User::from),
        None => None,
    })
}

/// Run a batch whose last statement reads an account; return that account.
async fn batch_reading_back(
    db: &Database,
    statements: Vec<worker::D1PreparedStatement>,
) -> Result<Option<User>, StoreError> {
    last_user(&db.batch(statements).await.map_err(map_d1_error)?)
}

/// Apply a profile change and return the updated row (`None` if there is no such account).
/// A changed email is unverified unless the change says otherwise. With `entry`, the audit entry
/// is written in the same transaction. `updated_at` moves only when a value changes.
pub async fn update_profile(
    db: &Database,
    user_id: &str,
    change: &ProfileChange<'_>,
    now: i64,
    entry: Option<&AuditEntry>,
) -> Result<Option<User>, StoreError> {
    let email_changes = change.email.is_some();
    let mut statements = vec![db
        .prepare(
            "UPDATE users SET \
               username = COALESCE(?2, username), \
               email = CASE WHEN ?3 THEN ?4 ELSE email END, \
               email_verified = CASE WHEN ?6 IS NOT NULL THEN ?6 \
                 WHEN ?3 AND ?4 IS NOT email THEN 0 ELSE email_verified END, \
               updated_at = CASE WHEN (?2 IS NOT NULL AND ?2 IS NOT username) \
                                   OR (?3 AND ?4 IS NOT email) \
                                   OR (?6 IS NOT NULL AND ?6 IS NOT email_verified) \
                                 THEN ?5 ELSE updated_at END \
             WHERE id = ?1",
        )
        .bind(&[
            text(user_id),
            optional_text(change.username),
            integer(i64::from(email_changes)),
            optional_text(change.email.flatten()),
            integer(now),
            change
                .email_verified
                .map_or(wasm_bindgen::JsValue::NULL, |verified| {
                    integer(i64::from(verified))
                }),
        ])
        .map_err(map_d1_error)?];
    if let Some(entry) = entry {
        statements.push(audit::insert_statement(db, entry, When::TargetExists)?);
    }
    statements.push(select_statement(db, user_id)?);
    batch_reading_back(db, statements).await
}

/// Store a new password hash; when `revoke_other_sessions_than` names a session, every
/// other live session of the account is revoked in the same transaction, which also
/// writes the audit entry.
pub async fn update_password(
    db: &Database,
    user_id: &str,
    password_hash: &str,
    revoke_other_sessions_than: Option<&str>,
    now: i64,
    entry: &AuditEntry,
) -> Result<usize, StoreError> {
    let mut statements = vec![
        db.prepare("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(&[text(user_id), text(password_hash), integer(now)])
            .map_err(map_d1_error)?,
        audit::insert_statement(db, entry, When::TargetExists)?,
    ];
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
    Ok(results.get(2).map(changes).unwrap_or(0))
}

/// Replace a password hash made with old parameters (after a successful login).
pub(super) fn rehash_statement(
    db: &Database,
    user_id: &str,
    password_hash: &str,
) -> Result<worker::D1PreparedStatement, StoreError> {
    db.prepare("UPDATE users SET password_hash = ?2 WHERE id = ?1")
        .bind(&[text(user_id), text(password_hash)])
        .map_err(map_d1_error)
}

/// Delete an account with its roles, sessions and refresh tokens, in one transaction that
/// also writes the audit entry (only if there was an account to delete).
pub async fn delete(db: &Database, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
    let statements = vec![
        audit::insert_statement(db, entry, When::TargetExists)?,
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

/// One page of accounts, newest first, optionally only those whose username or email
/// starts with a prefix; and how many match in all.
pub async fn list(
    db: &Database,
    search: Option<&PrefixRange>,
    page: Page,
) -> Result<(Vec<User>, u64), StoreError> {
    // Two ranges over the unique indexes of username and email: no scan, and no LIKE
    // wildcards to escape.
    let (condition, mut params) = match search {
        Some(range) => (
            "(u.username >= ?1 AND u.username < ?2) OR (u.email >= ?1 AND u.email < ?2)",
            vec![text(&range.lower), text(&range.upper)],
        ),
        None => ("1", Vec::new()),
    };
    let count = db
        .prepare(format!(
            "SELECT COUNT(*) AS total FROM users u WHERE {condition}"
        ))
        .bind(&params)
        .map_err(map_d1_error)?;
    let limit = params.len() + 1;
    params.push(integer(i64::from(page.per_page)));
    params.push(integer(i64::try_from(page.offset()).unwrap_or(i64::MAX)));
    let rows = db
        .prepare(format!(
            "SELECT {PUBLIC_COLUMNS} FROM users u WHERE {condition} \
             ORDER BY u.created_at DESC, u.id ASC LIMIT ?{limit} OFFSET ?{}",
            limit + 1
        ))
        .bind(&params)
        .map_err(map_d1_error)?;
    let (rows, total) = super::count_and_page::<UserRow>(db, count, rows).await?;
    Ok((rows.into_iter().map(User::from).collect(), total))
}

/// Ban an account: set the ban, revoke every session and refuse every access token issued
/// before now, and write the audit entry — one transaction. Returns the updated account
/// (`None` if there is none) and how many sessions were live.
pub async fn ban(
    db: &Database,
    user_id: &str,
    ban: &Ban<'_>,
    now: i64,
    entry: &AuditEntry,
) -> Result<(Option<User>, usize), StoreError> {
    let statements = vec![
        db.prepare(
            "UPDATE users SET banned_at = ?2, banned_until = ?3, ban_reason = ?4, \
               tokens_valid_after = ?2, updated_at = ?2 \
             WHERE id = ?1",
        )
        .bind(&[
            text(user_id),
            integer(now),
            ban.until.map_or(wasm_bindgen::JsValue::NULL, integer),
            optional_text(ban.reason),
        ])
        .map_err(map_d1_error)?,
        db.prepare(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'banned' \
             WHERE user_id = ?1 AND revoked_at IS NULL",
        )
        .bind(&[text(user_id), integer(now)])
        .map_err(map_d1_error)?,
        audit::insert_statement(db, entry, When::TargetExists)?,
        select_statement(db, user_id)?,
    ];
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    let revoked = results.get(1).map(changes).unwrap_or(0);
    Ok((last_user(&results)?, revoked))
}

/// Lift an account's ban (a no-op for an account that is not banned; the audit entry is
/// written only when there was a ban). Returns the updated account.
pub async fn unban(
    db: &Database,
    user_id: &str,
    now: i64,
    entry: &AuditEntry,
) -> Result<Option<User>, StoreError> {
    let statements = vec![
        audit::insert_statement(db, entry, When::TargetBanned)?,
        db.prepare(
            "UPDATE users SET banned_at = NULL, banned_until = NULL, ban_reason = NULL, \
               updated_at = ?2 \
             WHERE id = ?1 AND banned_at IS NOT NULL",
        )
        .bind(&[text(user_id), integer(now)])
        .map_err(map_d1_error)?,
        select_statement(db, user_id)?,
    ];
    batch_reading_back(db, statements).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_becomes_a_user_with_a_boolean_and_sorted_roles() {
        let row: UserRow = serde_json::from_value(serde_json::json!({
            "id": "u1", "username": "alice", "email": "a@example.com", "email_verified": 1,
            "created_at": 10, "updated_at": 20, "roles": "user,admin",
        }))
        .unwrap();
        let user = User::from(row);
        assert!(user.email_verified);
        assert_eq!(user.roles, ["admin", "user"]);
        assert_eq!(user.banned_at, None);
        let none: UserRow = serde_json::from_value(serde_json::json!({
            "id": "u2", "username": "bob", "email": null, "email_verified": 0,
            "created_at": 0, "updated_at": 0, "roles": null,
        }))
        .unwrap();
        let user = User::from(none);
        assert!(!user.email_verified);
        assert!(user.roles.is_empty());
    }
}
