//! Second factors in D1 (migrations/0006_mfa.sql): TOTP factors, recovery codes and the
//! level a session reached. Every check that decides a sign-in is one compare-and-set
//! statement, and every change the audit log records writes its entry in the same batch,
//! under the same condition as the change.

use super::audit::{self, When};
use super::Database;
use super::{changes, integer, map_d1_error, optional_integer, text};
use crate::domain::audit::AuditEntry;
use crate::domain::mfa::{Factor, SessionLevel};
use crate::store::error::StoreError;
use crate::store::traits::{Confirmation, NewFactor};
use serde::Deserialize;
use worker::D1PreparedStatement;

/// SQL: factor `factor` of account `user` is still pending.
pub(super) fn pending(factor: &str, user: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM mfa_factors WHERE id = {factor} AND user_id = {user} \
           AND confirmed_at IS NULL)"
    )
}

/// SQL: account `user` has a confirmed factor.
pub(super) fn confirmed(user: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = {user} AND confirmed_at IS NOT NULL)"
    )
}

#[derive(Deserialize)]
struct FactorRow {
    id: String,
    user_id: String,
    kind: String,
    secret: String,
    confirmed_at: Option<i64>,
    last_used_step: Option<i64>,
    created_at: i64,
}

impl From<FactorRow> for Factor {
    fn from(row: FactorRow) -> Self {
        Factor {
            id: row.id,
            user_id: row.user_id,
            kind: row.kind,
            sealed_secret: row.secret,
            confirmed_at: row.confirmed_at,
            last_used_step: row.last_used_step,
            created_at: row.created_at,
        }
    }
}

/// An account's factors, oldest first.
pub async fn factors_of(db: &Database, user_id: &str) -> Result<Vec<Factor>, StoreError> {
    let rows = db
        .prepare(
            "SELECT id, user_id, kind, secret, confirmed_at, last_used_step, created_at \
             FROM mfa_factors WHERE user_id = ?1 ORDER BY created_at, id",
        )
        .bind(&[text(user_id)])
        .map_err(map_d1_error)?
        .all()
        .await
        .map_err(map_d1_error)?
        .results::<FactorRow>()
        .map_err(map_d1_error)?;
    Ok(rows.into_iter().map(Factor::from).collect())
}

/// A pending factor replaces a pending one, never a confirmed one: the insert's condition
/// and the unique (user_id, kind) pair both refuse it then.
pub async fn put_pending_totp(db: &Database, factor: &NewFactor<'_>) -> Result<bool, StoreError> {
    let results = db
        .batch(vec![
            db.prepare("DELETE FROM mfa_factors WHERE user_id = ?1 AND confirmed_at IS NULL")
                .bind(&[text(factor.user_id)])
                .map_err(map_d1_error)?,
            db.prepare(format!(
                "INSERT INTO mfa_factors (id, user_id, kind, secret, created_at) \
                 SELECT ?1, ?2, 'totp', ?3, ?4 WHERE NOT {}",
                confirmed("?2")
            ))
            .bind(&[
                text(factor.id),
                text(factor.user_id),
                text(factor.sealed_secret),
                integer(factor.now),
            ])
            .map_err(map_d1_error)?,
        ])
        .await
        .map_err(map_d1_error)?;
    Ok(results.get(1).map(changes).unwrap_or(0) > 0)
}

/// When new recovery codes are written.
enum CodesWhen<'a> {
    /// This factor of the account is still pending (a confirmation).
    Pending(&'a str),
    /// The account has a confirmed factor (a regeneration).
    Confirmed,
}

/// The statements that replace an account's recovery codes, each under `when`.
fn code_statements(
    db: &Database,
    user_id: &str,
    digests: &[String],
    when: &CodesWhen<'_>,
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    // `?1` is the account; the factor, when named, is the statement's last parameter.
    let condition = |last: &str| match when {
        CodesWhen::Pending(_) => pending(last, "?1"),
        CodesWhen::Confirmed => confirmed("?1"),
    };
    let factor_id = match when {
        CodesWhen::Pending(factor_id) => Some(*factor_id),
        CodesWhen::Confirmed => None,
    };
    let mut statements = Vec::with_capacity(digests.len() + 1);
    let mut params = vec![text(user_id)];
    params.extend(factor_id.map(text));
    statements.push(
        db.prepare(format!(
            "DELETE FROM recovery_codes WHERE user_id = ?1 AND {}",
            condition("?2")
        ))
        .bind(&params)
        .map_err(map_d1_error)?,
    );
    for digest in digests {
        let mut params = vec![text(user_id), text(digest)];
        params.extend(factor_id.map(text));
        statements.push(
            db.prepare(format!(
                "INSERT INTO recovery_codes (user_id, digest) SELECT ?1, ?2 WHERE {}",
                condition("?3")
            ))
            .bind(&params)
            .map_err(map_d1_error)?,
        );
    }
    Ok(statements)
}

/// The statement that records a session's level; with `pending`, only while that factor
/// of the account is still pending.
fn raise_statement(
    db: &Database,
    session_id: &str,
    user_id: &str,
    level: &SessionLevel,
    pending_factor: Option<&str>,
) -> Result<D1PreparedStatement, StoreError> {
    let condition = match pending_factor {
        Some(_) => pending("?6", "?2"),
        None => "1".into(),
    };
    let mut params = vec![
        text(session_id),
        text(user_id),
        text(level.aal.as_str()),
        text(&level.amr_json()),
        optional_integer(level.aal2_at),
    ];
    params.extend(pending_factor.map(text));
    db.prepare(format!(
        "UPDATE sessions SET aal = ?3, amr = ?4, aal2_at = ?5 \
         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND {condition}"
    ))
    .bind(&params)
    .map_err(map_d1_error)
}

/// Confirm a pending factor. Every statement is conditioned on the factor still being
/// pending; the last one flips it, so the batch (one transaction) happens whole or not at
/// all, and of two concurrent confirmations only one does.
pub async fn confirm_totp(db: &Database, c: &Confirmation<'_>) -> Result<bool, StoreError> {
    let mut statements = vec![audit::insert_statement(
        db,
        c.entry,
        When::FactorPending(c.factor_id),
    )?];
    statements.extend(code_statements(
        db,
        c.user_id,
        c.recovery_digests,
        &CodesWhen::Pending(c.factor_id),
    )?);
    statements.push(raise_statement(
        db,
        c.session_id,
        c.user_id,
        c.level,
        Some(c.factor_id),
    )?);
    statements.push(
        db.prepare(
            "UPDATE mfa_factors SET confirmed_at = ?3, last_used_step = ?4 \
             WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NULL",
        )
        .bind(&[
            text(c.factor_id),
            text(c.user_id),
            integer(c.now),
            integer(c.step),
        ])
        .map_err(map_d1_error)?,
    );
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    Ok(results.last().map(changes).unwrap_or(0) > 0)
}

/// Accept a code's time step: the compare-and-set that makes a code single use.
pub async fn use_totp_step(db: &Database, factor_id: &str, step: i64) -> Result<bool, StoreError> {
    let result = db
        .prepare(
            "UPDATE mfa_factors SET last_used_step = ?2 \
             WHERE id = ?1 AND confirmed_at IS NOT NULL \
               AND (last_used_step IS NULL OR last_used_step < ?2)",
        )
        .bind(&[text(factor_id), integer(step)])
        .map_err(map_d1_error)?
        .run()
        .await
        .map_err(map_d1_error)?;
    Ok(changes(&result) > 0)
}

/// Spend a recovery code: the compare-and-set on `used_at`.
pub async fn use_recovery_code(
    db: &Database,
    user_id: &str,
    digest: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let result = db
        .prepare(
            "UPDATE recovery_codes SET used_at = ?3 \
             WHERE user_id = ?1 AND digest = ?2 AND used_at IS NULL",
        )
        .bind(&[text(user_id), text(digest), integer(now)])
        .map_err(map_d1_error)?
        .run()
        .await
        .map_err(map_d1_error)?;
    Ok(changes(&result) > 0)
}

#[derive(Deserialize)]
struct CountRow {
    total: i64,
}

/// Unused recovery codes of an account.
pub async fn recovery_codes_remaining(db: &Database, user_id: &str) -> Result<u64, StoreError> {
    let row = db
        .prepare(
            "SELECT COUNT(*) AS total FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
        )
        .bind(&[text(user_id)])
        .map_err(map_d1_error)?
        .first::<CountRow>(None)
        .await
        .map_err(map_d1_error)?;
    Ok(row.map_or(0, |row| u64::try_from(row.total).unwrap_or(0)))
}

/// New recovery codes, only while the account has a confirmed factor.
pub async fn replace_recovery_codes(
    db: &Database,
    user_id: &str,
    digests: &[String],
    entry: &AuditEntry,
) -> Result<bool, StoreError> {
    let mut statements = vec![audit::insert_statement(db, entry, When::FactorConfirmed)?];
    statements.extend(code_statements(
        db,
        user_id,
        digests,
        &CodesWhen::Confirmed,
    )?);
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    Ok(results.first().map(changes).unwrap_or(0) > 0)
}

/// Remove every factor and code of an account, its entry first (while the condition still
/// sees the factors).
pub async fn remove_factors(
    db: &Database,
    user_id: &str,
    entry: &AuditEntry,
) -> Result<bool, StoreError> {
    let results = db
        .batch(vec![
            audit::insert_statement(db, entry, When::HasFactor)?,
            db.prepare("DELETE FROM recovery_codes WHERE user_id = ?1")
                .bind(&[text(user_id)])
                .map_err(map_d1_error)?,
            db.prepare("DELETE FROM mfa_factors WHERE user_id = ?1")
                .bind(&[text(user_id)])
                .map_err(map_d1_error)?,
        ])
        .await
        .map_err(map_d1_error)?;
    Ok(results.get(2).map(changes).unwrap_or(0) > 0)
}

/// Remove every factor, code and passkey of an account, its entry first (while the
/// condition still sees them).
pub async fn reset_factors(
    db: &Database,
    user_id: &str,
    entry: &AuditEntry,
) -> Result<bool, StoreError> {
    let delete = |table: &str| {
        db.prepare(format!("DELETE FROM {table} WHERE user_id = ?1"))
            .bind(&[text(user_id)])
            .map_err(map_d1_error)
    };
    let results = db
        .batch(vec![
            audit::insert_statement(db, entry, When::HasFactorOrPasskey)?,
            delete("recovery_codes")?,
            delete("mfa_factors")?,
            delete("passkeys")?,
        ])
        .await
        .map_err(map_d1_error)?;
    Ok(results.first().map(changes).unwrap_or(0) > 0)
}

/// Record a live session's new level.
pub async fn raise_session(
    db: &Database,
    session_id: &str,
    user_id: &str,
    level: &SessionLevel,
) -> Result<bool, StoreError> {
    let result = raise_statement(db, session_id, user_id, level, None)?
        .run()
        .await
        .map_err(map_d1_error)?;
    Ok(changes(&result) > 0)
}
