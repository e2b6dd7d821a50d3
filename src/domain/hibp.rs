//! Have I Been Pwned "Pwned Passwords" range queries (k-anonymity), pure parts.
//!
//! Only the first 5 hex characters of the password's SHA-1 leave the Worker; the API answers
//! with every known hash suffix under that prefix (`SUFFIX:COUNT` lines) and, with
//! `Add-Padding: true`, some fake suffixes with a count of 0 so the response size does not
//! hint at the prefix either. The suffix is compared here, locally.
//! <https://haveibeenpwned.com/API/v3#PwnedPasswords>

use crate::domain::secret::to_hex;
use sha1::{Digest, Sha1};

/// The validation message for a password found in the corpus.
pub const BREACHED: &str = "has appeared in a data breach; choose another";

/// A password's SHA-1, split for a range query: `prefix` is sent, `suffix` never is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    /// 5 upper-case hex characters.
    pub prefix: String,
    /// The other 35 upper-case hex characters.
    pub suffix: String,
}

/// Split the SHA-1 of a password into the prefix to send and the suffix to look for.
pub fn range_query(password: &str) -> RangeQuery {
    let hex = to_hex(&Sha1::digest(password.as_bytes())).to_ascii_uppercase();
    let (prefix, suffix) = hex.split_at(5);
    RangeQuery {
        prefix: prefix.to_owned(),
        suffix: suffix.to_owned(),
    }
}

/// How often `suffix` appears in a range response; 0 when it is absent or only padding.
/// Lines that do not parse are ignored.
pub fn breach_count(body: &str, suffix: &str) -> u64 {
    body.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .filter(|(candidate, _)| candidate.trim().eq_ignore_ascii_case(suffix))
        .filter_map(|(_, count)| count.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_splits_the_sha1_into_five_and_thirty_five() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
        let query = range_query("password");
        assert_eq!(query.prefix, "5BAA6");
        assert_eq!(query.suffix, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
    }

    #[test]
    fn a_listed_suffix_reports_its_count() {
        let body = "003D68EB55068C33ACE09247EE4C639306B:3\r\n\
                    1E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\r\n\
                    1E4C9B93F3F0682250B6CF8331B7EE68FD9:0\r\n";
        assert_eq!(
            breach_count(body, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"),
            10_434_004
        );
        assert_eq!(
            breach_count(body, "1e4c9b93f3f0682250b6cf8331b7ee68fd8"),
            10_434_004,
            "hex case does not matter"
        );
    }

    #[test]
    fn absent_or_padding_only_suffixes_count_zero() {
        let body = "003D68EB55068C33ACE09247EE4C639306B:3\n\
                    1E4C9B93F3F0682250B6CF8331B7EE68FD8:0\n";
        assert_eq!(breach_count(body, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"), 0);
        assert_eq!(breach_count(body, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"), 0);
        assert_eq!(breach_count("", "ABC"), 0);
        assert_eq!(breach_count("garbage\nABC:notanumber\n", "ABC"), 0);
    }
}
