//! Passkeys and their ceremonies' challenges in D1 (migrations/0007_passkeys.sql). Each
//! change writes its audit entry in the same batch; a challenge is spent by one
//! `DELETE ... RETURNING`.

use super::audit::{self, When};
use super::sign_in_methods;
use super::Database;
use super::{changes, integer, map_d1_error, optional_text, text};
use crate::domain::audit::AuditEntry;
use crate::domain::identity::Unlink;
use crate::domain::passkey::{split_transports, ChallengePurpose, Passkey, SpentChallenge};
use crate::store::error::StoreError;
use crate::store::sign_in_method::SignInMethod;
use crate::store::traits::{NewPasskey, PasskeyUse};
use serde::Deserialize;

/// A passkey row as D1 returns it (flags are 0/1).
#[derive(Debug, Deserialize)]
struct PasskeyRow {
    id: String,
    user_id: String,
    credential_id: String,
    public_key: String,
    algorithm: i64,
    sign_count: i64,
    name: String,
    aaguid: String,
    backup_eligible: i64,
    backed_up: i64,
    transports: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<PasskeyRow> for Passkey {
    fn from(row: PasskeyRow) -> Self {
        Passkey {
            id: row.id,
            user_id: row.user_id,
            credential_id: row.credential_id,
            public_key: row.public_key,
            algorithm: row.algorithm,
            sign_count: row.sign_count,
            name: row.name,
            aaguid: row.aaguid,
            backup_eligible: row.backup_eligible != 0,
            backed_up: row.backed_up != 0,
            transports: split_transports(&row.transports),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

const COLUMNS: &str = "id, user_id, credential_id, public_key, algorithm, sign_count, name, \
                       aaguid, backup_eligible, backed_up, transports, created_at, last_used_at";

fn flag(value: bool) -> wasm_bindgen::JsValue {
    integer(i64::from(value))
}

/// Store a passkey with its audit entry, in one batch.
pub async fn add(
    db: &Database,
    passkey: &NewPasskey<'_>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    db.batch(vec![
        db.prepare(
            "INSERT INTO passkeys (id, user_id, credential_id, public_key, algorithm, \
               sign_count, name, aaguid, backup_eligible, backed_up, transports, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(&[
            text(passkey.id),
            text(passkey.user_id),
            text(passkey.credential_id),
            text(passkey.public_key),
            integer(passkey.algorithm),
            integer(passkey.sign_count),
            text(passkey.name),
            text(passkey.aaguid),
            flag(passkey.backup_eligible),
            flag(passkey.backed_up),
            text(passkey.transports),
            integer(passkey.now),
        ])
        .map_err(map_d1_error)?,
        audit::insert_statement(db, entry, When::Always)?,
    ])
    .await
    .map_err(map_d1_error)?;
    Ok(())
}

/// An account's passkeys, oldest first.
pub async fn of_user(db: &Database, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
    Ok(db
        .prepare(format!(
            "SELECT {COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id"
        ))
        .bind(&[text(user_id)])
        .map_err(map_d1_error)?
        .all()
        .await
        .map_err(map_d1_error)?
        .results::<PasskeyRow>()
        .map_err(map_d1_error)?
        .into_iter()
        .map(Passkey::from)
        .collect())
}

async fn one(
    db: &Database,
    condition: &str,
    values: &[&str],
) -> Result<Option<Passkey>, StoreError> {
    let params: Vec<_> = values.iter().map(|value| text(value)).collect();
    Ok(db
        .prepare(format!("SELECT {COLUMNS} FROM passkeys WHERE {condition}"))
        .bind(&params)
        .map_err(map_d1_error)?
        .first::<PasskeyRow>(None)
        .await
        .map_err(map_d1_error)?
        .map(Passkey::from))
}

/// The passkey with this credential id.
pub async fn find(db: &Database, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
    one(db, "credential_id = ?1", &[credential_id]).await
}

/// Record a use; the counter only moves forward, decided by the update itself.
pub async fn record_use(db: &Database, used: &PasskeyUse<'_>) -> Result<(), StoreError> {
    db.prepare(
        "UPDATE passkeys SET last_used_at = ?2, backed_up = ?3, \
           sign_count = CASE WHEN ?4 > sign_count THEN ?4 ELSE sign_count END \
         WHERE id = ?1",
    )
    .bind(&[
        text(used.passkey_id),
        integer(used.now),
        flag(used.backed_up),
        integer(used.sign_count),
    ])
    .map_err(map_d1_error)?
    .run()
    .await
    .map_err(map_d1_error)?;
    Ok(())
}

/// Rename one of an account's passkeys; the entry is written only when it exists.
pub async fn rename(
    db: &Database,
    user_id: &str,
    passkey_id: &str,
    name: &str,
    entry: &AuditEntry,
) -> Result<Option<Passkey>, StoreError> {
    let results = db
        .batch(vec![
            db.prepare("UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2")
                .bind(&[text(passkey_id), text(user_id), text(name)])
                .map_err(map_d1_error)?,
            audit::insert_statement(db, entry, When::PasskeyOwned(passkey_id))?,
        ])
        .await
        .map_err(map_d1_error)?;
    if results.first().map(changes).unwrap_or(0) == 0 {
        return Ok(None);
    }
    one(db, "id = ?1 AND user_id = ?2", &[passkey_id, user_id]).await
}

/// Remove a passkey unless it is the account's last way to sign in
/// (`sign_in_methods::remove`).
pub async fn delete(
    db: &Database,
    user_id: &str,
    passkey_id: &str,
    entry: &AuditEntry,
) -> Result<Unlink, StoreError> {
    sign_in_methods::remove(db, SignInMethod::Passkey, user_id, passkey_id, entry).await
}

/// Store a challenge's digest, sweeping expired ones in the same batch.
pub async fn put_challenge(
    db: &Database,
    digest: &str,
    purpose: ChallengePurpose,
    user_id: Option<&str>,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    db.batch(vec![
        db.prepare("DELETE FROM webauthn_challenges WHERE expires_at <= ?1")
            .bind(&[integer(now)])
            .map_err(map_d1_error)?,
        db.prepare(
            "INSERT INTO webauthn_challenges (digest, purpose, user_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&[
            text(digest),
            text(purpose.as_str()),
            optional_text(user_id),
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
struct ChallengeRow {
    user_id: Option<String>,
    expires_at: i64,
}

/// Spend a challenge: one `DELETE ... RETURNING`, so only one spender gets the row.
pub async fn take_challenge(
    db: &Database,
    digest: &str,
    purpose: ChallengePurpose,
    now: i64,
) -> Result<Option<SpentChallenge>, StoreError> {
    let row = db
        .prepare(
            "DELETE FROM webauthn_challenges WHERE digest = ?1 AND purpose = ?2 \
             RETURNING user_id, expires_at",
        )
        .bind(&[text(digest), text(purpose.as_str())])
        .map_err(map_d1_error)?
        .first::<ChallengeRow>(None)
        .await
        .map_err(map_d1_error)?;
    Ok(row
        .filter(|row| row.expires_at > now)
        .map(|row| SpentChallenge {
            user_id: row.user_id,
        }))
}
