//! Building responses: JSON bodies, problem details, and the headers every response carries.

use crate::config::{AllowedOrigins, Config};
use crate::error::ApiError;
use crate::http::glue;
use crate::http::request::RequestMeta;
use serde::Serialize;
use worker::{Headers, Response, ResponseBuilder};

/// What a handler returns: a response, or an error rendered in one place.
pub type ApiResult = Result<Response, ApiError>;

/// A response with a body and a content type; infallible, so error rendering cannot fail.
pub fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> ApiResult {
    let bytes =
        serde_json::to_vec(body).map_err(|error| ApiError::internal("response body", error))?;
    Ok(with_body(status, "application/json", bytes))
}

/// 204 No Content.
pub fn no_content() -> ApiResult {
    Ok(ResponseBuilder::new().with_status(204).empty())
}

/// Render an error as an RFC 9457 problem-details response.
pub fn problem(error: &ApiError, request_id: &str) -> Response {
    let body = serde_json::to_vec(&error.to_problem(request_id)).unwrap_or_default();
    let response = with_body(error.status(), "application/problem+json", body);
    let headers = response.headers();
    match error {
        ApiError::Unauthorized(_) => {
            let _ = headers.set("www-authenticate", "Bearer realm=\"edge-auth\"");
        }
        ApiError::RateLimited(seconds) | ApiError::LoginLocked(seconds) => {
            let _ = headers.set("retry-after", &seconds.to_string());
        }
        _ => {}
    }
    response
}

/// Add the headers every response carries, whatever produced it.
pub fn apply_edge_headers(response: &mut Response, meta: &RequestMeta, config: Option<&Config>) {
    let headers = response.headers_mut();
    glue::set_security_headers(&headers.0, &meta.request_id);
    if let (Some(config), Some(origin)) = (config, meta.origin.as_deref()) {
        set_cors_headers(headers, &config.allowed_origins, origin, false);
    }
}

/// Add `Origin` to `Vary` once, however many times the CORS headers are applied (a preflight
/// sets them, then the edge does again).
fn add_vary_origin(headers: &mut Headers) {
    let present = headers.get("vary").ok().flatten();
    if let Some(value) = present.as_deref() {
        if vary_names_origin(value) {
            return;
        }
    }
    let _ = headers.append("vary", "Origin");
}

/// Whether a `Vary` value already lists `Origin` (or `*`, which covers it).
fn vary_names_origin(value: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|name| name == "*" || name.eq_ignore_ascii_case("origin"))
}

/// CORS headers for an allowed origin; `preflight` adds the method/header grants.
pub fn set_cors_headers(
    headers: &mut Headers,
    allowed: &AllowedOrigins,
    origin: &str,
    preflight: bool,
) {
    add_vary_origin(headers);
    if !allowed.allows(origin) {
        return;
    }
    let value = if matches!(allowed, AllowedOrigins::Any) {
        "*"
    } else {
        origin
    };
    let _ = headers.set("access-control-allow-origin", value);
    let _ = headers.set(
        "access-control-expose-headers",
        "X-Request-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, WWW-Authenticate",
    );
    if preflight {
        let _ = headers.set(
            "access-control-allow-methods",
            "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        );
        let _ = headers.set(
            "access-control-allow-headers",
            "Authorization, Content-Type, X-Request-ID",
        );
        let _ = headers.set("access-control-max-age", "600");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_lists_origin_at_most_once() {
        assert!(vary_names_origin("Origin"));
        assert!(vary_names_origin("Accept-Encoding, origin"));
        assert!(vary_names_origin("*"));
        assert!(!vary_names_origin("Accept-Encoding"));
        assert!(!vary_names_origin(""));
        assert!(!vary_names_origin("Origin-Agent"));
    }
}
