//! Removing an identity or a passkey on D1, unless it is the account's last way to sign in
//! (`store::sign_in_method`). The condition and the delete are one statement, and the audit
//! entry is written on the same condition before the delete removes what it reads; the
//! batch is one transaction, so two concurrent removals cannot each count the other.

use super::audit::{self, When};
use super::Database;
use super::{changes, map_d1_error, text};
use crate::domain::audit::AuditEntry;
use crate::domain::identity::Unlink;
use crate::domain::password::NO_PASSWORD;
use crate::store::error::StoreError;
use crate::store::sign_in_method::SignInMethod;

/// SQL: the row `id` of `method`'s table belongs to account `user` and is not its last way
/// to sign in: the account has a password (its hash is not the marker named by `marker`),
/// or another identity, or another passkey. Shared by the delete and its audit entry.
pub(super) fn removable(method: SignInMethod, id: &str, user: &str, marker: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM {table} WHERE id = {id} AND user_id = {user}) \
          AND (EXISTS (SELECT 1 FROM users WHERE id = {user} AND password_hash <> {marker}) \
               OR EXISTS (SELECT 1 FROM identities WHERE user_id = {user}{other_identity}) \
               OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = {user}{other_passkey})))",
        table = method.table(),
        other_identity = method.other_than("identities", id),
        other_passkey = method.other_than("passkeys", id),
    )
}

/// Remove row `id` of `method`'s table from account `user_id`, with `entry`, unless it is
/// the account's last way to sign in.
pub async fn remove(
    db: &Database,
    method: SignInMethod,
    user_id: &str,
    id: &str,
    entry: &AuditEntry,
) -> Result<Unlink, StoreError> {
    let table = method.table();
    let results = db
        .batch(vec![
            audit::insert_statement(db, entry, When::SignInMethodRemovable(method, id))?,
            db.prepare(format!(
                "DELETE FROM {table} WHERE id = ?1 AND user_id = ?2 AND {}",
                removable(method, "?1", "?2", "?3")
            ))
            .bind(&[text(id), text(user_id), text(NO_PASSWORD)])
            .map_err(map_d1_error)?,
        ])
        .await
        .map_err(map_d1_error)?;
    if results.get(1).map(changes).unwrap_or(0) > 0 {
        return Ok(Unlink::Unlinked);
    }
    let exists = db
        .prepare(format!(
            "SELECT 1 AS found FROM {table} WHERE id = ?1 AND user_id = ?2"
        ))
        .bind(&[text(id), text(user_id)])
        .map_err(map_d1_error)?
        .first::<serde_json::Value>(None)
        .await
        .map_err(map_d1_error)?;
    Ok(if exists.is_some() {
        Unlink::LastSignInMethod
    } else {
        Unlink::NotFound
    })
}
