//! Login back-off and lockout: per-subject failure counting, pure and time-injected.
//!
//! Failures are counted per *subject* (see [`login_subject`]): the account once the typed
//! identifier names one, so its username and its email share one budget; otherwise the
//! identifier as typed, normalised, so an unknown name locks exactly like a known one and
//! the lockout reveals nothing about which accounts exist. `threshold` failures inside one
//! `window` lock the identifier for `base * 2^(n-1)` seconds on its n-th lockout (capped at
//! 24 h); a lockout that starts more than [`REPEAT_MEMORY_SECONDS`] after the previous one
//! ended counts as a first one again. A successful login forgets everything.
//!
//! The store keeps this state in KV, which is eventually consistent, so counts are
//! approximate under concurrency; the exact bound is the per-account rate-limit budget,
//! which a Durable Object enforces before this check runs.

use serde::{Deserialize, Serialize};

/// The longest lockout, however often it repeats.
pub const MAX_LOCKOUT_SECONDS: i64 = 86_400;

/// How long after a lockout ends the next one still counts as a repeat (and so lasts longer).
pub const REPEAT_MEMORY_SECONDS: i64 = 86_400;

/// The settings: `LOGIN_LOCKOUT_THRESHOLD`, `LOGIN_LOCKOUT_WINDOW_SECONDS`,
/// `LOGIN_LOCKOUT_SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures inside one window that lock the identifier.
    pub threshold: u32,
    /// Length of the counting window, from its first failure.
    pub window_seconds: i64,
    /// Length of the first lockout; each repeat doubles it.
    pub base_lockout_seconds: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            window_seconds: 900,
            base_lockout_seconds: 900,
        }
    }
}

/// What is remembered about one identifier (unix seconds). The default is "nothing".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureState {
    /// Failures in the current window.
    pub failures: u32,
    /// When the current window began (its first failure).
    pub window_start: i64,
    /// Lockouts so far that still count as repeats.
    pub lockouts: u32,
    /// The end of the latest lockout (0 if none).
    pub locked_until: i64,
}

impl FailureState {
    /// Whether there is anything to forget after a successful login.
    pub fn is_clear(&self) -> bool {
        *self == Self::default()
    }
}

/// Whether a login attempt may be checked at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Refused without looking at the password; retry after this many seconds.
    Locked {
        retry_after_seconds: u64,
    },
}

/// The state after one more failure, and the lockout it started, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    pub state: FailureState,
    /// Seconds of the lockout this failure started.
    pub locked_for_seconds: Option<i64>,
}

impl LockoutPolicy {
    /// Whether the identifier is locked at `now`.
    pub fn gate(&self, state: &FailureState, now: i64) -> Gate {
        if state.locked_until > now {
            Gate::Locked {
                retry_after_seconds: u64::try_from(state.locked_until - now).unwrap_or(1),
            }
        } else {
            Gate::Open
        }
    }

    /// Length of the n-th lockout (n >= 1): `base * 2^(n-1)`, at most 24 h.
    pub fn lockout_seconds(&self, lockouts: u32) -> i64 {
        let doublings = lockouts.saturating_sub(1).min(62);
        let factor = 1_i64 << doublings;
        self.base_lockout_seconds
            .saturating_mul(factor)
            .min(MAX_LOCKOUT_SECONDS)
    }

    /// Count one failed login at `now`.
    pub fn record_failure(&self, state: FailureState, now: i64) -> AfterFailure {
        if self.gate(&state, now) != Gate::Open {
            // Attempts during a lockout are refused unchecked; they are not failures.
            return AfterFailure {
                state,
                locked_for_seconds: None,
            };
        }
        let mut next = state;
        if next.lockouts > 0 && now >= next.locked_until.saturating_add(REPEAT_MEMORY_SECONDS) {
            next.lockouts = 0;
            next.locked_until = 0;
        }
        if next.failures == 0 || now >= next.window_start.saturating_add(self.window_seconds) {
            next.failures = 0;
            next.window_start = now;
        }
        next.failures = next.failures.saturating_add(1);
        if next.failures < self.threshold.max(1) {
            return AfterFailure {
                state: next,
                locked_for_seconds: None,
            };
        }
        next.lockouts = next.lockouts.saturating_add(1);
        let seconds = self.lockout_seconds(next.lockouts);
        next.locked_until = now.saturating_add(seconds);
        next.failures = 0;
        next.window_start = now;
        AfterFailure {
            state: next,
            locked_for_seconds: Some(seconds),
        }
    }

    /// When the state no longer matters and may be dropped (its storage TTL).
    pub fn forget_at(&self, state: &FailureState) -> i64 {
        let window_end = state.window_start.saturating_add(self.window_seconds);
        if state.lockouts > 0 {
            window_end.max(state.locked_until.saturating_add(REPEAT_MEMORY_SECONDS))
        } else {
            window_end
        }
    }
}

/// The canonical form of a login identifier for counting: trimmed and lower-cased (emails and
/// usernames are stored lower-case, so `Alice` and `alice` are one identifier).
pub fn normalize_identifier(identifier: &str) -> String {
    identifier.trim().to_lowercase()
}

/// What a login attempt counts against (failures, the per-account budget): the account when
/// `account_id` names one, else the typed identifier in canonical form. The store keeps it
/// only as a keyed digest, so no username, address or id is readable in a key.
pub fn login_subject(account_id: Option<&str>, identifier: &str) -> String {
    match account_id {
        Some(id) => format!("account:{id}"),
        None => format!("identifier:{}", normalize_identifier(identifier)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn fail_times(policy: &LockoutPolicy, state: FailureState, times: &[i64]) -> AfterFailure {
        let mut outcome = AfterFailure {
            state,
            locked_for_seconds: None,
        };
        for &now in times {
            outcome = policy.record_failure(outcome.state, now);
        }
        outcome
    }

    #[test]
    fn four_failures_leave_the_identifier_open_the_fifth_locks_it() {
        let policy = LockoutPolicy::default();
        let four = fail_times(
            &policy,
            FailureState::default(),
            &[T0, T0 + 1, T0 + 2, T0 + 3],
        );
        assert_eq!(four.locked_for_seconds, None);
        assert_eq!(four.state.failures, 4);
        assert_eq!(policy.gate(&four.state, T0 + 3), Gate::Open);
        let fifth = policy.record_failure(four.state, T0 + 4);
        assert_eq!(fifth.locked_for_seconds, Some(900));
        assert_eq!(
            policy.gate(&fifth.state, T0 + 4),
            Gate::Locked {
                retry_after_seconds: 900
            }
        );
        assert_eq!(
            policy.gate(&fifth.state, T0 + 904 - 1),
            Gate::Locked {
                retry_after_seconds: 1
            }
        );
        assert_eq!(policy.gate(&fifth.state, T0 + 904), Gate::Open);
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let policy = LockoutPolicy::default();
        let spread = fail_times(
            &policy,
            FailureState::default(),
            &[T0, T0 + 100, T0 + 200, T0 + 300, T0 + 900],
        );
        assert_eq!(
            spread.locked_for_seconds, None,
            "the fifth is in a new window"
        );
        assert_eq!(spread.state.failures, 1);
        assert_eq!(spread.state.window_start, T0 + 900);
    }

    #[test]
    fn attempts_during_a_lockout_change_nothing() {
        let policy = LockoutPolicy::default();
        let locked = fail_times(&policy, FailureState::default(), &[T0; 5]).state;
        let again = policy.record_failure(locked, T0 + 10);
        assert_eq!(again.state, locked);
        assert_eq!(again.locked_for_seconds, None);
    }

    #[test]
    fn repeated_lockouts_double_up_to_a_day() {
        let policy = LockoutPolicy::default();
        let mut state = FailureState::default();
        let mut now = T0;
        let mut lengths = Vec::new();
        for _ in 0..10 {
            let outcome = fail_times(&policy, state, &[now; 5]);
            let seconds = outcome.locked_for_seconds.unwrap();
            lengths.push(seconds);
            state = outcome.state;
            now = state.locked_until; // the next attempts come right after it ends
        }
        assert_eq!(
            lengths,
            vec![900, 1_800, 3_600, 7_200, 14_400, 28_800, 57_600, 86_400, 86_400, 86_400]
        );
        assert_eq!(policy.lockout_seconds(u32::MAX), MAX_LOCKOUT_SECONDS);
        assert_eq!(policy.lockout_seconds(0), 900);
    }

    #[test]
    fn a_lockout_long_after_the_last_counts_as_a_first_again() {
        let policy = LockoutPolicy::default();
        let first = fail_times(&policy, FailureState::default(), &[T0; 5]).state;
        let soon = first.locked_until + 60;
        assert_eq!(
            fail_times(&policy, first, &[soon; 5]).locked_for_seconds,
            Some(1_800)
        );
        let much_later = first.locked_until + REPEAT_MEMORY_SECONDS;
        assert_eq!(
            fail_times(&policy, first, &[much_later; 5]).locked_for_seconds,
            Some(900)
        );
    }

    #[test]
    fn the_state_is_kept_as_long_as_it_matters() {
        let policy = LockoutPolicy::default();
        let counting = fail_times(&policy, FailureState::default(), &[T0]).state;
        assert_eq!(policy.forget_at(&counting), T0 + 900);
        let locked = fail_times(&policy, FailureState::default(), &[T0; 5]).state;
        assert_eq!(policy.forget_at(&locked), T0 + 900 + REPEAT_MEMORY_SECONDS);
    }

    #[test]
    fn custom_thresholds_and_lengths_apply() {
        let policy = LockoutPolicy {
            threshold: 2,
            window_seconds: 60,
            base_lockout_seconds: 30,
        };
        let outcome = fail_times(&policy, FailureState::default(), &[T0, T0 + 59]);
        assert_eq!(outcome.locked_for_seconds, Some(30));
        let zero = LockoutPolicy {
            threshold: 0,
            ..policy
        };
        assert_eq!(
            zero.record_failure(FailureState::default(), T0)
                .locked_for_seconds,
            Some(30),
            "a threshold of 0 behaves as 1"
        );
    }

    #[test]
    fn identifiers_are_trimmed_and_lower_cased() {
        assert_eq!(normalize_identifier("  Alice "), "alice");
        assert_eq!(
            normalize_identifier("Alice@Example.COM"),
            "alice@example.com"
        );
        assert!(FailureState::default().is_clear());
    }

    #[test]
    fn an_account_is_one_subject_whichever_name_was_typed() {
        let id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        assert_eq!(
            login_subject(Some(id), "alice"),
            login_subject(Some(id), "Alice@Example.com")
        );
        assert_eq!(
            login_subject(None, " Alice@Example.com"),
            login_subject(None, "alice@example.com")
        );
        assert_ne!(login_subject(None, "alice"), login_subject(None, "bob"));
        // An unknown identifier never shares a subject with an account.
        assert_ne!(login_subject(None, id), login_subject(Some(id), id));
    }
}
