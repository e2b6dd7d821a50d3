//! The HTTP edge: request metadata, body reading, authentication, responses and headers.
//!
//! Everything a request passes through before and after its handler lives here, so every
//! route gets the same limits, headers, error shape and log line.

pub mod auth;
pub mod body;
pub mod guard;
pub mod log;
pub mod response;

use worker::{Date, Request};

/// What the edge knows about a request before any handler runs.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub host: String,
    pub origin: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub colo: Option<String>,
    pub country: Option<String>,
    pub started_ms: u64,
    /// The sum of the lengths of every header name and value, for `MAX_HEADER_BYTES`.
    pub header_bytes: usize,
}

/// Longest incoming `X-Request-ID` echoed back; longer or odd ones are replaced.
const MAX_REQUEST_ID: usize = 128;

fn well_formed_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The size of a header block as `MAX_HEADER_BYTES` counts it: names plus values, in bytes.
pub fn header_bytes(headers: impl Iterator<Item = (String, String)>) -> usize {
    headers.map(|(name, value)| name.len() + value.len()).sum()
}

impl RequestMeta {
    pub fn from_request(req: &Request) -> Self {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        let request_id = header("x-request-id")
            .filter(|id| well_formed_request_id(id))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let url = req.url().ok();
        let host = url
            .as_ref()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            request_id,
            method: req.method().to_string(),
            path: url
                .as_ref()
                .map(|url| url.path().to_owned())
                .unwrap_or_default(),
            host,
            origin: header("origin"),
            client_ip: header("cf-connecting-ip"),
            user_agent: header("user-agent").map(|agent| agent.chars().take(256).collect()),
            colo: req.cf().map(|cf| cf.colo()),
            country: req.cf().and_then(|cf| cf.country()),
            started_ms: Date::now().as_millis(),
            header_bytes: header_bytes(req.headers().entries()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_echoed_only_when_well_formed() {
        assert!(well_formed_request_id(
            "3f1c2a1e-0000-4000-8000-000000000000"
        ));
        assert!(well_formed_request_id("trace.abc_123:4"));
        assert!(!well_formed_request_id(""));
        assert!(!well_formed_request_id("has space"));
        assert!(!well_formed_request_id("new\nline"));
        assert!(!well_formed_request_id(&"a".repeat(129)));
    }

    #[test]
    fn header_bytes_count_names_and_values() {
        let headers = vec![
            ("host".to_owned(), "auth.example".to_owned()),
            ("x-big".to_owned(), "é".repeat(10)),
        ];
        assert_eq!(header_bytes(headers.into_iter()), 4 + 12 + 5 + 20);
        assert_eq!(header_bytes(std::iter::empty()), 0);
    }
}
