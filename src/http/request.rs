//! What the edge knows about a request before any handler runs: its id, its method as sent,
//! its host and client, and the size of its headers; and the request itself, handed to the
//! handlers as `worker`'s type only when one of them reads it.

use crate::http::glue;
use serde::Deserialize;
use std::cell::OnceCell;
use std::ops::{Deref, DerefMut};
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

/// What `glue::request_facts` reads from the runtime in one call.
#[derive(Debug, Default, Deserialize)]
struct RequestFacts {
    method: String,
    url: String,
    request_id: Option<String>,
    origin: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    colo: Option<String>,
    country: Option<String>,
    /// Names plus values, in bytes, as `MAX_HEADER_BYTES` counts them.
    header_bytes: usize,
}

impl RequestMeta {
    pub fn from_request(req: &web_sys::Request) -> Self {
        // The facts are the runtime's own strings; should they ever fail to parse, the empty
        // host that results is refused as untrusted, so the edge fails closed.
        let facts: RequestFacts =
            serde_json::from_str(&glue::request_facts(req)).unwrap_or_default();
        Self::from_facts(facts, Date::now().as_millis())
    }

    fn from_facts(facts: RequestFacts, started_ms: u64) -> Self {
        let request_id = facts
            .request_id
            .filter(|id| well_formed_request_id(id))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let url = url::Url::parse(&facts.url).ok();
        let host = url
            .as_ref()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            request_id,
            // The raw string, never `worker`'s `Method`: see `known_method`.
            known_method: known_method(&facts.method),
            method: facts.method.chars().take(MAX_LOGGED_METHOD).collect(),
            path: url
                .as_ref()
                .map(|url| url.path().to_owned())
                .unwrap_or_default(),
            host,
            origin: facts.origin,
            client_ip: facts.client_ip,
            user_agent: facts
                .user_agent
                .map(|agent| agent.chars().take(256).collect()),
            colo: facts.colo,
            country: facts.country,
            started_ms,
            header_bytes: facts.header_bytes,
        }
    }
}

/// The incoming request. Converting it to `worker`'s `Request` reads its method, URL,
/// headers and `cf` object across the wasm boundary again, which a handler that never
/// looks at the request (a ping, a key set, most bearer routes) need not pay for: the
/// conversion happens on first use.
pub struct IncomingRequest {
    raw: web_sys::Request,
    converted: OnceCell<Request>,
}

impl IncomingRequest {
    pub fn new(raw: web_sys::Request) -> Self {
        Self {
            raw,
            converted: OnceCell::new(),
        }
    }

    /// The runtime's request, without conversion.
    pub fn raw(&self) -> &web_sys::Request {
        &self.raw
    }
}

impl Deref for IncomingRequest {
    type Target = Request;

    fn deref(&self) -> &Request {
        // `Clone::clone` copies the handle; the method `clone` would copy the request.
        self.converted
            .get_or_init(|| Request::from(Clone::clone(&self.raw)))
    }
}

impl DerefMut for IncomingRequest {
    fn deref_mut(&mut self) -> &mut Request {
        if self.converted.get().is_none() {
            self.converted = OnceCell::from(Request::from(Clone::clone(&self.raw)));
        }
        match self.converted.get_mut() {
            Some(request) => request,
            // Set just above.
            None => unreachable!("the request was converted above"),
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

    fn facts(json: &str) -> RequestMeta {
        RequestMeta::from_facts(serde_json::from_str(json).unwrap(), 7)
    }

    #[test]
    fn the_facts_become_the_request_meta() {
        let meta = facts(
            r#"{"method":"GET","url":"https://auth.example/api/v1/users/me?x=1",
                "request_id":"trace-1","origin":null,"client_ip":"203.0.113.9",
                "user_agent":"curl","colo":"AMS","country":null,"header_bytes":120}"#,
        );
        assert_eq!(meta.request_id, "trace-1");
        assert_eq!(meta.known_method, Some(Method::Get));
        assert_eq!(meta.host, "auth.example");
        assert_eq!(meta.path, "/api/v1/users/me");
        assert_eq!(meta.client_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(meta.colo.as_deref(), Some("AMS"));
        assert_eq!(meta.country, None);
        assert_eq!(meta.header_bytes, 120);
        assert_eq!(meta.started_ms, 7);
    }

    #[test]
    fn odd_facts_are_bounded_or_replaced() {
        let meta = facts(&format!(
            r#"{{"method":"{}","url":"not a url","request_id":"has space",
                "user_agent":"{}","header_bytes":0}}"#,
            "X".repeat(100),
            "a".repeat(1000)
        ));
        assert_eq!(meta.known_method, None);
        assert_eq!(meta.method.len(), MAX_LOGGED_METHOD);
        assert_eq!(
            meta.host, "",
            "an unparsable URL has no host: refused as untrusted"
        );
        assert_eq!(meta.path, "");
        assert_eq!(meta.user_agent.map(|agent| agent.len()), Some(256));
        assert!(uuid::Uuid::parse_str(&meta.request_id).is_ok(), "replaced");
    }
}
