//! Provider identities: an account's link to an OpenID Connect or OAuth provider's account,
//! and the kinds of one-time value the redirect flow stores. Pure data; the store keeps them
//! (`store::traits::IdentityStore`, `store::traits::OAuthGrantStore`).

use serde::{Deserialize, Serialize};

/// One provider account linked to one local account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub user_id: String,
    /// The configured provider name (`google`, `github`, `acme`).
    pub provider: String,
    /// The provider's stable id of its account (`sub`; GitHub's numeric user id).
    pub subject: String,
    /// The address the provider last asserted, if any. Informational: linking decisions
    /// read the local account's email and its verification, never this.
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// What a one-time value of the redirect flow is for. A value of one kind can never be
/// spent as the other: the kind is part of the lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// The `state` of an authorization request: 10 minutes, spent by the callback.
    State,
    /// The one-time code handed to the app: 60 seconds, spent by the exchange (a sign-in)
    /// or by the signed-in account that asked for a link.
    Code,
    /// The ticket a signed-in account's link request hands the browser, for `start`: 60
    /// seconds, spent by `start`.
    Link,
    /// The `mfa_token` a right password hands out when the account has a second factor:
    /// 5 minutes, spent by a right code (or by the fifth wrong one).
    Mfa,
}

impl GrantKind {
    /// The stored name (the `kind` column's check lists these).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::State => "state",
            GrantKind::Code => "code",
            GrantKind::Link => "link",
            GrantKind::Mfa => "mfa",
        }
    }

    /// How long a value of this kind lives, in seconds (the contract).
    pub fn ttl_seconds(self) -> i64 {
        match self {
            GrantKind::State => 600,
            GrantKind::Code | GrantKind::Link => 60,
            GrantKind::Mfa => crate::domain::mfa::TICKET_TTL_SECONDS,
        }
    }
}

/// What an unlink came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlink {
    /// The identity is gone, its audit entry written.
    Unlinked,
    /// The account has no identity of that id.
    NotFound,
    /// Refused: it is the account's last way to sign in (no password, no other identity).
    LastSignInMethod,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_lives_ten_minutes_and_a_code_sixty_seconds() {
        assert_eq!(GrantKind::State.ttl_seconds(), 600);
        assert_eq!(GrantKind::Code.ttl_seconds(), 60);
        assert_eq!(GrantKind::Link.ttl_seconds(), 60);
        assert_eq!(GrantKind::Mfa.ttl_seconds(), 300);
        let kinds = [
            GrantKind::State,
            GrantKind::Code,
            GrantKind::Link,
            GrantKind::Mfa,
        ]
        .map(GrantKind::as_str);
        assert_eq!(kinds, ["state", "code", "link", "mfa"]);
    }
}
