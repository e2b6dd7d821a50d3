//! The storage traits on Cloudflare's bindings: D1 for the tables, KV for the revocation
//! list. The only implementation the Worker runs today; the queries themselves stay in the
//! store's modules (`sessions`, `revocation`, ...).

use crate::domain::access::Role;
use crate::domain::audit::AuditEntry;
use crate::domain::audit::{AuditFilter, AuditRecord};
use crate::domain::query::{Page, PrefixRange};
use crate::domain::session::Session;
use crate::domain::user::User;
use crate::store::error::StoreError;
use crate::store::traits::{
    AuditStore, Ban, ProfileChange, RevocationStore, RoleStore, SessionStore, UserStore,
};
use crate::store::{audit, database, revocation, roles, sessions, users};
use worker::Env;

/// The bindings of one request.
pub struct D1Backend<'a> {
    env: &'a Env,
}

impl<'a> D1Backend<'a> {
    pub fn new(env: &'a Env) -> Self {
        Self { env }
    }
}

impl UserStore for D1Backend<'_> {
    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        users::find_by_id(&database(self.env)?, user_id).await
    }

    async fn list_users(
        &self,
        search: Option<&PrefixRange>,
        page: Page,
    ) -> Result<(Vec<User>, u64), StoreError> {
        users::list(&database(self.env)?, search, page).await
    }

    async fn update_profile(
        &self,
        user_id: &str,
        change: &ProfileChange<'_>,
        now: i64,
        entry: Option<&AuditEntry>,
    ) -> Result<Option<User>, StoreError> {
        users::update_profile(&database(self.env)?, user_id, change, now, entry).await
    }

    async fn delete_user(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        users::delete(&database(self.env)?, user_id, entry).await
    }

    async fn ban_user(
        &self,
        user_id: &str,
        ban: &Ban<'_>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(Option<User>, usize), StoreError> {
        users::ban(&database(self.env)?, user_id, ban, now, entry).await
    }

    async fn unban_user(
        &self,
        user_id: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<User>, StoreError> {
        users::unban(&database(self.env)?, user_id, now, entry).await
    }
}

impl AuditStore for D1Backend<'_> {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        audit::list(&database(self.env)?, filter, page).await
    }
}

impl RoleStore for D1Backend<'_> {
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        roles::list(&database(self.env)?).await
    }

    async fn role_exists(&self, role: &str) -> Result<bool, StoreError> {
        roles::exists(&database(self.env)?, role).await
    }

    async fn grant_role(
        &self,
        user_id: &str,
        role: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        roles::grant(&database(self.env)?, user_id, role, now, entry).await
    }

    async fn remove_role(
        &self,
        user_id: &str,
        role: &str,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        roles::remove(&database(self.env)?, user_id, role, entry).await
    }
}

impl SessionStore for D1Backend<'_> {
    async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        sessions::list_live(&database(self.env)?, user_id, now).await
    }

    async fn revoke_session(
        &self,
        session_id: &str,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        sessions::revoke(
            &database(self.env)?,
            session_id,
            user_id,
            reason,
            now,
            entry,
        )
        .await
    }

    async fn revoke_all_sessions(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        sessions::revoke_all(&database(self.env)?, user_id, reason, now, entry).await
    }
}

impl RevocationStore for D1Backend<'_> {
    async fn revoke_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        revocation::revoke(self.env, jti, expires_at, now).await
    }
}
