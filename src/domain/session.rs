//! Session lifetimes, the refresh-token format, and the rules of rotation.
//!
//! A session has an idle expiry that each refresh pushes forward (sliding) and an absolute
//! expiry that nothing extends. Refresh tokens name their session (`<session id>.<secret>`),
//! so the Worker can route a refresh to the session's Durable Object without a database
//! read; only the secret part's digest is stored.
//!
//! Rotation: a token is spent by its first use. Presenting it again within the grace window
//! (tabs refreshing together, a retry after a lost response) yields the same successor;
//! presenting it after the window is reuse — a sign the token leaked — and ends the session.

use crate::domain::secret::{encode_opaque_token, is_well_formed_opaque_token, OPAQUE_TOKEN_BYTES};

/// A session as its owner (or an admin) sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: Option<String>,
    pub colo: Option<String>,
    pub country: Option<String>,
}

/// Session lifetimes and the rotation grace window, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle_ttl_seconds: i64,
    pub max_lifetime_seconds: i64,
    pub refresh_grace_seconds: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_ttl_seconds: 7 * 24 * 3600,
            max_lifetime_seconds: 30 * 24 * 3600,
            refresh_grace_seconds: 10,
        }
    }
}

/// A session's two expiries (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpiry {
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
}

impl SessionPolicy {
    /// Expiries of a session starting now.
    pub fn start(&self, now: i64) -> SessionExpiry {
        let absolute_expires_at = now + self.max_lifetime_seconds;
        SessionExpiry {
            idle_expires_at: (now + self.idle_ttl_seconds).min(absolute_expires_at),
            absolute_expires_at,
        }
    }

    /// What a second use of a spent token means, given when it was first used.
    pub fn classify_spent(&self, used_at: i64, now: i64) -> SpentToken {
        if now - used_at <= self.refresh_grace_seconds {
            SpentToken::WithinGrace
        } else {
            SpentToken::Reused
        }
    }
}

/// A spent refresh token presented again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpentToken {
    /// A concurrent or retried use: answer with the successor, harm nobody.
    WithinGrace,
    /// Used after its grace window: treat as stolen, revoke the session.
    Reused,
}

/// Build a refresh token for a session from caller-supplied random bytes.
pub fn encode_refresh_token(session_id: &str, random: &[u8; OPAQUE_TOKEN_BYTES]) -> String {
    format!("{session_id}.{}", encode_opaque_token(random))
}

/// The session id a refresh token names, if the token is well formed. Anything else is
/// refused before it costs a lookup.
pub fn refresh_token_session(token: &str) -> Option<&str> {
    let (session_id, secret) = token.split_once('.')?;
    (is_uuid(session_id) && is_well_formed_opaque_token(secret)).then_some(session_id)
}

/// Whether a string is a hyphenated lower-case UUID as this service writes them.
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => byte == b'-',
            _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    const DAY: i64 = 24 * 3600;

    #[test]
    fn a_new_session_expires_idle_first() {
        let expiry = SessionPolicy::default().start(1_000);
        assert_eq!(expiry.idle_expires_at, 1_000 + 7 * DAY);
        assert_eq!(expiry.absolute_expires_at, 1_000 + 30 * DAY);
    }

    #[test]
    fn idle_ttl_longer_than_lifetime_is_capped_at_start() {
        let policy = SessionPolicy {
            idle_ttl_seconds: 100,
            max_lifetime_seconds: 50,
            refresh_grace_seconds: 10,
        };
        assert_eq!(policy.start(0).idle_expires_at, 50);
    }

    #[test]
    fn second_use_inside_the_grace_window_is_harmless_after_it_is_reuse() {
        let policy = SessionPolicy::default();
        assert_eq!(policy.classify_spent(100, 100), SpentToken::WithinGrace);
        assert_eq!(policy.classify_spent(100, 110), SpentToken::WithinGrace);
        assert_eq!(policy.classify_spent(100, 111), SpentToken::Reused);
    }

    #[test]
    fn refresh_tokens_name_their_session() {
        let token = encode_refresh_token(SID, &[7; 32]);
        assert_eq!(token.len(), 36 + 1 + 43);
        assert_eq!(refresh_token_session(&token), Some(SID));
    }

    #[test]
    fn malformed_refresh_tokens_name_no_session() {
        let secret = encode_opaque_token(&[7; 32]);
        for bad in [
            String::new(),
            secret.clone(),
            format!("{SID}{secret}"),
            format!("{SID}.{}", &secret[1..]),
            format!("{}.{secret}", SID.to_uppercase()),
            format!("not-a-uuid-not-a-uuid-not-a-uuid-xx.{secret}"),
            format!("{SID}.{secret}.extra"),
        ] {
            assert_eq!(refresh_token_session(&bad), None, "{bad}");
        }
    }

    #[test]
    fn uuids_are_recognised() {
        assert!(is_uuid(SID));
        assert!(!is_uuid("0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d"));
        assert!(!is_uuid("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4g"));
    }
}
