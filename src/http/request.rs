//! What the edge knows about a request before any handler runs: its id, its method as sent,
//! its host and client, and the size of its headers.

use worker::{Date, Method, Request};

/// What the edge knows about a request before any handler runs.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    /// The method exactly as the client sent it (bounded in length), for the access log.
    pub method: String,
    /// The method the router serves, judged from the raw method string; `None` for any other
    /// (`PROPFIND`, `patch`, ...), which is a 405 on every route.
    pub known_method: Option<Method>,
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

/// The methods any route serves. Matched exactly: method names are case-sensitive (RFC 9110
/// §9.1), and `worker`'s own conversion turns every method it does not know into GET, which
/// would let `PROPFIND` read what a gateway only meant GET to read.
pub fn known_method(raw: &str) -> Option<Method> {
    Some(match raw {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        _ => return None,
    })
}

/// Whether a request's host (as the URL names it) is this machine: `localhost` (and names
/// under it, RFC 6761), `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") || host == "[::1]" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|address| address.is_loopback())
}

/// Longest method name the access log records as sent.
const MAX_LOGGED_METHOD: usize = 32;

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
        // The raw string, never `req.method()`: see `known_method`.
        let raw_method = req.inner().method();
        Self {
            request_id,
            known_method: known_method(&raw_method),
            method: raw_method.chars().take(MAX_LOGGED_METHOD).collect(),
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
    fn only_the_served_methods_are_known_and_exactly_spelled() {
        assert_eq!(known_method("GET"), Some(Method::Get));
        assert_eq!(known_method("HEAD"), Some(Method::Head));
        assert_eq!(known_method("PATCH"), Some(Method::Patch));
        assert_eq!(known_method("OPTIONS"), Some(Method::Options));
        for raw in [
            "PROPFIND", "MKCOL", "LOCK", "SEARCH", "PURGE", "QUERY", "TRACE", "CONNECT", "patch",
            "Get", "", "GET ",
        ] {
            assert_eq!(known_method(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "LOCALHOST",
            "app.localhost",
            "127.0.0.1",
            "127.8.9.1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "auth.example.com",
            "localhost.example.com",
            "128.0.0.1",
            "10.0.0.1",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
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
