//! The audit log in D1: inserts (alone or inside the batch of the change they record) and
//! the filtered listing. Nothing here updates or deletes an entry; only the scheduled
//! retention prune (`store::maintenance`) removes old ones.

use super::Database;
use super::{integer, map_d1_error, optional_text, text};
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::domain::query::Page;
use crate::store::error::StoreError;
use crate::store::sign_in_method::SignInMethod;
use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

/// When an entry inside a batch is written. Conditions are evaluated in the batch's
/// transaction, so an entry appears exactly when the change it records happens — placed
/// before the change when the change removes what the condition looks for.
pub enum When<'a> {
    Always,
    /// The target account exists.
    TargetExists,
    /// The target account exists and holds no role of this name.
    TargetLacksRole(&'a str),
    /// The target account holds this role. (Whether the last active admin may lose it is
    /// the database's rule: its trigger undoes the whole batch, this entry included.)
    TargetHoldsRole(&'a str),
    /// The target account's ban columns are set.
    TargetBanned,
    /// This session of the target account is not revoked yet.
    SessionUnrevoked(&'a str),
    /// This identity or passkey of the target account may be removed (see
    /// `sign_in_methods::removable`).
    SignInMethodRemovable(SignInMethod, &'a str),
    /// This factor of the target account is still pending (confirmation flips it).
    FactorPending(&'a str),
    /// The target account has a confirmed second factor.
    FactorConfirmed,
    /// The target account has a second factor, pending or confirmed.
    HasFactor,
    /// The target account has an authenticator app (pending or confirmed) or a passkey.
    HasFactorOrPasskey,
    /// This passkey belongs to the target account.
    PasskeyOwned(&'a str),
}

/// SQL: the account named by parameter `user` holds the role named by parameter `role`.
/// Shared with the role removal itself, so the entry and the change agree.
pub(super) fn holds_role(user: &str, role: &str) -> String {
    format!("EXISTS (SELECT 1 FROM user_roles WHERE user_id = {user} AND role = {role})")
}

/// The statement that inserts `entry` under `when`.
pub fn insert_statement(
    db: &Database,
    entry: &AuditEntry,
    when: When<'_>,
) -> Result<D1PreparedStatement, StoreError> {
    let (condition, extra): (String, Vec<&str>) = match when {
        When::Always => ("1".into(), vec![]),
        When::TargetExists => ("EXISTS (SELECT 1 FROM users WHERE id = ?4)".into(), vec![]),
        When::TargetLacksRole(role) => (
            "EXISTS (SELECT 1 FROM users WHERE id = ?4) AND NOT EXISTS \
               (SELECT 1 FROM user_roles WHERE user_id = ?4 AND role = ?9)"
                .into(),
            vec![role],
        ),
        When::TargetHoldsRole(role) => (holds_role("?4", "?9"), vec![role]),
        When::TargetBanned => (
            "EXISTS (SELECT 1 FROM users WHERE id = ?4 AND banned_at IS NOT NULL)".into(),
            vec![],
        ),
        When::SessionUnrevoked(session_id) => (
            "EXISTS (SELECT 1 FROM sessions WHERE id = ?9 AND user_id = ?4 \
               AND revoked_at IS NULL)"
                .into(),
            vec![session_id],
        ),
        When::FactorPending(factor_id) => (super::factors::pending("?9", "?4"), vec![factor_id]),
        When::FactorConfirmed => (super::factors::confirmed("?4"), vec![]),
        When::HasFactor => (
            "EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = ?4)".into(),
            vec![],
        ),
        When::HasFactorOrPasskey => (
            "(EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = ?4) \
              OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?4))"
                .into(),
            vec![],
        ),
        When::SignInMethodRemovable(method, id) => (
            super::sign_in_methods::removable(method, "?9", "?4", "?10"),
            vec![id, crate::domain::password::NO_PASSWORD],
        ),
        When::PasskeyOwned(passkey_id) => (
            "EXISTS (SELECT 1 FROM passkeys WHERE id = ?9 AND user_id = ?4)".into(),
            vec![passkey_id],
        ),
    };
    let details = serde_json::to_string(&entry.details)
        .map_err(|error| StoreError::unavailable("Database", error))?;
    let mut params: Vec<JsValue> = vec![
        integer(entry.occurred_at),
        text(entry.action.as_str()),
        optional_text(entry.actor_id.as_deref()),
        optional_text(entry.target_id.as_deref()),
        optional_text(entry.origin.request_id.as_deref()),
        optional_text(entry.origin.ip.as_deref()),
        optional_text(entry.origin.colo.as_deref()),
        text(&details),
    ];
    params.extend(extra.into_iter().map(text));
    db.prepare(format!(
        "INSERT INTO audit_log (occurred_at, action, actor_id, target_id, request_id, ip, \
           colo, details) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE {condition}"
    ))
    .bind(&params)
    .map_err(map_d1_error)
}

/// Record an entry on its own (for events that change nothing else, like a failed login).
pub async fn record(db: &Database, entry: &AuditEntry) -> Result<(), StoreError> {
    insert_statement(db, entry, When::Always)?
        .run()
        .await
        .map_err(map_d1_error)?;
    Ok(())
}

/// An entry as D1 returns it; it becomes an [`AuditRecord`] before it leaves the store.
#[derive(Debug, Clone, Deserialize)]
struct AuditRow {
    pub id: i64,
    pub occurred_at: i64,
    pub action: String,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub colo: Option<String>,
    pub details: String,
}

impl From<AuditRow> for AuditRecord {
    fn from(row: AuditRow) -> Self {
        // The stored details are a JSON object; an empty one if a row somehow holds else.
        let details = serde_json::from_str(&row.details)
            .unwrap_or_else(|_| Value::Object(Default::default()));
        AuditRecord {
            id: row.id,
            occurred_at: row.occurred_at,
            action: row.action,
            actor_id: row.actor_id,
            target_id: row.target_id,
            request_id: row.request_id,
            ip: row.ip,
            colo: row.colo,
            details,
        }
    }
}

/// One page of the entries matching `filter`, newest first, and how many match in all.
pub async fn list(
    db: &Database,
    filter: &AuditFilter,
    page: Page,
) -> Result<(Vec<AuditRecord>, u64), StoreError> {
    // Only fixed fragments enter the SQL; every value is bound.
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<JsValue> = Vec::new();
    if let Some(user_id) = &filter.user_id {
        params.push(text(user_id));
        let n = params.len();
        clauses.push(format!("(actor_id = ?{n} OR target_id = ?{n})"));
    }
    if let Some(action) = filter.action {
        params.push(text(action.as_str()));
        clauses.push(format!("action = ?{}", params.len()));
    }
    if let Some(since) = filter.since {
        params.push(integer(since));
        clauses.push(format!("occurred_at >= ?{}", params.len()));
    }
    if let Some(until) = filter.until {
        params.push(integer(until));
        clauses.push(format!("occurred_at < ?{}", params.len()));
    }
    let condition = if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    };
    let count = db
        .prepare(format!(
            "SELECT COUNT(*) AS total FROM audit_log WHERE {condition}"
        ))
        .bind(&params)
        .map_err(map_d1_error)?;
    let limit = params.len() + 1;
    let mut page_params = params.clone();
    page_params.push(integer(i64::from(page.per_page)));
    page_params.push(integer(i64::try_from(page.offset()).unwrap_or(i64::MAX)));
    let rows = db
        .prepare(format!(
            "SELECT id, occurred_at, action, actor_id, target_id, request_id, ip, colo, \
               details \
             FROM audit_log WHERE {condition} ORDER BY id DESC LIMIT ?{limit} OFFSET ?{}",
            limit + 1
        ))
        .bind(&page_params)
        .map_err(map_d1_error)?;
    let (rows, total) = super::count_and_page::<AuditRow>(db, count, rows).await?;
    Ok((rows.into_iter().map(AuditRecord::from).collect(), total))
}
