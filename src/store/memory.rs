//! An in-memory implementation of the storage traits, for the service layer's native unit
//! tests: the same contract as the D1 backend (what is written together, what is refused),
//! without a runtime. Test builds only.

use crate::config::RateLimit;
use crate::domain::access::Role;
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord, Origin};
use crate::domain::email::{Message, Purpose};
use crate::domain::identity::{GrantKind, Identity, Unlink};
use crate::domain::lockout::FailureState;
use crate::domain::mfa::{Factor, SessionLevel};
use crate::domain::one_time::IssuedToken;
use crate::domain::passkey::{split_transports, ChallengePurpose, Passkey, SpentChallenge};
use crate::domain::password::NO_PASSWORD;
use crate::domain::query::{Page, PrefixRange};
use crate::domain::rate_limit::Decision;
use crate::domain::session::Session;
use crate::domain::user::{looks_like_email, normalize_email, normalize_username, User};
use crate::store::error::StoreError;
use crate::store::error::Unique;
use crate::store::traits::{
    AuditStore, Ban, Confirmation, FactorStore, IdentityStore, LoginFailureStore, NewFactor,
    NewIdentity, NewPasskey, NewSession, NewToken, NewUser, OAuthGrantStore, OneTimeTokenStore,
    OutboxStore, PasskeyStore, PasskeyUse, ProfileChange, RateLimitStore, RefreshRotation,
    RevocationStore, RoleStore, RotateOutcome, RotateReply, SessionStore, StoredMessage,
    TokenEffect, UserStore,
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
    /// What the session proved.
    pub level: SessionLevel,
}

/// A stored recovery code.
#[derive(Debug, Clone)]
pub struct StoredRecoveryCode {
    pub user_id: String,
    pub digest: String,
    pub used_at: Option<i64>,
}

/// A stored one-time token.
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub token: IssuedToken,
    pub purpose: Purpose,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
}

/// One-time values of the redirect flow: (kind, digest) to (payload, expiry).
pub type Grants = HashMap<(&'static str, String), (String, i64)>;

/// Ceremony challenges: (purpose, digest) to (account, expiry).
pub type Challenges = HashMap<(&'static str, String), (Option<String>, i64)>;

/// Every record the traits reach, in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub users: RefCell<Vec<User>>,
    /// The role names that exist.
    pub roles: RefCell<Vec<String>>,
    /// Which role grants which permission: (role, permission).
    pub role_permissions: RefCell<Vec<(String, String)>>,
    pub sessions: RefCell<Vec<StoredSession>>,
    pub audit: RefCell<Vec<AuditEntry>>,
    /// Revoked access-token ids and until when.
    pub revoked_tokens: RefCell<HashMap<String, i64>>,
    /// Per user: access tokens issued before this are refused.
    pub tokens_valid_after: RefCell<HashMap<String, i64>>,
    /// One-time tokens, in the order they were issued.
    pub tokens: RefCell<Vec<StoredToken>>,
    /// Login failures by subject digest.
    pub failures: RefCell<HashMap<String, FailureState>>,
    /// Refresh token digests: their session, and whether they were spent.
    pub refresh_tokens: RefCell<HashMap<String, (String, bool)>>,
    /// Requests counted per rate-limit key.
    pub rate_counts: RefCell<HashMap<String, u32>>,
    pub outbox: RefCell<Vec<StoredMessage>>,
    /// Provider identities, in the order they were linked.
    pub identities: RefCell<Vec<Identity>>,
    /// One-time values of the redirect flow by (kind, digest): payload and expiry.
    pub grants: RefCell<Grants>,
    /// Second factors, in the order they were stored.
    pub factors: RefCell<Vec<Factor>>,
    pub recovery_codes: RefCell<Vec<StoredRecoveryCode>>,
    /// Passkeys, in the order they were registered.
    pub passkeys: RefCell<Vec<Passkey>>,
    /// Ceremony challenges by (purpose, digest): the account and the expiry.
    pub challenges: RefCell<Challenges>,
    /// Rotations so far, to draw distinct successor tokens.
    rotations: Cell<u32>,
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
            level: SessionLevel::first_factor(crate::domain::mfa::AMR_PASSWORD),
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

impl MemoryStore {
    fn insert_session(&self, session: &NewSession<'_>) {
        self.sessions.borrow_mut().push(StoredSession {
            session: Session {
                id: session.id.into(),
                created_at: session.now,
                last_used_at: session.now,
                idle_expires_at: session.expiry.idle_expires_at,
                absolute_expires_at: session.expiry.absolute_expires_at,
                user_agent: session.user_agent.map(str::to_owned),
                colo: session.colo.map(str::to_owned),
                country: session.country.map(str::to_owned),
            },
            user_id: session.user_id.into(),
            revoked_at: None,
            revoked_reason: None,
            level: session.level.clone(),
        });
        self.refresh_tokens.borrow_mut().insert(
            session.refresh_token_hash.into(),
            (session.id.into(), false),
        );
    }

    fn insert_token(&self, token: &NewToken<'_>) {
        let mut tokens = self.tokens.borrow_mut();
        for stored in tokens.iter_mut() {
            if stored.token.user_id == token.user_id
                && stored.purpose == token.purpose
                && stored.used_at.is_none()
            {
                stored.used_at = Some(token.now);
                stored.used_by = Some("superseded".into());
            }
        }
        tokens.push(StoredToken {
            token: IssuedToken {
                id: token.id.into(),
                user_id: token.user_id.into(),
                email: token.email.into(),
                code_hash: token.code_hash.into(),
                attempts: 0,
            },
            purpose: token.purpose,
            token_hash: token.token_hash.into(),
            created_at: token.now,
            expires_at: token.expires_at,
            used_at: None,
            used_by: None,
        });
    }

    fn live_token(
        &self,
        purpose: Purpose,
        now: i64,
        matches: impl Fn(&StoredToken) -> bool,
    ) -> Option<IssuedToken> {
        self.tokens
            .borrow()
            .iter()
            .rev()
            .find(|stored| {
                stored.purpose == purpose
                    && stored.used_at.is_none()
                    && stored.expires_at > now
                    && matches(stored)
            })
            .map(|stored| stored.token.clone())
    }

    fn update_user(&self, user_id: &str, change: impl Fn(&mut User)) {
        for user in self.users.borrow_mut().iter_mut() {
            if user.id == user_id {
                change(user);
            }
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

    async fn find_by_live_session(
        &self,
        user_id: &str,
        session_id: &str,
        issued_at: i64,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.check()?;
        let not_before = self
            .tokens_valid_after
            .borrow()
            .get(user_id)
            .copied()
            .unwrap_or(0);
        let signed_in_at = self
            .sessions
            .borrow()
            .iter()
            .find(|stored| {
                stored.session.id == session_id
                    && stored.user_id == user_id
                    && stored.revoked_at.is_none()
                    && stored.session.idle_expires_at > now
                    && stored.session.absolute_expires_at > now
            })
            .map(|stored| (stored.session.created_at, stored.level.clone()));
        let mfa_enabled = self
            .factors
            .borrow()
            .iter()
            .any(|factor| factor.user_id == user_id && factor.is_confirmed())
            || self
                .passkeys
                .borrow()
                .iter()
                .any(|passkey| passkey.user_id == user_id);
        Ok(match (signed_in_at, self.user(user_id)) {
            (Some((at, level)), Some(mut user))
                if not_before <= issued_at && !user.ban_state(now).is_banned() =>
            {
                user.session_signed_in_at = Some(at);
                user.session_level = Some(level);
                user.mfa_enabled = mfa_enabled;
                Some(user)
            }
            _ => None,
        })
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        Ok(self
            .users
            .borrow()
            .iter()
            .find(|user| user.email.as_deref() == Some(email))
            .cloned())
    }

    async fn find_by_identifier(&self, identifier: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        let identifier = identifier.trim();
        let users = self.users.borrow();
        Ok(if looks_like_email(identifier) {
            normalize_email(identifier).ok().and_then(|email| {
                users
                    .iter()
                    .find(|user| user.email.as_deref() == Some(email.as_str()))
                    .cloned()
            })
        } else {
            normalize_username(identifier)
                .ok()
                .and_then(|username| users.iter().find(|user| user.username == username).cloned())
        })
    }

    async fn create_user(
        &self,
        user: &NewUser<'_>,
        session: Option<&NewSession<'_>>,
        entry: &AuditEntry,
        verification: Option<&NewToken<'_>>,
    ) -> Result<(), StoreError> {
        self.check()?;
        {
            let users = self.users.borrow();
            // The username first, whatever the email (as the D1 batch does).
            if users.iter().any(|other| other.username == user.username) {
                return Err(StoreError::Taken(Unique::Username));
            }
            if user.email.is_some()
                && users
                    .iter()
                    .any(|other| other.email.as_deref() == user.email)
            {
                return Err(StoreError::Taken(Unique::Email));
            }
        }
        self.users.borrow_mut().push(User {
            id: user.id.into(),
            username: user.username.into(),
            email: user.email.map(str::to_owned),
            email_verified: user.email_verified,
            roles: vec!["user".into()],
            created_at: user.now,
            updated_at: user.now,
            banned_at: None,
            banned_until: None,
            ban_reason: None,
            password_hash: user.password_hash.into(),
            session_signed_in_at: None,
            session_level: None,
            mfa_enabled: false,
        });
        if let Some(session) = session {
            self.insert_session(session);
        }
        self.audit.borrow_mut().push(entry.clone());
        if let Some(token) = verification {
            self.insert_token(token);
        }
        Ok(())
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        self.check()?;
        if self.user(user_id).is_none() {
            return Ok(0);
        }
        self.update_user(user_id, |user| {
            user.password_hash = password_hash.into();
            user.updated_at = now;
        });
        self.audit.borrow_mut().push(entry.clone());
        let mut revoked = 0;
        if let Some(keep) = keep_session {
            for stored in self.sessions.borrow_mut().iter_mut() {
                if stored.user_id == user_id
                    && stored.session.id != keep
                    && stored.revoked_at.is_none()
                {
                    stored.revoked_at = Some(now);
                    stored.revoked_reason = Some("password_change".into());
                    revoked += 1;
                }
            }
        }
        Ok(revoked)
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
        // The foreign keys' cascade.
        self.factors
            .borrow_mut()
            .retain(|factor| factor.user_id != user_id);
        self.recovery_codes
            .borrow_mut()
            .retain(|code| code.user_id != user_id);
        self.passkeys
            .borrow_mut()
            .retain(|passkey| passkey.user_id != user_id);
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
                permissions: self
                    .role_permissions
                    .borrow()
                    .iter()
                    .filter(|(role, _)| *role == name)
                    .map(|(_, permission)| permission.clone())
                    .collect(),
                name,
                description: String::new(),
            })
            .collect())
    }

    async fn roles_granting(&self, permission: &str) -> Result<Vec<String>, StoreError> {
        self.check()?;
        Ok(self
            .role_permissions
            .borrow()
            .iter()
            .filter(|(_, granted)| granted == permission)
            .map(|(role, _)| role.clone())
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
    async fn create_session(
        &self,
        session: &NewSession<'_>,
        rehashed_password: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.insert_session(session);
        if let Some(hash) = rehashed_password {
            self.update_user(session.user_id, |user| user.password_hash = hash.into());
        }
        self.audit.borrow_mut().push(entry.clone());
        Ok(())
    }

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
    async fn is_revoked(&self, jti: &str, _cache_seconds: u64) -> Result<bool, StoreError> {
        self.check()?;
        Ok(self.revoked_tokens.borrow().contains_key(jti))
    }

    async fn revoke_token(&self, jti: &str, expires_at: i64, _now: i64) -> Result<(), StoreError> {
        self.check()?;
        self.revoked_tokens
            .borrow_mut()
            .insert(jti.into(), expires_at);
        Ok(())
    }
}

impl AuditStore for MemoryStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.check()?;
        self.audit.borrow_mut().push(entry.clone());
        Ok(())
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        self.check()?;
        let audit = self.audit.borrow();
        let mut matching: Vec<AuditRecord> = audit
            .iter()
            .enumerate()
            .filter(|(_, entry)| {
                filter.user_id.as_ref().is_none_or(|user| {
                    entry.actor_id.as_ref() == Some(user) || entry.target_id.as_ref() == Some(user)
                }) && filter.action.is_none_or(|action| action == entry.action)
                    && filter.since.is_none_or(|since| entry.occurred_at >= since)
                    && filter.until.is_none_or(|until| entry.occurred_at < until)
            })
            .map(|(index, entry)| AuditRecord {
                id: i64::try_from(index).unwrap_or(i64::MAX) + 1,
                occurred_at: entry.occurred_at,
                action: entry.action.as_str().into(),
                actor_id: entry.actor_id.clone(),
                target_id: entry.target_id.clone(),
                request_id: entry.origin.request_id.clone(),
                ip: entry.origin.ip.clone(),
                colo: entry.origin.colo.clone(),
                details: entry.details.clone(),
            })
            .collect();
        matching.reverse();
        let total = matching.len() as u64;
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let records = matching
            .into_iter()
            .skip(offset)
            .take(page.per_page as usize)
            .collect();
        Ok((records, total))
    }
}

impl OneTimeTokenStore for MemoryStore {
    async fn issue_token(&self, token: &NewToken<'_>) -> Result<(), StoreError> {
        self.check()?;
        self.insert_token(token);
        Ok(())
    }

    async fn find_token_by_hash(
        &self,
        purpose: Purpose,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        self.check()?;
        Ok(self.live_token(purpose, now, |stored| stored.token_hash == token_hash))
    }

    async fn find_token_by_email(
        &self,
        purpose: Purpose,
        email: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        self.check()?;
        Ok(self.live_token(purpose, now, |stored| stored.token.email == email))
    }

    async fn record_failed_code(
        &self,
        token_id: &str,
        max_attempts: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        for stored in self.tokens.borrow_mut().iter_mut() {
            if stored.token.id == token_id && stored.used_at.is_none() {
                stored.token.attempts += 1;
                if stored.token.attempts >= max_attempts {
                    stored.used_at = Some(now);
                    stored.used_by = Some("too_many_attempts".into());
                }
            }
        }
        Ok(())
    }

    async fn spend_token(
        &self,
        token: &IssuedToken,
        effect: TokenEffect<'_>,
        spend_id: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.check()?;
        let email = token.email.as_str();
        // The address is unique: a change to a taken one fails as a whole, token unspent.
        if matches!(effect, TokenEffect::ChangeEmail) {
            let taken = self
                .users
                .borrow()
                .iter()
                .any(|user| user.id != token.user_id && user.email.as_deref() == Some(email));
            if taken {
                return Err(StoreError::Taken(Unique::Email));
            }
        }
        let spent = self.tokens.borrow_mut().iter_mut().any(|stored| {
            let live =
                stored.token.id == token.id && stored.used_at.is_none() && stored.expires_at > now;
            if live {
                stored.used_at = Some(now);
                stored.used_by = Some(spend_id.into());
            }
            live
        });
        if !spent {
            return Ok(None);
        }
        match effect {
            TokenEffect::VerifyEmail => self.update_user(&token.user_id, |user| {
                if user.email.as_deref() == Some(email) {
                    user.email_verified = true;
                    user.updated_at = now;
                }
            }),
            TokenEffect::ResetPassword { password_hash } => {
                self.update_user(&token.user_id, |user| {
                    user.password_hash = password_hash.into();
                    user.updated_at = now;
                    if user.email.as_deref() == Some(email) {
                        user.email_verified = true;
                    }
                });
                self.tokens_valid_after
                    .borrow_mut()
                    .insert(token.user_id.clone(), now);
                for stored in self.sessions.borrow_mut().iter_mut() {
                    if stored.user_id == token.user_id && stored.revoked_at.is_none() {
                        stored.revoked_at = Some(now);
                        stored.revoked_reason = Some("password_reset".into());
                    }
                }
                for stored in self.tokens.borrow_mut().iter_mut() {
                    if stored.token.user_id == token.user_id
                        && stored.purpose == Purpose::ResetPassword
                        && stored.used_at.is_none()
                    {
                        stored.used_at = Some(now);
                        stored.used_by = Some("superseded".into());
                    }
                }
            }
            TokenEffect::ChangeEmail => {
                self.update_user(&token.user_id, |user| {
                    user.email = Some(email.into());
                    user.email_verified = true;
                    user.updated_at = now;
                });
            }
        }
        Ok(self.user(&token.user_id))
    }

    async fn equivalent_work(&self, _now: i64) -> Result<(), StoreError> {
        self.check()
    }
}

impl LoginFailureStore for MemoryStore {
    async fn load_failures(&self, digest: &str) -> Result<FailureState, StoreError> {
        self.check()?;
        Ok(self
            .failures
            .borrow()
            .get(digest)
            .copied()
            .unwrap_or_default())
    }

    async fn save_failures(
        &self,
        digest: &str,
        state: &FailureState,
        _forget_at: i64,
        _now: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.failures.borrow_mut().insert(digest.into(), *state);
        Ok(())
    }

    async fn clear_failures(&self, digest: &str) -> Result<(), StoreError> {
        self.check()?;
        self.failures.borrow_mut().remove(digest);
        Ok(())
    }
}

impl MemoryStore {
    fn count(&self, key: &str, budget: RateLimit) -> Decision {
        let mut counts = self.rate_counts.borrow_mut();
        let count = counts.entry(key.into()).or_insert(0);
        *count += 1;
        let allowed = *count <= budget.limit;
        Decision {
            allowed,
            limit: budget.limit,
            remaining: budget.limit.saturating_sub(*count),
            reset_seconds: u64::from(budget.period_seconds),
            retry_after_seconds: if allowed {
                0
            } else {
                u64::from(budget.period_seconds)
            },
        }
    }
}

impl RefreshRotation for MemoryStore {
    /// A plain rotation without the grace window: a spent token is a reuse, which ends its
    /// session.
    async fn rotate(
        &self,
        session_id: &str,
        presented_hash: &str,
        _origin: Origin,
        budget: RateLimit,
    ) -> Result<RotateReply, StoreError> {
        self.check()?;
        let decision = self.count(&format!("refresh:{session_id}"), budget);
        if !decision.allowed {
            return Ok(RotateReply {
                decision,
                outcome: None,
            });
        }
        let known = self.refresh_tokens.borrow().get(presented_hash).cloned();
        let owner = self
            .sessions
            .borrow()
            .iter()
            .find(|stored| stored.session.id == session_id && stored.revoked_at.is_none())
            .map(|stored| (stored.user_id.clone(), stored.level.clone()));
        let outcome = match (known, owner) {
            (Some((session, false)), Some((user_id, level))) if session == session_id => {
                self.rotations.set(self.rotations.get() + 1);
                let successor = format!("{session_id}.rotation-{}", self.rotations.get());
                let successor_hash = crate::domain::secret::hash_opaque_token(&successor);
                let mut tokens = self.refresh_tokens.borrow_mut();
                tokens.insert(presented_hash.into(), (session.clone(), true));
                tokens.insert(successor_hash, (session, false));
                match self.user(&user_id) {
                    Some(user) => RotateOutcome::Rotated {
                        refresh_token: successor,
                        user,
                        level,
                    },
                    None => RotateOutcome::Invalid,
                }
            }
            (Some((session, true)), Some((user_id, _))) if session == session_id => {
                for stored in self.sessions.borrow_mut().iter_mut() {
                    if stored.session.id == session_id {
                        stored.revoked_at = Some(0);
                        stored.revoked_reason = Some("refresh_token_reuse".into());
                    }
                }
                RotateOutcome::Reused {
                    user_id: Some(user_id),
                }
            }
            _ => RotateOutcome::Invalid,
        };
        Ok(RotateReply {
            decision,
            outcome: Some(outcome),
        })
    }
}

impl RateLimitStore for MemoryStore {
    async fn check_rate(&self, key: &str, budget: RateLimit) -> Result<Decision, StoreError> {
        self.check()?;
        Ok(self.count(key, budget))
    }
}

impl OutboxStore for MemoryStore {
    async fn store_message(
        &self,
        _id: &str,
        message: &Message,
        token: Option<&str>,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.outbox.borrow_mut().insert(
            0,
            StoredMessage {
                to: message.to.clone(),
                subject: message.subject.clone(),
                text: message.text.clone(),
                html: message.html.clone(),
                purpose: message.purpose.as_str().into(),
                token: token.map(str::to_owned),
                code: code.map(str::to_owned),
                created_at: now,
            },
        );
        Ok(())
    }

    async fn messages_to(&self, to: &str) -> Result<Vec<StoredMessage>, StoreError> {
        self.check()?;
        Ok(self
            .outbox
            .borrow()
            .iter()
            .filter(|message| message.to == to)
            .map(|message| StoredMessage {
                to: message.to.clone(),
                subject: message.subject.clone(),
                text: message.text.clone(),
                html: message.html.clone(),
                purpose: message.purpose.clone(),
                token: message.token.clone(),
                code: message.code.clone(),
                created_at: message.created_at,
            })
            .collect())
    }
}

impl MemoryStore {
    /// The identities' unique pairs (migrations/0005): a subject belongs to one account, an
    /// account has one identity per provider.
    fn identity_conflict(&self, identity: &NewIdentity<'_>) -> Result<(), StoreError> {
        let taken = self.identities.borrow().iter().any(|other| {
            other.provider == identity.provider
                && (other.subject == identity.subject || other.user_id == identity.user_id)
        });
        if taken {
            Err(StoreError::Taken(Unique::Identity))
        } else {
            Ok(())
        }
    }

    fn insert_identity(&self, identity: &NewIdentity<'_>) {
        self.identities.borrow_mut().push(Identity {
            id: identity.id.into(),
            user_id: identity.user_id.into(),
            provider: identity.provider.into(),
            subject: identity.subject.into(),
            email: identity.email.map(str::to_owned),
            created_at: identity.now,
            last_used_at: identity.now,
        });
    }
}

impl IdentityStore for MemoryStore {
    async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.check()?;
        Ok(self
            .identities
            .borrow()
            .iter()
            .find(|identity| identity.provider == provider && identity.subject == subject)
            .cloned())
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>, StoreError> {
        self.check()?;
        Ok(self
            .identities
            .borrow()
            .iter()
            .filter(|identity| identity.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn create_user_with_identity(
        &self,
        user: &NewUser<'_>,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.identity_conflict(identity)?;
        self.create_user(user, None, entry, None).await?;
        self.insert_identity(identity);
        Ok(())
    }

    async fn link_identity(
        &self,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.check()?;
        if self.user(identity.user_id).is_none() {
            return Err(StoreError::unavailable(
                "Database",
                "foreign key: no such user",
            ));
        }
        self.identity_conflict(identity)?;
        self.insert_identity(identity);
        self.audit.borrow_mut().push(entry.clone());
        Ok(())
    }

    async fn touch_identity(
        &self,
        identity_id: &str,
        email: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.check()?;
        for identity in self.identities.borrow_mut().iter_mut() {
            if identity.id == identity_id {
                identity.last_used_at = now;
                identity.email = email.map(str::to_owned);
            }
        }
        self.audit.borrow_mut().push(entry.clone());
        Ok(())
    }

    async fn unlink_identity(
        &self,
        user_id: &str,
        identity_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        self.check()?;
        let mut identities = self.identities.borrow_mut();
        let Some(position) = identities
            .iter()
            .position(|identity| identity.id == identity_id && identity.user_id == user_id)
        else {
            return Ok(Unlink::NotFound);
        };
        let has_password = self
            .user(user_id)
            .is_some_and(|user| user.password_hash != NO_PASSWORD);
        let other_identity = identities
            .iter()
            .any(|identity| identity.user_id == user_id && identity.id != identity_id);
        let passkey = self
            .passkeys
            .borrow()
            .iter()
            .any(|passkey| passkey.user_id == user_id);
        if !has_password && !other_identity && !passkey {
            return Ok(Unlink::LastSignInMethod);
        }
        identities.remove(position);
        self.audit.borrow_mut().push(entry.clone());
        Ok(Unlink::Unlinked)
    }
}

impl OAuthGrantStore for MemoryStore {
    async fn put_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        payload: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut grants = self.grants.borrow_mut();
        grants.retain(|_, (_, expiry)| *expiry > now);
        grants.insert(
            (kind.as_str(), digest.to_owned()),
            (payload.to_owned(), expires_at),
        );
        Ok(())
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.check()?;
        Ok(self
            .grants
            .borrow_mut()
            .remove(&(kind.as_str(), digest.to_owned()))
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(payload, _)| payload))
    }
}

impl FactorStore for MemoryStore {
    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        self.check()?;
        Ok(self
            .factors
            .borrow()
            .iter()
            .filter(|factor| factor.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn put_pending_totp(&self, factor: &NewFactor<'_>) -> Result<bool, StoreError> {
        self.check()?;
        let mut factors = self.factors.borrow_mut();
        if factors
            .iter()
            .any(|stored| stored.user_id == factor.user_id && stored.is_confirmed())
        {
            return Ok(false);
        }
        factors.retain(|stored| stored.user_id != factor.user_id);
        factors.push(Factor {
            id: factor.id.into(),
            user_id: factor.user_id.into(),
            kind: "totp".into(),
            sealed_secret: factor.sealed_secret.into(),
            confirmed_at: None,
            last_used_step: None,
            created_at: factor.now,
        });
        Ok(true)
    }

    async fn confirm_totp(&self, confirmation: &Confirmation<'_>) -> Result<bool, StoreError> {
        self.check()?;
        {
            let mut factors = self.factors.borrow_mut();
            let Some(factor) = factors.iter_mut().find(|factor| {
                factor.id == confirmation.factor_id
                    && factor.user_id == confirmation.user_id
                    && !factor.is_confirmed()
            }) else {
                return Ok(false);
            };
            factor.confirmed_at = Some(confirmation.now);
            factor.last_used_step = Some(confirmation.step);
        }
        self.set_codes(confirmation.user_id, confirmation.recovery_digests);
        for stored in self.sessions.borrow_mut().iter_mut() {
            if stored.session.id == confirmation.session_id
                && stored.user_id == confirmation.user_id
            {
                stored.level = confirmation.level.clone();
            }
        }
        self.audit.borrow_mut().push(confirmation.entry.clone());
        Ok(true)
    }

    async fn use_totp_step(&self, factor_id: &str, step: i64) -> Result<bool, StoreError> {
        self.check()?;
        for factor in self.factors.borrow_mut().iter_mut() {
            if factor.id == factor_id && factor.last_used_step.is_none_or(|used| used < step) {
                factor.last_used_step = Some(step);
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.check()?;
        for code in self.recovery_codes.borrow_mut().iter_mut() {
            if code.user_id == user_id && code.digest == digest && code.used_at.is_none() {
                code.used_at = Some(now);
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn recovery_codes_remaining(&self, user_id: &str) -> Result<u64, StoreError> {
        self.check()?;
        Ok(self
            .recovery_codes
            .borrow()
            .iter()
            .filter(|code| code.user_id == user_id && code.used_at.is_none())
            .count() as u64)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        digests: &[String],
        _now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let confirmed = self
            .factors
            .borrow()
            .iter()
            .any(|factor| factor.user_id == user_id && factor.is_confirmed());
        if !confirmed {
            return Ok(false);
        }
        self.set_codes(user_id, digests);
        self.audit.borrow_mut().push(entry.clone());
        Ok(true)
    }

    async fn remove_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        self.check()?;
        let mut factors = self.factors.borrow_mut();
        let before = factors.len();
        factors.retain(|factor| factor.user_id != user_id);
        if factors.len() == before {
            return Ok(false);
        }
        self.recovery_codes
            .borrow_mut()
            .retain(|code| code.user_id != user_id);
        self.audit.borrow_mut().push(entry.clone());
        Ok(true)
    }

    async fn reset_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        self.check()?;
        let mut removed = false;
        let mut factors = self.factors.borrow_mut();
        let before = factors.len();
        factors.retain(|factor| factor.user_id != user_id);
        removed |= factors.len() != before;
        let mut recovery_codes = self.recovery_codes.borrow_mut();
        let before = recovery_codes.len();
        recovery_codes.retain(|code| code.user_id != user_id);
        removed |= recovery_codes.len() != before;
        let mut passkeys = self.passkeys.borrow_mut();
        let before = passkeys.len();
        passkeys.retain(|passkey| passkey.user_id != user_id);
        removed |= passkeys.len() != before;
        if removed {
            self.audit.borrow_mut().push(entry.clone());
        }
        Ok(removed)
    }

    async fn raise_session(
        &self,
        session_id: &str,
        user_id: &str,
        level: &SessionLevel,
    ) -> Result<bool, StoreError> {
        self.check()?;
        for stored in self.sessions.borrow_mut().iter_mut() {
            if stored.session.id == session_id
                && stored.user_id == user_id
                && stored.revoked_at.is_none()
            {
                stored.level = level.clone();
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl MemoryStore {
    /// Replace an account's recovery codes.
    fn set_codes(&self, user_id: &str, digests: &[String]) {
        let mut codes = self.recovery_codes.borrow_mut();
        codes.retain(|code| code.user_id != user_id);
        codes.extend(digests.iter().map(|digest| StoredRecoveryCode {
            user_id: user_id.into(),
            digest: digest.clone(),
            used_at: None,
        }));
    }
}

impl PasskeyStore for MemoryStore {
    async fn add_passkey(
        &self,
        passkey: &NewPasskey<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.check()?;
        if self.user(passkey.user_id).is_none() {
            return Err(StoreError::unavailable(
                "Database",
                "FOREIGN KEY constraint failed",
            ));
        }
        let mut passkeys = self.passkeys.borrow_mut();
        if passkeys
            .iter()
            .any(|stored| stored.credential_id == passkey.credential_id)
        {
            return Err(StoreError::Taken(Unique::Passkey));
        }
        passkeys.push(Passkey {
            id: passkey.id.into(),
            user_id: passkey.user_id.into(),
            credential_id: passkey.credential_id.into(),
            public_key: passkey.public_key.into(),
            algorithm: passkey.algorithm,
            sign_count: passkey.sign_count,
            name: passkey.name.into(),
            aaguid: passkey.aaguid.into(),
            backup_eligible: passkey.backup_eligible,
            backed_up: passkey.backed_up,
            transports: split_transports(passkey.transports),
            created_at: passkey.now,
            last_used_at: None,
        });
        self.audit.borrow_mut().push(entry.clone());
        Ok(())
    }

    async fn passkeys_of(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        self.check()?;
        Ok(self
            .passkeys
            .borrow()
            .iter()
            .filter(|passkey| passkey.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
        self.check()?;
        Ok(self
            .passkeys
            .borrow()
            .iter()
            .find(|passkey| passkey.credential_id == credential_id)
            .cloned())
    }

    async fn record_passkey_use(&self, used: &PasskeyUse<'_>) -> Result<(), StoreError> {
        self.check()?;
        for passkey in self.passkeys.borrow_mut().iter_mut() {
            if passkey.id == used.passkey_id {
                passkey.sign_count = passkey.sign_count.max(used.sign_count);
                passkey.backed_up = used.backed_up;
                passkey.last_used_at = Some(used.now);
            }
        }
        Ok(())
    }

    async fn rename_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        name: &str,
        entry: &AuditEntry,
    ) -> Result<Option<Passkey>, StoreError> {
        self.check()?;
        let mut passkeys = self.passkeys.borrow_mut();
        let Some(passkey) = passkeys
            .iter_mut()
            .find(|passkey| passkey.id == passkey_id && passkey.user_id == user_id)
        else {
            return Ok(None);
        };
        passkey.name = name.into();
        self.audit.borrow_mut().push(entry.clone());
        Ok(Some(passkey.clone()))
    }

    async fn delete_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        self.check()?;
        let mut passkeys = self.passkeys.borrow_mut();
        let Some(position) = passkeys
            .iter()
            .position(|passkey| passkey.id == passkey_id && passkey.user_id == user_id)
        else {
            return Ok(Unlink::NotFound);
        };
        let has_password = self
            .user(user_id)
            .is_some_and(|user| user.password_hash != NO_PASSWORD);
        let identity = self
            .identities
            .borrow()
            .iter()
            .any(|identity| identity.user_id == user_id);
        let other_passkey = passkeys
            .iter()
            .any(|passkey| passkey.user_id == user_id && passkey.id != passkey_id);
        if !has_password && !identity && !other_passkey {
            return Ok(Unlink::LastSignInMethod);
        }
        passkeys.remove(position);
        self.audit.borrow_mut().push(entry.clone());
        Ok(Unlink::Unlinked)
    }

    async fn put_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        user_id: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut challenges = self.challenges.borrow_mut();
        challenges.retain(|_, (_, expiry)| *expiry > now);
        challenges.insert(
            (purpose.as_str(), digest.to_owned()),
            (user_id.map(str::to_owned), expires_at),
        );
        Ok(())
    }

    async fn take_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        now: i64,
    ) -> Result<Option<SpentChallenge>, StoreError> {
        self.check()?;
        Ok(self
            .challenges
            .borrow_mut()
            .remove(&(purpose.as_str(), digest.to_owned()))
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(user_id, _)| SpentChallenge { user_id }))
    }
}

#[cfg(test)]
mod identity_tests {
    use super::*;
    use crate::domain::audit::{AuditAction, AuditEntry, Origin};

    /// The in-memory store never waits: one poll completes a call. (The service layer has
    /// its own helper; the store may not import it.)
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
    }

    fn entry() -> AuditEntry {
        AuditEntry::new(AuditAction::IdentityLinked, Origin::default(), 1)
    }

    fn user(store: &MemoryStore, id: &str, password_hash: &str) {
        block_on(store.create_user(
            &NewUser {
                id,
                username: &format!("user_{id}"),
                email: None,
                password_hash,
                email_verified: false,
                now: 1,
            },
            None,
            &entry(),
            None,
        ))
        .unwrap();
    }

    fn identity<'a>(
        id: &'a str,
        user_id: &'a str,
        provider: &'a str,
        subject: &'a str,
    ) -> NewIdentity<'a> {
        NewIdentity {
            id,
            user_id,
            provider,
            subject,
            email: None,
            now: 1,
        }
    }

    #[test]
    fn a_subject_belongs_to_one_account_and_an_account_has_one_identity_per_provider() {
        let store = MemoryStore::default();
        user(&store, "a", NO_PASSWORD);
        user(&store, "b", NO_PASSWORD);
        block_on(store.link_identity(&identity("i1", "a", "github", "1"), &entry())).unwrap();
        assert_eq!(
            block_on(store.link_identity(&identity("i2", "b", "github", "1"), &entry())),
            Err(StoreError::Taken(Unique::Identity))
        );
        assert_eq!(
            block_on(store.link_identity(&identity("i3", "a", "github", "2"), &entry())),
            Err(StoreError::Taken(Unique::Identity))
        );
        block_on(store.link_identity(&identity("i4", "a", "google", "1"), &entry())).unwrap();
    }

    #[test]
    fn the_last_way_to_sign_in_is_never_unlinked() {
        let store = MemoryStore::default();
        user(&store, "a", NO_PASSWORD);
        block_on(store.link_identity(&identity("i1", "a", "github", "1"), &entry())).unwrap();
        block_on(store.link_identity(&identity("i2", "a", "google", "1"), &entry())).unwrap();
        assert_eq!(
            block_on(store.unlink_identity("b", "i1", &entry())),
            Ok(Unlink::NotFound)
        );
        assert_eq!(
            block_on(store.unlink_identity("a", "i1", &entry())),
            Ok(Unlink::Unlinked)
        );
        assert_eq!(
            block_on(store.unlink_identity("a", "i2", &entry())),
            Ok(Unlink::LastSignInMethod)
        );
        user(&store, "c", "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA");
        block_on(store.link_identity(&identity("i3", "c", "github", "3"), &entry())).unwrap();
        assert_eq!(
            block_on(store.unlink_identity("c", "i3", &entry())),
            Ok(Unlink::Unlinked)
        );
    }

    #[test]
    fn a_passkey_is_a_way_to_sign_in_for_identities_and_passkeys_alike() {
        let store = MemoryStore::default();
        user(&store, "a", NO_PASSWORD);
        block_on(store.link_identity(&identity("i1", "a", "github", "1"), &entry())).unwrap();
        let passkey = |id: &'static str| NewPasskey {
            id,
            user_id: "a",
            credential_id: id,
            public_key: "key",
            algorithm: -7,
            sign_count: 0,
            name: "Key",
            aaguid: "",
            backup_eligible: false,
            backed_up: false,
            transports: "",
            now: 1,
        };
        block_on(store.add_passkey(&passkey("p1"), &entry())).unwrap();
        assert_eq!(
            block_on(store.add_passkey(&passkey("p1"), &entry())),
            Err(StoreError::Taken(Unique::Passkey))
        );
        assert_eq!(
            block_on(store.unlink_identity("a", "i1", &entry())),
            Ok(Unlink::Unlinked)
        );
        assert_eq!(
            block_on(store.delete_passkey("a", "p1", &entry())),
            Ok(Unlink::LastSignInMethod)
        );
        block_on(store.add_passkey(&passkey("p2"), &entry())).unwrap();
        assert_eq!(
            block_on(store.delete_passkey("a", "p1", &entry())),
            Ok(Unlink::Unlinked)
        );
        assert_eq!(
            block_on(store.delete_passkey("a", "p1", &entry())),
            Ok(Unlink::NotFound)
        );
        block_on(store.record_passkey_use(&PasskeyUse {
            passkey_id: "p2",
            sign_count: 5,
            backed_up: true,
            now: 9,
        }))
        .unwrap();
        block_on(store.record_passkey_use(&PasskeyUse {
            passkey_id: "p2",
            sign_count: 3,
            backed_up: true,
            now: 10,
        }))
        .unwrap();
        let stored = block_on(store.find_passkey("p2")).unwrap().unwrap();
        assert_eq!((stored.sign_count, stored.last_used_at), (5, Some(10)));
    }

    #[test]
    fn a_grant_is_spent_once_only_by_its_own_kind_and_only_while_live() {
        let store = MemoryStore::default();
        block_on(store.put_grant(GrantKind::State, "d", "payload", 10, 20)).unwrap();
        assert_eq!(
            block_on(store.take_grant(GrantKind::Code, "d", 11)),
            Ok(None)
        );
        assert_eq!(
            block_on(store.take_grant(GrantKind::State, "d", 11)),
            Ok(Some("payload".into()))
        );
        assert_eq!(
            block_on(store.take_grant(GrantKind::State, "d", 11)),
            Ok(None)
        );
        block_on(store.put_grant(GrantKind::Code, "e", "p", 10, 20)).unwrap();
        assert_eq!(
            block_on(store.take_grant(GrantKind::Code, "e", 20)),
            Ok(None)
        );
    }
}
