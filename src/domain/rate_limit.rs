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

impl Decision {
    /// Whether this decision constrains the client more than `other`: a refusal beats a
    /// pass (and the longer wait wins between refusals); between passes, fewer remaining.
    /// A request counted against several budgets reports the tightest in `RateLimit-*`.
    pub fn is_tighter_than(&self, other: &Decision) -> bool {
        match (self.allowed, other.allowed) {
            (false, true) => true,
            (true, false) => false,
            (false, false) => self.retry_after_seconds > other.retry_after_seconds,
            (true, true) => self.remaining < other.remaining,
        }
    }
}

/// The budget key of a client address: an IPv4 address as it is, an IPv6 address by its
/// /64 network (one subscriber usually holds a whole /64, so per-address budgets would be
/// trivially evaded), an IPv4-mapped IPv6 address as the IPv4 address. Anything unparsable
/// is kept verbatim (bounded) so it still has a budget of its own.
pub fn client_bucket(ip: &str) -> String {
    use std::net::IpAddr;
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => format!("raw:{}", ip.chars().take(64).collect::<String>()),
    }
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

    impl Decision {
        fn with_remaining(mut self, remaining: u32) -> Self {
            self.remaining = remaining;
            self
        }
    }

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
    fn the_tightest_decision_is_the_one_reported() {
        let pass = |remaining| gcra(None, 0, 10, 60_000).0.with_remaining(remaining);
        let (_, tat) = run(10, 10, 60_000, 0);
        let refused = gcra(Some(tat), 0, 10, 60_000).0;
        let refused_longer = gcra(Some(tat + 10_000), 0, 10, 60_000).0;
        assert!(pass(3).is_tighter_than(&pass(4)));
        assert!(!pass(4).is_tighter_than(&pass(3)));
        assert!(!pass(3).is_tighter_than(&pass(3)));
        assert!(refused.is_tighter_than(&pass(0)));
        assert!(!pass(0).is_tighter_than(&refused));
        assert!(refused_longer.is_tighter_than(&refused));
    }

    #[test]
    fn clients_are_bucketed_by_ipv4_address_and_ipv6_slash_64() {
        assert_eq!(client_bucket("203.0.113.9"), "203.0.113.9");
        assert_eq!(
            client_bucket("2001:db8:aa:bb:1:2:3:4"),
            "2001:db8:aa:bb::/64"
        );
        assert_eq!(
            client_bucket("2001:DB8:AA:BB:ffff::1"),
            client_bucket("2001:db8:aa:bb::99"),
            "one /64, one budget"
        );
        assert_ne!(
            client_bucket("2001:db8:aa:bb::1"),
            client_bucket("2001:db8:aa:bc::1")
        );
        assert_eq!(client_bucket("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(client_bucket("not an ip"), "raw:not an ip");
        assert_eq!(client_bucket(&"x".repeat(500)).len(), 4 + 64);
    }

    #[test]
    fn retry_after_is_at_least_one_second_when_refused() {
        let (decisions, _) = run(3, 2, 1_000, 0);
        assert!(!decisions[2].allowed);
        assert!(decisions[2].retry_after_seconds >= 1);
    }
}
