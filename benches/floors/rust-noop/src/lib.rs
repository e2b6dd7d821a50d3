//! Bench floor "rust-noop": the smallest workers-rs Worker, answering every request with the
//! JavaScript noop floor's response (benches/floors/noop.js: a 200 with `{"status":"ok"}` and
//! `content-type: application/json`). What it costs above that floor is the fixed price of a
//! Rust/wasm Worker: the entry glue, crossing into wasm and back, building the Response.
//!
//! The handler takes `web_sys::Request` (re-exported by `worker`), as edge-auth's own fetch
//! handler does (src/lib.rs), rather than `worker::Request`: the same entry path, so the two
//! differ only in what our code does. No `#[event(start)]` panic hook: nothing here can panic
//! that the hook would explain, and it would add nothing per request anyway.

use worker::{event, web_sys, Context, Env, Response, Result};

/// The body `Response.json({ status: "ok" })` sends.
const BODY: &[u8] = br#"{"status":"ok"}"#;

#[event(fetch)]
async fn fetch(_req: web_sys::Request, _env: Env, _ctx: Context) -> Result<Response> {
    // As `Response::from_json` builds it (the path edge-auth's JSON replies take), minus serde:
    // the content-type header, then a fixed-length body.
    Ok(Response::builder()
        .with_header("content-type", "application/json")?
        .fixed(BODY.to_vec()))
}
