//! The edge's JavaScript helpers: what every request reads from the runtime and writes back,
//! each in one call across the wasm boundary.
//!
//! Measured with `benches/profile.mjs`: reading the request's method, URL, five headers, the
//! header block's size and two `cf` fields one call at a time, and setting the security
//! headers one at a time, took some twenty crossings per request, each copying its strings
//! through the text decoder; together they were the largest part of the envelope's cost on
//! a route that does nothing else. Here they are two crossings; a request body is read in
//! one. The location comes from
//! Cloudflare's headers when they are there, because the `cf` object is costly to read.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(inline_js = r#"
const string = (value) => (typeof value === "string" ? value : null);

export function request_facts(request) {
  const headers = request.headers;
  // Header values are byte strings, one character per byte, so the lengths are the bytes
  // MAX_HEADER_BYTES counts.
  let headerBytes = 0;
  for (const [name, value] of headers) headerBytes += name.length + value.length;
  // On Cloudflare every request carries its Ray ID ("<id>-<colo>") and, with IP geolocation
  // on (the default), the client's country as headers, which cost nothing to read. The cf
  // object is parsed from JSON on first access, which cost more than everything else here
  // together, so it is read only when a header is missing (local development, tests).
  const ray = headers.get("cf-ray");
  let colo = (ray && /-([A-Z]{3})$/.exec(ray)?.[1]) || null;
  let country = headers.get("cf-ipcountry");
  if (colo === null || country === null) {
    const cf = request.cf;
    colo ??= string(cf?.colo);
    country ??= string(cf?.country);
  }
  return JSON.stringify({
    method: request.method,
    url: request.url,
    request_id: headers.get("x-request-id"),
    origin: headers.get("origin"),
    client_ip: headers.get("cf-connecting-ip"),
    user_agent: headers.get("user-agent"),
    colo,
    country,
    header_bytes: headerBytes,
  });
}

const SECURITY_HEADERS = [
  ["x-frame-options", "DENY"],
  ["x-content-type-options", "nosniff"],
  ["referrer-policy", "no-referrer"],
  ["strict-transport-security", "max-age=63072000; includeSubDomains"],
  ["cross-origin-opener-policy", "same-origin"],
  ["cross-origin-resource-policy", "same-origin"],
];

// For JSON: nothing may load, nothing may frame it. A page sets its own policy first.
const CSP_JSON = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

// The body, read to its end or abandoned as soon as it passes maxBytes (null then). Read
// here rather than chunk by chunk from wasm, where each chunk took a reader lock, a read and
// a release across the boundary: a fifth of a refresh's time in the profile.
export async function read_body(request, maxBytes) {
  const stream = request.body;
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

export function set_security_headers(headers, requestId) {
  for (const [name, value] of SECURITY_HEADERS) headers.set(name, value);
  headers.set("x-request-id", requestId);
  if (!headers.has("content-security-policy")) headers.set("content-security-policy", CSP_JSON);
  // Tokens and user data must never sit in a cache; a route that serves public data (the
  // key set) sets its own policy first.
  if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
}
"#)]
extern "C" {
    /// The request's method, URL, the headers the edge reads, the size of its header block
    /// and its `cf` location, as one JSON object (`RequestFacts` in `http::request`).
    pub fn request_facts(request: &web_sys::Request) -> String;

    /// The request's body as a `Uint8Array`, or `null` once it passes `max_bytes`; the
    /// promise rejects when the body cannot be read.
    pub fn read_body(request: &web_sys::Request, max_bytes: f64) -> js_sys::Promise;

    /// The headers every response carries: the security headers, the request id, and a
    /// Content-Security-Policy and Cache-Control unless the handler set its own.
    pub fn set_security_headers(headers: &web_sys::Headers, request_id: &str);
}
