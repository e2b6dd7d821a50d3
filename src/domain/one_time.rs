//! One-time tokens for email flows: a 256-bit link token and a six-digit code, both stored
//! as digests, single use, purpose-bound, expiring, with a bounded number of code attempts.

use crate::domain::secret::{constant_time_eq, hash_opaque_token};
use serde::Deserialize;

/// A live one-time token as it is stored: what proves it is a digest.
#[derive(Debug, Clone, Deserialize)]
pub struct IssuedToken {
    pub id: String,
    pub user_id: String,
    /// The address the message went to.
    pub email: String,
    pub code_hash: String,
    /// Wrong codes tried so far.
    pub attempts: i64,
}

/// Attempts at a code before its token is spent.
pub const DEFAULT_CODE_ATTEMPTS: i64 = 5;

/// A six-digit code from a random 32-bit value, without modulo bias: values at or above the
/// largest multiple of 10^6 are rejected (`None`), and the caller draws again.
pub fn code_from_random(random: u32) -> Option<String> {
    const RANGE: u32 = 1_000_000;
    let limit = u32::MAX - (u32::MAX % RANGE);
    (random < limit).then(|| format!("{:06}", random % RANGE))
}

/// Whether user input looks like a code (so garbage costs no lookup).
pub fn is_code(text: &str) -> bool {
    text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The digest stored for a code. Bound to its token row, so equal codes of different tokens
/// have different digests.
pub fn hash_code(token_id: &str, code: &str) -> String {
    hash_opaque_token(&format!("{token_id}:{code}"))
}

/// Compare a presented code with the stored digest in constant time.
pub fn code_matches(token_id: &str, code: &str, stored_digest: &str) -> bool {
    constant_time_eq(
        hash_code(token_id, code).as_bytes(),
        stored_digest.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_with_leading_zeros() {
        assert_eq!(code_from_random(7).as_deref(), Some("000007"));
        assert_eq!(code_from_random(1_234_567).as_deref(), Some("234567"));
        assert!(is_code("000007"));
    }

    #[test]
    fn the_biased_top_of_the_range_is_rejected() {
        assert_eq!(code_from_random(u32::MAX), None);
        assert!(code_from_random(u32::MAX - (u32::MAX % 1_000_000) - 1).is_some());
    }

    #[test]
    fn non_codes_are_recognised() {
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert!(!is_code(bad), "{bad}");
        }
    }

    #[test]
    fn code_digests_are_bound_to_their_token() {
        let digest = hash_code("token-a", "123456");
        assert!(code_matches("token-a", "123456", &digest));
        assert!(!code_matches("token-b", "123456", &digest));
        assert!(!code_matches("token-a", "123457", &digest));
    }
}
