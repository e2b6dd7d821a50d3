//! Roles, their permissions, and who holds them.

use super::audit::{self, holds_role, When};
use super::users::{last_user, select_statement};
use super::Database;
use super::{changes, integer, map_d1_error, text};
use crate::domain::access::Role;
use crate::domain::audit::AuditEntry;
use crate::domain::user::User;
use crate::store::error::StoreError;
use serde::Deserialize;

#[derive(Deserialize)]
struct RoleName {
    role: String,
}

/// The roles that grant a permission (from `role_permissions`).
pub async fn granting(db: &Database, permission: &str) -> Result<Vec<String>, StoreError> {
    Ok(db
        .prepare("SELECT role FROM role_permissions WHERE permission = ?1")
        .bind(&[text(permission)])
        .map_err(map_d1_error)?
        .all()
        .await
        .map_err(map_d1_error)?
        .results::<RoleName>()
        .map_err(map_d1_error)?
        .into_iter()
        .map(|row| row.role)
        .collect())
}

/// A role as D1 returns it; it becomes a [`Role`] before it leaves the store.
#[derive(Debug, Clone, Deserialize)]
struct RoleRow {
    name: String,
    description: String,
    /// Comma-separated permission names, `None` when the role has none.
    permissions: Option<String>,
}

impl From<RoleRow> for Role {
    fn from(row: RoleRow) -> Self {
        let mut permissions: Vec<String> = row
            .permissions
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        permissions.sort_unstable();
        Role {
            name: row.name,
            description: row.description,
            permissions,
        }
    }
}

/// Every role, by name.
pub async fn list(db: &Database) -> Result<Vec<Role>, StoreError> {
    db.prepare(
        "SELECT r.name, r.description, \
           (SELECT group_concat(permission, ',') FROM role_permissions \
             WHERE role = r.name) AS permissions \
         FROM roles r ORDER BY r.name",
    )
    .all()
    .await
    .map_err(map_d1_error)?
    .results::<RoleRow>()
    .map_err(map_d1_error)
    .map(|rows| rows.into_iter().map(Role::from).collect())
}

/// Whether a role of this name exists.
pub async fn exists(db: &Database, role: &str) -> Result<bool, StoreError> {
    Ok(db
        .prepare("SELECT name AS role FROM roles WHERE name = ?1")
        .bind(&[text(role)])
        .map_err(map_d1_error)?
        .first::<RoleName>(None)
        .await
        .map_err(map_d1_error)?
        .is_some())
}

/// Grant a role (which must exist) to an account. Returns whether the account did not hold
/// it yet (the audit entry is written only then, in the same transaction) and the account
/// as it is now.
pub async fn grant(
    db: &Database,
    user_id: &str,
    role: &str,
    now: i64,
    entry: &AuditEntry,
) -> Result<(bool, Option<User>), StoreError> {
    let statements = vec![
        audit::insert_statement(db, entry, When::TargetLacksRole(role))?,
        db.prepare(
            "INSERT OR IGNORE INTO user_roles (user_id, role, granted_at) \
             SELECT id, ?2, ?3 FROM users WHERE id = ?1",
        )
        .bind(&[text(user_id), text(role), integer(now)])
        .map_err(map_d1_error)?,
        select_statement(db, user_id)?,
    ];
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    let granted = results.get(1).map(changes).unwrap_or(0) > 0;
    Ok((granted, last_user(&results)?))
}

/// Take a role from an account. Returns whether the role was taken (the audit entry is
/// written only then, in the same transaction) and the account as it is now. Taking `admin`
/// from the last active admin fails with [`StoreError::LastAdmin`] and changes nothing.
pub async fn remove(
    db: &Database,
    user_id: &str,
    role: &str,
    entry: &AuditEntry,
) -> Result<(bool, Option<User>), StoreError> {
    let statements = vec![
        audit::insert_statement(db, entry, When::TargetHoldsRole(role))?,
        db.prepare(format!(
            "DELETE FROM user_roles WHERE user_id = ?1 AND role = ?2 AND {}",
            holds_role("?1", "?2")
        ))
        .bind(&[text(user_id), text(role)])
        .map_err(map_d1_error)?,
        select_statement(db, user_id)?,
    ];
    let results = db.batch(statements).await.map_err(map_d1_error)?;
    let removed = results.get(1).map(changes).unwrap_or(0) > 0;
    Ok((removed, last_user(&results)?))
}
