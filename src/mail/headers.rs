//! Header values every provider's messages share: the sender's domain (for Message-IDs) and
//! the `Date:` of now.

use crate::runtime::now_seconds;

/// The domain of the sender address, for Message-IDs.
pub fn sender_domain(from: &str) -> &str {
    crate::domain::smtp::envelope_address(from)
        .rsplit_once('@')
        .map_or("localhost", |(_, domain)| domain)
}

/// The current time as an RFC 2822 date for the `Date:` header.
pub fn rfc2822_now() -> String {
    chrono::DateTime::from_timestamp(now_seconds(), 0)
        .map(|time| time.to_rfc2822())
        .unwrap_or_default()
}
