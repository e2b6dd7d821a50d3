//! The storage traits the service layer is written against, one per aggregate. Domain types
//! cross them, never rows, and every failure is a [`StoreError`]. A change that spans
//! several records (a session's revocation and its audit entry) is one call, which an
//! implementation runs atomically.
//!
//! Implementations: [`D1Backend`](super::d1_backend::D1Backend) in the Worker, and an
//! in-memory one for the service layer's native tests. The aggregates still reached through
//! the store's free functions move behind traits of their own the same way.

// The Worker is single-threaded: its futures are not `Send`, and none is asked of them.
#![allow(async_fn_in_trait)]

use crate::domain::access::Role;
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::domain::query::{Page, PrefixRange};
use crate::domain::session::Session;
use crate::domain::user::User;
use crate::store::error::StoreError;

/// Changes to a profile; `None` leaves a field as it is.
pub struct ProfileChange<'a> {
    pub username: Option<&'a str>,
    /// `Some(None)` removes the email.
    pub email: Option<Option<&'a str>>,
    /// Set by an admin; otherwise a changed email becomes unverified.
    pub email_verified: Option<bool>,
}

/// A ban to apply.
pub struct Ban<'a> {
    /// `None`: indefinitely.
    pub until: Option<i64>,
    pub reason: Option<&'a str>,
}

/// Accounts.
pub trait UserStore {
    /// The account with this id, if any.
    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError>;

    /// One page of accounts, newest first, optionally only those whose username or email
    /// falls in `search`; and how many match in all.
    async fn list_users(
        &self,
        search: Option<&PrefixRange>,
        page: Page,
    ) -> Result<(Vec<User>, u64), StoreError>;

    /// Apply a profile change (a changed email is unverified unless the change says
    /// otherwise), with `entry` when given, in one transaction. Returns the account, `None`
    /// if there is none; a taken username or email is [`StoreError::Taken`].
    async fn update_profile(
        &self,
        user_id: &str,
        change: &ProfileChange<'_>,
        now: i64,
        entry: Option<&AuditEntry>,
    ) -> Result<Option<User>, StoreError>;

    /// Delete an account with its roles, sessions and refresh tokens, writing `entry`, in
    /// one transaction. `false` when there was no such account. The last active admin is
    /// refused with [`StoreError::LastAdmin`].
    async fn delete_user(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError>;

    /// Ban an account, end every session and refuse every access token issued before
    /// `now`, writing `entry`, in one transaction. Returns the account as it is now and how
    /// many sessions were live. The last active admin is refused with `LastAdmin`.
    async fn ban_user(
        &self,
        user_id: &str,
        ban: &Ban<'_>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(Option<User>, usize), StoreError>;

    /// Lift a ban; `entry` is written only when there was one. Returns the account.
    async fn unban_user(
        &self,
        user_id: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<User>, StoreError>;
}

/// Roles and who holds them.
pub trait RoleStore {
    /// Every role, by name.
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;

    /// Whether a role of this name exists.
    async fn role_exists(&self, role: &str) -> Result<bool, StoreError>;

    /// Grant a role; `entry` is written only when the account did not hold it yet. Returns
    /// whether it was granted now, and the account as it is now.
    async fn grant_role(
        &self,
        user_id: &str,
        role: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError>;

    /// Take a role; `entry` is written only when it was held. Returns whether it was taken,
    /// and the account as it is now. Taking `admin` from the last active admin is refused
    /// with `LastAdmin`.
    async fn remove_role(
        &self,
        user_id: &str,
        role: &str,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError>;
}

/// Sessions and their refresh tokens.
pub trait SessionStore {
    /// The live sessions of a user, most recently used first.
    async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError>;

    /// Revoke one session of `user_id` if it is live and not revoked yet, writing `entry` in
    /// the same transaction, and only then. Returns whether it was revoked.
    async fn revoke_session(
        &self,
        session_id: &str,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Revoke every session of a user and refuse every access token issued before `now`,
    /// with `entry`, in one transaction. Returns how many sessions were live.
    async fn revoke_all_sessions(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError>;
}

/// The access-token revocation list.
pub trait RevocationStore {
    /// Refuse the token `jti` until it would have expired anyway.
    async fn revoke_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError>;
}

/// The audit log (written inside the changes it records; read here).
pub trait AuditStore {
    /// One page of the entries matching `filter`, newest first, and how many match in all.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError>;
}
