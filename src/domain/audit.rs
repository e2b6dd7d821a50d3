//! The audit log: what is recorded, how it is filtered, how long it is kept.
//!
//! An entry says who (`actor_id`) did what (`action`) to whom (`target_id`), when, and from
//! where (request id, client IP, Cloudflare colo). `details` adds the few facts an action
//! needs (a role name, a reason); it never holds a password, a token or a full email
//! address, which is why entries are built only through this module's constructors.

use crate::domain::query::{Page, QueryParams};
use crate::domain::session::is_uuid;
use crate::domain::user::{looks_like_email, mask_email};
use crate::error::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Everything the log records. The names are stable: clients filter by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Signup,
    Login,
    LoginFailed,
    Logout,
    PasswordChanged,
    /// Reserved for the password-reset flow (`POST /api/v1/auth/password/reset/confirm`).
    PasswordReset,
    UserUpdated,
    UserDeleted,
    RoleGranted,
    RoleRevoked,
    UserBanned,
    UserUnbanned,
    SessionRevoked,
    SessionsRevokedAll,
    /// A sign-in through a provider identity (the account's first one is a `Signup`).
    ProviderLogin,
    /// A provider identity linked to an account.
    IdentityLinked,
    /// A provider identity unlinked from an account.
    IdentityUnlinked,
    /// A TOTP factor confirmed (the account now needs it to sign in).
    TotpEnrolled,
    /// The account's TOTP factor and recovery codes removed by the account.
    TotpRemoved,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// An administrator removed an account's second factors.
    MfaReset,
    /// A passkey registered to an account.
    PasskeyRegistered,
    /// A passkey renamed.
    PasskeyRenamed,
    /// A passkey removed from an account.
    PasskeyDeleted,
    /// A passwordless sign-in with a passkey (a new session).
    PasskeyLogin,
}

impl AuditAction {
    pub const ALL: [AuditAction; 25] = [
        AuditAction::Signup,
        AuditAction::Login,
        AuditAction::LoginFailed,
        AuditAction::Logout,
        AuditAction::PasswordChanged,
        AuditAction::PasswordReset,
        AuditAction::UserUpdated,
        AuditAction::UserDeleted,
        AuditAction::RoleGranted,
        AuditAction::RoleRevoked,
        AuditAction::UserBanned,
        AuditAction::UserUnbanned,
        AuditAction::SessionRevoked,
        AuditAction::SessionsRevokedAll,
        AuditAction::ProviderLogin,
        AuditAction::IdentityLinked,
        AuditAction::IdentityUnlinked,
        AuditAction::TotpEnrolled,
        AuditAction::TotpRemoved,
        AuditAction::RecoveryCodesRegenerated,
        AuditAction::MfaReset,
        AuditAction::PasskeyRegistered,
        AuditAction::PasskeyRenamed,
        AuditAction::PasskeyDeleted,
        AuditAction::PasskeyLogin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Signup => "user.signup",
            AuditAction::Login => "user.login",
            AuditAction::LoginFailed => "user.login_failed",
            AuditAction::Logout => "user.logout",
            AuditAction::PasswordChanged => "user.password_changed",
            AuditAction::PasswordReset => "user.password_reset",
            AuditAction::UserUpdated => "user.updated",
            AuditAction::UserDeleted => "user.deleted",
            AuditAction::RoleGranted => "user.role_granted",
            AuditAction::RoleRevoked => "user.role_revoked",
            AuditAction::UserBanned => "user.banned",
            AuditAction::UserUnbanned => "user.unbanned",
            AuditAction::SessionRevoked => "session.revoked",
            AuditAction::SessionsRevokedAll => "session.revoked_all",
            AuditAction::ProviderLogin => "user.provider_login",
            AuditAction::IdentityLinked => "identity.linked",
            AuditAction::IdentityUnlinked => "identity.unlinked",
            AuditAction::TotpEnrolled => "mfa.totp_enrolled",
            AuditAction::TotpRemoved => "mfa.totp_removed",
            AuditAction::RecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
            AuditAction::MfaReset => "mfa.reset",
            AuditAction::PasskeyRegistered => "passkey.registered",
            AuditAction::PasskeyRenamed => "passkey.renamed",
            AuditAction::PasskeyDeleted => "passkey.deleted",
            AuditAction::PasskeyLogin => "user.passkey_login",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == name)
    }
}

/// Where a request came from, as the edge saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub colo: Option<String>,
}

/// One row of the audit log, ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub occurred_at: i64,
    pub action: AuditAction,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub origin: Origin,
    pub details: Value,
}

impl AuditEntry {
    /// An entry with no actor, target or details yet.
    pub fn new(action: AuditAction, origin: Origin, now: i64) -> Self {
        Self {
            occurred_at: now,
            action,
            actor_id: None,
            target_id: None,
            origin,
            details: json!({}),
        }
    }

    /// Who acted.
    pub fn by(mut self, actor_id: &str) -> Self {
        self.actor_id = Some(actor_id.to_owned());
        self
    }

    /// Whom it concerned.
    pub fn on(mut self, target_id: &str) -> Self {
        self.target_id = Some(target_id.to_owned());
        self
    }

    /// Something an account did to itself.
    pub fn by_self(self, user_id: &str) -> Self {
        self.by(user_id).on(user_id)
    }

    /// Add a detail. Callers pass ids, names, reasons and counts; never secrets.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// How a login identifier that matched no account is recorded: an email masked, anything
/// else cut to its first character. Such an identifier may be a mistyped password.
pub fn mask_identifier(identifier: &str) -> String {
    if looks_like_email(identifier) {
        mask_email(identifier)
    } else {
        let first: String = identifier.chars().take(1).collect();
        format!("{first}***")
    }
}

/// The filters of `GET /api/v1/admin/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditFilter {
    /// Entries where this account acted or was acted upon.
    pub user_id: Option<String>,
    pub action: Option<AuditAction>,
    /// Inclusive lower bound, unix seconds.
    pub since: Option<i64>,
    /// Exclusive upper bound, unix seconds.
    pub until: Option<i64>,
}

/// The query parameters the audit listing understands.
pub const AUDIT_QUERY: [&str; 6] = ["user", "action", "since", "until", "page", "per_page"];

impl AuditFilter {
    /// Read and check the filters and the page; every problem is reported in one 422.
    pub fn parse(mut query: QueryParams) -> Result<(Self, Page), ApiError> {
        let page = query.page();
        let user_id = query.get("user").map(str::to_owned);
        if let Some(user_id) = &user_id {
            if !is_uuid(user_id) {
                query.check::<()>(Err(FieldError::new("user", "must be a user id (UUID)")));
            }
        }
        let action = match query.get("action").map(str::to_owned) {
            Some(name) => query.check(
                AuditAction::parse(&name)
                    .ok_or_else(|| FieldError::new("action", "is not an audited action")),
            ),
            None => None,
        };
        let since = query.instant("since");
        let until = query.instant("until");
        if let (Some(since), Some(until)) = (since, until) {
            if since >= until {
                query.check::<()>(Err(FieldError::new("until", "must be later than since")));
            }
        }
        query.finish()?;
        Ok((
            Self {
                user_id,
                action,
                since,
                until,
            },
            page,
        ))
    }
}

/// The oldest moment an audit entry is kept for, or `None` when `retention_days` is 0
/// (keep everything).
pub fn retention_cutoff(now: i64, retention_days: u32) -> Option<i64> {
    (retention_days > 0).then(|| now - i64::from(retention_days) * 86_400)
}

/// An audit entry as stored and read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub occurred_at: i64,
    /// The action's name as stored (`user.banned`, ...).
    pub action: String,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub colo: Option<String>,
    pub details: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams::new(
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            &AUDIT_QUERY,
        )
    }

    fn fields(result: Result<(AuditFilter, Page), ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn action_names_round_trip_and_are_unique() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        let mut names: Vec<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditAction::ALL.len());
        assert_eq!(AuditAction::parse("user.LOGIN"), None);
    }

    #[test]
    fn entries_carry_actor_target_and_details() {
        let entry = AuditEntry::new(AuditAction::RoleGranted, Origin::default(), 5)
            .by("admin-id")
            .on("user-id")
            .with("role", "admin");
        assert_eq!(entry.actor_id.as_deref(), Some("admin-id"));
        assert_eq!(entry.target_id.as_deref(), Some("user-id"));
        assert_eq!(entry.details, json!({"role": "admin"}));
        assert_eq!(entry.occurred_at, 5);
    }

    #[test]
    fn unknown_identifiers_are_masked() {
        assert_eq!(mask_identifier("alice@example.com"), "a***@example.com");
        assert_eq!(mask_identifier("hunter2hunter2"), "h***");
        assert_eq!(mask_identifier(""), "***");
    }

    #[test]
    fn filters_parse_together() {
        let (filter, page) = AuditFilter::parse(query(&[
            ("user", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
            ("action", "user.banned"),
            ("since", "1970-01-01T00:00:10Z"),
            ("until", "20"),
            ("per_page", "5"),
        ]))
        .unwrap();
        assert_eq!(filter.action, Some(AuditAction::UserBanned));
        assert_eq!((filter.since, filter.until), (Some(10), Some(20)));
        assert_eq!(
            page,
            Page {
                page: 1,
                per_page: 5
            }
        );
    }

    #[test]
    fn bad_filters_are_all_reported() {
        let result = AuditFilter::parse(query(&[
            ("user", "alice"),
            ("action", "user.exploded"),
            ("since", "soon"),
            ("per_page", "500"),
        ]));
        assert_eq!(fields(result), ["per_page", "user", "action", "since"]);
    }

    #[test]
    fn an_empty_time_range_is_refused() {
        let result = AuditFilter::parse(query(&[("since", "20"), ("until", "20")]));
        assert_eq!(fields(result), ["until"]);
    }

    #[test]
    fn retention_counts_whole_days_back_and_zero_keeps_all() {
        assert_eq!(retention_cutoff(10 * 86_400, 3), Some(7 * 86_400));
        assert_eq!(retention_cutoff(10 * 86_400, 0), None);
    }
}
