//! One-time tokens in D1: issue (spending older ones of the purpose), find by link token or by
//! address, count failed code attempts, and spend a token together with what it authorises in
//! one transaction.

use super::users::{last_user, USER_COLUMNS};
use super::Database;
use super::{changes, integer, map_d1_error, text};
use crate::domain::email::Purpose;
use crate::domain::one_time::IssuedToken;
use crate::domain::user::User;
use crate::store::error::StoreError;
use crate::store::traits::{NewToken, TokenEffect};
use wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

/// The statements that issue a token: older live tokens of the same purpose are spent first,
/// so only the newest message works.
pub(super) fn issue_statements(
    db: &Database,
    token: &NewToken<'_>,
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    Ok(vec![
        db.prepare(
            "UPDATE one_time_tokens SET used_at = ?3, used_by = 'superseded' \
             WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL",
        )
        .bind(&[
            text(token.user_id),
            text(token.purpose.as_str()),
            integer(token.now),
        ])
        .map_err(map_d1_error)?,
        db.prepare(
            "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, code_hash, email, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&[
            text(token.id),
            text(token.user_id),
            text(token.purpose.as_str()),
            text(token.token_hash),
            text(token.code_hash),
            text(token.email),
            integer(token.now),
            integer(token.expires_at),
        ])
        .map_err(map_d1_error)?,
    ])
}

/// Issue a token on its own.
pub async fn issue(db: &Database, token: &NewToken<'_>) -> Result<(), StoreError> {
    db.batch(issue_statements(db, token)?)
        .await
        .map_err(map_d1_error)?;
    Ok(())
}

const TOKEN_COLUMNS: &str = "id, user_id, email, code_hash, attempts";

/// The live token of a purpose with this link-token digest.
pub async fn find_live_by_hash(
    db: &Database,
    purpose: Purpose,
    token_hash: &str,
    now: i64,
) -> Result<Option<IssuedToken>, StoreError> {
    db.prepare(format!(
        "SELECT {TOKEN_COLUMNS} FROM one_time_tokens \
         WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3"
    ))
    .bind(&[text(token_hash), text(purpose.as_str()), integer(now)])
    .map_err(map_d1_error)?
    .first::<IssuedToken>(None)
    .await
    .map_err(map_d1_error)
}

/// The newest live token of a purpose sent to this address (for code entry).
pub async fn find_live_by_email(
    db: &Database,
    purpose: Purpose,
    email: &str,
    now: i64,
) -> Result<Option<IssuedToken>, StoreError> {
    db.prepare(format!(
        "SELECT {TOKEN_COLUMNS} FROM one_time_tokens \
         WHERE email = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3 \
         ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(&[text(email), text(purpose.as_str()), integer(now)])
    .map_err(map_d1_error)?
    .first::<IssuedToken>(None)
    .await
    .map_err(map_d1_error)
}

/// Count a wrong code; the token is spent once `max_attempts` is reached.
pub async fn record_failed_code(
    db: &Database,
    token_id: &str,
    max_attempts: i64,
    now: i64,
) -> Result<(), StoreError> {
    db.prepare(
        "UPDATE one_time_tokens SET attempts = attempts + 1, \
           used_at = CASE WHEN attempts + 1 >= ?2 THEN ?3 ELSE used_at END, \
           used_by = CASE WHEN attempts + 1 >= ?2 THEN 'too_many_attempts' ELSE used_by END \
         WHERE id = ?1 AND used_at IS NULL",
    )
    .bind(&[text(token_id), integer(max_attempts), integer(now)])
    .map_err(map_d1_error)?
    .run()
    .await
    .map_err(map_d1_error)?;
    Ok(())
}

/// Spend a token and apply its effect; returns the updated account, or `None` when the
/// token was spent by someone else in the meantime. `spend_id` must be fresh and random: the
/// effect statements act only where the token was spent under that id.
pub async fn spend(
    db: &Database,
    token: &IssuedToken,
    effect: TokenEffect<'_>,
    spend_id: &str,
    now: i64,
) -> Result<Option<User>, StoreError> {
    let spent_here = "EXISTS (SELECT 1 FROM one_time_tokens WHERE id = ?1 AND used_by = ?2)";
    let bind = |sql: String, extra: &[JsValue]| {
        let mut params = vec![text(&token.id), text(spend_id)];
        params.extend_from_slice(extra);
        db.prepare(sql).bind(&params).map_err(map_d1_error)
    };
    let mut statements = vec![bind(
        "UPDATE one_time_tokens SET used_at = ?3, used_by = ?2 \
         WHERE id = ?1 AND used_at IS NULL AND expires_at > ?3"
            .into(),
        &[integer(now)],
    )?];
    let user = text(&token.user_id);
    let email = text(&token.email);
    match effect {
        TokenEffect::VerifyEmail => statements.push(bind(
            format!(
                "UPDATE users SET email_verified = 1, updated_at = ?5 \
                 WHERE id = ?3 AND email = ?4 AND {spent_here}"
            ),
            &[user.clone(), email, integer(now)],
        )?),
        TokenEffect::ResetPassword { password_hash } => {
            statements.push(bind(
                format!(
                    "UPDATE users SET password_hash = ?5, tokens_valid_after = ?6, updated_at = ?6, \
                       email_verified = CASE WHEN email = ?4 THEN 1 ELSE email_verified END \
                     WHERE id = ?3 AND {spent_here}"
                ),
                &[user.clone(), email, text(password_hash), integer(now)],
            )?);
            statements.push(bind(
                format!(
                    "UPDATE sessions SET revoked_at = ?4, revoked_reason = 'password_reset' \
                     WHERE user_id = ?3 AND revoked_at IS NULL AND {spent_here}"
                ),
                &[user.clone(), integer(now)],
            )?);
            // Any other outstanding reset token dies with this one.
            statements.push(bind(
                format!(
                    "UPDATE one_time_tokens SET used_at = ?4, used_by = 'superseded' \
                     WHERE user_id = ?3 AND purpose = 'reset_password' AND used_at IS NULL \
                       AND {spent_here}"
                ),
                &[user.clone(), integer(now)],
            )?);
        }
        TokenEffect::ChangeEmail => statements.push(bind(
            format!(
                "UPDATE users SET email = ?4, email_verified = 1, updated_at = ?5 \
                 WHERE id = ?3 AND {spent_here}"
            ),
            &[user.clone(), email, integer(now)],
        )?),
    }
    statements.push(bind(
        format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?3 AND {spent_here}"),
        &[user],
    )?);
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    if results.first().map(changes).unwrap_or(0) == 0 {
        return Ok(None);
    }
    last_user(&results)
}

/// The database work of issuing a token, spent on housekeeping instead, so a request about an
/// unknown account takes as long as one about a known account.
pub async fn equivalent_work(db: &Database, now: i64) -> Result<(), StoreError> {
    let statements = vec![
        db.prepare("DELETE FROM one_time_tokens WHERE expires_at < ?1 AND used_at IS NOT NULL AND rowid IN (SELECT rowid FROM one_time_tokens WHERE expires_at < ?1 LIMIT 10)")
            .bind(&[integer(now - 7 * 86_400)])
            .map_err(map_d1_error)?,
        db.prepare("SELECT COUNT(*) AS n FROM one_time_tokens WHERE expires_at > ?1")
            .bind(&[integer(now)])
            .map_err(map_d1_error)?,
    ];
    db.batch(statements).await.map_err(map_d1_error)?;
    Ok(())
}
