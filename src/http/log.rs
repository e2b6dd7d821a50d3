//! Structured logs: one JSON line per request, and security events as their own lines.
//!
//! Lines never carry passwords, tokens or full email addresses; callers pass only ids,
//! routes, statuses and masked values.

use crate::domain::time::rfc3339_millis;
use crate::http::request::RequestMeta;
use serde::Serialize;
use serde_json::{json, Map, Value};
use worker::{console_log, Date};

fn timestamp() -> String {
    rfc3339_millis(Date::now().as_millis())
}

/// The per-request access line, serialised straight from this struct (every request writes
/// one, so it skips building a JSON tree first).
#[derive(Serialize)]
struct AccessLine<'a> {
    timestamp: String,
    level: &'static str,
    event: &'static str,
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    status: u16,
    duration_ms: u64,
    user_id: Option<&'a str>,
    colo: Option<&'a str>,
}

/// The per-request access line.
pub fn request(meta: &RequestMeta, route: &str, status: u16, user_id: Option<&str>) {
    let now_ms = Date::now().as_millis();
    let line = AccessLine {
        timestamp: rfc3339_millis(now_ms),
        level: if status >= 500 {
            "error"
        } else if status >= 400 {
            "warn"
        } else {
            "info"
        },
        event: "request",
        request_id: &meta.request_id,
        method: &meta.method,
        route,
        status,
        duration_ms: now_ms.saturating_sub(meta.started_ms),
        user_id,
        colo: meta.colo.as_deref(),
    };
    if let Ok(text) = serde_json::to_string(&line) {
        console_log!("{}", text);
    }
}

/// One event line: the common members, then the event's own fields.
fn emit(meta: &RequestMeta, level: &str, event: &str, fields: Value) {
    let mut line = Map::new();
    line.insert("timestamp".into(), Value::String(timestamp()));
    line.insert("level".into(), Value::String(level.into()));
    line.insert("event".into(), Value::String(event.into()));
    line.insert("request_id".into(), Value::String(meta.request_id.clone()));
    if let Value::Object(extra) = fields {
        line.extend(extra);
    }
    console_log!("{}", Value::Object(line));
}

/// A security event (failed login, rate limit, ...) with event-specific fields.
pub fn security_event(meta: &RequestMeta, event: &str, fields: Value) {
    let mut with_client = Map::new();
    with_client.insert(
        "client_ip".into(),
        meta.client_ip.clone().map_or(Value::Null, Value::String),
    );
    if let Value::Object(extra) = fields {
        with_client.extend(extra);
    }
    emit(meta, "warn", event, Value::Object(with_client));
}

/// An operational warning (a dependency that failed open, ...) with event-specific fields.
pub fn warn(meta: &RequestMeta, event: &str, fields: Value) {
    emit(meta, "warn", event, fields);
}

/// A dependency that failed a request (or work after it): what it was and its own error
/// text, which never reaches the client. The edge writes this once per failure.
pub fn dependency_failure(meta: &RequestMeta, event: &str, what: &str, cause: &str) {
    emit(
        meta,
        "error",
        event,
        json!({ "dependency": what, "error": cause }),
    );
}

/// An operational error whose cause must not reach the client.
pub fn error(meta: &RequestMeta, event: &str, cause: &str) {
    emit(meta, "error", event, json!({ "error": cause }));
}
