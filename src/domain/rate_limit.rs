//! The rate-limit rule: GCRA (generic cell rate algorithm), exact and O(1) in state.
//!
//! A budget of `limit` requests per `period` spaces requests `period / limit` apart while
//! allowing a burst of `limit`. The whole state of one key is one number, the theoretical
//! arrival time (TAT). The Durable Object that owns a key applies this rule to each request
//! in turn, so the count is exact however many isolates ask at once.

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The budget, for `RateLimit-Limit`.
    pub limit: u32,
    /// Requests left right after this one, for `RateLimit-Remaining`.
    pub remaining: u32,
    /// Seconds until the budget is whole again, for `RateLimit-Reset`.
    pub reset_seconds: u64,
    /// Seconds to wait before a retry can pass, for `Retry-After` (0 when allowed).
    pub retry_after_seconds: u64,
}

/// Apply one request at `now_ms` to a key whose state is `tat_ms`; returns the decision and
/// the new state to store.
pub fn gcra(tat_ms: Option<u64>, now_ms: u64, limit: u32, period_ms: u64) -> (Decision, u64) {
    let limit = limit.max(1);
    let interval = (period_ms / u64::from(limit)).max(1);
    let tat = tat_ms.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat + interval;
    // The request fits while the new TAT is at most one period ahead of now.
    let allowed = new_tat <= now_ms + period_ms;
    let stored = if allowed { new_tat } else { tat };
    let ahead = stored - now_ms;
    let remaining = (period_ms.saturating_sub(ahead) / interval).min(u64::from(limit));
    let retry_after_ms = if allowed {
        0
    } else {
        new_tat - (now_ms + period_ms)
    };
    (
        Decision {
            allowed,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(limit),
            reset_seconds: ahead.div_ceil(1000),
            retry_after_seconds: retry_after_ms.div_ceil(1000).max(u64::from(!allowed)),
        },
        stored,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(requests: usize, limit: u32, period_ms: u64, now_ms: u64) -> (Vec<Decision>, u64) {
        let mut state = None;
        let mut decisions = Vec::new();
        for _ in 0..requests {
            let (decision, tat) = gcra(state, now_ms, limit, period_ms);
            state = Some(tat);
            decisions.push(decision);
        }
        (decisions, state.unwrap_or(0))
    }

    #[test]
    fn exactly_limit_requests_pass_in_a_burst() {
        let (decisions, _) = run(15, 10, 60_000, 1_000_000);
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 10);
        assert!(decisions[..10].iter().all(|d| d.allowed));
        assert!(decisions[10..].iter().all(|d| !d.allowed));
    }

    #[test]
    fn remaining_counts_down_to_zero() {
        let (decisions, _) = run(10, 10, 60_000, 0);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn refused_requests_say_when_to_retry() {
        let (decisions, tat) = run(11, 10, 60_000, 0);
        let refused = decisions[10];
        assert_eq!(refused.retry_after_seconds, 6);
        assert_eq!(refused.remaining, 0);
        // A refusal does not consume budget.
        assert_eq!(gcra(Some(tat), 0, 10, 60_000).1, tat);
    }

    #[test]
    fn budget_refills_at_the_steady_rate() {
        let (_, tat) = run(10, 10, 60_000, 0);
        assert!(!gcra(Some(tat), 5_999, 10, 60_000).0.allowed);
        assert!(gcra(Some(tat), 6_000, 10, 60_000).0.allowed);
        let (after_a_period, _) = gcra(Some(tat), 60_000, 10, 60_000);
        assert_eq!(after_a_period.remaining, 9);
    }

    #[test]
    fn retry_after_is_at_least_one_second_when_refused() {
        let (decisions, _) = run(3, 2, 1_000, 0);
        assert!(!decisions[2].allowed);
        assert!(decisions[2].retry_after_seconds >= 1);
    }
}
