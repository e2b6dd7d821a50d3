//! Reading the body of a subrequest's reply (a Durable Object's answer) in one call.
//!
//! `worker`'s `Response::json` and `text` read a streamed body chunk by chunk, each chunk
//! taking a reader lock, a read and a release across the wasm boundary; on a refresh that
//! was a tenth of the isolate's time in the profile (`benches/profile.mjs`). Handing the
//! reply back to the runtime and asking it for the text is one promise.

use serde::de::DeserializeOwned;
use wasm_bindgen_futures::JsFuture;
use worker::{Error, Response, Result};

/// The reply's body as text.
pub async fn text(response: Response) -> Result<String> {
    let raw: web_sys::Response = response.into();
    let body = JsFuture::from(raw.text()?).await?;
    body.as_string()
        .ok_or_else(|| Error::RustError("the reply's body is not text".into()))
}

/// The reply's body as JSON.
pub async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
    serde_json::from_str(&text(response).await?).map_err(Error::from)
}
