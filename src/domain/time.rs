//! Formatting times for JSON bodies and logs (RFC 3339, UTC).

use chrono::{DateTime, SecondsFormat};

/// Unix seconds as `2026-11-26T19:00:00Z`.
pub fn rfc3339_seconds(unix_seconds: i64) -> String {
    DateTime::from_timestamp(unix_seconds, 0)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Unix milliseconds as `2026-11-26T19:00:00.123Z`.
pub fn rfc3339_millis(unix_millis: u64) -> String {
    i64::try_from(unix_millis)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_rfc3339_utc() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_790_000_000), "2026-09-21T14:13:20Z");
        assert_eq!(
            rfc3339_millis(1_790_000_000_123),
            "2026-09-21T14:13:20.123Z"
        );
    }
}
