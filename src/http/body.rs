//! Reading request bodies within limits; what a JSON body must contain is its request type's
//! business (`domain::input::conform`).
//!
//! The order matters: content type first (415), then the declared length (413 without
//! reading a byte), then the body itself, read in chunks and abandoned as soon as it passes
//! the limit (413 for a chunked body that lies about nothing because it declares nothing).

use crate::domain::input::{conform, parse_object, Problems};
use crate::error::ApiError;
use crate::http::glue;
use js_sys::Uint8Array;
use serde::de::DeserializeOwned;
use utoipa::PartialSchema;
use wasm_bindgen_futures::JsFuture;
use worker::Request;

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a `Content-Type` value is JSON (`application/json` or `application/*+json`, any
/// parameters).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = essence(value);
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn content_type(req: &Request) -> String {
    req.headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Read the whole body, refusing (413) a declared length over the limit before reading a
/// byte, and an undeclared one as soon as it passes the limit.
async fn read_limited(req: &mut Request, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_bytes as u64) {
        return Err(ApiError::PayloadTooLarge(max_bytes));
    }
    let read = glue::read_body(req.inner(), max_bytes as f64);
    let body = JsFuture::from(read)
        .await
        .map_err(|_| ApiError::MalformedRequest("Request body could not be read".into()))?;
    if body.is_null() {
        return Err(ApiError::PayloadTooLarge(max_bytes));
    }
    Ok(Uint8Array::new(&body).to_vec())
}

/// Read the body of a JSON route as its request type `T`, with every problem the type finds
/// (see [`conform`]); the handler adds its own checks and then calls [`Problems::finish`].
pub async fn read_body<T: DeserializeOwned + PartialSchema>(
    req: &mut Request,
    max_bytes: usize,
) -> Result<(T, Problems), ApiError> {
    if !is_json_content_type(&content_type(req)) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read_limited(req, max_bytes).await?;
    conform(parse_object(&body)?)
}

/// Read the body of a route where a JSON body is optional: `None` when the request carries
/// none (or only whitespace), whatever its headers say, so a client that sends a bare
/// `DELETE` with a JSON content type is not refused; otherwise as [`read_body`].
pub async fn read_optional_body<T: DeserializeOwned + PartialSchema>(
    req: &mut Request,
    max_bytes: usize,
) -> Result<Option<(T, Problems)>, ApiError> {
    let body = read_limited(req, max_bytes).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json_content_type(&content_type(req)) {
        return Err(ApiError::UnsupportedMediaType);
    }
    conform(parse_object(&body)?).map(Some)
}

/// Read an HTML form body (`application/x-www-form-urlencoded`) into name/value pairs.
pub async fn read_form(
    req: &mut Request,
    max_bytes: usize,
) -> Result<Vec<(String, String)>, ApiError> {
    if essence(&content_type(req)) != "application/x-www-form-urlencoded" {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read_limited(req, max_bytes).await?;
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/merge-patch+json"));
        assert!(!is_json_content_type(""));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/x-www-form-urlencoded"));
        assert!(!is_json_content_type("text/json-ish"));
    }
}
