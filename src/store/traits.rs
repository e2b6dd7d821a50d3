//! The storage traits the service layer is written against, one per aggregate. Domain types
//! cross them, never rows, and every failure is a [`StoreError`]. A change that spans
//! several records (a session's revocation and its audit entry) is one call, which an
//! implementation runs atomically.
//!
//! Implementations: [`D1Backend`](super::d1_backend::D1Backend) in the Worker (D1 for the
//! tables, KV for the revocation list and the login failure counters, Durable Objects for
//! refresh rotation and rate limits), and an in-memory one for the service layer's native
//! tests.

// The Worker is single-threaded: its futures are not `Send`, and none is asked of them.
#![allow(async_fn_in_trait)]

use crate::config::RateLimit;
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
use crate::domain::session::{Session, SessionExpiry};
use crate::domain::user::User;
use crate::store::error::StoreError;
use serde::{Deserialize, Serialize};

/// A new account, as signup creates it.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub email: Option<&'a str>,
    /// A PHC string, or `domain::password::NO_PASSWORD` for an account created through a
    /// provider.
    pub password_hash: &'a str,
    /// Whether the email is verified from the start (a provider asserted it); signup: no.
    pub email_verified: bool,
    pub now: i64,
}

/// A provider identity about to be linked.
pub struct NewIdentity<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub provider: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub now: i64,
}

/// A session about to be created, with the digest of its first refresh token.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub refresh_token_hash: &'a str,
    pub user_agent: Option<&'a str>,
    pub colo: Option<&'a str>,
    pub country: Option<&'a str>,
    pub now: i64,
    pub expiry: SessionExpiry,
    /// What the sign-in proved (`aal`, `amr`, `aal2_at`).
    pub level: &'a SessionLevel,
}

/// A one-time token about to be stored: digests only, never the token or code.
pub struct NewToken<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub purpose: Purpose,
    pub token_hash: &'a str,
    pub code_hash: &'a str,
    /// The address the message goes to.
    pub email: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// What spending a one-time token does, in the same transaction.
pub enum TokenEffect<'a> {
    /// Mark the account's email verified, if it is still the address the token went to.
    VerifyEmail,
    /// Set a new password, end every session, refuse earlier access tokens, spend the
    /// account's other reset tokens, and verify the address the token went to.
    ResetPassword { password_hash: &'a str },
    /// Make the address the token went to the account's email, verified.
    ChangeEmail,
}

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

    /// The account behind an access token, only while its session is live, the account is
    /// not banned and the token was issued (`issued_at`) after the account's not-before
    /// stamp; with the time its session signed in.
    async fn find_by_live_session(
        &self,
        user_id: &str,
        session_id: &str,
        issued_at: i64,
        now: i64,
    ) -> Result<Option<User>, StoreError>;

    /// The account with this canonical email, if any.
    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// The account a login identifier names: an email when it looks like one, else a
    /// username. An identifier that is neither names no account.
    async fn find_by_identifier(&self, identifier: &str) -> Result<Option<User>, StoreError>;

    /// Create an account with the default role, its first session when given, the signup's
    /// audit entry and a verification token when given, in one transaction. A taken
    /// username or email is [`StoreError::Taken`] and writes nothing; when both are taken,
    /// the username is reported, so the answer never depends on whether an address has an
    /// account.
    async fn create_user(
        &self,
        user: &NewUser<'_>,
        session: Option<&NewSession<'_>>,
        entry: &AuditEntry,
        verification: Option<&NewToken<'_>>,
    ) -> Result<(), StoreError>;

    /// Store a new password hash with `entry`; when `keep_session` names a session, every
    /// other live session of the account is revoked in the same transaction. Returns how
    /// many were.
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError>;

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

/// Provider identities linked to accounts.
pub trait IdentityStore {
    /// The identity a provider's subject is, if it is linked.
    async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError>;

    /// An account's identities, oldest first.
    async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>, StoreError>;

    /// Create an account (default role) with its first identity and `entry`, in one
    /// transaction. A taken username or email is `Taken` as for `create_user`; a subject
    /// linked meanwhile is `Taken(Unique::Identity)`; nothing is written then.
    async fn create_user_with_identity(
        &self,
        user: &NewUser<'_>,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// Link an identity to an existing account with `entry`, in one transaction;
    /// `Taken(Unique::Identity)` when the subject is linked to any account, or the account
    /// already has an identity of that provider.
    async fn link_identity(
        &self,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// Record a sign-in through an identity: its last use, the email the provider asserts
    /// now, and `entry`, in one transaction.
    async fn touch_identity(
        &self,
        identity_id: &str,
        email: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// Remove one of an account's identities with `entry`, in one transaction, unless it is
    /// the account's last way to sign in (no password and no other identity), which is
    /// decided inside that transaction so two concurrent unlinks cannot both pass.
    async fn unlink_identity(
        &self,
        user_id: &str,
        identity_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError>;
}

/// The one-time values of the redirect flow (state, exchange code), by digest.
pub trait OAuthGrantStore {
    /// Store a value's digest with what spending it yields, until `expires_at`; expired
    /// values are swept at the same time.
    async fn put_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        payload: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Spend a value: remove it and return its payload, atomically, so of two concurrent
    /// spends exactly one gets it. `None` when unknown, spent, of the other kind, or
    /// expired (an expired value is removed all the same).
    async fn take_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
}

/// A pending TOTP factor about to be stored: its secret sealed (`domain::mfa`).
pub struct NewFactor<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub sealed_secret: &'a str,
    pub now: i64,
}

/// A pending factor's first right code: what confirming it writes, together.
pub struct Confirmation<'a> {
    pub factor_id: &'a str,
    pub user_id: &'a str,
    /// The time step of the code, the factor's first `last_used_step`.
    pub step: i64,
    /// The digests of the new recovery codes (they replace any old ones).
    pub recovery_digests: &'a [String],
    /// The session that proved the code, raised to `level`.
    pub session_id: &'a str,
    pub level: &'a SessionLevel,
    pub now: i64,
    pub entry: &'a AuditEntry,
}

/// Second factors (TOTP, recovery codes) and the level a session reached.
pub trait FactorStore {
    /// An account's factors, pending or confirmed, oldest first.
    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError>;

    /// Store a pending TOTP factor, replacing a pending one of the account. `false`, and
    /// nothing written, when the account has a confirmed one (never replaced this way).
    async fn put_pending_totp(&self, factor: &NewFactor<'_>) -> Result<bool, StoreError>;

    /// Confirm a pending factor: set `confirmed_at` and `last_used_step`, replace the
    /// account's recovery codes, raise the session and write the entry, in one transaction,
    /// only while the factor is still pending (`false` otherwise, nothing written).
    async fn confirm_totp(&self, confirmation: &Confirmation<'_>) -> Result<bool, StoreError>;

    /// Accept a code of time step `step` for a confirmed factor: one compare-and-set, so of
    /// two requests with one code (or a code of an earlier step) exactly one passes.
    async fn use_totp_step(&self, factor_id: &str, step: i64) -> Result<bool, StoreError>;

    /// Spend an unused recovery code of the account, by digest: one compare-and-set.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// How many of the account's recovery codes are unused.
    async fn recovery_codes_remaining(&self, user_id: &str) -> Result<u64, StoreError>;

    /// Replace the account's recovery codes with `digests` and write `entry`, in one
    /// transaction, only while it has a confirmed factor (`false` otherwise).
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        digests: &[String],
        now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Remove every factor and recovery code of the account with `entry`, in one
    /// transaction; `false` (no entry) when it had no factor.
    async fn remove_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError>;

    /// An administrator's reset: remove every factor, recovery code and passkey of the
    /// account with `entry`, in one transaction; `false` (no entry) when it had none.
    async fn reset_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError>;

    /// Record what a live session of `user_id` has proved now (a step-up).
    async fn raise_session(
        &self,
        session_id: &str,
        user_id: &str,
        level: &SessionLevel,
    ) -> Result<bool, StoreError>;
}

/// A passkey about to be stored (a registration that passed verification).
pub struct NewPasskey<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    /// base64url, unpadded.
    pub credential_id: &'a str,
    /// The COSE_Key, base64url, unpadded.
    pub public_key: &'a str,
    pub algorithm: i64,
    pub sign_count: i64,
    pub name: &'a str,
    pub aaguid: &'a str,
    pub backup_eligible: bool,
    pub backed_up: bool,
    /// Comma list (`domain::passkey::join_transports`).
    pub transports: &'a str,
    pub now: i64,
}

/// A passkey's use in a verified assertion.
pub struct PasskeyUse<'a> {
    pub passkey_id: &'a str,
    /// The counter the assertion showed; stored only if it is ahead of the stored one.
    pub sign_count: i64,
    pub backed_up: bool,
    pub now: i64,
}

/// Passkeys (WebAuthn credentials) and the challenges of their ceremonies
/// (migrations/0007_passkeys.sql).
pub trait PasskeyStore {
    /// Store a new passkey with `entry`, in one transaction. A credential id registered
    /// already (to any account) is `Taken(Unique::Passkey)`; an account that no longer
    /// exists is refused by the foreign key (an outage); nothing is written then.
    async fn add_passkey(
        &self,
        passkey: &NewPasskey<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// An account's passkeys, oldest first.
    async fn passkeys_of(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError>;

    /// The passkey with this credential id (base64url), whoever it belongs to.
    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError>;

    /// Record a use: `last_used_at`, the backup state, and the counter, which only moves
    /// forward (the update is conditional, so of two concurrent uses the higher counter
    /// stays).
    async fn record_passkey_use(&self, used: &PasskeyUse<'_>) -> Result<(), StoreError>;

    /// Rename one of an account's passkeys with `entry`, in one transaction; `None` when
    /// the account has no passkey of that id.
    async fn rename_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        name: &str,
        entry: &AuditEntry,
    ) -> Result<Option<Passkey>, StoreError>;

    /// Remove one of an account's passkeys with `entry`, in one transaction, unless it is
    /// the account's last way to sign in (no password, no identity, no other passkey),
    /// which is decided inside that transaction so two concurrent deletes cannot both pass.
    async fn delete_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError>;

    /// Store a challenge's digest for `purpose` (and the account it is for), until
    /// `expires_at`; expired challenges are swept at the same time.
    async fn put_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        user_id: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Spend a challenge: remove it and return what it was issued with, atomically, so of
    /// two concurrent spends exactly one gets it. `None` when unknown, spent, of the other
    /// purpose, or expired (an expired one is removed all the same).
    async fn take_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        now: i64,
    ) -> Result<Option<SpentChallenge>, StoreError>;
}

/// Roles and who holds them.
pub trait RoleStore {
    /// Every role, by name.
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;

    /// The roles that grant a permission.
    async fn roles_granting(&self, permission: &str) -> Result<Vec<String>, StoreError>;

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
    /// Start a session for an existing account (a login) with `entry`; replace an outdated
    /// password hash in the same transaction when given.
    async fn create_session(
        &self,
        session: &NewSession<'_>,
        rehashed_password: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError>;

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

    /// Whether the token `jti` is refused; an answer may be remembered for `cache_seconds`.
    async fn is_revoked(&self, jti: &str, cache_seconds: u64) -> Result<bool, StoreError>;
}

/// What one housekeeping run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: usize,
    pub refresh_tokens: usize,
    pub audit_entries: usize,
    pub one_time_tokens: usize,
    /// Whether a kind still had more to delete when the run stopped.
    pub incomplete: bool,
}

/// Housekeeping (the cron trigger).
pub trait MaintenanceStore {
    /// Purge ended sessions with their refresh tokens, expired one-time tokens, and audit
    /// entries older than `audit_cutoff` (`None`: keep them all); nothing else.
    async fn prune(&self, now: i64, audit_cutoff: Option<i64>) -> Result<Pruned, StoreError>;
}

/// Whether the store answers at all (for the health check).
pub trait HealthStore {
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The audit log (written inside the changes it records; read here).
pub trait AuditStore {
    /// Record an entry on its own, for an event that changes nothing else (a failed login).
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// One page of the entries matching `filter`, newest first, and how many match in all.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError>;
}

/// One-time tokens of the email flows (verification, reset, change of address).
pub trait OneTimeTokenStore {
    /// Store a token, spending the account's older live tokens of the same purpose.
    async fn issue_token(&self, token: &NewToken<'_>) -> Result<(), StoreError>;

    /// The live token of `purpose` with this link-token digest.
    async fn find_token_by_hash(
        &self,
        purpose: Purpose,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError>;

    /// The newest live token of `purpose` sent to `email` (for a code).
    async fn find_token_by_email(
        &self,
        purpose: Purpose,
        email: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError>;

    /// Count a wrong code; the token is spent once `max_attempts` is reached.
    async fn record_failed_code(
        &self,
        token_id: &str,
        max_attempts: i64,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Spend a token for its effect, in one transaction; `None` when it was no longer live
    /// (spent concurrently, expired). Returns the account as it is now.
    async fn spend_token(
        &self,
        token: &IssuedToken,
        effect: TokenEffect<'_>,
        spend_id: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError>;

    /// The work of an issue without a token, so a request for an unknown address takes as
    /// long as one for a known one (and sweeps old tokens while at it).
    async fn equivalent_work(&self, now: i64) -> Result<(), StoreError>;
}

/// Failed logins per account or identifier (by keyed digest), for the lockout.
pub trait LoginFailureStore {
    /// The failures recorded for `digest` (none when nothing is stored).
    async fn load_failures(&self, digest: &str) -> Result<FailureState, StoreError>;

    /// Store the failures of `digest`, to be forgotten at `forget_at`.
    async fn save_failures(
        &self,
        digest: &str,
        state: &FailureState,
        forget_at: i64,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Forget the failures of `digest`.
    async fn clear_failures(&self, digest: &str) -> Result<(), StoreError>;
}

/// What a refresh token's rotation came to.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RotateOutcome {
    /// The token was live: here is its successor, and the level the session reached (so the
    /// new access token keeps `aal`/`amr` without another read).
    Rotated {
        refresh_token: String,
        user: User,
        // `default`: a reply without it parses (as the lowest level) rather than failing.
        #[serde(default)]
        level: SessionLevel,
    },
    /// The token was just rotated by a concurrent request, within the grace window: the
    /// same successor, and the level as that rotation read it.
    Replayed {
        refresh_token: String,
        user: User,
        #[serde(default)]
        level: SessionLevel,
    },
    /// The token was spent before the grace window: the session is ended.
    Reused { user_id: Option<String> },
    /// Unknown, expired, or its session is not live.
    Invalid,
}

/// The budget decision of a rotation and, when the budget allowed it, its outcome.
#[derive(Debug, Serialize, Deserialize)]
pub struct RotateReply {
    pub decision: Decision,
    pub outcome: Option<RotateOutcome>,
}

/// One step of a session's refresh chain.
pub struct Rotation<'a> {
    pub session_id: &'a str,
    pub presented_hash: &'a str,
    pub successor_hash: &'a str,
    pub now: i64,
    pub idle_ttl_seconds: i64,
}

/// What a rotation read back with the successor: the account, and the level its session
/// reached, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedSession {
    pub user: User,
    pub level: SessionLevel,
}

/// The refresh tokens behind a session's rotation, as the session's Durable Object (the
/// single writer of its chain) reads and writes them.
pub trait RefreshTokenStore {
    /// Exchange a refresh token (by digest) for its successor and slide the session's idle
    /// expiry (never past its absolute expiry), in one transaction; the account and the
    /// session's level, or `None` when the token is unknown, spent or expired, or its
    /// session is not live.
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation<'_>,
    ) -> Result<Option<RotatedSession>, StoreError>;

    /// When a refresh token of this session was spent: `None` if the session never issued
    /// it, `Some(None)` if it is unspent, `Some(Some(t))` if it was spent at `t`.
    async fn refresh_token_spent_at(
        &self,
        session_id: &str,
        token_hash: &str,
    ) -> Result<Option<Option<i64>>, StoreError>;

    /// Whether a session is live now (not revoked, not expired, its account not banned).
    async fn session_is_live(&self, session_id: &str, now: i64) -> Result<bool, StoreError>;

    /// The account a session belongs to.
    async fn session_owner(&self, session_id: &str) -> Result<Option<String>, StoreError>;
}

/// Refresh token rotation, serialised per session (a Durable Object in the Worker).
pub trait RefreshRotation {
    /// Rotate the token with this digest of `session_id`, counting the refresh against the
    /// session's `budget`.
    async fn rotate(
        &self,
        session_id: &str,
        presented_hash: &str,
        origin: Origin,
        budget: RateLimit,
    ) -> Result<RotateReply, StoreError>;
}

/// Request budgets (a Durable Object per key in the Worker).
pub trait RateLimitStore {
    /// Count one request against `key`'s budget.
    async fn check_rate(&self, key: &str, budget: RateLimit) -> Result<Decision, StoreError>;
}

/// A message the development outbox stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub purpose: String,
    pub token: Option<String>,
    pub code: Option<String>,
    pub created_at: i64,
}

/// The development outbox: messages stored instead of sent.
pub trait OutboxStore {
    /// Store a message with the token and code it carries.
    async fn store_message(
        &self,
        id: &str,
        message: &Message,
        token: Option<&str>,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The messages to one address, newest first.
    async fn messages_to(&self, to: &str) -> Result<Vec<StoredMessage>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_outcome_carries_the_level_across_the_object_boundary() {
        let level = SessionLevel::first_factor("pwd").raised(1_005);
        let user: User = serde_json::from_value(serde_json::json!({
            "id": "user-1", "username": "ada", "email": null, "email_verified": true,
            "roles": ["user"], "created_at": 1, "updated_at": 1, "banned_at": null,
            "banned_until": null, "ban_reason": null
        }))
        .unwrap();
        let outcome = RotateOutcome::Replayed {
            refresh_token: "successor".into(),
            user,
            level: level.clone(),
        };
        let text = serde_json::to_string(&outcome).unwrap();
        match serde_json::from_str::<RotateOutcome>(&text).unwrap() {
            RotateOutcome::Replayed { level: read, .. } => assert_eq!(read, level),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reply_from_an_object_that_sends_no_level_still_parses_at_the_lowest_level() {
        // An object of the previous version, answering during a deploy, sends no `level`.
        let text = r#"{"outcome":"rotated","refresh_token":"successor","user":{
            "id":"user-1","username":"ada","email":null,"email_verified":true,"roles":["user"],
            "created_at":1,"updated_at":1,"banned_at":null,"banned_until":null,
            "ban_reason":null}}"#;
        match serde_json::from_str::<RotateOutcome>(text).unwrap() {
            RotateOutcome::Rotated { level, .. } => {
                assert_eq!(level, SessionLevel::default());
                assert!(level.amr.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}
