//! Provider identities and the redirect flow's one-time values in D1
//! (migrations/0005_identities.sql). Each change writes its audit entry in the same batch.

use super::audit::{self, When};
use super::sign_in_methods;
use super::users::insert_statements;
use super::Database;
use super::{integer, map_d1_error, optional_text, text};
use crate::domain::audit::AuditEntry;
use crate::domain::identity::{GrantKind, Identity, Unlink};
use crate::store::error::StoreError;
use crate::store::sign_in_method::SignInMethod;
use crate::store::traits::{NewIdentity, NewUser};
use serde::Deserialize;

/// An identity row as D1 returns it.
#[derive(Debug, Deserialize)]
struct IdentityRow {
    id: String,
    user_id: String,
    provider: String,
    subject: String,
    email: Option<String>,
    created_at: i64,
    last_used_at: i64,
}

impl From<IdentityRow> for Identity {
    fn from(row: IdentityRow) -> Self {
        Identity {
            id: row.id,
            user_id: row.user_id,
            provider: row.provider,
            subject: row.subject,
            email: row.email,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

const COLUMNS: &str = "id, user_id, provider, subject, email, created_at, last_used_at";

/// The identity of a provider's subject.
pub async fn find(
    db: &Database,
    provider: &str,
    subject: &str,
) -> Result<Option<Identity>, StoreError> {
    Ok(db
        .prepare(format!(
            "SELECT {COLUMNS} FROM identities WHERE provider = ?1 AND subject = ?2"
        ))
        .bind(&[text(provider), text(subject)])
        .map_err(map_d1_error)?
        .first::<IdentityRow>(None)
        .await
        .map_err(map_d1_error)?
        .map(Identity::from))
}

/// An account's identities, oldest first.
pub async fn of_user(db: &Database, user_id: &str) -> Result<Vec<Identity>, StoreError> {
    Ok(db
        .prepare(format!(
            "SELECT {COLUMNS} FROM identities WHERE user_id = ?1 ORDER BY created_at, id"
        ))
        .bind(&[text(user_id)])
        .map_err(map_d1_error)?
        .all()
        .await
        .map_err(map_d1_error)?
        .results::<IdentityRow>()
        .map_err(map_d1_error)?
        .into_iter()
        .map(Identity::from)
        .collect())
}

fn insert_statement(
    db: &Database,
    identity: &NewIdentity<'_>,
) -> Result<worker::D1PreparedStatement, StoreError> {
    db.prepare(
        "INSERT INTO identities (id, user_id, provider, subject, email, created_at, last_used_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )
    .bind(&[
        text(identity.id),
        text(identity.user_id),
        text(identity.provider),
        text(identity.subject),
        optional_text(identity.email),
        integer(identity.now),
    ])
    .map_err(map_d1_error)
}

/// A new account with its first identity, in one batch.
pub async fn create_user(
    db: &Database,
    user: &NewUser<'_>,
    identity: &NewIdentity<'_>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let mut statements = insert_statements(db, user)?;
    statements.push(insert_statement(db, identity)?);
    statements.push(audit::insert_statement(db, entry, When::Always)?);
    db.batch(statements).await.map_err(map_d1_error)?;
    Ok(())
}

/// Link an identity to an existing account (the foreign key refuses a missing one).
pub async fn link(
    db: &Database,
    identity: &NewIdentity<'_>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    db.batch(vec![
        insert_statement(db, identity)?,
        audit::insert_statement(db, entry, When::Always)?,
    ])
    .await
    .map_err(map_d1_error)?;
    Ok(())
}

/// A sign-in through an identity.
pub async fn touch(
    db: &Database,
    identity_id: &str,
    email: Option<&str>,
    now: i64,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    db.batch(vec![
        db.prepare("UPDATE identities SET last_used_at = ?2, email = ?3 WHERE id = ?1")
            .bind(&[text(identity_id), integer(now), optional_text(email)])
            .map_err(map_d1_error)?,
        audit::insert_statement(db, entry, When::Always)?,
    ])
    .await
    .map_err(map_d1_error)?;
    Ok(())
}

/// Remove an identity unless it is the account's last way to sign in
/// (`sign_in_methods::remove`).
pub async fn unlink(
    db: &Database,
    user_id: &str,
    identity_id: &str,
    entry: &AuditEntry,
) -> Result<Unlink, StoreError> {
    sign_in_methods::remove(db, SignInMethod::Identity, user_id, identity_id, entry).await
}

/// Store a one-time value's digest, sweeping expired ones in the same batch.
pub async fn put_grant(
    db: &Database,
    kind: GrantKind,
    digest: &str,
    payload: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    db.batch(vec![
        db.prepare("DELETE FROM oauth_grants WHERE expires_at <= ?1")
            .bind(&[integer(now)])
            .map_err(map_d1_error)?,
        db.prepare(
            "INSERT INTO oauth_grants (digest, kind, payload, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&[
            text(digest),
            text(kind.as_str()),
            text(payload),
            integer(now),
            integer(expires_at),
        ])
        .map_err(map_d1_error)?,
    ])
    .await
    .map_err(map_d1_error)?;
    Ok(())
}

#[derive(Deserialize)]
struct GrantRow {
    payload: String,
    expires_at: i64,
}

/// Spend a one-time value: one `DELETE ... RETURNING`, so only one spender gets the row.
pub async fn take_grant(
    db: &Database,
    kind: GrantKind,
    digest: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row = db
        .prepare(
            "DELETE FROM oauth_grants WHERE digest = ?1 AND kind = ?2 \
             RETURNING payload, expires_at",
        )
        .bind(&[text(digest), text(kind.as_str())])
        .map_err(map_d1_error)?
        .first::<GrantRow>(None)
        .await
        .map_err(map_d1_error)?;
    Ok(row
        .filter(|row| row.expires_at > now)
        .map(|row| row.payload))
}
