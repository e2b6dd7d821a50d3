//! The backend a request's flows run on, as `DATABASE` chooses: D1 (the default) or
//! PostgreSQL. Each trait call goes to the chosen one; both keep revocations, login
//! failures and budgets in the same KV namespace and Durable Objects.

use crate::config::{DatabaseKind, RateLimit};
use crate::domain::access::Role;
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord, Origin};
use crate::domain::email::{Message, Purpose};
use crate::domain::identity::{GrantKind, Identity, Unlink};
use crate::domain::lockout::FailureState;
use crate::domain::mfa::{Factor, SessionLevel};
use crate::domain::one_time::IssuedToken;
use crate::domain::passkey::{ChallengePurpose, Passkey, SpentChallenge};
use crate::domain::query::{Page, PrefixRange};
use crate::domain::rate_limit::Decision;
use crate::domain::session::Session;
use crate::domain::user::User;
use crate::store::bindings::Bindings;
use crate::store::d1::backend::D1Backend;
use crate::store::error::StoreError;
use crate::store::postgres::backend::PgBackend;
use crate::store::traits::{
    AuditStore, Ban, Confirmation, FactorStore, HealthStore, IdentityStore, LoginFailureStore,
    MaintenanceStore, NewFactor, NewIdentity, NewPasskey, NewSession, NewToken, NewUser,
    OAuthGrantStore, OneTimeTokenStore, OutboxStore, PasskeyStore, PasskeyUse, ProfileChange,
    Pruned, RateLimitStore, RefreshRotation, RefreshTokenStore, RevocationStore, RoleStore,
    RotateReply, RotatedSession, Rotation, SessionStore, StoredMessage, TokenEffect, UserStore,
};
use worker::Env;

/// Where the tables live.
enum Tables<'a> {
    D1(D1Backend<'a>),
    Postgres(PgBackend<'a>),
}

/// The chosen backend on one request's bindings: its tables, and the KV and Durable Object
/// bindings every backend shares.
pub struct Backend<'a> {
    tables: Tables<'a>,
    bindings: Bindings<'a>,
}

impl<'a> Backend<'a> {
    pub fn new(env: &'a Env, kind: DatabaseKind) -> Self {
        let tables = match kind {
            DatabaseKind::D1 => Tables::D1(D1Backend::new(env)),
            DatabaseKind::Postgres => Tables::Postgres(PgBackend::new(env)),
        };
        Self {
            tables,
            bindings: Bindings::new(env),
        }
    }

    /// Which database holds the tables, for `/api/health`.
    pub fn kind(&self) -> DatabaseKind {
        match self.tables {
            Tables::D1(_) => DatabaseKind::D1,
            Tables::Postgres(_) => DatabaseKind::Postgres,
        }
    }
}

/// Run the same call on whichever database holds the tables.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.tables {
            Tables::D1($store) => $call,
            Tables::Postgres($store) => $call,
        }
    };
}

impl RevocationStore for Backend<'_> {
    async fn revoke_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        self.bindings.revoke_token(jti, expires_at, now).await
    }

    async fn is_revoked(&self, jti: &str, cache_seconds: u64) -> Result<bool, StoreError> {
        self.bindings.is_revoked(jti, cache_seconds).await
    }
}

impl LoginFailureStore for Backend<'_> {
    async fn load_failures(&self, digest: &str) -> Result<FailureState, StoreError> {
        self.bindings.load_failures(digest).await
    }

    async fn save_failures(
        &self,
        digest: &str,
        state: &FailureState,
        forget_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.bindings
            .save_failures(digest, state, forget_at, now)
            .await
    }

    async fn clear_failures(&self, digest: &str) -> Result<(), StoreError> {
        self.bindings.clear_failures(digest).await
    }
}

impl RefreshRotation for Backend<'_> {
    async fn rotate(
        &self,
        session_id: &str,
        presented_hash: &str,
        origin: Origin,
        budget: RateLimit,
    ) -> Result<RotateReply, StoreError> {
        self.bindings
            .rotate(session_id, presented_hash, origin, budget)
            .await
    }
}

impl RateLimitStore for Backend<'_> {
    async fn check_rate(&self, key: &str, budget: RateLimit) -> Result<Decision, StoreError> {
        self.bindings.check_rate(key, budget).await
    }
}

impl UserStore for Backend<'_> {
    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, store => store.find_user(user_id).await)
    }

    async fn find_by_live_session(
        &self,
        user_id: &str,
        session_id: &str,
        issued_at: i64,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        dispatch!(self, store => store.find_by_live_session(user_id, session_id, issued_at, now).await)
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, store => store.find_by_email(email).await)
    }

    async fn find_by_identifier(&self, identifier: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, store => store.find_by_identifier(identifier).await)
    }

    async fn create_user(
        &self,
        user: &NewUser<'_>,
        session: Option<&NewSession<'_>>,
        entry: &AuditEntry,
        verification: Option<&NewToken<'_>>,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.create_user(user, session, entry, verification).await)
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        dispatch!(self, store => store.set_password(user_id, password_hash, keep_session, now, entry).await)
    }

    async fn list_users(
        &self,
        search: Option<&PrefixRange>,
        page: Page,
    ) -> Result<(Vec<User>, u64), StoreError> {
        dispatch!(self, store => store.list_users(search, page).await)
    }

    async fn update_profile(
        &self,
        user_id: &str,
        change: &ProfileChange<'_>,
        now: i64,
        entry: Option<&AuditEntry>,
    ) -> Result<Option<User>, StoreError> {
        dispatch!(self, store => store.update_profile(user_id, change, now, entry).await)
    }

    async fn delete_user(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        dispatch!(self, store => store.delete_user(user_id, entry).await)
    }

    async fn ban_user(
        &self,
        user_id: &str,
        ban: &Ban<'_>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(Option<User>, usize), StoreError> {
        dispatch!(self, store => store.ban_user(user_id, ban, now, entry).await)
    }

    async fn unban_user(
        &self,
        user_id: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<User>, StoreError> {
        dispatch!(self, store => store.unban_user(user_id, now, entry).await)
    }
}

impl RoleStore for Backend<'_> {
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        dispatch!(self, store => store.list_roles().await)
    }

    async fn roles_granting(&self, permission: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, store => store.roles_granting(permission).await)
    }

    async fn role_exists(&self, role: &str) -> Result<bool, StoreError> {
        dispatch!(self, store => store.role_exists(role).await)
    }

    async fn grant_role(
        &self,
        user_id: &str,
        role: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        dispatch!(self, store => store.grant_role(user_id, role, now, entry).await)
    }

    async fn remove_role(
        &self,
        user_id: &str,
        role: &str,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        dispatch!(self, store => store.remove_role(user_id, role, entry).await)
    }
}

impl SessionStore for Backend<'_> {
    async fn create_session(
        &self,
        session: &NewSession<'_>,
        rehashed_password: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.create_session(session, rehashed_password, entry).await)
    }

    async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        dispatch!(self, store => store.live_sessions(user_id, now).await)
    }

    async fn revoke_session(
        &self,
        session_id: &str,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => store.revoke_session(session_id, user_id, reason, now, entry).await)
    }

    async fn revoke_all_sessions(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        dispatch!(self, store => store.revoke_all_sessions(user_id, reason, now, entry).await)
    }
}

impl MaintenanceStore for Backend<'_> {
    async fn prune(&self, now: i64, audit_cutoff: Option<i64>) -> Result<Pruned, StoreError> {
        dispatch!(self, store => store.prune(now, audit_cutoff).await)
    }
}

impl HealthStore for Backend<'_> {
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, store => store.ping().await)
    }
}

impl AuditStore for Backend<'_> {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        dispatch!(self, store => store.record_audit(entry).await)
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        dispatch!(self, store => store.list_audit(filter, page).await)
    }
}

impl OneTimeTokenStore for Backend<'_> {
    async fn issue_token(&self, token: &NewToken<'_>) -> Result<(), StoreError> {
        dispatch!(self, store => store.issue_token(token).await)
    }

    async fn find_token_by_hash(
        &self,
        purpose: Purpose,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        dispatch!(self, store => store.find_token_by_hash(purpose, token_hash, now).await)
    }

    async fn find_token_by_email(
        &self,
        purpose: Purpose,
        email: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        dispatch!(self, store => store.find_token_by_email(purpose, email, now).await)
    }

    async fn record_failed_code(
        &self,
        token_id: &str,
        max_attempts: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.record_failed_code(token_id, max_attempts, now).await)
    }

    async fn spend_token(
        &self,
        token: &IssuedToken,
        effect: TokenEffect<'_>,
        spend_id: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        dispatch!(self, store => store.spend_token(token, effect, spend_id, now).await)
    }

    async fn equivalent_work(&self, now: i64) -> Result<(), StoreError> {
        dispatch!(self, store => store.equivalent_work(now).await)
    }
}

impl OutboxStore for Backend<'_> {
    async fn store_message(
        &self,
        id: &str,
        message: &Message,
        token: Option<&str>,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.store_message(id, message, token, code, now).await)
    }

    async fn messages_to(&self, to: &str) -> Result<Vec<StoredMessage>, StoreError> {
        dispatch!(self, store => store.messages_to(to).await)
    }
}

impl RefreshTokenStore for Backend<'_> {
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation<'_>,
    ) -> Result<Option<RotatedSession>, StoreError> {
        dispatch!(self, store => store.rotate_refresh_token(rotation).await)
    }

    async fn refresh_token_spent_at(
        &self,
        session_id: &str,
        token_hash: &str,
    ) -> Result<Option<Option<i64>>, StoreError> {
        dispatch!(self, store => store.refresh_token_spent_at(session_id, token_hash).await)
    }

    async fn session_is_live(&self, session_id: &str, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, store => store.session_is_live(session_id, now).await)
    }

    async fn session_owner(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, store => store.session_owner(session_id).await)
    }
}

impl IdentityStore for Backend<'_> {
    async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError> {
        dispatch!(self, store => store.find_identity(provider, subject).await)
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>, StoreError> {
        dispatch!(self, store => store.identities_of(user_id).await)
    }

    async fn create_user_with_identity(
        &self,
        user: &NewUser<'_>,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.create_user_with_identity(user, identity, entry).await)
    }

    async fn link_identity(
        &self,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.link_identity(identity, entry).await)
    }

    async fn touch_identity(
        &self,
        identity_id: &str,
        email: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.touch_identity(identity_id, email, now, entry).await)
    }

    async fn unlink_identity(
        &self,
        user_id: &str,
        identity_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        dispatch!(self, store => store.unlink_identity(user_id, identity_id, entry).await)
    }
}

impl OAuthGrantStore for Backend<'_> {
    async fn put_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        payload: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.put_grant(kind, digest, payload, now, expires_at).await)
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(self, store => store.take_grant(kind, digest, now).await)
    }
}

impl FactorStore for Backend<'_> {
    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        dispatch!(self, store => store.factors_of(user_id).await)
    }

    async fn put_pending_totp(&self, factor: &NewFactor<'_>) -> Result<bool, StoreError> {
        dispatch!(self, store => store.put_pending_totp(factor).await)
    }

    async fn confirm_totp(&self, confirmation: &Confirmation<'_>) -> Result<bool, StoreError> {
        dispatch!(self, store => store.confirm_totp(confirmation).await)
    }

    async fn use_totp_step(&self, factor_id: &str, step: i64) -> Result<bool, StoreError> {
        dispatch!(self, store => store.use_totp_step(factor_id, step).await)
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => store.use_recovery_code(user_id, digest, now).await)
    }

    async fn recovery_codes_remaining(&self, user_id: &str) -> Result<u64, StoreError> {
        dispatch!(self, store => store.recovery_codes_remaining(user_id).await)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        digests: &[String],
        now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => store.replace_recovery_codes(user_id, digests, now, entry).await)
    }

    async fn remove_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        dispatch!(self, store => store.remove_factors(user_id, entry).await)
    }

    async fn reset_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        dispatch!(self, store => store.reset_factors(user_id, entry).await)
    }

    async fn raise_session(
        &self,
        session_id: &str,
        user_id: &str,
        level: &SessionLevel,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => store.raise_session(session_id, user_id, level).await)
    }
}

impl PasskeyStore for Backend<'_> {
    async fn add_passkey(
        &self,
        passkey: &NewPasskey<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.add_passkey(passkey, entry).await)
    }

    async fn passkeys_of(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        dispatch!(self, store => store.passkeys_of(user_id).await)
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
        dispatch!(self, store => store.find_passkey(credential_id).await)
    }

    async fn record_passkey_use(&self, used: &PasskeyUse<'_>) -> Result<(), StoreError> {
        dispatch!(self, store => store.record_passkey_use(used).await)
    }

    async fn rename_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        name: &str,
        entry: &AuditEntry,
    ) -> Result<Option<Passkey>, StoreError> {
        dispatch!(self, store => store.rename_passkey(user_id, passkey_id, name, entry).await)
    }

    async fn delete_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        dispatch!(self, store => store.delete_passkey(user_id, passkey_id, entry).await)
    }

    async fn put_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        user_id: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => store.put_challenge(digest, purpose, user_id, now, expires_at).await)
    }

    async fn take_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        now: i64,
    ) -> Result<Option<SpentChallenge>, StoreError> {
        dispatch!(self, store => store.take_challenge(digest, purpose, now).await)
    }
}
