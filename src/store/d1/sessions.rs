//! Sessions and their refresh tokens in D1.
//!
//! A session is created by signup or login together with its first refresh token, in one
//! batch. Rotation is one batch too: consume the presented token (only if unused, unexpired
//! and its session live), slide the session's idle expiry and insert the successor only if
//! that consumption happened, and read the account back with the session's level (so a
//! refresh needs no second read to keep `aal`/`amr`). D1 runs a batch as one transaction,
//! so of two uses of one token exactly one rotates; the session's Durable Object serialises
//! them before they get here and answers the losers within the grace window.

use super::audit::{self, When};
use super::one_time_tokens;
use super::users::{insert_statements, last_user, not_banned, rehash_statement, USER_COLUMNS};
use super::Database;
use super::{changes, integer, map_d1_error, optional_text, text};
use crate::domain::audit::AuditEntry;
use crate::domain::session::Session;
use crate::store::error::StoreError;
use crate::store::traits::{NewSession, NewToken, NewUser, RotatedSession, Rotation};
use serde::Deserialize;
use worker::D1PreparedStatement;

fn session_statements(
    db: &Database,
    session: &NewSession<'_>,
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    Ok(vec![
        db.prepare(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, \
             absolute_expires_at, user_agent, colo, country, aal, amr, aal2_at) \
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(&[
            text(session.id),
            text(session.user_id),
            integer(session.now),
            integer(session.expiry.idle_expires_at),
            integer(session.expiry.absolute_expires_at),
            optional_text(session.user_agent),
            optional_text(session.colo),
            optional_text(session.country),
            text(session.level.aal.as_str()),
            text(&session.level.amr_json()),
            super::optional_integer(session.level.aal2_at),
        ])
        .map_err(map_d1_error)?,
        db.prepare(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&[
            text(session.refresh_token_hash),
            text(session.id),
            integer(session.now),
            integer(session.expiry.idle_expires_at),
        ])
        .map_err(map_d1_error)?,
    ])
}

/// Create an account, its default role, its first session (unless the account must verify
/// its email first), the signup's audit entry and any `extra` statements (a verification
/// token) in one transaction. A taken username or email fails the whole batch with a 409
/// and writes nothing.
pub async fn create_user_with_session(
    db: &Database,
    user: &NewUser<'_>,
    session: Option<&NewSession<'_>>,
    entry: &AuditEntry,
    verification: Option<&NewToken<'_>>,
) -> Result<(), StoreError> {
    let mut statements = insert_statements(db, user)?;
    if let Some(session) = session {
        statements.extend(session_statements(db, session)?);
    }
    statements.push(audit::insert_statement(db, entry, When::Always)?);
    if let Some(token) = verification {
        statements.extend(one_time_tokens::issue_statements(db, token)?);
    }
    db.batch(statements).await.map_err(map_d1_error)?;
    Ok(())
}

/// Start a session for an existing account (login) and write the login's audit entry;
/// optionally replace an outdated password hash in the same transaction.
pub async fn create_session(
    db: &Database,
    session: &NewSession<'_>,
    rehashed_password: Option<&str>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let mut statements = session_statements(db, session)?;
    if let Some(hash) = rehashed_password {
        statements.push(rehash_statement(db, session.user_id, hash)?);
    }
    statements.push(audit::insert_statement(db, entry, When::Always)?);
    db.batch(statements).await.map_err(map_d1_error)?;
    Ok(())
}

/// SQL condition: session `?2` is live at `?1` and its account is not banned. (A ban
/// revokes the sessions too; this keeps a ban set by hand just as effective.)
fn live_session() -> String {
    format!(
        "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = ?2 AND s.revoked_at IS NULL \
           AND s.idle_expires_at > ?1 AND s.absolute_expires_at > ?1 AND {}",
        not_banned("?1")
    )
}

/// Exchange a refresh token (by digest) for its successor and slide the session's idle
/// expiry (never past its absolute expiry); the account and the session's level. `None`
/// when the token is unknown, spent or expired, or its session is revoked or expired.
pub async fn rotate_refresh_token(
    db: &Database,
    rotation: &Rotation<'_>,
) -> Result<Option<RotatedSession>, StoreError> {
    let now = integer(rotation.now);
    let session = text(rotation.session_id);
    let presented = text(rotation.presented_hash);
    let successor = text(rotation.successor_hash);
    let consume = db
        .prepare(format!(
            "UPDATE refresh_tokens SET used_at = ?1, replaced_by = ?4 \
             WHERE token_hash = ?3 AND session_id = ?2 AND used_at IS NULL AND expires_at > ?1 \
               AND EXISTS ({})",
            live_session()
        ))
        .bind(&[
            now.clone(),
            session.clone(),
            presented.clone(),
            successor.clone(),
        ])
        .map_err(map_d1_error)?;
    // The remaining statements act only if `consume` did: the successor is then named in
    // the presented token's row.
    let slide = db
        .prepare(
            "UPDATE sessions SET last_used_at = ?1, \
               idle_expires_at = MIN(?1 + ?5, absolute_expires_at) \
             WHERE id = ?2 AND EXISTS \
               (SELECT 1 FROM refresh_tokens WHERE token_hash = ?3 AND replaced_by = ?4)",
        )
        .bind(&[
            now.clone(),
            session.clone(),
            presented.clone(),
            successor.clone(),
            integer(rotation.idle_ttl_seconds),
        ])
        .map_err(map_d1_error)?;
    let insert_successor = db
        .prepare(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             SELECT ?4, s.id, ?1, s.idle_expires_at FROM sessions s \
             WHERE s.id = ?2 AND EXISTS \
               (SELECT 1 FROM refresh_tokens WHERE token_hash = ?3 AND replaced_by = ?4)",
        )
        .bind(&[now, session, presented, successor.clone()])
        .map_err(map_d1_error)?;
    // The session's level rides along in the row that already joins `sessions`.
    let read_back = db
        .prepare(format!(
            "SELECT {USER_COLUMNS}, s.aal AS session_aal, s.amr AS session_amr, \
               s.aal2_at AS session_aal2_at \
             FROM refresh_tokens rt \
             JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id \
             WHERE rt.token_hash = ?1"
        ))
        .bind(&[successor])
        .map_err(map_d1_error)?;
    let results = db
        .batch(vec![consume, slide, insert_successor, read_back])
        .await
        .map_err(map_d1_error)?;
    Ok(last_user(&results)?.map(|mut user| RotatedSession {
        // The level travels beside the account, as the outcome's own field; the account
        // stays what any other lookup but the live-session one returns.
        level: user.session_level.take().unwrap_or_default(),
        user,
    }))
}

#[derive(Deserialize)]
struct SpentRow {
    used_at: Option<i64>,
}

/// When a refresh token of this session was spent: `None` if the session never issued it,
/// `Some(None)` if it is unspent, `Some(Some(t))` if it was spent at `t`.
pub async fn token_spent_at(
    db: &Database,
    session_id: &str,
    token_hash: &str,
) -> Result<Option<Option<i64>>, StoreError> {
    let row = db
        .prepare("SELECT used_at FROM refresh_tokens WHERE token_hash = ?1 AND session_id = ?2")
        .bind(&[text(token_hash), text(session_id)])
        .map_err(map_d1_error)?
        .first::<SpentRow>(None)
        .await
        .map_err(map_d1_error)?;
    Ok(row.map(|row| row.used_at))
}

/// Whether a session is live now.
pub async fn is_live(db: &Database, session_id: &str, now: i64) -> Result<bool, StoreError> {
    let row = db
        .prepare(format!(
            "SELECT 1 AS live WHERE EXISTS ({})",
            live_session()
        ))
        .bind(&[integer(now), text(session_id)])
        .map_err(map_d1_error)?
        .first::<serde_json::Value>(None)
        .await
        .map_err(map_d1_error)?;
    Ok(row.is_some())
}

/// Revoke one session of a user if it is not revoked yet. Returns whether it was; the
/// audit entry (whose target must be that user) is written only then, in the same
/// transaction.
pub async fn revoke(
    db: &Database,
    session_id: &str,
    user_id: &str,
    reason: &str,
    now: i64,
    entry: &AuditEntry,
) -> Result<bool, StoreError> {
    let statements = vec![
        audit::insert_statement(db, entry, When::SessionUnrevoked(session_id))?,
        db.prepare(
            "UPDATE sessions SET revoked_at = ?3, revoked_reason = ?4 \
             WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        )
        .bind(&[text(session_id), text(user_id), integer(now), text(reason)])
        .map_err(map_d1_error)?,
    ];
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    Ok(results.get(1).map(changes).unwrap_or(0) > 0)
}

/// Revoke every session of a user, refuse every access token issued before `now`, and
/// write the audit entry, in one transaction. Returns how many sessions were live.
pub async fn revoke_all(
    db: &Database,
    user_id: &str,
    reason: &str,
    now: i64,
    entry: &AuditEntry,
) -> Result<usize, StoreError> {
    let statements = vec![
        audit::insert_statement(db, entry, When::TargetExists)?,
        db.prepare(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3 \
             WHERE user_id = ?1 AND revoked_at IS NULL",
        )
        .bind(&[text(user_id), integer(now), text(reason)])
        .map_err(map_d1_error)?,
        db.prepare("UPDATE users SET tokens_valid_after = ?2 WHERE id = ?1")
            .bind(&[text(user_id), integer(now)])
            .map_err(map_d1_error)?,
    ];
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    Ok(results.get(1).map(changes).unwrap_or(0))
}

/// The live sessions of a user, most recently used first.
pub async fn list_live(db: &Database, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
    db.prepare(
        "SELECT id, created_at, last_used_at, idle_expires_at, absolute_expires_at, \
                user_agent, colo, country \
         FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL \
           AND idle_expires_at > ?2 AND absolute_expires_at > ?2 \
         ORDER BY last_used_at DESC, created_at DESC LIMIT 100",
    )
    .bind(&[text(user_id), integer(now)])
    .map_err(map_d1_error)?
    .all()
    .await
    .map_err(map_d1_error)?
    .results::<Session>()
    .map_err(map_d1_error)
}

#[derive(Deserialize)]
struct OwnerRow {
    user_id: String,
}

/// The user a session belongs to.
pub async fn owner(db: &Database, session_id: &str) -> Result<Option<String>, StoreError> {
    Ok(db
        .prepare("SELECT user_id FROM sessions WHERE id = ?1")
        .bind(&[text(session_id)])
        .map_err(map_d1_error)?
        .first::<OwnerRow>(None)
        .await
        .map_err(map_d1_error)?
        .map(|row| row.user_id))
}
