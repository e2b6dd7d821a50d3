//! Bans: whether an account is banned at a moment, and what a ban request may ask.
//!
//! A ban is stored as `banned_at` (NULL: never banned, or unbanned) and `banned_until`
//! (NULL: indefinitely). A ban whose end has passed is simply over; nothing has to run to
//! lift it. The same rule is written in SQL in `store::users::NOT_BANNED`; the unit tests
//! here pin down the meaning both follow.

use crate::domain::time::rfc3339_seconds;
use crate::error::FieldError;

/// Longest reason an admin may record.
pub const MAX_REASON_CHARS: usize = 500;

/// An account's ban state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanState {
    NotBanned,
    /// Banned until this unix second (exclusive).
    Until(i64),
    Indefinite,
}

impl BanState {
    /// Evaluate the stored columns at `now`.
    pub fn at(banned_at: Option<i64>, banned_until: Option<i64>, now: i64) -> Self {
        match (banned_at, banned_until) {
            (None, _) => BanState::NotBanned,
            (Some(_), None) => BanState::Indefinite,
            (Some(_), Some(until)) if until > now => BanState::Until(until),
            (Some(_), Some(_)) => BanState::NotBanned,
        }
    }

    pub fn is_banned(self) -> bool {
        self != BanState::NotBanned
    }

    /// What a banned account is told when it proves its password.
    pub fn login_refusal(self) -> Option<String> {
        match self {
            BanState::NotBanned => None,
            BanState::Until(until) => Some(format!(
                "Account is suspended until {}",
                rfc3339_seconds(until)
            )),
            BanState::Indefinite => Some("Account is suspended".into()),
        }
    }
}

/// Check the end of a requested ban: `None` is indefinite; a time must lie in the future.
pub fn check_ban_end(until: Option<i64>, now: i64) -> Result<Option<i64>, FieldError> {
    match until {
        Some(until) if until <= now => Err(FieldError::new("until", "must be in the future")),
        other => Ok(other),
    }
}

/// Check a ban reason: trimmed, at most [`MAX_REASON_CHARS`], no control characters but
/// line breaks. An empty reason is none.
pub fn check_reason(raw: &str) -> Result<Option<String>, FieldError> {
    let reason = raw.trim();
    if reason.is_empty() {
        return Ok(None);
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(FieldError::new(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters long"),
        ));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            "reason",
            "must not contain control characters",
        ));
    }
    Ok(Some(reason.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ban_columns_means_not_banned() {
        assert_eq!(BanState::at(None, None, 100), BanState::NotBanned);
        assert_eq!(BanState::at(None, Some(500), 100), BanState::NotBanned);
    }

    #[test]
    fn a_ban_without_end_is_indefinite() {
        assert_eq!(BanState::at(Some(1), None, 1 << 40), BanState::Indefinite);
    }

    #[test]
    fn a_timed_ban_ends_at_its_end() {
        assert_eq!(BanState::at(Some(1), Some(200), 199), BanState::Until(200));
        assert_eq!(BanState::at(Some(1), Some(200), 200), BanState::NotBanned);
        assert!(!BanState::at(Some(1), Some(200), 201).is_banned());
    }

    #[test]
    fn a_banned_login_is_told_until_when() {
        assert_eq!(
            BanState::Until(1_790_000_000).login_refusal().as_deref(),
            Some("Account is suspended until 2026-09-21T14:13:20Z")
        );
        assert_eq!(
            BanState::Indefinite.login_refusal().as_deref(),
            Some("Account is suspended")
        );
        assert_eq!(BanState::NotBanned.login_refusal(), None);
    }

    #[test]
    fn a_ban_must_end_in_the_future() {
        assert_eq!(check_ban_end(None, 100), Ok(None));
        assert_eq!(check_ban_end(Some(101), 100), Ok(Some(101)));
        assert_eq!(check_ban_end(Some(100), 100).unwrap_err().field, "until");
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(check_reason("  spam \n"), Ok(Some("spam".into())));
        assert_eq!(check_reason("   "), Ok(None));
        assert!(check_reason(&"x".repeat(500)).is_ok());
        assert_eq!(check_reason(&"x".repeat(501)).unwrap_err().field, "reason");
        assert!(check_reason("a\u{7}b").is_err());
        assert!(check_reason("line one\nline two").is_ok());
    }
}
