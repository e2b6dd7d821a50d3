//! Sessions and their refresh tokens in D1.
//!
//! A session is created by signup or login together with its first refresh token, in one
//! batch. Rotation is one batch too: consume the presented token (only if unused, unexpired
//! and its session live), insert its successor only if that consumption happened, and read
//! the account back. D1 runs a batch as one transaction, so of two concurrent uses of one
//! token exactly one succeeds.

use super::users::{insert_statements, rehash_statement, NewUser, UserRow, USER_COLUMNS};
use super::{integer, map_d1_error, optional_text, text};
use crate::error::ApiError;
use worker::{D1Database, D1PreparedStatement};

/// A session about to be created, with the digest of its first refresh token.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub refresh_token_hash: &'a str,
    pub user_agent: Option<&'a str>,
    pub colo: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
}

fn session_statements(
    db: &D1Database,
    session: &NewSession<'_>,
) -> Result<Vec<D1PreparedStatement>, ApiError> {
    Ok(vec![
        db.prepare(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, colo) \
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
        )
        .bind(&[
            text(session.id),
            text(session.user_id),
            integer(session.now),
            integer(session.expires_at),
            optional_text(session.user_agent),
            optional_text(session.colo),
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
            integer(session.expires_at),
        ])
        .map_err(map_d1_error)?,
    ])
}

/// Create an account, its default role and its first session in one transaction. A taken
/// username or email fails the whole batch with a 409 and writes nothing.
pub async fn create_user_with_session(
    db: &D1Database,
    user: &NewUser<'_>,
    session: &NewSession<'_>,
) -> Result<(), ApiError> {
    let mut statements = insert_statements(db, user)?;
    statements.extend(session_statements(db, session)?);
    db.batch(statements).await.map_err(map_d1_error)?;
    Ok(())
}

/// Start a session for an existing account (login); optionally replace an outdated
/// password hash in the same transaction.
pub async fn create_session(
    db: &D1Database,
    session: &NewSession<'_>,
    rehashed_password: Option<&str>,
) -> Result<(), ApiError> {
    let mut statements = session_statements(db, session)?;
    if let Some(hash) = rehashed_password {
        statements.push(rehash_statement(db, session.user_id, hash)?);
    }
    db.batch(statements).await.map_err(map_d1_error)?;
    Ok(())
}

/// The account and session a rotated refresh token belongs to.
pub struct Rotated {
    pub user: UserRow,
    pub session_id: String,
}

#[derive(serde::Deserialize)]
struct SessionIdRow {
    session_id: String,
}

/// Exchange a refresh token (by digest) for its successor. `None` when the token is unknown,
/// used, expired, or its session is revoked or expired.
pub async fn rotate_refresh_token(
    db: &D1Database,
    presented_hash: &str,
    successor_hash: &str,
    now: i64,
) -> Result<Option<Rotated>, ApiError> {
    let consume = db
        .prepare(
            "UPDATE refresh_tokens SET used_at = ?1, replaced_by = ?2 \
             WHERE token_hash = ?3 AND used_at IS NULL AND expires_at > ?1 \
               AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1)",
        )
        .bind(&[integer(now), text(successor_hash), text(presented_hash)])
        .map_err(map_d1_error)?;
    let insert_successor = db
        .prepare(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             SELECT ?1, rt.session_id, ?2, s.expires_at \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
             WHERE rt.token_hash = ?3 AND rt.replaced_by = ?1",
        )
        .bind(&[text(successor_hash), integer(now), text(presented_hash)])
        .map_err(map_d1_error)?;
    let touch_session = db
        .prepare(
            "UPDATE sessions SET last_used_at = ?1 \
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = ?2)",
        )
        .bind(&[integer(now), text(successor_hash)])
        .map_err(map_d1_error)?;
    let read_back = db
        .prepare(format!(
            "SELECT {USER_COLUMNS} \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
             JOIN users u ON u.id = s.user_id \
             WHERE rt.token_hash = ?1"
        ))
        .bind(&[text(successor_hash)])
        .map_err(map_d1_error)?;
    let read_session = db
        .prepare("SELECT session_id FROM refresh_tokens WHERE token_hash = ?1")
        .bind(&[text(successor_hash)])
        .map_err(map_d1_error)?;
    let results = db
        .batch(vec![
            consume,
            insert_successor,
            touch_session,
            read_back,
            read_session,
        ])
        .await
        .map_err(map_d1_error)?;
    let user = results
        .get(3)
        .map(|result| result.results::<UserRow>())
        .transpose()
        .map_err(map_d1_error)?
        .and_then(|rows| rows.into_iter().next());
    let session = results
        .get(4)
        .map(|result| result.results::<SessionIdRow>())
        .transpose()
        .map_err(map_d1_error)?
        .and_then(|rows| rows.into_iter().next());
    Ok(user.zip(session).map(|(user, session)| Rotated {
        user,
        session_id: session.session_id,
    }))
}
