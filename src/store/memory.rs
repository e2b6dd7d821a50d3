//! An in-memory implementation of the storage traits, for the service layer's native unit
//! tests: the same contract as the D1 backend (what is written together, what is refused),
//! without a runtime. Test builds only.

use crate::domain::access::Role;
use crate::domain::audit::AuditEntry;
use crate::domain::query::{Page, PrefixRange};
use crate::domain::session::Session;
use crate::domain::user::User;
use crate::store::error::StoreError;
use crate::store::error::Unique;
use crate::store::traits::{
    Ban, ProfileChange, RevocationStore, RoleStore, SessionStore, UserStore,
};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// A stored session with what its owner's view leaves out.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub session: Session,
    pub user_id: String,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// Every record the traits reach, in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub users: RefCell<Vec<User>>,
    /// The role names that exist.
    pub roles: RefCell<Vec<String>>,
    pub sessions: RefCell<Vec<StoredSession>>,
    pub audit: RefCell<Vec<AuditEntry>>,
    /// Revoked access-token ids and until when.
    pub revoked_tokens: RefCell<HashMap<String, i64>>,
    /// Per user: access tokens issued before this are refused.
    pub tokens_valid_after: RefCell<HashMap<String, i64>>,
    /// While set, every call fails as an unreachable store does, and nothing changes.
    pub unavailable: Cell<bool>,
}

impl MemoryStore {
    /// A live session of `user_id`, created at `now`.
    pub fn add_session(&self, id: &str, user_id: &str, now: i64) {
        self.sessions.borrow_mut().push(StoredSession {
            session: Session {
                id: id.into(),
                created_at: now,
                last_used_at: now,
                idle_expires_at: now + 3_600,
                absolute_expires_at: now + 86_400,
                user_agent: None,
                colo: None,
                country: None,
            },
            user_id: user_id.into(),
            revoked_at: None,
            revoked_reason: None,
        });
    }

    /// Whether `user` is an active admin at `now`: holds `admin` and is not banned now.
    fn active_admin(user: &User, now: i64) -> bool {
        user.roles.iter().any(|role| role == "admin") && !user.ban_state(now).is_banned()
    }

    /// The database's last-admin rule (migrations/0004): `user_id` may not stop being an
    /// active admin when no other would remain.
    fn keep_last_admin(&self, user_id: &str, now: i64) -> Result<(), StoreError> {
        let users = self.users.borrow();
        let is_active = users
            .iter()
            .any(|user| user.id == user_id && Self::active_admin(user, now));
        let others = users
            .iter()
            .any(|user| user.id != user_id && Self::active_admin(user, now));
        if is_active && !others {
            Err(StoreError::LastAdmin)
        } else {
            Ok(())
        }
    }

    fn user(&self, user_id: &str) -> Option<User> {
        self.users
            .borrow()
            .iter()
            .find(|user| user.id == user_id)
            .cloned()
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.unavailable.get() {
            Err(StoreError::unavailable("Database", "memory store is down"))
        } else {
            Ok(())
        }
    }
}

impl UserStore for MemoryStore {
    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        Ok(self
            .users
            .borrow()
            .iter()
            .find(|user| user.id == user_id)
            .cloned())
    }

    async fn list_users(
        &self,
        search: Option<&PrefixRange>,
        page: Page,
    ) -> Result<(Vec<User>, u64), StoreError> {
        self.check()?;
        let in_range = |value: &str, range: &PrefixRange| {
            value >= range.lower.as_str() && value < range.upper.as_str()
        };
        let mut matching: Vec<User> = self
            .users
            .borrow()
            .iter()
            .filter(|user| {
                search.is_none_or(|range| {
                    in_range(&user.username, range)
                        || user
                            .email
                            .as_deref()
                            .is_some_and(|email| in_range(email, range))
                })
            })
            .cloned()
            .collect();
        matching.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        let total = matching.len() as u64;
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let users = matching
            .into_iter()
            .skip(offset)
            .take(page.per_page as usize)
            .collect();
        Ok((users, total))
    }

    async fn update_profile(
        &self,
        user_id: &str,
        change: &ProfileChange<'_>,
        now: i64,
        entry: Option<&AuditEntry>,
    ) -> Result<Option<User>, StoreError> {
        self.check()?;
        {
            let users = self.users.borrow();
            let taken = |check: &dyn Fn(&User) -> bool| {
                users.iter().any(|user| user.id != user_id && check(user))
            };
            if let Some(username) = change.username {
                if taken(&|user| user.username == username) {
                    return Err(StoreError::Taken(Unique::Username));
                }
            }
            if let Some(Some(email)) = change.email {
                if taken(&|user| user.email.as_deref() == Some(email)) {
                    return Err(StoreError::Taken(Unique::Email));
                }
            }
        }
        let mut found = false;
        for user in self.users.borrow_mut().iter_mut() {
            if user.id != user_id {
                continue;
            }
            found = true;
            let before = user.clone();
            if let Some(username) = change.username {
                user.username = username.into();
            }
            if let Some(email) = change.email {
                if user.email.as_deref() != email {
                    user.email_verified = false;
                }
                user.email = email.map(str::to_owned);
            }
            if let Some(verified) = change.email_verified {
                user.email_verified = verified;
            }
            if *user != before {
                user.updated_at = now;
            }
        }
        if found {
            if let Some(entry) = entry {
                self.audit.borrow_mut().push(entry.clone());
            }
        }
        Ok(self.user(user_id))
    }

    async fn delete_user(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        self.check()?;
        self.keep_last_admin(user_id, entry.occurred_at)?;
        let before = self.users.borrow().len();
        self.users.borrow_mut().retain(|user| user.id != user_id);
        if self.users.borrow().len() == before {
            return Ok(false);
        }
        self.sessions
            .borrow_mut()
            .retain(|stored| stored.user_id != user_id);
        self.audit.borrow_mut().push(entry.clone());
        Ok(true)
    }

    async fn ban_user(
        &self,
        user_id: &str,
        ban: &Ban<'_>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(Option<User>, usize), StoreError> {
        self.check()?;
        if self.user(user_id).is_none() {
            return Ok((None, 0));
        }
        let banned_now = ban.until.is_none_or(|until| until > now);
        if banned_now {
            self.keep_last_admin(user_id, now)?;
        }
        for user in self.users.borrow_mut().iter_mut() {
            if user.id == user_id {
                user.banned_at = Some(now);
                user.banned_until = ban.until;
                user.ban_reason = ban.reason.map(str::to_owned);
                user.updated_at = now;
            }
        }
        let mut revoked = 0;
        for stored in self.sessions.borrow_mut().iter_mut() {
            if stored.user_id == user_id && stored.revoked_at.is_none() {
                stored.revoked_at = Some(now);
                stored.revoked_reason = Some("banned".into());
                revoked += 1;
            }
        }
        self.tokens_valid_after
            .borrow_mut()
            .insert(user_id.into(), now);
        self.audit.borrow_mut().push(entry.clone());
        Ok((self.user(user_id), revoked))
    }

    async fn unban_user(
        &self,
        user_id: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<User>, StoreError> {
        self.check()?;
        let mut lifted = false;
        for user in self.users.borrow_mut().iter_mut() {
            if user.id == user_id && user.banned_at.is_some() {
                user.banned_at = None;
                user.banned_until = None;
                user.ban_reason = None;
                user.updated_at = now;
                lifted = true;
            }
        }
        if lifted {
            self.audit.borrow_mut().push(entry.clone());
        }
        Ok(self.user(user_id))
    }
}

impl RoleStore for MemoryStore {
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        self.check()?;
        let mut names = self.roles.borrow().clone();
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| Role {
                name,
                description: String::new(),
                permissions: Vec::new(),
            })
            .collect())
    }

    async fn role_exists(&self, role: &str) -> Result<bool, StoreError> {
        self.check()?;
        Ok(self.roles.borrow().iter().any(|name| name == role))
    }

    async fn grant_role(
        &self,
        user_id: &str,
        role: &str,
        _now: i64,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        self.check()?;
        let mut granted = false;
        for user in self.users.borrow_mut().iter_mut() {
            if user.id == user_id && !user.roles.iter().any(|held| held == role) {
                user.roles.push(role.into());
                user.roles.sort();
                granted = true;
            }
        }
        if granted {
            self.audit.borrow_mut().push(entry.clone());
        }
        Ok((granted, self.user(user_id)))
    }

    async fn remove_role(
        &self,
        user_id: &str,
        role: &str,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        self.check()?;
        if role == "admin" {
            self.keep_last_admin(user_id, entry.occurred_at)?;
        }
        let mut removed = false;
        for user in self.users.borrow_mut().iter_mut() {
            if user.id == user_id && user.roles.iter().any(|held| held == role) {
                user.roles.retain(|held| held != role);
                removed = true;
            }
        }
        if removed {
            self.audit.borrow_mut().push(entry.clone());
        }
        Ok((removed, self.user(user_id)))
    }
}

impl SessionStore for MemoryStore {
    async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        self.check()?;
        let mut live: Vec<Session> = self
            .sessions
            .borrow()
            .iter()
            .filter(|stored| {
                stored.user_id == user_id
                    && stored.revoked_at.is_none()
                    && stored.session.idle_expires_at > now
                    && stored.session.absolute_expires_at > now
            })
            .map(|stored| stored.session.clone())
            .collect();
        live.sort_by_key(|session| std::cmp::Reverse((session.last_used_at, session.created_at)));
        Ok(live)
    }

    async fn revoke_session(
        &self,
        session_id: &str,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut sessions = self.sessions.borrow_mut();
        let Some(stored) = sessions.iter_mut().find(|stored| {
            stored.session.id == session_id
                && stored.user_id == user_id
                && stored.revoked_at.is_none()
        }) else {
            return Ok(false);
        };
        stored.revoked_at = Some(now);
        stored.revoked_reason = Some(reason.into());
        self.audit.borrow_mut().push(entry.clone());
        Ok(true)
    }

    async fn revoke_all_sessions(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        self.check()?;
        let mut revoked = 0;
        for stored in self.sessions.borrow_mut().iter_mut() {
            if stored.user_id == user_id && stored.revoked_at.is_none() {
                stored.revoked_at = Some(now);
                stored.revoked_reason = Some(reason.into());
                revoked += 1;
            }
        }
        self.tokens_valid_after
            .borrow_mut()
            .insert(user_id.into(), now);
        self.audit.borrow_mut().push(entry.clone());
        Ok(revoked)
    }
}

impl RevocationStore for MemoryStore {
    async fn revoke_token(&self, jti: &str, expires_at: i64, _now: i64) -> Result<(), StoreError> {
        self.check()?;
        self.revoked_tokens
            .borrow_mut()
            .insert(jti.into(), expires_at);
        Ok(())
    }
}
