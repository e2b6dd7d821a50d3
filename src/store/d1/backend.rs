//! The storage traits of the tables on D1. The queries themselves live in this module's
//! siblings (`sessions`, `users`, ...); what lives in KV and Durable Objects is
//! `store::bindings`, whichever database holds the tables.

use crate::domain::access::Role;
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::domain::email::{Message, Purpose};
use crate::domain::identity::{GrantKind, Identity, Unlink};
use crate::domain::mfa::{Factor, SessionLevel};
use crate::domain::one_time::IssuedToken;
use crate::domain::passkey::{ChallengePurpose, Passkey, SpentChallenge};
use crate::domain::query::{Page, PrefixRange};
use crate::domain::session::Session;
use crate::domain::user::User;
use crate::store::d1::{
    audit, database, factors, identities, maintenance, one_time_tokens, outbox, passkeys, ping,
    roles, sessions, users,
};
use crate::store::error::StoreError;
use crate::store::traits::{
    AuditStore, Ban, Confirmation, FactorStore, HealthStore, IdentityStore, MaintenanceStore,
    NewFactor, NewIdentity, NewPasskey, NewSession, NewToken, NewUser, OAuthGrantStore,
    OneTimeTokenStore, OutboxStore, PasskeyStore, PasskeyUse, ProfileChange, Pruned,
    RefreshTokenStore, RoleStore, RotatedSession, Rotation, SessionStore, StoredMessage,
    TokenEffect, UserStore,
};
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

    async fn find_by_live_session(
        &self,
        user_id: &str,
        session_id: &str,
        issued_at: i64,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        users::find_by_live_session(&database(self.env)?, user_id, session_id, issued_at, now).await
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        users::find_by_email(&database(self.env)?, email).await
    }

    async fn find_by_identifier(&self, identifier: &str) -> Result<Option<User>, StoreError> {
        users::find_by_identifier(&database(self.env)?, identifier).await
    }

    async fn create_user(
        &self,
        user: &NewUser<'_>,
        session: Option<&NewSession<'_>>,
        entry: &AuditEntry,
        verification: Option<&NewToken<'_>>,
    ) -> Result<(), StoreError> {
        sessions::create_user_with_session(&database(self.env)?, user, session, entry, verification)
            .await
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        users::update_password(
            &database(self.env)?,
            user_id,
            password_hash,
            keep_session,
            now,
            entry,
        )
        .await
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
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        audit::record(&database(self.env)?, entry).await
    }

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

    async fn roles_granting(&self, permission: &str) -> Result<Vec<String>, StoreError> {
        roles::granting(&database(self.env)?, permission).await
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
    async fn create_session(
        &self,
        session: &NewSession<'_>,
        rehashed_password: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        sessions::create_session(&database(self.env)?, session, rehashed_password, entry).await
    }

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

impl MaintenanceStore for D1Backend<'_> {
    async fn prune(&self, now: i64, audit_cutoff: Option<i64>) -> Result<Pruned, StoreError> {
        maintenance::prune(&database(self.env)?, now, audit_cutoff).await
    }
}

impl HealthStore for D1Backend<'_> {
    async fn ping(&self) -> Result<(), StoreError> {
        ping(&database(self.env)?).await
    }
}

impl OneTimeTokenStore for D1Backend<'_> {
    async fn issue_token(&self, token: &NewToken<'_>) -> Result<(), StoreError> {
        one_time_tokens::issue(&database(self.env)?, token).await
    }

    async fn find_token_by_hash(
        &self,
        purpose: Purpose,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        one_time_tokens::find_live_by_hash(&database(self.env)?, purpose, token_hash, now).await
    }

    async fn find_token_by_email(
        &self,
        purpose: Purpose,
        email: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        one_time_tokens::find_live_by_email(&database(self.env)?, purpose, email, now).await
    }

    async fn record_failed_code(
        &self,
        token_id: &str,
        max_attempts: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        one_time_tokens::record_failed_code(&database(self.env)?, token_id, max_attempts, now).await
    }

    async fn spend_token(
        &self,
        token: &IssuedToken,
        effect: TokenEffect<'_>,
        spend_id: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        one_time_tokens::spend(&database(self.env)?, token, effect, spend_id, now).await
    }

    async fn equivalent_work(&self, now: i64) -> Result<(), StoreError> {
        one_time_tokens::equivalent_work(&database(self.env)?, now).await
    }
}

impl OutboxStore for D1Backend<'_> {
    async fn store_message(
        &self,
        id: &str,
        message: &Message,
        token: Option<&str>,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        outbox::store(&database(self.env)?, id, message, token, code, now).await
    }

    async fn messages_to(&self, to: &str) -> Result<Vec<StoredMessage>, StoreError> {
        outbox::list(&database(self.env)?, to).await
    }
}

impl RefreshTokenStore for D1Backend<'_> {
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation<'_>,
    ) -> Result<Option<RotatedSession>, StoreError> {
        sessions::rotate_refresh_token(&database(self.env)?, rotation).await
    }

    async fn refresh_token_spent_at(
        &self,
        session_id: &str,
        token_hash: &str,
    ) -> Result<Option<Option<i64>>, StoreError> {
        sessions::token_spent_at(&database(self.env)?, session_id, token_hash).await
    }

    async fn session_is_live(&self, session_id: &str, now: i64) -> Result<bool, StoreError> {
        sessions::is_live(&database(self.env)?, session_id, now).await
    }

    async fn session_owner(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        sessions::owner(&database(self.env)?, session_id).await
    }
}

impl IdentityStore for D1Backend<'_> {
    async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError> {
        identities::find(&database(self.env)?, provider, subject).await
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>, StoreError> {
        identities::of_user(&database(self.env)?, user_id).await
    }

    async fn create_user_with_identity(
        &self,
        user: &NewUser<'_>,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        identities::create_user(&database(self.env)?, user, identity, entry).await
    }

    async fn link_identity(
        &self,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        identities::link(&database(self.env)?, identity, entry).await
    }

    async fn touch_identity(
        &self,
        identity_id: &str,
        email: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        identities::touch(&database(self.env)?, identity_id, email, now, entry).await
    }

    async fn unlink_identity(
        &self,
        user_id: &str,
        identity_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        identities::unlink(&database(self.env)?, user_id, identity_id, entry).await
    }
}

impl OAuthGrantStore for D1Backend<'_> {
    async fn put_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        payload: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        identities::put_grant(&database(self.env)?, kind, digest, payload, now, expires_at).await
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        identities::take_grant(&database(self.env)?, kind, digest, now).await
    }
}

impl FactorStore for D1Backend<'_> {
    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        factors::factors_of(&database(self.env)?, user_id).await
    }

    async fn put_pending_totp(&self, factor: &NewFactor<'_>) -> Result<bool, StoreError> {
        factors::put_pending_totp(&database(self.env)?, factor).await
    }

    async fn confirm_totp(&self, confirmation: &Confirmation<'_>) -> Result<bool, StoreError> {
        factors::confirm_totp(&database(self.env)?, confirmation).await
    }

    async fn use_totp_step(&self, factor_id: &str, step: i64) -> Result<bool, StoreError> {
        factors::use_totp_step(&database(self.env)?, factor_id, step).await
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        factors::use_recovery_code(&database(self.env)?, user_id, digest, now).await
    }

    async fn recovery_codes_remaining(&self, user_id: &str) -> Result<u64, StoreError> {
        factors::recovery_codes_remaining(&database(self.env)?, user_id).await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        digests: &[String],
        _now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        factors::replace_recovery_codes(&database(self.env)?, user_id, digests, entry).await
    }

    async fn remove_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        factors::remove_factors(&database(self.env)?, user_id, entry).await
    }

    async fn reset_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        factors::reset_factors(&database(self.env)?, user_id, entry).await
    }

    async fn raise_session(
        &self,
        session_id: &str,
        user_id: &str,
        level: &SessionLevel,
    ) -> Result<bool, StoreError> {
        factors::raise_session(&database(self.env)?, session_id, user_id, level).await
    }
}

impl PasskeyStore for D1Backend<'_> {
    async fn add_passkey(
        &self,
        passkey: &NewPasskey<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        passkeys::add(&database(self.env)?, passkey, entry).await
    }

    async fn passkeys_of(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        passkeys::of_user(&database(self.env)?, user_id).await
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
        passkeys::find(&database(self.env)?, credential_id).await
    }

    async fn record_passkey_use(&self, used: &PasskeyUse<'_>) -> Result<(), StoreError> {
        passkeys::record_use(&database(self.env)?, used).await
    }

    async fn rename_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        name: &str,
        entry: &AuditEntry,
    ) -> Result<Option<Passkey>, StoreError> {
        passkeys::rename(&database(self.env)?, user_id, passkey_id, name, entry).await
    }

    async fn delete_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        passkeys::delete(&database(self.env)?, user_id, passkey_id, entry).await
    }

    async fn put_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        user_id: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        passkeys::put_challenge(
            &database(self.env)?,
            digest,
            purpose,
            user_id,
            now,
            expires_at,
        )
        .await
    }

    async fn take_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        now: i64,
    ) -> Result<Option<SpentChallenge>, StoreError> {
        passkeys::take_challenge(&database(self.env)?, digest, purpose, now).await
    }
}
